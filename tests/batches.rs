//! Records of one entity synced together share their requests (issue #12), against both
//! sandboxes (in-process) and the shipped pack, with requests counted in the sandboxes' logs:
//! - a burst of new products: one list of what changed in Rackbeat, one find and one create per
//!   100 records in Tripletex;
//! - a burst of price changes: one list, one update per 100 records;
//! - keys the list does not return are read one by one;
//! - one item Tripletex refuses fails alone, and the others arrive;
//! - a batch whose answer was lost is looked up by its numbers, not created again;
//! - throttling and server errors delay a batch, and never fail it or duplicate it.

mod support;

use std::collections::BTreeMap;

use rbtx::sandbox::faults::FaultConfig;
use rbtx::sandbox::rackbeat::Resource;
use rbtx::sandbox::tripletex::Kind;
use rbtx::store::{NewEvent, Store};
use serde_json::{Value, json};
use support::worker::{Env, TENANT};

const BURST: usize = 200;

async fn env(id: &str) -> Env {
    let mut env = support::worker::env("booked", id).await;
    env.worker.retry_base_ms = 1;
    env.worker.retry_max_ms = 10;
    env
}

/// Queues an event of `key`, as the intake would on a webhook received at `received_at`.
async fn queue(env: &Env, event: &str, key: &str, received_at: i64) {
    env.store
        .enqueue(NewEvent {
            tenant: TENANT.into(),
            entity: "product".into(),
            key: key.into(),
            event: event.into(),
            payload: json!({}),
            received_at,
        })
        .await
        .expect("queued");
}

fn product(number: &str, price: u32) -> Value {
    json!({ "number": number, "name": format!("Vare {number}"), "group": 1001, "sales_price": price })
}

/// Creates `n` products in Rackbeat, numbered `prefix-i`, and queues their events.
async fn burst(env: &Env, prefix: &str, n: usize) -> Vec<String> {
    let mut keys = Vec::new();
    for i in 0..n {
        let key = format!("{prefix}-{i:03}");
        env.sb
            .rackbeat
            .create(Resource::Product, product(&key, 100 + i as u32))
            .expect("a product in Rackbeat");
        queue(env, "product.created", &key, env.now).await;
        keys.push(key);
    }
    keys
}

/// One product synced alone first, so the counts that follow hold no session or lookup loads.
async fn warm_up(env: &mut Env) {
    burst(env, "WARM", 1).await;
    assert_eq!(env.worker.run_once(env.now).await.expect("runs"), 1);
}

/// Requests since `from` in a request log, by method and path (query left out).
fn counts(log: &[rbtx::sandbox::tripletex::RequestRecord]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in log {
        *out.entry(format!("{} {}", r.method, r.path)).or_default() += 1;
    }
    out
}

fn rackbeat_counts(env: &Env, from: usize) -> BTreeMap<String, usize> {
    counts(&env.sb.rackbeat.requests()[from..])
}

fn tripletex_counts(env: &Env, from: usize) -> BTreeMap<String, usize> {
    counts(&env.sb.tripletex.requests()[from..])
}

/// Tripletex products whose number starts with `prefix`, by number; fails on a duplicate.
fn in_tripletex(env: &Env, prefix: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for p in env.sb.tripletex.records(Kind::Product) {
        let Some(n) = p["number"].as_str().filter(|n| n.starts_with(prefix)) else {
            continue;
        };
        assert!(
            out.insert(n.to_string(), p.clone()).is_none(),
            "product {n} is in Tripletex twice"
        );
    }
    out
}

/// Runs the worker until nothing is due, moving time on so retries come due.
async fn drain(env: &mut Env) {
    for _ in 0..50 {
        let n = env.worker.run_once(env.now).await.expect("runs");
        env.now += 60_000;
        if n == 0 && env.store.queue_depth().await.expect("queue depth") == 0 {
            return;
        }
    }
    panic!("the queue did not drain");
}

async fn dead_letters(env: &Env) -> Vec<String> {
    env.store
        .list_dead_letters()
        .await
        .expect("dead letters")
        .into_iter()
        .map(|d| format!("{} {}: {}", d.event.entity, d.event.key, d.reason))
        .collect()
}

