//! `rbtx reconcile` against both sandboxes (in-process) and the shipped pack, in `booked` mode:
//! - after the initial sync and real-time syncs (products, a customer, invoices, a whole and a
//!   partial credit note), both systems are in step and the period's totals agree, net of the
//!   credit notes;
//! - drift of every kind a sync repairs is found and named with its fields: a price and a name
//!   edited by hand in Tripletex, a product deleted there, a product and an invoice that never
//!   went over. `--fix` repairs each through the queue, sending only the fields that differ, and a
//!   second reconcile finds nothing; a third `--fix` queues nothing and makes no second invoice;
//! - what a sync must not repair is named and left alone: a record in Tripletex only, an invoice
//!   entered twice, a total that differs.
//!
//! The awkward invoices of `tests/invoices.rs` are reconciled there, in both modes.

mod support;

use rbtx::runtime::initial::{self, Options};
use rbtx::runtime::reconcile::{Difference, Report};
use rbtx::sandbox::rackbeat::Resource;
use rbtx::sandbox::tripletex::Kind;
use rbtx::store::{NewEvent, Store};
use serde_json::{Value, json};
use support::worker::{Env, TENANT};

async fn synced_env(mode: &str, id: &str) -> Env {
    let mut env = support::worker::env(mode, id).await;
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

/// Delivers `event` for `key` and expects it applied with no dead letter.
async fn deliver(e: &mut Env, entity: &str, event: &str, key: &str) {
    e.store
        .enqueue(NewEvent {
            tenant: TENANT.into(),
            entity: entity.into(),
            key: key.into(),
            event: event.into(),
            payload: json!({ "key_name": "number", "key": key }),
            received_at: e.now,
        })
        .await
        .expect("enqueue");
    for _ in 0..20 {
        e.worker.run_once(e.now).await.expect("run_once");
        e.now += 120_000;
        if e.store.queue_depth().await.expect("depth") == 0 {
            break;
        }
    }
    let dead = e.store.list_dead_letters().await.expect("dlq");
    assert!(dead.is_empty(), "{key}: {dead:#?}");
}

fn catalogue(e: &Env) {
    let rb = &e.sb.rackbeat;
    rb.create(
        Resource::ProductGroup,
        json!({ "number": 1901, "name": "Varer 25 %", "vat_domestic": 25, "vat_eu": 0,
                "vat_abroad": 0, "vat_domestic_exempt": 0 }),
    )
    .expect("group");
    for n in ["RC-1", "RC-2", "RC-3"] {
        rb.create(
            Resource::Product,
            json!({ "number": n, "name": format!("Hylle {n}"), "group": 1901, "sales_price": 100.0 }),
        )
        .expect("product");
    }
    rb.create(
        Resource::Customer,
        json!({ "number": 32001, "name": "Avstemt AS", "vat_zone": "domestic", "currency": "NOK" }),
    )
    .expect("customer");
}

fn draft(e: &Env, number: i64, quantity: i64) {
    e.sb.rackbeat
        .create_draft_invoice(json!({ "number": number, "customer_id": 32001,
            "lines": [{ "item_id": "RC-1", "quantity": quantity, "line_price": 100 }] }))
        .expect("draft");
    e.sb.rackbeat.book_invoice(number as u64).expect("booked");
}

/// A credit note of `number` made as a Rackbeat user makes one, its lines changed by `edit`.
async fn credit(e: &Env, number: i64, edit: Option<Value>) -> String {
    let made = e
        .worker
        .tenant
        .rackbeat
        .post(
            &format!("/customer-invoices/{number}/create-creditnote"),
            &[],
            &json!({}),
        )
        .await
        .expect("create-creditnote");
    let note = made.get("customer_invoice").unwrap_or(&made);
    let key = match &note["number"] {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => panic!("a credit note number, got {other}"),
    };
    if let Some(body) = edit {
        e.sb.rackbeat
            .update(Resource::CustomerInvoice, &key, body)
            .expect("edit the draft credit note");
    }
    e.sb.rackbeat
        .book_invoice(key.parse().expect("a number"))
        .expect("book the credit note");
    key
}

fn only(e: &Env, kind: Kind, field: &str, value: Value) -> Vec<Value> {
    e.sb.tripletex
        .records(kind)
        .into_iter()
        .filter(|r| r[field] == value)
        .collect()
}

fn kinds(r: &Report) -> Vec<String> {
    let mut out: Vec<String> = r
        .entities
        .iter()
        .flat_map(|e| {
            e.differences.iter().map(move |d| match d {
                Difference::Missing { key, .. } => format!("missing {} {key}", e.entity),
                Difference::Unbound {
                    natural_key, key, ..
                } => format!("unbound {} {natural_key} {key:?}", e.entity),
                Difference::Gone { key, .. } => format!("gone {} {key}", e.entity),
                Difference::Different { key, fields, .. } => {
                    let f: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
                    format!("different {} {key} {}", e.entity, f.join(","))
                }
                Difference::Total {
                    key,
                    rackbeat,
                    tripletex,
                    ..
                } => format!("total {} {key} {rackbeat} {tripletex}", e.entity),
                Difference::Duplicate {
                    natural_key,
                    tripletex_ids,
                } => format!(
                    "duplicate {} {natural_key} {}",
                    e.entity,
                    tripletex_ids.len()
                ),
            })
        })
        .collect();
    out.sort();
    out
}

fn period(r: &Report) -> (String, String) {
    let p = r
        .periods
        .iter()
        .find(|p| p.entities.iter().any(|e| e == "invoice"))
        .expect("the invoices' period");
    (p.rackbeat.total.clone(), p.tripletex.total.clone())
}

/// A bookkeeper's DELETE in Tripletex.
async fn delete_in_tripletex(e: &Env, path: &str) {
    let token = e.sb.tripletex.create_session();
    let status = reqwest::Client::new()
        .delete(format!("{}{path}", e.sb.tripletex.base_url))
        .basic_auth("0", Some(token))
        .send()
        .await
        .expect("DELETE")
        .status();
    assert!(status.is_success(), "DELETE {path}: {status}");
}

/// Both sandboxes' seeds brought in step (the initial sync, then a reconcile's `--fix` for the
/// Rackbeat records no webhook announced), and the history of the module's comment.
async fn with_history(id: &str) -> Env {
    let mut e = synced_env("booked", id).await;
    let first = e.reconcile(&[], true).await;
    let f = first.fixed.as_ref().expect("--fix reports");
    assert!(f.failed.is_empty() && f.left.is_empty(), "{f:?}");
    catalogue(&e);
    for n in ["RC-1", "RC-2", "RC-3"] {
        deliver(&mut e, "product", "product.created", n).await;
    }
    deliver(&mut e, "customer", "customer.created", "32001").await;
    draft(&e, 92001, 2);
    deliver(&mut e, "invoice", "invoice.booked", "92001").await;
    let whole = credit(&e, 92001, None).await;
    deliver(&mut e, "invoice", "invoice.booked", &whole).await;
    draft(&e, 92010, 2);
    deliver(&mut e, "invoice", "invoice.booked", "92010").await;
    let partial = credit(
        &e,
        92010,
        Some(json!({ "lines": [{ "item_id": "RC-1", "quantity": 1, "line_price": 100 }] })),
    )
    .await;
    deliver(&mut e, "invoice", "invoice.booked", &partial).await;
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_found_by_kind_and_field_and_fix_repairs_it_once() {
    let mut e = with_history("reconcile-fix").await;

    let r = e.reconcile(&[], false).await;
    assert_eq!(kinds(&r), Vec::<String>::new(), "in step after the syncs");
    // 200 invoiced, 200 credited; 200 invoiced, 100 credited.
    assert_eq!(period(&r), ("100.00".into(), "100.00".into()));

    // Drift: a price and a name edited by hand, a product deleted in Tripletex, a product and an
    // invoice that never went over.
    let tx = &e.worker.tenant.tripletex;
    let p1 = only(&e, Kind::Product, "number", json!("RC-1"))[0]["id"].clone();
    tx.update_versioned(
        &format!("/product/{p1}"),
        3,
        |_| json!({ "priceExcludingVatCurrency": 90 }),
    )
    .await
    .expect("a price edited by hand");
    let c = only(&e, Kind::Customer, "customerNumber", json!(32001))[0]["id"].clone();
    tx.update_versioned(
        &format!("/customer/{c}"),
        3,
        |_| json!({ "name": "Avstemt" }),
    )
    .await
    .expect("a name edited by hand");
    let p2 = only(&e, Kind::Product, "number", json!("RC-2"))[0]["id"].clone();
    delete_in_tripletex(&e, &format!("/product/{p2}")).await;
    e.sb.rackbeat
        .create(
            Resource::Product,
            json!({ "number": "RC-4", "name": "Hylle RC-4", "group": 1901, "sales_price": 100.0 }),
        )
        .expect("product");
    draft(&e, 92020, 3);

    let r = e.reconcile(&[], false).await;
    assert_eq!(
        kinds(&r),
        vec![
            "different customer 32001 name",
            "different product RC-1 priceExcludingVatCurrency",
            "gone product RC-2",
            "missing invoice 92020",
            "missing product RC-4",
        ]
    );
    let different = r
        .entities
        .iter()
        .flat_map(|e| &e.differences)
        .find_map(|d| match d {
            Difference::Different { key, fields, .. } if key == "RC-1" => Some(fields.clone()),
            _ => None,
        })
        .expect("RC-1 differs");
    assert_eq!(
        (&different[0].rackbeat, &different[0].tripletex),
        (&json!(100.0), &json!(90))
    );
    assert_eq!(period(&r), ("400.00".into(), "100.00".into()));

    // --fix: each repaired through the queue, only the fields that differ sent.
    let before = e.sb.tripletex.requests().len();
    let drifted = only(&e, Kind::Product, "number", json!("RC-1"))[0].clone();
    let invoices = e.sb.tripletex.count(Kind::Invoice);
    let fixed = e.reconcile(&[], true).await;
    let f = fixed.fixed.as_ref().expect("--fix reports");
    assert_eq!(f.queued.len(), 5, "{f:?}");
    assert!(f.failed.is_empty() && f.left.is_empty(), "{f:?}");
    let puts = e.sb.tripletex.requests()[before..]
        .iter()
        .filter(|r| r.method == "PUT" && r.path == format!("/v2/product/{p1}"))
        .count();
    assert_eq!(puts, 1, "one PUT of RC-1");
    // Only the price was sent: every other field is as the bookkeeper left it.
    let after = only(&e, Kind::Product, "number", json!("RC-1"))[0].clone();
    let mut changed: Vec<&String> = after
        .as_object()
        .expect("a record")
        .iter()
        .filter(|(k, v)| drifted.get(k.as_str()) != Some(v))
        .map(|(k, _)| k)
        .collect();
    changed.sort();
    // With what Tripletex derives from the price itself.
    assert_eq!(
        changed,
        [
            "discountPrice",
            "priceExcludingVatCurrency",
            "profit",
            "version"
        ]
    );
    assert_eq!(
        only(&e, Kind::Product, "number", json!("RC-1"))[0]["priceExcludingVatCurrency"],
        json!(100.0)
    );
    assert_eq!(only(&e, Kind::Product, "number", json!("RC-2")).len(), 1);
    assert_eq!(only(&e, Kind::Product, "number", json!("RC-4")).len(), 1);
    assert_eq!(e.sb.tripletex.count(Kind::Invoice), invoices + 1);

    let r = e.reconcile(&[], false).await;
    assert_eq!(kinds(&r), Vec::<String>::new(), "in step after --fix");
    assert_eq!(period(&r), ("400.00".into(), "400.00".into()));
    let again = e.reconcile(&[], true).await;
    assert!(again.fixed.expect("report").queued.is_empty());
    assert_eq!(
        e.sb.tripletex.count(Kind::Invoice),
        invoices + 1,
        "never a second invoice"
    );
    e.now += 1;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_sync_must_not_repair_is_named_and_left_alone() {
    let e = with_history("reconcile-left").await;
    let tx = &e.worker.tenant.tripletex;
    // A product made in Tripletex only, and invoice 92001 entered a second time by hand.
    tx.post(
        "/product",
        &[],
        &json!({ "number": "TX-ONLY", "name": "Bare i Tripletex" }),
    )
    .await
    .expect("a product made by hand");
    let original = only(
        &e,
        Kind::Invoice,
        "comment",
        json!("Rackbeat invoice 92001"),
    )[0]
    .clone();
    tx.post(
        "/invoice",
        &[("sendToCustomer", "false".into())],
        &json!({
            "invoiceDate": original["invoiceDate"], "invoiceDueDate": original["invoiceDueDate"],
            "customer": { "id": original["customer"]["id"] }, "comment": "Rackbeat invoice 92001",
            "orders": [{ "customer": { "id": original["customer"]["id"] },
                "orderDate": original["invoiceDate"], "deliveryDate": original["invoiceDate"],
                "orderLines": [{ "description": "Hylle", "count": 1, "unitPriceExcludingVatCurrency": 50 }] }]
        }),
    )
    .await
    .expect("an invoice entered twice");
    let products = e.sb.tripletex.count(Kind::Product);
    let invoices = e.sb.tripletex.count(Kind::Invoice);
    let r = e.reconcile(&[], true).await;
    assert_eq!(
        kinds(&r),
        vec![
            "duplicate invoice Rackbeat invoice 92001 2",
            "unbound invoice Rackbeat invoice 92001 None",
            "unbound product TX-ONLY None",
        ]
    );
    let f = r.fixed.expect("--fix reports");
    assert!(f.queued.is_empty(), "{f:?}");
    assert_eq!(f.left.len(), 3, "{f:?}");
    assert_eq!(e.sb.tripletex.count(Kind::Product), products);
    assert_eq!(e.sb.tripletex.count(Kind::Invoice), invoices);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_edited_in_tripletex_is_a_total_that_differs_and_is_left_alone() {
    let mut e = synced_env("as_order", "reconcile-order").await;
    let first = e.reconcile(&[], true).await;
    let f = first.fixed.as_ref().expect("--fix reports");
    assert!(f.failed.is_empty() && f.left.is_empty(), "{f:?}");
    catalogue(&e);
    for n in ["RC-1", "RC-2", "RC-3"] {
        deliver(&mut e, "product", "product.created", n).await;
    }
    draft(&e, 94001, 2);
    deliver(&mut e, "invoice", "invoice.booked", "94001").await;
    let r = e.reconcile(&[], false).await;
    assert_eq!(kinds(&r), Vec::<String>::new(), "in step");
    assert_eq!(period(&r).0, period(&r).1);

    // The order is people's to edit: three units instead of two.
    let order = only(
        &e,
        Kind::Order,
        "reference",
        json!("Rackbeat invoice 94001"),
    )[0]
    .clone();
    let line =
        e.sb.tripletex
            .records(Kind::OrderLine)
            .into_iter()
            .find(|l| l["order"]["id"] == order["id"])
            .expect("a line");
    e.worker
        .tenant
        .tripletex
        .put(
            &format!("/order/{}", order["id"]),
            &[("updateLinesAndGroups", "true".into())],
            &json!({ "version": order["version"], "orderLines": [{
                "product": line["product"], "description": line["description"], "count": 3,
                "unitPriceExcludingVatCurrency": 100, "vatType": line["vatType"] }] }),
        )
        .await
        .expect("an order edited by hand");
    let orders = e.sb.tripletex.count(Kind::Order);
    let r = e.reconcile(&[], true).await;
    assert_eq!(kinds(&r), vec!["total invoice 94001 200.00 300.00"]);
    let f = r.fixed.expect("--fix reports");
    assert!(f.queued.is_empty() && f.left.len() == 1, "{f:?}");
    assert_eq!(e.sb.tripletex.count(Kind::Order), orders);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credit_note_of_an_invoice_never_delivered_is_missing_naming_both_until_its_invoice_is() {
    let e = with_history("reconcile-credit").await;
    // Booked before rbtx was installed: neither the invoice nor its credit note went over.
    draft(&e, 92030, 2);
    let note = credit(&e, 92030, None).await;
    let r = e.reconcile(&[], false).await;
    let differences: Vec<&Difference> = r.entities.iter().flat_map(|e| &e.differences).collect();
    assert!(
        kinds(&r).contains(&"missing invoice 92030".to_string()),
        "{:?}",
        kinds(&r)
    );
    let reason = differences
        .iter()
        .find_map(|d| match d {
            Difference::Missing {
                key,
                reason: Some(reason),
            } if *key == note => Some(reason.clone()),
            _ => None,
        })
        .expect("the credit note is missing, with why");
    assert!(
        reason.contains("92030") && reason.contains(&note),
        "{reason}"
    );
    // --fix delivers the invoice and leaves the credit note, saying why; the next --fix, with
    // the invoice there, delivers the credit note as Tripletex's credit note of it.
    let first = e.reconcile(&[], true).await;
    let f = first.fixed.expect("--fix reports");
    assert_eq!(f.queued, ["invoice 92030"], "{f:?}");
    assert!(f.left.iter().any(|l| l.contains(&note)), "{f:?}");
    let second = e.reconcile(&[], true).await;
    let f = second.fixed.expect("--fix reports");
    assert_eq!(f.queued.len(), 1, "{f:?}");
    let r = e.reconcile(&[], false).await;
    assert_eq!(kinds(&r), Vec::<String>::new());
    // 100 net before; 200 invoiced and 200 credited since.
    assert_eq!(period(&r), ("100.00".into(), "100.00".into()));
    let original = only(
        &e,
        Kind::Invoice,
        "comment",
        json!("Rackbeat invoice 92030"),
    );
    assert_eq!(original.len(), 1);
    assert_eq!(original[0]["isCredited"], json!(true));
}
