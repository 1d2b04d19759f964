//! The minijinja environment every template is compiled in: rbtx's filters from the registry,
//! and the functions `ref`, `bound` and `lookup`. Also filters called by name, the way the native
//! evaluator calls the ones it does not compute itself.

use std::sync::{Arc, LazyLock};

use minijinja::machinery::ast::{BinOpKind, CallArg, Expr};
use minijinja::machinery::parse_expr;
use minijinja::value::{Rest, Value as MjValue};
use minijinja::{Environment, Error as MjError, ErrorKind, Expression, State, UndefinedBehavior};

use super::filters::{FILTERS, Imp, apply, apply_def, common_builtin};
use super::scope::{RT, RecordRt, Scope, lookup_in};
use super::value::{EvalError, key_text, mj, push_text};

/// Functions templates may call.
pub const FUNCTIONS: &[&str] = &["ref", "bound", "lookup", "range", "dict"];

/// The one template environment. Its filters and functions never depend on the mapping pack, so
/// every compiled expression can borrow it for the life of the process.
pub static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    for def in FILTERS {
        match def.imp {
            Imp::Builtin | Imp::Alias(_) => {}
            // `urlencode` replaces minijinja's, which keeps `/`: a number with `/`, `#` or
            // spaces must stay one path segment.
            Imp::Unary(f) => env.add_filter(def.name, move |v: MjValue| f(v)),
            Imp::Decimal(_) | Imp::Rbtx(_) => {
                env.add_filter(def.name, move |v: MjValue, rest: Rest<MjValue>| {
                    let mut args = Vec::with_capacity(rest.0.len() + 1);
                    args.push(v);
                    args.extend(rest.0);
                    apply_def(def, &args)
                        .unwrap_or_else(|| Err(MjError::from(ErrorKind::UnknownFilter)))
                })
            }
        }
    }
    env.add_function("ref", ref_fn);
    env.add_function("bound", bound_fn);
    env.add_function("lookup", lookup_fn);
    env.add_function(TEXT_FN, text_fn);
    env
});

/// What [`concat_by_the_text_rule`] wraps each piece of a `~` in. Not in [`FUNCTIONS`], so a
/// mapping cannot call it.
pub(crate) const TEXT_FN: &str = "__text";

/// A value as text by the one text rule (`value::push_text`), for `~`.
fn text_fn(v: MjValue) -> Result<MjValue, MjError> {
    let mut out = String::new();
    if !v.is_undefined() {
        let json = serde_json::to_value(&v).map_err(|e| {
            MjError::new(
                ErrorKind::InvalidOperation,
                format!("`{v}` is not text: {e}"),
            )
        })?;
        push_text(&mut out, &json);
    }
    Ok(MjValue::from(out))
}

/// `src` with each piece of every `~` wrapped in [`TEXT_FN`], or `None` when it has no `~`.
/// minijinja's `~` writes `True`, `None` and `25.0`; wrapped, its pieces follow the text rule
/// that interpolation and the native evaluator follow, so the three write the same text.
pub(crate) fn concat_by_the_text_rule(src: &str) -> Option<String> {
    let ast = parse_expr(src).ok()?;
    let mut spans = Vec::new();
    concat_pieces(&ast, &mut spans);
    if spans.is_empty() {
        return None;
    }
    // Each position gets its closing parentheses before its openings: `a~b` has the end of `a`
    // and the start of `b` at one place.
    let mut marks: Vec<(usize, bool)> = spans
        .iter()
        .flat_map(|&(start, end)| [(start, true), (end, false)])
        .collect();
    marks.sort_by_key(|&(at, open)| (at, open));
    let mut out = String::with_capacity(src.len() + spans.len() * (TEXT_FN.len() + 2));
    let mut done = 0;
    for (at, open) in marks {
        out.push_str(src.get(done..at)?);
        done = at;
        if open {
            out.push_str(TEXT_FN);
            out.push('(');
        } else {
            out.push(')');
        }
    }
    out.push_str(src.get(done..)?);
    Some(out)
}

/// The byte spans of the pieces of every `~` in `e` that are neither a `~` nor a string
/// constant (those are text already).
fn concat_pieces(e: &Expr, out: &mut Vec<(usize, usize)>) {
    if let Expr::BinOp(b) = e
        && matches!(b.op, BinOpKind::Concat)
    {
        for piece in [&b.left, &b.right] {
            let text = match piece {
                Expr::BinOp(p) => matches!(p.op, BinOpKind::Concat),
                Expr::Const(c) => c.value.as_str().is_some(),
                _ => false,
            };
            if !text {
                out.push(extent(piece));
            }
        }
    }
    for c in children(e) {
        concat_pieces(c, out);
    }
}

