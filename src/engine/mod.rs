//! Executing a plan on one record: read the key, check `when`, render the body, and say which
//! request goes to the target. Nothing here speaks HTTP: the caller (runtime, initial sync, tests,
//! `preview`) supplies the source record, the existing target record if `find` returned one, and a
//! [`Resolver`] for references and API lookups.

pub mod changes;
mod resolvers;
mod steps;

pub use resolvers::{FixtureResolver, PlaceholderResolver};

use std::ops::Range;
use std::sync::{Arc, Mutex};

use indexmap::IndexMap;
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::expr::{Memo, Out, RecordRt, Resolver, Scope, Step, Template, Var, null_root, text_of};
use crate::plan::{Fields, Matches, Node, NodeKind, Plan, RequestText};

/// A request the engine wants sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Request {
    pub method: &'static str,
    pub path: Text,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub query: Query,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Body>,
    /// `false` for a request sent without its body (`without_body`); the body is still what
    /// the binding keeps.
    #[serde(skip)]
    pub sends_body: bool,
}

/// Query parameters in the mapping's order. A list, not a map: a mapping's handful of parameters
/// are unique already (they are YAML keys), and a list is built without hashing any of them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query(pub Vec<(Arc<str>, Text)>);

impl std::ops::Deref for Query {
    type Target = [(Arc<str>, Text)];
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Query {
    /// The parameters as a map, as tests write them.
    pub fn to_map(&self) -> IndexMap<String, String> {
        self.pairs().map(|(k, v)| (k.into(), v.into())).collect()
    }

    /// The parameters as text pairs.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }
}

impl Serialize for Query {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.pairs())
    }
}

/// A request's path or query value: the mapping's own text, shared, when the mapping fixes it
/// (most query values, create paths), or the text rendered for this record. Two texts are equal
/// when they read the same, however they were made.
#[derive(Debug, Clone, Eq)]
pub enum Text {
    Fixed(Arc<str>),
    Rendered(String),
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            Text::Fixed(s) => s,
            Text::Rendered(s) => s,
        }
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        **self == **other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        **self == **other
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text::Rendered(s.to_string())
    }
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self)
    }
}

/// A request body as the JSON text that is sent. The engine writes it while rendering, without
/// building a `serde_json::Value` first; [`Body::value`] parses it for the few readers that need
/// one (templates reading `body`, tests, checks against Tripletex's spec).
#[derive(Debug, Clone, PartialEq)]
pub struct Body(String);

impl Body {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The body as a JSON value.
    pub fn value(&self) -> Value {
        // The text was written from JSON values, so it parses.
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }
}

impl From<&Value> for Body {
    fn from(v: &Value) -> Body {
        Body(v.to_string())
    }
}

impl Serialize for Body {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(s)
    }
}

/// What to do with one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Send this request.
    Write(Request),
    /// `when` was false.
    Skip { reason: String },
    /// The target record exists and the mapping has no `update`: leave it alone.
    Keep { body: Body },
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
    pub fn body(&self) -> Option<&Body> {
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
    /// Bindings `bound()` needs that the resolver has not read; the runtime reads them (never
    /// syncing), then renders again.
    #[error("the bindings of {} are not read yet", .0.iter().map(|(e, k)| format!("{e} {k}")).collect::<Vec<_>>().join(", "))]
    Unbound(Vec<(String, String)>),
}

pub(crate) struct Ctx {
    rt: Arc<RecordRt>,
    /// A target record is there (an update): `$create_only` fields are left out.
    updating: bool,
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

    fn text(
        &self,
        t: &Template,
        scope: &Scope,
        field: &dyn std::fmt::Display,
    ) -> Result<Option<String>, RecordError> {
        t.text(scope).map_err(|e| self.error(field, e.0))
    }

    pub(crate) fn error(&self, field: &dyn std::fmt::Display, message: String) -> RecordError {
        let missing = self
            .rt
            .missing
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default();
        if !missing.is_empty() {
            return RecordError::Missing(missing);
        }
        let unlooked = self.rt.unlooked();
        if !unlooked.is_empty() {
            return RecordError::Unbound(unlooked);
        }
        RecordError::Field {
            field: field.to_string(),
            message,
        }
    }
}

impl Plan {
    pub(crate) fn ctx(&self, resolver: Arc<dyn Resolver>) -> Ctx {
        Ctx {
            rt: Arc::new(RecordRt {
                resolver,
                statics: self.statics.clone(),
                missing: Mutex::new(Vec::new()),
                unlooked: Mutex::new(Vec::new()),
            }),
            updating: false,
        }
    }

