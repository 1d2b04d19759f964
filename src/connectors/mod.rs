//! The two API clients. A connector knows HTTP, auth, envelopes, paging, errors and rate limits
//! of its API, and nothing about mappings. The only other code that speaks HTTP is the sandbox.
//!
//! Both retry by the error's class (status and API code, never message text), with jittered
//! exponential delays. A write whose outcome is unknown (a timeout, a dropped connection, a 5xx)
//! is not retried here when it could create a second record: the caller looks the record up by
//! its natural key first.

pub mod alert_hook;
mod api;
pub mod rackbeat;
pub mod tripletex;

pub use api::Api;

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use serde::Serialize;

/// Requests sent in the last minute, counted in one-second slots (the console shows each
/// tenant's budget in use). Lock-free, shared by a client's clones.
#[derive(Debug)]
pub struct Meter {
    slots: [std::sync::atomic::AtomicU64; 60],
    /// The second each slot counts; a slot from an older second is stale.
    seconds: [std::sync::atomic::AtomicI64; 60],
}

impl Default for Meter {
    fn default() -> Self {
        Meter {
            slots: std::array::from_fn(|_| std::sync::atomic::AtomicU64::new(0)),
            seconds: std::array::from_fn(|_| std::sync::atomic::AtomicI64::new(i64::MIN / 2)),
        }
    }
}

impl Meter {
    /// Counts one request at `now_ms`.
    pub fn record(&self, now_ms: i64) {
        use std::sync::atomic::Ordering::Relaxed;
        let second = now_ms.div_euclid(1000);
        let i = second.rem_euclid(60) as usize;
        if self.seconds[i].swap(second, Relaxed) != second {
            self.slots[i].store(0, Relaxed);
        }
        self.slots[i].fetch_add(1, Relaxed);
    }

    /// Requests counted in the 60 seconds up to `now_ms`.
    pub fn last_minute(&self, now_ms: i64) -> u64 {
        use std::sync::atomic::Ordering::Relaxed;
        let now = now_ms.div_euclid(1000);
        (0..60)
            .filter(|&i| now - self.seconds[i].load(Relaxed) < 60)
            .map(|i| self.slots[i].load(Relaxed))
            .sum()
    }
}

/// One validation message from an API, with the field it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldMessage {
    /// Field path as the API gives it (`lines.0.item_id`, `orders[0].customer`); empty when none.
    pub field: String,
    pub message: String,
}

/// What went wrong talking to an API.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// The API answered with an error status.
    #[error("{method} {path}: {status}{} {message}{}{}", code.map(|c| format!("/{c}")).unwrap_or_default(),
        fields_text(.fields), request_id.as_ref().map(|r| format!(" (request id {r})")).unwrap_or_default())]
    Status {
        method: String,
        path: String,
        status: u16,
        /// Tripletex's error code (3000 auth, 8000 revision, 16000 mapping, 18000 validation…).
        code: Option<i64>,
        message: String,
        fields: Vec<FieldMessage>,
        request_id: Option<String>,
    },
    /// No answer: connection refused or dropped, or a timeout. For a write, whether the server
    /// applied it is unknown (`sent` says whether the request may have reached it).
    #[error("{method} {path}: {message}")]
    Transport {
        method: String,
        path: String,
        message: String,
        sent: bool,
    },
    /// An answer that is not what the API documents.
    #[error("{method} {path}: unexpected response: {message}")]
    Decode {
        method: String,
        path: String,
        message: String,
    },
}

/// A client that cannot be built (bad settings); separate from call errors, and small.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn fields_text(fields: &[FieldMessage]) -> String {
    if fields.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = fields
        .iter()
        .map(|f| {
            if f.field.is_empty() {
                f.message.clone()
            } else {
                format!("{}: {}", f.field, f.message)
            }
        })
        .collect();
    format!(" [{}]", parts.join("; "))
}

