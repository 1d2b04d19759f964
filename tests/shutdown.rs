//! Stopping `rbtx run` while events are in flight: each worker finishes the events in hand (a batch
//! synced together finishes together) and puts the rest of its claim back, so nothing waits for a lease to expire and nothing is lost; a new
//! start applies every event exactly once.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rbtx::runtime::accounts::Accounts;
use rbtx::runtime::run::{RunConfig, TenantSource};
use rbtx::runtime::tenant::InvoiceMode;
use rbtx::sandbox::faults::FaultConfig;
use rbtx::sandbox::rackbeat::Resource;
use rbtx::sandbox::tripletex::Kind;
use rbtx::sandbox::{self, SandboxConfig, Sandboxes};
use rbtx::store::sqlite::SqliteStore;
use rbtx::store::{Location, Store};
use serde_json::json;

// More than a claim (200): events synced together finish together, so a stop mid-burst leaves
// the ones no worker claimed yet.
const PRODUCTS: usize = 500;
/// Far longer than the test: an event left claimed would not be taken over in time.
const LEASE_MS: i64 = 120_000;

fn config(sb: &Sandboxes, store: &std::path::Path, subscribe: bool) -> RunConfig {
    let mut accounts = Accounts::sandbox(sb, InvoiceMode::Booked);
    accounts.account_id = Some(sandbox::RACKBEAT_ACCOUNT_ID.to_string());
    if !subscribe {
        // The restart only works the queue; no delivery comes to it.
        accounts.webhook_tokens = vec![rbtx::secret::Secret::new("not-delivered-to")];
    }
    RunConfig {
        pack: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings"),
        store: Location::Sqlite(store.to_path_buf()),
        listen: "127.0.0.1:0".parse().expect("address"),
        public_url: None,
        tenants: TenantSource::Given {
            accounts: vec![accounts],
            subscribe,
        },
        workers: 2,
        catch_up_seconds: 3600,
        reconcile_every_seconds: None,
        lease_ms: LEASE_MS,
        watch: false,
        console_token: None,
        alerts: Default::default(),
    }
}

fn arrived(sb: &Sandboxes) -> Vec<String> {
    sb.tripletex
        .records(Kind::Product)
        .iter()
        .filter_map(|p| p["number"].as_str())
        .filter(|n| n.starts_with("STOP-"))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_puts_unstarted_work_back_and_a_restart_finishes_it_once() {
    let sb = sandbox::start(SandboxConfig::default())
        .await
        .expect("sandboxes");
    let dir = std::env::temp_dir().join(format!("rbtx-shutdown-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let store_path = dir.join("store.sqlite");

    // The first run subscribes the intake; Rackbeat redelivers to that URL, which a restart on
    // another port would not get, so the events must already be queued when it stops.
    let first = support::start_run(config(&sb, &store_path, true)).await;
    // Slow Tripletex answers, so the workers are mid-batch when the stop comes.
    sb.tripletex.set_faults(FaultConfig {
        latency_ms: 40,
        ..FaultConfig::default()
    });
    for i in 0..PRODUCTS {
        sb.rackbeat
            .create(
                Resource::Product,
                json!({"number": format!("STOP-{i:02}"), "name": format!("Vare {i}"), "group": 1001, "sales_price": 10}),
            )
            .expect("product");
    }
    let store = SqliteStore::open(&store_path).expect("store");
    let started = Instant::now();
    while store.queue_depth().await.expect("depth") < (PRODUCTS as u64) / 2
        || arrived(&sb).is_empty()
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "events queued and some applied"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stopping = Instant::now();
    first.stop().await.expect("stopped cleanly");
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "stopping finishes the events in hand, not the queue"
    );
    let done_before = arrived(&sb).len();
    assert!(
        done_before < PRODUCTS,
        "stopped part-way ({done_before} applied)"
    );

    // Nothing is left claimed: every open event can be taken at once, long before any lease ends.
    let open = store.queue_depth().await.expect("depth");
    let now = rbtx::dates::now_millis();
    let claimable = store
        .claim(None, "probe", 1000, now, 1)
        .await
        .expect("claim");
    assert_eq!(claimable.len() as u64, open, "no event kept its lease");
    for e in &claimable {
        assert!(store.release(e.id, "probe").await.expect("release"));
    }

    sb.tripletex.set_faults(FaultConfig::default());
    let second = support::start_run(config(&sb, &store_path, false)).await;
    // A deadline for a hang, not a speed check: on a loaded machine the first run's bursts are
    // smaller, cost more requests, and the restart waits on Rackbeat's budget of 480 a minute.
    let started = Instant::now();
    while arrived(&sb).len() < PRODUCTS {
        if started.elapsed() > Duration::from_secs(120) {
            let dead = store.list_dead_letters().await.expect("dead letters");
            panic!(
                "the restart applies the rest ({} of {PRODUCTS}; {} open, {} dead letters {:?}; {} Rackbeat and {} Tripletex requests)",
                arrived(&sb).len(),
                store.queue_depth().await.expect("depth"),
                dead.len(),
                dead.iter().map(|d| &d.reason).take(3).collect::<Vec<_>>(),
                sb.rackbeat.requests().len(),
                sb.tripletex.requests().len(),
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut numbers = arrived(&sb);
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers.len(), PRODUCTS, "each product exactly once");
    assert_eq!(arrived(&sb).len(), PRODUCTS, "no duplicates");
    second.stop().await.expect("stopped cleanly");
    std::fs::remove_dir_all(&dir).ok();
}
