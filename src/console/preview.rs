//! The mapping preview: pick a mapping, paste a record or give a Rackbeat key, and see the
//! requests rbtx would send, each checked against Tripletex's spec. Nothing is sent: a pasted
//! record renders with placeholders for references and lookups (as `rbtx preview` does); a key
//! is synced as a dry run, which reads Rackbeat and Tripletex (the record, bindings, finds) and
//! writes nothing.

use std::sync::Arc;

use axum::extract::{Form, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};

use super::pages::{Fields, Params, ctx, field, param, posted, signed_in};
use super::state::{Console, ConsoleTenant, PageError};
use crate::engine::{Body, PlaceholderResolver, Request};
use crate::plan::Plan;
use crate::runtime::sync::{Failure, Synced, Syncer};
use crate::runtime::tenant::Tenant;
use crate::store::Store;

fn mappings(c: &Console<impl Store + 'static>, t: &ConsoleTenant) -> Vec<String> {
    let pack = c.packs.borrow().clone();
    t.view(&pack)
        .realtime()
        .map(|p| p.file.display().to_string())
        .collect()
}

pub async fn form<S: Store + 'static>(
    State(c): State<Arc<Console<S>>>,
    headers: HeaderMap,
    Query(q): Params,
) -> Result<Response, PageError> {
    let caller = signed_in(&c, &headers)?;
    let t = c.tenant(&caller, param(&q, "tenant"))?;
    c.page(
        &caller,
        Some(&t.id),
        "preview.html",
        ctx(json!({
            "title": "Mapping preview",
            "mappings": mappings(&c, t),
            "chosen": param(&q, "mapping"),
            "key": param(&q, "key"),
        })),
    )
}

pub async fn run<S: Store + 'static>(
    State(c): State<Arc<Console<S>>>,
    headers: HeaderMap,
    Form(fields): Fields,
) -> Result<Response, PageError> {
    let caller = posted(&c, &headers, &fields)?;
    let t = c.tenant(&caller, field(&fields, "tenant"))?;
    let pack = c.packs.borrow().clone();
    let chosen = field(&fields, "mapping").unwrap_or("");
    let plan = t
        .view(&pack)
        .realtime()
        .find(|p| p.file.display().to_string() == chosen)
        .ok_or_else(|| {
            PageError::BadRequest(format!("`{chosen}` is not a mapping this tenant runs"))
        })?;
    let record = field(&fields, "record");
    let key = field(&fields, "key");
    let outcome = match (record, key) {
        (Some(text), _) => pasted(plan, text),
        (None, Some(key)) => dry_run(&c, t, &pack, plan, key).await,
        (None, None) => Err("paste a record or give a Rackbeat key".to_string()),
    };
    let (result, error) = match outcome {
        Ok(v) => (Some(v), None),
        Err(e) => (None, Some(e)),
    };
    c.page(
        &caller,
        Some(&t.id),
        "preview.html",
        ctx(json!({
            "title": "Mapping preview",
            "mappings": mappings(&c, t),
            "chosen": chosen,
            "record": record,
            "key": key,
            "result": result,
            "error": error,
        })),
    )
}

