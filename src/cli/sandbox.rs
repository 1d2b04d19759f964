//! `rbtx sandbox`: serve local sandboxes of the Tripletex and Rackbeat APIs until interrupted.

use super::{Error, Outcome};

#[derive(clap::Args)]
pub struct Args {
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
    /// Tripletex requests allowed per minute (0: not enforced; the rate headers are sent anyway).
    #[arg(long, default_value_t = rbtx::sandbox::TRIPLETEX_RATE_LIMIT)]
    tripletex_rate_limit: u32,
    /// Rackbeat requests allowed per token per minute, a fixed window (0: unlimited).
    #[arg(long, default_value_t = rbtx::sandbox::RACKBEAT_RATE_LIMIT)]
    rackbeat_rate_limit: u32,
    /// Fault injection, as JSON (see `FaultConfig`), e.g. '{"rate_429":0.1,"seed":3}'.
    #[arg(long)]
    faults: Option<String>,
}

pub fn run(args: Args) -> Result<Outcome, Error> {
    let faults = match args.faults {
        Some(f) => serde_json::from_str(&f).map_err(Error::Faults)?,
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
        tripletex_rate_limit: (args.tripletex_rate_limit > 0).then_some(args.tripletex_rate_limit),
        rackbeat_rate_limit: args.rackbeat_rate_limit,
        faults,
        ..Default::default()
    };
    super::runtime()?.block_on(async {
        let sandboxes = rbtx::sandbox::start(config.clone())
            .await
            .map_err(Error::Sandboxes)?;
        for line in sandboxes.for_clients(&config) {
            rbtx::runtime::announce(&line);
        }
        tokio::signal::ctrl_c().await.map_err(Error::Signal)?;
        Ok(Outcome::Clean)
    })
}
