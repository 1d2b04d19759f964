//! Reading SQLite rows into the store's types: an event, and a dead letter with its event.

use rusqlite::Row;

use crate::store::{DeadLetter, Event, Result};

pub(super) const EVENT_COLUMNS: &str =
    "e.id, e.tenant, e.entity, e.key, e.event, e.payload, e.received_at, e.attempts";

/// A dead letter `d` and its event `e`, in the order [`dead_letter_from_row`] reads.
pub(super) const DEAD_LETTER_COLUMNS: &str =
    "e.id, e.tenant, e.entity, e.key, e.event, e.payload, e.received_at, e.attempts,
     d.id, d.reason, d.mapping, d.field, d.failed_at, d.failures,
     COALESCE(d.last_failed_at, d.failed_at), d.detail";

/// The event of [`EVENT_COLUMNS`] and its payload's text, which the caller parses (where a JSON
/// error can become a `StoreError`: this runs inside rusqlite's callbacks).
pub(super) fn event_from_row(row: &Row<'_>) -> rusqlite::Result<(Event, String)> {
    let payload: String = row.get(5)?;
    Ok((
        Event {
            id: row.get(0)?,
            tenant: row.get(1)?,
            entity: row.get(2)?,
            key: row.get(3)?,
            event: row.get(4)?,
            payload: serde_json::Value::Null,
            received_at: row.get(6)?,
            attempts: row.get(7)?,
        },
        payload,
    ))
}

pub(super) fn with_payload((mut event, payload): (Event, String)) -> Result<Event> {
    event.payload = serde_json::from_str(&payload)?;
    Ok(event)
}

/// A dead letter as read, its JSON not parsed yet (see [`event_from_row`]).
pub(super) struct RawLetter {
    letter: DeadLetter,
    payload: String,
    detail: Option<String>,
}

/// One row of [`DEAD_LETTER_COLUMNS`].
pub(super) fn dead_letter_from_row(row: &Row<'_>) -> rusqlite::Result<RawLetter> {
    let (event, payload) = event_from_row(row)?;
    Ok(RawLetter {
        letter: DeadLetter {
            id: row.get(8)?,
            event,
            reason: row.get(9)?,
            mapping: row.get(10)?,
            field: row.get(11)?,
            failed_at: row.get(12)?,
            failures: row.get(13)?,
            last_failed_at: row.get(14)?,
            detail: None,
        },
        payload,
        detail: row.get(15)?,
    })
}

impl RawLetter {
    pub(super) fn parse(self) -> Result<DeadLetter> {
        let RawLetter {
            mut letter,
            payload,
            detail,
        } = self;
        letter.event.payload = serde_json::from_str(&payload)?;
        letter.detail = detail.map(|d| serde_json::from_str(&d)).transpose()?;
        Ok(letter)
    }
}
