//! The worker: takes queued Rackbeat webhook events of one tenant and applies the matching
//! mapping to Tripletex with exactly-once effects.
//!
//! Tripletex has no idempotency keys, so "exactly once" rests on three things:
//! - a **binding** (Rackbeat key → Tripletex id, version, body hash) is written right after every
//!   successful write, and an unchanged body is never sent again;
//! - with no binding, the mapping's `find` request looks for the record by its natural key
//!   **before** creating it, so a create whose answer was lost (timeout, dropped connection, 5xx)
//!   is found on the retry instead of being made twice;
//! - the store's lease keeps one key with one worker at a time.
//!
//! References (`ref('customer', …)`) are resolved from the bindings; a record that is not bound
//! yet is synced first, recursively, so a customer exists before the invoice that names it.
//!
//! The same steps write Tripletex records into Rackbeat for the initial sync
//! ([`Worker::sync_source`]): the mapping's direction decides which API is the target.
//!
//! A dependency synced inline holds its own key's lease meanwhile (`Store::claim_key`); when
//! another worker holds it, the dependent record is retried later.
//!
//! Not handled here: concurrency within one `run_once` (workers run side by side instead).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::connectors::rackbeat::Rackbeat;
use crate::connectors::tripletex::Tripletex;
use crate::connectors::{Api, ApiError};
use crate::engine::{Body, Outcome, RecordError, Request};
use crate::expr::{Resolver, key_text_json};
use crate::plan::{ApiLookup, Pack, Plan};
use crate::spec::{Connection, Direction, WriteMethod};
use crate::store::{Binding, Event, NewEvent, Store, StoreError};

/// The direction webhooks drive.
const DIRECTION: Direction = Direction::RackbeatToTripletex;

/// The event name of a record the initial sync could not write (the Tripletex record as read then
/// is its payload, to look at). The next `rbtx sync initial` retries it and drops the dead letter.
pub const INITIAL_SYNC_EVENT: &str = "initial_sync";

/// The event that leases a record synced inline because another refers to it. Left in the queue
/// when that sync fails, it syncs the record like any event of it.
pub const DEPENDENCY_EVENT: &str = "dependency";

/// How deep dependencies are synced inline (invoice → customer → …) before giving up.
const MAX_DEPTH: usize = 5;

/// Render passes per record: each pass binds every reference the previous one lacked, so more
/// than a few means references keep appearing, which no shipped mapping does.
const MAX_RENDERS: usize = 4;

/// One company pair.
#[derive(Debug)]
pub struct Tenant {
    pub id: String,
    pub rackbeat: Rackbeat,
    pub tripletex: Tripletex,
    /// `booked` or `as_order`: which of the invoice mappings applies.
    pub invoice_mode: String,
}

/// Applies queued events of one tenant.
pub struct Worker<S: Store> {
    pub store: Arc<S>,
    pub pack: Arc<Pack>,
    pub tenant: Tenant,
    /// Unique among live workers: leases are held under this name.
    pub name: String,
    pub lease_ms: i64,
    /// Failed attempts after which a retryable failure is dead-lettered.
    pub max_attempts: u32,
    /// Events claimed per `run_once`.
    pub batch: usize,
    /// First retry delay; doubled per attempt up to `retry_max_ms`, with jitter.
    pub retry_base_ms: i64,
    pub retry_max_ms: i64,
    /// Where handled events are counted, when the process exposes metrics.
    pub metrics: Option<Arc<super::metrics::Metrics>>,
    /// Send nothing and bind nothing: report what would be written instead.
    pub dry_run: bool,
    /// Set when the process stops: events claimed but not started are released.
    pub stop: Arc<std::sync::atomic::AtomicBool>,
    /// The `now_ms` of the batch being worked on, so inline leases use the caller's clock.
    batch_now: std::sync::atomic::AtomicI64,
    /// API lookup tables by definition, loaded once per worker.
    lookups: Mutex<HashMap<String, Arc<HashMap<String, Value>>>>,
    /// The (entity, key)s synced inline during this batch: their events later in the batch were
    /// superseded by it, and are skipped.
    synced_inline: std::sync::Mutex<std::collections::HashSet<(String, String)>>,
}

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    Completed,
    Retried,
    DeadLettered,
    /// The lease was lost meanwhile; the new owner decides.
    LeaseLost,
}

