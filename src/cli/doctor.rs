//! `rbtx doctor`: read-only checks of one tenant's setup, with a fix per problem.

use rbtx::plan::load_pack;
use rbtx::store::Location;
use rbtx::store::sqlite::SqliteStore;

use super::{Error, Outcome, PackArg, TenantArgs};

#[derive(clap::Args)]
#[command(after_help = super::env_help::ACCOUNTS_AND_STORE)]
pub struct Args {
    #[command(flatten)]
    pack: PackArg,
    /// The store `rbtx run` uses: a SQLite file or a postgres:// URL (default: RBTX_STORE_URL,
    /// else rbtx.sqlite).
    #[arg(long)]
    store: Option<String>,
    /// The URL Rackbeat should deliver webhooks to (checks the subscriptions point there).
    #[arg(long)]
    public_url: Option<String>,
    /// The invoice mode `rbtx run` uses: `booked` or `as_order` (a tenants file says it per tenant).
    #[arg(long, default_value = "booked", value_parser = ["booked", "as_order"])]
    invoice_mode: String,
    #[command(flatten)]
    tenant: TenantArgs,
}

pub fn run(args: Args) -> Result<Outcome, Error> {
    let store = Location::from_arg_or_env(args.store.as_deref())?;
    let accounts = args.tenant.accounts(args.invoice_mode.parse()?)?;
    let root = args.pack.root()?;
    let pack = load_pack(std::slice::from_ref(&root));
    super::runtime()?.block_on(async {
        let tenant = accounts.tenant()?;
        let name = store.to_string();
        let pack_name = root.display().to_string();
        let setup = rbtx::doctor::Setup::<SqliteStore> {
            pack: &pack,
            pack_path: &pack_name,
            store: None,
            store_name: &name,
            tenant: &tenant,
            public_url: args.public_url.as_deref(),
        };
        let report = match &store {
            // Opening a file that is not there would create it; the doctor changes nothing.
            Location::Sqlite(path) if !path.exists() => rbtx::doctor::check(&setup).await,
            _ => rbtx::with_store!(store.open().await?, |db| rbtx::doctor::check(
                &setup.with_store(&db)
            )
            .await),
        };
        print!("{}", report.render());
        Ok(Outcome::clean_if(!report.blocked()))
    })
}
