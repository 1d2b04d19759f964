//! What the per-record sync does beyond one write: choosing among the mappings one event
//! triggers (each with a `when`; exactly one may hold), reading the bindings `bound()` asks for
//! (never syncing them), and the follow-up request of `target.then`, sent once.
//!
//! `then` is exactly-once the way a create is: the record is bound right after its create, and
//! the step's own success is bound under `<entity>.then`, so a restart between the two requests
//! finds the record bound and sends only the step; and before the step is sent again (not right
//! after the create), `then.find` looks for what it made.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::failure::Sent;
use super::lookups::{MapResolver, bound_key};
use super::sync::{Failure, Synced, Syncer};
use crate::engine::RecordError;
use crate::plan::Plan;
use crate::spec::{Connection, Direction};
use crate::store::{Binding, Store};

/// Render passes while `bound()` asks for bindings, as in the sync's own loop.
const MAX_PASSES: usize = 4;

/// The binding entity under which a record's `then` step is remembered.
fn then_entity(plan: &Plan) -> String {
    format!("{}.then", plan.entity)
}

impl<S: Store> Syncer<S> {
    /// Syncs `key` with the one of `plans` (the mappings of one event) whose `when` holds for
    /// the record: read once, through the first plan's `source.get` (the pack checks they share
    /// it). None holding skips the record; more than one is a mistake in the pack, and the
    /// record waits in the dead-letter queue naming them rather than being sent twice.
    pub async fn sync_chosen(&self, plans: &[&Plan], key: &str) -> Result<Synced, Failure> {
        let [first, ..] = plans else {
            return Ok(Synced::Ignored);
        };
        if plans.len() == 1 {
            return self.sync(first, key, 0).await;
        }
        let Some(source) = self.read_source(first, key).await? else {
            return Ok(Synced::Gone);
        };
        let mut holding = Vec::new();
        for plan in plans {
            if self.applies(plan, &source).await? {
                holding.push(*plan);
            }
        }
        match holding.as_slice() {
            [] => {
                let reason = format!(
                    "`when` is false for {key} in every mapping of its event ({})",
                    files(plans)
                );
                tracing::info!(tenant = %self.tenant.id, key, reason = %reason, "The mapping skips this record.");
                Ok(Synced::Skipped { reason })
            }
            [plan] => self.sync_source(plan, Arc::new(source), 0).await,
            several => Err(Failure::Permanent {
                reason: format!(
                    "{key}: the `when` of more than one mapping of its event holds ({}); make them exclusive",
                    files(several)
                ),
                mapping: None,
                field: Some("when".into()),
                detail: None,
            }),
        }
    }

    /// The record `key` as `plan` reads it; `None` when it is gone from the source.
    async fn read_source(&self, plan: &Plan, key: &str) -> Result<Option<Value>, Failure> {
        let Some(path) = plan
            .source_path(key)
            .map_err(|e| Failure::record(plan, e))?
        else {
            return Err(Failure::permanent(
                plan,
                "the mapping has no `source.get`, so the record cannot be read",
                Some("source.get".into()),
            ));
        };
        let response = self
            .tenant
            .rackbeat
            .get(&path, &[])
            .await
            .map_err(|e| Failure::api_of(plan, Connection::Rackbeat, &e))?;
        Ok(response.and_then(|r| plan.select_owned(r)))
    }

    /// Whether `plan`'s `when` holds for `source`, reading the bindings it asks for.
    async fn applies(&self, plan: &Plan, source: &Value) -> Result<bool, Failure> {
        let lookups = self.lookups_for(plan).await?;
        let mut refs = HashMap::new();
        for _ in 0..MAX_PASSES {
            let resolver = Arc::new(MapResolver {
                refs: refs.clone(),
                lookups: lookups.clone(),
            });
            match plan.applies(source, resolver) {
                Ok(holds) => return Ok(holds),
                Err(RecordError::Unbound(wanted)) => {
                    self.read_bindings(plan.direction, &wanted, &mut refs)
                        .await?
                }
                Err(e) => return Err(Failure::record(plan, e)),
            }
        }
        Err(Failure::permanent(
            plan,
            "`bound()` kept asking for bindings",
            Some("when".into()),
        ))
    }

