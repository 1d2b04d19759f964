//! Crash safety: `rbtx run` is killed with SIGKILL while hundreds of events are in flight, then
//! started again on the same store. Every product reaches Tripletex, each exactly once.
//!
//! The sandboxes run in their own process (`rbtx sandbox`), so they outlive the crash; Rackbeat's
//! retries (shortened through the sandbox's admin surface) redeliver what the dead process refused.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rbtx::connectors::rackbeat::{Rackbeat, RackbeatConfig};
use rbtx::connectors::tripletex::{Tripletex, TripletexConfig};
use rbtx::connectors::{RetryPolicy, Secret};
use rbtx::sandbox;
use serde_json::{Value, json};

const PRODUCTS: usize = 300;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

fn first_lines(child: &mut Child, n: usize) -> Vec<String> {
    let stdout = child.stdout.take().expect("stdout");
    BufReader::new(stdout)
        .lines()
        .take(n)
        .map_while(Result::ok)
        .collect()
}

fn start_rbtx(port: u16, store: &std::path::Path, tx_url: &str, rb_url: &str) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rbtx"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "run",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--lease-seconds",
            "1",
            "--store",
        ])
        .arg(store)
        .env("RBTX_TRIPLETEX_URL", tx_url)
        .env("RBTX_RACKBEAT_URL", rb_url)
        .env("RBTX_TRIPLETEX_CONSUMER_TOKEN", sandbox::CONSUMER_TOKEN)
        .env("RBTX_TRIPLETEX_EMPLOYEE_TOKEN", sandbox::EMPLOYEE_TOKEN)
        .env("RBTX_RACKBEAT_TOKEN", sandbox::RACKBEAT_TOKEN)
        .env(
            "RBTX_RACKBEAT_ACCOUNT_ID",
            sandbox::RACKBEAT_ACCOUNT_ID.to_string(),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rbtx run");
    let lines = first_lines(&mut child, 1);
    assert!(
        lines.first().is_some_and(|l| l.starts_with("webhooks:")),
        "{lines:?}"
    );
    Running(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_loses_and_duplicates_nothing() {
    let dir = std::env::temp_dir().join(format!("rbtx-crash-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let store = dir.join("store.sqlite");

    let mut sb = Command::new(env!("CARGO_BIN_EXE_rbtx"))
        .args([
            "sandbox",
            "--tripletex-addr",
            "127.0.0.1:0",
            "--rackbeat-addr",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the sandboxes");
    // All five lines it prints before serving: closing the pipe earlier would make its next
    // println fail, and the sandbox exit.
    let lines = first_lines(&mut sb, 5);
    let _sandboxes = Running(sb);
    let tx_url = lines[0].trim_start_matches("tripletex: ").to_string();
    let rb_url = lines[1].trim_start_matches("rackbeat: ").to_string();

    // Rackbeat redelivers refused webhooks quickly here (the real one backs off for about a day).
    let admin = rb_url.trim_end_matches("/api");
    reqwest::Client::new()
        .put(format!("{admin}/admin/retry-delays"))
        .json(&json!({"delays_ms": [200, 400, 800, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000]}))
        .send()
        .await
        .expect("set retry delays");

    let mut rb_config = RackbeatConfig::new(rb_url.as_str(), Secret::new(sandbox::RACKBEAT_TOKEN));
    rb_config.requests_per_minute = 100_000;
    let rb = Rackbeat::new(rb_config).expect("rackbeat");
    let port = support::free_port();

    // `rbtx webhooks install` subscribes the intake and keeps the tokens in the store.
    let install = Command::new(env!("CARGO_BIN_EXE_rbtx"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "webhooks",
            "install",
            "--url",
            &format!("http://127.0.0.1:{port}/webhooks/rackbeat"),
            "--store",
        ])
        .arg(&store)
        .env("RBTX_RACKBEAT_URL", &rb_url)
        .env("RBTX_RACKBEAT_TOKEN", sandbox::RACKBEAT_TOKEN)
        .output()
        .expect("webhooks install");
    let said = String::from_utf8_lossy(&install.stdout);
    assert!(
        install.status.success() && said.contains("product.created: subscribed, token stored"),
        "{said}{}",
        String::from_utf8_lossy(&install.stderr)
    );

    let mut rbtx = Some(start_rbtx(port, &store, &tx_url, &rb_url));
    for i in 0..PRODUCTS {
        let body = json!({"number": format!("CRASH-{i:03}"), "name": format!("Vare {i}"), "group": 1001, "sales_price": 10 + i});
        rb.post("/products", &[], &body)
            .await
            .expect("create in Rackbeat");
        if i == PRODUCTS / 3 {
            // SIGKILL: no shutdown, no flush, leases held, webhooks mid-delivery.
            drop(rbtx.take());
        }
        if i == 2 * PRODUCTS / 3 {
            rbtx = Some(start_rbtx(port, &store, &tx_url, &rb_url));
        }
    }

    let mut tx_config = TripletexConfig::new(
        tx_url.as_str(),
        Secret::new(sandbox::CONSUMER_TOKEN),
        Secret::new(sandbox::EMPLOYEE_TOKEN),
    );
    tx_config.retry = RetryPolicy {
        max_retries: 2,
        ..Default::default()
    };
    let tx = Tripletex::new(tx_config).expect("tripletex");
    let deadline = Instant::now() + Duration::from_secs(60);
    let counts = loop {
        let products = tx.list_all("/product", &[]).await.expect("list products");
        let mut counts: HashMap<String, usize> = HashMap::new();
        for p in products {
            if let Some(n) = p
                .get("number")
                .and_then(Value::as_str)
                .filter(|n| n.starts_with("CRASH-"))
            {
                *counts.entry(n.to_string()).or_default() += 1;
            }
        }
        if counts.len() == PRODUCTS || Instant::now() > deadline {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let missing: Vec<String> = (0..PRODUCTS)
        .map(|i| format!("CRASH-{i:03}"))
        .filter(|n| !counts.contains_key(n))
        .collect();
    assert!(
        missing.is_empty(),
        "{} products never arrived, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    let twice: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "created more than once: {twice:?}");
    drop(rbtx);
    std::fs::remove_dir_all(&dir).ok();
}
