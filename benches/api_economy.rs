//! API requests per synced record, counted in the sandboxes' request logs (issues #12 and #20):
//! in real use the APIs' rate budgets bound everything, so these counts are the product's speed.
//! Counts are exact, not noisy: one run is enough, and each figure's baseline is the number of
//! records of the same run.
//!
//! 1. `rbtx sync initial` of N Tripletex customers (default 10,000; `RBTX_BENCH_CUSTOMERS`) into
//!    Rackbeat: Rackbeat requests per record created.
//! 2. The echo: every customer written comes back as a Rackbeat change (its webhook or the first
//!    catch-up). Tripletex writes must be 0.
//! 3. 200 product price changes in Rackbeat, in real time: requests per record on each side.
//!
//! Run: `cargo bench --bench api_economy`.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{Figure, Target};
use rbtx::plan::load_pack;
use rbtx::runtime::accounts::Accounts;
use rbtx::runtime::initial::{self, Options};
use rbtx::runtime::tenant::InvoiceMode;
use rbtx::runtime::worker::Worker;
use rbtx::sandbox::rackbeat::Resource;
use rbtx::sandbox::{self, SandboxConfig, Sandboxes};
use rbtx::store::sqlite::SqliteStore;
use rbtx::store::{NewEvent, Store};
use serde_json::{Value, json};

const PRODUCTS: usize = 200;
const SCENARIO: &str = "API requests per synced record (sandboxes' request logs)";

fn writes(requests: &[rbtx::sandbox::tripletex::RequestRecord]) -> usize {
    requests
        .iter()
        .filter(|r| r.method == "POST" || r.method == "PUT")
        .filter(|r| !r.path.contains("/token/session"))
        .count()
}

async fn drain(worker: &Worker<SqliteStore>, store: &SqliteStore, now: &mut i64) {
    loop {
        worker.run_once(*now).await.expect("run_once");
        *now += 1_000;
        if store.queue_depth().await.expect("depth") == 0 {
            return;
        }
    }
}

async fn enqueue(store: &SqliteStore, entity: &str, key: &str, event: &str, now: i64) {
    store
        .enqueue(NewEvent {
            tenant: "default".into(),
            entity: entity.into(),
            key: key.into(),
            event: event.into(),
            payload: json!({ "key_name": "number", "key": key }),
            received_at: now,
        })
        .await
        .expect("enqueue");
}

