//! The filter registry: one table of every filter a mapping may use, with its arguments, a line
//! saying what it does and what computes it. Every other list comes from it: the filters
//! minijinja is given (`environment`), the numbering the native evaluator matches on
//! ([`Filter`]), the names `validate` accepts and suggests, and README's list of filters (a test
//! holds README to [`markdown_table`]). A new filter is one row here and, when it is rbtx's own,
//! its function below.

use minijinja::value::Value as MjValue;
use minijinja::{Error as MjError, ErrorKind};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Number, Value};
use std::str::FromStr;

use super::value::{Num, decimal, decimal_number, from_decimal, key_text};

/// One filter.
pub struct FilterDef {
    pub id: Filter,
    pub name: &'static str,
    /// The arguments after the name, as README shows them (`"(rate)"`; empty for none).
    pub args: &'static str,
    /// Who defines the name: minijinja (with, for `urlencode`, rbtx's implementation) or rbtx.
    pub origin: Origin,
    /// Whether the native evaluator computes it (the rest go to minijinja).
    pub native: bool,
    pub imp: Imp,
    /// What it does, in one line.
    pub about: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Minijinja,
    Rbtx,
}

/// What computes a filter.
pub enum Imp {
    /// minijinja's built-in filter of that name.
    Builtin,
    /// Another name for a filter minijinja has built in.
    Alias(Filter),
    /// `x | name(y)` on two exact decimals; `None` when overflowing or dividing by zero.
    Decimal(fn(Decimal, Decimal) -> Option<Decimal>),
    /// rbtx's own, on the subject and the arguments (called with the filter's name, for errors).
    Rbtx(fn(&str, &[MjValue]) -> Result<MjValue, MjError>),
    /// rbtx's own on the subject alone; more arguments are an error.
    Unary(fn(MjValue) -> MjValue),
}

/// The registry, written once: each row makes a [`Filter`] variant and a [`FILTERS`] entry, in
/// the same order, so `FILTERS[f as usize]` is `f`'s row.
macro_rules! registry {
    ($($id:ident $name:literal $args:literal $origin:ident $native:literal $imp:expr, $about:literal;)*) => {
        /// A filter, numbered by its row in [`FILTERS`]: the native evaluator matches on these
        /// rather than on names.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Filter {
            $($id),*
        }

        /// Every filter a mapping may use: rbtx's own first, then minijinja's, in README's order.
        pub static FILTERS: &[FilterDef] = &[
            $(FilterDef {
                id: Filter::$id,
                name: $name,
                args: $args,
                origin: Origin::$origin,
                native: $native,
                imp: $imp,
                about: $about,
            }),*
        ];
    };
}

use Imp::{Alias, Builtin, Rbtx, Unary};

