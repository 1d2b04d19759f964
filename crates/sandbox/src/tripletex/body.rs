//! Request bodies: parsing, the spec check (422/16000, as Tripletex's JSON mapping answers),
//! reference checks, and copying fields into a stored record.

use serde_json::{Map, Value};

use super::error::{ApiError, Msg};
use super::schema::{Ty, prop};
use super::store::{Db, Kind, Record, reference, text};

pub const UNKNOWN_FIELD: &str = "Feltet eksisterer ikke i objektet.";
pub const WRONG_TYPE: &str = "Verdien er ikke av korrekt type for dette feltet.";
pub const REQUIRED: &str = "Feltet må fylles ut.";
pub const NOT_NULL: &str = "Kan ikke være null.";
pub const EMPTY_LIST: &str = "Listen kan ikke være tom.";
pub const BAD_VAT: &str = "Ugyldig mva-kode.";

/// Fields the server sets itself; a body may carry them (e.g. a GET result sent back), they are
/// ignored.
const SERVER_FIELDS: [&str; 4] = ["id", "version", "url", "changes"];

/// Where in a body a message points: `field` without indices (`orders.orderLines.vatType`), `path`
/// with them (`orders[0].orderLines[2].vatType`).
#[derive(Debug, Clone, Default)]
pub struct Scope {
    field: String,
    path: String,
}

impl Scope {
    pub fn root() -> Scope {
        Scope::default()
    }

    pub fn field(&self, name: &str) -> String {
        format!("{}{name}", self.field)
    }

    /// A message about `name` in this scope, with its path when the scope is nested.
    pub fn msg(&self, name: &str, message: impl Into<String>) -> Msg {
        let m = Msg::new(self.field(name), message);
        if self.path.is_empty() {
            m
        } else {
            m.at(format!("{}{name}", self.path))
        }
    }

    pub fn child(&self, name: &str) -> Scope {
        Scope {
            field: format!("{}{name}.", self.field),
            path: format!("{}{name}.", self.path),
        }
    }

    pub fn item(&self, name: &str, index: usize) -> Scope {
        Scope {
            field: format!("{}{name}.", self.field),
            path: format!("{}{name}[{index}].", self.path),
        }
    }
}

/// Problems found in a body: mapping problems (16000) win over validation problems (18000).
#[derive(Debug, Default)]
pub struct Problems {
    pub mapping: Vec<Msg>,
    pub validation: Vec<Msg>,
}

impl Problems {
    pub fn into_result(self) -> Result<(), ApiError> {
        if !self.mapping.is_empty() {
            return Err(ApiError::mapping(self.mapping));
        }
        if !self.validation.is_empty() {
            return Err(ApiError::validation(self.validation));
        }
        Ok(())
    }
}

/// A JSON object body.
pub fn parse(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::invalid_json(e.to_string()))?;
    match v {
        Value::Object(o) => Ok(o),
        _ => Err(ApiError::mapping(vec![Msg {
            field: None,
            message: WRONG_TYPE.into(),
            path: None,
        }])),
    }
}

/// A JSON array body of objects (`POST|PUT /product/list`…), checked against the spec.
pub fn parse_list(
    bytes: &[u8],
    method: &str,
    api_path: &str,
) -> Result<Vec<Map<String, Value>>, ApiError> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::invalid_json(e.to_string()))?;
    let Value::Array(items) = v else {
        return Err(ApiError::mapping(vec![Msg::general(WRONG_TYPE)]));
    };
    let mut out = Vec::with_capacity(items.len());
    let mut wrong = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Value::Object(o) => out.push(o),
            _ => wrong.push(Msg::general(WRONG_TYPE).at(format!("[{i}]"))),
        }
    }
    if !wrong.is_empty() {
        return Err(ApiError::mapping(wrong));
    }
    let list = Value::Array(out.iter().cloned().map(Value::Object).collect());
    check_spec_value(method, api_path, &list)?;
    Ok(out)
}

