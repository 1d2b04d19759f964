//! Compiling mapping files into plans the engine executes. `rbtx validate` and start-up both call
//! [`load_pack`]: if it returns no diagnostics, the runtime can run what it returns.

mod fast;
pub mod filters;
pub mod scope;
pub mod template;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use jsonpath_rust::parser::model::JpQuery;
use jsonpath_rust::parser::parse_json_path;
use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

use crate::spec::diagnostic::did_you_mean;
use crate::spec::yaml::{escape_pointer, field_path};
use crate::spec::{
    Code, Connection, DIRECTIVES, Diagnostic, Direction, Document, Lookup, Mapping, WriteMethod,
};
use template::{Loop, ProblemKind, StaticTable, Template, TemplateProblem, Uses};

/// A compiled mapping.
#[derive(Debug)]
pub struct Plan {
    pub file: PathBuf,
    pub entity: String,
    pub direction: Direction,
    pub mode: Option<String>,
    pub on: Vec<String>,
    pub when: Option<Template>,
    pub source: SourcePlan,
    pub target: TargetPlan,
    /// Static lookup tables by name. A mapping has a few: they are found by comparing names,
    /// which costs less than hashing the name on every lookup.
    pub statics: Arc<Vec<(String, StaticTable)>>,
    pub api_lookups: Vec<ApiLookup>,
    /// `(outer, inner)` for each `lookup('outer', lookup('inner', …))` in the mapping.
    pub lookup_chains: BTreeSet<(String, String)>,
    pub body: Fields,
    /// Entities this mapping references through `ref()`: synced first when missing.
    pub depends_on: BTreeSet<String>,
}

#[derive(Debug)]
pub struct SourcePlan {
    pub get: Option<Template>,
    pub select: Option<JsonPath>,
    pub list: Vec<crate::spec::ListRequest>,
    pub key: Template,
}

#[derive(Debug)]
pub struct TargetPlan {
    pub natural_key: String,
    /// The target record's identifying field (`target.id`).
    pub id: String,
    pub find: FindPlan,
    pub create: WritePlan,
    pub update: Option<WritePlan>,
}

#[derive(Debug)]
pub struct FindPlan {
    pub path: RequestText,
    pub query: Vec<(Arc<str>, RequestText)>,
    pub matches: Option<Template>,
}

#[derive(Debug)]
pub struct WritePlan {
    pub method: WriteMethod,
    pub path: RequestText,
    pub query: Vec<(Arc<str>, RequestText)>,
    /// The path or the query reads `body`: the engine parses the rendered body for them.
    pub reads_body: bool,
}

/// A request's path or query value. Text the mapping fixes is kept `fixed`, so that every request
/// shares it instead of copying it.
#[derive(Debug)]
pub struct RequestText {
    pub template: Template,
    pub fixed: Option<Arc<str>>,
}

impl RequestText {
    fn new(template: Template) -> RequestText {
        let fixed = match &template {
            Template::Const(Value::String(s)) => Some(Arc::from(s.as_str())),
            _ => None,
        };
        RequestText { template, fixed }
    }
}

impl WritePlan {
    fn new(
        method: WriteMethod,
        path: RequestText,
        query: Vec<(Arc<str>, RequestText)>,
    ) -> WritePlan {
        let reads_body =
            path.template.reads("body") || query.iter().any(|(_, t)| t.template.reads("body"));
        WritePlan {
            method,
            path,
            query,
            reads_body,
        }
    }
}

/// An API lookup table the engine loads once per tenant.
#[derive(Debug, Clone)]
pub struct ApiLookup {
    pub name: String,
    pub connection: Connection,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub key: String,
    pub value: String,
}

/// A compiled JSONPath, relative to the source record (`$…`) or to the enclosing loop item (`@…`).
pub struct JsonPath {
    pub text: String,
    pub relative: bool,
    pub query: JpQuery,
    /// `$.a.b[*]`-shaped paths, walked directly: keys, then every item of the array.
    simple: Option<Vec<String>>,
}

impl std::fmt::Debug for JsonPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JsonPath({})", self.text)
    }
}

impl JsonPath {
    pub fn compile(text: &str) -> Result<JsonPath, String> {
        let (relative, rooted) = match text.strip_prefix('@') {
            Some(rest) => (true, format!("${rest}")),
            None if text.starts_with('$') => (false, text.to_string()),
            None => {
                return Err(
                    "a JSONPath starts with `$` (the source record) or `@` (the current item)"
                        .into(),
                );
            }
        };
        let query =
            parse_json_path(&rooted).map_err(|e| describe_jsonpath_error(&e.to_string()))?;
        let simple = rooted
            .strip_prefix("$.")
            .and_then(|r| r.strip_suffix("[*]"))
            .map(|keys| keys.split('.').map(str::to_string).collect::<Vec<_>>())
            .filter(|keys| {
                keys.iter()
                    .all(|k| !k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || c == '_'))
            });
        Ok(JsonPath {
            text: text.to_string(),
            relative,
            query,
            simple,
        })
    }

    pub fn select<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        jsonpath_rust::query::js_path_process(&self.query, root)
            .map(|v| v.into_iter().map(|r| r.val()).collect())
            .unwrap_or_default()
    }

    /// Matches with the steps that lead to them from `root`.
    pub fn matches<'a>(&self, root: &'a Value) -> Matches<'a> {
        if let Some(keys) = &self.simple {
            let mut cur = root;
            for k in keys {
                match cur.as_object().and_then(|m| template::field(m, k)) {
                    Some(v) => cur = v,
                    None => return Matches::General(Vec::new()),
                }
            }
            return match cur {
                Value::Array(items) => Matches::Items {
                    prefix: keys
                        .iter()
                        .map(|k| template::Step::Key(k.clone()))
                        .collect(),
                    items,
                },
                _ => Matches::General(Vec::new()),
            };
        }
        Matches::General(
            jsonpath_rust::query::js_path_process(&self.query, root)
                .map(|v| {
                    v.into_iter()
                        .map(|r| {
                            let val = r.clone().val();
                            (template::parse_normalized_path(&r.path()), val)
                        })
                        .collect()
                })
                .unwrap_or_default(),
        )
    }
}

