//! `rbtx validate` of the whole shipped pack, cold: a new process each run, timed from spawn to
//! exit, beside `rbtx --version` (process start alone) timed the same way in the same runs.
//! Run: `cargo bench --bench validate`.

mod common;

use std::process::{Command, Stdio};
use std::time::Instant;

use common::{Figure, Target};

/// Milliseconds from spawning `rbtx args` to its successful exit.
fn time_ms(args: &[&str]) -> f64 {
    let started = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_rbtx"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run rbtx");
    assert!(status.success(), "rbtx {args:?} failed");
    started.elapsed().as_secs_f64() * 1000.0
}

fn main() {
    let runs = common::runs(30);
    let (mut validate, mut version) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        version.push(time_ms(&["--version"]));
        validate.push(time_ms(&["validate", "mappings"]));
    }
    common::record(Figure {
        scenario: "Validate the pack, cold",
        name: "`rbtx validate mappings`, process wall time",
        unit: "ms",
        values: validate,
        baseline: Some(("`rbtx --version`", version)),
        target: Some(Target::Below(100.0)),
        note: "A fresh process per run (spawn to exit) over the whole shipped pack; the baseline is process start and exit alone.",
    });
}
