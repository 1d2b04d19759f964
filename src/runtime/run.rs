//! `rbtx run`: the intake and the workers of every tenant over one store: an embedded SQLite file,
//! or a PostgreSQL database that several `rbtx run` processes share (one code path, generic over
//! [`Store`]). Tenants come from the environment (one), a tenants file (many), or the in-process
//! sandboxes, to which rbtx then subscribes itself, so the real-time path can be watched with no
//! accounts. The mapping pack is reloaded on SIGHUP (and with `watch`, when its files change): the
//! new pack is validated in full and swapped in between batches; on any problem the old one stays.
//!
//! `serve` is a sequence of named steps: the tenants to serve, the store migrated, the listener,
//! the intake's tenants (webhook tokens from the store, where `rbtx webhooks install` keeps them),
//! the workers (named `host-pid-start-tenant-index`, so lease owners are unique across machines),
//! catch-up, reloads, and the stop. Ctrl-C or SIGTERM stops the intake, lets each worker finish
//! the event in hand and puts the rest of its batch back (`Store::release`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::accounts::{self, Accounts, AccountsError};
use super::alerts::{AlertConfig, AlertConfigError, AlertSettings, Alerts};
use super::intake::{Intake, IntakeTenant};
use super::lookups::LookupCache;
use super::tenant::{InvoiceMode, Tenant, trigger_events};
use super::worker::{Worker, work};
use crate::connectors::ApiError;
use crate::connectors::rackbeat::Rackbeat;
use crate::connectors::tripletex::Tripletex;
use crate::plan::{Pack, discover, load_pack};
use crate::sandbox::{self, SandboxConfig, Sandboxes};
use crate::secret::Secret;
use crate::store::{Location, LocationError, Store, StoreError};

/// Whose accounts `rbtx run` serves.
#[derive(Debug, Clone)]
pub enum TenantSource {
    /// One tenant, `default`, from the `RBTX_*` variables.
    Env { invoice_mode: InvoiceMode },
    /// Every tenant of a tenants file.
    File(PathBuf),
    /// Both APIs simulated in-process, one tenant.
    Sandbox { invoice_mode: InvoiceMode },
    /// Accounts made by the caller (the demo, tests); `subscribe`: subscribe the intake to the
    /// webhooks the pack needs at start (only for sandboxes: real tokens are shown once).
    Given {
        accounts: Vec<Accounts>,
        subscribe: bool,
    },
}

/// Settings for `rbtx run`.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub pack: PathBuf,
    pub store: Location,
    /// Where the intake listens.
    pub listen: SocketAddr,
    /// The URL Rackbeat delivers to (defaults to the listen address).
    pub public_url: Option<String>,
    pub tenants: TenantSource,
    /// Workers per tenant applying events in parallel (one key is never with two at once).
    pub workers: usize,
    /// Seconds between catch-up polls of Rackbeat (also run at start).
    pub catch_up_seconds: u64,
    /// Seconds between reconciliations of each tenant (`rbtx reconcile`, nothing repaired), whose
    /// differences are logged as warnings; `None`: never.
    pub reconcile_every_seconds: Option<u64>,
    /// How long a claimed event stays with this process before another may take it over (after a
    /// crash, events in flight wait this long).
    pub lease_ms: i64,
    /// Reload the pack when its files change, not only on SIGHUP.
    pub watch: bool,
    /// Opens the console for every tenant (`RBTX_CONSOLE_TOKEN`); tenants may have their own. With
    /// neither, the console is off. `--sandbox` makes one up when none is given.
    pub console_token: Option<Secret>,
    /// Where every tenant's alerts go (the `RBTX_ALERT_*` variables); a tenant's own settings
    /// (`Accounts::alerts`) override them field by field.
    pub alerts: AlertSettings,
}

