//! The activity log in SQLite, and the reads an operator's console makes of the queue and the
//! dead letters. The queries are built from the filters given ([`crate::store::filter`]), so
//! each combination walks an index newest first and stops at the end of its page.

use rusqlite::types::Value as Sql;
use rusqlite::{Connection, params, params_from_iter};

use super::rows::{DEAD_LETTER_COLUMNS, dead_letter_from_row};
use crate::store::filter::{self, Arg, SQLITE};
use crate::store::{
    Activity, ActivityCounts, ActivityFilter, DeadLetter, DeadLetterFilter, NewActivity,
    QueueSummary, Result,
};

/// A row to insert, its target id already JSON text.
pub(super) type Row = (NewActivity, Option<String>);

pub(super) fn to_rows(rows: Vec<NewActivity>) -> Result<Vec<Row>> {
    rows.into_iter()
        .map(|r| {
            let id = r
                .target_id
                .as_ref()
                .map(serde_json::to_string)
                .transpose()?;
            Ok((r, id))
        })
        .collect()
}

fn args(args: &[Arg]) -> impl Iterator<Item = Sql> + '_ {
    args.iter().map(|a| match a {
        Arg::Int(n) => Sql::Integer(*n),
        Arg::Text(t) => Sql::Text(t.clone()),
    })
}

/// COUNT(*) is never negative.
fn count(n: i64) -> u64 {
    n.unsigned_abs()
}

pub(super) fn record(conn: &mut Connection, rows: &[Row]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO activity
                 (tenant, event_id, entity, key, event, outcome, message, target_id, took_ms, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for (r, target_id) in rows {
            insert.execute(params![
                r.tenant, r.event_id, r.entity, r.key, r.event, r.outcome, r.message, target_id,
                r.took_ms, r.at
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

pub(super) fn list(conn: &Connection, f: &ActivityFilter) -> Result<Vec<Activity>> {
    let mut w = filter::activity(SQLITE, f);
    let limit = w.limit(SQLITE, f.limit);
    let sql = format!(
        "SELECT id, tenant, event_id, entity, key, event, outcome, message, target_id, took_ms, at
         FROM activity{} ORDER BY id DESC{limit}",
        w.sql()
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(args(&w.args)), |r| {
        Ok((
            Activity {
                id: r.get(0)?,
                tenant: r.get(1)?,
                event_id: r.get(2)?,
                entity: r.get(3)?,
                key: r.get(4)?,
                event: r.get(5)?,
                outcome: r.get(6)?,
                message: r.get(7)?,
                target_id: None,
                took_ms: r.get(9)?,
                at: r.get(10)?,
            },
            r.get::<_, Option<String>>(8)?,
        ))
    })?;
    rows.map(|row| {
        let (mut a, target_id) = row?;
        a.target_id = target_id.map(|t| serde_json::from_str(&t)).transpose()?;
        Ok(a)
    })
    .collect()
}

pub(super) fn counts(
    conn: &Connection,
    tenant: Option<&str>,
    since_ms: i64,
) -> Result<ActivityCounts> {
    let failed = "COALESCE(SUM(outcome IN ('dead_lettered', 'retried')), 0)";
    let read = |r: &rusqlite::Row<'_>| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?));
    let (handled, failed) = match tenant {
        Some(t) => conn
            .prepare_cached(&format!(
                "SELECT COUNT(*), {failed} FROM activity WHERE tenant = ?1 AND at >= ?2"
            ))?
            .query_row(params![t, since_ms], read)?,
        None => conn
            .prepare_cached(&format!(
                "SELECT COUNT(*), {failed} FROM activity WHERE at >= ?1"
            ))?
            .query_row(params![since_ms], read)?,
    };
    Ok(ActivityCounts {
        handled: count(handled),
        failed: count(failed),
    })
}

pub(super) fn prune(conn: &Connection, before_ms: i64) -> Result<usize> {
    Ok(conn
        .prepare_cached("DELETE FROM activity WHERE at < ?1")?
        .execute(params![before_ms])?)
}

pub(super) fn queue_summary(conn: &Connection, tenant: Option<&str>) -> Result<QueueSummary> {
    let open = "SELECT COUNT(*), MIN(received_at) FROM events
                WHERE state IN ('pending', 'claimed')";
    let read = |r: &rusqlite::Row<'_>| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?));
    let (depth, oldest) = match tenant {
        Some(t) => conn
            .prepare_cached(&format!("{open} AND tenant = ?1"))?
            .query_row(params![t], read)?,
        None => conn.prepare_cached(open)?.query_row([], read)?,
    };
    Ok(QueueSummary {
        depth: count(depth),
        oldest_received_at: oldest,
    })
}

pub(super) fn find_dead_letters(
    conn: &mut Connection,
    f: &DeadLetterFilter,
) -> Result<(Vec<DeadLetter>, u64)> {
    const FROM: &str = "FROM dead_letters d JOIN events e ON e.id = d.event_id";
    // One snapshot for the page and the total.
    let tx = conn.transaction()?;
    let mut page = filter::dead_letters(SQLITE, f, true);
    let limit = page.limit(SQLITE, f.limit);
    let sql = format!(
        "SELECT {DEAD_LETTER_COLUMNS} {FROM}{} ORDER BY d.last_failed_at DESC, d.id DESC{limit}",
        page.sql()
    );
    let letters = tx
        .prepare_cached(&sql)?
        .query_map(params_from_iter(args(&page.args)), dead_letter_from_row)?
        .map(|r| r?.parse())
        .collect::<Result<Vec<_>>>()?;
    let all = filter::dead_letters(SQLITE, f, false);
    let total: i64 = tx
        .prepare_cached(&format!("SELECT COUNT(*) {FROM}{}", all.sql()))?
        .query_row(params_from_iter(args(&all.args)), |r| r.get(0))?;
    tx.commit()?;
    Ok((letters, count(total)))
}

pub(super) fn delete_dead_letter(conn: &Connection, id: i64) -> Result<bool> {
    let n = conn
        .prepare_cached("DELETE FROM dead_letters WHERE id = ?1")?
        .execute(params![id])?;
    Ok(n == 1)
}
