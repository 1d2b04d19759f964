//! The subcommands, one file each: parse the arguments, call the library, say how it went.
//! What they share (the outcome, the error, the runtime builder, the tenant arguments) is here;
//! `main.rs` maps outcomes and errors to exit codes.

pub mod demo;
pub mod dlq;
pub mod doctor;
pub mod init;
pub mod preview;
pub mod reconcile;
pub mod run;
pub mod sandbox;
pub mod schema;
pub mod sync;
pub mod test;
pub mod validate;
pub mod webhooks;

use std::path::PathBuf;

use rbtx::runtime::accounts::Accounts;
use rbtx::runtime::tenant::InvoiceMode;

/// How a command that ran went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Clean,
    /// It ran and found problems (invalid mappings, failed tests, failed records, a blocked setup).
    Problems,
}

impl Outcome {
    pub fn clean_if(clean: bool) -> Self {
        if clean {
            Outcome::Clean
        } else {
            Outcome::Problems
        }
    }
}

/// Why a command could not run (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the mapping pack {} does not exist (named by --pack or RBTX_PACK; without either, the pack built into rbtx is used)",
        .0.display()
    )]
    NoPack(PathBuf),
    #[error(
        "the pack built into rbtx cannot be rewritten; `rbtx init` writes a copy to edit and bless"
    )]
    BlessBuiltIn,
    #[error(transparent)]
    Init(#[from] rbtx::files::InitError),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// Nothing at the paths could be read: each problem's message.
    #[error("{0}")]
    Unreadable(String),
    #[error(transparent)]
    Location(#[from] rbtx::store::LocationError),
    #[error("{0} does not exist (use --store)")]
    NoStore(rbtx::store::Location),
    #[error(transparent)]
    Store(#[from] rbtx::store::StoreError),
    #[error(transparent)]
    Accounts(#[from] rbtx::runtime::accounts::AccountsError),
    #[error(transparent)]
    InvoiceMode(#[from] rbtx::runtime::tenant::UnknownInvoiceMode),
    #[error(transparent)]
    Pack(#[from] rbtx::runtime::run::InvalidPack),
    #[error(transparent)]
    Run(#[from] rbtx::runtime::run::RunError),
    #[error(transparent)]
    Reconcile(#[from] rbtx::runtime::reconcile::ReconcileError),
    #[error(transparent)]
    Initial(#[from] rbtx::runtime::initial::InitialError),
    #[error(transparent)]
    Demo(#[from] rbtx::runtime::demo::DemoError),
    #[error(transparent)]
    Replay(#[from] rbtx::runtime::dlq::ReplayError),
    #[error("give a dead letter id, or --all")]
    NoDeadLetterChosen,
    #[error(transparent)]
    Preview(#[from] rbtx::preview::PreviewError),
    #[error("the round trip: {0}")]
    RoundTrip(#[from] rbtx::round_trip::RoundTripError),
    #[error("--faults: {0}")]
    Faults(serde_json::Error),
    #[error("cannot start the sandboxes: {0}")]
    Sandboxes(std::io::Error),
    /// Waiting for Ctrl-C failed.
    #[error("{0}")]
    Signal(std::io::Error),
    /// Printing JSON failed.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
}

/// The one Tokio runtime a command runs its async work on.
pub fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Runtime::new().map_err(Error::Runtime)
}

/// Which company pair a one-off command works on: the environment's, or one of a tenants file.
#[derive(clap::Args)]
pub struct TenantArgs {
    /// A tenants file (see README); without it the accounts come from the environment.
    #[arg(long)]
    pub tenants: Option<PathBuf>,
    /// The tenant of the file (needed when it lists several).
    #[arg(long, requires = "tenants")]
    pub tenant: Option<String>,
}

impl TenantArgs {
    pub fn accounts(&self, invoice_mode: InvoiceMode) -> Result<Accounts, Error> {
        Ok(rbtx::runtime::accounts::choose(
            self.tenants.as_deref(),
            self.tenant.as_deref(),
            invoice_mode,
        )?)
    }
}

/// Which mapping pack a command uses.
#[derive(clap::Args)]
pub struct PackArg {
    /// A mapping pack folder to use instead of the pack built into rbtx (`rbtx init` writes a
    /// copy of that one to edit).
    #[arg(long, env = "RBTX_PACK")]
    pub pack: Option<PathBuf>,
}

impl PackArg {
    /// The pack's root, said on stderr so a person knows which mappings ran.
    pub fn root(&self) -> Result<PathBuf, Error> {
        let root = pack_root(self.pack.clone())?;
        eprintln!("pack: {}", rbtx::files::describe(&root));
        Ok(root)
    }
}

/// The pack folder given, or the built-in pack; a folder that is not there is an error naming it.
pub fn pack_root(given: Option<PathBuf>) -> Result<PathBuf, Error> {
    match given {
        None => Ok(rbtx::files::embedded_root()),
        Some(p) if rbtx::files::exists(&p) => Ok(p),
        Some(p) => Err(Error::NoPack(p)),
    }
}

/// The environment each command reads, shown under its `--help` (clap shows the variables that
/// stand for an option beside the option itself).
pub mod env_help {
    macro_rules! accounts {
        () => {
            "  RBTX_TRIPLETEX_CONSUMER_TOKEN, RBTX_TRIPLETEX_EMPLOYEE_TOKEN, RBTX_RACKBEAT_TOKEN
                      the accounts (each also as *_FILE, a file holding the value)
  RBTX_TRIPLETEX_URL, RBTX_RACKBEAT_URL
                      the APIs (default: the production services)
  RBTX_RACKBEAT_ACCOUNT_ID
                      the Rackbeat account (default: read from Rackbeat)
  RBTX_RACKBEAT_REQUESTS_PER_MINUTE
                      the Rackbeat token's budget, shared by all workers (default 480)
"
        };
    }
    macro_rules! store {
        () => {
            "  RBTX_STORE_URL      the store: a SQLite file or a postgres:// URL (also as RBTX_STORE_URL_FILE)
"
        };
    }

    pub const RUN: &str = concat!(
        "Environment:\n",
        accounts!(),
        "  RBTX_RACKBEAT_WEBHOOK_TOKENS\n                      the tokens deliveries must carry (comma-separated; also as *_FILE)\n",
        store!(),
        "  RBTX_CONSOLE_TOKEN  opens the console at /console/ for every tenant (also as *_FILE; 16 characters or more)\n",
        "  RBTX_ALERT_SMTP_URL, RBTX_ALERT_EMAIL_TO, RBTX_ALERT_EMAIL_FROM\n                      alert e-mails (the URL also as *_FILE)\n",
        "  RBTX_ALERT_WEBHOOK_URL\n                      alerts posted as JSON, e.g. to Slack or Teams (also as *_FILE)\n",
        "  RBTX_ALERT_INTERVAL, RBTX_ALERT_QUEUE_AGE\n                      one digest per interval (default 5m); a queue this far behind is alerted (default 15m)\n",
        "  RUST_LOG            the log level (default info; e.g. rbtx=debug)"
    );
    pub const ACCOUNTS_AND_STORE: &str = concat!("Environment:\n", accounts!(), store!());
    pub const WEBHOOKS: &str = concat!(
        "Environment:\n  RBTX_RACKBEAT_TOKEN (or RBTX_RACKBEAT_TOKEN_FILE), RBTX_RACKBEAT_URL\n                      the Rackbeat account\n",
        store!()
    );
    pub const STORE: &str = concat!("Environment:\n", store!());
}
