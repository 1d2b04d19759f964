//! The Rackbeat sandbox: Rackbeat's REST API (`/api`) on 127.0.0.1, as documented in
//! `reference/rackbeat/API-NOTES.md`: bearer auth, 206 list envelopes with paging and filters,
//! singular envelopes, 422 validation errors, a per-token rate limit answering 429 (480 a
//! minute unless configured), percent-encoded item numbers, products, lots (BOMs),
//! customers, suppliers, customer invoices with booking, payment terms, employees, product groups
//! and units, and webhooks delivered to subscribers with retries.
//!
//! Tests drive it like a Rackbeat user through [`Handle`] (writes fire webhooks just as the UI's
//! do) and read back what it delivered. `/admin/…` offers the same read-outs over HTTP for a
//! sandbox in another process.

mod error;
mod http;
mod limit;
mod query;
mod resources;
mod seed;
mod store;
mod time;
mod webhooks;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

pub use crate::request_counts::RequestCounts;
pub use crate::request_log::RequestRecord;
pub use error::{ApiError, Errors};
pub use resources::{INVOICE_BOOKED_EVENT, KNOWN_EVENTS, Resource};
pub use store::Event;
pub use webhooks::{Delivery, default_retry_delays};

use crate::config::SandboxConfig;
use crate::faults::FaultConfig;
use crate::listener::{Conn, KillableListener};
use crate::support::lock;
use http::Shared;
use store::Store;

/// A running Rackbeat sandbox.
#[derive(Clone)]
pub struct Handle {
    pub addr: SocketAddr,
    /// Base URL ending in `/api`.
    pub base_url: String,
    /// The API token it accepts.
    pub token: String,
    shared: Arc<Shared>,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("addr", &self.addr)
            .field("base_url", &self.base_url)
            .finish()
    }
}

/// The admin surface: what a Rackbeat user does in the UI (every write fires its webhooks), and
/// read-outs for assertions. Keys are numbers as in the API (items also by `urlfriendly_number`).
impl Handle {
    /// Creates a record. A customer invoice is booked at once, like `POST /customer-invoices`.
    pub fn create(&self, r: Resource, body: Value) -> Result<Value, ApiError> {
        self.shared.create(r, body, false)
    }

    /// Creates an unbooked customer invoice (`POST /customer-invoices/drafts`).
    pub fn create_draft_invoice(&self, body: Value) -> Result<Value, ApiError> {
        self.shared.create_draft(body)
    }

    pub fn update(&self, r: Resource, key: &str, body: Value) -> Result<Value, ApiError> {
        self.shared.update(r, key, body, false)
    }

    /// Updates a record and fires no webhook, as an API write with webhooks suppressed does (or
    /// an edit whose delivery never came).
    pub fn update_without_webhooks(
        &self,
        r: Resource,
        key: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        self.shared.update(r, key, body, true)
    }

    pub fn delete(&self, r: Resource, key: &str) -> Result<(), ApiError> {
        self.shared.delete(r, key, false)
    }

    /// Books a draft customer invoice, firing the booked-invoice webhook.
    pub fn book_invoice(&self, number: u64) -> Result<Value, ApiError> {
        self.shared.book(&number.to_string(), false)
    }

    /// Converts a product into a lot (BOM): `product.deleted` (converted_to_lot), `lot.created`.
    pub fn convert_to_lot(&self, number: &str) -> Result<Value, ApiError> {
        self.shared.convert(number, Value::Null, false)
    }

    /// A record as `GET /<resource>/{key}` shows it (without the envelope).
    pub fn get(&self, r: Resource, key: &str) -> Option<Value> {
        lock(&self.shared.store).get(r, key)
    }

    /// Every record of a kind, in list order.
    pub fn list(&self, r: Resource) -> Vec<Value> {
        lock(&self.shared.store).all(r)
    }

    /// The webhook subscriptions, as `GET /webhooks` shows them (without tokens).
    pub fn webhooks(&self) -> Vec<Value> {
        lock(&self.shared.store).webhooks(None)
    }

    /// Every delivery attempt so far, in the order made.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.dispatcher.deliveries()
    }

    /// Waits until at least `count` delivery attempts have been made, or `timeout` passes;
    /// returns the attempts made by then.
    pub async fn wait_for_deliveries(&self, count: usize, timeout: Duration) -> Vec<Delivery> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let made = self.deliveries();
            if made.len() >= count || tokio::time::Instant::now() >= deadline {
                return made;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Every webhook event fired (subscribed to or not); suppressed writes fire none.
    pub fn events(&self) -> Vec<Event> {
        lock(&self.shared.fired).clone()
    }

    /// The requests received on `/api` (the latest 100 000).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.requests.records()
    }

    /// The requests received on `/api` by route (`"GET /products/{number}"`), never capped.
    pub fn request_counts(&self) -> RequestCounts {
        self.shared.counts.snapshot()
    }

    /// Starts the request counts from zero.
    pub fn reset_request_counts(&self) {
        self.shared.counts.reset();
    }

    /// Requests allowed per token per minute (`0`: unlimited); every window starts afresh.
    pub fn set_rate_limit(&self, per_minute: u32) {
        lock(&self.shared.rate).set(per_minute);
    }

    /// Requests allowed per token per minute (`0`: unlimited).
    pub fn rate_limit(&self) -> u32 {
        lock(&self.shared.rate).limit()
    }

    /// Moves the rate limit's clock forward, so a test reaches the next window without waiting.
    pub fn advance_rate_clock(&self, by: Duration) {
        lock(&self.shared.rate).advance(by);
    }

    /// Replaces the fault injection for the requests that follow.
    pub fn set_faults(&self, config: FaultConfig) {
        self.shared.faults.set(config);
    }

    pub fn faults(&self) -> FaultConfig {
        self.shared.faults.config()
    }

    /// Sets the waits before each retry of a failed delivery (one entry per retry).
    pub fn set_retry_delays(&self, delays: Vec<Duration>) {
        self.shared.dispatcher.set_retry_delays(delays);
    }
}

/// Binds the sandbox, seeds it from `config.seed` and serves it on the current tokio runtime.
pub async fn start(config: &SandboxConfig) -> std::io::Result<Handle> {
    let listener = tokio::net::TcpListener::bind(config.rackbeat_addr).await?;
    let addr = listener.local_addr()?;
    let base_url = format!("http://{addr}/api");
    let mut store = Store::new(base_url.clone(), config.seed);
    seed::seed(&mut store, config.seed, config.data)
        .map_err(|e| std::io::Error::other(format!("seeding the Rackbeat sandbox: {e:?}")))?;
    let shared = Arc::new(Shared::new(store, config)?);
    let app = http::router(shared.clone()).into_make_service_with_connect_info::<Conn>();
    tokio::spawn(async move { axum::serve(KillableListener(listener), app).await });
    Ok(Handle {
        addr,
        base_url,
        token: config.rackbeat_token.clone(),
        shared,
    })
}
