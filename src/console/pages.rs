//! The console's pages and actions: sign-in, status, activity, dead letters and one event's
//! outcome. Each handler reads the store, builds the page's values and renders its template.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::auth::{self, Caller};
use super::state::{Console, ConsoleTenant, PageError, no_store, redirect};
use crate::expr::filters::percent_encode;
use crate::runtime::initial;
use crate::spec::Direction;
use crate::store::{ActivityFilter, DeadLetter, DeadLetterFilter, Store};

pub(super) type Params = Query<HashMap<String, String>>;
/// Forms repeat names (`id=1&id=2`), so they are read as pairs.
pub(super) type Fields = Form<Vec<(String, String)>>;

const PAGE: usize = 50;
const HOUR_MS: i64 = 3600 * 1000;

pub(super) fn param<'a>(q: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    q.get(name).map(|s| s.trim()).filter(|s| !s.is_empty())
}

pub(super) fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

pub(super) fn ctx(pairs: Value) -> Map<String, Value> {
    match pairs {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

pub(super) fn signed_in<S: Store + 'static>(
    c: &Console<S>,
    headers: &HeaderMap,
) -> Result<Caller, PageError> {
    c.caller(headers).ok_or_else(|| {
        // A script's wrong token is answered as such, not with the sign-in form.
        if headers.contains_key(header::AUTHORIZATION) {
            PageError::Unauthorized
        } else {
            PageError::SignIn
        }
    })
}

/// A POST from a signed-in caller whose form carries the session's token.
pub(super) fn posted<S: Store + 'static>(
    c: &Console<S>,
    headers: &HeaderMap,
    fields: &[(String, String)],
) -> Result<Caller, PageError> {
    let caller = signed_in(c, headers)?;
    if !caller.allows_post(field(fields, "csrf")) {
        tracing::warn!("A console POST without the session's form token was refused.");
        return Err(PageError::Forged);
    }
    Ok(caller)
}

pub async fn login_form<S: Store + 'static>(State(c): State<Arc<Console<S>>>) -> Response {
    login_page(&c, StatusCode::OK, None)
}

fn login_page<S: Store + 'static>(
    c: &Console<S>,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let html = c
        .templates
        .get_template("login.html")
        .and_then(|t| t.render(minijinja::value::Serde(json!({ "error": error }))));
    match html {
        Ok(html) => no_store((status, Html(html)).into_response()),
        Err(e) => PageError::Template(e.to_string()).into_response(),
    }
}

pub async fn login<S: Store + 'static>(
    State(c): State<Arc<Console<S>>>,
    headers: HeaderMap,
    Form(fields): Fields,
) -> Response {
    // Another site's form could sign a browser into a session of that site's choosing; browsers
    // say where a form came from.
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return PageError::Forged.into_response();
    }
    let token = field(&fields, "token").unwrap_or("");
    let Some(scope) = c.tokens.scope_of(token) else {
        tracing::warn!("A console sign-in with a wrong token was refused.");
        return login_page(
            &c,
            StatusCode::UNAUTHORIZED,
            Some("That token does not open the console."),
        );
    };
    let id = match c.sessions.open(scope, crate::dates::now_millis()) {
        Ok(id) => id,
        Err(e) => return PageError::Internal(e.to_string()).into_response(),
    };
    let mut response = redirect("/console/");
    if let Ok(v) = HeaderValue::from_str(&auth::cookie(&id, c.secure)) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

pub async fn logout<S: Store + 'static>(
    State(c): State<Arc<Console<S>>>,
    headers: HeaderMap,
    Form(fields): Fields,
) -> Result<Response, PageError> {
    posted(&c, &headers, &fields)?;
    if let Some(id) = auth::session_id(&headers) {
        c.sessions.close(&id);
    }
    let mut response = redirect("/console/login");
    if let Ok(v) = HeaderValue::from_str(&auth::expired_cookie(c.secure)) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// Status: one card per tenant in view.
pub async fn status<S: Store + 'static>(
    State(c): State<Arc<Console<S>>>,
    headers: HeaderMap,
    Query(q): Params,
) -> Result<Response, PageError> {
    let caller = signed_in(&c, &headers)?;
    let shown: Vec<&ConsoleTenant> = match param(&q, "tenant") {
        Some(t) => vec![c.tenant(&caller, Some(t))?],
        None => c.visible(&caller).collect(),
    };
    let mut cards = Vec::new();
    for t in &shown {
        cards.push(card(&c, t).await?);
    }
    let tenant = (shown.len() == 1).then(|| shown[0].id.as_str());
    let pack = c.status.pack();
    c.page(
        &caller,
        tenant,
        "status.html",
        ctx(json!({ "title": "Status", "cards": cards, "pack": pack })),
    )
}

