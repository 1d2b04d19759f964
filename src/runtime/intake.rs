//! Webhook intake: `POST /webhooks/rackbeat`. A delivery is checked (tenant, token, event, body),
//! persisted, and only then answered 2xx, well inside Rackbeat's 15 s timeout. Nothing that fails a
//! check is enqueued; the answer says why.
//!
//! The tenant comes from `Rackbeat-Account-Id`, the event from `Rackbeat-Webhook-Event` (a body may
//! be as thin as `{key_name, key}`), and the token is compared with every one of the tenant's in
//! constant time. An unknown account or a wrong token is 401, a malformed delivery 400, an
//! oversized one 413, an event no mapping handles 2xx and ignored; a delivery that could not be
//! persisted is 503, so Rackbeat delivers it again. Concurrent deliveries share one commit
//! (`Store::enqueue_many`), so the flush per event that `synchronous=FULL` costs is paid once per
//! batch. The intake also serves `/healthz`, `/readyz` (the store answers) and `/metrics`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::metrics::Metrics;
use super::tenant::triggers;
use crate::plan::Pack;
use crate::secret::Secret;
use crate::store::{NewEvent, Store, StoreError};

/// One company pair as the intake sees it.
#[derive(Debug, Clone)]
pub struct IntakeTenant {
    pub id: String,
    /// The Rackbeat account whose deliveries belong to this tenant (`Rackbeat-Account-Id`).
    pub account_id: String,
    /// The tokens Rackbeat returned when the subscriptions were created (one per event).
    pub webhook_tokens: Vec<Secret>,
}

/// The intake's state.
pub struct Intake<S> {
    store: Arc<S>,
    /// Tokens are added when a reload finds new subscriptions (`add_tokens`).
    tenants: std::sync::RwLock<Vec<IntakeTenant>>,
    /// Event name → the entity of the mapping it triggers; replaced when the pack is reloaded.
    events: std::sync::RwLock<Arc<HashMap<String, String>>>,
    max_body_bytes: usize,
    metrics: Arc<Metrics>,
    /// Deliveries waiting to be written together; started on first use (it needs the runtime).
    batcher: std::sync::OnceLock<Batcher>,
    /// Per tenant: woken after its events are persisted, so idle workers start at once.
    queued: Arc<Wakers>,
}

/// Tenant id → what its idle workers wait on.
pub type Wakers = HashMap<String, Arc<tokio::sync::Notify>>;

type Persisted = tokio::sync::oneshot::Sender<Result<i64, PersistError>>;

/// Why a delivery was not persisted.
#[derive(Debug, Clone, thiserror::Error)]
enum PersistError {
    #[error("the store writer stopped")]
    WriterStopped,
    /// The batch's commit failed; every delivery in it shares the one error.
    #[error(transparent)]
    Store(Arc<StoreError>),
}
type Batcher = tokio::sync::mpsc::Sender<(NewEvent, Persisted)>;

/// Most deliveries written in one commit.
const BATCH: usize = 256;

/// Writes queued deliveries in batches: whatever arrived while the last commit was on disk goes
/// into the next one, so concurrent deliveries share a flush and a lone one waits for nothing.
async fn write_batches<S: Store>(
    store: Arc<S>,
    mut rx: tokio::sync::mpsc::Receiver<(NewEvent, Persisted)>,
    queued: Arc<Wakers>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (events, replies): (Vec<NewEvent>, Vec<Persisted>) = batch.into_iter().unzip();
        let mut per_tenant: HashMap<String, usize> = HashMap::new();
        for e in &events {
            *per_tenant.entry(e.tenant.clone()).or_default() += 1;
        }
        match store.enqueue_many(events).await {
            Ok(ids) => {
                for (reply, id) in replies.into_iter().zip(ids) {
                    reply.send(Ok(id)).ok();
                }
                // One idle worker per new event, not all of them: each woken worker claims, and
                // with every worker woken for every delivery most claims found nothing while
                // holding the store's write lock that the claims, bindings and intake all queue
                // on. A wake-up that finds no idle worker is kept for the next one to wait, and
                // busy workers claim again as soon as they finish.
                for (tenant, n) in per_tenant {
                    if let Some(notify) = queued.get(&tenant) {
                        for _ in 0..n {
                            notify.notify_one();
                        }
                    }
                }
            }
            Err(e) => {
                let e = PersistError::Store(Arc::new(e));
                for reply in replies {
                    reply.send(Err(e.clone())).ok();
                }
            }
        }
    }
}