/// How applying one record ended, when it did not fail.
#[derive(Debug, Clone, PartialEq)]
pub enum Synced {
    /// A request was sent; the record is bound to `target_id`.
    Written { target_id: Value, created: bool },
    /// A dry run: this request would have been sent.
    WouldWrite { request: Request, created: bool },
    /// The body is the one last sent: nothing was sent.
    Unchanged,
    /// The record exists in Tripletex and the mapping has no `update`.
    Kept,
    /// The mapping's `when` is false.
    Skipped { reason: String },
    /// The record is no longer in Rackbeat.
    Gone,
    /// No mapping handles the event, or it is a delete (not synced).
    Ignored,
}

/// Why applying a record failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Throttling, server trouble, a lost answer, a revision conflict: try again later.
    Retry { reason: String },
    /// Needs a fix in the data or the mapping, then a replay.
    Permanent {
        reason: String,
        mapping: Option<String>,
        field: Option<String>,
    },
}

impl Failure {
    fn permanent(plan: &Plan, reason: impl Into<String>, field: Option<String>) -> Self {
        Failure::Permanent {
            reason: reason.into(),
            mapping: Some(plan.file.display().to_string()),
            field,
        }
    }

    fn api(plan: &Plan, e: &ApiError) -> Self {
        if e.is_retryable() || e.is_ambiguous() {
            return Failure::Retry {
                reason: e.to_string(),
            };
        }
        let field = match e {
            ApiError::Status { fields, .. } => fields
                .iter()
                .find(|f| !f.field.is_empty())
                .map(|f| f.field.clone()),
            _ => None,
        };
        let reason = match crate::connectors::tripletex::fix_for(e) {
            Some(fix) => format!("{e}. To fix: {fix}"),
            None => e.to_string(),
        };
        Failure::permanent(plan, reason, field)
    }

    fn record(plan: &Plan, e: RecordError) -> Self {
        match e {
            RecordError::Field { field, message } => {
                Failure::permanent(plan, format!("{field}: {message}"), Some(field))
            }
            missing @ RecordError::Missing(_) => {
                Failure::permanent(plan, missing.to_string(), None)
            }
        }
    }

    fn store(e: StoreError) -> Self {
        Failure::Retry {
            reason: format!("store: {e}"),
        }
    }
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl<S: Store> Worker<S> {
    pub fn new(store: Arc<S>, pack: Arc<Pack>, tenant: Tenant, name: impl Into<String>) -> Self {
        Worker {
            store,
            pack,
            tenant,
            name: name.into(),
            lease_ms: 60_000,
            max_attempts: 10,
            batch: 16,
            retry_base_ms: 1_000,
            retry_max_ms: 10 * 60_000,
            metrics: None,
            dry_run: false,
            stop: Arc::default(),
            batch_now: std::sync::atomic::AtomicI64::new(0),
            lookups: Mutex::new(HashMap::new()),
            synced_inline: std::sync::Mutex::default(),
        }
    }

    /// Applies `pack` from the next event on (a reload); lookup tables are loaded afresh.
    pub fn set_pack(&mut self, pack: Arc<Pack>) {
        self.pack = pack;
        self.lookups = Mutex::new(HashMap::new());
    }

    /// Claims up to `batch` events of the tenant, applies each and records the outcome.
    /// Returns how many events were handled.
    pub async fn run_once(&self, now_ms: i64) -> Result<usize, StoreError> {
        self.batch_now
            .store(now_ms, std::sync::atomic::Ordering::Relaxed);
        let events = self
            .store
            .claim(
                Some(&self.tenant.id),
                &self.name,
                self.batch,
                now_ms,
                self.lease_ms,
            )
            .await?;
        if let Ok(mut inline) = self.synced_inline.lock() {
            inline.clear();
        }
        for (i, event) in events.iter().enumerate() {
            let superseded = self
                .synced_inline
                .lock()
                .is_ok_and(|inline| inline.contains(&(event.entity.clone(), event.key.clone())));
            if superseded {
                tracing::debug!(tenant = %self.tenant.id, entity = %event.entity, key = %event.key, "Skipped an event whose record was synced inline earlier in the batch.");
                continue;
            }
            if self.stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Stopping: the rest go back to the queue now rather than when their lease ends.
                for e in &events[i..] {
                    self.store.release(e.id, &self.name).await?;
                }
                return Ok(i);
            }
            let handled = self.handle(event, now_ms).await?;
            if let Some(m) = &self.metrics {
                let outcome = match handled {
                    Handled::Completed => "completed",
                    Handled::Retried => "retried",
                    Handled::DeadLettered => "dead_lettered",
                    Handled::LeaseLost => "lease_lost",
                };
                let now = crate::dates::now_millis();
                m.event(outcome, (now - event.received_at) as f64 / 1000.0);
            }
        }
        Ok(events.len())
    }

