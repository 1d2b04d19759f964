//! The command line: parse arguments, run the subcommand (one file each under `cli/`), and map
//! how it went to an exit code: 0 clean, 1 problems found, 2 could not run.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use cli::Outcome;

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

#[derive(Subcommand)]
enum Command {
    /// Compile mapping files the way start-up does and report every problem.
    Validate(cli::validate::Args),
    /// Print the JSON Schema of mapping files (or of mapping test files).
    Schema(cli::schema::Args),
    /// Run the mapping unit tests (`*.test.yaml`) and show a diff for each failure.
    Test(cli::test::Args),
    /// Keep Tripletex in sync with Rackbeat in real time: webhook intake and workers on an embedded
    /// SQLite store, or on a PostgreSQL database shared by several processes. Accounts come from the environment (RBTX_TRIPLETEX_CONSUMER_TOKEN,
    /// RBTX_TRIPLETEX_EMPLOYEE_TOKEN, RBTX_RACKBEAT_TOKEN, RBTX_RACKBEAT_ACCOUNT_ID,
    /// RBTX_RACKBEAT_WEBHOOK_TOKENS; each also as *_FILE); without them it refuses to start. With
    /// --sandbox, both APIs are simulated in-process and what a client needs to reach them is printed.
    Run(cli::run::Args),
    /// Show the whole product on this machine with no accounts: two simulated company pairs, the
    /// initial sync, real-time changes arriving in Tripletex, a dead letter fixed and replayed.
    Demo(cli::demo::Args),
    /// Check the setup (accounts from the environment, or one tenant of --tenants): mappings, store,
    /// credentials and their environment, the invoice bank account, the VAT types and other lookups
    /// the mappings need, and the Rackbeat webhook subscriptions. Exit 1 when something blocks sync.
    Doctor(cli::doctor::Args),
    /// One-off syncs.
    Sync {
        #[command(subcommand)]
        command: cli::sync::Command,
    },
    /// Compare both systems (lists, not a request per record): records missing, bound to nothing or
    /// to a record that is gone, fields that differ, duplicates, and the period's invoice totals to
    /// the øre. Exit 1 when they differ; --fix queues the syncs that repair it.
    Reconcile(cli::reconcile::Args),
    /// Rackbeat webhook subscriptions.
    Webhooks {
        #[command(subcommand)]
        command: cli::webhooks::Command,
    },
    /// The dead-letter store: events that failed for good, with the reason, mapping and field.
    #[command(after_help = cli::env_help::STORE)]
    Dlq {
        #[command(subcommand)]
        command: cli::dlq::Command,
        /// The store `rbtx run` uses: a SQLite file or a postgres:// URL (default: RBTX_STORE_URL,
        /// else rbtx.sqlite).
        #[arg(long, global = true)]
        store: Option<String>,
    },
    /// Serve local sandboxes of the Tripletex and Rackbeat APIs until interrupted.
    Sandbox(cli::sandbox::Args),
    /// Print the request a mapping would send for one record; sends nothing.
    Preview(cli::preview::Args),
    /// Write the built-in mapping pack into a folder, to edit and run with --pack.
    Init(cli::init::Args),
    /// Print a shell completion script, e.g. `rbtx completions bash > ~/.local/share/bash-completion/completions/rbtx`.
    Completions { shell: clap_complete::Shell },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.command {
        Command::Run(_) | Command::Sandbox(_) => "info",
        // The demo tells its own story on stdout.
        Command::Demo(_) => "off",
        _ => "warn",
    };
    init_logs(cli.log_format, level);
    let ran = match cli.command {
        Command::Validate(args) => cli::validate::run(args),
        Command::Schema(args) => cli::schema::run(args),
        Command::Test(args) => cli::test::run(args),
        Command::Run(args) => cli::run::run(args),
        Command::Demo(args) => cli::demo::run(args),
        Command::Doctor(args) => cli::doctor::run(args),
        Command::Sync { command } => cli::sync::run(command),
        Command::Reconcile(args) => cli::reconcile::run(args),
        Command::Webhooks { command } => cli::webhooks::run(command),
        Command::Dlq { command, store } => cli::dlq::run(command, store),
        Command::Sandbox(args) => cli::sandbox::run(args),
        Command::Preview(args) => cli::preview::run(args),
        Command::Init(args) => cli::init::run(args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "rbtx", &mut std::io::stdout());
            Ok(Outcome::Clean)
        }
    };
    // The one place outcomes become exit codes.
    match ran {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Problems) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
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
