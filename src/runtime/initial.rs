//! `rbtx sync initial`: the one-off pull of Tripletex records (customers, suppliers, products,
//! payment terms, employees) into Rackbeat through the `tripletex_to_rackbeat` mappings.
//!
//! - Records stream page by page, so memory stays flat however many there are. Each goes through
//!   the per-record sync ([`Syncer::sync_source`]): bound at once, looked up before it is
//!   created, not sent again when its body is unchanged. A second run therefore changes nothing.
//! - A checkpoint is written after each page; an interrupted sync resumes at the page it was on.
//!   A sync that gets to the end clears the checkpoints, so the next one reads everything again.
//! - Entities run in dependency order: a mapping that refers to another (`ref('payment_term', …)`)
//!   runs after it, and asking for one entity brings the ones it refers to along.
//! - A record that fails is filed in the dead-letter store (event `initial_sync`, the Tripletex
//!   record as payload) and the sync goes on; a later run that syncs it drops its dead letter.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use serde_json::Value;

use super::sync::{Failure, Synced, Syncer};
use super::tenant::Tenant;
use crate::connectors::ApiError;
use crate::plan::{Pack, Plan};
use crate::spec::Direction;
use crate::store::{NewEvent, Store, StoreError};

const DIRECTION: Direction = Direction::TripletexToRackbeat;

/// The event name of a record the initial sync could not write (the Tripletex record as read then
/// is its payload, to look at). The next `rbtx sync initial` retries it and drops the dead letter.
pub const INITIAL_SYNC_EVENT: &str = "initial_sync";

/// Failed records listed in the report; the rest are counted (and all are in the dead letters).
const LISTED_FAILURES: usize = 1000;

/// Why the initial sync could not go on (records that fail are in the report instead).
#[derive(Debug, thiserror::Error)]
pub enum InitialError {
    #[error("the pack has no tripletex_to_rackbeat mappings")]
    NoMappings,
    #[error("no tripletex_to_rackbeat mapping syncs `{entity}` (there are: {synced})")]
    NotSynced { entity: String, synced: String },
    #[error("the mappings refer to each other in a cycle: {0}")]
    Cycle(String),
    #[error("a dry run needs a worker made with `dry_run` set")]
    DryRunSyncer,
    #[error("migrating the store: {0}")]
    Migrate(StoreError),
    #[error("store: {0}")]
    Store(StoreError),
    #[error("starting real time's catch-up window: {0}")]
    CatchUp(Box<super::catchup::CatchUpError>),
    #[error("reading {entity} from Tripletex ({path}): {source}")]
    Read {
        entity: String,
        path: String,
        source: Box<ApiError>,
    },
    #[error("writing the dry run: {0}")]
    Output(std::io::Error),
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Entities to sync (empty: every one with a mapping). The ones they refer to come along.
    pub entities: Vec<String>,
    /// Print the requests that would be sent; send nothing, bind nothing, checkpoint nothing.
    pub dry_run: bool,
    /// Ignore the checkpoints of an interrupted sync and start over.
    pub restart: bool,
    /// Records written at once.
    pub concurrency: usize,
    /// Show progress on stderr (a bar on a terminal, a line per page otherwise).
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            entities: Vec::new(),
            dry_run: false,
            restart: false,
            concurrency: 8,
            progress: false,
        }
    }
}

/// What became of the records of one entity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub read: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub skipped: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Synced,
    /// Finished by the interrupted sync this one resumed.
    DoneEarlier,
    /// Resumed at this offset of its `source.list` request number `list`.
    Resumed {
        list: usize,
        from: usize,
    },
}

#[derive(Debug, Clone)]
pub struct EntityReport {
    pub entity: String,
    pub status: Status,
    pub counts: Counts,
}

#[derive(Debug, Clone)]
pub struct FailedRecord {
    pub entity: String,
    pub key: String,
    pub reason: String,
    /// Its dead letter (none in a dry run).
    pub dead_letter: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub dry_run: bool,
    pub entities: Vec<EntityReport>,
    pub failures: Vec<FailedRecord>,
}

impl Report {
    pub fn failed(&self) -> u64 {
        self.entities.iter().map(|e| e.counts.failed).sum()
    }

