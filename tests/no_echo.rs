//! rbtx changes no Tripletex field that no Rackbeat change asked for (issue #20), against both
//! sandboxes (in-process) and the shipped pack:
//! - the initial sync's own writes to Rackbeat come back (webhooks, catch-up) without a single
//!   Tripletex write;
//! - a change in Rackbeat changes only the fields it changed, and fields set by hand in Tripletex
//!   survive it;
//! - a partial update whose answer is lost is not sent again;
//! - an inactive Tripletex customer is found and bound, not created a second time;
//! - real time's catch-up starts where the initial sync ended, and a record that keeps failing
//!   stays one dead letter through every catch-up.

mod support;

use std::collections::BTreeSet;

use rbtx::runtime::catchup;
use rbtx::runtime::initial::{self, Options};
use rbtx::runtime::tenant::InvoiceMode;
use rbtx::sandbox::faults::FaultConfig;
use rbtx::sandbox::rackbeat::Resource;
use rbtx::sandbox::tripletex::Kind;
use rbtx::store::{NewEvent, Store};
use serde_json::{Value, json};
use support::worker::{Env, TENANT};

/// The entities that travel both ways: what the initial sync writes to Rackbeat, and real time
/// brings back.
const BOTH_WAYS: [(Kind, Resource, &str, &str); 3] = [
    (
        Kind::Customer,
        Resource::Customer,
        "customer",
        "customerNumber",
    ),
    (
        Kind::Supplier,
        Resource::Supplier,
        "supplier",
        "supplierNumber",
    ),
    (Kind::Product, Resource::Product, "product", "number"),
];

async fn synced_env() -> Env {
    let mut env = support::worker::env("booked", "no-echo-test").await;
    env.worker.retry_base_ms = 1;
    env.worker.retry_max_ms = 10;
    let options = Options {
        progress: false,
        ..Options::default()
    };
    let report = initial::run(&env.worker, &options, &mut Vec::new())
        .await
        .expect("the initial sync runs");
    assert_eq!(report.failed(), 0, "{}", report.table());
    env
}

