//! Tripletex's official request schemas, vendored as a subset of its OpenAPI spec
//! (`crates/tripletex-openapi/openapi-subset.json`, made by `scripts/vendor-tripletex-openapi.py`;
//! the provenance is inside the file). Used to check every body the mapping pack makes, and by the
//! Tripletex sandbox to answer a bad body the way the real server does.
//!
//! Every object schema of the subset has `additionalProperties: false`: the real server rejects a
//! body with an unknown field (422/16000), so the check must too.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use serde_json::{Value, json};

const SUBSET: &str = include_str!("../openapi-subset.json");

static DOC: LazyLock<Value> = LazyLock::new(|| serde_json::from_str(SUBSET).unwrap_or(Value::Null));
static VALIDATORS: LazyLock<Mutex<HashMap<String, std::sync::Arc<jsonschema::Validator>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// One way a request breaks the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Field path in the body (`orders[0].orderLines[2].vatType.id`) or `?name` for a query parameter.
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The operation key (`"PUT /product/{id}"`) for a concrete method and path, if the subset has it.
/// A literal segment wins over a placeholder: `PUT /product/list` is the bulk update, not the
/// product with id `list`.
pub fn operation(method: &str, path: &str) -> Option<String> {
    let path = path.split('?').next().unwrap_or(path);
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    DOC.get("operations")?
        .as_object()?
        .keys()
        .filter_map(|op| {
            let (m, p) = op.split_once(' ')?;
            if !m.eq_ignore_ascii_case(method) {
                return None;
            }
            let pat: Vec<&str> = p.split('/').collect();
            let placeholder = |a: &str| a.starts_with('{') && a.ends_with('}');
            let same = pat.len() == segs.len()
                && pat
                    .iter()
                    .zip(&segs)
                    .all(|(a, b)| (placeholder(a) && !b.is_empty()) || a == b);
            same.then(|| (pat.iter().filter(|a| placeholder(a)).count(), op))
        })
        .min_by_key(|(placeholders, _)| *placeholders)
        .map(|(_, op)| op.clone())
}

/// Checks a request against the spec: the operation exists, every query parameter is one it
/// declares, and the body matches the request schema (unknown fields included).
pub fn check(
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    body: Option<&Value>,
) -> Vec<Violation> {
    let Some(op) = operation(method, path) else {
        return vec![Violation {
            field: String::new(),
            message: format!(
                "{method} {path} is not an operation rbtx knows from Tripletex's spec"
            ),
        }];
    };
    let spec = &DOC["operations"][&op];
    let mut out = Vec::new();
    for (name, _) in query {
        if spec["query"].get(*name).is_none() {
            out.push(Violation {
                field: format!("?{name}"),
                message: format!("{op} has no query parameter `{name}`"),
            });
        }
    }
    match (body, spec.get("body").filter(|b| !b.is_null())) {
        (Some(b), Some(_)) => {
            if let Some(v) = validator(&op) {
                for e in v.iter_errors(b) {
                    out.push(Violation {
                        field: field_path(e.instance_path().as_str()),
                        message: describe(&e),
                    });
                }
            }
        }
        (Some(_), None) => out.push(Violation {
            field: String::new(),
            message: format!("{op} takes no body"),
        }),
        (None, _) => {}
    }
    out
}

fn describe(e: &jsonschema::ValidationError) -> String {
    use jsonschema::error::ValidationErrorKind as K;
    match e.kind() {
        K::AdditionalProperties { unexpected } => format!(
            "unknown field{} {} (Tripletex answers 422/16000)",
            if unexpected.len() > 1 { "s" } else { "" },
            unexpected
                .iter()
                .map(|u| format!("`{u}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => e.to_string(),
    }
}

fn validator(op: &str) -> Option<std::sync::Arc<jsonschema::Validator>> {
    let mut cache = VALIDATORS.lock().ok()?;
    if let Some(v) = cache.get(op) {
        return Some(v.clone());
    }
    let schema = json!({
        "allOf": [DOC["operations"][op]["body"].clone()],
        "components": DOC["components"].clone(),
    });
    let v = std::sync::Arc::new(jsonschema::validator_for(&schema).ok()?);
    cache.insert(op.to_string(), v.clone());
    Some(v)
}

/// A JSON pointer into a body as a field path (`/orders/0/vatType` → `orders[0].vatType`): the one
/// way field paths are written, here, in the sandbox and in rbtx's diagnostics.
pub fn field_path(pointer: &str) -> String {
    let mut out = String::new();
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
        }
    }
    out
}

/// The whole vendored subset (`operations`, `components`, `provenance`), parsed once; `Null` if
/// it does not parse (a test below would fail first).
pub fn document() -> &'static Value {
    &DOC
}

/// Where the vendored subset came from.
pub fn provenance() -> &'static Value {
    &DOC["provenance"]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_and_wrong_types_are_caught() {
        let ok = json!({"name": "Hylle", "number": "A-1", "vatType": {"id": 3}, "priceExcludingVatCurrency": 10.5});
        assert_eq!(check("POST", "/product", &[], Some(&ok)), vec![]);
        let bad = json!({"name": "Hylle", "colour": "red", "vatType": {"id": "three"}});
        let v = check("POST", "/product", &[], Some(&bad));
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v.iter().any(|x| x.message.contains("`colour`")));
        assert!(v.iter().any(|x| x.field == "vatType.id"));
    }

    #[test]
    fn field_paths_index_lists_and_unescape_pointers() {
        assert_eq!(
            field_path("/orders/0/orderLines/2/vatType/id"),
            "orders[0].orderLines[2].vatType.id"
        );
        assert_eq!(field_path("/a~1b/c~0d"), "a/b.c~d");
        assert_eq!(field_path(""), "");
    }

    #[test]
    fn operations_match_path_templates_and_query_parameters() {
        assert_eq!(
            operation("PUT", "/product/42").as_deref(),
            Some("PUT /product/{id}")
        );
        assert_eq!(operation("DELETE", "/product/42"), None);
        assert_eq!(
            operation("PUT", "/product/list").as_deref(),
            Some("PUT /product/list")
        );
        let list = json!([{"name": "Hylle"}, {"name": "Lampe", "colour": "red"}]);
        let v = check("POST", "/product/list", &[], Some(&list));
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].field, "[1]");
        let v = check(
            "POST",
            "/invoice",
            &[("sendToCustomer", "false"), ("send", "x")],
            None,
        );
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].field, "?send");
    }

    #[test]
    fn provenance_names_the_spec_version() {
        assert_eq!(provenance()["info_version"], "2.74.00");
    }
}
