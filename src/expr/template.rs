//! Field templates: compiled once, evaluated per record to typed values.
//!
//! A template is one of: a constant; a plain path (`{{ source.number }}`), read straight from the
//! JSON record with no template engine involved; one whole expression (`{{ a | with_vat(b) }}`),
//! whose minijinja value keeps its type; or an interpolation (text with `{{ }}` parts), which is
//! always a string. Statements (`{% %}`) are not part of the language.

use std::collections::BTreeSet;

use minijinja::machinery::{Token, tokenize};
use minijinja::{Error as MjError, Expression};
use serde_json::Value;

use super::environment::{ENV, FUNCTIONS, eval_expr};
use super::filters::{known, rbtx_names, suggestions};
use super::native::{Fast, Loop};
use super::scope::{Scope, lookup_path};
use super::value::{EvalError, Out, Step, push_u64, truthy};

/// Words of the expression language that may precede `(` without being calls.
const KEYWORDS: &[&str] = &["and", "or", "not", "if", "else", "in", "is"];

/// Every variable some part of a mapping can see, to tell "not available here" from a typo.
const ALL_VARS: &[&str] = &["source", "target", "body", "key", "item", "index"];

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

/// A compiled template.
pub enum Template {
    Const(Value),
    /// A variable followed by attribute or index steps, read directly from JSON.
    Path {
        var: String,
        steps: Vec<Step>,
    },
    Expr {
        /// The native evaluation, when the expression is within what it supports.
        fast: Option<Fast>,
        expr: Box<Expression<'static, 'static>>,
    },
    Interp(Vec<Part>),
}

pub enum Part {
    Text(String),
    Value(Template),
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Template::Const(v) => write!(f, "Const({v})"),
            Template::Path { var, steps } => write!(f, "Path({var}, {steps:?})"),
            Template::Expr { fast, .. } => write!(f, "Expr(fast: {})", fast.is_some()),
            Template::Interp(p) => write!(f, "Interp({} parts)", p.len()),
        }
    }
}

/// A problem in one template, with the text it is about (to underline it in the YAML).
#[derive(Debug, Clone)]
pub struct TemplateProblem {
    pub kind: ProblemKind,
    pub message: String,
    /// A fragment of the template to point at.
    pub needle: Option<String>,
    /// Roughly where in the template the fragment is (a lower bound), to find the right one.
    pub offset: Option<usize>,
    pub hint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    Syntax,
    UnknownVariable,
    UnknownFunction,
    UnknownFilter,
    /// The first argument of ref()/lookup() is not a quoted name.
    DynamicName,
}

/// Names a template mentions through `ref('…')` and `lookup('…')`, checked against the pack.
#[derive(Debug, Default, Clone)]
pub struct Uses {
    pub refs: BTreeSet<String>,
    pub lookups: BTreeSet<String>,
    /// `(outer, inner)` for each `lookup('outer', lookup('inner', …))`: inner's values are
    /// looked up in outer, so outer must hold them (`rbtx doctor` checks that).
    pub lookup_chains: BTreeSet<(String, String)>,
}