/// Why `rbtx run` (or `rbtx webhooks install`) could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Pack(#[from] InvalidPack),
    #[error(transparent)]
    Location(#[from] LocationError),
    #[error(transparent)]
    Accounts(#[from] AccountsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot start the sandboxes: {0}")]
    Sandboxes(std::io::Error),
    #[error("cannot start the console: {0}")]
    Console(String),
    #[error("migrating {store}: {source}")]
    Migrate { store: String, source: StoreError },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The listener's own address, or the server, failed.
    #[error("{0}")]
    Serve(std::io::Error),
    #[error("tenant {tenant}: Rackbeat /self: {source}")]
    AccountId {
        tenant: String,
        source: Box<ApiError>,
    },
    #[error(
        "tenant {0}: the Rackbeat account id is unknown (set it in the tenants file, or RBTX_RACKBEAT_ACCOUNT_ID)"
    )]
    UnknownAccountId(String),
    #[error("tenant {tenant}: subscribing to webhooks: {source}")]
    Subscribe {
        tenant: String,
        source: Box<ApiError>,
    },
    #[error(
        "tenant {0}: no webhook tokens: run `rbtx webhooks install --url <public URL>`, or give them (RBTX_RACKBEAT_WEBHOOK_TOKENS, or webhook_tokens in the tenants file)"
    )]
    NoWebhookTokens(String),
    /// Subscribing for `rbtx webhooks install`.
    #[error("{0}")]
    Api(Box<ApiError>),
    #[error("a worker stopped unexpectedly")]
    WorkerStopped,
    #[error(transparent)]
    Alerts(#[from] AlertConfigError),
}

/// A mapping pack with problems, which nothing runs.
#[derive(Debug, thiserror::Error)]
pub struct InvalidPack {
    pub path: PathBuf,
    pub problems: usize,
    /// The first few, each with its location.
    pub first: Vec<String>,
}

impl InvalidPack {
    /// `pack`'s problems, naming the first `listed`.
    pub fn new(path: &Path, pack: &Pack, listed: usize) -> Self {
        InvalidPack {
            path: path.to_path_buf(),
            problems: pack.diagnostics.len(),
            first: pack
                .diagnostics
                .iter()
                .take(listed)
                .map(|d| format!("{} {}", d.location(), d.message))
                .collect(),
        }
    }
}

impl std::fmt::Display for InvalidPack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the mapping pack has {} problem(s)", self.problems)?;
        if !self.first.is_empty() {
            write!(f, ", first: {}", self.first.join("; "))?;
        }
        write!(f, "; run `rbtx validate {}`", self.path.display())
    }
}

/// Loads the pack the way `rbtx validate` does, refusing it when it has problems.
pub fn load_valid_pack(path: &Path) -> Result<Pack, InvalidPack> {
    let pack = load_pack(&[path.to_path_buf()]);
    if pack.diagnostics.is_empty() {
        return Ok(pack);
    }
    Err(InvalidPack::new(path, &pack, 3))
}

/// Runs until `shutdown` resolves. `ready` is told the intake's address once it listens.
pub async fn run(
    config: RunConfig,
    ready: impl FnOnce(&str),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), RunError> {
    let pack = Arc::new(load_valid_pack(&config.pack)?);
    let opened = config.store.open().await?;
    crate::with_store!(opened, |store| serve(config, pack, store, ready, shutdown)
        .await)
}

/// The tenants to serve, whether to subscribe the intake to their webhooks at start, and the
/// in-process sandboxes when they are the tenant's APIs (kept alive while serving).
struct Served {
    tenants: Vec<Accounts>,
    subscribe_at_start: bool,
    _sandboxes: Option<Sandboxes>,
}

