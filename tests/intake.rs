//! The webhook intake: a good delivery is persisted before it is answered; every kind of bad
//! delivery is answered for what it is, enqueues nothing, and leaves the server up.

use std::path::PathBuf;
use std::sync::Arc;

use rbtx::plan::load_pack;
use rbtx::runtime::intake::{Intake, IntakeTenant};
use rbtx::secret::Secret;
use rbtx::store::Store;
use rbtx::store::sqlite::SqliteStore;
use serde_json::{Value, json};

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

async fn start() -> (String, Arc<SqliteStore>) {
    let (url, store, _) = start_intake().await;
    (url, store)
}

async fn start_intake() -> (String, Arc<SqliteStore>, Arc<Intake<SqliteStore>>) {
    let pack = load_pack(&[PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings")]);
    assert!(pack.diagnostics.is_empty());
    let store = Arc::new(SqliteStore::in_memory().expect("store"));
    store.migrate().await.expect("migrate");
    let tenants = vec![IntakeTenant {
        id: "acme".into(),
        account_id: "12345".into(),
        webhook_tokens: vec![
            Secret::new("ffffffffffffffffffffffffffffffff"),
            Secret::new(TOKEN),
        ],
    }];
    let intake = Arc::new(Intake::new(store.clone(), tenants, &pack).with_max_body_bytes(4096));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = intake.clone().router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}/webhooks/rackbeat"), store, intake)
}

async fn deliver(url: &str, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client
        .post(url)
        .header("Content-Type", "application/json")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("answer");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn good(event: &str) -> Vec<(&str, &str)> {
    vec![
        ("Rackbeat-Webhook-Token", TOKEN),
        ("Rackbeat-Webhook-Event", event),
        ("Rackbeat-Account-Id", "12345"),
        ("User-Agent", "Rackbeat Webhook"),
    ]
}

#[tokio::test]
async fn a_thin_delivery_is_persisted_then_acknowledged() {
    let (url, store) = start().await;
    let (status, body) = deliver(
        &url,
        &good("product.updated"),
        r#"{"key_name":"number","key":"1021"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "queued");
    assert_eq!(store.queue_depth().await.expect("depth"), 1);
    let claimed = store
        .claim(Some("acme"), "w1", 10, i64::MAX / 4, 60_000)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        (claimed[0].entity.as_str(), claimed[0].key.as_str()),
        ("product", "1021")
    );
    assert_eq!(claimed[0].event, "product.updated");
}

#[tokio::test]
async fn a_renumbered_record_is_queued_under_its_new_key() {
    let (url, store) = start().await;
    let body = json!({"key": "VARE-1001-B", "key_name": "number", "old_key": "VARE-1001", "new_key": "VARE-1001-B"});
    let (status, _) = deliver(&url, &good("product.updated"), &body.to_string()).await;
    assert_eq!(status, 200);
    let claimed = store
        .claim(Some("acme"), "w1", 10, i64::MAX / 4, 60_000)
        .await
        .expect("claim");
    assert_eq!(claimed[0].key, "VARE-1001-B");
    assert_eq!(
        claimed[0].payload["old_key"], "VARE-1001",
        "the old key is kept for moving the binding"
    );
}

#[tokio::test]
async fn bad_deliveries_are_answered_and_enqueue_nothing() {
    let (url, store) = start().await;
    let thin = r#"{"key_name":"number","key":"1021"}"#;
    // (what, headers, body, expected status)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, String, u16);
    let cases: Vec<Case> = vec![
        (
            "wrong token",
            vec![
                ("Rackbeat-Webhook-Token", "nope"),
                ("Rackbeat-Webhook-Event", "product.created"),
                ("Rackbeat-Account-Id", "12345"),
            ],
            thin.into(),
            401,
        ),
        (
            "no token",
            vec![
                ("Rackbeat-Webhook-Event", "product.created"),
                ("Rackbeat-Account-Id", "12345"),
            ],
            thin.into(),
            401,
        ),
        (
            "a token one character short",
            vec![
                ("Rackbeat-Webhook-Token", &TOKEN[1..]),
                ("Rackbeat-Webhook-Event", "product.created"),
                ("Rackbeat-Account-Id", "12345"),
            ],
            thin.into(),
            401,
        ),
        (
            "unknown account",
            vec![
                ("Rackbeat-Webhook-Token", TOKEN),
                ("Rackbeat-Webhook-Event", "product.created"),
                ("Rackbeat-Account-Id", "999"),
            ],
            thin.into(),
            401,
        ),
        (
            "no account",
            vec![
                ("Rackbeat-Webhook-Token", TOKEN),
                ("Rackbeat-Webhook-Event", "product.created"),
            ],
            thin.into(),
            400,
        ),
        (
            "no event",
            vec![
                ("Rackbeat-Webhook-Token", TOKEN),
                ("Rackbeat-Account-Id", "12345"),
            ],
            thin.into(),
            400,
        ),
        ("not JSON", good("product.created"), "{key: 1".into(), 400),
        (
            "JSON but not an object",
            good("product.created"),
            "[1,2]".into(),
            400,
        ),
        (
            "no key",
            good("product.created"),
            r#"{"key_name":"number"}"#.into(),
            400,
        ),
        (
            "oversized",
            good("product.created"),
            format!(r#"{{"key":"1","pad":"{}"}}"#, "x".repeat(10_000)),
            413,
        ),
        ("unknown event", good("order.created"), thin.into(), 200),
    ];
    for (what, headers, body, want) in &cases {
        let (status, answer) = deliver(&url, headers, body).await;
        assert_eq!(status, *want, "{what}: {answer}");
        assert_eq!(
            store.queue_depth().await.expect("depth"),
            0,
            "{what} enqueued something"
        );
    }
    // Still serving.
    let (status, _) = deliver(
        &url,
        &good("customer.updated"),
        r#"{"key_name":"number","key":10001}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(store.queue_depth().await.expect("depth"), 1);
}

#[tokio::test]
async fn health_readiness_and_metrics_are_served() {
    let (url, _store) = start().await;
    let base = url.trim_end_matches("/webhooks/rackbeat").to_string();
    let get = |path: &str| {
        let u = format!("{base}{path}");
        async move {
            let r = reqwest::get(u).await.expect("answer");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        }
    };
    assert_eq!(get("/healthz").await, (200, "ok".into()));
    assert_eq!(get("/readyz").await.0, 200);
    deliver(&url, &good("product.updated"), r#"{"key":"A"}"#).await;
    deliver(&url, &good("order.created"), r#"{"key":"B"}"#).await;
    deliver(&url, &[("Rackbeat-Account-Id", "12345")], r#"{"key":"C"}"#).await;
    let (status, text) = get("/metrics").await;
    assert_eq!(status, 200);
    for line in [
        r#"rbtx_webhooks_received_total{outcome="queued"} 1"#,
        r#"rbtx_webhooks_received_total{outcome="ignored"} 1"#,
        r#"rbtx_webhooks_received_total{outcome="refused"} 1"#,
        "rbtx_queue_depth 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
    }
}

#[tokio::test]
async fn tokens_added_on_a_reload_are_accepted_from_then_on() {
    let (url, store, intake) = start_intake().await;
    let new = "abababababababababababababababab";
    let mut headers = good("product.updated");
    headers[0].1 = new;
    let body = r#"{"key_name":"number","key":"1021"}"#;
    assert_eq!(deliver(&url, &headers, body).await.0, 401);
    assert_eq!(intake.add_tokens("acme", vec![Secret::new(new)]), 1);
    assert_eq!(
        intake.add_tokens("acme", vec![Secret::new(new), Secret::new(TOKEN)]),
        0,
        "known tokens are not added twice"
    );
    assert_eq!(deliver(&url, &headers, body).await.0, 200);
    assert_eq!(deliver(&url, &good("product.updated"), body).await.0, 200);
    assert_eq!(
        store.queue_depth().await.expect("depth"),
        2,
        "both deliveries queued"
    );
}
