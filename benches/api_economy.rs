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
//! 4. `rbtx run` (intake, four workers) with Rackbeat at 480 requests/min and Tripletex at 10/s:
//!    2,000 new products made in Rackbeat within 10 s, then a price change of each within 10 s.
//!    Seconds from the first change until Tripletex holds them all, and requests per record.
//!
//! Run: `cargo bench --bench api_economy`.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Figure, Target};
use rbtx::plan::load_pack;
use rbtx::runtime::accounts::Accounts;
use rbtx::runtime::initial::{self, Options};
use rbtx::runtime::run::{RunConfig, TenantSource};
use rbtx::runtime::tenant::InvoiceMode;
use rbtx::runtime::worker::Worker;
use rbtx::sandbox::rackbeat::Resource;
use rbtx::sandbox::{self, SandboxConfig, Sandboxes};
use rbtx::store::Location;
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
        // Counted, not timed: Rackbeat's budget would only make the run long.
        rackbeat_rate_limit: 0,
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
    // Real time: lists of changes start at the events' arrival, as in production.
    let mut now = rbtx::dates::now_millis();

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
        note: "benches/api_economy.rs: the echo's events are read with lists of what changed (`source.changed`), 200 a claim, instead of a GET each (was 1.0)",
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
    assert_eq!(
        writes(tx_changes),
        PRODUCTS.div_ceil(100),
        "one PUT list per 100 price changes"
    );
    common::record(Figure {
        scenario: SCENARIO,
        name: "200 product price changes: Tripletex requests",
        unit: "requests",
        values: vec![tx_changes.len() as f64],
        baseline: Some(("records", vec![PRODUCTS as f64])),
        target: None,
        note: "benches/api_economy.rs: `PUT /product/list` of the changed prices, 100 a request, with the bindings' versions and no GET first (was a GET and a PUT each, 2.0)",
    });
    common::record(Figure {
        scenario: SCENARIO,
        name: "200 product price changes: Rackbeat requests",
        unit: "requests",
        values: vec![(sb.rackbeat.requests().len() - rb0) as f64],
        baseline: Some(("records", vec![PRODUCTS as f64])),
        target: None,
        note: "benches/api_economy.rs: one list of what changed for the claim (was a GET each, 1.0)",
    });
}

const BURST: usize = 2_000;

/// A burst made in Rackbeat within 10 s through `rbtx run` with the APIs' budgets: returns the
/// seconds until Tripletex holds every change, and the requests each sandbox answered meanwhile.
async fn burst(
    sb: &Sandboxes,
    change: impl Fn(usize) -> (String, bool, Value),
    arrived: impl Fn(&[Value]) -> usize,
) -> (f64, u64, u64) {
    let (rb0, tx0) = (
        sb.rackbeat.request_counts().total,
        sb.tripletex.request_counts().total,
    );
    let started = Instant::now();
    for i in 0..BURST {
        let (key, create, body) = change(i);
        if create {
            sb.rackbeat.create(Resource::Product, body)
        } else {
            sb.rackbeat.update(Resource::Product, &key, body)
        }
        .expect("a change in Rackbeat");
        // 2,000 changes spread over 10 s.
        if i % 20 == 19 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let deadline = started + Duration::from_secs(600);
    loop {
        let products = sb
            .tripletex
            .records(rbtx::sandbox::tripletex::Kind::Product);
        if arrived(&products) == BURST {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the burst did not arrive in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (
        started.elapsed().as_secs_f64(),
        sb.rackbeat.request_counts().total - rb0,
        sb.tripletex.request_counts().total - tx0,
    )
}

async fn bursts() {
    let sb = sandbox::start(SandboxConfig {
        rackbeat_rate_limit: 480,
        tripletex_rate_limit: Some(10),
        tripletex_rate_period_seconds: 1,
        ..SandboxConfig::default()
    })
    .await
    .expect("sandboxes");
    let dir = std::env::temp_dir().join(format!("rbtx-bench-burst-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let mut accounts = Accounts::sandbox(&sb, InvoiceMode::Booked);
    accounts.account_id = Some(sandbox::RACKBEAT_ACCOUNT_ID.to_string());
    let config = RunConfig {
        pack: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings"),
        store: Location::Sqlite(dir.join("store.sqlite")),
        listen: "127.0.0.1:0".parse().expect("an address"),
        public_url: None,
        tenants: TenantSource::Given {
            accounts: vec![accounts],
            subscribe: true,
        },
        workers: 4,
        catch_up_seconds: 3600,
        reconcile_every_seconds: None,
        lease_ms: 60_000,
        watch: false,
        console_token: None,
        alerts: Default::default(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (up, is_up) = tokio::sync::oneshot::channel::<String>();
    let server = tokio::spawn(rbtx::runtime::run::run(
        config,
        move |url| {
            up.send(url.to_string()).ok();
        },
        async {
            stopped.await.ok();
        },
    ));
    is_up.await.expect("rbtx run starts");
    let number = |i: usize| format!("BURST-{i:04}");
    let ours = |p: &&Value| {
        p["number"]
            .as_str()
            .is_some_and(|n| n.starts_with("BURST-"))
    };

    let (secs, rb, tx) = burst(
        &sb,
        |i| {
            let body = json!({ "number": number(i), "name": format!("Vare {i}"), "group": 1001, "sales_price": 100 + i });
            (number(i), true, body)
        },
        |products| products.iter().filter(ours).count(),
    )
    .await;
    figures("2,000 new products in a burst", secs, rb, tx);

    let (secs, rb, tx) = burst(
        &sb,
        |i| (number(i), false, json!({ "sales_price": 5000 + i })),
        |products| {
            products
                .iter()
                .filter(ours)
                .filter(|p| {
                    p["priceExcludingVatCurrency"]
                        .as_f64()
                        .is_some_and(|v| v >= 5000.0)
                })
                .count()
        },
    )
    .await;
    figures("2,000 price changes in a burst", secs, rb, tx);
    stop.send(()).ok();
    server.await.ok();
    std::fs::remove_dir_all(&dir).ok();
}

fn figures(what: &str, secs: f64, rb: u64, tx: u64) {
    let note = "benches/api_economy.rs: `rbtx run` in-process (intake, 4 workers) against the sandboxes at Rackbeat 480/min and Tripletex 10/s; changes made within 10 s through the Rackbeat sandbox's own handle, whose webhooks reach the intake; bulk reads (`source.changed`) and writes (`target.batch`)";
    common::record(Figure {
        scenario: SCENARIO,
        name: &format!("{what}: seconds until Tripletex holds every change"),
        unit: "s",
        values: vec![secs],
        baseline: None,
        target: Some(Target::AtMost(60.0)),
        note,
    });
    common::record(Figure {
        scenario: SCENARIO,
        name: &format!("{what}: Rackbeat requests"),
        unit: "requests",
        values: vec![rb as f64],
        baseline: Some(("records", vec![BURST as f64])),
        target: Some(Target::RatioAtMost(0.02)),
        note,
    });
    common::record(Figure {
        scenario: SCENARIO,
        name: &format!("{what}: Tripletex requests"),
        unit: "requests",
        values: vec![tx as f64],
        baseline: Some(("records", vec![BURST as f64])),
        target: Some(Target::RatioAtMost(0.03)),
        note,
    });
}

fn main() {
    let customers = std::env::var("RBTX_BENCH_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(run(customers));
    runtime.block_on(bursts());
}
