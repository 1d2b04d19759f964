//! The command line: parse arguments, call the library, map outcomes to exit codes
//! (0 clean, 1 problems found, 2 could not run).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use rbtx::engine::{FixtureResolver, Outcome, PlaceholderResolver};
use rbtx::plan::load_pack;
use rbtx::runtime::worker::INITIAL_SYNC_EVENT;
use rbtx::spec::diagnostic::{Format, render, sort};
use rbtx::spec::{Document, Fixtures};
use rbtx::store::sqlite::SqliteStore;
use rbtx::store::{Location, Store};

#[derive(Parser)]
#[command(
    name = "rbtx",
    version,
    about = "Keeps Rackbeat and Tripletex in sync, driven by YAML mappings"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines on stderr as text for people, or as JSON objects for a log collector. The level
    /// comes from RUST_LOG (default: info for `run` and `sandbox`, warnings otherwise).
    #[arg(long, value_enum, global = true, env = "RBTX_LOG_FORMAT", default_value_t = LogFormat::Human)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

fn init_logs(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests calling in-process) keeps the first subscriber.
    let _ = match format {
        LogFormat::Human => logs.try_init(),
        LogFormat::Json => logs.json().flatten_event(true).try_init(),
    };
}

#[derive(Subcommand)]
enum Command {
    /// Compile mapping files the way start-up does and report every problem.
    Validate {
        /// Mapping files or folders.
        #[arg(default_value = "mappings")]
        paths: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Print the JSON Schema of mapping files (or of mapping test files).
    Schema {
        #[arg(value_enum, default_value_t = SchemaKind::Mapping)]
        kind: SchemaKind,
    },
    /// Run the mapping unit tests (`*.test.yaml`) and show a diff for each failure.
    Test {
        /// Test files or folders.
        #[arg(default_value = "mappings")]
        paths: Vec<PathBuf>,
        /// The mapping pack the tests run against.
        #[arg(long, default_value = "mappings")]
        pack: PathBuf,
        /// Rewrite `expect_file` expectations from what the mappings produce.
        #[arg(long)]
        bless: bool,
    },
    /// Keep Tripletex in sync with Rackbeat in real time: webhook intake and workers on an embedded
    /// SQLite store, or on a PostgreSQL database shared by several processes. Accounts come from the environment (RBTX_TRIPLETEX_CONSUMER_TOKEN,
    /// RBTX_TRIPLETEX_EMPLOYEE_TOKEN, RBTX_RACKBEAT_TOKEN, RBTX_RACKBEAT_ACCOUNT_ID,
    /// RBTX_RACKBEAT_WEBHOOK_TOKENS; each also as *_FILE). With none of them set, or with --sandbox,
    /// both APIs are simulated in-process.
    Run {
        /// Serve both API sandboxes in-process and sync against them (no accounts needed).
        #[arg(long)]
        sandbox: bool,
        /// The mapping pack.
        #[arg(long, default_value = "mappings")]
        pack: PathBuf,
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
    },
    /// Show the whole product on this machine with no accounts: two simulated company pairs, the
    /// initial sync, real-time changes arriving in Tripletex, a dead letter fixed and replayed.
    Demo {
        /// The mapping pack.
        #[arg(long, default_value = "mappings")]
        pack: PathBuf,
        /// Keep the demo's store (SQLite) afterwards, to look at with `rbtx dlq --store`.
        #[arg(long)]
        keep: bool,
    },
    /// Check the setup (accounts from the environment, or one tenant of --tenants): mappings, store,
    /// credentials and their environment, the invoice bank account, the VAT types and other lookups
    /// the mappings need, and the Rackbeat webhook subscriptions. Exit 1 when something blocks sync.
    Doctor {
        /// The mapping pack.
        #[arg(long, default_value = "mappings")]
        pack: PathBuf,
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
    },
    /// One-off syncs.
    Sync {
        #[command(subcommand)]
        command: SyncCommand,
    },
    /// Rackbeat webhook subscriptions.
    Webhooks {
        #[command(subcommand)]
        command: WebhooksCommand,
    },
    /// The dead-letter store: events that failed for good, with the reason, mapping and field.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
        /// The store `rbtx run` uses: a SQLite file or a postgres:// URL (default: RBTX_STORE_URL,
        /// else rbtx.sqlite).
        #[arg(long, global = true)]
        store: Option<String>,
    },
    /// Serve local sandboxes of the Tripletex and Rackbeat APIs until interrupted.
    Sandbox(SandboxArgs),
    /// Print the request a mapping would send for one record; sends nothing.
    Preview {
        /// The mapping file.
        mapping: PathBuf,
        /// The source record as JSON (a `source.get` response or one listed record).
        #[arg(long)]
        input: PathBuf,
        /// The existing target record, as JSON, to preview an update.
        #[arg(long)]
        target: Option<PathBuf>,
        /// Fixtures (YAML: `refs:` and `lookups:`) for references and API lookups; without them
        /// placeholders are shown.
        #[arg(long)]
        fixtures: Option<PathBuf>,
        /// The mapping pack the mapping belongs to.
        #[arg(long, default_value = "mappings")]
        pack: PathBuf,
    },
}

