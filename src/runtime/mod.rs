//! The long-running process: webhook intake and the workers that apply queued events.

pub mod accounts;
pub mod alerts;
pub mod batch;
pub mod catchup;
pub mod demo;
pub mod dlq;
mod failure;
pub mod initial;
pub mod intake;
pub mod lookups;
pub mod metrics;
pub mod reconcile;
pub mod run;
mod schedule;
pub mod status;
mod steps;
pub mod sync;
pub mod tenant;
pub mod worker;

/// Prints a line for whoever started a long-running process (addresses, credentials). A reader
/// that wanted only the first lines and closed the pipe must not stop the process, so write
/// errors are ignored where `println!` would panic.
pub fn announce(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}
