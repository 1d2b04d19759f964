//! Executing a plan on one record: read the key, check `when`, render the body, and say which
//! request goes to the target. Nothing here speaks HTTP: the caller (runtime, initial sync, tests,
//! `preview`) supplies the source record, the existing target record if `find` returned one, and a
//! [`Resolver`] for references and API lookups.

use std::sync::{Arc, Mutex};

use indexmap::IndexMap;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::plan::template::{Out, RecordRt, Resolver, Scope, ScopeCache, Template, text_of};
use crate::plan::{Node, NodeKind, Plan};

/// A request the engine wants sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Request {
    pub method: String,
    pub path: String,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub query: IndexMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

/// What to do with one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Send this request.
    Write(Request),
    /// `when` was false.
    Skip { reason: String },
    /// The target record exists and the mapping has no `update`: leave it alone.
    Keep,
}

/// The result of applying a plan to one record.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The source record's key (bindings are remembered under it).
    pub key: String,
    /// The rendered body (empty when skipped).
    pub body: Value,
    pub outcome: Outcome,
}

/// Why a record could not be mapped. It names the record's field so the person fixing the data or
/// the mapping knows where to look.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordError {
    #[error("{field}: {message}")]
    Field { field: String, message: String },
    /// References that are not bound yet; the runtime syncs them, then retries this record.
    #[error("{} not synced yet", .0.iter().map(|(e, k)| format!("{e} {k}")).collect::<Vec<_>>().join(", "))]
    Missing(Vec<(String, String)>),
}

struct Ctx {
    rt: Arc<RecordRt>,
    cache: ScopeCache,
}

impl Ctx {
    fn scope<'a>(&'a self, vars: Vec<(&'a str, &'a Value)>) -> Scope<'a> {
        Scope {
            vars,
            rt: &self.rt,
            cache: &self.cache,
        }
    }

    fn eval(&self, t: &Template, vars: Vec<(&str, &Value)>, field: &str) -> Result<Out, RecordError> {
        t.eval(&self.scope(vars)).map_err(|e| self.error(field, e.0))
    }

    fn error(&self, field: &str, message: String) -> RecordError {
        let missing = self.rt.missing.lock().map(|m| m.clone()).unwrap_or_default();
        if !missing.is_empty() {
            return RecordError::Missing(missing);
        }
        RecordError::Field {
            field: field.to_string(),
            message,
        }
    }
}

impl Plan {
    fn ctx(&self, resolver: Arc<dyn Resolver>) -> Ctx {
        Ctx {
            rt: Arc::new(RecordRt {
                resolver,
                statics: self.statics.clone(),
                missing: Mutex::new(Vec::new()),
            }),
            cache: ScopeCache::default(),
        }
    }

    /// The path that reads the record a webhook named.
    pub fn source_path(&self, key: &str) -> Result<Option<String>, RecordError> {
        let Some(get) = &self.source.get else { return Ok(None) };
        let ctx = self.ctx(Arc::new(NoResolver));
        let key = Value::String(key.to_string());
        match ctx.eval(get, vec![("key", &key)], "source.get")? {
            Out::Value(v) => Ok(Some(text_of(&v))),
            Out::Absent => Ok(None),
        }
    }

