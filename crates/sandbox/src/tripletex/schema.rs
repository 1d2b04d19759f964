//! The response side of Tripletex's schemas: which fields an object has (from the vendored spec
//! subset), the `fields` filter (`*,orderLines(*),customer(name)`), and rendering a stored record
//! the way the API does: every field present, references as `{id, url}` unless expanded.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::store::{Db, Record, path_of_schema};

#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    Str,
    Int,
    Num,
    Bool,
    Object,
    Ref(String),
    Array(Box<Ty>),
}

#[derive(Debug)]
pub struct Prop {
    pub name: String,
    pub ty: Ty,
    pub read_only: bool,
}

static SCHEMAS: LazyLock<HashMap<String, Vec<Prop>>> = LazyLock::new(|| {
    let mut out = HashMap::new();
    if let Some(schemas) = tripletex_openapi::document()
        .pointer("/components/schemas")
        .and_then(Value::as_object)
    {
        for (name, schema) in schemas {
            let props = schema
                .get("properties")
                .and_then(Value::as_object)
                .map(|ps| {
                    ps.iter()
                        .map(|(p, s)| Prop {
                            name: p.clone(),
                            ty: ty_of(s),
                            read_only: s.get("readOnly") == Some(&Value::Bool(true)),
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.insert(name.clone(), props);
        }
    }
    out
});

fn ty_of(s: &Value) -> Ty {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        return Ty::Ref(r.rsplit('/').next().unwrap_or(r).to_string());
    }
    match s.get("type").and_then(Value::as_str) {
        Some("string") => Ty::Str,
        Some("integer") => Ty::Int,
        Some("number") => Ty::Num,
        Some("boolean") => Ty::Bool,
        Some("array") => Ty::Array(Box::new(s.get("items").map_or(Ty::Object, ty_of))),
        _ => Ty::Object,
    }
}

pub fn props(schema: &str) -> &'static [Prop] {
    SCHEMAS.get(schema).map_or(&[], Vec::as_slice)
}

pub fn prop(schema: &str, name: &str) -> Option<&'static Prop> {
    props(schema).iter().find(|p| p.name == name)
}

/// The schema a field's value (or its array items) refers to.
pub fn target(ty: &Ty) -> Option<&str> {
    match ty {
        Ty::Ref(t) => Some(t),
        Ty::Array(inner) => target(inner),
        _ => None,
    }
}

/// Fields `*` leaves out: the change log, and stock figures Tripletex computes only on demand.
fn on_demand(schema: &str, field: &str) -> bool {
    field == "changes"
        || (schema == "Product"
            && matches!(
                field,
                "stockOfGoods" | "availableStock" | "incomingStock" | "outgoingStock"
            ))
}

/// A parsed `fields` filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields {
    star: bool,
    named: Vec<(String, Option<Fields>)>,
}

impl Fields {
    /// What a request without `fields` gets: `*`.
    pub fn all() -> Fields {
        Fields {
            star: true,
            named: Vec::new(),
        }
    }

    /// Parses `a,b(c,d(*)),*`.
    pub fn parse(s: &str) -> Result<Fields, ApiError> {
        let chars: Vec<char> = s.chars().collect();
        let mut pos = 0;
        let f = parse_list(&chars, &mut pos)?;
        if pos < chars.len() {
            return Err(ApiError::illegal_filter(format!(
                "Illegal fields filter: {s}"
            )));
        }
        Ok(f)
    }