registry! {
    Add "add" "(y)" Rbtx true Imp::Decimal(add), "`x + y` in decimal arithmetic: `0.1 | add(0.2)` is `0.3`, not `0.30000000000000004`";
    Sub "sub" "(y)" Rbtx true Imp::Decimal(sub), "`x - y` in decimal arithmetic";
    Mul "mul" "(y)" Rbtx true Imp::Decimal(mul), "`x * y` in decimal arithmetic";
    Div "div" "(y)" Rbtx true Imp::Decimal(div), "`x / y` in decimal arithmetic; dividing by zero is an error";
    RoundTo "round_to" "(n)" Rbtx true Rbtx(round_to_filter), "round half away from zero to `n` decimals (computed values keep at most 10)";
    WithVat "with_vat" "(rate)" Rbtx true Imp::Decimal(with_vat), "the price including VAT at `rate` percent, in decimal";
    WithoutVat "without_vat" "(rate)" Rbtx true Imp::Decimal(without_vat), "the price excluding VAT at `rate` percent, in decimal";
    Discount "discount" "(pct)" Rbtx true Imp::Decimal(discount), "the price after a `pct` percent discount, in decimal";
    AddDays "add_days" "(n)" Rbtx true Rbtx(add_days_filter), "a `YYYY-MM-DD` date (or the date part of a timestamp) plus `n` days";
    Digits "digits" "" Rbtx true Rbtx(digits), "only the digits of a text (`\"NO 999 888 777 MVA\"` → `\"999888777\"`)";
    BlankToNone "blank_to_none" "" Rbtx true Rbtx(blank_to_none), "an empty or blank string becomes none, so the field is left out";
    Required "required" "(message)" Rbtx false Rbtx(required), "the value, or when it is none or undefined an error for the record that says `message` (name the record, the item and what is missing)";
    Abs "abs" "" Minijinja false Builtin, "the absolute value of a number";
    Attr "attr" "(name)" Minijinja false Builtin, "the attribute `name` of an object";
    Batch "batch" "(n)" Minijinja false Builtin, "a list cut into lists of `n` items";
    Bool "bool" "" Minijinja false Builtin, "the value as true or false";
    Capitalize "capitalize" "" Minijinja false Builtin, "the first letter upper case, the rest lower case";
    Chain "chain" "(other, …)" Minijinja false Builtin, "the items of several lists, one list after the other";
    Count "count" "" Minijinja false Builtin, "the same as `length`";
    D "d" "(value, lax)" Minijinja true Alias(Filter::Default), "the same as `default`";
    Default "default" "(value, lax)" Minijinja true Builtin, "`value` (or `\"\"`) when undefined, or with `lax` true also when false or empty";
    Dictsort "dictsort" "" Minijinja false Builtin, "a map's key-value pairs, sorted by key";
    E "e" "" Minijinja false Alias(Filter::Escape), "the same as `escape`";
    Escape "escape" "" Minijinja false Builtin, "the text with HTML's special characters escaped";
    First "first" "" Minijinja true Builtin, "the first item of a list, or the first character of a text";
    Float "float" "" Minijinja false Builtin, "the value as a floating-point number";
    Format "format" "(value, …)" Minijinja false Builtin, "printf-style formatting: `'%s-%s' | format(a, b)`";
    Groupby "groupby" "(attr)" Minijinja false Builtin, "a list's items grouped by `attr`";
    Indent "indent" "(width)" Minijinja false Builtin, "each line after the first indented by `width` spaces";
    Int "int" "" Minijinja true Builtin, "the value as a whole number";
    Items "items" "" Minijinja false Builtin, "a map's key-value pairs";
    Join "join" "(sep)" Minijinja true Builtin, "a list's items as one text, `sep` between them";
    Last "last" "" Minijinja false Builtin, "the last item of a list";
    Length "length" "" Minijinja true Builtin, "the number of items of a list or map, or of characters of a text";
    Lines "lines" "" Minijinja false Builtin, "a text's lines, as a list";
    List "list" "" Minijinja true Builtin, "the value as a list";
    Lower "lower" "" Minijinja true Builtin, "the text in lower case";
    Map "map" "(filter)" Minijinja true Builtin, "`filter` applied to each item (`map(attribute='name')` takes an attribute)";
    Max "max" "" Minijinja false Builtin, "the largest item of a list";
    Min "min" "" Minijinja false Builtin, "the smallest item of a list";
    Pprint "pprint" "" Minijinja false Builtin, "the value pretty-printed, as text";
    Reject "reject" "(test)" Minijinja false Builtin, "the items for which `test` fails (the false ones without a test)";
    Rejectattr "rejectattr" "(attr, test, …)" Minijinja false Builtin, "the items whose `attr` fails `test`";
    Replace "replace" "(from, to)" Minijinja true Builtin, "the text with each `from` replaced by `to`";
    Reverse "reverse" "" Minijinja false Builtin, "a list or text in reverse order";
    Round "round" "(precision)" Minijinja false Builtin, "a number rounded in floating point (`round_to` is for money)";
    Safe "safe" "" Minijinja false Builtin, "the text marked as needing no escaping";
    Select "select" "(test)" Minijinja true Builtin, "the items for which `test` holds (the true ones without a test)";
    Selectattr "selectattr" "(attr, test, …)" Minijinja true Builtin, "the items whose `attr` passes `test`, e.g. `selectattr('type', 'equalto', 'invoice')`";
    Slice "slice" "(n)" Minijinja false Builtin, "a list split into `n` lists";
    Sort "sort" "" Minijinja false Builtin, "a list sorted";
    Split "split" "(sep)" Minijinja true Builtin, "a text split at each `sep` (at runs of whitespace without one)";
    String "string" "" Minijinja true Builtin, "the value as text";
    Sum "sum" "" Minijinja false Builtin, "the sum of a list's numbers";
    Title "title" "" Minijinja false Builtin, "each word of the text capitalized";
    Tojson "tojson" "" Minijinja false Builtin, "the value as JSON text";
    Trim "trim" "" Minijinja true Builtin, "the text without whitespace at either end";
    Unique "unique" "" Minijinja false Builtin, "a list without repeated items";
    Upper "upper" "" Minijinja true Builtin, "the text in upper case";
    Urlencode "urlencode" "" Minijinja true Unary(urlencode), "the value percent-encoded as one URL segment (`/` too; RFC 3986 unreserved characters kept), a map as a query string";
    Zip "zip" "(other, …)" Minijinja false Builtin, "lists paired item by item";
}