/// Compiles one template string. `vars` are the variables in scope; `lp` says which of them keep
/// their value across the items of the enclosing `$for_each`, if there is one.
pub fn compile(
    src: &str,
    vars: &[&str],
    uses: &mut Uses,
    mut lp: Option<&mut Loop>,
) -> Result<Template, Vec<TemplateProblem>> {
    if !src.contains("{{") && !src.contains("{%") && !src.contains("{#") {
        return Ok(Template::Const(Value::String(src.to_string())));
    }
    let mut problems = Vec::new();
    // Split into text and expression sources using minijinja's own lexer.
    let mut pieces: Vec<Piece> = Vec::new();
    let mut expr_start: Option<usize> = None;
    for tok in tokenize(src, false, Default::default()) {
        match tok {
            Err(e) => {
                problems.push(syntax_problem(src, &e));
                return Err(problems);
            }
            Ok((Token::TemplateData(t), _)) => pieces.push(Piece::Text(t.to_string())),
            Ok((Token::VariableStart, span)) => expr_start = Some(span.end_offset as usize),
            Ok((Token::VariableEnd, span)) => {
                if let Some(s) = expr_start.take() {
                    let e = span.start_offset as usize;
                    pieces.push(Piece::Expr(
                        src.get(s..e).unwrap_or("").trim().to_string(),
                        s,
                    ));
                }
            }
            Ok((Token::BlockStart, _)) => {
                problems.push(TemplateProblem {
                    kind: ProblemKind::Syntax,
                    message: "statements (`{% … %}`) are not supported in mapping templates".into(),
                    needle: Some("{%".into()),
                    offset: None,
                    hint: Some("write one expression, e.g. `{{ a if cond else b }}`, or use `$for_each` / `$when`".into()),
                });
                return Err(problems);
            }
            Ok(_) => {}
        }
    }
    if expr_start.is_some() {
        problems.push(TemplateProblem {
            kind: ProblemKind::Syntax,
            message: "`{{` is never closed".into(),
            needle: Some("{{".into()),
            offset: src.rfind("{{"),
            hint: Some("end the expression with `}}`".into()),
        });
        return Err(problems);
    }
    let mut compiled = Vec::new();
    for p in pieces {
        match p {
            Piece::Text(t) => compiled.push(Part::Text(t)),
            Piece::Expr(e, at) => match compile_expr(&e, vars, uses, lp.as_deref_mut()) {
                Ok(t) => compiled.push(Part::Value(t)),
                Err(ps) => problems.extend(ps.into_iter().map(|mut p| {
                    p.offset = Some(at + p.offset.unwrap_or(0));
                    p
                })),
            },
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    if compiled.len() == 1
        && matches!(compiled[0], Part::Value(_))
        && let Some(Part::Value(t)) = compiled.pop()
    {
        return Ok(t);
    }
    Ok(Template::Interp(compiled))
}

enum Piece {
    Text(String),
    /// The expression and its byte offset in the template.
    Expr(String, usize),
}

fn syntax_problem(src: &str, e: &MjError) -> TemplateProblem {
    let needle = e
        .range()
        .and_then(|r| src.get(r))
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string);
    TemplateProblem {
        kind: ProblemKind::Syntax,
        message: format!(
            "template syntax error: {}",
            e.detail().unwrap_or("invalid template")
        ),
        needle,
        offset: e.range().map(|r| r.start),
        hint: None,
    }
}

/// Compiles one expression (the inside of `{{ }}`).
pub fn compile_expr(
    src: &str,
    vars: &[&str],
    uses: &mut Uses,
    lp: Option<&mut Loop>,
) -> Result<Template, Vec<TemplateProblem>> {
    let mut problems = Vec::new();
    let tokens: Vec<Token> =
        match tokenize(src, true, Default::default()).collect::<Result<Vec<_>, _>>() {
            Ok(t) => t.into_iter().map(|(t, _)| t).collect(),
            Err(e) => return Err(vec![syntax_problem(src, &e)]),
        };
    if tokens.is_empty() {
        return Err(vec![TemplateProblem {
            kind: ProblemKind::Syntax,
            message: "empty expression".into(),
            needle: None,
            offset: None,
            hint: None,
        }]);
    }
    scan_calls(&tokens, uses, &mut problems);
    let expr = match ENV.compile_expression_owned(src.to_string()) {
        Ok(e) => e,
        Err(e) => {
            problems.push(syntax_problem(src, &e));
            return Err(problems);
        }
    };
    let mut undeclared: Vec<String> = expr.undeclared_variables(false).into_iter().collect();
    undeclared.sort();
    let called: Vec<&str> = tokens
        .windows(2)
        .filter_map(|w| match (&w[0], &w[1]) {
            (Token::Ident(n), Token::ParenOpen) => Some(*n),
            _ => None,
        })
        .collect();
    for name in undeclared {
        if vars.contains(&name.as_str())
            || FUNCTIONS.contains(&name.as_str())
            || called.contains(&name.as_str())
            || name == "loop"
        {
            continue;
        }
        let known_elsewhere = ALL_VARS.contains(&name.as_str());
        let hint = crate::spec::diagnostic::did_you_mean(&name, vars.iter().copied())
            .filter(|_| !known_elsewhere)
            .map(|s| format!("did you mean `{s}`?"))
            .unwrap_or_else(|| format!("variables here: {}", list(vars)));
        let message = if known_elsewhere {
            format!("variable `{name}` is not available here")
        } else {
            format!("unknown variable `{name}`")
        };
        problems.push(TemplateProblem {
            kind: ProblemKind::UnknownVariable,
            message,
            needle: Some(name.clone()),
            offset: None,
            hint: Some(hint),
        });
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    if let Some((var, steps)) = plain_path(&tokens) {
        return Ok(Template::Path { var, steps });
    }
    Ok(Template::Expr {
        fast: super::native::compile(src, lp),
        expr: Box::new(expr),
    })
}

fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks function and filter names and records `ref`/`lookup` targets.
fn scan_calls(tokens: &[Token], uses: &mut Uses, problems: &mut Vec<TemplateProblem>) {
    for (i, t) in tokens.iter().enumerate() {
        let Token::Ident(name) = t else { continue };
        let prev = i.checked_sub(1).and_then(|p| tokens.get(p));
        let next = tokens.get(i + 1);
        match prev {
            // A known filter is fine; the arm must match either way, or `| f(x)` would fall
            // through to the function check below.
            Some(Token::Pipe) if known(name) => {}
            Some(Token::Pipe) => {
                problems.push(TemplateProblem {
                    kind: ProblemKind::UnknownFilter,
                    message: format!("unknown filter `{name}`"),
                    needle: Some(name.to_string()),
                    offset: None,
                    hint: Some(
                        match crate::spec::diagnostic::did_you_mean(name, suggestions()) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => {
                                format!("rbtx filters: {}", list(&rbtx_names().collect::<Vec<_>>()))
                            }
                        },
                    ),
                });
            }
            Some(Token::Dot) | Some(Token::Ident("is")) | Some(Token::Ident("not")) => {}
            _ if KEYWORDS.contains(name) => {}
            _ if matches!(next, Some(Token::ParenOpen)) => {
                if !FUNCTIONS.contains(name) {
                    let is_filter = known(name);
                    problems.push(TemplateProblem {
                        kind: ProblemKind::UnknownFunction,
                        message: format!("unknown function `{name}`"),
                        needle: Some(name.to_string()),
                        offset: None,
                        hint: Some(
                            match crate::spec::diagnostic::did_you_mean(
                                name,
                                FUNCTIONS.iter().copied(),
                            ) {
                                _ if is_filter => {
                                    format!("`{name}` is a filter: write `value | {name}`")
                                }
                                Some(s) => format!("did you mean `{s}`?"),
                                None => format!("functions: {}", list(FUNCTIONS)),
                            },
                        ),
                    });
                } else if *name == "ref" || *name == "lookup" {
                    let args = count_args(&tokens[i + 1..]);
                    if args != 2 {
                        problems.push(TemplateProblem {
                            kind: ProblemKind::Syntax,
                            message: format!("`{name}()` takes 2 arguments, found {args}"),
                            needle: Some(name.to_string()),
                            offset: None,
                            hint: Some(format!("`{name}('name', key)`")),
                        });
                        continue;
                    }
                    if *name == "lookup"
                        && let (
                            Some(outer),
                            Some(Token::Comma),
                            Some(Token::Ident("lookup")),
                            Some(inner),
                        ) = (
                            quoted(tokens.get(i + 2)),
                            tokens.get(i + 3),
                            tokens.get(i + 4),
                            quoted(tokens.get(i + 6)),
                        )
                    {
                        uses.lookup_chains.insert((outer, inner));
                    }
                    match tokens.get(i + 2) {
                        Some(Token::Str(s)) => {
                            let set = if *name == "ref" { &mut uses.refs } else { &mut uses.lookups };
                            set.insert(s.to_string());
                        }
                        Some(Token::String(s)) => {
                            let set = if *name == "ref" { &mut uses.refs } else { &mut uses.lookups };
                            set.insert(s.to_string());
                        }
                        _ => problems.push(TemplateProblem {
                            kind: ProblemKind::DynamicName,
                            message: format!("the first argument of `{name}()` must be a quoted name"),
                            needle: Some(name.to_string()),
                            offset: None,
                            hint: Some(format!(
                                "write `{name}('name', key)` so `validate` can check the name; branch with `a if cond else b` to choose between two"
                            )),
                        }),
                    }
                }
            }
            _ => {}
        }
    }
}

/// The text of a quoted string token.
fn quoted(t: Option<&Token>) -> Option<String> {
    match t {
        Some(Token::Str(s)) => Some(s.to_string()),
        Some(Token::String(s)) => Some(s.to_string()),
        _ => None,
    }
}

/// Arguments of the call whose `(` starts `tokens`.
fn count_args(tokens: &[Token]) -> usize {
    let mut depth = 0usize;
    let mut args = 0usize;
    let mut empty = true;
    for t in tokens {
        match t {
            Token::ParenOpen | Token::BracketOpen | Token::BraceOpen => {
                if depth > 0 && empty {
                    empty = false;
                }
                depth += 1;
            }
            Token::ParenClose | Token::BracketClose | Token::BraceClose => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return if empty { 0 } else { args + 1 };
                }
            }
            Token::Comma if depth == 1 => args += 1,
            _ if depth >= 1 => empty = false,
            _ => {}
        }
    }
    args + usize::from(!empty)
}