/// What a JSONPath found.
pub enum Matches<'a> {
    /// Every item of one array, reached by `prefix`.
    Items {
        prefix: Vec<template::Step>,
        items: &'a [Value],
    },
    /// Any matches, each with its own steps.
    General(Vec<(Vec<template::Step>, &'a Value)>),
}

/// pest's multi-line report → "at column N: expected …".
fn describe_jsonpath_error(s: &str) -> String {
    let col = s
        .lines()
        .find_map(|l| l.split_once("--> ").map(|(_, pos)| pos.trim()))
        .and_then(|pos| pos.split(':').nth(1))
        .map(|c| format!("at column {c}"));
    let what = s
        .lines()
        .find_map(|l| l.trim().strip_prefix("= "))
        .map(str::to_string);
    match (col, what) {
        (Some(c), Some(w)) => format!("{c}: {w}"),
        (Some(c), None) => c,
        _ => first_line(s),
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_string()
}

/// A body node.
#[derive(Debug)]
pub struct Node {
    /// Leaves the node out (or, on a `$for_each`, the item out) when false.
    pub when: Option<Template>,
    pub kind: NodeKind,
}

#[derive(Debug)]
pub enum NodeKind {
    Value(Template),
    Object(Fields),
    List(Vec<Node>),
    ForEach {
        path: JsonPath,
        var: String,
        item: Box<Node>,
        join: Option<String>,
        /// How many loop-invariant values the item's templates memoize (`Fast::Memo`).
        memo_slots: usize,
    },
}

/// The fields of an object node, in order, each with its key as JSON (`"name":`), ready to be
/// written into a body.
#[derive(Debug)]
pub struct Fields {
    fields: Vec<(String, Node)>,
    json_keys: Vec<String>,
}

impl Fields {
    pub fn new(fields: Vec<(String, Node)>) -> Fields {
        let json_keys = fields
            .iter()
            .map(|(k, _)| format!("{}:", Value::String(k.clone())))
            .collect();
        Fields { fields, json_keys }
    }

    pub fn json_keys(&self) -> &[String] {
        &self.json_keys
    }
}

impl std::ops::Deref for Fields {
    type Target = [(String, Node)];
    fn deref(&self) -> &Self::Target {
        &self.fields
    }
}

impl<'a> IntoIterator for &'a Fields {
    type Item = &'a (String, Node);
    type IntoIter = std::slice::Iter<'a, (String, Node)>;
    fn into_iter(self) -> Self::IntoIter {
        self.fields.iter()
    }
}

/// Everything the loader found: the plans that compiled, and every problem.
#[derive(Debug, Default)]
pub struct Pack {
    pub plans: Vec<Plan>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Pack {
    pub fn plan(&self, direction: Direction, entity: &str) -> Option<&Plan> {
        self.plans
            .iter()
            .find(|p| p.direction == direction && p.entity == entity)
    }
}

/// Finds the mapping files under `paths`: YAML files, not the `*.test.yaml` beside them.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Box<Diagnostic>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out).map_err(|e| {
                Box::new(Diagnostic::bare(
                    Code::Io,
                    p,
                    format!("cannot read {}: {e}", p.display()),
                ))
            })?;
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(Box::new(Diagnostic::bare(
                Code::Io,
                p,
                format!("{} does not exist", p.display()),
            )));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if is_mapping_file(&path) {
            out.push(path);
        }
    }
    Ok(())
}

pub fn is_mapping_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    (name.ends_with(".yaml") || name.ends_with(".yml"))
        && !name.ends_with(".test.yaml")
        && !name.ends_with(".test.yml")
}

/// Loads and compiles every mapping file under `paths`, then checks them against each other.
pub fn load_pack(paths: &[PathBuf]) -> Pack {
    let mut pack = Pack::default();
    let files = match discover(paths) {
        Ok(f) => f,
        Err(d) => {
            pack.diagnostics.push(*d);
            return pack;
        }
    };
    let mut docs = Vec::new();
    for f in files {
        match Document::load(&f) {
            Ok(doc) => docs.push(doc),
            Err(d) => pack.diagnostics.push(*d),
        }
    }
    let mut compiled = Vec::new();
    for doc in &docs {
        let (plan, mut diags, uses) = compile(doc);
        pack.diagnostics.append(&mut diags);
        if let Some(plan) = plan {
            compiled.push((plan, doc, uses));
        }
    }
    // Entities as the files declare them, compiled or not, so one broken file does not make every
    // reference to its entity an error too.
    // A file validated on its own is checked against the mappings beside it, which start-up
    // would load with it; they are read for their entity only, and not reported on.
    let mut context: Vec<Document> = Vec::new();
    for p in paths.iter().filter(|p| p.is_file()) {
        let siblings = p
            .parent()
            .map(|d| discover(&[d.to_path_buf()]))
            .and_then(Result::ok);
        for s in siblings.unwrap_or_default() {
            if !docs.iter().chain(&context).any(|d| d.path == s)
                && let Ok(d) = Document::load(&s)
            {
                context.push(d);
            }
        }
    }
    let declared: Vec<(String, String)> = docs
        .iter()
        .chain(&context)
        .filter_map(|d| {
            Some((
                d.value.get("direction")?.as_str()?.to_string(),
                d.value.get("entity")?.as_str()?.to_string(),
            ))
        })
        .collect();
    check_pack(&compiled, &declared, &mut pack.diagnostics);
    pack.plans = compiled.into_iter().map(|(p, _, _)| p).collect();
    crate::spec::diagnostic::sort(&mut pack.diagnostics);
    pack
}

static MAPPING_SCHEMA: LazyLock<Value> = LazyLock::new(crate::spec::mapping_schema);
static MAPPING_VALIDATOR: LazyLock<Option<jsonschema::Validator>> =
    LazyLock::new(|| jsonschema::validator_for(&MAPPING_SCHEMA).ok());

/// Where each `ref('…')` was written, for the cross-file check.
pub struct RefUse {
    pub entity: String,
    pub pointer: String,
}

/// Compiles one loaded mapping file.
pub fn compile(doc: &Document) -> (Option<Plan>, Vec<Diagnostic>, Vec<RefUse>) {
    let mut cx = Cx::new(doc);
    let mut value = doc.value.clone();
    let broken = schema_check(
        &mut cx,
        &MAPPING_SCHEMA,
        MAPPING_VALIDATOR.as_ref(),
        &mut value,
    );
    if broken {
        salvage(&mut value);
    }
    let mapping: Mapping = match serde_json::from_value(value) {
        Ok(m) => m,
        Err(e) => {
            if !broken {
                cx.error(Code::InvalidValue, "", format!("invalid mapping: {e}"));
            }
            return (None, cx.diags, cx.refs);
        }
    };
    // A salvaged mapping is compiled only to find the remaining problems in its templates.
    cx.salvaged = broken;
    let plan = cx.mapping(&mapping);
    if broken {
        return (None, cx.diags, cx.refs);
    }
    (plan, cx.diags, cx.refs)
}

