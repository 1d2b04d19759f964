//! The SQL the PostgreSQL store runs, beside the migrations that make its tables.

/// Versioned migrations, applied in order; a version is never edited once released.
pub(super) const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_init.sql")),
    (
        2,
        include_str!("../migrations/postgres/0002_repeats_and_baselines.sql"),
    ),
    (
        3,
        include_str!("../migrations/postgres/0003_webhook_tokens.sql"),
    ),
    (
        4,
        include_str!("../migrations/postgres/0004_activity_and_dead_letter_detail.sql"),
    ),
];

/// The advisory lock migrations run under ("rbtx" in ASCII): one per database.
pub(super) const MIGRATION_LOCK: i64 = 0x7262_7478;

/// Locks the keys of the events being enqueued, creating their rows if needed, in one sorted
/// order so that two batches never wait for each other in a cycle.
pub(super) const LOCK_KEYS: &str = "INSERT INTO keys (tenant, entity, key)
     SELECT DISTINCT tenant, entity, key FROM unnest($1::text[], $2::text[], $3::text[])
         AS n (tenant, entity, key)
     ORDER BY tenant, entity, key
     ON CONFLICT (tenant, entity, key) DO UPDATE SET tenant = EXCLUDED.tenant";

/// Ids come from the identity in input order (the `ORDER BY`), so sorted ids match the input.
pub(super) const INSERT_EVENTS: &str =
    "INSERT INTO events (tenant, entity, key, event, payload, received_at)
     SELECT tenant, entity, key, event, payload, received_at
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[])
         WITH ORDINALITY AS n (tenant, entity, key, event, payload, received_at, i)
     ORDER BY i
     RETURNING id";

/// Claim, first statement: lock the keys that look ready, oldest waiting first. Locked keys are
/// skipped (another process is enqueuing or claiming them); `LIMIT` counts only locked rows.
pub(super) const LOCK_READY_KEYS: &str = "WITH open_keys AS (
         SELECT tenant, entity, key, MIN(id) AS oldest
         FROM events
         WHERE state IN ('pending', 'claimed') AND ($1::text IS NULL OR tenant = $1)
         GROUP BY tenant, entity, key
         HAVING NOT bool_or(state = 'claimed' AND lease_until > $2)
            AND (array_agg(not_before ORDER BY id DESC))[1] <= $2
     )
     SELECT k.tenant, k.entity, k.key
     FROM open_keys o JOIN keys k USING (tenant, entity, key)
     ORDER BY o.oldest
     LIMIT $3
     FOR UPDATE OF k SKIP LOCKED";

/// Claim, second statement, on the locked keys with a fresh snapshot: per key with no unexpired
/// lease, lease the latest event if it is due and supersede the older open ones. The conditions
/// are repeated on the final `UPDATE` because a row changed meanwhile (an expired holder
/// completing late) is checked again there.
pub(super) const CLAIM_LOCKED_KEYS: &str = "WITH locked AS (
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS l (tenant, entity, key)
     ),
     open_keys AS (
         SELECT e.tenant, e.entity, e.key, MAX(e.id) AS latest, MIN(e.id) AS oldest
         FROM events e JOIN locked l USING (tenant, entity, key)
         WHERE e.state IN ('pending', 'claimed')
         GROUP BY e.tenant, e.entity, e.key
         HAVING NOT bool_or(e.state = 'claimed' AND e.lease_until > $4)
     ),
     chosen AS (
         SELECT o.* FROM open_keys o JOIN events e ON e.id = o.latest WHERE e.not_before <= $4
     ),
     superseded AS (
         UPDATE events e SET state = 'superseded', lease_owner = NULL, lease_until = NULL
         FROM chosen c
         WHERE e.tenant = c.tenant AND e.entity = c.entity AND e.key = c.key AND e.id < c.latest
           AND e.state IN ('pending', 'claimed')
     )
     UPDATE events e SET state = 'claimed', lease_owner = $5, lease_until = $6
     FROM chosen c
     WHERE e.id = c.latest AND e.state IN ('pending', 'claimed') AND e.not_before <= $4
       AND NOT (e.state = 'claimed' AND e.lease_until > $4)
     RETURNING e.id, e.tenant, e.entity, e.key, e.event, e.payload, e.received_at, e.attempts,
               c.oldest";

/// Drops the dead letters of one record (tenant, entity, key, event name); their events end 'done'.
pub(super) const DISCARD_DEAD_LETTERS: &str = "WITH d AS (
         DELETE FROM dead_letters
         WHERE event_id IN (
             SELECT id FROM events
             WHERE tenant = $1 AND entity = $2 AND key = $3 AND event = $4 AND state = 'dead'
         )
         RETURNING event_id
     )
     UPDATE events SET state = 'done' FROM d WHERE events.id = d.event_id";

/// Creates one key's row if need be and locks it until the transaction ends.
pub(super) const LOCK_KEY: &str = "INSERT INTO keys (tenant, entity, key) VALUES ($1, $2, $3)
     ON CONFLICT (tenant, entity, key) DO UPDATE SET tenant = EXCLUDED.tenant";

/// The channel enqueues notify on commit: "<origin> <tenant>".
pub(super) const QUEUED_CHANNEL: &str = "rbtx_queued";

/// The record's dead letter with the same reason as the dead event $1, and the event it holds.
pub(super) const SAME_LETTER: &str = "SELECT d.id, d.event_id FROM dead_letters d
     JOIN events e ON e.id = d.event_id
     JOIN events n ON n.id = $1
     WHERE e.tenant = n.tenant AND e.entity = n.entity AND e.key = n.key
       AND COALESCE(d.reason_key, d.reason) = $2 AND d.mapping IS NOT DISTINCT FROM $3
       AND d.event_id <> $1
     ORDER BY d.id LIMIT 1
     FOR UPDATE OF d";

/// A repeat: the letter now holds the latest event ($2), its reason and detail, and counts one
/// more failure.
pub(super) const REPEAT_LETTER: &str = "UPDATE dead_letters SET event_id = $2, reason = $3,
         field = $4, failures = failures + 1, last_failed_at = $5, detail = $6
     WHERE id = $1";

pub(super) const NEW_LETTER: &str = "INSERT INTO dead_letters
         (event_id, reason, reason_key, mapping, field, failed_at, last_failed_at, detail)
     VALUES ($1, $2, $3, $4, $5, $6, $6, $7)
     RETURNING id";

/// Drops the dead letters of one record and event name other than letter $5; their events end 'done'.
pub(super) const DISCARD_OTHER_LETTERS: &str = "WITH d AS (
         DELETE FROM dead_letters
         WHERE id <> $5 AND event_id IN (
             SELECT id FROM events
             WHERE tenant = $1 AND entity = $2 AND key = $3 AND event = $4 AND state = 'dead'
         )
         RETURNING event_id
     )
     UPDATE events SET state = 'done' FROM d WHERE events.id = d.event_id";
