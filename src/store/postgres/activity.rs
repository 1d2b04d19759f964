//! The activity log in PostgreSQL, and the reads an operator's console makes of the queue and the
//! dead letters. The queries are built from the filters given ([`crate::store::filter`]), so
//! each combination walks an index newest first and stops at the end of its page.

use tokio_postgres::types::ToSql;

use super::PostgresStore;
use super::rows::{DEAD_LETTER_COLUMNS, dead_letter_from_row};
use crate::store::filter::{self, Arg, POSTGRES};
use crate::store::{
    Activity, ActivityCounts, ActivityFilter, DeadLetter, DeadLetterFilter, NewActivity,
    QueueSummary, Result,
};

/// In input order (the `ORDER BY`), so ids follow the order the rows were handled in.
const INSERT_ACTIVITY: &str = "INSERT INTO activity
         (tenant, event_id, entity, key, event, outcome, message, target_id, took_ms, at)
     SELECT tenant, event_id, entity, key, event, outcome, message, target_id, took_ms, at
     FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[],
                 $7::text[], $8::text[], $9::int8[], $10::int8[])
         WITH ORDINALITY AS n (tenant, event_id, entity, key, event, outcome, message,
                               target_id, took_ms, at, i)
     ORDER BY i";

const FAILED: &str = "COUNT(*) FILTER (WHERE outcome IN ('dead_lettered', 'retried'))";

type Params = Vec<Box<dyn ToSql + Sync + Send>>;

fn params(args: &[Arg]) -> Params {
    args.iter()
        .map(|a| -> Box<dyn ToSql + Sync + Send> {
            match a {
                Arg::Int(n) => Box::new(*n),
                Arg::Text(t) => Box::new(t.clone()),
            }
        })
        .collect()
}

fn refs(params: &Params) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// COUNT(*) is never negative.
fn count(n: i64) -> u64 {
    n.unsigned_abs()
}

impl PostgresStore {
    pub(super) async fn insert_activity(&self, rows: Vec<NewActivity>) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let n = rows.len();
        let (mut tenant, mut event_id, mut entity, mut key, mut event) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut outcome, mut message, mut target_id, mut took_ms, mut at) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for r in rows {
            target_id.push(
                r.target_id
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()?,
            );
            tenant.push(r.tenant);
            event_id.push(r.event_id);
            entity.push(r.entity);
            key.push(r.key);
            event.push(r.event);
            outcome.push(r.outcome);
            message.push(r.message);
            took_ms.push(r.took_ms);
            at.push(r.at);
        }
        let client = self.client().await?;
        let stmt = client.prepare_cached(INSERT_ACTIVITY).await?;
        client
            .execute(
                &stmt,
                &[
                    &tenant, &event_id, &entity, &key, &event, &outcome, &message, &target_id,
                    &took_ms, &at,
                ],
            )
            .await?;
        Ok(())
    }

    pub(super) async fn select_activity(&self, f: &ActivityFilter) -> Result<Vec<Activity>> {
        let mut w = filter::activity(POSTGRES, f);
        let limit = w.limit(POSTGRES, f.limit);
        let sql = format!(
            "SELECT id, tenant, event_id, entity, key, event, outcome, message, target_id,
                    took_ms, at
             FROM activity{} ORDER BY id DESC{limit}",
            w.sql()
        );
        let client = self.client().await?;
        let stmt = client.prepare_cached(&sql).await?;
        let args = params(&w.args);
        let rows = client.query(&stmt, &refs(&args)).await?;
        rows.iter()
            .map(|r| {
                let target_id: Option<String> = r.try_get(8)?;
                Ok(Activity {
                    id: r.try_get(0)?,
                    tenant: r.try_get(1)?,
                    event_id: r.try_get(2)?,
                    entity: r.try_get(3)?,
                    key: r.try_get(4)?,
                    event: r.try_get(5)?,
                    outcome: r.try_get(6)?,
                    message: r.try_get(7)?,
                    target_id: target_id.map(|t| serde_json::from_str(&t)).transpose()?,
                    took_ms: r.try_get(9)?,
                    at: r.try_get(10)?,
                })
            })
            .collect()
    }

    pub(super) async fn count_activity(
        &self,
        tenant: Option<&str>,
        since_ms: i64,
    ) -> Result<ActivityCounts> {
        let client = self.client().await?;
        let row = match tenant {
            Some(t) => {
                let sql = format!(
                    "SELECT COUNT(*), {FAILED} FROM activity WHERE tenant = $1 AND at >= $2"
                );
                let stmt = client.prepare_cached(&sql).await?;
                client.query_one(&stmt, &[&t, &since_ms]).await?
            }
            None => {
                let sql = format!("SELECT COUNT(*), {FAILED} FROM activity WHERE at >= $1");
                let stmt = client.prepare_cached(&sql).await?;
                client.query_one(&stmt, &[&since_ms]).await?
            }
        };
        Ok(ActivityCounts {
            handled: count(row.try_get(0)?),
            failed: count(row.try_get(1)?),
        })
    }

    pub(super) async fn delete_activity(&self, before_ms: i64) -> Result<usize> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("DELETE FROM activity WHERE at < $1")
            .await?;
        let n = client.execute(&stmt, &[&before_ms]).await?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    pub(super) async fn summarize_queue(&self, tenant: Option<&str>) -> Result<QueueSummary> {
        const OPEN: &str = "SELECT COUNT(*), MIN(received_at) FROM events
                            WHERE state IN ('pending', 'claimed')";
        let client = self.client().await?;
        let row = match tenant {
            Some(t) => {
                let stmt = client
                    .prepare_cached(&format!("{OPEN} AND tenant = $1"))
                    .await?;
                client.query_one(&stmt, &[&t]).await?
            }
            None => {
                client
                    .query_one(&client.prepare_cached(OPEN).await?, &[])
                    .await?
            }
        };
        Ok(QueueSummary {
            depth: count(row.try_get(0)?),
            oldest_received_at: row.try_get(1)?,
        })
    }

    pub(super) async fn search_dead_letters(
        &self,
        f: &DeadLetterFilter,
    ) -> Result<(Vec<DeadLetter>, u64)> {
        const FROM: &str = "FROM dead_letters d JOIN events e ON e.id = d.event_id";
        let mut page = filter::dead_letters(POSTGRES, f, true);
        let limit = page.limit(POSTGRES, f.limit);
        let page_sql = format!(
            "SELECT {DEAD_LETTER_COLUMNS} {FROM}{} ORDER BY d.last_failed_at DESC, d.id DESC{limit}",
            page.sql()
        );
        let all = filter::dead_letters(POSTGRES, f, false);
        let total_sql = format!("SELECT COUNT(*) {FROM}{}", all.sql());
        let mut client = self.client().await?;
        // One snapshot for the page and the total.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let page_args = params(&page.args);
        let rows = tx
            .query(&tx.prepare_cached(&page_sql).await?, &refs(&page_args))
            .await?;
        let all_args = params(&all.args);
        let total: i64 = tx
            .query_one(&tx.prepare_cached(&total_sql).await?, &refs(&all_args))
            .await?
            .try_get(0)?;
        tx.commit().await?;
        let letters = rows
            .iter()
            .map(dead_letter_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok((letters, count(total)))
    }

    pub(super) async fn remove_dead_letter(&self, id: i64) -> Result<bool> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("DELETE FROM dead_letters WHERE id = $1")
            .await?;
        Ok(client.execute(&stmt, &[&id]).await? == 1)
    }
}
