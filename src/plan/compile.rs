//! Compiling one mapping file: its schema checked (every error reported), then each template,
//! JSONPath, lookup and request compiled into a [`Plan`].

mod links;
mod reconcile;

use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock};

use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

use super::requests;
use super::{
    ApiLookup, Fields, FindPlan, JsonPath, Node, NodeKind, Plan, RequestText, SourcePlan,
    TargetPlan, ThenPlan, WritePlan,
};
use crate::expr::StaticTable;
use crate::expr::native::Loop;
use crate::expr::template::{self, ProblemKind, Template, TemplateProblem, Uses};
use crate::spec::UpdateFields;
use crate::spec::diagnostic::did_you_mean;
use crate::spec::report::type_name;
use crate::spec::schema_check::remove_pointer;
use crate::spec::yaml::escape_pointer;
use crate::spec::{
    Code, Cx, DIRECTIVES, Diagnostic, Direction, Document, Lookup, Mapping, schema_check,
};

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
    let mut c = Compiler::new(doc);
    let mut value = doc.value.clone();
    let broken = schema_check(
        &mut c.cx,
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
                c.cx.error(Code::InvalidValue, "", format!("invalid mapping: {e}"));
            }
            return (None, c.cx.diags, c.refs);
        }
    };
    // A salvaged mapping is compiled only to find the remaining problems in its templates.
    c.salvaged = broken;
    let plan = c.mapping(&mapping);
    if broken {
        return (None, c.cx.diags, c.refs);
    }
    if let Some(p) = &plan {
        let reads = std::mem::take(&mut c.reads);
        super::shapes::check_source(p, &mapping.source, &reads, &mut c.cx);
    }
    (plan, c.cx.diags, c.refs)
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

/// Compiling one file: where diagnostics go and what templates used.
struct Compiler<'a> {
    cx: Cx<'a>,
    /// The mapping had schema errors and was patched up: checks that relate fields are skipped.
    salvaged: bool,
    refs: Vec<RefUse>,
    /// Entities `ref()` names (not `bound()`): synced first when missing.
    depends_on: BTreeSet<String>,
    lookups_used: Vec<(String, String)>,
    lookup_chains: BTreeSet<(String, String)>,
    /// Memo slots handed out so far in the `$for_each` being compiled.
    memo_slots: usize,
    /// Each enclosing `$for_each`'s item name and where its items sit in the source record
    /// (`["lines", "[]"]`), when its JSONPath is a plain path.
    loops: Vec<(String, Option<Vec<String>>)>,
    /// Each path into the source record a template reads, for `shapes::check_source`.
    pub(super) reads: Vec<super::shapes::Read>,
}

