//! Tripletex API v2: session tokens, Basic auth, `{value}` and `{values}` envelopes, `from`/`count`
//! paging, typed errors with their codes, the rate-limit headers, and `version` conflicts.
//!
//! A session token is created with `POST /token/session/:create`, renewed on the day it expires
//! (it dies at that midnight) and once more on a 401. Errors keep the status, code, field messages and `x-tlx-request-id`.
//! Lists are read `from`/`count` until a short page; [`Tripletex::update_versioned`] retries a
//! 409/8000 revision conflict with the record's current version.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tracing::Instrument;

use super::{
    ApiError, ConfigError, FieldMessage, RetryPolicy, back_off, idempotent, transport_error,
};
use crate::secret::Secret;

/// What to do when Tripletex refuses an invoice because the company has no bank account.
pub const BANK_ACCOUNT_FIX: &str = "Tripletex: Company → Company information → set the invoice bank account. \
    For a Tripletex demo company, Rackbeat's help suggests bank account 11111111113 and org. no. 984809085. \
    Invoices that failed meanwhile wait in the dead-letter store: `rbtx dlq replay --all` once fixed.";

/// A fix for a Tripletex error whose cause is known but not in its fields.
pub fn fix_for(e: &ApiError) -> Option<&'static str> {
    match e {
        // 422/18000 "Faktura kan ikke opprettes før selskapet har registrert et bankkontonummer.",
        // with no field: the wording is the only sign (see the API notes).
        ApiError::Status {
            status: 422,
            message,
            fields,
            ..
        } if message.contains("bankkontonummer")
            || fields.iter().any(|f| f.message.contains("bankkontonummer")) =>
        {
            Some(BANK_ACCOUNT_FIX)
        }
        _ => None,
    }
}

/// Where a session is created from the consumer and employee tokens.
const SESSION_PATH: &str = "/token/session/:create";

/// Tripletex refused the tokens themselves: creating a session failed with a client error (it
/// answers an unknown or revoked token with 422/18000 on the token's field, not 401), so
/// nothing can be sent until they are replaced.
pub fn session_refused(e: &ApiError) -> bool {
    matches!(e, ApiError::Status { path, status, .. }
        if path == SESSION_PATH && (400..500).contains(status) && *status != 429)
}

/// How to reach one Tripletex company.
#[derive(Debug, Clone)]
pub struct TripletexConfig {
    /// Base URL ending in `/v2` (production `https://tripletex.no/v2`, test
    /// `https://api-test.tripletex.tech/v2`).
    pub base_url: String,
    pub consumer_token: Secret,
    pub employee_token: Secret,
    /// `0` for the token owner's company, else an accountant's client company id.
    pub company_id: u64,
    /// Days a session token is asked to live.
    pub session_days: i64,
    /// Page size for lists.
    pub page_size: usize,
    pub retry: RetryPolicy,
}

impl TripletexConfig {
    pub fn new(
        base_url: impl Into<String>,
        consumer_token: Secret,
        employee_token: Secret,
    ) -> Self {
        TripletexConfig {
            base_url: base_url.into(),
            consumer_token,
            employee_token,
            company_id: 0,
            session_days: 2,
            page_size: 1000,
            retry: RetryPolicy::default(),
        }
    }
}

struct Session {
    token: Secret,
    /// Days since 1970-01-01 of the expiration date; the token dies at its midnight.
    expires: i64,
}

/// What the last response said about the rate budget.
#[derive(Debug, Clone, Copy, Default)]
struct Budget {
    remaining: Option<u64>,
    reset_at: Option<Instant>,
}

/// A Tripletex client for one company.
/// A client of one Tripletex company. Clones share the session and the rate budget, so the
/// workers of a tenant open one session and spend one budget, as the token does.
#[derive(Clone)]
pub struct Tripletex {
    http: reqwest::Client,
    config: TripletexConfig,
    session: Arc<Mutex<Option<Session>>>,
    budget: Arc<std::sync::Mutex<Budget>>,
    meter: Arc<super::Meter>,
}

