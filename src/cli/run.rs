//! `rbtx run`: the webhook intake and the workers, until Ctrl-C or SIGTERM.

use std::path::PathBuf;

use rbtx::runtime::accounts::Accounts;
use rbtx::runtime::alerts::AlertSettings;
use rbtx::runtime::run::{RunConfig, TenantSource};
use rbtx::store::Location;

use super::{Error, Outcome, PackArg};

#[derive(clap::Args)]
#[command(after_help = super::env_help::RUN)]
pub struct Args {
    /// Serve both API sandboxes in-process and sync against them (no accounts needed).
    #[arg(long)]
    sandbox: bool,
    #[command(flatten)]
    pack: PackArg,
    /// Where the queue, bindings and dead letters are kept: a SQLite file, or a
    /// postgres://user:password@host/db URL for a database several `rbtx run` processes share.
    /// Default: RBTX_STORE_URL (or the file RBTX_STORE_URL_FILE names, keeping a password off
    /// the command line), else rbtx.sqlite.
    #[arg(long)]
    store: Option<String>,
    /// Where the webhook intake listens.
    #[arg(long, default_value = "127.0.0.1:8470")]
    listen: std::net::SocketAddr,
    /// The URL Rackbeat delivers webhooks to, when it differs from the listen address.
    #[arg(long)]
    public_url: Option<String>,
    /// How booked invoices reach Tripletex: `booked` (an invoice) or `as_order` (an editable order).
    #[arg(long, default_value = "booked", value_parser = ["booked", "as_order"])]
    invoice_mode: String,
    /// Seconds a claimed event stays with this process; after a crash, work in flight is taken
    /// over when its lease ends.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(i64).range(1..))]
    lease_seconds: i64,
    /// Seconds between polls of Rackbeat for changes no webhook announced (CSV imports, lost
    /// deliveries); also done at start.
    #[arg(long, default_value_t = 300)]
    catch_up_seconds: u64,
    /// Reconcile each tenant this often (`90m`, `6h`, `1d`; plain seconds too), repairing
    /// nothing, and log what differs as a warning. Off unless given.
    #[arg(long, value_parser = every)]
    reconcile_every: Option<u64>,
    /// Workers per tenant applying events in parallel; one key is never with two at once.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Serve every company pair of this tenants file (see README) instead of the one in the
    /// environment; webhooks are routed by Rackbeat-Account-Id.
    #[arg(long, conflicts_with = "sandbox")]
    tenants: Option<PathBuf>,
    /// Reload the mapping pack when its files change (it is always reloaded on SIGHUP).
    #[arg(long)]
    watch: bool,
}

pub fn run(args: Args) -> Result<Outcome, Error> {
    let invoice_mode = args.invoice_mode.parse()?;
    let pack = args.pack.root()?;
    if args.watch && rbtx::files::is_embedded(&pack) {
        tracing::warn!(
            "--watch: the built-in pack never changes; `rbtx init` writes a copy to edit and --pack runs it."
        );
    }
    let tenants = match args.tenants {
        Some(file) => TenantSource::File(file),
        None if args.sandbox => TenantSource::Sandbox { invoice_mode },
        // No credentials is a mistake on a server (a misspelt variable), never a cue to pretend.
        None if !Accounts::any_in_env() => {
            return Err(rbtx::runtime::accounts::AccountsError::NoneInEnv.into());
        }
        None => TenantSource::Env { invoice_mode },
    };
    let config = RunConfig {
        pack,
        store: Location::from_arg_or_env(args.store.as_deref())?,
        listen: args.listen,
        public_url: args.public_url,
        tenants,
        lease_ms: args.lease_seconds.saturating_mul(1000),
        catch_up_seconds: args.catch_up_seconds,
        reconcile_every_seconds: args.reconcile_every,
        workers: args.workers,
        watch: args.watch,
        console_token: rbtx::secret::Secret::from_env("RBTX_CONSOLE_TOKEN")
            .map_err(rbtx::runtime::accounts::AccountsError::EnvFile)?
            .filter(|t| !t.expose().is_empty()),
        alerts: AlertSettings::from_env().map_err(rbtx::runtime::run::RunError::from)?,
    };
    super::runtime()?.block_on(rbtx::runtime::run::run(
        config,
        |url| rbtx::runtime::announce(&format!("webhooks: {url}")),
        stop_requested(),
    ))?;
    Ok(Outcome::Clean)
}

/// Ctrl-C, or SIGTERM (how containers and service managers ask a process to stop).
async fn stop_requested() {
    #[cfg(unix)]
    if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        return;
    }
    tokio::signal::ctrl_c().await.ok();
}

/// `90m`, `6h`, `1d` or seconds, as whole seconds (at least one).
fn every(s: &str) -> Result<u64, String> {
    match rbtx::dates::parse_interval(s)?.as_secs() {
        0 => Err("the interval must be at least 1s".into()),
        secs => Ok(secs),
    }
}
