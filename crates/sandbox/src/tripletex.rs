//! The Tripletex sandbox: a local simulation of Tripletex's REST API v2 on 127.0.0.1.
//!
//! It answers like the real service where it matters to an integration: session tokens and Basic
//! auth (401/3000), `{"value"}` and list envelopes with `from`/`count` paging and `fields`,
//! Tripletex's error body and codes with its Norwegian messages, request bodies checked against
//! the official schemas (422/16000), the rules the schemas do not show (422/18000: required
//! fields, unique product numbers, VAT codes, the missing bank account), optimistic locking
//! (409/8000), required date ranges, computed order and invoice amounts, rate-limit headers and
//! 429s, and seeded faults. Data lives in memory, seeded from the configuration.
//!
//! Layout: `http` (HTTP, auth, faults, rate limit, routing), `resources` (searches, paging),
//! `entities` and `sales` (writes), `body` (body checks), `schema` (fields and rendering),
//! `store` (tables), `seed`, `time` (dates), `error`.

mod body;
mod credit;
mod entities;
mod error;
mod http;
mod resources;
mod sales;
mod schema;
mod seed;
mod store;
mod time;

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::Value;

pub use crate::request_counts::RequestCounts;
pub use crate::request_log::RequestRecord;
pub use seed::BANK_ACCOUNT;
pub use store::Kind;

use crate::config::SandboxConfig;
use crate::faults::FaultConfig;
use crate::listener::{Conn, KillableListener};
use http::App;

/// A running Tripletex sandbox, with the admin methods tests use to look inside and to set up
/// situations (no bank account, expired sessions, faults, a rate limit).
#[derive(Debug, Clone)]
pub struct Handle {
    pub addr: SocketAddr,
    /// Base URL ending in `/v2`.
    pub base_url: String,
    app: Arc<App>,
}

pub async fn start(config: &SandboxConfig) -> std::io::Result<Handle> {
    let listener = tokio::net::TcpListener::bind(config.tripletex_addr).await?;
    let addr = listener.local_addr()?;
    let app = Arc::new(App::new(config.clone(), addr));
    let router = axum::Router::new()
        .fallback(http::entry)
        .with_state(app.clone());
    let service = router.into_make_service_with_connect_info::<Conn>();
    tokio::spawn(async move { axum::serve(KillableListener(listener), service).await });
    Ok(Handle {
        addr,
        base_url: format!("http://{addr}/v2"),
        app,
    })
}

impl Handle {
    /// Every record of a kind as the API shows it with `fields=*`, in id order.
    pub fn records(&self, kind: Kind) -> Vec<Value> {
        self.app.records(kind)
    }

    /// One record as the API shows it with `fields=*`.
    pub fn record(&self, kind: Kind, id: i64) -> Option<Value> {
        self.app.record(kind, id)
    }

    pub fn count(&self, kind: Kind) -> usize {
        self.app.count(kind)
    }

    /// Sets the number of the company's invoice bank account (ledger account 1920), or removes
    /// every bank account number (`None`), after which invoicing fails as in a new company.
    pub fn set_bank_account(&self, number: Option<&str>) {
        self.app.set_bank_account(number);
    }

    /// A company outside the VAT system offers only outgoing code 6 (and 0).
    pub fn set_vat_registered(&self, registered: bool) {
        self.app.set_vat_registered(registered);
    }

    /// Makes every session token so far expire, as at midnight of its expiration date.
    pub fn expire_sessions(&self) {
        self.app.expire_sessions();
    }

    /// A session token valid until tomorrow, skipping `/token/session/:create`.
    pub fn create_session(&self) -> String {
        self.app.create_session()
    }

    /// Replaces the fault configuration, reseeding its generator.
    pub fn set_faults(&self, faults: FaultConfig) {
        self.app.set_faults(faults);
    }

    /// Requests allowed per period (`None`: unlimited); starts a new period.
    pub fn set_rate_limit(&self, limit: Option<u32>, period_seconds: u64) {
        self.app.set_rate_limit(limit, period_seconds);
    }

    /// Moves the rate limit's clock forward, so a test reaches the next period without waiting.
    pub fn advance_rate_clock(&self, by: std::time::Duration) {
        self.app.advance_rate_clock(by);
    }

    /// The requests received on `/v2` by route (`"PUT /product/{id}"`), never capped; `reset`
    /// starts them from zero.
    pub fn request_counts(&self) -> RequestCounts {
        self.app.request_counts()
    }

    /// Starts the request counts from zero.
    pub fn reset_request_counts(&self) {
        self.app.reset_request_counts();
    }

    /// Whether 429 answers carry `X-Rate-Limit-Reset` (the real API sometimes leaves it off).
    pub fn set_rate_reset_header_on_429(&self, on: bool) {
        self.app.set_rate_reset_header_on_429(on);
    }

    /// Ids of the invoices created with `sendToCustomer=true`, in order.
    pub fn sent_invoices(&self) -> Vec<i64> {
        self.app.sent_invoices()
    }

    /// The requests received on `/v2` (the latest 100 000), in the order answered.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.app.requests()
    }

    /// Back to the seed data, the configured faults and rate limit, and no request counts;
    /// sessions stay valid and the request log is kept.
    pub fn reset(&self) {
        self.app.reset();
    }
}