/// Event name → the entity of the real-time mapping it triggers.
fn trigger_events(pack: &Pack) -> HashMap<String, String> {
    triggers(pack)
        .map(|(event, plan)| (event.to_string(), plan.entity.clone()))
        .collect()
}

impl<S: Store + 'static> Intake<S> {
    /// An intake for the real-time mappings of `pack`.
    pub fn new(store: Arc<S>, tenants: Vec<IntakeTenant>, pack: &Pack) -> Self {
        Intake {
            store,
            tenants: std::sync::RwLock::new(tenants),
            events: std::sync::RwLock::new(Arc::new(trigger_events(pack))),
            max_body_bytes: 64 * 1024,
            metrics: Arc::new(Metrics::default()),
            batcher: std::sync::OnceLock::new(),
            queued: Arc::default(),
        }
    }

    /// Accepts deliveries signed with `tokens` for `tenant` too (a reloaded pack's new
    /// subscriptions); returns how many were new.
    pub fn add_tokens(&self, tenant: &str, tokens: Vec<Secret>) -> usize {
        let mut tenants = match self.tenants.write() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        let Some(t) = tenants.iter_mut().find(|t| t.id == tenant) else {
            return 0;
        };
        let mut added = 0;
        for token in tokens {
            if !t
                .webhook_tokens
                .iter()
                .any(|k| k.expose() == token.expose())
            {
                t.webhook_tokens.push(token);
                added += 1;
            }
        }
        added
    }

    /// Accepts the events of a reloaded pack from now on.
    pub fn set_pack(&self, pack: &Pack) {
        let events = Arc::new(trigger_events(pack));
        match self.events.write() {
            Ok(mut e) => *e = events,
            Err(poisoned) => *poisoned.into_inner() = events,
        }
    }

    /// The entity an event name triggers, under the current pack.
    fn entity_of(&self, event: &str) -> Option<String> {
        let events = match self.events.read() {
            Ok(e) => e.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        events.get(event).cloned()
    }

    /// Wakes one waiter of a tenant's `Notify` per event of it persisted.
    pub fn with_notify(mut self, notify: Wakers) -> Self {
        self.queued = Arc::new(notify);
        self
    }

    /// Persists one event (batched with concurrent ones); its id once it is on disk.
    async fn persist(&self, event: NewEvent) -> Result<i64, PersistError> {
        let tx = self.batcher.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::channel(4 * BATCH);
            tokio::spawn(write_batches(self.store.clone(), rx, self.queued.clone()));
            tx
        });
        let (reply, answer) = tokio::sync::oneshot::channel();
        tx.send((event, reply))
            .await
            .map_err(|_| PersistError::WriterStopped)?;
        answer.await.map_err(|_| PersistError::WriterStopped)?
    }

    /// Shares `metrics` with the workers, so `/metrics` shows both.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Largest body accepted; Rackbeat's deliveries are a few hundred bytes.
    pub fn with_max_body_bytes(mut self, n: usize) -> Self {
        self.max_body_bytes = n;
        self
    }

    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/webhooks/rackbeat", post(receive::<S>))
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(ready::<S>))
            .route("/metrics", get(metrics::<S>))
            .with_state(self)
    }
}

/// Ready when the store answers.
async fn ready<S: Store + 'static>(State(intake): State<Arc<Intake<S>>>) -> Response {
    match intake.store.queue_depth().await {
        Ok(_) => (StatusCode::OK, "ready").into_response(),
        Err(e) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("the store is not available: {e}"),
        ),
    }
}

