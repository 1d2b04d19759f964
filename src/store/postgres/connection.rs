//! Connections to PostgreSQL: plain or TLS, the URL shown without its password, and the
//! connection that listens for other processes' enqueues.

use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::Socket;
use tokio_postgres::config::Host;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};

use super::sql::QUEUED_CHANNEL;
use crate::store::error::{StoreError, postgres_message as message};

/// How connections are made. `sslmode=require` in the URL gets TLS, with the server's certificate
/// verified against the platform's trusted roots (and its name against the host); without it, or
/// with `disable` or `prefer` (tokio-postgres's default), connections are plain TCP as before.
#[derive(Clone)]
pub(super) enum Tls {
    Plain,
    Verified(tokio_postgres_rustls::MakeRustlsConnect),
}

impl Tls {
    pub(super) fn for_config(config: &tokio_postgres::Config) -> Result<Tls, StoreError> {
        use rustls_platform_verifier::BuilderVerifierExt;
        if config.get_ssl_mode() != tokio_postgres::config::SslMode::Require {
            return Ok(Tls::Plain);
        }
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_platform_verifier())
            .map_err(|e| StoreError::Tls(e.to_string()))?
            .with_no_client_auth();
        Ok(Tls::Verified(
            tokio_postgres_rustls::MakeRustlsConnect::new(client),
        ))
    }
}

/// `postgres://user@host:port/dbname` of a connection URL, without the password (or a placeholder
/// when the URL does not parse).
pub fn redacted(url: &str) -> String {
    let Ok(config) = tokio_postgres::Config::from_str(url) else {
        return "postgres://[redacted]".into();
    };
    let user = config
        .get_user()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
        .map(|(host, port)| match host {
            Host::Tcp(h) => format!("{h}:{port}"),
            Host::Unix(p) => format!("{}:{port}", p.display()),
        })
        .collect();
    format!(
        "postgres://{user}{}/{}",
        hosts.join(","),
        config.get_dbname().unwrap_or_default()
    )
}

/// LISTENs on its own connection (reconnecting after a failure) and sends the tenant of every
/// other process's enqueue to `tx`, until `tx`'s receiver is gone.
pub(super) async fn listen_for_enqueues<T>(
    config: tokio_postgres::Config,
    tls: T,
    origin: String,
    tx: tokio::sync::mpsc::UnboundedSender<String>,
) where
    T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    while !tx.is_closed() {
        match config.connect(tls.clone()).await {
            Ok((client, mut connection)) => {
                let (notes, mut heard) = tokio::sync::mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    while let Some(message) =
                        std::future::poll_fn(|cx| connection.poll_message(cx)).await
                    {
                        match message {
                            Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                                if notes.send(n.payload().to_string()).is_err() {
                                    break;
                                }
                            }
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                });
                match client
                    .batch_execute(&format!("LISTEN {QUEUED_CHANNEL}"))
                    .await
                {
                    Ok(()) => {
                        while let Some(payload) = heard.recv().await {
                            let Some((from, tenant)) = payload.split_once(' ') else {
                                continue;
                            };
                            if from != origin && tx.send(tenant.to_string()).is_err() {
                                break;
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %message(&e), "Could not listen for other processes' events.")
                    }
                }
                driver.abort();
            }
            Err(e) => {
                tracing::warn!(error = %message(&e), "Could not listen for other processes' events; retrying.")
            }
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}
