//! JSON Schema errors as diagnostics: each at the field it is about, in the words of the YAML
//! contract ("unknown field", "missing field", "expected a list"), with a "did you mean" hint from
//! the schema's own names. Mapping files, test files and tenants files are checked with it.

use jsonschema::ValidationError;
use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value;

use super::DIRECTIVES;
use super::diagnostic::{Code, did_you_mean};
use super::report::{Cx, first_line, type_name};
use super::yaml::{escape_pointer, field_path};

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
        schema_error(cx, schema, &err, &mut unknown);
    }
    for pointer in unknown.iter().rev() {
        remove_pointer(value, pointer);
    }
    found
}

/// Removes the value at JSON pointer `pointer`, when its parent is an object.
pub fn remove_pointer(value: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    if let Some(Value::Object(m)) = value.pointer_mut(parent) {
        m.shift_remove(&last);
    }
}

/// One schema error as diagnostics; the pointers of unknown keys go to `unknown`.
fn schema_error(cx: &mut Cx, schema: &Value, err: &ValidationError, unknown: &mut Vec<String>) {
    let at = err.instance_path().as_str().to_string();
    match err.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            unknown_fields(cx, schema, err, &at, unexpected, unknown)
        }
        ValidationErrorKind::Required { property } => missing_field(cx, err, &at, property),
        ValidationErrorKind::Type { kind } => wrong_type(cx, err, &at, kind),
        ValidationErrorKind::Enum { options } => not_an_option(cx, err, &at, options),
        ValidationErrorKind::Constant { expected_value } => {
            cx.error(
                Code::InvalidValue,
                &at,
                format!("expected `{expected_value}`"),
            );
        }
        ValidationErrorKind::Minimum { .. } | ValidationErrorKind::Maximum { .. }
            if at == "/version" =>
        {
            cx.error_hint(
                Code::UnsupportedVersion,
                &at,
                format!(
                    "mapping language version {} is not supported",
                    err.instance()
                ),
                Some("this rbtx reads `version: 1`".into()),
            );
        }
        ValidationErrorKind::Pattern { pattern } => bad_pattern(cx, err, &at, pattern),
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            no_branch(cx, schema, err, &at, context, unknown)
        }
        other => {
            let msg = format!("{other:?}");
            cx.error(
                Code::InvalidValue,
                &at,
                format!("invalid value: {}", first_line(&msg)),
            );
        }
    }
}

fn unknown_fields(
    cx: &mut Cx,
    schema: &Value,
    err: &ValidationError,
    at: &str,
    unexpected: &[String],
    unknown: &mut Vec<String>,
) {
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
                    (!allowed.is_empty()).then(|| format!("allowed here: {}", allowed.join(", ")))
                })
        };
        let where_ = if at.is_empty() {
            "the top level".to_string()
        } else {
            format!("`{}`", field_path(at))
        };
        let mut d = cx.diag(
            Code::UnknownField,
            &pointer,
            cx.doc.spans.key(&pointer),
            format!("unknown field `{key}` in {where_}"),
        );
        d.hint = hint;
        cx.diags.push(d);
        unknown.push(pointer);
    }
}

fn missing_field(cx: &mut Cx, err: &ValidationError, at: &str, property: &Value) {
    let name = property.as_str().unwrap_or("?");
    // A typo of this very field is reported as an unknown field with a hint; saying it is
    // missing too would only be noise.
    let typo = err.instance().as_object().is_some_and(|m| {
        m.keys()
            .any(|k| !k.starts_with('$') && did_you_mean(k, [name]).is_some() && k != name)
    });
    if typo {
        return;
    }
    let where_ = if at.is_empty() {
        "the mapping".to_string()
    } else {
        format!("`{}`", field_path(at))
    };
    let span = if at.is_empty() {
        // The first key of the file, rather than a comment at 1:1.
        err.instance()
            .as_object()
            .and_then(|m| m.keys().next())
            .map(|k| cx.doc.spans.key(&format!("/{}", escape_pointer(k))))
            .unwrap_or(0..0)
    } else {
        cx.doc.spans.key(at)
    };
    let mut d = cx.diag(
        Code::MissingField,
        at,
        span,
        format!("missing field `{name}` in {where_}"),
    );
    d.hint = Some(format!("add `{name}:`"));
    cx.diags.push(d);
}

