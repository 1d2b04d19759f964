//! rbtx: keeps Rackbeat and Tripletex in sync, driven by YAML mapping files.
//!
//! `spec` is the YAML contract, `plan` compiles it, `engine` executes a plan on one record,
//! `testing` runs the mapping unit tests, `doctor` checks a tenant's setup, and `tripletex_spec` checks bodies against Tripletex's
//! official OpenAPI schemas. See ARCHITECTURE.md.

pub mod connectors;
pub mod dates;
pub mod doctor;
pub mod engine;
pub mod json;
pub mod plan;
pub mod preview;
pub mod runtime;
pub mod sandbox;
pub mod secret;
pub mod spec;
pub mod store;
pub mod testing;
pub mod tripletex_spec;
