//! Reading PostgreSQL rows into the store's types: an event, and a dead letter with its event.

use tokio_postgres::Row;

use crate::store::{DeadLetter, Event, Result};

/// A dead letter `d` and its event `e`, in the order [`dead_letter_from_row`] reads.
pub(super) const DEAD_LETTER_COLUMNS: &str =
    "e.id, e.tenant, e.entity, e.key, e.event, e.payload, e.received_at, e.attempts,
     d.id, d.reason, d.mapping, d.field, d.failed_at, d.failures,
     COALESCE(d.last_failed_at, d.failed_at), d.detail";

/// The event in the first eight columns: id, tenant, entity, key, event, payload, received_at,
/// attempts.
pub(super) fn event_from_row(row: &Row) -> Result<Event> {
    let payload: String = row.try_get(5)?;
    let attempts: i32 = row.try_get(7)?;
    Ok(Event {
        id: row.try_get(0)?,
        tenant: row.try_get(1)?,
        entity: row.try_get(2)?,
        key: row.try_get(3)?,
        event: row.try_get(4)?,
        payload: serde_json::from_str(&payload)?,
        received_at: row.try_get(6)?,
        // Attempts start at 0 and only grow.
        attempts: u32::try_from(attempts).unwrap_or(0),
    })
}

/// One row of [`DEAD_LETTER_COLUMNS`].
pub(super) fn dead_letter_from_row(row: &Row) -> Result<DeadLetter> {
    let detail: Option<String> = row.try_get(15)?;
    Ok(DeadLetter {
        event: event_from_row(row)?,
        id: row.try_get(8)?,
        reason: row.try_get(9)?,
        mapping: row.try_get(10)?,
        field: row.try_get(11)?,
        failed_at: row.try_get(12)?,
        // A count from 1 up.
        failures: u32::try_from(row.try_get::<_, i32>(13)?).unwrap_or(0),
        last_failed_at: row.try_get(14)?,
        detail: detail.map(|d| serde_json::from_str(&d)).transpose()?,
    })
}