    /// Reads the bindings `bound()` asked for into `refs`, as `bound()` returns them
    /// (`{ id, body }`), or `null` for a record that has none: it is not synced.
    pub(super) async fn read_bindings(
        &self,
        direction: Direction,
        wanted: &[(String, String)],
        refs: &mut HashMap<String, Value>,
    ) -> Result<(), Failure> {
        for (entity, key) in wanted {
            let b = self
                .store
                .get_binding(&self.tenant.id, direction.as_str(), entity, key)
                .await
                .map_err(Failure::store)?;
            let value = match b {
                Some(b) => json!({ "id": b.target_id, "body": b.body }),
                None => Value::Null,
            };
            refs.insert(bound_key(entity, key), value);
        }
        Ok(())
    }

    /// Sends `plan`'s `then` request on the record `created` (bound to `key`), unless it was
    /// sent already: its binding says so, or (when the record was not just created) its find
    /// finds what it made. Then binds it.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn then_step(
        &self,
        plan: &Plan,
        source: &Value,
        key: &str,
        body: &Value,
        created: &Value,
        just_created: bool,
        resolver: &Arc<MapResolver>,
    ) -> Result<(), Failure> {
        if plan.target.then.is_none() || self.dry_run {
            return Ok(());
        }
        let (tenant, entity) = (self.tenant.id.as_str(), plan.entity.as_str());
        let step = then_entity(plan);
        let direction = plan.direction.as_str();
        let done = self
            .store
            .get_binding(tenant, direction, &step, key)
            .await
            .map_err(Failure::store)?;
        if done.is_some() {
            return Ok(());
        }
        let api = self.target_api(plan);
        if !just_created
            && let Some(find) = plan
                .then_find_request(source, body, created, resolver.clone())
                .map_err(|e| Failure::record(plan, e))?
        {
            let query: Vec<(&str, String)> = find
                .query
                .pairs()
                .map(|(k, v)| (k, v.to_string()))
                .collect();
            let items = api
                .find(&find.path, &query)
                .await
                .map_err(|e| Failure::api(plan, &e))?;
            let found = plan
                .then_match(&items, source, body, created, resolver.clone())
                .map_err(|e| Failure::record(plan, e))?;
            if let Some(made) = found {
                let id = made.get("id").cloned().unwrap_or(Value::Null);
                tracing::info!(tenant, entity, key, target_id = %id, "Found what the record's follow-up request made; binding to it.");
                return self.bind_step(plan, key, id).await;
            }
        }
        let Some(req) = plan
            .then_request(source, body, created, resolver.clone())
            .map_err(|e| Failure::record(plan, e))?
        else {
            return Ok(());
        };
        let Some(then) = &plan.target.then else {
            return Ok(());
        };
        let query: Vec<(&str, String)> =
            req.query.pairs().map(|(k, v)| (k, v.to_string())).collect();
        let answer = api
            .write(then.method, &req.path, &query, "")
            .await
            .map_err(|e| {
                let request = Sent {
                    method: then.method.as_str(),
                    path: &req.path,
                    query: &query,
                    body: "",
                };
                Failure::api_write(plan, &e, request)
            })?;
        let id = answer.get("id").cloned().unwrap_or(Value::Null);
        tracing::info!(tenant, entity, key, target_id = %id, method = %req.method, path = %req.path, target = api.name(), "Sent the record's follow-up request.");
        self.bind_step(plan, key, id).await
    }

    /// Remembers that `key`'s `then` step is done, and what it made.
    async fn bind_step(&self, plan: &Plan, key: &str, made: Value) -> Result<(), Failure> {
        self.store
            .put_binding(Binding {
                tenant: self.tenant.id.clone(),
                direction: plan.direction.as_str().to_string(),
                entity: then_entity(plan),
                source_key: key.to_string(),
                target_id: made,
                version: None,
                body_hash: None,
                body: None,
                updated_at: crate::dates::now_millis(),
            })
            .await
            .map_err(Failure::store)
    }
}

fn files(plans: &[&Plan]) -> String {
    plans
        .iter()
        .map(|p| p.file.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
