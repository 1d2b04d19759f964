//! The initial sync of N Tripletex customers into Rackbeat, sandbox to sandbox, as separate
//! processes: `rbtx sandbox --customers N`, then `rbtx sync initial --entities customer` (which
//! brings the payment terms along). Reports wall time, records/s and the sync process's peak RSS
//! (VmHWM, polled), at 10,000 and at 100,000 customers; the 10k run is the baseline of the 100k
//! one (target: peak ≤ 64 MiB, growing by no more than 20 % from 10k to 100k).
//! Run: `cargo bench --bench initial_sync` (about two minutes; RBTX_BENCH_SIZES=10000,100000 and
//! RBTX_BENCH_RUNS=1 change what is run).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// Peak resident set of a running process, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

struct Run {
    seconds: f64,
    peak_mib: f64,
}

fn one_run(customers: usize) -> Run {
    let mut sb = Command::new(env!("CARGO_BIN_EXE_rbtx"))
        .args([
            "sandbox",
            "--customers",
            &customers.to_string(),
            "--tripletex-addr",
            "127.0.0.1:0",
            "--rackbeat-addr",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the sandboxes");
    let lines: Vec<String> = BufReader::new(sb.stdout.take().expect("stdout"))
        .lines()
        .take(2)
        .map_while(Result::ok)
        .collect();
    let _sb = Killed(sb);
    let url = |prefix: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .expect("the sandbox prints its addresses")
            .to_string()
    };
    let dir = std::env::temp_dir().join(format!("rbtx-bench-sync-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let store = dir.join(format!("{customers}.sqlite"));
    for suffix in ["", "-wal", "-shm"] {
        std::fs::remove_file(format!("{}{suffix}", store.display())).ok();
    }

    let started = Instant::now();
    let mut sync = Command::new(env!("CARGO_BIN_EXE_rbtx"))
        .args([
            "sync",
            "initial",
            "--entities",
            "customer",
            "--rackbeat-requests-per-minute",
            "100000000",
            "--store",
        ])
        .arg(&store)
        .env("RBTX_TRIPLETEX_URL", url("tripletex: "))
        .env("RBTX_RACKBEAT_URL", url("rackbeat: "))
        .env(
            "RBTX_TRIPLETEX_CONSUMER_TOKEN",
            rbtx::sandbox::CONSUMER_TOKEN,
        )
        .env(
            "RBTX_TRIPLETEX_EMPLOYEE_TOKEN",
            rbtx::sandbox::EMPLOYEE_TOKEN,
        )
        .env("RBTX_RACKBEAT_TOKEN", rbtx::sandbox::RACKBEAT_TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the sync");
    let pid = sync.id();
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = peak_rss_kib(pid) {
            peak = peak.max(kib);
        }
        match sync.try_wait().expect("wait") {
            Some(status) => break status,
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let mut out = String::new();
    if let Some(mut o) = sync.stdout.take() {
        std::io::Read::read_to_string(&mut o, &mut out).ok();
    }
    assert!(status.success(), "the sync failed:\n{out}");
    let created = out
        .lines()
        .find(|l| l.starts_with("customer "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|n| n.parse::<usize>().ok());
    assert_eq!(created, Some(customers), "every customer created:\n{out}");
    std::fs::remove_dir_all(&dir).ok();
    Run {
        seconds,
        peak_mib: peak as f64 / 1024.0,
    }
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

fn main() {
    let sizes: Vec<usize> = std::env::var("RBTX_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000]);
    let runs: usize = std::env::var("RBTX_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1);
    println!(
        "{:>9} {:>5} {:>22} {:>12} {:>24}",
        "customers", "runs", "wall s (min/med/max)", "records/s", "peak RSS MiB (min/med/max)"
    );
    let mut peaks = Vec::new();
    for &n in &sizes {
        let results: Vec<Run> = (0..runs).map(|_| one_run(n)).collect();
        let (smin, smed, smax) = median(results.iter().map(|r| r.seconds).collect());
        let (pmin, pmed, pmax) = median(results.iter().map(|r| r.peak_mib).collect());
        println!(
            "{n:>9} {runs:>5} {:>22} {:>12.0} {:>24}",
            format!("{smin:.1}/{smed:.1}/{smax:.1}"),
            n as f64 / smed,
            format!("{pmin:.1}/{pmed:.1}/{pmax:.1}")
        );
        peaks.push((n, pmed));
    }
    if let (Some((small, base)), Some((large, peak))) = (peaks.first(), peaks.last())
        && large > small
    {
        println!(
            "\npeak RSS at {large} / at {small}: {:.3} (target ≤ 1.20); peak at {large}: {peak:.1} MiB (target ≤ 64)",
            peak / base
        );
    }
}