impl<'a> Compiler<'a> {
    fn new(doc: &'a Document) -> Self {
        Compiler {
            cx: Cx::new(doc),
            salvaged: false,
            refs: Vec::new(),
            depends_on: BTreeSet::new(),
            lookups_used: Vec::new(),
            lookup_chains: BTreeSet::new(),
            memo_slots: 0,
            loops: Vec::new(),
            reads: Vec::new(),
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
            self.cx.error_hint(
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
        self.depends_on.extend(uses.refs.iter().cloned());
        for r in uses.refs.into_iter().chain(uses.bound) {
            self.refs.push(RefUse {
                entity: r,
                pointer: pointer.to_string(),
            });
        }
        for l in uses.lookups {
            self.lookups_used.push((l, pointer.to_string()));
        }
        self.lookup_chains.extend(uses.lookup_chains);
        let loops = &self.loops;
        self.reads.extend(
            uses.paths
                .iter()
                .filter_map(|p| super::shapes::Read::of(p, loops, pointer)),
        );
    }

    fn problems(&mut self, pointer: &str, problems: Vec<TemplateProblem>) {
        for p in problems {
            let code = match p.kind {
                ProblemKind::Syntax | ProblemKind::DynamicName => Code::BadTemplate,
                ProblemKind::UnknownVariable => Code::UnknownVariable,
                ProblemKind::UnknownFunction => Code::UnknownFunction,
                ProblemKind::UnknownFilter => Code::UnknownFilter,
            };
            self.cx.error_at_offset(
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
                self.cx.error_hint(
                    Code::BadJsonpath,
                    pointer,
                    format!("`{text}` starts with `@`, the current item, but there is no enclosing `$for_each` here"),
                    Some("start it with `$` to select from the source record".into()),
                );
                None
            }
            Ok(p) => Some(p),
            Err(e) => {
                self.cx.error_hint(
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
        requests::constant(&mut self.cx, value, pointer);
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
            self.cx.error_hint(
                Code::TriggerDirection,
                "/on",
                "tripletex_to_rackbeat mappings run in the initial sync and take no webhook triggers".into(),
                Some("remove `on`, or change `direction` to rackbeat_to_tripletex".into()),
            );
        }
        let source_key = self.cx.doc.spans.key("/source");
        if m.direction == Direction::RackbeatToTripletex
            && !m.on.is_empty()
            && m.source.get.is_none()
        {
            let mut d = self.cx.diag(
                Code::MissingSource,
                "/source",
                source_key.clone(),
                "a mapping with triggers needs `source.get` to read the record a webhook names"
                    .into(),
            );
            d.hint = Some("e.g. `get: \"/<resource>/{{ key | urlencode }}\"`".into());
            self.cx.diags.push(d);
        }
        if m.direction == Direction::TripletexToRackbeat && m.source.list.is_empty() {
            let mut d = self.cx.diag(
                Code::MissingSource,
                "/source",
                source_key,
                "an initial-sync mapping needs `source.list` to page through the records".into(),
            );
            d.hint = Some("e.g. `list: [{ path: /customer }]`".into());
            self.cx.diags.push(d);
        }
        if !m.body.contains_key(&m.target.natural_key) {
            let keys: Vec<&str> = m.body.keys().map(String::as_str).collect();
            self.cx.error_hint(
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
        let before = self.cx.diags.len();
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
            self.cx.error_hint(
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

        requests::check(&mut self.cx, m);

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
        let then = m.target.then.as_ref().map(|t| self.then(t));
        let update = m.target.update.as_ref().map(|u| {
            (
                (u.method, u.send, u.without_body),
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
                self.cx.error_hint(
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
        let declared: Option<Vec<String>> = match self.cx.doc.value.get("lookups") {
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
                self.cx.error_at_text(
                    Code::UnknownLookup,
                    &pointer,
                    Some(&name),
                    format!("unknown lookup `{name}`"),
                    Some(hint),
                );
            }
        }

        if self.cx.diags.len() > before {
            return None;
        }
        let (Some(key), Some(find_path), Some(create_path)) = (key, find_path, create_path) else {
            return None;
        };
        let then = match then {
            Some(Some(t)) => Some(t),
            Some(None) => return None,
            None => None,
        };
        let update = match update {
            Some(((method, send, bare), Some(path), query)) => {
                Some(WritePlan::new(method, path, query, send, bare))
            }
            Some((_, None, _)) => return None,
            None => None,
        };
        let body = Fields::new(body);
        // The binding's id and version answer an update that reads no more of the target; one
        // that reads `target` whole, or any other field, gets the record read first.
        let update_reads_target = super::target_fields(&body, update.as_ref())
            .iter()
            .any(|f| f != &m.target.id && f != "version");
        let depends_on = std::mem::take(&mut self.depends_on);
        for field in m.round_trip_losses.keys() {
            if !m.body.contains_key(field) {
                let names: Vec<&str> = m.body.keys().map(String::as_str).collect();
                self.cx.error_hint(
                    Code::UnknownField,
                    &format!("/round_trip_losses/{}", escape_pointer(field)),
                    format!("`{field}` is not a field of the body"),
                    did_you_mean(field, names.iter().copied())
                        .map(|n| format!("did you mean `{n}`?")),
                );
            }
        }
        let reconcile = self.reconcile(m);
        let links = self.links(m);
        let round_trip_losses = m
            .round_trip_losses
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Some(Plan {
            file: self.cx.doc.path.clone(),
            entity: m.entity.clone(),
            direction: dir,
            mode: m.mode.clone(),
            on: m.on.iter().map(|e| e.0.clone()).collect(),
            when,
            source: SourcePlan {
                get,
                select,
                list: m.source.list.clone(),
                changed: m.source.changed.clone(),
                key,
            },
            target: TargetPlan {
                natural_key: m.target.natural_key.clone(),
                id: m.target.id.clone(),
                find: FindPlan {
                    path: find_path,
                    query: find_query,
                    matches: find_matches,
                    fallback_query: m
                        .target
                        .find
                        .fallback_query
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                },
                list: m.target.list.clone(),
                // A create sends the whole body.
                create: WritePlan::new(
                    m.target.create.method,
                    create_path,
                    create_query,
                    UpdateFields::All,
                    m.target.create.without_body,
                ),
                update,
                batch: m.target.batch.clone(),
                then,
            },
            statics: Arc::new(statics),
            api_lookups,
            lookup_chains: std::mem::take(&mut self.lookup_chains),
            update_reads_target,
            body,
            depends_on,
            round_trip_losses,
            reconcile,
            links,
        })
    }

    /// `target.then`: its request and its find, over `source`, `body` and `created`.
    fn then(&mut self, t: &crate::spec::ThenRequest) -> Option<ThenPlan> {
        let vars = ["source", "body", "created"];
        let path = self.template(&t.path, "/target/then/path", &vars);
        let query = self.query(&t.query, "/target/then/query", &vars);
        let find = match &t.find {
            None => None,
            Some(f) => {
                let path = self.template(&f.path, "/target/then/find/path", &vars);
                let query = self.query(&f.query, "/target/then/find/query", &vars);
                let matches = f.matches.as_ref().and_then(|e| {
                    self.expression(
                        e,
                        "/target/then/find/match",
                        &["item", "source", "body", "created"],
                    )
                });
                if f.matches.is_some() && matches.is_none() {
                    return None;
                }
                Some(FindPlan {
                    path: RequestText::new(path?),
                    query,
                    matches,
                    fallback_query: f
                        .fallback_query
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                })
            }
        };
        Some(ThenPlan {
            method: t.method,
            path: RequestText::new(path?),
            query,
            find,
        })
    }

    fn node(&mut self, v: &Value, pointer: &str, scope: &mut Vec<String>) -> Option<Node> {
        let vars: Vec<&str> = scope.iter().map(String::as_str).collect();
        match v {
            Value::String(s) => {
                let t = self.template(s, pointer, &vars)?;
                Some(Node {
                    when: None,
                    create_only: false,
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
                    create_only: false,
                    kind: NodeKind::List(out),
                })
            }
            Value::Object(map) => self.object_node(map, pointer, scope),
            other => Some(Node {
                when: None,
                create_only: false,
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
                    cx.cx.error(
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
            let mut d = self.cx.diag(
                Code::BadDirective,
                &p,
                self.cx.doc.spans.key(&p),
                format!("unknown directive `{k}`"),
            );
            d.hint = Some(hint);
            self.cx.diags.push(d);
            unknown_directive = true;
        }
        if unknown_directive {
            return None;
        }
        let for_each = str_directive(self, "$for_each")?;
        let as_ = str_directive(self, "$as")?;
        let join = str_directive(self, "$join")?;
        let when_src = str_directive(self, "$when")?;
        let create_only = match map.get("$create_only") {
            None | Some(Value::Bool(false)) => false,
            Some(Value::Bool(true)) => true,
            Some(other) => {
                self.cx.error(
                    Code::WrongType,
                    &format!("{pointer}/$create_only"),
                    format!(
                        "`$create_only` takes true or false, found {}",
                        type_name(other)
                    ),
                );
                return None;
            }
        };
        let has_value = directive("$value").is_some();

        if for_each.is_none() {
            for k in ["$as", "$join"] {
                if map.contains_key(k) {
                    self.cx.error_hint(
                        Code::BadDirective,
                        &format!("{pointer}/{}", escape_pointer(k)),
                        format!("`{k}` only applies together with `$for_each`"),
                        None,
                    );
                }
            }
        }
        if has_value && !fields.is_empty() {
            self.cx.error_hint(
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
                    self.cx.error(
                        Code::BadDirective,
                        &format!("{pointer}/$as"),
                        format!("`{name}` is already a variable; pick another loop name"),
                    );
                    return None;
                }
                scope.push(name.clone());
                scope.push("index".to_string());
                let base = for_each.as_deref().and_then(|p| {
                    let enclosing = self.loops.last().and_then(|(_, b)| b.clone());
                    super::shapes::items_at(p, enclosing)
                });
                self.loops.push((name.clone(), base));
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
                        self.loops.pop();
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
                create_only: false,
                kind: NodeKind::Object(Fields::new(out)),
            })
        };
        if var_pushed {
            scope.truncate(scope.len() - 2);
            self.loops.pop();
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
                    create_only,
                    kind: NodeKind::ForEach {
                        path,
                        var: var_name,
                        item: Box::new(Node {
                            when,
                            create_only: false,
                            kind: inner.kind,
                        }),
                        join,
                        memo_slots,
                    },
                })
            }
            None => Some(Node {
                when,
                create_only,
                kind: inner.kind,
            }),
        }
    }
}
