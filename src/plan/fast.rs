//! A native evaluator for the expressions mappings use most (paths, `or`/`and`, `~`, comparisons,
//! `if`/`else`, `ref()`, `lookup()` and the common filters), reading JSON in place. Anything else,
//! at compile time or at run time, falls back to minijinja, whose semantics this follows; a test
//! runs every mapping case through both and compares (`set_cross_check`).

use std::borrow::Cow;
use std::sync::Arc;

use minijinja::machinery::ast::{BinOpKind, CallArg, CompareOpKind, Expr, UnaryOpKind};
use minijinja::machinery::parse_expr;
use minijinja::value::Value as MjValue;
use serde_json::Value;

use super::filters::decimal_filter_json;
use super::scope::field;
use super::template::{
    EvalError, RecordRt, Scope, Step, call_filter, digits, key_text_json, lookup_in, lookup_path,
    push_u64, truthy,
};

/// A compiled fast expression.
#[derive(Debug)]
pub enum Fast {
    Const(Value),
    Path {
        var: String,
        steps: Vec<Step>,
    },
    Attr(Box<Fast>, Step),
    Slice(Box<Fast>, Option<i64>, Option<i64>),
    Not(Box<Fast>),
    And(Box<Fast>, Box<Fast>),
    Or(Box<Fast>, Box<Fast>),
    Concat(Box<Fast>, Box<Fast>),
    Cmp(Box<Fast>, Cmp, Box<Fast>),
    If(Box<Fast>, Box<Fast>, Option<Box<Fast>>),
    Ref(String, Box<Fast>),
    Lookup(String, Box<Fast>),
    Filter(Filter, Box<Fast>, Vec<Fast>),
    Test(Test, Box<Fast>, Vec<Fast>),
    List(Vec<Fast>),
    /// `list | selectattr(attr, 'equalto', want) | first`: the first item whose `attr` is the
    /// string `want`, found without building the list in between.
    FirstWhere(Box<Fast>, String, String),
    /// A part that is the same for every item of the enclosing `$for_each`: computed for the
    /// first item that needs it, then read from the loop's memo slot.
    Memo(usize, Box<Fast>),
}

#[derive(Debug, Clone, Copy)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
    In,
    NotIn,
}

/// The filters evaluated natively (the rest go to minijinja), known by number rather than by
/// name: matching a name against each filter's cost more than many filters themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Default,
    Trim,
    Upper,
    Lower,
    BlankToNone,
    Digits,
    RoundTo,
    WithVat,
    WithoutVat,
    Discount,
    Add,
    Sub,
    Mul,
    Div,
    AddDays,
    Urlencode,
    Int,
    String,
    Replace,
    Split,
    First,
    Join,
    Select,
    Map,
    Selectattr,
    Length,
    List,
}

impl Filter {
    fn parse(name: &str) -> Option<Filter> {
        Some(match name {
            "default" | "d" => Filter::Default,
            "trim" => Filter::Trim,
            "upper" => Filter::Upper,
            "lower" => Filter::Lower,
            "blank_to_none" => Filter::BlankToNone,
            "digits" => Filter::Digits,
            "round_to" => Filter::RoundTo,
            "with_vat" => Filter::WithVat,
            "without_vat" => Filter::WithoutVat,
            "discount" => Filter::Discount,
            "add" => Filter::Add,
            "sub" => Filter::Sub,
            "mul" => Filter::Mul,
            "div" => Filter::Div,
            "add_days" => Filter::AddDays,
            "urlencode" => Filter::Urlencode,
            "int" => Filter::Int,
            "string" => Filter::String,
            "replace" => Filter::Replace,
            "split" => Filter::Split,
            "first" => Filter::First,
            "join" => Filter::Join,
            "select" => Filter::Select,
            "map" => Filter::Map,
            "selectattr" => Filter::Selectattr,
            "length" => Filter::Length,
            "list" => Filter::List,
            _ => return None,
        })
    }

