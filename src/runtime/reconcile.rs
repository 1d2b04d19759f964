//! `rbtx reconcile`: both systems read in bulk and compared, record by record, with what each
//! mapping would send now. Nothing is written unless `--fix` asks; then each difference that a
//! sync can repair is queued, and the same worker as `rbtx run` syncs it.
//!
//! What is compared is the mapping's own business: the fields its body renders for an update
//! (so what Tripletex computes, and what a mapping leaves out or creates only, never differs),
//! or, for documents never changed once sent (`reconcile.total`), their totals to the øre.
//! Records are matched by binding, else by natural key. Reading is by lists, a page of 1,000 at
//! a time on both sides; bindings come from the store in one read.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Value, json};

use super::lookups::{Tables, ref_key};
use super::tenant::Tenant;
use super::worker::Worker;
use crate::connectors::ApiError;
use crate::engine::{Outcome, RecordError, changes};
use crate::expr::Resolver;
use crate::plan::{Pack, Plan};
use crate::spec::Direction;
use crate::store::{Binding, NewEvent, Store, StoreError};

/// What `rbtx reconcile` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Only these entities (empty: every reconciled one).
    pub entities: Vec<String>,
    /// The documents' period: `since` ≤ date < `until` (`YYYY-MM-DD`).
    pub since: String,
    pub until: String,
    /// Queue a sync for each difference a sync can repair, and sync them.
    pub fix: bool,
    /// A spinner on stderr while lists are read (on a terminal only).
    pub progress: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Mapping(String),
}

/// Everything one reconciliation found.
#[derive(Debug, Serialize)]
pub struct Report {
    pub tenant: String,
    pub since: String,
    pub until: String,
    pub entities: Vec<EntityReport>,
    /// Documents of the period, summed on both sides (credit notes negative).
    pub periods: Vec<PeriodTotals>,
    /// What `--fix` queued, and how the syncs went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed: Option<Fixed>,
}

#[derive(Debug, Serialize)]
pub struct EntityReport {
    pub entity: String,
    pub mapping: String,
    /// Rackbeat records this mapping holds for (in the period, for documents).
    pub rackbeat: usize,
    /// Tripletex records listed.
    pub tripletex: usize,
    pub in_step: usize,
    pub differences: Vec<Difference>,
}

