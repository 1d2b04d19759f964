//! Webhook intake rate: deliveries persisted and acknowledged per second, on SQLite
//! (synchronous=FULL) and on PostgreSQL, each beside the same HTTP server and client answering
//! without persisting (the baseline), in the same round.
//! PostgreSQL comes from `RBTX_TEST_POSTGRES_URL` or a throwaway cluster of the installed server
//! programs, as in the tests; without either that half is skipped.
//! Run: `cargo bench --bench intake`.

mod common;
#[path = "../tests/support/postgres.rs"]
mod postgres;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use rbtx::plan::{Pack, load_pack};
use rbtx::runtime::intake::{Intake, IntakeTenant};
use rbtx::secret::Secret;
use rbtx::store::Store;
use rbtx::store::postgres::PostgresStore;
use rbtx::store::sqlite::SqliteStore;

use common::{Figure, Target};

const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const DELIVERIES: usize = 8_000;
const CONCURRENCY: usize = 64;

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}/webhooks/rackbeat")
}

/// Deliveries per second, `CONCURRENCY` at a time, each answered before the next is sent.
async fn fire(url: &str) -> f64 {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .expect("client");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..CONCURRENCY {
        let (client, url) = (client.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            let mut ok = 0usize;
            for i in (t..DELIVERIES).step_by(CONCURRENCY) {
                let r = client
                    .post(&url)
                    .header("Rackbeat-Webhook-Token", TOKEN)
                    .header("Rackbeat-Webhook-Event", "product.updated")
                    .header("Rackbeat-Account-Id", "12345")
                    .header("Content-Type", "application/json")
                    .body(format!(r#"{{"key_name":"number","key":"BENCH-{i}"}}"#))
                    .send()
                    .await;
                if r.is_ok_and(|r| r.status().is_success()) {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap_or(0);
    }
    assert_eq!(ok, DELIVERIES, "every delivery acknowledged");
    DELIVERIES as f64 / started.elapsed().as_secs_f64()
}

async fn intake_url<S: Store + 'static>(store: Arc<S>, pack: &Pack) -> String {
    store.migrate().await.expect("migrate");
    let tenants = vec![IntakeTenant {
        id: "bench".into(),
        account_id: "12345".into(),
        webhook_tokens: vec![Secret::new(TOKEN)],
    }];
    serve(Arc::new(Intake::new(store, tenants, pack)).router()).await
}

/// Makes the throwaway cluster durable like a production server (it starts with fsync off);
/// false for a server someone else runs (`RBTX_TEST_POSTGRES_URL`), which is left as it is.
async fn durable(admin_url: &str) -> bool {
    if std::env::var_os("RBTX_TEST_POSTGRES_URL").is_some() {
        return false;
    }
    let (client, connection) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
        .await
        .expect("connect to the throwaway cluster");
    tokio::spawn(connection);
    // ALTER SYSTEM refuses to run in a transaction, so one statement at a time.
    for sql in [
        "ALTER SYSTEM SET fsync = on",
        "ALTER SYSTEM SET synchronous_commit = on",
        "ALTER SYSTEM SET full_page_writes = on",
        "SELECT pg_reload_conf()",
    ] {
        client.batch_execute(sql).await.expect(sql);
    }
    true
}

fn main() {
    let runs = common::runs(5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let pack = load_pack(&[root.join("mappings")]);
        let dir = std::env::temp_dir().join(format!("rbtx-intake-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let sqlite_url = intake_url(
            Arc::new(SqliteStore::open(dir.join("store.sqlite")).expect("store")),
            &pack,
        )
        .await;
        let db = postgres::database().await;
        let mut pg = None;
        if let Some(db) = &db {
            let store = PostgresStore::connect(&Secret::new(db.url.as_str()))
                .await
                .expect("connect to PostgreSQL");
            let admin = db.url.rsplit_once('/').map_or(db.url.clone(), |(server, _)| format!("{server}/postgres"));
            pg = Some((intake_url(Arc::new(store), &pack).await, durable(&admin).await));
        }
        let bare_url = serve(Router::new().route("/webhooks/rackbeat", post(|| async { "{}" }))).await;

        println!("webhook intake, {DELIVERIES} deliveries x {runs} rounds, {CONCURRENCY} concurrent");
        let (mut sqlite, mut postgres, mut bare) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            bare.push(fire(&bare_url).await);
            sqlite.push(fire(&sqlite_url).await);
            if let Some((url, _)) = &pg {
                postgres.push(fire(url).await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let note = format!(
            "{DELIVERIES} deliveries per run, {CONCURRENCY} at a time over keep-alive connections, \
             each acknowledged only after its commit (concurrent deliveries share one); the baseline \
             is the same client against an axum route answering 200 without persisting. One process \
             on the shared cores."
        );
        common::record(Figure {
            scenario: "Webhook intake",
            name: "SQLite (synchronous=FULL), events/s",
            unit: "events/s",
            values: sqlite,
            baseline: Some(("bare HTTP 200", bare.clone())),
            target: Some(Target::AtLeast(5000.0)),
            note: &note,
        });
        if let Some((_, durable)) = pg {
            let name = if durable {
                "PostgreSQL (fsync=on, synchronous_commit=on), events/s"
            } else {
                "PostgreSQL (server's own durability settings), events/s"
            };
            common::record(Figure {
                scenario: "Webhook intake",
                name,
                unit: "events/s",
                values: postgres,
                baseline: Some(("bare HTTP 200", bare)),
                target: None,
                note: "PostgreSQL: a local server on the same machine (a throwaway cluster of the installed server programs, or RBTX_TEST_POSTGRES_URL).",
            });
        }
        std::fs::remove_dir_all(&dir).ok();
    });
}