/// A pasted record, rendered with placeholders for what would be looked up.
fn pasted(plan: &Plan, text: &str) -> Result<Value, String> {
    let raw: Value = serde_json::from_str(text).map_err(|e| {
        format!(
            "the record is not JSON: {e} (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    let source = plan.select(&raw).cloned().unwrap_or(raw);
    let resolver = Arc::new(PlaceholderResolver::default());
    let mut out = crate::preview::render(plan, &source, None, resolver)
        .map_err(|e| format!("the record cannot be mapped: {e}"))?;
    let checked: Vec<Value> = out["requests"]
        .as_array()
        .map(|rs| rs.iter().map(check_value).collect())
        .unwrap_or_default();
    out["requests"] = Value::Array(checked);
    out["note"] = "References and lookups show as placeholders; give a key to read them.".into();
    Ok(out)
}

/// The record `key` read from Rackbeat and synced as a dry run.
async fn dry_run<S: Store + 'static>(
    c: &Console<S>,
    t: &ConsoleTenant,
    pack: &Arc<crate::plan::Pack>,
    plan: &Plan,
    key: &str,
) -> Result<Value, String> {
    let tenant = Tenant {
        id: t.id.clone(),
        rackbeat: t.rackbeat.clone(),
        tripletex: t.tripletex.clone(),
        invoice_mode: t.invoice_mode,
    };
    let name = format!("console-preview-{}", crate::dates::now_millis());
    let mut syncer = Syncer::new(c.store.clone(), pack.clone(), tenant, name);
    syncer.dry_run = true;
    let synced = syncer.sync(plan, key, 0).await;
    let said = |s: &str| json!({ "key": key, "requests": [], "said": s });
    Ok(match synced {
        Ok(Synced::WouldWrite { request, created }) => json!({
            "key": key,
            "requests": [check(&request)],
            "said": if created { "would create the record" } else { "would update the record with the fields that differ" },
        }),
        Ok(Synced::Unchanged) => said("nothing would be sent: the body is the one last sent"),
        Ok(Synced::Kept) => {
            said("nothing would be sent: the record exists and this mapping has no update")
        }
        Ok(Synced::Skipped { reason }) => said(&format!("skipped: {reason}")),
        Ok(Synced::Gone) => said(&format!("Rackbeat has no {} `{key}`", plan.entity)),
        Ok(Synced::Ignored) => said("no mapping handles it"),
        Ok(Synced::Written { .. }) => said("written"),
        Err(Failure::Retry { reason }) => {
            return Err(format!("could not read what is needed: {reason}"));
        }
        Err(Failure::Refused { api, reason, .. }) => {
            return Err(format!("{api} refused the credentials: {reason}"));
        }
        Err(Failure::Permanent { reason, field, .. }) => {
            return Err(match field {
                Some(f) => format!("{f}: {reason}"),
                None => reason,
            });
        }
    })
}

/// A request and what Tripletex's spec says of it.
fn check(r: &Request) -> Value {
    let q: Vec<(&str, &str)> = r.query.pairs().collect();
    let body = r.body.as_ref().filter(|_| r.sends_body).map(Body::value);
    let violations = crate::tripletex_spec::check(r.method, &r.path, &q, body.as_ref());
    json!({
        "method": r.method,
        "path": r.path.to_string(),
        "query": r.query.to_map(),
        "body": body,
        "violations": violations.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
    })
}

/// The same for a request already rendered as JSON (`rbtx preview`'s shape).
fn check_value(r: &Value) -> Value {
    let method = r["method"].as_str().unwrap_or("");
    let path = r["path"].as_str().unwrap_or("");
    let query: Vec<(String, String)> = r["query"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let q: Vec<(&str, &str)> = query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let body = r.get("body").filter(|b| !b.is_null());
    // A placeholder stands for an id or value looked up when the record is synced; the spec
    // would only say it is not one yet.
    let violations: Vec<_> = crate::tripletex_spec::check(method, path, &q, body)
        .into_iter()
        .filter(|v| {
            !body
                .and_then(|b| at(b, &v.field))
                .is_some_and(is_placeholder)
        })
        .collect();
    json!({
        "method": method,
        "path": path,
        "query": r.get("query"),
        "body": body,
        "violations": violations.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
    })
}

fn is_placeholder(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.starts_with('<') && s.ends_with('>'))
}

/// The value at a spec field path (`orders[0].orderLines[2].vatType.id`).
fn at<'a>(body: &'a Value, field: &str) -> Option<&'a Value> {
    let mut v = body;
    for part in field.split('.').filter(|p| !p.is_empty()) {
        let (name, rest) = part.split_once('[').unwrap_or((part, ""));
        if !name.is_empty() {
            v = v.get(name)?;
        }
        for index in rest.split('[') {
            if let Ok(i) = index.trim_end_matches(']').parse::<usize>() {
                v = v.get(i)?;
            }
        }
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn spec_paths_are_followed_into_lists() {
        let body =
            json!({"orders": [{"orderLines": [{}, {}, {"vatType": {"id": "<vat_type[3]>"}}]}]});
        let v = super::at(&body, "orders[0].orderLines[2].vatType.id").expect("found");
        assert!(super::is_placeholder(v));
        assert!(super::at(&body, "orders[1]").is_none());
    }
}
