//! Where a tenant's alerts go. Settings come in parts ([`AlertSettings`]): the environment's
//! apply to every tenant, and a tenant's `alerts:` block in the tenants file overrides them field
//! by field (its own recipients on the shared SMTP server, say). [`AlertSettings::resolve`]
//! checks the result and makes the [`AlertConfig`] a tenant's alerts are sent by.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, Tokio1Executor};

use crate::connectors::alert_hook::url_host;
use crate::secret::Secret;

/// How long alerts of a tenant are gathered into one digest, unless set.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// How long the oldest queued event may wait before the queue is reported stale, unless set.
pub const DEFAULT_QUEUE_AGE: Duration = Duration::from_secs(15 * 60);
/// The sender of alert e-mails, unless set.
pub const DEFAULT_FROM: &str = "rbtx@localhost";

/// Alert settings as written, each part optional. Secrets stay [`Secret`]s, so `Debug` shows none.
#[derive(Debug, Clone, Default)]
pub struct AlertSettings {
    /// `smtp://host:25` (plain), `smtp://user:password@host:587?tls=required` (STARTTLS) or
    /// `smtps://user:password@host` (TLS); a password makes the whole URL a secret.
    pub smtp_url: Option<Secret>,
    pub email_from: Option<String>,
    pub email_to: Vec<String>,
    /// A URL that takes a JSON POST (Slack, Teams); a Slack webhook URL is a secret.
    pub webhook_url: Option<Secret>,
    pub interval: Option<Duration>,
    pub queue_age: Option<Duration>,
}

/// A tenant's alert channels, checked: at least one is set.
#[derive(Debug, Clone)]
pub struct AlertConfig {
    pub smtp: Option<SmtpTarget>,
    pub webhook_url: Option<Secret>,
    /// The digest window: the first alert opens it; at its end one digest per channel is sent.
    pub interval: Duration,
    /// The age of the oldest queued event at which the queue is reported stale.
    pub queue_age: Duration,
}

/// An SMTP server and who alert e-mails are from and to.
#[derive(Debug, Clone)]
pub struct SmtpTarget {
    /// As lettre's `AsyncSmtpTransport::from_url` takes it.
    pub url: Secret,
    pub from: String,
    pub to: Vec<String>,
}

/// Why alert settings cannot be used. Never holds a URL: they may hold passwords.
#[derive(Debug, thiserror::Error)]
pub enum AlertConfigError {
    /// A `*_FILE` variable names a file that cannot be read.
    #[error("{0}")]
    EnvFile(String),
    #[error("{var} is `{value}`: {problem}")]
    Duration {
        var: &'static str,
        value: String,
        problem: String,
    },
    #[error(
        "tenant {tenant}: the alert SMTP URL cannot be used ({problem}); write e.g. smtp://host:25, smtp://user:password@host:587?tls=required or smtps://user:password@host"
    )]
    SmtpUrl { tenant: String, problem: String },
    #[error("tenant {tenant}: the alert e-mail address `{address}` is not an address")]
    Address { tenant: String, address: String },
    #[error(
        "tenant {0}: an alert SMTP URL is set but no recipients (RBTX_ALERT_EMAIL_TO, or email_to in the tenants file)"
    )]
    NoRecipients(String),
    #[error(
        "tenant {0}: alert recipients are set but no SMTP URL (RBTX_ALERT_SMTP_URL, or smtp_url in the tenants file)"
    )]
    NoSmtpUrl(String),
    #[error("tenant {tenant}: {problem}")]
    WebhookUrl { tenant: String, problem: String },
}

