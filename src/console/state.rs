//! The console's state and what every page shares: the tenants it serves, who is signed in,
//! rendering, and the answer to a request that could not be served.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::Value;

use super::auth::{Caller, Scope, Sessions, Tokens};
use crate::connectors::rackbeat::Rackbeat;
use crate::connectors::tripletex::Tripletex;
use crate::plan::Pack;
use crate::runtime::status::Status;
use crate::runtime::tenant::{InvoiceMode, TenantPack};
use crate::store::{Store, StoreError};

/// One tenant as the console sees it: its clients (for the budgets in use and the preview's
/// reads) and its invoice mode (which mappings it runs).
#[derive(Debug, Clone)]
pub struct ConsoleTenant {
    pub id: String,
    pub invoice_mode: InvoiceMode,
    pub rackbeat: Rackbeat,
    pub tripletex: Tripletex,
}

impl ConsoleTenant {
    pub(super) fn view<'a>(&self, pack: &'a Pack) -> TenantPack<'a> {
        TenantPack {
            pack,
            mode: self.invoice_mode,
        }
    }
}

/// The console's state.
pub struct Console<S> {
    pub(super) store: Arc<S>,
    pub(super) tenants: Vec<ConsoleTenant>,
    pub(super) tokens: Tokens,
    pub(super) sessions: Sessions,
    pub(super) status: Arc<Status>,
    pub(super) packs: tokio::sync::watch::Receiver<Arc<Pack>>,
    /// The console is reached over HTTPS (`--public-url https://…`): cookies are `Secure`.
    pub(super) secure: bool,
    pub(super) templates: minijinja::Environment<'static>,
}

impl<S: Store + 'static> Console<S> {
    pub fn new(
        store: Arc<S>,
        tenants: Vec<ConsoleTenant>,
        tokens: Tokens,
        status: Arc<Status>,
        packs: tokio::sync::watch::Receiver<Arc<Pack>>,
        secure: bool,
    ) -> Self {
        Console {
            store,
            tenants,
            tokens,
            sessions: Sessions::default(),
            status,
            packs,
            secure,
            templates: templates(),
        }
    }

    pub(super) fn caller(&self, headers: &HeaderMap) -> Option<Caller> {
        self.sessions
            .caller(&self.tokens, headers, crate::dates::now_millis())
    }

    /// The tenants `caller` may see.
    pub(super) fn visible<'a>(
        &'a self,
        caller: &'a Caller,
    ) -> impl Iterator<Item = &'a ConsoleTenant> {
        self.tenants.iter().filter(|t| caller.scope.sees(&t.id))
    }

    /// The tenant a page is about: the one asked for, or the first the caller sees. One the
    /// caller may not see is answered as if it did not exist.
    pub(super) fn tenant<'a>(
        &'a self,
        caller: &'a Caller,
        asked: Option<&str>,
    ) -> Result<&'a ConsoleTenant, PageError> {
        match asked.filter(|a| !a.is_empty()) {
            Some(id) => self
                .visible(caller)
                .find(|t| t.id == id)
                .ok_or_else(|| PageError::NotFound(format!("no tenant `{id}`"))),
            None => self
                .visible(caller)
                .next()
                .ok_or_else(|| PageError::NotFound("no tenant".into())),
        }
    }

    /// Renders `template` with `ctx` and what every page shows: the caller's tenants, the
    /// tenant in view and the form token.
    pub(super) fn page(
        &self,
        caller: &Caller,
        tenant: Option<&str>,
        template: &str,
        mut ctx: serde_json::Map<String, Value>,
    ) -> Result<Response, PageError> {
        let tenants: Vec<&str> = self.visible(caller).map(|t| t.id.as_str()).collect();
        ctx.insert("tenants".into(), tenants.into());
        ctx.insert("tenant".into(), tenant.into());
        ctx.insert("csrf".into(), caller.csrf.clone().into());
        ctx.insert(
            "all_tenants".into(),
            Value::Bool(caller.scope == Scope::All),
        );
        let html = self
            .templates
            .get_template(template)
            .and_then(|t| t.render(minijinja::value::Serde(Value::Object(ctx))))
            .map_err(|e| PageError::Template(e.to_string()))?;
        Ok(no_store(Html(html).into_response()))
    }
}

