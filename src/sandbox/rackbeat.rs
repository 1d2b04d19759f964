//! The Rackbeat sandbox (placeholder until implemented).

use std::net::SocketAddr;

use super::SandboxConfig;

/// A running Rackbeat sandbox.
#[derive(Debug, Clone)]
pub struct Handle {
    pub addr: SocketAddr,
    /// Base URL ending in `/api`.
    pub base_url: String,
}

pub async fn start(config: &SandboxConfig) -> std::io::Result<Handle> {
    let listener = tokio::net::TcpListener::bind(config.rackbeat_addr).await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Handle { addr, base_url: format!("http://{addr}/api") })
}
