//! The queue worker: claims a tenant's queued Rackbeat webhook events, applies the mapping each
//! one triggers through the per-record sync ([`super::sync`]), and completes, retries or
//! dead-letters it by the error's class. [`work`] is its loop in `rbtx run`.
//!
//! Each batch's handled events go to the activity log in one commit at its end (one disk flush,
//! not one per event); the log is for people, so a failure to write it is only warned of.
//!
//! Not handled here: concurrency within one `run_once` (workers run side by side instead).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{Notify, watch};

use super::alerts::{Alert, Alerts};
use super::batch::{Batch, Memory};
use super::initial::INITIAL_SYNC_EVENT;
use super::metrics::Metrics;
use super::sync::{DEPENDENCY_EVENT, Failure, Synced, Syncer};
use super::tenant::Tenant;
use crate::plan::Pack;
use crate::spec::Direction;
use crate::store::{Event, NewActivity, Store, StoreError};

/// The direction webhooks drive.
const DIRECTION: Direction = Direction::RackbeatToTripletex;

/// Applies queued events of one tenant.
pub struct Worker<S: Store> {
    /// The per-record sync, with the store, pack and tenant; the worker reads as one (`Deref`).
    syncer: Syncer<S>,
    /// Failed attempts after which a retryable failure is dead-lettered.
    pub max_attempts: u32,
    /// Events claimed per `run_once`.
    pub batch: usize,
    /// First retry delay; doubled per attempt up to `retry_max_ms`, with jitter.
    pub retry_base_ms: i64,
    pub retry_max_ms: i64,
    /// Where handled events are counted, when the process exposes metrics.
    pub metrics: Option<Arc<Metrics>>,
    /// Set when the process stops: events claimed but not started are released.
    pub stop: Arc<AtomicBool>,
    /// Shared by a tenant's workers: while a burst of bulk events arrives, they wait `linger_ms`
    /// between claims so that the next claim finds many events to read and write together. By
    /// default, the time Rackbeat's budget takes to allow 8 requests: a second at 480 a minute,
    /// next to nothing where requests are plentiful.
    pub pace: Arc<Pace>,
    pub linger_ms: i64,
    /// What one batch learnt of Rackbeat for the next.
    memory: Arc<Memory>,
    /// Told of each dead letter and refused credentials (off by default).
    pub alerts: Alerts,
}

/// When a tenant's workers claim next.
#[derive(Debug, Default)]
pub struct Pace {
    /// No claim before this time (milliseconds since the epoch).
    hold_until: AtomicI64,
}

impl Pace {
    /// How long to wait before the next claim.
    pub fn wait(&self, now_ms: i64) -> Duration {
        let left = self.hold_until.load(Ordering::Relaxed) - now_ms;
        Duration::from_millis(u64::try_from(left).unwrap_or(0))
    }

    fn hold(&self, until_ms: i64) {
        self.hold_until.fetch_max(until_ms, Ordering::Relaxed);
    }
}

impl<S: Store> std::ops::Deref for Worker<S> {
    type Target = Syncer<S>;

    fn deref(&self) -> &Syncer<S> {
        &self.syncer
    }
}

impl<S: Store> std::ops::DerefMut for Worker<S> {
    fn deref_mut(&mut self) -> &mut Syncer<S> {
        &mut self.syncer
    }
}

/// How an event shows in the activity log.
struct Row {
    outcome: &'static str,
    message: Option<String>,
    target_id: Option<Value>,
}

impl Row {
    fn of(synced: Synced) -> Self {
        let (outcome, message, target_id) = match synced {
            Synced::Written { target_id, .. } => ("completed", None, Some(target_id)),
            Synced::Unchanged => ("unchanged", None, None),
            Synced::Kept => (
                "unchanged",
                Some("already in the target; its mapping has no update".to_string()),
                None,
            ),
            Synced::Skipped { reason } => ("skipped", Some(reason), None),
            Synced::WouldWrite { request, .. } => (
                "skipped",
                Some(format!(
                    "a dry run: {} {} not sent",
                    request.method, request.path
                )),
                None,
            ),
            Synced::Gone => (
                "ignored",
                Some("the record is no longer in the source".to_string()),
                None,
            ),
            Synced::Ignored => ("ignored", None, None),
        };
        Row {
            outcome,
            message,
            target_id,
        }
    }

