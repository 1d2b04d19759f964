//! Crash safety: `rbtx run` is killed with SIGKILL while hundreds of events are in flight, then
//! started again on the same store. Every product reaches Tripletex, each exactly once.
//!
//! The sandboxes run in their own process (`rbtx sandbox`), so they outlive the crash; Rackbeat's
//! retries (shortened through the sandbox's admin surface) redeliver what the dead process refused.

mod support;

use std::time::Duration;

use rbtx::connectors::rackbeat::{Rackbeat, RackbeatConfig};
use rbtx::sandbox;
use rbtx::secret::Secret;
use serde_json::json;
use support::process::{listening, start_sandboxes};

const PRODUCTS: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_loses_and_duplicates_nothing() {
    let dir = std::env::temp_dir().join(format!("rbtx-crash-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let store = dir.join("store.sqlite");

    let sb = start_sandboxes();
    let rb_url = &sb.rb_url;

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
    let store_arg = store.to_string_lossy().into_owned();
    sb.install_webhooks(port, &store_arg);
    let start_rbtx = || {
        let mut run = sb.run(port);
        run.args(["--lease-seconds", "1", "--store", &store_arg]);
        listening(run.spawn().expect("start rbtx run"))
    };

    let mut rbtx = Some(start_rbtx());
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
            rbtx = Some(start_rbtx());
        }
    }

    let counts = sb
        .tripletex_products("CRASH-", PRODUCTS, Duration::from_secs(60))
        .await;
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