    /// The summary table, then the failures with their reasons.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let (created, updated) = if self.dry_run {
            ("would create", "would update")
        } else {
            ("created", "updated")
        };
        let _ = writeln!(
            out,
            "{:<14} {:>8} {:>12} {:>12} {:>10} {:>8} {:>7}",
            "entity", "read", created, updated, "unchanged", "skipped", "failed"
        );
        for e in &self.entities {
            let c = &e.counts;
            let note = match e.status {
                Status::Synced => String::new(),
                Status::DoneEarlier => "  (done before the interruption)".into(),
                Status::Resumed { list, from } => {
                    format!("  (resumed at list {} offset {from})", list + 1)
                }
            };
            let _ = writeln!(
                out,
                "{:<14} {:>8} {:>12} {:>12} {:>10} {:>8} {:>7}{note}",
                e.entity, c.read, c.created, c.updated, c.unchanged, c.skipped, c.failed
            );
        }
        if !self.failures.is_empty() {
            let _ = writeln!(out, "\nFailed records:");
            for f in &self.failures {
                let dl = f
                    .dead_letter
                    .map(|id| format!(" [dead letter {id}]"))
                    .unwrap_or_default();
                let _ = writeln!(out, "  {} {}{dl}: {}", f.entity, f.key, f.reason);
            }
            let unlisted = self.failed().saturating_sub(self.failures.len() as u64);
            if unlisted > 0 {
                let _ = writeln!(out, "  … and {unlisted} more (`rbtx dlq list`)");
            }
            if self.failures.iter().any(|f| f.dead_letter.is_some()) {
                let _ = writeln!(
                    out,
                    "\nFix the data or the mapping, then run the sync again: it retries exactly these, read afresh."
                );
            }
        }
        out
    }
}

/// The mappings to run, in dependency order: `wanted` (every tripletex_to_rackbeat mapping when
/// empty) plus what they refer to, each after the entities it refers to.
pub fn order<'a>(pack: &'a Pack, wanted: &[String]) -> Result<Vec<&'a Plan>, InitialError> {
    let plans: HashMap<&str, &Plan> = pack
        .plans
        .iter()
        .filter(|p| p.direction == DIRECTION)
        .map(|p| (p.entity.as_str(), p))
        .collect();
    let mut names: Vec<&str> = plans.keys().copied().collect();
    names.sort_unstable();
    if plans.is_empty() {
        return Err(InitialError::NoMappings);
    }
    let mut roots = Vec::new();
    for w in wanted {
        match plans.get_key_value(w.as_str()) {
            Some((name, _)) => roots.push(*name),
            None => {
                return Err(InitialError::NotSynced {
                    entity: w.clone(),
                    synced: names.join(", "),
                });
            }
        }
    }
    if roots.is_empty() {
        roots = names.clone();
    }
    // Depth-first, dependencies first; roots in the order given (or by name), so the order is
    // stable from run to run.
    fn visit<'a>(
        name: &'a str,
        plans: &HashMap<&'a str, &'a Plan>,
        done: &mut Vec<&'a str>,
        path: &mut Vec<&'a str>,
    ) -> Result<(), InitialError> {
        if done.contains(&name) {
            return Ok(());
        }
        if path.contains(&name) {
            path.push(name);
            return Err(InitialError::Cycle(path.join(" → ")));
        }
        path.push(name);
        if let Some(plan) = plans.get(name) {
            for dep in &plan.depends_on {
                // A reference to an entity nothing syncs in this direction is the mapping
                // checker's business; here it just has nothing to run first.
                if let Some((dep_name, _)) = plans.get_key_value(dep.as_str()) {
                    visit(dep_name, plans, done, path)?;
                }
            }
        }
        path.pop();
        done.push(name);
        Ok(())
    }
    let mut done = Vec::new();
    for r in roots {
        visit(r, &plans, &mut done, &mut Vec::new())?;
    }
    Ok(done
        .into_iter()
        .filter_map(|n| plans.get(n).copied())
        .collect())
}

pub fn checkpoint_name(entity: &str) -> String {
    format!("initial_sync {entity}")
}

