//! Use of a rate budget: with the Tripletex sandbox limited to L requests/s (a fixed window of
//! `PERIOD` seconds, announced in `X-Rate-Limit-*` headers as Tripletex does), workers with more
//! work queued than the budget allows run for whole windows. Reported: Tripletex requests
//! accepted per second as a fraction of L, and the 429s that became failures (events retried
//! or dead-lettered), which must be none.
//! Run: `cargo bench --bench rate_budget`.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rbtx::connectors::rackbeat::{Rackbeat, RackbeatConfig};
use rbtx::connectors::tripletex::{Tripletex, TripletexConfig};
use rbtx::plan::load_pack;
use rbtx::runtime::tenant::{InvoiceMode, Tenant};
use rbtx::runtime::worker::{Handled, Worker};
use rbtx::sandbox::{self, DataSize, SandboxConfig};
use rbtx::secret::Secret;
use rbtx::store::sqlite::SqliteStore;
use rbtx::store::{NewEvent, Store};
use serde_json::json;

use common::{Figure, Target};

/// L: Tripletex requests per second.
const LIMIT_PER_SECOND: u32 = 40;
const PERIOD: u64 = 5;
const WINDOWS: u64 = 3;
const WORKERS: usize = 4;
const EVENTS: usize = 1_000;

struct Run {
    accepted_per_second: f64,
    seen_429: f64,
    failed: f64,
}

fn main() {
    let runs = common::runs(3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let results: Vec<Run> = (0..runs).map(|_| rt.block_on(one_run())).collect();
    let pick = |f: fn(&Run) -> f64| results.iter().map(f).collect::<Vec<_>>();
    let note = format!(
        "Tripletex sandbox limited to {} requests per {PERIOD} s window (L = {LIMIT_PER_SECOND}/s); \
         {WORKERS} workers with {EVENTS} product events queued run for {WINDOWS} whole windows \
         (sandbox, store and workers in one process). Accepted = Tripletex answers other than 429.",
        LIMIT_PER_SECOND as u64 * PERIOD
    );
    common::record(Figure {
        scenario: "Rate budget",
        name: "Tripletex requests accepted per second",
        unit: "requests/s",
        values: pick(|r| r.accepted_per_second),
        baseline: Some(("L", vec![f64::from(LIMIT_PER_SECOND); runs])),
        target: Some(Target::RatioAtLeast(0.9)),
        note: &note,
    });
    common::record(Figure {
        scenario: "Rate budget",
        name: "429 answers seen (retried inside the connector)",
        unit: "",
        values: pick(|r| r.seen_429),
        baseline: None,
        target: None,
        note: &note,
    });
    common::record(Figure {
        scenario: "Rate budget",
        name: "429s that became failures",
        unit: "events",
        values: pick(|r| r.failed),
        baseline: None,
        target: Some(Target::AtMost(0.0)),
        note: &note,
    });
}

async fn one_run() -> Run {
    let sb = sandbox::start(SandboxConfig {
        data: DataSize::Large,
        ..Default::default()
    })
    .await
    .expect("sandboxes");
    let rb = || {
        let mut c = RackbeatConfig::new(
            sb.rackbeat.base_url.as_str(),
            Secret::new(sandbox::RACKBEAT_TOKEN),
        );
        c.requests_per_minute = 1_000_000;
        Rackbeat::new(c).expect("rackbeat")
    };
    let tx = || {
        Tripletex::new(TripletexConfig::new(
            sb.tripletex.base_url.as_str(),
            Secret::new(sandbox::CONSUMER_TOKEN),
            Secret::new(sandbox::EMPLOYEE_TOKEN),
        ))
        .expect("tripletex")
    };
    let numbers: Vec<String> = rb()
        .list_all("/products", &[])
        .await
        .expect("products")
        .iter()
        .filter_map(|p| p["number"].as_str().map(str::to_string))
        .collect();
    assert!(
        numbers.len() >= EVENTS,
        "the large seed has {} products",
        numbers.len()
    );

    let dir = std::env::temp_dir().join(format!("rbtx-rate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let store_path = dir.join("store.sqlite");
    for suffix in ["", "-wal", "-shm"] {
        std::fs::remove_file(format!("{}{suffix}", store_path.display())).ok();
    }
    let store = Arc::new(SqliteStore::open(&store_path).expect("store"));
    store.migrate().await.expect("migrate");
    let now = rbtx::dates::now_millis();
    let events = numbers[..EVENTS]
        .iter()
        .map(|n| NewEvent {
            tenant: "t".into(),
            entity: "product".into(),
            key: n.clone(),
            event: "product.created".into(),
            payload: json!({"key_name": "number", "key": n}),
            received_at: now,
        })
        .collect();
    store.enqueue_many(events).await.expect("enqueue");

    let pack = Arc::new(load_pack(&[
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings")
    ]));
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let worker = Worker::new(
            store.clone(),
            pack.clone(),
            Tenant {
                id: "t".into(),
                rackbeat: rb(),
                tripletex: tx(),
                invoice_mode: InvoiceMode::Booked,
            },
            format!("bench-{w}"),
        );
        // A session per worker before the budget starts counting.
        worker
            .tenant
            .tripletex
            .list_all("/ledger/vatType", &[])
            .await
            .expect("session");
        workers.push(worker);
    }
    let before = sb.tripletex.requests().len();
    sb.tripletex
        .set_rate_limit(Some(LIMIT_PER_SECOND * PERIOD as u32), PERIOD);
    let failed = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for worker in workers {
        let failed = failed.clone();
        tasks.spawn(async move {
            loop {
                let now = rbtx::dates::now_millis();
                let events = worker
                    .store
                    .claim(Some("t"), &worker.name, 1, now, 60_000)
                    .await
                    .expect("claim");
                for e in &events {
                    match worker.handle(e, now).await.expect("handle") {
                        Handled::Completed => {}
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(PERIOD * WINDOWS)).await;
    tasks.abort_all();
    let requests = sb.tripletex.requests();
    let during = &requests[before..];
    let seen_429 = during.iter().filter(|r| r.status == Some(429)).count();
    let accepted = during
        .iter()
        .filter(|r| r.status.is_some_and(|s| s != 429))
        .count();
    std::fs::remove_dir_all(&dir).ok();
    Run {
        accepted_per_second: accepted as f64 / (PERIOD * WINDOWS) as f64,
        seen_429: seen_429 as f64,
        failed: failed.load(Ordering::Relaxed) as f64,
    }
}