#[tokio::test]
async fn a_burst_of_new_products_costs_a_list_then_a_find_and_a_create_per_hundred() {
    let mut env = env("batch-new").await;
    warm_up(&mut env).await;
    let (rb0, tx0) = (
        env.sb.rackbeat.requests().len(),
        env.sb.tripletex.requests().len(),
    );
    let keys = burst(&env, "NEW", BURST).await;
    assert_eq!(env.worker.run_once(env.now).await.expect("runs"), BURST);

    assert_eq!(
        rackbeat_counts(&env, rb0),
        BTreeMap::from([("GET /products".to_string(), 1)]),
        "one list of what changed reads the whole burst"
    );
    assert_eq!(
        tripletex_counts(&env, tx0),
        BTreeMap::from([
            ("GET /v2/product".to_string(), 2),
            ("POST /v2/product/list".to_string(), 2),
        ]),
        "a find and a create per 100 records"
    );
    let arrived = in_tripletex(&env, "NEW-");
    assert_eq!(arrived.len(), BURST);
    for (i, key) in keys.iter().enumerate() {
        let p = &arrived[key];
        assert_eq!(p["name"], json!(format!("Vare {key}")));
        assert_eq!(
            p["priceExcludingVatCurrency"].as_f64(),
            Some(100.0 + i as f64)
        );
        let binding = env
            .store
            .get_binding(TENANT, "rackbeat_to_tripletex", "product", key)
            .await
            .expect("store")
            .expect("every record is bound");
        assert_eq!(binding.target_id, p["id"], "bound to its own record");
    }
    assert!(dead_letters(&env).await.is_empty());
}

#[tokio::test]
async fn a_burst_of_price_changes_costs_a_list_and_an_update_per_hundred() {
    let mut env = env("batch-prices").await;
    warm_up(&mut env).await;
    let keys = burst(&env, "PRICE", BURST).await;
    env.worker.run_once(env.now).await.expect("runs");
    let (rb0, tx0) = (
        env.sb.rackbeat.requests().len(),
        env.sb.tripletex.requests().len(),
    );
    for (i, key) in keys.iter().enumerate() {
        env.sb
            .rackbeat
            .update(
                Resource::Product,
                key,
                json!({ "sales_price": 1000 + i as u32 }),
            )
            .expect("a price change in Rackbeat");
        queue(&env, "product.updated", key, env.now).await;
    }
    assert_eq!(env.worker.run_once(env.now).await.expect("runs"), BURST);

    assert_eq!(
        rackbeat_counts(&env, rb0),
        BTreeMap::from([("GET /products".to_string(), 1)])
    );
    assert_eq!(
        tripletex_counts(&env, tx0),
        BTreeMap::from([("PUT /v2/product/list".to_string(), 2)]),
        "the binding's version is enough: no read before the update"
    );
    let arrived = in_tripletex(&env, "PRICE-");
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(
            arrived[key]["priceExcludingVatCurrency"].as_f64(),
            Some(1000.0 + i as f64),
            "{key}"
        );
    }
    assert!(dead_letters(&env).await.is_empty());
}

#[tokio::test]
async fn keys_the_list_of_changes_does_not_return_are_read_one_by_one() {
    let mut env = env("batch-fallback").await;
    warm_up(&mut env).await;
    for i in 0..4 {
        let key = format!("LATE-{i}");
        env.sb
            .rackbeat
            .create(Resource::Product, product(&key, 10))
            .expect("a product");
    }
    // Events received far in the future: the list of what changed since then holds nothing,
    // so every key is read alone; the one never created is gone.
    let later = rbtx::dates::now_millis() + 3 * 3_600_000;
    for key in ["LATE-0", "LATE-1", "LATE-2", "LATE-3", "NEVER-MADE"] {
        queue(&env, "product.updated", key, later).await;
    }
    let rb0 = env.sb.rackbeat.requests().len();
    assert_eq!(env.worker.run_once(env.now).await.expect("runs"), 5);
    let rb = rackbeat_counts(&env, rb0);
    assert_eq!(rb.get("GET /products"), Some(&1), "{rb:?}");
    for key in ["LATE-0", "LATE-1", "LATE-2", "LATE-3", "NEVER-MADE"] {
        assert_eq!(rb.get(&format!("GET /products/{key}")), Some(&1), "{rb:?}");
    }
    assert_eq!(in_tripletex(&env, "LATE-").len(), 4);
    assert!(dead_letters(&env).await.is_empty());
    assert_eq!(env.store.queue_depth().await.expect("queue depth"), 0);
}

