//! The body a mapping writes to Tripletex, checked against the request schema of each operation
//! it is sent to (create, update, and their bulk forms) in Tripletex's vendored OpenAPI spec:
//! unknown fields, constants of the wrong type, text or a number where an object is expected.
//! What a template computes is known only when it runs, so a template is checked only where its
//! result is text for certain (literal text around `{{ }}`).

use serde_json::Value;

use super::Plan;
use crate::spec::diagnostic::did_you_mean;
use crate::spec::{Code, Cx, DIRECTIVES, Direction, Document};

/// Every problem of `plan`'s body against the operations it is written with.
pub(super) fn check(plan: &Plan, doc: &Document, cx: &mut Cx) {
    let Some(body) = doc.value.get("body") else {
        return;
    };
    if plan.direction == Direction::TripletexToRackbeat {
        check_rackbeat_body(body, doc, cx);
        return;
    }
    let target = &doc.value["target"];
    let mut seen = Vec::new();
    for (pointer, write) in [
        ("/target/create", &target["create"]),
        ("/target/update", &target["update"]),
        ("/target/batch/create", &target["batch"]["create"]),
        ("/target/batch/update", &target["batch"]["update"]),
    ] {
        if write.is_null() || write.get("without_body").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        let (Some(method), Some(path)) = (
            write.get("method").and_then(Value::as_str),
            write.get("path").and_then(Value::as_str),
        ) else {
            continue;
        };
        let Some(op) = crate::tripletex_spec::operation(method, &placeholders(path)) else {
            // An operation the spec subset lacks is reported by `rbtx test`'s request check.
            continue;
        };
        let Some(mut schema) = crate::tripletex_spec::document()["operations"][&op]
            .get("body")
            .cloned()
        else {
            continue;
        };
        // A bulk operation takes a list of what the single one takes.
        if pointer.starts_with("/target/batch") {
            schema = resolve(&schema)
                .get("items")
                .cloned()
                .unwrap_or(Value::Null);
        }
        // One report per place, however many operations share the schema.
        if seen.contains(&schema) {
            continue;
        }
        seen.push(schema.clone());
        walk(body, &schema, "/body", &op, cx);
    }
}

/// A body written to Rackbeat (the initial sync): its fields against the resource's record schema
/// in `schemas/rackbeat/`. That schema is what the samples showed, so a field it lacks is a
/// warning, and types are not checked (a sample's `null` says little of what else is allowed).
fn check_rackbeat_body(body: &Value, doc: &Document, cx: &mut Cx) {
    let Some(path) = doc.value["target"]["create"]["path"].as_str() else {
        return;
    };
    let resource = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    let Some(schema) = crate::files::schema(&format!("rackbeat/{resource}.schema.json"))
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
    else {
        return;
    };
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    let Value::Object(fields) = body else { return };
    for name in fields.keys().filter(|k| !k.starts_with('$')) {
        if props.contains_key(name) {
            continue;
        }
        let at = format!("/body/{}", name.replace('~', "~0").replace('/', "~1"));
        let span = cx.doc.spans.key(&at);
        let mut d = cx.diag(
            Code::UnknownTargetField,
            &at,
            span,
            format!("Rackbeat's {resource} (schemas/rackbeat/, from the samples seen) have no field `{name}`"),
        );
        d.hint = closest(name, props.keys().map(String::as_str))
            .map(|s| format!("did you mean `{s}`?"))
            .or_else(|| Some("if Rackbeat does take it, add it to the schema".into()));
        d.severity = crate::spec::Severity::Warning;
        cx.diags.push(d);
    }
}

