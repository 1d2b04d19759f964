//! The console's pages answer in under 100 ms with 100,000 events of activity and 10,000 dead
//! letters in the store (issue #13): each page is asked for over HTTP, as a browser would, and
//! timed from request to last byte. The baseline, measured in the same run, is the sign-in form,
//! which reads nothing from the store, so the ratio is what the store's queries add.
//!
//! Run: `cargo bench --bench console` (`RBTX_BENCH_RUNS` requests per page, default 30).

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use common::{Figure, Target};
use rbtx::connectors::rackbeat::{Rackbeat, RackbeatConfig};
use rbtx::connectors::tripletex::{Tripletex, TripletexConfig};
use rbtx::console::auth::Tokens;
use rbtx::console::{Console, ConsoleTenant};
use rbtx::plan::load_pack;
use rbtx::runtime::status::Status;
use rbtx::runtime::tenant::InvoiceMode;
use rbtx::secret::Secret;
use rbtx::store::sqlite::SqliteStore;
use rbtx::store::{NewActivity, NewEvent, Store};
use serde_json::json;

const SCENARIO: &str = "console: a page with 100,000 events and 10,000 dead letters in the store";
const EVENTS: usize = 100_000;
const DEAD_LETTERS: usize = 10_000;
const ENTITIES: [&str; 4] = ["product", "customer", "supplier", "invoice"];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = std::env::temp_dir().join(format!("rbtx-bench-console-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let store = Arc::new(SqliteStore::open(dir.join("store.sqlite")).expect("store"));
    store.migrate().await.expect("migrate");
    fill(&store).await;

    let pack = load_pack(&[PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings")]);
    assert!(pack.diagnostics.is_empty());
    let (_tx, packs) = tokio::sync::watch::channel(Arc::new(pack));
    // The pages timed here read no API: the clients point nowhere.
    let tenant = ConsoleTenant {
        id: "default".into(),
        invoice_mode: InvoiceMode::Booked,
        rackbeat: Rackbeat::new(RackbeatConfig::new("http://127.0.0.1:9", Secret::new("x")))
            .expect("client"),
        tripletex: Tripletex::new(TripletexConfig::new(
            "http://127.0.0.1:9",
            Secret::new("x"),
            Secret::new("x"),
        ))
        .expect("client"),
    };
    let tokens = Tokens {
        global: Some(Secret::new("bench")),
        tenants: Vec::new(),
    };
    let status = Arc::new(Status::default());
    status.pack_loaded("the shipped pack".into(), 10, 0);
    let console = Arc::new(Console::new(
        store.clone(),
        vec![tenant],
        tokens,
        status,
        packs,
        false,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, console.router()).await });

    let http = reqwest::Client::new();
    let runs = common::runs(30);
    let time = async |path: &str| -> Vec<f64> {
        let mut out = Vec::new();
        for i in 0..runs + 3 {
            let started = Instant::now();
            let answer = http
                .get(format!("{origin}{path}"))
                .bearer_auth("bench")
                .send()
                .await
                .expect("answer");
            assert!(answer.status().is_success(), "{path}: {}", answer.status());
            answer.bytes().await.expect("body");
            // The first few warm the connection and SQLite's page cache.
            if i >= 3 {
                out.push(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
        out
    };
    let baseline = time("/console/login").await;
    for (name, path) in [
        ("status", "/console/"),
        ("activity", "/console/activity"),
        (
            "activity, one entity and outcome",
            "/console/activity?entity=customer&outcome=dead_lettered",
        ),
        ("activity, text search", "/console/activity?q=KEY-99999"),
        ("activity, an older page", "/console/activity?before=50000"),
        ("dead letters", "/console/dead-letters"),
        (
            "dead letters, text search",
            "/console/dead-letters?q=KEY-0004",
        ),
        ("event", "/console/events/99999"),
    ] {
        common::record(Figure {
            scenario: SCENARIO,
            name,
            unit: "ms",
            values: time(path).await,
            baseline: Some(("the sign-in form", baseline.clone())),
            target: Some(Target::Below(100.0)),
            note: "benches/console.rs: GET over HTTP on 127.0.0.1 with a bearer token, SQLite store, request to last byte",
        });
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// 100,000 handled events over four entities (one in ten failed) and 10,000 dead letters.
async fn fill(store: &SqliteStore) {
    let started = Instant::now();
    let now = rbtx::dates::now_millis();
    let rows: Vec<NewActivity> = (0..EVENTS)
        .map(|i| {
            let failed = i % 10 == 0;
            NewActivity {
                tenant: "default".into(),
                event_id: i as i64 + 1,
                entity: ENTITIES[i % ENTITIES.len()].into(),
                key: format!("KEY-{i:05}"),
                event: format!("{}.updated", ENTITIES[i % ENTITIES.len()]),
                outcome: if failed { "dead_lettered" } else { "completed" }.into(),
                message: failed
                    .then(|| "body.vatType.id: lookup `vat_code` has no entry for `7`".to_string()),
                target_id: (!failed).then(|| json!(100_000 + i)),
                took_ms: 12,
                at: now - (EVENTS - i) as i64 * 1000,
            }
        })
        .collect();
    for chunk in rows.chunks(5_000) {
        store
            .record_activity(chunk.to_vec())
            .await
            .expect("activity");
    }
    for i in 0..DEAD_LETTERS {
        let event = NewEvent {
            tenant: "default".into(),
            entity: ENTITIES[i % ENTITIES.len()].into(),
            key: format!("KEY-{i:05}"),
            event: format!("{}.updated", ENTITIES[i % ENTITIES.len()]),
            payload: json!({"key_name": "number", "key": format!("KEY-{i:05}")}),
            received_at: now,
        };
        let detail = json!({"response": {"status": 422, "code": 18000, "message": "Validering feilet.",
            "validationMessages": [{"field": "name", "message": "Feltet må fylles ut."}]}});
        store
            .put_dead_letter(
                event,
                "POST /product: 422/18000 Validering feilet. [name: Feltet må fylles ut.]",
                Some("rackbeat-to-tripletex/product.yaml"),
                Some("name"),
                Some(&detail),
            )
            .await
            .expect("dead letter");
    }
    println!(
        "  store filled with {EVENTS} events of activity and {DEAD_LETTERS} dead letters in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
