//! The embedded store: one SQLite file in WAL mode.
//!
//! One connection behind a mutex, used from `spawn_blocking`: SQLite allows one writer at a time
//! anyway, and every method here writes or must see a consistent queue, so a pool would only add
//! lock contention. Writes that decide something (claims, migrations) use `BEGIN IMMEDIATE`, which
//! takes the write lock up front, so two processes sharing a file cannot both claim one key.
//!
//! Durability: `synchronous=FULL`. In WAL mode, NORMAL survives a process crash but may lose the
//! last commits on power loss or an OS crash; the intake answers 2xx only after `enqueue` returns,
//! and that answer is a promise that the event will not be lost, so every commit is synced.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde_json::Value;

use super::{
    Activity, ActivityCounts, ActivityFilter, Binding, DeadLetter, DeadLetterFilter, Event,
    NewActivity, NewEvent, QueueSummary, Result, Store, StoreError,
};
use crate::secret::Secret;
use rows::{
    DEAD_LETTER_COLUMNS, EVENT_COLUMNS, dead_letter_from_row, event_from_row, with_payload,
};

mod activity;
mod rows;

/// Versioned migrations, applied in order; a version is never edited once released.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/sqlite/0001_init.sql")),
    (
        2,
        include_str!("migrations/sqlite/0002_repeats_and_baselines.sql"),
    ),
    (3, include_str!("migrations/sqlite/0003_webhook_tokens.sql")),
    (
        4,
        include_str!("migrations/sqlite/0004_activity_and_dead_letter_detail.sql"),
    ),
];