/// After schema errors: drop every value the schema rejected and put placeholders in the required
/// places, so the templates can still be compiled and their problems reported in the same run.
fn salvage(value: &mut Value) {
    let Some(validator) = MAPPING_VALIDATOR.as_ref() else {
        return;
    };
    for _ in 0..8 {
        let bad: Vec<String> = validator
            .iter_errors(value)
            .filter(|e| !matches!(e.kind(), ValidationErrorKind::Required { .. }))
            .map(|e| e.instance_path().as_str().to_string())
            .collect();
        if bad.is_empty() {
            break;
        }
        for p in bad.iter().rev() {
            if p.is_empty() {
                return;
            }
            remove_pointer(value, p);
            if let Some(Value::Array(_)) =
                value.pointer(p.rsplit_once('/').map(|x| x.0).unwrap_or(""))
            {
                // An item of a list was bad: drop the whole list.
                let parent = p.rsplit_once('/').map(|x| x.0).unwrap_or("").to_string();
                remove_pointer(value, &parent);
            }
        }
    }
    let Value::Object(root) = value else { return };
    root.entry("version").or_insert(Value::from(1));
    root.entry("entity").or_insert(Value::from("unknown"));
    root.entry("direction")
        .or_insert(Value::from("rackbeat_to_tripletex"));
    root.entry("body")
        .or_insert(Value::Object(Default::default()));
    let source = root
        .entry("source")
        .or_insert(Value::Object(Default::default()));
    if let Value::Object(s) = source {
        s.entry("key").or_insert(Value::from(""));
    }
    let target = root
        .entry("target")
        .or_insert(Value::Object(Default::default()));
    if let Value::Object(t) = target {
        t.entry("natural_key").or_insert(Value::from(""));
        for k in ["find", "create"] {
            let r = t.entry(k).or_insert(Value::Object(Default::default()));
            if let Value::Object(r) = r {
                r.entry("path").or_insert(Value::from("/"));
                if k == "create" {
                    r.entry("method").or_insert(Value::from("POST"));
                }
            }
        }
    }
}

/// Validates `value` against `schema`, turning each error into a diagnostic. Unknown keys are
/// removed from `value` so compilation can go on and find the other problems too. Returns true
/// when there were problems.
pub fn schema_check(
    cx: &mut Cx,
    schema: &Value,
    validator: Option<&jsonschema::Validator>,
    value: &mut Value,
) -> bool {
    let Some(validator) = validator else {
        cx.error(
            Code::Io,
            "",
            "internal error: the mapping schema does not compile".into(),
        );
        return true;
    };
    let mut unknown = Vec::new();
    let mut found = false;
    for err in validator.iter_errors(value) {
        found = true;
        cx.schema_error(schema, &err, &mut unknown);
    }
    for pointer in unknown.iter().rev() {
        remove_pointer(value, pointer);
    }
    found
}

fn remove_pointer(value: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    if let Some(Value::Object(m)) = value.pointer_mut(parent) {
        m.shift_remove(&last);
    }
}

/// Compilation context for one file: where diagnostics go and what templates used.
pub struct Cx<'a> {
    pub doc: &'a Document,
    pub diags: Vec<Diagnostic>,
    /// The mapping had schema errors and was patched up: checks that relate fields are skipped.
    salvaged: bool,
    refs: Vec<RefUse>,
    lookups_used: Vec<(String, String)>,
    lookup_chains: BTreeSet<(String, String)>,
    /// Memo slots handed out so far in the `$for_each` being compiled.
    memo_slots: usize,
}

impl<'a> Cx<'a> {
    pub fn new(doc: &'a Document) -> Self {
        Cx {
            doc,
            diags: Vec::new(),
            salvaged: false,
            refs: Vec::new(),
            lookups_used: Vec::new(),
            lookup_chains: BTreeSet::new(),
            memo_slots: 0,
        }
    }

    fn diag(
        &self,
        code: Code,
        pointer: &str,
        span: std::ops::Range<usize>,
        message: String,
    ) -> Diagnostic {
        Diagnostic::new(
            code,
            &self.doc.path,
            self.doc.text.clone(),
            span,
            &field_path(pointer),
            message,
        )
    }

    pub fn error(&mut self, code: Code, pointer: &str, message: String) {
        let d = self.diag(code, pointer, self.doc.spans.value(pointer), message);
        self.diags.push(d);
    }

    fn error_hint(&mut self, code: Code, pointer: &str, message: String, hint: Option<String>) {
        let mut d = self.diag(code, pointer, self.doc.spans.value(pointer), message);
        d.hint = hint;
        self.diags.push(d);
    }

    /// Points at `needle` inside the node at `pointer` when it can be found there.
    fn error_at_text(
        &mut self,
        code: Code,
        pointer: &str,
        needle: Option<&str>,
        message: String,
        hint: Option<String>,
    ) {
        self.error_at_offset(code, pointer, needle, None, message, hint);
    }

    /// Like `error_at_text`, searching from `offset` bytes into the value (quotes and escapes
    /// only ever move text to the right, so the offset in the template is a lower bound).
    fn error_at_offset(
        &mut self,
        code: Code,
        pointer: &str,
        needle: Option<&str>,
        offset: Option<usize>,
        message: String,
        hint: Option<String>,
    ) {
        let span = self.doc.spans.value(pointer);
        let span = needle
            .and_then(|n| {
                let text = self.doc.text.get(span.clone())?;
                let from = offset.unwrap_or(0).min(text.len());
                let from = (0..=from)
                    .rev()
                    .find(|i| text.is_char_boundary(*i))
                    .unwrap_or(0);
                let at = find_word(&text[from..], n)
                    .map(|i| i + from)
                    .or_else(|| find_word(text, n))?;
                Some(span.start + at..span.start + at + n.len())
            })
            .unwrap_or(span);
        let mut d = self.diag(code, pointer, span, message);
        d.hint = hint;
        self.diags.push(d);
    }

