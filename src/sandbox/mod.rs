//! Faithful local simulations of the Rackbeat and Tripletex APIs, on 127.0.0.1, for tests, the
//! demo and benchmarks. This is the only code that pretends to be a server.

pub mod faults;
pub mod rackbeat;
pub mod tripletex;

use std::net::SocketAddr;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Value;

/// Credentials the sandboxes accept unless told otherwise (test values, not secrets).
pub const CONSUMER_TOKEN: &str = "sandbox-consumer-token";
pub const EMPLOYEE_TOKEN: &str = "sandbox-employee-token";
pub const RACKBEAT_TOKEN: &str = "sandbox-rackbeat-api-token";
/// The Rackbeat account id the sandbox sends in `Rackbeat-Account-Id`.
pub const RACKBEAT_ACCOUNT_ID: u64 = 12345;

/// A JSON number as an exact decimal (floats through their shortest form, so 99.995 stays
/// 99.995 rather than the binary 99.99499…).
pub(crate) fn to_decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                return Some(Decimal::from(i));
            }
            let s = n.to_string();
            Decimal::from_str(&s)
                .or_else(|_| Decimal::from_scientific(&s))
                .ok()
        }
        _ => None,
    }
}

/// How much seed data to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DataSize {
    /// A handful of records of each kind.
    #[default]
    Small,
    /// Thousands of records (paging, benchmarks).
    Large,
}

/// Settings shared by both sandboxes.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub seed: u64,
    pub data: DataSize,
    /// Tripletex customers to seed instead of `data`'s number (initial-sync benchmarks).
    pub customers: Option<usize>,
    pub tripletex_addr: SocketAddr,
    pub rackbeat_addr: SocketAddr,
    pub consumer_token: String,
    pub employee_token: String,
    pub rackbeat_token: String,
    /// The Rackbeat account's id (`GET /self`, `Rackbeat-Account-Id` on deliveries); give two
    /// sandboxes different ids to serve them as two tenants.
    pub rackbeat_account_id: u64,
    /// Tripletex requests allowed per rate-limit period (`None`: unlimited).
    pub tripletex_rate_limit: Option<u32>,
    /// Length of the Tripletex rate-limit period.
    pub tripletex_rate_period_seconds: u64,
    pub faults: faults::FaultConfig,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            seed: 1,
            data: DataSize::Small,
            customers: None,
            tripletex_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            rackbeat_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            consumer_token: CONSUMER_TOKEN.into(),
            employee_token: EMPLOYEE_TOKEN.into(),
            rackbeat_token: RACKBEAT_TOKEN.into(),
            rackbeat_account_id: RACKBEAT_ACCOUNT_ID,
            tripletex_rate_limit: None,
            tripletex_rate_period_seconds: 60,
            faults: faults::FaultConfig::default(),
        }
    }
}

/// Both sandboxes, running.
pub struct Sandboxes {
    pub tripletex: tripletex::Handle,
    pub rackbeat: rackbeat::Handle,
}

/// Binds both sandboxes and starts serving them on the current tokio runtime.
pub async fn start(config: SandboxConfig) -> std::io::Result<Sandboxes> {
    let tripletex = tripletex::start(&config).await?;
    let rackbeat = rackbeat::start(&config).await?;
    Ok(Sandboxes {
        tripletex,
        rackbeat,
    })
}
