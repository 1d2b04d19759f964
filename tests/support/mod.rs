//! Helpers shared by the test binaries (`mod support;` in each).

pub mod postgres;
