//! `rbtx sync initial` against both sandboxes (in-process), an in-memory SQLite store and the
//! shipped mapping pack: every entity lands in Rackbeat once and linked, a second run changes
//! nothing, an interrupted run resumes at its checkpoint, failures are dead-lettered and retried,
//! and a dry run writes nothing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rbtx::connectors::RetryPolicy;
use rbtx::connectors::rackbeat::{Rackbeat, RackbeatConfig};
use rbtx::connectors::tripletex::{Tripletex, TripletexConfig};
use rbtx::plan::load_pack;
use rbtx::runtime::initial::{self, Counts, INITIAL_SYNC_EVENT, Options, Report, Status};
use rbtx::runtime::tenant::{InvoiceMode, Tenant};
use rbtx::runtime::worker::Worker;
use rbtx::sandbox::faults::FaultConfig;
use rbtx::sandbox::rackbeat::Resource;
use rbtx::sandbox::tripletex::Kind;
use rbtx::sandbox::{self, SandboxConfig, Sandboxes};
use rbtx::secret::Secret;
use rbtx::store::Store;
use rbtx::store::sqlite::SqliteStore;
use serde_json::Value;

const TENANT: &str = "t1";

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        max_retries: 2,
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    }
}

fn worker_on(sb: &Sandboxes, store: Arc<SqliteStore>, page_size: usize) -> Worker<SqliteStore> {
    let mut tx = TripletexConfig::new(
        sb.tripletex.base_url.as_str(),
        Secret::new(sandbox::CONSUMER_TOKEN),
        Secret::new(sandbox::EMPLOYEE_TOKEN),
    );
    tx.retry = quick_retries();
    tx.page_size = page_size;
    let mut rb = RackbeatConfig::new(
        sb.rackbeat.base_url.as_str(),
        Secret::new(sandbox::RACKBEAT_TOKEN),
    );
    rb.retry = quick_retries();
    rb.requests_per_minute = 600_000;
    let tenant = Tenant {
        id: TENANT.into(),
        rackbeat: Rackbeat::new(rb).expect("rackbeat client"),
        tripletex: Tripletex::new(tx).expect("tripletex client"),
        invoice_mode: InvoiceMode::Booked,
    };
    let pack = load_pack(&[PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings")]);
    assert!(pack.diagnostics.is_empty(), "{:?}", pack.diagnostics);
    Worker::new(store, Arc::new(pack), tenant, "initial-sync-test")
}

async fn setup(page_size: usize) -> (Sandboxes, Arc<SqliteStore>, Worker<SqliteStore>) {
    let sb = sandbox::start(SandboxConfig::default())
        .await
        .expect("sandboxes start");
    let store = Arc::new(SqliteStore::in_memory().expect("store"));
    store.migrate().await.expect("migrate");
    let worker = worker_on(&sb, store.clone(), page_size);
    (sb, store, worker)
}

async fn sync(worker: &Worker<SqliteStore>, options: &Options) -> Report {
    initial::run(worker, options, &mut Vec::new())
        .await
        .expect("the sync runs to the end")
}

fn only(entity: &str) -> Options {
    Options {
        entities: vec![entity.to_string()],
        ..Options::default()
    }
}

fn counts<'a>(report: &'a Report, entity: &str) -> &'a Counts {
    &report
        .entities
        .iter()
        .find(|e| e.entity == entity)
        .unwrap_or_else(|| panic!("{entity} is in the report"))
        .counts
}