/// Where `e` starts and ends in the source. A node's own span leaves out what comes before its
/// operator (`x | f` spans `f`, `x.y` spans `.y`), so the extent takes in every child's.
fn extent(e: &Expr) -> (usize, usize) {
    let span = e.span();
    children(e).into_iter().map(extent).fold(
        (span.start_offset as usize, span.end_offset as usize),
        |(a, b), (c, d)| (a.min(c), b.max(d)),
    )
}

/// The expressions `e` is made of.
fn children<'e, 'a>(e: &'e Expr<'a>) -> Vec<&'e Expr<'a>> {
    fn args<'e, 'a>(args: &'e [CallArg<'a>], out: &mut Vec<&'e Expr<'a>>) {
        out.extend(args.iter().map(|a| match a {
            CallArg::Pos(e)
            | CallArg::Kwarg(_, e)
            | CallArg::PosSplat(e)
            | CallArg::KwargSplat(e) => e,
        }));
    }
    let mut out = Vec::new();
    match e {
        Expr::Var(_) | Expr::Const(_) => {}
        Expr::Slice(s) => {
            out.push(&s.expr);
            out.extend([&s.start, &s.stop, &s.step].into_iter().flatten());
        }
        Expr::UnaryOp(u) => out.push(&u.expr),
        Expr::BinOp(b) => out.extend([&b.left, &b.right]),
        Expr::Compare(c) => {
            out.push(&c.expr);
            out.extend(c.ops.iter().map(|op| &op.expr));
        }
        Expr::IfExpr(i) => {
            out.extend([&i.test_expr, &i.true_expr]);
            out.extend(&i.false_expr);
        }
        Expr::Filter(f) => {
            out.extend(&f.expr);
            args(&f.args, &mut out);
        }
        Expr::Test(t) => {
            out.push(&t.expr);
            args(&t.args, &mut out);
        }
        Expr::GetAttr(g) => out.push(&g.expr),
        Expr::GetItem(g) => out.extend([&g.expr, &g.subscript_expr]),
        Expr::Call(c) => {
            out.push(&c.expr);
            args(&c.args, &mut out);
        }
        Expr::List(l) => out.extend(&l.items),
        Expr::Tuple(t) => out.extend(&t.items),
        Expr::Map(m) => out.extend(m.keys.iter().chain(&m.values)),
    }
    out
}

fn rt(state: &State) -> Result<Arc<RecordRt>, MjError> {
    state
        .lookup(RT)
        .and_then(|v| v.downcast_object::<RecordRt>())
        .ok_or_else(|| {
            MjError::new(
                ErrorKind::InvalidOperation,
                "ref() and lookup() are only available inside a mapping",
            )
        })
}

fn ref_fn(state: &State, entity: &str, key: MjValue) -> Result<MjValue, MjError> {
    let rt = rt(state)?;
    let Some(k) = key_text(&key) else {
        return Ok(MjValue::UNDEFINED);
    };
    match rt.resolver.reference(entity, &k) {
        Some(id) => Ok(mj(&id)),
        None => {
            // Note it and go on, so one pass finds every record that must be synced first.
            rt.note_missing(entity, k);
            Ok(MjValue::UNDEFINED)
        }
    }
}

/// `bound('entity', key)`: the binding of a record rbtx delivered, `{ id, body }`, or undefined
/// when it has none. Unlike `ref()` it never syncs the record: a mapping that needs an earlier
/// delivery (a credit note's invoice) says what to do when there was none (`required(…)`).
fn bound_fn(state: &State, entity: &str, key: MjValue) -> Result<MjValue, MjError> {
    let rt = rt(state)?;
    let Some(k) = key_text(&key) else {
        return Ok(MjValue::UNDEFINED);
    };
    match rt.resolver.bound(entity, &k) {
        Some(Some(binding)) => Ok(mj(&binding)),
        Some(None) => Ok(MjValue::UNDEFINED),
        None => {
            // The runtime reads the binding, then renders again.
            rt.note_unlooked(entity, k);
            Ok(MjValue::UNDEFINED)
        }
    }
}

fn lookup_fn(state: &State, table: &str, key: MjValue) -> Result<MjValue, MjError> {
    let rt = rt(state)?;
    let Some(k) = key_text(&key) else {
        // No key, no value: the field is left out.
        return Ok(MjValue::UNDEFINED);
    };
    lookup_in(&rt, table, &k)
        .map(|v| mj(&v))
        .map_err(|m| MjError::new(ErrorKind::InvalidOperation, m))
}

/// Applies a filter by name, with the same implementation templates use.
pub fn call_filter(name: &str, args: &[MjValue]) -> Result<MjValue, String> {
    let detail = |e: MjError| {
        e.detail()
            .map(str::to_string)
            .unwrap_or_else(|| e.to_string())
    };
    if let Some(r) = apply(name, args) {
        return r.map_err(detail);
    }
    if let Some(v) = common_builtin(name, args) {
        return Ok(v);
    }
    let mut state = ENV.empty_state();
    state.apply_filter(name, args).map_err(detail)
}

