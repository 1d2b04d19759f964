//! The per-record sync: makes the target match one source record, with exactly-once effects.
//! The queue worker ([`super::worker`]) and the initial sync ([`super::initial`]) both go through
//! [`Syncer::sync_source`]; the mapping's direction decides which API is the target.
//!
//! Tripletex has no idempotency keys, so "exactly once" rests on three things:
//! - a **binding** (source key → target id, version, body hash) is written right after every
//!   successful write, and an unchanged body is never sent again;
//! - with no binding, the mapping's `find` request looks for the record by its natural key
//!   **before** creating it, so a create whose answer was lost (timeout, dropped connection, 5xx)
//!   is found on the retry instead of being made twice;
//! - the store's lease keeps one key with one worker at a time.
//!
//! References (`ref('customer', …)`) are resolved from the bindings; a record that is not bound
//! yet is synced first, recursively, so a customer exists before the invoice that names it. A
//! dependency synced inline holds its own key's lease meanwhile (`Store::claim_key`); when
//! another worker holds it, the dependent record is retried later.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub use super::failure::Failure;
use super::failure::Sent;

use super::batch::{Batch, Lane, Op};
use super::lookups::{LookupCache, MapResolver, Tables, ref_key};
use super::tenant::{Tenant, TenantPack};
use crate::connectors::{Api, ApiError};
use crate::engine::{Body, Outcome, RecordError, Request, changes};
use crate::plan::{Pack, Plan};
use crate::spec::{Connection, Direction, UpdateFields, WriteMethod};
use crate::store::{Binding, NewEvent, Store};

/// The event that leases a record synced inline because another refers to it. Left in the queue
/// when that sync fails, it syncs the record like any event of it.
pub const DEPENDENCY_EVENT: &str = "dependency";

/// How deep dependencies are synced inline (invoice → customer → …) before giving up.
const MAX_DEPTH: usize = 5;

/// Render passes per record: each pass binds every reference the previous one lacked, so more
/// than a few means references keep appearing, which no shipped mapping does.
const MAX_RENDERS: usize = 4;

/// Syncs records of one tenant into the target its mappings name.
pub struct Syncer<S: Store> {
    pub store: Arc<S>,
    pub pack: Arc<Pack>,
    pub tenant: Tenant,
    /// Unique among live workers: leases are held under this name.
    pub name: String,
    pub lease_ms: i64,
    /// Send nothing and bind nothing: report what would be written instead.
    pub dry_run: bool,
    /// The `now_ms` of the batch being worked on, so inline leases use the caller's clock.
    batch_now: AtomicI64,
    /// API lookup tables by definition, loaded once per pack; shared by a tenant's workers.
    lookups: LookupCache,
    /// The (entity, key)s synced inline during this batch: their events later in the batch were
    /// superseded by it, and are skipped.
    synced_inline: std::sync::Mutex<HashSet<(String, String)>>,
    /// Per entity, the natural keys the target holds, when the initial sync listed them: a record
    /// whose key is not among them is created without a find.
    target_keys: std::sync::Mutex<HashMap<String, HashSet<String>>>,
    /// Where requests go: straight to the APIs, or into the batch of records synced together.
    lane: Lane,
}

/// How applying one record ended, when it did not fail.
#[derive(Debug, Clone, PartialEq)]
pub enum Synced {
    /// A request was sent; the record is bound to `target_id`.
    Written { target_id: Value, created: bool },
    /// A dry run: this request would have been sent.
    WouldWrite { request: Request, created: bool },
    /// The body is the one last sent: nothing was sent.
    Unchanged,
    /// The record exists in Tripletex and the mapping has no `update`.
    Kept,
    /// The mapping's `when` is false.
    Skipped { reason: String },
    /// The record is no longer in Rackbeat.
    Gone,
    /// No mapping handles the event, or it is a delete (not synced).
    Ignored,
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The target record an update is rendered against, and whether it was read from the target
/// (else it is only the id and version the binding kept).
struct Target {
    record: Value,
    read: bool,
}

/// The bound record as the binding knows it: its id and version.
fn identity(plan: &Plan, binding: &Binding) -> Value {
    let mut minimal = json!({ "version": binding.version });
    minimal[plan.target.id.as_str()] = binding.target_id.clone();
    minimal
}

impl<S: Store> Syncer<S> {
    pub fn new(store: Arc<S>, pack: Arc<Pack>, tenant: Tenant, name: impl Into<String>) -> Self {
        Syncer {
            store,
            pack,
            tenant,
            name: name.into(),
            lease_ms: 60_000,
            dry_run: false,
            batch_now: AtomicI64::new(0),
            lookups: LookupCache::default(),
            synced_inline: std::sync::Mutex::default(),
            target_keys: std::sync::Mutex::default(),
            lane: Lane::default(),
        }
    }