    fn failed(outcome: &'static str, reason: String) -> Self {
        Row {
            outcome,
            message: Some(reason),
            target_id: None,
        }
    }
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

impl<S: Store> Worker<S> {
    pub fn new(store: Arc<S>, pack: Arc<Pack>, tenant: Tenant, name: impl Into<String>) -> Self {
        let linger_ms = 8 * 60_000 / i64::from(tenant.rackbeat.requests_per_minute().max(1));
        Worker {
            syncer: Syncer::new(store, pack, tenant, name),
            max_attempts: 10,
            batch: 200,
            retry_base_ms: 1_000,
            retry_max_ms: 10 * 60_000,
            metrics: None,
            stop: Arc::default(),
            pace: Arc::default(),
            linger_ms,
            memory: Arc::default(),
            alerts: Alerts::disabled(),
        }
    }

    /// Claims up to `batch` events of the tenant, applies each and records the outcome, and logs
    /// the events handled in the activity log (one commit for the batch). Returns how many events
    /// were handled.
    pub async fn run_once(&self, now_ms: i64) -> Result<usize, StoreError> {
        let mut log = Vec::new();
        let handled = self.run_batch(now_ms, &mut log).await;
        // What was handled is logged even when the store failed later in the batch.
        self.log_activity(log).await;
        handled
    }

    async fn run_batch(
        &self,
        now_ms: i64,
        log: &mut Vec<NewActivity>,
    ) -> Result<usize, StoreError> {
        self.start_batch(now_ms);
        let started = Instant::now();
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
        // Events whose mappings read and write in bulk go first, together; the rest one by one.
        let (together, alone): (Vec<&Event>, Vec<&Event>) =
            events.iter().partition(|e| self.in_bulk(e));
        let alone = if together.len() > 1 {
            // A burst: the next claim waits for more of it, to send fewer, larger requests. A
            // lone event is handled at once.
            self.pace.hold(crate::dates::now_millis() + self.linger_ms);
            self.handle_together(&together, now_ms, started, log)
                .await?;
            alone
        } else {
            together.into_iter().chain(alone).collect()
        };
        let lease = std::time::Duration::from_millis(u64::try_from(self.lease_ms).unwrap_or(0));
        for (i, event) in alone.iter().enumerate() {
            if self.synced_inline(&event.entity, &event.key) {
                tracing::debug!(tenant = %self.tenant.id, entity = %event.entity, key = %event.key, "Skipped an event whose record was synced inline earlier in the batch.");
                continue;
            }
            // Stopping, or half the lease spent: the rest go back to the queue now rather than
            // when their lease ends (or while another worker could already have them).
            if self.stop.load(Ordering::Relaxed) || started.elapsed() > lease / 2 {
                for e in &alone[i..] {
                    self.store.release(e.id, &self.name).await?;
                }
                return Ok(events.len() - (alone.len() - i));
            }
            let (handled, row) = self.settle(event, now_ms, started).await?;
            self.count(event, &handled);
            log.extend(row);
        }
        Ok(events.len())
    }

    /// Writes what a batch handled to the activity log. The log is for people: a store that
    /// cannot take it is warned of, and the batch's outcomes stand.
    async fn log_activity(&self, log: Vec<NewActivity>) {
        if log.is_empty() {
            return;
        }
        let rows = log.len();
        if let Err(e) = self.store.record_activity(log).await {
            tracing::warn!(tenant = %self.tenant.id, rows, error = %e, "Could not write the batch's events to the activity log; their outcomes stand.");
        }
    }

