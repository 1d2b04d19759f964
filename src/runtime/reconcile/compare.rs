//! The comparison of one event's mappings (an invoice and its credit notes) with the Tripletex
//! records they write: by binding, else by natural key, then field by field or by total.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::report::{Difference, FieldDifference, Options, PeriodTotals, Sum};
use crate::engine::{Outcome, RecordError, changes};
use crate::expr::Resolver;
use crate::plan::Plan;
use crate::runtime::lookups::{Tables, ref_key};
use crate::store::Binding;

/// Resolves `ref()` and `bound()` from every binding of the tenant, read once.
pub(super) struct Known {
    pub(super) bindings: Arc<HashMap<String, Binding>>,
    pub(super) lookups: Tables,
}

impl Resolver for Known {
    fn reference(&self, entity: &str, key: &str) -> Option<Value> {
        self.bindings
            .get(&ref_key(entity, key))
            .map(|b| b.target_id.clone())
    }
    fn lookup(&self, table: &str, key: &str) -> Option<Value> {
        self.lookups.get(table)?.get(key).cloned()
    }
    fn bound(&self, entity: &str, key: &str) -> Option<Option<Value>> {
        Some(
            self.bindings
                .get(&ref_key(entity, key))
                .map(|b| json!({ "id": b.target_id, "body": b.body })),
        )
    }
}

/// A natural key or id as text; `None` for an empty or structured value.
pub(super) fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Money to the øre.
fn money(v: &Value) -> Option<Decimal> {
    let s = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return None,
    };
    let d = s
        .parse::<Decimal>()
        .or_else(|_| Decimal::from_scientific(&s))
        .ok()?;
    Some(d.round_dp(2))
}

/// Whether a rendered body's date (`date`, a body field) falls in the period.
fn dated_in(body: &Value, date: &str, options: &Options) -> bool {
    let d = body
        .get(date)
        .and_then(Value::as_str)
        .and_then(|d| d.get(..10));
    d.is_some_and(|d| d >= options.since.as_str() && d < options.until.as_str())
}

/// Whether a record that does not render (a reference not in Tripletex) is of the period: its
/// date read from a body rendered with placeholders for what is missing. Undated documents
/// always are.
fn in_period(plan: &Plan, source: &Arc<Value>, date: Option<&str>, options: &Options) -> bool {
    let Some(date) = date else {
        return true;
    };
    let placeholders = Arc::new(crate::engine::PlaceholderResolver::default());
    match plan.apply_shared(source, None, placeholders) {
        Ok(a) => match a.outcome {
            Outcome::Write(req) => req.body.is_none_or(|b| dated_in(&b.value(), date, options)),
            Outcome::Keep { body } => dated_in(&body.value(), date, options),
            Outcome::Skip { .. } => false,
        },
        Err(_) => true,
    }
}

/// A record's outcome in one comparison, before `--fix`.
pub(super) struct Found {
    pub(super) plan_index: usize,
    pub(super) key: String,
    pub(super) difference: Difference,
    /// For a field difference: the binding with the baseline Tripletex really holds.
    pub(super) baseline: Option<Binding>,
    /// Missing because records it refers to are missing too: the sync sends those first.
    pub(super) with_dependencies: bool,
}

/// What the comparisons of several events share: the entities written to each Tripletex path
/// (a product may be a BOM's), and the Tripletex records already reported.
pub(super) struct Shared {
    pub(super) entities_by_path: HashMap<String, Vec<String>>,
    pub(super) reported: HashSet<String>,
}

/// What the comparison of one event's mappings found.
pub(super) struct Group {
    /// Per mapping: Rackbeat records, Tripletex records, in step.
    pub(super) counts: Vec<(usize, usize, usize)>,
    pub(super) found: Vec<Found>,
    pub(super) period: Option<PeriodTotals>,
}