    fn schema_error(
        &mut self,
        schema: &Value,
        err: &jsonschema::ValidationError,
        unknown: &mut Vec<String>,
    ) {
        let at = err.instance_path().as_str().to_string();
        match err.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let allowed = allowed_properties(schema, err.schema_path().as_str());
                for key in unexpected {
                    let pointer = format!("{at}/{}", escape_pointer(key));
                    let hint = if key.starts_with('$') {
                        did_you_mean(key, DIRECTIVES.iter().copied())
                            .map(|s| format!("did you mean `{s}`?"))
                            .or_else(|| Some(format!("directives are {}", DIRECTIVES.join(", "))))
                    } else {
                        did_you_mean(key, allowed.iter().map(String::as_str))
                            .map(|s| format!("did you mean `{s}`?"))
                            .or_else(|| {
                                (!allowed.is_empty())
                                    .then(|| format!("allowed here: {}", allowed.join(", ")))
                            })
                    };
                    let where_ = if at.is_empty() {
                        "the top level".to_string()
                    } else {
                        format!("`{}`", field_path(&at))
                    };
                    let mut d = self.diag(
                        Code::UnknownField,
                        &pointer,
                        self.doc.spans.key(&pointer),
                        format!("unknown field `{key}` in {where_}"),
                    );
                    d.hint = hint;
                    self.diags.push(d);
                    unknown.push(pointer);
                }
            }
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or("?");
                // A typo of this very field is reported as an unknown field with a hint; saying
                // it is missing too would only be noise.
                let typo = err.instance().as_object().is_some_and(|m| {
                    m.keys().any(|k| {
                        !k.starts_with('$') && did_you_mean(k, [name]).is_some() && k != name
                    })
                });
                if typo {
                    return;
                }
                let where_ = if at.is_empty() {
                    "the mapping".to_string()
                } else {
                    format!("`{}`", field_path(&at))
                };
                let span = if at.is_empty() {
                    // The first key of the file, rather than a comment at 1:1.
                    err.instance()
                        .as_object()
                        .and_then(|m| m.keys().next())
                        .map(|k| self.doc.spans.key(&format!("/{}", escape_pointer(k))))
                        .unwrap_or(0..0)
                } else {
                    self.doc.spans.key(&at)
                };
                let mut d = self.diag(
                    Code::MissingField,
                    &at,
                    span,
                    format!("missing field `{name}` in {where_}"),
                );
                d.hint = Some(format!("add `{name}:`"));
                self.diags.push(d);
            }
            ValidationErrorKind::Type { kind } => {
                let expected = format!("{kind:?}")
                    .replace("Single(", "")
                    .replace("Multiple(", "")
                    .replace(')', "")
                    .to_lowercase();
                let expected = expected
                    .replace("jsontypeset", "")
                    .replace("jsontype::", "");
                let found = type_name(err.instance());
                self.error_hint(
                    Code::WrongType,
                    &at,
                    format!("expected {}, found {found}", article(&expected)),
                    None,
                );
            }
            ValidationErrorKind::Enum { options } => {
                let opts: Vec<String> = options
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|v| {
                                v.as_str()
                                    .map(str::to_string)
                                    .unwrap_or_else(|| v.to_string())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let got = err
                    .instance()
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| err.instance().to_string());
                let hint = did_you_mean(&got, opts.iter().map(String::as_str))
                    .map(|s| format!("did you mean `{s}`?"))
                    .or_else(|| Some(format!("one of: {}", opts.join(", "))));
                self.error_hint(
                    Code::InvalidValue,
                    &at,
                    format!("`{got}` is not allowed here"),
                    hint,
                );
            }
            ValidationErrorKind::Constant { expected_value } => {
                self.error(
                    Code::InvalidValue,
                    &at,
                    format!("expected `{expected_value}`"),
                );
            }
            ValidationErrorKind::Minimum { .. } | ValidationErrorKind::Maximum { .. }
                if at == "/version" =>
            {
                self.error_hint(
                    Code::UnsupportedVersion,
                    &at,
                    format!(
                        "mapping language version {} is not supported",
                        err.instance()
                    ),
                    Some("this rbtx reads `version: 1`".into()),
                );
            }
            ValidationErrorKind::Pattern { pattern } => {
                let got = err.instance().as_str().unwrap_or("").to_string();
                let hint = match at.as_str() {
                    "/entity" | "/mode" => {
                        Some("use snake_case: lower-case letters, digits and `_`".to_string())
                    }
                    p if p.ends_with("/$as") => {
                        Some("a loop variable name: lower-case letters, digits and `_`".to_string())
                    }
                    p if p.starts_with("/on/") => {
                        Some("Rackbeat event names look like `product.created`".to_string())
                    }
                    _ => Some(format!("it must match `{pattern}`")),
                };
                self.error_hint(
                    Code::InvalidValue,
                    &at,
                    format!("`{got}` is not a valid value here"),
                    hint,
                );
            }
            ValidationErrorKind::OneOfNotValid { context }
            | ValidationErrorKind::AnyOf { context } => {
                let branches = schema
                    .pointer(err.schema_path().as_str())
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let resolve = |b: &Value| -> Value {
                    match b.get("$ref").and_then(Value::as_str) {
                        Some(r) => schema
                            .pointer(r.trim_start_matches('#'))
                            .cloned()
                            .unwrap_or(Value::Null),
                        None => b.clone(),
                    }
                };
                let branches: Vec<Value> = branches.iter().map(resolve).collect();
                // The constants a one-of chooses between: enum variants, or union tags.
                let consts: Vec<String> = branches
                    .iter()
                    .filter_map(|b| {
                        b.get("const")
                            .or_else(|| b.pointer("/enum/0"))
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .collect();
                let tags: Vec<String> = branches
                    .iter()
                    .filter_map(|b| {
                        b.pointer("/properties/type/const")
                            .or_else(|| b.pointer("/properties/type/enum/0"))
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .collect();
                let inst = err.instance();
                if !consts.is_empty() && !inst.is_object() {
                    let got = inst
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| inst.to_string());
                    let hint = did_you_mean(&got, consts.iter().map(String::as_str))
                        .map(|s| format!("did you mean `{s}`?"))
                        .or_else(|| Some(format!("one of: {}", consts.join(", "))));
                    self.error_hint(
                        Code::InvalidValue,
                        &at,
                        format!("`{got}` is not allowed here"),
                        hint,
                    );
                    return;
                }
                // Branches whose type fits the value (drops `null` for an optional field).
                let fits: Vec<usize> = (0..context.len())
                    .filter(|i| {
                        !context[*i].iter().any(|e| {
                            e.instance_path().as_str() == at.as_str()
                                && matches!(e.kind(), ValidationErrorKind::Type { .. })
                        })
                    })
                    .collect();
                if fits.is_empty() {
                    let expected = if tags.is_empty() {
                        "a mapping".to_string()
                    } else {
                        format!("a mapping with `type: {}`", tags.join("|"))
                    };
                    self.error_hint(
                        Code::WrongType,
                        &at,
                        format!("expected {expected}, found {}", type_name(inst)),
                        None,
                    );
                    return;
                }
                let tag_ptr = format!("{at}/type");
                let tag = inst.get("type").and_then(Value::as_str).map(str::to_string);
                let chosen: Vec<usize> = fits
                    .iter()
                    .copied()
                    .filter(|i| {
                        !context[*i]
                            .iter()
                            .any(|e| e.instance_path().as_str() == tag_ptr)
                    })
                    .collect();
                if tags.is_empty() || (tag.is_some() && chosen.len() == 1) {
                    let i = if tags.is_empty() { fits[0] } else { chosen[0] };
                    for e in &context[i] {
                        self.schema_error(schema, e, unknown);
                    }
                    return;
                }
                match tag {
                    Some(got) => {
                        let hint = did_you_mean(&got, tags.iter().map(String::as_str))
                            .map(|s| format!("did you mean `{s}`?"))
                            .unwrap_or_else(|| format!("one of: {}", tags.join(", ")));
                        self.error_hint(
                            Code::InvalidValue,
                            &tag_ptr,
                            format!("unknown type `{got}`"),
                            Some(hint),
                        );
                    }
                    None => {
                        let mut d = self.diag(
                            Code::MissingField,
                            &at,
                            self.doc.spans.key(&at),
                            format!("missing field `type` in `{}`", field_path(&at)),
                        );
                        d.hint = Some(format!("add `type:` with one of: {}", tags.join(", ")));
                        self.diags.push(d);
                    }
                }
            }
            other => {
                let msg = format!("{other:?}");
                self.error(
                    Code::InvalidValue,
                    &at,
                    format!("invalid value: {}", first_line(&msg)),
                );
            }
        }
    }

    /// Inside a `$for_each` (whose item and `index` are the last two variables), the variables
    /// that keep their value from one item to the next.
    fn loop_of<'v>(&self, vars: &[&'v str]) -> Option<Loop<'v>> {
        let [outer @ .., item, index] = vars else {
            return None;
        };
        (*index == "index").then(|| Loop {
            invariant: outer
                .iter()
                .copied()
                .filter(|v| v != item && v != index)
                .collect(),
            slots: self.memo_slots,
        })
    }

    fn template(&mut self, src: &str, pointer: &str, vars: &[&str]) -> Option<Template> {
        let mut uses = Uses::default();
        let mut lp = self.loop_of(vars);
        let compiled = template::compile(src, vars, &mut uses, lp.as_mut());
        if let Some(lp) = lp {
            self.memo_slots = lp.slots;
        }
        match compiled {
            Ok(t) => {
                self.note_uses(uses, pointer);
                Some(t)
            }
            Err(problems) => {
                self.note_uses(uses, pointer);
                self.problems(pointer, problems);
                None
            }
        }
    }

    fn expression(&mut self, src: &str, pointer: &str, vars: &[&str]) -> Option<Template> {
        // `when` and `match` are bare expressions; tolerate `{{ }}` around them.
        let inner = src.trim();
        let inner = inner
            .strip_prefix("{{")
            .and_then(|s| s.strip_suffix("}}"))
            .unwrap_or(inner);
        if inner.contains("{{") || inner.contains("}}") {
            self.error_hint(
                Code::BadTemplate,
                pointer,
                "this is one bare expression, not a template".into(),
                Some("write `a and b` rather than `{{ a }} and {{ b }}`".into()),
            );
            return None;
        }
        let mut uses = Uses::default();
        let mut lp = self.loop_of(vars);
        let compiled = template::compile_expr(inner, vars, &mut uses, lp.as_mut());
        if let Some(lp) = lp {
            self.memo_slots = lp.slots;
        }
        match compiled {
            Ok(t) => {
                self.note_uses(uses, pointer);
                Some(t)
            }
            Err(problems) => {
                self.problems(pointer, problems);
                None
            }
        }
    }

    fn note_uses(&mut self, uses: Uses, pointer: &str) {
        for r in uses.refs {
            self.refs.push(RefUse {
                entity: r,
                pointer: pointer.to_string(),
            });
        }
        for l in uses.lookups {
            self.lookups_used.push((l, pointer.to_string()));
        }
        self.lookup_chains.extend(uses.lookup_chains);
    }

    fn problems(&mut self, pointer: &str, problems: Vec<TemplateProblem>) {
        for p in problems {
            let code = match p.kind {
                ProblemKind::Syntax | ProblemKind::DynamicName => Code::BadTemplate,
                ProblemKind::UnknownVariable => Code::UnknownVariable,
                ProblemKind::UnknownFunction => Code::UnknownFunction,
                ProblemKind::UnknownFilter => Code::UnknownFilter,
            };
            self.error_at_offset(
                code,
                pointer,
                p.needle.as_deref(),
                p.offset,
                p.message,
                p.hint,
            );
        }
    }

    /// Compiles a JSONPath; `in_loop` says whether an enclosing item exists for `@` to mean.
    fn jsonpath(&mut self, text: &str, pointer: &str, in_loop: bool) -> Option<JsonPath> {
        let example = if pointer == "/source/select" {
            "e.g. `$.product` selects the record inside the response envelope"
        } else {
            "e.g. `$.lines[*]` over the source record, `@.lines[*]` over the current item"
        };
        match JsonPath::compile(text) {
            Ok(p) if p.relative && !in_loop => {
                self.error_hint(
                    Code::BadJsonpath,
                    pointer,
                    format!("`{text}` starts with `@`, the current item, but there is no enclosing `$for_each` here"),
                    Some("start it with `$` to select from the source record".into()),
                );
                None
            }
            Ok(p) => Some(p),
            Err(e) => {
                self.error_hint(
                    Code::BadJsonpath,
                    pointer,
                    format!("invalid JSONPath `{text}`: {e}"),
                    Some(example.into()),
                );
                None
            }
        }
    }

    /// Values sent as written: a template there would be sent verbatim, so it is an error.
    fn constant(&mut self, value: &str, pointer: &str) {
        if value.contains("{{") || value.contains("{%") {
            self.error_hint(
                Code::BadTemplate,
                pointer,
                "templates are not evaluated here; this value is sent as written".into(),
                Some("use a constant".into()),
            );
        }
    }

    fn query(
        &mut self,
        q: &indexmap::IndexMap<String, String>,
        pointer: &str,
        vars: &[&str],
    ) -> Vec<(Arc<str>, RequestText)> {
        q.iter()
            .filter_map(|(k, v)| {
                let p = format!("{pointer}/{}", escape_pointer(k));
                let t = self.template(v, &p, vars)?;
                Some((Arc::from(k.as_str()), RequestText::new(t)))
            })
            .collect()
    }

    /// Checks that relate one part of a mapping to another.
    fn relations(&mut self, m: &Mapping) {
        if m.direction == Direction::TripletexToRackbeat && !m.on.is_empty() {
            self.error_hint(
                Code::TriggerDirection,
                "/on",
                "tripletex_to_rackbeat mappings run in the initial sync and take no webhook triggers".into(),
                Some("remove `on`, or change `direction` to rackbeat_to_tripletex".into()),
            );
        }
        let source_key = self.doc.spans.key("/source");
        if m.direction == Direction::RackbeatToTripletex
            && !m.on.is_empty()
            && m.source.get.is_none()
        {
            let mut d = self.diag(
                Code::MissingSource,
                "/source",
                source_key.clone(),
                "a mapping with triggers needs `source.get` to read the record a webhook names"
                    .into(),
            );
            d.hint = Some("e.g. `get: \"/<resource>/{{ key | urlencode }}\"`".into());
            self.diags.push(d);
        }
        if m.direction == Direction::TripletexToRackbeat && m.source.list.is_empty() {
            let mut d = self.diag(
                Code::MissingSource,
                "/source",
                source_key,
                "an initial-sync mapping needs `source.list` to page through the records".into(),
            );
            d.hint = Some("e.g. `list: [{ path: /customer }]`".into());
            self.diags.push(d);
        }
        if !m.body.contains_key(&m.target.natural_key) {
            let keys: Vec<&str> = m.body.keys().map(String::as_str).collect();
            self.error_hint(
                Code::NaturalKey,
                "/target/natural_key",
                format!(
                    "natural key `{}` is not a field of `body`",
                    m.target.natural_key
                ),
                Some(
                    did_you_mean(&m.target.natural_key, keys.iter().copied())
                        .map(|s| format!("did you mean `{s}`?"))
                        .unwrap_or_else(|| format!("body fields: {}", keys.join(", "))),
                ),
            );
        }
    }

    fn mapping(&mut self, m: &Mapping) -> Option<Plan> {
        let before = self.diags.len();
        let dir = m.direction;
        if !self.salvaged {
            self.relations(m);
        }

        let when = m
            .when
            .as_ref()
            .and_then(|w| self.expression(w, "/when", &["source"]));
        let get = m
            .source
            .get
            .as_ref()
            .and_then(|g| self.template(g, "/source/get", &["key"]));
        let select = m
            .source
            .select
            .as_ref()
            .and_then(|s| self.jsonpath(s, "/source/select", false));
        let key = self.template(&m.source.key, "/source/key", &["source"]);
        if let Some(Template::Const(_)) = &key {
            self.error_hint(
                Code::BadTemplate,
                "/source/key",
                "the key is the same for every record".into(),
                Some("read it from the record, e.g. `\"{{ source.number }}\"`".into()),
            );
        }
        for (i, l) in m.source.list.iter().enumerate() {
            self.constant(&l.path, &format!("/source/list/{i}/path"));
            for (k, v) in &l.query {
                self.constant(v, &format!("/source/list/{i}/query/{}", escape_pointer(k)));
            }
        }

        let find_vars = ["source", "body"];
        let find_path = self
            .template(&m.target.find.path, "/target/find/path", &find_vars)
            .map(RequestText::new);
        let find_query = self.query(&m.target.find.query, "/target/find/query", &find_vars);
        let find_matches =
            m.target.find.matches.as_ref().and_then(|e| {
                self.expression(e, "/target/find/match", &["item", "source", "body"])
            });
        let create_path = self
            .template(&m.target.create.path, "/target/create/path", &find_vars)
            .map(RequestText::new);
        let create_query = self.query(&m.target.create.query, "/target/create/query", &find_vars);
        let update_vars = ["source", "body", "target"];
        let update = m.target.update.as_ref().map(|u| {
            (
                u.method,
                self.template(&u.path, "/target/update/path", &update_vars)
                    .map(RequestText::new),
                self.query(&u.query, "/target/update/query", &update_vars),
            )
        });

        let mut statics = Vec::new();
        let mut api_lookups = Vec::new();
        for (name, l) in &m.lookups {
            match l {
                Lookup::Static { entries, default } => {
                    statics.push((
                        name.clone(),
                        StaticTable {
                            entries: entries
                                .iter()
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect(),
                            default: default.clone(),
                        },
                    ));
                }
                Lookup::Api {
                    connection,
                    path,
                    query,
                    key,
                    value,
                } => {
                    let lp = format!("/lookups/{}", escape_pointer(name));
                    self.constant(path, &format!("{lp}/path"));
                    for (k, v) in query {
                        self.constant(v, &format!("{lp}/query/{}", escape_pointer(k)));
                    }
                    api_lookups.push(ApiLookup {
                        name: name.clone(),
                        connection: *connection,
                        path: path.clone(),
                        query: query.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                        key: key.clone(),
                        value: value.clone(),
                    })
                }
            }
        }

        let mut body = Vec::new();
        let mut scope = vec!["source".to_string(), "target".to_string()];
        for (name, node) in &m.body {
            let p = format!("/body/{}", escape_pointer(name));
            if name.starts_with('$') {
                self.error_hint(
                    Code::BadDirective,
                    &p,
                    format!("`{name}` cannot stand at the top of `body`: directives go inside a field's mapping"),
                    Some(if name == "$when" {
                        "to skip whole records, use the top-level `when:`".to_string()
                    } else {
                        "put it under the field it applies to".to_string()
                    }),
                );
                continue;
            }
            if let Some(n) = self.node(&node.0, &p, &mut scope) {
                body.push((name.clone(), n));
            }
        }

        // A salvaged file may have lost a malformed lookup; it was reported already.
        let declared: Option<Vec<String>> = match self.doc.value.get("lookups") {
            Some(Value::Object(l)) if self.salvaged => Some(l.keys().cloned().collect()),
            Some(_) if self.salvaged => None,
            _ => Some(m.lookups.keys().cloned().collect()),
        };
        let used = std::mem::take(&mut self.lookups_used);
        let declared = declared?;
        for (name, pointer) in used {
            if !declared.contains(&name) {
                let names: Vec<&str> = m.lookups.keys().map(String::as_str).collect();
                let hint = did_you_mean(&name, names.iter().copied())
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| "declare it under `lookups:`".into());
                self.error_at_text(
                    Code::UnknownLookup,
                    &pointer,
                    Some(&name),
                    format!("unknown lookup `{name}`"),
                    Some(hint),
                );
            }
        }

        if self.diags.len() > before {
            return None;
        }
        let (Some(key), Some(find_path), Some(create_path)) = (key, find_path, create_path) else {
            return None;
        };
        let update = match update {
            Some((method, Some(path), query)) => Some(WritePlan::new(method, path, query)),
            Some((_, None, _)) => return None,
            None => None,
        };
        let depends_on = self.refs.iter().map(|r| r.entity.clone()).collect();
        Some(Plan {
            file: self.doc.path.clone(),
            entity: m.entity.clone(),
            direction: dir,
            mode: m.mode.clone(),
            on: m.on.iter().map(|e| e.0.clone()).collect(),
            when,
            source: SourcePlan {
                get,
                select,
                list: m.source.list.clone(),
                key,
            },
            target: TargetPlan {
                natural_key: m.target.natural_key.clone(),
                id: m.target.id.clone(),
                find: FindPlan {
                    path: find_path,
                    query: find_query,
                    matches: find_matches,
                },
                create: WritePlan::new(m.target.create.method, create_path, create_query),
                update,
            },
            statics: Arc::new(statics),
            api_lookups,
            lookup_chains: std::mem::take(&mut self.lookup_chains),
            body: Fields::new(body),
            depends_on,
        })
    }

    fn node(&mut self, v: &Value, pointer: &str, scope: &mut Vec<String>) -> Option<Node> {
        let vars: Vec<&str> = scope.iter().map(String::as_str).collect();
        match v {
            Value::String(s) => {
                let t = self.template(s, pointer, &vars)?;
                Some(Node {
                    when: None,
                    kind: NodeKind::Value(t),
                })
            }
            Value::Array(items) => {
                let mut out = Vec::new();
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    match self.node(item, &format!("{pointer}/{i}"), scope) {
                        Some(n) => out.push(n),
                        None => ok = false,
                    }
                }
                ok.then_some(Node {
                    when: None,
                    kind: NodeKind::List(out),
                })
            }
            Value::Object(map) => self.object_node(map, pointer, scope),
            other => Some(Node {
                when: None,
                kind: NodeKind::Value(Template::Const(other.clone())),
            }),
        }
    }

    fn object_node(
        &mut self,
        map: &serde_json::Map<String, Value>,
        pointer: &str,
        scope: &mut Vec<String>,
    ) -> Option<Node> {
        let directive = |k: &str| map.get(k);
        let str_directive = |cx: &mut Self, k: &str| -> Option<Option<String>> {
            match map.get(k) {
                None => Some(None),
                Some(Value::String(s)) => Some(Some(s.clone())),
                Some(other) => {
                    cx.error(
                        Code::WrongType,
                        &format!("{pointer}/{}", escape_pointer(k)),
                        format!("`{k}` takes a string, found {}", type_name(other)),
                    );
                    None
                }
            }
        };
        let fields: Vec<(&String, &Value)> =
            map.iter().filter(|(k, _)| !k.starts_with('$')).collect();
        let mut unknown_directive = false;
        for k in map
            .keys()
            .filter(|k| k.starts_with('$') && !DIRECTIVES.contains(&k.as_str()))
        {
            let hint = did_you_mean(k, DIRECTIVES.iter().copied())
                .map(|s| format!("did you mean `{s}`?"))
                .unwrap_or_else(|| format!("directives are {}", DIRECTIVES.join(", ")));
            let p = format!("{pointer}/{}", escape_pointer(k));
            let mut d = self.diag(
                Code::BadDirective,
                &p,
                self.doc.spans.key(&p),
                format!("unknown directive `{k}`"),
            );
            d.hint = Some(hint);
            self.diags.push(d);
            unknown_directive = true;
        }
        if unknown_directive {
            return None;
        }
        let for_each = str_directive(self, "$for_each")?;
        let as_ = str_directive(self, "$as")?;
        let join = str_directive(self, "$join")?;
        let when_src = str_directive(self, "$when")?;
        let has_value = directive("$value").is_some();

        if for_each.is_none() {
            for k in ["$as", "$join"] {
                if map.contains_key(k) {
                    self.error_hint(
                        Code::BadDirective,
                        &format!("{pointer}/{}", escape_pointer(k)),
                        format!("`{k}` only applies together with `$for_each`"),
                        None,
                    );
                }
            }
        }
        if has_value && !fields.is_empty() {
            self.error_hint(
                Code::BadDirective,
                &format!("{pointer}/$value"),
                "a node with `$value` cannot also have fields".into(),
                Some(format!("move `{}` out, or drop `$value`", fields[0].0)),
            );
            return None;
        }

        let (var_pushed, var_name) = match &for_each {
            Some(_) => {
                let name = as_.clone().unwrap_or_else(|| "item".to_string());
                if name == "source" || name == "target" {
                    self.error(
                        Code::BadDirective,
                        &format!("{pointer}/$as"),
                        format!("`{name}` is already a variable; pick another loop name"),
                    );
                    return None;
                }
                scope.push(name.clone());
                scope.push("index".to_string());
                (true, name)
            }
            None => (false, String::new()),
        };
        // A loop numbers its memo slots from zero; the enclosing loop's count resumes after it.
        let outer_slots = if var_pushed {
            std::mem::take(&mut self.memo_slots)
        } else {
            self.memo_slots
        };
        let vars: Vec<String> = scope.clone();
        let vars_ref: Vec<&str> = vars.iter().map(String::as_str).collect();
        let when = match &when_src {
            Some(w) => {
                let t = self.expression(w, &format!("{pointer}/$when"), &vars_ref);
                if t.is_none() {
                    if var_pushed {
                        scope.truncate(scope.len() - 2);
                    }
                    if var_pushed {
                        self.memo_slots = outer_slots;
                    }
                    return None;
                }
                t
            }
            None => None,
        };

        let inner = if has_value {
            let v = map.get("$value").cloned().unwrap_or(Value::Null);
            self.node(&v, &format!("{pointer}/$value"), scope)
        } else {
            let mut out = Vec::new();
            let mut ok = true;
            for (k, v) in &fields {
                let p = format!("{pointer}/{}", escape_pointer(k));
                match self.node(v, &p, scope) {
                    Some(n) => out.push(((*k).clone(), n)),
                    None => ok = false,
                }
            }
            ok.then_some(Node {
                when: None,
                kind: NodeKind::Object(Fields::new(out)),
            })
        };
        if var_pushed {
            scope.truncate(scope.len() - 2);
        }
        let memo_slots = if var_pushed {
            std::mem::replace(&mut self.memo_slots, outer_slots)
        } else {
            0
        };
        let inner = inner?;
        match for_each {
            Some(path) => {
                // `index` is in scope exactly inside a loop.
                let in_loop = scope.iter().any(|v| v == "index");
                let path = self.jsonpath(&path, &format!("{pointer}/$for_each"), in_loop)?;
                Some(Node {
                    when: None,
                    kind: NodeKind::ForEach {
                        path,
                        var: var_name,
                        item: Box::new(Node {
                            when,
                            kind: inner.kind,
                        }),
                        join,
                        memo_slots,
                    },
                })
            }
            None => Some(Node {
                when,
                kind: inner.kind,
            }),
        }
    }
}