fn wrong_type(cx: &mut Cx, err: &ValidationError, at: &str, kind: &TypeKind) {
    let expected = format!("{kind:?}")
        .replace("Single(", "")
        .replace("Multiple(", "")
        .replace(')', "")
        .to_lowercase();
    let expected = expected
        .replace("jsontypeset", "")
        .replace("jsontype::", "");
    let found = type_name(err.instance());
    cx.error_hint(
        Code::WrongType,
        at,
        format!("expected {}, found {found}", article(&expected)),
        None,
    );
}

fn not_an_option(cx: &mut Cx, err: &ValidationError, at: &str, options: &Value) {
    let opts: Vec<String> = options
        .as_array()
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default();
    not_one_of(cx, at, &text(err.instance()), &opts);
}

/// "`got` is not allowed here", with the closest of `options` or all of them as the hint.
fn not_one_of(cx: &mut Cx, at: &str, got: &str, options: &[String]) {
    let hint = did_you_mean(got, options.iter().map(String::as_str))
        .map(|s| format!("did you mean `{s}`?"))
        .or_else(|| Some(format!("one of: {}", options.join(", "))));
    cx.error_hint(
        Code::InvalidValue,
        at,
        format!("`{got}` is not allowed here"),
        hint,
    );
}

/// A value as a person reads it: a string without its quotes.
fn text(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

fn bad_pattern(cx: &mut Cx, err: &ValidationError, at: &str, pattern: &str) {
    let got = err.instance().as_str().unwrap_or("").to_string();
    let hint = match at {
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
    cx.error_hint(
        Code::InvalidValue,
        at,
        format!("`{got}` is not a valid value here"),
        hint,
    );
}

/// A value no branch of a `oneOf`/`anyOf` accepts: a constant that is none of the choices, a
/// value of the wrong type, or a tagged union's tag; otherwise the errors of the one branch the
/// value was meant for.
fn no_branch(
    cx: &mut Cx,
    schema: &Value,
    err: &ValidationError,
    at: &str,
    context: &[Vec<ValidationError<'static>>],
    unknown: &mut Vec<String>,
) {
    let branches: Vec<Value> = schema
        .pointer(err.schema_path().as_str())
        .and_then(Value::as_array)
        .map(|bs| bs.iter().map(|b| resolve(schema, b)).collect())
        .unwrap_or_default();
    // The constants a one-of chooses between: enum variants, or union tags.
    let consts = strings_at(&branches, &["/const", "/enum/0"]);
    let tags = strings_at(
        &branches,
        &["/properties/type/const", "/properties/type/enum/0"],
    );
    let inst = err.instance();
    if !consts.is_empty() && !inst.is_object() {
        not_one_of(cx, at, &text(inst), &consts);
        return;
    }
    // Branches whose type fits the value (drops `null` for an optional field).
    let fits: Vec<usize> = (0..context.len())
        .filter(|i| {
            !context[*i].iter().any(|e| {
                e.instance_path().as_str() == at
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
        cx.error_hint(
            Code::WrongType,
            at,
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
            schema_error(cx, schema, e, unknown);
        }
        return;
    }
    bad_tag(cx, at, tag, &tags);
}

/// A tagged union whose `type` is unknown or missing.
fn bad_tag(cx: &mut Cx, at: &str, tag: Option<String>, tags: &[String]) {
    match tag {
        Some(got) => {
            let hint = did_you_mean(&got, tags.iter().map(String::as_str))
                .map(|s| format!("did you mean `{s}`?"))
                .unwrap_or_else(|| format!("one of: {}", tags.join(", ")));
            cx.error_hint(
                Code::InvalidValue,
                &format!("{at}/type"),
                format!("unknown type `{got}`"),
                Some(hint),
            );
        }
        None => {
            let mut d = cx.diag(
                Code::MissingField,
                at,
                cx.doc.spans.key(at),
                format!("missing field `type` in `{}`", field_path(at)),
            );
            d.hint = Some(format!("add `type:` with one of: {}", tags.join(", ")));
            cx.diags.push(d);
        }
    }
}

/// A schema branch, its `$ref` followed.
fn resolve(schema: &Value, b: &Value) -> Value {
    match b.get("$ref").and_then(Value::as_str) {
        Some(r) => schema
            .pointer(r.trim_start_matches('#'))
            .cloned()
            .unwrap_or(Value::Null),
        None => b.clone(),
    }
}

/// The string each branch has at the first of `pointers` it has, for the branches that have one.
fn strings_at(branches: &[Value], pointers: &[&str]) -> Vec<String> {
    branches
        .iter()
        .filter_map(|b| {
            pointers
                .iter()
                .find_map(|p| b.pointer(p))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect()
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
