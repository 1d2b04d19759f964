//! rbtx: keeps Rackbeat and Tripletex in sync, driven by YAML mapping files.
//!
//! `spec` is the YAML contract, `expr` the expression language of its templates, `plan` compiles
//! it, `engine` executes a plan on one record; `connectors` are the API clients, `store` what the
//! runtime must not lose, and `runtime` the long-running process. ARCHITECTURE.md has the map.

pub mod connectors;
pub mod console;
pub mod doctor;
pub mod engine;
pub mod expr;
pub mod files;
pub mod json;
pub mod plan;
pub mod preview;
pub mod round_trip;
pub mod runtime;
pub mod secret;
pub mod spec;
pub mod store;
pub mod testing;

// Crates of their own in the workspace, kept at their old paths so `crate::dates`,
// `rbtx::sandbox` and `crate::tripletex_spec` still name them.
pub use rbtx_dates as dates;
pub use rbtx_sandbox as sandbox;
pub use tripletex_openapi as tripletex_spec;
