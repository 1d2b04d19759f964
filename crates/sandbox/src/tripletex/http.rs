//! The HTTP side: one handler for every request. It draws the request's fault, applies the rate
//! limit, checks the session, routes, and writes the answer with `x-tlx-request-id` and the rate
//! limit headers. `/admin/…` is the tests' back door: no faults, no limit, no auth.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use serde_json::{Map, Value, json};

use super::body::{self, NOT_NULL, Problems, Scope, WRONG_TYPE};
use super::credit;
use super::entities;
use super::error::{ApiError, Msg};
use super::resources::{Query, decode, fields_of, list, search};
use super::sales::{self, Payment};
use super::schema::{Fields, Renderer};
use super::seed;
use super::store::{Db, Kind, flag, int};
use super::time;
use crate::config::SandboxConfig;
use crate::faults::{Fault, FaultConfig, Faults};
use crate::listener::Conn;
use crate::request_counts::{Counter, RequestCounts};
use crate::request_log::{RequestLog, RequestRecord};
use crate::support::lock;

const MAX_BODY: usize = 16 * 1024 * 1024;

struct Session {
    /// The token stops working at midnight starting this day.
    expiration: i64,
}

struct RateLimiter {
    limit: Option<u32>,
    period: Duration,
    start: Instant,
    used: u32,
    reset_on_429: bool,
    /// How far the clock has been moved forward (tests reach the next period without waiting).
    skew: Duration,
}

/// The rate-limit state one response reports.
#[derive(Debug, Clone, Copy)]
pub struct RateInfo {
    /// `None`: not enforced (the headers then say `u32::MAX`).
    limit: Option<u32>,
    remaining: u32,
    reset_seconds: u64,
    exceeded: bool,
    reset_on_429: bool,
}

impl RateLimiter {
    fn now(&self) -> Instant {
        Instant::now() + self.skew
    }

    fn take(&mut self) -> RateInfo {
        let now = self.now();
        let mut elapsed = now.duration_since(self.start);
        if elapsed >= self.period {
            self.start = now;
            self.used = 0;
            elapsed = Duration::ZERO;
        }
        let left = self.period.saturating_sub(elapsed);
        let reset_seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        let mut info = RateInfo {
            limit: self.limit,
            remaining: 0,
            reset_seconds,
            exceeded: false,
            reset_on_429: self.reset_on_429,
        };
        self.used = self.used.saturating_add(1);
        let limit = self.limit.unwrap_or(u32::MAX);
        info.remaining = limit.saturating_sub(self.used);
        info.exceeded = self.used > limit;
        info
    }
}

/// An answer before the request id and rate headers are added.
pub struct Reply {
    status: u16,
    body: Option<Value>,
}

impl Reply {
    fn value(status: u16, v: Value) -> Reply {
        Reply {
            status,
            body: Some(json!({ "value": v })),
        }
    }

    fn raw(v: Value) -> Reply {
        Reply {
            status: 200,
            body: Some(v),
        }
    }

    fn no_content() -> Reply {
        Reply {
            status: 204,
            body: None,
        }
    }
}

pub struct App {
    config: SandboxConfig,
    /// `host:port`, for the `url` fields.
    host: String,
    db: Mutex<Db>,
    sessions: Mutex<HashMap<String, Session>>,
    faults: Faults,
    rate: Mutex<RateLimiter>,
    counter: AtomicU64,
    /// The requests on `/v2`.
    requests: RequestLog,
    /// The requests on `/v2` by route, never capped.
    counts: Counter,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// A 64-bit mix (splitmix64): request ids and tokens that differ per request, reproducibly.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl App {
    pub fn new(config: SandboxConfig, addr: SocketAddr) -> App {
        let db = seed::seed(&config);
        let rate = RateLimiter {
            limit: config.tripletex_rate_limit,
            period: Duration::from_secs(config.tripletex_rate_period_seconds),
            start: Instant::now(),
            used: 0,
            reset_on_429: true,
            skew: Duration::ZERO,
        };
        App {
            faults: Faults::new(config.faults.clone()),
            host: addr.to_string(),
            db: Mutex::new(db),
            sessions: Mutex::new(HashMap::new()),
            rate: Mutex::new(rate),
            counter: AtomicU64::new(0),
            requests: RequestLog::default(),
            counts: Counter::default(),
            config,
        }
    }

