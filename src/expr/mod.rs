//! The expression language of mapping templates, in layers, each using only the ones before it:
//! `value` (JSON and template values, keys, decimals) → `scope` (what a template sees) →
//! `filters` (the one filter registry) → `environment` (minijinja, `ref`, `lookup`) → `native`
//! (the native evaluator) → `template` (a template string compiled into a constant, a plain
//! path, a typed expression or an interpolation).

pub mod environment;
pub mod filters;
pub mod native;
pub mod render;
pub mod scope;
pub mod template;
pub mod value;

pub use render::{Evaluations, set_cross_check};
pub use scope::{Memo, RecordRt, Resolver, Scope, StaticTable, Var, null_root};
pub use template::{Part, Template};
pub use value::{EvalError, Out, Step, key_text, key_text_json, text_of};
