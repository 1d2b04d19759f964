//! The filters the native evaluator computes itself, on JSON values read in place; the rest go
//! through the implementation templates use.

use minijinja::value::Value as MjValue;
use serde_json::Value;

use super::ast::{Fallback, R, V, tri};
use crate::expr::environment::call_filter;
use crate::expr::filters::{Filter, decimal_filter_json};
use crate::expr::value::{EvalError, number, truthy};

/// The filters that take a list; on anything the native evaluator does not know they go to
/// minijinja, like filters on lists always did.
pub(super) fn takes_list(f: Filter) -> bool {
    use Filter::*;
    matches!(
        f,
        First | Join | Select | Map | Selectattr | Length | List | Default
    )
}

/// A filter on scalars the native filters do not take, through minijinja's implementation.
#[inline(never)]
pub(super) fn filter_by_minijinja<'a>(name: Filter, subject: &V, args: &[V]) -> R<'a> {
    let mut mj_args = Vec::with_capacity(args.len() + 1);
    for v in std::iter::once(subject).chain(args) {
        mj_args.push(tri!(Ok::<_, EvalError>(to_mj(v))));
    }
    call(name.name(), &mj_args)
}

/// The filters mappings use most, on the JSON values they mostly meet, computed without minijinja
/// values: decimal arithmetic on numbers, text filters on strings, `default` on non-numbers
/// (minijinja would turn a whole float into an integer), and the list filters on lists of
/// strings or objects. The same results as minijinja's filters, which the differential test and
/// a unit test hold them to; `None` leaves the case to the general path, with `x` and `args`
/// untouched.
pub(super) fn native_filter<'a>(name: Filter, x: &mut V<'a>, args: &mut [V<'a>]) -> Option<V<'a>> {
    if name == Filter::First && args.is_empty() {
        return first(x);
    }
    // A list this expression built is filtered where it is, without copying its items.
    if let V::Own(Value::Array(items)) = x {
        match (name, &args[..]) {
            (Filter::Select, []) => items.retain(truthy),
            (Filter::Select, [test]) if text(test)? == "upper" => items.retain(is_upper),
            (Filter::Map, [filter]) => {
                let filter = Filter::native(text(filter)?)?;
                for item in items.iter_mut() {
                    let Value::String(s) = item else { return None };
                    text_filter_in_place(filter, s)?;
                }
            }
            _ => return native_filter_on(name, x, args),
        }
        return Some(std::mem::replace(x, V::Undef));
    }
    // Text filters change a computed string in place, and give a string they would not change
    // back as it is: `| trim | upper` on "NO" copies nothing.
    if args.is_empty() && matches!(name, Filter::Trim | Filter::Upper | Filter::Lower) {
        let unchanged = |s: &str| match name {
            Filter::Trim => s.trim().len() == s.len(),
            Filter::Upper => s.is_ascii() && !s.bytes().any(|b| b.is_ascii_lowercase()),
            _ => s.is_ascii() && !s.bytes().any(|b| b.is_ascii_uppercase()),
        };
        match x {
            V::Own(Value::String(s)) => {
                text_filter_in_place(name, s)?;
                return Some(std::mem::replace(x, V::Undef));
            }
            V::Ref(Value::String(s)) if unchanged(s) => {
                return Some(std::mem::replace(x, V::Undef));
            }
            _ => {}
        }
    }
    native_filter_on(name, x, args)
}

/// The string `v` is, borrowed.
fn text<'v>(v: &'v V) -> Option<&'v str> {
    v.get()?.as_str()
}

/// `filter` (a text filter `map` applies) on `s`, in place; `None` for what minijinja must do.
fn text_filter_in_place(filter: Filter, s: &mut String) -> Option<()> {
    match filter {
        Filter::Trim => {
            let t = s.trim();
            if t.len() != s.len() {
                *s = t.to_string();
            }
        }
        Filter::Upper if s.is_ascii() => s.make_ascii_uppercase(),
        Filter::Upper => *s = s.to_uppercase(),
        Filter::Lower if s.is_ascii() => s.make_ascii_lowercase(),
        Filter::Lower => *s = s.to_lowercase(),
        // `first` of "" is undefined, which `map` cannot put in a list of text.
        Filter::First => s.truncate(s.chars().next()?.len_utf8()),
        _ => return None,
    }
    Some(())
}

