//! Webhook delivery as Rackbeat does it: a thin JSON POST per active subscription, sent
//! asynchronously, retried with exponential backoff, and counted in
//! `failures_since_last_success`. Deliveries to one URL go out one at a time in event order (so a
//! conversion's `product.deleted` arrives before its `lot.created`); retries rejoin that queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use super::store::{Store, Subscriber};
use super::time;
use crate::support::lock;

/// Rackbeat's documented timeouts for a delivery.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(15);

/// Waits before each retry: 30 s doubling, twelve retries (about 34 hours, Rackbeat's
/// "exponential backoff over ca. 24 h"). Tests shorten this with `Handle::set_retry_delays`.
pub fn default_retry_delays() -> Vec<Duration> {
    (0..12).map(|i| Duration::from_secs(30 << i)).collect()
}

/// One delivery attempt, as the sandbox made it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Delivery {
    pub webhook_id: u64,
    pub event: String,
    pub url: String,
    /// The JSON body sent.
    pub body: Value,
    /// 1 for the first attempt, 2 for the first retry, …
    pub attempt: u32,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    /// Why the attempt failed, if it did.
    pub error: Option<String>,
    /// When the attempt was made (local time).
    pub at: String,
}

impl Delivery {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub to: Subscriber,
    pub event: String,
    pub body: Value,
    pub attempt: u32,
}

/// Sends the deliveries: one queue and worker per URL. It holds the store to check that a
/// subscription still exists and to count its failures.
pub(crate) struct Dispatcher {
    store: Arc<Mutex<Store>>,
    client: reqwest::Client,
    account_id: String,
    runtime: tokio::runtime::Handle,
    queues: Mutex<HashMap<String, mpsc::UnboundedSender<Job>>>,
    log: Mutex<Vec<Delivery>>,
    retry_delays: Mutex<Vec<Duration>>,
}

impl Dispatcher {
    pub fn new(account_id: u64, store: Arc<Mutex<Store>>) -> std::io::Result<Dispatcher> {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(RESPONSE_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("Rackbeat Webhook")
            .build()
            .map_err(std::io::Error::other)?;
        Ok(Dispatcher {
            store,
            client,
            account_id: account_id.to_string(),
            runtime: tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?,
            queues: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
            retry_delays: Mutex::new(default_retry_delays()),
        })
    }

    pub fn set_retry_delays(&self, delays: Vec<Duration>) {
        *lock(&self.retry_delays) = delays;
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.log).clone()
    }

    /// Queues a job behind earlier ones to the same URL, starting that URL's worker if needed.
    pub fn enqueue(self: &Arc<Self>, job: Job) {
        let mut queues = lock(&self.queues);
        let tx = queues.entry(job.to.url.clone()).or_insert_with(|| {
            let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
            // Weak, so the workers stop with the sandbox.
            let weak: Weak<Dispatcher> = Arc::downgrade(self);
            self.runtime.spawn(async move {
                while let Some(job) = rx.recv().await {
                    let Some(d) = weak.upgrade() else { break };
                    attempt(&d, job).await;
                }
            });
            tx
        });
        // The worker lives as long as the sandbox, so the send only fails while it shuts down.
        let _ = tx.send(job);
    }
}

async fn attempt(d: &Arc<Dispatcher>, job: Job) {
    if !lock(&d.store).still_subscribed(&job.to) {
        return;
    }
    let sent = d
        .client
        .post(&job.to.url)
        .header("Rackbeat-Webhook-Token", &job.to.token)
        .header("Rackbeat-Webhook-Event", &job.event)
        .header("Rackbeat-Account-Id", &d.account_id)
        .json(&job.body)
        .send()
        .await;
    let (status, error) = match sent {
        Ok(resp) if resp.status().is_success() => (Some(resp.status().as_u16()), None),
        Ok(resp) => (
            Some(resp.status().as_u16()),
            Some(format!("HTTP {}", resp.status())),
        ),
        Err(e) => (None, Some(e.to_string())),
    };
    let ok = error.is_none();
    lock(&d.store).delivery_outcome(job.to.webhook_id, ok);
    lock(&d.log).push(Delivery {
        webhook_id: job.to.webhook_id,
        event: job.event.clone(),
        url: job.to.url.clone(),
        body: job.body.clone(),
        attempt: job.attempt,
        status,
        error,
        at: time::iso(time::now()),
    });
    if ok {
        return;
    }
    let delay = lock(&d.retry_delays)
        .get(job.attempt.saturating_sub(1) as usize)
        .copied();
    if let Some(delay) = delay {
        let weak = Arc::downgrade(d);
        d.runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(d) = weak.upgrade() {
                d.enqueue(Job {
                    attempt: job.attempt + 1,
                    ..job
                });
            }
        });
    }
}