#[derive(Subcommand)]
enum SyncCommand {
    /// Pull customers, suppliers, products, payment terms and employees from Tripletex into
    /// Rackbeat (accounts from the environment, or one tenant of --tenants). Resumes an interrupted sync;
    /// running it again changes nothing that is already in step.
    Initial {
        /// Only these entities (comma-separated), plus the ones they refer to.
        #[arg(long, value_delimiter = ',')]
        entities: Vec<String>,
        /// Print the requests as JSON lines instead of sending them.
        #[arg(long)]
        dry_run: bool,
        /// Start over instead of resuming an interrupted sync.
        #[arg(long)]
        restart: bool,
        /// The mapping pack.
        #[arg(long, default_value = "mappings")]
        pack: PathBuf,
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
    },
}

#[derive(Subcommand)]
enum WebhooksCommand {
    /// Subscribe the intake's public URL to every event the mappings need (account from
    /// RBTX_RACKBEAT_TOKEN and RBTX_RACKBEAT_URL, or one tenant of --tenants) and keep the tokens
    /// in the store for `rbtx run`.
    Install {
        /// The URL Rackbeat delivers to, e.g. https://rbtx.example.com/webhooks/rackbeat.
        #[arg(long)]
        url: String,
        #[arg(long, default_value = "mappings")]
        pack: PathBuf,
        /// The store `rbtx run` uses: a SQLite file or a postgres:// URL (default: RBTX_STORE_URL,
        /// else rbtx.sqlite).
        #[arg(long)]
        store: Option<String>,
        #[command(flatten)]
        tenant: TenantArgs,
    },
}

/// Which company pair a one-off command works on: the environment's, or one of a tenants file.
#[derive(clap::Args)]
struct TenantArgs {
    /// A tenants file (see README); without it the accounts come from the environment.
    #[arg(long)]
    tenants: Option<PathBuf>,
    /// The tenant of the file (needed when it lists several).
    #[arg(long, requires = "tenants")]
    tenant: Option<String>,
}

impl TenantArgs {
    fn accounts(&self, invoice_mode: &str) -> Result<rbtx::runtime::accounts::Accounts, String> {
        rbtx::runtime::accounts::choose(
            self.tenants.as_deref(),
            self.tenant.as_deref(),
            invoice_mode,
        )
    }
}