    /// The record inside the response of `source.get`.
    pub fn select<'a>(&self, response: &'a Value) -> Option<&'a Value> {
        match &self.source.select {
            Some(p) => p.select(response).into_iter().next(),
            None => Some(response),
        }
    }

    /// Applies the mapping to one source record. `target` is the existing record `find` returned.
    pub fn apply(
        &self,
        source: &Value,
        target: Option<&Value>,
        resolver: Arc<dyn Resolver>,
    ) -> Result<Applied, RecordError> {
        let ctx = self.ctx(resolver);
        let key = match ctx.eval(&self.source.key, vec![("source", source)], "source.key")? {
            Out::Value(v) => text_of(&v),
            Out::Absent => String::new(),
        };
        if let Some(w) = &self.when {
            let keep = w
                .eval_bool(&ctx.scope(vec![("source", source)]))
                .map_err(|e| ctx.error("when", e.0))?;
            if !keep {
                let reason = format!("`when` is false for {} {}", self.entity, key_display(&key));
                return Ok(Applied {
                    key,
                    body: Value::Null,
                    outcome: Outcome::Skip { reason },
                });
            }
        }
        if key.trim().is_empty() {
            return Err(RecordError::Field {
                field: "source.key".into(),
                message: "the record has no key".into(),
            });
        }
        let null = Value::Null;
        let target_v = target.unwrap_or(&null);
        let mut body = Map::new();
        for (name, node) in &self.body {
            let vars = vec![("source", source), ("target", target_v)];
            if let Some(v) = render(&ctx, node, vars, None, &format!("body.{name}"))? {
                body.insert(name.clone(), v);
            }
        }
        let missing = ctx.rt.missing.lock().map(|m| m.clone()).unwrap_or_default();
        if !missing.is_empty() {
            return Err(RecordError::Missing(missing));
        }
        let body = Value::Object(body);
        match body.get(&self.target.natural_key) {
            None => {
                return Err(RecordError::Field {
                    field: format!("body.{}", self.target.natural_key),
                    message: "the natural key is empty, so the record cannot be matched safely".into(),
                });
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                return Err(RecordError::Field {
                    field: format!("body.{}", self.target.natural_key),
                    message: "the natural key is empty, so the record cannot be matched safely".into(),
                });
            }
            _ => {}
        }
        let write = match (target, &self.target.update) {
            (None, _) => Some(&self.target.create),
            (Some(_), Some(u)) => Some(u),
            (Some(_), None) => None,
        };
        let outcome = match write {
            None => Outcome::Keep,
            Some(w) => {
                let vars = vec![("source", source), ("body", &body), ("target", target_v)];
                let path = request_text(&ctx, &w.path, vars.clone(), "target.path")?;
                let query = request_query(&ctx, &w.query, vars, "target.query")?;
                Outcome::Write(Request {
                    method: w.method.as_str().to_string(),
                    path,
                    query,
                    body: Some(body.clone()),
                })
            }
        };
        Ok(Applied { key, body, outcome })
    }

    /// The GET that looks for an existing target record with this body's natural key.
    pub fn find_request(
        &self,
        source: &Value,
        body: &Value,
        resolver: Arc<dyn Resolver>,
    ) -> Result<Request, RecordError> {
        let ctx = self.ctx(resolver);
        let vars = vec![("source", source), ("body", body)];
        Ok(Request {
            method: "GET".into(),
            path: request_text(&ctx, &self.target.find.path, vars.clone(), "target.find.path")?,
            query: request_query(&ctx, &self.target.find.query, vars, "target.find.query")?,
            body: None,
        })
    }

    /// The first of `items` (the records `find` returned) that is this record.
    pub fn find_match<'a>(
        &self,
        items: &'a [Value],
        source: &Value,
        body: &Value,
        resolver: Arc<dyn Resolver>,
    ) -> Result<Option<&'a Value>, RecordError> {
        let Some(m) = &self.target.find.matches else {
            return Ok(items.first());
        };
        let ctx = self.ctx(resolver);
        for item in items {
            let scope = ctx.scope(vec![("item", item), ("source", source), ("body", body)]);
            if m.eval_bool(&scope).map_err(|e| ctx.error("target.find.match", e.0))? {
                return Ok(Some(item));
            }
        }
        Ok(None)
    }
}

fn key_display(k: &str) -> String {
    format!("`{k}`")
}

fn request_text(ctx: &Ctx, t: &Template, vars: Vec<(&str, &Value)>, field: &str) -> Result<String, RecordError> {
    match ctx.eval(t, vars, field)? {
        Out::Value(v) => Ok(text_of(&v)),
        Out::Absent => Err(ctx.error(field, "is empty".into())),
    }
}

fn request_query(
    ctx: &Ctx,
    q: &[(String, Template)],
    vars: Vec<(&str, &Value)>,
    field: &str,
) -> Result<IndexMap<String, String>, RecordError> {
    let mut out = IndexMap::new();
    for (k, t) in q {
        if let Out::Value(v) = ctx.eval(t, vars.clone(), &format!("{field}.{k}"))? {
            out.insert(k.clone(), text_of(&v));
        }
    }
    Ok(out)
}

