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

use std::time::{Duration, Instant};

use rbtx::connectors::rackbeat::{Rackbeat, RackbeatConfig};
use rbtx::sandbox;
use rbtx::secret::Secret;
use serde_json::json;
use support::process::{listening, start_sandboxes};

const PRODUCTS: usize = 300;

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

    let sb = start_sandboxes();
    let rb_url = &sb.rb_url;
    let (port_a, port_b) = (support::free_port(), support::free_port());
    sb.install_webhooks(port_a, &db.url);

    // Both start at once, so both run the migrations at once (a no-op after `install`'s) and read
    // the webhook tokens from the shared store. A has one worker and B four, so work piles up in
    // the queue while A's intake keeps accepting it, and B, woken by A's notifications, gets some.
    // The store's URL comes from the environment, as a password would.
    let run = |port: u16, workers: &str| {
        let mut c = sb.run(port);
        c.args(["--workers", workers])
            .env("RBTX_STORE_URL", &db.url);
        c
    };
    let a = run(port_a, "1").spawn().expect("start rbtx run A");
    let b = run(port_b, "4").spawn().expect("start rbtx run B");
    let (_a, _b) = (listening(a), listening(b));

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

    let counts = sb
        .tripletex_products("SHARED-", PRODUCTS, Duration::from_secs(90))
        .await;
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
