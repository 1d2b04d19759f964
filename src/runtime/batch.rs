//! Records of one entity synced together share their requests. The worker syncs the events of a
//! claim whose mappings declare bulk requests (`source.changed`, `target.batch`) side by side,
//! each through the per-record sync as if alone; where that sync would read its source, look its
//! record up or write it, it hands the request to the [`Batch`] instead. Once every record of the
//! batch is either waiting on a request or done, the waiting requests go out together: one list
//! of what changed in Rackbeat for the reads, one find for many natural keys, one create and one
//! update per `size` records. A request alone in its group goes out as the record's own.
//!
//! What the APIs answer is handed back to each record, which carries on as it would have: a lost
//! answer makes every record of the request retry (and the retry finds what was created), an item
//! Tripletex refused fails its record alone while the others are sent again, and a revision
//! conflict makes each record read its target and render again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::oneshot;

use super::tenant::Tenant;
use crate::connectors::{Api, ApiError, FieldMessage};
use crate::plan::{Pack, Plan};
use crate::spec::{Connection, WriteMethod};

/// How long before the oldest waiting event a list of changes starts: a webhook arrives seconds
/// after its change. A record changed earlier (a delivery Rackbeat retried for long) is not in
/// the list, and is read with a GET.
const SINCE_MARGIN_MS: i64 = 10 * 60 * 1000;

/// Pages of a list of changes read beyond those the waiting keys need at the least: changes made
/// meanwhile to other records push them further down.
const EXTRA_PAGES: usize = 2;

/// Whether a write creates or updates its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Create,
    Update,
}

/// What one batch learns of Rackbeat for the next; a worker keeps it.
#[derive(Debug, Default)]
pub struct Memory {
    /// Rackbeat's offset from UTC in seconds, as its records' `updated_at` show it: it filters
    /// in its local time. Until a record has shown it, UTC (an earlier, so safe, start).
    offset: AtomicI64,
    /// Per entity, the `updated_at` (filter format) of the latest change a list matched: a
    /// backlog read claim after claim goes on from there rather than from its start each time. A
    /// waiting record changed before it is read with a GET.
    cursors: Mutex<HashMap<String, String>>,
}

/// The requests of records synced together, and when to send them.
pub struct Batch {
    /// When the oldest event of the batch was received (milliseconds since the epoch).
    oldest_ms: i64,
    /// What earlier batches learnt of Rackbeat.
    memory: Arc<Memory>,
    state: Mutex<State>,
}

struct State {
    /// Records of the batch not done yet.
    active: usize,
    waiting: Vec<Call>,
}

type Answer<T> = oneshot::Sender<Result<T, ApiError>>;

/// A waiting read: the key, the path of its own GET, and where its answer goes.
type ReadItem = (String, String, Answer<Option<Value>>);

/// A request a record of the batch waits on. `plan` is its index in the pack.
pub struct Call {
    plan: usize,
    kind: CallKind,
}

enum CallKind {
    /// The source record `key`, read alone with `GET path`.
    Read {
        key: String,
        path: String,
        answer: Answer<Option<Value>>,
    },
    /// The items a find answers.
    Find {
        path: String,
        query: Vec<(String, String)>,
        answer: Answer<Vec<Value>>,
    },
    /// A create or update; `id` is the target id an update writes to.
    Write {
        op: Op,
        method: WriteMethod,
        path: String,
        query: Vec<(String, String)>,
        body: String,
        id: Option<Value>,
        answer: Answer<Value>,
    },
}

/// An answer that never came: the record is retried.
fn unanswered() -> ApiError {
    ApiError::Transport {
        method: "batch".into(),
        path: String::new(),
        message: "the batch ended before this request was answered".into(),
        sent: false,
    }
}

impl Batch {
    /// A batch of `records` events, the oldest received at `oldest_ms`; `memory` is kept by the
    /// worker from batch to batch.
    pub fn new(records: usize, oldest_ms: i64, memory: Arc<Memory>) -> Batch {
        Batch {
            oldest_ms,
            memory,
            state: Mutex::new(State {
                active: records,
                waiting: Vec::new(),
            }),
        }
    }

