//! An operator's incoming webhook, where alerts are posted: any URL that takes a JSON POST
//! (Slack's and Teams' incoming webhooks show the body's `text`). Here because connectors are the
//! only HTTP clients. The URL is a credential (a Slack webhook's path is its secret), so errors,
//! logs and `Debug` name its host only.

use std::time::Duration;

use super::{ApiError, ConfigError, transport_error};
use crate::secret::Secret;

/// Where alerts are posted.
#[derive(Debug, Clone)]
pub struct AlertHook {
    http: reqwest::Client,
    url: Secret,
    host: String,
}

impl AlertHook {
    /// A client for `url`, which must be an `https://` or `http://` URL with a host.
    pub fn new(url: Secret) -> Result<Self, ConfigError> {
        let host = url_host(url.expose())
            .filter(|_| {
                let u = url.expose();
                u.starts_with("https://") || u.starts_with("http://")
            })
            .ok_or_else(|| {
                ConfigError("the alert webhook URL must be an https:// or http:// URL".into())
            })?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("rbtx/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError(format!("cannot build the HTTP client: {e}")))?;
        Ok(AlertHook { http, url, host })
    }

    /// The URL's host: what may be shown of it.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Posts `body` as JSON; any 2xx is delivered. Not retried here: the caller decides.
    pub async fn post(&self, body: &serde_json::Value) -> Result<(), ApiError> {
        let resp = self
            .http
            .post(self.url.expose())
            .json(body)
            .send()
            .await
            .map_err(|e| transport_error("POST", &self.host, &e))?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        // What the service says is why (Slack: `invalid_payload`, `no_service`); kept short.
        let text = resp.text().await.unwrap_or_default();
        Err(ApiError::Status {
            method: "POST".into(),
            path: self.host.clone(),
            status,
            code: None,
            message: text.trim().chars().take(200).collect(),
            fields: Vec::new(),
            request_id: None,
        })
    }
}

/// The host of `scheme://[user[:password]@]host[:port]/…`, without what precedes an `@`.
pub fn url_host(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = match host_port.strip_prefix('[') {
        // An IPv6 literal keeps its brackets.
        Some(v6) => format!("[{}]", v6.split(']').next().unwrap_or_default()),
        None => host_port.split(':').next().unwrap_or_default().to_string(),
    };
    (!host.is_empty() && host != "[]").then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_host_is_shown() {
        assert_eq!(
            url_host("https://hooks.slack.com/services/T0/B0/secret").as_deref(),
            Some("hooks.slack.com")
        );
        assert_eq!(
            url_host("smtps://user:p%40ss@mail.example.com:465").as_deref(),
            Some("mail.example.com")
        );
        assert_eq!(url_host("smtp://[::1]:2525").as_deref(), Some("[::1]"));
        assert_eq!(url_host("not a url"), None);
        assert_eq!(url_host("https:///path"), None);
        let hook = AlertHook::new(Secret::new("https://hooks.slack.com/services/T0/B0/secret"))
            .expect("a hook");
        assert!(!format!("{hook:?}").contains("secret"));
        assert!(AlertHook::new(Secret::new("ftp://example.com/x")).is_err());
    }
}