fn text(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

/// Tripletex writes (POST/PUT) the sandbox accepted, or whose answer was lost, since request
/// number `from`. A write refused for a stale version (409) changed nothing and is left out.
fn tripletex_writes_since(env: &Env, from: usize) -> Vec<String> {
    env.sb.tripletex.requests()[from..]
        .iter()
        .filter(|r| r.method == "POST" || r.method == "PUT")
        .filter(|r| !r.path.contains("/token/session"))
        .filter(|r| r.status.is_none_or(|s| (200..300).contains(&s)))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// Requests of `method` and `path` the sandbox answered since request number `from`.
fn answered(env: &Env, from: usize, method: &str, path: &str) -> Vec<Option<u16>> {
    env.sb.tripletex.requests()[from..]
        .iter()
        .filter(|r| r.method == method && r.path == path)
        .map(|r| r.status)
        .collect()
}

async fn enqueue(env: &Env, entity: &str, key: &str, event: &str) {
    env.store
        .enqueue(NewEvent {
            tenant: TENANT.into(),
            entity: entity.into(),
            key: key.into(),
            event: event.into(),
            payload: json!({ "key_name": "number", "key": key }),
            received_at: env.now,
        })
        .await
        .expect("enqueue");
}

async fn drain(env: &mut Env) {
    for _ in 0..50 {
        env.worker.run_once(env.now).await.expect("run_once");
        env.now += 1_000;
        if env.store.queue_depth().await.expect("depth") == 0 {
            return;
        }
    }
    panic!("the queue did not empty");
}

/// The fields of Tripletex record `id` that differ between two readings.
fn changed(before: &Value, after: &Value) -> BTreeSet<String> {
    let (Some(b), Some(a)) = (before.as_object(), after.as_object()) else {
        return BTreeSet::from(["<whole record>".to_string()]);
    };
    a.iter()
        .filter(|(k, v)| b.get(k.as_str()) != Some(v))
        .map(|(k, _)| k.clone())
        .chain(b.keys().filter(|k| !a.contains_key(k.as_str())).cloned())
        .collect()
}

fn active_customer(env: &Env) -> Value {
    env.sb
        .tripletex
        .records(Kind::Customer)
        .into_iter()
        .find(|c| c["isInactive"] == false)
        .expect("an active customer")
}

fn one(env: &Env, kind: Kind, field: &str, value: &Value) -> Value {
    let found: Vec<Value> = env
        .sb
        .tripletex
        .records(kind)
        .into_iter()
        .filter(|r| r.get(field) == Some(value))
        .collect();
    assert_eq!(found.len(), 1, "one {kind:?} with {field} {value}");
    found.into_iter().next().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_initial_syncs_writes_come_back_without_a_tripletex_write() {
    let mut env = synced_env().await;
    let before: Vec<Vec<Value>> = BOTH_WAYS
        .iter()
        .map(|(kind, ..)| env.sb.tripletex.records(*kind))
        .collect();
    let from = env.sb.tripletex.requests().len();

    // Every record the initial sync wrote comes back as a Rackbeat change, as its webhook or the
    // first catch-up would bring it.
    let mut echoes = 0;
    for ((_, resource, entity, number_field), tripletex) in BOTH_WAYS.iter().zip(&before) {
        let numbers: BTreeSet<String> = tripletex.iter().map(|r| text(&r[*number_field])).collect();
        for record in env.sb.rackbeat.list(*resource) {
            // Records born in Rackbeat (its own seed) are for real time to create; the echo is
            // of what came from Tripletex.
            let number = text(&record["number"]);
            if numbers.contains(&number) {
                enqueue(&env, entity, &number, &format!("{entity}.updated")).await;
                echoes += 1;
            }
        }
    }
    assert!(echoes > 20, "{echoes} records came back");
    drain(&mut env).await;

    assert_eq!(
        tripletex_writes_since(&env, from),
        Vec::<String>::new(),
        "no Tripletex write for the echo"
    );
    for ((kind, ..), earlier) in BOTH_WAYS.iter().zip(&before) {
        assert_eq!(
            &env.sb.tripletex.records(*kind),
            earlier,
            "no {kind:?} changed in Tripletex"
        );
    }
    let dead = env.store.list_dead_letters().await.expect("dlq");
    assert!(
        dead.is_empty(),
        "{:#?}",
        dead.iter()
            .map(|d| format!("{} {}: {}", d.event.entity, d.event.key, d.reason))
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rackbeat_change_changes_only_its_fields_and_hand_set_ones_survive() {
    let mut env = synced_env().await;

    // A bookkeeper sets a customer's invoice e-mail and a product's VAT type (15 %, code 31) by
    // hand in Tripletex.
    let customer = active_customer(&env);
    let product = env
        .sb
        .tripletex
        .records(Kind::Product)
        .into_iter()
        .find(|p| {
            p["isInactive"] == false && !text(&p["number"]).is_empty() && p["vatType"].is_object()
        })
        .expect("a product");
    let food_vat = one(&env, Kind::VatType, "number", &json!("31"));
    let tx = &env.worker.tenant.tripletex;
    tx.put_json(
        &format!("/customer/{}", customer["id"]),
        &[],
        &json!({ "invoiceEmail": "bokforing@kunde.example" }).to_string(),
    )
    .await
    .expect("the hand edit of the customer");
    tx.put_json(
        &format!("/product/{}", product["id"]),
        &[],
        &json!({ "vatType": { "id": food_vat["id"] } }).to_string(),
    )
    .await
    .expect("the hand edit of the product");
    let customer = one(&env, Kind::Customer, "id", &customer["id"]);
    let product = one(&env, Kind::Product, "id", &product["id"]);

    // Someone renames the customer in Rackbeat and changes the product's price.
    let (c_no, p_no) = (text(&customer["customerNumber"]), text(&product["number"]));
    env.sb
        .rackbeat
        .update(
            Resource::Customer,
            &c_no,
            json!({ "name": "Omdøpt Kunde AS" }),
        )
        .expect("rename in Rackbeat");
    let price = env
        .sb
        .rackbeat
        .get(Resource::Product, &p_no)
        .and_then(|p| p["sales_price"].as_f64())
        .unwrap_or(100.0);
    env.sb
        .rackbeat
        .update(
            Resource::Product,
            &p_no,
            json!({ "sales_price": price + 50.0 }),
        )
        .expect("price change in Rackbeat");
    let from = env.sb.tripletex.requests().len();
    enqueue(&env, "customer", &c_no, "customer.updated").await;
    enqueue(&env, "product", &p_no, "product.updated").await;
    drain(&mut env).await;
    assert!(env.store.list_dead_letters().await.expect("dlq").is_empty());
    assert_eq!(
        tripletex_writes_since(&env, from),
        [
            format!("PUT /v2/customer/{}", customer["id"]),
            format!("PUT /v2/product/{}", product["id"])
        ]
    );
    // The product's update goes out with the version the binding kept, which the hand edit made
    // stale: Tripletex refuses it (409), rbtx reads the record and sends the update again. The
    // customer's mapping reads its address ids, so it is read first and sent once.
    let product_path = format!("/v2/product/{}", product["id"]);
    assert_eq!(
        answered(&env, from, "PUT", &product_path),
        [Some(409), Some(200)]
    );
    assert_eq!(answered(&env, from, "GET", &product_path).len(), 1);

    let renamed = one(&env, Kind::Customer, "id", &customer["id"]);
    assert_eq!(renamed["name"], "Omdøpt Kunde AS");
    assert_eq!(renamed["invoiceEmail"], "bokforing@kunde.example");
    assert_eq!(
        changed(&customer, &renamed),
        BTreeSet::from(["displayName", "name", "version"].map(String::from)),
        "only the name, and what Tripletex derives from it"
    );
    let repriced = one(&env, Kind::Product, "id", &product["id"]);
    assert_eq!(
        repriced["vatType"]["id"], food_vat["id"],
        "the hand-set VAT type survives"
    );
    let fields = changed(&product, &repriced);
    assert!(fields.contains("priceExcludingVatCurrency"), "{fields:?}");
    let allowed: BTreeSet<String> = [
        "priceExcludingVatCurrency",
        "priceIncludingVatCurrency",
        "priceExcludingVat",
        "priceIncludingVat",
        // What Tripletex derives from the prices.
        "discountPrice",
        "profit",
        "profitInPercent",
        "version",
    ]
    .map(String::from)
    .into();
    assert!(
        fields.is_subset(&allowed),
        "only price fields changed: {fields:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_update_whose_answer_is_lost_is_not_sent_again() {
    let mut env = synced_env().await;
    let customer = active_customer(&env);
    let c_no = text(&customer["customerNumber"]);
    env.sb
        .rackbeat
        .update(Resource::Customer, &c_no, json!({ "name": "Tapt Svar AS" }))
        .expect("rename in Rackbeat");
    // The rename takes effect in Tripletex and its answer is lost.
    env.sb.tripletex.set_faults(FaultConfig {
        seed: 11,
        rate_drop: 1.0,
        writes_only: true,
        ..Default::default()
    });
    let from = env.sb.tripletex.requests().len();
    enqueue(&env, "customer", &c_no, "customer.updated").await;
    env.worker.run_once(env.now).await.expect("run_once");
    assert_eq!(env.store.queue_depth().await.expect("depth"), 1, "retried");
    let after_loss = one(&env, Kind::Customer, "id", &customer["id"]);
    assert_eq!(
        after_loss["name"], "Tapt Svar AS",
        "the lost update did happen"
    );
    let lost = tripletex_writes_since(&env, from);
    let put = format!("PUT /v2/customer/{}", customer["id"]);
    assert!(
        !lost.is_empty() && lost.iter().all(|w| *w == put),
        "only the PUT (the connector resends an idempotent PUT itself): {lost:?}"
    );

    // The event's retry reads the customer, finds the change made, and binds without a write.
    env.sb.tripletex.set_faults(FaultConfig::default());
    env.now += 1_000;
    let retry_from = env.sb.tripletex.requests().len();
    drain(&mut env).await;
    assert_eq!(
        tripletex_writes_since(&env, retry_from),
        Vec::<String>::new()
    );
    assert_eq!(one(&env, Kind::Customer, "id", &customer["id"]), after_loss);
    assert!(env.store.list_dead_letters().await.expect("dlq").is_empty());

    // And the next event of the record, unchanged, costs no Tripletex request at all.
    let quiet_from = env.sb.tripletex.requests().len();
    enqueue(&env, "customer", &c_no, "customer.updated").await;
    drain(&mut env).await;
    assert_eq!(env.sb.tripletex.requests().len(), quiet_from);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inactive_tripletex_customer_is_found_and_bound_not_created_again() {
    let mut env = support::worker::env("booked", "inactive-test").await;
    let inactive = env
        .sb
        .tripletex
        .records(Kind::Customer)
        .into_iter()
        .find(|c| c["isInactive"] == true)
        .expect("the seed has an inactive customer");
    let number = text(&inactive["customerNumber"]);
    // The same customer made in Rackbeat by hand (no initial sync, so nothing is bound).
    env.sb
        .rackbeat
        .create(
            Resource::Customer,
            json!({ "number": number, "name": inactive["name"], "is_barred": true }),
        )
        .expect("a Rackbeat customer");
    let from = env.sb.tripletex.requests().len();
    enqueue(&env, "customer", &number, "customer.created").await;
    drain(&mut env).await;
    assert!(
        env.store.list_dead_letters().await.expect("dlq").is_empty(),
        "not refused as a second customer with the number"
    );
    let writes = tripletex_writes_since(&env, from);
    assert_eq!(writes, [format!("PUT /v2/customer/{}", inactive["id"])]);
    assert_eq!(
        env.store
            .get_binding(TENANT, "rackbeat_to_tripletex", "customer", &number)
            .await
            .expect("binding")
            .map(|b| b.target_id),
        Some(inactive["id"].clone())
    );
}

async fn poll(env: &Env) -> usize {
    let syncer = &env.worker;
    catchup::poll(
        syncer.store.as_ref(),
        &syncer.tenant.rackbeat,
        &syncer.pack,
        TENANT,
        InvoiceMode::Booked,
        env.now,
    )
    .await
    .expect("catch-up")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_starts_where_the_initial_sync_ended_and_a_failure_stays_one_letter() {
    let mut env = synced_env().await;
    // Changed in Rackbeat after the initial sync, before `rbtx run` first looks, without a
    // webhook (an import): the first catch-up finds it, as its window began at the sync's end.
    let product = env
        .sb
        .rackbeat
        .list(Resource::Product)
        .into_iter()
        .next()
        .expect("a product");
    let number = text(&product["number"]);
    env.worker
        .tenant
        .rackbeat
        .put(
            &format!("/products/{number}"),
            &[("suppress_webhooks", "true".into())],
            &json!({ "name": "Importert etter synk" }),
        )
        .await
        .expect("an import's change");
    assert!(
        poll(&env).await >= 1,
        "the first catch-up queues the change"
    );
    drain(&mut env).await;
    assert_eq!(
        one(&env, Kind::Product, "number", &product["number"])["name"],
        "Importert etter synk"
    );

    // A record Tripletex has no VAT code for fails at every catch-up: one dead letter, counted.
    let rb = &env.sb.rackbeat;
    rb.create(
        Resource::ProductGroup,
        json!({ "number": 1099, "name": "Sju prosent", "vat_domestic": 7.0 }),
    )
    .expect("a 7 % group");
    rb.create(
        Resource::Product,
        json!({ "number": "SJU-7", "name": "Vare til 7 %", "group": 1099, "sales_price": 70.0 }),
    )
    .expect("a product in it");
    for _ in 0..10 {
        env.now += 300_000;
        poll(&env).await;
        drain(&mut env).await;
    }
    let dead = env.store.list_dead_letters().await.expect("dlq");
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!(dead[0].event.key, "SJU-7");
    assert!(
        dead[0].failures >= 2,
        "counted, not repeated: {}",
        dead[0].failures
    );
    assert!(dead[0].last_failed_at > dead[0].failed_at);
}