fn native_filter_on<'a>(name: Filter, x: &mut V<'a>, args: &mut [V<'a>]) -> Option<V<'a>> {
    let scalar = |v: &V| !matches!(v.get(), Some(Value::Array(_) | Value::Object(_)));
    let not_number = |v: &V| !matches!(v.get(), Some(Value::Number(_)));
    Some(match (name, x.get(), &args[..]) {
        (_, Some(Value::Number(n)), [y]) => match y.get() {
            Some(Value::Number(m)) => V::Own(decimal_filter_json(name, n, m)?),
            _ => return None,
        },
        (Filter::Trim, Some(Value::String(s)), []) => V::Own(Value::from(s.trim())),
        (Filter::Upper, Some(Value::String(s)), []) => V::Own(Value::from(s.to_uppercase())),
        (Filter::Lower, Some(Value::String(s)), []) => V::Own(Value::from(s.to_lowercase())),
        (Filter::BlankToNone, Some(Value::String(s)), []) if s.trim().is_empty() => {
            V::Own(Value::Null)
        }
        (Filter::BlankToNone, _, []) if scalar(x) && not_number(x) => {
            std::mem::replace(x, V::Undef)
        }
        (Filter::Digits, None | Some(Value::Null), []) => std::mem::replace(x, V::Undef),
        (Filter::Digits, Some(Value::String(s)), []) => V::Own(Value::from(
            s.chars().filter(char::is_ascii_digit).collect::<String>(),
        )),
        (Filter::Length, None, []) => V::Own(Value::from(0)),
        (Filter::Length, Some(Value::String(s)), []) => V::Own(Value::from(s.chars().count())),
        (Filter::Length, Some(Value::Array(a)), []) => V::Own(Value::from(a.len())),
        (Filter::Length, Some(Value::Object(m)), []) => V::Own(Value::from(m.len())),
        (Filter::List, Some(Value::Array(_)), []) => std::mem::replace(x, V::Undef),
        (Filter::Int, None | Some(Value::Null), []) => V::Own(Value::from(0)),
        (Filter::Int, Some(Value::Bool(b)), []) => V::Own(Value::from(u64::from(*b))),
        (Filter::Int, Some(Value::Number(n)), []) if n.is_i64() || n.is_u64() => {
            V::Own(Value::Number(n.clone()))
        }
        (Filter::Int, Some(Value::String(s)), []) => V::Own(Value::from(int_of(s)?)),
        (Filter::String, None, []) => V::Own(Value::from("")),
        // The `string` filter is minijinja's: `None`, `True`, `False` (text around `{{ }}` and
        // `~` follow the text rule instead).
        (Filter::String, Some(Value::Null), []) => V::Own(Value::from("None")),
        (Filter::String, Some(Value::Bool(b)), []) => {
            V::Own(Value::from(if *b { "True" } else { "False" }))
        }
        (Filter::String, Some(Value::String(_)), []) => std::mem::replace(x, V::Undef),
        (Filter::String, Some(Value::Number(n)), []) if n.is_i64() || n.is_u64() => {
            V::Own(Value::from(n.to_string()))
        }
        (Filter::Replace, Some(Value::String(s)), [from, to]) => {
            V::Own(Value::from(s.replace(text(from)?, text(to)?)))
        }
        (Filter::Split, Some(Value::String(s)), []) => V::Own(Value::Array(
            s.split_whitespace().map(Value::from).collect(),
        )),
        (Filter::Split, Some(Value::String(s)), [sep]) => {
            V::Own(Value::Array(s.split(text(sep)?).map(Value::from).collect()))
        }
        (Filter::Join, Some(Value::Array(items)), [] | [_]) => {
            let sep = match args.first() {
                Some(sep) => text(sep)?,
                None => "",
            };
            let mut joined = String::new();
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    joined.push_str(sep);
                }
                joined.push_str(item.as_str()?);
            }
            V::Own(Value::from(joined))
        }
        (Filter::Select, Some(Value::Array(items)), []) => V::Own(Value::Array(
            items.iter().filter(|v| truthy(v)).cloned().collect(),
        )),
        (Filter::Select, Some(Value::Array(items)), [test]) if text(test)? == "upper" => V::Own(
            Value::Array(items.iter().filter(|v| is_upper(v)).cloned().collect()),
        ),
        (Filter::Selectattr, Some(Value::Array(items)), [attr, test, want])
            if text(test)? == "equalto" =>
        {
            let (attr, want) = (text(attr)?, text(want)?);
            if attr.contains('.') {
                return None;
            }
            let hit = |v: &&Value| {
                v.get(attr)
                    .and_then(Value::as_str)
                    .is_some_and(|s| s == want)
            };
            V::Own(Value::Array(items.iter().filter(hit).cloned().collect()))
        }
        (Filter::Map, Some(Value::Array(items)), [filter]) => {
            let filter = Filter::native(text(filter)?)?;
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let mut item = V::Ref(item);
                // Only text filters on text: each item must give a string.
                let mapped = match filter {
                    Filter::Trim | Filter::Upper | Filter::Lower | Filter::First
                        if item.get().is_some_and(Value::is_string) =>
                    {
                        native_filter(filter, &mut item, &mut [])?
                    }
                    _ => return None,
                };
                out.push(mapped.into_json().filter(Value::is_string)?);
            }
            V::Own(Value::Array(out))
        }
        (Filter::Default, _, [] | [_] | [_, _])
            if not_number(x)
                && args.first().is_none_or(not_number)
                && args.get(1).is_none_or(scalar) =>
        {
            let lax = args.get(1).is_some_and(V::truthy);
            if matches!(x, V::Undef) || (lax && !x.truthy()) {
                match args.first_mut() {
                    Some(fallback) => std::mem::replace(fallback, V::Undef),
                    None => V::Own(Value::from("")),
                }
            } else {
                std::mem::replace(x, V::Undef)
            }
        }
        _ => return None,
    })
}