/// Finds `word` in `text` as a whole identifier, falling back to a plain substring.
fn find_word(text: &str, word: &str) -> Option<usize> {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(i) = text[from..].find(word) {
        let at = from + i;
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        if !before.is_some_and(is_ident) && !after.is_some_and(is_ident) {
            return Some(at);
        }
        from = at + word.len().max(1);
    }
    text.find(word)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn article(expected: &str) -> String {
    let e = expected.trim();
    match e {
        "object" => "a mapping".into(),
        "array" => "a list".into(),
        "integer" => "a whole number".into(),
        "string" | "number" | "boolean" => format!("a {e}"),
        other => other.replace("object", "mapping").replace("array", "list"),
    }
}

/// Property names allowed where an `additionalProperties` error was raised.
fn allowed_properties(schema: &Value, schema_path: &str) -> Vec<String> {
    let parent = schema_path
        .strip_suffix("/additionalProperties")
        .unwrap_or(schema_path);
    schema
        .pointer(&format!("{parent}/properties"))
        .and_then(Value::as_object)
        .map(|m| m.keys().filter(|k| !k.starts_with('$')).cloned().collect())
        .unwrap_or_default()
}

/// Checks across files: unknown references, duplicate mappings and triggers, mode conflicts.
fn check_pack(
    compiled: &[(Plan, &Document, Vec<RefUse>)],
    declared: &[(String, String)],
    diags: &mut Vec<Diagnostic>,
) {
    let mut entities: BTreeMap<(Direction, &str), Vec<&Plan>> = BTreeMap::new();
    for (p, _, _) in compiled {
        entities
            .entry((p.direction, p.entity.as_str()))
            .or_default()
            .push(p);
    }
    for (plan, doc, uses) in compiled {
        let mut cx = Cx::new(doc);
        let dir = plan.direction.as_str();
        for u in uses {
            let exists = declared.iter().any(|(d, e)| d == dir && *e == u.entity);
            if !exists {
                let mut known: Vec<&str> = declared
                    .iter()
                    .filter(|(d, _)| d == dir)
                    .map(|(_, e)| e.as_str())
                    .collect();
                known.sort();
                known.dedup();
                let other = declared.iter().any(|(d, e)| d != dir && *e == u.entity);
                let hint = did_you_mean(&u.entity, known.iter().copied())
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| {
                        if other {
                            format!("`{}` is mapped only in the other direction; references stay within {dir}", u.entity)
                        } else {
                            format!("{dir} entities in this pack: {}", known.join(", "))
                        }
                    });
                cx.error_at_text(
                    Code::UnknownReference,
                    &u.pointer,
                    Some(&u.entity),
                    format!("reference to unknown entity `{}`", u.entity),
                    Some(hint),
                );
            }
        }
        diags.append(&mut cx.diags);
    }

    // Duplicate mappings and modes.
    let mut duplicates: Vec<&Plan> = Vec::new();
    for ((_, entity), plans) in &entities {
        let with_mode = plans.iter().filter(|p| p.mode.is_some()).count();
        if with_mode > 0 && with_mode < plans.len() {
            for p in plans.iter().filter(|p| p.mode.is_none()) {
                push(
                    diags,
                    compiled,
                    p,
                    "/entity",
                    Code::ModeConflict,
                    format!("`{entity}` has mappings with a `mode`, so this one needs a mode too"),
                    Some(
                        "give each alternative a distinct `mode`, e.g. `booked` and `as_order`"
                            .into(),
                    ),
                );
            }
        }
        let mut seen: BTreeMap<Option<&str>, &Plan> = BTreeMap::new();
        for p in plans {
            if let Some(first) = seen.get(&p.mode.as_deref()) {
                duplicates.push(p);
                push(
                    diags,
                    compiled,
                    p,
                    "/entity",
                    Code::DuplicateMapping,
                    format!(
                        "`{entity}` ({}) is already mapped in {}",
                        p.direction.as_str(),
                        first.file.display()
                    ),
                    Some("one file per entity and direction; use `mode` for alternatives".into()),
                );
            } else {
                seen.insert(p.mode.as_deref(), p);
            }
        }
    }

    // Triggers: one event drives one mapping, or alternative modes of one entity.
    let mut triggers: BTreeMap<(Direction, &str), (&Plan, usize)> = BTreeMap::new();
    for (p, _, _) in compiled {
        // A duplicate mapping's triggers are the same problem again; it was reported once.
        if duplicates.iter().any(|d| std::ptr::eq(*d, p)) {
            continue;
        }
        for (i, ev) in p.on.iter().enumerate() {
            if p.on[..i].contains(ev) {
                push(
                    diags,
                    compiled,
                    p,
                    &format!("/on/{i}"),
                    Code::DuplicateTrigger,
                    format!("event `{ev}` is listed twice"),
                    Some("remove one of them".into()),
                );
                continue;
            }
            match triggers.get(&(p.direction, ev.as_str())) {
                Some((first, _)) if !(first.entity == p.entity && first.mode != p.mode) => {
                    push(diags, compiled, p, &format!("/on/{i}"), Code::DuplicateTrigger,
                        format!("event `{ev}` already triggers `{}` in {}", first.entity, first.file.display()),
                        Some("an event may drive one mapping (or the alternative modes of one entity)".into()));
                }
                Some(_) => {}
                None => {
                    triggers.insert((p.direction, ev.as_str()), (p, i));
                }
            }
        }
    }
}

fn push(
    diags: &mut Vec<Diagnostic>,
    compiled: &[(Plan, &Document, Vec<RefUse>)],
    plan: &Plan,
    pointer: &str,
    code: Code,
    message: String,
    hint: Option<String>,
) {
    if let Some((_, doc, _)) = compiled.iter().find(|(p, _, _)| std::ptr::eq(p, plan)) {
        let mut cx = Cx::new(doc);
        cx.error_hint(code, pointer, message, hint);
        diags.append(&mut cx.diags);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn jsonpath_errors_are_one_line() {
        let e = super::JsonPath::compile("$.[product")
            .err()
            .unwrap_or_default();
        assert!(e.starts_with("at column 3"), "{e}");
    }
}