/// A path template with each `{{ … }}` replaced by a value, to find its operation.
fn placeholders(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        match rest[start..].find("}}") {
            Some(end) => {
                out.push('1');
                rest = &rest[start + end + 2..];
            }
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The schema a `$ref` names, followed until it is not a reference.
fn resolve(schema: &Value) -> &Value {
    let mut s = schema;
    for _ in 0..8 {
        let Some(r) = s.get("$ref").and_then(Value::as_str) else {
            break;
        };
        let Some(name) = r.strip_prefix("#/components/schemas/") else {
            break;
        };
        s = &crate::tripletex_spec::document()["components"]["schemas"][name];
    }
    s
}

/// What the schema wants, in a person's words.
fn wanted(schema: &Value) -> &'static str {
    match schema.get("type").and_then(Value::as_str) {
        Some("integer") => "an integer",
        Some("number") => "a number",
        Some("boolean") => "true or false",
        Some("string") => "text",
        Some("array") => "a list",
        _ if schema.get("properties").is_some() => "an object",
        _ => "",
    }
}

fn is_object(schema: &Value) -> bool {
    schema.get("properties").is_some()
        || schema.get("type").and_then(Value::as_str) == Some("object")
}

/// Whether a string node's value is certainly text: a constant, or a template with text outside
/// its `{{ }}`.
fn certainly_text(s: &str) -> bool {
    let t = s.trim();
    !(t.starts_with("{{") && t.ends_with("}}") && t.matches("{{").count() == 1)
}

fn walk(node: &Value, schema: &Value, pointer: &str, op: &str, cx: &mut Cx) {
    let schema = resolve(schema);
    if schema.is_null() {
        return;
    }
    match node {
        Value::Object(map) => {
            if map.contains_key("$for_each") {
                let item = resolve(schema).get("items");
                let Some(item) = item else {
                    if !wanted(schema).is_empty() && !map.contains_key("$join") {
                        cx.error(
                            Code::WrongType,
                            pointer,
                            format!(
                                "{op} wants {} here, and `$for_each` makes a list",
                                wanted(schema)
                            ),
                        );
                    }
                    return;
                };
                walk_content(map, item, pointer, op, cx);
                return;
            }
            walk_content(map, schema, pointer, op, cx);
        }
        Value::Array(items) => match schema.get("items") {
            Some(item) => {
                for (i, n) in items.iter().enumerate() {
                    walk(n, item, &format!("{pointer}/{i}"), op, cx);
                }
            }
            None => wrong(pointer, op, schema, "a list", cx),
        },
        Value::String(s) => {
            let kind = schema.get("type").and_then(Value::as_str);
            let text_ok = kind == Some("string") || (kind.is_none() && !is_object(schema));
            if !text_ok && certainly_text(s) {
                wrong(pointer, op, schema, "text", cx);
            }
        }
        Value::Number(n) => match schema.get("type").and_then(Value::as_str) {
            Some("number") => {}
            Some("integer") if n.is_i64() || n.is_u64() => {}
            _ => wrong(pointer, op, schema, "a number", cx),
        },
        Value::Bool(_) => {
            if schema.get("type").and_then(Value::as_str) != Some("boolean") {
                wrong(pointer, op, schema, "true or false", cx);
            }
        }
        Value::Null => {}
    }
}

/// An object node: `$value` stands for the whole; else its fields, each a property.
fn walk_content(
    map: &serde_json::Map<String, Value>,
    schema: &Value,
    pointer: &str,
    op: &str,
    cx: &mut Cx,
) {
    if let Some(v) = map.get("$value") {
        walk(v, schema, &format!("{pointer}/$value"), op, cx);
        return;
    }
    let fields: Vec<(&String, &Value)> = map
        .iter()
        .filter(|(k, _)| !DIRECTIVES.contains(&k.as_str()))
        .collect();
    if fields.is_empty() {
        return;
    }
    let schema = resolve(schema);
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        wrong(pointer, op, schema, "an object", cx);
        return;
    };
    for (name, value) in fields {
        let at = format!("{pointer}/{}", name.replace('~', "~0").replace('/', "~1"));
        match props.get(name) {
            Some(p) => walk(value, p, &at, op, cx),
            None => {
                let hint = closest(name, props.keys().map(String::as_str))
                    .map(|s| format!("did you mean `{s}`?"));
                let span = cx.doc.spans.key(&at);
                let mut d = cx.diag(
                    Code::UnknownTargetField,
                    &at,
                    span,
                    format!("{op} has no field `{name}` (Tripletex answers 422/16000)"),
                );
                d.hint = hint;
                cx.diags.push(d);
            }
        }
    }
}

/// A likely typo, or a field the name is the start of (`priceExcludingVat` →
/// `priceExcludingVatCurrency`).
fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str> + Clone) -> Option<&'a str> {
    did_you_mean(name, candidates.clone()).or_else(|| {
        let lower = name.to_lowercase();
        candidates
            .filter(|c| c.to_lowercase().starts_with(&lower))
            .min_by_key(|c| c.len())
    })
}

fn wrong(pointer: &str, op: &str, schema: &Value, got: &str, cx: &mut Cx) {
    let want = wanted(schema);
    if want.is_empty() {
        return;
    }
    let hint = (want == "an object"
        && schema.get("properties").and_then(|p| p.get("id")).is_some())
    .then(|| "a reference is an object: `{ id: \"{{ … }}\" }`".to_string());
    cx.error_hint(
        Code::WrongType,
        pointer,
        format!("{op} wants {want} here, not {got}"),
        hint,
    );
}

/// A path into the source record that a template reads.
pub(super) struct Read {
    /// Field names from the record's root; `[]` steps into a list's items.
    pub path: Vec<String>,
    /// As written (`line.name`), to point at it.
    pub text: String,
    pub pointer: String,
}

impl Read {
    /// `text` (`source.a.b`, or `line.name` for an enclosing loop's item) as a path from the
    /// record's root; `None` for other variables, or a loop over something other than a path.
    pub(super) fn of(
        text: &str,
        loops: &[(String, Option<Vec<String>>)],
        pointer: &str,
    ) -> Option<Read> {
        let mut segs = text.split('.');
        let var = segs.next()?;
        let mut path = if var == "source" {
            Vec::new()
        } else {
            loops.iter().rev().find(|(n, _)| n == var)?.1.clone()?
        };
        path.extend(segs.map(str::to_string));
        Some(Read {
            path,
            text: text.to_string(),
            pointer: pointer.to_string(),
        })
    }
}