impl std::fmt::Debug for Tripletex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tripletex")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct Page {
    pub values: Vec<Value>,
    /// Where the next page starts, or `None` after the last (short) page.
    pub next: Option<usize>,
}

impl Tripletex {
    pub fn new(config: TripletexConfig) -> Result<Self, ConfigError> {
        let http = config.retry.client("rbtx")?;
        Ok(Tripletex {
            http,
            config,
            session: Arc::new(Mutex::new(None)),
            budget: Arc::new(std::sync::Mutex::new(Budget::default())),
            meter: Arc::default(),
        })
    }

    /// Requests sent in the last minute, and what the last answer said remains of the budget.
    pub fn budget_in_use(&self) -> (u64, Option<u64>) {
        let remaining = self.budget.lock().ok().and_then(|b| b.remaining);
        (
            self.meter.last_minute(crate::dates::now_millis()),
            remaining,
        )
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.config.base_url
    }

    /// `GET path`, the object inside `{"value": …}`; `None` on 404.
    pub async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Option<Value>, ApiError> {
        match self.send(Method::GET, path, query, None).await {
            Ok(v) => Ok(Some(unwrap_value(v))),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One page of `GET path`, starting at `from`.
    pub async fn page(
        &self,
        path: &str,
        query: &[(&str, String)],
        from: usize,
    ) -> Result<Page, ApiError> {
        let count = self.config.page_size;
        let mut q: Vec<(&str, String)> = query.to_vec();
        q.push(("from", from.to_string()));
        q.push(("count", count.to_string()));
        let body = self.send(Method::GET, path, &q, None).await?;
        let values = match body.get("values") {
            Some(Value::Array(v)) => v.clone(),
            _ => {
                return Err(ApiError::Decode {
                    method: "GET".into(),
                    path: path.into(),
                    message: "a list response without `values`".into(),
                });
            }
        };
        // `fullResultSize` is deprecated and inexact: a short page is the end.
        let next = (values.len() >= count && !values.is_empty()).then_some(from + values.len());
        Ok(Page { values, next })
    }

    /// Every record of `GET path`, page by page.
    pub async fn list_all(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<Value>, ApiError> {
        let mut out = Vec::new();
        let mut from = 0;
        loop {
            let page = self.page(path, query, from).await?;
            out.extend(page.values);
            match page.next {
                Some(n) => from = n,
                None => return Ok(out),
            }
        }
    }

    /// `POST path`; the created object.
    pub async fn post(
        &self,
        path: &str,
        query: &[(&str, String)],
        body: &Value,
    ) -> Result<Value, ApiError> {
        self.post_json(path, query, &body.to_string()).await
    }

    /// `PUT path`; the updated object.
    pub async fn put(
        &self,
        path: &str,
        query: &[(&str, String)],
        body: &Value,
    ) -> Result<Value, ApiError> {
        self.put_json(path, query, &body.to_string()).await
    }

    /// `POST path` with a body that is JSON text already (a rendered mapping body).
    pub async fn post_json(
        &self,
        path: &str,
        query: &[(&str, String)],
        json: &str,
    ) -> Result<Value, ApiError> {
        self.send(Method::POST, path, query, Some(json))
            .await
            .map(unwrap_value)
    }

    /// `PUT path` with a body that is JSON text already.
    pub async fn put_json(
        &self,
        path: &str,
        query: &[(&str, String)],
        json: &str,
    ) -> Result<Value, ApiError> {
        self.send(Method::PUT, path, query, Some(json))
            .await
            .map(unwrap_value)
    }

    /// Updates `path` with optimistic locking: reads the record, lets `change` build the body from
    /// it, and writes it with the record's `version`. A revision conflict (409/8000) rereads and
    /// reapplies, up to `attempts` times.
    pub async fn update_versioned(
        &self,
        path: &str,
        attempts: usize,
        change: impl Fn(&Value) -> Value,
    ) -> Result<Value, ApiError> {
        let mut last = None;
        for _ in 0..attempts.max(1) {
            let current = self.get(path, &[]).await?.ok_or_else(|| ApiError::Status {
                method: "GET".into(),
                path: path.into(),
                status: 404,
                code: None,
                message: "not found".into(),
                fields: vec![],
                request_id: None,
            })?;
            let mut body = change(&current);
            if let (Some(obj), Some(v)) = (body.as_object_mut(), current.get("version")) {
                obj.insert("version".into(), v.clone());
            }
            match self.put(path, &[], &body).await {
                Err(e) if e.is_revision_conflict() => last = Some(e),
                other => return other,
            }
        }
        // `attempts.max(1)` ran at least once, so `last` holds the conflict that ended the loop.
        Err(last.unwrap_or_else(|| ApiError::Decode {
            method: "PUT".into(),
            path: path.into(),
            message: "no update attempted".into(),
        }))
    }

    /// The Authorization header, creating a session when there is none or it expires today.
    /// `refused` is a header Tripletex answered 401: the session is renewed only if it still is
    /// the current one, so clients sharing it that were refused together make one new session.
    async fn auth_header(&self, refused: Option<&str>) -> Result<String, ApiError> {
        let mut session = self.session.lock().await;
        let today = crate::dates::today();
        let fresh = session.as_ref().is_some_and(|s| s.expires > today);
        let current = session.as_ref().map(|s| self.header_for(s.token.expose()));
        let renew = refused.is_some() && refused == current.as_deref();
        if renew || !fresh {
            *session = Some(self.create_session(today).await?);
        }
        let token = session
            .as_ref()
            .map(|s| s.token.expose().to_string())
            .unwrap_or_default();
        Ok(self.header_for(&token))
    }

    fn header_for(&self, token: &str) -> String {
        let raw = format!("{}:{}", self.config.company_id, token);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    /// Creates a session, retrying throttling, server errors and lost connections: an extra
    /// session is harmless, so unlike other POSTs this one may be repeated.
    async fn create_session(&self, today: i64) -> Result<Session, ApiError> {
        let mut delays = self.config.retry.delays();
        loop {
            match self.try_create_session(today).await {
                Ok(s) => return Ok(s),
                Err(e) if e.is_retryable() => back_off(&mut delays, e, None, "tripletex").await?,
                Err(e) => return Err(e),
            }
        }
    }

    async fn try_create_session(&self, today: i64) -> Result<Session, ApiError> {
        let expires = today + self.config.session_days.max(1);
        let path = SESSION_PATH;
        let body = json!({
            "consumerToken": self.config.consumer_token.expose(),
            "employeeToken": self.config.employee_token.expose(),
            "expirationDate": crate::dates::format(expires),
        });
        let url = format!("{}{path}", self.config.base_url);
        let resp = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|e| transport_error("POST", path, &e))?;
        let status = resp.status().as_u16();
        let request_id = request_id(&resp);
        let text = resp
            .text()
            .await
            .map_err(|e| transport_error("POST", path, &e))?;
        let v = crate::json::parse(&text).unwrap_or(Value::Null);
        if !(200..300).contains(&status) {
            return Err(status_error("POST", path, status, &v, request_id));
        }
        let token = v
            .pointer("/value/token")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::Decode {
                method: "POST".into(),
                path: path.into(),
                message: "session response without `value.token`".into(),
            })?;
        tracing::info!(expires = %crate::dates::format(expires), "Created a Tripletex session.");
        Ok(Session {
            token: Secret::new(token),
            expires,
        })
    }

    /// Waits while the last response said the budget is spent.
    async fn respect_budget(&self) {
        let wait = self
            .budget
            .lock()
            .ok()
            .and_then(|b| match (b.remaining, b.reset_at) {
                (Some(0), Some(at)) => at.checked_duration_since(Instant::now()),
                _ => None,
            });
        if let Some(d) = wait {
            tracing::debug!(
                wait_ms = d.as_millis() as u64,
                "Tripletex rate budget spent; waiting for the reset."
            );
            tokio::time::sleep(d).await;
        }
    }

    fn note_budget(&self, headers: &reqwest::header::HeaderMap) -> Option<Duration> {
        let num = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.trim().parse::<u64>().ok())
        };
        let reset = num("x-rate-limit-reset").map(Duration::from_secs);
        if let Ok(mut b) = self.budget.lock() {
            b.remaining = num("x-rate-limit-remaining");
            b.reset_at = reset.map(|d| Instant::now() + d);
        }
        reset
    }

