//! The durable store of the sync runtime: the webhook event queue, dead letters, bindings
//! (source key → target id), checkpoints, webhook tokens and the activity log (one row per handled
//! event, for the operator's console). One trait, [`Store`], with two backends beside it:
//! [`sqlite::SqliteStore`] (embedded, the default) and [`postgres::PostgresStore`] (one database
//! shared by several processes). Both pass the same suite (`tests/store.rs`). The store never
//! knows either API: it keeps events, keys and JSON values, and nothing here depends on what they
//! mean.
//!
//! Time is passed in (`now_ms`, unix milliseconds) wherever the logic depends on it, so the
//! behaviour is deterministic under test.
//!
//! # The queue
//!
//! An event is *open* from `enqueue` until it is completed, superseded or dead-lettered. A claim
//! takes, per `(tenant, entity, key)`, only the latest open event and marks the older ones
//! superseded in the same transaction (ten updates to one product become one push of its latest
//! state). A key with an event under an unexpired lease is skipped, so one key is never worked on
//! by two workers at once and its events are handled in arrival order. A lease that expires
//! (the worker crashed) makes the event claimable again. `complete`, `retry` and `dead_letter`
//! only act while the caller still holds the lease, so a worker whose lease expired and was taken
//! over cannot overwrite the new owner's outcome.
//!
//! # What an operator reads
//!
//! The activity log and the dead letters are read a page at a time, newest first, with filters
//! ([`ActivityFilter`], [`DeadLetterFilter`]); `before_id` pages on (the id of the last row of the
//! page before). Equality filters run on indexes, so a first page is quick however long the log;
//! the text filter is a case-insensitive substring (letters outside ASCII fold as the backend
//! folds them) and may scan.

mod error;
mod filter;
mod location;
pub mod postgres;
pub mod sqlite;

pub use error::{Result, StoreError};
pub use location::{Location, LocationError, Opened};

use std::future::Future;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::secret::Secret;

/// An event as received, before it has an id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub tenant: String,
    /// The entity the event is about (`product`, `customer`, …).
    pub entity: String,
    /// The entity's key in the source system (a product number, a customer number, …).
    pub key: String,
    /// The event name as delivered, e.g. `product.updated`.
    pub event: String,
    pub payload: Value,
    /// Unix milliseconds.
    pub received_at: i64,
}

/// A queued event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: i64,
    pub tenant: String,
    pub entity: String,
    pub key: String,
    pub event: String,
    pub payload: Value,
    /// Unix milliseconds.
    pub received_at: i64,
    /// Failed attempts so far (incremented by [`Store::retry`]).
    pub attempts: u32,
}

/// What the runtime remembers about one synced record: where it went and what was last sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    pub tenant: String,
    /// `rackbeat_to_tripletex` or `tripletex_to_rackbeat`; opaque to the store.
    pub direction: String,
    pub entity: String,
    pub source_key: String,
    /// The target's id, kept as JSON because the two APIs use numbers and strings.
    pub target_id: Value,
    /// The target's revision, for APIs with optimistic locking.
    pub version: Option<i64>,
    /// Hash of the last body sent, so an unchanged body is not sent again.
    pub body_hash: Option<String>,
    /// The last body sent (or, for a record the initial sync wrote, the body rbtx would send back
    /// for it): an update carries only the fields that differ from it.
    pub body: Option<Value>,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// An event that failed permanently, with why and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub id: i64,
    pub event: Event,
    pub reason: String,
    /// The mapping that failed, when one was chosen.
    pub mapping: Option<String>,
    /// The field path the failure is about, when known.
    pub field: Option<String>,
    /// Unix milliseconds: the first failure.
    pub failed_at: i64,
    /// How many times the record failed for this reason (a repeat updates the letter).
    pub failures: u32,
    /// Unix milliseconds: the latest failure.
    pub last_failed_at: i64,
    /// What the latest failure sent and was answered, when an API refused a request:
    /// `{"request": {"method", "path", "body"}, "response": {"status", "code", "message",
    /// "validationMessages": [{"field", "message"}], "requestId"}}`. Opaque to the store.
    pub detail: Option<Value>,
}