fn text(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

async fn run(customers: usize) {
    let sb: Sandboxes = sandbox::start(SandboxConfig {
        customers: Some(customers),
        ..SandboxConfig::default()
    })
    .await
    .expect("sandboxes");
    let tenant = Accounts::sandbox(&sb, InvoiceMode::Booked)
        .tenant()
        .expect("tenant");
    let store = Arc::new(SqliteStore::in_memory().expect("store"));
    store.migrate().await.expect("migrate");
    let pack = load_pack(&[PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings")]);
    assert!(pack.diagnostics.is_empty(), "{:?}", pack.diagnostics);
    let mut worker = Worker::new(store.clone(), Arc::new(pack), tenant, "api-economy");
    worker.retry_base_ms = 1;
    worker.retry_max_ms = 10;
    let mut now = 1_750_000_000_000;

    // 1. The initial sync of the customers (and the payment terms they name).
    let (rb0, tx0) = (sb.rackbeat.requests().len(), sb.tripletex.requests().len());
    let options = Options {
        entities: vec!["customer".into()],
        progress: false,
        ..Options::default()
    };
    let report = initial::run(&worker, &options, &mut Vec::new())
        .await
        .expect("the initial sync");
    assert_eq!(report.failed(), 0, "{}", report.table());
    let created: u64 = report.entities.iter().map(|e| e.counts.created).sum();
    let rb_sync = sb.rackbeat.requests().len() - rb0;
    let tx_sync = sb.tripletex.requests().len() - tx0;
    common::record(Figure {
        scenario: SCENARIO,
        name: "initial sync of the customers: Rackbeat requests",
        unit: "requests",
        values: vec![rb_sync as f64],
        baseline: Some(("records created", vec![created as f64])),
        target: Some(Target::RatioAtMost(1.01)),
        note: "benches/api_economy.rs: `rbtx sync initial --entities customer` in-process against the sandboxes; the ratio is requests per record created: the existing customers are listed once (`target.list`), then one POST each (was a find and a POST, 2.0)",
    });
    println!("  (Tripletex requests of the sync: {tx_sync}, lists of 1,000)");

    // 2. The echo of everything the sync wrote.
    let written: Vec<String> = sb
        .tripletex
        .records(rbtx::sandbox::tripletex::Kind::Customer)
        .iter()
        .map(|c| text(&c["customerNumber"]))
        .collect();
    for key in &written {
        enqueue(&store, "customer", key, "customer.updated", now).await;
    }
    let (rb0, tx0) = (sb.rackbeat.requests().len(), sb.tripletex.requests().len());
    drain(&worker, &store, &mut now).await;
    let tx_echo = &sb.tripletex.requests()[tx0..];
    common::record(Figure {
        scenario: SCENARIO,
        name: "the initial sync's echo: Tripletex writes",
        unit: "writes",
        values: vec![writes(tx_echo) as f64],
        baseline: None,
        target: Some(Target::AtMost(0.0)),
        note: "benches/api_economy.rs: a customer.updated event for every customer the initial sync wrote, as its webhook or the first catch-up brings it; the binding's baseline makes each one cost no Tripletex request (#20)",
    });
    common::record(Figure {
        scenario: SCENARIO,
        name: "the initial sync's echo: Tripletex requests",
        unit: "requests",
        values: vec![tx_echo.len() as f64],
        baseline: Some(("records", vec![written.len() as f64])),
        target: Some(Target::RatioAtMost(0.0)),
        note: "benches/api_economy.rs: as above; reads count too",
    });
    common::record(Figure {
        scenario: SCENARIO,
        name: "the initial sync's echo: Rackbeat requests",
        unit: "requests",
        values: vec![(sb.rackbeat.requests().len() - rb0) as f64],
        baseline: Some(("records", vec![written.len() as f64])),
        target: None,
        note: "benches/api_economy.rs: one GET per event today; #12's bulk reads would list them instead",
    });

    // 3. Price changes of products already in both systems.
    for i in 0..PRODUCTS {
        let number = format!("ECON-{i}");
        sb.rackbeat
            .create(
                Resource::Product,
                json!({ "number": number, "name": format!("Vare {i}"), "group": 1001, "sales_price": 100 + i }),
            )
            .expect("a product");
        enqueue(&store, "product", &number, "product.created", now).await;
    }
    drain(&worker, &store, &mut now).await;
    for i in 0..PRODUCTS {
        let number = format!("ECON-{i}");
        sb.rackbeat
            .update(
                Resource::Product,
                &number,
                json!({ "sales_price": 200 + i }),
            )
            .expect("a price change");
        enqueue(&store, "product", &number, "product.updated", now).await;
    }
    let (rb0, tx0) = (sb.rackbeat.requests().len(), sb.tripletex.requests().len());
    drain(&worker, &store, &mut now).await;
    let tx_changes = &sb.tripletex.requests()[tx0..];
    assert_eq!(writes(tx_changes), PRODUCTS, "one write per price change");
    common::record(Figure {
        scenario: SCENARIO,
        name: "200 product price changes: Tripletex requests",
        unit: "requests",
        values: vec![tx_changes.len() as f64],
        baseline: Some(("records", vec![PRODUCTS as f64])),
        target: None,
        note: "benches/api_economy.rs: one PUT of the changed prices with the binding's version, no GET first (was a GET and a PUT, 2.0); #12's bulk writes would batch them",
    });
    common::record(Figure {
        scenario: SCENARIO,
        name: "200 product price changes: Rackbeat requests",
        unit: "requests",
        values: vec![(sb.rackbeat.requests().len() - rb0) as f64],
        baseline: Some(("records", vec![PRODUCTS as f64])),
        target: None,
        note: "benches/api_economy.rs: one GET per event today",
    });
}

fn main() {
    let customers = std::env::var("RBTX_BENCH_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    tokio::runtime::Runtime::new()
        .expect("a runtime")
        .block_on(run(customers));
}