/// Where a running (or interrupted) initial sync stands for one entity, for people: `None` when
/// none is under way for it.
pub fn progress(checkpoint: Option<&str>) -> Option<String> {
    match Position::parse(checkpoint) {
        Position::Start => None,
        Position::Done => Some("done".into()),
        Position::At { list, from } => Some(format!("{from} records read (list {})", list + 1)),
    }
}

/// Where an entity stands in an interrupted sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    Start,
    At { list: usize, from: usize },
    Done,
}

impl Position {
    fn parse(text: Option<&str>) -> Position {
        match text.map(str::trim) {
            Some("done") => Position::Done,
            Some(t) => t
                .split_once(':')
                .and_then(|(l, f)| Some((l.parse().ok()?, f.parse().ok()?)))
                .map(|(list, from)| Position::At { list, from })
                .unwrap_or(Position::Start),
            None => Position::Start,
        }
    }

    fn text(self) -> String {
        match self {
            Position::Start => String::new(),
            Position::At { list, from } => format!("{list}:{from}"),
            Position::Done => "done".into(),
        }
    }
}

/// Runs the initial sync on `store` (migrated first) with a syncer of its own: what `rbtx
/// sync initial` does.
pub async fn run_on<S: Store>(
    store: S,
    pack: Pack,
    tenant: Tenant,
    options: &Options,
    out: &mut dyn Write,
) -> Result<Report, InitialError> {
    store.migrate().await.map_err(InitialError::Migrate)?;
    let mut syncer = Syncer::new(
        Arc::new(store),
        Arc::new(pack),
        tenant,
        format!("sync-initial-{}", std::process::id()),
    );
    syncer.dry_run = options.dry_run;
    run(&syncer, options, out).await
}

/// Runs the initial sync with `syncer`'s tenant, store and pack. Dry-run requests are written to
/// `out` as JSON lines. Fails only when it cannot go on (the store, or reading Tripletex);
/// records that fail are in the report.
pub async fn run<S: Store>(
    syncer: &Syncer<S>,
    options: &Options,
    out: &mut dyn Write,
) -> Result<Report, InitialError> {
    let plans = order(&syncer.pack, &options.entities)?;
    let store = syncer.store.as_ref();
    let tenant = syncer.tenant.id.as_str();
    let dry_run = syncer.dry_run || options.dry_run;
    if dry_run != syncer.dry_run {
        return Err(InitialError::DryRunSyncer);
    }

    let mut positions = Vec::with_capacity(plans.len());
    for plan in &plans {
        let saved = if options.restart || dry_run {
            None
        } else {
            store
                .get_checkpoint(tenant, &checkpoint_name(&plan.entity))
                .await
                .map_err(InitialError::Store)?
        };
        positions.push(Position::parse(saved.as_deref()));
    }
    if positions.iter().any(|p| *p != Position::Start) {
        tracing::info!(
            tenant,
            "Resuming the interrupted initial sync at its checkpoints."
        );
    }

    let mut report = Report {
        dry_run,
        ..Report::default()
    };
    for (plan, position) in plans.iter().zip(positions) {
        let status = match position {
            Position::Start => Status::Synced,
            Position::Done => Status::DoneEarlier,
            Position::At { list, from } => Status::Resumed { list, from },
        };
        let mut entity = EntityReport {
            entity: plan.entity.clone(),
            status,
            counts: Counts::default(),
        };
        if position != Position::Done {
            let synced = sync_entity(
                syncer,
                plan,
                position,
                options,
                out,
                &mut entity,
                &mut report.failures,
            )
            .await;
            syncer.forget_target_keys(plan);
            synced?;
        }
        report.entities.push(entity);
    }
    // Everything got to the end: the next sync starts from the beginning, and real time's
    // catch-up from here.
    if !dry_run {
        super::catchup::start_window(
            store,
            &syncer.tenant.rackbeat,
            &syncer.pack,
            tenant,
            syncer.tenant.invoice_mode,
        )
        .await
        .map_err(|e| InitialError::CatchUp(Box::new(e)))?;
        for plan in &plans {
            store
                .set_checkpoint(
                    tenant,
                    &checkpoint_name(&plan.entity),
                    &Position::Start.text(),
                )
                .await
                .map_err(InitialError::Store)?;
        }
    }
    Ok(report)
}