    fn next(&self) -> u64 {
        mix(self.config.seed ^ mix(self.counter.fetch_add(1, Ordering::SeqCst)))
    }

    fn request_id(&self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            b >> 52,
            b & 0xffff_ffff_ffff
        )
    }

    // ---- admin (the Handle's methods and /admin/…) ----

    pub fn records(&self, kind: Kind) -> Vec<Value> {
        let db = lock(&self.db);
        let r = Renderer {
            db: &db,
            host: &self.host,
        };
        db.values(kind)
            .map(|rec| r.render(kind.schema(), rec, &Fields::all()))
            .collect()
    }

    pub fn record(&self, kind: Kind, id: i64) -> Option<Value> {
        let db = lock(&self.db);
        let r = Renderer {
            db: &db,
            host: &self.host,
        };
        db.get(kind, id)
            .map(|rec| r.render(kind.schema(), rec, &Fields::all()))
    }

    pub fn count(&self, kind: Kind) -> usize {
        lock(&self.db).count(kind)
    }

    pub fn set_bank_account(&self, number: Option<&str>) {
        let mut db = lock(&self.db);
        let banks: Vec<(i64, bool)> = db
            .values(Kind::Account)
            .filter(|a| flag(a, "isBankAccount"))
            .map(|a| (int(a, "id"), flag(a, "isInvoiceAccount")))
            .collect();
        for (id, invoice_account) in banks {
            db.update(Kind::Account, id, |a| match number {
                Some(n) if invoice_account => {
                    a.insert("bankAccountNumber".into(), json!(n));
                }
                _ => {
                    a.remove("bankAccountNumber");
                }
            });
        }
    }

    pub fn set_vat_registered(&self, registered: bool) {
        lock(&self.db).vat_registered = registered;
    }

    pub fn expire_sessions(&self) {
        let today = time::today();
        for s in lock(&self.sessions).values_mut() {
            s.expiration = s.expiration.min(today);
        }
    }

    pub fn set_faults(&self, faults: FaultConfig) {
        self.faults.set(faults);
    }

    pub fn set_rate_limit(&self, limit: Option<u32>, period_seconds: u64) {
        let mut rate = lock(&self.rate);
        rate.limit = limit;
        rate.period = Duration::from_secs(period_seconds);
        rate.start = rate.now();
        rate.used = 0;
    }

    pub fn advance_rate_clock(&self, by: Duration) {
        lock(&self.rate).skew += by;
    }

    pub fn request_counts(&self) -> RequestCounts {
        self.counts.snapshot()
    }

    pub fn reset_request_counts(&self) {
        self.counts.reset();
    }

    pub fn set_rate_reset_header_on_429(&self, on: bool) {
        lock(&self.rate).reset_on_429 = on;
    }

    pub fn sent_invoices(&self) -> Vec<i64> {
        lock(&self.db).sent_invoices.clone()
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.requests.records()
    }

    /// Back to the seed data, the configured faults, a fresh rate-limit period and no request
    /// counts. Sessions stay, and so does the request log.
    pub fn reset(&self) {
        *lock(&self.db) = seed::seed(&self.config);
        self.counts.reset();
        self.faults.set(self.config.faults.clone());
        self.set_rate_limit(
            self.config.tripletex_rate_limit,
            self.config.tripletex_rate_period_seconds,
        );
        self.set_rate_reset_header_on_429(true);
    }

    /// A session token valid until tomorrow, without the consumer and employee tokens.
    pub fn create_session(&self) -> String {
        self.new_session(time::today() + 1).1
    }

    fn new_session(&self, expiration: i64) -> (i64, String) {
        let (a, b) = (self.next(), self.next());
        let token = format!("test-{a:016x}{b:016x}");
        let mut sessions = lock(&self.sessions);
        let id = i64::try_from(sessions.len()).unwrap_or(0) + 1;
        sessions.insert(token.clone(), Session { expiration });
        (id, token)
    }

    fn admin(&self, method: &Method, path: &str, bytes: &[u8]) -> Result<Reply, ApiError> {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let kind = |name: &str| Kind::parse(&decode(name, false)).ok_or_else(ApiError::not_found);
        let json = || -> Result<Value, ApiError> {
            serde_json::from_slice(bytes).map_err(|e| ApiError::invalid_json(e.to_string()))
        };
        match (method.as_str(), segs.as_slice()) {
            ("GET", ["records", k]) => Ok(Reply::raw(json!({ "values": self.records(kind(k)?) }))),
            ("GET", ["count", k]) => Ok(Reply::raw(json!({ "count": self.count(kind(k)?) }))),
            ("GET", ["sent-invoices"]) => Ok(Reply::raw(json!({ "values": self.sent_invoices() }))),
            ("GET", ["requests"]) => Ok(Reply::raw(json!({ "values": self.requests() }))),
            ("GET", ["request-counts"]) => Ok(Reply::raw(
                serde_json::to_value(self.request_counts()).unwrap_or(Value::Null),
            )),
            ("DELETE", ["request-counts"]) => {
                self.reset_request_counts();
                Ok(Reply::no_content())
            }
            ("PUT", ["bank-account"]) => {
                let v = json()?;
                self.set_bank_account(v.get("bankAccountNumber").and_then(Value::as_str));
                Ok(Reply::no_content())
            }
            ("PUT", ["vat-registered"]) => {
                let v = json()?;
                self.set_vat_registered(
                    v.get("vatRegistered")
                        .and_then(Value::as_bool)
                        .unwrap_or(true),
                );
                Ok(Reply::no_content())
            }
            ("PUT", ["faults"]) => {
                let faults = serde_json::from_value(json()?)
                    .map_err(|e| ApiError::invalid_json(e.to_string()))?;
                self.set_faults(faults);
                Ok(Reply::no_content())
            }
            ("PUT", ["rate-limit"]) => {
                let v = json()?;
                let limit = v
                    .get("limit")
                    .and_then(Value::as_u64)
                    .and_then(|l| u32::try_from(l).ok());
                let period = v.get("periodSeconds").and_then(Value::as_u64);
                self.set_rate_limit(
                    limit,
                    period.unwrap_or(self.config.tripletex_rate_period_seconds),
                );
                self.set_rate_reset_header_on_429(
                    v.get("resetHeaderOn429")
                        .and_then(Value::as_bool)
                        .unwrap_or(true),
                );
                Ok(Reply::no_content())
            }
            ("POST", ["expire-sessions"]) => {
                self.expire_sessions();
                Ok(Reply::no_content())
            }
            ("POST", ["reset"]) => {
                self.reset();
                Ok(Reply::no_content())
            }
            ("POST", ["session"]) => Ok(Reply::raw(json!({ "token": self.create_session() }))),
            _ => Err(ApiError::not_found()),
        }
    }

    // ---- the API ----

    fn authenticate(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let raw = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::unauthorized("No Authorization header was sent."))?;
        let encoded = raw
            .strip_prefix("Basic ")
            .or_else(|| raw.strip_prefix("basic "))
            .ok_or_else(|| {
                ApiError::unauthorized("The Authorization header must use Basic authentication.")
            })?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| ApiError::unauthorized("The Authorization header is not base64."))?;
        let (user, token) = decoded.split_once(':').ok_or_else(|| {
            ApiError::unauthorized("The Authorization header has no session token.")
        })?;
        let company = lock(&self.db).company_id;
        match user.trim() {
            "" | "0" => {}
            u if u.parse::<i64>().is_ok_and(|c| c == company) => {}
            u if u.parse::<i64>().is_ok() => {
                return Err(ApiError::unauthorized(&format!(
                    "The session has no login access to company {u}."
                )));
            }
            u => {
                return Err(ApiError::unauthorized(&format!(
                    "Authorization header has invalid username: {u}. Should be a customer id or 0 for default."
                )));
            }
        }
        match lock(&self.sessions).get(token) {
            Some(s) if time::today() < s.expiration => Ok(()),
            Some(_) => Err(ApiError::unauthorized("The session token has expired.")),
            None => Err(ApiError::unauthorized("The session token is invalid.")),
        }
    }

    /// POST and PUT /token/session/:create. `prefix` is how the real service names query
    /// arguments in its messages (`arg:consumerToken`).
    fn create_session_from(
        &self,
        consumer: Option<&str>,
        employee: Option<&str>,
        expiration: Option<&str>,
        prefix: &str,
    ) -> Result<Value, ApiError> {
        let mut msgs = Vec::new();
        let mut reject = |name: &str, message: &str| {
            let f = format!("{prefix}{name}");
            msgs.push(Msg::new(f.clone(), message).at(f));
        };
        if consumer != Some(self.config.consumer_token.as_str()) {
            reject(
                "consumerToken",
                "The consumer token is invalid or does not exist.",
            );
        }
        if employee != Some(self.config.employee_token.as_str()) {
            reject(
                "employeeToken",
                "The employee token is invalid or does not exist.",
            );
        }
        let expiration = match expiration
            .filter(|s| !s.is_empty())
            .map(|s| (s, time::parse(s)))
        {
            None => {
                reject("expirationDate", NOT_NULL);
                None
            }
            Some((_, None)) => {
                reject("expirationDate", WRONG_TYPE);
                None
            }
            Some((_, Some(d))) if d <= time::today() => {
                reject(
                    "expirationDate",
                    "The expiration date must be later than today.",
                );
                None
            }
            Some((_, Some(d))) => Some(d),
        };
        let (true, Some(expiration)) = (msgs.is_empty(), expiration) else {
            return Err(ApiError::validation(msgs));
        };
        let (id, token) = self.new_session(expiration);
        let url = |p: &str| format!("{}/v2/token/{p}", self.host);
        Ok(json!({
            "id": id,
            "version": 0,
            "url": url(&format!("session/{id}")),
            "consumerToken": {"id": 1, "url": url("consumer/1")},
            "employeeToken": {"id": 1, "url": url("employee/1")},
            "expirationDate": time::format(expiration),
            "token": token,
        }))
    }

    fn handle(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        bytes: &[u8],
    ) -> Result<Reply, ApiError> {
        let Some(rest) = path.strip_prefix("/v2/") else {
            return Err(ApiError::not_found());
        };
        let owned: Vec<String> = rest
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| decode(s, false))
            .collect();
        let segs: Vec<&str> = owned.iter().map(String::as_str).collect();
        let q = Query::parse(query);
        let m = method.as_str();
        if segs == ["token", "session", ":create"] {
            return match m {
                "POST" => {
                    let b = json_body(bytes, "POST", "/token/session/:create")?;
                    let s = |k: &str| b.get(k).and_then(Value::as_str);
                    let v = self.create_session_from(
                        s("consumerToken"),
                        s("employeeToken"),
                        s("expirationDate"),
                        "",
                    )?;
                    Ok(Reply::value(201, v))
                }
                "PUT" => {
                    let (c, e, x) = (
                        q.get("consumerToken"),
                        q.get("employeeToken"),
                        q.get("expirationDate"),
                    );
                    Ok(Reply::value(
                        200,
                        self.create_session_from(c, e, x, "arg:")?,
                    ))
                }
                _ => Err(ApiError::method_not_allowed()),
            };
        }
        self.authenticate(headers)?;
        match (m, segs.as_slice()) {
            ("GET", ["token", "session", ">whoAmI"]) => {
                let db = lock(&self.db);
                let r = Renderer {
                    db: &db,
                    host: &self.host,
                };
                Ok(Reply::value(
                    200,
                    json!({
                        "employeeId": db.owner_employee_id,
                        "companyId": db.company_id,
                        "employee": {"id": db.owner_employee_id, "url": r.url("Employee", db.owner_employee_id)},
                        "company": {"id": db.company_id, "url": r.url("Company", db.company_id)},
                        "language": "NO",
                    }),
                ))
            }
            ("DELETE", ["token", "session", token]) => match lock(&self.sessions).remove(*token) {
                Some(_) => Ok(Reply::no_content()),
                None => Err(ApiError::not_found()),
            },
            _ => self.resource(m, &segs, &q, headers, bytes),
        }
    }

    fn resource(
        &self,
        m: &str,
        segs: &[&str],
        q: &Query,
        headers: &HeaderMap,
        bytes: &[u8],
    ) -> Result<Reply, ApiError> {
        let mut db = lock(&self.db);
        let path = format!("/{}", segs.join("/"));
        let written = match (m, segs) {
            ("POST", ["customer"]) => {
                let b = json_body(bytes, m, &path)?;
                Some((
                    Kind::Customer,
                    entities::create_party(&mut db, Kind::Customer, &b)?,
                    201,
                ))
            }
            ("POST", ["supplier"]) => {
                let b = json_body(bytes, m, &path)?;
                Some((
                    Kind::Supplier,
                    entities::create_party(&mut db, Kind::Supplier, &b)?,
                    201,
                ))
            }
            ("POST", ["product"]) => {
                let b = json_body(bytes, m, &path)?;
                Some((Kind::Product, entities::create_product(&mut db, &b)?, 201))
            }
            ("POST", ["order"]) => {
                let b = json_body(bytes, m, &path)?;
                let mut problems = Problems::default();
                sales::check_new_order(&db, &b, &Scope::root(), &mut problems);
                problems.into_result()?;
                Some((Kind::Order, sales::create_order(&mut db, &b), 201))
            }
            ("POST", ["invoice"]) => {
                let b = json_body(bytes, m, &path)?;
                Some((
                    Kind::Invoice,
                    sales::create_invoice(&mut db, &b, payment(q)?)?,
                    201,
                ))
            }
            ("POST" | "PUT", ["customer" | "supplier" | "product", "list"]) => {
                let kind = Kind::parse(segs[0]).ok_or_else(ApiError::not_found)?;
                let items = body::parse_list(bytes, m, &path)?;
                let ids = entities::write_list(&mut db, kind, m == "PUT", &items)?;
                let r = Renderer {
                    db: &db,
                    host: &self.host,
                };
                let values: Vec<Value> = ids
                    .iter()
                    .filter_map(|id| db.get(kind, *id))
                    .map(|rec| r.render(kind.schema(), rec, &Fields::all()))
                    .collect();
                return Ok(Reply {
                    status: if m == "POST" { 201 } else { 200 },
                    body: Some(json!({
                        "fullResultSize": values.len(),
                        "from": 0,
                        "count": values.len(),
                        "versionDigest": null,
                        "values": values,
                    })),
                });
            }
            ("PUT", ["customer" | "supplier", id]) => {
                let kind = if segs[0] == "customer" {
                    Kind::Customer
                } else {
                    Kind::Supplier
                };
                let id = path_id(id)?;
                entities::update_party(&mut db, kind, id, &json_body(bytes, m, &path)?)?;
                Some((kind, id, 200))
            }
            ("PUT", ["product", id]) => {
                let id = path_id(id)?;
                entities::update_product(&mut db, id, &json_body(bytes, m, &path)?)?;
                Some((Kind::Product, id, 200))
            }
            ("PUT", ["ledger", "account", id]) => {
                let id = path_id(id)?;
                entities::update_account(&mut db, id, &json_body(bytes, m, &path)?)?;
                Some((Kind::Account, id, 200))
            }
            ("PUT", ["order", id]) => {
                let id = path_id(id)?;
                let lines = q.bool("updateLinesAndGroups")?.unwrap_or(false);
                sales::update_order(&mut db, id, &json_body(bytes, m, &path)?, lines)?;
                Some((Kind::Order, id, 200))
            }
            ("PUT", ["order", id, ":invoice"]) => {
                let id = path_id(id)?;
                // The action takes query parameters only; a body is ignored, as by Tripletex.
                let invoice_date = match q.get("invoiceDate").filter(|d| !d.is_empty()) {
                    None => {
                        return Err(ApiError::validation(vec![Msg::new(
                            "invoiceDate",
                            NOT_NULL,
                        )]));
                    }
                    Some(d) => time::parse(d).ok_or_else(|| {
                        ApiError::mapping(vec![Msg::new("invoiceDate", WRONG_TYPE)])
                    })?,
                };
                let credited = q.int("invoiceIdIfIsCreditNote")?.filter(|n| *n > 0);
                if let Some(credited) = credited {
                    credit::check_credit_order(&db, id, credited)?;
                }
                let invoice =
                    sales::invoice_existing_order(&mut db, id, invoice_date, payment(q)?)?;
                if let Some(credited) = credited {
                    credit::link(&mut db, invoice, credited);
                }
                Some((Kind::Invoice, invoice, 200))
            }
            ("PUT", ["invoice", id, ":createCreditNote"]) => {
                let id = path_id(id)?;
                let date = match q.get("date").filter(|d| !d.is_empty()) {
                    None => {
                        return Err(ApiError::validation(vec![Msg::new("date", NOT_NULL)]));
                    }
                    Some(d) => time::parse(d)
                        .ok_or_else(|| ApiError::mapping(vec![Msg::new("date", WRONG_TYPE)]))?,
                };
                let send = q.bool("sendToCustomer")?.unwrap_or(true);
                let comment = q.get("comment");
                let invoice = credit::create_credit_note(&mut db, id, date, comment, send)?;
                Some((Kind::Invoice, invoice, 200))
            }
            ("DELETE", ["order", id]) => {
                sales::delete_order(&mut db, path_id(id)?)?;
                return Ok(Reply::no_content());
            }
            ("DELETE", ["customer" | "supplier" | "product", id]) => {
                let kind = Kind::parse(segs[0]).ok_or_else(ApiError::not_found)?;
                db.remove(kind, path_id(id)?)
                    .ok_or_else(ApiError::not_found)?;
                return Ok(Reply::no_content());
            }
            _ => None,
        };
        let r = Renderer {
            db: &db,
            host: &self.host,
        };
        if let Some((kind, id, status)) = written {
            let rec = db.get(kind, id).ok_or_else(ApiError::not_found)?;
            return Ok(Reply::value(
                status,
                r.render(kind.schema(), rec, &Fields::all()),
            ));
        }
        let Some((kind, id)) = route(segs) else {
            return Err(ApiError::not_found());
        };
        if m != "GET" {
            return Err(ApiError::method_not_allowed());
        }
        match id {
            None => {
                let rows = search(&db, kind, q)?;
                let if_none_match = headers
                    .get(header::IF_NONE_MATCH)
                    .and_then(|v| v.to_str().ok());
                Ok(Reply::raw(list(&r, kind, q, rows, if_none_match)?))
            }
            Some(id) => {
                let fields = fields_of(q, kind)?;
                let rec = db.get(kind, path_id(id)?).ok_or_else(ApiError::not_found)?;
                Ok(Reply::value(200, r.render(kind.schema(), rec, &fields)))
            }
        }
    }
}

