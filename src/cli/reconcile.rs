//! `rbtx reconcile`: are both systems in step? Differences named, field by field; `--fix`
//! queues the syncs that repair them.

use rbtx::plan::load_pack;
use rbtx::runtime::reconcile::{Difference, Options, Report};
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
            Format::Human => print!("{}", human(&report)),
        }
        Ok(Outcome::clean_if(report.differences() == 0))
    })
}

/// The report as a bookkeeper reads it.
pub fn human(r: &Report) -> String {
    use std::fmt::Write;
    let last =
        rbtx::dates::parse_strict(&r.until).map_or(r.until.clone(), |d| rbtx::dates::format(d - 1));
    let mut out = format!(
        "tenant {}: documents from {} to {last}\n",
        r.tenant, r.since
    );
    for e in &r.entities {
        let _ = writeln!(
            out,
            "{:<20} {} in Rackbeat, {} in Tripletex, {} in step, {} different",
            e.entity,
            e.rackbeat,
            e.tripletex,
            e.in_step,
            e.differences.len()
        );
        for d in &e.differences {
            let _ = writeln!(out, "  {}", line(&e.entity, d));
        }
    }
    for p in &r.periods {
        let _ = writeln!(
            out,
            "{}: Rackbeat {} documents, total {}; Tripletex {} documents, total {}{}",
            p.entities.join(" + "),
            p.rackbeat.documents,
            p.rackbeat.total,
            p.tripletex.documents,
            p.tripletex.total,
            if p.rackbeat.total == p.tripletex.total {
                " (equal)"
            } else {
                " (NOT equal)"
            }
        );
    }
    match r.differences() {
        0 => out.push_str("In step.\n"),
        n => {
            let _ = writeln!(out, "{n} difference{}.", if n == 1 { "" } else { "s" });
        }
    }
    if let Some(f) = &r.fixed {
        let _ = writeln!(
            out,
            "--fix queued {} sync{}{}",
            f.queued.len(),
            if f.queued.len() == 1 { "" } else { "s" },
            if f.queued.is_empty() {
                ".".to_string()
            } else {
                format!(": {}", f.queued.join(", "))
            }
        );
        for l in &f.failed {
            let _ = writeln!(out, "  failed: {l} (see rbtx dlq list)");
        }
        for l in &f.left {
            let _ = writeln!(out, "  not repaired: {l}");
        }
    }
    out
}

fn line(entity: &str, d: &Difference) -> String {
    match d {
        Difference::Missing { key, reason: None } => {
            format!("missing    {entity} {key}: not in Tripletex")
        }
        Difference::Missing {
            key,
            reason: Some(r),
        } => format!("missing    {entity} {key}: not in Tripletex: {r}"),
        Difference::Unbound {
            tripletex_id,
            natural_key,
            key: Some(k),
        } => format!(
            "unbound    Tripletex {tripletex_id} ({natural_key}) is {entity} {k}, but not bound to it"
        ),
        Difference::Unbound {
            tripletex_id,
            natural_key,
            key: None,
        } => format!(
            "unbound    Tripletex {tripletex_id} ({natural_key}) is bound to nothing, and no Rackbeat {entity} has its key"
        ),
        Difference::Gone { key, tripletex_id } => format!(
            "gone       {entity} {key} is bound to Tripletex {tripletex_id}, which is not there"
        ),
        Difference::Different {
            key,
            tripletex_id,
            fields,
        } => {
            let f: Vec<String> = fields
                .iter()
                .map(|f| {
                    format!(
                        "{}: Rackbeat {}, Tripletex {}",
                        f.field, f.rackbeat, f.tripletex
                    )
                })
                .collect();
            format!(
                "different  {entity} {key} (Tripletex {tripletex_id}): {}",
                f.join("; ")
            )
        }
        Difference::Total {
            key,
            tripletex_id,
            rackbeat,
            tripletex,
        } => format!(
            "total      {entity} {key} (Tripletex {tripletex_id}): Rackbeat {rackbeat}, Tripletex {tripletex}"
        ),
        Difference::Duplicate {
            natural_key,
            tripletex_ids,
        } => {
            let ids: Vec<String> = tripletex_ids.iter().map(ToString::to_string).collect();
            format!(
                "duplicate  {entity} {natural_key} is in Tripletex {} times: {}",
                ids.len(),
                ids.join(", ")
            )
        }
    }
}
