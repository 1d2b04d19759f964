//! Rackbeat credit notes through the worker into Tripletex, in `booked` mode, made the way a
//! Rackbeat user makes them (`POST /customer-invoices/{n}/create-creditnote`, an edit, `/book`):
//! - an invoice dated three days ago arrives with that date and its net total;
//! - a whole credit note of it arrives once, as Tripletex's credit note of it (`isCreditNote`,
//!   `creditedInvoice`), its total negated, and the original shows as credited;
//! - a partial credit note (one of two units) of another invoice arrives once, negative and
//!   linked, through two requests (an order, then its invoicing); a failure between them makes
//!   nothing twice, and a redelivered webhook nothing at all;
//! - a credit note of an invoice rbtx never delivered waits in the dead-letter queue naming both
//!   Rackbeat numbers.

mod support;

use rbtx::dates;
use rbtx::sandbox::rackbeat::Resource;
use rbtx::sandbox::tripletex::Kind;
use rbtx::store::{NewEvent, Store};
use serde_json::{Value, json};
use support::worker::{Env, TENANT};

async fn enqueue(e: &mut Env, number: &str) {
    e.store
        .enqueue(NewEvent {
            tenant: TENANT.into(),
            entity: "invoice".into(),
            key: number.into(),
            event: "invoice.booked".into(),
            payload: json!({ "key_name": "number", "key": number }),
            received_at: e.now,
        })
        .await
        .expect("enqueue");
    e.worker.run_once(e.now).await.expect("run_once");
    e.now += 120_000;
}

/// Delivers the booked-invoice event of `number` and expects it applied, with no dead letter.
async fn deliver(e: &mut Env, number: &str) {
    enqueue(e, number).await;
    assert_eq!(e.store.queue_depth().await.expect("depth"), 0, "{number}");
    let dead = e.store.list_dead_letters().await.expect("dlq");
    assert!(dead.is_empty(), "{dead:#?}");
}

fn catalogue(e: &Env) {
    let rb = &e.sb.rackbeat;
    rb.create(
        Resource::ProductGroup,
        json!({ "number": 1901, "name": "Varer 25 %", "vat_domestic": 25, "vat_eu": 0,
                "vat_abroad": 0, "vat_domestic_exempt": 0 }),
    )
    .expect("group");
    rb.create(
        Resource::Product,
        json!({ "number": "KN-HYLLE", "name": "Hylle", "group": 1901, "sales_price": 100.0 }),
    )
    .expect("product");
    rb.create(
        Resource::Customer,
        json!({ "number": 31001, "name": "Kreditkunden AS", "vat_zone": "domestic", "currency": "NOK" }),
    )
    .expect("customer");
}

/// A booked invoice of `quantity` shelves at 100, dated `date`.
fn book(e: &Env, number: i64, quantity: i64, date: &str) -> Value {
    e.sb.rackbeat
        .create_draft_invoice(
            json!({ "number": number, "customer_id": 31001, "invoice_date": date,
            "lines": [{ "item_id": "KN-HYLLE", "quantity": quantity, "line_price": 100 }] }),
        )
        .expect("draft");
    e.sb.rackbeat.book_invoice(number as u64).expect("booked")
}

/// A credit note of `number` made through Rackbeat's API, its lines changed by `edit`, booked.
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
    let n: u64 = key.parse().expect("a number");
    e.sb.rackbeat.book_invoice(n).expect("book the credit note");
    key
}

fn invoices(e: &Env) -> Vec<Value> {
    e.sb.tripletex.records(Kind::Invoice)
}

fn invoice_with_comment(e: &Env, comment: &str) -> Value {
    let found: Vec<Value> = invoices(e)
        .into_iter()
        .filter(|i| i["comment"] == json!(comment))
        .collect();
    assert_eq!(found.len(), 1, "one invoice with comment {comment}");
    found[0].clone()
}

