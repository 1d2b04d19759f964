//! Sending a digest: an e-mail over SMTP (lettre, rustls) and a JSON POST to a webhook, each
//! retried with backoff a few times, then logged as an error and dropped. Nothing here logs a URL.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::config::SmtpTarget;
use crate::connectors::alert_hook::AlertHook;

/// How sending is retried: attempts after the first, and the delays between them.
#[derive(Debug, Clone, Copy)]
pub struct Retries {
    pub times: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for Retries {
    fn default() -> Self {
        Retries {
            times: 5,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
        }
    }
}

/// Runs `send` until it succeeds or the retries are used up; `true` when it was delivered.
pub async fn with_retries<F, Fut>(
    retries: Retries,
    tenant: &str,
    channel: &str,
    mut send: F,
) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(retries.min_delay)
        .with_max_delay(retries.max_delay)
        .with_max_times(retries.times)
        .with_jitter()
        .build();
    loop {
        match send().await {
            Ok(()) => {
                tracing::info!(tenant, channel, "Sent an alert digest.");
                return true;
            }
            Err(error) => match delays.next() {
                Some(d) => {
                    tracing::warn!(
                        tenant,
                        channel,
                        error,
                        retry_in_ms = d.as_millis() as u64,
                        "Sending an alert failed; retrying."
                    );
                    tokio::time::sleep(d).await;
                }
                None => {
                    tracing::error!(
                        tenant,
                        channel,
                        error,
                        "Sending an alert kept failing; it is dropped."
                    );
                    return false;
                }
            },
        }
    }
}

/// Sends one plain-text e-mail to the target's recipients.
pub async fn email(target: &SmtpTarget, subject: &str, text: &str) -> Result<(), String> {
    let mailbox = |a: &str| {
        a.parse::<Mailbox>()
            .map_err(|e| format!("the address `{a}`: {e}"))
    };
    let mut message = Message::builder()
        .from(mailbox(&target.from)?)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN);
    for to in &target.to {
        message = message.to(mailbox(to)?);
    }
    let message = message
        .body(text.to_string())
        .map_err(|e| format!("building the e-mail: {e}"))?;
    // lettre's errors name the server's answer, never the URL and its password.
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(target.url.expose())
        .map_err(|e| format!("the SMTP URL: {e}"))?
        .timeout(Some(Duration::from_secs(30)))
        .build();
    transport
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| format!("SMTP {}: {e}", target.host()))
}

/// Posts `body` to the webhook.
pub async fn webhook(hook: &AlertHook, body: &serde_json::Value) -> Result<(), String> {
    hook.post(body).await.map_err(|e| e.to_string())
}