/// Pages change with every event: a browser must not show a stale copy from its cache.
pub(super) fn no_store(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    // No script runs on these pages, whatever a record's text holds.
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    response
}

pub(super) fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

/// Why a page could not be shown.
#[derive(Debug)]
pub(super) enum PageError {
    /// Not signed in: to the sign-in form.
    SignIn,
    /// A bearer token that opens nothing.
    Unauthorized,
    NotFound(String),
    /// A POST without this session's form token.
    Forged,
    BadRequest(String),
    Internal(String),
    Store(StoreError),
    Template(String),
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        PageError::Store(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            PageError::SignIn => return redirect("/console/login"),
            PageError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "that token does not open the console".to_string(),
            ),
            PageError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            PageError::Forged => (
                StatusCode::FORBIDDEN,
                "the form's token is missing or not this session's; reload the page and try again"
                    .to_string(),
            ),
            PageError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            PageError::Internal(m) => {
                tracing::error!(error = %m, "A console request failed.");
                (StatusCode::INTERNAL_SERVER_ERROR, m)
            }
            PageError::Store(e) => {
                tracing::error!(error = %e, "The console could not read the store.");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the store is not available: {e}"),
                )
            }
            PageError::Template(e) => {
                tracing::error!(error = %e, "A console page could not be rendered.");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the page could not be rendered".to_string(),
                )
            }
        };
        let html = format!(
            "<!doctype html><meta charset=utf-8><title>{code}</title><p>{}</p><p><a href=\"/console/\">Back to the console</a></p>",
            minijinja::HtmlEscape(&message),
            code = status.as_u16()
        );
        no_store((status, Html(html)).into_response())
    }
}

/// The templates, compiled into the binary. Names end in `.html`, so minijinja escapes every
/// value it prints.
fn templates() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    let files = [
        ("base.html", include_str!("templates/base.html")),
        ("login.html", include_str!("templates/login.html")),
        ("status.html", include_str!("templates/status.html")),
        ("activity.html", include_str!("templates/activity.html")),
        (
            "dead_letters.html",
            include_str!("templates/dead_letters.html"),
        ),
        (
            "dead_letter.html",
            include_str!("templates/dead_letter.html"),
        ),
        ("event.html", include_str!("templates/event.html")),
        ("preview.html", include_str!("templates/preview.html")),
    ];
    for (name, text) in files {
        // The templates are ours and tested (`tests/console.rs` renders every page); one that
        // does not compile is left out: its page answers 500 and the log names the template.
        if let Err(e) = env.add_template(name, text) {
            tracing::error!(template = name, error = %e, "A console template does not compile.");
        }
    }
    env.add_filter("time", |ms: i64| crate::dates::format_millis_in_denmark(ms));
    env.add_filter("truncate", |s: String, n: usize| {
        match s.char_indices().nth(n) {
            Some((at, _)) => format!("{}…", &s[..at]),
            None => s,
        }
    });
    env.add_filter("age", |ms: i64| age(crate::dates::now_millis() - ms));
    env.add_filter("pretty", |v: minijinja::Value| {
        serde_json::to_value(&v)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_default()
    });
    env
}

/// A duration for people: `42 s`, `3 min`, `5 h`, `2 d`.
fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_compiles() {
        let env = super::templates();
        for name in [
            "base.html",
            "login.html",
            "status.html",
            "activity.html",
            "dead_letters.html",
            "dead_letter.html",
            "event.html",
            "preview.html",
        ] {
            assert!(env.get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn ages_read_like_a_person_says_them() {
        assert_eq!(super::age(4_000), "4 s");
        assert_eq!(super::age(180_000), "3 min");
        assert_eq!(super::age(2 * 86_400_000), "2 d");
        assert_eq!(
            minijinja::HtmlEscape("<script>'&\"").to_string(),
            "&lt;script&gt;&#x27;&amp;&quot;",
            "error pages escape as the templates do"
        );
    }
}