/// `run` once the store is open, whichever backend it is.
async fn serve<S: Store + 'static>(
    config: RunConfig,
    pack: Arc<Pack>,
    store: S,
    ready: impl FnOnce(&str),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), RunError> {
    let served = tenants_to_serve(&config.tenants).await?;
    let tenants = &served.tenants;
    let store = Arc::new(store);
    store.migrate().await.map_err(|source| RunError::Migrate {
        store: config.store.to_string(),
        source,
    })?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| RunError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(RunError::Serve)?;
    let url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}/webhooks/rackbeat"));
    // One Rackbeat client per tenant, cloned into its workers and catch-up: one request budget.
    let clients = tenants
        .iter()
        .map(Accounts::rackbeat)
        .collect::<Result<Vec<_>, _>>()?;
    let intake_tenants = intake_tenants(&served, &clients, store.as_ref(), &pack, &url).await?;
    let alert_configs = alert_configs(&config.alerts, tenants)?;
    let queue_ages: Vec<(String, Duration)> = alert_configs
        .iter()
        .map(|(t, c)| (t.clone(), c.queue_age))
        .collect();

    let metrics = Arc::new(super::metrics::Metrics::default());
    let queued = wakers(tenants, store.as_ref());
    let intake = Arc::new(
        Intake::new(store.clone(), intake_tenants, &pack)
            .with_metrics(metrics.clone())
            .with_notify(queued.clone()),
    );
    let (pack_tx, pack_rx) = tokio::sync::watch::channel(pack.clone());
    // One Tripletex session per tenant, shared by its workers and the console.
    let tripletex = tenants
        .iter()
        .map(Accounts::tripletex)
        .collect::<Result<Vec<_>, _>>()?;
    let mut workers = make_workers(
        &config, tenants, &clients, &tripletex, &store, &pack, &metrics, &queued,
    );
    let status = Arc::new(super::status::Status::default());
    let describe = crate::files::describe(&config.pack);
    status.pack_loaded(
        describe.to_string(),
        pack.plans.len(),
        crate::dates::now_millis(),
    );
    // `--sandbox` makes a token up (and prints it) when none is given; one given is never printed.
    let made_up = match (&config.console_token, &config.tenants) {
        (None, TenantSource::Sandbox { .. }) => Some(Secret::new(
            crate::console::auth::random_token().map_err(|e| RunError::Console(e.to_string()))?,
        )),
        _ => None,
    };
    let console_token = made_up.clone().or_else(|| config.console_token.clone());
    let mut router = intake.clone().router();
    let console_url = format!("{}/console/", console_base(&url));
    let tokens = crate::console::auth::Tokens {
        global: console_token.clone(),
        tenants: tenants
            .iter()
            .filter_map(|t| Some((t.id.clone(), t.console_token.clone()?)))
            .collect(),
    };
    tokens.check().map_err(RunError::Console)?;
    // Alerts link to the console only when there is one.
    let alerts = Alerts::start(alert_configs, tokens.any().then(|| console_base(&url)));
    for (worker, _) in &mut workers {
        worker.alerts = alerts.clone();
    }
    if tokens.any() {
        let console_tenants = tenants
            .iter()
            .zip(clients.iter().zip(&tripletex))
            .map(|(t, (rb, tx))| crate::console::ConsoleTenant {
                id: t.id.clone(),
                invoice_mode: t.invoice_mode,
                rackbeat: rb.clone(),
                tripletex: tx.clone(),
            })
            .collect();
        let console = crate::console::Console::new(
            store.clone(),
            console_tenants,
            tokens,
            status.clone(),
            pack_rx.clone(),
            url.starts_with("https://"),
        );
        router = router.merge(Arc::new(console).router());
        if let Some(token) = &made_up {
            super::announce(&format!(
                "console: {console_url} (token: {})",
                token.expose()
            ));
        }
        tracing::info!(url = %console_url, "The console is on.");
    } else {
        tracing::info!(
            "The console is off: set RBTX_CONSOLE_TOKEN (or RBTX_CONSOLE_TOKEN_FILE), or a tenant's console_token, to serve it at /console/."
        );
    }

    ready(&url);
    tracing::info!(url, store = %config.store, tenants = tenants.len(), pack = %describe, "rbtx is running.");
    let server = axum::serve(listener, router);
    let catch_up = super::schedule::catch_up(
        tenants,
        &clients,
        &store,
        &pack_rx,
        &status,
        config.catch_up_seconds,
    );
    let reconciling = super::schedule::reconcile_on_schedule(
        tenants,
        &store,
        &pack_rx,
        config.reconcile_every_seconds,
    );
    let pruning = super::schedule::prune_activity(&store);
    let stale = super::schedule::watch_queue_age(alerts.clone(), queue_ages, |tenant| {
        let (store, tenant) = (store.clone(), tenant.to_string());
        async move {
            let q = store.queue_summary(Some(&tenant)).await?;
            Ok((q.depth, q.oldest_received_at))
        }
    });
    // Workers run as tasks of their own, so that stopping can wait for the events in hand.
    let stop = Arc::new(AtomicBool::new(false));
    let mut running = tokio::task::JoinSet::new();
    for (worker, queued) in workers {
        running.spawn(work(worker, queued, pack_rx.clone(), stop.clone()));
    }
    let tenant_ids: Vec<String> = tenants.iter().map(|t| t.id.clone()).collect();
    let reload = reload_on_signal(&config.pack, config.watch, &metrics, &status, |new| {
        swap_pack(&intake, &store, &tenant_ids, new.clone());
        pack_tx.send_replace(new);
    });
    let outcome = tokio::select! {
        r = server => r.map_err(RunError::Serve),
        _ = running.join_next() => Err(RunError::WorkerStopped),
        _ = catch_up => Ok(()),
        _ = reconciling => Ok(()),
        _ = pruning => Ok(()),
        _ = stale => Ok(()),
        _ = reload => Ok(()),
        _ = shutdown => Ok(()),
    };
    stop_workers(running, &stop, &queued).await;
    outcome
}