    /// Applies one claimed event and completes, retries or dead-letters it.
    pub async fn handle(&self, event: &Event, now_ms: i64) -> Result<Handled, StoreError> {
        let tenant = self.tenant.id.as_str();
        let (entity, key) = (event.entity.as_str(), event.key.as_str());
        let result = self.apply_event(event).await;
        let handled = match result {
            Ok(synced) => {
                tracing::debug!(tenant, entity, key, event = %event.event, outcome = ?synced, "Applied the event.");
                self.store
                    .complete(event.id, &self.name)
                    .await?
                    .then_some(Handled::Completed)
            }
            Err(Failure::Retry { reason }) if event.attempts + 1 < self.max_attempts => {
                let delay = self.backoff_ms(event);
                tracing::warn!(tenant, entity, key, error = %reason, attempts = event.attempts + 1, retry_in_ms = delay, "Applying the event failed; it will be retried.");
                self.store
                    .retry(event.id, &self.name, &reason, now_ms + delay)
                    .await?
                    .then_some(Handled::Retried)
            }
            Err(Failure::Retry { reason }) => {
                let reason = format!("gave up after {} attempts: {reason}", event.attempts + 1);
                tracing::error!(tenant, entity, key, error = %reason, "Applying the event kept failing; it is dead-lettered.");
                self.store
                    .dead_letter(event.id, &self.name, &reason, None, None, now_ms)
                    .await?
                    .map(|_| Handled::DeadLettered)
            }
            Err(Failure::Permanent {
                reason,
                mapping,
                field,
            }) => {
                tracing::error!(tenant, entity, key, error = %reason, mapping = mapping.as_deref(), field = field.as_deref(), "The event cannot be applied until the data or the mapping is fixed; it is dead-lettered.");
                self.store
                    .dead_letter(
                        event.id,
                        &self.name,
                        &reason,
                        mapping.as_deref(),
                        field.as_deref(),
                        now_ms,
                    )
                    .await?
                    .map(|_| Handled::DeadLettered)
            }
        };
        Ok(handled.unwrap_or_else(|| {
            tracing::warn!(
                tenant,
                entity,
                key,
                "The lease on the event was lost; its new owner decides its outcome."
            );
            Handled::LeaseLost
        }))
    }

    /// Exponential delay with jitter. The jitter is derived from the event, not drawn, so retries
    /// of many events spread out while one event's schedule stays reproducible.
    fn backoff_ms(&self, event: &Event) -> i64 {
        let base = self.retry_base_ms.max(1);
        let exp = base.saturating_mul(1_i64 << event.attempts.min(30));
        let delay = exp.min(self.retry_max_ms.max(base));
        let half = delay / 2;
        let mix = splitmix(event.id as u64 ^ (u64::from(event.attempts) << 40));
        half + (mix % (half as u64 + 1)) as i64
    }