/// `first` of a string (its first character) or of a list, without copying the list.
fn first<'a>(x: &mut V<'a>) -> Option<V<'a>> {
    if let Some(Value::String(s)) = x.get() {
        let c = s.chars().next();
        return Some(c.map_or(V::Undef, |c| V::Own(Value::from(c.to_string()))));
    }
    let item = match x {
        V::Undef => return Some(V::Undef),
        V::Ref(v) => {
            let v: &'a Value = v;
            match v {
                Value::Array(items) => items.first().map_or(V::Undef, V::Ref),
                _ => return None,
            }
        }
        V::Own(Value::Array(items)) if items.is_empty() => V::Undef,
        V::Own(Value::Array(items)) => V::Own(items.swap_remove(0)),
        V::Own(_) => return None,
    };
    Some(as_template_sees(item))
}

/// An item taken out of a list, as minijinja sees it: a whole float is an integer.
pub(super) fn as_template_sees(item: V) -> V {
    match item.get() {
        Some(Value::Number(n)) if !(n.is_i64() || n.is_u64()) => match number(n).as_i64() {
            Some(i) => V::Own(Value::from(i)),
            None => item,
        },
        _ => item,
    }
}

/// minijinja's `int` of a string, for base-10 integers within `i64`; `None` for the rest.
fn int_of(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.strip_prefix('+').unwrap_or(s).parse().ok()
}

/// minijinja's `upper` test: some cased characters, all upper case.
fn is_upper(v: &Value) -> bool {
    let Some(s) = v.as_str() else {
        return false;
    };
    let mut cased = false;
    for ch in s.chars() {
        if ch.is_lowercase()
            || (!ch.is_uppercase()
                && (ch.to_lowercase().any(|m| m != ch) || ch.to_uppercase().any(|m| m != ch)))
        {
            return false;
        }
        cased |= ch.is_uppercase();
    }
    cased
}

/// Filter `name` through the implementation templates use.
fn call<'a>(name: &str, mj_args: &[MjValue]) -> R<'a> {
    let out = call_filter(name, mj_args).map_err(EvalError)?;
    Ok(Ok(if out.is_undefined() {
        V::Undef
    } else {
        V::Own(serde_json::to_value(&out).map_err(|e| EvalError(e.to_string()))?)
    }))
}

/// A scalar as a minijinja value, for the filters both paths share.
fn to_mj(v: &V) -> Result<MjValue, Fallback> {
    Ok(match v.get() {
        None => MjValue::UNDEFINED,
        Some(Value::Null) => MjValue::from(()),
        Some(Value::Bool(b)) => MjValue::from(*b),
        Some(Value::Number(n)) => number(n),
        Some(Value::String(s)) => MjValue::from(s.as_str()),
        Some(_) => return Err(Fallback),
    })
}
