//! Alerts: an operator is told when an event is dead-lettered, when an API refuses a tenant's
//! credentials, and when a tenant's queue falls behind, by e-mail (SMTP) and/or a JSON POST to a
//! webhook (Slack, Teams). A storm is one digest per tenant per window: a tenant's first alert
//! opens a window of its `interval`; at its end one message per channel lists the counts and
//! the first items, each with what failed, why, and its console link.
//!
//! The sync never waits on alerting: [`Alerts::notify`] only puts the alert on a bounded queue
//! (a full queue drops it and counts it), one task gathers the windows, and each digest is sent
//! by a task of its own, retried with backoff, then logged and dropped. What is gathered but not
//! sent when the process stops is lost: alerts are a notice, the dead letters are the record.

mod config;
mod digest;
mod send;

pub use config::{
    AlertConfig, AlertConfigError, AlertSettings, DEFAULT_FROM, DEFAULT_INTERVAL,
    DEFAULT_QUEUE_AGE, SmtpTarget, split_addresses,
};
pub use digest::{Alert, Counts, Digest, LISTED, queue_stale};
pub use send::Retries;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::connectors::alert_hook::AlertHook;

/// Alerts waiting to be gathered; past this many, new ones are dropped (and counted).
const BACKLOG: usize = 10_000;

/// A handle to the alerting task; clones share it. The default one is off.
#[derive(Clone, Default)]
pub struct Alerts {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    tx: mpsc::Sender<Alert>,
    /// The tenants with a channel: alerts of others are not queued at all.
    tenants: HashSet<String>,
    dropped: AtomicU64,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            None => f.write_str("Alerts(off)"),
            Some(i) => write!(f, "Alerts({} tenants)", i.tenants.len()),
        }
    }
}

/// A tenant's channels, ready to send.
struct Channels {
    config: AlertConfig,
    hook: Option<AlertHook>,
}

impl Alerts {
    /// Alerting off: `notify` does nothing.
    pub fn disabled() -> Self {
        Alerts::default()
    }

    /// Starts the alerting task for the tenants of `configs` on the current Tokio runtime;
    /// `console_url` is the base of the console links (none: the messages name `rbtx dlq`).
    pub fn start(configs: HashMap<String, AlertConfig>, console_url: Option<String>) -> Self {
        Alerts::start_with(configs, console_url, Retries::default())
    }

    /// [`Alerts::start`] with its own retry policy.
    pub fn start_with(
        configs: HashMap<String, AlertConfig>,
        console_url: Option<String>,
        retries: Retries,
    ) -> Self {
        let mut channels = HashMap::new();
        for (tenant, config) in configs {
            // Checked when the config was resolved; a hook that cannot be built now is logged.
            let hook = match config.webhook_url.clone().map(AlertHook::new).transpose() {
                Ok(h) => h,
                Err(e) => {
                    tracing::error!(tenant, error = %e, "The alert webhook cannot be used.");
                    None
                }
            };
            channels.insert(tenant, Arc::new(Channels { config, hook }));
        }
        if channels.is_empty() {
            return Alerts::disabled();
        }
        let (tx, rx) = mpsc::channel(BACKLOG);
        let inner = Arc::new(Inner {
            tx,
            tenants: channels.keys().cloned().collect(),
            dropped: AtomicU64::new(0),
        });
        let gather = Gather {
            channels,
            console: console_url,
            retries,
            inner: Arc::downgrade(&inner),
        };
        tokio::spawn(gather.run(rx));
        Alerts { inner: Some(inner) }
    }

    /// Hands `alert` to the alerting task. Never waits and never fails: with alerting off, for a
    /// tenant without channels, or with the backlog full, the alert is dropped.
    pub fn notify(&self, alert: Alert) {
        let Some(inner) = &self.inner else {
            return;
        };
        if !inner.tenants.contains(alert.tenant()) {
            return;
        }
        if inner.tx.try_send(alert).is_err() {
            inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The task that gathers each tenant's window and sends its digest at the window's end.
struct Gather {
    channels: HashMap<String, Arc<Channels>>,
    console: Option<String>,
    retries: Retries,
    inner: std::sync::Weak<Inner>,
}

impl Gather {
    async fn run(self, mut rx: mpsc::Receiver<Alert>) {
        let mut open: HashMap<String, (Instant, Digest)> = HashMap::new();
        loop {
            let next = open.values().map(|(due, _)| *due).min();
            tokio::select! {
                got = rx.recv() => {
                    // Every handle is gone: the process is stopping.
                    let Some(alert) = got else { return };
                    let Some(ch) = self.channels.get(alert.tenant()) else { continue };
                    let tenant = alert.tenant().to_string();
                    let (_, digest) = open
                        .entry(tenant)
                        .or_insert_with_key(|t| (Instant::now() + ch.config.interval, Digest::new(t)));
                    digest.add(alert);
                }
                _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                    let now = Instant::now();
                    let due: Vec<String> = open
                        .iter()
                        .filter(|(_, (at, _))| *at <= now)
                        .map(|(t, _)| t.clone())
                        .collect();
                    for tenant in due {
                        if let (Some((_, digest)), Some(ch)) = (open.remove(&tenant), self.channels.get(&tenant)) {
                            self.send(ch.clone(), digest);
                        }
                    }
                    let dropped = self.inner.upgrade().map_or(0, |i| i.dropped.swap(0, Ordering::Relaxed));
                    if dropped > 0 {
                        tracing::warn!(dropped, "Alerts were dropped: more arrived than could be gathered.");
                    }
                }
            }
        }
    }

    /// Sends `digest` on each of the tenant's channels, each in a task of its own.
    fn send(&self, ch: Arc<Channels>, digest: Digest) {
        if digest.is_empty() {
            return;
        }
        let console = self.console.as_deref();
        let (tenant, subject, text) = (
            digest.tenant.clone(),
            digest.subject(),
            digest.text(console),
        );
        tracing::info!(tenant, subject, "Sending an alert digest.");
        if ch.config.smtp.is_some() {
            let (ch, tenant, subject, text) =
                (ch.clone(), tenant.clone(), subject.clone(), text.clone());
            let retries = self.retries;
            tokio::spawn(async move {
                let Some(smtp) = &ch.config.smtp else { return };
                send::with_retries(retries, &tenant, "e-mail", || {
                    send::email(smtp, &subject, &text)
                })
                .await;
            });
        }
        if ch.hook.is_some() {
            let body = digest.json(console);
            let retries = self.retries;
            tokio::spawn(async move {
                let Some(hook) = &ch.hook else { return };
                send::with_retries(retries, &tenant, "webhook", || send::webhook(hook, &body))
                    .await;
            });
        }
    }
}
