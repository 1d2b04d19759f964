//! `rbtx reconcile`: both systems read in bulk and compared, record by record, with what each
//! mapping would send now. Nothing is written unless `--fix` asks; then each difference that a
//! sync can repair is queued, and the same worker as `rbtx run` syncs it.
//!
//! What is compared is the mapping's own business: the fields its body renders for an update
//! (so what Tripletex computes, and what a mapping leaves out or creates only, never differs),
//! or, for documents never changed once sent (`reconcile.total`), their totals to the øre.
//! Records are matched by binding, else by natural key. Reading is by lists, a page of 1,000 at
//! a time on both sides; bindings come from the store in one read.

mod compare;
mod fix;
mod report;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;

use super::tenant::Tenant;
use super::worker::Worker;
use crate::expr::Resolver;
use crate::plan::{Pack, Plan};
use crate::runtime::lookups::ref_key;
use crate::spec::Direction;
use crate::store::{Binding, Store};
use compare::{Found, Known, Shared, compare_group};

pub use report::{
    Difference, EntityReport, FieldDifference, Fixed, Options, PeriodTotals, ReconcileError,
    Report, Sum,
};

/// Reconciles every `rackbeat_to_tripletex` mapping with a `reconcile` block that `tenant` runs.
pub async fn run_on<S: Store + 'static>(
    store: Arc<S>,
    pack: Arc<Pack>,
    tenant: Tenant,
    options: &Options,
) -> Result<Report, ReconcileError> {
    // Unique among live workers: a lease names its holder, and `run` may share the store.
    let name = format!(
        "reconcile-{}-{}",
        std::process::id(),
        crate::dates::now_millis()
    );
    let worker = Worker::new(store.clone(), pack.clone(), tenant, name);
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
            let lookups = worker.lookups_for(plan).await.map_err(|f| {
                ReconcileError::Mapping(format!("{}: lookups: {}", plan.file.display(), f.reason()))
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
        report.fixed = Some(fix::fix(&worker, &plans, found, &tenant_id).await?);
    }
    Ok(report)
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