#[derive(Subcommand)]
enum DlqCommand {
    /// One line per dead letter.
    List,
    /// One dead letter in full, with its payload.
    Show { id: i64 },
    /// Put dead letters back in the queue (after fixing the mapping or the data).
    Replay {
        /// The dead letter to replay.
        id: Option<i64>,
        /// Replay every dead letter.
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
}

#[derive(clap::Args)]
struct SandboxArgs {
    /// Seed for the generated data and the fault generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How much seed data to create.
    #[arg(long, value_enum, default_value_t = rbtx::sandbox::DataSize::Small)]
    data: rbtx::sandbox::DataSize,
    /// Tripletex customers to seed, instead of the number `--data` implies.
    #[arg(long)]
    customers: Option<usize>,
    /// Address of the Tripletex sandbox (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8480")]
    tripletex_addr: std::net::SocketAddr,
    /// Address of the Rackbeat sandbox (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8481")]
    rackbeat_addr: std::net::SocketAddr,
    /// Tripletex consumer token the sandbox accepts.
    #[arg(long, default_value = rbtx::sandbox::CONSUMER_TOKEN)]
    consumer_token: String,
    /// Tripletex employee token the sandbox accepts.
    #[arg(long, default_value = rbtx::sandbox::EMPLOYEE_TOKEN)]
    employee_token: String,
    /// Rackbeat API token the sandbox accepts.
    #[arg(long, default_value = rbtx::sandbox::RACKBEAT_TOKEN)]
    rackbeat_token: String,
    /// Tripletex requests allowed per rate-limit period (unlimited when absent).
    #[arg(long)]
    tripletex_rate_limit: Option<u32>,
    /// Fault injection, as JSON (see `FaultConfig`), e.g. '{"rate_429":0.1,"seed":3}'.
    #[arg(long)]
    faults: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum SchemaKind {
    Mapping,
    Test,
    /// The tenants file of `rbtx run --tenants`.
    Tenants,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    let level = match cli.command {
        Command::Run { .. } | Command::Sandbox(_) => "info",
        // The demo tells its own story on stdout.
        Command::Demo { .. } => "off",
        _ => "warn",
    };
    init_logs(cli.log_format, level);
    match cli.command {
        Command::Validate { paths, format } => {
            let pack = load_pack(&paths);
            let mut diags = pack.diagnostics;
            sort(&mut diags);
            if diags
                .iter()
                .any(|d| d.code == rbtx::spec::Code::Io && d.text.is_none())
                && pack.plans.is_empty()
            {
                return Err(diags
                    .iter()
                    .map(|d| d.message.clone())
                    .collect::<Vec<_>>()
                    .join("; "));
            }
            print!("{}", render(&diags, format));
            if format == Format::Human {
                if diags.is_empty() {
                    println!("{} mappings valid", pack.plans.len());
                } else {
                    println!(
                        "{} problem{} found",
                        diags.len(),
                        if diags.len() == 1 { "" } else { "s" }
                    );
                }
            }
            Ok(if diags.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Schema { kind } => {
            let schema = match kind {
                SchemaKind::Mapping => rbtx::spec::mapping_schema(),
                SchemaKind::Test => rbtx::spec::test_schema(),
                SchemaKind::Tenants => rbtx::runtime::accounts::tenants_schema(),
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).map_err(|e| e.to_string())?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Test { paths, pack, bless } => {
            let pack = load_pack(&[pack]);
            let report = rbtx::testing::run(&paths, &pack, bless);
            let mut diags = pack.diagnostics;
            diags.extend(report.diagnostics.iter().cloned());
            sort(&mut diags);
            print!("{}", render(&diags, Format::Human));
            print!("{}", report.render());
            Ok(if report.failed() == 0 && diags.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Sandbox(args) => sandbox(args),
        Command::Dlq { command, store } => {
            dlq(command, Location::from_arg_or_env(store.as_deref())?)
        }
        Command::Sync { command } => sync_initial(command),
        Command::Demo { pack, keep } => {
            let dir = rbtx::runtime::demo::scratch_dir()?;
            let runtime = tokio::runtime::Runtime::new()
                .map_err(|e| format!("cannot start the runtime: {e}"))?;
            let outcome = runtime.block_on(rbtx::runtime::demo::demo(&pack, &dir));
            if keep {
                println!(
                    "  The store is kept at {}",
                    dir.join("rbtx.sqlite").display()
                );
            } else {
                std::fs::remove_dir_all(&dir).ok();
            }
            Ok(if outcome?.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Doctor {
            pack,
            store,
            public_url,
            invoice_mode,
            tenant,
        } => doctor(
            pack,
            Location::from_arg_or_env(store.as_deref())?,
            public_url,
            tenant.accounts(&invoice_mode)?,
        ),
        Command::Webhooks {
            command:
                WebhooksCommand::Install {
                    url,
                    pack,
                    store,
                    tenant,
                },
        } => {
            let store = Location::from_arg_or_env(store.as_deref())?;
            let (id, rb) = match &tenant.tenants {
                Some(_) => {
                    let a = tenant.accounts("booked")?;
                    (a.id.clone(), a.rackbeat()?)
                }
                None => (
                    "default".to_string(),
                    rbtx::runtime::accounts::Accounts::rackbeat_from_env()?,
                ),
            };
            let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
            for line in runtime.block_on(rbtx::runtime::run::install_webhooks(
                &pack, &store, &id, &rb, &url,
            ))? {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            sandbox,
            pack,
            store,
            listen,
            public_url,
            invoice_mode,
            lease_seconds,
            catch_up_seconds,
            workers,
            tenants,
            watch,
        } => {
            use rbtx::runtime::run::TenantSource;
            let tenants = match tenants {
                Some(file) => TenantSource::File(file),
                // No credentials at all: the embedded default runs against local sandboxes.
                None if sandbox || !rbtx::runtime::accounts::Accounts::any_in_env() => {
                    if !sandbox {
                        tracing::info!(
                            "No Tripletex or Rackbeat credentials in the environment; running against local sandboxes."
                        );
                    }
                    TenantSource::Sandbox { invoice_mode }
                }
                None => TenantSource::Env { invoice_mode },
            };
            let config = rbtx::runtime::run::RunConfig {
                pack,
                store: Location::from_arg_or_env(store.as_deref())?,
                listen,
                public_url,
                tenants,
                lease_ms: lease_seconds.saturating_mul(1000),
                catch_up_seconds,
                workers,
                watch,
            };
            let runtime = tokio::runtime::Runtime::new()
                .map_err(|e| format!("cannot start the runtime: {e}"))?;
            runtime.block_on(rbtx::runtime::run::run(
                config,
                |url| rbtx::runtime::announce(&format!("webhooks: {url}")),
                stop_requested(),
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Preview {
            mapping,
            input,
            target,
            fixtures,
            pack,
        } => {
            let mut roots = vec![pack];
            if !roots.iter().any(|r| mapping.starts_with(r)) {
                roots = vec![mapping.clone()];
            }
            let pack = load_pack(&roots);
            if !pack.diagnostics.is_empty() {
                eprint!("{}", render(&pack.diagnostics, Format::Human));
                return Ok(ExitCode::from(1));
            }
            let want = std::fs::canonicalize(&mapping)
                .map_err(|e| format!("{}: {e}", mapping.display()))?;
            let plan = pack
                .plans
                .iter()
                .find(|p| std::fs::canonicalize(&p.file).ok().as_ref() == Some(&want))
                .ok_or_else(|| format!("{} is not a mapping in the pack", mapping.display()))?;
            let raw = read_json(&input)?;
            let source = plan.select(&raw).cloned().unwrap_or(raw);
            let target = target.map(|t| read_json(&t)).transpose()?;
            let fixtures = match fixtures {
                Some(f) => {
                    let doc =
                        Document::load(&f).map_err(|d| rbtx::spec::diagnostic::render_human(&d))?;
                    let fx: Fixtures = serde_json::from_value(doc.value).map_err(|e| {
                        format!(
                            "{}: not fixtures (`refs:` and `lookups:`): {e}",
                            f.display()
                        )
                    })?;
                    FixtureResolver::layered(&fx, &Fixtures::default())
                }
                None => FixtureResolver::default(),
            };
            let resolver = Arc::new(PlaceholderResolver { fixtures });
            match plan.apply(&source, target.as_ref(), resolver) {
                Ok(applied) => {
                    let out = match applied.outcome {
                        Outcome::Write(r) => {
                            serde_json::json!({"key": applied.key, "requests": [r]})
                        }
                        Outcome::Skip { reason } => {
                            serde_json::json!({"key": applied.key, "skipped": reason, "requests": []})
                        }
                        Outcome::Keep { .. } => {
                            serde_json::json!({"key": applied.key, "kept": "the target record exists and this mapping has no update", "requests": []})
                        }
                    };
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("error: {}: {e}", input.display());
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}

fn doctor(
    pack_path: PathBuf,
    store: Location,
    public_url: Option<String>,
    accounts: rbtx::runtime::accounts::Accounts,
) -> Result<ExitCode, String> {
    let pack = load_pack(std::slice::from_ref(&pack_path));
    let runtime =
        tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let tenant = accounts.tenant()?;
        let name = store.to_string();
        let pack_name = pack_path.display().to_string();
        let setup = rbtx::doctor::Setup::<SqliteStore> {
            pack: &pack,
            pack_path: &pack_name,
            store: None,
            store_name: &name,
            tenant: &tenant,
            public_url: public_url.as_deref(),
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
        Ok(if report.blocked() {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    })
}

fn sync_initial(command: SyncCommand) -> Result<ExitCode, String> {
    let SyncCommand::Initial {
        entities,
        dry_run,
        restart,
        pack,
        store,
        concurrency,
        rackbeat_requests_per_minute,
        tenant,
    } = command;
    let mut accounts = tenant.accounts("booked")?;
    if let Some(n) = rackbeat_requests_per_minute {
        accounts.rackbeat_per_minute = n;
    }
    let pack_path = pack;
    let pack = load_pack(std::slice::from_ref(&pack_path));
    if !pack.diagnostics.is_empty() {
        return Err(format!(
            "the mapping pack has {} problem(s); run `rbtx validate {}`",
            pack.diagnostics.len(),
            pack_path.display()
        ));
    }
    let runtime =
        tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let tenant = accounts.tenant()?;
        let options = rbtx::runtime::initial::Options {
            entities,
            dry_run,
            restart,
            concurrency,
            progress: true,
        };
        let location = Location::from_arg_or_env(store.as_deref())?;
        let report = rbtx::with_store!(location.open().await?, |db| initial_sync_on(
            db, pack, tenant, &options
        )
        .await?);
        // The table goes to stderr in a dry run, so stdout holds only the JSON lines.
        if dry_run {
            eprint!("\n{}", report.table());
        } else {
            print!("\n{}", report.table());
        }
        Ok(if report.failed() == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}

async fn initial_sync_on<S: Store>(
    db: S,
    pack: rbtx::plan::Pack,
    tenant: rbtx::runtime::worker::Tenant,
    options: &rbtx::runtime::initial::Options,
) -> Result<rbtx::runtime::initial::Report, String> {
    db.migrate()
        .await
        .map_err(|e| format!("migrating the store: {e}"))?;
    let mut worker = rbtx::runtime::worker::Worker::new(
        Arc::new(db),
        Arc::new(pack),
        tenant,
        format!("sync-initial-{}", std::process::id()),
    );
    worker.dry_run = options.dry_run;
    rbtx::runtime::initial::run(&worker, options, &mut std::io::stdout().lock()).await
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

fn sandbox(args: SandboxArgs) -> Result<ExitCode, String> {
    let faults = match args.faults {
        Some(f) => serde_json::from_str(&f).map_err(|e| format!("--faults: {e}"))?,
        None => rbtx::sandbox::faults::FaultConfig::default(),
    };
    let config = rbtx::sandbox::SandboxConfig {
        seed: args.seed,
        data: args.data,
        customers: args.customers,
        tripletex_addr: args.tripletex_addr,
        rackbeat_addr: args.rackbeat_addr,
        consumer_token: args.consumer_token,
        employee_token: args.employee_token,
        rackbeat_token: args.rackbeat_token,
        tripletex_rate_limit: args.tripletex_rate_limit,
        faults,
        ..Default::default()
    };
    let runtime =
        tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let sandboxes = rbtx::sandbox::start(config.clone())
            .await
            .map_err(|e| format!("cannot start the sandboxes: {e}"))?;
        for line in [
            format!("tripletex: {}", sandboxes.tripletex.base_url),
            format!("rackbeat: {}", sandboxes.rackbeat.base_url),
            format!("tripletex consumer token: {}", config.consumer_token),
            format!("tripletex employee token: {}", config.employee_token),
            format!("rackbeat api token: {}", config.rackbeat_token),
        ] {
            rbtx::runtime::announce(&line);
        }
        tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
        Ok(ExitCode::SUCCESS)
    })
}

fn dlq(command: DlqCommand, store: Location) -> Result<ExitCode, String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        // Opening would create an empty store; a mistyped path should say so instead.
        if let Location::Sqlite(path) = &store
            && !path.exists()
        {
            return Err(format!("{store} does not exist (use --store)"));
        }
        rbtx::with_store!(store.open().await?, |s| dlq_on(&s, command).await)
    })
}

async fn dlq_on<S: Store>(s: &S, command: DlqCommand) -> Result<ExitCode, String> {
    s.migrate().await.map_err(|e| e.to_string())?;
    match command {
        DlqCommand::List => {
            let letters = s.list_dead_letters().await.map_err(|e| e.to_string())?;
            for d in &letters {
                println!(
                    "{:>6}  {:<10} {:<18} {:<16} {}{}",
                    d.id,
                    d.event.tenant,
                    d.event.event,
                    d.event.key,
                    d.field
                        .as_ref()
                        .map(|f| format!("{f}: "))
                        .unwrap_or_default(),
                    d.reason
                );
            }
            println!(
                "{} dead letter{}",
                letters.len(),
                if letters.len() == 1 { "" } else { "s" }
            );
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Show { id } => match s.get_dead_letter(id).await.map_err(|e| e.to_string())? {
            Some(d) => {
                let out = serde_json::json!({
                    "id": d.id, "tenant": d.event.tenant, "event": d.event.event, "entity": d.event.entity,
                    "key": d.event.key, "attempts": d.event.attempts, "reason": d.reason,
                    "mapping": d.mapping, "field": d.field, "failed_at_ms": d.failed_at, "payload": d.event.payload,
                });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
                );
                Ok(ExitCode::SUCCESS)
            }
            None => Err(format!("no dead letter {id}")),
        },
        DlqCommand::Replay { id: Some(id), .. } => {
            if let Some(d) = s.get_dead_letter(id).await.map_err(|e| e.to_string())?
                && d.event.event == INITIAL_SYNC_EVENT
            {
                return Err(format!(
                    "dead letter {id} is a record the initial sync could not write: run `rbtx sync initial --entities {}` again; it retries it with the record read afresh",
                    d.event.entity
                ));
            }
            if s.replay(id).await.map_err(|e| e.to_string())? {
                println!("dead letter {id} is back in the queue");
                Ok(ExitCode::SUCCESS)
            } else {
                Err(format!("no dead letter {id}"))
            }
        }
        DlqCommand::Replay {
            id: None,
            all: true,
        } => {
            // Initial-sync failures are retried by the next `rbtx sync initial`, not the queue.
            let (mut n, mut left) = (0, 0);
            for d in s.list_dead_letters().await.map_err(|e| e.to_string())? {
                if d.event.event == INITIAL_SYNC_EVENT {
                    left += 1;
                } else if s.replay(d.id).await.map_err(|e| e.to_string())? {
                    n += 1;
                }
            }
            println!(
                "{n} dead letter{} back in the queue",
                if n == 1 { "" } else { "s" }
            );
            if left > 0 {
                println!("{left} left for `rbtx sync initial` to retry");
            }
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Replay {
            id: None,
            all: false,
        } => Err("give a dead letter id, or --all".into()),
    }
}

fn read_json(path: &PathBuf) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not valid JSON: {e}", path.display()))
}
