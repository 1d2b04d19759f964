//! The Tripletex sandbox (placeholder until implemented).

use std::net::SocketAddr;

use super::SandboxConfig;

/// A running Tripletex sandbox.
#[derive(Debug, Clone)]
pub struct Handle {
    pub addr: SocketAddr,
    /// Base URL ending in `/v2`.
    pub base_url: String,
}

pub async fn start(config: &SandboxConfig) -> std::io::Result<Handle> {
    let listener = tokio::net::TcpListener::bind(config.tripletex_addr).await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Handle { addr, base_url: format!("http://{addr}/v2") })
}
