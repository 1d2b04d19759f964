//! Rackbeat API: Bearer auth, consumer headers, 206 list envelopes paged by `page`, singular
//! envelopes, 422 `{errors: {field: [..]}}`, 429/5xx retries, and a per-token request budget.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use tracing::Instrument;

use super::{
    ApiError, ConfigError, FieldMessage, RetryPolicy, back_off, idempotent, transport_error,
};
use crate::secret::Secret;

/// How to reach one Rackbeat account.
#[derive(Debug, Clone)]
pub struct RackbeatConfig {
    /// Base URL ending in `/api` (`https://app.rackbeat.com/api`).
    pub base_url: String,
    pub token: Secret,
    /// `Consumer-Name` header (Rackbeat's SDK refuses to start without it).
    pub consumer_name: String,
    /// `Consumer-Contact` header: an e-mail address Rackbeat can reach.
    pub consumer_contact: String,
    /// Requests per minute for this token (Rackbeat's own client uses 480).
    pub requests_per_minute: u32,
    /// Page size for lists.
    pub page_size: usize,
    pub retry: RetryPolicy,
}

impl RackbeatConfig {
    pub fn new(base_url: impl Into<String>, token: Secret) -> Self {
        RackbeatConfig {
            base_url: base_url.into(),
            token,
            consumer_name: "rbtx".into(),
            consumer_contact: "integrations@example.invalid".into(),
            requests_per_minute: 480,
            page_size: 200,
            retry: RetryPolicy::default(),
        }
    }
}

/// The token's request budget: a burst of a minute's requests, then one every `60 / n` seconds
/// (governor's GCRA, which is a token bucket refilled evenly). Lock-free, so every clone of a
/// client shares it.
type Budget = governor::DefaultDirectRateLimiter;

fn budget(per_minute: u32) -> Budget {
    let per_minute = std::num::NonZeroU32::new(per_minute).unwrap_or(std::num::NonZeroU32::MIN);
    governor::RateLimiter::direct(governor::Quota::per_minute(per_minute))
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<Value>,
    /// The next page number, or `None` after the last.
    pub next: Option<u64>,
}

/// A Rackbeat client for one account.
/// A client. Clones share the token's request budget, so every worker of one tenant draws on
/// one budget, as Rackbeat counts them.
#[derive(Clone)]
pub struct Rackbeat {
    http: reqwest::Client,
    config: RackbeatConfig,
    budget: std::sync::Arc<Budget>,
    meter: std::sync::Arc<super::Meter>,
}

