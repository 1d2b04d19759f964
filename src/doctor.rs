//! `rbtx doctor`: checks one tenant's setup before it bites, and says how to fix each problem.
//!
//! Every check runs, whatever the others found, and reports ok, a warning (sync works, but
//! something is off) or a failure (sync is blocked). Nothing is written to either API or to the
//! store's data.
//!
//! The checks: the mapping pack, the store's migrations (`Store::pending_migrations`), both logins
//! (naming test or production), the bank account invoicing needs, every API lookup holding what
//! the mapping feeds it (for `lookup('vat_type', lookup('vat_code', …))`, each VAT code of
//! `vat_code` must be a VAT type of this company: `Plan::lookup_chains`), and the webhook
//! subscriptions the pack's triggers need.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::Value;

use crate::connectors::ApiError;
use crate::connectors::tripletex::BANK_ACCOUNT_FIX as BANK_FIX;
use crate::plan::Pack;
use crate::runtime::lookups::load_lookup;
use crate::runtime::tenant::{Tenant, trigger_events};
use crate::store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub severity: Severity,
    pub detail: String,
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Check {
            name,
            severity: Severity::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn problem(
        name: &'static str,
        severity: Severity,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Check {
            name,
            severity,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether something blocks sync.
    pub fn blocked(&self) -> bool {
        self.checks.iter().any(|c| c.severity == Severity::Fail)
    }

    pub fn find(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let mark = match c.severity {
                Severity::Ok => "ok  ",
                Severity::Warn => "WARN",
                Severity::Fail => "FAIL",
            };
            let _ = writeln!(out, "{mark} {:<22} {}", c.name, c.detail);
            if let Some(fix) = &c.fix {
                for (i, line) in fix.lines().enumerate() {
                    let lead = if i == 0 { "fix:" } else { "    " };
                    let _ = writeln!(out, "     {:<22} {lead} {line}", "");
                }
            }
        }
        let (fails, warns) = (
            self.checks
                .iter()
                .filter(|c| c.severity == Severity::Fail)
                .count(),
            self.checks
                .iter()
                .filter(|c| c.severity == Severity::Warn)
                .count(),
        );
        let _ = writeln!(
            out,
            "\n{}",
            match (fails, warns) {
                (0, 0) => "Everything sync needs is in place.".to_string(),
                (0, w) => format!("Sync can run; {w} warning(s) above."),
                (f, _) =>
                    format!("{f} problem(s) block sync; fix them and run `rbtx doctor` again."),
            }
        );
        out
    }
}

/// What the doctor looks at.
pub struct Setup<'a, S: Store> {
    pub pack: &'a Pack,
    /// Where the pack was loaded from, for the fix hints.
    pub pack_path: &'a str,
    /// The store, when its file or database exists.
    pub store: Option<&'a S>,
    pub store_name: &'a str,
    pub tenant: &'a Tenant,
    /// The URL webhooks should be delivered to, when known.
    pub public_url: Option<&'a str>,
}