    /// The name minijinja knows the filter by.
    pub fn name(self) -> &'static str {
        match self {
            Filter::Default => "default",
            Filter::Trim => "trim",
            Filter::Upper => "upper",
            Filter::Lower => "lower",
            Filter::BlankToNone => "blank_to_none",
            Filter::Digits => "digits",
            Filter::RoundTo => "round_to",
            Filter::WithVat => "with_vat",
            Filter::WithoutVat => "without_vat",
            Filter::Discount => "discount",
            Filter::Add => "add",
            Filter::Sub => "sub",
            Filter::Mul => "mul",
            Filter::Div => "div",
            Filter::AddDays => "add_days",
            Filter::Urlencode => "urlencode",
            Filter::Int => "int",
            Filter::String => "string",
            Filter::Replace => "replace",
            Filter::Split => "split",
            Filter::First => "first",
            Filter::Join => "join",
            Filter::Select => "select",
            Filter::Map => "map",
            Filter::Selectattr => "selectattr",
            Filter::Length => "length",
            Filter::List => "list",
        }
    }

    /// The filters that take a list; on anything the fast path does not know they go to
    /// minijinja, like filters on lists always did.
    fn takes_list(self) -> bool {
        use Filter::*;
        matches!(
            self,
            First | Join | Select | Map | Selectattr | Length | List | Default
        )
    }
}

/// The tests evaluated natively, known by number like [`Filter`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Test {
    Number,
    None,
    Defined,
    Undefined,
    String,
    StartingWith,
    EndingWith,
}

impl Test {
    fn parse(name: &str) -> Option<Test> {
        Some(match name {
            "number" => Test::Number,
            "none" => Test::None,
            "defined" => Test::Defined,
            "undefined" => Test::Undefined,
            "string" => Test::String,
            "startingwith" => Test::StartingWith,
            "endingwith" => Test::EndingWith,
            _ => return None,
        })
    }
}

/// An expression's place inside a `$for_each`: the variables that keep their value from one item
/// to the next, and the loop's memo slots handed out so far.
pub struct Loop<'v> {
    pub invariant: Vec<&'v str>,
    pub slots: usize,
}

/// Compiles `src` if every part of it is supported. Inside a loop, the parts that do not depend
/// on the item are memoized.
pub fn compile(src: &str, lp: Option<&mut Loop>) -> Option<Fast> {
    let ast = parse_expr(src).ok()?;
    let f = build(&ast)?;
    Some(match lp {
        Some(lp) => hoist(f, lp),
        None => f,
    })
}

/// Wraps the largest parts of `f` that read only loop-invariant variables in [`Fast::Memo`].
/// Constants and plain paths are left alone: reading them costs no more than the memo.
fn hoist(f: Fast, lp: &mut Loop) -> Fast {
    let mut vars = Vec::new();
    f.vars(&mut vars);
    let composite = !matches!(f, Fast::Const(_) | Fast::Path { .. });
    if composite && !vars.is_empty() && vars.iter().all(|v| lp.invariant.contains(v)) {
        lp.slots += 1;
        return Fast::Memo(lp.slots - 1, Box::new(f));
    }
    let mut h = |b: Box<Fast>| Box::new(hoist(*b, lp));
    match f {
        Fast::Attr(b, s) => Fast::Attr(h(b), s),
        Fast::Slice(b, x, y) => Fast::Slice(h(b), x, y),
        Fast::Not(b) => Fast::Not(h(b)),
        Fast::And(l, r) => Fast::And(h(l), h(r)),
        Fast::Or(l, r) => Fast::Or(h(l), h(r)),
        Fast::Concat(l, r) => Fast::Concat(h(l), h(r)),
        Fast::Cmp(l, op, r) => Fast::Cmp(h(l), op, h(r)),
        Fast::If(t, a, b) => Fast::If(h(t), h(a), b.map(h)),
        Fast::Ref(e, k) => Fast::Ref(e, h(k)),
        Fast::FirstWhere(l, a, w) => Fast::FirstWhere(h(l), a, w),
        Fast::Lookup(t, k) => Fast::Lookup(t, h(k)),
        Fast::Filter(n, s, args) => {
            let s = h(s);
            Fast::Filter(n, s, args.into_iter().map(|a| hoist(a, lp)).collect())
        }
        Fast::Test(n, e, args) => {
            let e = h(e);
            Fast::Test(n, e, args.into_iter().map(|a| hoist(a, lp)).collect())
        }
        Fast::List(items) => Fast::List(items.into_iter().map(|i| hoist(i, lp)).collect()),
        other @ (Fast::Const(_) | Fast::Path { .. } | Fast::Memo(..)) => other,
    }
}

