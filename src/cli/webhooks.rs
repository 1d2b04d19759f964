//! `rbtx webhooks install`: subscribe the intake's public URL to the events the pack needs.

use rbtx::runtime::accounts::Accounts;
use rbtx::runtime::tenant::InvoiceMode;
use rbtx::store::Location;

use super::{Error, Outcome, PackArg, TenantArgs};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Subscribe the intake's public URL to every event the mappings need (account from
    /// RBTX_RACKBEAT_TOKEN and RBTX_RACKBEAT_URL, or one tenant of --tenants) and keep the tokens
    /// in the store for `rbtx run`.
    Install(InstallArgs),
}

#[derive(clap::Args)]
#[command(after_help = super::env_help::WEBHOOKS)]
pub struct InstallArgs {
    /// The URL Rackbeat delivers to, e.g. https://rbtx.example.com/webhooks/rackbeat.
    #[arg(long)]
    url: String,
    #[command(flatten)]
    pack: PackArg,
    /// The store `rbtx run` uses: a SQLite file or a postgres:// URL (default: RBTX_STORE_URL,
    /// else rbtx.sqlite).
    #[arg(long)]
    store: Option<String>,
    #[command(flatten)]
    tenant: TenantArgs,
}

pub fn run(Command::Install(args): Command) -> Result<Outcome, Error> {
    let store = Location::from_arg_or_env(args.store.as_deref())?;
    let (id, rb) = match &args.tenant.tenants {
        Some(_) => {
            let a = args.tenant.accounts(InvoiceMode::Booked)?;
            (a.id.clone(), a.rackbeat()?)
        }
        None => ("default".to_string(), Accounts::rackbeat_from_env()?),
    };
    let lines = super::runtime()?.block_on(rbtx::runtime::run::install_webhooks(
        &args.pack.root()?,
        &store,
        &id,
        &rb,
        &args.url,
    ))?;
    for line in lines {
        println!("{line}");
    }
    Ok(Outcome::Clean)
}