/// Each tenant's alert config, the environment's `global` settings under its own; tenants with
/// no channel are left out. Logged, hosts and recipients only.
fn alert_configs(
    global: &AlertSettings,
    tenants: &[Accounts],
) -> Result<std::collections::HashMap<String, AlertConfig>, AlertConfigError> {
    let mut configs = std::collections::HashMap::new();
    for t in tenants {
        match t.alerts.over(global).resolve(&t.id)? {
            Some(c) => {
                tracing::info!(tenant = %t.id, channels = %c.describe(), interval_seconds = c.interval.as_secs_f64(), "Alerts are on.");
                configs.insert(t.id.clone(), c);
            }
            None => {
                tracing::info!(tenant = %t.id, "Alerts are off (see RBTX_ALERT_SMTP_URL, RBTX_ALERT_WEBHOOK_URL).")
            }
        }
    }
    Ok(configs)
}

/// The console's base URL: where the intake is reached, without its webhook path.
pub(crate) fn console_base(webhook_url: &str) -> String {
    match webhook_url.strip_suffix("/webhooks/rackbeat") {
        Some(base) => base.to_string(),
        None => {
            // Another path: the console is at the root of the same origin.
            let scheme_end = webhook_url.find("://").map_or(0, |i| i + 3);
            let end = webhook_url[scheme_end..]
                .find('/')
                .map_or(webhook_url.len(), |i| scheme_end + i);
            webhook_url[..end].to_string()
        }
    }
}

/// Whose accounts to serve, read from where `source` says.
async fn tenants_to_serve(source: &TenantSource) -> Result<Served, RunError> {
    let served = |tenants, subscribe_at_start, sandboxes| Served {
        tenants,
        subscribe_at_start,
        _sandboxes: sandboxes,
    };
    Ok(match source {
        TenantSource::Env { invoice_mode } => {
            served(vec![Accounts::from_env(*invoice_mode)?], false, None)
        }
        TenantSource::File(path) => {
            let tenants = accounts::load_tenants(path).map_err(AccountsError::TenantsFile)?;
            served(tenants, false, None)
        }
        TenantSource::Sandbox { invoice_mode } => {
            let config = SandboxConfig::default();
            let sb = sandbox::start(config.clone())
                .await
                .map_err(RunError::Sandboxes)?;
            for line in sb.for_clients(&config) {
                super::announce(&line);
            }
            let accounts = Accounts::sandbox(&sb, *invoice_mode);
            served(vec![accounts], true, Some(sb))
        }
        TenantSource::Given {
            accounts,
            subscribe,
        } => served(accounts.clone(), *subscribe, None),
    })
}

/// Each tenant as the intake sees it: its Rackbeat account id (for routing deliveries), read
/// from Rackbeat when not given, and its webhook tokens (for checking them): given, made by
/// subscribing at start, or kept in the store by `rbtx webhooks install`.
async fn intake_tenants<S: Store>(
    served: &Served,
    clients: &[Rackbeat],
    store: &S,
    pack: &Pack,
    url: &str,
) -> Result<Vec<IntakeTenant>, RunError> {
    let mut out = Vec::new();
    for (t, rb) in served.tenants.iter().zip(clients) {
        let account_id = match &t.account_id {
            Some(id) => id.clone(),
            None => rb
                .get("/self", &[])
                .await
                .map_err(|source| RunError::AccountId {
                    tenant: t.id.clone(),
                    source: Box::new(source),
                })?
                .and_then(|m| m.pointer("/user_account/id").map(json_text))
                .ok_or_else(|| RunError::UnknownAccountId(t.id.clone()))?,
        };
        let mut tokens = t.webhook_tokens.clone();
        if served.subscribe_at_start {
            tokens = subscribe(rb, pack, url)
                .await
                .map_err(|source| RunError::Subscribe {
                    tenant: t.id.clone(),
                    source: Box::new(source),
                })?
                .into_iter()
                .filter_map(|(_, t)| t)
                .collect();
        }
        if tokens.is_empty() {
            tokens = stored_tokens(store, &t.id, pack).await?;
        }
        if tokens.is_empty() {
            return Err(RunError::NoWebhookTokens(t.id.clone()));
        }
        out.push(IntakeTenant {
            id: t.id.clone(),
            account_id,
            webhook_tokens: tokens,
        });
    }
    Ok(out)
}