    /// Waits in line with `call`; when that makes every record of the batch wait, returns the
    /// calls for the caller to send.
    fn join(&self, call: Call) -> Option<Vec<Call>> {
        let mut state = self.state.lock().ok()?;
        state.waiting.push(call);
        (state.waiting.len() >= state.active).then(|| std::mem::take(&mut state.waiting))
    }

    /// A record of the batch is done: returns the calls for the caller to send when every other
    /// record now waits.
    pub fn finish(&self) -> Option<Vec<Call>> {
        let mut state = self.state.lock().ok()?;
        state.active = state.active.saturating_sub(1);
        (!state.waiting.is_empty() && state.waiting.len() >= state.active)
            .then(|| std::mem::take(&mut state.waiting))
    }

    async fn wait<T>(
        &self,
        pack: &Pack,
        tenant: &Tenant,
        call: Call,
        answer: oneshot::Receiver<Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        if let Some(calls) = self.join(call) {
            self.send(pack, tenant, calls).await;
        }
        match answer.await {
            Ok(answer) => answer,
            Err(_) => Err(unanswered()),
        }
    }

    /// The source record `key` of `plan` (selected from its envelope); `None` when it is gone.
    pub async fn read(
        &self,
        pack: &Pack,
        tenant: &Tenant,
        plan: &Plan,
        key: &str,
        path: &str,
    ) -> Result<Option<Value>, ApiError> {
        let (answer, rx) = oneshot::channel();
        let kind = CallKind::Read {
            key: key.to_string(),
            path: path.to_string(),
            answer,
        };
        self.wait(pack, tenant, call(pack, plan, kind), rx).await
    }