    /// Applies one event: picks the mapping and syncs the record it names.
    pub async fn apply_event(&self, event: &Event) -> Result<Synced, Failure> {
        let tenant = self.tenant.id.as_str();
        let (entity, key) = (event.entity.as_str(), event.key.as_str());
        if event.event.ends_with(".deleted") {
            // Deletes are not synced; a product converted to a lot must never delete anything.
            let converted = event.payload.get("converted_to_lot") == Some(&Value::Bool(true));
            tracing::info!(
                tenant,
                entity,
                key,
                event = %event.event,
                converted_to_lot = converted,
                "Deletes are not synced; nothing was changed in Tripletex."
            );
            return Ok(Synced::Ignored);
        }
        if event.event == DEPENDENCY_EVENT {
            let Some(plan) = self.plan_for_entity(DIRECTION, entity) else {
                return Ok(Synced::Ignored);
            };
            return self.sync(plan, key, 0).await;
        }
        if event.event == INITIAL_SYNC_EVENT {
            // Written by `rbtx sync initial`, which retries these itself with the record read
            // afresh; replaying the stored copy could overwrite newer data in Rackbeat.
            return Err(Failure::Permanent {
                reason: format!(
                    "a record the initial sync could not write is retried by running `rbtx sync initial --entities {entity}` again, not by a replay"
                ),
                mapping: None,
                field: None,
            });
        }
        let Some(plan) = self.plan_for_event(&event.event) else {
            // The intake accepts only events the pack handles, so the pack changed since this one
            // was queued (a reload, a mapping removed): retried, and dead-lettered if it stays so,
            // rather than dropped.
            return Err(Failure::Retry {
                reason: format!(
                    "no mapping handles `{}` for invoice mode `{}` in the loaded pack",
                    event.event, self.tenant.invoice_mode
                ),
            });
        };
        // A renumbered record keeps its Tripletex record: the binding moves to the new key, and
        // the update below carries the new number.
        let text = |k: &str| match event.payload.get(k) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        if let (Some(old), Some(new)) = (text("old_key"), text("new_key"))
            && old != new
        {
            let moved = self
                .store
                .move_binding(tenant, DIRECTION.as_str(), &plan.entity, &old, &new)
                .await
                .map_err(Failure::store)?;
            tracing::info!(tenant, entity, old_key = %old, new_key = %new, moved, "The record was renumbered in Rackbeat.");
        }
        self.sync(plan, key, 0).await
    }

    fn mode_fits(&self, plan: &Plan) -> bool {
        plan.mode
            .as_deref()
            .is_none_or(|m| m == self.tenant.invoice_mode)
    }

    fn plan_for_event(&self, event: &str) -> Option<&Plan> {
        self.pack.plans.iter().find(|p| {
            p.direction == DIRECTION && self.mode_fits(p) && p.on.iter().any(|e| e == event)
        })
    }

    pub fn plan_for_entity(&self, direction: Direction, entity: &str) -> Option<&Plan> {
        self.pack
            .plans
            .iter()
            .find(|p| p.direction == direction && self.mode_fits(p) && p.entity == entity)
    }