impl<'a, S: Store> Setup<'a, S> {
    /// The same setup over another store.
    pub fn with_store<T: Store>(&self, store: &'a T) -> Setup<'a, T> {
        Setup {
            pack: self.pack,
            pack_path: self.pack_path,
            store: Some(store),
            store_name: self.store_name,
            tenant: self.tenant,
            public_url: self.public_url,
        }
    }
}

pub async fn check<S: Store>(setup: &Setup<'_, S>) -> Report {
    let mut checks = vec![mappings(setup)];
    checks.push(store(setup).await);
    let tripletex = tripletex_login(setup).await;
    let tripletex_ok = tripletex.severity == Severity::Ok;
    checks.push(tripletex);
    let rackbeat = rackbeat_login(setup).await;
    let rackbeat_ok = rackbeat.severity == Severity::Ok;
    checks.push(rackbeat);
    if tripletex_ok {
        checks.push(bank_account(setup).await);
    }
    if tripletex_ok && rackbeat_ok {
        checks.extend(lookups(setup).await);
    }
    if rackbeat_ok {
        checks.push(webhooks(setup).await);
    }
    Report { checks }
}

fn mappings<S: Store>(setup: &Setup<'_, S>) -> Check {
    let n = setup.pack.diagnostics.len();
    if n == 0 {
        return Check::ok(
            "mappings",
            format!("{} mappings valid", setup.pack.plans.len()),
        );
    }
    Check::problem(
        "mappings",
        Severity::Fail,
        format!("{n} problem(s) in the mapping pack"),
        format!(
            "run `rbtx validate {}` and fix what it reports",
            setup.pack_path
        ),
    )
}

async fn store<S: Store>(setup: &Setup<'_, S>) -> Check {
    let Some(store) = setup.store else {
        return Check::problem(
            "store",
            Severity::Warn,
            format!("{} does not exist yet", setup.store_name),
            "`rbtx run` creates and migrates it at start",
        );
    };
    match store.pending_migrations().await {
        Ok(0) => Check::ok(
            "store",
            format!("{} reachable and migrated", setup.store_name),
        ),
        Ok(n) => Check::problem(
            "store",
            Severity::Warn,
            format!("{} has {n} migration(s) not applied", setup.store_name),
            "`rbtx run` applies them at start (back the store up first)",
        ),
        Err(e) => Check::problem(
            "store",
            Severity::Fail,
            format!("{}: {e}", setup.store_name),
            "check the store's path or URL, its permissions, and that the database server is up",
        ),
    }
}

/// Where a Tripletex URL points: the test environment or production.
fn tripletex_environment(base_url: &str) -> &'static str {
    if base_url.contains("api-test.tripletex.tech") || base_url.contains("api.tripletex.io") {
        "the test environment"
    } else if base_url.contains("tripletex.no") {
        "production"
    } else {
        "a custom address"
    }
}

async fn tripletex_login<S: Store>(setup: &Setup<'_, S>) -> Check {
    let tx = &setup.tenant.tripletex;
    let env = tripletex_environment(tx.base_url());
    match tx.get("/token/session/%3EwhoAmI", &[]).await {
        Ok(Some(me)) => Check::ok(
            "tripletex login",
            format!(
                "company {} as employee {} on {env} ({})",
                text(me.pointer("/companyId")),
                text(me.pointer("/employeeId")),
                tx.base_url()
            ),
        ),
        Ok(None) => Check::problem(
            "tripletex login",
            Severity::Fail,
            format!("{} answered 404 to whoAmI", tx.base_url()),
            "RBTX_TRIPLETEX_URL must end in /v2 (https://tripletex.no/v2 or https://api-test.tripletex.tech/v2)",
        ),
        Err(e) => Check::problem(
            "tripletex login",
            Severity::Fail,
            format!("cannot log in to {env} ({}): {e}", tx.base_url()),
            match &e {
                ApiError::Transport { .. } => {
                    "check RBTX_TRIPLETEX_URL and the network".to_string()
                }
                _ => format!(
                    "set RBTX_TRIPLETEX_CONSUMER_TOKEN and RBTX_TRIPLETEX_EMPLOYEE_TOKEN to tokens made for {env}:\n\
                     tokens from the test environment (api-test.tripletex.tech) do not work in production\n\
                     (tripletex.no), nor the other way round; an employee token can also have expired"
                ),
            },
        ),
    }
}

async fn rackbeat_login<S: Store>(setup: &Setup<'_, S>) -> Check {
    let rb = &setup.tenant.rackbeat;
    match rb.get("/self", &[]).await {
        Ok(Some(me)) => Check::ok(
            "rackbeat login",
            format!(
                "account {} ({})",
                text(me.pointer("/user_account/id")),
                me.pointer("/user_account/company_name")
                    .and_then(Value::as_str)
                    .unwrap_or("no name")
            ),
        ),
        Ok(None) => Check::problem(
            "rackbeat login",
            Severity::Fail,
            format!("{} answered 404 to /self", rb.base_url()),
            "RBTX_RACKBEAT_URL must end in /api (https://app.rackbeat.com/api)",
        ),
        Err(e) => Check::problem(
            "rackbeat login",
            Severity::Fail,
            format!("cannot reach the account: {e}"),
            match &e {
                ApiError::Transport { .. } => "check RBTX_RACKBEAT_URL and the network",
                _ => "set RBTX_RACKBEAT_TOKEN to an API token made in Rackbeat (Settings → API)",
            },
        ),
    }
}