    /// Sends one request with auth, retries and budget; the parsed body of a 2xx answer.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&str>,
    ) -> Result<Value, ApiError> {
        let url = format!("{}{}", self.config.base_url, encode_path(path));
        let mut delays = self.config.retry.delays();
        let mut renewed = false;
        loop {
            self.respect_budget().await;
            self.meter.record(crate::dates::now_millis());
            let auth = self.auth_header(None).await?;
            let started = Instant::now();
            let mut req = self
                .http
                .request(method.clone(), &url)
                .header("Authorization", &auth)
                .query(query);
            if let Some(b) = body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(b.to_string());
            }
            let span = tracing::debug_span!("tripletex", method = %method, path, status = tracing::field::Empty, request_id = tracing::field::Empty);
            let result = req.send().instrument(span.clone()).await;
            let (err, wait) = match result {
                Err(e) => {
                    let err = transport_error(method.as_str(), path, &e);
                    if err.is_ambiguous() && !idempotent(&method) {
                        return Err(err);
                    }
                    (err, None)
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let rid = request_id(&resp);
                    let reset = self.note_budget(resp.headers());
                    span.record("status", status);
                    if let Some(r) = &rid {
                        span.record("request_id", r.as_str());
                    }
                    let text = resp
                        .text()
                        .await
                        .map_err(|e| transport_error(method.as_str(), path, &e))?;
                    tracing::debug!(parent: &span, duration_ms = started.elapsed().as_millis() as u64, "Tripletex answered.");
                    let v: Value = if text.trim().is_empty() {
                        Value::Null
                    } else {
                        crate::json::parse(&text).map_err(|e| ApiError::Decode {
                            method: method.to_string(),
                            path: path.into(),
                            message: format!("invalid JSON ({e})"),
                        })?
                    };
                    if (200..300).contains(&status) {
                        return Ok(v);
                    }
                    let err = status_error(method.as_str(), path, status, &v, rid);
                    if status == 401 && !renewed {
                        // An expired or revoked session: renew once and retry.
                        renewed = true;
                        self.auth_header(Some(&auth)).await?;
                        continue;
                    }
                    // A write that failed with 5xx may have been applied: the caller decides.
                    if !err.is_retryable()
                        || err.is_revision_conflict()
                        || (status >= 500 && !idempotent(&method))
                    {
                        return Err(err);
                    }
                    (err, if status == 429 { reset } else { None })
                }
            };
            back_off(&mut delays, err, wait, "tripletex").await?;
        }
    }
}

