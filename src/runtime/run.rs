//! `rbtx run`: one tenant, the intake and a worker loop over the store: an embedded SQLite file,
//! or a PostgreSQL database that several `rbtx run` processes share (one code path, generic over
//! [`Store`]). With `sandbox`, both APIs are simulated in-process and rbtx subscribes itself to the
//! Rackbeat sandbox's webhooks, so the real-time path can be watched with no accounts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::intake::{Intake, IntakeTenant};
use super::worker::{Tenant, Worker};
use crate::connectors::rackbeat::{Rackbeat, RackbeatConfig};
use crate::connectors::tripletex::{Tripletex, TripletexConfig};
use crate::connectors::{ApiError, Secret};
use crate::plan::{Pack, load_pack};
use crate::sandbox::{self, SandboxConfig};
use crate::spec::Direction;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{Location, Store};

/// Settings for `rbtx run`.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub pack: PathBuf,
    pub store: Location,
    /// Where the intake listens.
    pub listen: SocketAddr,
    /// The URL Rackbeat delivers to (defaults to the listen address).
    pub public_url: Option<String>,
    pub invoice_mode: String,
    /// Workers applying events in parallel (one key is never with two at once).
    pub workers: usize,
    /// Seconds between catch-up polls of Rackbeat (also run at start).
    pub catch_up_seconds: u64,
    /// How long a claimed event stays with this process before another may take it over (after a
    /// crash, events in flight wait this long).
    pub lease_ms: i64,
    /// Serve both sandboxes in-process and sync against them (also the default when no
    /// credentials are in the environment).
    pub sandbox: bool,
}

/// Where the accounts are and how to authenticate, read from the environment.
struct Accounts {
    tripletex_url: String,
    consumer_token: Secret,
    employee_token: Secret,
    rackbeat_url: String,
    rackbeat_token: Secret,
    account_id: Option<String>,
    webhook_tokens: Vec<Secret>,
}

fn required(var: &str) -> Result<Secret, String> {
    Secret::from_env(var)?.ok_or_else(|| {
        format!("{var} is not set (or {var}_FILE); use --sandbox to run without accounts")
    })
}

impl Accounts {
    const VARS: [&'static str; 3] = [
        "RBTX_TRIPLETEX_CONSUMER_TOKEN",
        "RBTX_TRIPLETEX_EMPLOYEE_TOKEN",
        "RBTX_RACKBEAT_TOKEN",
    ];

    /// Whether any credential is configured (then all must be).
    fn any_in_env() -> bool {
        Self::VARS.iter().any(|v| {
            std::env::var_os(v).is_some() || std::env::var_os(format!("{v}_FILE")).is_some()
        })
    }