async fn bank_account<S: Store>(setup: &Setup<'_, S>) -> Check {
    let query = [
        ("isBankAccount", "true".to_string()),
        (
            "fields",
            "number,name,bankAccountNumber,isInvoiceAccount".to_string(),
        ),
    ];
    match setup
        .tenant
        .tripletex
        .list_all("/ledger/account", &query)
        .await
    {
        Ok(accounts) => {
            let with_number: Vec<&Value> = accounts
                .iter()
                .filter(|a| {
                    a["bankAccountNumber"]
                        .as_str()
                        .is_some_and(|n| !n.trim().is_empty())
                })
                .collect();
            let invoice = with_number.iter().find(|a| a["isInvoiceAccount"] == true);
            match (invoice, with_number.first()) {
                (Some(a), _) => Check::ok(
                    "invoice bank account",
                    format!(
                        "ledger account {} has {}",
                        text(a.get("number")),
                        text(a.get("bankAccountNumber"))
                    ),
                ),
                (None, Some(a)) => Check::problem(
                    "invoice bank account",
                    Severity::Warn,
                    format!(
                        "ledger account {} has a bank account number, but none is marked as the invoice account",
                        text(a.get("number"))
                    ),
                    BANK_FIX,
                ),
                (None, None) => Check::problem(
                    "invoice bank account",
                    Severity::Fail,
                    "the company has no bank account number: Tripletex refuses every invoice",
                    BANK_FIX,
                ),
            }
        }
        Err(e) => Check::problem(
            "invoice bank account",
            Severity::Warn,
            format!("could not read the bank accounts: {e}"),
            "give the employee token access to the ledger, or check the account by hand",
        ),
    }
}

