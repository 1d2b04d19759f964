//! Webhook-to-Tripletex-write latency at a fixed offered load, as deployed: the sandboxes in one
//! process (standing in for the real APIs), `rbtx run` (SQLite, its default workers) in another,
//! and this process offering the webhooks. Each webhook names a product new to Tripletex, so every
//! event ends in a write (read from Rackbeat, look up in Tripletex, create, bind). The latency of
//! an event runs from sending its webhook to `rbtx run` logging it applied. The baseline, in the
//! same run, is the same three API calls made directly, one after the other.
//! Run: `cargo bench --bench latency`.

mod common;

use std::collections::HashMap;
use std::io::BufRead;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rbtx::connectors::rackbeat::{Rackbeat, RackbeatConfig};
use rbtx::connectors::tripletex::{Tripletex, TripletexConfig};
use rbtx::secret::Secret;
use serde_json::{Value, json};

use common::{Figure, Killed, SandboxProcess, Target};

const RATE: u64 = 200;
const SECONDS: u64 = 8;
const TOKEN: &str = "0123456789abcdef0123456789abcdef";
/// The Rackbeat budget `rbtx run` is given (`RBTX_RACKBEAT_REQUESTS_PER_MINUTE`): each event reads
/// its record from Rackbeat once, so the offered load needs `RATE * 60` requests a minute; this
/// leaves room for retries and the catch-up poll. Real Rackbeat allows 480 a minute per account.
const RACKBEAT_PER_MINUTE: u64 = 60_000;

struct Run {
    p50: f64,
    p99: f64,
    base_p50: f64,
    base_p99: f64,
}

