//! Webhook-to-Tripletex-write latency at a fixed offered load, on SQLite, against the sandboxes
//! in-process. Each webhook names a product that is new to Tripletex, so every event ends in a
//! write (read from Rackbeat, look up in Tripletex, create). The baseline, measured in the same
//! run, is those same three API calls made directly, one after the other.
//! Run: `cargo bench --bench latency`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rbtx::connectors::Secret;
use rbtx::connectors::rackbeat::{Rackbeat, RackbeatConfig};
use rbtx::connectors::tripletex::{Tripletex, TripletexConfig};
use rbtx::plan::load_pack;
use rbtx::runtime::intake::{Intake, IntakeTenant};
use rbtx::runtime::worker::{Handled, Tenant, Worker};
use rbtx::sandbox::{self, DataSize, SandboxConfig};
use rbtx::store::Store;
use rbtx::store::sqlite::SqliteStore;
use serde_json::json;

const RATE: u64 = 200;
const SECONDS: u64 = 8;
const WORKERS: usize = 8;
const TOKEN: &str = "0123456789abcdef0123456789abcdef";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let sb = sandbox::start(SandboxConfig { data: DataSize::Large, ..Default::default() }).await.expect("sandboxes");
        let rb = || {
            let mut c = RackbeatConfig::new(sb.rackbeat.base_url.as_str(), Secret::new(sandbox::RACKBEAT_TOKEN));
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
        let needed = (RATE * SECONDS) as usize + 40;
        assert!(numbers.len() >= needed, "the large seed has {} products", numbers.len());

        // Baseline: the three calls one event needs, made directly.
        let (brb, btx) = (rb(), tx());
        btx.list_all("/ledger/vatType", &[]).await.expect("session");
        let mut base = Vec::new();
        for n in &numbers[..40] {
            let t = Instant::now();
            let enc: String = n.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect();
            brb.get(&format!("/products/{enc}"), &[]).await.expect("get");
            btx.list_all("/product", &[("productNumber", format!("BASE-{n}"))]).await.expect("find");
            btx.post("/product", &[], &json!({"name": "baseline", "number": format!("BASE-{n}")})).await.expect("create");
            base.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        base.sort_by(f64::total_cmp);

        let pack = Arc::new(load_pack(&[PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings")]));
        let dir = std::env::temp_dir().join(format!("rbtx-latency-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let store = Arc::new(SqliteStore::open(dir.join("store.sqlite")).expect("store"));
        store.migrate().await.expect("migrate");
        let tenants = vec![IntakeTenant { id: "t".into(), account_id: "12345".into(), webhook_tokens: vec![Secret::new(TOKEN)] }];
        let intake = Arc::new(Intake::new(store.clone(), tenants, &pack));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/webhooks/rackbeat", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, intake.router()).await });

        // Several workers, as `rbtx run --workers` starts them: the store keeps one key with one
        // worker, and different keys go in parallel.
        let latencies = Arc::new(std::sync::Mutex::new(Vec::<f64>::new()));
        let total = (RATE * SECONDS) as usize;
        for w in 0..WORKERS {
            let worker = Worker::new(
                store.clone(),
                pack.clone(),
                Tenant { id: "t".into(), rackbeat: rb(), tripletex: tx(), invoice_mode: "booked".into() },
                format!("bench-{w}"),
            );
            worker.tenant.tripletex.list_all("/ledger/vatType", &[]).await.expect("warm session");
            let (store, latencies) = (store.clone(), latencies.clone());
            tokio::spawn(async move {
                loop {
                    let events = store.claim(Some("t"), &worker.name, 4, now_ms(), 60_000).await.unwrap_or_default();
                    if events.is_empty() {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        continue;
                    }
                    for e in events {
                        if let Ok(Handled::Completed) = worker.handle(&e, now_ms()).await
                            && let Ok(mut l) = latencies.lock() {
                                l.push((now_ms() - e.received_at) as f64);
                            }
                    }
                }
            });
        }

        // Offer RATE webhooks a second, each for a product Tripletex does not have yet.
        let client = reqwest::Client::new();
        let started = Instant::now();
        for (i, n) in numbers[40..40 + total].iter().enumerate() {
            let due = Duration::from_micros(i as u64 * 1_000_000 / RATE);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
            let (client, url, body) = (client.clone(), url.clone(), json!({"key_name": "number", "key": n}).to_string());
            tokio::spawn(async move {
                client
                    .post(&url)
                    .header("Rackbeat-Webhook-Token", TOKEN)
                    .header("Rackbeat-Webhook-Event", "product.created")
                    .header("Rackbeat-Account-Id", "12345")
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status())
            });
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut lat = loop {
            let l = latencies.lock().map(|l| l.clone()).unwrap_or_default();
            if l.len() >= total || Instant::now() > deadline {
                break l;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        lat.sort_by(f64::total_cmp);
        let written = sb.tripletex.records(rbtx::sandbox::tripletex::Kind::Product).iter().filter(|p| p["number"].as_str().is_some_and(|n| !n.starts_with("BASE-") && numbers[40..40 + total].iter().any(|x| x == n))).count();
        println!("webhook to Tripletex write, {RATE} events/s offered for {SECONDS} s, SQLite, sandboxes in-process");
        println!("{:<40} {:>8} {:>8} {:>8}", "", "p50 ms", "p99 ms", "max ms");
        println!("{:<40} {:>8.1} {:>8.1} {:>8.1}", "webhook -> write (rbtx)", pct(&lat, 0.5), pct(&lat, 0.99), lat[lat.len() - 1]);
        println!("{:<40} {:>8.1} {:>8.1} {:>8.1}", "the same 3 API calls, direct (baseline)", pct(&base, 0.5), pct(&base, 0.99), base[base.len() - 1]);
        println!("events written: {} of {total}; p99 ratio to baseline p99: {:.2}; target p99 < 25 ms", written.min(lat.len()), pct(&lat, 0.99) / pct(&base, 0.99));
        std::fs::remove_dir_all(&dir).ok();
    });
}