/// Evaluates a compiled expression by minijinja, on the variables of `scope`.
/// `written` is the expression as the mapping writes it, for messages, when minijinja compiled
/// another form of it ([`concat_by_the_text_rule`]).
pub(crate) fn eval_expr(
    e: &Expression<'static, 'static>,
    scope: &Scope,
    written: Option<&str>,
) -> Result<MjValue, EvalError> {
    let ctx = scope.context();
    e.eval(ctx).map_err(|err| {
        let mut msg = err
            .detail()
            .map(str::to_string)
            .unwrap_or_else(|| err.kind().to_string());
        if let Some(src) = written.or(err.template_source()) {
            msg = format!("{msg} (in `{{{{ {src} }}}}`)");
        }
        EvalError(msg)
    })
}

#[cfg(test)]
mod tests {
    use serde_json::Number;

    use super::*;
    use crate::expr::filters::{Filter, decimal_filter_json};
    use crate::expr::value::number;

    fn eval_str(src: &str) -> MjValue {
        ENV.compile_expression(src)
            .and_then(|e| e.eval(()))
            .unwrap_or(MjValue::UNDEFINED)
    }

    #[test]
    fn minijinja_has_every_filter_the_registry_gives_it() {
        for def in FILTERS {
            let mut state = ENV.empty_state();
            let args = [MjValue::from("x"), MjValue::from(1)];
            if let Err(e) = state.apply_filter(def.name, &args) {
                assert_ne!(e.kind(), ErrorKind::UnknownFilter, "{}", def.name);
            }
        }
    }

    #[test]
    fn each_piece_of_a_concatenation_is_wrapped_whole() {
        for (src, want) in [
            (
                "'a' ~ (x | round_to(2))",
                Some("'a' ~ (__text(x | round_to(2)))"),
            ),
            (
                "'a' ~ x | f(1, 2) ~ 'b'",
                Some("'a' ~ __text(x | f(1, 2)) ~ 'b'"),
            ),
            ("'a' ~ x.y[0]", Some("'a' ~ __text(x.y[0])")),
            ("'a'~x~'b'", Some("'a'~__text(x)~'b'")),
            ("'a' ~ x is number", Some("'a' ~ __text(x is number)")),
            ("f('a' ~ x) ~ 'b'", Some("__text(f('a' ~ __text(x))) ~ 'b'")),
            ("'a' ~ 'b'", None),
            ("x | upper", None),
        ] {
            assert_eq!(concat_by_the_text_rule(src).as_deref(), want, "{src}");
        }
    }

    #[test]
    fn decimal_filters_do_not_drift() {
        assert_eq!(eval_str("0.1 | add(0.2)"), MjValue::from(0.3));
        assert_eq!(eval_str("149.0 | with_vat(25)"), MjValue::from(186.25));
        assert_eq!(eval_str("186.25 | without_vat(25)"), MjValue::from(149));
        assert_eq!(
            eval_str("99.99 | discount(12.5) | round_to(2)"),
            MjValue::from(87.49)
        );
        assert_eq!(eval_str("'1 234' | digits"), MjValue::from("1234"));
        assert_eq!(
            eval_str("'HK 30/45#ø' | urlencode"),
            MjValue::from("HK%2030%2F45%23%C3%B8")
        );
    }

    #[test]
    fn required_passes_a_value_and_fails_on_none_with_its_message() {
        assert_eq!(eval_str("0 | required('no rate')"), MjValue::from(0));
        assert_eq!(eval_str("'' | required('no rate')"), MjValue::from(""));
        for src in [
            "none | required('no rate')",
            "nothing.here | required('no rate')",
        ] {
            let err = ENV
                .compile_expression(src)
                .and_then(|e| e.eval(()))
                .expect_err(src);
            assert_eq!(err.detail(), Some("no rate"), "{src}");
        }
    }

    #[test]
    fn dates_add_days_across_months_and_leap_years() {
        assert_eq!(
            eval_str("'2024-02-28' | add_days(1)"),
            MjValue::from("2024-02-29")
        );
        assert_eq!(
            eval_str("'2025-12-31T10:00:00+01:00' | add_days(1)"),
            MjValue::from("2026-01-01")
        );
        assert_eq!(
            eval_str("'2025-03-01' | add_days(-1)"),
            MjValue::from("2025-02-28")
        );
    }

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
                    let args = [number(&xj), number(&yj)];
                    let slow = call_filter(name, &args)
                        .ok()
                        .and_then(|v| serde_json::to_value(&v).ok());
                    // The shortcut may leave a case to the general path, never differ from it.
                    let Some(f) = Filter::parse(name) else {
                        panic!("{name} is not a filter");
                    };
                    if let Some(fast) = decimal_filter_json(f, &xj, &yj) {
                        assert_eq!(Some(&fast), slow.as_ref(), "{x} | {name}({y})");
                        shortcuts += 1;
                    }
                }
            }
        }
        assert!(shortcuts > 300, "only {shortcuts} cases took the shortcut");
    }
}