fn text(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

/// Rackbeat writes (POST/PUT) the sandbox saw.
fn rackbeat_writes(sb: &Sandboxes) -> usize {
    sb.rackbeat
        .requests()
        .iter()
        .filter(|r| r.method == "POST" || r.method == "PUT")
        .count()
}

#[test]
fn entities_run_after_what_they_refer_to() {
    let pack = load_pack(&[PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings")]);
    let names = |wanted: &[&str]| -> Vec<String> {
        let wanted: Vec<String> = wanted.iter().map(|s| s.to_string()).collect();
        initial::order(&pack, &wanted)
            .expect("ordered")
            .iter()
            .map(|p| p.entity.clone())
            .collect()
    };
    let all = names(&[]);
    let at = |e: &str| all.iter().position(|n| n == e).expect(e);
    assert_eq!(all.len(), 5, "{all:?}");
    assert!(at("payment_term") < at("customer"), "{all:?}");
    assert!(at("supplier") < at("product"), "{all:?}");
    assert_eq!(
        names(&["product"]),
        ["supplier", "product"],
        "a product brings its supplier"
    );
    assert_eq!(names(&["customer"]), ["payment_term", "customer"]);
    let err = initial::order(&pack, &["invoice".to_string()]).expect_err("not synced");
    assert!(
        err.to_string()
            .contains("no tripletex_to_rackbeat mapping syncs `invoice`"),
        "{err}"
    );
}

#[tokio::test]
async fn every_entity_lands_in_rackbeat_once_and_linked() {
    let (sb, _store, worker) = setup(3).await;
    let events_before = sb.rackbeat.events().len();
    let report = sync(&worker, &Options::default()).await;
    assert_eq!(report.failed(), 0, "{}", report.table());

    // Customers, active and inactive, each once under its Tripletex number.
    let tx_customers = sb.tripletex.records(Kind::Customer);
    let rb_customers = sb.rackbeat.list(Resource::Customer);
    for c in &tx_customers {
        let number = text(&c["customerNumber"]);
        let found: Vec<_> = rb_customers
            .iter()
            .filter(|r| text(&r["number"]) == number)
            .collect();
        assert_eq!(found.len(), 1, "customer {number} once in Rackbeat");
        assert_eq!(found[0]["name"], c["name"]);
        // Linked to a Rackbeat term with the Tripletex term's days.
        if c["invoicesDueInType"] == "DAYS" {
            let term_no = text(&found[0]["payment_terms_id"]);
            let term = sb
                .rackbeat
                .get(Resource::PaymentTerm, &term_no)
                .expect("the customer's term exists");
            assert_eq!(
                term["maturity_days"].as_i64(),
                c["invoicesDueIn"].as_i64(),
                "customer {number}"
            );
        }
    }
    assert!(
        tx_customers.iter().any(|c| c["isInactive"] == true),
        "the sandbox has an inactive customer, and it came along too"
    );
    let c = counts(&report, "customer");
    assert_eq!(c.read as usize, tx_customers.len());
    assert_eq!(c.created as usize, tx_customers.len());

    // Suppliers before the products that name them.
    let rb_suppliers = sb.rackbeat.list(Resource::Supplier);
    for s in sb.tripletex.records(Kind::Supplier) {
        let number = text(&s["supplierNumber"]);
        assert_eq!(
            rb_suppliers
                .iter()
                .filter(|r| text(&r["number"]) == number)
                .count(),
            1,
            "supplier {number}"
        );
    }
    let rb_products = sb.rackbeat.list(Resource::Product);
    for p in sb.tripletex.records(Kind::Product) {
        let number = text(&p["number"]);
        if number.is_empty() {
            continue;
        }
        assert_eq!(
            rb_products
                .iter()
                .filter(|r| text(&r["number"]) == number)
                .count(),
            1,
            "product {number}"
        );
    }
    assert!(counts(&report, "employee").created > 0);
    assert_eq!(
        sb.rackbeat.events().len(),
        events_before,
        "suppress_webhooks: no write echoed back as a webhook event"
    );
}

#[tokio::test]
async fn a_second_run_changes_nothing() {
    let (sb, _store, worker) = setup(1000).await;
    let first = sync(&worker, &Options::default()).await;
    assert_eq!(first.failed(), 0, "{}", first.table());
    let writes = rackbeat_writes(&sb);
    assert!(writes > 20);

    let second = sync(&worker, &Options::default()).await;
    for e in &second.entities {
        let c = &e.counts;
        assert_eq!(e.status, Status::Synced);
        assert_eq!(
            (c.created, c.updated, c.failed),
            (0, 0, 0),
            "{}: {c:?}",
            e.entity
        );
        assert_eq!(c.read, counts(&first, &e.entity).read);
    }
    assert_eq!(rackbeat_writes(&sb), writes, "nothing was sent again");
}

#[tokio::test]
async fn an_interrupted_sync_resumes_at_its_checkpoint() {
    // Pages of two, and slow Rackbeat answers, so the sync is stopped part-way through customers.
    let (sb, store, worker) = setup(2).await;
    sb.rackbeat.set_faults(FaultConfig {
        latency_ms: 15,
        ..FaultConfig::default()
    });
    let options = Options {
        concurrency: 1,
        ..Options::default()
    };
    let stopped = async {
        loop {
            let at = store
                .get_checkpoint(TENANT, "initial_sync customer")
                .await
                .expect("store");
            if at.as_deref() == Some("0:4") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    let mut sink = Vec::new();
    tokio::select! {
        _ = initial::run(&worker, &options, &mut sink) => panic!("the sync should have been stopped"),
        _ = stopped => {}
    }
    sb.rackbeat.set_faults(FaultConfig::default());
    let created_before = sb.rackbeat.list(Resource::Customer).len();

    let report = sync(&worker, &options).await;
    assert_eq!(report.failed(), 0, "{}", report.table());
    let status = |e: &str| {
        report
            .entities
            .iter()
            .find(|r| r.entity == e)
            .expect(e)
            .status
            .clone()
    };
    assert_eq!(status("payment_term"), Status::DoneEarlier);
    match status("customer") {
        Status::Resumed { list: 0, from } => assert!(from >= 4, "{from}"),
        other => panic!("customer resumed, not {other:?}"),
    }
    let tx_customers = sb.tripletex.records(Kind::Customer);
    assert!(
        (counts(&report, "customer").read as usize) < tx_customers.len(),
        "the resumed run did not read the customers again from the start"
    );
    let rb_customers = sb.rackbeat.list(Resource::Customer);
    assert!(rb_customers.len() > created_before);
    for c in &tx_customers {
        let number = text(&c["customerNumber"]);
        assert_eq!(
            rb_customers
                .iter()
                .filter(|r| text(&r["number"]) == number)
                .count(),
            1,
            "customer {number} exactly once"
        );
    }
    // It got to the end: the next sync starts from the beginning again.
    let again = sync(&worker, &options).await;
    assert!(again.entities.iter().all(|e| e.status == Status::Synced));
}

#[tokio::test]
async fn failed_records_are_dead_lettered_then_retried() {
    let (sb, store, mut worker) = setup(1000).await;
    // Every Rackbeat write fails: the sync goes on and files each record.
    sb.rackbeat.set_faults(FaultConfig {
        rate_5xx: 1.0,
        writes_only: true,
        ..FaultConfig::default()
    });
    let failed = sync(&worker, &only("supplier")).await;
    let suppliers = sb.tripletex.records(Kind::Supplier).len();
    assert_eq!(counts(&failed, "supplier").failed as usize, suppliers);
    assert_eq!(failed.failures.len(), suppliers);
    assert!(
        failed.table().contains("Failed records:"),
        "{}",
        failed.table()
    );
    let dead = store.list_dead_letters().await.expect("dlq");
    assert_eq!(dead.len(), suppliers);
    for d in &dead {
        assert_eq!(
            (d.event.event.as_str(), d.event.entity.as_str()),
            (INITIAL_SYNC_EVENT, "supplier")
        );
        assert!(d.reason.contains("POST /suppliers"), "{}", d.reason);
        assert!(
            d.event.payload["supplierNumber"].is_number(),
            "the Tripletex record is kept"
        );
    }

    // Failing again files each record once, not twice.
    sync(&worker, &only("supplier")).await;
    assert_eq!(
        store.list_dead_letters().await.expect("dlq").len(),
        suppliers
    );

    // Replaying one through the queue is refused: it would write the copy read back then.
    sb.rackbeat.set_faults(FaultConfig::default());
    let first = store.list_dead_letters().await.expect("dlq")[0].clone();
    assert!(store.replay(first.id).await.expect("replay"));
    worker.batch = 1;
    assert_eq!(
        worker
            .run_once(rbtx::dates::now_millis())
            .await
            .expect("the worker runs"),
        1
    );
    let again = store.list_dead_letters().await.expect("dlq");
    assert_eq!(again.len(), suppliers, "back in the dead letters");
    assert!(
        again
            .iter()
            .any(|d| d.reason.contains("rbtx sync initial --entities supplier")),
        "{again:#?}"
    );

    // Fixed: the next sync writes them all and drops their dead letters.
    let fixed = sync(&worker, &only("supplier")).await;
    let c = counts(&fixed, "supplier");
    assert_eq!((c.created, c.failed), (suppliers as u64, 0));
    assert!(store.list_dead_letters().await.expect("dlq").is_empty());
}

#[tokio::test]
async fn a_dry_run_prints_requests_and_writes_nothing() {
    let (sb, store, mut worker) = setup(1000).await;
    worker.dry_run = true;
    let mut out = Vec::new();
    let report = initial::run(
        &worker,
        &Options {
            dry_run: true,
            ..Options::default()
        },
        &mut out,
    )
    .await
    .expect("dry run");
    assert_eq!(report.failed(), 0, "{}", report.table());
    assert!(report.table().contains("would create"));
    assert_eq!(rackbeat_writes(&sb), 0);
    let lines: Vec<Value> = String::from_utf8(out)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let customers = sb.tripletex.records(Kind::Customer).len();
    assert_eq!(
        lines.iter().filter(|l| l["entity"] == "customer").count(),
        customers
    );
    let post = lines
        .iter()
        .find(|l| l["entity"] == "customer" && l["request"]["body"]["payment_terms_id"].is_string())
        .expect("a customer with a term");
    assert_eq!(post["request"]["method"], "POST");
    assert!(
        post["request"]["body"]["payment_terms_id"]
            .as_str()
            .is_some_and(|s| s.starts_with("<payment_term ")),
        "a term that would be created stands in for its number: {post}"
    );
    assert_eq!(
        store
            .get_checkpoint(TENANT, "initial_sync customer")
            .await
            .expect("store"),
        None
    );
}