    fn from_env() -> Result<Self, String> {
        let tokens = Secret::from_env("RBTX_RACKBEAT_WEBHOOK_TOKENS")?
            .map(|s| {
                s.expose()
                    .split(',')
                    .map(|t| Secret::new(t.trim()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Accounts {
            tripletex_url: std::env::var("RBTX_TRIPLETEX_URL")
                .unwrap_or_else(|_| "https://tripletex.no/v2".into()),
            consumer_token: required("RBTX_TRIPLETEX_CONSUMER_TOKEN")?,
            employee_token: required("RBTX_TRIPLETEX_EMPLOYEE_TOKEN")?,
            rackbeat_url: std::env::var("RBTX_RACKBEAT_URL")
                .unwrap_or_else(|_| "https://app.rackbeat.com/api".into()),
            rackbeat_token: required("RBTX_RACKBEAT_TOKEN")?,
            account_id: std::env::var("RBTX_RACKBEAT_ACCOUNT_ID").ok(),
            webhook_tokens: tokens,
        })
    }
}

/// Runs until `shutdown` resolves. `ready` is told the intake's address once it listens.
pub async fn run(
    config: RunConfig,
    ready: impl FnOnce(&str),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let pack = load_pack(std::slice::from_ref(&config.pack));
    if !pack.diagnostics.is_empty() {
        return Err(format!(
            "the mapping pack has {} problem(s); run `rbtx validate {}`",
            pack.diagnostics.len(),
            config.pack.display()
        ));
    }
    let pack = Arc::new(pack);
    match &config.store {
        Location::Sqlite(path) => {
            let store = SqliteStore::open(path).map_err(|e| format!("{}: {e}", config.store))?;
            serve(config, pack, store, ready, shutdown).await
        }
        Location::Postgres(url) => {
            let store = PostgresStore::connect(url)
                .await
                .map_err(|e| format!("{}: {e}", config.store))?;
            serve(config, pack, store, ready, shutdown).await
        }
    }
}

/// `run` once the store is open, whichever backend it is.
async fn serve<S: Store + 'static>(
    config: RunConfig,
    pack: Arc<Pack>,
    store: S,
    ready: impl FnOnce(&str),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    // No credentials at all: the embedded default runs against local sandboxes.
    let use_sandbox = config.sandbox || !Accounts::any_in_env();
    if use_sandbox && !config.sandbox {
        tracing::info!(
            "No Tripletex or Rackbeat credentials in the environment; running against local sandboxes."
        );
    }
    let (mut accounts, sandboxes) = if use_sandbox {
        let sb = sandbox::start(SandboxConfig::default())
            .await
            .map_err(|e| format!("cannot start the sandboxes: {e}"))?;
        super::announce(&format!("tripletex: {}", sb.tripletex.base_url));
        super::announce(&format!("rackbeat: {}", sb.rackbeat.base_url));
        let accounts = Accounts {
            tripletex_url: sb.tripletex.base_url.clone(),
            consumer_token: Secret::new(sandbox::CONSUMER_TOKEN),
            employee_token: Secret::new(sandbox::EMPLOYEE_TOKEN),
            rackbeat_url: sb.rackbeat.base_url.clone(),
            rackbeat_token: Secret::new(sandbox::RACKBEAT_TOKEN),
            account_id: None,
            webhook_tokens: Vec::new(),
        };
        (accounts, Some(sb))
    } else {
        (Accounts::from_env()?, None)
    };

    let store = Arc::new(store);
    store
        .migrate()
        .await
        .map_err(|e| format!("migrating {}: {e}", config.store))?;

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}/webhooks/rackbeat"));

    let rackbeat = || {
        Rackbeat::new(RackbeatConfig::new(
            accounts.rackbeat_url.as_str(),
            accounts.rackbeat_token.clone(),
        ))
        .map_err(|e| e.to_string())
    };
    let rb = rackbeat()?;
    if accounts.account_id.is_none() {
        let me = rb
            .get("/self", &[])
            .await
            .map_err(|e| format!("Rackbeat /self: {e}"))?;
        accounts.account_id = me.and_then(|m| m.pointer("/user_account/id").map(json_text));
    }
    let account_id = accounts
        .account_id
        .clone()
        .ok_or("the Rackbeat account id is unknown (set RBTX_RACKBEAT_ACCOUNT_ID)")?;
    if sandboxes.is_some() {
        accounts.webhook_tokens = subscribe(&rb, &pack, &url)
            .await
            .map_err(|e| format!("subscribing to webhooks: {e}"))?
            .into_iter()
            .filter_map(|(_, t)| t)
            .collect();
    }
    if accounts.webhook_tokens.is_empty() {
        accounts.webhook_tokens = stored_tokens(store.as_ref(), &pack).await?;
    }
    if accounts.webhook_tokens.is_empty() {
        return Err("no webhook tokens: run `rbtx webhooks install --url <public URL>`, or set RBTX_RACKBEAT_WEBHOOK_TOKENS".into());
    }

    let tenant_id = "default".to_string();
    let metrics = Arc::new(super::metrics::Metrics::default());
    let queued = Arc::new(tokio::sync::Notify::new());
    let intake = Arc::new(
        Intake::new(
            store.clone(),
            vec![IntakeTenant {
                id: tenant_id.clone(),
                account_id,
                webhook_tokens: accounts.webhook_tokens.clone(),
            }],
            &pack,
        )
        .with_metrics(metrics.clone())
        .with_notify(queued.clone()),
    );
    let mut workers = Vec::new();
    let process = process_name();
    for i in 0..config.workers.max(1) {
        let tripletex = Tripletex::new(TripletexConfig::new(
            accounts.tripletex_url.as_str(),
            accounts.consumer_token.clone(),
            accounts.employee_token.clone(),
        ))
        .map_err(|e| e.to_string())?;
        let mut worker = Worker::new(
            store.clone(),
            pack.clone(),
            Tenant {
                id: tenant_id.clone(),
                rackbeat: rackbeat()?,
                tripletex,
                invoice_mode: config.invoice_mode.clone(),
            },
            format!("{process}-{i}"),
        );
        worker.lease_ms = config.lease_ms;
        worker.metrics = Some(metrics.clone());
        workers.push(worker);
    }

    ready(&url);
    tracing::info!(url, store = %config.store, "rbtx is running.");
    let server = axum::serve(listener, intake.router());
    let catch_up = async {
        let rb = match rackbeat() {
            Ok(rb) => rb,
            Err(e) => {
                tracing::error!(error = %e, "Catch-up cannot start.");
                return;
            }
        };
        loop {
            if let Err(e) = super::catchup::poll(
                store.as_ref(),
                &rb,
                &pack,
                "default",
                &config.invoice_mode,
                crate::dates::now_millis(),
            )
            .await
            {
                tracing::warn!(error = %e, "Catch-up failed; it runs again at the next interval.");
            }
            tokio::time::sleep(Duration::from_secs(config.catch_up_seconds.max(1))).await;
        }
    };
    let work = async {
        let mut set = tokio::task::JoinSet::new();
        for worker in workers {
            let queued = queued.clone();
            set.spawn(async move {
                loop {
                    match worker.run_once(crate::dates::now_millis()).await {
                        // Idle: wait for the intake's signal, or a second (retries come due).
                        Ok(0) => {
                            tokio::time::timeout(Duration::from_secs(1), queued.notified())
                                .await
                                .ok();
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::error!(error = %e, "The store failed; retrying in a second.");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            });
        }
        set.join_next().await;
    };
    tokio::select! {
        r = server => r.map_err(|e| e.to_string()),
        _ = work => Ok(()),
        _ = catch_up => Ok(()),
        _ = shutdown => {
            // Events in flight keep their lease; another start claims them when it expires.
            tracing::info!("Shutting down.");
            Ok(())
        }
    }
}

/// The events the real-time mappings trigger on.
fn trigger_events(pack: &Pack) -> Vec<&str> {
    let mut events: Vec<&str> = pack
        .plans
        .iter()
        .filter(|p| p.direction == Direction::RackbeatToTripletex)
        .flat_map(|p| p.on.iter().map(String::as_str))
        .collect();
    events.sort();
    events.dedup();
    events
}

/// Subscribes `url` to every event the real-time mappings trigger on. Rackbeat returns a token
/// only when it creates a subscription (re-subscribing updates it), so an event may have none.
async fn subscribe(
    rb: &Rackbeat,
    pack: &Pack,
    url: &str,
) -> Result<Vec<(String, Option<Secret>)>, ApiError> {
    let mut out = Vec::new();
    for event in trigger_events(pack) {
        let answer = rb
            .post(
                "/webhooks",
                &[],
                &json!({"event": event, "url": url, "is_active": true}),
            )
            .await?;
        let token = answer
            .pointer("/webhook/token")
            .and_then(Value::as_str)
            .map(Secret::new);
        out.push((event.to_string(), token));
    }
    Ok(out)
}

fn token_checkpoint(event: &str) -> String {
    format!("webhook token {event}")
}

/// Webhook tokens kept by `rbtx webhooks install`.
async fn stored_tokens<S: Store>(store: &S, pack: &Pack) -> Result<Vec<Secret>, String> {
    let mut tokens = Vec::new();
    for event in trigger_events(pack) {
        if let Some(t) = store
            .get_checkpoint("default", &token_checkpoint(event))
            .await
            .map_err(|e| e.to_string())?
        {
            tokens.push(Secret::new(t));
        }
    }
    Ok(tokens)
}

/// `rbtx webhooks install`: subscribes `url` to the events the pack needs in the Rackbeat account
/// from the environment, and keeps the tokens in the store for `rbtx run`. Returns a line per event.
pub async fn install_webhooks(
    pack_path: &std::path::Path,
    store: &Location,
    url: &str,
) -> Result<Vec<String>, String> {
    let pack = load_pack(&[pack_path.to_path_buf()]);
    if !pack.diagnostics.is_empty() {
        return Err(format!(
            "the mapping pack has problems; run `rbtx validate {}`",
            pack_path.display()
        ));
    }
    let base = std::env::var("RBTX_RACKBEAT_URL")
        .unwrap_or_else(|_| "https://app.rackbeat.com/api".into());
    let rb = Rackbeat::new(RackbeatConfig::new(base, required("RBTX_RACKBEAT_TOKEN")?))
        .map_err(|e| e.to_string())?;
    match store {
        Location::Sqlite(path) => {
            let s = SqliteStore::open(path).map_err(|e| format!("{store}: {e}"))?;
            keep_tokens(&s, &rb, &pack, url).await
        }
        Location::Postgres(secret) => {
            let s = PostgresStore::connect(secret)
                .await
                .map_err(|e| format!("{store}: {e}"))?;
            keep_tokens(&s, &rb, &pack, url).await
        }
    }
}

/// Subscribes `url` and keeps the tokens Rackbeat hands out in `store`.
async fn keep_tokens<S: Store>(
    store: &S,
    rb: &Rackbeat,
    pack: &Pack,
    url: &str,
) -> Result<Vec<String>, String> {
    store.migrate().await.map_err(|e| e.to_string())?;
    let mut lines = Vec::new();
    for (event, token) in subscribe(rb, pack, url).await.map_err(|e| e.to_string())? {
        match token {
            Some(t) => {
                store.set_checkpoint("default", &token_checkpoint(&event), t.expose()).await.map_err(|e| e.to_string())?;
                lines.push(format!("{event}: subscribed, token stored"));
            }
            None => lines.push(format!("{event}: already subscribed (Rackbeat shows a token only once; the stored one is kept)")),
        }
    }
    Ok(lines)
}

fn json_text(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

/// `host-pid-start`: unique among live processes on every machine sharing a store (two containers
/// may both be `rbtx` with pid 1, but not started in the same millisecond), so lease owners made
/// from it are too.
fn process_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "rbtx".into());
    format!(
        "{host}-{}-{}",
        std::process::id(),
        crate::dates::now_millis()
    )
}

/// The company pair whose accounts are in the environment (the variables `rbtx run` reads), for
/// one-off commands. `rackbeat_per_minute` is the Rackbeat request budget.
pub fn tenant_from_env(
    id: &str,
    invoice_mode: &str,
    rackbeat_per_minute: u32,
) -> Result<Tenant, String> {
    if !Accounts::any_in_env() {
        return Err(format!(
            "no accounts in the environment: set {} (each also as *_FILE), and RBTX_TRIPLETEX_URL / RBTX_RACKBEAT_URL to use `rbtx sandbox`",
            Accounts::VARS.join(", ")
        ));
    }
    let accounts = Accounts::from_env()?;
    let mut rb = RackbeatConfig::new(accounts.rackbeat_url.as_str(), accounts.rackbeat_token);
    rb.requests_per_minute = rackbeat_per_minute;
    Ok(Tenant {
        id: id.to_string(),
        rackbeat: Rackbeat::new(rb).map_err(|e| e.to_string())?,
        tripletex: Tripletex::new(TripletexConfig::new(
            accounts.tripletex_url.as_str(),
            accounts.consumer_token,
            accounts.employee_token,
        ))
        .map_err(|e| e.to_string())?,
        invoice_mode: invoice_mode.to_string(),
    })
}
