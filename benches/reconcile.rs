//! `rbtx reconcile` reads lists, not a record at a time (issue #14): N products (default
//! 10,000; `RBTX_BENCH_PRODUCTS`) and M booked invoices (default 2,000; `RBTX_BENCH_INVOICES`)
//! made in Rackbeat, Tripletex's own records bound by the initial sync, everything brought over
//! by `reconcile --fix` itself, then reconciled again in step.
//! The figures are the requests that second reconcile sent to each API, per record compared,
//! counted in the sandboxes' request logs: exact, so one run is enough.
//!
//! Run: `cargo bench --bench reconcile`.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{Figure, Target};
use rbtx::plan::load_pack;
use rbtx::runtime::accounts::Accounts;
use rbtx::runtime::initial;
use rbtx::runtime::reconcile::{self, Options};
use rbtx::runtime::tenant::InvoiceMode;
use rbtx::runtime::worker::Worker;
use rbtx::sandbox::rackbeat::Resource;
use rbtx::sandbox::{self, SandboxConfig};
use rbtx::store::Store;
use rbtx::store::sqlite::SqliteStore;
use serde_json::json;

const SCENARIO: &str = "rbtx reconcile: API requests per record compared";

fn count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (products, invoices) = (
        count("RBTX_BENCH_PRODUCTS", 10_000),
        count("RBTX_BENCH_INVOICES", 2_000),
    );
    let sb = sandbox::start(SandboxConfig {
        // Counted, not timed: Rackbeat's budget would only make the run long.
        rackbeat_rate_limit: 0,
        ..SandboxConfig::default()
    })
    .await
    .expect("sandboxes");
    let mut accounts = Accounts::sandbox(&sb, InvoiceMode::Booked);
    accounts.rackbeat_per_minute = 1_000_000;
    let rb = &sb.rackbeat;
    rb.create(
        Resource::ProductGroup,
        json!({ "number": 1901, "name": "Varer 25 %", "vat_domestic": 25, "vat_eu": 0,
                "vat_abroad": 0, "vat_domestic_exempt": 0 }),
    )
    .expect("group");
    rb.create(
        Resource::Customer,
        json!({ "number": 33001, "name": "Bench AS", "vat_zone": "domestic", "currency": "NOK" }),
    )
    .expect("customer");
    for i in 0..products {
        rb.create(
            Resource::Product,
            json!({ "number": format!("B-{i:05}"), "name": format!("Vare {i}"), "group": 1901,
                    "sales_price": 10 + i % 90 }),
        )
        .expect("product");
    }
    for i in 0..invoices {
        let number = 500_000 + i as u64;
        rb.create_draft_invoice(json!({ "number": number, "customer_id": 33001,
            "lines": [{ "item_id": format!("B-{:05}", i % products.max(1)), "quantity": 1 + i % 5,
                        "line_price": 10 + i % 90 }] }))
            .expect("draft");
        rb.book_invoice(number).expect("booked");
    }
    let store = Arc::new(SqliteStore::in_memory().expect("store"));
    store.migrate().await.expect("migrate");
    let pack = Arc::new(load_pack(&[
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings")
    ]));
    assert!(pack.diagnostics.is_empty(), "{:?}", pack.diagnostics);
    // The initial sync binds Tripletex's own records, as in a real installation.
    let worker = Worker::new(
        store.clone(),
        pack.clone(),
        accounts.tenant().expect("tenant"),
        "bench-initial",
    );
    let options = initial::Options {
        progress: false,
        ..initial::Options::default()
    };
    let synced = initial::run(&worker, &options, &mut Vec::new())
        .await
        .expect("the initial sync");
    assert_eq!(synced.failed(), 0, "{}", synced.table());
    let today = rbtx::dates::today_in_denmark();
    let options = |fix| Options {
        entities: vec!["product".into(), "customer".into(), "invoice".into()],
        since: rbtx::dates::format(today - 30),
        until: rbtx::dates::format(today + 1),
        fix,
        progress: false,
    };
    let reconcile = |fix| {
        let (store, pack) = (store.clone(), pack.clone());
        let tenant = accounts.tenant().expect("tenant");
        async move {
            reconcile::run_on(store, pack, tenant, &options(fix))
                .await
                .expect("reconcile")
        }
    };
    let first = reconcile(true).await;
    let fixed = first.fixed.expect("--fix reports");
    assert!(fixed.failed.is_empty(), "{:?}", fixed.failed);

    let (rb0, tx0) = (sb.rackbeat.requests().len(), sb.tripletex.requests().len());
    let report = reconcile(false).await;
    let rb_requests = sb.rackbeat.requests().len() - rb0;
    let tx_requests = sb.tripletex.requests()[tx0..]
        .iter()
        .filter(|r| !r.path.contains("/token/session"))
        .count();
    assert_eq!(report.differences(), 0, "{}", report.human());
    let compared: usize = report.entities.iter().map(|e| e.rackbeat).sum();
    println!(
        "  {compared} records compared ({products} products, {invoices} invoices and the seed); --fix had queued {}",
        fixed.queued.len()
    );
    for (api, requests) in [("Rackbeat", rb_requests), ("Tripletex", tx_requests)] {
        common::record(Figure {
            scenario: SCENARIO,
            name: &format!("{api} requests"),
            unit: "requests",
            values: vec![requests as f64],
            baseline: Some(("records compared", vec![compared as f64])),
            target: Some(Target::RatioAtMost(0.02)),
            note: "benches/reconcile.rs: `rbtx reconcile` of products, customers and booked invoices in step, in-process against the sandboxes; the ratio is requests per record (lists of 1,000, lookups once)",
        });
    }
}
