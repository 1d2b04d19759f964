//! Where each tenant's accounts are: the environment (one tenant, `default`), a tenants file
//! (several company pairs in one process), or the in-process sandboxes.
//!
//! A tenants file names where each secret is (an environment variable or a file), never the
//! secret itself: a token written in the YAML is refused.
//!
//! ```yaml
//! version: 1
//! tenants:
//!   - id: fjordbygg
//!     invoice_mode: booked            # or as_order
//!     tripletex:
//!       consumer_token: { env: FJORDBYGG_TRIPLETEX_CONSUMER_TOKEN }
//!       employee_token: { file: /run/secrets/fjordbygg-tripletex-employee }
//!     rackbeat:
//!       token: { env: FJORDBYGG_RACKBEAT_TOKEN }
//!       account_id: "40213"
//!     console_token: { env: FJORDBYGG_CONSOLE_TOKEN }   # optional: the console for this tenant alone
//!     alerts:                         # optional; overrides RBTX_ALERT_* field by field
//!       email_to: [ops@fjordbygg.no]  # on the SMTP server of RBTX_ALERT_SMTP_URL
//!       webhook_url: { env: FJORDBYGG_SLACK_WEBHOOK }
//! ```
//!
//! An `alerts:` block sends this tenant's alerts (dead letters, refused credentials, a queue
//! behind) to its own recipients: `smtp_url` and `webhook_url` are secrets like the tokens,
//! `email_from` and `email_to` plain addresses; what it leaves out comes from the environment.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::alerts::AlertSettings;
use super::tenant::{InvoiceMode, Tenant};
use crate::connectors::ConfigError;
use crate::connectors::rackbeat::{Rackbeat, RackbeatConfig};
use crate::connectors::tripletex::{Tripletex, TripletexConfig};
use crate::secret::Secret;
use crate::spec::diagnostic::{Code, Diagnostic};
use crate::spec::yaml::Document;
use crate::spec::{Cx, schema_check};

pub const TRIPLETEX_URL: &str = "https://tripletex.no/v2";
pub const RACKBEAT_URL: &str = "https://app.rackbeat.com/api";

/// The tenants file (`rbtx run --tenants FILE`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantsFile {
    /// Format version; only 1 exists.
    pub version: u32,
    /// The company pairs this process serves.
    pub tenants: Vec<TenantEntry>,
}

/// One company pair: a Rackbeat account and the Tripletex company it syncs to.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantEntry {
    /// A short name, unique in the file; bindings, queue and dead letters are kept under it.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]*$"))]
    pub id: String,
    /// How booked invoices reach Tripletex.
    #[serde(default)]
    pub invoice_mode: InvoiceMode,
    pub tripletex: TripletexAccount,
    pub rackbeat: RackbeatAccount,
    /// The token that opens the console at `/console/` for this tenant alone (the global one,
    /// `RBTX_CONSOLE_TOKEN`, opens every tenant's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_token: Option<SecretRef>,
    /// Where this tenant's alerts go, over the `RBTX_ALERT_*` settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<AlertsBlock>,
}

/// A tenant's alert channels; each field left out is taken from the environment's.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertsBlock {
    /// The SMTP server: `smtp://host:25`, `smtp://user:password@host:587?tls=required` or
    /// `smtps://user:password@host` (a secret: it may hold a password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_url: Option<SecretRef>,
    /// The sender of alert e-mails (default `rbtx@localhost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_from: Option<String>,
    /// The recipients of alert e-mails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email_to: Vec<String>,
    /// A URL alerts are posted to as JSON, e.g. a Slack or Teams incoming webhook (a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<SecretRef>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TripletexAccount {
    /// API base URL: production (the default) or `https://api-test.tripletex.tech/v2`.
    #[serde(default = "tripletex_url")]
    pub url: String,
    pub consumer_token: SecretRef,
    pub employee_token: SecretRef,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RackbeatAccount {
    #[serde(default = "rackbeat_url")]
    pub url: String,
    pub token: SecretRef,
    /// The account's id, which Rackbeat sends as `Rackbeat-Account-Id` with each webhook; read
    /// from `GET /self` when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// Requests per minute for this token (Rackbeat's own client uses 480).
    #[serde(default = "rackbeat_per_minute")]
    pub requests_per_minute: u32,
    /// Webhook tokens, comma-separated, when not kept by `rbtx webhooks install`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_tokens: Option<SecretRef>,
}

