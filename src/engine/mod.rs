//! Executing a plan on one record: read the key, check `when`, render the body, and say which
//! request goes to the target. Nothing here speaks HTTP: the caller (runtime, initial sync, tests,
//! `preview`) supplies the source record, the existing target record if `find` returned one, and a
//! [`Resolver`] for references and API lookups.

use std::sync::{Arc, Mutex};

use indexmap::IndexMap;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::plan::template::{Memo, Out, RecordRt, Resolver, Scope, Step, Template, Var, text_of};
use crate::plan::{Matches, Node, NodeKind, Plan};

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
    Keep { body: Value },
}

/// The result of applying a plan to one record.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The source record's key (bindings are remembered under it).
    pub key: String,
    pub outcome: Outcome,
}

impl Applied {
    /// The rendered body; `None` when the record was skipped.
    pub fn body(&self) -> Option<&Value> {
        match &self.outcome {
            Outcome::Write(r) => r.body.as_ref(),
            Outcome::Keep { body } => Some(body),
            Outcome::Skip { .. } => None,
        }
    }
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
}

/// Where a node sits in the body, for error messages; formatted only when an error happens.
#[derive(Clone, Copy)]
enum At<'a> {
    Root(&'a str),
    Field(&'a At<'a>, &'a str),
    Index(&'a At<'a>, usize),
}

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            At::Root(s) => f.write_str(s),
            At::Field(p, k) => write!(f, "{p}.{k}"),
            At::Index(p, i) => write!(f, "{p}[{i}]"),
        }
    }
}

impl Ctx {
    fn eval(
        &self,
        t: &Template,
        scope: &Scope,
        field: &dyn std::fmt::Display,
    ) -> Result<Out, RecordError> {
        t.eval(scope).map_err(|e| self.error(field, e.0))
    }

