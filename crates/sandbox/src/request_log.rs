//! The request log both sandboxes keep: one record per request answered on the API (or dropped),
//! so a test can assert what was sent and that nothing was refused.

use std::collections::VecDeque;
use std::sync::Mutex;

use axum::http::{HeaderMap, Method, Uri};

use crate::support::lock;

/// How many requests the log keeps (a long benchmark run must not grow it without bound).
const REQUEST_LOG_SIZE: usize = 100_000;

/// One request a sandbox received on its API (`/api` or `/v2`; the `/admin/` back door is not
/// logged).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RequestRecord {
    pub method: String,
    /// The path as sent (still percent-encoded).
    pub path: String,
    pub query: Option<String>,
    /// The status answered; `None` when the connection was dropped (an injected fault).
    pub status: Option<u16>,
    /// Tripletex's error code (16000 for a body the schema refuses, 18000 for a broken rule, …);
    /// always `None` from Rackbeat, whose errors carry none.
    pub code: Option<u32>,
    /// The consumer headers Rackbeat asks integrations to send.
    pub consumer_name: Option<String>,
    pub user_agent: Option<String>,
}

impl RequestRecord {
    /// A request not answered yet.
    pub(crate) fn new(method: &Method, uri: &Uri, headers: &HeaderMap) -> RequestRecord {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        RequestRecord {
            method: method.to_string(),
            path: uri.path().to_string(),
            query: uri.query().map(str::to_string),
            status: None,
            code: None,
            consumer_name: header("consumer-name"),
            user_agent: header("user-agent"),
        }
    }
}

/// The latest requests, at most [`REQUEST_LOG_SIZE`], in the order answered.
#[derive(Debug, Default)]
pub(crate) struct RequestLog(Mutex<VecDeque<RequestRecord>>);

impl RequestLog {
    pub fn push(&self, record: RequestRecord) {
        let mut log = lock(&self.0);
        if log.len() == REQUEST_LOG_SIZE {
            log.pop_front();
        }
        log.push_back(record);
    }

    pub fn records(&self) -> Vec<RequestRecord> {
        lock(&self.0).iter().cloned().collect()
    }
}
