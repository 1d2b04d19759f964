//! Evaluating the native tree on a scope: values, conditions, and JSON written straight into a
//! body.

use std::borrow::Cow;

use serde_json::Value;

use super::ast::{Cmp, Fallback, Fast, R, Test, V, tri};
use super::filter::{as_template_sees, filter_by_minijinja, native_filter, takes_list};
use super::text::{escape_json, push_text};
use crate::expr::filters::Filter;
use crate::expr::scope::{Scope, lookup_in, lookup_path};
use crate::expr::value::{EvalError, Step, digits, field, key_text_json, truthy};

impl Fast {
    /// Whether this expression is true, as `if` and `when` see it. Conditions are computed as
    /// plain booleans, without the JSON values `eval` would build for them.
    pub fn test<'a>(&'a self, scope: &Scope<'a>) -> Result<Result<bool, Fallback>, EvalError> {
        Ok(Ok(match self {
            Fast::Not(e) => !tri!(e.test(scope)),
            Fast::And(l, r) => tri!(l.test(scope)) && tri!(r.test(scope)),
            Fast::Or(l, r) => tri!(l.test(scope)) || tri!(r.test(scope)),
            Fast::Cmp(l, op, r) => {
                // Fields and constants are compared where they are, without a value for each.
                let found = match (l.peek(scope), r.peek(scope)) {
                    (Some(a), Some(b)) => compare(a, *op, b),
                    _ => {
                        let (l, r) = (tri!(l.eval(scope)), tri!(r.eval(scope)));
                        compare(l.get(), *op, r.get())
                    }
                };
                match found {
                    Some(b) => b,
                    None => return Ok(Err(Fallback)),
                }
            }
            Fast::Test(name, e, args) => tri!(check(*name, e, args, scope)),
            Fast::Path { var, steps } => lookup_path(scope, var, steps).is_some_and(truthy),
            other => tri!(other.eval(scope)).truthy(),
        }))
    }

    /// The value of a constant or a path, read in place (`Some(None)`: undefined); `None` for
    /// the other nodes, which must be evaluated.
    #[inline(always)]
    fn peek<'a>(&'a self, scope: &Scope<'a>) -> Option<Option<&'a Value>> {
        match self {
            Fast::Const(v) => Some(Some(v)),
            Fast::Path { var, steps } => Some(lookup_path(scope, var, steps)),
            _ => None,
        }
    }

    /// Constants and paths, most of the nodes, are read where they are used, without a call.
    #[inline(always)]
    pub fn eval<'a>(&'a self, scope: &Scope<'a>) -> R<'a> {
        match self {
            Fast::Const(v) => Ok(Ok(V::Ref(v))),
            Fast::Path { var, steps } => Ok(Ok(match lookup_path(scope, var, steps) {
                None => V::Undef,
                Some(v) => V::Ref(v),
            })),
            _ => self.eval_node(scope),
        }
    }

    /// Every node but the leaves `eval` reads itself.
    #[inline(never)]
    fn eval_node<'a>(&'a self, scope: &Scope<'a>) -> R<'a> {
        Ok(Ok(match self {
            Fast::Const(_) | Fast::Path { .. } => return self.eval(scope),
            Fast::Attr(base, step) => walk(tri!(base.eval(scope)), std::slice::from_ref(step)),
            Fast::Slice(base, start, stop) => return slice(base, *start, *stop, scope),
            Fast::Not(e) => V::Own(Value::Bool(!tri!(e.test(scope)))),
            Fast::And(l, r) => {
                let l = tri!(l.eval(scope));
                if l.truthy() { tri!(r.eval(scope)) } else { l }
            }
            Fast::Or(l, r) => {
                let l = tri!(l.eval(scope));
                if l.truthy() { l } else { tri!(r.eval(scope)) }
            }
            Fast::Concat(l, r) => return concat(l, r, scope),
            Fast::Cmp(l, op, r) => {
                let (l, r) = (tri!(l.eval(scope)), tri!(r.eval(scope)));
                match compare(l.get(), *op, r.get()) {
                    Some(b) => V::Own(Value::Bool(b)),
                    None => return Ok(Err(Fallback)),
                }
            }
            Fast::If(t, a, b) => {
                if tri!(t.test(scope)) {
                    tri!(a.eval(scope))
                } else {
                    match b {
                        Some(b) => tri!(b.eval(scope)),
                        None => V::Undef,
                    }
                }
            }
            Fast::Ref(entity, key) => return reference(entity, key, scope),
            Fast::Lookup(table, key) => return lookup(table, key, scope),
            Fast::Filter(name, subject, args) => return filter(*name, subject, args, scope),
            Fast::Test(name, e, args) => V::Own(Value::Bool(tri!(check(*name, e, args, scope)))),
            Fast::FirstWhere(l, attr, want) => return find_first(l, attr, want, scope),
            Fast::Memo(slot, e) => return memo(*slot, e, scope),
            Fast::List(items) => return list(items, scope),
        }))
    }
}

