//! Who may see the console, and what. A token opens it: the global one (`RBTX_CONSOLE_TOKEN`)
//! every tenant, a tenant's `console_token` that tenant alone. A browser signs in once and gets a
//! session cookie (`HttpOnly`, `SameSite=Strict`, `Secure` over HTTPS); a script sends
//! `Authorization: Bearer`. Every state-changing request is a POST that carries the session's
//! CSRF token; a bearer request needs none, since a browser never adds that header by itself.
//! Sessions live in memory: a restart signs everyone out, which is the safe direction.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::HeaderMap;
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// The cookie that holds a session's id.
pub const COOKIE: &str = "rbtx_console";
/// The shortest console token accepted.
pub const MIN_TOKEN_CHARS: usize = 16;
/// How long a session lasts without being used.
const IDLE_MS: i64 = 12 * 3600 * 1000;

/// What a caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every tenant (the global token).
    All,
    /// One tenant (its `console_token`).
    Tenant(String),
}

impl Scope {
    pub fn sees(&self, tenant: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Tenant(t) => t == tenant,
        }
    }
}

/// The tokens that open the console.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    pub global: Option<Secret>,
    /// Tenant id → its token.
    pub tenants: Vec<(String, Secret)>,
}

impl Tokens {
    pub fn any(&self) -> bool {
        self.global.is_some() || !self.tenants.is_empty()
    }

    /// Refuses tokens that would open the wrong thing: one shared by two tenants, a tenant's
    /// equal to the global one, or one too short to be guessed at.
    pub fn check(&self) -> Result<(), String> {
        let all = self
            .global
            .iter()
            .map(|s| ("RBTX_CONSOLE_TOKEN", s))
            .chain(self.tenants.iter().map(|(t, s)| (t.as_str(), s)));
        let mut seen: Vec<(&str, &Secret)> = Vec::new();
        for (owner, secret) in all {
            if secret.expose().chars().count() < MIN_TOKEN_CHARS {
                return Err(format!(
                    "the console token of {owner} is shorter than {MIN_TOKEN_CHARS} characters"
                ));
            }
            if let Some((other, _)) = seen.iter().find(|(_, s)| s.expose() == secret.expose()) {
                return Err(format!(
                    "{other} and {owner} have the same console token; each must have its own"
                ));
            }
            seen.push((owner, secret));
        }
        Ok(())
    }

    /// The scope `token` opens. Every token is compared, in constant time, so timing tells
    /// nothing about which one nearly matched.
    pub fn scope_of(&self, token: &str) -> Option<Scope> {
        let same = |s: &Secret| bool::from(s.expose().as_bytes().ct_eq(token.as_bytes()));
        let mut found = None;
        if self.global.as_ref().is_some_and(same) {
            found = Some(Scope::All);
        }
        for (tenant, secret) in &self.tenants {
            if same(secret) && found.is_none() {
                found = Some(Scope::Tenant(tenant.clone()));
            }
        }
        found.filter(|_| !token.is_empty())
    }
}

#[derive(Debug, Clone)]
struct Session {
    scope: Scope,
    csrf: String,
    last_used: i64,
}

/// A signed-in caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub scope: Scope,
    /// The token forms must carry; `None` for a bearer request, which needs none.
    pub csrf: Option<String>,
}

impl Caller {
    /// Whether a POST's form token is this session's.
    pub fn allows_post(&self, form_csrf: Option<&str>) -> bool {
        match (&self.csrf, form_csrf) {
            (None, _) => true,
            (Some(want), Some(got)) => bool::from(want.as_bytes().ct_eq(got.as_bytes())),
            (Some(_), None) => false,
        }
    }
}

/// The signed-in sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Opens a session for `scope`; its id, for the cookie.
    pub fn open(&self, scope: Scope, now_ms: i64) -> Result<String, NoRandomness> {
        let id = random_token()?;
        let session = Session {
            scope,
            csrf: random_token()?,
            last_used: now_ms,
        };
        let mut map = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| now_ms - s.last_used < IDLE_MS);
        map.insert(id.clone(), session);
        Ok(id)
    }

    pub fn close(&self, id: &str) {
        let mut map = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(id);
    }

    fn touch(&self, id: &str, now_ms: i64) -> Option<Caller> {
        let mut map = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        let session = map.get_mut(id)?;
        if now_ms - session.last_used >= IDLE_MS {
            map.remove(id);
            return None;
        }
        session.last_used = now_ms;
        Some(Caller {
            scope: session.scope.clone(),
            csrf: Some(session.csrf.clone()),
        })
    }

    /// The caller of a request: a bearer token, else the session cookie.
    pub fn caller(&self, tokens: &Tokens, headers: &HeaderMap, now_ms: i64) -> Option<Caller> {
        let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(token) = header("authorization").and_then(|v| v.strip_prefix("Bearer ")) {
            return tokens
                .scope_of(token.trim())
                .map(|scope| Caller { scope, csrf: None });
        }
        let id = session_id(headers)?;
        self.touch(&id, now_ms)
    }
}