/// Where a secret is read from (once, at start).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SecretRef {
    /// An environment variable's name.
    Env(String),
    /// A file holding the secret (surrounding whitespace is ignored).
    File(PathBuf),
}

fn tripletex_url() -> String {
    TRIPLETEX_URL.into()
}

fn rackbeat_url() -> String {
    RACKBEAT_URL.into()
}

fn rackbeat_per_minute() -> u32 {
    480
}

/// Why a secret a tenants file names could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the environment variable {0} is not set")]
    Unset(String),
    #[error("{} is empty", .0.display())]
    Empty(PathBuf),
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl SecretRef {
    fn read(&self) -> Result<Secret, SecretError> {
        match self {
            SecretRef::Env(var) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Ok(Secret::new(v.trim())),
                _ => Err(SecretError::Unset(var.clone())),
            },
            SecretRef::File(path) => match std::fs::read_to_string(path) {
                Ok(v) if !v.trim().is_empty() => Ok(Secret::new(v.trim())),
                Ok(_) => Err(SecretError::Empty(path.clone())),
                Err(source) => Err(SecretError::Unreadable {
                    path: path.clone(),
                    source,
                }),
            },
        }
    }
}

/// Why a tenant's accounts could not be had.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("{0} is not set (or {0}_FILE); use --sandbox to run without accounts")]
    Unset(&'static str),
    /// A `*_FILE` variable names a file that cannot be read.
    #[error("{0}")]
    EnvFile(String),
    #[error("RBTX_RACKBEAT_REQUESTS_PER_MINUTE is `{0}`, not a positive whole number")]
    RequestsPerMinute(String),
    #[error(transparent)]
    Client(#[from] ConfigError),
    /// Every problem of a tenants file, each at its place.
    #[error("{}", render_all(.0))]
    TenantsFile(Vec<Diagnostic>),
    #[error(
        "no accounts in the environment: set {} (each also as *_FILE; RBTX_TRIPLETEX_URL and RBTX_RACKBEAT_URL to use `rbtx sandbox`), or give --tenants FILE; `rbtx run --sandbox` and `rbtx demo` need no accounts",
        ENV_VARS.join(", ")
    )]
    NoneInEnv,
    #[error("{} has no tenant `{id}` (it has: {ids})", file.display())]
    NoSuchTenant {
        file: PathBuf,
        id: String,
        ids: String,
    },
    #[error("{} lists several tenants; choose one with --tenant ({ids})", file.display())]
    SeveralTenants { file: PathBuf, ids: String },
}

fn render_all(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(crate::spec::diagnostic::render_human)
        .collect::<Vec<_>>()
        .join("\n")
}

/// One tenant's accounts, secrets read.
#[derive(Debug, Clone)]
pub struct Accounts {
    pub id: String,
    pub invoice_mode: InvoiceMode,
    pub tripletex_url: String,
    pub consumer_token: Secret,
    pub employee_token: Secret,
    pub rackbeat_url: String,
    pub rackbeat_token: Secret,
    pub rackbeat_per_minute: u32,
    pub account_id: Option<String>,
    pub webhook_tokens: Vec<Secret>,
    /// Opens the console for this tenant alone.
    pub console_token: Option<Secret>,
    /// This tenant's own alert settings (from the tenants file), over the environment's.
    pub alerts: AlertSettings,
}

/// The variables of the single tenant read from the environment (each also as `*_FILE`).
pub const ENV_VARS: [&str; 3] = [
    "RBTX_TRIPLETEX_CONSUMER_TOKEN",
    "RBTX_TRIPLETEX_EMPLOYEE_TOKEN",
    "RBTX_RACKBEAT_TOKEN",
];

fn required(var: &'static str) -> Result<Secret, AccountsError> {
    Secret::from_env(var)
        .map_err(AccountsError::EnvFile)?
        .ok_or(AccountsError::Unset(var))
}

fn split_tokens(s: &Secret) -> Vec<Secret> {
    s.expose()
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(Secret::new)
        .collect()
}

impl Accounts {
    /// Whether any credential is in the environment (then all must be).
    pub fn any_in_env() -> bool {
        ENV_VARS.iter().any(|v| {
            std::env::var_os(v).is_some() || std::env::var_os(format!("{v}_FILE")).is_some()
        })
    }

