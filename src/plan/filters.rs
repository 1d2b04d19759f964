//! rbtx's filters (decimal arithmetic on money, VAT, dates, text) and the few minijinja built-ins
//! the fast path calls without building a template state.

use minijinja::value::Value as MjValue;
use minijinja::{Error as MjError, ErrorKind};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Number, Value};
use std::str::FromStr;

use super::template::{ENV, key_text};

/// Filters built into minijinja that mappings may use.
pub(crate) const BUILTIN_FILTERS: &[&str] = &[
    "abs",
    "attr",
    "batch",
    "bool",
    "capitalize",
    "chain",
    "count",
    "d",
    "default",
    "dictsort",
    "e",
    "escape",
    "first",
    "float",
    "format",
    "groupby",
    "indent",
    "int",
    "items",
    "join",
    "last",
    "length",
    "lines",
    "list",
    "lower",
    "map",
    "max",
    "min",
    "pprint",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "round",
    "safe",
    "select",
    "selectattr",
    "slice",
    "sort",
    "split",
    "string",
    "sum",
    "title",
    "tojson",
    "trim",
    "unique",
    "upper",
    "urlencode",
    "zip",
];

/// Filters rbtx adds: decimal arithmetic on money, dates, text.
pub const RBTX_FILTERS: &[&str] = &[
    "add",
    "sub",
    "mul",
    "div",
    "round_to",
    "with_vat",
    "without_vat",
    "discount",
    "add_days",
    "digits",
    "blank_to_none",
];

/// rbtx's own filters, by name: one implementation for templates and for the fast path.
pub(crate) fn rbtx_filter(name: &str, args: &[MjValue]) -> Option<Result<MjValue, MjError>> {
    let a = args.first().cloned().unwrap_or(MjValue::UNDEFINED);
    let arg = |i: usize| {
        args.get(i).cloned().ok_or_else(|| {
            MjError::new(
                ErrorKind::MissingArgument,
                format!(
                    "`{name}` needs {i} argument{}",
                    if i == 1 { "" } else { "s" }
                ),
            )
        })
    };
    if let Some(op) = arithmetic(name) {
        return Some(arg(1).and_then(|b| dec2(a, b, op)));
    }
    Some(match name {
        "round_to" => arg(1).and_then(|dp| {
            if a.is_undefined() || a.is_none() {
                return Ok(a);
            }
            let dp = u32::try_from(dp.clone()).map_err(|_| {
                MjError::new(
                    ErrorKind::InvalidOperation,
                    format!("`round_to` takes a number of decimals, not `{dp}`"),
                )
            })?;
            let x = decimal(&a)?;
            Ok(from_decimal(round_to(x, dp)))
        }),
        "add_days" => arg(1).and_then(|n| {
            let n = i64::try_from(n.clone()).map_err(|_| {
                MjError::new(
                    ErrorKind::InvalidOperation,
                    format!("`add_days` takes a whole number, not `{n}`"),
                )
            })?;
            add_days(a, n)
        }),
        "digits" => Ok(if a.is_undefined() || a.is_none() {
            a
        } else {
            MjValue::from(
                a.to_string()
                    .chars()
                    .filter(char::is_ascii_digit)
                    .collect::<String>(),
            )
        }),
        "blank_to_none" => Ok(match a.as_str() {
            Some(t) if t.trim().is_empty() => MjValue::from(()),
            _ => a,
        }),
        "urlencode" => Ok(urlencode(a)),
        _ => return None,
    })
}

/// Most decimal places a computed number keeps (Tripletex accepts ten on unit prices).
const MAX_DP: u32 = 10;

type Arithmetic = fn(Decimal, Decimal) -> Option<Decimal>;

/// The filters `x | name(y)` that compute on two decimals; `None` when overflowing or dividing
/// by zero.
fn arithmetic(name: &str) -> Option<Arithmetic> {
    const HUNDRED: Decimal = Decimal::ONE_HUNDRED;
    Some(match name {
        "add" => |x, y| x.checked_add(y),
        "sub" => |x, y| x.checked_sub(y),
        "mul" => |x, y| x.checked_mul(y),
        "div" => |x, y| if y.is_zero() { None } else { x.checked_div(y) },
        "with_vat" => |x, r| x.checked_mul(HUNDRED.checked_add(r)?)?.checked_div(HUNDRED),
        "without_vat" => |x, r| x.checked_mul(HUNDRED)?.checked_div(HUNDRED.checked_add(r)?),
        "discount" => |x, p| x.checked_mul(HUNDRED.checked_sub(p)?)?.checked_div(HUNDRED),
        _ => return None,
    })
}

fn round_to(x: Decimal, dp: u32) -> Decimal {
    x.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero)
}

fn dec2(a: MjValue, b: MjValue, op: Arithmetic) -> Result<MjValue, MjError> {
    if a.is_undefined() || a.is_none() {
        return Ok(a);
    }
    let (x, y) = (decimal(&a)?, decimal(&b)?);
    let r = op(x, y).ok_or_else(|| {
        MjError::new(
            ErrorKind::InvalidOperation,
            format!("arithmetic overflow or division by zero on {x} and {y}"),
        )
    })?;
    Ok(from_decimal(round_to(r, MAX_DP)))
}