#[tokio::test]
async fn one_item_tripletex_refuses_fails_alone_and_the_others_arrive() {
    let mut env = env("batch-refused").await;
    warm_up(&mut env).await;
    let keys = burst(&env, "ITEM", 5).await;
    // A weight Tripletex cannot take (its spec wants a number); Rackbeat keeps what it is given.
    env.sb
        .rackbeat
        .update(
            Resource::Product,
            &keys[3],
            json!({ "physical": { "weight": "tung", "weight_unit": "kg" } }),
        )
        .expect("a weight in words in Rackbeat");
    env.worker.run_once(env.now).await.expect("runs");

    let arrived = in_tripletex(&env, "ITEM-");
    assert_eq!(
        arrived.keys().cloned().collect::<Vec<_>>(),
        ["ITEM-000", "ITEM-001", "ITEM-002", "ITEM-004"],
        "the others are sent again without the refused one"
    );
    let dead = dead_letters(&env).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0].starts_with("product ITEM-003: ") && dead[0].contains("weight"),
        "the refused record is dead-lettered naming its field, without the list's index: {dead:?}"
    );
    assert!(!dead[0].contains("[3]"), "{dead:?}");
}

#[tokio::test]
async fn a_batch_whose_answer_was_lost_is_looked_up_not_created_again() {
    let mut env = env("batch-lost").await;
    warm_up(&mut env).await;
    burst(&env, "LOST", 150).await;
    // Every write takes effect and its answer is lost.
    env.sb.tripletex.set_faults(FaultConfig {
        seed: 7,
        rate_drop: 1.0,
        writes_only: true,
        ..FaultConfig::default()
    });
    env.worker.run_once(env.now).await.expect("runs");
    assert_eq!(
        in_tripletex(&env, "LOST-").len(),
        150,
        "the creates took effect"
    );
    env.sb.tripletex.set_faults(FaultConfig::default());
    let tx0 = env.sb.tripletex.requests().len();
    drain(&mut env).await;

    assert_eq!(in_tripletex(&env, "LOST-").len(), 150, "and nothing twice");
    let tx = tripletex_counts(&env, tx0);
    assert_eq!(tx.get("POST /v2/product/list"), None, "{tx:?}");
    assert_eq!(
        tx.get("GET /v2/product"),
        Some(&2),
        "looked up by their numbers: {tx:?}"
    );
    assert!(dead_letters(&env).await.is_empty());
    for key in ["LOST-000", "LOST-149"] {
        assert!(
            env.store
                .get_binding(TENANT, "rackbeat_to_tripletex", "product", key)
                .await
                .expect("store")
                .is_some()
        );
    }
}

#[tokio::test]
async fn throttling_and_server_errors_delay_a_batch_and_never_fail_or_repeat_it() {
    let mut env = env("batch-faults").await;
    warm_up(&mut env).await;
    let keys = burst(&env, "FAULT", 120).await;
    // A 429 tells the client to wait for the period's end: a short period keeps the test quick.
    env.sb.tripletex.set_rate_limit(Some(10_000), 1);
    env.sb.tripletex.set_faults(FaultConfig {
        seed: 11,
        rate_429: 0.3,
        rate_5xx: 0.2,
        rate_drop: 0.1,
        ..FaultConfig::default()
    });
    // Rackbeat's 429s carry `Retry-After`, which the client honours: its other faults keep the
    // test quick.
    env.sb.rackbeat.set_faults(FaultConfig {
        seed: 12,
        rate_5xx: 0.2,
        rate_drop: 0.1,
        ..FaultConfig::default()
    });
    drain(&mut env).await;
    env.sb.tripletex.set_faults(FaultConfig::default());
    env.sb.rackbeat.set_faults(FaultConfig::default());

    let arrived = in_tripletex(&env, "FAULT-");
    assert_eq!(arrived.len(), keys.len(), "every record once");
    assert!(dead_letters(&env).await.is_empty());
}

#[tokio::test]
async fn a_backlog_costs_one_list_per_claim_and_no_get() {
    let mut env = env("batch-backlog").await;
    warm_up(&mut env).await;
    // 600 changes whose events all arrived at once (a worker that was down): three claims of 200.
    let received = rbtx::dates::now_millis();
    for i in 0..600 {
        let key = format!("BACKLOG-{i:03}");
        env.sb
            .rackbeat
            .create(Resource::Product, product(&key, 10))
            .expect("a product");
        queue(&env, "product.created", &key, received).await;
    }
    let rb0 = env.sb.rackbeat.requests().len();
    for _ in 0..3 {
        assert_eq!(env.worker.run_once(env.now).await.expect("runs"), 200);
    }
    let rb = rackbeat_counts(&env, rb0);
    assert_eq!(
        rb,
        BTreeMap::from([("GET /products".to_string(), 3)]),
        "one list per claim, and no GET"
    );
    assert_eq!(in_tripletex(&env, "BACKLOG-").len(), 600);
}