/// The resource a path names, and the id segment if it names one record.
fn route<'a>(segs: &[&'a str]) -> Option<(Kind, Option<&'a str>)> {
    let joined = segs.join("/");
    if let Some(k) = Kind::ALL.into_iter().find(|k| k.path() == joined) {
        return Some((k, None));
    }
    let (last, parent) = segs.split_last()?;
    let parent = parent.join("/");
    Kind::ALL
        .into_iter()
        .find(|k| k.path() == parent)
        .map(|k| (k, Some(*last)))
}

fn path_id(s: &str) -> Result<i64, ApiError> {
    s.parse().map_err(|_| ApiError::path_param(s))
}

/// A JSON object body, checked against Tripletex's schema for the operation.
fn json_body(bytes: &[u8], method: &str, path: &str) -> Result<Map<String, Value>, ApiError> {
    let b = body::parse(bytes)?;
    body::check_spec(method, path, &b)?;
    Ok(b)
}

fn payment(q: &Query) -> Result<Payment, ApiError> {
    Ok(Payment {
        send: q.bool("sendToCustomer")?.unwrap_or(true),
        paid_amount: q.decimal("paidAmount")?,
        payment_type_id: q.int("paymentTypeId")?,
    })
}

/// Every request: fault, rate limit, then the API (or the admin back door).
pub async fn entry(
    State(app): State<Arc<App>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    req: Request,
) -> Response {
    let request_id = app.request_id();
    let (parts, body) = req.into_parts();
    let bytes = match to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return respond(
                Err(ApiError::invalid_json(e.to_string())),
                &request_id,
                None,
            );
        }
    };
    let path = parts.uri.path();
    if let Some(rest) = path.strip_prefix("/admin/") {
        return respond(app.admin(&parts.method, rest, &bytes), &request_id, None);
    }
    let is_write = !matches!(parts.method, Method::GET | Method::HEAD);
    let (fault, latency) = app.faults.draw(is_write, path);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut rate = lock(&app.rate).take();
    let run = || {
        app.handle(
            &parts.method,
            path,
            parts.uri.query(),
            &parts.headers,
            &bytes,
        )
    };
    let outcome = if rate.exceeded {
        Err(ApiError::too_many_requests())
    } else {
        match fault {
            Fault::None => run(),
            Fault::TooManyRequests => {
                rate.remaining = 0;
                Err(ApiError::too_many_requests())
            }
            Fault::ServerError(status) => Err(ApiError::server(status)),
            Fault::Slow(d) => {
                tokio::time::sleep(d).await;
                run()
            }
            Fault::Drop => {
                // The request takes effect and only the answer is lost: the ambiguous failure a
                // client must survive without writing twice.
                let _effect = run();
                conn.kill();
                app.requests.push(record(&parts, None));
                app.counts.count(route_key(&parts.method, path), None);
                return Response::new(Body::empty());
            }
        }
    };
    let rec = record(&parts, Some(&outcome));
    app.counts.count(route_key(&parts.method, path), rec.status);
    app.requests.push(rec);
    respond(outcome, &request_id, Some(rate))
}

