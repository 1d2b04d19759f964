//! The shared store: one PostgreSQL database that several `rbtx run` processes, on any number of
//! machines, work from at once.
//!
//! **A key is held by at most one worker across all processes.** Every queued key has a row in
//! `keys`, and that row's lock serializes everything that decides about the key:
//! - `enqueue` locks the rows of its keys (waiting if need be) before inserting, so a key's events
//!   commit in id order and a claim never misses an older event that commits after a newer one;
//! - `claim` first locks candidate keys with `FOR UPDATE SKIP LOCKED` (a key another process is
//!   deciding about is skipped, never waited for), then, in a second statement whose snapshot is
//!   taken after the locks, checks again that no unexpired lease exists and takes the latest event.
//!   Checking in the first statement alone would not do: its snapshot predates the lock, so it
//!   could miss a claim another process committed meanwhile.
//!
//! `complete`, `retry` and `dead_letter` act on one event row guarded by the lease owner, as in
//! SQLite. Migrations run under a transaction-scoped advisory lock, so processes starting together
//! apply each version once.
//!
//! Leases are compared with the `now_ms` the caller passes, so the machines' clocks must agree to
//! well within a lease (NTP does).

mod activity;
mod connection;
mod rows;
mod sql;

pub use connection::redacted;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use serde_json::Value;
use tokio_postgres::NoTls;

use crate::secret::Secret;
use crate::store::{
    Activity, ActivityCounts, ActivityFilter, Binding, DeadLetter, DeadLetterFilter, Event,
    NewActivity, NewEvent, QueueSummary, Result, Store, StoreError,
};
use connection::{Tls, listen_for_enqueues};
use rows::{DEAD_LETTER_COLUMNS, dead_letter_from_row, event_from_row};
use sql::*;

/// Connections per process: the workers, the intake and catch-up each hold one only while a
/// statement or transaction runs.
const POOL_SIZE: usize = 8;