async fn sync_entity<S: Store>(
    syncer: &Syncer<S>,
    plan: &Plan,
    position: Position,
    options: &Options,
    out: &mut dyn Write,
    report: &mut EntityReport,
    failures: &mut Vec<FailedRecord>,
) -> Result<(), InitialError> {
    let store = syncer.store.as_ref();
    let tenant = syncer.tenant.id.as_str();
    let entity = plan.entity.as_str();
    let dry_run = syncer.dry_run;
    let mut progress = Progress::new(entity, options.progress);

    // Records that failed in an earlier sync: their dead letters go once they are synced.
    let mut dead: HashSet<String> = HashSet::new();
    if !dry_run {
        for d in store
            .list_dead_letters()
            .await
            .map_err(InitialError::Store)?
        {
            if d.event.tenant == tenant
                && d.event.entity == entity
                && d.event.event == INITIAL_SYNC_EVENT
            {
                dead.insert(d.event.key);
            }
        }
    }

    // The records already in the target, by key: a new one is then written without a find.
    if let Err(e) = syncer.list_target_keys(plan).await {
        tracing::warn!(tenant, entity, error = %e, "Could not list the records already in the target; finding each before writing it.");
    }
    let (first_list, mut from) = match position {
        Position::At { list, from } => (list, from),
        _ => (0, 0),
    };
    for (index, list) in plan.source.list.iter().enumerate().skip(first_list) {
        if index != first_list {
            from = 0;
        }
        let query: Vec<(&str, String)> = list
            .query
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        loop {
            let page = syncer
                .tenant
                .tripletex
                .page(&list.path, &query, from)
                .await
                .map_err(|source| InitialError::Read {
                    entity: entity.to_string(),
                    path: list.path.clone(),
                    source: Box::new(source),
                })?;
            report.counts.read += page.values.len() as u64;

            // One write per key and page: records sharing a key (customers sharing a payment
            // term) must not race to create it. Later pages find it bound.
            let mut seen = BTreeSet::new();
            let mut records = Vec::with_capacity(page.values.len());
            for record in page.values {
                match plan.key_of(&record) {
                    Ok(key) if !seen.insert(key.clone()) => report.counts.unchanged += 1,
                    Ok(key) => records.push((key, record, None)),
                    Err(e) => records.push((fallback_key(&record), record, Some(e))),
                }
            }
            let results: Vec<(String, Value, Result<Synced, Failure>)> = stream::iter(records)
                .map(|(key, record, keyless)| async move {
                    if let Some(e) = keyless {
                        let failure = Failure::Permanent {
                            reason: e.to_string(),
                            mapping: Some(plan.file.display().to_string()),
                            field: Some("source.key".into()),
                            detail: None,
                        };
                        return (key, record, Err(failure));
                    }
                    let source = Arc::new(record);
                    let result = syncer.sync_source(plan, source.clone(), 0).await;
                    (
                        key,
                        Arc::try_unwrap(source).unwrap_or_else(|s| (*s).clone()),
                        result,
                    )
                })
                .buffer_unordered(options.concurrency.max(1))
                .collect()
                .await;

            for (key, record, result) in results {
                let c = &mut report.counts;
                match result {
                    Ok(Synced::Written { created: true, .. }) => c.created += 1,
                    Ok(Synced::Written { created: false, .. }) => c.updated += 1,
                    Ok(Synced::WouldWrite { request, created }) => {
                        if created {
                            c.created += 1;
                        } else {
                            c.updated += 1;
                        }
                        let line =
                            serde_json::json!({ "entity": entity, "key": key, "request": request });
                        writeln!(out, "{line}").map_err(InitialError::Output)?;
                    }
                    Ok(Synced::Unchanged | Synced::Kept) => c.unchanged += 1,
                    Ok(Synced::Skipped { .. } | Synced::Gone | Synced::Ignored) => c.skipped += 1,
                    Err(failure) => {
                        c.failed += 1;
                        let (reason, mapping, field, detail) = match failure {
                            Failure::Retry { reason } => {
                                (reason, Some(plan.file.display().to_string()), None, None)
                            }
                            Failure::Permanent {
                                reason,
                                mapping,
                                field,
                                detail,
                            } => (reason, mapping, field, detail),
                            Failure::Refused {
                                reason, mapping, ..
                            } => (reason, mapping, None, None),
                        };
                        tracing::warn!(tenant, entity, key = %key, error = %reason, "The record could not be written to Rackbeat.");
                        let dead_letter = if dry_run {
                            None
                        } else {
                            let event = NewEvent {
                                tenant: tenant.to_string(),
                                entity: entity.to_string(),
                                key: key.clone(),
                                event: INITIAL_SYNC_EVENT.to_string(),
                                payload: record,
                                received_at: crate::dates::now_millis(),
                            };
                            dead.remove(&key);
                            Some(
                                store
                                    .put_dead_letter(
                                        event,
                                        &reason,
                                        mapping.as_deref(),
                                        field.as_deref(),
                                        detail.as_deref(),
                                    )
                                    .await
                                    .map_err(InitialError::Store)?,
                            )
                        };
                        if failures.len() >= LISTED_FAILURES {
                            continue;
                        }
                        failures.push(FailedRecord {
                            entity: entity.to_string(),
                            key,
                            reason,
                            dead_letter,
                        });
                        continue;
                    }
                }
                if dead.remove(&key) {
                    store
                        .discard_dead_letters(tenant, entity, &key, INITIAL_SYNC_EVENT)
                        .await
                        .map_err(InitialError::Store)?;
                }
            }

            progress.page(&report.counts);
            match page.next {
                Some(next) => {
                    from = next;
                    checkpoint(syncer, entity, Position::At { list: index, from }).await?;
                }
                None => break,
            }
        }
        if index + 1 < plan.source.list.len() {
            checkpoint(
                syncer,
                entity,
                Position::At {
                    list: index + 1,
                    from: 0,
                },
            )
            .await?;
        }
    }
    checkpoint(syncer, entity, Position::Done).await?;
    progress.finish(&report.counts);
    Ok(())
}