    /// The one tenant, `default`, of the environment.
    pub fn from_env(invoice_mode: InvoiceMode) -> Result<Self, AccountsError> {
        let tokens = Secret::from_env("RBTX_RACKBEAT_WEBHOOK_TOKENS")
            .map_err(AccountsError::EnvFile)?
            .map(|s| split_tokens(&s))
            .unwrap_or_default();
        Ok(Accounts {
            id: "default".into(),
            invoice_mode,
            tripletex_url: std::env::var("RBTX_TRIPLETEX_URL").unwrap_or_else(|_| tripletex_url()),
            consumer_token: required("RBTX_TRIPLETEX_CONSUMER_TOKEN")?,
            employee_token: required("RBTX_TRIPLETEX_EMPLOYEE_TOKEN")?,
            rackbeat_url: std::env::var("RBTX_RACKBEAT_URL").unwrap_or_else(|_| rackbeat_url()),
            rackbeat_token: required("RBTX_RACKBEAT_TOKEN")?,
            rackbeat_per_minute: match std::env::var("RBTX_RACKBEAT_REQUESTS_PER_MINUTE") {
                Ok(n) => n
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(AccountsError::RequestsPerMinute(n))?,
                Err(_) => rackbeat_per_minute(),
            },
            account_id: std::env::var("RBTX_RACKBEAT_ACCOUNT_ID").ok(),
            webhook_tokens: tokens,
            // The environment's one tenant is opened with the global console token.
            console_token: None,
            alerts: AlertSettings::default(),
        })
    }

    /// The environment's Rackbeat account alone (`rbtx webhooks install` needs no Tripletex).
    pub fn rackbeat_from_env() -> Result<Rackbeat, AccountsError> {
        let url = std::env::var("RBTX_RACKBEAT_URL").unwrap_or_else(|_| rackbeat_url());
        Ok(Rackbeat::new(RackbeatConfig::new(
            url,
            required("RBTX_RACKBEAT_TOKEN")?,
        ))?)
    }

    /// The accounts of both in-process sandboxes.
    pub fn sandbox(sb: &crate::sandbox::Sandboxes, invoice_mode: InvoiceMode) -> Self {
        Accounts {
            id: "default".into(),
            invoice_mode,
            tripletex_url: sb.tripletex.base_url.clone(),
            consumer_token: Secret::new(crate::sandbox::CONSUMER_TOKEN),
            employee_token: Secret::new(crate::sandbox::EMPLOYEE_TOKEN),
            rackbeat_url: sb.rackbeat.base_url.clone(),
            rackbeat_token: Secret::new(crate::sandbox::RACKBEAT_TOKEN),
            // The client keeps to the sandbox's budget as it keeps to Rackbeat's (0: unlimited).
            rackbeat_per_minute: match sb.rackbeat.rate_limit() {
                0 => 60_000,
                n => n,
            },
            account_id: None,
            webhook_tokens: Vec::new(),
            console_token: None,
            alerts: AlertSettings::default(),
        }
    }

    pub fn rackbeat(&self) -> Result<Rackbeat, AccountsError> {
        let mut c = RackbeatConfig::new(self.rackbeat_url.as_str(), self.rackbeat_token.clone());
        c.requests_per_minute = self.rackbeat_per_minute;
        Ok(Rackbeat::new(c)?)
    }

    pub fn tripletex(&self) -> Result<Tripletex, AccountsError> {
        Ok(Tripletex::new(TripletexConfig::new(
            self.tripletex_url.as_str(),
            self.consumer_token.clone(),
            self.employee_token.clone(),
        ))?)
    }

    /// Fresh clients for this company pair (each worker has its own).
    pub fn tenant(&self) -> Result<Tenant, AccountsError> {
        Ok(Tenant {
            id: self.id.clone(),
            rackbeat: self.rackbeat()?,
            tripletex: self.tripletex()?,
            invoice_mode: self.invoice_mode,
        })
    }
}

/// The JSON Schema of a tenants file.
pub fn tenants_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(TenantsFile)).unwrap_or_default()
}

