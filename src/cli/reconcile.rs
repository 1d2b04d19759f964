//! `rbtx reconcile`: are both systems in step? Differences named, field by field; `--fix`
//! queues the syncs that repair them.

use rbtx::plan::load_pack;
use rbtx::runtime::reconcile::Options;
use rbtx::runtime::run::InvalidPack;
use rbtx::store::Location;

use super::{Error, Outcome, PackArg, TenantArgs};

#[derive(clap::Args)]
#[command(after_help = super::env_help::ACCOUNTS_AND_STORE)]
pub struct Args {
    /// Only these entities (comma-separated), e.g. `product,invoice`.
    #[arg(long, value_delimiter = ',')]
    entities: Vec<String>,
    /// The first day of the documents' period (default: 1 January this year).
    #[arg(long, value_parser = date)]
    since: Option<String>,
    /// The last day of the period (default: today).
    #[arg(long, value_parser = date)]
    until: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Queue a sync for each difference a sync repairs (never a second invoice), sync them, and
    /// say what was queued and what is left.
    #[arg(long)]
    fix: bool,
    #[command(flatten)]
    pack: PackArg,
    /// The store `rbtx run` uses: a SQLite file or a postgres:// URL (default: RBTX_STORE_URL,
    /// else rbtx.sqlite).
    #[arg(long)]
    store: Option<String>,
    #[command(flatten)]
    tenant: TenantArgs,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Human,
    Json,
}

fn date(s: &str) -> Result<String, String> {
    rbtx::dates::parse_strict(s)
        .map(rbtx::dates::format)
        .ok_or_else(|| format!("`{s}` is not a date; write YYYY-MM-DD"))
}

pub fn run(args: Args) -> Result<Outcome, Error> {
    let accounts = args
        .tenant
        .accounts(rbtx::runtime::tenant::InvoiceMode::Booked)?;
    let root = args.pack.root()?;
    let pack = load_pack(std::slice::from_ref(&root));
    if !pack.diagnostics.is_empty() {
        return Err(InvalidPack::new(&root, &pack, 0).into());
    }
    let today = rbtx::dates::today_in_denmark();
    let since = args.since.unwrap_or_else(|| {
        let (y, _, _) = rbtx::dates::civil_from_days(today);
        format!("{y:04}-01-01")
    });
    let until = args.until.unwrap_or_else(|| rbtx::dates::format(today));
    if until < since {
        return Err(Error::Unreadable(format!(
            "--until {until} is before --since {since}"
        )));
    }
    // `--until` names the last day; the lists take the day after it.
    let until = rbtx::dates::format(rbtx::dates::parse_strict(&until).unwrap_or(today) + 1);
    let options = Options {
        entities: args.entities,
        since,
        until,
        fix: args.fix,
        progress: true,
    };
    super::runtime()?.block_on(async {
        let tenant = accounts.tenant()?;
        let location = Location::from_arg_or_env(args.store.as_deref())?;
        let report = rbtx::with_store!(location.open().await?, |db| {
            rbtx::runtime::reconcile::run_on(
                std::sync::Arc::new(db),
                std::sync::Arc::new(pack),
                tenant,
                &options,
            )
            .await?
        });
        match args.format {
            Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            Format::Human => print!("{}", report.human()),
        }
        Ok(Outcome::clean_if(report.differences() == 0))
    })
}