impl Filter {
    /// This filter's row.
    pub fn def(self) -> &'static FilterDef {
        &FILTERS[self as usize]
    }

    /// The name mappings and minijinja know the filter by.
    pub fn name(self) -> &'static str {
        self.def().name
    }

    /// The filter `name` stands for, aliases resolved.
    pub fn parse(name: &str) -> Option<Filter> {
        let def = FILTERS.iter().find(|d| d.name == name)?;
        Some(match def.imp {
            Alias(to) => to,
            _ => def.id,
        })
    }

    /// The filter `name` stands for, when the native evaluator computes it.
    pub fn native(name: &str) -> Option<Filter> {
        Filter::parse(name).filter(|f| f.def().native)
    }
}

/// Whether a mapping may use filter `name`.
pub fn known(name: &str) -> bool {
    FILTERS.iter().any(|d| d.name == name)
}

/// Every filter name, in the order `validate` tries them for "did you mean": minijinja's, then
/// rbtx's.
pub fn suggestions() -> impl Iterator<Item = &'static str> {
    let of = |o: Origin| {
        FILTERS
            .iter()
            .filter(move |d| d.origin == o)
            .map(|d| d.name)
    };
    of(Origin::Minijinja).chain(of(Origin::Rbtx))
}

/// The names of rbtx's own filters.
pub fn rbtx_names() -> impl Iterator<Item = &'static str> {
    FILTERS
        .iter()
        .filter(|d| d.origin == Origin::Rbtx)
        .map(|d| d.name)
}

/// README's table of filters, row for row from the registry.
pub fn markdown_table() -> String {
    let mut out = String::from("| filter | does |\n| --- | --- |\n");
    for d in FILTERS {
        out.push_str(&format!(
            "| `{}{}` | {} |\n",
            d.name,
            d.args,
            d.about.replace('|', "\\|")
        ));
    }
    out
}

/// Applies filter `name` when rbtx computes it (its own filters, and `urlencode`); `None` for
/// the ones minijinja computes.
pub(crate) fn apply(name: &str, args: &[MjValue]) -> Option<Result<MjValue, MjError>> {
    let def = FILTERS.iter().find(|d| d.name == name)?;
    apply_def(def, args)
}

/// Applies `def` when rbtx computes it.
pub(crate) fn apply_def(def: &FilterDef, args: &[MjValue]) -> Option<Result<MjValue, MjError>> {
    Some(match def.imp {
        Builtin | Alias(_) => return None,
        Imp::Decimal(op) => arg(def.name, args, 1).and_then(|b| dec2(subject(args), b, op)),
        Rbtx(f) => f(def.name, args),
        Unary(f) => Ok(f(subject(args))),
    })
}

/// Argument `i` of filter `name` (0 is the subject).
fn arg(name: &str, args: &[MjValue], i: usize) -> Result<MjValue, MjError> {
    args.get(i).cloned().ok_or_else(|| {
        MjError::new(
            ErrorKind::MissingArgument,
            format!(
                "`{name}` needs {i} argument{}",
                if i == 1 { "" } else { "s" }
            ),
        )
    })
}

fn subject(args: &[MjValue]) -> MjValue {
    args.first().cloned().unwrap_or(MjValue::UNDEFINED)
}

fn round_to_filter(name: &str, args: &[MjValue]) -> Result<MjValue, MjError> {
    let a = subject(args);
    arg(name, args, 1).and_then(|dp| {
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
    })
}

fn add_days_filter(name: &str, args: &[MjValue]) -> Result<MjValue, MjError> {
    let a = subject(args);
    arg(name, args, 1).and_then(|n| {
        let n = i64::try_from(n.clone()).map_err(|_| {
            MjError::new(
                ErrorKind::InvalidOperation,
                format!("`add_days` takes a whole number, not `{n}`"),
            )
        })?;
        add_days(a, n)
    })
}