    /// Sends the requests of the records synced from now on together through `batch` (or alone
    /// again, with `None`).
    pub fn set_batch(&self, batch: Option<Arc<Batch>>) {
        self.lane.set(batch);
    }

    /// Applies `pack` from the next record on (a reload); lookup tables are loaded afresh.
    pub fn set_pack(&mut self, pack: Arc<Pack>) {
        self.pack = pack;
    }

    /// Loads lookup tables into `cache`, shared with the other workers of the tenant.
    pub fn share_lookups(&mut self, cache: LookupCache) {
        self.lookups = cache;
    }

    /// Starts a batch claimed at `now_ms`: inline leases use its clock, and no record of it has
    /// been synced inline yet.
    pub fn start_batch(&self, now_ms: i64) {
        self.batch_now.store(now_ms, Ordering::Relaxed);
        if let Ok(mut inline) = self.synced_inline.lock() {
            inline.clear();
        }
    }

    /// Whether `entity` `key` was synced inline earlier in this batch (its event is superseded).
    pub fn synced_inline(&self, entity: &str, key: &str) -> bool {
        self.synced_inline
            .lock()
            .is_ok_and(|inline| inline.contains(&(entity.to_string(), key.to_string())))
    }

    /// Lists the natural keys of `plan`'s entity in the target (its `target.list`), so the
    /// records the initial sync writes next need no find when they are not there yet. Returns
    /// how many keys the target holds; `None` when the mapping lists nothing.
    pub async fn list_target_keys(&self, plan: &Plan) -> Result<Option<usize>, ApiError> {
        let Some(list) = &plan.target.list else {
            return Ok(None);
        };
        let query: Vec<(&str, String)> = list
            .query
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        let keys = self
            .target_api(plan)
            .keys(&list.path, &query, &plan.target.natural_key)
            .await?;
        let n = keys.len();
        if let Ok(mut known) = self.target_keys.lock() {
            known.insert(plan.entity.clone(), keys);
        }
        Ok(Some(n))
    }

    /// Forgets the keys [`Self::list_target_keys`] read: later writes find records as usual.
    pub fn forget_target_keys(&self, plan: &Plan) {
        if let Ok(mut known) = self.target_keys.lock() {
            known.remove(&plan.entity);
        }
    }

    /// Whether the listed keys show the record with this body is not in the target.
    fn listed_absent(&self, plan: &Plan, body: &Value) -> bool {
        let key = match body.get(&plan.target.natural_key) {
            Some(Value::String(s)) => s.clone(),
            Some(v) if !v.is_null() => v.to_string(),
            _ => return false,
        };
        // Once a record is written without a find it counts as there: a second write of the key
        // in this run (a retry after a lost answer) looks it up first.
        self.target_keys.lock().is_ok_and(|mut known| {
            known
                .get_mut(&plan.entity)
                .is_some_and(|keys| keys.insert(key))
        })
    }

    /// The pack as this tenant sees it.
    pub fn view(&self) -> TenantPack<'_> {
        self.tenant.view(&self.pack)
    }