/// Checks a body against the operation's schema in Tripletex's spec. A null is accepted wherever
/// a value is (the server's JSON mapping takes it), so nulls are left out of the check.
pub fn check_spec(method: &str, api_path: &str, body: &Map<String, Value>) -> Result<(), ApiError> {
    check_spec_value(method, api_path, &Value::Object(body.clone()))
}

/// [`check_spec`] for any body. Messages about an item of a list body carry its `path`
/// (`[3].colour`) beside the `field` without indices (`colour`), as nested ones do.
fn check_spec_value(method: &str, api_path: &str, body: &Value) -> Result<(), ApiError> {
    let pruned = without_nulls(body);
    let mut problems = Problems::default();
    for v in tripletex_openapi::check(method, api_path, &[], Some(&pruned)) {
        let field = strip_indices(&v.field);
        let field = field.trim_start_matches('.').to_string();
        let in_list = v.field.starts_with('[');
        if let Some(names) = unknown_fields(&v.message) {
            for n in names {
                let path = format!("{}.{n}", v.field);
                let f = if field.is_empty() {
                    n
                } else {
                    format!("{field}.{n}")
                };
                let m = Msg::new(f, UNKNOWN_FIELD);
                problems.mapping.push(if in_list { m.at(path) } else { m });
            }
        } else if let Some(min) = bound(&v.message, " is less than the minimum of ") {
            problems
                .validation
                .push(Msg::new(field, format!("Må være minimum {min}.")).at(v.field));
        } else if let Some(max) = bound(&v.message, " is greater than the maximum of ") {
            problems
                .validation
                .push(Msg::new(field, format!("Må være maksimum {max}.")).at(v.field));
        } else {
            problems.mapping.push(Msg {
                field: (!field.is_empty()).then_some(field),
                message: WRONG_TYPE.into(),
                path: in_list.then(|| v.field.clone()),
            });
        }
    }
    problems.into_result()
}

fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_nulls).collect()),
        _ => v.clone(),
    }
}

/// `orders[0].orderLines[2].vatType` → `orders.orderLines.vatType`.
fn strip_indices(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut depth = 0;
    for c in path.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// The names in tripletex_openapi's "unknown field `a`, `b`" message.
fn unknown_fields(message: &str) -> Option<Vec<String>> {
    if !message.starts_with("unknown field") {
        return None;
    }
    Some(
        message
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect(),
    )
}

fn bound<'a>(message: &'a str, marker: &str) -> Option<&'a str> {
    message.split_once(marker).map(|(_, n)| n.trim())
}

/// Absent, null or blank.
pub fn blank(body: &Map<String, Value>, key: &str) -> bool {
    match body.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        Some(_) => false,
    }
}

pub fn is_null(body: &Map<String, Value>, key: &str) -> bool {
    matches!(body.get(key), None | Some(Value::Null))
}

/// The `{id}` a reference field in a body points to.
pub fn body_ref(body: &Map<String, Value>, key: &str) -> Option<i64> {
    body.get(key)?.get("id")?.as_i64()
}

/// Records a body may create or edit inline (a customer's addresses).
fn owned(schema: &str) -> Option<Kind> {
    match schema {
        "Address" => Some(Kind::Address),
        "DeliveryAddress" => Some(Kind::DeliveryAddress),
        _ => None,
    }
}

/// Checks that every reference in a body points to an existing record (inline addresses are
/// checked field by field). Fields in `skip` are the caller's to check.
pub fn check_refs(
    db: &Db,
    schema: &str,
    body: &Map<String, Value>,
    scope: &Scope,
    skip: &[&str],
    problems: &mut Problems,
) {
    for (k, v) in body {
        let Some(p) = prop(schema, k) else { continue };
        if skip.contains(&k.as_str()) || p.read_only || SERVER_FIELDS.contains(&k.as_str()) {
            continue;
        }
        let (Ty::Ref(target), Value::Object(o)) = (&p.ty, v) else {
            continue;
        };
        match o.get("id").and_then(Value::as_i64) {
            Some(id) if db.lookup(target, id).is_none() => {
                if target == "VatType" {
                    problems.validation.push(scope.msg(k, BAD_VAT));
                } else {
                    problems.validation.push(scope.msg(
                        &format!("{k}.id"),
                        format!("Objektet med id {id} finnes ikke."),
                    ));
                }
            }
            Some(_) => {
                if owned(target).is_some() {
                    check_refs(db, target, o, &scope.child(k), &[], problems);
                }
            }
            None if owned(target).is_some() => {
                check_refs(db, target, o, &scope.child(k), &[], problems)
            }
            None => problems
                .validation
                .push(scope.msg(&format!("{k}.id"), NOT_NULL)),
        }
    }
}