impl Fast {
    /// Writes the value as JSON at the end of `out`: `Ok(false)` when it is none or undefined and
    /// nothing was written. A `~` concatenation, also as a branch of an `if`, is written as one
    /// JSON string, each piece escaped as it is appended, without building the string first. On
    /// `Fallback`, `out` is as it was.
    pub fn write_json<'a>(
        &'a self,
        scope: &Scope<'a>,
        out: &mut Vec<u8>,
    ) -> Result<Result<bool, Fallback>, EvalError> {
        match self {
            Fast::Concat(..) => {
                let mark = out.len();
                out.push(b'"');
                if let Err(Fallback) = self.write_pieces(scope, out)? {
                    out.truncate(mark);
                    return Ok(Err(Fallback));
                }
                out.push(b'"');
                Ok(Ok(true))
            }
            Fast::If(t, a, b) => match (tri!(t.test(scope)), b) {
                (true, _) => a.write_json(scope, out),
                (false, Some(b)) => b.write_json(scope, out),
                (false, None) => Ok(Ok(false)),
            },
            _ => match tri!(self.eval(scope)).get() {
                None | Some(Value::Null) => Ok(Ok(false)),
                Some(v) => serde_json::to_writer(out, v)
                    .map(|()| Ok(true))
                    .map_err(|e| EvalError(e.to_string())),
            },
        }
    }

    /// The pieces of a `~` concatenation, left to right, as the inside of a JSON string.
    fn write_pieces<'a>(
        &'a self,
        scope: &Scope<'a>,
        out: &mut Vec<u8>,
    ) -> Result<Result<(), Fallback>, EvalError> {
        if let Fast::Concat(l, r) = self {
            tri!(l.write_pieces(scope, out));
            return r.write_pieces(scope, out);
        }
        let v = tri!(self.eval(scope));
        match v.get() {
            Some(Value::String(s)) => escape_json(out, s),
            Some(Value::Number(n)) if n.is_u64() => {
                out.extend_from_slice(digits(&mut [0; 20], n.as_u64().unwrap_or(0)));
            }
            _ => {
                let mut text = String::new();
                push_text(&mut text, &v);
                escape_json(out, &text);
            }
        }
        Ok(Ok(()))
    }
}

// The arms below are functions of their own, kept out of `eval`: inlined there, their locals
// made each level of the recursion take 2.6 KB of stack.

#[inline(never)]
fn slice<'a>(base: &'a Fast, start: Option<i64>, stop: Option<i64>, scope: &Scope<'a>) -> R<'a> {
    Ok(Ok(match tri!(base.eval(scope)).get() {
        Some(Value::String(s)) => {
            // Bounds count characters; past the end is the end.
            let at = |bound: Option<i64>, none: usize| match bound {
                None => none,
                Some(i) => usize::try_from(i)
                    .ok()
                    .and_then(|i| s.char_indices().nth(i))
                    .map_or(s.len(), |(at, _)| at),
            };
            let a = at(start, 0);
            let b = at(stop, s.len()).max(a);
            V::Own(Value::String(s.get(a..b).unwrap_or_default().to_string()))
        }
        _ => return Ok(Err(Fallback)),
    }))
}

#[inline(never)]
fn concat<'a>(l: &'a Fast, r: &'a Fast, scope: &Scope<'a>) -> R<'a> {
    let (l, r) = (tri!(l.eval(scope)), tri!(r.eval(scope)));
    // A string the left side computed grows in place: `a ~ b ~ c` builds one string.
    let mut s = match l {
        V::Own(Value::String(s)) => s,
        l => {
            let left = l.get().and_then(Value::as_str).map_or(0, str::len);
            let mut s = String::with_capacity(left + 16);
            push_text(&mut s, &l);
            s
        }
    };
    push_text(&mut s, &r);
    Ok(Ok(V::Own(Value::String(s))))
}

#[inline(never)]
fn reference<'a>(entity: &'a str, key: &'a Fast, scope: &Scope<'a>) -> R<'a> {
    Ok(Ok({
        let key = tri!(key.eval(scope));
        let Some(k) = key_of(&key) else {
            return Ok(Err(Fallback));
        };
        let Some(k) = k else { return Ok(Ok(V::Undef)) };
        match scope.rt().resolver.reference(entity, &k) {
            Some(id) => V::Own(id),
            None => {
                scope.rt().note_missing(entity, k.into_owned());
                V::Undef
            }
        }
    }))
}