    /// The items `plan`'s find request answers for one record.
    pub async fn find(
        &self,
        pack: &Pack,
        tenant: &Tenant,
        plan: &Plan,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<Value>, ApiError> {
        let (answer, rx) = oneshot::channel();
        let kind = CallKind::Find {
            path: path.to_string(),
            query: owned(query),
            answer,
        };
        self.wait(pack, tenant, call(pack, plan, kind), rx).await
    }

    /// Writes one record's body; the answer is the record written.
    #[allow(clippy::too_many_arguments)]
    pub async fn write(
        &self,
        pack: &Pack,
        tenant: &Tenant,
        plan: &Plan,
        op: Op,
        method: WriteMethod,
        path: &str,
        query: &[(&str, String)],
        body: &str,
        id: Option<Value>,
    ) -> Result<Value, ApiError> {
        let (answer, rx) = oneshot::channel();
        let kind = CallKind::Write {
            op,
            method,
            path: path.to_string(),
            query: owned(query),
            body: body.to_string(),
            id,
            answer,
        };
        self.wait(pack, tenant, call(pack, plan, kind), rx).await
    }

    /// Sends the waiting calls, grouped by mapping and kind, and answers each.
    pub async fn send(&self, pack: &Pack, tenant: &Tenant, calls: Vec<Call>) {
        let mut reads: HashMap<usize, Vec<ReadItem>> = HashMap::new();
        let mut finds: HashMap<FindGroup, Vec<FindItem>> = HashMap::new();
        let mut writes: HashMap<WriteGroup, Vec<WriteItem>> = HashMap::new();
        for Call { plan, kind } in calls {
            match kind {
                CallKind::Read { key, path, answer } => {
                    reads.entry(plan).or_default().push((key, path, answer))
                }
                CallKind::Find {
                    path,
                    query,
                    answer,
                } => {
                    let param = pack
                        .plans
                        .get(plan)
                        .and_then(|p| p.target.batch.as_ref())
                        .and_then(|b| b.find_param.clone());
                    // A key holding the separator cannot share a request.
                    let value = param.as_ref().and_then(|p| {
                        query
                            .iter()
                            .find(|(k, _)| k == p)
                            .map(|(_, v)| v.clone())
                            .filter(|v| !v.contains(','))
                    });
                    let rest = match (&param, &value) {
                        (Some(p), Some(_)) => {
                            query.iter().filter(|(k, _)| k != p).cloned().collect()
                        }
                        _ => query.clone(),
                    };
                    let group = FindGroup {
                        plan,
                        path,
                        rest,
                        alone: value.is_none().then_some(finds.len()),
                    };
                    finds.entry(group).or_default().push(FindItem {
                        value,
                        query,
                        answer,
                    });
                }
                CallKind::Write {
                    op,
                    method,
                    path,
                    query,
                    body,
                    id,
                    answer,
                } => {
                    let group = WriteGroup { plan, op, query };
                    writes.entry(group).or_default().push(WriteItem {
                        method,
                        path,
                        body,
                        id,
                        answer,
                    });
                }
            }
        }
        for (plan, calls) in reads {
            if let Some(plan) = pack.plans.get(plan) {
                self.send_reads(tenant, plan, calls).await;
            }
        }
        for (group, calls) in finds {
            if let Some(plan) = pack.plans.get(group.plan) {
                send_finds(tenant, plan, group, calls).await;
            }
        }
        for (group, items) in writes {
            if let Some(plan) = pack.plans.get(group.plan) {
                send_writes(tenant, plan, group, items).await;
            }
        }
    }

    /// Reads waiting source records: with one list of what changed when there are several and
    /// the mapping has one, then a GET for each key the list did not return.
    async fn send_reads(&self, tenant: &Tenant, plan: &Plan, calls: Vec<ReadItem>) {
        let rackbeat = &tenant.rackbeat;
        let mut waiting: HashMap<String, (String, Answer<Option<Value>>)> = HashMap::new();
        for (key, path, answer) in calls {
            waiting.insert(key, (path, answer));
        }
        if let (Some(changed), true) = (&plan.source.changed, waiting.len() > 1) {
            let mut query: Vec<(&str, String)> = changed
                .query
                .iter()
                .map(|(k, v)| (k.as_str(), v.clone()))
                .collect();
            let memory = &self.memory;
            let offset_ms = memory.offset.load(Ordering::Relaxed) * 1000;
            let mut since = filter_time(self.oldest_ms - SINCE_MARGIN_MS + offset_ms);
            let cursor = memory
                .cursors
                .lock()
                .ok()
                .and_then(|c| c.get(&plan.entity).cloned());
            // The filter format orders as text as it does in time.
            if let Some(c) = cursor.filter(|c| *c > since) {
                since = c;
            }
            query.push((changed.since.as_str(), since));
            let mut latest: Option<String> = None;
            let (mut page, mut pages_read, mut max_pages) = (1, 0, usize::MAX);
            while !waiting.is_empty() && pages_read < max_pages {
                let p = match rackbeat.page(&changed.path, &query, page).await {
                    Ok(p) => p,
                    // Throttled or down: a GET each would fare no better, so all wait.
                    Err(e) if e.is_retryable() || e.is_ambiguous() => {
                        for (_, (_, answer)) in waiting.drain() {
                            let _ = answer.send(Err(e.clone()));
                        }
                        return;
                    }
                    // The list is refused (a filter this account lacks): GETs still work.
                    Err(e) => {
                        tracing::warn!(tenant = %tenant.id, entity = %plan.entity, error = %e, "Listing the changed records failed; reading them one by one.");
                        break;
                    }
                };
                if pages_read == 0 && !p.items.is_empty() {
                    max_pages = waiting.len().div_ceil(p.items.len()) + EXTRA_PAGES;
                }
                pages_read += 1;
                if let Some(offset) = p.items.iter().find_map(|i| {
                    i.get("updated_at")
                        .and_then(Value::as_str)
                        .and_then(utc_offset)
                }) {
                    memory.offset.store(offset, Ordering::Relaxed);
                }
                for item in p.items {
                    let Ok(key) = plan.key_of(&item) else {
                        continue;
                    };
                    if let Some((_, answer)) = waiting.remove(&key) {
                        let changed_at = item
                            .get("updated_at")
                            .and_then(Value::as_str)
                            .and_then(super::catchup::filter_time);
                        latest = latest.max(changed_at);
                        let _ = answer.send(Ok(Some(item)));
                    }
                }
                match p.next {
                    Some(n) => page = n,
                    None => break,
                }
            }
            if let (Some(latest), Ok(mut cursors)) = (latest, memory.cursors.lock()) {
                let cursor = cursors.entry(plan.entity.clone()).or_default();
                if latest > *cursor {
                    *cursor = latest;
                }
            }
            if !waiting.is_empty() {
                tracing::debug!(tenant = %tenant.id, entity = %plan.entity, missing = waiting.len(), "The list of changes did not hold every waiting record; reading the rest one by one.");
            }
        }
        for (_, (path, answer)) in waiting {
            let read = rackbeat
                .get(&path, &[])
                .await
                .map(|r| r.and_then(|r| plan.select_owned(r)));
            let _ = answer.send(read);
        }
    }
}

/// Where a syncer's requests go: straight to the APIs, or into the batch of records being synced
/// together, when the mapping declares the bulk form of the request.
#[derive(Default)]
pub struct Lane {
    batch: Mutex<Option<Arc<Batch>>>,
}

impl Lane {
    /// Sends the requests from now on through `batch` (or alone again, with `None`).
    pub fn set(&self, batch: Option<Arc<Batch>>) {
        if let Ok(mut b) = self.batch.lock() {
            *b = batch;
        }
    }

