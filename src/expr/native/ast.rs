//! The native evaluator's tree: what an expression compiles to, and the values it computes.

use serde_json::Value;

use crate::expr::filters::Filter;
use crate::expr::value::{EvalError, Step, truthy};

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
    pub(super) fn parse(name: &str) -> Option<Test> {
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
        self.get().is_some_and(truthy)
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

pub(crate) use tri;