fn unwrap_value(v: Value) -> Value {
    match v {
        Value::Object(mut m) if m.contains_key("value") => m.remove("value").unwrap_or(Value::Null),
        other => other,
    }
}

fn request_id(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get("x-tlx-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Path segments are sent as written, but `>` (aggregates like `>whoAmI`) must be encoded.
fn encode_path(path: &str) -> String {
    path.replace('>', "%3E")
}

fn status_error(
    method: &str,
    path: &str,
    status: u16,
    body: &Value,
    request_id: Option<String>,
) -> ApiError {
    let fields = body
        .get("validationMessages")
        .and_then(Value::as_array)
        .map(|ms| {
            ms.iter()
                .map(|m| FieldMessage {
                    // A list request names the item in `path` (`[3].number`); keep it, so the
                    // item can be told apart.
                    field: m
                        .get("path")
                        .and_then(Value::as_str)
                        .filter(|p| p.starts_with('['))
                        .or_else(|| m.get("field").and_then(Value::as_str))
                        .unwrap_or("")
                        .to_string(),
                    message: m
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    ApiError::Status {
        method: method.into(),
        path: path.into(),
        status,
        code: body.get("code").and_then(Value::as_i64),
        message: body
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        fields,
        request_id: request_id.or_else(|| {
            body.get("requestId")
                .and_then(Value::as_str)
                .map(str::to_string)
        }),
    }
}