/// `x | name(y)` for a decimal filter on two JSON numbers, computed as the filter computes it on
/// template values but without converting to them and back. `None` leaves the case to the
/// general path: another filter, a number the shortcut does not cover, or an error to report.
pub(crate) fn decimal_filter_json(name: &str, x: &Number, y: &Number) -> Option<Value> {
    // Integers that add, subtract or multiply to an integer need no decimal arithmetic.
    if let (Some(a), Some(b)) = (x.as_i64(), y.as_i64()) {
        let exact = match name {
            "add" => a.checked_add(b),
            "sub" => a.checked_sub(b),
            "mul" => a.checked_mul(b),
            _ => None,
        };
        if let Some(r) = exact {
            return Some(Value::from(r));
        }
    }
    let x = json_decimal(x)?;
    let r = if name == "round_to" {
        round_to(x, u32::try_from(y.as_u64()?).ok()?)
    } else {
        round_to(arithmetic(name)?(x, json_decimal(y)?)?, MAX_DP)
    };
    Some(match decimal_number(r) {
        Num::Int(i) => Value::from(i),
        Num::Float(f) => Value::from(f),
        Num::Text(s) => Value::from(s),
    })
}

/// [`decimal`] of the template value a JSON number becomes; `None` for integers beyond `i64`.
fn json_decimal(n: &Number) -> Option<Decimal> {
    if let Some(i) = n.as_i64() {
        return Some(Decimal::from(i));
    }
    if n.is_u64() {
        return None;
    }
    let f = n.as_f64()?;
    // minijinja takes a float that survives the round trip through i64 as that integer.
    if f as i64 as f64 == f {
        return Some(Decimal::from(f as i64));
    }
    let s = format!("{f}");
    Decimal::from_str(&s)
        .or_else(|_| Decimal::from_scientific(&s))
        .ok()
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
enum Num {
    Int(i64),
    Float(f64),
    Text(String),
}

fn decimal_number(d: Decimal) -> Num {
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

pub(crate) fn urlencode(v: MjValue) -> MjValue {
    fn enc(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }
    if v.is_undefined() || v.is_none() {
        return MjValue::from("");
    }
    if v.kind() == minijinja::value::ValueKind::Map {
        let mut parts = Vec::new();
        if let Ok(iter) = v.try_iter() {
            for k in iter {
                let val = v.get_item(&k).unwrap_or_default();
                parts.push(format!("{}={}", enc(&k.to_string()), enc(&val.to_string())));
            }
        }
        return MjValue::from(parts.join("&"));
    }
    MjValue::from(enc(&key_text(&v).unwrap_or_default()))
}

fn add_days(date: MjValue, days: i64) -> Result<MjValue, MjError> {
    if date.is_undefined() || date.is_none() {
        return Ok(date);
    }
    let s = date.to_string();
    let bad = || {
        MjError::new(
            ErrorKind::InvalidOperation,
            format!("`{s}` is not a date (YYYY-MM-DD)"),
        )
    };
    let day = crate::dates::parse(&s).ok_or_else(bad)?;
    Ok(MjValue::from(crate::dates::format(day + days)))
}

/// Applies a filter by name, with the same implementation templates use.
pub fn call_filter(name: &str, args: &[MjValue]) -> Result<MjValue, String> {
    let detail = |e: MjError| {
        e.detail()
            .map(str::to_string)
            .unwrap_or_else(|| e.to_string())
    };
    if let Some(r) = rbtx_filter(name, args) {
        return r.map_err(detail);
    }
    if let Some(v) = common_builtin(name, args) {
        return Ok(v);
    }
    let mut state = ENV.empty_state();
    state.apply_filter(name, args).map_err(|e| {
        e.detail()
            .map(str::to_string)
            .unwrap_or_else(|| e.to_string())
    })
}

/// minijinja's most used filters, done here because building a `State` per call is the larger
/// part of their cost. Same semantics (the cross-check test holds them to it); `None` for any
/// other use.
fn common_builtin(name: &str, args: &[MjValue]) -> Option<MjValue> {
    let v = args.first()?;
    match (name, args.len()) {
        ("trim", 1) => Some(MjValue::from(v.to_string().trim())),
        ("upper", 1) => Some(MjValue::from(v.to_string().to_uppercase())),
        ("lower", 1) => Some(MjValue::from(v.to_string().to_lowercase())),
        ("default" | "d", 1..=3) => {
            let fallback = args.get(1).cloned().unwrap_or_else(|| MjValue::from(""));
            let lax = args.get(2).is_some_and(MjValue::is_true);
            Some(if v.is_undefined() || (lax && !v.is_true()) {
                fallback
            } else {
                v.clone()
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_filters_on_json_numbers_agree_with_the_template_filters() {
        let xs = [
            "0",
            "25",
            "25.0",
            "-3",
            "0.1",
            "149.37",
            "12.5",
            "1e-7",
            "-0.0",
            "9007199254740993",
            "1e20",
            "18446744073709551615",
        ];
        let ys = ["0", "2", "25", "12.5", "-1", "1e20"];
        let mut shortcuts = 0;
        for name in [
            "add",
            "sub",
            "mul",
            "div",
            "with_vat",
            "without_vat",
            "discount",
            "round_to",
        ] {
            for x in xs {
                for y in ys {
                    let (Ok(xj), Ok(yj)) = (x.parse::<Number>(), y.parse::<Number>()) else {
                        panic!("{x} or {y} is not a JSON number");
                    };
                    let args = [
                        super::super::scope::number(&xj),
                        super::super::scope::number(&yj),
                    ];
                    let slow = call_filter(name, &args)
                        .ok()
                        .and_then(|v| serde_json::to_value(&v).ok());
                    // The shortcut may leave a case to the general path, never differ from it.
                    if let Some(fast) = decimal_filter_json(name, &xj, &yj) {
                        assert_eq!(Some(&fast), slow.as_ref(), "{x} | {name}({y})");
                        shortcuts += 1;
                    }
                }
            }
        }
        assert!(shortcuts > 300, "only {shortcuts} cases took the shortcut");
    }
}
