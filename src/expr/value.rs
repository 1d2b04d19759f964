//! The values expressions compute with: JSON and minijinja values as one another, keys as text,
//! exact decimals for money, and what an evaluation gives back. Everything else in `expr` builds
//! on these.

use std::str::FromStr;

use minijinja::value::Value as MjValue;
use minijinja::{Error as MjError, ErrorKind};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

/// A JSON value as a minijinja value.
pub fn mj(v: &Value) -> MjValue {
    MjValue::from(minijinja::value::Serde(v))
}

/// A key as text, the way lookups and bindings compare keys: whole floats lose their `.0`.
pub fn key_text(v: &MjValue) -> Option<String> {
    if v.is_undefined() || v.is_none() {
        return None;
    }
    if let Some(s) = v.as_str() {
        return Some(s.to_string());
    }
    if v.kind() == minijinja::value::ValueKind::Number
        && let Some(i) = v.as_i64()
    {
        return Some(i.to_string());
    }
    Some(v.to_string())
}

/// A JSON scalar as a key, exactly as [`key_text`] sees its template value.
pub fn key_text_json(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) => {
            let Some(f) = v.as_f64() else {
                return key_text(&mj(v));
            };
            if v.as_i64().is_none() && f.fract() == 0.0 && f.abs() < 9.0e15 {
                Some((f as i64).to_string())
            } else {
                key_text(&mj(v))
            }
        }
        other => key_text(&mj(other)),
    }
}

/// One step of a plain path.
#[derive(Debug, Clone)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// The result of evaluating a template.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Value(Value),
    /// None or undefined: the field is left out.
    Absent,
}

/// An evaluation failure, for the record (not the mapping).
#[derive(Debug, Clone)]
pub struct EvalError(pub String);

/// Truthiness, the way Jinja sees it.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// The decimal digits of `n`, written at the end of `buf`, without the formatting machinery (keys
/// are mostly ids).
pub(crate) fn digits(buf: &mut [u8; 20], mut n: u64) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[at..]
}

/// Appends the decimal digits of `n`.
pub(crate) fn push_u64(out: &mut String, n: u64) {
    for &b in digits(&mut [0; 20], n) {
        out.push(char::from(b));
    }
}

/// A value as text (keys, paths, query values): a string as it is, null as nothing.
pub fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Appends `v` as text inside text: what `"a {{ x }} b"` and `'a ' ~ x ~ ' b'` both write (the one
/// text rule, README's "Values"). A string as it is; none as nothing; `true` and `false`; a number
/// in plain decimals, a whole one without a fraction (`25`, never `25.0`: JSON does not tell them
/// apart, nor should the text a bookkeeper reads); a list or an object as compact JSON whose
/// numbers follow the same rule.
pub fn push_text(out: &mut String, v: &Value) {
    match v {
        Value::Null => {}
        Value::String(s) => out.push_str(s),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => push_number(out, n),
        Value::Array(_) | Value::Object(_) => push_json(out, v),
    }
}

/// A number in plain decimals, whole ones without a fraction.
fn push_number(out: &mut String, n: &serde_json::Number) {
    use std::fmt::Write;
    if let Some(u) = n.as_u64() {
        push_u64(out, u);
    } else if let Some(i) = n.as_i64() {
        out.push('-');
        push_u64(out, i.unsigned_abs());
    } else {
        let f = n.as_f64().unwrap_or(f64::NAN);
        if f.fract() == 0.0 && f.abs() < 9.0e15 {
            // Also turns -0.0 into 0.
            let i = f as i64;
            if i < 0 {
                out.push('-');
            }
            push_u64(out, i.unsigned_abs());
        } else {
            // Display writes the shortest digits that read back as `f`, never an exponent.
            // Writing to a `String` cannot fail.
            let _ = write!(out, "{f}");
        }
    }
}

/// Compact JSON with numbers as [`push_number`] writes them.
fn push_json(out: &mut String, v: &Value) {
    match v {
        Value::Number(n) => push_number(out, n),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json(out, item);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, item)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                push_json(out, item);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Objects this small are searched key by key: comparing a few keys costs less than hashing the
/// one asked for (SipHash), and most objects in API records are this small.
const SCAN_MAX: usize = 32;

/// `a == b`, with the first byte compared before the rest: most names that differ differ there,
/// and that saves a `memcmp` call for names of the same length ("source" and "target").
#[inline]
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.as_bytes().first() == b.as_bytes().first() && a == b
}

/// `m[k]`, without hashing `k` when `m` is small.
pub(crate) fn field<'v>(m: &'v Map<String, Value>, k: &str) -> Option<&'v Value> {
    if m.len() <= SCAN_MAX {
        m.iter().find(|(key, _)| same(key, k)).map(|(_, v)| v)
    } else {
        m.get(k)
    }
}