/// What each tenant's idle workers wait on, so a delivery wakes one of them. Events another
/// process queued (a shared PostgreSQL store) wake this one's workers too.
fn wakers<S: Store>(tenants: &[Accounts], store: &S) -> super::intake::Wakers {
    let queued: super::intake::Wakers = tenants
        .iter()
        .map(|t| (t.id.clone(), Arc::new(tokio::sync::Notify::new())))
        .collect();
    if let Some(mut others) = store.watch_queue() {
        let queued = queued.clone();
        tokio::spawn(async move {
            while let Some(tenant) = others.recv().await {
                if let Some(notify) = queued.get(&tenant) {
                    notify.notify_one();
                }
            }
        });
    }
    queued
}

/// A worker and what it waits on when idle.
type Waiting<S> = (Worker<S>, Arc<tokio::sync::Notify>);

/// `config.workers` workers per tenant, each with its tenant's wake-up signal; named
/// host-pid-start-tenant-index, so lease owners are unique across machines.
#[allow(clippy::too_many_arguments)]
fn make_workers<S: Store>(
    config: &RunConfig,
    tenants: &[Accounts],
    clients: &[Rackbeat],
    tripletex: &[Tripletex],
    store: &Arc<S>,
    pack: &Arc<Pack>,
    metrics: &Arc<super::metrics::Metrics>,
    queued: &super::intake::Wakers,
) -> Vec<Waiting<S>> {
    let mut workers = Vec::new();
    let process = process_name();
    for ((t, rb), tripletex) in tenants.iter().zip(clients).zip(tripletex) {
        let Some(wake) = queued.get(&t.id) else {
            continue;
        };
        // One Tripletex session and one load of each lookup table per tenant, shared by its
        // workers.
        let lookups = LookupCache::default();
        let pace = Arc::new(super::worker::Pace::default());
        for i in 0..config.workers.max(1) {
            let tenant = Tenant {
                id: t.id.clone(),
                rackbeat: rb.clone(),
                tripletex: tripletex.clone(),
                invoice_mode: t.invoice_mode,
            };
            let mut worker = Worker::new(
                store.clone(),
                pack.clone(),
                tenant,
                format!("{process}-{}-{i}", t.id),
            );
            worker.share_lookups(lookups.clone());
            worker.pace = pace.clone();
            worker.lease_ms = config.lease_ms;
            worker.metrics = Some(metrics.clone());
            workers.push((worker, wake.clone()));
        }
    }
    workers
}

/// Hands a reloaded pack to the intake. A new trigger's subscription (`rbtx webhooks install`
/// after adding a mapping) left its token in the store: its deliveries are accepted without a
/// restart. (The workers and catch-up take the pack from the watch channel.)
fn swap_pack<S: Store + 'static>(
    intake: &Arc<Intake<S>>,
    store: &Arc<S>,
    tenant_ids: &[String],
    pack: Arc<Pack>,
) {
    intake.set_pack(&pack);
    let (intake, store, ids) = (intake.clone(), store.clone(), tenant_ids.to_vec());
    tokio::spawn(async move {
        for id in ids {
            match stored_tokens(store.as_ref(), &id, &pack).await {
                Ok(tokens) => {
                    let added = intake.add_tokens(&id, tokens);
                    if added > 0 {
                        tracing::info!(tenant = %id, added, "Accepting webhooks with new tokens from the store.");
                    }
                }
                Err(e) => {
                    tracing::warn!(tenant = %id, error = %e, "Could not read webhook tokens after the reload.")
                }
            }
        }
    });
}

/// Stops taking work; each worker finishes the event in hand and puts back the rest of its
/// batch. The intake has stopped listening; Rackbeat retries what it could not deliver
/// meanwhile. Whatever is still running after the grace period keeps its lease until it expires.
async fn stop_workers(
    mut running: tokio::task::JoinSet<()>,
    stop: &AtomicBool,
    queued: &super::intake::Wakers,
) {
    tracing::info!("Shutting down: finishing the events in hand.");
    stop.store(true, Ordering::Relaxed);
    for notify in queued.values() {
        notify.notify_waiters();
    }
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while running.join_next().await.is_some() {}
    })
    .await;
    match drained {
        Ok(()) => tracing::info!("Stopped; no event is left claimed."),
        Err(_) => tracing::warn!(
            grace_seconds = SHUTDOWN_GRACE.as_secs(),
            "Stopped with events still in hand; they are taken over when their lease ends."
        ),
    }
}

