//! Request counts by route, kept by both sandboxes: how many requests of each kind a run cost,
//! for tests and benchmarks. Unlike the request log they never drop anything, and they stay
//! small (one entry per route template, not per path).

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::support::lock;

/// What a sandbox has been asked on its API since it started or the counts were last reset.
///
/// Every request that reached the API counts: answered with any status (401s, 404s, 422s and
/// 429s included) or dropped by an injected fault. The `/admin/` back door does not count.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RequestCounts {
    /// Requests by `"METHOD /route/template"`: `"GET /products/{number}"` (Rackbeat),
    /// `"PUT /product/{id}"`, `"POST /product/list"` (Tripletex).
    pub by_route: BTreeMap<String, u64>,
    /// Every request counted.
    pub total: u64,
    /// Of `total`, those answered 429 (by the rate limit or an injected fault).
    pub throttled: u64,
}

impl RequestCounts {
    /// Requests to one route (`0` if none), e.g. `counts.route("GET /products/{number}")`.
    pub fn route(&self, key: &str) -> u64 {
        self.by_route.get(key).copied().unwrap_or(0)
    }
}

/// The counts a sandbox keeps, shared by its handlers.
#[derive(Debug, Default)]
pub(crate) struct Counter(Mutex<RequestCounts>);

impl Counter {
    /// Counts one request; `status` is `None` when the connection was dropped.
    pub fn count(&self, route: String, status: Option<u16>) {
        let mut c = lock(&self.0);
        *c.by_route.entry(route).or_default() += 1;
        c.total += 1;
        if status == Some(429) {
            c.throttled += 1;
        }
    }

    pub fn snapshot(&self) -> RequestCounts {
        lock(&self.0).clone()
    }

    pub fn reset(&self) {
        *lock(&self.0) = RequestCounts::default();
    }
}