    /// Whether `event` is synced through a mapping that reads or writes in bulk.
    fn in_bulk(&self, event: &Event) -> bool {
        self.view()
            .for_event(&event.event)
            .is_some_and(|plan| plan.source.changed.is_some() || plan.target.batch.is_some())
    }

    /// Applies `events` side by side, their requests sent together ([`super::batch`]).
    async fn handle_together(
        &self,
        events: &[&Event],
        now_ms: i64,
        started: Instant,
        log: &mut Vec<NewActivity>,
    ) -> Result<(), StoreError> {
        let oldest = events.iter().map(|e| e.received_at).min().unwrap_or(now_ms);
        let batch = Arc::new(Batch::new(events.len(), oldest, self.memory.clone()));
        self.set_batch(Some(batch.clone()));
        let handled = futures_util::future::join_all(events.iter().map(|event| {
            let batch = batch.clone();
            async move {
                let handled = self.settle(event, now_ms, started).await;
                // Done: the others may all be waiting on requests this one was the last to hold up.
                if let Some(calls) = batch.finish() {
                    batch.send(&self.pack, &self.tenant, calls).await;
                }
                handled
            }
        }))
        .await;
        self.set_batch(None);
        tracing::debug!(tenant = %self.tenant.id, events = events.len(), "Synced a batch of events together.");
        for (event, settled) in events.iter().zip(handled) {
            let (handled, row) = settled?;
            self.count(event, &handled);
            log.extend(row);
        }
        Ok(())
    }

