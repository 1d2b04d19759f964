//! Two `rbtx run` processes on one PostgreSQL database share the work: hundreds of products made in
//! the Rackbeat sandbox each reach the Tripletex sandbox exactly once, and both processes applied
//! some of them.
//!
//! Only process A's intake is subscribed to Rackbeat's webhooks (`rbtx webhooks install --url` with
//! A's address), so each webhook is queued once; B finds the tokens in the shared store like A, but
//! receives nothing and only works the queue. Both run catch-up, which may queue a product a second
//! time while the products are being made; that copy is coalesced, or finds the binding and an
//! unchanged body: duplicates are harmless, and the Tripletex counts below check exactly that.

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

fn rbtx() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rbtx"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// Starts `rbtx run` against the sandboxes; the store URL comes from the environment, as a
/// password would.
fn spawn_run(port: u16, workers: u32, store: &str, tx_url: &str, rb_url: &str) -> Child {
    rbtx()
        .args(["run", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--workers", &workers.to_string()])
        .env("RBTX_STORE_URL", store)
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
        .expect("start rbtx run")
}

/// `rbtx_events_handled_total{outcome="completed"}` from a process's `/metrics`.
async fn completed(port: u16) -> u64 {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix(r#"rbtx_events_handled_total{outcome="completed"} "#))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_the_work_and_apply_each_event_once() {
    let Some(db) = support::postgres::database().await else {
        return;
    };

    let mut sb = rbtx()
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

    let (port_a, port_b) = (support::free_port(), support::free_port());
    let install = rbtx()
        .args([
            "webhooks",
            "install",
            "--url",
            &format!("http://127.0.0.1:{port_a}/webhooks/rackbeat"),
            "--store",
            &db.url,
        ])
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

    // Both start at once, so both run the migrations at once (a no-op after `install`'s) and read
    // the webhook tokens from the shared store. A has one worker and B four, so work piles up in
    // the queue while A's intake keeps accepting it, and B, woken only by its idle poll, gets some.
    let mut a = spawn_run(port_a, 1, &db.url, &tx_url, &rb_url);
    let mut b = spawn_run(port_b, 4, &db.url, &tx_url, &rb_url);
    let (said_a, said_b) = (first_lines(&mut a, 1), first_lines(&mut b, 1));
    let (_a, _b) = (Running(a), Running(b));
    for said in [&said_a, &said_b] {
        assert!(
            said.first().is_some_and(|l| l.starts_with("webhooks:")),
            "{said:?}"
        );
    }

    let mut rb_config = RackbeatConfig::new(rb_url.as_str(), Secret::new(sandbox::RACKBEAT_TOKEN));
    rb_config.requests_per_minute = 100_000;
    let rb = Rackbeat::new(rb_config).expect("rackbeat");
    let started = Instant::now();
    for i in 0..PRODUCTS {
        let body = json!({"number": format!("SHARED-{i:03}"), "name": format!("Vare {i}"), "group": 1001, "sales_price": 10 + i});
        rb.post("/products", &[], &body)
            .await
            .expect("create in Rackbeat");
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
    let deadline = Instant::now() + Duration::from_secs(90);
    let counts = loop {
        let products = tx.list_all("/product", &[]).await.expect("list products");
        let mut counts: HashMap<String, usize> = HashMap::new();
        for p in products {
            if let Some(n) = p
                .get("number")
                .and_then(Value::as_str)
                .filter(|n| n.starts_with("SHARED-"))
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
        .map(|i| format!("SHARED-{i:03}"))
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

    let (done_a, done_b) = (completed(port_a).await, completed(port_b).await);
    eprintln!(
        "{PRODUCTS} products in {:?}: process A completed {done_a} events, B {done_b}",
        started.elapsed()
    );
    assert!(
        done_a > 0 && done_b > 0,
        "both processes work: A completed {done_a}, B {done_b}"
    );
}