async fn metrics<S: Store + 'static>(State(intake): State<Arc<Intake<S>>>) -> Response {
    if let Ok(depth) = intake.store.queue_depth().await {
        intake
            .metrics
            .queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        intake.metrics.render(),
    )
        .into_response()
}

fn answer(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "message": message }))).into_response()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

async fn receive<S: Store + 'static>(
    State(intake): State<Arc<Intake<S>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let response = check_and_enqueue(&intake, headers, body).await;
    let outcome = match response.status().as_u16() {
        200 if response.headers().contains_key("x-rbtx-ignored") => "ignored",
        200..=299 => "queued",
        500.. => "failed",
        _ => "refused",
    };
    intake.metrics.webhook(outcome);
    response
}

async fn check_and_enqueue<S: Store + 'static>(
    intake: &Intake<S>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(account) = header(&headers, "rackbeat-account-id") else {
        return answer(StatusCode::BAD_REQUEST, "missing Rackbeat-Account-Id");
    };
    let token = header(&headers, "rackbeat-webhook-token").unwrap_or("");
    let found = {
        let tenants = match intake.tenants.read() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        tenants.iter().find(|t| t.account_id == account).map(|t| {
            // Compare every token in constant time, so timing tells nothing about how much
            // matched.
            let known = t.webhook_tokens.iter().fold(false, |hit, k| {
                hit | bool::from(k.expose().as_bytes().ct_eq(token.as_bytes()))
            });
            (t.id.clone(), known)
        })
    };
    let Some((tenant_id, known)) = found else {
        tracing::warn!(account, "Webhook from an unknown Rackbeat account refused.");
        return answer(StatusCode::UNAUTHORIZED, "unknown account");
    };
    if !known {
        tracing::warn!(tenant = %tenant_id, "Webhook with a wrong token refused.");
        return answer(StatusCode::UNAUTHORIZED, "invalid webhook token");
    }
    let Some(event) = header(&headers, "rackbeat-webhook-event").map(str::to_string) else {
        return answer(StatusCode::BAD_REQUEST, "missing Rackbeat-Webhook-Event");
    };
    let bytes = match to_bytes(body, intake.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => return answer(StatusCode::PAYLOAD_TOO_LARGE, "body too large"),
    };
    let payload: Value = match serde_json::from_slice(&bytes) {
        Ok(v @ Value::Object(_)) => v,
        _ => return answer(StatusCode::BAD_REQUEST, "the body is not a JSON object"),
    };
    // A renumbered record is known by its new key from now on.
    let key = ["new_key", "key"]
        .iter()
        .find_map(|k| match payload.get(*k) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        });
    let Some(key) = key else {
        return answer(StatusCode::BAD_REQUEST, "the body has no `key`");
    };
    let Some(entity) = intake.entity_of(&event) else {
        tracing::info!(tenant = %tenant_id, event, key, "Webhook for an event no mapping handles; ignored.");
        return (
            StatusCode::OK,
            [("x-rbtx-ignored", "1")],
            axum::Json(json!({ "status": "ignored" })),
        )
            .into_response();
    };
    let new = NewEvent {
        tenant: tenant_id.clone(),
        entity,
        key: key.clone(),
        event: event.clone(),
        payload,
        received_at: crate::dates::now_millis(),
    };
    match intake.persist(new).await {
        Ok(id) => {
            tracing::debug!(tenant = %tenant_id, event, key, id, "Webhook persisted.");
            (
                StatusCode::OK,
                axum::Json(json!({ "status": "queued", "id": id })),
            )
                .into_response()
        }
        Err(e) => {
            // Not persisted: answer 5xx so Rackbeat delivers it again.
            tracing::error!(tenant = %tenant_id, event, key, error = %e, "Webhook could not be persisted.");
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "could not persist the event; deliver again",
            )
        }
    }
}