/// The session id in the request's cookies.
pub fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

/// The `Set-Cookie` value for a session; `secure` when the console is reached over HTTPS.
pub fn cookie(id: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict{secure}")
}

/// The `Set-Cookie` value that ends a session in the browser.
pub fn expired_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

/// The operating system gave no random bytes; nothing weaker is used instead, since a session id
/// from it could be guessed.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator is unavailable: {0}")]
pub struct NoRandomness(String);

/// 32 random bytes from the operating system, as hex: a session id, a CSRF token, or the token
/// `rbtx run --sandbox` makes up.
pub fn random_token() -> Result<String, NoRandomness> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| NoRandomness(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens {
            global: Some(Secret::new("global-token")),
            tenants: vec![("fjord".into(), Secret::new("fjord-token"))],
        }
    }

    #[test]
    fn a_token_shared_or_short_is_refused() {
        let long = |s: &str| Secret::new(format!("{s}-0123456789abcdef"));
        let ok = Tokens {
            global: Some(long("global")),
            tenants: vec![
                ("fjord".into(), long("fjord")),
                ("nord".into(), long("nord")),
            ],
        };
        assert_eq!(ok.check(), Ok(()));
        let shared = Tokens {
            tenants: vec![
                ("fjord".into(), long("same")),
                ("nord".into(), long("same")),
            ],
            ..ok.clone()
        };
        assert_eq!(
            shared.check(),
            Err("fjord and nord have the same console token; each must have its own".into())
        );
        let global = Tokens {
            tenants: vec![("fjord".into(), long("global"))],
            ..ok.clone()
        };
        assert!(
            global
                .check()
                .is_err_and(|e| e.contains("RBTX_CONSOLE_TOKEN and fjord"))
        );
        let short = Tokens {
            global: Some(Secret::new("hunter2")),
            tenants: Vec::new(),
        };
        assert!(
            short.check().is_err_and(|e| !e.contains("hunter2")),
            "the token is not shown"
        );
    }

    #[test]
    fn each_token_opens_its_scope_and_nothing_else() {
        let t = tokens();
        assert_eq!(t.scope_of("global-token"), Some(Scope::All));
        assert_eq!(
            t.scope_of("fjord-token"),
            Some(Scope::Tenant("fjord".into()))
        );
        assert_eq!(t.scope_of("fjord-token "), None);
        assert_eq!(t.scope_of(""), None);
        assert!(Scope::Tenant("fjord".into()).sees("fjord"));
        assert!(!Scope::Tenant("fjord".into()).sees("bygg"));
    }

    #[test]
    fn a_session_needs_its_own_csrf_token_and_ends() {
        let sessions = Sessions::default();
        let id = sessions.open(Scope::All, 0).expect("random");
        let mut headers = HeaderMap::new();
        headers.insert(
            "cookie",
            format!("other=1; {COOKIE}={id}").parse().expect("header"),
        );
        let caller = sessions
            .caller(&tokens(), &headers, 1000)
            .expect("signed in");
        let csrf = caller.csrf.clone().expect("a session has a CSRF token");
        assert!(caller.allows_post(Some(&csrf)));
        assert!(!caller.allows_post(None));
        assert!(!caller.allows_post(Some("forged")));
        assert!(
            sessions
                .caller(&tokens(), &headers, IDLE_MS + 2000)
                .is_none(),
            "idle too long"
        );
        let mut bearer = HeaderMap::new();
        bearer.insert(
            "authorization",
            "Bearer fjord-token".parse().expect("header"),
        );
        let caller = sessions.caller(&tokens(), &bearer, 0).expect("bearer");
        assert_eq!(caller.scope, Scope::Tenant("fjord".into()));
        assert!(
            caller.allows_post(None),
            "a bearer request carries no ambient credential"
        );
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_over_https() {
        assert_eq!(
            cookie("abc", false),
            "rbtx_console=abc; Path=/console; HttpOnly; SameSite=Strict"
        );
        assert!(cookie("abc", true).ends_with("; Secure"));
        let token = random_token().expect("random");
        assert_ne!(token, random_token().expect("random"));
        assert_eq!(token.len(), 64);
    }
}
