//! The worker against both sandboxes (in-process) and an in-memory SQLite store, with the shipped
//! mapping pack. Events are enqueued by hand as the intake would; time is passed in, so retries
//! are made due by moving `now` forward rather than by sleeping.

mod support;

use rbtx::sandbox::faults::FaultConfig;
use rbtx::sandbox::rackbeat::Resource;
use rbtx::sandbox::tripletex::{BANK_ACCOUNT, Kind};
use rbtx::store::{NewEvent, Store};
use serde_json::{Value, json};
use support::worker::{Env, TENANT};

async fn env(invoice_mode: &str) -> Env {
    let mut env = support::worker::env(invoice_mode, "test-worker-1").await;
    // Tiny delays: `now` is moved forward by hand, so retries are due at once.
    env.worker.retry_base_ms = 1;
    env.worker.retry_max_ms = 10;
    env.worker.max_attempts = 5;
    env
}

impl Env {
    /// The seed's booked invoice, as Rackbeat's `invoice.booked` webhook queues it.
    async fn invoice_booked(&self) {
        self.enqueue(
            "invoice",
            &SEED_INVOICE.to_string(),
            "invoice.booked",
            json!({}),
        )
        .await;
    }

    async fn enqueue(&self, entity: &str, key: &str, event: &str, payload: Value) {
        self.store
            .enqueue(NewEvent {
                tenant: TENANT.into(),
                entity: entity.into(),
                key: key.into(),
                event: event.into(),
                payload,
                received_at: self.now,
            })
            .await
            .expect("enqueue");
    }

    /// Runs the worker until the queue is empty (bounded, so a bug cannot hang the test).
    /// Opens the worker's Tripletex session before faults are switched on: creating a session is
    /// a POST too, and would be hit by them.
    async fn open_tripletex_session(&self) {
        self.worker
            .tenant
            .tripletex
            .get("/product/unit", &[])
            .await
            .expect("session");
    }

    async fn drain(&mut self) {
        for _ in 0..50 {
            self.worker.run_once(self.now).await.expect("run_once");
            self.now += 1_000;
            if self.store.queue_depth().await.expect("depth") == 0 {
                return;
            }
        }
        panic!("the queue did not empty");
    }

    fn records(&self, kind: Kind, field: &str, value: &Value) -> Vec<Value> {
        self.sb
            .tripletex
            .records(kind)
            .into_iter()
            .filter(|r| r.get(field) == Some(value))
            .collect()
    }

    /// The one record of `kind` whose `field` is `value`; fails on none or several.
    fn one(&self, kind: Kind, field: &str, value: Value) -> Value {
        let found = self.records(kind, field, &value);
        assert_eq!(
            found.len(),
            1,
            "exactly one {kind:?} with {field} = {value}: {found:#?}"
        );
        found.into_iter().next().unwrap_or_default()
    }

    fn invoices_for(&self, number: u64) -> Vec<Value> {
        self.records(
            Kind::Invoice,
            "comment",
            &json!(format!("Rackbeat invoice {number}")),
        )
    }
}

