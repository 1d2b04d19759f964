//! The HTTP surface: the state the handlers share (writes through it fire webhooks), the gate
//! every `/api` request passes (fault injection, bearer auth, then the token's rate limit; the
//! request is logged and counted by route), routes and handlers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::limit::{RateLimit, Verdict};
use super::query::{ListQuery, Selection};
use super::resources::{Resource, laravel_input};
use super::store::{Event, Store};
use super::time::{self, Unix};
use super::webhooks::{Dispatcher, Job};
use crate::config::SandboxConfig;
use crate::faults::{Fault, FaultConfig, Faults};
use crate::listener::Conn;
use crate::request_counts::Counter;
use crate::request_log::{RequestLog, RequestRecord};
use crate::support::lock;

type Pairs = Vec<(String, String)>;
type QueryParams = Result<Query<Pairs>, QueryRejection>;
type Key = Result<Path<String>, PathRejection>;
type Id = Result<Path<u64>, PathRejection>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::NotFound(text) => message(StatusCode::NOT_FOUND, &text),
            ApiError::Invalid(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "errors": errors })),
            )
                .into_response(),
        }
    }
}

/// Why a request was refused: by the store, or before reaching it.
enum Reject {
    Api(ApiError),
    /// The path segment could not be decoded, so it names nothing.
    NotFound,
    /// The query string could not be parsed.
    BadQuery(String),
}

impl From<ApiError> for Reject {
    fn from(e: ApiError) -> Self {
        Reject::Api(e)
    }
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        match self {
            Reject::Api(e) => e.into_response(),
            Reject::NotFound => message(StatusCode::NOT_FOUND, "Not Found"),
            Reject::BadQuery(text) => message(StatusCode::BAD_REQUEST, &text),
        }
    }
}

type Answer = Result<Response, Reject>;

fn message(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({ "message": text }))).into_response()
}

fn envelope(status: StatusCode, key: &str, v: Value) -> Answer {
    let mut m = Map::new();
    m.insert(key.to_string(), v);
    Ok((status, Json(Value::Object(m))).into_response())
}

/// A list answer: HTTP 206 with Rackbeat's paging envelope.
fn page(plural: &str, rows: Vec<Value>, total: usize, q: &ListQuery) -> Answer {
    let mut m = Map::new();
    m.insert(plural.to_string(), Value::Array(rows));
    m.insert("total".into(), total.into());
    m.insert("pages".into(), total.div_ceil(q.limit).max(1).into());
    m.insert("limit".into(), q.limit.into());
    m.insert("page".into(), q.page.into());
    Ok((StatusCode::PARTIAL_CONTENT, Json(Value::Object(m))).into_response())
}

/// One page of an already filtered list.
fn slice(all: Vec<Value>, q: &ListQuery) -> (Vec<Value>, usize) {
    let total = all.len();
    let rows = all
        .into_iter()
        .skip((q.page - 1).saturating_mul(q.limit))
        .take(q.limit)
        .collect();
    (rows, total)
}

fn params(q: QueryParams) -> Result<Pairs, Reject> {
    q.map(|Query(p)| p)
        .map_err(|e| Reject::BadQuery(e.body_text()))
}

fn list_query(q: QueryParams) -> Result<ListQuery, Reject> {
    ListQuery::parse(&params(q)?).map_err(|e| Reject::Api(ApiError::Invalid(e)))
}

fn key(k: Key) -> Result<String, Reject> {
    k.map(|Path(k)| k).map_err(|_| Reject::NotFound)
}

fn id(i: Id) -> Result<u64, Reject> {
    i.map(|Path(i)| i).map_err(|_| Reject::NotFound)
}