/// One handled event, as the console lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    pub id: i64,
    pub tenant: String,
    /// The queued event handled (its id in the queue).
    pub event_id: i64,
    pub entity: String,
    pub key: String,
    /// The event name, e.g. `product.updated`.
    pub event: String,
    /// `completed`, `retried`, `dead_lettered`, `ignored`, `unchanged` or `skipped`; opaque to
    /// the store.
    pub outcome: String,
    /// Why: the error, or the reason the mapping skipped the record.
    pub message: Option<String>,
    /// The target's id, when known.
    pub target_id: Option<Value>,
    /// How long handling the event took.
    pub took_ms: i64,
    /// Unix milliseconds: when it was handled.
    pub at: i64,
}

/// An activity row before it has an id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewActivity {
    pub tenant: String,
    pub event_id: i64,
    pub entity: String,
    pub key: String,
    pub event: String,
    pub outcome: String,
    pub message: Option<String>,
    pub target_id: Option<Value>,
    pub took_ms: i64,
    pub at: i64,
}

/// Which activity [`Store::list_activity`] returns; `None` matches all.
#[derive(Debug, Clone, Default)]
pub struct ActivityFilter {
    pub tenant: Option<String>,
    pub entity: Option<String>,
    pub outcome: Option<String>,
    /// One queued event's rows (its attempts).
    pub event_id: Option<i64>,
    /// A case-insensitive substring of the key, the event name or the message.
    pub text: Option<String>,
    /// Paging: only rows with a smaller id (the last id of the page before).
    pub before_id: Option<i64>,
    /// At most this many rows; 0 is no limit.
    pub limit: usize,
}

/// Which dead letters [`Store::find_dead_letters`] returns; `None` matches all.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterFilter {
    pub tenant: Option<String>,
    pub entity: Option<String>,
    /// A case-insensitive substring of the key, reason, mapping or field.
    pub text: Option<String>,
    /// Paging: only the letters after the letter `before_id` in the order they are listed (latest
    /// failure first). A letter gone since (replayed, discarded) ends the paging: the page after
    /// it is empty, and the first page is where to start again.
    pub before_id: Option<i64>,
    /// At most this many letters; 0 is no limit.
    pub limit: usize,
}

/// How much activity there was.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ActivityCounts {
    /// Every row.
    pub handled: u64,
    /// Rows whose outcome is `dead_lettered` or `retried`.
    pub failed: u64,
}

/// How much the queue holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueSummary {
    /// Open events (waiting, scheduled for retry, or claimed).
    pub depth: u64,
    /// When the oldest open event was received (unix milliseconds).
    pub oldest_received_at: Option<i64>,
}

/// What makes two dead letters of one record the same failure: the reason without what differs
/// at every attempt (the request id an API gives each answer, ` (request id …)`).
pub fn reason_key(reason: &str) -> String {
    let mut key = reason.to_string();
    while let Some(start) = key.find(" (request id ") {
        let end = key[start..].find(')').map_or(key.len(), |e| start + e + 1);
        key.replace_range(start..end, "");
    }
    key
}

/// The durable store. Every method is one transaction: when it returns `Ok`, the change is on disk.
pub trait Store: Send + Sync {
    /// Applies the schema migrations not applied yet and returns how many it applied.
    /// Running it again is a no-op.
    fn migrate(&self) -> impl Future<Output = Result<usize>> + Send;

    /// How many migrations `migrate` would apply; changes nothing (for `rbtx doctor`).
    fn pending_migrations(&self) -> impl Future<Output = Result<usize>> + Send;

    /// Persists an event and returns its id. Durable on return, so the intake may answer 2xx.
    fn enqueue(&self, event: NewEvent) -> impl Future<Output = Result<i64>> + Send;

    /// Enqueues several events durably in one commit (the intake batches concurrent deliveries
    /// this way: one disk flush for many events). Their ids, in order.
    fn enqueue_many(&self, events: Vec<NewEvent>) -> impl Future<Output = Result<Vec<i64>>> + Send;