/// Renders one node; `None` means the field is left out.
fn render(
    ctx: &Ctx,
    node: &Node,
    vars: Vec<(&str, &Value)>,
    item: Option<&Value>,
    field: &str,
) -> Result<Option<Value>, RecordError> {
    if let Some(w) = &node.when {
        let keep = w
            .eval_bool(&ctx.scope(vars.clone()))
            .map_err(|e| ctx.error(field, e.0))?;
        if !keep {
            return Ok(None);
        }
    }
    match &node.kind {
        NodeKind::Value(t) => match ctx.eval(t, vars, field)? {
            Out::Value(v) => Ok(Some(v)),
            Out::Absent => Ok(None),
        },
        NodeKind::Object(fields) => {
            let mut m = Map::with_capacity(fields.len());
            for (name, n) in fields {
                if let Some(v) = render(ctx, n, vars.clone(), item, &format!("{field}.{name}"))? {
                    m.insert(name.clone(), v);
                }
            }
            Ok(Some(Value::Object(m)))
        }
        NodeKind::List(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, n) in items.iter().enumerate() {
                if let Some(v) = render(ctx, n, vars.clone(), item, &format!("{field}[{i}]"))? {
                    out.push(v);
                }
            }
            Ok(Some(Value::Array(out)))
        }
        NodeKind::ForEach { path, var, item: each, join } => {
            let root = if path.relative {
                item.unwrap_or(&Value::Null)
            } else {
                vars.iter().find(|(n, _)| *n == "source").map(|(_, v)| *v).unwrap_or(&Value::Null)
            };
            let matches = path.select(root);
            let mut out = Vec::with_capacity(matches.len());
            for (i, m) in matches.into_iter().enumerate() {
                let index = Value::from(i);
                let mut inner = vars.clone();
                inner.push((var.as_str(), m));
                inner.push(("index", &index));
                if let Some(v) = render(ctx, each, inner, Some(m), &format!("{field}[{i}]"))? {
                    out.push(v);
                }
            }
            Ok(Some(match join {
                Some(sep) => Value::String(out.iter().map(text_of).collect::<Vec<_>>().join(sep)),
                None => Value::Array(out),
            }))
        }
    }
}

/// A resolver for places that must not need one (the source path).
struct NoResolver;

impl Resolver for NoResolver {
    fn reference(&self, _: &str, _: &str) -> Option<Value> {
        None
    }
    fn lookup(&self, _: &str, _: &str) -> Option<Value> {
        None
    }
}

/// Resolves from fixtures: what a test says the bindings and API tables hold.
#[derive(Debug, Default, Clone)]
pub struct FixtureResolver {
    pub refs: IndexMap<String, IndexMap<String, Value>>,
    pub lookups: IndexMap<String, IndexMap<String, Value>>,
}

impl FixtureResolver {
    /// `base` with `over` layered on top.
    pub fn layered(base: &crate::spec::Fixtures, over: &crate::spec::Fixtures) -> Self {
        let mut r = FixtureResolver {
            refs: base.refs.clone(),
            lookups: base.lookups.clone(),
        };
        for (e, m) in &over.refs {
            r.refs.entry(e.clone()).or_default().extend(m.clone());
        }
        for (t, m) in &over.lookups {
            r.lookups.entry(t.clone()).or_default().extend(m.clone());
        }
        r
    }
}

impl Resolver for FixtureResolver {
    fn reference(&self, entity: &str, key: &str) -> Option<Value> {
        // A fixture of `null` means "not bound", so a case can unset a shared fixture.
        self.refs.get(entity)?.get(key).filter(|v| !v.is_null()).cloned()
    }
    fn lookup(&self, table: &str, key: &str) -> Option<Value> {
        self.lookups.get(table)?.get(key).cloned()
    }
}

/// Resolves anything to a visible placeholder, so `preview` works with no API at hand.
#[derive(Debug, Default)]
pub struct PlaceholderResolver {
    pub fixtures: FixtureResolver,
}

impl Resolver for PlaceholderResolver {
    fn reference(&self, entity: &str, key: &str) -> Option<Value> {
        Some(
            self.fixtures
                .reference(entity, key)
                .unwrap_or_else(|| Value::String(format!("<id of {entity} {key}>"))),
        )
    }
    fn lookup(&self, table: &str, key: &str) -> Option<Value> {
        Some(
            self.fixtures
                .lookup(table, key)
                .unwrap_or_else(|| Value::String(format!("<{table}[{key}]>"))),
        )
    }
}