/// One way the two systems disagree.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Difference {
    /// In Rackbeat, not in Tripletex (`reason`: why the mapping could not render it).
    Missing {
        key: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// In Tripletex and bound to nothing; `key`: the Rackbeat record with its natural key.
    Unbound {
        tripletex_id: Value,
        natural_key: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    /// Bound to a Tripletex record that is not there (deleted, or outside the period).
    Gone { key: String, tripletex_id: Value },
    /// Fields whose value in Tripletex is not what the mapping renders.
    Different {
        key: String,
        tripletex_id: Value,
        fields: Vec<FieldDifference>,
    },
    /// A document whose total differs.
    Total {
        key: String,
        tripletex_id: Value,
        rackbeat: String,
        tripletex: String,
    },
    /// Several Tripletex records with one natural key.
    Duplicate {
        natural_key: String,
        tripletex_ids: Vec<Value>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct FieldDifference {
    pub field: String,
    pub rackbeat: Value,
    pub tripletex: Value,
}

#[derive(Debug, Serialize)]
pub struct PeriodTotals {
    pub entities: Vec<String>,
    pub rackbeat: Sum,
    pub tripletex: Sum,
}

#[derive(Debug, Default, Serialize)]
pub struct Sum {
    pub documents: usize,
    /// To the øre, as text (`"-1234.50"`).
    pub total: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Fixed {
    /// `entity key` of each record queued.
    pub queued: Vec<String>,
    /// Of those, the ones that failed (see `rbtx dlq list`).
    pub failed: Vec<String>,
    /// Differences a sync does not repair, with why.
    pub left: Vec<String>,
}

impl Report {
    pub fn differences(&self) -> usize {
        self.entities.iter().map(|e| e.differences.len()).sum()
    }
}

/// Resolves `ref()` and `bound()` from every binding of the tenant, read once.
struct Known {
    bindings: Arc<HashMap<String, Binding>>,
    lookups: Tables,
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
fn text(v: Option<&Value>) -> Option<String> {
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

/// A record's outcome in one comparison, before `--fix`.
struct Found {
    plan_index: usize,
    key: String,
    difference: Difference,
    /// For a field difference: the binding with the baseline Tripletex really holds.
    baseline: Option<Binding>,
    /// Missing because records it refers to are missing too: the sync sends those first.
    with_dependencies: bool,
}

/// Reconciles every `rackbeat_to_tripletex` mapping with a `reconcile` block that `tenant` runs.
pub async fn run_on<S: Store + 'static>(
    store: Arc<S>,
    pack: Arc<Pack>,
    tenant: Tenant,
    options: &Options,
) -> Result<Report, ReconcileError> {
    let worker = Worker::new(store.clone(), pack.clone(), tenant, "reconcile");
    let tenant_id = worker.tenant.id.clone();
    let view = worker.view();
    let direction = Direction::RackbeatToTripletex.as_str();
    let bindings: HashMap<String, Binding> = store
        .list_bindings(&tenant_id, direction)
        .await?
        .into_iter()
        .map(|b| (ref_key(&b.entity, &b.source_key), b))
        .collect();
    let bindings = Arc::new(bindings);
    let mut report = Report {
        tenant: tenant_id.clone(),
        since: options.since.clone(),
        until: options.until.clone(),
        entities: Vec::new(),
        periods: Vec::new(),
        fixed: None,
    };
    let mut found: Vec<Found> = Vec::new();
    let mut plans: Vec<&Plan> = Vec::new();
    // Tripletex lists by path and query: the mappings of one event share theirs.
    let mut lists: HashMap<String, Arc<Vec<Value>>> = HashMap::new();
    let mut shared = Shared {
        entities_by_path: HashMap::new(),
        reported: HashSet::new(),
    };
    for p in view.realtime() {
        if let Some(r) = &p.reconcile {
            for l in &r.list {
                let e = shared.entities_by_path.entry(l.path.clone()).or_default();
                e.push(p.entity.clone());
            }
        }
    }
    // Each listing mapping and the mappings of its event (an invoice and its credit notes).
    for lead in view.realtime().filter(|p| !p.source.list.is_empty()) {
        let Some(event) = lead.on.first() else {
            continue;
        };
        let alternatives: Vec<&Plan> = view
            .all_for_event(event)
            .into_iter()
            .filter(|p| p.reconcile.is_some())
            .filter(|p| options.entities.is_empty() || options.entities.contains(&p.entity))
            .collect();
        if alternatives.is_empty() {
            continue;
        }
        let spinner = Spinner::new(&lead.entity, options.progress);
        let mut records = Vec::new();
        for l in &lead.source.list {
            let mut query: Vec<(&str, String)> = l
                .query
                .iter()
                .map(|(k, v)| (k.as_str(), v.clone()))
                .collect();
            if !query.iter().any(|(k, _)| *k == "limit") {
                query.push(("limit", "1000".into()));
            }
            records.extend(worker.tenant.rackbeat.list_all(&l.path, &query).await?);
        }
        spinner.say(format!("{} Rackbeat records", records.len()));
        let mut resolvers = Vec::new();
        let mut targets = Vec::new();
        for plan in &alternatives {
            let lookups = worker.lookups_for(plan).await.map_err(|f| match f {
                super::sync::Failure::Retry { reason }
                | super::sync::Failure::Permanent { reason, .. } => {
                    ReconcileError::Mapping(format!("{}: lookups: {reason}", plan.file.display()))
                }
            })?;
            resolvers.push(Arc::new(Known {
                bindings: bindings.clone(),
                lookups,
            }) as Arc<dyn Resolver>);
            let r = plan.reconcile.as_ref().ok_or_else(|| {
                ReconcileError::Mapping(format!("{} has no reconcile", plan.file.display()))
            })?;
            let mut id = String::new();
            let mut requests = Vec::new();
            for l in &r.list {
                let mut query: Vec<(String, String)> = l
                    .query
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if let Some(p) = &r.period {
                    query.push((p.from.clone(), options.since.clone()));
                    query.push((p.until.clone(), options.until.clone()));
                }
                id.push_str(&format!(
                    "{} {query:?} {:?}; ",
                    l.path,
                    r.only.as_ref().map(|o| &o.0)
                ));
                requests.push((l.path.as_str(), query));
            }
            let list = match lists.get(&id) {
                Some(l) => l.clone(),
                None => {
                    let mut all = Vec::new();
                    for (path, query) in &requests {
                        let q: Vec<(&str, String)> =
                            query.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
                        all.extend(worker.tenant.tripletex.list_all(path, &q).await?);
                    }
                    // Only this mapping's records (`reconcile.only`).
                    if let Some((_, only)) = &r.only {
                        let resolver = resolvers.last().cloned();
                        all.retain(|item| {
                            let item = Arc::new(item.clone());
                            resolver.as_ref().is_some_and(|res| {
                                plan.evaluate(
                                    only,
                                    &[("item", &item)],
                                    "reconcile.only",
                                    res.clone(),
                                )
                                .is_ok_and(|v| v.is_some_and(|v| v.as_bool() == Some(true)))
                            })
                        });
                    }
                    let l = Arc::new(all);
                    lists.insert(id.clone(), l.clone());
                    l
                }
            };
            targets.push((id, list));
        }
        spinner.say(format!(
            "{} Tripletex records",
            targets.iter().map(|t| t.1.len()).sum::<usize>()
        ));
        let group = compare_group(
            &alternatives,
            &resolvers,
            &targets,
            &records,
            &bindings,
            options,
            &mut shared,
        );
        spinner.done();
        let base = plans.len();
        for (i, plan) in alternatives.iter().enumerate() {
            let g = &group.counts[i];
            report.entities.push(EntityReport {
                entity: plan.entity.clone(),
                mapping: plan.file.display().to_string(),
                rackbeat: g.0,
                tripletex: g.1,
                in_step: g.2,
                differences: Vec::new(),
            });
            plans.push(plan);
        }
        for mut f in group.found {
            f.plan_index += base;
            found.push(f);
        }
        if let Some(p) = group.period {
            report.periods.push(p);
        }
    }
    for f in &found {
        if let Some(e) = report.entities.get_mut(f.plan_index) {
            e.differences.push(f.difference.clone());
        }
    }
    if options.fix {
        report.fixed = Some(fix(&worker, &plans, found, &tenant_id).await?);
    }
    Ok(report)
}

/// What the comparisons of several events share: the entities written to each Tripletex path
/// (a product may be a BOM's), and the Tripletex records already reported.
struct Shared {
    entities_by_path: HashMap<String, Vec<String>>,
    reported: HashSet<String>,
}

/// What the comparison of one event's mappings found.
struct Group {
    /// Per mapping: Rackbeat records, Tripletex records, in step.
    counts: Vec<(usize, usize, usize)>,
    found: Vec<Found>,
    period: Option<PeriodTotals>,
}

fn compare_group(
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
        if let Some(date) = &r.date {
            let d = body
                .get(date)
                .and_then(Value::as_str)
                .and_then(|d| d.get(..10));
            if !d.is_some_and(|d| d >= options.since.as_str() && d < options.until.as_str()) {
                continue;
            }
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

/// Queues a sync for each difference a sync repairs, then syncs the queue as `rbtx run` would.
async fn fix<S: Store + 'static>(
    worker: &Worker<S>,
    plans: &[&Plan],
    found: Vec<Found>,
    tenant: &str,
) -> Result<Fixed, ReconcileError> {
    let view = worker.view();
    let direction = Direction::RackbeatToTripletex.as_str();
    let now = crate::dates::now_millis();
    let mut fixed = Fixed::default();
    let mut queued = HashSet::new();
    for f in found {
        let Some(plan) = plans.get(f.plan_index) else {
            continue;
        };
        let name = format!("{} {}", plan.entity, f.key);
        let updatable = plan.target.update.is_some();
        let queue = match &f.difference {
            Difference::Missing { reason: None, .. } => true,
            Difference::Missing { .. } if f.with_dependencies => true,
            Difference::Missing {
                reason: Some(r), ..
            } => {
                fixed.left.push(format!("{name}: {r}"));
                false
            }
            Difference::Unbound { key: Some(_), .. } => true,
            Difference::Unbound {
                key: None,
                tripletex_id,
                natural_key,
            } => {
                fixed.left.push(format!(
                    "Tripletex {} {tripletex_id} ({natural_key}): no Rackbeat record has it; rbtx deletes nothing",
                    plan.entity
                ));
                false
            }
            Difference::Gone { .. } if updatable => {
                worker
                    .store
                    .delete_binding(tenant, direction, &plan.entity, &f.key)
                    .await?;
                true
            }
            Difference::Gone { tripletex_id, .. } => {
                fixed.left.push(format!(
                    "{name}: its Tripletex record {tripletex_id} is not among the period's; a document is never sent twice, so look at it in Tripletex"
                ));
                false
            }
            Difference::Different { .. } => match f.baseline {
                Some(b) if updatable => {
                    worker.store.put_binding(b).await?;
                    true
                }
                _ => {
                    fixed
                        .left
                        .push(format!("{name}: its mapping has no update"));
                    false
                }
            },
            Difference::Total { .. } => {
                fixed.left.push(format!(
                    "{name}: a document is not changed once sent (its mapping has no update); correct it in Tripletex by hand, or with a credit note in Rackbeat"
                ));
                false
            }
            Difference::Duplicate { natural_key, .. } => {
                fixed.left.push(format!(
                    "{} {natural_key} is in Tripletex more than once; rbtx deletes nothing",
                    plan.entity
                ));
                false
            }
        };
        if !queue || !queued.insert(name.clone()) {
            continue;
        }
        // The event the record's list is polled under, as catch-up queues it.
        let lead = view.all_for_event(plan.on.first().map_or("", String::as_str));
        let lead = lead
            .iter()
            .find(|p| !p.source.list.is_empty())
            .unwrap_or(plan);
        let event = lead
            .on
            .iter()
            .find(|e| e.ends_with(".updated"))
            .or(lead.on.first())
            .cloned()
            .unwrap_or_default();
        worker
            .store
            .enqueue(NewEvent {
                tenant: tenant.into(),
                entity: lead.entity.clone(),
                key: f.key.clone(),
                event,
                payload: json!({ "reconcile": true }),
                received_at: now,
            })
            .await?;
        fixed.queued.push(name);
    }
    // The queue drained as `rbtx run` would; what is left for later (a retry) stays queued.
    while worker.run_once(crate::dates::now_millis()).await? > 0 {}
    let letters = worker.store.list_dead_letters().await?;
    fixed.failed = letters
        .iter()
        .filter(|d| d.event.tenant == tenant && d.last_failed_at >= now)
        .map(|d| format!("{} {}: {}", d.event.entity, d.event.key, d.reason))
        .collect();
    Ok(fixed)
}

/// A spinner on stderr while the lists are read, on a terminal only.
struct Spinner(Option<indicatif::ProgressBar>);

impl Spinner {
    fn new(entity: &str, enabled: bool) -> Spinner {
        use std::io::IsTerminal;
        Spinner((enabled && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{spinner} {prefix:<13} {msg}")
            {
                bar.set_style(style);
            }
            bar.set_prefix(entity.to_string());
            bar.set_message("reading…");
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        }))
    }
    fn say(&self, message: String) {
        if let Some(b) = &self.0 {
            b.set_message(message);
        }
    }
    fn done(self) {
        if let Some(b) = self.0 {
            b.finish_and_clear();
        }
    }
}
