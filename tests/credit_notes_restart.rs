//! Credit notes end to end, the way an outside client meets them: `rbtx run` against `rbtx
//! sandbox`, everything made through Rackbeat's HTTP API, and the process killed between the two
//! requests of a partial credit note (the order is made, its invoicing refused), then started
//! again. Nothing may be made twice, and nothing may be left undone.

mod support;

use std::time::{Duration, Instant};

use rbtx::connectors::rackbeat::{Rackbeat, RackbeatConfig};
use rbtx::connectors::tripletex::{Tripletex, TripletexConfig};
use rbtx::dates;
use rbtx::sandbox;
use rbtx::secret::Secret;
use serde_json::{Value, json};
use support::process::{listening, start_sandboxes};

async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn net(v: &Value) -> f64 {
    v["amountExcludingVatCurrency"].as_f64().unwrap_or(f64::NAN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_credit_note_survives_a_kill_between_its_order_and_its_invoicing() {
    let dir = std::env::temp_dir().join(format!("rbtx-credit-restart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let store = dir.join("store.sqlite").to_string_lossy().into_owned();
    let sb = start_sandboxes();
    let http = reqwest::Client::new();
    // Refused deliveries come back quickly here (the real Rackbeat backs off for about a day).
    http.put(format!(
        "{}/admin/retry-delays",
        sb.rb_url.trim_end_matches("/api")
    ))
    .json(&json!({"delays_ms": [200, 400, 800, 1000, 1000, 1000, 1000, 1000, 1000, 1000]}))
    .send()
    .await
    .expect("retry delays");
    let tx_admin = format!("{}/admin/faults", sb.tx_url.trim_end_matches("/v2"));

    let port = support::free_port();
    sb.install_webhooks(port, &store);
    let start = || {
        let mut run = sb.run(port);
        run.args(["--lease-seconds", "1", "--store", &store]);
        listening(run.spawn().expect("start rbtx run"))
    };
    let mut rbtx = Some(start());

    let rb = Rackbeat::new(RackbeatConfig::new(
        sb.rb_url.as_str(),
        Secret::new(sandbox::RACKBEAT_TOKEN),
    ))
    .expect("rackbeat");
    let tx = Tripletex::new(TripletexConfig::new(
        sb.tx_url.as_str(),
        Secret::new(sandbox::CONSUMER_TOKEN),
        Secret::new(sandbox::EMPLOYEE_TOKEN),
    ))
    .expect("tripletex");
    rb.post(
        "/product-groups",
        &[],
        &json!({"number": 1902, "name": "Varer 25 %",
        "vat_domestic": 25, "vat_eu": 0, "vat_abroad": 0, "vat_domestic_exempt": 0}),
    )
    .await
    .expect("group");
    rb.post(
        "/products",
        &[],
        &json!({"number": "KR-HYLLE", "name": "Hylle", "group": 1902,
        "sales_price": 100.0}),
    )
    .await
    .expect("product");
    rb.post(
        "/customers",
        &[],
        &json!({"number": 31002, "name": "Omstartkunden AS",
        "vat_zone": "domestic", "currency": "NOK"}),
    )
    .await
    .expect("customer");
    let three_days_ago = dates::format(dates::today() - 3);
    rb.post(
        "/customer-invoices/drafts",
        &[],
        &json!({"number": 92001, "customer_id": 31002,
        "invoice_date": three_days_ago,
        "lines": [{"item_id": "KR-HYLLE", "quantity": 2, "line_price": 100}]}),
    )
    .await
    .expect("draft");
    rb.post("/customer-invoices/92001/book", &[], &json!({}))
        .await
        .expect("book");

    let invoices = || async {
        tx.list_all(
            "/invoice",
            &[
                ("invoiceDateFrom", "2000-01-01".to_string()),
                ("invoiceDateTo", "2100-01-01".to_string()),
            ],
        )
        .await
        .unwrap_or_default()
    };
    let original = eventually("the invoice in Tripletex", async || {
        invoices()
            .await
            .into_iter()
            .find(|i| i["comment"] == "Rackbeat invoice 92001")
    })
    .await;
    assert_eq!(
        original["invoiceDate"],
        json!(three_days_ago),
        "the document's own date"
    );
    assert_eq!(net(&original), 200.0);

    // Tripletex refuses to invoice any order for now: the credit note's second request fails.
    http.put(&tx_admin)
        .json(&json!({"rate_5xx": 1.0, "writes_only": true, "only_paths_containing": "/:invoice"}))
        .send()
        .await
        .expect("faults on");
    let made = rb
        .post(
            "/customer-invoices/92001/create-creditnote",
            &[],
            &json!({}),
        )
        .await
        .expect("create-creditnote");
    let note = made.get("customer_invoice").unwrap_or(&made);
    let number = match &note["number"] {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => panic!("a credit note number, got {other}"),
    };
    rb.put(
        &format!("/customer-invoices/{number}"),
        &[],
        &json!({
        "lines": [{"item_id": "KR-HYLLE", "quantity": 1, "line_price": 100}]}),
    )
    .await
    .expect("one unit of two");
    rb.post(
        &format!("/customer-invoices/{number}/book"),
        &[],
        &json!({}),
    )
    .await
    .expect("book the credit note");

    let orders = || async {
        tx.list_all(
            "/order",
            &[
                ("orderDateFrom", "2000-01-01".to_string()),
                ("orderDateTo", "2100-01-01".to_string()),
            ],
        )
        .await
        .unwrap_or_default()
    };
    let reference = format!("Rackbeat credit note {number}");
    eventually("the credit note's order", async || {
        let n = orders()
            .await
            .iter()
            .filter(|o| o["reference"] == json!(reference))
            .count();
        (n > 0).then_some(())
    })
    .await;
    // SIGKILL with the order made and its invoicing refused, still to be retried.
    drop(rbtx.take());
    http.put(&tx_admin)
        .json(&json!({}))
        .send()
        .await
        .expect("faults off");
    rbtx = Some(start());

    let credit = eventually("the credit note in Tripletex", async || {
        invoices()
            .await
            .into_iter()
            .find(|i| i["creditedInvoice"]["id"] == original["id"])
    })
    .await;
    assert_eq!(credit["isCreditNote"], json!(true));
    assert_eq!(net(&credit), -100.0, "one unit of two, negated");

    // Redelivered, and given time to retry: still one order and one credit note.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let same_order = orders()
        .await
        .iter()
        .filter(|o| o["reference"] == json!(reference))
        .count();
    assert_eq!(same_order, 1, "one order for the credit note");
    let notes = invoices()
        .await
        .iter()
        .filter(|i| i["creditedInvoice"]["id"] == original["id"])
        .count();
    assert_eq!(notes, 1, "one credit note");
    drop(rbtx);
    let dlq = support::process::rbtx()
        .args(["dlq", "list", "--store", &store])
        .output()
        .expect("dlq list");
    let listed = String::from_utf8_lossy(&dlq.stdout).to_string();
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        dlq.status.success() && listed.lines().last() == Some("0 dead letters"),
        "{listed}"
    );
}
