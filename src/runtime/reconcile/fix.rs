//! `--fix`: each difference a sync repairs queued, and synced by the worker of `rbtx run`.

use std::collections::HashSet;

use serde_json::json;

use super::compare::Found;
use super::report::{Difference, Fixed, ReconcileError};
use crate::plan::Plan;
use crate::runtime::worker::Worker;
use crate::spec::Direction;
use crate::store::{NewEvent, Store};

/// Queues a sync for each difference a sync repairs, then syncs the queue as `rbtx run` would.
pub(super) async fn fix<S: Store + 'static>(
    worker: &Worker<S>,
    plans: &[&Plan],
    found: Vec<Found>,
    tenant: &str,
) -> Result<Fixed, ReconcileError> {
    let view = worker.view();
    let direction = Direction::RackbeatToTripletex.as_str();
    let now = crate::dates::now_millis();
    let mut fixed = Fixed::default();
    let mut queued = HashSet::new();
    for f in found {
        let Some(plan) = plans.get(f.plan_index) else {
            continue;
        };
        let name = format!("{} {}", plan.entity, f.key);
        let updatable = plan.target.update.is_some();
        let queue = match &f.difference {
            Difference::Missing { reason: None, .. } => true,
            Difference::Missing { .. } if f.with_dependencies => true,
            Difference::Missing {
                reason: Some(r), ..
            } => {
                fixed.left.push(format!("{name}: {r}"));
                false
            }
            Difference::Unbound { key: Some(_), .. } => true,
            Difference::Unbound {
                key: None,
                tripletex_id,
                natural_key,
            } => {
                fixed.left.push(format!(
                    "Tripletex {} {tripletex_id} ({natural_key}): no Rackbeat record has it; rbtx deletes nothing",
                    plan.entity
                ));
                false
            }
            Difference::Gone { .. } if updatable => {
                worker
                    .store
                    .delete_binding(tenant, direction, &plan.entity, &f.key)
                    .await?;
                true
            }
            Difference::Gone { tripletex_id, .. } => {
                fixed.left.push(format!(
                    "{name}: its Tripletex record {tripletex_id} is not among the period's; a document is never sent twice, so look at it in Tripletex"
                ));
                false
            }
            Difference::Different { .. } => match f.baseline {
                Some(b) if updatable => {
                    worker.store.put_binding(b).await?;
                    true
                }
                _ => {
                    fixed
                        .left
                        .push(format!("{name}: its mapping has no update"));
                    false
                }
            },
            Difference::Total { .. } => {
                fixed.left.push(format!(
                    "{name}: a document is not changed once sent (its mapping has no update); correct it in Tripletex by hand, or with a credit note in Rackbeat"
                ));
                false
            }
            Difference::Duplicate { natural_key, .. } => {
                fixed.left.push(format!(
                    "{} {natural_key} is in Tripletex more than once; rbtx deletes nothing",
                    plan.entity
                ));
                false
            }
        };
        if !queue || !queued.insert(name.clone()) {
            continue;
        }
        // The event the record's list is polled under, as catch-up queues it.
        let lead = view.all_for_event(plan.on.first().map_or("", String::as_str));
        let lead = lead
            .iter()
            .find(|p| !p.source.list.is_empty())
            .unwrap_or(plan);
        let event = lead
            .on
            .iter()
            .find(|e| e.ends_with(".updated"))
            .or(lead.on.first())
            .cloned()
            .unwrap_or_default();
        worker
            .store
            .enqueue(NewEvent {
                tenant: tenant.into(),
                entity: lead.entity.clone(),
                key: f.key.clone(),
                event,
                payload: json!({ "reconcile": true }),
                received_at: now,
            })
            .await?;
        fixed.queued.push(name);
    }
    // The queue drained as `rbtx run` would; what is left for later (a retry) stays queued.
    while worker.run_once(crate::dates::now_millis()).await? > 0 {}
    let letters = worker.store.list_dead_letters().await?;
    fixed.failed = letters
        .iter()
        .filter(|d| d.event.tenant == tenant && d.last_failed_at >= now)
        .map(|d| format!("{} {}: {}", d.event.entity, d.event.key, d.reason))
        .collect();
    Ok(fixed)
}
