//! Evaluating a compiled template on a scope: a typed value, JSON written straight into a body,
//! text for keys and paths, or a condition. Expressions the native evaluator takes are computed
//! by it; the rest, and whatever it gives up on at run time, by minijinja.

use minijinja::Expression;
use serde_json::Value;

use super::environment::eval_expr;
use super::scope::{Scope, lookup_path};
use super::template::{Part, Template};
use super::value::{EvalError, Out, push_text, truthy};

thread_local! {
    /// When on, every expression with a fast path is also evaluated by minijinja, and a
    /// difference is an error. Tests turn it on to prove the two agree on every mapping case.
    /// Per thread, so the other tests of the same binary still run the paths the product runs
    /// (a body is then written straight as JSON, not from the value minijinja is compared with).
    static CROSS_CHECK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Turns the cross-check on or off for the calling thread.
pub fn set_cross_check(on: bool) {
    CROSS_CHECK.set(on);
}

fn cross_check() -> bool {
    CROSS_CHECK.get()
}

impl Template {
    pub fn eval(&self, scope: &Scope) -> Result<Out, EvalError> {
        match self {
            Template::Const(v) => Ok(Out::Value(v.clone())),
            Template::Path { var, steps } => Ok(match lookup_path(scope, var, steps) {
                Some(Value::Null) | None => Out::Absent,
                Some(v) => Out::Value(v.clone()),
            }),
            Template::Expr {
                fast,
                expr,
                written,
            } => {
                if let Some(f) = fast
                    && let Ok(v) = f.eval(scope)?
                {
                    let out = match v.into_json() {
                        None | Some(Value::Null) => Out::Absent,
                        Some(v) => Out::Value(v),
                    };
                    if cross_check() {
                        let slow = slow_eval(expr, scope, written.as_deref())?;
                        if !same_json(&slow, &out) {
                            return Err(EvalError(format!(
                                "fast path differs from minijinja: {out:?} vs {slow:?}"
                            )));
                        }
                    }
                    return Ok(out);
                }
                slow_eval(expr, scope, written.as_deref())
            }
            Template::Interp(_) => {
                let mut s = String::new();
                self.push_text(scope, &mut s)?;
                Ok(Out::Value(Value::String(s)))
            }
        }
    }

    /// Writes the value as JSON at the end of `out`, reading the record in place; `false` when it
    /// is none or undefined and nothing was written. The same value as [`Template::eval`].
    pub fn write_json(&self, scope: &Scope, out: &mut Vec<u8>) -> Result<bool, EvalError> {
        let write = |out: &mut Vec<u8>, v: &Value| {
            serde_json::to_writer(out, v)
                .map(|()| true)
                .map_err(|e| EvalError(e.to_string()))
        };
        match self {
            Template::Path { var, steps } => match lookup_path(scope, var, steps) {
                Some(Value::Null) | None => Ok(false),
                Some(v) => write(out, v),
            },
            Template::Expr {
                fast: Some(f),
                expr,
                written,
            } if !cross_check() => match f.write_json(scope, out)? {
                Ok(wrote) => Ok(wrote),
                Err(_) => match slow_eval(expr, scope, written.as_deref())? {
                    Out::Absent => Ok(false),
                    Out::Value(v) => write(out, &v),
                },
            },
            _ => {
                let value = self.eval(scope)?;
                if cross_check()
                    && let Template::Expr { fast: Some(f), .. } = self
                {
                    // The native body writer must write the bytes serde_json writes for the
                    // value it computes (checked against minijinja's by `eval`).
                    let mut native = Vec::new();
                    if let Ok(wrote) = f.write_json(scope, &mut native)? {
                        let want = match &value {
                            Out::Absent => Vec::new(),
                            Out::Value(v) => serde_json::to_vec(v).unwrap_or_default(),
                        };
                        if wrote != matches!(value, Out::Value(_)) || native != want {
                            return Err(EvalError(format!(
                                "the native body writer differs: {} vs {}",
                                String::from_utf8_lossy(&native),
                                String::from_utf8_lossy(&want)
                            )));
                        }
                    }
                }
                match value {
                    Out::Absent => Ok(false),
                    Out::Value(v) => write(out, &v),
                }
            }
        }
    }

    /// The value as text (keys, paths, query values), `None` when absent. Constants, paths and
    /// interpolations are written straight into the text, without a JSON value in between.
    pub fn text(&self, scope: &Scope) -> Result<Option<String>, EvalError> {
        let whole = match self {
            Template::Const(v) => Some(v),
            Template::Path { var, steps } => lookup_path(scope, var, steps),
            _ => None,
        };
        // A whole string is copied at its size, without growing a buffer.
        if let Some(Value::String(s)) = whole {
            return Ok(Some(s.clone()));
        }
        let mut s = String::with_capacity(32);
        Ok(self.push_text(scope, &mut s)?.then_some(s))
    }

    /// Appends the value as text; `false` when it is absent (an interpolation never is).
    fn push_text(&self, scope: &Scope, out: &mut String) -> Result<bool, EvalError> {
        let value = match self {
            Template::Const(v) => Some(v),
            Template::Path { var, steps } => lookup_path(scope, var, steps),
            Template::Interp(parts) => {
                for p in parts {
                    match p {
                        Part::Text(t) => out.push_str(t),
                        Part::Value(t) => {
                            t.push_text(scope, out)?;
                        }
                    }
                }
                return Ok(true);
            }
            Template::Expr { .. } => {
                return Ok(match self.eval(scope)? {
                    Out::Value(v) => push_json_text(out, &v),
                    Out::Absent => false,
                });
            }
        };
        Ok(value.is_some_and(|v| push_json_text(out, v)))
    }

    /// Truthiness, the way Jinja sees it, for `when` conditions.
    pub fn eval_bool(&self, scope: &Scope) -> Result<bool, EvalError> {
        // Read in place where possible: a condition needs no copy of the value it tests.
        match self {
            Template::Path { var, steps } => {
                return Ok(lookup_path(scope, var, steps).is_some_and(truthy));
            }
            Template::Expr {
                fast: Some(f),
                expr,
                written,
            } => {
                if let Ok(b) = f.test(scope)? {
                    if cross_check() {
                        let slow = slow_eval(expr, scope, written.as_deref())?;
                        if matches!(&slow, Out::Value(v) if truthy(v)) != b {
                            return Err(EvalError(format!(
                                "fast path differs from minijinja: {b} vs {slow:?}"
                            )));
                        }
                    }
                    return Ok(b);
                }
            }
            _ => {}
        }
        Ok(match self.eval(scope)? {
            Out::Absent => false,
            Out::Value(v) => truthy(&v),
        })
    }
}

/// One expression evaluated every way rbtx evaluates it, side by side: for the harness that
/// proves the native evaluator and minijinja agree (`tests/expressions.rs`).
#[derive(Debug)]
pub struct Evaluations {
    pub minijinja: Result<Out, EvalError>,
    /// The native evaluator's value; `None` when it has none here (the expression is beyond it,
    /// or it fell back to minijinja on this record).
    pub native: Option<Result<Out, EvalError>>,
    /// The bytes the native body writer writes (`None` inside: the field is left out); `None`
    /// when it fell back.
    pub native_body: Option<Result<Option<Vec<u8>>, EvalError>>,
}

impl Template {
    /// Every evaluation of a whole-field expression; `None` for the other templates.
    pub fn evaluations(&self, scope: &Scope) -> Option<Evaluations> {
        let Template::Expr {
            fast,
            expr,
            written,
        } = self
        else {
            return None;
        };
        let minijinja = slow_eval(expr, scope, written.as_deref());
        let Some(f) = fast else {
            return Some(Evaluations {
                minijinja,
                native: None,
                native_body: None,
            });
        };
        let native = match f.eval(scope) {
            Ok(Ok(v)) => Some(Ok(match v.into_json() {
                None | Some(Value::Null) => Out::Absent,
                Some(v) => Out::Value(v),
            })),
            Ok(Err(_)) => None,
            Err(e) => Some(Err(e)),
        };
        let mut bytes = Vec::new();
        let native_body = match f.write_json(scope, &mut bytes) {
            Ok(Ok(wrote)) => Some(Ok(wrote.then_some(bytes))),
            Ok(Err(_)) => None,
            Err(e) => Some(Err(e)),
        };
        Some(Evaluations {
            minijinja,
            native,
            native_body,
        })
    }
}

fn slow_eval(
    e: &Expression<'static, 'static>,
    scope: &Scope,
    written: Option<&str>,
) -> Result<Out, EvalError> {
    let v = eval_expr(e, scope, written)?;
    if v.is_undefined() || v.is_none() {
        return Ok(Out::Absent);
    }
    serde_json::to_value(&v)
        .map(Out::Value)
        .map_err(|err| EvalError(format!("value cannot be sent as JSON: {err}")))
}

/// Equal as JSON numbers and values (25 and 25.0 are one number).
fn same_json(a: &Out, b: &Out) -> bool {
    fn eq(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(p, q)| eq(p, q))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| eq(v, w)))
            }
            _ => a == b,
        }
    }
    match (a, b) {
        (Out::Absent, Out::Absent) => true,
        (Out::Value(x), Out::Value(y)) => eq(x, y),
        _ => false,
    }
}