fn main() {
    let runs = common::runs(3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let results: Vec<Run> = (0..runs).map(|_| rt.block_on(one_run())).collect();
    let note = format!(
        "{RATE} webhooks/s offered for {SECONDS} s, each for a product new to Tripletex; processes: \
         `rbtx sandbox --data large`, `rbtx run` (SQLite, default workers), and the load generator, \
         all on the same cores. Latency: webhook sent → `rbtx run` logs the event applied (after the \
         create answered and the binding is stored). Baseline: Rackbeat GET + Tripletex find + \
         Tripletex create, made directly and sequentially from the load generator (40 per run). \
         Rackbeat budget: `RBTX_RACKBEAT_REQUESTS_PER_MINUTE={RACKBEAT_PER_MINUTE}` (the sandbox \
         does not throttle). Real Rackbeat allows 480 requests/min per account, and each event \
         reads its record from Rackbeat once, so one account is capped at ~8 events/s: {RATE} \
         events/s is a figure for many accounts (tenants) together or a raised limit, not one \
         account at the documented limit."
    );
    let pick = |f: fn(&Run) -> f64| results.iter().map(f).collect::<Vec<_>>();
    common::record(Figure {
        scenario: "Webhook-to-write latency",
        name: "p50",
        unit: "ms",
        values: pick(|r| r.p50),
        baseline: Some(("direct API calls p50", pick(|r| r.base_p50))),
        target: None,
        note: &note,
    });
    common::record(Figure {
        scenario: "Webhook-to-write latency",
        name: "p99",
        unit: "ms",
        values: pick(|r| r.p99),
        baseline: Some(("direct API calls p99", pick(|r| r.base_p99))),
        target: Some(Target::Below(25.0)),
        note: &note,
    });
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn one_run() -> Run {
    let sb = common::sandbox_process(&["--data", "large"]);
    let mut rb_config = RackbeatConfig::new(
        sb.rackbeat.as_str(),
        Secret::new(rbtx::sandbox::RACKBEAT_TOKEN),
    );
    rb_config.requests_per_minute = 1_000_000;
    let rb = Rackbeat::new(rb_config).expect("rackbeat");
    let tx = Tripletex::new(TripletexConfig::new(
        sb.tripletex.as_str(),
        Secret::new(rbtx::sandbox::CONSUMER_TOKEN),
        Secret::new(rbtx::sandbox::EMPLOYEE_TOKEN),
    ))
    .expect("tripletex");
    let numbers: Vec<String> = rb
        .list_all("/products", &[])
        .await
        .expect("products")
        .iter()
        .filter_map(|p| p["number"].as_str().map(str::to_string))
        .collect();
    let total = (RATE * SECONDS) as usize;
    assert!(
        numbers.len() >= total + 40,
        "the large seed has {} products",
        numbers.len()
    );

    // Baseline: the three calls one event needs, made directly.
    tx.list_all("/ledger/vatType", &[]).await.expect("session");
    let mut base = Vec::new();
    for n in &numbers[..40] {
        let t = Instant::now();
        rb.get(&format!("/products/{}", url_encode(n)), &[])
            .await
            .expect("get");
        tx.list_all("/product", &[("productNumber", format!("BASE-{n}"))])
            .await
            .expect("find");
        tx.post(
            "/product",
            &[],
            &json!({"name": "baseline", "number": format!("BASE-{n}")}),
        )
        .await
        .expect("create");
        base.push(t.elapsed().as_secs_f64() * 1000.0);
    }

    let (url, applied, _run) = start_rbtx(&sb);
    let client = reqwest::Client::new();
    // Warm the intake's connection pool and rbtx's sessions and lookups before measuring.
    for n in &numbers[40..50] {
        send(&client, &url, n).await;
    }
    wait_for(&applied, 10).await;

    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let offered = &numbers[50..50 + total];
    let started = Instant::now();
    for (i, n) in offered.iter().enumerate() {
        let due = Duration::from_micros(i as u64 * 1_000_000 / RATE);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        sent.lock().expect("sent").insert(n.clone(), Instant::now());
        let (client, url, n) = (client.clone(), url.clone(), n.clone());
        tokio::spawn(async move { send(&client, &url, &n).await });
    }
    wait_for(&applied, 10 + total).await;
    let sent = sent.lock().expect("sent");
    let applied = applied.lock().expect("applied").clone();
    let done: HashMap<&str, Instant> = applied.iter().map(|(k, at)| (k.as_str(), *at)).collect();
    // An event not applied by the deadline counts with its age then: a lower bound, so the
    // percentiles still say how far behind rbtx fell.
    let now = Instant::now();
    let latencies: Vec<f64> = offered
        .iter()
        .filter_map(|n| {
            let at = done.get(n.as_str()).copied().unwrap_or(now);
            Some(at.duration_since(*sent.get(n)?).as_secs_f64() * 1000.0)
        })
        .collect();
    let missing = offered
        .iter()
        .filter(|n| !done.contains_key(n.as_str()))
        .count();
    if missing > 0 {
        println!("{missing} of {total} events not applied within a minute");
    }
    Run {
        p50: common::percentile(&latencies, 0.5),
        p99: common::percentile(&latencies, 0.99),
        base_p50: common::percentile(&base, 0.5),
        base_p99: common::percentile(&base, 0.99),
    }
}

async fn send(client: &reqwest::Client, url: &str, number: &str) {
    let r = client
        .post(url)
        .header("Rackbeat-Webhook-Token", TOKEN)
        .header("Rackbeat-Webhook-Event", "product.created")
        .header("Rackbeat-Account-Id", "12345")
        .body(json!({"key_name": "number", "key": number}).to_string())
        .send()
        .await;
    assert!(
        r.is_ok_and(|r| r.status().is_success()),
        "webhook {number} acknowledged"
    );
}

type Applied = Arc<Mutex<Vec<(String, Instant)>>>;

/// Waits until `n` events were applied (or a minute passed).
async fn wait_for(applied: &Applied, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while applied.lock().expect("applied").len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `rbtx run` against the sandboxes, on a fresh SQLite store: its webhook URL, and the keys of
/// applied events with when their log line arrived.
fn start_rbtx(sb: &SandboxProcess) -> (String, Applied, (Killed, tempdir::Dir)) {
    let dir = tempdir::Dir::new("rbtx-latency-bench");
    let mut child = sb
        .rbtx()
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--catch-up-seconds",
            "3600",
            "--log-format",
            "json",
            "--store",
        ])
        .arg(dir.0.join("store.sqlite"))
        .env("RBTX_RACKBEAT_ACCOUNT_ID", "12345")
        .env("RBTX_RACKBEAT_WEBHOOK_TOKENS", TOKEN)
        .env(
            "RBTX_RACKBEAT_REQUESTS_PER_MINUTE",
            RACKBEAT_PER_MINUTE.to_string(),
        )
        .env("RUST_LOG", "warn,rbtx::runtime::worker=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rbtx run");
    let stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let applied: Applied = Arc::default();
    let sink = applied.clone();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let at = Instant::now();
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if v["message"] == "Applied the event."
                && let Some(key) = v["key"].as_str()
            {
                sink.lock().expect("applied").push((key.to_string(), at));
            }
        }
    });
    // The URL is the first line; the rest is drained so rbtx never writes into a closed pipe.
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if let Some(u) = line.strip_prefix("webhooks: ") {
                url_tx.send(u.trim().to_string()).ok();
            }
        }
    });
    let url = url_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("rbtx run prints its webhook URL");
    (url, applied, (Killed(child), dir))
}

mod tempdir {
    /// A directory removed when dropped.
    pub struct Dir(pub std::path::PathBuf);

    impl Dir {
        pub fn new(prefix: &str) -> Self {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let dir = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            Dir(dir)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            std::fs::remove_dir_all(&self.0).ok();
        }
    }
}