impl std::fmt::Debug for Rackbeat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rackbeat")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Rackbeat {
    pub fn new(config: RackbeatConfig) -> Result<Self, ConfigError> {
        let ua = format!("{} ({})", config.consumer_name, config.consumer_contact);
        let http = config.retry.client(&ua)?;
        let budget = std::sync::Arc::new(budget(config.requests_per_minute));
        Ok(Rackbeat {
            http,
            config,
            budget,
            meter: std::sync::Arc::default(),
        })
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.config.base_url
    }

    /// Requests sent in the last minute, by this client and its clones.
    pub fn requests_last_minute(&self) -> u64 {
        self.meter.last_minute(crate::dates::now_millis())
    }

    /// The requests a minute this client allows itself.
    pub fn requests_per_minute(&self) -> u32 {
        self.config.requests_per_minute
    }

    /// `GET path` as Rackbeat sends it (the singular envelope included); `None` on 404.
    pub async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Option<Value>, ApiError> {
        match self.send(Method::GET, path, query, None).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One page of a list (`page` counts from 1).
    pub async fn page(
        &self,
        path: &str,
        query: &[(&str, String)],
        page: u64,
    ) -> Result<Page, ApiError> {
        let mut q: Vec<(&str, String)> = query.to_vec();
        q.push(("page", page.to_string()));
        // A mapping may ask for its own page size (a list of changes reads 1,000 a page).
        if !q.iter().any(|(k, _)| *k == "limit") {
            q.push(("limit", self.config.page_size.to_string()));
        }
        let body = self.send(Method::GET, path, &q, None).await?;
        let items = list_items(&body)
            .cloned()
            .ok_or_else(|| decode("GET", path, "a list response without items"))?;
        let pages = body.get("pages").and_then(Value::as_u64).unwrap_or(page);
        Ok(Page {
            items,
            next: (page < pages).then_some(page + 1),
        })
    }

    /// Every record of a list, page by page.
    pub async fn list_all(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<Value>, ApiError> {
        let mut out = Vec::new();
        let mut page = 1;
        loop {
            let p = self.page(path, query, page).await?;
            out.extend(p.items);
            match p.next {
                Some(n) => page = n,
                None => return Ok(out),
            }
        }
    }

    /// The records a look-up answers: every item of a list, the one record of a single-object
    /// answer, or none on 404. Used where a mapping's `find` may be either kind of GET.
    pub async fn find(&self, path: &str, query: &[(&str, String)]) -> Result<Vec<Value>, ApiError> {
        let Some(answer) = self.get(path, query).await? else {
            return Ok(Vec::new());
        };
        match list_items(&answer) {
            // More than one page: read them all with this client's page size.
            Some(_) if answer.get("pages").and_then(Value::as_u64).unwrap_or(1) > 1 => {
                self.list_all(path, query).await
            }
            Some(items) => Ok(items.clone()),
            None => Ok(vec![unwrap_single(answer)]),
        }
    }

    /// `POST path`; the response as Rackbeat sends it.
    pub async fn post(
        &self,
        path: &str,
        query: &[(&str, String)],
        body: &Value,
    ) -> Result<Value, ApiError> {
        self.send(Method::POST, path, query, Some(body)).await
    }

    /// `PUT path`; the response as Rackbeat sends it.
    pub async fn put(
        &self,
        path: &str,
        query: &[(&str, String)],
        body: &Value,
    ) -> Result<Value, ApiError> {
        self.send(Method::PUT, path, query, Some(body)).await
    }

    /// Waits on tokio's timer (not governor's `until_ready`, which would start a timer thread).
    async fn wait_for_budget(&self) {
        use governor::clock::Clock;
        while let Err(not_until) = self.budget.check() {
            let now = self.budget.clock().now();
            tokio::time::sleep(not_until.wait_time_from(now)).await;
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.config.base_url);
        let mut delays = self.config.retry.delays();
        loop {
            self.wait_for_budget().await;
            self.meter.record(crate::dates::now_millis());
            let started = Instant::now();
            let mut req = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(self.config.token.expose())
                .header("Accept", "application/json")
                .header("Consumer-Name", &self.config.consumer_name)
                .header("Consumer-Contact", &self.config.consumer_contact)
                .query(query);
            if let Some(b) = body {
                req = req.json(b);
            }
            let span = tracing::debug_span!("rackbeat", method = %method, path, status = tracing::field::Empty);
            let (err, wait) = match req.send().instrument(span.clone()).await {
                Err(e) => {
                    let err = transport_error(method.as_str(), path, &e);
                    if err.is_ambiguous() && !idempotent(&method) {
                        return Err(err);
                    }
                    (err, None)
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    span.record("status", status);
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|s| s.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let text = resp
                        .text()
                        .await
                        .map_err(|e| transport_error(method.as_str(), path, &e))?;
                    tracing::debug!(parent: &span, duration_ms = started.elapsed().as_millis() as u64, "Rackbeat answered.");
                    let v: Value = if text.trim().is_empty() {
                        Value::Null
                    } else {
                        crate::json::parse(&text).unwrap_or(Value::String(text))
                    };
                    // 206 Partial Content is how Rackbeat answers every list.
                    if (200..300).contains(&status) {
                        return Ok(v);
                    }
                    let err = status_error(method.as_str(), path, status, &v);
                    if !err.is_retryable() || (status >= 500 && !idempotent(&method)) {
                        return Err(err);
                    }
                    (err, retry_after)
                }
            };
            back_off(&mut delays, err, wait, "rackbeat").await?;
        }
    }
}

fn decode(method: &str, path: &str, message: &str) -> ApiError {
    ApiError::Decode {
        method: method.into(),
        path: path.into(),
        message: message.into(),
    }
}

fn status_error(method: &str, path: &str, status: u16, body: &Value) -> ApiError {
    let mut fields = Vec::new();
    if let Some(Value::Object(errors)) = body.get("errors") {
        for (field, msgs) in errors {
            let msgs: Vec<String> = match msgs {
                Value::Array(a) => a
                    .iter()
                    .map(|m| {
                        m.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| m.to_string())
                    })
                    .collect(),
                other => vec![
                    other
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| other.to_string()),
                ],
            };
            for message in msgs {
                fields.push(FieldMessage {
                    field: field.clone(),
                    message,
                });
            }
        }
    }
    let message = body
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| body.as_str())
        .unwrap_or(if status == 422 {
            "validation failed"
        } else {
            ""
        })
        .to_string();
    ApiError::Status {
        method: method.into(),
        path: path.into(),
        status,
        code: None,
        message,
        fields,
        request_id: None,
    }
}

/// The items of a list answer, which sit under the resource's plural name: the one array beside
/// the paging keys. `None` when the answer is not a list.
fn list_items(answer: &Value) -> Option<&Vec<Value>> {
    answer
        .as_object()?
        .iter()
        .find(|(k, v)| v.is_array() && !matches!(k.as_str(), "total" | "pages" | "limit" | "page"))
        .and_then(|(_, v)| v.as_array())
}

/// The record inside a single-object answer (`{"customer": {…}}`); any other shape as it is.
pub fn unwrap_single(answer: Value) -> Value {
    match answer {
        Value::Object(m) if m.len() == 1 && m.values().all(Value::is_object) => {
            m.into_iter().next().map(|(_, v)| v).unwrap_or(Value::Null)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_errors_keep_their_field_paths() {
        let body: Value = serde_json::json!({"errors": {"lines.0.item_id": ["Product needed"], "customer_id": ["The selected Customer is invalid."]}});
        let e = status_error("POST", "/orders", 422, &body);
        let text = e.to_string();
        assert!(text.contains("lines.0.item_id: Product needed"), "{text}");
        assert!(!e.is_retryable());
    }

    #[test]
    fn the_budget_spaces_requests_out() {
        let b = budget(60);
        for _ in 0..60 {
            assert!(b.check().is_ok());
        }
        let now = governor::clock::Clock::now(b.clock());
        let wait = b.check().err().map(|n| n.wait_time_from(now));
        assert!(wait.is_some_and(|d| d > Duration::ZERO && d <= Duration::from_secs(1)));
    }
}