fn build(e: &Expr) -> Option<Fast> {
    Some(match e {
        Expr::Var(v) => Fast::Path {
            var: v.id.to_string(),
            steps: Vec::new(),
        },
        Expr::Const(c) => Fast::Const(serde_json::to_value(&c.value).ok()?),
        Expr::GetAttr(g) => attr(build(&g.expr)?, Step::Key(g.name.to_string())),
        Expr::GetItem(g) => {
            let step = match &g.subscript_expr {
                Expr::Const(c) => match (c.value.as_str(), c.value.as_i64()) {
                    (Some(s), _) => Step::Key(s.to_string()),
                    (None, Some(i)) if i >= 0 => Step::Index(usize::try_from(i).ok()?),
                    _ => return None,
                },
                _ => return None,
            };
            attr(build(&g.expr)?, step)
        }
        Expr::Slice(s) => {
            if s.step.is_some() {
                return None;
            }
            let bound = |b: &Option<Expr>| -> Option<Option<i64>> {
                match b {
                    None => Some(None),
                    Some(Expr::Const(c)) => c.value.as_i64().filter(|i| *i >= 0).map(Some),
                    Some(_) => None,
                }
            };
            Fast::Slice(Box::new(build(&s.expr)?), bound(&s.start)?, bound(&s.stop)?)
        }
        Expr::UnaryOp(u) => match u.op {
            UnaryOpKind::Not => Fast::Not(Box::new(build(&u.expr)?)),
            UnaryOpKind::Neg => return None,
        },
        Expr::BinOp(b) => {
            let (l, r) = (Box::new(build(&b.left)?), Box::new(build(&b.right)?));
            match b.op {
                BinOpKind::ScAnd => Fast::And(l, r),
                BinOpKind::ScOr => Fast::Or(l, r),
                BinOpKind::Concat => Fast::Concat(l, r),
                BinOpKind::Eq => Fast::Cmp(l, Cmp::Eq, r),
                BinOpKind::Ne => Fast::Cmp(l, Cmp::Ne, r),
                BinOpKind::Lt => Fast::Cmp(l, Cmp::Lt, r),
                BinOpKind::Lte => Fast::Cmp(l, Cmp::Lte, r),
                BinOpKind::Gt => Fast::Cmp(l, Cmp::Gt, r),
                BinOpKind::Gte => Fast::Cmp(l, Cmp::Gte, r),
                BinOpKind::In => Fast::Cmp(l, Cmp::In, r),
                _ => return None,
            }
        }
        Expr::Compare(c) => {
            let [op] = &c.ops[..] else { return None };
            let cmp = match op.op {
                CompareOpKind::Eq => Cmp::Eq,
                CompareOpKind::Ne => Cmp::Ne,
                CompareOpKind::Lt => Cmp::Lt,
                CompareOpKind::Lte => Cmp::Lte,
                CompareOpKind::Gt => Cmp::Gt,
                CompareOpKind::Gte => Cmp::Gte,
                CompareOpKind::In => Cmp::In,
                CompareOpKind::NotIn => Cmp::NotIn,
            };
            Fast::Cmp(Box::new(build(&c.expr)?), cmp, Box::new(build(&op.expr)?))
        }
        Expr::IfExpr(i) => Fast::If(
            Box::new(build(&i.test_expr)?),
            Box::new(build(&i.true_expr)?),
            match &i.false_expr {
                Some(f) => Some(Box::new(build(f)?)),
                None => None,
            },
        ),
        Expr::Filter(f) => {
            let id = Filter::parse(f.name)?;
            let subject = build(f.expr.as_ref()?)?;
            let args = positional(&f.args)?;
            if id == Filter::First && args.is_empty() {
                first_where(subject)
            } else {
                Fast::Filter(id, Box::new(subject), args)
            }
        }
        Expr::Test(t) => Fast::Test(
            Test::parse(t.name)?,
            Box::new(build(&t.expr)?),
            positional(&t.args)?,
        ),
        Expr::Call(c) => {
            let Expr::Var(f) = &c.expr else { return None };
            let args = positional(&c.args)?;
            let [Fast::Const(Value::String(name)), key] = <[Fast; 2]>::try_from(args).ok()? else {
                return None;
            };
            match f.id {
                "ref" => Fast::Ref(name, Box::new(key)),
                "lookup" => Fast::Lookup(name, Box::new(key)),
                _ => return None,
            }
        }
        Expr::List(l) => Fast::List(l.items.iter().map(build).collect::<Option<Vec<_>>>()?),
        Expr::Tuple(_) | Expr::Map(_) => return None,
    })
}