#[inline(never)]
fn lookup<'a>(table: &'a str, key: &'a Fast, scope: &Scope<'a>) -> R<'a> {
    Ok(Ok({
        let key = tri!(key.eval(scope));
        let Some(k) = key_of(&key) else {
            return Ok(Err(Fallback));
        };
        let Some(k) = k else { return Ok(Ok(V::Undef)) };
        match lookup_in(scope.rt(), table, &k).map_err(EvalError)? {
            Cow::Borrowed(v) => V::Ref(v),
            Cow::Owned(v) => V::Own(v),
        }
    }))
}

#[inline(never)]
fn filter<'a>(name: Filter, subject: &'a Fast, args: &'a [Fast], scope: &Scope<'a>) -> R<'a> {
    Ok(Ok({
        let mut subject = tri!(subject.eval(scope));
        // A list or an object goes to minijinja, before the arguments are evaluated,
        // unless a list filter below takes it. For those, an argument that fails falls
        // back too, so minijinja reports the error as it did.
        let whole = matches!(subject.get(), Some(Value::Array(_) | Value::Object(_)));
        if whole && !takes_list(name) {
            return Ok(Err(Fallback));
        }
        if args.is_empty() {
            return match native_filter(name, &mut subject, &mut []) {
                Some(v) => Ok(Ok(v)),
                None if whole => Ok(Err(Fallback)),
                None => filter_by_minijinja(name, &subject, &[]),
            };
        }
        let arg = |a: &'a Fast| match a.eval(scope) {
            Err(_) if whole => Ok(Err(Fallback)),
            r => r,
        };
        // Filters seldom take more than two arguments: those need no allocation.
        let (mut small, mut large) = ([V::Undef, V::Undef], Vec::new());
        let vals: &mut [V] = if args.len() <= small.len() {
            for (slot, a) in small.iter_mut().zip(args) {
                *slot = tri!(arg(a));
            }
            &mut small[..args.len()]
        } else {
            for a in args {
                large.push(tri!(arg(a)));
            }
            &mut large
        };
        match native_filter(name, &mut subject, vals) {
            Some(v) => v,
            None if whole => return Ok(Err(Fallback)),
            None => return filter_by_minijinja(name, &subject, vals),
        }
    }))
}

#[inline(never)]
fn find_first<'a>(list: &'a Fast, attr: &'a str, want: &'a str, scope: &Scope<'a>) -> R<'a> {
    Ok(Ok({
        let hit = |v: &Value| {
            v.as_object()
                .and_then(|m| field(m, attr))
                .and_then(Value::as_str)
                .is_some_and(|s| s == want)
        };
        match tri!(list.eval(scope)) {
            // minijinja iterates nothing for undefined.
            V::Undef => V::Undef,
            V::Ref(Value::Array(items)) => items
                .iter()
                .find(|v| hit(v))
                .map_or(V::Undef, |v| as_template_sees(V::Ref(v))),
            V::Own(Value::Array(mut items)) => match items.iter().position(hit) {
                Some(i) => as_template_sees(V::Own(items.swap_remove(i))),
                None => V::Undef,
            },
            _ => return Ok(Err(Fallback)),
        }
    }))
}

#[inline(never)]
fn memo<'a>(slot: usize, e: &'a Fast, scope: &Scope<'a>) -> R<'a> {
    Ok(Ok({
        let Some(cell) = scope.memo(slot) else {
            return e.eval(scope);
        };
        if let Some(v) = cell.get() {
            return Ok(Ok(v.as_ref().map_or(V::Undef, V::Ref)));
        }
        let v = tri!(e.eval(scope));
        // A whole object or list is left uncopied: it is only read, and reading it again
        // costs less than a copy.
        if matches!(v.get(), Some(Value::Object(_) | Value::Array(_))) {
            return Ok(Ok(v));
        }
        match cell.get_or_init(|| v.into_json()) {
            Some(v) => V::Ref(v),
            None => V::Undef,
        }
    }))
}

#[inline(never)]
fn list<'a>(items: &'a [Fast], scope: &Scope<'a>) -> R<'a> {
    Ok(Ok({
        let mut out = Vec::with_capacity(items.len());
        for i in items {
            match tri!(i.eval(scope)).into_json() {
                Some(v) => out.push(v),
                None => return Ok(Err(Fallback)),
            }
        }
        V::Own(Value::Array(out))
    }))
}