async fn card<S: Store + 'static>(c: &Console<S>, t: &ConsoleTenant) -> Result<Value, PageError> {
    let now = crate::dates::now_millis();
    let id = Some(t.id.as_str());
    let queue = c.store.queue_summary(id).await?;
    let hour = c.store.activity_counts(id, now - HOUR_MS).await?;
    let day = c.store.activity_counts(id, now - 24 * HOUR_MS).await?;
    let (_, dead) = c
        .store
        .find_dead_letters(&DeadLetterFilter {
            tenant: Some(t.id.clone()),
            limit: 1,
            ..DeadLetterFilter::default()
        })
        .await?;
    let (tripletex_used, tripletex_remaining) = t.tripletex.budget_in_use();
    let pack = c.packs.borrow().clone();
    let mut initial_sync = Vec::new();
    for plan in t.view(&pack).plans() {
        if plan.direction != Direction::TripletexToRackbeat {
            continue;
        }
        let saved = c
            .store
            .get_checkpoint(&t.id, &initial::checkpoint_name(&plan.entity))
            .await?;
        if let Some(at) = initial::progress(saved.as_deref()) {
            initial_sync.push(json!({ "entity": plan.entity, "at": at }));
        }
    }
    Ok(json!({
        "tenant": t.id,
        "invoice_mode": t.invoice_mode.as_str(),
        "queue": queue,
        "hour": hour,
        "day": day,
        "dead_letters": dead,
        "rackbeat": { "used": t.rackbeat.requests_last_minute(), "limit": t.rackbeat.requests_per_minute() },
        "tripletex": { "used": tripletex_used, "remaining": tripletex_remaining },
        "catch_up": c.status.catch_up(&t.id),
        "initial_sync": initial_sync,
    }))
}

/// The entities of the mappings a tenant runs from Rackbeat, for the filters' choices.
fn entities(c: &Console<impl Store + 'static>, t: &ConsoleTenant) -> Vec<String> {
    let pack = c.packs.borrow().clone();
    let mut out: Vec<String> = t.view(&pack).realtime().map(|p| p.entity.clone()).collect();
    out.sort();
    out.dedup();
    out
}

/// Activity: the latest handled events, filterable, newest first, a page at a time.
pub async fn activity<S: Store + 'static>(
    State(c): State<Arc<Console<S>>>,
    headers: HeaderMap,
    Query(q): Params,
) -> Result<Response, PageError> {
    let caller = signed_in(&c, &headers)?;
    let t = c.tenant(&caller, param(&q, "tenant"))?;
    let filter = ActivityFilter {
        tenant: Some(t.id.clone()),
        entity: param(&q, "entity").map(str::to_string),
        outcome: param(&q, "outcome").map(str::to_string),
        text: param(&q, "q").map(str::to_string),
        before_id: param(&q, "before").and_then(|b| b.parse().ok()),
        // One row more than a page tells whether there is an older page.
        limit: PAGE + 1,
        event_id: None,
    };
    let mut rows = c.store.list_activity(&filter).await?;
    let more = rows.len() > PAGE;
    rows.truncate(PAGE);
    let pack = c.packs.borrow().clone();
    let rows: Vec<Value> = rows
        .iter()
        .map(|a| {
            let links = super::links::of(&pack, t, &a.entity, &a.key, a.target_id.as_ref());
            json!({ "row": a, "links": links })
        })
        .collect();
    let older = more
        .then(|| rows.last().and_then(|r| r["row"]["id"].as_i64()))
        .flatten();
    c.page(
        &caller,
        Some(&t.id),
        "activity.html",
        ctx(json!({
            "title": "Activity",
            "rows": rows,
            "entities": entities(&c, t),
            "outcomes": ["completed", "unchanged", "skipped", "ignored", "retried", "dead_lettered"],
            "filter": { "entity": filter.entity, "outcome": filter.outcome, "q": filter.text },
            "older": older,
        })),
    )
}

fn dead_letter_filter(
    t: &ConsoleTenant,
    entity: Option<&str>,
    text: Option<&str>,
) -> DeadLetterFilter {
    DeadLetterFilter {
        tenant: Some(t.id.clone()),
        entity: entity.map(str::to_string),
        text: text.map(str::to_string),
        before_id: None,
        limit: PAGE,
    }
}