    /// Checks every name against the model, the way the API answers a bad filter.
    pub fn check(&self, schema: &str) -> Result<(), ApiError> {
        for (name, sub) in &self.named {
            let Some(p) = prop(schema, name) else {
                return Err(ApiError::illegal_filter(format!(
                    "Illegal field in fields filter: {name}. {name} does not match a field in the model: {schema}DTO"
                )));
            };
            if let Some(sub) = sub {
                match target(&p.ty) {
                    Some(t) => sub.check(t)?,
                    None => {
                        return Err(ApiError::illegal_filter(format!(
                            "Illegal fields filter: {name} cannot be expanded"
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether a field is selected, and with which sub-selection.
    fn select(&self, schema: &str, name: &str) -> Option<Option<&Fields>> {
        if let Some((_, sub)) = self.named.iter().find(|(n, _)| n == name) {
            return Some(sub.as_ref());
        }
        (self.star && !on_demand(schema, name)).then_some(None)
    }
}

fn parse_list(chars: &[char], pos: &mut usize) -> Result<Fields, ApiError> {
    let bad = || {
        ApiError::illegal_filter(
            "Illegal fields filter: unbalanced parentheses or empty field name",
        )
    };
    let mut out = Fields::default();
    loop {
        let start = *pos;
        while *pos < chars.len() && !matches!(chars[*pos], ',' | '(' | ')') {
            *pos += 1;
        }
        let name: String = chars[start..*pos]
            .iter()
            .collect::<String>()
            .trim()
            .to_string();
        let sub = if chars.get(*pos) == Some(&'(') {
            *pos += 1;
            let sub = parse_list(chars, pos)?;
            if chars.get(*pos) != Some(&')') {
                return Err(bad());
            }
            *pos += 1;
            Some(sub)
        } else {
            None
        };
        match (name.as_str(), sub) {
            ("*", None) => out.star = true,
            ("", _) | ("*", Some(_)) => return Err(bad()),
            (_, sub) => out.named.push((name, sub)),
        }
        match chars.get(*pos) {
            Some(',') => *pos += 1,
            _ => return Ok(out),
        }
    }
}

/// Renders records for one response.
pub struct Renderer<'a> {
    pub db: &'a Db,
    /// `host:port`; Tripletex's `url` fields carry no scheme (`tripletex.no/v2/customer/1`).
    pub host: &'a str,
}

impl Renderer<'_> {
    pub fn url(&self, schema: &str, id: i64) -> String {
        format!("{}/v2/{}/{id}", self.host, path_of_schema(schema))
    }

    pub fn render(&self, schema: &str, rec: &Record, fields: &Fields) -> Value {
        let mut out = Map::new();
        for p in props(schema) {
            let Some(sub) = fields.select(schema, &p.name) else {
                continue;
            };
            let value = match p.name.as_str() {
                "url" => rec
                    .get("id")
                    .and_then(Value::as_i64)
                    .map_or(Value::Null, |id| json!(self.url(schema, id))),
                "changes" => json!([]),
                _ => match rec.get(&p.name) {
                    Some(v) => self.value(&p.ty, v, sub),
                    None => default_of(&p.name, &p.ty),
                },
            };
            out.insert(p.name.clone(), value);
        }
        Value::Object(out)
    }

    fn value(&self, ty: &Ty, v: &Value, sub: Option<&Fields>) -> Value {
        match (ty, v) {
            (Ty::Ref(t), Value::Object(o)) => match o.get("id").and_then(Value::as_i64) {
                Some(id) => match (sub, self.db.lookup(t, id)) {
                    (Some(sub), Some(row)) => self.render(t, row, sub),
                    _ => json!({"id": id, "url": self.url(t, id)}),
                },
                // A value object without an id of its own (e.g. a bank account presentation).
                None => self.render(t, o, sub.unwrap_or(&Fields::all())),
            },
            (Ty::Array(inner), Value::Array(items)) => {
                Value::Array(items.iter().map(|i| self.value(inner, i, sub)).collect())
            }
            _ => v.clone(),
        }
    }
}

/// What the API shows for a field that was never set.
fn default_of(name: &str, ty: &Ty) -> Value {
    match ty {
        Ty::Str if name.ends_with("Date") || name == "dateOfBirth" => Value::Null,
        Ty::Str => json!(""),
        Ty::Int | Ty::Num => json!(0),
        Ty::Bool => json!(false),
        Ty::Array(_) => json!([]),
        Ty::Ref(_) | Ty::Object => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_filters_parse_and_check_against_the_model() {
        let f = Fields::parse("*,postalAddress(*,country(isoAlpha2Code)),currency(code)");
        assert!(
            f.as_ref().is_ok_and(|f| f.check("Customer").is_ok()),
            "{f:?}"
        );
        let bad = Fields::parse("id,amountUnpaid").and_then(|f| f.check("Invoice"));
        assert_eq!(
            bad.map_err(|e| e.message),
            Err("Illegal field in fields filter: amountUnpaid. amountUnpaid does not match a field in the model: InvoiceDTO".into())
        );
        assert!(Fields::parse("id,customer(name").is_err());
        assert!(
            Fields::parse("name(x)")
                .and_then(|f| f.check("Customer"))
                .is_err()
        );
    }

    #[test]
    fn the_subset_knows_the_main_schemas() {
        assert!(
            prop("Customer", "postalAddress").is_some_and(|p| p.ty == Ty::Ref("Address".into()))
        );
        assert!(prop("Order", "orderLines").is_some_and(|p| target(&p.ty) == Some("OrderLine")));
        assert!(prop("Product", "displayName").is_some_and(|p| p.read_only));
    }
}