/// The test `e is name(args)`.
fn check<'a>(
    name: Test,
    e: &'a Fast,
    args: &'a [Fast],
    scope: &Scope<'a>,
) -> Result<Result<bool, Fallback>, EvalError> {
    // A field or a constant is tested where it is.
    let computed;
    let v = match e.peek(scope) {
        Some(v) => v,
        None => {
            computed = tri!(e.eval(scope));
            computed.get()
        }
    };
    let arg = match args {
        [] => None,
        [a] => Some(tri!(a.eval(scope))),
        _ => return Ok(Err(Fallback)),
    };
    let b = match (name, v, arg.as_ref().map(V::get)) {
        (Test::Defined, v, None) => v.is_some(),
        (Test::Undefined, v, None) => v.is_none(),
        (Test::None, v, None) => matches!(v, Some(Value::Null)),
        (Test::Number, v, None) => matches!(v, Some(Value::Number(_))),
        (Test::String, v, None) => matches!(v, Some(Value::String(_))),
        (Test::StartingWith, Some(Value::String(s)), Some(p)) => match p.and_then(Value::as_str) {
            Some(p) => s.starts_with(p),
            None => return Ok(Err(Fallback)),
        },
        (Test::EndingWith, Some(Value::String(s)), Some(p)) => match p.and_then(Value::as_str) {
            Some(p) => s.ends_with(p),
            None => return Ok(Err(Fallback)),
        },
        _ => return Ok(Err(Fallback)),
    };
    Ok(Ok(b))
}

fn walk<'a>(mut cur: V<'a>, steps: &[Step]) -> V<'a> {
    for s in steps {
        cur = match cur {
            V::Ref(v) => match (s, v) {
                (Step::Key(k), Value::Object(m)) => field(m, k).map(V::Ref).unwrap_or(V::Undef),
                (Step::Index(i), Value::Array(a)) => a.get(*i).map(V::Ref).unwrap_or(V::Undef),
                _ => V::Undef,
            },
            V::Own(v) => match (s, v) {
                (Step::Key(k), Value::Object(mut m)) => {
                    m.shift_remove(k.as_str()).map(V::Own).unwrap_or(V::Undef)
                }
                (Step::Index(i), Value::Array(mut a)) if *i < a.len() => V::Own(a.swap_remove(*i)),
                _ => V::Undef,
            },
            V::Undef => V::Undef,
        };
    }
    cur
}

/// A key for `ref()`/`lookup()`: `Some(None)` for no key, `None` to fall back. A string key is
/// borrowed.
fn key_of<'v>(v: &'v V) -> Option<Option<Cow<'v, str>>> {
    match v.get() {
        None | Some(Value::Null) => Some(None),
        Some(Value::Array(_)) | Some(Value::Object(_)) => None,
        Some(Value::String(s)) => Some(Some(Cow::Borrowed(s))),
        Some(other) => Some(key_text_json(other).map(Cow::Owned)),
    }
}

/// `a op b` on values that may be undefined (`None`); `None` to leave it to minijinja.
fn compare(a: Option<&Value>, op: Cmp, b: Option<&Value>) -> Option<bool> {
    use std::cmp::Ordering;
    let ord = || -> Option<Ordering> {
        match (a?, b?) {
            (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
            (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
            _ => None,
        }
    };
    let eq = |x: Option<&Value>, y: Option<&Value>| -> Option<bool> {
        Some(match (x, y) {
            (None, None) => true,
            (None, _) | (_, None) => false,
            (Some(Value::Number(p)), Some(Value::Number(q))) => p.as_f64()? == q.as_f64()?,
            (Some(Value::Array(_)) | Some(Value::Object(_)), _)
            | (_, Some(Value::Array(_)) | Some(Value::Object(_))) => {
                return None;
            }
            (Some(p), Some(q)) => p == q,
        })
    };
    match op {
        Cmp::Eq => eq(a, b),
        Cmp::Ne => eq(a, b).map(|e| !e),
        Cmp::Lt => ord().map(|o| o == Ordering::Less),
        Cmp::Lte => ord().map(|o| o != Ordering::Greater),
        Cmp::Gt => ord().map(|o| o == Ordering::Greater),
        Cmp::Gte => ord().map(|o| o != Ordering::Less),
        Cmp::In | Cmp::NotIn => {
            let found = match (a, b) {
                (Some(Value::String(x)), Some(Value::String(y))) => y.contains(x.as_str()),
                (x, Some(Value::Array(items))) => {
                    let mut hit = false;
                    for i in items {
                        if eq(x, Some(i))? {
                            hit = true;
                            break;
                        }
                    }
                    hit
                }
                _ => return None,
            };
            Some(if matches!(op, Cmp::In) { found } else { !found })
        }
    }
}