/// The first booked invoice of the Rackbeat seed (sample 10: customer 10001, 8 × VARE-1001).
const SEED_INVOICE: u64 = 20001;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_product_and_lot_arrive_once_and_unchanged_bodies_are_not_resent() {
    let mut e = env("booked").await;
    let events = [
        ("customer", "10001", "customer.created"),
        ("product", "VARE-1001", "product.created"),
        ("lot", "SETT-10", "lot.created"),
    ];
    for (entity, key, event) in events {
        e.enqueue(entity, key, event, json!({})).await;
    }
    e.drain().await;
    assert!(e.store.list_dead_letters().await.expect("dlq").is_empty());

    let customer = e.one(Kind::Customer, "customerNumber", json!(10001));
    assert_eq!(customer["name"], "Fjord Bygg AS");
    assert_eq!(customer["organizationNumber"], "999888777");
    let product = e.one(Kind::Product, "number", json!("VARE-1001"));
    assert_eq!(product["name"], "Hylleknekt 30 cm");
    assert_eq!(product["priceExcludingVatCurrency"].as_f64(), Some(149.0));
    let lot = e.one(Kind::Product, "number", json!("SETT-10"));
    assert_eq!(lot["name"], "Hyllesett 3 hyller");
    let description = lot["description"].as_str().unwrap_or_default();
    assert!(description.contains("6 × VARE-1001"), "{description}");

    // The same events again: every body is the one last sent, so nothing is written.
    for (entity, key, event) in events {
        e.enqueue(
            entity,
            key,
            event.replace("created", "updated").as_str(),
            json!({}),
        )
        .await;
    }
    e.drain().await;
    let again = [
        e.one(Kind::Customer, "customerNumber", json!(10001)),
        e.one(Kind::Product, "number", json!("VARE-1001")),
        e.one(Kind::Product, "number", json!("SETT-10")),
    ];
    for (before, after) in [customer, product, lot].iter().zip(&again) {
        assert_eq!(before["id"], after["id"]);
        assert_eq!(
            before["version"], after["version"],
            "an unchanged body was sent again"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_updated_in_rackbeat_is_updated_in_place() {
    let mut e = env("booked").await;
    e.enqueue("product", "VARE-1001", "product.created", json!({}))
        .await;
    e.drain().await;
    let before = e.one(Kind::Product, "number", json!("VARE-1001"));

    e.sb.rackbeat
        .update(
            Resource::Product,
            "VARE-1001",
            json!({ "name": "Hylleknekt 30 cm, forsterket" }),
        )
        .expect("admin update");
    e.enqueue("product", "VARE-1001", "product.updated", json!({}))
        .await;
    e.drain().await;

    let after = e.one(Kind::Product, "number", json!("VARE-1001"));
    assert_eq!(after["id"], before["id"]);
    assert_eq!(after["name"], "Hylleknekt 30 cm, forsterket");
    let (v0, v1) = (before["version"].as_i64(), after["version"].as_i64());
    assert_eq!(v1, v0.map(|v| v + 1), "one update, one version step");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booked_invoice_syncs_its_customer_and_products_first_each_once() {
    let mut e = env("booked").await;
    assert!(
        e.records(Kind::Customer, "customerNumber", &json!(10001))
            .is_empty()
    );
    assert!(
        e.records(Kind::Product, "number", &json!("VARE-1001"))
            .is_empty()
    );

    e.invoice_booked().await;
    e.drain().await;
    assert!(e.store.list_dead_letters().await.expect("dlq").is_empty());

    let customer = e.one(Kind::Customer, "customerNumber", json!(10001));
    let product = e.one(Kind::Product, "number", json!("VARE-1001"));
    let invoices = e.invoices_for(SEED_INVOICE);
    assert_eq!(invoices.len(), 1, "{invoices:#?}");
    assert_eq!(invoices[0]["customer"]["id"], customer["id"]);
    let order_lines = e.sb.tripletex.records(Kind::OrderLine);
    assert!(
        order_lines
            .iter()
            .any(|l| l["product"]["id"] == product["id"] && l["count"] == json!(8)),
        "an order line for 8 × VARE-1001"
    );

    // The booked event once more (Rackbeat redelivers): still one invoice.
    e.invoice_booked().await;
    e.drain().await;
    assert_eq!(e.invoices_for(SEED_INVOICE).len(), 1);
    e.one(Kind::Customer, "customerNumber", json!(10001));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_answer_is_lost_is_found_not_repeated() {
    let mut e = env("booked").await;
    e.open_tripletex_session().await;
    // Every write takes effect and its answer is lost, for the first attempt.
    e.sb.tripletex.set_faults(FaultConfig {
        seed: 7,
        rate_drop: 1.0,
        writes_only: true,
        ..Default::default()
    });
    e.enqueue("product", "VARE-1001", "product.created", json!({}))
        .await;
    let handled = e.worker.run_once(e.now).await.expect("run_once");
    assert_eq!(handled, 1);
    assert_eq!(e.store.queue_depth().await.expect("depth"), 1, "retried");
    assert_eq!(
        e.records(Kind::Product, "number", &json!("VARE-1001"))
            .len(),
        1,
        "the lost create did happen"
    );

    e.sb.tripletex.set_faults(FaultConfig::default());
    e.now += 1_000;
    e.drain().await;
    assert!(e.store.list_dead_letters().await.expect("dlq").is_empty());
    let product = e.one(Kind::Product, "number", json!("VARE-1001"));
    let binding = e
        .store
        .get_binding(TENANT, "rackbeat_to_tripletex", "product", "VARE-1001")
        .await
        .expect("binding")
        .expect("bound after the retry");
    assert_eq!(binding.target_id, product["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_record_is_dead_lettered_with_its_field_and_replayed_after_the_fix() {
    let mut e = env("booked").await;
    // A product group at 7 % VAT, which has no Tripletex VAT code.
    e.sb.rackbeat
        .create(
            Resource::ProductGroup,
            json!({ "number": 1099, "name": "Sju prosent", "vat_domestic": 7.0 }),
        )
        .expect("group");
    e.sb.rackbeat
        .update(Resource::Product, "VARE-1001", json!({ "group": 1099 }))
        .expect("product in that group");
    e.enqueue("product", "VARE-1001", "product.updated", json!({}))
        .await;
    e.drain().await;

    let dead = e.store.list_dead_letters().await.expect("dlq");
    assert_eq!(dead.len(), 1, "{dead:#?}");
    let d = &dead[0];
    assert_eq!(d.field.as_deref(), Some("body.vatType.id"), "{d:#?}");
    assert!(
        d.reason.contains("lookup `vat_code` has no entry for `7`"),
        "{}",
        d.reason
    );
    assert!(
        d.mapping
            .as_deref()
            .is_some_and(|m| m.ends_with("rackbeat-to-tripletex/product.yaml")),
        "{:?}",
        d.mapping
    );
    assert!(
        e.records(Kind::Product, "number", &json!("VARE-1001"))
            .is_empty()
    );

    // Fix the data in Rackbeat, replay, run: applied once.
    e.sb.rackbeat
        .update(Resource::Product, "VARE-1001", json!({ "group": 1001 }))
        .expect("fix");
    assert!(e.store.replay(d.id).await.expect("replay"));
    e.drain().await;
    assert!(e.store.list_dead_letters().await.expect("dlq").is_empty());
    let product = e.one(Kind::Product, "number", json!("VARE-1001"));
    assert_eq!(product["priceIncludingVatCurrency"].as_f64(), Some(186.25));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoicing_without_a_bank_account_is_dead_lettered_then_replayed_once() {
    let mut e = env("booked").await;
    e.sb.tripletex.set_bank_account(None);
    e.invoice_booked().await;
    e.drain().await;

    let dead = e.store.list_dead_letters().await.expect("dlq");
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert!(
        dead[0].reason.contains("bankkontonummer"),
        "the Norwegian message is kept: {}",
        dead[0].reason
    );
    assert!(
        dead[0].reason.contains("Company information")
            && dead[0].reason.contains("11111111113")
            && dead[0].reason.contains("984809085"),
        "the reason says what to do: {}",
        dead[0].reason
    );
    assert!(e.invoices_for(SEED_INVOICE).is_empty());

    e.sb.tripletex.set_bank_account(Some(BANK_ACCOUNT));
    assert_eq!(e.store.replay_all(None).await.expect("replay"), 1);
    e.drain().await;
    assert!(e.store.list_dead_letters().await.expect("dlq").is_empty());
    assert_eq!(e.invoices_for(SEED_INVOICE).len(), 1);
    // The dependencies synced on the first attempt were not made again on the replay.
    e.one(Kind::Customer, "customerNumber", json!(10001));
    e.one(Kind::Product, "number", json!("VARE-1001"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_and_unknown_events_change_nothing() {
    let mut e = env("booked").await;
    e.enqueue("product", "VARE-1001", "product.created", json!({}))
        .await;
    e.drain().await;
    let before = e.one(Kind::Product, "number", json!("VARE-1001"));

    e.enqueue(
        "product",
        "VARE-1001",
        "product.deleted",
        json!({ "key_name": "number", "key": "VARE-1001", "converted_to_lot": true }),
    )
    .await;
    e.drain().await;
    assert!(e.store.list_dead_letters().await.expect("dlq").is_empty());

    // An event no mapping handles any more (the pack was reloaded without it) is not dropped:
    // retried, then dead-lettered, replayable once a mapping handles it again.
    e.enqueue("widget", "W-1", "widget.polished", json!({}))
        .await;
    e.drain().await;
    let dead = e.store.list_dead_letters().await.expect("dlq");
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert!(
        dead[0]
            .reason
            .contains("no mapping handles `widget.polished`"),
        "{}",
        dead[0].reason
    );
    let after = e.one(Kind::Product, "number", json!("VARE-1001"));
    assert_eq!(before, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_failures_are_retried_then_dead_lettered_after_max_attempts() {
    let mut e = env("booked").await;
    e.worker.max_attempts = 3;
    e.open_tripletex_session().await;
    // Every write answered 5xx (not applied): retryable, and ambiguous for a create.
    e.sb.tripletex.set_faults(FaultConfig {
        seed: 3,
        rate_5xx: 1.0,
        writes_only: true,
        ..Default::default()
    });
    e.enqueue("product", "VARE-1001", "product.created", json!({}))
        .await;
    e.drain().await;

    let dead = e.store.list_dead_letters().await.expect("dlq");
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert!(
        dead[0].reason.starts_with("gave up after 3 attempts"),
        "{}",
        dead[0].reason
    );
    assert!(
        e.records(Kind::Product, "number", &json!("VARE-1001"))
            .is_empty()
    );

    e.sb.tripletex.set_faults(FaultConfig::default());
    assert_eq!(e.store.replay_all(None).await.expect("replay"), 1);
    e.drain().await;
    e.one(Kind::Product, "number", json!("VARE-1001"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renumbered_product_keeps_its_tripletex_record() {
    let mut e = env("booked").await;
    e.enqueue("product", "VARE-1001", "product.created", json!({}))
        .await;
    e.drain().await;
    let before = e.one(Kind::Product, "number", json!("VARE-1001"));

    e.sb.rackbeat
        .update(
            Resource::Product,
            "VARE-1001",
            json!({ "number": "VARE-1001-B" }),
        )
        .expect("renumber in Rackbeat");
    e.enqueue(
        "product",
        "VARE-1001-B",
        "product.updated",
        json!({"key": "VARE-1001-B", "old_key": "VARE-1001", "new_key": "VARE-1001-B"}),
    )
    .await;
    e.drain().await;

    let after = e.one(Kind::Product, "number", json!("VARE-1001-B"));
    assert_eq!(
        after["id"], before["id"],
        "the same Tripletex product, renumbered"
    );
    assert!(
        e.records(Kind::Product, "number", &json!("VARE-1001"))
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_faults_still_applies_every_event_exactly_once() {
    let mut e = env("booked").await;
    e.worker.max_attempts = 30;
    e.open_tripletex_session().await;
    // Server errors, lost answers and slow answers from Tripletex, throttling and server errors
    // from Rackbeat, seeded. (Tripletex's 429s carry a reset of up to a minute, which the
    // connector waits out; `tests/connectors.rs` covers them without making this test slow.)
    e.sb.tripletex.set_faults(FaultConfig {
        seed: 11,
        rate_5xx: 0.25,
        rate_drop: 0.1,
        rate_timeout: 0.05,
        timeout_ms: 50,
        ..Default::default()
    });
    e.sb.rackbeat.set_faults(FaultConfig {
        seed: 12,
        rate_429: 0.2,
        rate_5xx: 0.1,
        ..Default::default()
    });
    for (entity, key, event) in [
        ("customer", "10001", "customer.created"),
        ("product", "VARE-1001", "product.created"),
        ("product", "VARE-3003", "product.created"),
        ("bom", "SETT-10", "lot.created"),
        ("invoice", &SEED_INVOICE.to_string(), "invoice.booked"),
    ] {
        e.enqueue(entity, key, event, json!({})).await;
    }
    for _ in 0..200 {
        e.worker.run_once(e.now).await.expect("run_once");
        e.now += 60_000;
        if e.store.queue_depth().await.expect("depth") == 0 {
            break;
        }
    }
    e.sb.tripletex.set_faults(FaultConfig::default());
    e.sb.rackbeat.set_faults(FaultConfig::default());
    assert_eq!(
        e.store.queue_depth().await.expect("depth"),
        0,
        "everything applied in the end"
    );
    assert!(e.store.list_dead_letters().await.expect("dlq").is_empty());
    e.one(Kind::Customer, "customerNumber", json!(10001));
    e.one(Kind::Product, "number", json!("VARE-1001"));
    e.one(Kind::Product, "number", json!("VARE-3003"));
    e.one(Kind::Product, "number", json!("SETT-10"));
    assert_eq!(e.invoices_for(SEED_INVOICE).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_another_worker_holds_is_waited_for_not_synced_twice() {
    let mut e = env("booked").await;
    // Another worker is applying customer 10001's own event.
    e.enqueue("customer", "10001", "customer.created", json!({}))
        .await;
    let theirs = e
        .store
        .claim(Some(TENANT), "other-worker", 1, e.now, 60_000)
        .await
        .expect("claim");
    assert_eq!(theirs.len(), 1);
    // The invoice needs that customer: it waits rather than syncing it alongside.
    e.invoice_booked().await;
    assert_eq!(e.worker.run_once(e.now).await.expect("run"), 1);
    assert!(e.invoices_for(SEED_INVOICE).is_empty());
    assert!(
        e.records(Kind::Customer, "customerNumber", &json!(10001))
            .is_empty(),
        "the held customer was not synced inline"
    );
    assert!(
        e.store.list_dead_letters().await.expect("dlq").is_empty(),
        "waiting is not a failure"
    );

    // The other worker gives the customer back; everything lands once.
    assert!(
        e.store
            .release(theirs[0].id, "other-worker")
            .await
            .expect("release")
    );
    e.drain().await;
    assert_eq!(e.invoices_for(SEED_INVOICE).len(), 1);
    e.one(Kind::Customer, "customerNumber", json!(10001));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_later_in_the_same_batch_is_synced_inline_once() {
    let mut e = env("booked").await;
    // One batch holds the invoice first and the customer it needs after it.
    e.invoice_booked().await;
    e.now += 1;
    e.enqueue("customer", "10001", "customer.created", json!({}))
        .await;
    assert_eq!(e.worker.run_once(e.now).await.expect("run"), 2);
    // The invoice did not wait a retry for its own worker's lease on the customer.
    assert_eq!(e.invoices_for(SEED_INVOICE).len(), 1);
    e.one(Kind::Customer, "customerNumber", json!(10001));
    assert_eq!(e.store.queue_depth().await.expect("depth"), 0);
    assert!(e.store.list_dead_letters().await.expect("dlq").is_empty());
}