/// Each API lookup table must load, and hold every key the mapping feeds it from another table:
/// for `lookup('vat_type', lookup('vat_code', …))`, each VAT code `vat_code` yields must be a VAT
/// type of this company (ids differ between companies); for `lookup('unit',
/// lookup('rackbeat_unit', …))`, each Rackbeat unit must have a Tripletex unit.
async fn lookups<S: Store>(setup: &Setup<'_, S>) -> Vec<Check> {
    let mut out = Vec::new();
    let mut loaded: HashMap<String, Result<Arc<HashMap<String, Value>>, String>> = HashMap::new();
    for plan in setup.tenant.view(setup.pack).plans() {
        let mut tables: HashMap<&str, Arc<HashMap<String, Value>>> = HashMap::new();
        for l in &plan.api_lookups {
            let id = format!(
                "{:?} {} {:?} {} {:?}",
                l.connection, l.path, l.query, l.key, l.value
            );
            if !loaded.contains_key(&id) {
                let table = load_lookup(setup.tenant, l)
                    .await
                    .map(Arc::new)
                    .map_err(|e| e.to_string());
                loaded.insert(id.clone(), table);
            }
            let name = format!("{} lookup `{}`", plan.entity, l.name);
            let system = l.connection.name();
            match &loaded[&id] {
                Err(e) => out.push(Check::problem(
                    "lookups",
                    Severity::Fail,
                    format!("{name}: {e}"),
                    format!("check that the {system} user may read {}", l.path),
                )),
                Ok(t) if t.is_empty() => out.push(Check::problem(
                    "lookups",
                    Severity::Fail,
                    format!("{name}: {system} {} lists nothing", l.path),
                    format!("set up {} in {system} before syncing", l.path),
                )),
                Ok(t) => {
                    tables.insert(l.name.as_str(), t.clone());
                }
            }
        }
        for (outer, inner) in &plan.lookup_chains {
            let Some(outer_table) = tables.get(outer.as_str()) else {
                continue;
            };
            let Some(api) = plan.api_lookups.iter().find(|l| &l.name == outer) else {
                continue;
            };
            // A table written in the mapping lists what the mapping will ask for: a value missing
            // in the API blocks every record that needs it. A table read from the other API lists
            // what exists there, not what records use: only records with a missing value fail.
            let (values, severity): (BTreeSet<String>, Severity) = match (
                plan.statics
                    .iter()
                    .find(|(n, _)| n == inner)
                    .map(|(_, t)| t),
                tables.get(inner.as_str()),
            ) {
                (Some(st), _) => (
                    st.entries
                        .values()
                        .chain(st.default.iter())
                        .map(|v| text(Some(v)))
                        .collect(),
                    Severity::Fail,
                ),
                (None, Some(t)) => (t.values().map(|v| text(Some(v))).collect(), Severity::Warn),
                (None, None) => continue,
            };
            let missing: Vec<&str> = values
                .iter()
                .filter(|v| !outer_table.contains_key(v.as_str()))
                .map(String::as_str)
                .collect();
            let name = format!("{} `{outer}` ← `{inner}`", plan.entity);
            let system = api.connection.name();
            if missing.is_empty() {
                out.push(Check::ok(
                    "lookups",
                    format!(
                        "{name}: all {} values found in {system} {}",
                        values.len(),
                        api.path
                    ),
                ));
            } else {
                out.push(Check::problem(
                    "lookups",
                    severity,
                    format!("{name}: not in {system} {}: {}", api.path, missing.join(", ")),
                    format!(
                        "create them in {system} (VAT types: Settings → VAT; units: Settings → Units), or change `{inner}` in {}",
                        plan.file.display()
                    ),
                ));
            }
        }
    }
    if out.is_empty() {
        out.push(Check::ok("lookups", "no API lookup tables in use"));
    }
    out
}

async fn webhooks<S: Store>(setup: &Setup<'_, S>) -> Check {
    let needed = trigger_events(setup.pack);
    let subs = match setup.tenant.rackbeat.list_all("/webhooks", &[]).await {
        Ok(s) => s,
        Err(e) => {
            return Check::problem(
                "webhooks",
                Severity::Fail,
                format!("could not list the subscriptions: {e}"),
                "check that the Rackbeat token may manage webhooks",
            );
        }
    };
    let mut problems = Vec::new();
    for event in &needed {
        let mine: Vec<&Value> = subs
            .iter()
            .filter(|s| s["event"] == *event)
            .filter(|s| setup.public_url.is_none_or(|u| s["url"] == u))
            .collect();
        let Some(best) = mine.iter().find(|s| s["is_active"] == true) else {
            problems.push(if mine.is_empty() {
                format!("{event}: no subscription")
            } else {
                format!("{event}: subscribed but inactive")
            });
            continue;
        };
        let failures = best["failures_since_last_success"].as_u64().unwrap_or(0);
        if failures > 0 {
            problems.push(format!(
                "{event}: {failures} failed deliveries since the last success"
            ));
        }
    }
    let url = setup
        .public_url
        .map(|u| format!(" to {u}"))
        .unwrap_or_default();
    if problems.is_empty() {
        return Check::ok(
            "webhooks",
            format!(
                "{} events subscribed{url}, active, delivering",
                needed.len()
            ),
        );
    }
    let install = format!(
        "run `rbtx webhooks install --url {}` (and make sure `rbtx run` is reachable there)",
        setup
            .public_url
            .unwrap_or("<public URL of rbtx run>/webhooks/rackbeat")
    );
    Check::problem(
        "webhooks",
        Severity::Fail,
        format!("{}{url}", problems.join("; ")),
        install,
    )
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "?".into(),
        Some(other) => other.to_string(),
    }
}