impl AlertSettings {
    /// The settings of every tenant: `RBTX_ALERT_SMTP_URL` and `RBTX_ALERT_WEBHOOK_URL` (each also
    /// as `*_FILE`), `RBTX_ALERT_EMAIL_FROM`, `RBTX_ALERT_EMAIL_TO` (comma-separated),
    /// `RBTX_ALERT_INTERVAL` and `RBTX_ALERT_QUEUE_AGE` (`30s`, `5m`, …).
    pub fn from_env() -> Result<Self, AlertConfigError> {
        let secret = |var| {
            Secret::from_env(var)
                .map(|s| s.filter(|s| !s.expose().is_empty()))
                .map_err(AlertConfigError::EnvFile)
        };
        let text = |var| std::env::var(var).ok().filter(|v| !v.trim().is_empty());
        let duration = |var: &'static str| match text(var) {
            None => Ok(None),
            Some(value) => crate::dates::parse_interval(&value)
                .map(Some)
                .map_err(|problem| AlertConfigError::Duration {
                    var,
                    value,
                    problem,
                }),
        };
        Ok(AlertSettings {
            smtp_url: secret("RBTX_ALERT_SMTP_URL")?,
            email_from: text("RBTX_ALERT_EMAIL_FROM").map(|s| s.trim().to_string()),
            email_to: text("RBTX_ALERT_EMAIL_TO")
                .map(|s| split_addresses(&s))
                .unwrap_or_default(),
            webhook_url: secret("RBTX_ALERT_WEBHOOK_URL")?,
            interval: duration("RBTX_ALERT_INTERVAL")?,
            queue_age: duration("RBTX_ALERT_QUEUE_AGE")?,
        })
    }

    /// These settings where they are set, `base`'s elsewhere.
    pub fn over(&self, base: &AlertSettings) -> AlertSettings {
        AlertSettings {
            smtp_url: self.smtp_url.clone().or_else(|| base.smtp_url.clone()),
            email_from: self.email_from.clone().or_else(|| base.email_from.clone()),
            email_to: if self.email_to.is_empty() {
                base.email_to.clone()
            } else {
                self.email_to.clone()
            },
            webhook_url: self
                .webhook_url
                .clone()
                .or_else(|| base.webhook_url.clone()),
            interval: self.interval.or(base.interval),
            queue_age: self.queue_age.or(base.queue_age),
        }
    }

    /// The checked config of `tenant`; `None` when no channel is set (no alerts).
    pub fn resolve(&self, tenant: &str) -> Result<Option<AlertConfig>, AlertConfigError> {
        let smtp = match (&self.smtp_url, self.email_to.is_empty()) {
            (None, true) => None,
            (None, false) => return Err(AlertConfigError::NoSmtpUrl(tenant.into())),
            (Some(_), true) => return Err(AlertConfigError::NoRecipients(tenant.into())),
            (Some(url), false) => {
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose()).map_err(|e| {
                    AlertConfigError::SmtpUrl {
                        tenant: tenant.into(),
                        problem: e.to_string(),
                    }
                })?;
                if let Some(problem) = password_in_clear(url.expose()) {
                    return Err(AlertConfigError::SmtpUrl {
                        tenant: tenant.into(),
                        problem,
                    });
                }
                let from = self.email_from.as_deref().unwrap_or(DEFAULT_FROM);
                for address in std::iter::once(from).chain(self.email_to.iter().map(String::as_str))
                {
                    if address.parse::<Mailbox>().is_err() {
                        return Err(AlertConfigError::Address {
                            tenant: tenant.into(),
                            address: address.into(),
                        });
                    }
                }
                Some(SmtpTarget {
                    url: url.clone(),
                    from: from.into(),
                    to: self.email_to.clone(),
                })
            }
        };
        if let Some(url) = &self.webhook_url {
            crate::connectors::alert_hook::AlertHook::new(url.clone()).map_err(|e| {
                AlertConfigError::WebhookUrl {
                    tenant: tenant.into(),
                    problem: e.0,
                }
            })?;
        }
        if smtp.is_none() && self.webhook_url.is_none() {
            return Ok(None);
        }
        Ok(Some(AlertConfig {
            smtp,
            webhook_url: self.webhook_url.clone(),
            interval: self.interval.unwrap_or(DEFAULT_INTERVAL),
            queue_age: self.queue_age.unwrap_or(DEFAULT_QUEUE_AGE),
        }))
    }
}

impl SmtpTarget {
    /// The server's host, what may be shown of the URL.
    pub fn host(&self) -> String {
        url_host(self.url.expose()).unwrap_or_else(|| "?".into())
    }
}

impl AlertConfig {
    /// The channels, for the start-up log: hosts and recipients, never a URL.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(smtp) = &self.smtp {
            parts.push(format!(
                "e-mail to {} via {}",
                smtp.to.join(", "),
                smtp.host()
            ));
        }
        if let Some(url) = &self.webhook_url {
            let host = url_host(url.expose()).unwrap_or_else(|| "?".into());
            parts.push(format!("webhook to {host}"));
        }
        parts.join("; ")
    }
}

