//! What `rbtx run` spends of the APIs' budgets (issue #12), counted in the sandboxes' request logs:
//! the workers of a tenant share one Tripletex session and read each lookup table once.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rbtx::runtime::accounts::Accounts;
use rbtx::runtime::run::{RunConfig, TenantSource};
use rbtx::runtime::tenant::InvoiceMode;
use rbtx::sandbox::rackbeat::Resource;
use rbtx::sandbox::tripletex::Kind;
use rbtx::sandbox::{self, SandboxConfig};
use rbtx::store::Location;
use serde_json::json;

const PRODUCTS: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_share_one_session_and_one_load_of_each_lookup() {
    let sb = sandbox::start(SandboxConfig::default())
        .await
        .expect("sandboxes");
    let dir = std::env::temp_dir().join(format!("rbtx-api-budget-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut accounts = Accounts::sandbox(&sb, InvoiceMode::Booked);
    accounts.account_id = Some(sandbox::RACKBEAT_ACCOUNT_ID.to_string());
    let config = RunConfig {
        pack: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings"),
        store: Location::Sqlite(dir.join("store.sqlite")),
        listen: "127.0.0.1:0".parse().expect("address"),
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
    let from = sb.tripletex.requests().len();
    let server = support::start_run(config).await;
    for i in 0..PRODUCTS {
        sb.rackbeat
            .create(
                Resource::Product,
                json!({ "number": format!("BUDGET-{i}"), "name": format!("Vare {i}"), "group": 1001, "sales_price": 100 + i }),
            )
            .expect("a product in Rackbeat");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let arrived = sb
            .tripletex
            .records(Kind::Product)
            .iter()
            .filter(|p| {
                p["number"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("BUDGET-"))
            })
            .count();
        if arrived == PRODUCTS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{arrived} of {PRODUCTS} products arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await.expect("run stops");

    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in &sb.tripletex.requests()[from..] {
        *counts
            .entry(format!("{} {}", r.method, r.path))
            .or_default() += 1;
    }
    assert_eq!(
        counts.get("POST /v2/token/session/:create"),
        Some(&1),
        "one session for four workers: {counts:#?}"
    );
    for lookup in ["GET /v2/ledger/vatType", "GET /v2/product/unit"] {
        assert_eq!(
            counts.get(lookup),
            Some(&1),
            "{lookup} read once for four workers: {counts:#?}"
        );
    }
}

/// The initial sync lists the customers already in Rackbeat once, then writes each new one with a
/// single POST: no GET of the customer before it (was a find and a POST, 2 requests a record).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_initial_sync_creates_a_new_customer_with_one_request() {
    let env = support::worker::env("booked", "initial-budget").await;
    let from = env.sb.rackbeat.requests().len();
    let options = rbtx::runtime::initial::Options {
        entities: vec!["customer".into()],
        progress: false,
        ..Default::default()
    };
    let report = rbtx::runtime::initial::run(&env.worker, &options, &mut Vec::new())
        .await
        .expect("the initial sync");
    assert_eq!(report.failed(), 0, "{}", report.table());
    let customers = env.sb.tripletex.records(Kind::Customer).len();
    let requests = &env.sb.rackbeat.requests()[from..];
    let count = |method: &str, prefix: &str, exact: bool| {
        requests
            .iter()
            .filter(|r| r.method == method)
            .filter(|r| {
                let path = r.path.strip_prefix("/api").unwrap_or(&r.path);
                if exact {
                    path == prefix
                } else {
                    path.starts_with(prefix)
                }
            })
            .count()
    };
    assert_eq!(count("POST", "/customers", true), customers);
    assert_eq!(
        count("GET", "/customers/", false),
        0,
        "no find per customer"
    );
    // One page of the customers already there, and the look at the newest one that starts real
    // time's catch-up window where the sync ends.
    let lists: Vec<String> = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/customers"))
        .map(|r| r.query.clone().unwrap_or_default())
        .collect();
    assert_eq!(lists.len(), 2, "{lists:?}");
    assert_eq!(
        lists
            .iter()
            .filter(|q| q.contains("order_direction=DESC"))
            .count(),
        1,
        "{lists:?}"
    );
}

/// The same without the scheduling left to chance: four clones of one tenant's Tripletex client
/// and one lookup cache, used at the same moment, open one session and read each table once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clones_of_a_tenant_s_client_and_cache_read_once_when_used_together() {
    let env = support::worker::env("booked", "shared-budget").await;
    let pack = env.worker.pack.clone();
    let plan = pack
        .plan(rbtx::spec::Direction::RackbeatToTripletex, "product")
        .expect("the product mapping");
    assert!(!plan.api_lookups.is_empty());
    let cache = rbtx::runtime::lookups::LookupCache::default();
    let from = env.sb.tripletex.requests().len();
    let tenant = &env.worker.tenant;
    let clones: Vec<rbtx::runtime::tenant::Tenant> = (0..4)
        .map(|_| rbtx::runtime::tenant::Tenant {
            id: tenant.id.clone(),
            rackbeat: tenant.rackbeat.clone(),
            tripletex: tenant.tripletex.clone(),
            invoice_mode: tenant.invoice_mode,
        })
        .collect();
    let loads = clones.iter().map(|t| cache.tables(&pack, t, plan));
    for tables in futures_util::future::join_all(loads).await {
        assert_eq!(tables.expect("tables").len(), plan.api_lookups.len());
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in &env.sb.tripletex.requests()[from..] {
        *counts
            .entry(format!("{} {}", r.method, r.path))
            .or_default() += 1;
    }
    assert_eq!(
        counts.get("POST /v2/token/session/:create"),
        Some(&1),
        "{counts:#?}"
    );
    for l in &plan.api_lookups {
        assert_eq!(
            counts.get(&format!("GET /v2{}", l.path)),
            Some(&1),
            "{counts:#?}"
        );
    }
}
