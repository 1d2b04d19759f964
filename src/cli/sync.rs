//! `rbtx sync initial`: the one-off pull of Tripletex records into Rackbeat.

use rbtx::plan::load_pack;
use rbtx::runtime::initial::Options;
use rbtx::runtime::run::InvalidPack;
use rbtx::runtime::tenant::InvoiceMode;
use rbtx::store::Location;

use super::{Error, Outcome, PackArg, TenantArgs};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Pull customers, suppliers, products, payment terms and employees from Tripletex into
    /// Rackbeat (accounts from the environment, or one tenant of --tenants). Resumes an interrupted sync;
    /// running it again changes nothing that is already in step.
    Initial(InitialArgs),
}

#[derive(clap::Args)]
#[command(after_help = super::env_help::ACCOUNTS_AND_STORE)]
pub struct InitialArgs {
    /// Only these entities (comma-separated), plus the ones they refer to.
    #[arg(long, value_delimiter = ',')]
    entities: Vec<String>,
    /// Print the requests as JSON lines instead of sending them.
    #[arg(long)]
    dry_run: bool,
    /// Start over instead of resuming an interrupted sync.
    #[arg(long)]
    restart: bool,
    #[command(flatten)]
    pack: PackArg,
    /// The store that keeps bindings, checkpoints and dead letters (the one `rbtx run` uses):
    /// a SQLite file or a postgres:// URL (default: RBTX_STORE_URL, else rbtx.sqlite).
    #[arg(long)]
    store: Option<String>,
    /// Records written at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Rackbeat requests per minute (Rackbeat's own client uses 480; a tenants file may say).
    #[arg(long)]
    rackbeat_requests_per_minute: Option<u32>,
    #[command(flatten)]
    tenant: TenantArgs,
}

pub fn run(Command::Initial(args): Command) -> Result<Outcome, Error> {
    let mut accounts = args.tenant.accounts(InvoiceMode::Booked)?;
    if let Some(n) = args.rackbeat_requests_per_minute {
        accounts.rackbeat_per_minute = n;
    }
    let root = args.pack.root()?;
    let pack = load_pack(std::slice::from_ref(&root));
    if !pack.diagnostics.is_empty() {
        return Err(InvalidPack::new(&root, &pack, 0).into());
    }
    let dry_run = args.dry_run;
    super::runtime()?.block_on(async {
        let tenant = accounts.tenant()?;
        let options = Options {
            entities: args.entities,
            dry_run,
            restart: args.restart,
            concurrency: args.concurrency,
            progress: true,
        };
        let location = Location::from_arg_or_env(args.store.as_deref())?;
        let report = rbtx::with_store!(location.open().await?, |db| {
            rbtx::runtime::initial::run_on(
                db,
                pack,
                tenant,
                &options,
                &mut std::io::stdout().lock(),
            )
            .await?
        });
        // The table goes to stderr in a dry run, so stdout holds only the JSON lines.
        if dry_run {
            eprint!("\n{}", report.table());
        } else {
            print!("\n{}", report.table());
        }
        Ok(Outcome::clean_if(report.failed() == 0))
    })
}