/// How long stopping waits for the events in hand.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The newest modification time among the pack's files (and their count, so a deleted file
/// counts as a change).
fn pack_stamp(path: &Path) -> Option<(usize, SystemTime)> {
    let files = discover(&[path.to_path_buf()]).ok()?;
    let newest = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .max()?;
    Some((files.len(), newest))
}

/// Waits for SIGHUP (and, with `watch`, for the pack's files to change), then loads the pack in
/// full and hands it to `swap` when it is valid. Runs until the process stops.
async fn reload_on_signal(
    path: &Path,
    watch: bool,
    metrics: &super::metrics::Metrics,
    status: &super::status::Status,
    swap: impl Fn(Arc<Pack>),
) {
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut stamp = pack_stamp(path);
    loop {
        let signalled = async {
            #[cfg(unix)]
            if let Some(h) = hangup.as_mut() {
                h.recv().await;
                return;
            }
            std::future::pending::<()>().await
        };
        tokio::select! {
            _ = signalled => tracing::info!("SIGHUP: reloading the mapping pack."),
            // Polling: a second's delay is fine for a file an integrator just saved, and needs no
            // file-notification dependency.
            _ = tokio::time::sleep(Duration::from_secs(1)), if watch => {
                let now = pack_stamp(path);
                if now == stamp {
                    continue;
                }
                stamp = now;
                tracing::info!("The mapping files changed: reloading the pack.");
            }
        }
        let pack = load_pack(&[path.to_path_buf()]);
        let now = crate::dates::now_millis();
        if pack.diagnostics.is_empty() {
            tracing::info!(
                mappings = pack.plans.len(),
                "Reloaded the mapping pack; new events use it."
            );
            metrics.pack_reload("applied");
            status.pack_loaded(
                crate::files::describe(path).to_string(),
                pack.plans.len(),
                now,
            );
            swap(Arc::new(pack));
        } else {
            metrics.pack_reload("refused");
            let problems = pack
                .diagnostics
                .iter()
                .map(|d| format!("{} {}: {}", d.location(), d.code, d.message))
                .collect();
            status.pack_refused(problems, now);
            let e = InvalidPack::new(path, &pack, 3);
            tracing::error!(error = %e, "The changed pack is not valid; the running one stays.")
        }
    }
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

/// Webhook tokens `rbtx webhooks install` kept for `tenant`.
async fn stored_tokens<S: Store>(
    store: &S,
    tenant: &str,
    pack: &Pack,
) -> Result<Vec<Secret>, StoreError> {
    let mut tokens = Vec::new();
    for event in trigger_events(pack) {
        if let Some(t) = store.get_webhook_token(tenant, event).await? {
            tokens.push(t);
        }
    }
    Ok(tokens)
}

/// `rbtx webhooks install`: subscribes `url` to the events the pack needs in the tenant's
/// Rackbeat account, and keeps the tokens in the store for `rbtx run`. Returns a line per event.
pub async fn install_webhooks(
    pack_path: &Path,
    store: &Location,
    tenant: &str,
    rb: &Rackbeat,
    url: &str,
) -> Result<Vec<String>, RunError> {
    let pack = load_valid_pack(pack_path)?;
    crate::with_store!(store.open().await?, |s| keep_tokens(
        &s, tenant, rb, &pack, url
    )
    .await)
}

/// Subscribes `url` and keeps the tokens Rackbeat hands out in `store`, under `tenant`.
async fn keep_tokens<S: Store>(
    store: &S,
    tenant: &str,
    rb: &Rackbeat,
    pack: &Pack,
    url: &str,
) -> Result<Vec<String>, RunError> {
    store.migrate().await?;
    let mut lines = Vec::new();
    for (event, token) in subscribe(rb, pack, url)
        .await
        .map_err(|e| RunError::Api(Box::new(e)))?
    {
        match token {
            Some(t) => {
                store.put_webhook_token(tenant, &event, &t).await?;
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