    fn error(&self, field: &dyn std::fmt::Display, message: String) -> RecordError {
        let missing = self
            .rt
            .missing
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default();
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
        }
    }

    /// The path that reads the record a webhook named.
    pub fn source_path(&self, key: &str) -> Result<Option<String>, RecordError> {
        let Some(get) = &self.source.get else {
            return Ok(None);
        };
        let ctx = self.ctx(Arc::new(NoResolver));
        let key = Arc::new(Value::String(key.to_string()));
        let scope = Scope::new(vec![("key", Var::root(&key))], &ctx.rt);
        match ctx.eval(get, &scope, &"source.get")? {
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

    /// The key a source record is known by (what a webhook for it would name).
    pub fn key_of(&self, source: &Value) -> Result<String, RecordError> {
        let ctx = self.ctx(Arc::new(NoResolver));
        let root = Arc::new(source.clone());
        let scope = Scope::new(vec![("source", Var::root(&root))], &ctx.rt);
        match ctx.eval(&self.source.key, &scope, &"source.key")? {
            Out::Value(v) => Ok(text_of(&v)),
            Out::Absent => Err(RecordError::Field {
                field: "source.key".into(),
                message: "the record has no key".into(),
            }),
        }
    }

    /// Like [`Plan::select`], taking the record out of the response instead of borrowing it.
    pub fn select_owned(&self, mut response: Value) -> Option<Value> {
        let Some(p) = &self.source.select else {
            return Some(response);
        };
        let path: Vec<Step> = match p.matches(&response) {
            Matches::Items { mut prefix, items } if !items.is_empty() => {
                prefix.push(Step::Index(0));
                prefix
            }
            Matches::General(found) => found.into_iter().next()?.0,
            Matches::Items { .. } => return None,
        };
        let mut cur = &mut response;
        for step in path {
            cur = match (step, cur) {
                (Step::Key(k), Value::Object(m)) => m.get_mut(&k)?,
                (Step::Index(i), Value::Array(a)) => a.get_mut(i)?,
                _ => return None,
            };
        }
        Some(cur.take())
    }

    /// Applies the mapping to one source record. `target` is the existing record `find` returned.
    pub fn apply(
        &self,
        source: &Value,
        target: Option<&Value>,
        resolver: Arc<dyn Resolver>,
    ) -> Result<Applied, RecordError> {
        self.apply_shared(
            &Arc::new(source.clone()),
            target.map(|t| Arc::new(t.clone())).as_ref(),
            resolver,
        )
    }

    /// [`Plan::apply`] without copying the records: templates read them in place.
    pub fn apply_shared(
        &self,
        source: &Arc<Value>,
        target: Option<&Arc<Value>>,
        resolver: Arc<dyn Resolver>,
    ) -> Result<Applied, RecordError> {
        let ctx = self.ctx(resolver);
        let null = Arc::new(Value::Null);
        let target_root = target.unwrap_or(&null);
        let scope = Scope::new(
            vec![
                ("source", Var::root(source)),
                ("target", Var::root(target_root)),
            ],
            &ctx.rt,
        );
        let key = match ctx.eval(&self.source.key, &scope, &"source.key")? {
            Out::Value(v) => text_of(&v),
            Out::Absent => String::new(),
        };
        if let Some(w) = &self.when {
            let keep = w.eval_bool(&scope).map_err(|e| ctx.error(&"when", e.0))?;
            if !keep {
                let reason = format!("`when` is false for {} {}", self.entity, key_display(&key));
                return Ok(Applied {
                    key,
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
        let mut body = Map::with_capacity(self.body.len());
        let root = At::Root("body");
        for (name, node) in &self.body {
            if let Some(v) = render(&ctx, node, &scope, None, &At::Field(&root, name))? {
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
                    message: "the natural key is empty, so the record cannot be matched safely"
                        .into(),
                });
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                return Err(RecordError::Field {
                    field: format!("body.{}", self.target.natural_key),
                    message: "the natural key is empty, so the record cannot be matched safely"
                        .into(),
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
            None => Outcome::Keep { body },
            Some(w) => {
                let body_root = Arc::new(body);
                let scope = Scope::new(
                    vec![
                        ("source", Var::root(source)),
                        ("body", Var::root(&body_root)),
                        ("target", Var::root(target_root)),
                    ],
                    &ctx.rt,
                );
                let path = request_text(&ctx, &w.path, &scope, "target.path")?;
                let query = request_query(&ctx, &w.query, &scope, "target.query")?;
                drop(scope);
                let body = Arc::try_unwrap(body_root).unwrap_or_else(|b| (*b).clone());
                return Ok(Applied {
                    key,
                    outcome: Outcome::Write(Request {
                        method: w.method.as_str().to_string(),
                        path,
                        query,
                        body: Some(body),
                    }),
                });
            }
        };
        Ok(Applied { key, outcome })
    }

    /// The GET that looks for an existing target record with this body's natural key.
    pub fn find_request(
        &self,
        source: &Value,
        body: &Value,
        resolver: Arc<dyn Resolver>,
    ) -> Result<Request, RecordError> {
        let ctx = self.ctx(resolver);
        let (source, body) = (Arc::new(source.clone()), Arc::new(body.clone()));
        let scope = Scope::new(
            vec![("source", Var::root(&source)), ("body", Var::root(&body))],
            &ctx.rt,
        );
        Ok(Request {
            method: "GET".into(),
            path: request_text(&ctx, &self.target.find.path, &scope, "target.find.path")?,
            query: request_query(&ctx, &self.target.find.query, &scope, "target.find.query")?,
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
        let (source, body) = (Arc::new(source.clone()), Arc::new(body.clone()));
        for item in items {
            let item_root = Arc::new(item.clone());
            let scope = Scope::new(
                vec![
                    ("item", Var::root(&item_root)),
                    ("source", Var::root(&source)),
                    ("body", Var::root(&body)),
                ],
                &ctx.rt,
            );
            if m.eval_bool(&scope)
                .map_err(|e| ctx.error(&"target.find.match", e.0))?
            {
                return Ok(Some(item));
            }
        }
        Ok(None)
    }
}

fn key_display(k: &str) -> String {
    format!("`{k}`")
}

fn request_text(
    ctx: &Ctx,
    t: &Template,
    scope: &Scope,
    field: &str,
) -> Result<String, RecordError> {
    let field: &dyn std::fmt::Display = &field;
    match ctx.eval(t, scope, field)? {
        Out::Value(v) => Ok(text_of(&v)),
        Out::Absent => Err(ctx.error(field, "is empty".into())),
    }
}

fn request_query(
    ctx: &Ctx,
    q: &[(String, Template)],
    scope: &Scope,
    field: &str,
) -> Result<IndexMap<String, String>, RecordError> {
    let mut out = IndexMap::new();
    for (k, t) in q {
        if let Out::Value(v) = ctx.eval(t, scope, &format!("{field}.{k}"))? {
            out.insert(k.clone(), text_of(&v));
        }
    }
    Ok(out)
}

/// Renders one node; `None` means the field is left out. `item` is the innermost loop item.
fn render<'a>(
    ctx: &Ctx,
    node: &Node,
    scope: &Scope<'a>,
    item: Option<&Var<'a>>,
    field: &At,
) -> Result<Option<Value>, RecordError> {
    if let Some(w) = &node.when {
        let keep = w.eval_bool(scope).map_err(|e| ctx.error(field, e.0))?;
        if !keep {
            return Ok(None);
        }
    }
    match &node.kind {
        NodeKind::Value(t) => match ctx.eval(t, scope, field)? {
            Out::Value(v) => Ok(Some(v)),
            Out::Absent => Ok(None),
        },
        NodeKind::Object(fields) => {
            let mut m = Map::with_capacity(fields.len());
            for (name, n) in fields {
                if let Some(v) = render(ctx, n, scope, item, &At::Field(field, name))? {
                    m.insert(name.clone(), v);
                }
            }
            Ok(Some(Value::Object(m)))
        }
        NodeKind::List(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, n) in items.iter().enumerate() {
                if let Some(v) = render(ctx, n, scope, item, &At::Index(field, i))? {
                    out.push(v);
                }
            }
            Ok(Some(Value::Array(out)))
        }
        NodeKind::ForEach {
            path,
            var,
            item: each,
            join,
            memo_slots,
        } => {
            let base = if path.relative {
                item.cloned()
            } else {
                scope.var("source").cloned()
            };
            let Some(base) = base else {
                return Ok(Some(Value::Array(Vec::new())));
            };
            // Each item as a variable: its value, and its path below `base` (shared prefix).
            let items: Vec<Var> = match path.matches(base.value) {
                Matches::Items { prefix, items } => {
                    let list = base.child(base.value, prefix);
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, m)| list.child(m, [Step::Index(i)]))
                        .collect()
                }
                Matches::General(found) => {
                    found.into_iter().map(|(p, m)| base.child(m, p)).collect()
                }
            };
            let indexes: Vec<Value> = (0..items.len()).map(Value::from).collect();
            let memo: Vec<Memo> = (0..*memo_slots).map(|_| Memo::new()).collect();
            let mut out = Vec::with_capacity(items.len());
            for (i, this) in items.into_iter().enumerate() {
                let inner = scope.with(
                    vec![
                        (var.as_str(), this.clone()),
                        ("index", Var::scalar(&indexes[i])),
                    ],
                    &memo,
                );
                if let Some(v) = render(ctx, each, &inner, Some(&this), &At::Index(field, i))? {
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
        self.refs
            .get(entity)?
            .get(key)
            .filter(|v| !v.is_null())
            .cloned()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(yaml: &str) -> Plan {
        let doc = crate::spec::Document::parse(std::path::Path::new("test.yaml"), yaml.into())
            .unwrap_or_else(|d| panic!("{}", d.message));
        let (plan, diags, _) = crate::plan::compile(&doc);
        assert!(diags.is_empty(), "{diags:?}");
        plan.unwrap_or_else(|| panic!("does not compile"))
    }

    #[test]
    fn loop_invariant_parts_are_shared_by_the_items_of_their_own_loop_only() {
        // Several memoized parts in different objects of one loop, a nested loop whose own
        // invariants depend on the outer item, and `index` shadowed by the inner loop.
        let plan = plan(
            r#"
version: 1
entity: order
direction: rackbeat_to_tripletex
source: { get: "/orders/{{ key }}", key: "{{ source.number }}" }
target: { natural_key: number, find: { path: /order }, create: { method: POST, path: /order } }
body:
  number: "{{ source.number }}"
  lines:
    $for_each: $.lines[*]
    $as: line
    $when: "line.qty or source.keep_empty"
    c: "{{ source.number ~ '!' }}"
    a: { x: "{{ (source.zone or 'home') ~ ':' ~ line.qty }}" }
    b: { y: "{{ source.currency | default('NOK') | lower }}", n: "{{ source.number ~ '/' ~ index }}" }
    parts:
      $for_each: "@.parts[*]"
      $as: part
      p: "{{ line.name ~ '-' ~ part }}"
      q: "{{ (source.zone or 'home') ~ '+' ~ line.name }}"
      i: "{{ 'i' ~ index }}"
"#,
        );
        let source = serde_json::json!({"number": 7, "currency": "EUR", "lines": [
            {"qty": 1, "name": "a", "parts": ["x", "y"]},
            {"qty": 0, "name": "b", "parts": ["w"]},
            {"qty": 2, "name": "c", "parts": ["z"]},
        ]});
        let applied = plan.apply(&source, None, Arc::new(NoResolver));
        let body = applied.ok().and_then(|a| a.body().cloned());
        assert_eq!(
            body,
            Some(serde_json::json!({"number": 7, "lines": [
                {"c": "7!", "a": {"x": "home:1"}, "b": {"y": "eur", "n": "7/0"}, "parts": [
                    {"p": "a-x", "q": "home+a", "i": "i0"},
                    {"p": "a-y", "q": "home+a", "i": "i1"},
                ]},
                {"c": "7!", "a": {"x": "home:2"}, "b": {"y": "eur", "n": "7/2"}, "parts": [
                    {"p": "c-z", "q": "home+c", "i": "i0"},
                ]},
            ]}))
        );
    }
}