    fn current(&self) -> Option<Arc<Batch>> {
        self.batch.lock().ok().and_then(|b| b.clone())
    }

    /// The source record `key`, selected from its envelope; `None` when it is gone.
    pub async fn read(
        &self,
        pack: &Pack,
        tenant: &Tenant,
        plan: &Plan,
        key: &str,
        path: &str,
    ) -> Result<Option<Value>, ApiError> {
        match self.current() {
            Some(b) if plan.source.changed.is_some() => b.read(pack, tenant, plan, key, path).await,
            _ => Ok(tenant
                .rackbeat
                .get(path, &[])
                .await?
                .and_then(|r| plan.select_owned(r))),
        }
    }

    /// The items `plan`'s find request answers.
    pub async fn find(
        &self,
        pack: &Pack,
        tenant: &Tenant,
        plan: &Plan,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<Value>, ApiError> {
        let shared = plan
            .target
            .batch
            .as_ref()
            .is_some_and(|b| b.find_param.is_some());
        match self.current() {
            Some(b) if shared => b.find(pack, tenant, plan, path, query).await,
            _ => target_api(tenant, plan).find(path, query).await,
        }
    }

    /// Sends one record's write; `id` is the target id an update writes to.
    #[allow(clippy::too_many_arguments)]
    pub async fn write(
        &self,
        pack: &Pack,
        tenant: &Tenant,
        plan: &Plan,
        op: Op,
        method: WriteMethod,
        path: &str,
        query: &[(&str, String)],
        body: &str,
        id: Option<Value>,
    ) -> Result<Value, ApiError> {
        let shared = plan.target.batch.as_ref().is_some_and(|b| match op {
            Op::Create => b.create.is_some(),
            Op::Update => b.update.is_some(),
        });
        match self.current() {
            Some(b) if shared => {
                b.write(pack, tenant, plan, op, method, path, query, body, id)
                    .await
            }
            _ => {
                target_api(tenant, plan)
                    .write(method, path, query, body)
                    .await
            }
        }
    }
}

fn call(pack: &Pack, plan: &Plan, kind: CallKind) -> Call {
    let plan = pack
        .plans
        .iter()
        .position(|p| std::ptr::eq(p, plan))
        .unwrap_or(usize::MAX);
    Call { plan, kind }
}

fn owned(query: &[(&str, String)]) -> Vec<(String, String)> {
    query
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn borrowed(query: &[(String, String)]) -> Vec<(&str, String)> {
    query.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()
}

/// The UTC offset in seconds of a Rackbeat time (`2025-02-27T14:03:55+01:00`).
fn utc_offset(time: &str) -> Option<i64> {
    let zone = time.get(19..)?;
    let zone = zone.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    if zone == "Z" {
        return Some(0);
    }
    let sign = match zone.get(..1)? {
        "+" => 1,
        "-" => -1,
        _ => return None,
    };
    let hours: i64 = zone.get(1..3)?.parse().ok()?;
    let minutes: i64 = zone.get(4..6)?.parse().ok()?;
    Some(sign * (hours * 3600 + minutes * 60))
}

/// Rackbeat's filter format (`2025-02-27 14:03:55`) of a time in milliseconds.
fn filter_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = crate::dates::civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

fn target_api<'a>(tenant: &'a Tenant, plan: &Plan) -> Api<'a> {
    match plan.direction.target() {
        Connection::Rackbeat => Api::Rackbeat(&tenant.rackbeat),
        Connection::Tripletex => Api::Tripletex(&tenant.tripletex),
    }
}

/// Finds that can share a request: one mapping, one path, the same query but for the key
/// parameter. A find that cannot share (`alone`) is a group of its own.
#[derive(PartialEq, Eq, Hash)]
struct FindGroup {
    plan: usize,
    path: String,
    rest: Vec<(String, String)>,
    alone: Option<usize>,
}

struct FindItem {
    /// The key parameter's value, when the find can share a request.
    value: Option<String>,
    /// The query as rendered, for a find sent alone.
    query: Vec<(String, String)>,
    answer: Answer<Vec<Value>>,
}

/// The natural key of a find's answer item, as text.
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// Sends a group of finds: alone as it was rendered, or together with the keys joined, each
/// record keeping the items whose natural key is its own.
async fn send_finds(tenant: &Tenant, plan: &Plan, group: FindGroup, calls: Vec<FindItem>) {
    let api = target_api(tenant, plan);
    let param = plan
        .target
        .batch
        .as_ref()
        .and_then(|b| b.find_param.clone());
    let size = plan.target.batch.as_ref().map_or(1, |b| b.size);
    let (Some(param), None, true) = (param, group.alone, calls.len() > 1) else {
        for call in calls {
            let found = api.find(&group.path, &borrowed(&call.query)).await;
            let _ = call.answer.send(found);
        }
        return;
    };
    let mut calls = calls;
    while !calls.is_empty() {
        let chunk: Vec<FindItem> = calls.drain(..size.min(calls.len())).collect();
        let mut values: Vec<String> = chunk.iter().filter_map(|c| c.value.clone()).collect();
        values.sort();
        values.dedup();
        let mut query = borrowed(&group.rest);
        query.push((param.as_str(), values.join(",")));
        match api.find(&group.path, &query).await {
            Ok(items) => {
                for call in chunk {
                    let mine = items
                        .iter()
                        .filter(|i| text(i.get(&plan.target.natural_key)) == call.value)
                        .cloned()
                        .collect();
                    let _ = call.answer.send(Ok(mine));
                }
            }
            Err(e) => {
                for call in chunk {
                    let _ = call.answer.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Writes that can share a request: one mapping, creates or updates, the same query.
#[derive(PartialEq, Eq, Hash)]
struct WriteGroup {
    plan: usize,
    op: Op,
    query: Vec<(String, String)>,
}

struct WriteItem {
    method: WriteMethod,
    path: String,
    body: String,
    id: Option<Value>,
    answer: Answer<Value>,
}

/// Sends a group of writes: alone as rendered, or `size` at a time through the mapping's bulk
/// request. Tripletex refuses a list whole when one item is bad, naming it (`[3].number`): that
/// item fails alone and the others are sent again.
async fn send_writes(tenant: &Tenant, plan: &Plan, group: WriteGroup, items: Vec<WriteItem>) {
    let api = target_api(tenant, plan);
    let query = borrowed(&group.query);
    let bulk = plan.target.batch.as_ref().and_then(|b| match group.op {
        Op::Create => b.create.clone(),
        Op::Update => b.update.clone(),
    });
    let size = plan.target.batch.as_ref().map_or(1, |b| b.size);
    let (Some(bulk), true) = (bulk, items.len() > 1) else {
        for item in items {
            let answer = api.write(item.method, &item.path, &query, &item.body).await;
            let _ = item.answer.send(answer);
        }
        return;
    };
    let mut items = items;
    while !items.is_empty() {
        let mut chunk: Vec<WriteItem> = items.drain(..size.min(items.len())).collect();
        // Each pass sends what is left of the chunk after the items refused by the last one.
        while !chunk.is_empty() {
            if chunk.len() == 1 {
                let item = chunk.remove(0);
                let answer = api.write(item.method, &item.path, &query, &item.body).await;
                let _ = item.answer.send(answer);
                break;
            }
            let body = match list_body(&chunk, group.op) {
                Ok(b) => b,
                Err(message) => {
                    let e = ApiError::Decode {
                        method: bulk.method.as_str().into(),
                        path: bulk.path.clone(),
                        message,
                    };
                    for item in chunk.drain(..) {
                        let _ = item.answer.send(Err(e.clone()));
                    }
                    break;
                }
            };
            match api.write(bulk.method, &bulk.path, &query, &body).await {
                Ok(answer) => {
                    let values = answer.get("values").and_then(Value::as_array);
                    match values {
                        Some(values) if values.len() == chunk.len() => {
                            for (item, value) in chunk.drain(..).zip(values) {
                                let _ = item.answer.send(Ok(value.clone()));
                            }
                        }
                        _ => {
                            let e = ApiError::Decode {
                                method: bulk.method.as_str().into(),
                                path: bulk.path.clone(),
                                message: format!(
                                    "the answer does not list the {} records sent",
                                    chunk.len()
                                ),
                            };
                            for item in chunk.drain(..) {
                                let _ = item.answer.send(Err(e.clone()));
                            }
                        }
                    }
                }
                Err(e) => {
                    let refused = refused_items(&e, chunk.len());
                    if refused.is_empty() {
                        for item in chunk.drain(..) {
                            let _ = item.answer.send(Err(e.clone()));
                        }
                        break;
                    }
                    // Highest index first, so the lower ones stay where they are.
                    for (i, fields) in refused.into_iter().rev() {
                        let item = chunk.remove(i);
                        let refusal = item_error(&e, &item, fields);
                        let _ = item.answer.send(Err(refusal));
                    }
                }
            }
        }
    }
}

/// The list body: the records' bodies in order, each update with the id of its record.
fn list_body(chunk: &[WriteItem], op: Op) -> Result<String, String> {
    let mut out = String::from("[");
    for (i, item) in chunk.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match (&item.id, op) {
            (Some(id), Op::Update) => {
                let mut body: Value = serde_json::from_str(&item.body)
                    .map_err(|e| format!("the body for {} is not JSON: {e}", item.path))?;
                if let Some(fields) = body.as_object_mut() {
                    fields.entry("id").or_insert_with(|| id.clone());
                }
                out.push_str(&body.to_string());
            }
            _ => out.push_str(&item.body),
        }
    }
    out.push(']');
    Ok(out)
}

/// The items a refused list names (`[3].number`), each with its messages, the index stripped;
/// empty when the refusal names none (then it is the whole request's).
fn refused_items(e: &ApiError, len: usize) -> Vec<(usize, Vec<FieldMessage>)> {
    let ApiError::Status {
        status: 422,
        fields,
        ..
    } = e
    else {
        return Vec::new();
    };
    let mut out: Vec<(usize, Vec<FieldMessage>)> = Vec::new();
    for f in fields {
        let Some((i, rest)) = f
            .field
            .strip_prefix('[')
            .and_then(|s| s.split_once(']'))
            .and_then(|(i, rest)| Some((i.parse::<usize>().ok()?, rest)))
        else {
            // A message for the whole request: nothing can be singled out.
            return Vec::new();
        };
        if i >= len {
            return Vec::new();
        }
        let field = FieldMessage {
            field: rest.trim_start_matches('.').to_string(),
            message: f.message.clone(),
        };
        match out.iter_mut().find(|(j, _)| *j == i) {
            Some((_, fs)) => fs.push(field),
            None => out.push((i, vec![field])),
        }
    }
    out.sort_by_key(|(i, _)| *i);
    out
}

/// The refusal of a list, as the refusal of the one item it named.
fn item_error(e: &ApiError, item: &WriteItem, fields: Vec<FieldMessage>) -> ApiError {
    match e {
        ApiError::Status {
            status,
            code,
            message,
            request_id,
            method,
            path,
            ..
        } => ApiError::Status {
            method: method.clone(),
            path: format!("{path} (the record sent for {})", item.path),
            status: *status,
            code: *code,
            message: message.clone(),
            fields,
            request_id: request_id.clone(),
        },
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(fields: &[&str]) -> ApiError {
        ApiError::Status {
            method: "POST".into(),
            path: "/product/list".into(),
            status: 422,
            code: Some(18000),
            message: "Validering feilet.".into(),
            fields: fields
                .iter()
                .map(|f| FieldMessage {
                    field: f.to_string(),
                    message: "Feltet må fylles ut.".into(),
                })
                .collect(),
            request_id: None,
        }
    }

    #[test]
    fn a_refused_list_names_its_items() {
        let found = refused_items(&refusal(&["[3].number", "[1].name", "[3].name"]), 5);
        let shape: Vec<(usize, Vec<String>)> = found
            .into_iter()
            .map(|(i, fs)| (i, fs.into_iter().map(|f| f.field).collect()))
            .collect();
        assert_eq!(
            shape,
            vec![
                (1, vec!["name".to_string()]),
                (3, vec!["number".to_string(), "name".to_string()])
            ]
        );
    }

    #[test]
    fn a_refusal_that_names_no_item_is_the_whole_request() {
        assert!(refused_items(&refusal(&["[1].name", "name"]), 5).is_empty());
        assert!(refused_items(&refusal(&["[7].name"]), 5).is_empty());
        assert!(refused_items(&refusal(&[]), 5).is_empty());
    }

    #[test]
    fn filter_times_are_utc() {
        assert_eq!(filter_time(0), "1970-01-01 00:00:00");
        assert_eq!(filter_time(1_740_664_235_000), "2025-02-27 13:50:35");
    }

    #[test]
    fn rackbeat_times_show_their_offset() {
        assert_eq!(utc_offset("2025-02-27T14:03:55+01:00"), Some(3600));
        assert_eq!(utc_offset("2025-07-27T14:03:55.123+02:00"), Some(7200));
        assert_eq!(utc_offset("2025-07-27T14:03:55-03:30"), Some(-12600));
        assert_eq!(utc_offset("2025-07-27T14:03:55Z"), Some(0));
        assert_eq!(utc_offset("2025-07-27 14:03:55"), None);
    }

    #[test]
    fn the_last_record_to_wait_sends_for_all() {
        let batch = Batch::new(3, 0, Arc::default());
        let read = |key: &str| {
            let (answer, _rx) = oneshot::channel();
            Call {
                plan: 0,
                kind: CallKind::Read {
                    key: key.into(),
                    path: String::new(),
                    answer,
                },
            }
        };
        assert!(batch.join(read("a")).is_none());
        assert!(batch.finish().is_none(), "one record still runs");
        assert_eq!(batch.join(read("b")).map(|c| c.len()), Some(2));
        assert!(batch.finish().is_none(), "nothing waits");
    }
}