pub(super) fn compare_group(
    plans: &[&Plan],
    resolvers: &[Arc<dyn Resolver>],
    targets: &[(String, Arc<Vec<Value>>)],
    records: &[Value],
    bindings: &HashMap<String, Binding>,
    options: &Options,
    shared: &mut Shared,
) -> Group {
    let mut counts = vec![(0, 0, 0); plans.len()];
    let mut found = Vec::new();
    // Per list: its records by id, and the ids some Rackbeat record accounts for.
    let mut by_id: HashMap<&str, HashMap<String, &Value>> = HashMap::new();
    let mut seen: HashMap<&str, HashSet<String>> = HashMap::new();
    for (i, (id, list)) in targets.iter().enumerate() {
        let index = by_id.entry(id.as_str()).or_insert_with(|| {
            list.iter()
                .filter_map(|t| text(t.get(&plans[i].target.id)).map(|k| (k, t)))
                .collect()
        });
        counts[i].1 = index.len();
    }
    // Natural keys per list, for records without a binding.
    let mut by_key: HashMap<&str, HashMap<String, Vec<&Value>>> = HashMap::new();
    for (i, (id, list)) in targets.iter().enumerate() {
        by_key.entry(id.as_str()).or_insert_with(|| {
            let mut m: HashMap<String, Vec<&Value>> = HashMap::new();
            for t in list.iter() {
                if let Some(k) = text(t.get(&plans[i].target.natural_key)) {
                    m.entry(k).or_default().push(t);
                }
            }
            m
        });
    }
    let totals = plans
        .iter()
        .any(|p| p.reconcile.as_ref().is_some_and(|r| r.total.is_some()));
    // The period's sums: every document matched, and every one in Tripletex alone, once.
    let (mut rb_sum, mut rb_docs) = (Decimal::ZERO, 0);
    let (mut tx_sum, mut tx_docs) = (Decimal::ZERO, 0);
    for record in records {
        let chosen: Vec<usize> = (0..plans.len())
            .filter(|&i| {
                plans[i]
                    .applies(record, resolvers[i].clone())
                    .unwrap_or(false)
            })
            .collect();
        let [i] = chosen.as_slice() else {
            continue;
        };
        let (i, plan, resolver) = (*i, plans[*i], resolvers[*i].clone());
        let Some(r) = plan.reconcile.as_ref() else {
            continue;
        };
        let Ok(key) = plan.key_of(record) else {
            continue;
        };
        let (list_id, _) = &targets[i];
        let missing = |reason: Option<String>| Found {
            plan_index: i,
            key: key.clone(),
            difference: Difference::Missing {
                key: key.clone(),
                reason,
            },
            baseline: None,
            with_dependencies: false,
        };
        let source = Arc::new(record.clone());
        let body = match plan.apply_shared(&source, None, resolver.clone()) {
            Ok(a) => match a.outcome {
                Outcome::Skip { .. } => continue,
                Outcome::Write(req) => req.body.map(|b| b.value()).unwrap_or(Value::Null),
                Outcome::Keep { body } => body.value(),
            },
            Err(_) if !in_period(plan, &source, r.date.as_deref(), options) => continue,
            Err(RecordError::Missing(deps)) => {
                let names: Vec<String> = deps.iter().map(|(e, k)| format!("{e} {k}")).collect();
                counts[i].0 += 1;
                found.push(Found {
                    with_dependencies: true,
                    ..missing(Some(format!(
                        "it refers to {}, not in Tripletex either",
                        names.join(", ")
                    )))
                });
                continue;
            }
            Err(e) => {
                counts[i].0 += 1;
                found.push(missing(Some(e.to_string())));
                continue;
            }
        };
        if !r
            .date
            .as_deref()
            .is_none_or(|d| dated_in(&body, d, options))
        {
            continue;
        }
        counts[i].0 += 1;
        let body = Arc::new(body);
        let source_total = r.total.as_ref().map(|(s, _)| {
            plan.evaluate(
                s,
                &[("source", &source), ("body", &body)],
                "reconcile.total.source",
                resolver.clone(),
            )
            .ok()
            .flatten()
            .and_then(|v| money(&v))
        });
        if let Some(t) = source_total.flatten() {
            rb_sum += t;
            rb_docs += 1;
        }
        let binding = bindings.get(&ref_key(&plan.entity, &key));
        let target = match binding {
            Some(b) => {
                match text(Some(&b.target_id)).and_then(|id| by_id[list_id.as_str()].get(&id)) {
                    Some(t) => *t,
                    None => {
                        found.push(Found {
                            plan_index: i,
                            key: key.clone(),
                            difference: Difference::Gone {
                                key: key.clone(),
                                tripletex_id: b.target_id.clone(),
                            },
                            baseline: None,
                            with_dependencies: false,
                        });
                        continue;
                    }
                }
            }
            None => {
                let natural = text(body.get(&plan.target.natural_key)).unwrap_or_default();
                match by_key[list_id.as_str()]
                    .get(&natural)
                    .and_then(|v| v.first())
                {
                    Some(t) => {
                        let id = t.get(&plan.target.id).cloned().unwrap_or(Value::Null);
                        if let Some(id) = text(Some(&id)) {
                            seen.entry(list_id.as_str()).or_default().insert(id);
                        }
                        found.push(Found {
                            plan_index: i,
                            key: key.clone(),
                            difference: Difference::Unbound {
                                tripletex_id: id,
                                natural_key: natural,
                                key: Some(key.clone()),
                            },
                            baseline: None,
                            with_dependencies: false,
                        });
                    }
                    None => found.push(missing(None)),
                }
                continue;
            }
        };
        let tripletex_id = target.get(&plan.target.id).cloned().unwrap_or(Value::Null);
        if let Some(id) = text(Some(&tripletex_id)) {
            seen.entry(list_id.as_str()).or_default().insert(id);
        }
        if let Some((_, t)) = &r.total {
            let item = Arc::new(target.clone());
            let theirs = plan
                .evaluate(
                    t,
                    &[("item", &item)],
                    "reconcile.total.target",
                    resolver.clone(),
                )
                .ok()
                .flatten()
                .and_then(|v| money(&v));
            if let Some(v) = theirs {
                tx_sum += v;
                tx_docs += 1;
            }
            let ours = source_total.flatten();
            if ours == theirs {
                counts[i].2 += 1;
            } else {
                let show = |d: Option<Decimal>| d.map_or("(none)".into(), |d| format!("{d:.2}"));
                found.push(Found {
                    plan_index: i,
                    key: key.clone(),
                    difference: Difference::Total {
                        key: key.clone(),
                        tripletex_id,
                        rackbeat: show(ours),
                        tripletex: show(theirs),
                    },
                    baseline: None,
                    with_dependencies: false,
                });
            }
            continue;
        }
        // The body an update would render from this record: what is compared.
        let current = Arc::new(target.clone());
        let update = match plan.apply_shared(&source, Some(&current), resolver.clone()) {
            Ok(a) => match a.outcome {
                Outcome::Write(req) => req.body.map(|b| b.value()).unwrap_or(Value::Null),
                Outcome::Keep { body } => body.value(),
                Outcome::Skip { .. } => continue,
            },
            Err(e) => {
                found.push(missing(Some(e.to_string())));
                continue;
            }
        };
        let mut fields = Vec::new();
        if let Some(wanted) = update.as_object() {
            for (field, want) in wanted {
                if changes::is_identity(field) {
                    continue;
                }
                // A loss the mapping declares (Tripletex holds more than Rackbeat can say), with
                // no Rackbeat change since the binding's baseline: not a difference.
                let declared = plan.round_trip_losses.iter().any(|(f, _)| f == field);
                let unchanged = binding
                    .and_then(|b| b.body.as_ref())
                    .and_then(|b| b.get(field))
                    .is_some_and(|b| body.get(field).is_some_and(|r| changes::holds(b, r)));
                if declared && unchanged {
                    continue;
                }
                let has = target.get(field);
                if !has.is_some_and(|h| changes::holds(h, want)) {
                    fields.push(FieldDifference {
                        field: field.clone(),
                        rackbeat: want.clone(),
                        tripletex: has.cloned().unwrap_or(Value::Null),
                    });
                }
            }
        }
        if fields.is_empty() {
            counts[i].2 += 1;
            continue;
        }
        // What Tripletex holds becomes the baseline, so the sync sends exactly these fields.
        let baseline = binding.map(|b| {
            let mut kept = (*body).clone();
            if let Some(o) = kept.as_object_mut() {
                for f in &fields {
                    match target.get(&f.field) {
                        Some(v) => o.insert(f.field.clone(), v.clone()),
                        None => o.remove(&f.field),
                    };
                }
            }
            Binding {
                body: Some(kept),
                body_hash: None,
                version: target.get("version").and_then(Value::as_i64).or(b.version),
                ..b.clone()
            }
        });
        found.push(Found {
            plan_index: i,
            key: key.clone(),
            difference: Difference::Different {
                key: key.clone(),
                tripletex_id,
                fields,
            },
            baseline,
            with_dependencies: false,
        });
    }
    // Tripletex records no Rackbeat record accounts for and no binding points at, and
    // natural keys held twice; each list once, under the first mapping that reads it.
    let bound: HashSet<(String, String)> = bindings
        .values()
        .filter_map(|b| text(Some(&b.target_id)).map(|id| (b.entity.clone(), id)))
        .collect();
    let mut done = HashSet::new();
    for (i, (list_id, list)) in targets.iter().enumerate() {
        if !done.insert(list_id.as_str()) {
            continue;
        }
        let path = plans[i]
            .reconcile
            .as_ref()
            .and_then(|r| r.list.first())
            .map_or("", |l| l.path.as_str());
        let entities: Vec<&str> = shared
            .entities_by_path
            .get(path)
            .map(|e| e.iter().map(String::as_str).collect())
            .unwrap_or_default();
        // A list several entities write to (products and BOMs) is reported once, under the
        // last of them in the pack (the plain `product`, the `invoice`).
        let owner = entities
            .iter()
            .rev()
            .find(|e| options.entities.is_empty() || options.entities.iter().any(|x| x == *e));
        let Some(i) = plans.iter().position(|p| Some(&p.entity.as_str()) == owner) else {
            continue;
        };
        let total = plans[i].reconcile.as_ref().and_then(|r| r.total.as_ref());
        for t in list.iter() {
            let Some(id) = text(t.get(&plans[i].target.id)) else {
                continue;
            };
            // A record a mapping's `then` step made (the invoice of a credit note's order) is
            // that mapping's, counted through the record it was made from.
            let accounted = seen.get(list_id.as_str()).is_some_and(|s| s.contains(&id))
                || entities
                    .iter()
                    .any(|e| bound.contains(&(e.to_string(), id.clone())))
                || plans
                    .iter()
                    .any(|p| bound.contains(&(format!("{}.then", p.entity), id.clone())));
            if !accounted && shared.reported.insert(format!("{list_id} {id}")) {
                if let Some((_, tmpl)) = total {
                    let item = Arc::new(t.clone());
                    if let Some(v) = plans[i]
                        .evaluate(
                            tmpl,
                            &[("item", &item)],
                            "reconcile.total.target",
                            resolvers[i].clone(),
                        )
                        .ok()
                        .flatten()
                        .and_then(|v| money(&v))
                    {
                        tx_sum += v;
                        tx_docs += 1;
                    }
                }
                found.push(Found {
                    plan_index: i,
                    key: String::new(),
                    difference: Difference::Unbound {
                        tripletex_id: t.get(&plans[i].target.id).cloned().unwrap_or(Value::Null),
                        natural_key: text(t.get(&plans[i].target.natural_key)).unwrap_or_default(),
                        key: None,
                    },
                    baseline: None,
                    with_dependencies: false,
                });
            }
        }
        let mut dups: Vec<(&String, &Vec<&Value>)> = by_key[list_id.as_str()]
            .iter()
            .filter(|(k, v)| v.len() > 1 && shared.reported.insert(format!("{list_id} twice {k}")))
            .collect();
        dups.sort_by(|a, b| a.0.cmp(b.0));
        for (k, items) in dups {
            found.push(Found {
                plan_index: i,
                key: String::new(),
                difference: Difference::Duplicate {
                    natural_key: k.clone(),
                    tripletex_ids: items
                        .iter()
                        .map(|t| t.get(&plans[i].target.id).cloned().unwrap_or(Value::Null))
                        .collect(),
                },
                baseline: None,
                with_dependencies: false,
            });
        }
    }
    let period = totals.then(|| PeriodTotals {
        entities: plans.iter().map(|p| p.entity.clone()).collect(),
        rackbeat: Sum {
            documents: rb_docs,
            total: format!("{rb_sum:.2}"),
        },
        tripletex: Sum {
            documents: tx_docs,
            total: format!("{tx_sum:.2}"),
        },
    });
    Group {
        counts,
        found,
        period,
    }
}