#[cfg(test)]
mod meter_tests {
    #[test]
    fn the_meter_counts_the_last_minute_only() {
        let m = super::Meter::default();
        m.record(1_000);
        m.record(1_500);
        m.record(30_000);
        assert_eq!(m.last_minute(30_000), 3);
        assert_eq!(m.last_minute(60_999), 3, "within a minute of the first");
        assert_eq!(m.last_minute(61_000), 1, "the first second has passed");
        m.record(61_000);
        assert_eq!(m.last_minute(61_000), 2, "slot 1 reused for second 61");
        assert_eq!(m.last_minute(200_000), 0);
    }
}

impl ApiError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Worth trying again later: throttling, server trouble, no answer. Decided on status and
    /// code, never on message text.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Status { status, code, .. } => {
                *status == 429 || *status >= 500 || (*status == 409 && *code == Some(8000))
            }
            ApiError::Transport { .. } => true,
            ApiError::Decode { .. } => false,
        }
    }

    /// The outcome of a write is unknown: look the record up before writing again.
    pub fn is_ambiguous(&self) -> bool {
        match self {
            ApiError::Transport { sent, .. } => *sent,
            ApiError::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// The API refused the credentials (401: a token or session it does not accept) or what they
    /// may do (403). Tripletex's session is renewed once on a 401 before this is returned.
    pub fn refuses_credentials(&self) -> bool {
        matches!(
            self,
            ApiError::Status {
                status: 401 | 403,
                ..
            }
        )
    }

    /// A 409 revision conflict (Tripletex code 8000): refetch, reapply, write again.
    pub fn is_revision_conflict(&self) -> bool {
        matches!(
            self,
            ApiError::Status {
                status: 409,
                code: Some(8000),
                ..
            }
        )
    }
}

/// Timeouts and retry policy shared by both clients.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Attempts after the first one, for retryable failures.
    pub max_retries: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_retries: 5,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Exponential delays with jitter (backon).
    fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_retries)
            .with_jitter()
            .build()
    }

    fn client(&self, user_agent: &str) -> Result<reqwest::Client, ConfigError> {
        reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .user_agent(user_agent)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| ConfigError(format!("cannot build the HTTP client: {e}")))
    }
}

/// After a retryable failure: sleeps for the next delay (or the server's own wait, if longer) and
/// returns `Ok`, or gives the error back when the retries are used up.
async fn back_off(
    delays: &mut impl Iterator<Item = Duration>,
    err: ApiError,
    server_wait: Option<Duration>,
    api: &str,
) -> Result<(), ApiError> {
    let Some(d) = delays.next() else {
        return Err(err);
    };
    let d = server_wait.map_or(d, |w| w.max(d));
    tracing::warn!(api, error = %err, retry_in_ms = d.as_millis() as u64, "API call failed; retrying.");
    tokio::time::sleep(d).await;
    Ok(())
}

/// A request failure from reqwest as an `ApiError`: whether the server may have seen it decides
/// whether a write is ambiguous.
fn transport_error(method: &str, path: &str, e: &reqwest::Error) -> ApiError {
    let sent = !e.is_connect() && !e.is_builder();
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "connection failed"
    };
    ApiError::Transport {
        method: method.to_string(),
        path: path.to_string(),
        message: what.to_string(),
        sent,
    }
}

/// Only methods that cannot create a second record are retried after an ambiguous failure.
fn idempotent(method: &reqwest::Method) -> bool {
    *method != reqwest::Method::POST
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryability_follows_status_and_code() {
        let e = |status, code| ApiError::Status {
            method: "PUT".into(),
            path: "/product/1".into(),
            status,
            code,
            message: String::new(),
            fields: vec![],
            request_id: None,
        };
        assert!(e(429, None).is_retryable());
        assert!(e(503, None).is_retryable());
        assert!(e(409, Some(8000)).is_revision_conflict());
        assert!(!e(422, Some(18000)).is_retryable());
        assert!(!e(422, Some(16000)).is_retryable());
    }
}