async fn checkpoint<S: Store>(
    syncer: &Syncer<S>,
    entity: &str,
    at: Position,
) -> Result<(), InitialError> {
    if syncer.dry_run {
        return Ok(());
    }
    syncer
        .store
        .set_checkpoint(&syncer.tenant.id, &checkpoint_name(entity), &at.text())
        .await
        .map_err(InitialError::Store)
}

/// A key for a record whose mapping cannot compute one, so its failure can still be filed.
fn fallback_key(record: &Value) -> String {
    match record.get("id") {
        Some(id) if !id.is_null() => format!("tripletex-id-{id}"),
        _ => "(no key)".into(),
    }
}

/// Progress on stderr: a bar on a terminal, otherwise a line every few seconds.
struct Progress {
    entity: String,
    bar: Option<indicatif::ProgressBar>,
    lines: bool,
    started: Instant,
    last_line: Instant,
}

impl Progress {
    fn new(entity: &str, enabled: bool) -> Self {
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} {prefix:<13} {pos:>8} read  {per_sec:>12}  {msg}",
            ) {
                bar.set_style(style);
            }
            bar.set_prefix(entity.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            entity: entity.to_string(),
            lines: enabled && bar.is_none(),
            bar,
            started: Instant::now(),
            last_line: Instant::now(),
        }
    }

    fn summary(c: &Counts) -> String {
        format!(
            "{} created, {} updated, {} unchanged, {} skipped, {} failed",
            c.created, c.updated, c.unchanged, c.skipped, c.failed
        )
    }

    fn page(&mut self, c: &Counts) {
        if let Some(bar) = &self.bar {
            bar.set_position(c.read);
            bar.set_message(Self::summary(c));
        } else if self.lines && self.last_line.elapsed() >= Duration::from_secs(2) {
            self.last_line = Instant::now();
            eprintln!(
                "{}: {} read so far ({})",
                self.entity,
                c.read,
                Self::summary(c)
            );
        }
    }

    fn finish(&mut self, c: &Counts) {
        let took = self.started.elapsed().as_secs_f64();
        if let Some(bar) = &self.bar {
            bar.set_position(c.read);
            bar.finish_with_message(format!("{} in {took:.1} s", Self::summary(c)));
        } else if self.lines {
            eprintln!(
                "{}: {} read in {took:.1} s ({})",
                self.entity,
                c.read,
                Self::summary(c)
            );
        }
    }
}
