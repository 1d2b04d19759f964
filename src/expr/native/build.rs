//! Compiling an expression into the native tree, when every part of it is supported.

use minijinja::machinery::ast::{BinOpKind, CallArg, CompareOpKind, Expr, UnaryOpKind};
use minijinja::machinery::parse_expr;
use serde_json::Value;

use super::ast::{Cmp, Fast, Loop, Test};
use crate::expr::filters::Filter;
use crate::expr::value::Step;

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
            let id = Filter::native(f.name)?;
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
}
