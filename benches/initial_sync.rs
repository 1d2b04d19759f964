//! The initial sync of N Tripletex customers into Rackbeat, sandbox to sandbox, as separate
//! processes: `rbtx sandbox --customers N`, then `rbtx sync initial --entities customer` (which
//! brings the payment terms along). Reports wall time, records/s and the sync process's peak RSS
//! (VmHWM, polled), at 10,000 and at 100,000 customers; the 10k run is the baseline of the 100k
//! one (target: peak ≤ 64 MiB, growing by no more than 20 % from 10k to 100k).
//! Run: `cargo bench --bench initial_sync` (about two minutes; RBTX_BENCH_SIZES=10000,100000 and
//! RBTX_BENCH_RUNS=1 change what is run; default three runs each).

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Figure, Target};

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
    let sb = common::sandbox_process(&["--customers", &customers.to_string()]);
    let dir = std::env::temp_dir().join(format!("rbtx-bench-sync-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let store = dir.join(format!("{customers}.sqlite"));
    for suffix in ["", "-wal", "-shm"] {
        std::fs::remove_file(format!("{}{suffix}", store.display())).ok();
    }

    let started = Instant::now();
    let mut sync = sb
        .rbtx()
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

fn main() {
    let sizes: Vec<usize> = std::env::var("RBTX_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000]);
    let runs = common::runs(3);
    let note = "`rbtx sandbox --customers N` and `rbtx sync initial --entities customer` (payment \
                terms come along) as separate processes, SQLite store; wall time from spawning the \
                sync to its exit; peak RSS is the sync process's VmHWM. The smallest size is the \
                baseline of the larger ones (RSS must not grow with the record count).";
    let mut smallest: Option<Vec<Run>> = None;
    for &n in &sizes {
        let results: Vec<Run> = (0..runs).map(|_| one_run(n)).collect();
        let seconds: Vec<f64> = results.iter().map(|r| r.seconds).collect();
        let rates: Vec<f64> = seconds.iter().map(|s| n as f64 / s).collect();
        let peaks: Vec<f64> = results.iter().map(|r| r.peak_mib).collect();
        let base = smallest.as_ref().map(|b| {
            let rates = b
                .iter()
                .map(|r| sizes[0] as f64 / r.seconds)
                .collect::<Vec<_>>();
            let peaks = b.iter().map(|r| r.peak_mib).collect::<Vec<_>>();
            (rates, peaks)
        });
        let scenario = format!("Initial sync, {n} customers");
        let at_small = format!("at {}", sizes[0]);
        common::record(Figure {
            scenario: &scenario,
            name: "wall time",
            unit: "s",
            values: seconds,
            baseline: None,
            target: None,
            note,
        });
        common::record(Figure {
            scenario: &scenario,
            name: "records created per second",
            unit: "records/s",
            values: rates,
            baseline: base.as_ref().map(|(r, _)| (at_small.as_str(), r.clone())),
            target: None,
            note,
        });
        common::record(Figure {
            scenario: &scenario,
            name: "peak RSS of the sync",
            unit: "MiB",
            values: peaks,
            baseline: base.as_ref().map(|(_, p)| (at_small.as_str(), p.clone())),
            target: (n >= 100_000).then_some(Target::AtMost(64.0)),
            note,
        });
        smallest.get_or_insert(results);
    }
}
