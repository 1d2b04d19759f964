//! Webhook intake rate on SQLite: deliveries persisted (synchronous=FULL) and acknowledged per
//! second, beside the same HTTP server and client answering without persisting, in the same run.
//! Run: `cargo bench --bench intake`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use rbtx::connectors::Secret;
use rbtx::plan::load_pack;
use rbtx::runtime::intake::{Intake, IntakeTenant};
use rbtx::store::Store;
use rbtx::store::sqlite::SqliteStore;

const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const DELIVERIES: usize = 8_000;
const CONCURRENCY: usize = 64;
const ROUNDS: usize = 3;

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

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let pack = load_pack(&[root.join("mappings")]);
        let dir = std::env::temp_dir().join(format!("rbtx-intake-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let store = Arc::new(SqliteStore::open(dir.join("store.sqlite")).expect("store"));
        store.migrate().await.expect("migrate");
        let tenants = vec![IntakeTenant { id: "bench".into(), account_id: "12345".into(), webhook_tokens: vec![Secret::new(TOKEN)] }];
        let intake_url = serve(Arc::new(Intake::new(store.clone(), tenants, &pack)).router()).await;
        let bare_url = serve(Router::new().route("/webhooks/rackbeat", post(|| async { "{}" }))).await;

        println!("webhook intake, {DELIVERIES} deliveries x {ROUNDS} rounds, {CONCURRENCY} concurrent, SQLite synchronous=FULL");
        let (mut rates, mut bare) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            bare.push(fire(&bare_url).await);
            rates.push(fire(&intake_url).await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        rates.sort_by(f64::total_cmp);
        bare.sort_by(f64::total_cmp);
        let mid = ROUNDS / 2;
        println!("{:<34} {:>10} {:>10} {:>10}", "", "min", "median", "max");
        println!("{:<34} {:>10.0} {:>10.0} {:>10.0}", "intake (persisted) events/s", rates[0], rates[mid], rates[ROUNDS - 1]);
        println!("{:<34} {:>10.0} {:>10.0} {:>10.0}", "bare HTTP 200 requests/s", bare[0], bare[mid], bare[ROUNDS - 1]);
        println!("ratio intake / bare HTTP (median): {:.2}; target: intake >= 5000 events/s", rates[mid] / bare[mid]);
        std::fs::remove_dir_all(&dir).ok();
    });
}
