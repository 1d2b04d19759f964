//! Catch-up: webhooks can be lost (deliveries stop after about a day of retries) and CSV imports
//! fire none, so the runtime also polls Rackbeat for records changed since its last look and
//! queues them like webhooks. Unchanged records cost one comparison: their body hash matches.

use serde_json::Value;

use super::tenant::{InvoiceMode, TenantPack};
use crate::connectors::ApiError;
use crate::connectors::rackbeat::Rackbeat;
use crate::plan::Pack;
use crate::store::{NewEvent, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum CatchUpError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The window of a list that was empty at its first look: everything in it later is new.
const EMPTY_LIST_START: &str = "2000-01-01 00:00:00";

/// Rackbeat's `updated_at` (`2025-02-27T14:03:55+01:00`, local time) as its filter format
/// (`2025-02-27 14:03:55`, local time).
pub(super) fn filter_time(updated_at: &str) -> Option<String> {
    let t = updated_at.get(..19)?;
    Some(t.replacen('T', " ", 1))
}

/// Polls every real-time mapping's lists once. The first poll of a list only notes where "now"
/// is: existing records are not pushed (that is what the initial sync and the first webhooks are
/// for), so starting rbtx never re-sends old invoices. Returns how many events were queued.
pub async fn poll<S: Store>(
    store: &S,
    rackbeat: &Rackbeat,
    pack: &Pack,
    tenant: &str,
    invoice_mode: InvoiceMode,
    now_ms: i64,
) -> Result<usize, CatchUpError> {
    look(store, rackbeat, pack, tenant, invoice_mode, now_ms, false).await
}

/// Starts the catch-up window of every real-time list that has none at Rackbeat's newest
/// record, as the first look of [`poll`] would. The initial sync calls it as it ends, so the
/// first `rbtx run` catches up with what changed in Rackbeat since then, and not with more.
pub async fn start_window<S: Store>(
    store: &S,
    rackbeat: &Rackbeat,
    pack: &Pack,
    tenant: &str,
    invoice_mode: InvoiceMode,
) -> Result<(), CatchUpError> {
    look(store, rackbeat, pack, tenant, invoice_mode, 0, true)
        .await
        .map(drop)
}

async fn look<S: Store>(
    store: &S,
    rackbeat: &Rackbeat,
    pack: &Pack,
    tenant: &str,
    invoice_mode: InvoiceMode,
    now_ms: i64,
    only_start: bool,
) -> Result<usize, CatchUpError> {
    let mut queued = 0;
    // The alternative mappings of an entity share their lists: only the tenant's mode polls.
    let view = TenantPack {
        pack,
        mode: invoice_mode,
    };
    for plan in view.realtime() {
        let Some(event) = plan
            .on
            .iter()
            .find(|e| e.ends_with(".updated"))
            .or(plan.on.first())
        else {
            continue;
        };
        for list in &plan.source.list {
            let checkpoint = format!("catch-up {} {}", plan.entity, list.path);
            let since = store.get_checkpoint(tenant, &checkpoint).await?;
            if only_start && since.is_some() {
                continue;
            }
            let mut query: Vec<(&str, String)> = list
                .query
                .iter()
                .map(|(k, v)| (k.as_str(), v.clone()))
                .collect();
            query.push(("order_by", "updated_at".into()));
            query.push(("order_direction", "ASC".into()));
            if let Some(s) = &since {
                query.push(("updated_at_from", s.clone()));
            }
            let records = match since {
                Some(_) => rackbeat.list_all(&list.path, &query).await?,
                None => {
                    // Only the newest record, to learn Rackbeat's "now".
                    let mut q = query.clone();
                    if let Some(d) = q.iter_mut().find(|(k, _)| *k == "order_direction") {
                        d.1 = "DESC".into();
                    }
                    rackbeat
                        .page(&list.path, &q, 1)
                        .await?
                        .items
                        .into_iter()
                        .take(1)
                        .collect()
                }
            };
            let mut newest = None;
            for r in &records {
                if let Some(t) = r
                    .get("updated_at")
                    .and_then(Value::as_str)
                    .and_then(filter_time)
                {
                    newest = newest.max(Some(t));
                }
                if since.is_none() {
                    continue;
                }
                let Ok(key) = plan.key_of(r) else { continue };
                store
                    .enqueue(NewEvent {
                        tenant: tenant.into(),
                        entity: plan.entity.clone(),
                        key,
                        event: event.clone(),
                        payload: serde_json::json!({ "catch_up": true }),
                        received_at: now_ms,
                    })
                    .await?;
                queued += 1;
            }
            match newest {
                Some(t) => store.set_checkpoint(tenant, &checkpoint, &t).await?,
                // An empty list: whatever appears in it later is new, so the window starts at
                // the beginning rather than at the next look.
                None if since.is_none() => {
                    store
                        .set_checkpoint(tenant, &checkpoint, EMPTY_LIST_START)
                        .await?
                }
                None => {}
            }
        }
    }
    if queued > 0 {
        tracing::info!(
            tenant,
            queued,
            "Catch-up queued records changed in Rackbeat."
        );
    }
    Ok(queued)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rackbeat_times_become_filter_times() {
        assert_eq!(
            super::filter_time("2025-02-27T14:03:55+01:00").as_deref(),
            Some("2025-02-27 14:03:55")
        );
        assert_eq!(super::filter_time("2025"), None);
    }
}