/// Copies a checked body into a record: scalars as sent (null clears), references as `{id}`,
/// inline addresses created or edited in place. Server-set and read-only fields are ignored.
pub fn store_fields(
    db: &mut Db,
    schema: &str,
    rec: &mut Record,
    body: &Map<String, Value>,
    skip: &[&str],
) {
    for (k, v) in body {
        let Some(p) = prop(schema, k) else { continue };
        if skip.contains(&k.as_str()) || p.read_only || SERVER_FIELDS.contains(&k.as_str()) {
            continue;
        }
        match (&p.ty, v) {
            (_, Value::Null) => {
                rec.remove(k);
            }
            (Ty::Ref(target), Value::Object(o)) => {
                let id = o.get("id").and_then(Value::as_i64);
                match (owned(target), id) {
                    (Some(kind), Some(id)) => {
                        if let Some(mut inner) = db.get(kind, id).cloned() {
                            store_fields(db, target, &mut inner, o, &[]);
                            finish_address(&mut inner);
                            db.replace(kind, id, inner);
                        }
                        rec.insert(k.clone(), reference(id));
                    }
                    (Some(kind), None) => {
                        let mut inner = Record::new();
                        store_fields(db, target, &mut inner, o, &[]);
                        finish_address(&mut inner);
                        let id = db.insert(kind, inner);
                        rec.insert(k.clone(), reference(id));
                    }
                    (None, Some(id)) => {
                        rec.insert(k.clone(), reference(id));
                    }
                    (None, None) => {}
                }
            }
            _ => {
                rec.insert(k.clone(), v.clone());
            }
        }
    }
}

/// The read-only display strings of an address.
pub fn finish_address(rec: &mut Record) {
    let place = [text(rec, "postalCode"), text(rec, "city")]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let s = [
        text(rec, "addressLine1"),
        text(rec, "addressLine2"),
        place.as_str(),
    ]
    .into_iter()
    .filter(|s| !s.is_empty())
    .collect::<Vec<_>>()
    .join(", ");
    rec.insert("displayName".into(), Value::String(s.clone()));
    rec.insert("addressAsString".into(), Value::String(s));
}

/// A `version` in a PUT body that is not the stored one: 409/8000. No version: last write wins.
pub fn check_version(rec: &Record, body: &Map<String, Value>) -> Result<(), ApiError> {
    let current = super::store::int(rec, "version");
    match body.get("version").and_then(Value::as_i64) {
        Some(sent) if sent != current => Err(ApiError::revision(current, sent)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn unknown_fields_and_wrong_types_answer_like_tripletex() {
        let e = check_spec(
            "POST",
            "/product",
            &obj(json!({"name": "x", "colour": "red"})),
        );
        let e = e.err().map(|e| (e.code, e.validation));
        assert_eq!(
            e,
            Some((16000, Some(vec![Msg::new("colour", UNKNOWN_FIELD)])))
        );
        let e = check_spec(
            "POST",
            "/order",
            &obj(json!({"orderLines": [{"count": 1}, {"count": "two", "vatType": {"id": "x"}}]})),
        );
        let fields: Vec<_> = e
            .err()
            .and_then(|e| e.validation)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| m.field)
            .collect();
        assert_eq!(fields, vec!["orderLines.count", "orderLines.vatType.id"]);
        assert!(
            check_spec(
                "POST",
                "/customer",
                &obj(json!({"name": "x", "email": null}))
            )
            .is_ok()
        );
        let e = check_spec(
            "POST",
            "/customer",
            &obj(json!({"name": "x", "invoicesDueIn": -1})),
        );
        assert_eq!(e.err().map(|e| e.code), Some(18000));
    }
}
