//! Faithful local simulations of the Rackbeat and Tripletex APIs, on 127.0.0.1, for tests, the
//! demo and benchmarks. This is the only code that pretends to be a server.
//!
//! Both sandboxes are built the same way, from the same parts: `http.rs` (the gate every request
//! passes and the routing), `store.rs` (the tables and writes), `resources.rs`, `seed.rs`,
//! `time.rs` and `error.rs`; they share the listener whose connections a fault can cut
//! (`listener.rs`), the request log (`request_log.rs`), the request counts by route
//! (`request_counts.rs`) and the fault injection (`faults.rs`). Beside them, `mail.rs` is an SMTP
//! server that keeps what it is sent, where alert e-mails are caught.

mod config;
pub mod faults;
mod listener;
pub mod mail;
pub mod rackbeat;
mod request_counts;
mod request_log;
mod support;
pub mod tripletex;

pub use config::{
    CONSUMER_TOKEN, DataSize, EMPLOYEE_TOKEN, RACKBEAT_ACCOUNT_ID, RACKBEAT_RATE_LIMIT,
    RACKBEAT_TOKEN, SandboxConfig, TRIPLETEX_RATE_LIMIT,
};
pub use request_counts::RequestCounts;
pub use request_log::RequestRecord;

/// Both sandboxes, running.
pub struct Sandboxes {
    pub tripletex: tripletex::Handle,
    pub rackbeat: rackbeat::Handle,
}

impl Sandboxes {
    /// What a client needs to reach both, one `name: value` per line: how `rbtx sandbox` and
    /// `rbtx run --sandbox` say it.
    pub fn for_clients(&self, config: &SandboxConfig) -> Vec<String> {
        vec![
            format!("tripletex: {}", self.tripletex.base_url),
            format!("rackbeat: {}", self.rackbeat.base_url),
            format!("tripletex consumer token: {}", config.consumer_token),
            format!("tripletex employee token: {}", config.employee_token),
            format!("rackbeat api token: {}", config.rackbeat_token),
            format!("rackbeat account id: {}", config.rackbeat_account_id),
        ]
    }
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