    /// The API a plan writes to.
    fn target_api(&self, plan: &Plan) -> Api<'_> {
        match plan.direction.target() {
            Connection::Rackbeat => Api::Rackbeat(&self.tenant.rackbeat),
            Connection::Tripletex => Api::Tripletex(&self.tenant.tripletex),
        }
    }

    /// Reads the record `key` from Rackbeat and makes Tripletex match it. Boxed because it
    /// recurses into dependencies.
    fn sync<'a>(
        &'a self,
        plan: &'a Plan,
        key: &'a str,
        depth: usize,
    ) -> Boxed<'a, Result<Synced, Failure>> {
        Box::pin(async move {
            let tenant = self.tenant.id.as_str();
            let entity = plan.entity.as_str();
            let Some(path) = plan
                .source_path(key)
                .map_err(|e| Failure::record(plan, e))?
            else {
                return Err(Failure::permanent(
                    plan,
                    "the mapping has no `source.get`, so the record cannot be read",
                    Some("source.get".into()),
                ));
            };
            let response = self
                .tenant
                .rackbeat
                .get(&path, &[])
                .await
                .map_err(|e| Failure::api(plan, &e))?;
            let Some(source) = response.and_then(|r| plan.select_owned(r)) else {
                tracing::info!(
                    tenant,
                    entity,
                    key,
                    "The record is no longer in Rackbeat; nothing to sync."
                );
                return Ok(Synced::Gone);
            };
            self.sync_source(plan, Arc::new(source), depth).await
        })
    }

    /// Makes the target match one source record already read: renders it (syncing what it
    /// refers to first), skips it when its body is the one last sent, finds it in the target when
    /// it is not bound, then creates or updates it and binds it.
    pub fn sync_source<'a>(
        &'a self,
        plan: &'a Plan,
        source: Arc<Value>,
        depth: usize,
    ) -> Boxed<'a, Result<Synced, Failure>> {
        Box::pin(async move {
            let tenant = self.tenant.id.as_str();
            let entity = plan.entity.as_str();
            let direction = plan.direction.as_str();
            let api = self.target_api(plan);
            let lookups = self.lookups_for(plan).await?;

            // Render until every reference is bound, syncing the missing ones first.
            let mut refs: HashMap<String, Value> = HashMap::new();
            let mut rendered = None;
            for _ in 0..MAX_RENDERS {
                let resolver = Arc::new(MapResolver {
                    refs: refs.clone(),
                    lookups: lookups.clone(),
                });
                match plan.apply_shared(&source, None, resolver.clone()) {
                    Ok(applied) => {
                        rendered = Some((applied, resolver));
                        break;
                    }
                    Err(RecordError::Missing(deps)) => {
                        let mut unresolved = Vec::new();
                        for (dep_entity, dep_key) in deps {
                            match self
                                .bound_or_synced(plan.direction, &dep_entity, &dep_key, depth)
                                .await?
                            {
                                Some(id) => {
                                    refs.insert(ref_key(&dep_entity, &dep_key), id);
                                }
                                None => unresolved.push(format!("{dep_entity} {dep_key}")),
                            }
                        }
                        if !unresolved.is_empty() {
                            return Err(Failure::permanent(
                                plan,
                                format!(
                                    "{} could not be synced first (not in {}, or skipped by its mapping)",
                                    unresolved.join(", "),
                                    plan.direction.source().name()
                                ),
                                None,
                            ));
                        }
                    }
                    Err(e) => return Err(Failure::record(plan, e)),
                }
            }
            let Some((applied, resolver)) = rendered else {
                return Err(Failure::permanent(
                    plan,
                    "references kept appearing after their records were synced",
                    None,
                ));
            };
            let key = applied.key.as_str();
            let body = match applied.outcome {
                Outcome::Skip { reason } => {
                    tracing::info!(tenant, entity, key, reason = %reason, "The mapping skips this record.");
                    return Ok(Synced::Skipped { reason });
                }
                Outcome::Write(Request { body: Some(b), .. }) | Outcome::Keep { body: b } => b,
                Outcome::Write(Request { body: None, .. }) => Body::from(&Value::Null),
            };
            let hash = body_hash(&body);
            let binding = self
                .store
                .get_binding(tenant, direction, entity, key)
                .await
                .map_err(Failure::store)?;

            if let Some(b) = &binding {
                if b.body_hash.as_deref() == Some(hash.as_str()) {
                    tracing::debug!(tenant, entity, key, target_id = %b.target_id, "The record is unchanged since it was last sent; nothing to send.");
                    return Ok(Synced::Unchanged);
                }
                if plan.target.update.is_none() {
                    tracing::info!(tenant, entity, key, target_id = %b.target_id, target = api.name(), "The record is already in the target and its mapping has no update; it is kept as it is.");
                    return Ok(Synced::Kept);
                }
                if let Some(current) = self.current_target(plan, &source, b, &resolver).await? {
                    return self
                        .write(plan, &source, Some(current), key, &hash, &resolver)
                        .await;
                }
                tracing::warn!(tenant, entity, key, target_id = %b.target_id, target = api.name(), "The bound record is gone from the target; looking it up by its natural key.");
            }

            // No usable binding: look for the record before creating it, so a create whose
            // answer was lost is found rather than repeated.
            let body = body.value();
            let find = plan
                .find_request(&source, &body, resolver.clone())
                .map_err(|e| Failure::record(plan, e))?;
            let items = api
                .find(&find.path, &query_of(&find))
                .await
                .map_err(|e| Failure::api(plan, &e))?;
            let found = plan
                .find_match(&items, &source, &body, resolver.clone())
                .map_err(|e| Failure::record(plan, e))?
                .cloned();
            if let Some(t) = &found {
                tracing::info!(tenant, entity, key, target_id = %t.get(&plan.target.id).cloned().unwrap_or_default(), target = api.name(), "Found the record in the target by its natural key; binding to it.");
            }
            self.write(plan, &source, found, key, &hash, &resolver)
                .await
        })
    }

    /// The current target record a binding points at (with its version and sub-record ids),
    /// read through the path the update would write to; `None` when it is gone.
    async fn current_target(
        &self,
        plan: &Plan,
        source: &Arc<Value>,
        binding: &Binding,
        resolver: &Arc<MapResolver>,
    ) -> Result<Option<Value>, Failure> {
        let mut minimal = json!({ "version": binding.version });
        minimal[plan.target.id.as_str()] = binding.target_id.clone();
        let minimal = Arc::new(minimal);
        let applied = plan
            .apply_shared(source, Some(&minimal), resolver.clone())
            .map_err(|e| Failure::record(plan, e))?;
        let Outcome::Write(req) = applied.outcome else {
            return Ok(Some((*minimal).clone()));
        };
        self.target_api(plan)
            .get(&req.path)
            .await
            .map_err(|e| Failure::api(plan, &e))
    }

    /// Renders against `target` (or none), sends the write if there is one, and binds.
    async fn write(
        &self,
        plan: &Plan,
        source: &Arc<Value>,
        target: Option<Value>,
        key: &str,
        hash: &str,
        resolver: &Arc<MapResolver>,
    ) -> Result<Synced, Failure> {
        let tenant = self.tenant.id.as_str();
        let entity = plan.entity.as_str();
        let target = target.map(Arc::new);
        let applied = plan
            .apply_shared(source, target.as_ref(), resolver.clone())
            .map_err(|e| Failure::record(plan, e))?;
        let id_field = plan.target.id.as_str();
        let api = self.target_api(plan);
        let (id, version, synced) = match applied.outcome {
            Outcome::Write(req) => {
                let created = target.is_none();
                if self.dry_run {
                    return Ok(Synced::WouldWrite {
                        request: req,
                        created,
                    });
                }
                let method = match req.method {
                    "POST" => WriteMethod::Post,
                    "PUT" => WriteMethod::Put,
                    other => {
                        return Err(Failure::permanent(
                            plan,
                            format!("the runtime cannot send {other} requests"),
                            Some("target".into()),
                        ));
                    }
                };
                let body = req.body.clone().unwrap_or_else(|| Body::from(&Value::Null));
                let answer = api
                    .write(method, &req.path, &query_of(&req), body.as_str())
                    .await
                    .map_err(|e| Failure::api(plan, &e))?;
                let id = answer
                    .get(id_field)
                    .filter(|v| !v.is_null())
                    .cloned()
                    .ok_or_else(|| {
                        Failure::permanent(
                            plan,
                            format!("{} {} answered without `{id_field}`", req.method, req.path),
                            None,
                        )
                    })?;
                tracing::info!(tenant, entity, key, target_id = %id, method = %req.method, target = api.name(), "Wrote the record.");
                let version = answer.get("version").and_then(Value::as_i64);
                (
                    id.clone(),
                    version,
                    Synced::Written {
                        target_id: id,
                        created,
                    },
                )
            }
            Outcome::Keep { .. } => {
                let t = target.as_deref().unwrap_or(&Value::Null);
                let id = t.get(id_field).cloned().unwrap_or(Value::Null);
                tracing::info!(tenant, entity, key, target_id = %id, target = api.name(), "The record is already in the target and its mapping has no update; it is kept as it is.");
                (id, t.get("version").and_then(Value::as_i64), Synced::Kept)
            }
            Outcome::Skip { reason } => return Ok(Synced::Skipped { reason }),
        };
        if id.is_null() {
            return Err(Failure::permanent(
                plan,
                format!("the record found in {} has no `{id_field}`", api.name()),
                None,
            ));
        }
        // Bind at once: the write happened, and a later event must neither repeat nor lose it.
        self.store
            .put_binding(Binding {
                tenant: tenant.to_string(),
                direction: plan.direction.as_str().to_string(),
                entity: entity.to_string(),
                source_key: key.to_string(),
                target_id: id,
                version,
                body_hash: Some(hash.to_string()),
                body: None,
                updated_at: crate::dates::now_millis(),
            })
            .await
            .map_err(Failure::store)?;
        Ok(synced)
    }

    /// The target id bound to `entity` `key`, syncing that record first when it is not bound.
    /// `None` when it could not be bound (gone in the source, or skipped by its mapping).
    async fn bound_or_synced(
        &self,
        direction: Direction,
        entity: &str,
        key: &str,
        depth: usize,
    ) -> Result<Option<Value>, Failure> {
        let tenant = self.tenant.id.as_str();
        let get = || {
            self.store
                .get_binding(tenant, direction.as_str(), entity, key)
        };
        if let Some(b) = get().await.map_err(Failure::store)? {
            return Ok(Some(b.target_id));
        }
        if self.dry_run {
            // Nothing is bound in a dry run: stand in for the id the record would get.
            return Ok(Some(Value::String(format!("<{entity} {key}>"))));
        }
        let Some(plan) = self.plan_for_entity(direction, entity) else {
            return Err(Failure::Permanent {
                reason: format!("no mapping syncs `{entity}`, which {key} is a reference to"),
                mapping: None,
                field: None,
            });
        };
        if plan.source.get.is_none() {
            // Listed, not read one by one (the initial sync): its own pass writes it first.
            return Ok(None);
        }
        if depth + 1 >= MAX_DEPTH {
            return Err(Failure::permanent(
                plan,
                format!("dependencies nest deeper than {MAX_DEPTH} levels at {entity} {key}"),
                None,
            ));
        }
        // The dependency's own key is leased for the inline sync, so no other worker (in this
        // process or another) applies an event of it at the same time.
        let now = match self.batch_now.load(std::sync::atomic::Ordering::Relaxed) {
            0 => crate::dates::now_millis(),
            batch => batch,
        };
        let lease = NewEvent {
            tenant: tenant.to_string(),
            entity: entity.to_string(),
            key: key.to_string(),
            event: DEPENDENCY_EVENT.to_string(),
            payload: json!({}),
            received_at: now,
        };
        let Some(id) = self
            .store
            .claim_key(lease, &self.name, now, self.lease_ms)
            .await
            .map_err(Failure::store)?
        else {
            return Err(Failure::Retry {
                reason: format!(
                    "{entity} {key}, which this record refers to, is being synced by another worker"
                ),
            });
        };
        if let Ok(mut inline) = self.synced_inline.lock() {
            inline.insert((entity.to_string(), key.to_string()));
        }
        tracing::info!(
            tenant,
            entity,
            key,
            "Syncing a record another one refers to first."
        );
        let synced = self.sync(plan, key, depth + 1).await;
        // Done, or left to the queue as an event of its own (retried and dead-lettered there).
        let settled = match &synced {
            Ok(_) => self.store.complete(id, &self.name).await,
            Err(_) => self.store.release(id, &self.name).await,
        };
        settled.map_err(Failure::store)?;
        synced?;
        Ok(get().await.map_err(Failure::store)?.map(|b| b.target_id))
    }

    /// The API lookup tables `plan` uses, by name; each loaded once per worker.
    async fn lookups_for(
        &self,
        plan: &Plan,
    ) -> Result<Arc<HashMap<String, Arc<HashMap<String, Value>>>>, Failure> {
        let mut out = HashMap::new();
        let mut cache = self.lookups.lock().await;
        for l in &plan.api_lookups {
            // Keyed by definition: two mappings may use one name for different tables.
            let id = format!(
                "{:?} {} {:?} {} {}",
                l.connection, l.path, l.query, l.key, l.value
            );
            let table = match cache.get(&id) {
                Some(t) => t.clone(),
                None => {
                    let t = Arc::new(
                        load_lookup(&self.tenant, l)
                            .await
                            .map_err(|e| Failure::api(plan, &e))?,
                    );
                    tracing::info!(tenant = %self.tenant.id, table = %l.name, entries = t.len(), "Loaded an API lookup table.");
                    cache.insert(id, t.clone());
                    t
                }
            };
            out.insert(l.name.clone(), table);
        }
        Ok(Arc::new(out))
    }
}