    fn count(&self, event: &Event, handled: &Handled) {
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

    /// Applies one claimed event and completes, retries or dead-letters it.
    pub async fn handle(&self, event: &Event, now_ms: i64) -> Result<Handled, StoreError> {
        let (handled, _) = self.settle(event, now_ms, Instant::now()).await?;
        Ok(handled)
    }

    /// [`Self::handle`], and the activity row the event leaves (none when the lease was lost:
    /// the new owner's outcome is the one to show). `started` is when `now_ms` was read: the row
    /// is dated `now_ms` plus the time since.
    pub async fn settle(
        &self,
        event: &Event,
        now_ms: i64,
        started: Instant,
    ) -> Result<(Handled, Option<NewActivity>), StoreError> {
        let tenant = self.tenant.id.as_str();
        let (entity, key) = (event.entity.as_str(), event.key.as_str());
        let began = Instant::now();
        let result = self.apply_event(event).await;
        let (handled, row) = match result {
            Ok(synced) => {
                tracing::debug!(tenant, entity, key, event = %event.event, outcome = ?synced, "Applied the event.");
                let done = self.store.complete(event.id, &self.name).await?;
                (done.then_some(Handled::Completed), Row::of(synced))
            }
            Err(Failure::Retry { reason }) if event.attempts + 1 < self.max_attempts => {
                let delay = self.backoff_ms(event);
                tracing::warn!(tenant, entity, key, error = %reason, attempts = event.attempts + 1, retry_in_ms = delay, "Applying the event failed; it will be retried.");
                let retried = self
                    .store
                    .retry(event.id, &self.name, &reason, now_ms + delay)
                    .await?;
                (
                    retried.then_some(Handled::Retried),
                    Row::failed("retried", reason),
                )
            }
            Err(Failure::Retry { reason }) => {
                let reason = format!("gave up after {} attempts: {reason}", event.attempts + 1);
                tracing::error!(tenant, entity, key, error = %reason, "Applying the event kept failing; it is dead-lettered.");
                let handled = self
                    .dead_letter(event, &reason, None, None, now_ms, None)
                    .await?;
                (handled, Row::failed("dead_lettered", reason))
            }
            Err(Failure::Permanent {
                reason,
                mapping,
                field,
                detail,
            }) => {
                tracing::error!(tenant, entity, key, error = %reason, mapping = mapping.as_deref(), field = field.as_deref(), "The event cannot be applied until the data or the mapping is fixed; it is dead-lettered.");
                let handled = self
                    .dead_letter(event, &reason, mapping, field, now_ms, detail.as_deref())
                    .await?;
                (handled, Row::failed("dead_lettered", reason))
            }
            Err(Failure::Refused {
                api,
                reason,
                mapping,
            }) => {
                tracing::error!(tenant, entity, key, api, error = %reason, "The credentials were refused; the event is dead-lettered until they are fixed and it is replayed.");
                self.alerts.notify(Alert::CredentialsRefused {
                    tenant: tenant.into(),
                    api,
                    message: reason.clone(),
                });
                let handled = self
                    .dead_letter(event, &reason, mapping, None, now_ms, None)
                    .await?;
                (handled, Row::failed("dead_lettered", reason))
            }
        };
        let Some(handled) = handled else {
            tracing::warn!(
                tenant,
                entity,
                key,
                "The lease on the event was lost; its new owner decides its outcome."
            );
            return Ok((Handled::LeaseLost, None));
        };
        let took_ms = i64::try_from(began.elapsed().as_millis()).unwrap_or(i64::MAX);
        let since = i64::try_from(started.elapsed().as_millis()).unwrap_or(0);
        let activity = NewActivity {
            tenant: tenant.to_string(),
            event_id: event.id,
            entity: entity.to_string(),
            key: key.to_string(),
            event: event.event.clone(),
            outcome: row.outcome.to_string(),
            message: row.message,
            target_id: row.target_id,
            took_ms,
            at: now_ms.saturating_add(since),
        };
        Ok((handled, Some(activity)))
    }

    /// Moves `event` to the dead letters and says so to the alerts; `None` when the lease was lost.
    async fn dead_letter(
        &self,
        event: &Event,
        reason: &str,
        mapping: Option<String>,
        field: Option<String>,
        now_ms: i64,
        detail: Option<&Value>,
    ) -> Result<Option<Handled>, StoreError> {
        let Some(id) = self
            .store
            .dead_letter(
                event.id,
                &self.name,
                reason,
                mapping.as_deref(),
                field.as_deref(),
                now_ms,
                detail,
            )
            .await?
        else {
            return Ok(None);
        };
        self.alerts.notify(Alert::DeadLettered {
            tenant: self.tenant.id.clone(),
            entity: event.entity.clone(),
            key: event.key.clone(),
            event: event.event.clone(),
            reason: reason.into(),
            mapping,
            field,
            dead_letter_id: id,
        });
        Ok(Some(Handled::DeadLettered))
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
            let Some(plan) = self.view().for_entity(DIRECTION, entity) else {
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
                detail: None,
            });
        }
        let Some(plan) = self.view().for_event(&event.event) else {
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
        self.sync_chosen(&self.view().all_for_event(&event.event), key)
            .await
    }
}

/// The worker's loop in `rbtx run`: claims and applies batches until `stop` is set, waiting on
/// `queued` (the intake's signal) or a second (retries come due) when idle. A pack sent on
/// `packs` applies from the next batch on.
pub async fn work<S: Store>(
    mut worker: Worker<S>,
    queued: Arc<Notify>,
    mut packs: watch::Receiver<Arc<Pack>>,
    stop: Arc<AtomicBool>,
) {
    worker.stop = stop.clone();
    while !stop.load(Ordering::Relaxed) {
        // Events in flight finish under the pack they started with.
        if packs.has_changed().unwrap_or(false) {
            worker.set_pack(packs.borrow_and_update().clone());
        }
        // Registered before the claim, so a wake-up for events persisted while the claim ran is
        // not missed (dropped unused, it passes to another waiting worker).
        let notified = queued.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let wait = worker.pace.wait(crate::dates::now_millis());
        if !wait.is_zero() {
            tokio::time::sleep(wait.min(Duration::from_millis(200))).await;
            continue;
        }
        match worker.run_once(crate::dates::now_millis()).await {
            // Idle: wait for the intake's signal, or a second (retries come due).
            Ok(0) => {
                tokio::time::timeout(Duration::from_secs(1), notified)
                    .await
                    .ok();
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "The store failed; retrying in a second.");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}
