//! What the benchmarks share: how many runs, min/median/max, and the results file. Each figure is
//! printed and, when `RBTX_BENCH_RESULTS` names a file, appended to it as one JSON line, which
//! `cargo bench --bench report` renders as BENCHMARKS.md (`scripts/bench` runs them all).

// Each bench uses part of this module.
#![allow(dead_code)]

use std::io::Write;

use serde_json::json;

/// Runs of each scenario: `RBTX_BENCH_RUNS`, else the bench's own default.
pub fn runs(default: usize) -> usize {
    std::env::var("RBTX_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
        .max(1)
}

/// (min, median, max) of `v`, which must not be empty.
pub fn spread(v: &[f64]) -> (f64, f64, f64) {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

/// The value at percentile `p` (0..=1) of `v` (nearest rank).
pub fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// What a figure must reach, judged on the median.
#[derive(Clone, Copy)]
pub enum Target {
    AtLeast(f64),
    AtMost(f64),
    Below(f64),
    /// The ratio to the baseline must be at least this.
    RatioAtLeast(f64),
    /// The ratio to the baseline must be at most this.
    RatioAtMost(f64),
}

/// One measured figure: a value per run, and the baseline measured beside it in the same runs.
pub struct Figure<'a> {
    pub scenario: &'a str,
    pub name: &'a str,
    pub unit: &'a str,
    pub values: Vec<f64>,
    pub baseline: Option<(&'a str, Vec<f64>)>,
    pub target: Option<Target>,
    /// How it was measured, for the report.
    pub note: &'a str,
}

/// Prints `f` and appends it to the results file, if there is one.
pub fn record(f: Figure) {
    let (min, med, max) = spread(&f.values);
    let mut line = format!(
        "{} / {}: {min:.2} / {med:.2} / {max:.2} {} (min/median/max of {})",
        f.scenario,
        f.name,
        f.unit,
        f.values.len()
    );
    if let Some((name, base)) = &f.baseline {
        let (_, bmed, _) = spread(base);
        line += &format!("; {name}: median {bmed:.2}; ratio {:.3}", med / bmed);
    }
    println!("{line}");
    let target = f.target.map(|t| match t {
        Target::AtLeast(v) => json!({"on": "value", "op": ">=", "value": v}),
        Target::AtMost(v) => json!({"on": "value", "op": "<=", "value": v}),
        Target::Below(v) => json!({"on": "value", "op": "<", "value": v}),
        Target::RatioAtLeast(v) => json!({"on": "ratio", "op": ">=", "value": v}),
        Target::RatioAtMost(v) => json!({"on": "ratio", "op": "<=", "value": v}),
    });
    let row = json!({
        "scenario": f.scenario,
        "figure": f.name,
        "unit": f.unit,
        "values": f.values,
        "baseline": f.baseline.map(|(name, values)| json!({"name": name, "values": values})),
        "target": target,
        "note": f.note,
    });
    if let Some(path) = std::env::var_os("RBTX_BENCH_RESULTS") {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("open the results file");
        writeln!(file, "{row}").expect("write the results file");
    }
}

/// A child process, killed when this is dropped.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// `rbtx sandbox` in a process of its own, as the real APIs would be.
pub struct SandboxProcess {
    _process: Killed,
    pub tripletex: String,
    pub rackbeat: String,
}

/// Starts `rbtx sandbox` with `args` on free ports and waits for its addresses.
pub fn sandbox_process(args: &[&str]) -> SandboxProcess {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rbtx"))
        .args([
            "sandbox",
            "--tripletex-addr",
            "127.0.0.1:0",
            "--rackbeat-addr",
            "127.0.0.1:0",
            // Many requests a minute: the budget is not what these measure.
            "--rackbeat-rate-limit",
            "0",
        ])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the sandboxes");
    let lines: Vec<String> = std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .lines()
        .take(2)
        .map_while(Result::ok)
        .collect();
    let url = |prefix: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .expect("the sandbox prints its addresses")
            .to_string()
    };
    SandboxProcess {
        tripletex: url("tripletex: "),
        rackbeat: url("rackbeat: "),
        _process: Killed(child),
    }
}

impl SandboxProcess {
    /// `rbtx` with the environment that points it at these sandboxes.
    pub fn rbtx(&self) -> std::process::Command {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_rbtx"));
        c.env("RBTX_TRIPLETEX_URL", &self.tripletex)
            .env("RBTX_RACKBEAT_URL", &self.rackbeat)
            .env(
                "RBTX_TRIPLETEX_CONSUMER_TOKEN",
                rbtx::sandbox::CONSUMER_TOKEN,
            )
            .env(
                "RBTX_TRIPLETEX_EMPLOYEE_TOKEN",
                rbtx::sandbox::EMPLOYEE_TOKEN,
            )
            .env("RBTX_RACKBEAT_TOKEN", rbtx::sandbox::RACKBEAT_TOKEN);
        c
    }
}