    /// Claims up to `limit` keys that are ready at `now_ms` (of `tenant`, or of any tenant when
    /// `None`) for `worker`, leased until `now_ms + lease_ms`, and returns the latest open event of
    /// each, oldest waiting key first. Older open events of a claimed key are superseded.
    /// `worker` must be unique among live workers (include the host and process).
    fn claim(
        &self,
        tenant: Option<&str>,
        worker: &str,
        limit: usize,
        now_ms: i64,
        lease_ms: i64,
    ) -> impl Future<Output = Result<Vec<Event>>> + Send;

    /// Takes the lease on one key for work that has no event of its own (a record synced inline
    /// because another refers to it): adds `event`, already claimed by `worker` until
    /// `now_ms + lease_ms`, supersedes the key's older open events (the work reads the record's
    /// latest state), and returns its id. `None` when another worker holds the key; a key `worker`
    /// holds itself (an event later in its own batch) is taken, and that event superseded. Complete
    /// the event when the work is done, or release it to leave the work to the queue.
    fn claim_key(
        &self,
        event: NewEvent,
        worker: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> impl Future<Output = Result<Option<i64>>> + Send;

    /// Marks a claimed event done. `false` when `worker` no longer holds its lease.
    fn complete(&self, id: i64, worker: &str) -> impl Future<Output = Result<bool>> + Send;

    /// Puts a claimed event back as it was, without counting an attempt (a worker stopping before
    /// it got to the event). `false` when `worker` no longer holds its lease.
    fn release(&self, id: i64, worker: &str) -> impl Future<Output = Result<bool>> + Send;

    /// Puts a claimed event back, counting one more attempt, ready again at `not_before_ms`.
    /// `false` when `worker` no longer holds its lease.
    fn retry(
        &self,
        id: i64,
        worker: &str,
        error: &str,
        not_before_ms: i64,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Moves a claimed event to the dead letters and returns the dead letter's id.
    /// `None` when `worker` no longer holds its lease. A record with a dead letter of the same
    /// mapping and reason ([`reason_key`]) keeps that one letter: it counts the failure and holds
    /// this, the latest, event and `detail` (what the API was sent and answered).
    #[allow(clippy::too_many_arguments)]
    fn dead_letter(
        &self,
        id: i64,
        worker: &str,
        reason: &str,
        mapping: Option<&str>,
        field: Option<&str>,
        now_ms: i64,
        detail: Option<&Value>,
    ) -> impl Future<Output = Result<Option<i64>>> + Send;

    /// Files a record that failed outside the queue (the initial sync) straight into the dead
    /// letters and returns its id: the same reason counts one more failure on the record's letter,
    /// and a letter of the same tenant, entity, key and event name for another reason is replaced.
    /// Replaying it queues the event like any other. `detail` as for [`Store::dead_letter`].
    fn put_dead_letter(
        &self,
        event: NewEvent,
        reason: &str,
        mapping: Option<&str>,
        field: Option<&str>,
        detail: Option<&Value>,
    ) -> impl Future<Output = Result<i64>> + Send;

    /// Drops the dead letters of a record that has since been synced (same tenant, entity, key
    /// and event name) and returns how many.
    fn discard_dead_letters(
        &self,
        tenant: &str,
        entity: &str,
        key: &str,
        event: &str,
    ) -> impl Future<Output = Result<usize>> + Send;

    /// Dead letters, oldest first.
    fn list_dead_letters(&self) -> impl Future<Output = Result<Vec<DeadLetter>>> + Send;

    fn get_dead_letter(&self, id: i64) -> impl Future<Output = Result<Option<DeadLetter>>> + Send;

    /// Puts a dead-lettered event back in the queue with its attempts reset; it keeps its id, so a
    /// newer event for the same key still supersedes it. `false` when there is no such dead letter.
    fn replay(&self, id: i64) -> impl Future<Output = Result<bool>> + Send;

    /// Replays every dead letter, except those of events named `keep` (they stay dead letters),
    /// and returns how many.
    fn replay_all(&self, keep: Option<&str>) -> impl Future<Output = Result<usize>> + Send;

    /// Open events (waiting, scheduled for retry, or claimed).
    fn queue_depth(&self) -> impl Future<Output = Result<u64>> + Send;

    /// Depth and oldest open event of `tenant` (or of all tenants when `None`).
    fn queue_summary(
        &self,
        tenant: Option<&str>,
    ) -> impl Future<Output = Result<QueueSummary>> + Send;

    /// Dead letters matching `filter`, latest failure first (then the higher id), and how many
    /// match in all (ignoring `limit` and `before_id`).
    fn find_dead_letters(
        &self,
        filter: &DeadLetterFilter,
    ) -> impl Future<Output = Result<(Vec<DeadLetter>, u64)>> + Send;

    /// Deletes one dead letter for good (the console's "discard": it is not replayed, and its
    /// event stays dead). `false` when there is none.
    fn delete_dead_letter(&self, id: i64) -> impl Future<Output = Result<bool>> + Send;

    /// Appends handled events to the activity log in one commit.
    fn record_activity(&self, rows: Vec<NewActivity>) -> impl Future<Output = Result<()>> + Send;

    /// The latest activity matching `filter`, newest (highest id) first.
    fn list_activity(
        &self,
        filter: &ActivityFilter,
    ) -> impl Future<Output = Result<Vec<Activity>>> + Send;

    /// Counts of the activity at or after `since_ms` (of `tenant`, or of all when `None`).
    fn activity_counts(
        &self,
        tenant: Option<&str>,
        since_ms: i64,
    ) -> impl Future<Output = Result<ActivityCounts>> + Send;

    /// Drops the activity older than `before_ms` and returns how many rows (the retention `rbtx
    /// run` applies daily).
    fn prune_activity(&self, before_ms: i64) -> impl Future<Output = Result<usize>> + Send;

    /// The tenants whose queue another process just added to, as they come, for a store that
    /// processes share (PostgreSQL); `None` for one only this process uses. Needs a Tokio runtime.
    fn watch_queue(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<String>> {
        None
    }

    fn get_binding(
        &self,
        tenant: &str,
        direction: &str,
        entity: &str,
        source_key: &str,
    ) -> impl Future<Output = Result<Option<Binding>>> + Send;

    /// Every binding of `tenant` in `direction`, in no particular order (`rbtx reconcile` reads
    /// them all at once instead of one per record).
    fn list_bindings(
        &self,
        tenant: &str,
        direction: &str,
    ) -> impl Future<Output = Result<Vec<Binding>>> + Send;

    /// Forgets one binding (its target record is gone), so the next sync looks the record up by
    /// its natural key. `false` when there was none.
    fn delete_binding(
        &self,
        tenant: &str,
        direction: &str,
        entity: &str,
        source_key: &str,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Inserts the binding or replaces the one with the same tenant, direction, entity and key.
    fn put_binding(&self, binding: Binding) -> impl Future<Output = Result<()>> + Send;

    /// Moves a binding to a renumbered key, replacing any binding already at `new_key` (the moved
    /// one points at the record that was renumbered). `false` when there was none at `old_key`.
    fn move_binding(
        &self,
        tenant: &str,
        direction: &str,
        entity: &str,
        old_key: &str,
        new_key: &str,
    ) -> impl Future<Output = Result<bool>> + Send;

    fn get_checkpoint(
        &self,
        tenant: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<String>>> + Send;

    fn set_checkpoint(
        &self,
        tenant: &str,
        name: &str,
        value: &str,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The token Rackbeat gave `tenant`'s webhook subscription to `event`, as kept by
    /// [`Store::put_webhook_token`]. A secret: it comes back as one, never as plain text.
    fn get_webhook_token(
        &self,
        tenant: &str,
        event: &str,
    ) -> impl Future<Output = Result<Option<Secret>>> + Send;

    /// Keeps the token of `tenant`'s webhook subscription to `event`, replacing the one kept
    /// before (Rackbeat hands out a new token when a subscription is created again).
    fn put_webhook_token(
        &self,
        tenant: &str,
        event: &str,
        token: &Secret,
    ) -> impl Future<Output = Result<()>> + Send;
}