/// Where a `$for_each`'s items sit: `$.lines[*]` → `lines.[]`, `@.children[*]` inside a loop
/// over `lines` → `lines.[].children.[]`. `None` when the JSONPath is more than a plain path.
pub(super) fn items_at(jsonpath: &str, enclosing: Option<Vec<String>>) -> Option<Vec<String>> {
    let (mut out, rest) = match jsonpath.trim() {
        p if p.starts_with("$.") => (Vec::new(), &p[2..]),
        p if p.starts_with("@.") => (enclosing?, &p[2..]),
        _ => return None,
    };
    for seg in rest.split('.') {
        let (name, index) = match seg.find('[') {
            Some(i) => (&seg[..i], Some(&seg[i..])),
            None => (seg, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return None;
        }
        out.push(name.to_string());
        if index.is_some() {
            out.push("[]".to_string());
        }
    }
    // A loop's items are a list's: `$.lines` loops over the list at `lines`.
    if out.last().map(String::as_str) != Some("[]") {
        out.push("[]".to_string());
    }
    Some(out)
}

/// The schema of the records a mapping reads, and whether it is complete: Tripletex's from its
/// spec (closed: a field it lacks is an error), Rackbeat's from `schemas/rackbeat/` (open: a
/// field it lacks may be one no sample showed, so a warning).
fn source_schema(plan: &Plan, source: &crate::spec::Source) -> Option<(Value, bool)> {
    // The resource the records come from: the list's, else the path that reads one record up to
    // its key (`/customer-invoices/{{ key }}`).
    let path = source
        .list
        .first()
        .map(|l| l.path.clone())
        .or_else(|| plan.source.changed.as_ref().map(|c| c.path.clone()))
        .or_else(|| {
            let get = source.get.as_deref()?;
            let fixed = &get[..get.find("{{").unwrap_or(get.len())];
            Some(fixed.trim_end_matches('/').to_string())
        })?;
    let resource = path.trim_start_matches('/').split('/').next()?.to_string();
    match plan.direction {
        Direction::TripletexToRackbeat => {
            // `/customer` → Customer, `/product/unit` → ProductUnit.
            let name: String = path
                .trim_start_matches('/')
                .split('/')
                .map(|s| {
                    let mut c = s.chars();
                    c.next()
                        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                        .unwrap_or_default()
                })
                .collect();
            let s = crate::tripletex_spec::document()["components"]["schemas"].get(&name)?;
            Some((s.clone(), true))
        }
        Direction::RackbeatToTripletex => {
            let text = crate::files::schema(&format!("rackbeat/{resource}.schema.json"))?;
            Some((serde_json::from_str(text).ok()?, false))
        }
    }
}

/// Each path a mapping reads, checked against the source record's schema.
pub(super) fn check_source(plan: &Plan, source: &crate::spec::Source, reads: &[Read], cx: &mut Cx) {
    let Some((schema, closed)) = source_schema(plan, source) else {
        return;
    };
    let mut reported = std::collections::BTreeSet::new();
    for read in reads {
        let Some((at, name, known)) = unknown_step(&schema, &read.path) else {
            continue;
        };
        // `line.item.group` and `line.item.group.number` lack one field: one report.
        let mut unknown = at.clone();
        unknown.push(name.clone());
        if !reported.insert((read.pointer.clone(), unknown)) {
            continue;
        }
        let hint = closest(&name, known.iter().map(String::as_str))
            .map(|s| format!("did you mean `{s}`?"));
        let record = if closed {
            "Tripletex's"
        } else {
            "Rackbeat's (schemas/rackbeat/, from the samples seen)"
        };
        let message = if at.is_empty() {
            format!("`{}`: {record} record has no field `{name}`", read.text)
        } else {
            format!(
                "`{}`: {record} `{}` has no field `{name}`",
                read.text,
                at.join(".").replace(".[]", "[]")
            )
        };
        let needle = read.text.clone();
        let before = cx.diags.len();
        cx.error_at_text(
            Code::UnknownSourceField,
            &read.pointer,
            Some(&needle),
            message,
            hint.or_else(|| {
                (!closed).then(|| "if Rackbeat does send it, add it to the schema".to_string())
            }),
        );
        if !closed && let Some(d) = cx.diags.get_mut(before) {
            d.severity = crate::spec::Severity::Warning;
        }
    }
}

/// The first step of `path` the schema does not know: the path before it, its name, and the
/// names the schema knows there. `None` when the schema knows the whole path, or cannot tell.
fn unknown_step(schema: &Value, path: &[String]) -> Option<(Vec<String>, String, Vec<String>)> {
    let mut s = resolve(schema);
    for (i, step) in path.iter().enumerate() {
        if step == "[]" {
            s = resolve(s.get("items")?);
            continue;
        }
        // A list read without a loop (`source.lines.0`, a filter over it): not followed.
        if s.get("items").is_some() {
            return None;
        }
        let props = s.get("properties").and_then(Value::as_object)?;
        match props.get(step) {
            Some(p) => s = resolve(p),
            None => {
                return Some((
                    path[..i].to_vec(),
                    step.clone(),
                    props.keys().cloned().collect(),
                ));
            }
        }
    }
    None
}