fn digits(_: &str, args: &[MjValue]) -> Result<MjValue, MjError> {
    let a = subject(args);
    Ok(if a.is_undefined() || a.is_none() {
        a
    } else {
        MjValue::from(
            a.to_string()
                .chars()
                .filter(char::is_ascii_digit)
                .collect::<String>(),
        )
    })
}

fn blank_to_none(_: &str, args: &[MjValue]) -> Result<MjValue, MjError> {
    let a = subject(args);
    Ok(match a.as_str() {
        Some(t) if t.trim().is_empty() => MjValue::from(()),
        _ => a,
    })
}

/// `x | required(message)`: `x`, unless it is none or undefined, when the record fails with
/// `message`, so a mapping can say which record, item and value it could not find.
fn required(name: &str, args: &[MjValue]) -> Result<MjValue, MjError> {
    let a = subject(args);
    let message = arg(name, args, 1)?;
    if a.is_undefined() || a.is_none() {
        let text = match message.as_str() {
            Some(t) => t.to_string(),
            None => message.to_string(),
        };
        return Err(MjError::new(ErrorKind::InvalidOperation, text));
    }
    Ok(a)
}

/// Most decimal places a computed number keeps (Tripletex accepts ten on unit prices).
const MAX_DP: u32 = 10;

const HUNDRED: Decimal = Decimal::ONE_HUNDRED;

fn add(x: Decimal, y: Decimal) -> Option<Decimal> {
    x.checked_add(y)
}

fn sub(x: Decimal, y: Decimal) -> Option<Decimal> {
    x.checked_sub(y)
}

fn mul(x: Decimal, y: Decimal) -> Option<Decimal> {
    x.checked_mul(y)
}

fn div(x: Decimal, y: Decimal) -> Option<Decimal> {
    if y.is_zero() { None } else { x.checked_div(y) }
}

fn with_vat(x: Decimal, r: Decimal) -> Option<Decimal> {
    x.checked_mul(HUNDRED.checked_add(r)?)?.checked_div(HUNDRED)
}

fn without_vat(x: Decimal, r: Decimal) -> Option<Decimal> {
    x.checked_mul(HUNDRED)?.checked_div(HUNDRED.checked_add(r)?)
}

fn discount(x: Decimal, p: Decimal) -> Option<Decimal> {
    x.checked_mul(HUNDRED.checked_sub(p)?)?.checked_div(HUNDRED)
}

fn round_to(x: Decimal, dp: u32) -> Decimal {
    x.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero)
}

fn dec2(
    a: MjValue,
    b: MjValue,
    op: fn(Decimal, Decimal) -> Option<Decimal>,
) -> Result<MjValue, MjError> {
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

/// `x | f(y)` for a decimal filter on two JSON numbers, computed as the filter computes it on
/// template values but without converting to them and back. `None` leaves the case to the
/// general path: another filter, a number the shortcut does not cover, or an error to report.
pub(crate) fn decimal_filter_json(f: Filter, x: &Number, y: &Number) -> Option<Value> {
    // Integers that add, subtract or multiply to an integer need no decimal arithmetic.
    if let (Some(a), Some(b)) = (x.as_i64(), y.as_i64()) {
        let exact = match f {
            Filter::Add => a.checked_add(b),
            Filter::Sub => a.checked_sub(b),
            Filter::Mul => a.checked_mul(b),
            _ => None,
        };
        if let Some(r) = exact {
            return Some(Value::from(r));
        }
    }
    let x = json_decimal(x)?;
    let r = match f.def().imp {
        _ if f == Filter::RoundTo => round_to(x, u32::try_from(y.as_u64()?).ok()?),
        Imp::Decimal(op) => round_to(op(x, json_decimal(y)?)?, MAX_DP),
        _ => return None,
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

/// `s` with every byte but the unreserved characters of RFC 3986 percent-encoded: safe in a
/// path segment and a query value alike. The one encoder of the crate (the `urlencode` filter,
/// mapping links, console and alert addresses).
pub fn percent_encode(s: &str) -> String {
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

fn urlencode(v: MjValue) -> MjValue {
    let enc = percent_encode;
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

/// minijinja's most used filters, done here because building a `State` per call is the larger
/// part of their cost. Same semantics (the cross-check test holds them to it); `None` for any
/// other use.
pub(crate) fn common_builtin(name: &str, args: &[MjValue]) -> Option<MjValue> {
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