/// How long to wait for a connection before the call fails (and the caller retries).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct PostgresStore {
    pool: Pool,
    /// Where the store is, without the password, for messages.
    target: String,
    /// For the connection that listens for other processes' enqueues.
    config: tokio_postgres::Config,
    tls: Tls,
    /// Names this store's own notifications, which its listener ignores.
    origin: String,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/dbname`; the
    /// password stays out of every error and message). Fails when no connection can be made.
    /// Call [`Store::migrate`] before use.
    pub async fn connect(url: &Secret) -> Result<Self> {
        let target = redacted(url.expose());
        let mut config = tokio_postgres::Config::from_str(url.expose())?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("rbtx");
        }
        let tls = Tls::for_config(&config)?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &tls {
            Tls::Plain => Manager::from_config(config.clone(), NoTls, manager_config),
            Tls::Verified(make) => {
                Manager::from_config(config.clone(), make.clone(), manager_config)
            }
        };
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        let origin = format!(
            "{}-{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let store = PostgresStore {
            pool,
            target,
            config,
            tls,
            origin,
        };
        // Fail at start, not at the first event, on a wrong address or password. The connection
        // goes back to the pool.
        drop(store.client().await?);
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Client> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Backend(e) => StoreError::Postgres(e),
            other => StoreError::Pool(other.to_string()),
        })
    }
}

/// The events' columns as arrays, for `unnest`.
struct Columns {
    tenant: Vec<String>,
    entity: Vec<String>,
    key: Vec<String>,
    event: Vec<String>,
    payload: Vec<String>,
    received_at: Vec<i64>,
}

impl Columns {
    fn new(events: Vec<NewEvent>) -> Result<Self> {
        let mut c = Columns {
            tenant: Vec::with_capacity(events.len()),
            entity: Vec::with_capacity(events.len()),
            key: Vec::with_capacity(events.len()),
            event: Vec::with_capacity(events.len()),
            payload: Vec::with_capacity(events.len()),
            received_at: Vec::with_capacity(events.len()),
        };
        for e in events {
            c.payload.push(serde_json::to_string(&e.payload)?);
            c.tenant.push(e.tenant);
            c.entity.push(e.entity);
            c.key.push(e.key);
            c.event.push(e.event);
            c.received_at.push(e.received_at);
        }
        Ok(c)
    }
}

impl PostgresStore {
    async fn dead_letters(&self, id: Option<i64>) -> Result<Vec<DeadLetter>> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {DEAD_LETTER_COLUMNS}
             FROM dead_letters d JOIN events e ON e.id = d.event_id
             WHERE $1::int8 IS NULL OR d.id = $1
             ORDER BY d.id"
        );
        let rows = client
            .query(&client.prepare_cached(&sql).await?, &[&id])
            .await?;
        rows.iter().map(dead_letter_from_row).collect()
    }

    /// Puts dead-lettered events back in the queue; `id` `None` means all of them but those of
    /// events named `keep`. Deleting the dead letter first means two concurrent replays cannot
    /// both reset one event.
    async fn replay_dead(&self, id: Option<i64>, keep: Option<&str>) -> Result<u64> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "WITH d AS (
                     DELETE FROM dead_letters WHERE ($1::int8 IS NULL OR id = $1)
                         AND ($2::text IS NULL OR event_id NOT IN (SELECT id FROM events WHERE event = $2))
                     RETURNING event_id
                 )
                 UPDATE events SET state = 'pending', attempts = 0, not_before = 0,
                        lease_owner = NULL, lease_until = NULL, last_error = NULL
                 FROM d WHERE events.id = d.event_id",
            )
            .await?;
        Ok(client.execute(&stmt, &[&id, &keep]).await?)
    }
}

/// What a dead letter is filed with.
struct Letter<'a> {
    reason: &'a str,
    mapping: Option<&'a str>,
    field: Option<&'a str>,
    /// JSON text.
    detail: Option<String>,
}

/// Files the dead event `event_id` under the record's letter with the same reason when there is
/// one (it counts one more failure and now holds this, the latest, event and detail; the event it
/// held is superseded), else under a new letter. Returns the letter's id.
async fn file_letter(
    tx: &deadpool_postgres::Transaction<'_>,
    event_id: i64,
    letter: &Letter<'_>,
    now_ms: i64,
) -> Result<i64> {
    let Letter {
        reason,
        mapping,
        field,
        detail,
    } = letter;
    let key = crate::store::reason_key(reason);
    if let Some(row) = tx
        .query_opt(SAME_LETTER, &[&event_id, &key, &mapping])
        .await?
    {
        let (same, old_event): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        tx.execute(
            REPEAT_LETTER,
            &[&same, &event_id, &reason, &field, &now_ms, &detail],
        )
        .await?;
        tx.execute(
            "UPDATE events SET state = 'superseded' WHERE id = $1",
            &[&old_event],
        )
        .await?;
        return Ok(same);
    }
    let row = tx
        .query_one(
            NEW_LETTER,
            &[&event_id, &reason, &key, &mapping, &field, &now_ms, &detail],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// JSON text for a column, or NULL.
fn json_text(value: Option<&Value>) -> Result<Option<String>> {
    Ok(value.map(serde_json::to_string).transpose()?)
}

impl Store for PostgresStore {
    async fn migrate(&self) -> Result<usize> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Held until commit: a second process starting at the same time waits here, then finds
        // every version applied.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    BIGINT PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await?;
        let mut applied = 0;
        for (version, sql) in MIGRATIONS {
            let done: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)",
                    &[version],
                )
                .await?
                .try_get(0)?;
            if !done {
                tx.batch_execute(sql).await?;
                tx.execute(
                    "INSERT INTO schema_migrations (version) VALUES ($1)",
                    &[version],
                )
                .await?;
                applied += 1;
            }
        }
        tx.commit().await?;
        Ok(applied)
    }

    async fn pending_migrations(&self) -> Result<usize> {
        let client = self.client().await?;
        let has_table: bool = client
            .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
            .await?
            .try_get(0)?;
        if !has_table {
            return Ok(MIGRATIONS.len());
        }
        let applied: Vec<i64> = client
            .query("SELECT version FROM schema_migrations", &[])
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<std::result::Result<_, _>>()?;
        Ok(MIGRATIONS
            .iter()
            .filter(|(v, _)| !applied.contains(v))
            .count())
    }

    async fn enqueue(&self, event: NewEvent) -> Result<i64> {
        let c = Columns::new(vec![event])?;
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            &tx.prepare_cached(LOCK_KEYS).await?,
            &[&c.tenant, &c.entity, &c.key],
        )
        .await?;
        let row = tx
            .query_one(
                &tx.prepare_cached(INSERT_EVENTS).await?,
                &[
                    &c.tenant,
                    &c.entity,
                    &c.key,
                    &c.event,
                    &c.payload,
                    &c.received_at,
                ],
            )
            .await?;
        // Delivered on commit, to the other processes' listeners (`watch_queue`).
        tx.execute(
            "SELECT pg_notify($1, $2 || ' ' || t) FROM (SELECT DISTINCT unnest($3::text[]) AS t) s",
            &[&QUEUED_CHANNEL, &self.origin, &c.tenant],
        )
        .await?;
        tx.commit().await?;
        Ok(row.try_get(0)?)
    }

    async fn enqueue_many(&self, events: Vec<NewEvent>) -> Result<Vec<i64>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let c = Columns::new(events)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            &tx.prepare_cached(LOCK_KEYS).await?,
            &[&c.tenant, &c.entity, &c.key],
        )
        .await?;
        let rows = tx
            .query(
                &tx.prepare_cached(INSERT_EVENTS).await?,
                &[
                    &c.tenant,
                    &c.entity,
                    &c.key,
                    &c.event,
                    &c.payload,
                    &c.received_at,
                ],
            )
            .await?;
        // Delivered on commit, to the other processes' listeners (`watch_queue`).
        tx.execute(
            "SELECT pg_notify($1, $2 || ' ' || t) FROM (SELECT DISTINCT unnest($3::text[]) AS t) s",
            &[&QUEUED_CHANNEL, &self.origin, &c.tenant],
        )
        .await?;
        tx.commit().await?;
        let mut ids = rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<Vec<i64>, _>>()?;
        ids.sort_unstable();
        Ok(ids)
    }

    fn watch_queue(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<String>> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (config, origin) = (self.config.clone(), self.origin.clone());
        match &self.tls {
            Tls::Plain => tokio::spawn(listen_for_enqueues(config, NoTls, origin, tx)),
            Tls::Verified(make) => {
                tokio::spawn(listen_for_enqueues(config, make.clone(), origin, tx))
            }
        };
        Some(rx)
    }

    async fn claim(
        &self,
        tenant: Option<&str>,
        worker: &str,
        limit: usize,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Vec<Event>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let lease_until = now_ms.saturating_add(lease_ms);
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let locked = tx
            .query(
                &tx.prepare_cached(LOCK_READY_KEYS).await?,
                &[&tenant, &now_ms, &limit],
            )
            .await?;
        if locked.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let (mut tenants, mut entities, mut keys) = (Vec::new(), Vec::new(), Vec::new());
        for row in &locked {
            tenants.push(row.try_get::<_, String>(0)?);
            entities.push(row.try_get::<_, String>(1)?);
            keys.push(row.try_get::<_, String>(2)?);
        }
        let rows = tx
            .query(
                &tx.prepare_cached(CLAIM_LOCKED_KEYS).await?,
                &[&tenants, &entities, &keys, &now_ms, &worker, &lease_until],
            )
            .await?;
        tx.commit().await?;
        let mut claimed = rows
            .iter()
            .map(|row| Ok((row.try_get::<_, i64>(8)?, event_from_row(row)?)))
            .collect::<Result<Vec<(i64, Event)>>>()?;
        claimed.sort_by_key(|(oldest, _)| *oldest);
        Ok(claimed.into_iter().map(|(_, e)| e).collect())
    }

    async fn complete(&self, id: i64, worker: &str) -> Result<bool> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE events SET state = 'done', lease_owner = NULL, lease_until = NULL
                 WHERE id = $1 AND state = 'claimed' AND lease_owner = $2",
            )
            .await?;
        Ok(client.execute(&stmt, &[&id, &worker]).await? == 1)
    }

    async fn claim_key(
        &self,
        event: NewEvent,
        worker: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<i64>> {
        let payload = serde_json::to_string(&event.payload)?;
        let lease_until = now_ms.saturating_add(lease_ms);
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // The key's row lock orders this against enqueues and claims of the key in any process;
        // the check below runs after it is taken, so it sees their committed leases.
        tx.execute(LOCK_KEY, &[&event.tenant, &event.entity, &event.key])
            .await?;
        let held: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM events
                     WHERE tenant = $1 AND entity = $2 AND key = $3
                       AND state = 'claimed' AND lease_until > $4 AND lease_owner <> $5)",
                &[&event.tenant, &event.entity, &event.key, &now_ms, &worker],
            )
            .await?
            .try_get(0)?;
        if held {
            return Ok(None);
        }
        tx.execute(
            "UPDATE events SET state = 'superseded', lease_owner = NULL, lease_until = NULL
             WHERE tenant = $1 AND entity = $2 AND key = $3 AND state IN ('pending', 'claimed')",
            &[&event.tenant, &event.entity, &event.key],
        )
        .await?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO events (tenant, entity, key, event, payload, received_at, state,
                                     lease_owner, lease_until)
                 VALUES ($1, $2, $3, $4, $5, $6, 'claimed', $7, $8)
                 RETURNING id",
                &[
                    &event.tenant,
                    &event.entity,
                    &event.key,
                    &event.event,
                    &payload,
                    &event.received_at,
                    &worker,
                    &lease_until,
                ],
            )
            .await?
            .try_get(0)?;
        tx.commit().await?;
        Ok(Some(id))
    }

    async fn release(&self, id: i64, worker: &str) -> Result<bool> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE events SET state = 'pending', lease_owner = NULL, lease_until = NULL
                 WHERE id = $1 AND state = 'claimed' AND lease_owner = $2",
            )
            .await?;
        Ok(client.execute(&stmt, &[&id, &worker]).await? == 1)
    }

    async fn retry(&self, id: i64, worker: &str, error: &str, not_before_ms: i64) -> Result<bool> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE events SET state = 'pending', attempts = attempts + 1,
                        not_before = $3, last_error = $4, lease_owner = NULL, lease_until = NULL
                 WHERE id = $1 AND state = 'claimed' AND lease_owner = $2",
            )
            .await?;
        Ok(client
            .execute(&stmt, &[&id, &worker, &not_before_ms, &error])
            .await?
            == 1)
    }

    async fn dead_letter(
        &self,
        id: i64,
        worker: &str,
        reason: &str,
        mapping: Option<&str>,
        field: Option<&str>,
        now_ms: i64,
        detail: Option<&Value>,
    ) -> Result<Option<i64>> {
        let letter = Letter {
            reason,
            mapping,
            field,
            detail: json_text(detail)?,
        };
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let taken = tx
            .execute(
                "UPDATE events SET state = 'dead', last_error = $3,
                        lease_owner = NULL, lease_until = NULL
                 WHERE id = $1 AND state = 'claimed' AND lease_owner = $2",
                &[&id, &worker, &reason],
            )
            .await?;
        if taken == 0 {
            return Ok(None);
        }
        let dead_id = file_letter(&tx, id, &letter, now_ms).await?;
        tx.commit().await?;
        Ok(Some(dead_id))
    }

    async fn put_dead_letter(
        &self,
        event: NewEvent,
        reason: &str,
        mapping: Option<&str>,
        field: Option<&str>,
        detail: Option<&Value>,
    ) -> Result<i64> {
        let payload = serde_json::to_string(&event.payload)?;
        let letter = Letter {
            reason,
            mapping,
            field,
            detail: json_text(detail)?,
        };
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // The key's row: claims find a replayed event through it, and its lock orders this
        // against enqueues and claims of the same key.
        tx.execute(LOCK_KEY, &[&event.tenant, &event.entity, &event.key])
            .await?;
        let event_id: i64 = tx
            .query_one(
                "INSERT INTO events (tenant, entity, key, event, payload, received_at, state, last_error)
                 VALUES ($1, $2, $3, $4, $5, $6, 'dead', $7)
                 RETURNING id",
                &[
                    &event.tenant,
                    &event.entity,
                    &event.key,
                    &event.event,
                    &payload,
                    &event.received_at,
                    &reason,
                ],
            )
            .await?
            .try_get(0)?;
        let id = file_letter(&tx, event_id, &letter, event.received_at).await?;
        // A letter of this record and event for another reason is out of date.
        tx.execute(
            DISCARD_OTHER_LETTERS,
            &[&event.tenant, &event.entity, &event.key, &event.event, &id],
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn discard_dead_letters(
        &self,
        tenant: &str,
        entity: &str,
        key: &str,
        event: &str,
    ) -> Result<usize> {
        let client = self.client().await?;
        let n = client
            .execute(DISCARD_DEAD_LETTERS, &[&tenant, &entity, &key, &event])
            .await?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    async fn list_dead_letters(&self) -> Result<Vec<DeadLetter>> {
        self.dead_letters(None).await
    }

    async fn get_dead_letter(&self, id: i64) -> Result<Option<DeadLetter>> {
        Ok(self.dead_letters(Some(id)).await?.into_iter().next())
    }

    async fn replay(&self, id: i64) -> Result<bool> {
        Ok(self.replay_dead(Some(id), None).await? == 1)
    }

    async fn replay_all(&self, keep: Option<&str>) -> Result<usize> {
        Ok(usize::try_from(self.replay_dead(None, keep).await?).unwrap_or(usize::MAX))
    }

    async fn queue_depth(&self) -> Result<u64> {
        let client = self.client().await?;
        let n: i64 = client
            .query_one(
                "SELECT COUNT(*) FROM events WHERE state IN ('pending', 'claimed')",
                &[],
            )
            .await?
            .try_get(0)?;
        // COUNT(*) is never negative.
        Ok(n.unsigned_abs())
    }

    async fn queue_summary(&self, tenant: Option<&str>) -> Result<QueueSummary> {
        self.summarize_queue(tenant).await
    }

    async fn find_dead_letters(&self, filter: &DeadLetterFilter) -> Result<(Vec<DeadLetter>, u64)> {
        self.search_dead_letters(filter).await
    }

    async fn delete_dead_letter(&self, id: i64) -> Result<bool> {
        self.remove_dead_letter(id).await
    }

    async fn record_activity(&self, rows: Vec<NewActivity>) -> Result<()> {
        self.insert_activity(rows).await
    }

    async fn list_activity(&self, filter: &ActivityFilter) -> Result<Vec<Activity>> {
        self.select_activity(filter).await
    }

    async fn activity_counts(&self, tenant: Option<&str>, since_ms: i64) -> Result<ActivityCounts> {
        self.count_activity(tenant, since_ms).await
    }

    async fn prune_activity(&self, before_ms: i64) -> Result<usize> {
        self.delete_activity(before_ms).await
    }

    async fn get_binding(
        &self,
        tenant: &str,
        direction: &str,
        entity: &str,
        source_key: &str,
    ) -> Result<Option<Binding>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT target_id, version, body_hash, updated_at, body FROM bindings
                 WHERE tenant = $1 AND direction = $2 AND entity = $3 AND source_key = $4",
            )
            .await?;
        let Some(row) = client
            .query_opt(&stmt, &[&tenant, &direction, &entity, &source_key])
            .await?
        else {
            return Ok(None);
        };
        let target_id: String = row.try_get(0)?;
        let body: Option<String> = row.try_get(4)?;
        Ok(Some(Binding {
            tenant: tenant.to_owned(),
            direction: direction.to_owned(),
            entity: entity.to_owned(),
            source_key: source_key.to_owned(),
            target_id: serde_json::from_str(&target_id)?,
            version: row.try_get(1)?,
            body_hash: row.try_get(2)?,
            body: body.map(|b| serde_json::from_str(&b)).transpose()?,
            updated_at: row.try_get(3)?,
        }))
    }

    async fn put_binding(&self, b: Binding) -> Result<()> {
        let target_id = serde_json::to_string(&b.target_id)?;
        let body = b.body.as_ref().map(serde_json::to_string).transpose()?;
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "INSERT INTO bindings
                     (tenant, direction, entity, source_key, target_id, version, body_hash, updated_at, body)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (tenant, direction, entity, source_key) DO UPDATE SET
                     target_id = EXCLUDED.target_id, version = EXCLUDED.version,
                     body_hash = EXCLUDED.body_hash, updated_at = EXCLUDED.updated_at,
                     body = EXCLUDED.body",
            )
            .await?;
        client
            .execute(
                &stmt,
                &[
                    &b.tenant,
                    &b.direction,
                    &b.entity,
                    &b.source_key,
                    &target_id,
                    &b.version,
                    &b.body_hash,
                    &b.updated_at,
                    &body,
                ],
            )
            .await?;
        Ok(())
    }

    async fn list_bindings(&self, tenant: &str, direction: &str) -> Result<Vec<Binding>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT entity, source_key, target_id, version, body_hash, updated_at, body
                 FROM bindings WHERE tenant = $1 AND direction = $2",
            )
            .await?;
        let mut out = Vec::new();
        for row in client.query(&stmt, &[&tenant, &direction]).await? {
            let target_id: String = row.try_get(2)?;
            let body: Option<String> = row.try_get(6)?;
            out.push(Binding {
                tenant: tenant.to_owned(),
                direction: direction.to_owned(),
                entity: row.try_get(0)?,
                source_key: row.try_get(1)?,
                target_id: serde_json::from_str(&target_id)?,
                version: row.try_get(3)?,
                body_hash: row.try_get(4)?,
                body: body.map(|b| serde_json::from_str(&b)).transpose()?,
                updated_at: row.try_get(5)?,
            });
        }
        Ok(out)
    }

    async fn delete_binding(
        &self,
        tenant: &str,
        direction: &str,
        entity: &str,
        source_key: &str,
    ) -> Result<bool> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "DELETE FROM bindings
                 WHERE tenant = $1 AND direction = $2 AND entity = $3 AND source_key = $4",
            )
            .await?;
        let n = client
            .execute(&stmt, &[&tenant, &direction, &entity, &source_key])
            .await?;
        Ok(n > 0)
    }

    async fn move_binding(
        &self,
        tenant: &str,
        direction: &str,
        entity: &str,
        old_key: &str,
        new_key: &str,
    ) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let exists = tx
            .query_opt(
                "SELECT 1 FROM bindings
                 WHERE tenant = $1 AND direction = $2 AND entity = $3 AND source_key = $4
                 FOR UPDATE",
                &[&tenant, &direction, &entity, &old_key],
            )
            .await?
            .is_some();
        if exists && old_key != new_key {
            tx.execute(
                "DELETE FROM bindings
                 WHERE tenant = $1 AND direction = $2 AND entity = $3 AND source_key = $4",
                &[&tenant, &direction, &entity, &new_key],
            )
            .await?;
            tx.execute(
                "UPDATE bindings SET source_key = $5
                 WHERE tenant = $1 AND direction = $2 AND entity = $3 AND source_key = $4",
                &[&tenant, &direction, &entity, &old_key, &new_key],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(exists)
    }

    async fn get_checkpoint(&self, tenant: &str, name: &str) -> Result<Option<String>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT value FROM checkpoints WHERE tenant = $1 AND name = $2")
            .await?;
        let row = client.query_opt(&stmt, &[&tenant, &name]).await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    async fn set_checkpoint(&self, tenant: &str, name: &str, value: &str) -> Result<()> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "INSERT INTO checkpoints (tenant, name, value) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant, name) DO UPDATE SET value = EXCLUDED.value",
            )
            .await?;
        client.execute(&stmt, &[&tenant, &name, &value]).await?;
        Ok(())
    }

    async fn get_webhook_token(&self, tenant: &str, event: &str) -> Result<Option<Secret>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT token FROM webhook_tokens WHERE tenant = $1 AND event = $2")
            .await?;
        let row = client.query_opt(&stmt, &[&tenant, &event]).await?;
        let token: Option<String> = row.map(|r| r.try_get(0)).transpose()?;
        Ok(token.map(Secret::new))
    }

    async fn put_webhook_token(&self, tenant: &str, event: &str, token: &Secret) -> Result<()> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "INSERT INTO webhook_tokens (tenant, event, token) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant, event) DO UPDATE SET token = EXCLUDED.token",
            )
            .await?;
        client
            .execute(&stmt, &[&tenant, &event, &token.expose()])
            .await?;
        Ok(())
    }
}
