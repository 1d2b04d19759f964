//! The long-running process: webhook intake and the workers that apply queued events.

pub mod catchup;
pub mod intake;
pub mod metrics;
pub mod run;
pub mod worker;
