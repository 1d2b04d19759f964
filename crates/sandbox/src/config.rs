//! What a sandbox pair is started with: addresses, credentials, seed data and faults.

use std::net::SocketAddr;

use crate::faults::FaultConfig;

/// Credentials the sandboxes accept unless told otherwise (test values, not secrets).
pub const CONSUMER_TOKEN: &str = "sandbox-consumer-token";
pub const EMPLOYEE_TOKEN: &str = "sandbox-employee-token";
pub const RACKBEAT_TOKEN: &str = "sandbox-rackbeat-api-token";
/// The Rackbeat account id the sandbox sends in `Rackbeat-Account-Id`.
pub const RACKBEAT_ACCOUNT_ID: u64 = 12345;
/// Rackbeat requests allowed per token per minute: what Rackbeat's own client throttles itself
/// to (`RACKBEAT_API_LIMIT`, 480), the only figure Rackbeat gives.
pub const RACKBEAT_RATE_LIMIT: u32 = 480;
/// Tripletex requests allowed per period unless told otherwise. Tripletex publishes no figure;
/// this is generous enough that no shipped test or benchmark meets it by accident (those that
/// measure the budget set their own).
pub const TRIPLETEX_RATE_LIMIT: u32 = 10_000;

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
    /// Rackbeat requests allowed per bearer token in a fixed one-minute window that starts at the
    /// window's first request; `0`: unlimited.
    pub rackbeat_rate_limit: u32,
    /// Tripletex requests allowed per rate-limit period (`None`: not enforced; the rate headers
    /// are sent all the same, with `u32::MAX` as the limit).
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
            rackbeat_rate_limit: RACKBEAT_RATE_LIMIT,
            tripletex_rate_limit: Some(TRIPLETEX_RATE_LIMIT),
            tripletex_rate_period_seconds: 60,
            faults: FaultConfig::default(),
        }
    }
}
