//! What a sandbox pair is started with: addresses, credentials, seed data and faults.

use std::net::SocketAddr;

use crate::faults::FaultConfig;

/// Credentials the sandboxes accept unless told otherwise (test values, not secrets).
pub const CONSUMER_TOKEN: &str = "sandbox-consumer-token";
pub const EMPLOYEE_TOKEN: &str = "sandbox-employee-token";
pub const RACKBEAT_TOKEN: &str = "sandbox-rackbeat-api-token";
/// The Rackbeat account id the sandbox sends in `Rackbeat-Account-Id`.
pub const RACKBEAT_ACCOUNT_ID: u64 = 12345;

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
    pub faults: FaultConfig,
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
            faults: FaultConfig::default(),
        }
    }
}