/// A JSON number as a template number; whole floats become integers.
pub(crate) fn number(n: &serde_json::Number) -> MjValue {
    if let Some(i) = n.as_i64() {
        MjValue::from(i)
    } else if let Some(u) = n.as_u64() {
        MjValue::from(u)
    } else {
        let f = n.as_f64().unwrap_or(f64::NAN);
        if f.fract() == 0.0 && f.abs() < 9.0e15 {
            MjValue::from(f as i64)
        } else {
            MjValue::from(f)
        }
    }
}

/// A minijinja number or numeric string as an exact decimal. Floats go through their shortest
/// decimal form, so `0.1` is 0.1, not 0.1000000000000000055….
pub fn decimal(v: &MjValue) -> Result<Decimal, MjError> {
    let bad = || {
        MjError::new(
            ErrorKind::InvalidOperation,
            format!("`{v}` is not a number"),
        )
    };
    if let Some(s) = v.as_str() {
        return Decimal::from_str(s.trim())
            .or_else(|_| Decimal::from_scientific(s.trim()))
            .map_err(|_| bad());
    }
    if let Ok(i) = i64::try_from(v.clone()) {
        return Ok(Decimal::from(i));
    }
    if let Ok(f) = f64::try_from(v.clone()) {
        let s = format!("{f}");
        return Decimal::from_str(&s)
            .or_else(|_| Decimal::from_scientific(&s))
            .map_err(|_| bad());
    }
    Err(bad())
}

/// An exact decimal back as a minijinja number: an integer when it is whole, else the float whose
/// shortest form is the decimal's digits (exact for the ≤15 significant digits money has).
pub fn from_decimal(d: Decimal) -> MjValue {
    match decimal_number(d) {
        Num::Int(i) => MjValue::from(i),
        Num::Float(f) => MjValue::from(f),
        Num::Text(s) => MjValue::from(s),
    }
}

/// How a computed decimal is given back, for templates and for JSON alike.
pub(crate) enum Num {
    Int(i64),
    Float(f64),
    Text(String),
}

pub(crate) fn decimal_number(d: Decimal) -> Num {
    let d = d.normalize();
    if d.scale() == 0
        && let Ok(i) = i64::try_from(d)
    {
        return Num::Int(i);
    }
    match d.to_string().parse::<f64>() {
        Ok(f) => Num::Float(f),
        Err(_) => Num::Text(d.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_lose_the_point_zero() {
        assert_eq!(key_text(&MjValue::from(25.0)).as_deref(), Some("25"));
        assert_eq!(key_text(&MjValue::from(12.5)).as_deref(), Some("12.5"));
        assert_eq!(key_text(&MjValue::from("A/1")).as_deref(), Some("A/1"));
    }

    #[test]
    fn same_is_string_equality() {
        let names = [
            "",
            "a",
            "b",
            "id",
            "ab",
            "abcdefg",
            "abcdefh",
            "abcdefgh",
            "abcdefgi",
            "bbcdefgh",
            "invoicesDueIn",
            "invoicesDueIm",
            "jnvoicesDueIn",
            "invoicesDueInType",
            "invoicesDueInTypf",
            "sixteen_bytes_ab",
            "sixteen_bytes_ac",
            "æøå",
            "æøæ",
        ];
        for a in names {
            for b in names {
                assert_eq!(same(a, b), a == b, "{a:?} vs {b:?}");
            }
        }
    }
}
