//! Field templates: compiled once, evaluated per record to typed values.
//!
//! A template is one of: a constant; a plain path (`{{ source.number }}`), read straight from the
//! JSON record with no template engine involved; one whole expression (`{{ a | with_vat(b) }}`),
//! whose minijinja value keeps its type; or an interpolation (text with `{{ }}` parts), which is
//! always a string. Statements (`{% %}`) are not part of the language.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::{Arc, LazyLock, Mutex};

use minijinja::machinery::{Token, tokenize};
use minijinja::value::{Object, Value as MjValue};
use minijinja::{Environment, Error as MjError, ErrorKind, Expression, State, UndefinedBehavior};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value;

/// Filters built into minijinja that mappings may use.
const BUILTIN_FILTERS: &[&str] = &[
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

/// Words of the expression language that may precede `(` without being calls.
const KEYWORDS: &[&str] = &["and", "or", "not", "if", "else", "in", "is"];

/// Every variable some part of a mapping can see, to tell "not available here" from a typo.
const ALL_VARS: &[&str] = &["source", "target", "body", "key", "item", "index"];

/// Functions templates may call.
pub const FUNCTIONS: &[&str] = &["ref", "lookup", "range", "dict"];

/// The one template environment. Its filters and functions never depend on the mapping pack, so
/// every compiled expression can borrow it for the life of the process.
pub static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    for name in RBTX_FILTERS {
        env.add_filter(
            *name,
            move |v: MjValue, rest: minijinja::value::Rest<MjValue>| {
                let mut args = Vec::with_capacity(rest.0.len() + 1);
                args.push(v);
                args.extend(rest.0);
                rbtx_filter(name, &args)
                    .unwrap_or_else(|| Err(MjError::from(ErrorKind::UnknownFilter)))
            },
        );
    }
    // One full percent-encoding (RFC 3986 unreserved characters kept), so a number with `/`, `#`
    // or spaces is one path segment; minijinja's own filter keeps `/`.
    env.add_filter("urlencode", |v: MjValue| urlencode(v));
    env.add_function("ref", ref_fn);
    env.add_function("lookup", lookup_fn);
    env
});

