//! `rbtx run` against `rbtx sandbox`, as an integrator would first try it: every record of the
//! sandbox's seed that a mapping takes is changed in Rackbeat, and each must reach Tripletex, none
//! dead-lettered. The seed is what the sandbox models of real Rackbeat data, so a value the
//! shipped pack cannot map shows up here first.

mod support;

use std::time::{Duration, Instant};

use rbtx::connectors::rackbeat::{Rackbeat, RackbeatConfig};
use rbtx::sandbox;
use rbtx::secret::Secret;
use rbtx::store::Store;
use rbtx::store::sqlite::SqliteStore;
use serde_json::{Value, json};
use support::process::{listening, start_sandboxes};

fn text(v: &Value, field: &str) -> Option<String> {
    match v.get(field)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_against_the_sandbox_syncs_its_whole_seed_without_a_dead_letter() {
    let sb = start_sandboxes();
    let dir = std::env::temp_dir().join(format!("rbtx-seed-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let store = dir.join("store.sqlite");
    let store_arg = store.display().to_string();
    let port = support::free_port();
    sb.install_webhooks(port, &store_arg);
    let _run = listening(
        sb.run(port)
            .args(["--store", &store_arg])
            .spawn()
            .expect("start rbtx run"),
    );

    let rb = Rackbeat::new(RackbeatConfig::new(
        sb.rb_url.as_str(),
        Secret::new(sandbox::RACKBEAT_TOKEN),
    ))
    .expect("rackbeat");
    // A change of nothing but the name back to itself fires the webhook a real edit would.
    let mut want: Vec<(&str, String)> = Vec::new();
    for (path, entity) in [
        ("customers", "customer"),
        ("suppliers", "supplier"),
        ("products", "product"),
        ("lots", "bom"),
    ] {
        let records = rb
            .list_all(&format!("/{path}"), &[])
            .await
            .expect("list the seed");
        assert!(!records.is_empty(), "the seed has {path}");
        for r in &records {
            let number = text(r, "number").expect("a number");
            let at = format!("/{path}/{}", urlencoding(&number));
            rb.put(&at, &[], &json!({"name": r["name"]}))
                .await
                .unwrap_or_else(|e| panic!("touch {at}: {e}"));
            want.push((entity, number));
        }
    }
    // The seed's drafts, booked: the invoice path, with the seed's customers and products.
    let drafts = rb
        .list_all("/customer-invoices", &[("is_booked", "false".to_string())])
        .await
        .expect("list drafts");
    assert!(!drafts.is_empty(), "the seed has draft invoices");
    for d in &drafts {
        let number = text(d, "number").expect("a draft's number");
        rb.post(
            &format!("/customer-invoices/{number}/book"),
            &[],
            &json!({}),
        )
        .await
        .unwrap_or_else(|e| panic!("book draft {number}: {e}"));
        want.push(("invoice", number));
    }

    // Each record is bound to its Tripletex record once it has synced; a dead letter never is.
    let db = SqliteStore::open(&store).expect("the run's store");
    let deadline = Instant::now() + Duration::from_secs(60);
    let missing = loop {
        let mut missing = Vec::new();
        for (entity, key) in &want {
            let bound = db
                .get_binding("default", "rackbeat_to_tripletex", entity, key)
                .await
                .expect("read a binding");
            if bound.is_none() {
                missing.push(format!("{entity} {key}"));
            }
        }
        if missing.is_empty() || Instant::now() > deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let dlq = support::process::rbtx()
        .args(["dlq", "list", "--store", &store_arg])
        .output()
        .expect("rbtx dlq list");
    let listed = String::from_utf8_lossy(&dlq.stdout).to_string();
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        dlq.status.success() && listed.lines().last() == Some("0 dead letters"),
        "the seed leaves no dead letter:\n{listed}"
    );
    assert!(missing.is_empty(), "never synced: {missing:?}");
    assert!(want.len() > 25, "the whole seed: {} records", want.len());
}

/// A Rackbeat number as one path segment.
fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
