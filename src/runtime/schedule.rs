//! What runs on a clock beside the workers of `rbtx run`: catch-up polls of Rackbeat, scheduled
//! reconciliations, the activity log's pruning and the watch on each queue's oldest event. Each
//! loop runs until the process stops.

use std::sync::Arc;
use std::time::Duration;

use super::accounts::Accounts;
use super::alerts::Alerts;
use crate::connectors::rackbeat::Rackbeat;
use crate::plan::Pack;
use crate::store::{Store, StoreError};

/// Polls each tenant's Rackbeat lists every `every_seconds` (and at once) for changes no
/// webhook announced, under the pack `packs` holds at each poll. Runs until the process stops.
pub(super) async fn catch_up<S: Store + 'static>(
    tenants: &[Accounts],
    clients: &[Rackbeat],
    store: &Arc<S>,
    packs: &tokio::sync::watch::Receiver<Arc<Pack>>,
    status: &Arc<super::status::Status>,
    every_seconds: u64,
) {
    let mut polls = tokio::task::JoinSet::new();
    for (t, rb) in tenants.iter().zip(clients) {
        let (rb, store, mut packs, status) =
            (rb.clone(), store.clone(), packs.clone(), status.clone());
        let (id, mode, every) = (t.id.clone(), t.invoice_mode, every_seconds.max(1));
        polls.spawn(async move {
            loop {
                let pack = packs.borrow_and_update().clone();
                let now = crate::dates::now_millis();
                let polled = super::catchup::poll(store.as_ref(), &rb, &pack, &id, mode, now).await;
                let (queued, error) = match &polled {
                    Ok(n) => (*n, None),
                    Err(e) => (0, Some(e.to_string())),
                };
                status.caught_up(&id, super::status::CatchUp { at: now, queued, error });
                if let Err(e) = polled {
                    tracing::warn!(tenant = %id, error = %e, "Catch-up failed; it runs again at the next interval.");
                }
                tokio::time::sleep(Duration::from_secs(every)).await;
            }
        });
    }
    polls.join_all().await;
}

/// How long the activity log keeps what the workers handled.
const ACTIVITY_KEPT_MS: i64 = 30 * 24 * 60 * 60 * 1000;

/// Drops activity older than [`ACTIVITY_KEPT_MS`] at start and then daily. Never returns.
pub(super) async fn prune_activity<S: Store>(store: &Arc<S>) {
    const DAY: Duration = Duration::from_secs(24 * 60 * 60);
    loop {
        let before = crate::dates::now_millis() - ACTIVITY_KEPT_MS;
        match store.prune_activity(before).await {
            Ok(0) => {}
            Ok(rows) => {
                tracing::info!(rows, "Dropped activity older than 30 days from the log.")
            }
            Err(e) => {
                tracing::warn!(error = %e, "Could not prune the activity log; it is tried again tomorrow.")
            }
        }
        tokio::time::sleep(DAY).await;
    }
}

/// Reconciles each tenant every `every_seconds` (from that long after start), repairing nothing,
/// and warns of what differs. Without a schedule it never returns.
pub(super) async fn reconcile_on_schedule<S: Store + 'static>(
    tenants: &[Accounts],
    store: &Arc<S>,
    packs: &tokio::sync::watch::Receiver<Arc<Pack>>,
    every_seconds: Option<u64>,
) {
    let Some(every) = every_seconds else {
        return std::future::pending().await;
    };
    let mut runs = tokio::task::JoinSet::new();
    for t in tenants {
        let (t, store, packs) = (t.clone(), store.clone(), packs.clone());
        runs.spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(every.max(1))).await;
                let pack = packs.borrow().clone();
                let today = crate::dates::today_in_denmark();
                let options = super::reconcile::Options {
                    entities: Vec::new(),
                    since: format!("{:04}-01-01", crate::dates::civil_from_days(today).0),
                    until: crate::dates::format(today + 1),
                    fix: false,
                    progress: false,
                };
                let tenant = match t.tenant() {
                    Ok(tenant) => tenant,
                    Err(e) => {
                        tracing::warn!(tenant = %t.id, error = %e, "Could not reconcile.");
                        continue;
                    }
                };
                match super::reconcile::run_on(store.clone(), pack, tenant, &options).await {
                    Ok(r) if r.differences() == 0 => {
                        tracing::info!(tenant = %t.id, "Reconciled: Rackbeat and Tripletex agree.")
                    }
                    Ok(r) => tracing::warn!(
                        tenant = %t.id,
                        differences = r.differences(),
                        report = %r.human(),
                        "Reconciled: Rackbeat and Tripletex differ; `rbtx reconcile --fix` repairs what a sync repairs."
                    ),
                    Err(e) => {
                        tracing::warn!(tenant = %t.id, error = %e, "Could not reconcile; it runs again at the next interval.")
                    }
                }
            }
        });
    }
    runs.join_all().await;
}

/// How often each tenant's queue is looked at for its oldest event.
const QUEUE_CHECK: Duration = Duration::from_secs(30);

/// Every [`QUEUE_CHECK`], each tenant of `queue_ages`: `probe` gives its queue's depth and
/// oldest open event (unix milliseconds), and an oldest event older than the tenant's age is
/// alerted. Without tenants it never returns; otherwise it runs until the process stops.
pub(super) async fn watch_queue_age<F, Fut>(
    alerts: Alerts,
    queue_ages: Vec<(String, Duration)>,
    probe: F,
) where
    F: Fn(&str) -> Fut,
    Fut: std::future::Future<Output = Result<(u64, Option<i64>), StoreError>>,
{
    if queue_ages.is_empty() {
        return std::future::pending().await;
    }
    loop {
        tokio::time::sleep(QUEUE_CHECK).await;
        for (tenant, age) in &queue_ages {
            match probe(tenant).await {
                Ok((depth, oldest)) => {
                    let now = crate::dates::now_millis();
                    if let Some(alert) =
                        super::alerts::queue_stale(tenant, depth, oldest, now, *age)
                    {
                        tracing::warn!(tenant, depth, "The queue is behind.");
                        alerts.notify(alert);
                    }
                }
                Err(e) => {
                    tracing::warn!(tenant, error = %e, "Could not read the queue's age.")
                }
            }
        }
    }
}