/// rbtx's own filters, by name: one implementation for templates and for the fast path.
fn rbtx_filter(name: &str, args: &[MjValue]) -> Option<Result<MjValue, MjError>> {
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
    let hundred = Decimal::ONE_HUNDRED;
    Some(match name {
        "add" => arg(1).and_then(|b| dec2(a, b, |x, y| x.checked_add(y))),
        "sub" => arg(1).and_then(|b| dec2(a, b, |x, y| x.checked_sub(y))),
        "mul" => arg(1).and_then(|b| dec2(a, b, |x, y| x.checked_mul(y))),
        "div" => arg(1).and_then(|b| {
            dec2(
                a,
                b,
                |x, y| if y.is_zero() { None } else { x.checked_div(y) },
            )
        }),
        "with_vat" => arg(1).and_then(|r| {
            dec2(a, r, |x, r| {
                x.checked_mul(hundred.checked_add(r)?)?.checked_div(hundred)
            })
        }),
        "without_vat" => arg(1).and_then(|r| {
            dec2(a, r, |x, r| {
                x.checked_mul(hundred)?.checked_div(hundred.checked_add(r)?)
            })
        }),
        "discount" => arg(1).and_then(|p| {
            dec2(a, p, |x, p| {
                x.checked_mul(hundred.checked_sub(p)?)?.checked_div(hundred)
            })
        }),
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
            Ok(from_decimal(x.round_dp_with_strategy(
                dp,
                RoundingStrategy::MidpointAwayFromZero,
            )))
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

fn dec2(
    a: MjValue,
    b: MjValue,
    op: impl Fn(Decimal, Decimal) -> Option<Decimal>,
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
    Ok(from_decimal(r.round_dp_with_strategy(
        MAX_DP,
        RoundingStrategy::MidpointAwayFromZero,
    )))
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
    let d = d.normalize();
    if d.scale() == 0
        && let Ok(i) = i64::try_from(d)
    {
        return MjValue::from(i);
    }
    match d.to_string().parse::<f64>() {
        Ok(f) => MjValue::from(f),
        Err(_) => MjValue::from(d.to_string()),
    }
}

fn urlencode(v: MjValue) -> MjValue {
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

/// What templates reach through `ref()` and `lookup()`: the bindings and API tables, resolved by
/// the engine (or given as fixtures in tests).
pub trait Resolver: Send + Sync {
    /// The target id bound to `entity` `key`, or `None` when that record has not been synced yet.
    fn reference(&self, entity: &str, key: &str) -> Option<Value>;
    /// The value of an API lookup table at `key`; `None` when the key is absent.
    fn lookup(&self, table: &str, key: &str) -> Option<Value>;
}

/// A static lookup table compiled from the mapping.
#[derive(Debug, Clone)]
pub struct StaticTable {
    pub entries: std::collections::HashMap<String, Value>,
    pub default: Option<Value>,
}

/// Per-record state the template functions reach through the context.
pub struct RecordRt {
    pub resolver: Arc<dyn Resolver>,
    pub statics: Arc<std::collections::HashMap<String, StaticTable>>,
    /// References that were asked for but are not bound yet: the engine syncs them first.
    pub missing: Mutex<Vec<(String, String)>>,
}

impl std::fmt::Debug for RecordRt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordRt")
    }
}

impl Object for RecordRt {}

const RT: &str = "__rbtx_rt";

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
            if let Ok(mut m) = rt.missing.lock() {
                let dep = (entity.to_string(), k);
                if !m.contains(&dep) {
                    m.push(dep);
                }
            }
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
    lookup_value(&rt, table, &k)
        .map(|v| mj(&v))
        .map_err(|m| MjError::new(ErrorKind::InvalidOperation, m))
}

/// The value of lookup `table` at `key`: the mapping's static tables first, then the API ones.
pub fn lookup_value(rt: &RecordRt, table: &str, k: &str) -> Result<Value, String> {
    if let Some(t) = rt.statics.get(table) {
        return t
            .entries
            .get(k)
            .or(t.default.as_ref())
            .cloned()
            .ok_or_else(|| format!("lookup `{table}` has no entry for `{k}` and no default"));
    }
    rt.resolver
        .lookup(table, k)
        .ok_or_else(|| format!("lookup `{table}` has no entry for `{k}`"))
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

/// When on, every expression with a fast path is also evaluated by minijinja, and a difference
/// is an error. Tests turn it on to prove the two agree on every mapping case.
static CROSS_CHECK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn set_cross_check(on: bool) {
    CROSS_CHECK.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// One step of a plain path.
#[derive(Debug, Clone)]
pub enum Step {
    Key(String),
    Index(usize),
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
        fast: Option<super::fast::Fast>,
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
}

/// Compiles one template string. `vars` are the variables in scope.
pub fn compile(
    src: &str,
    vars: &[&str],
    uses: &mut Uses,
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
            Piece::Expr(e, at) => match compile_expr(&e, vars, uses) {
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
        fast: super::fast::compile(src),
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
            Some(Token::Pipe) if BUILTIN_FILTERS.contains(name) || RBTX_FILTERS.contains(name) => {}
            Some(Token::Pipe) => {
                let all = BUILTIN_FILTERS.iter().chain(RBTX_FILTERS).copied();
                problems.push(TemplateProblem {
                    kind: ProblemKind::UnknownFilter,
                    message: format!("unknown filter `{name}`"),
                    needle: Some(name.to_string()),
                    offset: None,
                    hint: Some(match crate::spec::diagnostic::did_you_mean(name, all) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("rbtx filters: {}", list(RBTX_FILTERS)),
                    }),
                });
            }
            Some(Token::Dot) | Some(Token::Ident("is")) | Some(Token::Ident("not")) => {}
            _ if KEYWORDS.contains(name) => {}
            _ if matches!(next, Some(Token::ParenOpen)) => {
                if !FUNCTIONS.contains(name) {
                    let is_filter = BUILTIN_FILTERS.contains(name) || RBTX_FILTERS.contains(name);
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

/// A path from a document's root, shared between siblings: each step is one node.
#[derive(Debug)]
pub struct PathNode {
    parent: Path,
    step: Step,
}

pub type Path = Option<Arc<PathNode>>;

fn extend(path: &Path, step: Step) -> Path {
    Some(Arc::new(PathNode {
        parent: path.clone(),
        step,
    }))
}

fn resolve<'v>(root: &'v Value, path: &Path) -> &'v Value {
    match path {
        None => root,
        Some(n) => match (&n.step, resolve(root, &n.parent)) {
            (Step::Key(k), Value::Object(m)) => m.get(k.as_str()).unwrap_or(&Value::Null),
            (Step::Index(i), Value::Array(a)) => a.get(*i).unwrap_or(&Value::Null),
            _ => &Value::Null,
        },
    }
}

/// A JSON value in scope: the shared document it belongs to, and where in it.
#[derive(Clone)]
pub struct Var<'a> {
    pub value: &'a Value,
    root: &'a Arc<Value>,
    path: Path,
}

static NULL_ROOT: LazyLock<Arc<Value>> = LazyLock::new(|| Arc::new(Value::Null));

impl<'a> Var<'a> {
    /// A whole document.
    pub fn root(root: &'a Arc<Value>) -> Var<'a> {
        Var {
            value: root,
            root,
            path: None,
        }
    }

    /// A scalar that belongs to no document (a loop index).
    pub fn scalar(value: &'a Value) -> Var<'a> {
        Var {
            value,
            root: &NULL_ROOT,
            path: None,
        }
    }

    /// A value inside this one, `steps` below it.
    pub fn child(&self, value: &'a Value, steps: impl IntoIterator<Item = Step>) -> Var<'a> {
        let mut path = self.path.clone();
        for s in steps {
            path = extend(&path, s);
        }
        Var {
            value,
            root: self.root,
            path,
        }
    }

    fn view(&self) -> MjValue {
        view(self.value, self.root, &self.path)
    }
}

/// A JSON object or array seen from templates without copying it: the document is shared, and
/// attribute access walks `path` from its root.
#[derive(Debug)]
struct JsonView {
    root: Arc<Value>,
    path: Path,
}

impl JsonView {
    fn node(&self) -> &Value {
        resolve(&self.root, &self.path)
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

/// A JSON value as a template value: scalars directly (whole floats as integers, since JSON does
/// not tell 25 from 25.0), objects and arrays as views.
fn view(v: &Value, root: &Arc<Value>, path: &Path) -> MjValue {
    match v {
        Value::Null => MjValue::from(()),
        Value::Bool(b) => MjValue::from(*b),
        Value::Number(n) => number(n),
        Value::String(s) => MjValue::from(s.as_str()),
        Value::Object(_) | Value::Array(_) => MjValue::from_object(JsonView {
            root: root.clone(),
            path: path.clone(),
        }),
    }
}

impl Object for JsonView {
    fn repr(self: &Arc<Self>) -> minijinja::value::ObjectRepr {
        match self.node() {
            Value::Array(_) => minijinja::value::ObjectRepr::Seq,
            _ => minijinja::value::ObjectRepr::Map,
        }
    }

    fn get_value(self: &Arc<Self>, key: &MjValue) -> Option<MjValue> {
        let (step, child) = match self.node() {
            Value::Object(m) => {
                let k = key.as_str()?;
                (Step::Key(k.to_string()), m.get(k)?)
            }
            Value::Array(a) => {
                let i = key.as_i64()?;
                let i = if i < 0 {
                    a.len().checked_sub(i.unsigned_abs() as usize)?
                } else {
                    i as usize
                };
                (Step::Index(i), a.get(i)?)
            }
            _ => return None,
        };
        if child.is_object() || child.is_array() {
            return Some(MjValue::from_object(JsonView {
                root: self.root.clone(),
                path: extend(&self.path, step),
            }));
        }
        Some(view(child, &self.root, &self.path))
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        match self.node() {
            Value::Object(m) => minijinja::value::Enumerator::Values(
                m.keys().map(|k| MjValue::from(k.as_str())).collect(),
            ),
            Value::Array(a) => minijinja::value::Enumerator::Seq(a.len()),
            _ => minijinja::value::Enumerator::Empty,
        }
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        match self.node() {
            Value::Object(m) => Some(m.len()),
            Value::Array(a) => Some(a.len()),
            _ => Some(0),
        }
    }
}

/// `$['lines'][0]` (a normalized path) → steps. Unknown syntax gives no steps for that part.
pub(crate) fn parse_normalized_path(p: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut chars = p.trim_start_matches('$').chars().peekable();
    while let Some(c) = chars.next() {
        if c != '[' {
            continue;
        }
        if chars.peek() == Some(&'\'') {
            chars.next();
            let mut name = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\'' => break,
                    '\\' => match chars.next() {
                        Some('b') => name.push('\u{8}'),
                        Some('f') => name.push('\u{c}'),
                        Some('n') => name.push('\n'),
                        Some('r') => name.push('\r'),
                        Some('t') => name.push('\t'),
                        Some('u') => {
                            let hex: String = chars.by_ref().take(4).collect();
                            if let Some(ch) =
                                u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32)
                            {
                                name.push(ch);
                            }
                        }
                        Some(other) => name.push(other),
                        None => {}
                    },
                    other => name.push(other),
                }
            }
            steps.push(Step::Key(name));
        } else {
            let digits: String = chars.by_ref().take_while(|c| *c != ']').collect();
            if let Ok(i) = digits.parse() {
                steps.push(Step::Index(i));
            }
            continue;
        }
        // Skip to the closing bracket.
        for c in chars.by_ref() {
            if c == ']' {
                break;
            }
        }
    }
    steps
}

/// The variables of one evaluation, plus the record's runtime. One scope serves every field at one
/// level (the record, or one loop item), so its template context is built once.
pub struct Scope<'a> {
    vars: Vec<(&'a str, Var<'a>)>,
    parent: Option<&'a Scope<'a>>,
    rt: &'a Arc<RecordRt>,
    ctx: std::sync::OnceLock<MjValue>,
}

impl<'a> Scope<'a> {
    pub fn new(vars: Vec<(&'a str, Var<'a>)>, rt: &'a Arc<RecordRt>) -> Scope<'a> {
        Scope {
            vars,
            parent: None,
            rt,
            ctx: std::sync::OnceLock::new(),
        }
    }

    /// This scope plus more variables (a loop item).
    pub fn with<'b>(&'b self, extra: Vec<(&'b str, Var<'b>)>) -> Scope<'b> {
        Scope {
            vars: extra,
            parent: Some(self),
            rt: self.rt,
            ctx: std::sync::OnceLock::new(),
        }
    }

    pub fn rt(&self) -> &Arc<RecordRt> {
        self.rt
    }

    pub fn var(&self, name: &str) -> Option<&Var<'a>> {
        match self.vars.iter().rev().find(|(n, _)| *n == name) {
            Some((_, v)) => Some(v),
            None => self.parent?.var(name),
        }
    }

    fn all_vars(&self, out: &mut std::collections::BTreeMap<&'a str, MjValue>) {
        if let Some(p) = self.parent {
            p.all_vars(out);
        }
        for (n, v) in &self.vars {
            out.insert(n, v.view());
        }
    }

    fn context(&self) -> MjValue {
        self.ctx
            .get_or_init(|| {
                let mut m = std::collections::BTreeMap::new();
                self.all_vars(&mut m);
                m.insert(RT, MjValue::from_dyn_object(self.rt.clone()));
                MjValue::from(m)
            })
            .clone()
    }
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
                    if CROSS_CHECK.load(std::sync::atomic::Ordering::Relaxed) {
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
            Template::Interp(parts) => {
                let mut s = String::new();
                for p in parts {
                    match p {
                        Part::Text(t) => s.push_str(t),
                        Part::Value(t) => match t.eval(scope)? {
                            Out::Absent => {}
                            Out::Value(Value::String(x)) => s.push_str(&x),
                            Out::Value(v) => s.push_str(&text_of(&v)),
                        },
                    }
                }
                Ok(Out::Value(Value::String(s)))
            }
        }
    }

    /// Truthiness, the way Jinja sees it, for `when` conditions.
    pub fn eval_bool(&self, scope: &Scope) -> Result<bool, EvalError> {
        // Read in place where possible: a condition needs no copy of the value it tests.
        match self {
            Template::Path { var, steps } => {
                return Ok(lookup_path(scope, var, steps).is_some_and(truthy));
            }
            Template::Expr { fast: Some(f), .. }
                if !CROSS_CHECK.load(std::sync::atomic::Ordering::Relaxed) =>
            {
                if let Ok(v) = f.eval(scope)? {
                    return Ok(v.truthy());
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

/// A JSON value as text inside an interpolation.
pub fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn lookup_path<'a>(scope: &Scope<'a>, var: &str, steps: &[Step]) -> Option<&'a Value> {
    let mut cur: &'a Value = scope.var(var)?.value;
    for s in steps {
        cur = match (s, cur) {
            (Step::Key(k), Value::Object(m)) => m.get(k)?,
            (Step::Index(i), Value::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn eval_expr(e: &Expression<'static, 'static>, scope: &Scope) -> Result<MjValue, EvalError> {
    let ctx = scope.context();
    e.eval(ctx).map_err(|err| {
        let mut msg = err
            .detail()
            .map(str::to_string)
            .unwrap_or_else(|| err.kind().to_string());
        if let Some(src) = err.template_source() {
            msg = format!("{msg} (in `{{{{ {src} }}}}`)");
        }
        EvalError(msg)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval_str(src: &str) -> MjValue {
        ENV.compile_expression(src)
            .and_then(|e| e.eval(()))
            .unwrap_or(MjValue::UNDEFINED)
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
    fn keys_lose_the_point_zero() {
        assert_eq!(key_text(&MjValue::from(25.0)).as_deref(), Some("25"));
        assert_eq!(key_text(&MjValue::from(12.5)).as_deref(), Some("12.5"));
        assert_eq!(key_text(&MjValue::from("A/1")).as_deref(), Some("A/1"));
    }

    #[test]
    fn normalized_paths_parse() {
        let steps = parse_normalized_path("$['lines'][12]['it\\'s']");
        assert!(
            matches!(&steps[..], [Step::Key(a), Step::Index(12), Step::Key(b)] if a == "lines" && b == "it's")
        );
    }

    #[test]
    fn plain_paths_skip_the_engine() {
        let mut u = Uses::default();
        assert!(matches!(
            compile("{{ source.group.vat_domestic }}", &["source"], &mut u),
            Ok(Template::Path { .. })
        ));
        assert!(matches!(
            compile("{{ source.lines[0] }}", &["source"], &mut u),
            Ok(Template::Path { .. })
        ));
        assert!(matches!(
            compile("{{ source.a or 1 }}", &["source"], &mut u),
            Ok(Template::Expr { .. })
        ));
        assert!(matches!(
            compile("n {{ source.a }}", &["source"], &mut u),
            Ok(Template::Interp(_))
        ));
    }
}