/// Reads a tenants file and the secrets it names. Every problem is reported, each at its
/// file:line:col.
pub fn load_tenants(path: &Path) -> Result<Vec<Accounts>, Vec<Diagnostic>> {
    let doc = Document::load(path).map_err(|d| vec![*d])?;
    let mut cx = Cx::new(&doc);
    let schema = tenants_schema();
    let validator = jsonschema::validator_for(&schema).ok();
    let mut value = doc.value.clone();
    if schema_check(&mut cx, &schema, validator.as_ref(), &mut value) {
        return Err(cx.diags);
    }
    let file: TenantsFile = match serde_json::from_value(value) {
        Ok(f) => f,
        Err(e) => {
            cx.error(Code::WrongType, "", format!("not a tenants file: {e}"));
            return Err(cx.diags);
        }
    };
    if file.version != 1 {
        cx.error(
            Code::UnsupportedVersion,
            "/version",
            format!(
                "version {} is not supported; write `version: 1`",
                file.version
            ),
        );
    }
    if file.tenants.is_empty() {
        cx.error(
            Code::MissingField,
            "/tenants",
            "no tenants are listed".into(),
        );
    }
    let mut out = Vec::new();
    for (i, t) in file.tenants.iter().enumerate() {
        let at = |field: &str| format!("/tenants/{i}{field}");
        if file.tenants[..i].iter().any(|o| o.id == t.id) {
            cx.error(
                Code::InvalidValue,
                &at("/id"),
                format!("the tenant id `{}` is used twice", t.id),
            );
        }
        if let Some(acc) = &t.rackbeat.account_id
            && file.tenants[..i]
                .iter()
                .any(|o| o.rackbeat.account_id.as_ref() == Some(acc))
        {
            cx.error(
                Code::InvalidValue,
                &at("/rackbeat/account_id"),
                format!("the Rackbeat account {acc} belongs to two tenants; webhooks could not be routed"),
            );
        }
        let mut read = |r: &SecretRef, field: &str| match r.read() {
            Ok(s) => Some(s),
            Err(e) => {
                cx.error(Code::InvalidValue, &at(field), e.to_string());
                None
            }
        };
        let consumer = read(&t.tripletex.consumer_token, "/tripletex/consumer_token");
        let employee = read(&t.tripletex.employee_token, "/tripletex/employee_token");
        let token = read(&t.rackbeat.token, "/rackbeat/token");
        let hooks = t
            .rackbeat
            .webhook_tokens
            .as_ref()
            .map(|r| read(r, "/rackbeat/webhook_tokens"));
        let console_token = t
            .console_token
            .as_ref()
            .and_then(|r| read(r, "/console_token"));
        let block = t.alerts.clone().unwrap_or_default();
        let alerts = AlertSettings {
            smtp_url: block
                .smtp_url
                .as_ref()
                .and_then(|r| read(r, "/alerts/smtp_url")),
            webhook_url: block
                .webhook_url
                .as_ref()
                .and_then(|r| read(r, "/alerts/webhook_url")),
            email_from: block.email_from,
            email_to: block.email_to,
            interval: None,
            queue_age: None,
        };
        if let (Some(consumer_token), Some(employee_token), Some(rackbeat_token)) =
            (consumer, employee, token)
        {
            out.push(Accounts {
                id: t.id.clone(),
                invoice_mode: t.invoice_mode,
                tripletex_url: t.tripletex.url.clone(),
                consumer_token,
                employee_token,
                rackbeat_url: t.rackbeat.url.clone(),
                rackbeat_token,
                rackbeat_per_minute: t.rackbeat.requests_per_minute.max(1),
                account_id: t.rackbeat.account_id.clone(),
                webhook_tokens: hooks
                    .flatten()
                    .map(|s| split_tokens(&s))
                    .unwrap_or_default(),
                console_token,
                alerts,
            });
        }
    }
    if cx.diags.is_empty() {
        Ok(out)
    } else {
        Err(cx.diags)
    }
}

/// One tenant's accounts for a one-off command: `id` of the tenants file when one is given (the
/// only one when `id` is `None` and the file lists one), else the environment's.
pub fn choose(
    tenants_file: Option<&Path>,
    id: Option<&str>,
    invoice_mode: InvoiceMode,
) -> Result<Accounts, AccountsError> {
    let Some(path) = tenants_file else {
        if !Accounts::any_in_env() {
            return Err(AccountsError::NoneInEnv);
        }
        return Accounts::from_env(invoice_mode);
    };
    let all = load_tenants(path).map_err(AccountsError::TenantsFile)?;
    let ids = || {
        all.iter()
            .map(|t| t.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match id {
        Some(id) => {
            all.iter()
                .find(|t| t.id == id)
                .cloned()
                .ok_or_else(|| AccountsError::NoSuchTenant {
                    file: path.to_path_buf(),
                    id: id.to_string(),
                    ids: ids(),
                })
        }
        None if all.len() == 1 => Ok(all[0].clone()),
        None => Err(AccountsError::SeveralTenants {
            file: path.to_path_buf(),
            ids: ids(),
        }),
    }
}