    /// The path that reads the record a webhook named.
    pub fn source_path(&self, key: &str) -> Result<Option<String>, RecordError> {
        let Some(get) = &self.source.get else {
            return Ok(None);
        };
        let ctx = self.ctx(Arc::new(NoResolver));
        let key = Arc::new(Value::String(key.to_string()));
        let vars = [("key", Var::root(&key))];
        let scope = Scope::new(&vars, &ctx.rt);
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
        let vars = [("source", Var::root(&root))];
        let scope = Scope::new(&vars, &ctx.rt);
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
        let mut ctx = self.ctx(resolver);
        ctx.updating = target.is_some();
        let target_root = target.unwrap_or(null_root());
        let vars = [
            ("source", Var::root(source)),
            ("target", Var::root(target_root)),
        ];
        let scope = Scope::new(&vars, &ctx.rt);
        let key = ctx
            .text(&self.source.key, &scope, &"source.key")?
            .unwrap_or_default();
        if let Some(w) = &self.when {
            let keep = w.eval_bool(&scope).map_err(|e| ctx.error(&"when", e.0))?;
            let unlooked = ctx.rt.unlooked();
            if !unlooked.is_empty() {
                return Err(RecordError::Unbound(unlooked));
            }
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
        // Room for most bodies, so the buffer seldom grows.
        let mut out = Vec::with_capacity(1024);
        let natural = self
            .body
            .iter()
            .position(|(name, _)| *name == self.target.natural_key);
        let natural = render_fields(
            &ctx,
            &self.body,
            &scope,
            None,
            &mut out,
            &At::Root("body"),
            natural,
        )?;
        let missing = ctx.rt.missing.lock().map(|m| m.clone()).unwrap_or_default();
        if !missing.is_empty() {
            return Err(RecordError::Missing(missing));
        }
        let unlooked = ctx.rt.unlooked();
        if !unlooked.is_empty() {
            return Err(RecordError::Unbound(unlooked));
        }
        let blank = match natural.and_then(|r| out.get(r)) {
            None => true,
            // Only a string of spaces (perhaps escaped) is worth parsing to tell.
            Some(v) => {
                let inner = v.get(1..).unwrap_or_default();
                v.starts_with(b"\"")
                    && (inner.contains(&b'\\')
                        || inner
                            .iter()
                            .all(|b| b.is_ascii_whitespace() || *b == b'"' || *b >= 0x80))
                    && serde_json::from_slice::<String>(v).is_ok_and(|s| s.trim().is_empty())
            }
        };
        if blank {
            return Err(RecordError::Field {
                field: format!("body.{}", self.target.natural_key),
                message: "the natural key is empty, so the record cannot be matched safely".into(),
            });
        }
        let body = Body(String::from_utf8(out).map_err(|e| RecordError::Field {
            field: "body".into(),
            message: format!("the rendered body is not text: {e}"),
        })?);
        let write = match (target, &self.target.update) {
            (None, _) => Some(&self.target.create),
            (Some(_), Some(u)) => Some(u),
            (Some(_), None) => None,
        };
        let outcome = match write {
            None => Outcome::Keep { body },
            Some(w) => {
                // Parsed back only for a path or query that reads `body`.
                let parsed;
                let body_root = if w.reads_body {
                    parsed = Arc::new(body.value());
                    &parsed
                } else {
                    null_root()
                };
                let vars = [
                    ("source", Var::root(source)),
                    ("body", Var::root(body_root)),
                    ("target", Var::root(target_root)),
                ];
                let scope = Scope::new(&vars, &ctx.rt);
                let path = request_text(&ctx, &w.path, &scope, "target.path")?;
                let query = request_query(&ctx, &w.query, &scope, "target.query")?;
                Outcome::Write(Request {
                    method: w.method.as_str(),
                    path,
                    query,
                    body: Some(body),
                    sends_body: !w.without_body,
                })
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
        let vars = [("source", Var::root(&source)), ("body", Var::root(&body))];
        let scope = Scope::new(&vars, &ctx.rt);
        Ok(Request {
            method: "GET",
            path: request_text(&ctx, &self.target.find.path, &scope, "target.find.path")?,
            query: request_query(&ctx, &self.target.find.query, &scope, "target.find.query")?,
            body: None,
            sends_body: false,
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
            let vars = [
                ("item", Var::root(&item_root)),
                ("source", Var::root(&source)),
                ("body", Var::root(&body)),
            ];
            let scope = Scope::new(&vars, &ctx.rt);
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

pub(crate) fn request_text(
    ctx: &Ctx,
    t: &RequestText,
    scope: &Scope,
    field: &str,
) -> Result<Text, RecordError> {
    let field: &dyn std::fmt::Display = &field;
    if let Some(fixed) = &t.fixed {
        return Ok(Text::Fixed(fixed.clone()));
    }
    match ctx.text(&t.template, scope, field)? {
        Some(s) => Ok(Text::Rendered(s)),
        None => Err(ctx.error(field, "is empty".into())),
    }
}

pub(crate) fn request_query(
    ctx: &Ctx,
    q: &[(Arc<str>, RequestText)],
    scope: &Scope,
    field: &str,
) -> Result<Query, RecordError> {
    let mut out = Vec::with_capacity(q.len());
    let root = At::Root(field);
    for (k, t) in q {
        let v = match &t.fixed {
            Some(fixed) => Text::Fixed(fixed.clone()),
            None => match ctx.text(&t.template, scope, &At::Field(&root, k))? {
                Some(v) => Text::Rendered(v),
                None => continue,
            },
        };
        out.push((k.clone(), v));
    }
    Ok(Query(out))
}

/// Renders one node as JSON at the end of `out`; `false` means the node is left out and nothing
/// was written. `item` is the innermost loop item.
fn render<'a>(
    ctx: &Ctx,
    node: &Node,
    scope: &Scope<'a>,
    item: Option<&Var<'a>>,
    out: &mut Vec<u8>,
    field: &At,
) -> Result<bool, RecordError> {
    if node.create_only && ctx.updating {
        return Ok(false);
    }
    if let Some(w) = &node.when {
        let keep = w.eval_bool(scope).map_err(|e| ctx.error(field, e.0))?;
        if !keep {
            return Ok(false);
        }
    }
    match &node.kind {
        NodeKind::Value(t) => t.write_json(scope, out).map_err(|e| ctx.error(field, e.0)),
        NodeKind::Object(fields) => {
            render_fields(ctx, fields, scope, item, out, field, None)?;
            Ok(true)
        }
        NodeKind::List(items) => {
            let mut list = JsonList::open(out);
            for (i, n) in items.iter().enumerate() {
                let at = list.item(out);
                let written = render(ctx, n, scope, item, out, &At::Index(field, i))?;
                list.close_item(out, at, written);
            }
            out.push(b']');
            Ok(true)
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
                out.extend_from_slice(b"[]");
                return Ok(true);
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
            let vars_of = |i: usize, this: &Var<'a>| {
                [
                    (var.as_str(), this.clone()),
                    ("index", Var::scalar(&indexes[i])),
                ]
            };
            match join {
                None => {
                    let mut list = JsonList::open(out);
                    for (i, this) in items.iter().enumerate() {
                        let mark = list.item(out);
                        let vars = vars_of(i, this);
                        let inner = scope.with(&vars, &memo);
                        let written =
                            render(ctx, each, &inner, Some(this), out, &At::Index(field, i))?;
                        list.close_item(out, mark, written);
                    }
                    out.push(b']');
                }
                Some(sep) => {
                    // Joined items are text: each is rendered on its own and read back.
                    let (mut text, mut item_json, mut first) = (String::new(), Vec::new(), true);
                    for (i, this) in items.iter().enumerate() {
                        item_json.clear();
                        let vars = vars_of(i, this);
                        let inner = scope.with(&vars, &memo);
                        let at = At::Index(field, i);
                        if render(ctx, each, &inner, Some(this), &mut item_json, &at)? {
                            let v: Value = serde_json::from_slice(&item_json)
                                .map_err(|e| ctx.error(&at, e.to_string()))?;
                            if !first {
                                text.push_str(sep);
                            }
                            first = false;
                            text.push_str(&text_of(&v));
                        }
                    }
                    write_json(out, &Value::String(text)).map_err(|e| ctx.error(field, e))?;
                }
            }
            Ok(true)
        }
    }
}

/// An array being written: items are separated by commas, and an item left out leaves nothing.
struct JsonList {
    written: bool,
}

impl JsonList {
    fn open(out: &mut Vec<u8>) -> JsonList {
        out.push(b'[');
        JsonList { written: false }
    }

    /// Starts an item; returns where it starts, to take it back if it is left out.
    fn item(&self, out: &mut Vec<u8>) -> usize {
        let mark = out.len();
        if self.written {
            out.push(b',');
        }
        mark
    }

    fn close_item(&mut self, out: &mut Vec<u8>, mark: usize, written: bool) {
        if written {
            self.written = true;
        } else {
            out.truncate(mark);
        }
    }
}

/// Renders an object's fields as JSON at the end of `out`, leaving out the fields that are none,
/// undefined or `$when`-false. Returns where the value of field number `watch` was written.
fn render_fields<'a>(
    ctx: &Ctx,
    fields: &Fields,
    scope: &Scope<'a>,
    item: Option<&Var<'a>>,
    out: &mut Vec<u8>,
    at: &At,
    watch: Option<usize>,
) -> Result<Option<Range<usize>>, RecordError> {
    let mut watched = None;
    out.push(b'{');
    let mut written = false;
    for (i, ((name, node), key)) in fields.iter().zip(fields.json_keys()).enumerate() {
        let mark = out.len();
        if written {
            out.push(b',');
        }
        out.extend_from_slice(key.as_bytes());
        let value = out.len();
        if render(ctx, node, scope, item, out, &At::Field(at, name))? {
            written = true;
            if watch == Some(i) {
                watched = Some(value..out.len());
            }
        } else {
            out.truncate(mark);
        }
    }
    out.push(b'}');
    Ok(watched)
}

fn write_json(out: &mut Vec<u8>, v: &Value) -> Result<(), String> {
    serde_json::to_writer(out, v).map_err(|e| e.to_string())
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
    fn request_texts_are_equal_when_they_read_the_same() {
        let fixed = Text::Fixed(Arc::from("/product"));
        assert_eq!(fixed, Text::Rendered("/product".into()));
        assert_eq!(fixed, "/product");
        assert_ne!(fixed, Text::Rendered("/products".into()));
    }

    #[test]
    fn the_body_text_is_what_serde_json_writes_for_the_same_value() {
        // Fields left out first, in the middle and last; list items left out; a join; a null
        // constant; floats, negatives, escapes and non-ASCII text; `~` written straight as JSON.
        let plan = plan(
            r#"
version: 1
entity: order
direction: rackbeat_to_tripletex
source: { get: "/orders/{{ key }}", key: "{{ source.number }}" }
target: { natural_key: number, find: { path: /order }, create: { method: POST, path: /order } }
body:
  gone: "{{ source.missing }}"
  number: "{{ source.number }}"
  note: "{{ source.note }}"
  nothing: null
  hidden: { $when: "source.missing", x: 1 }
  list: ["{{ source.missing }}", "{{ source.price }}", "{{ source.missing }}", -2, "{{ source.missing }}"]
  names:
    $for_each: $.lines[*]
    $as: line
    $join: " | "
    $value: "{{ line.name }}"
  lines:
    $for_each: $.lines[*]
    $as: line
    first: "{{ line.missing }}"
    name: "{{ line.name }}"
    qty: "{{ line.qty }}"
    last: "{{ line.missing }}"
  empty: { a: "{{ source.missing }}" }
  label: "{{ 'n°' ~ source.number ~ ': ' ~ source.note if source.number else 'none' }}"
  mixed: "{{ source.delta ~ '|' ~ source.price ~ '|' ~ source.missing ~ '|' ~ none ~ '|' ~ true }}"
  last: "{{ source.missing }}"
"#,
        );
        let source = serde_json::json!({"number": 7, "note": "say \"hi\"\n\u{1} – æøå",
            "price": 149.37, "delta": -2, "lines": [{"name": "a\\b", "qty": -1.5}, {"name": "c", "qty": 1e21}]});
        let applied = plan.apply(&source, None, Arc::new(NoResolver));
        let body = applied.ok().and_then(|a| a.body().cloned());
        let want = serde_json::json!({"number": 7, "note": "say \"hi\"\n\u{1} – æøå",
            "nothing": null, "list": [149.37, -2], "names": "a\\b | c",
            "lines": [{"name": "a\\b", "qty": -1.5}, {"name": "c", "qty": 1e21}], "empty": {},
            "label": "n°7: say \"hi\"\n\u{1} – æøå", "mixed": "-2|149.37|||true"});
        assert_eq!(
            body.as_ref().map(Body::as_str),
            Some(want.to_string().as_str())
        );
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
        let body = applied.ok().and_then(|a| a.body().map(Body::value));
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