/// How long a statement waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`. Call [`Store::migrate`] before use.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        Self::configure(conn)
    }

    /// A private in-memory store, for tests.
    pub fn in_memory() -> Result<Self> {
        Self::configure(Connection::open_in_memory()?)
    }

    fn configure(conn: Connection) -> Result<Self> {
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection off the async threads.
    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().map_err(|_| StoreError::Poisoned)?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

fn immediate(conn: &mut Connection) -> Result<Transaction<'_>> {
    Ok(conn.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

fn dead_letters(conn: &Connection, id: Option<i64>) -> Result<Vec<DeadLetter>> {
    let sql = format!(
        "SELECT {DEAD_LETTER_COLUMNS}
         FROM dead_letters d JOIN events e ON e.id = d.event_id
         WHERE ?1 IS NULL OR d.id = ?1
         ORDER BY d.id"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![id], dead_letter_from_row)?;
    rows.map(|r| r?.parse()).collect()
}

/// JSON text for a column, or NULL.
fn json_text(value: Option<&Value>) -> Result<Option<String>> {
    Ok(value.map(serde_json::to_string).transpose()?)
}

/// Puts dead-lettered events back in the queue; `id` `None` means all of them but those of
/// events named `keep`.
fn replay(conn: &mut Connection, id: Option<i64>, keep: Option<&str>) -> Result<usize> {
    let tx = immediate(conn)?;
    let chosen = "SELECT d.id FROM dead_letters d JOIN events e ON e.id = d.event_id
                  WHERE (?1 IS NULL OR d.id = ?1) AND (?2 IS NULL OR e.event <> ?2)";
    tx.execute(
        &format!(
            "UPDATE events SET state = 'pending', attempts = 0, not_before = 0,
                    lease_owner = NULL, lease_until = NULL, last_error = NULL
             WHERE id IN (SELECT event_id FROM dead_letters WHERE id IN ({chosen}))"
        ),
        params![id, keep],
    )?;
    let n = tx.execute(
        &format!("DELETE FROM dead_letters WHERE id IN ({chosen})"),
        params![id, keep],
    )?;
    tx.commit()?;
    Ok(n)
}

/// What a dead letter is filed with.
struct Letter {
    reason: String,
    mapping: Option<String>,
    field: Option<String>,
    /// JSON text.
    detail: Option<String>,
}

impl Letter {
    fn new(
        reason: &str,
        mapping: Option<&str>,
        field: Option<&str>,
        detail: Option<&Value>,
    ) -> Result<Self> {
        Ok(Letter {
            reason: reason.to_owned(),
            mapping: mapping.map(str::to_owned),
            field: field.map(str::to_owned),
            detail: json_text(detail)?,
        })
    }
}

/// Files the dead event `event_id` under a dead letter: the record's letter with the same reason
/// when there is one (it counts one more failure and now holds this, the latest, event and
/// detail; the event it held is superseded), else a new one. Returns the letter's id.
fn file_letter(tx: &Transaction<'_>, event_id: i64, letter: &Letter, now_ms: i64) -> Result<i64> {
    let Letter {
        reason,
        mapping,
        field,
        detail,
    } = letter;
    let key = super::reason_key(reason);
    let same: Option<(i64, i64)> = tx
        .query_row(
            "SELECT d.id, d.event_id FROM dead_letters d
             JOIN events e ON e.id = d.event_id
             JOIN events n ON n.id = ?1
             WHERE e.tenant = n.tenant AND e.entity = n.entity AND e.key = n.key
               AND COALESCE(d.reason_key, d.reason) = ?2 AND d.mapping IS ?3
               AND d.event_id <> ?1
             ORDER BY d.id LIMIT 1",
            params![event_id, key, mapping],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((same_letter, old_event)) = same {
        tx.execute(
            "UPDATE dead_letters SET event_id = ?2, reason = ?3, field = ?4,
                    failures = failures + 1, last_failed_at = ?5, detail = ?6
             WHERE id = ?1",
            params![same_letter, event_id, reason, field, now_ms, detail],
        )?;
        tx.execute(
            "UPDATE events SET state = 'superseded' WHERE id = ?1",
            params![old_event],
        )?;
        return Ok(same_letter);
    }
    tx.execute(
        "INSERT INTO dead_letters
             (event_id, reason, reason_key, mapping, field, failed_at, last_failed_at, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)",
        params![event_id, reason, key, mapping, field, now_ms, detail],
    )?;
    Ok(tx.last_insert_rowid())
}

/// Drops the dead letters of one record; their events end 'done'.
fn discard(
    tx: &Transaction<'_>,
    tenant: &str,
    entity: &str,
    key: &str,
    event: &str,
) -> Result<usize> {
    let ids = "SELECT d.id FROM dead_letters d JOIN events e ON e.id = d.event_id
               WHERE e.tenant = ?1 AND e.entity = ?2 AND e.key = ?3 AND e.event = ?4";
    tx.execute(
        &format!(
            "UPDATE events SET state = 'done'
             WHERE id IN (SELECT event_id FROM dead_letters WHERE id IN ({ids}))"
        ),
        params![tenant, entity, key, event],
    )?;
    Ok(tx.execute(
        &format!("DELETE FROM dead_letters WHERE id IN ({ids})"),
        params![tenant, entity, key, event],
    )?)
}

impl Store for SqliteStore {
    async fn migrate(&self) -> Result<usize> {
        self.run(|conn| {
            let tx = immediate(conn)?;
            tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)",
                [],
            )?;
            let mut applied = 0;
            for (version, sql) in MIGRATIONS {
                let done: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)",
                    params![version],
                    |r| r.get(0),
                )?;
                if !done {
                    tx.execute_batch(sql)?;
                    tx.execute(
                        "INSERT INTO schema_migrations (version) VALUES (?1)",
                        params![version],
                    )?;
                    applied += 1;
                }
            }
            tx.commit()?;
            Ok(applied)
        })
        .await
    }

    async fn pending_migrations(&self) -> Result<usize> {
        self.run(|conn| {
            let has_table: bool = conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations')",
                [],
                |r| r.get(0),
            )?;
            if !has_table {
                return Ok(MIGRATIONS.len());
            }
            let mut pending = 0;
            for (version, _) in MIGRATIONS {
                let done: bool = conn.query_row(
                    "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)",
                    params![version],
                    |r| r.get(0),
                )?;
                pending += usize::from(!done);
            }
            Ok(pending)
        })
        .await
    }

    async fn enqueue(&self, event: NewEvent) -> Result<i64> {
        let payload = serde_json::to_string(&event.payload)?;
        self.run(move |conn| {
            conn.prepare_cached(
                "INSERT INTO events (tenant, entity, key, event, payload, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                event.tenant,
                event.entity,
                event.key,
                event.event,
                payload,
                event.received_at
            ])?;
            Ok(conn.last_insert_rowid())
        })
        .await
    }

    async fn enqueue_many(&self, events: Vec<NewEvent>) -> Result<Vec<i64>> {
        let rows = events
            .into_iter()
            .map(|e| Ok((serde_json::to_string(&e.payload)?, e)))
            .collect::<Result<Vec<_>>>()?;
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let mut ids = Vec::with_capacity(rows.len());
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO events (tenant, entity, key, event, payload, received_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                for (payload, e) in &rows {
                    insert.execute(params![
                        e.tenant,
                        e.entity,
                        e.key,
                        e.event,
                        payload,
                        e.received_at
                    ])?;
                    ids.push(tx.last_insert_rowid());
                }
            }
            tx.commit()?;
            Ok(ids)
        })
        .await
    }

    async fn claim(
        &self,
        tenant: Option<&str>,
        worker: &str,
        limit: usize,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Vec<Event>> {
        let tenant = tenant.map(str::to_owned);
        let worker = worker.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let lease_until = now_ms.saturating_add(lease_ms);
        self.run(move |conn| {
            let tx = immediate(conn)?;
            // Per open key: skip it while any event holds an unexpired lease; otherwise take its
            // latest event if that one is due. An expired claim counts as open again.
            let sql = format!(
                "WITH open_keys AS (
                     SELECT MAX(id) AS latest, MIN(id) AS oldest
                     FROM events
                     WHERE state IN ('pending', 'claimed') AND (?1 IS NULL OR tenant = ?1)
                     GROUP BY tenant, entity, key
                     HAVING SUM(state = 'claimed' AND lease_until > ?2) = 0
                 )
                 SELECT {EVENT_COLUMNS}
                 FROM open_keys o JOIN events e ON e.id = o.latest
                 WHERE e.not_before <= ?2
                 ORDER BY o.oldest
                 LIMIT ?3"
            );
            let claimed = tx
                .prepare_cached(&sql)?
                .query_map(params![tenant, now_ms, limit], event_from_row)?
                .map(|r| with_payload(r?))
                .collect::<Result<Vec<Event>>>()?;
            for event in &claimed {
                tx.prepare_cached(
                    "UPDATE events SET state = 'claimed', lease_owner = ?2, lease_until = ?3
                     WHERE id = ?1",
                )?
                .execute(params![event.id, worker, lease_until])?;
                tx.prepare_cached(
                    "UPDATE events SET state = 'superseded', lease_owner = NULL, lease_until = NULL
                     WHERE tenant = ?1 AND entity = ?2 AND key = ?3 AND id < ?4
                       AND state IN ('pending', 'claimed')",
                )?
                .execute(params![
                    event.tenant,
                    event.entity,
                    event.key,
                    event.id
                ])?;
            }
            tx.commit()?;
            Ok(claimed)
        })
        .await
    }

    async fn claim_key(
        &self,
        event: NewEvent,
        worker: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<i64>> {
        let payload = serde_json::to_string(&event.payload)?;
        let worker = worker.to_owned();
        let lease_until = now_ms.saturating_add(lease_ms);
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let held: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM events
                     WHERE tenant = ?1 AND entity = ?2 AND key = ?3
                       AND state = 'claimed' AND lease_until > ?4 AND lease_owner <> ?5)",
                params![event.tenant, event.entity, event.key, now_ms, worker],
                |r| r.get(0),
            )?;
            if held {
                return Ok(None);
            }
            tx.execute(
                "UPDATE events SET state = 'superseded', lease_owner = NULL, lease_until = NULL
                 WHERE tenant = ?1 AND entity = ?2 AND key = ?3 AND state IN ('pending', 'claimed')",
                params![event.tenant, event.entity, event.key],
            )?;
            tx.execute(
                "INSERT INTO events (tenant, entity, key, event, payload, received_at, state,
                                     lease_owner, lease_until)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'claimed', ?7, ?8)",
                params![
                    event.tenant,
                    event.entity,
                    event.key,
                    event.event,
                    payload,
                    event.received_at,
                    worker,
                    lease_until
                ],
            )?;
            let id = tx.last_insert_rowid();
            tx.commit()?;
            Ok(Some(id))
        })
        .await
    }

    async fn complete(&self, id: i64, worker: &str) -> Result<bool> {
        let worker = worker.to_owned();
        self.run(move |conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE events SET state = 'done', lease_owner = NULL, lease_until = NULL
                     WHERE id = ?1 AND state = 'claimed' AND lease_owner = ?2",
                )?
                .execute(params![id, worker])?;
            Ok(n == 1)
        })
        .await
    }

    async fn release(&self, id: i64, worker: &str) -> Result<bool> {
        let worker = worker.to_owned();
        self.run(move |conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE events SET state = 'pending', lease_owner = NULL, lease_until = NULL
                     WHERE id = ?1 AND state = 'claimed' AND lease_owner = ?2",
                )?
                .execute(params![id, worker])?;
            Ok(n == 1)
        })
        .await
    }

    async fn retry(&self, id: i64, worker: &str, error: &str, not_before_ms: i64) -> Result<bool> {
        let worker = worker.to_owned();
        let error = error.to_owned();
        self.run(move |conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE events SET state = 'pending', attempts = attempts + 1,
                            not_before = ?3, last_error = ?4, lease_owner = NULL, lease_until = NULL
                     WHERE id = ?1 AND state = 'claimed' AND lease_owner = ?2",
                )?
                .execute(params![id, worker, not_before_ms, error])?;
            Ok(n == 1)
        })
        .await
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
        let worker = worker.to_owned();
        let letter = Letter::new(reason, mapping, field, detail)?;
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let n = tx.execute(
                "UPDATE events SET state = 'dead', last_error = ?3,
                        lease_owner = NULL, lease_until = NULL
                 WHERE id = ?1 AND state = 'claimed' AND lease_owner = ?2",
                params![id, worker, letter.reason],
            )?;
            if n == 0 {
                return Ok(None);
            }
            let dead_id = file_letter(&tx, id, &letter, now_ms)?;
            tx.commit()?;
            Ok(Some(dead_id))
        })
        .await
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
        let letter = Letter::new(reason, mapping, field, detail)?;
        self.run(move |conn| {
            let tx = immediate(conn)?;
            tx.execute(
                "INSERT INTO events (tenant, entity, key, event, payload, received_at, state, last_error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'dead', ?7)",
                params![event.tenant, event.entity, event.key, event.event, payload, event.received_at, letter.reason],
            )?;
            let event_id = tx.last_insert_rowid();
            let id = file_letter(&tx, event_id, &letter, event.received_at)?;
            // A letter of this record and event for another reason is out of date.
            tx.execute(
                "UPDATE events SET state = 'done' WHERE id IN (
                     SELECT d.event_id FROM dead_letters d JOIN events e ON e.id = d.event_id
                     WHERE e.tenant = ?1 AND e.entity = ?2 AND e.key = ?3 AND e.event = ?4
                       AND d.id <> ?5)",
                params![event.tenant, event.entity, event.key, event.event, id],
            )?;
            tx.execute(
                "DELETE FROM dead_letters WHERE id <> ?5 AND event_id IN (
                     SELECT id FROM events
                     WHERE tenant = ?1 AND entity = ?2 AND key = ?3 AND event = ?4)",
                params![event.tenant, event.entity, event.key, event.event, id],
            )?;
            tx.commit()?;
            Ok(id)
        })
        .await
    }

    async fn discard_dead_letters(
        &self,
        tenant: &str,
        entity: &str,
        key: &str,
        event: &str,
    ) -> Result<usize> {
        let args = [tenant, entity, key, event].map(str::to_owned);
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let [tenant, entity, key, event] = &args;
            let n = discard(&tx, tenant, entity, key, event)?;
            tx.commit()?;
            Ok(n)
        })
        .await
    }

    async fn list_dead_letters(&self) -> Result<Vec<DeadLetter>> {
        self.run(|conn| dead_letters(conn, None)).await
    }

    async fn get_dead_letter(&self, id: i64) -> Result<Option<DeadLetter>> {
        self.run(move |conn| Ok(dead_letters(conn, Some(id))?.into_iter().next()))
            .await
    }

    async fn replay(&self, id: i64) -> Result<bool> {
        self.run(move |conn| Ok(replay(conn, Some(id), None)? == 1))
            .await
    }

    async fn replay_all(&self, keep: Option<&str>) -> Result<usize> {
        let keep = keep.map(str::to_string);
        self.run(move |conn| replay(conn, None, keep.as_deref()))
            .await
    }

    async fn queue_depth(&self) -> Result<u64> {
        self.run(|conn| {
            let n: i64 = conn.query_row(
                "SELECT COUNT(*) FROM events WHERE state IN ('pending', 'claimed')",
                [],
                |r| r.get(0),
            )?;
            // COUNT(*) is never negative.
            Ok(n.unsigned_abs())
        })
        .await
    }

    async fn queue_summary(&self, tenant: Option<&str>) -> Result<QueueSummary> {
        let tenant = tenant.map(str::to_owned);
        self.run(move |conn| activity::queue_summary(conn, tenant.as_deref()))
            .await
    }

    async fn find_dead_letters(&self, filter: &DeadLetterFilter) -> Result<(Vec<DeadLetter>, u64)> {
        let filter = filter.clone();
        self.run(move |conn| activity::find_dead_letters(conn, &filter))
            .await
    }

    async fn delete_dead_letter(&self, id: i64) -> Result<bool> {
        self.run(move |conn| activity::delete_dead_letter(conn, id))
            .await
    }

    async fn record_activity(&self, rows: Vec<NewActivity>) -> Result<()> {
        let rows = activity::to_rows(rows)?;
        self.run(move |conn| activity::record(conn, &rows)).await
    }

    async fn list_activity(&self, filter: &ActivityFilter) -> Result<Vec<Activity>> {
        let filter = filter.clone();
        self.run(move |conn| activity::list(conn, &filter)).await
    }

    async fn activity_counts(&self, tenant: Option<&str>, since_ms: i64) -> Result<ActivityCounts> {
        let tenant = tenant.map(str::to_owned);
        self.run(move |conn| activity::counts(conn, tenant.as_deref(), since_ms))
            .await
    }

    async fn prune_activity(&self, before_ms: i64) -> Result<usize> {
        self.run(move |conn| activity::prune(conn, before_ms)).await
    }

    async fn get_binding(
        &self,
        tenant: &str,
        direction: &str,
        entity: &str,
        source_key: &str,
    ) -> Result<Option<Binding>> {
        let key = [tenant, direction, entity, source_key].map(str::to_owned);
        self.run(move |conn| {
            let row = conn
                .prepare_cached(
                    "SELECT target_id, version, body_hash, updated_at, body FROM bindings
                     WHERE tenant = ?1 AND direction = ?2 AND entity = ?3 AND source_key = ?4",
                )?
                .query_row(params![key[0], key[1], key[2], key[3]], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<i64>>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Option<String>>(4)?,
                    ))
                })
                .optional()?;
            let Some((target_id, version, body_hash, updated_at, body)) = row else {
                return Ok(None);
            };
            let [tenant, direction, entity, source_key] = key;
            Ok(Some(Binding {
                tenant,
                direction,
                entity,
                source_key,
                target_id: serde_json::from_str(&target_id)?,
                version,
                body_hash,
                body: body.map(|b| serde_json::from_str(&b)).transpose()?,
                updated_at,
            }))
        })
        .await
    }

    async fn put_binding(&self, b: Binding) -> Result<()> {
        let target_id = serde_json::to_string(&b.target_id)?;
        let body = b.body.as_ref().map(serde_json::to_string).transpose()?;
        self.run(move |conn| {
            conn.prepare_cached(
                "INSERT INTO bindings
                     (tenant, direction, entity, source_key, target_id, version, body_hash, updated_at, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (tenant, direction, entity, source_key) DO UPDATE SET
                     target_id = excluded.target_id, version = excluded.version,
                     body_hash = excluded.body_hash, updated_at = excluded.updated_at,
                     body = excluded.body",
            )?
            .execute(params![
                b.tenant,
                b.direction,
                b.entity,
                b.source_key,
                target_id,
                b.version,
                b.body_hash,
                b.updated_at,
                body
            ])?;
            Ok(())
        })
        .await
    }

    async fn list_bindings(&self, tenant: &str, direction: &str) -> Result<Vec<Binding>> {
        let key = [tenant, direction].map(str::to_owned);
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT entity, source_key, target_id, version, body_hash, updated_at, body
                 FROM bindings WHERE tenant = ?1 AND direction = ?2",
            )?;
            let rows = stmt.query_map(params![key[0], key[1]], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, Option<String>>(6)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (entity, source_key, target_id, version, body_hash, updated_at, body) = row?;
                out.push(Binding {
                    tenant: key[0].clone(),
                    direction: key[1].clone(),
                    entity,
                    source_key,
                    target_id: serde_json::from_str(&target_id)?,
                    version,
                    body_hash,
                    body: body.map(|b| serde_json::from_str(&b)).transpose()?,
                    updated_at,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn delete_binding(
        &self,
        tenant: &str,
        direction: &str,
        entity: &str,
        source_key: &str,
    ) -> Result<bool> {
        let key = [tenant, direction, entity, source_key].map(str::to_owned);
        self.run(move |conn| {
            let n = conn.execute(
                "DELETE FROM bindings
                 WHERE tenant = ?1 AND direction = ?2 AND entity = ?3 AND source_key = ?4",
                params![key[0], key[1], key[2], key[3]],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn move_binding(
        &self,
        tenant: &str,
        direction: &str,
        entity: &str,
        old_key: &str,
        new_key: &str,
    ) -> Result<bool> {
        let args = [tenant, direction, entity, old_key, new_key].map(str::to_owned);
        self.run(move |conn| {
            let [tenant, direction, entity, old_key, new_key] = &args;
            let tx = immediate(conn)?;
            let exists: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM bindings
                 WHERE tenant = ?1 AND direction = ?2 AND entity = ?3 AND source_key = ?4)",
                params![tenant, direction, entity, old_key],
                |r| r.get(0),
            )?;
            if !exists || old_key == new_key {
                return Ok(exists);
            }
            tx.execute(
                "DELETE FROM bindings
                 WHERE tenant = ?1 AND direction = ?2 AND entity = ?3 AND source_key = ?4",
                params![tenant, direction, entity, new_key],
            )?;
            tx.execute(
                "UPDATE bindings SET source_key = ?5
                 WHERE tenant = ?1 AND direction = ?2 AND entity = ?3 AND source_key = ?4",
                params![tenant, direction, entity, old_key, new_key],
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn get_checkpoint(&self, tenant: &str, name: &str) -> Result<Option<String>> {
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.run(move |conn| {
            Ok(conn
                .prepare_cached("SELECT value FROM checkpoints WHERE tenant = ?1 AND name = ?2")?
                .query_row(params![tenant, name], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    async fn set_checkpoint(&self, tenant: &str, name: &str, value: &str) -> Result<()> {
        let args = [tenant, name, value].map(str::to_owned);
        self.run(move |conn| {
            conn.prepare_cached(
                "INSERT INTO checkpoints (tenant, name, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant, name) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![args[0], args[1], args[2]])?;
            Ok(())
        })
        .await
    }

    async fn get_webhook_token(&self, tenant: &str, event: &str) -> Result<Option<Secret>> {
        let (tenant, event) = (tenant.to_owned(), event.to_owned());
        self.run(move |conn| {
            let token: Option<String> = conn
                .prepare_cached(
                    "SELECT token FROM webhook_tokens WHERE tenant = ?1 AND event = ?2",
                )?
                .query_row(params![tenant, event], |r| r.get(0))
                .optional()?;
            Ok(token.map(Secret::new))
        })
        .await
    }

    async fn put_webhook_token(&self, tenant: &str, event: &str, token: &Secret) -> Result<()> {
        let args = [tenant, event, token.expose()].map(str::to_owned);
        self.run(move |conn| {
            conn.prepare_cached(
                "INSERT INTO webhook_tokens (tenant, event, token) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant, event) DO UPDATE SET token = excluded.token",
            )?
            .execute(params![args[0], args[1], args[2]])?;
            Ok(())
        })
        .await
    }
}