/// Appends `v` as text inside an interpolation, by the one text rule; `false` (nothing written)
/// for null.
fn push_json_text(out: &mut String, v: &Value) -> bool {
    push_text(out, v);
    !v.is_null()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::expr::scope::{RecordRt, Resolver, Var};
    use crate::expr::template::{Uses, compile_expr};

    struct NoLookups;

    /// A record's runtime with no lookups, references or static tables.
    fn record_rt() -> Arc<RecordRt> {
        Arc::new(RecordRt {
            resolver: Arc::new(NoLookups),
            statics: Arc::new(Vec::new()),
            missing: Mutex::new(Vec::new()),
            unlooked: Mutex::new(Vec::new()),
        })
    }

    impl Resolver for NoLookups {
        fn reference(&self, _: &str, _: &str) -> Option<Value> {
            None
        }
        fn lookup(&self, _: &str, _: &str) -> Option<Value> {
            None
        }
    }

    #[test]
    fn the_fast_filters_and_tests_agree_with_minijinja() {
        let source = Arc::new(serde_json::json!({
            "s": "  Hello World  ", "csv": "a@x.no, b@x.no;c", "empty": "", "blank": "   ",
            "n": 42, "f": 2.5, "wf": 25.0, "neg": "-17", "plus": "+8", "bad": "12a",
            "big": "123456789012345678901234", "t": true, "nul": null, "none": [],
            "names": ["Kari", "", " Anne ", "nordmann"], "caps": ["ABC", "Abc", "1A", "ÆØÅ", "123"],
            "addresses": [{"type": "invoice", "name": "I"}, {"type": "delivery", "name": "D1", "n": 25.0},
                {"type": "delivery", "name": "D2"}, {"name": "x"}, "text"],
            "nums": [2.0, 1, 3.5], "mixed": ["a", 1]
        }));
        let cases = [
            "source.s | trim",
            "source.s | upper",
            "source.s | lower",
            "source.csv | replace(',', ';') | split(';') | first | trim",
            "source.s | split",
            "source.s | split(' ')",
            "source.empty | split",
            "source.empty | split(',')",
            "source.s | first",
            "source.empty | first",
            "source.names | first",
            "source.nums | first",
            "source.missing | first",
            "source.addresses | first",
            "source.none | first",
            "source.names | join(', ')",
            "source.names | join",
            "source.mixed | join('-')",
            "source.nums | join",
            "source.names | select",
            "source.caps | select('upper')",
            "source.names | select | map('trim') | select | join(' ')",
            "source.names | map('upper')",
            "source.names | map('first')",
            "source.nums | map('trim')",
            "source.addresses | selectattr('type', 'equalto', 'delivery') | first",
            "(source.addresses | selectattr('type', 'equalto', 'delivery') | first).name",
            "source.addresses | selectattr('type', 'equalto', 'nothing') | first",
            "source.addresses | selectattr('type', 'equalto', 'delivery') | list | length",
            "source.n | int",
            "source.f | int",
            "source.wf | int",
            "source.neg | int",
            "source.plus | int",
            "source.bad | int",
            "source.big | int",
            "source.t | int",
            "source.missing | int",
            "source.empty | int",
            "source.n | string",
            "source.t | string",
            "source.missing | string",
            "source.f | string",
            "source.nul | string",
            "source.s | string",
            "source.s | length",
            "source.names | length",
            "source.addresses[1] | length",
            "source.missing | length",
            "source.blank | blank_to_none",
            "source.s | blank_to_none",
            "source.n | blank_to_none",
            "source.missing | blank_to_none",
            "source.nul | blank_to_none",
            "source.neg | digits",
            "source.missing | digits",
            "source.n | digits",
            "source.missing | default([], true) | length",
            "source.names | default([], true) | length",
            "source.none | default([1], true)",
            "source.s | default('x')",
            "source.empty | default('x', true)",
            "source.nul | default('x')",
            "source.t | default('x', true)",
            "source.s is startingwith('  He')",
            "source.s is endingwith('x')",
            "source.n is startingwith('4')",
            // Lists the expression built itself are filtered in place.
            "[source.s, source.empty, source.blank] | select | map('trim') | select | join('|')",
            "[source.s, 'Ærlig øl', 'ß'] | map('upper') | join('|')",
            "[source.s, 'ÆRLIG ØL'] | map('lower') | join('|')",
            "[source.s, source.empty] | map('first')",
            "[source.s, source.n] | map('trim')",
            "['Kari Anne', 'nordmann', '😀 x'] | join(' ') | split | map('first') | map('upper') | select('upper') | join",
            "source.names | select | list | map('upper') | select('upper') | length",
            "[source.t, source.nul, source.n, source.empty] | select | length",
            "source.s | trim | upper | lower | trim",
            "(source.s ~ ' ') | trim | upper",
            "('ÆØÅ æøå ' ~ source.s) | lower | trim",
            "source.blank | trim | upper",
            "'NO' | trim | upper | lower",
        ];
        let rt = record_rt();
        let vars = [("source", Var::root(&source))];
        let scope = Scope::new(&vars, &rt);
        let mut native = 0;
        for src in cases {
            let mut u = Uses::default();
            let t = compile_expr(src, &["source"], &mut u, None);
            let Ok(Template::Expr {
                fast: Some(f),
                expr,
                ..
            }) = &t
            else {
                panic!("{src} does not compile to the fast path");
            };
            if matches!(f.eval(&scope), Ok(Ok(_))) {
                native += 1;
            }
            let (fast, slow) = (
                t.as_ref().map(|t| t.eval(&scope)),
                slow_eval(expr, &scope, None),
            );
            match (fast, slow) {
                (Ok(Ok(a)), Ok(b)) => assert!(same_json(&a, &b), "{src}: {a:?} vs {b:?}"),
                (Ok(Err(_)), Err(_)) => {}
                (fast, slow) => panic!("{src}: {fast:?} vs {slow:?}"),
            }
        }
        assert!(
            native >= 59,
            "only {native} of {} stayed native",
            cases.len()
        );
    }

    /// One text rule: `"VAT {{ x }} %"` and `"{{ 'VAT ' ~ x ~ ' %' }}"` give the same text for
    /// every value, natively and by minijinja, and a whole float is written as `25`.
    #[test]
    fn interpolation_and_concatenation_write_the_same_text() {
        let source = Arc::new(serde_json::json!({
            "wf": 25.0, "n": 25, "f": 2.5, "small": 0.1, "neg": -3, "negf": -2.0, "big": 1e20,
            "t": true, "no": false, "nul": null, "s": "x æ", "empty": "", "list": [1, 2.0, "a"],
            "obj": {"a": 1}
        }));
        let rt = record_rt();
        let vars = [("source", Var::root(&source))];
        let scope = Scope::new(&vars, &rt);
        let mut u = Uses::default();
        let text = |src: &str, check: bool| {
            set_cross_check(check);
            let t = crate::expr::template::compile(src, &["source"], &mut Uses::default(), None);
            let got = t.as_ref().ok().map(|t| t.eval(&scope).map_err(|e| e.0));
            set_cross_check(false);
            match got {
                Some(Ok(Out::Value(Value::String(s)))) => Ok(s),
                other => Err(format!("{src}: {other:?}")),
            }
        };
        for (field, want) in [
            ("wf", "25"),
            ("n", "25"),
            ("f", "2.5"),
            ("small", "0.1"),
            ("neg", "-3"),
            ("negf", "-2"),
            ("big", "100000000000000000000"),
            ("t", "true"),
            ("no", "false"),
            ("nul", ""),
            ("missing", ""),
            ("s", "x æ"),
            ("empty", ""),
            ("list", "[1,2,\"a\"]"),
            ("obj", "{\"a\":1}"),
        ] {
            let interp = format!("VAT {{{{ source.{field} }}}} %");
            let concat = format!("{{{{ 'VAT ' ~ source.{field} ~ ' %' }}}}");
            let want = format!("VAT {want} %");
            assert_eq!(
                text(&interp, false).as_deref(),
                Ok(want.as_str()),
                "{interp}"
            );
            assert_eq!(
                text(&concat, false).as_deref(),
                Ok(want.as_str()),
                "{concat}"
            );
            // The same concatenation by minijinja, and checked against it.
            assert_eq!(
                text(&concat, true).as_deref(),
                Ok(want.as_str()),
                "{concat} (cross-checked)"
            );
            let Ok(Template::Expr { expr, .. }) =
                compile_expr(&concat[2..concat.len() - 2], &["source"], &mut u, None)
            else {
                panic!("{concat} is not an expression");
            };
            assert_eq!(
                slow_eval(&expr, &scope, None).ok(),
                Some(Out::Value(Value::String(want.clone()))),
                "{concat} by minijinja"
            );
        }
    }

    #[test]
    fn conditions_agree_with_minijinja() {
        let source = Arc::new(serde_json::json!({
            "s": "x", "empty": "", "n": 3, "zero": 0, "t": true, "f": false, "nul": null,
            "list": [], "items": [1, 2], "obj": {"a": 1}
        }));
        // Each of these is computed natively, with no fallback: a case that falls back fails
        // here, so the comparison below is always native against minijinja.
        let native = [
            "source.n is number and source.s",
            "source.s is number and source.s",
            "not source.missing",
            "not source.empty",
            "source.s == 'x' or source.n > 3",
            "source.n >= 3 and source.zero < 1",
            "source.n != 3 or source.n <= 2",
            "source.n < 4 and source.s > 'w'",
            "source.nul is none and source.missing is undefined",
            "source.s is startingwith('x') and not source.f",
            "source.s is endingwith('y')",
            "source.list or source.obj",
            "source.items and source.empty",
            "source.t if source.zero else source.n",
            "source.s in 'xyz' and 2 in source.items",
            "source.s not in 'abc' and 3 not in source.items",
            "source.n is string or source.s is defined",
        ];
        // These the native evaluator leaves to minijinja (objects compared); they must still
        // come out as minijinja says.
        let fallback = ["source.obj == source.obj"];
        let rt = record_rt();
        let vars = [("source", Var::root(&source))];
        let scope = Scope::new(&vars, &rt);
        for src in native.iter().chain(&fallback) {
            let t = compile_expr(src, &["source"], &mut Uses::default(), None);
            let Ok(Template::Expr {
                fast: Some(f),
                expr,
                ..
            }) = &t
            else {
                panic!("{src} does not compile to the fast path");
            };
            let slow = match slow_eval(expr, &scope, None) {
                Ok(o) => matches!(&o, Out::Value(v) if truthy(v)),
                Err(e) => panic!("{src}: minijinja fails: {e:?}"),
            };
            match f.test(&scope) {
                Ok(Ok(a)) if native.contains(src) => assert_eq!(a, slow, "{src}"),
                Ok(Ok(a)) => panic!("{src} was expected to fall back but gave {a}"),
                Ok(Err(_)) if native.contains(src) => {
                    panic!("{src} fell back to minijinja instead of staying native")
                }
                Ok(Err(_)) => {}
                Err(e) => panic!("{src}: {e:?}"),
            }
            let whole = t.as_ref().map(|t| t.eval_bool(&scope));
            assert!(
                matches!(whole, Ok(Ok(b)) if b == slow),
                "{src}: {whole:?} vs {slow}"
            );
        }
    }
}