/// `subject | first`, fused with a `selectattr(attr, 'equalto', want)` of constant strings.
fn first_where(subject: Fast) -> Fast {
    let first = |subject| Fast::Filter(Filter::First, Box::new(subject), Vec::new());
    let Fast::Filter(name, list, args) = subject else {
        return first(subject);
    };
    if name != Filter::Selectattr {
        return first(Fast::Filter(name, list, args));
    }
    match <[Fast; 3]>::try_from(args) {
        Ok(
            [
                Fast::Const(Value::String(attr)),
                Fast::Const(Value::String(test)),
                Fast::Const(Value::String(want)),
            ],
        ) if test == "equalto" && !attr.contains('.') => Fast::FirstWhere(list, attr, want),
        Ok(args) => first(Fast::Filter(name, list, args.into())),
        Err(args) => first(Fast::Filter(name, list, args)),
    }
}

fn positional(args: &[CallArg]) -> Option<Vec<Fast>> {
    args.iter()
        .map(|a| match a {
            CallArg::Pos(e) => build(e),
            _ => None,
        })
        .collect()
}

fn attr(base: Fast, step: Step) -> Fast {
    match base {
        Fast::Path { var, mut steps } => {
            steps.push(step);
            Fast::Path { var, steps }
        }
        other => Fast::Attr(Box::new(other), step),
    }
}

/// A value during evaluation: JSON read in place, a computed one, or undefined.
#[derive(Debug, Clone)]
pub enum V<'a> {
    Undef,
    Ref(&'a Value),
    Own(Value),
}

impl V<'_> {
    pub(crate) fn get(&self) -> Option<&Value> {
        match self {
            V::Undef => None,
            V::Ref(v) => Some(v),
            V::Own(v) => Some(v),
        }
    }

    pub fn truthy(&self) -> bool {
        self.get().is_some_and(super::template::truthy)
    }

    pub fn into_json(self) -> Option<Value> {
        match self {
            V::Undef => None,
            V::Ref(v) => Some(v.clone()),
            V::Own(v) => Some(v),
        }
    }
}

/// Signals that this evaluation must go to minijinja.
pub struct Fallback;

pub type R<'a> = Result<Result<V<'a>, Fallback>, EvalError>;

macro_rules! tri {
    ($e:expr) => {
        match $e? {
            Ok(v) => v,
            Err(Fallback) => return Ok(Err(Fallback)),
        }
    };
}

impl Fast {
    /// The variables this expression reads.
    fn vars<'s>(&'s self, out: &mut Vec<&'s str>) {
        match self {
            Fast::Const(_) => {}
            Fast::Path { var, .. } => out.push(var),
            Fast::Attr(b, _) | Fast::Slice(b, ..) | Fast::Not(b) => b.vars(out),
            Fast::Test(_, b, args) => {
                b.vars(out);
                args.iter().for_each(|a| a.vars(out));
            }
            Fast::Ref(_, b) | Fast::Lookup(_, b) | Fast::Memo(_, b) | Fast::FirstWhere(b, ..) => {
                b.vars(out)
            }
            Fast::And(l, r) | Fast::Or(l, r) | Fast::Concat(l, r) | Fast::Cmp(l, _, r) => {
                l.vars(out);
                r.vars(out);
            }
            Fast::If(t, a, b) => {
                t.vars(out);
                a.vars(out);
                if let Some(b) = b {
                    b.vars(out);
                }
            }
            Fast::Filter(_, s, args) => {
                s.vars(out);
                args.iter().for_each(|a| a.vars(out));
            }
            Fast::List(items) => items.iter().for_each(|i| i.vars(out)),
        }
    }

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
                if !push_text(&mut text, &v) {
                    return Ok(Err(Fallback));
                }
                escape_json(out, &text);
            }
        }
        Ok(Ok(()))
    }
}

/// For each byte, the letter of its short escape (`\n`), `u` for `\u00XX`, or 0: as is.
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = b'u';
        b += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Appends `s` escaped as the inside of a JSON string, exactly as serde_json escapes it.