/// Dead letters: latest failure first, filterable, with retry and discard for the ones ticked
/// or every one that matches.
pub async fn dead_letters<S: Store + 'static>(
    State(c): State<Arc<Console<S>>>,
    headers: HeaderMap,
    Query(q): Params,
) -> Result<Response, PageError> {
    let caller = signed_in(&c, &headers)?;
    let t = c.tenant(&caller, param(&q, "tenant"))?;
    let mut filter = dead_letter_filter(t, param(&q, "entity"), param(&q, "q"));
    filter.before_id = param(&q, "before").and_then(|b| b.parse().ok());
    filter.limit = PAGE + 1;
    let (mut letters, total) = c.store.find_dead_letters(&filter).await?;
    let more = letters.len() > PAGE;
    letters.truncate(PAGE);
    let older = more.then(|| letters.last().map(|d| d.id)).flatten();
    c.page(
        &caller,
        Some(&t.id),
        "dead_letters.html",
        ctx(json!({
            "title": "Dead letters",
            "letters": letters,
            "total": total,
            "entities": entities(&c, t),
            "filter": { "entity": filter.entity, "q": filter.text },
            "older": older,
            "done": param(&q, "done"),
            "as_of": crate::dates::now_millis(),
        })),
    )
}

/// A dead letter the caller may see, or not found (another tenant's is not found either).
async fn letter<S: Store + 'static>(
    c: &Console<S>,
    caller: &Caller,
    id: i64,
) -> Result<DeadLetter, PageError> {
    c.store
        .get_dead_letter(id)
        .await?
        .filter(|d| caller.scope.sees(&d.event.tenant))
        .ok_or_else(|| {
            PageError::NotFound(format!(
                "no dead letter {id}; it may have been retried or discarded"
            ))
        })
}

pub async fn dead_letter<S: Store + 'static>(
    State(c): State<Arc<Console<S>>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    let caller = signed_in(&c, &headers)?;
    let d = letter(&c, &caller, id).await?;
    let t = c.tenant(&caller, Some(&d.event.tenant))?;
    let pack = c.packs.borrow().clone();
    let links = super::links::of(&pack, t, &d.event.entity, &d.event.key, None);
    let (record, record_error) = match current_record(t, &pack, &d).await {
        Ok(r) => (r, None),
        Err(e) => (None, Some(e)),
    };
    c.page(
        &caller,
        Some(&t.id),
        "dead_letter.html",
        ctx(json!({
            "title": format!("Dead letter {id}"),
            "d": d,
            "links": links,
            "record": record,
            "record_error": record_error,
        })),
    )
}

/// The record as Rackbeat has it now (a delivery names only its key): what a fix starts from,
/// and what a retry reads. One read per page view.
/// How long the dead-letter page waits for the record as Rackbeat has it now.
const RECORD_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

async fn current_record(
    t: &ConsoleTenant,
    pack: &crate::plan::Pack,
    d: &DeadLetter,
) -> Result<Option<Value>, String> {
    let Some(plan) = t.view(pack).realtime().find(|p| p.entity == d.event.entity) else {
        return Ok(None);
    };
    let Some(path) = plan.source_path(&d.event.key).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    // The workers share this budget; a page does not wait for long behind them.
    let answer = tokio::time::timeout(RECORD_WAIT, t.rackbeat.get(&path, &[]))
        .await
        .map_err(|_| {
            format!(
                "Rackbeat's request budget is in use; not read within {} s",
                RECORD_WAIT.as_secs()
            )
        })?
        .map_err(|e| e.to_string())?;
    Ok(answer.map(|a| plan.select(&a).cloned().unwrap_or(a)))
}

/// The dead letters a retry or discard acts on: the ids ticked, or (`all`) every one that
/// matches the filter the form carries.
async fn chosen<S: Store + 'static>(
    c: &Console<S>,
    caller: &Caller,
    fields: &[(String, String)],
) -> Result<(Vec<DeadLetter>, String), PageError> {
    let t = c.tenant(caller, field(fields, "tenant"))?;
    let back = format!(
        "/console/dead-letters?tenant={}&entity={}&q={}",
        percent_encode(&t.id),
        percent_encode(field(fields, "entity").unwrap_or("")),
        percent_encode(field(fields, "q").unwrap_or(""))
    );
    if field(fields, "all").is_some() {
        let mut filter = dead_letter_filter(t, field(fields, "entity"), field(fields, "q"));
        filter.limit = 0;
        let (mut letters, _) = c.store.find_dead_letters(&filter).await?;
        // "All that match" is what the page showed: a letter that failed after it was rendered
        // is left for the operator to see first.
        if let Some(as_of) = field(fields, "as_of").and_then(|s| s.trim().parse::<i64>().ok()) {
            letters.retain(|d| d.last_failed_at <= as_of);
        }
        return Ok((letters, back));
    }
    let mut out = Vec::new();
    for (_, v) in fields.iter().filter(|(k, _)| k == "id") {
        let id: i64 = v
            .trim()
            .parse()
            .map_err(|_| PageError::BadRequest(format!("`{v}` is not a dead letter's id")))?;
        let d = letter(c, caller, id).await?;
        if d.event.tenant == t.id {
            out.push(d);
        }
    }
    if out.is_empty() {
        return Err(PageError::BadRequest("no dead letter was chosen".into()));
    }
    Ok((out, back))
}

