//! The HTTP surface: routes, the gate every `/api` request passes (fault injection, then bearer
//! auth), handlers, and a listener whose connections can be cut mid-request (the `Drop` fault).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::connect_info::Connected;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::IncomingStream;
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::query::{ListQuery, Selection};
use super::resources::{Resource, laravel_input};
use super::store::ApiError;
use super::{RequestRecord, Shared, lock};
use crate::sandbox::faults::{Fault, FaultConfig};

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
        let one = format!("/{}/{{key}}", r.path());
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
        .route("/products/{key}/convert", post(convert))
        .route("/customer-invoices/drafts", post(create_draft))
        .route("/customer-invoices/{key}/book", post(book))
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
            get(|State(s): State<Arc<Shared>>| async move { Json(lock(&s.requests).clone()) }),
        )
        .route("/admin/faults", get(show_faults).put(set_faults))
        .route("/admin/retry-delays", axum::routing::put(set_retry_delays))
        .with_state(shared)
}

// ---- the gate ------------------------------------------------------------------------------

async fn gate(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    // In a block: a borrow of the request (its body is not Sync) must not live across an await.
    let mut record = {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        RequestRecord {
            method: req.method().to_string(),
            path: req.uri().path().to_string(),
            query: req.uri().query().map(str::to_string),
            status: None,
            consumer_name: header("consumer-name"),
            user_agent: header("user-agent"),
        }
    };
    let is_write = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let (fault, latency) = s.faults.draw(is_write);
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
            if let Some(ConnectInfo(c)) = req.extensions().get::<ConnectInfo<Connection>>() {
                c.kill.store(true, Ordering::SeqCst);
            }
            s.log_request(record);
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
        None => next.run(req).await,
    };
    record.status = Some(response.status().as_u16());
    s.log_request(record);
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
    let (w, created) = lock(&s.store).subscribe(body, super::time::now())?;
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
    let w = lock(&s.store).update_webhook(id, body, super::time::now())?;
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

// ---- a listener whose connections a handler can cut -----------------------------------------

pub(crate) struct FaultyListener(pub TcpListener);

/// Per-connection info handed to handlers: setting `kill` makes the connection fail on its next
/// read or write, so the client gets no answer at all.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    kill: Arc<AtomicBool>,
}

pub(crate) struct Stream {
    inner: TcpStream,
    kill: Arc<AtomicBool>,
}

impl Stream {
    fn cut(&self) -> Option<io::Error> {
        self.kill
            .load(Ordering::SeqCst)
            .then(|| io::ErrorKind::ConnectionAborted.into())
    }
}

impl axum::serve::Listener for FaultyListener {
    type Io = Stream;
    type Addr = Connection;

    async fn accept(&mut self) -> (Stream, Connection) {
        loop {
            match self.0.accept().await {
                Ok((inner, _)) => {
                    let kill = Arc::new(AtomicBool::new(false));
                    return (
                        Stream {
                            inner,
                            kill: kill.clone(),
                        },
                        Connection { kill },
                    );
                }
                // Out of file descriptors and the like: wait and try again, as axum's own does.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Connection> {
        self.0.local_addr().map(|_| Connection {
            kill: Arc::default(),
        })
    }
}

impl Connected<IncomingStream<'_, FaultyListener>> for Connection {
    fn connect_info(stream: IncomingStream<'_, FaultyListener>) -> Self {
        stream.remote_addr().clone()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(e) = self.cut() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.cut() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(e) = self.cut() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