/// `a.b[0]["c"]` → a direct JSON lookup.
fn plain_path(tokens: &[Token]) -> Option<(String, Vec<Step>)> {
    let mut it = tokens.iter().peekable();
    let Some(Token::Ident(var)) = it.next() else {
        return None;
    };
    if matches!(*var, "true" | "false" | "none" | "True" | "False" | "None") {
        return None;
    }
    let mut steps = Vec::new();
    while let Some(t) = it.next() {
        match t {
            Token::Dot => match it.next() {
                Some(Token::Ident(k)) => steps.push(Step::Key(k.to_string())),
                Some(Token::Int(i)) => steps.push(Step::Index(usize::try_from(*i).ok()?)),
                _ => return None,
            },
            Token::BracketOpen => {
                match it.next() {
                    Some(Token::Str(k)) => steps.push(Step::Key(k.to_string())),
                    Some(Token::String(k)) => steps.push(Step::Key(k.to_string())),
                    Some(Token::Int(i)) => steps.push(Step::Index(usize::try_from(*i).ok()?)),
                    _ => return None,
                }
                if !matches!(it.next(), Some(Token::BracketClose)) {
                    return None;
                }
            }
            _ => return None,
        }
    }
    Some((var.to_string(), steps))
}

impl Template {
    pub fn eval(&self, scope: &Scope) -> Result<Out, EvalError> {
        match self {
            Template::Const(v) => Ok(Out::Value(v.clone())),
            Template::Path { var, steps } => Ok(match lookup_path(scope, var, steps) {
                Some(Value::Null) | None => Out::Absent,
                Some(v) => Out::Value(v.clone()),
            }),
            Template::Expr { fast, expr } => {
                if let Some(f) = fast
                    && let Ok(v) = f.eval(scope)?
                {
                    let out = match v.into_json() {
                        None | Some(Value::Null) => Out::Absent,
                        Some(v) => Out::Value(v),
                    };
                    if cross_check() {
                        let slow = slow_eval(expr, scope)?;
                        if !same_json(&slow, &out) {
                            return Err(EvalError(format!(
                                "fast path differs from minijinja: {out:?} vs {slow:?}"
                            )));
                        }
                    }
                    return Ok(out);
                }
                slow_eval(expr, scope)
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
            } if !cross_check() => match f.write_json(scope, out)? {
                Ok(written) => Ok(written),
                Err(_) => match slow_eval(expr, scope)? {
                    Out::Absent => Ok(false),
                    Out::Value(v) => write(out, &v),
                },
            },
            _ => match self.eval(scope)? {
                Out::Absent => Ok(false),
                Out::Value(v) => write(out, &v),
            },
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

    /// Whether the template reads variable `var`.
    pub fn reads(&self, var: &str) -> bool {
        match self {
            Template::Const(_) => false,
            Template::Path { var: v, .. } => v == var,
            Template::Expr { expr, .. } => expr.undeclared_variables(false).contains(var),
            Template::Interp(parts) => parts.iter().any(|p| match p {
                Part::Text(_) => false,
                Part::Value(t) => t.reads(var),
            }),
        }
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
            } => {
                if let Ok(b) = f.test(scope)? {
                    if cross_check() {
                        let slow = slow_eval(expr, scope)?;
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

fn slow_eval(e: &Expression<'static, 'static>, scope: &Scope) -> Result<Out, EvalError> {
    let v = eval_expr(e, scope)?;
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

/// A JSON value as text inside an interpolation.
/// Appends [`text_of`] `v`; `false` (nothing written) for null.
fn push_json_text(out: &mut String, v: &Value) -> bool {
    match v {
        Value::Null => return false,
        Value::String(s) => out.push_str(s),
        Value::Number(n) if n.is_u64() => push_u64(out, n.as_u64().unwrap_or_default()),
        Value::Number(n) if n.is_i64() => {
            let i = n.as_i64().unwrap_or_default();
            if i < 0 {
                out.push('-');
            }
            push_u64(out, i.unsigned_abs());
        }
        other => out.push_str(&other.to_string()),
    }
    true
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::expr::scope::{RecordRt, Resolver, Var};

    struct NoLookups;

    /// A record's runtime with no lookups, references or static tables.
    fn record_rt() -> Arc<RecordRt> {
        Arc::new(RecordRt {
            resolver: Arc::new(NoLookups),
            statics: Arc::new(Vec::new()),
            missing: Mutex::new(Vec::new()),
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
            }) = &t
            else {
                panic!("{src} does not compile to the fast path");
            };
            if matches!(f.eval(&scope), Ok(Ok(_))) {
                native += 1;
            }
            let (fast, slow) = (t.as_ref().map(|t| t.eval(&scope)), slow_eval(expr, &scope));
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

    #[test]
    fn conditions_agree_with_minijinja() {
        let source = Arc::new(serde_json::json!({
            "s": "x", "empty": "", "n": 3, "zero": 0, "t": true, "f": false, "nul": null,
            "list": [], "items": [1, 2], "obj": {"a": 1}
        }));
        let cases = [
            "source.n is number and source.s",
            "source.s is number and source.s",
            "not source.missing",
            "not source.empty",
            "source.s == 'x' or source.n > 3",
            "source.n >= 3 and source.zero < 1",
            "source.nul is none and source.missing is undefined",
            "source.s is startingwith('x') and not source.f",
            "source.list or source.obj",
            "source.items and source.empty",
            "source.t if source.zero else source.n",
            "source.s in 'xyz' and 2 in source.items",
            "source.obj == source.obj",
            "source.n is string or source.s is defined",
        ];
        let rt = record_rt();
        let vars = [("source", Var::root(&source))];
        let scope = Scope::new(&vars, &rt);
        for src in cases {
            let t = compile_expr(src, &["source"], &mut Uses::default(), None);
            let Ok(Template::Expr {
                fast: Some(f),
                expr,
            }) = &t
            else {
                panic!("{src} does not compile to the fast path");
            };
            let slow = slow_eval(expr, &scope).map(|o| matches!(&o, Out::Value(v) if truthy(v)));
            match (f.test(&scope), slow) {
                (Ok(Ok(a)), Ok(b)) => assert_eq!(a, b, "{src}"),
                (Ok(Err(_)), _) => {}
                (fast, slow) => panic!("{src}: {:?} vs {slow:?}", fast.map(|r| r.is_ok())),
            }
        }
    }

    #[test]
    fn plain_paths_skip_the_engine() {
        let mut u = Uses::default();
        assert!(matches!(
            compile("{{ source.group.vat_domestic }}", &["source"], &mut u, None),
            Ok(Template::Path { .. })
        ));
        assert!(matches!(
            compile("{{ source.lines[0] }}", &["source"], &mut u, None),
            Ok(Template::Path { .. })
        ));
        assert!(matches!(
            compile("{{ source.a or 1 }}", &["source"], &mut u, None),
            Ok(Template::Expr { .. })
        ));
        assert!(matches!(
            compile("n {{ source.a }}", &["source"], &mut u, None),
            Ok(Template::Interp(_))
        ));
    }
}