/// Puts dead letters back in the queue. One retried from its own page goes to the page that
/// shows its event's outcome; several go back to the list, which says how many.
pub async fn retry<S: Store + 'static>(
    State(c): State<Arc<Console<S>>>,
    headers: HeaderMap,
    Form(fields): Fields,
) -> Result<Response, PageError> {
    let caller = posted(&c, &headers, &fields)?;
    let (letters, back) = chosen(&c, &caller, &fields).await?;
    let now = crate::dates::now_millis();
    let mut retried = 0;
    for d in &letters {
        if c.store.replay(d.id).await? {
            retried += 1;
        }
    }
    tracing::info!(retried, "Dead letters retried from the console.");
    if let [one] = letters.as_slice() {
        return Ok(redirect(&format!(
            "/console/events/{}?tenant={}&since={now}&entity={}&key={}",
            one.event.id,
            percent_encode(&one.event.tenant),
            percent_encode(&one.event.entity),
            percent_encode(&one.event.key)
        )));
    }
    Ok(redirect(&format!("{back}&done=retried+{retried}")))
}

pub async fn discard<S: Store + 'static>(
    State(c): State<Arc<Console<S>>>,
    headers: HeaderMap,
    Form(fields): Fields,
) -> Result<Response, PageError> {
    let caller = posted(&c, &headers, &fields)?;
    let (letters, back) = chosen(&c, &caller, &fields).await?;
    let mut discarded = 0;
    for d in &letters {
        if c.store.delete_dead_letter(d.id).await? {
            discarded += 1;
        }
    }
    tracing::info!(discarded, "Dead letters discarded from the console.");
    Ok(redirect(&format!("{back}&done=discarded+{discarded}")))
}

/// What became of one event since `since`: its activity, or "waiting" (the page refreshes
/// itself until there is an outcome).
pub async fn event<S: Store + 'static>(
    State(c): State<Arc<Console<S>>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(q): Params,
) -> Result<Response, PageError> {
    let caller = signed_in(&c, &headers)?;
    let t = c.tenant(&caller, param(&q, "tenant"))?;
    let since: i64 = param(&q, "since").and_then(|s| s.parse().ok()).unwrap_or(0);
    let rows = c
        .store
        .list_activity(&ActivityFilter {
            tenant: Some(t.id.clone()),
            event_id: Some(id),
            limit: 20,
            ..ActivityFilter::default()
        })
        .await?;
    let mut rows: Vec<_> = rows.into_iter().filter(|a| a.at >= since).collect();
    // A newer change of the same record (its webhook, say) supersedes the retried event in the
    // queue: the newer event's outcome is the record's.
    let mut superseded_by = None;
    if rows.is_empty()
        && let (Some(entity), Some(key)) = (param(&q, "entity"), param(&q, "key"))
    {
        let newer = c
            .store
            .list_activity(&ActivityFilter {
                tenant: Some(t.id.clone()),
                entity: Some(entity.to_string()),
                text: Some(key.to_string()),
                limit: 50,
                ..ActivityFilter::default()
            })
            .await?;
        if let Some(a) = newer
            .into_iter()
            .find(|a| a.key == key && a.at >= since && a.event_id != id && a.outcome != "retried")
        {
            superseded_by = Some(a.event_id);
            rows.push(a);
        }
    }
    // Retried is not an outcome yet: the event is back in the queue.
    let done = rows.first().is_some_and(|a| a.outcome != "retried");
    let pack = c.packs.borrow().clone();
    let links = rows
        .first()
        .map(|a| super::links::of(&pack, t, &a.entity, &a.key, a.target_id.as_ref()));
    let mut values = ctx(json!({
        "title": format!("Event {id}"),
        "id": id,
        "rows": rows,
        "done": done,
        "links": links,
        "superseded_by": superseded_by,
    }));
    if !done {
        values.insert("refresh".into(), 1.into());
    }
    c.page(&caller, Some(&t.id), "event.html", values)
}
