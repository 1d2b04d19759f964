//! List parameters (paging, filters, sorting) and field selection (`fields=a,b(c,d)`).

use std::cmp::Ordering;
use std::str::Chars;

use serde_json::{Map, Value};

use super::error::Errors;
use super::time::{self, Unix};

/// Rackbeat's page size when none is asked for, and the largest it allows.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 1000;

/// The parameters of a list request.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub page: usize,
    pub limit: usize,
    pub search: Option<String>,
    pub from: Option<Unix>,
    pub to: Option<Unix>,
    /// Plain equality filters (`is_booked=true`, `simple_filter[number]=…`).
    pub eq: Vec<(String, String)>,
    pub order_by: Option<String>,
    pub descending: bool,
    pub fields: Option<Selection>,
}

impl ListQuery {
    pub fn parse(pairs: &[(String, String)]) -> Result<ListQuery, Errors> {
        let mut q = ListQuery {
            page: 1,
            limit: DEFAULT_LIMIT,
            search: None,
            from: None,
            to: None,
            eq: Vec::new(),
            order_by: None,
            descending: false,
            fields: None,
        };
        let mut errors = Errors::new();
        let mut fail = |field: &str, message: String| {
            errors.entry(field.to_string()).or_default().push(message)
        };
        for (k, v) in pairs {
            match k.as_str() {
                // Laravel's paginator reads a page it cannot use as the first.
                "page" => q.page = v.trim().parse().ok().filter(|p| *p >= 1).unwrap_or(1),
                "limit" => match v.trim().parse::<i64>() {
                    Ok(n) if n < 1 => fail("limit", "The limit must be at least 1.".into()),
                    Ok(n) if n > MAX_LIMIT as i64 => fail(
                        "limit",
                        format!("The limit may not be greater than {MAX_LIMIT}."),
                    ),
                    Ok(n) => q.limit = n as usize,
                    Err(_) => fail("limit", "The limit must be an integer.".into()),
                },
                "updated_at_from" | "updated_at_to" => match time::parse_filter(v.trim()) {
                    Some(t) if k == "updated_at_from" => q.from = Some(t),
                    Some(t) => q.to = Some(t),
                    None => fail(
                        k,
                        format!(
                            "The {} does not match the format Y-m-d H:i:s.",
                            k.replace('_', " ")
                        ),
                    ),
                },
                "search" => q.search = Some(v.trim().to_string()).filter(|s| !s.is_empty()),
                "order_by" => q.order_by = Some(v.trim().to_string()).filter(|s| !s.is_empty()),
                "order_direction" => q.descending = v.trim().eq_ignore_ascii_case("desc"),
                "fields" => q.fields = Some(Selection::parse(v)),
                // Accepted but not simulated: relations to expand, custom-field filters, and the
                // write flag some clients send on every request.
                "expand" | "suppress_webhooks" => {}
                _ if k.starts_with("field_eq[") || k.starts_with("field[") => {}
                _ => {
                    let field = k
                        .strip_prefix("simple_filter[")
                        .and_then(|f| f.strip_suffix(']'))
                        .unwrap_or(k);
                    let field = match field {
                        "customer_number" => "customer_id",
                        "order_number" => "order_id",
                        f => f,
                    };
                    q.eq.push((field.to_string(), v.trim().to_string()));
                }
            }
        }
        if errors.is_empty() {
            Ok(q)
        } else {
            Err(errors)
        }
    }
}

/// The `fields` parameter: which keys to keep, with nested selections for objects and lists.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection(Vec<(String, Option<Selection>)>);

impl Selection {
    pub fn parse(s: &str) -> Selection {
        Selection(parse_list(&mut s.chars(), 0))
    }

    /// The `fields` parameter among query pairs, if any.
    pub fn from_pairs(pairs: &[(String, String)]) -> Option<Selection> {
        pairs
            .iter()
            .find(|(k, _)| k == "fields")
            .map(|(_, v)| Selection::parse(v))
    }

    pub fn apply(&self, v: Value) -> Value {
        match v {
            Value::Object(mut m) => {
                let mut out = Map::new();
                for (name, sub) in &self.0 {
                    if let Some(v) = m.remove(name) {
                        let v = match sub {
                            Some(sub) => sub.apply(v),
                            None => v,
                        };
                        out.insert(name.clone(), v);
                    }
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.into_iter().map(|v| self.apply(v)).collect()),
            other => other,
        }
    }
}

/// Deeper selections than this are taken whole (the parser recurses once per level, and the
/// query string comes from the client).
const MAX_DEPTH: usize = 16;

fn parse_list(it: &mut Chars<'_>, depth: usize) -> Vec<(String, Option<Selection>)> {
    let mut out = Vec::new();
    let mut name = String::new();
    let flush = |out: &mut Vec<_>, name: &mut String, sub: Option<Selection>| {
        let n = name.trim();
        if !n.is_empty() {
            out.push((n.to_string(), sub));
        }
        name.clear();
    };
    while let Some(c) = it.next() {
        match c {
            ',' => flush(&mut out, &mut name, None),
            '(' if depth < MAX_DEPTH => {
                let sub = Selection(parse_list(it, depth + 1));
                flush(&mut out, &mut name, Some(sub));
            }
            '(' => {
                let mut open = 1;
                for c in it.by_ref() {
                    match c {
                        '(' => open += 1,
                        ')' if open == 1 => break,
                        ')' => open -= 1,
                        _ => {}
                    }
                }
                flush(&mut out, &mut name, None);
            }
            ')' => break,
            c => name.push(c),
        }
    }
    flush(&mut out, &mut name, None);
    out
}

/// Sort order of stored values: nulls first, numbers by value, text without case.
pub fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    fn rank(v: Option<&Value>) -> u8 {
        match v {
            None | Some(Value::Null) => 0,
            Some(Value::Bool(_)) => 1,
            Some(Value::Number(_)) => 2,
            Some(Value::String(_)) => 3,
            Some(_) => 4,
        }
    }
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.to_lowercase().cmp(&y.to_lowercase()),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}
