//! A native evaluator for the expressions mappings use most (paths, `or`/`and`, `~`, comparisons,
//! `if`/`else`, `ref()`, `lookup()` and the common filters), reading JSON in place. Anything else,
//! at compile time or at run time, falls back to minijinja, whose semantics this follows; a test
//! runs every mapping case through both and compares (`set_cross_check`).
//!
//! Inside a `$for_each`, the parts of an expression that read no loop variable are computed for
//! the first item that needs them and kept in the loop's memo slots.
//!
//! `ast` is the tree and its values, `build` compiles into it, `eval` evaluates it, `filter` holds
//! the filters it computes itself and `text` how it prints values.

mod ast;
mod build;
mod eval;
mod filter;
mod text;

pub use ast::{Fast, Loop};
pub use build::compile;