/// A write body: JSON (anything else reads as empty, as Laravel does), and whether the write
/// asks for no webhooks (`suppress_webhooks` in the query or the body).
fn write_body(body: &Bytes, pairs: &Pairs) -> (Value, bool) {
    let mut body = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
    let yes = |v: &Value| {
        matches!(v, Value::Bool(true))
            || v.as_str().is_some_and(|s| s == "true" || s == "1")
            || v.as_i64() == Some(1)
    };
    let in_query = pairs
        .iter()
        .any(|(k, v)| k == "suppress_webhooks" && yes(&Value::String(v.trim().to_string())));
    let in_body = match &mut body {
        Value::Object(m) => m
            .remove("suppress_webhooks")
            .is_some_and(|v| yes(&laravel_input(v))),
        _ => false,
    };
    (body, in_query || in_body)
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let mut api = Router::new().route("/self", get(who_am_i));
    for r in Resource::ALL {
        let many = format!("/{}", r.path());
        let one = format!("/{}/{{number}}", r.path());
        api = api
            .route(
                &many,
                get(move |State(s): State<Arc<Shared>>, q: QueryParams| list(s, r, q)).post(
                    move |State(s): State<Arc<Shared>>, q: QueryParams, b: Bytes| {
                        create(s, r, q, b)
                    },
                ),
            )
            .route(
                &one,
                get(move |State(s): State<Arc<Shared>>, k: Key, q: QueryParams| show(s, r, k, q))
                    .put(
                        move |State(s): State<Arc<Shared>>, k: Key, q: QueryParams, b: Bytes| {
                            update(s, r, k, q, b)
                        },
                    )
                    .delete(
                        move |State(s): State<Arc<Shared>>, k: Key, q: QueryParams, b: Bytes| {
                            delete(s, r, k, q, b)
                        },
                    ),
            );
    }
    let api = api
        .route("/products/{number}/convert", post(convert))
        .route("/customer-invoices/drafts", post(create_draft))
        .route("/customer-invoices/{number}/book", post(book))
        .route(
            "/customer-invoices/{number}/create-creditnote",
            post(create_creditnote),
        )
        .route("/webhooks", get(list_webhooks).post(subscribe))
        .route(
            "/webhooks/{id}",
            get(show_webhook).put(update_webhook).delete(delete_webhook),
        )
        .route("/webhooks/{id}/logs", get(webhook_logs))
        .fallback(|| async { message(StatusCode::NOT_FOUND, "Not Found") })
        .layer(middleware::from_fn_with_state(shared.clone(), gate));
    Router::new()
        .nest("/api", api)
        .route(
            "/admin/deliveries",
            get(|State(s): State<Arc<Shared>>| async move { Json(s.dispatcher.deliveries()) }),
        )
        .route(
            "/admin/events",
            get(|State(s): State<Arc<Shared>>| async move { Json(lock(&s.fired).clone()) }),
        )
        .route(
            "/admin/requests",
            get(|State(s): State<Arc<Shared>>| async move { Json(s.requests.records()) }),
        )
        .route(
            "/admin/request-counts",
            get(|State(s): State<Arc<Shared>>| async move { Json(s.counts.snapshot()) }).delete(
                |State(s): State<Arc<Shared>>| async move {
                    s.counts.reset();
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .route("/admin/rate-limit", axum::routing::put(set_rate_limit))
        .route("/admin/faults", get(show_faults).put(set_faults))
        .route("/admin/retry-delays", axum::routing::put(set_retry_delays))
        .with_state(shared)
}

// ---- the state every request sees -------------------------------------------------------

/// State shared by the HTTP handlers and the [`Handle`](super::Handle); the webhook workers
/// share its store through the dispatcher.
pub(super) struct Shared {
    pub store: Arc<Mutex<Store>>,
    pub faults: Faults,
    token: String,
    account_id: u64,
    pub dispatcher: Arc<Dispatcher>,
    pub fired: Mutex<Vec<Event>>,
    /// The requests on `/api`.
    pub requests: RequestLog,
    /// Requests on `/api` by route, never capped.
    pub counts: Counter,
    pub rate: Mutex<RateLimit>,
    /// Injected 429s answered so far.
    throttled: AtomicU64,
}

impl Shared {
    /// The state of a sandbox serving `store`, delivering webhooks on the current tokio runtime.
    pub fn new(store: Store, config: &SandboxConfig) -> std::io::Result<Shared> {
        let store = Arc::new(Mutex::new(store));
        Ok(Shared {
            dispatcher: Arc::new(Dispatcher::new(config.rackbeat_account_id, store.clone())?),
            store,
            faults: Faults::new(config.faults.clone()),
            token: config.rackbeat_token.clone(),
            account_id: config.rackbeat_account_id,
            fired: Mutex::new(Vec::new()),
            requests: RequestLog::default(),
            counts: Counter::default(),
            rate: Mutex::new(RateLimit::new(config.rackbeat_rate_limit)),
            throttled: AtomicU64::new(0),
        })
    }

    /// Runs a write on the store and fires the events it caused (unless suppressed). Events are
    /// queued while the store is still locked, so concurrent writes fire in the order they
    /// happened.
    fn write<T>(
        self: &Arc<Self>,
        suppress: bool,
        op: impl FnOnce(&mut Store, Unix) -> Result<(T, Vec<Event>), ApiError>,
    ) -> Result<T, ApiError> {
        let mut store = lock(&self.store);
        let (out, events) = op(&mut store, time::now())?;
        if suppress {
            return Ok(out);
        }
        for e in events {
            for to in store.subscribers(&e.event) {
                let job = Job {
                    to,
                    event: e.event.clone(),
                    body: e.body.clone(),
                    attempt: 1,
                };
                self.dispatcher.enqueue(job);
            }
            lock(&self.fired).push(e);
        }
        Ok(out)
    }

    pub fn create(
        self: &Arc<Self>,
        r: Resource,
        body: Value,
        suppress: bool,
    ) -> Result<Value, ApiError> {
        self.write(suppress, |s, now| {
            let (key, mut events) = s.create(r, body, now)?;
            // A customer invoice created through the API is booked at once; drafts have their
            // own endpoint.
            if r == Resource::CustomerInvoice {
                events.extend(s.book(&key, now)?.1);
            }
            Ok((s.get(r, &key).unwrap_or(Value::Null), events))
        })
    }

    pub fn create_draft(self: &Arc<Self>, body: Value) -> Result<Value, ApiError> {
        let r = Resource::CustomerInvoice;
        self.write(true, |s, now| {
            let (key, events) = s.create(r, body, now)?;
            Ok((s.get(r, &key).unwrap_or(Value::Null), events))
        })
    }

    pub fn update(
        self: &Arc<Self>,
        r: Resource,
        key: &str,
        body: Value,
        suppress: bool,
    ) -> Result<Value, ApiError> {
        self.write(suppress, |s, now| {
            let (key, events) = s.update(r, key, body, now)?;
            Ok((s.get(r, &key).unwrap_or(Value::Null), events))
        })
    }

    pub fn delete(
        self: &Arc<Self>,
        r: Resource,
        key: &str,
        suppress: bool,
    ) -> Result<(), ApiError> {
        self.write(suppress, |s, _| Ok(((), s.delete(r, key)?)))
    }

    pub fn book(self: &Arc<Self>, key: &str, suppress: bool) -> Result<Value, ApiError> {
        let r = Resource::CustomerInvoice;
        self.write(suppress, |s, now| {
            let (key, events) = s.book(key, now)?;
            Ok((s.get(r, &key).unwrap_or(Value::Null), events))
        })
    }

    pub fn create_creditnote(self: &Arc<Self>, key: &str) -> Result<Value, ApiError> {
        let r = Resource::CustomerInvoice;
        self.write(true, |s, now| {
            let (key, events) = s.create_creditnote(key, now)?;
            Ok((s.get(r, &key).unwrap_or(Value::Null), events))
        })
    }

    pub fn convert(
        self: &Arc<Self>,
        key: &str,
        body: Value,
        suppress: bool,
    ) -> Result<Value, ApiError> {
        self.write(suppress, |s, now| {
            let (key, events) = s.convert(key, body, now)?;
            Ok((s.get(Resource::Lot, &key).unwrap_or(Value::Null), events))
        })
    }
}

// ---- the gate ------------------------------------------------------------------------------

async fn gate(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    // In a block: a borrow of the request (its body is not Sync) must not live across an await.
    let mut record = RequestRecord::new(req.method(), req.uri(), req.headers());
    let route = route_key(req.method(), req.extensions().get::<MatchedPath>());
    let is_write = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let (fault, latency) = s.faults.draw(is_write, req.uri().path());
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let response = match fault {
        Fault::TooManyRequests => Some(throttled(&s)),
        Fault::ServerError(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Some(message(status, "Server Error"))
        }
        Fault::Drop => {
            if let Some(ConnectInfo(c)) = req.extensions().get::<ConnectInfo<Conn>>() {
                c.kill();
            }
            s.requests.push(record);
            s.counts.count(route, None);
            // Never sent: the connection fails as soon as this is written.
            return message(StatusCode::BAD_GATEWAY, "dropped");
        }
        Fault::Slow(d) => {
            tokio::time::sleep(d).await;
            None
        }
        Fault::None => None,
    };
    let response = match response {
        Some(r) => r,
        None if !authorized(&s, req.headers()) => {
            message(StatusCode::UNAUTHORIZED, "Unauthenticated.")
        }
        None => {
            let verdict = lock(&s.rate).take(&s.token);
            match verdict {
                Verdict::Refused { limit, retry_after } => over_limit(limit, retry_after),
                Verdict::Admitted { limit, remaining } => {
                    let mut response = next.run(req).await;
                    let h = response.headers_mut();
                    h.insert("x-ratelimit-limit", HeaderValue::from(limit));
                    h.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
                    response
                }
                Verdict::Unlimited => next.run(req).await,
            }
        }
    };
    let status = response.status().as_u16();
    record.status = Some(status);
    s.requests.push(record);
    s.counts.count(route, Some(status));
    response
}

/// `"GET /products/{number}"`: the method and the route template under `/api`.
fn route_key(method: &Method, matched: Option<&MatchedPath>) -> String {
    let path = matched.map_or("(no route)", |m| {
        let p = m.as_str();
        p.strip_prefix("/api")
            .filter(|p| !p.is_empty())
            .unwrap_or(p)
    });
    format!("{method} {path}")
}

/// The 429 of the rate limit. (?) Rackbeat documents that it answers 429 when throttling, not
/// the body or headers: this is what Laravel's `throttle` middleware sends (Rackbeat runs on
/// Laravel), with `Retry-After` always present, unlike the injected 429s.
fn over_limit(limit: u32, retry_after: u64) -> Response {
    let mut response = message(StatusCode::TOO_MANY_REQUESTS, "Too Many Attempts.");
    let h = response.headers_mut();
    h.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    h.insert("x-ratelimit-limit", HeaderValue::from(limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(0u32));
    let reset = time::now().saturating_add(i64::try_from(retry_after).unwrap_or(i64::MAX));
    h.insert("x-ratelimit-reset", HeaderValue::from(reset));
    response
}

/// A 429; every other one carries `Retry-After` (clients must cope with both).
fn throttled(s: &Shared) -> Response {
    let mut response = message(StatusCode::TOO_MANY_REQUESTS, "Too Many Attempts.");
    if s.throttled
        .fetch_add(1, Ordering::Relaxed)
        .is_multiple_of(2)
    {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    response
}

fn authorized(s: &Shared, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, token)| {
            scheme.eq_ignore_ascii_case("bearer") && token.trim() == s.token
        })
}

// ---- resources -----------------------------------------------------------------------------

async fn list(s: Arc<Shared>, r: Resource, q: QueryParams) -> Answer {
    let q = list_query(q)?;
    let (mut rows, total) = lock(&s.store).list(r, &q);
    if let Some(sel) = &q.fields {
        rows = rows.into_iter().map(|v| sel.apply(v)).collect();
    }
    page(r.plural(), rows, total, &q)
}

async fn show(s: Arc<Shared>, r: Resource, k: Key, q: QueryParams) -> Answer {
    let (key, pairs) = (key(k)?, params(q)?);
    let found = lock(&s.store).get(r, &key);
    let v = found.ok_or_else(|| ApiError::not_found(r, &key))?;
    let v = match Selection::from_pairs(&pairs) {
        Some(sel) => sel.apply(v),
        None => v,
    };
    envelope(StatusCode::OK, r.singular(), v)
}

async fn create(s: Arc<Shared>, r: Resource, q: QueryParams, body: Bytes) -> Answer {
    let (body, suppress) = write_body(&body, &params(q)?);
    envelope(
        StatusCode::CREATED,
        r.singular(),
        s.create(r, body, suppress)?,
    )
}

async fn update(s: Arc<Shared>, r: Resource, k: Key, q: QueryParams, body: Bytes) -> Answer {
    let (key, pairs) = (key(k)?, params(q)?);
    let (body, suppress) = write_body(&body, &pairs);
    envelope(
        StatusCode::OK,
        r.singular(),
        s.update(r, &key, body, suppress)?,
    )
}

async fn delete(s: Arc<Shared>, r: Resource, k: Key, q: QueryParams, body: Bytes) -> Answer {
    let (key, pairs) = (key(k)?, params(q)?);
    let (_, suppress) = write_body(&body, &pairs);
    s.delete(r, &key, suppress)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn convert(State(s): State<Arc<Shared>>, k: Key, q: QueryParams, body: Bytes) -> Answer {
    let (key, pairs) = (key(k)?, params(q)?);
    let (body, suppress) = write_body(&body, &pairs);
    envelope(
        StatusCode::OK,
        Resource::Lot.singular(),
        s.convert(&key, body, suppress)?,
    )
}

async fn create_draft(State(s): State<Arc<Shared>>, body: Bytes) -> Answer {
    let (body, _) = write_body(&body, &Vec::new());
    envelope(
        StatusCode::CREATED,
        Resource::CustomerInvoice.singular(),
        s.create_draft(body)?,
    )
}

async fn book(State(s): State<Arc<Shared>>, k: Key, q: QueryParams, body: Bytes) -> Answer {
    let (key, pairs) = (key(k)?, params(q)?);
    // The body may also carry `mail` settings; no mail is simulated.
    let (_, suppress) = write_body(&body, &pairs);
    envelope(
        StatusCode::OK,
        Resource::CustomerInvoice.singular(),
        s.book(&key, suppress)?,
    )
}

async fn create_creditnote(State(s): State<Arc<Shared>>, k: Key) -> Answer {
    let key = key(k)?;
    envelope(
        StatusCode::CREATED,
        Resource::CustomerInvoice.singular(),
        s.create_creditnote(&key)?,
    )
}

async fn who_am_i(State(s): State<Arc<Shared>>) -> Response {
    Json(json!({
        "user_account": {
            "id": s.account_id,
            "company_name": "Sandkasse Lager AS",
            "address": { "street": "Lagerveien 1", "zipcode": "0150", "city": "Oslo", "country": "NO" },
        },
        "user": { "id": 1, "name": "API-bruker", "email": "api@sandkasse.example.no" },
    }))
    .into_response()
}

// ---- webhooks ------------------------------------------------------------------------------

async fn list_webhooks(State(s): State<Arc<Shared>>, q: QueryParams) -> Answer {
    let q = list_query(q)?;
    let event =
        q.eq.iter()
            .find(|(k, _)| k == "event")
            .map(|(_, v)| v.as_str());
    let all = lock(&s.store).webhooks(event);
    let (rows, total) = slice(all, &q);
    page("webhooks", rows, total, &q)
}

/// `POST /webhooks`: 201 for a new subscription (with its token), 200 when the same event and
/// URL update an existing one.
async fn subscribe(State(s): State<Arc<Shared>>, body: Bytes) -> Answer {
    let (body, _) = write_body(&body, &Vec::new());
    let (w, created) = lock(&s.store).subscribe(body, time::now())?;
    envelope(
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        "webhook",
        w,
    )
}

async fn show_webhook(State(s): State<Arc<Shared>>, i: Id) -> Answer {
    let w = lock(&s.store).webhook(id(i)?)?;
    envelope(StatusCode::OK, "webhook", w)
}

async fn update_webhook(State(s): State<Arc<Shared>>, i: Id, body: Bytes) -> Answer {
    let id = id(i)?;
    let (body, _) = write_body(&body, &Vec::new());
    let w = lock(&s.store).update_webhook(id, body, time::now())?;
    envelope(StatusCode::OK, "webhook", w)
}

async fn delete_webhook(State(s): State<Arc<Shared>>, i: Id) -> Answer {
    lock(&s.store).delete_webhook(id(i)?)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /webhooks/{id}/logs`. (?) Rackbeat documents the endpoint, not its shape: this lists
/// the sandbox's delivery attempts for the webhook, newest first.
async fn webhook_logs(State(s): State<Arc<Shared>>, i: Id, q: QueryParams) -> Answer {
    let (id, q) = (id(i)?, list_query(q)?);
    lock(&s.store).webhook(id)?;
    let logs: Vec<Value> = s
        .dispatcher
        .deliveries()
        .into_iter()
        .filter(|d| d.webhook_id == id)
        .rev()
        .map(|d| {
            json!({
                "event": d.event, "url": d.url, "body": d.body, "attempt": d.attempt,
                "status_code": d.status, "error": d.error, "created_at": d.at,
            })
        })
        .collect();
    let (rows, total) = slice(logs, &q);
    page("logs", rows, total, &q)
}

// ---- admin ---------------------------------------------------------------------------------

async fn show_faults(State(s): State<Arc<Shared>>) -> Json<FaultConfig> {
    Json(s.faults.config())
}

async fn set_faults(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<FaultConfig>(&body) {
        Ok(config) => {
            s.faults.set(config.clone());
            Json(config).into_response()
        }
        Err(e) => message(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
    }
}

#[derive(serde::Deserialize, serde::Serialize)]
struct RateLimitBody {
    /// Requests per token per minute; `0`: unlimited.
    limit: u32,
}

async fn set_rate_limit(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<RateLimitBody>(&body) {
        Ok(b) => {
            lock(&s.rate).set(b.limit);
            Json(b).into_response()
        }
        Err(e) => message(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
    }
}

#[derive(serde::Deserialize, serde::Serialize)]
struct RetryDelays {
    delays_ms: Vec<u64>,
}

async fn set_retry_delays(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<RetryDelays>(&body) {
        Ok(d) => {
            s.dispatcher.set_retry_delays(
                d.delays_ms
                    .iter()
                    .map(|ms| Duration::from_millis(*ms))
                    .collect(),
            );
            Json(d).into_response()
        }
        Err(e) => message(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
    }
}