/// Why `url` would send its password unencrypted, if it would: a plain `smtp://` URL with
/// credentials to a server off this machine, without `tls=required`.
fn password_in_clear(url: &str) -> Option<String> {
    let rest = url.strip_prefix("smtp://")?;
    let (authority, query) = match rest.find(['/', '?']) {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, ""),
    };
    let (_, host) = authority.rsplit_once('@')?;
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => host.split(':').next().unwrap_or(host),
    };
    let local = matches!(host, "localhost" | "127.0.0.1" | "::1");
    (!local && !query.contains("tls=required")).then(|| {
        "the password would cross the network unencrypted; add ?tls=required or use smtps://"
            .to_string()
    })
}

/// `a@x, b@y` as its addresses.
pub fn split_addresses(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_crosses_the_network_in_clear() {
        for clear in [
            "smtp://ops:hemmelig@mail.firma.test:587",
            "smtp://ops:hemmelig@mail.firma.test?tls=opportunistic",
        ] {
            assert!(password_in_clear(clear).is_some(), "{clear}");
        }
        for fine in [
            "smtp://ops:hemmelig@mail.firma.test:587?tls=required",
            "smtps://ops:hemmelig@mail.firma.test",
            "smtp://mail.firma.test:25",
            "smtp://ops:hemmelig@127.0.0.1:2525",
            "smtp://ops:hemmelig@[::1]:2525",
        ] {
            assert_eq!(password_in_clear(fine), None, "{fine}");
        }
    }

    fn smtp(url: &str, to: &[&str]) -> AlertSettings {
        AlertSettings {
            smtp_url: Some(Secret::new(url)),
            email_to: to.iter().map(|s| s.to_string()).collect(),
            ..AlertSettings::default()
        }
    }

    #[test]
    fn a_tenant_block_overrides_the_environment_field_by_field() {
        let global = AlertSettings {
            interval: Some(Duration::from_secs(30)),
            ..smtp("smtp://mail.example.com:25", &["ops@example.com"])
        };
        let tenant = AlertSettings {
            email_to: vec!["fjord@example.com".into()],
            ..AlertSettings::default()
        };
        let c = tenant
            .over(&global)
            .resolve("fjord")
            .expect("valid")
            .expect("a channel");
        let s = c.smtp.expect("e-mail");
        assert_eq!(s.to, ["fjord@example.com"]);
        assert_eq!(s.from, DEFAULT_FROM);
        assert_eq!(s.host(), "mail.example.com");
        assert_eq!(c.interval, Duration::from_secs(30));
        assert_eq!(c.queue_age, DEFAULT_QUEUE_AGE);
        assert!(
            AlertSettings::default()
                .resolve("x")
                .expect("valid")
                .is_none()
        );
    }

    #[test]
    fn half_a_channel_is_refused() {
        let no_to = smtp("smtp://127.0.0.1:2525", &[]).resolve("t");
        assert!(matches!(no_to, Err(AlertConfigError::NoRecipients(_))));
        let no_url = AlertSettings {
            email_to: vec!["ops@example.com".into()],
            ..AlertSettings::default()
        };
        assert!(matches!(
            no_url.resolve("t"),
            Err(AlertConfigError::NoSmtpUrl(_))
        ));
        let bad = smtp("smtp://127.0.0.1:2525", &["not an address"]).resolve("t");
        assert!(matches!(bad, Err(AlertConfigError::Address { .. })));
        let scheme = smtp("imap://user:hunter2@host", &["ops@example.com"]).resolve("t");
        let text = scheme.expect_err("refused").to_string();
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn configs_never_show_their_secrets() {
        let settings = AlertSettings {
            webhook_url: Some(Secret::new(
                "https://hooks.slack.com/services/T0/B0/xoxsecret",
            )),
            ..smtp("smtps://ops:hunter2@mail.example.com", &["ops@example.com"])
        };
        let config = settings.resolve("t").expect("valid").expect("channels");
        for shown in [
            format!("{settings:?}"),
            format!("{config:?}"),
            config.describe(),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(!shown.contains("xoxsecret"), "{shown}");
        }
        assert_eq!(
            config.describe(),
            "e-mail to ops@example.com via mail.example.com; webhook to hooks.slack.com"
        );
    }
}