/// An API lookup table of `tenant`: `key` → `value` of every record its request lists.
pub async fn load_lookup(
    tenant: &Tenant,
    l: &ApiLookup,
) -> Result<HashMap<String, Value>, ApiError> {
    let query: Vec<(&str, String)> = l
        .query
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let items = match l.connection {
        Connection::Rackbeat => tenant.rackbeat.list_all(&l.path, &query).await?,
        Connection::Tripletex => tenant.tripletex.list_all(&l.path, &query).await?,
    };
    let mut table = HashMap::with_capacity(items.len());
    for item in &items {
        let (Some(k), Some(v)) = (field(item, &l.key), field(item, &l.value)) else {
            continue;
        };
        if let Some(k) = key_text_json(k)
            && !v.is_null()
        {
            table.entry(k).or_insert_with(|| v.clone());
        }
    }
    Ok(table)
}

/// A dotted field path inside a record (`number`, `group.number`).
fn field<'a>(item: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(item, |v, k| v.get(k))
}

fn query_of(req: &Request) -> Vec<(&str, String)> {
    req.query.pairs().map(|(k, v)| (k, v.to_string())).collect()
}

fn ref_key(entity: &str, key: &str) -> String {
    format!("{entity}\u{0}{key}")
}

/// SHA-256 of the body as sent (field order is the mapping's, so it is stable across runs).
/// It is taken over the body rendered without a target, which holds only what comes from the
/// source: an update's body also carries the target's version and ids, which change on every write.
pub fn body_hash(body: &Body) -> String {
    Sha256::digest(body.as_str().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Resolves references from the bindings gathered for one record, and lookups from the
/// worker's loaded tables.
struct MapResolver {
    refs: HashMap<String, Value>,
    lookups: Arc<HashMap<String, Arc<HashMap<String, Value>>>>,
}

impl Resolver for MapResolver {
    fn reference(&self, entity: &str, key: &str) -> Option<Value> {
        self.refs.get(&ref_key(entity, key)).cloned()
    }
    fn lookup(&self, table: &str, key: &str) -> Option<Value> {
        self.lookups.get(table)?.get(key).cloned()
    }
}