fn escape_json(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut run = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let short = match ESCAPE[usize::from(b)] {
            0 => continue,
            b'u' => 0,
            c => c,
        };
        out.extend_from_slice(&s.as_bytes()[run..i]);
        run = i + 1;
        match short {
            0 => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
            c => out.extend_from_slice(&[b'\\', c]),
        }
    }
    out.extend_from_slice(&s.as_bytes()[run..]);
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
            if !push_text(&mut s, &l) {
                return Ok(Err(Fallback));
            }
            s
        }
    };
    if !push_text(&mut s, &r) {
        return Ok(Err(Fallback));
    }
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
                note_missing(scope.rt(), entity, k.into_owned());
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
        if whole && !name.takes_list() {
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

/// A filter on scalars the native filters do not take, through minijinja's implementation.
#[inline(never)]
fn filter_by_minijinja<'a>(name: Filter, subject: &V, args: &[V]) -> R<'a> {
    let mut mj_args = Vec::with_capacity(args.len() + 1);
    for v in std::iter::once(subject).chain(args) {
        mj_args.push(tri!(Ok::<_, EvalError>(to_mj(v))));
    }
    call(name.name(), &mj_args)
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

fn note_missing(rt: &Arc<RecordRt>, entity: &str, key: String) {
    if let Ok(mut m) = rt.missing.lock() {
        let dep = (entity.to_string(), key);
        if !m.contains(&dep) {
            m.push(dep);
        }
    }
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

/// Appends a number as minijinja shows it: whole numbers without a fraction (JSON does not tell
/// 25 from 25.0, and templates see both as 25). Writing to a `String` cannot fail.
fn push_number(out: &mut String, n: &serde_json::Number) {
    use std::fmt::Write;
    if let Some(u) = n.as_u64() {
        push_u64(out, u);
        return;
    }
    if let Some(i) = n.as_i64() {
        out.push('-');
        push_u64(out, i.unsigned_abs());
        return;
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        let _ = write!(out, "{}", f as i64);
        return;
    }
    let s = f.to_string();
    out.push_str(&s);
    if !(s.contains('.') || s.contains('e') || s.contains("inf") || s.contains("NaN")) {
        out.push_str(".0");
    }
}

/// Appends `v` as minijinja prints it for `~`; `false` for values it prints unlike JSON.
fn push_text(out: &mut String, v: &V) -> bool {
    match v.get() {
        None => {}
        Some(Value::Null) => out.push_str("None"),
        Some(Value::Bool(b)) => out.push_str(if *b { "True" } else { "False" }),
        Some(Value::Number(n)) => push_number(out, n),
        Some(Value::String(s)) => out.push_str(s),
        Some(_) => return false,
    }
    true
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

/// The filters mappings use most, on the JSON values they mostly meet, computed without minijinja
/// values: decimal arithmetic on numbers, text filters on strings, `default` on non-numbers
/// (minijinja would turn a whole float into an integer), and the list filters on lists of
/// strings or objects. The same results as minijinja's filters, which the differential test and
/// a unit test hold them to; `None` leaves the case to the general path, with `x` and `args`
/// untouched.
fn native_filter<'a>(name: Filter, x: &mut V<'a>, args: &mut [V<'a>]) -> Option<V<'a>> {
    if name == Filter::First && args.is_empty() {
        return first(x);
    }
    // A list this expression built is filtered where it is, without copying its items.
    if let V::Own(Value::Array(items)) = x {
        match (name, &args[..]) {
            (Filter::Select, []) => items.retain(super::template::truthy),
            (Filter::Select, [test]) if text(test)? == "upper" => items.retain(is_upper),
            (Filter::Map, [filter]) => {
                let filter = Filter::parse(text(filter)?)?;
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
            Some(Value::Number(m)) => V::Own(decimal_filter_json(name.name(), n, m)?),
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
        (Filter::String, Some(Value::Null | Value::Bool(_) | Value::String(_)), []) => {
            let mut out = String::new();
            push_text(&mut out, x);
            V::Own(Value::from(out))
        }
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
            items
                .iter()
                .filter(|v| super::template::truthy(v))
                .cloned()
                .collect(),
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
            let filter = Filter::parse(text(filter)?)?;
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
fn as_template_sees(item: V) -> V {
    match item.get() {
        Some(Value::Number(n)) if !(n.is_i64() || n.is_u64()) => {
            match super::template::number(n).as_i64() {
                Some(i) => V::Own(Value::from(i)),
                None => item,
            }
        }
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
        Some(Value::Number(n)) => super::template::number(n),
        Some(Value::String(s)) => MjValue::from(s.as_str()),
        Some(_) => return Err(Fallback),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut all: String = (0u8..0x80).map(char::from).collect();
        all.push_str("æøå – \u{2028}\u{10ffff}\\\"");
        for s in [all.as_str(), "", "plain", "\"", "a\nb", "\u{1f}x\u{7f}"] {
            let mut ours = vec![b'"'];
            super::escape_json(&mut ours, s);
            ours.push(b'"');
            let theirs = serde_json::to_string(s).unwrap_or_default();
            assert_eq!(String::from_utf8_lossy(&ours), theirs);
        }
    }
}