/// `"PUT /product/{id}"`: the method and the path under `/v2` with its ids as `{id}` (and a
/// session token as `{token}`), so one route is one key however many records it touched.
fn route_key(method: &Method, path: &str) -> String {
    let rest = path.strip_prefix("/v2").unwrap_or(path);
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let template: Vec<&str> = segs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if s.bytes().all(|b| b.is_ascii_digit()) {
                "{id}"
            } else if i == 2 && segs[..2] == ["token", "session"] && !s.starts_with([':', '>']) {
                "{token}"
            } else {
                s
            }
        })
        .collect();
    format!("{method} /{}", template.join("/"))
}

/// What the log keeps of a request and its answer (`None`: the connection was dropped).
fn record(
    parts: &axum::http::request::Parts,
    outcome: Option<&Result<Reply, ApiError>>,
) -> RequestRecord {
    let (status, code) = match outcome {
        Some(Ok(r)) => (Some(r.status), None),
        Some(Err(e)) => (Some(e.status), Some(e.code)),
        None => (None, None),
    };
    RequestRecord {
        status,
        code,
        ..RequestRecord::new(&parts.method, &parts.uri, &parts.headers)
    }
}

fn respond(outcome: Result<Reply, ApiError>, request_id: &str, rate: Option<RateInfo>) -> Response {
    let (status, body) = match outcome {
        Ok(r) => (r.status, r.body),
        Err(e) => (e.status, Some(e.body(request_id))),
    };
    let mut resp = Response::new(
        body.as_ref()
            .map_or_else(Body::empty, |v| Body::from(v.to_string())),
    );
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    if body.is_some() {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-tlx-request-id", v);
    }
    // Every API answer carries the rate headers, as Tripletex's do.
    if let Some(rate) = rate {
        let limited = status == 429;
        h.insert(
            "x-rate-limit-limit",
            HeaderValue::from(rate.limit.unwrap_or(u32::MAX)),
        );
        h.insert("x-rate-limit-remaining", HeaderValue::from(rate.remaining));
        // Tripletex has been seen to leave the reset header off its 429s (issue #103).
        if !limited || rate.reset_on_429 {
            h.insert("x-rate-limit-reset", HeaderValue::from(rate.reset_seconds));
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_a_resource_and_maybe_a_record() {
        assert_eq!(route(&["product", "unit"]), Some((Kind::ProductUnit, None)));
        assert_eq!(route(&["product", "12"]), Some((Kind::Product, Some("12"))));
        assert_eq!(
            route(&["ledger", "vatType", "3"]),
            Some((Kind::VatType, Some("3")))
        );
        assert_eq!(route(&["nothing"]), None);
    }

    #[test]
    fn route_keys_name_templates_not_records() {
        let key = |m: Method, p: &str| route_key(&m, p);
        assert_eq!(key(Method::PUT, "/v2/product/42"), "PUT /product/{id}");
        assert_eq!(key(Method::POST, "/v2/product/list"), "POST /product/list");
        assert_eq!(key(Method::GET, "/v2/product"), "GET /product");
        assert_eq!(
            key(Method::PUT, "/v2/order/7/:invoice"),
            "PUT /order/{id}/:invoice"
        );
        assert_eq!(
            key(Method::DELETE, "/v2/token/session/test-abc"),
            "DELETE /token/session/{token}"
        );
        assert_eq!(
            key(Method::GET, "/v2/token/session/>whoAmI"),
            "GET /token/session/>whoAmI"
        );
    }

    #[test]
    fn a_rate_limit_counts_requests_in_its_period() {
        let mut r = RateLimiter {
            limit: Some(2),
            period: Duration::from_secs(60),
            start: Instant::now(),
            used: 0,
            reset_on_429: true,
            skew: Duration::ZERO,
        };
        let (a, b, c) = (r.take(), r.take(), r.take());
        assert_eq!((a.remaining, b.remaining, c.remaining), (1, 0, 0));
        assert_eq!((a.exceeded, b.exceeded, c.exceeded), (false, false, true));
        assert!((59..=60).contains(&c.reset_seconds));
    }
}
