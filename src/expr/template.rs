//! Field templates, compiled once (evaluated per record by `render`).
//!
//! A template is one of: a constant; a plain path (`{{ source.number }}`), read straight from the
//! JSON record with no template engine involved; one whole expression (`{{ a | with_vat(b) }}`),
//! whose minijinja value keeps its type; or an interpolation (text with `{{ }}` parts), which is
//! always a string. Statements (`{% %}`) are not part of the language.

use std::collections::BTreeSet;

use minijinja::machinery::{Token, tokenize};
use minijinja::{Error as MjError, Expression};
use serde_json::Value;

use super::environment::{ENV, FUNCTIONS, TEXT_FN, concat_by_the_text_rule};
use super::filters::{known, rbtx_names, suggestions};
use super::native::{Fast, Loop};
use super::value::Step;

/// Words of the expression language that may precede `(` without being calls.
const KEYWORDS: &[&str] = &["and", "or", "not", "if", "else", "in", "is"];

/// Every variable some part of a mapping can see, to tell "not available here" from a typo.
const ALL_VARS: &[&str] = &["source", "target", "body", "key", "item", "index"];

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
        /// The expression as written, when minijinja compiled another form of it (each piece of
        /// a `~` wrapped in the text rule): error messages quote what the mapping says.
        written: Option<Box<str>>,
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
    /// Entities named by `bound()`: checked like references, never synced first.
    pub bound: BTreeSet<String>,
    pub lookups: BTreeSet<String>,
    /// `(outer, inner)` for each `lookup('outer', lookup('inner', …))`: inner's values are
    /// looked up in outer, so outer must hold them (`rbtx doctor` checks that).
    pub lookup_chains: BTreeSet<(String, String)>,
    /// Every dotted path the template reads (`source.group.vat_domestic`, `line.name`), checked
    /// against the shape of the record it reads.
    pub paths: BTreeSet<String>,
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
    let rewritten = concat_by_the_text_rule(src);
    let expr = match ENV.compile_expression_owned(rewritten.clone().unwrap_or_else(|| src.into())) {
        Ok(e) => e,
        Err(e) => {
            problems.push(syntax_problem(src, &e));
            return Err(problems);
        }
    };
    uses.paths.extend(expr.undeclared_variables(true));
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
            || name == TEXT_FN
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
        fast: native_on()
            .then(|| super::native::compile(src, lp))
            .flatten(),
        expr: Box::new(expr),
        written: rewritten.map(|_| src.into()),
    })
}

/// The variable that turns the native evaluator off, so every expression is computed by
/// minijinja: to bisect a difference between the two.
pub const NATIVE_SWITCH: &str = "RBTX_NATIVE_EVAL";

/// Whether expressions get a native evaluation: unless `RBTX_NATIVE_EVAL=0`. Read once.
pub fn native_on() -> bool {
    static ON: std::sync::LazyLock<bool> =
        std::sync::LazyLock::new(|| std::env::var(NATIVE_SWITCH).map_or(true, |v| v.trim() != "0"));
    *ON
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
                } else if *name == "ref" || *name == "lookup" || *name == "bound" {
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
                            let set = match *name { "ref" => &mut uses.refs, "bound" => &mut uses.bound, _ => &mut uses.lookups };
                            set.insert(s.to_string());
                        }
                        Some(Token::String(s)) => {
                            let set = match *name { "ref" => &mut uses.refs, "bound" => &mut uses.bound, _ => &mut uses.lookups };
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
    /// Whether the template reads variable `var`.
    /// The first-level fields of `var` this template reads (`target.postalAddress.id` reads
    /// `postalAddress`); `var` read whole adds `""`.
    pub fn fields_read(&self, var: &str, out: &mut std::collections::BTreeSet<String>) {
        match self {
            Template::Const(_) => {}
            Template::Path { var: v, steps } if v == var => match steps.first() {
                Some(Step::Key(k)) => {
                    out.insert(k.clone());
                }
                _ => {
                    out.insert(String::new());
                }
            },
            Template::Path { .. } => {}
            Template::Expr { expr, .. } => {
                for name in expr.undeclared_variables(true) {
                    let mut parts = name.split('.');
                    if parts.next() == Some(var) {
                        out.insert(parts.next().unwrap_or_default().to_string());
                    }
                }
            }
            Template::Interp(parts) => {
                for p in parts {
                    if let Part::Value(t) = p {
                        t.fields_read(var, out);
                    }
                }
            }
        }
    }

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
}

#[cfg(test)]
mod tests {
    use super::*;

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