fn net(v: &Value) -> f64 {
    v["amountExcludingVatCurrency"].as_f64().expect("an amount")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_notes_arrive_once_linked_to_the_invoice_they_credit() {
    let mut e = support::worker::env("booked", "credit-worker").await;
    catalogue(&e);
    let three_days_ago = dates::format(dates::today() - 3);

    // An invoice dated three days ago, with its date and its net total.
    book(&e, 91001, 2, &three_days_ago);
    deliver(&mut e, "91001").await;
    let original = invoice_with_comment(&e, "Rackbeat invoice 91001");
    assert_eq!(original["invoiceDate"], json!(three_days_ago));
    assert_eq!(net(&original), 200.0);

    // A whole credit note: Tripletex's own credit note of it.
    let whole = credit(&e, 91001, None).await;
    let before = invoices(&e).len();
    deliver(&mut e, &whole).await;
    assert_eq!(invoices(&e).len(), before + 1, "one credit note");
    let note = invoice_with_comment(
        &e,
        &format!("Rackbeat credit note {whole} of Rackbeat invoice 91001"),
    );
    assert_eq!(note["isCreditNote"], json!(true));
    assert_eq!(note["creditedInvoice"]["id"], original["id"]);
    assert_eq!(net(&note), -200.0);
    let original = invoice_with_comment(&e, "Rackbeat invoice 91001");
    assert_eq!(
        original["isCredited"],
        json!(true),
        "the original shows as credited"
    );
    deliver(&mut e, &whole).await;
    assert_eq!(invoices(&e).len(), before + 1, "redelivered: nothing twice");

    // A partial credit note (one of two units) of another invoice: an order, then its
    // invoicing as a credit note of the invoice it credits.
    book(&e, 91010, 2, &three_days_ago);
    deliver(&mut e, "91010").await;
    let second = invoice_with_comment(&e, "Rackbeat invoice 91010");
    let partial = credit(
        &e,
        91010,
        Some(json!({ "lines": [{ "item_id": "KN-HYLLE", "quantity": 1, "line_price": 100 }] })),
    )
    .await;
    let (orders, before) = (e.sb.tripletex.count(Kind::Order), invoices(&e).len());
    deliver(&mut e, &partial).await;
    assert_eq!(e.sb.tripletex.count(Kind::Order), orders + 1, "one order");
    assert_eq!(invoices(&e).len(), before + 1, "one credit note");
    let note = invoices(&e)
        .into_iter()
        .find(|i| i["creditedInvoice"]["id"] == second["id"])
        .expect("a credit note of the second invoice");
    assert_eq!(note["isCreditNote"], json!(true));
    assert_eq!(net(&note), -100.0);
    deliver(&mut e, &partial).await;
    assert_eq!(invoices(&e).len(), before + 1, "redelivered: nothing twice");

    // A crash right after either request was answered, before rbtx bound it (the bindings moved
    // out of the way stand for the writes they never recorded): the retry finds the invoice,
    // then the order, and sends neither again.
    for entity in ["partial_credit_note.then", "partial_credit_note"] {
        let lost = format!("lost {entity}");
        let moved = e
            .store
            .move_binding(TENANT, "rackbeat_to_tripletex", entity, &partial, &lost)
            .await
            .expect("move");
        assert!(moved, "{entity} was bound");
        deliver(&mut e, &partial).await;
        assert_eq!(
            e.sb.tripletex.count(Kind::Order),
            orders + 1,
            "{entity}: one order"
        );
        assert_eq!(invoices(&e).len(), before + 1, "{entity}: one credit note");
    }

    // A credit note of an invoice rbtx never delivered waits, naming both numbers.
    book(&e, 91020, 1, &three_days_ago);
    let orphan = credit(&e, 91020, None).await;
    let writes = e.sb.tripletex.count(Kind::Order);
    enqueue(&mut e, &orphan).await;
    let dead = e.store.list_dead_letters().await.expect("dlq");
    assert_eq!(dead.len(), 1, "{dead:#?}");
    let reason = &dead[0].reason;
    assert!(
        reason.contains(&format!(
            "Rackbeat invoice {orphan} is a credit note of Rackbeat invoice 91020"
        )) && reason.contains("Sync the original first"),
        "{reason}"
    );
    assert_eq!(e.sb.tripletex.count(Kind::Order), writes, "nothing written");
}