    /// The API a plan writes to.
    pub(super) fn target_api(&self, plan: &Plan) -> Api<'_> {
        match plan.direction.target() {
            Connection::Rackbeat => Api::Rackbeat(&self.tenant.rackbeat),
            Connection::Tripletex => Api::Tripletex(&self.tenant.tripletex),
        }
    }

    /// Reads the record `key` from Rackbeat and makes Tripletex match it. Boxed because it
    /// recurses into dependencies.
    pub fn sync<'a>(
        &'a self,
        plan: &'a Plan,
        key: &'a str,
        depth: usize,
    ) -> Boxed<'a, Result<Synced, Failure>> {
        Box::pin(async move {
            let tenant = self.tenant.id.as_str();
            let entity = plan.entity.as_str();
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
            let Some(source) = self
                .lane
                .read(&self.pack, &self.tenant, plan, key, &path)
                .await
                .map_err(|e| Failure::api_of(plan, Connection::Rackbeat, &e))?
            else {
                tracing::info!(
                    tenant,
                    entity,
                    key,
                    "The record is no longer in Rackbeat; nothing to sync."
                );
                return Ok(Synced::Gone);
            };
            self.sync_source(plan, Arc::new(source), depth).await
        })
    }

    /// Makes the target match one source record already read: renders it (syncing what it
    /// refers to first), skips it when its body is the one last sent, finds it in the target when
    /// it is not bound, then creates or updates it and binds it.
    pub fn sync_source<'a>(
        &'a self,
        plan: &'a Plan,
        source: Arc<Value>,
        depth: usize,
    ) -> Boxed<'a, Result<Synced, Failure>> {
        Box::pin(async move {
            let tenant = self.tenant.id.as_str();
            let entity = plan.entity.as_str();
            let direction = plan.direction.as_str();
            let api = self.target_api(plan);
            let lookups = self.lookups_for(plan).await?;

            // Render until every reference is bound, syncing the missing ones first.
            let mut refs: HashMap<String, Value> = HashMap::new();
            let mut rendered = None;
            for _ in 0..MAX_RENDERS {
                let resolver = Arc::new(MapResolver {
                    refs: refs.clone(),
                    lookups: lookups.clone(),
                });
                match plan.apply_shared(&source, None, resolver.clone()) {
                    Ok(applied) => {
                        rendered = Some((applied, resolver));
                        break;
                    }
                    Err(RecordError::Missing(deps)) => {
                        let mut unresolved = Vec::new();
                        for (dep_entity, dep_key) in deps {
                            match self
                                .bound_or_synced(plan.direction, &dep_entity, &dep_key, depth)
                                .await?
                            {
                                Some(id) => {
                                    refs.insert(ref_key(&dep_entity, &dep_key), id);
                                }
                                None => unresolved.push(format!("{dep_entity} {dep_key}")),
                            }
                        }
                        if !unresolved.is_empty() {
                            return Err(Failure::permanent(
                                plan,
                                format!(
                                    "{} could not be synced first (not in {}, or skipped by its mapping)",
                                    unresolved.join(", "),
                                    plan.direction.source().name()
                                ),
                                None,
                            ));
                        }
                    }
                    Err(RecordError::Unbound(wanted)) => {
                        self.read_bindings(plan.direction, &wanted, &mut refs)
                            .await?
                    }
                    Err(e) => return Err(Failure::record(plan, e)),
                }
            }
            let Some((applied, resolver)) = rendered else {
                return Err(Failure::permanent(
                    plan,
                    "references kept appearing after their records were synced",
                    None,
                ));
            };
            let key = applied.key.as_str();
            let body = match applied.outcome {
                Outcome::Skip { reason } => {
                    tracing::info!(tenant, entity, key, reason = %reason, "The mapping skips this record.");
                    return Ok(Synced::Skipped { reason });
                }
                Outcome::Write(Request { body: Some(b), .. }) | Outcome::Keep { body: b } => b,
                Outcome::Write(Request { body: None, .. }) => Body::from(&Value::Null),
            };
            let hash = body_hash(&body);
            let binding = self
                .store
                .get_binding(tenant, direction, entity, key)
                .await
                .map_err(Failure::store)?;

            if let Some(b) = &binding {
                // A restart between a create and its `then` step: the step is still to send.
                if plan.target.then.is_some() {
                    let (rendered, created) = (body.value(), identity(plan, b));
                    self.then_step(plan, &source, key, &rendered, &created, false, &resolver)
                        .await?;
                }
                if b.body_hash.as_deref() == Some(hash.as_str()) {
                    tracing::debug!(tenant, entity, key, target_id = %b.target_id, "The record is unchanged since it was last sent; nothing to send.");
                    return Ok(Synced::Unchanged);
                }
                if plan.target.update.is_none() {
                    tracing::info!(tenant, entity, key, target_id = %b.target_id, target = api.name(), "The record is already in the target and its mapping has no update; it is kept as it is.");
                    return Ok(Synced::Kept);
                }
                // The binding's id and version are all most updates need; the record itself is
                // read when the mapping renders more of it (address ids), or on a conflict.
                let (current, read) = if plan.update_reads_target {
                    let current = self
                        .current_target(plan, &source, identity(plan, b), &resolver)
                        .await?;
                    (current, true)
                } else {
                    (Some(identity(plan, b)), false)
                };
                if let Some(current) = current {
                    let to = Target {
                        record: current,
                        read,
                    };
                    let baseline = b.body.as_ref();
                    return self
                        .write(plan, &source, Some(to), key, &body, baseline, &resolver)
                        .await;
                }
                tracing::warn!(tenant, entity, key, target_id = %b.target_id, target = api.name(), "The bound record is gone from the target; looking it up by its natural key.");
            }

            // No usable binding: look for the record before creating it, so a create whose
            // answer was lost is found rather than repeated.
            let rendered = body.value();
            let found = if self.listed_absent(plan, &rendered) {
                None
            } else {
                self.find(plan, &source, &rendered, &resolver).await?
            };
            if let Some(t) = &found {
                tracing::info!(tenant, entity, key, target_id = %t.get(&plan.target.id).cloned().unwrap_or_default(), target = api.name(), "Found the record in the target by its natural key; binding to it.");
            }
            let found = found.map(|record| Target { record, read: true });
            self.write(plan, &source, found, key, &body, None, &resolver)
                .await
        })
    }

    /// The target record `find` returns for this body, asking a second time with the mapping's
    /// `fallback_query` when the first answer has no match (inactive records are hidden by
    /// default in Tripletex).
    async fn find(
        &self,
        plan: &Plan,
        source: &Arc<Value>,
        body: &Value,
        resolver: &Arc<MapResolver>,
    ) -> Result<Option<Value>, Failure> {
        let find = plan
            .find_request(source, body, resolver.clone())
            .map_err(|e| Failure::record(plan, e))?;
        let mut query = query_of(&find);
        let fallback = &plan.target.find.fallback_query;
        for attempt in 0..2 {
            if attempt == 1 {
                if fallback.is_empty() {
                    break;
                }
                for (k, v) in fallback {
                    query.retain(|(name, _)| name != k);
                    query.push((k.as_str(), v.clone()));
                }
            }
            let items = self
                .lane
                .find(&self.pack, &self.tenant, plan, &find.path, &query)
                .await
                .map_err(|e| Failure::api(plan, &e))?;
            let found = plan
                .find_match(&items, source, body, resolver.clone())
                .map_err(|e| Failure::record(plan, e))?;
            if let Some(t) = found {
                return Ok(Some(t.clone()));
            }
        }
        Ok(None)
    }

    /// The current target record a binding points at (with its version and sub-record ids),
    /// read through the path the update would write to; `None` when it is gone.
    async fn current_target(
        &self,
        plan: &Plan,
        source: &Arc<Value>,
        minimal: Value,
        resolver: &Arc<MapResolver>,
    ) -> Result<Option<Value>, Failure> {
        let minimal = Arc::new(minimal);
        let applied = plan
            .apply_shared(source, Some(&minimal), resolver.clone())
            .map_err(|e| Failure::record(plan, e))?;
        let Outcome::Write(req) = applied.outcome else {
            return Ok(Some((*minimal).clone()));
        };
        self.target_api(plan)
            .get(&req.path)
            .await
            .map_err(|e| Failure::api(plan, &e))
    }

    /// Renders against `target` (or none), sends the write if there is one, and binds. `body` is
    /// the record rendered without a target (what the binding keeps); an update sends only the
    /// fields that differ from `baseline`, the body the binding kept, when there is one.
    #[allow(clippy::too_many_arguments)]
    async fn write(
        &self,
        plan: &Plan,
        source: &Arc<Value>,
        to: Option<Target>,
        key: &str,
        body: &Body,
        baseline: Option<&Value>,
        resolver: &Arc<MapResolver>,
    ) -> Result<Synced, Failure> {
        let tenant = self.tenant.id.as_str();
        let entity = plan.entity.as_str();
        let read = to.as_ref().is_none_or(|t| t.read);
        let target = to.map(|t| Arc::new(t.record));
        let applied = plan
            .apply_shared(source, target.as_ref(), resolver.clone())
            .map_err(|e| Failure::record(plan, e))?;
        let id_field = plan.target.id.as_str();
        let api = self.target_api(plan);
        let (id, version, synced, written) = match applied.outcome {
            Outcome::Write(mut req) => {
                let created = target.is_none();
                if let (Some(current), Some(baseline), Some(update)) =
                    (target.as_deref(), baseline, &plan.target.update)
                    && update.send == UpdateFields::Changed
                {
                    let sent = req.body.as_ref().map(Body::value).unwrap_or(Value::Null);
                    let mut fields = changes::changed_fields(&body.value(), baseline);
                    // Fields only an update renders (from the target) are sent as rendered;
                    // fields an update leaves out (create-only) are not.
                    if let (Some(with), Some(without)) =
                        (sent.as_object(), body.value().as_object())
                    {
                        fields.extend(
                            with.keys()
                                .filter(|k| !without.contains_key(*k) && !changes::is_identity(k))
                                .cloned(),
                        );
                    }
                    fields.retain(|f| f.is_empty() || sent.get(f).is_some());
                    // What the target already holds needs no request: a retry after a lost
                    // answer, or the same change made by hand.
                    fields.retain(|f| {
                        !matches!((current.get(f), sent.get(f)), (Some(has), Some(wants)) if changes::holds(has, wants))
                    });
                    if fields.is_empty() {
                        tracing::debug!(tenant, entity, key, target_id = %current.get(id_field).cloned().unwrap_or_default(), "The target already holds every changed field; nothing to send.");
                        let version = current.get("version").and_then(Value::as_i64);
                        let id = current.get(id_field).cloned().unwrap_or(Value::Null);
                        if !self.dry_run {
                            self.bind(plan, key, id, version, body).await?;
                        }
                        return Ok(Synced::Unchanged);
                    }
                    req.body = Some(Body::from(&changes::partial(&sent, &fields)));
                }
                if self.dry_run {
                    return Ok(Synced::WouldWrite {
                        request: req,
                        created,
                    });
                }
                let method = match req.method {
                    "POST" => WriteMethod::Post,
                    "PUT" => WriteMethod::Put,
                    other => {
                        return Err(Failure::permanent(
                            plan,
                            format!("the runtime cannot send {other} requests"),
                            Some("target".into()),
                        ));
                    }
                };
                let sent = req.body.clone().unwrap_or_else(|| Body::from(&Value::Null));
                let sent = if req.sends_body { sent.as_str() } else { "" };
                let (op, id) = match target.as_deref() {
                    None => (Op::Create, None),
                    Some(t) => (Op::Update, t.get(id_field).cloned()),
                };
                let query = query_of(&req);
                let answer = match self
                    .lane
                    .write(
                        &self.pack,
                        &self.tenant,
                        plan,
                        op,
                        method,
                        &req.path,
                        &query,
                        sent,
                        id,
                    )
                    .await
                {
                    Ok(answer) => answer,
                    // The binding's version is behind: the record changed in the target since.
                    // Read it and render against it, once.
                    Err(e) if e.is_revision_conflict() && !read => {
                        let unread = target.as_deref().cloned().unwrap_or(Value::Null);
                        tracing::info!(
                            tenant,
                            entity,
                            key,
                            target = api.name(),
                            "The record changed in the target since it was last written; reading it before the update."
                        );
                        let Some(current) =
                            self.current_target(plan, source, unread, resolver).await?
                        else {
                            return Err(Failure::Retry {
                                reason: "the bound record is gone from the target".into(),
                            });
                        };
                        let to = Target {
                            record: current,
                            read: true,
                        };
                        return Box::pin(self.write(
                            plan,
                            source,
                            Some(to),
                            key,
                            body,
                            baseline,
                            resolver,
                        ))
                        .await;
                    }
                    Err(e) => {
                        let request = Sent {
                            method: req.method,
                            path: &req.path,
                            query: &query,
                            body: sent,
                        };
                        return Err(Failure::api_write(plan, &e, request));
                    }
                };
                let id = answer
                    .get(id_field)
                    .filter(|v| !v.is_null())
                    .cloned()
                    .ok_or_else(|| {
                        Failure::permanent(
                            plan,
                            format!("{} {} answered without `{id_field}`", req.method, req.path),
                            None,
                        )
                    })?;
                tracing::info!(tenant, entity, key, target_id = %id, method = %req.method, target = api.name(), "Wrote the record.");
                let version = answer.get("version").and_then(Value::as_i64);
                (
                    id.clone(),
                    version,
                    Synced::Written {
                        target_id: id,
                        created,
                    },
                    answer,
                )
            }
            Outcome::Keep { .. } => {
                let t = target.as_deref().unwrap_or(&Value::Null);
                let id = t.get(id_field).cloned().unwrap_or(Value::Null);
                tracing::info!(tenant, entity, key, target_id = %id, target = api.name(), "The record is already in the target and its mapping has no update; it is kept as it is.");
                (
                    id,
                    t.get("version").and_then(Value::as_i64),
                    Synced::Kept,
                    t.clone(),
                )
            }
            Outcome::Skip { reason } => return Ok(Synced::Skipped { reason }),
        };
        if id.is_null() {
            return Err(Failure::permanent(
                plan,
                format!("the record found in {} has no `{id_field}`", api.name()),
                None,
            ));
        }
        if self.dry_run {
            return Ok(synced);
        }
        // The way back first: were it left out after the record's own binding, a later sync
        // would find that binding unchanged and never make it.
        if plan.direction == Direction::TripletexToRackbeat {
            self.bind_origin(plan, source, &written).await?;
        }
        // Bind at once: the write happened, and a later event must neither repeat nor lose it.
        self.bind(plan, key, id, version, body).await?;
        if plan.target.then.is_some() {
            let created = matches!(synced, Synced::Written { created: true, .. });
            self.then_step(
                plan,
                source,
                key,
                &body.value(),
                &written,
                created,
                resolver,
            )
            .await?;
        }
        Ok(synced)
    }

    /// Remembers where `key` went and the body it was synced with: its hash skips an unchanged
    /// record, and the body is the baseline the next update is compared with.
    async fn bind(
        &self,
        plan: &Plan,
        key: &str,
        target_id: Value,
        version: Option<i64>,
        body: &Body,
    ) -> Result<(), Failure> {
        self.store
            .put_binding(Binding {
                tenant: self.tenant.id.clone(),
                direction: plan.direction.as_str().to_string(),
                entity: plan.entity.clone(),
                source_key: key.to_string(),
                target_id,
                version,
                body_hash: Some(body_hash(body)),
                body: Some(body.value()),
                updated_at: crate::dates::now_millis(),
            })
            .await
            .map_err(Failure::store)
    }

    /// After the initial sync wrote `written` into Rackbeat from the Tripletex record `origin`:
    /// binds the Rackbeat record back to its origin, with the body the real-time mapping would
    /// send for it as the baseline. The webhooks and catch-up this write causes then find nothing
    /// changed, so Tripletex is not written with the lossy round trip of its own data, and a later
    /// change in Rackbeat sends only what it changed.
    async fn bind_origin(
        &self,
        plan: &Plan,
        origin: &Value,
        written: &Value,
    ) -> Result<(), Failure> {
        if self.dry_run {
            return Ok(());
        }
        let Some(back) = self
            .view()
            .for_entity(Direction::RackbeatToTripletex, &plan.entity)
        else {
            return Ok(());
        };
        let (tenant, entity) = (self.tenant.id.as_str(), plan.entity.as_str());
        let resolver = Arc::new(MapResolver {
            refs: HashMap::new(),
            lookups: self.lookups_for(back).await?,
        });
        let applied = match back.apply_shared(&Arc::new(written.clone()), None, resolver) {
            Ok(applied) => applied,
            Err(e) => {
                tracing::warn!(tenant, entity, error = %e, "Could not work out what rbtx would send back for a record the initial sync wrote; its next change in Rackbeat sends the whole body.");
                return Ok(());
            }
        };
        let body = match applied.outcome {
            Outcome::Write(Request { body: Some(b), .. }) | Outcome::Keep { body: b } => b,
            Outcome::Write(Request { body: None, .. }) => Body::from(&Value::Null),
            Outcome::Skip { .. } => return Ok(()),
        };
        let Some(id) = origin.get(&back.target.id).filter(|v| !v.is_null()) else {
            return Ok(());
        };
        let version = origin.get("version").and_then(Value::as_i64);
        tracing::debug!(tenant, entity, key = %applied.key, target_id = %id, "Bound the record the initial sync wrote to its Tripletex origin.");
        self.bind(back, &applied.key, id.clone(), version, &body)
            .await
    }

    /// The target id bound to `entity` `key`, syncing that record first when it is not bound.
    /// `None` when it could not be bound (gone in the source, or skipped by its mapping).
    async fn bound_or_synced(
        &self,
        direction: Direction,
        entity: &str,
        key: &str,
        depth: usize,
    ) -> Result<Option<Value>, Failure> {
        let tenant = self.tenant.id.as_str();
        let get = || {
            self.store
                .get_binding(tenant, direction.as_str(), entity, key)
        };
        if let Some(b) = get().await.map_err(Failure::store)? {
            return Ok(Some(b.target_id));
        }
        if self.dry_run {
            // Nothing is bound in a dry run: stand in for the id the record would get.
            return Ok(Some(Value::String(format!("<{entity} {key}>"))));
        }
        let Some(plan) = self.view().for_entity(direction, entity) else {
            return Err(Failure::Permanent {
                reason: format!("no mapping syncs `{entity}`, which {key} is a reference to"),
                mapping: None,
                field: None,
                detail: None,
            });
        };
        if plan.source.get.is_none() {
            // Listed, not read one by one (the initial sync): its own pass writes it first.
            return Ok(None);
        }
        if depth + 1 >= MAX_DEPTH {
            return Err(Failure::permanent(
                plan,
                format!("dependencies nest deeper than {MAX_DEPTH} levels at {entity} {key}"),
                None,
            ));
        }
        // The dependency's own key is leased for the inline sync, so no other worker (in this
        // process or another) applies an event of it at the same time.
        let now = match self.batch_now.load(Ordering::Relaxed) {
            0 => crate::dates::now_millis(),
            batch => batch,
        };
        let lease = NewEvent {
            tenant: tenant.to_string(),
            entity: entity.to_string(),
            key: key.to_string(),
            event: DEPENDENCY_EVENT.to_string(),
            payload: json!({}),
            received_at: now,
        };
        let Some(id) = self
            .store
            .claim_key(lease, &self.name, now, self.lease_ms)
            .await
            .map_err(Failure::store)?
        else {
            return Err(Failure::Retry {
                reason: format!(
                    "{entity} {key}, which this record refers to, is being synced by another worker"
                ),
            });
        };
        if let Ok(mut inline) = self.synced_inline.lock() {
            inline.insert((entity.to_string(), key.to_string()));
        }
        tracing::info!(
            tenant,
            entity,
            key,
            "Syncing a record another one refers to first."
        );
        let synced = self.sync(plan, key, depth + 1).await;
        // Done, or left to the queue as an event of its own (retried and dead-lettered there).
        let settled = match &synced {
            Ok(_) => self.store.complete(id, &self.name).await,
            Err(_) => self.store.release(id, &self.name).await,
        };
        settled.map_err(Failure::store)?;
        synced?;
        Ok(get().await.map_err(Failure::store)?.map(|b| b.target_id))
    }

    /// The API lookup tables `plan` uses, by name; each loaded once per tenant.
    pub(super) async fn lookups_for(&self, plan: &Plan) -> Result<Tables, Failure> {
        self.lookups
            .tables(&self.pack, &self.tenant, plan)
            .await
            .map_err(|(api, e)| Failure::api_of(plan, api, &e))
    }
}

fn query_of(req: &Request) -> Vec<(&str, String)> {
    req.query.pairs().map(|(k, v)| (k, v.to_string())).collect()
}

/// SHA-256 of the body as sent (field order is the mapping's, so it is stable across runs).
/// It is taken over the body rendered without a target, which holds only what comes from the
/// source: an update's body also carries the target's version and ids, which change on every write.
pub fn body_hash(body: &Body) -> String {
    Sha256::digest(body.as_str().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
