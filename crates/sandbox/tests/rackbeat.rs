//! The Rackbeat sandbox against what the API notes document: auth, 206 paging, envelopes,
//! encoded item numbers, 422s, webhook subscription and delivery (headers, thin bodies,
//! suppression, booking, conversion, retries), time filters and injected faults.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use rbtx_sandbox::faults::FaultConfig;
use rbtx_sandbox::rackbeat::{self, Handle, INVOICE_BOOKED_EVENT, Resource};
use rbtx_sandbox::{DataSize, RACKBEAT_ACCOUNT_ID, RACKBEAT_TOKEN, SandboxConfig};
use reqwest::Method;
use serde_json::{Value, json};

async fn sandbox() -> Handle {
    sandbox_with(SandboxConfig::default()).await
}

async fn sandbox_with(config: SandboxConfig) -> Handle {
    rackbeat::start(&config).await.expect("the sandbox starts")
}

/// Sends an authenticated request; returns the status, the headers and the JSON body (null if none).
async fn call(
    h: &Handle,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, HeaderMap, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", h.base_url))
        .bearer_auth(&h.token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("the sandbox answers");
    let status = StatusCode::from_u16(resp.status().as_u16()).expect("a status");
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("a body");
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

async fn get(h: &Handle, path: &str) -> (StatusCode, Value) {
    let (s, _, v) = call(h, Method::GET, path, None).await;
    (s, v)
}

async fn send(h: &Handle, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
    let (s, _, v) = call(h, method, path, Some(body)).await;
    (s, v)
}

/// What a webhook receiver got.
#[derive(Debug, Clone)]
struct Hit {
    headers: HeaderMap,
    body: Value,
}

#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    failing: Arc<AtomicBool>,
}

impl Receiver {
    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().expect("lock").clone()
    }

    async fn wait_for(&self, n: usize) -> Vec<Hit> {
        for _ in 0..500 {
            if self.hits().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.hits()
    }
}

/// A local webhook receiver: answers 200, or 500 while `failing` is set. Returns its URL.
async fn receiver() -> (String, Receiver) {
    let r = Receiver::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            post(
                |State(r): State<Receiver>, headers: HeaderMap, body: Bytes| async move {
                    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    r.hits.lock().expect("lock").push(Hit { headers, body });
                    if r.failing.load(Ordering::SeqCst) {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::OK
                    }
                },
            ),
        )
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), r)
}

async fn subscribe(h: &Handle, event: &str, url: &str) -> Value {
    let (status, v) = send(
        h,
        Method::POST,
        "/webhooks",
        json!({ "event": event, "url": url, "is_active": true }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    v["webhook"].clone()
}

fn header<'a>(hit: &'a Hit, name: &str) -> &'a str {
    hit.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn every_request_needs_the_bearer_token() {
    let h = sandbox().await;
    let client = reqwest::Client::new();
    let url = format!("{}/products", h.base_url);
    for req in [
        client.get(&url),
        client.get(&url).bearer_auth("wrong-token"),
        client.get(&url).basic_auth(RACKBEAT_TOKEN, None::<&str>),
    ] {
        let resp = req.send().await.expect("answer");
        assert_eq!(resp.status().as_u16(), 401);
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body, json!({ "message": "Unauthenticated." }));
    }
    let resp = client
        .get(&url)
        .bearer_auth(RACKBEAT_TOKEN)
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status().as_u16(), 206);
}

#[tokio::test]
async fn lists_answer_206_and_page_from_one() {
    let h = sandbox().await;
    let all: Vec<String> = h
        .list(Resource::Product)
        .iter()
        .map(|p| p["number"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(all.len(), 14);

    let (status, first) = get(&h, "/products").await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        (
            first["total"].clone(),
            first["pages"].clone(),
            first["limit"].clone(),
            first["page"].clone()
        ),
        (json!(14), json!(1), json!(20), json!(1))
    );
    assert_eq!(first["products"].as_array().map(Vec::len), Some(14));

    let mut walked = Vec::new();
    for page in 1..=4 {
        let (status, v) = get(&h, &format!("/products?limit=4&page={page}")).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(
            (
                v["total"].clone(),
                v["pages"].clone(),
                v["limit"].clone(),
                v["page"].clone()
            ),
            (json!(14), json!(4), json!(4), json!(page))
        );
        let rows = v["products"].as_array().cloned().unwrap_or_default();
        assert_eq!(rows.len(), if page < 4 { 4 } else { 2 });
        walked.extend(
            rows.iter()
                .map(|p| p["number"].as_str().unwrap_or("").to_string()),
        );
    }
    assert_eq!(
        walked, all,
        "the pages together are the whole list, once each, in order"
    );

    let (_, beyond) = get(&h, "/products?limit=4&page=5").await;
    assert_eq!(beyond["products"], json!([]));
    let (status, v) = get(&h, "/products?limit=1001").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        v,
        json!({ "errors": { "limit": ["The limit may not be greater than 1000."] } })
    );

    let (_, booked) = get(&h, "/customer-invoices?is_booked=true&limit=1000").await;
    let (_, drafts) = get(&h, "/customer-invoices?is_booked=false").await;
    assert_eq!(booked["total"], json!(6));
    assert_eq!(drafts["total"], json!(1));
    assert!(
        booked["customer_invoices"]
            .as_array()
            .is_some_and(|a| a.iter().all(|i| i["is_booked"] == json!(true)))
    );
    let (_, found) = get(&h, "/customers?search=fjord%20bygg").await;
    assert_eq!(found["customers"][0]["number"], json!(10001));
    let (_, by_number) = get(&h, "/products?number=VARE-3003").await;
    assert_eq!(by_number["total"], json!(1));
    let deep = format!("/lots?limit=1&fields=number,lines{}", "(".repeat(30_000));
    let (status, v) = get(&h, &deep).await;
    assert_eq!(
        status,
        StatusCode::PARTIAL_CONTENT,
        "a pathological selection does not crash the sandbox"
    );
    assert_eq!(v["lots"][0]["number"], json!("SETT-10"));
    let (_, selected) = get(&h, "/lots?fields=number,lines(product_id,quantity)&limit=1").await;
    assert_eq!(
        selected["lots"][0],
        json!({ "number": "SETT-10", "lines": [{ "product_id": "VARE-1001", "quantity": 6 }, { "product_id": "VARE-3003", "quantity": 3 }] })
    );
}

#[tokio::test]
async fn single_objects_come_in_their_singular_envelope() {
    let h = sandbox().await;
    let (status, v) = get(&h, "/products/VARE-1001").await;
    assert_eq!(status, StatusCode::OK);
    let p = &v["product"];
    assert_eq!(p["number"], json!("VARE-1001"));
    assert_eq!(p["urlfriendly_number"], json!("VARE-1001"));
    assert_eq!(p["type"], json!("product"));
    assert_eq!(p["sales_price"], json!(149.0));
    assert_eq!(p["cost_price"], json!(64.5));
    assert_eq!(p["sales_profit"], json!(84.5));
    assert_eq!(p["available_quantity"], json!(228));
    assert_eq!(p["group"]["vat_domestic"], json!(25.0));
    assert_eq!(
        p["group"]["self"],
        json!(format!("{}/product-groups/1001", h.base_url))
    );
    assert_eq!(p["unit"], json!({ "number": 1, "name": "stk" }));
    assert_eq!(
        p["is_convertable"],
        json!(false),
        "VARE-1001 is used in SETT-10"
    );
    assert_eq!(p["created_at"], json!("2024-11-02T10:11:12+01:00"));
    assert_eq!(p["updated_at"], json!("2025-02-27T14:03:55+01:00"));
    assert_eq!(
        p["self"],
        json!(format!("{}/products/VARE-1001", h.base_url))
    );

    let (_, v) = get(&h, "/lots/SETT-10").await;
    let lines = &v["lot"]["lines"];
    assert_eq!(lines[0]["product_id"], json!("VARE-1001"));
    assert_eq!(lines[0]["unit_price"], json!(64.5));
    assert_eq!(lines[0]["line_price"], json!(387.0));
    assert_eq!(v["lot"]["type"], json!("lot"));

    let (_, v) = get(&h, "/customers/10001").await;
    assert_eq!(
        v["customer"]["payment_terms"],
        json!({ "number": 1, "name": "Netto 14 dager", "type": "net", "maturity_days": 14 })
    );
    assert_eq!(v["customer"]["addresses"][0]["street"], json!("Kaien 3"));
    // Summer time: Rackbeat shows Danish/Norwegian local time with its offset.
    assert_eq!(
        v["customer"]["created_at"],
        json!("2024-06-01T12:00:00+02:00")
    );
    assert_eq!(
        v["customer"]["updated_at"],
        json!("2025-02-01T09:30:00+01:00")
    );

    let (_, v) = get(&h, "/customer-invoices/20001").await;
    let inv = &v["customer_invoice"];
    assert_eq!(
        (inv["total_subtotal"].clone(), inv["total_total"].clone()),
        (json!(1192.0), json!(1490.0))
    );
    assert_eq!(inv["booked_at"], json!("2025-03-01T10:00:00+01:00"));
    assert_eq!(inv["due_date"], json!("2025-03-15"));
    assert_eq!(
        inv["customer"],
        json!({ "number": 10001, "name": "Fjord Bygg AS", "contact_email": "post@fjordbygg.example.no", "vat_zone": "domestic" })
    );
    assert_eq!(inv["lines"][0]["child_type"], json!("product"));
    assert_eq!(inv["lines"][0]["vat_percentage"], json!(25));

    for (path, key, field, value) in [
        (
            "/suppliers/2001",
            "supplier",
            "name",
            json!("Nordisk Stål Engros AS"),
        ),
        (
            "/payment-terms/1",
            "payment_term",
            "type_translated",
            json!("Netto"),
        ),
        ("/employees/1", "employee", "name", json!("Kari Nordmann")),
        (
            "/product-groups/1003",
            "product_group",
            "vat_domestic",
            json!(15.0),
        ),
        ("/units/3", "unit", "name", json!("sett")),
    ] {
        let (status, v) = get(&h, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(v[key][field], value, "{path}");
    }
    let (_, v) = get(&h, "/payment-terms").await;
    assert_eq!(v["payment_terms"].as_array().map(Vec::len), Some(5));

    let (_, v) = get(&h, "/self").await;
    assert_eq!(v["user_account"]["id"], json!(RACKBEAT_ACCOUNT_ID));

    let (status, created) = send(&h, Method::POST, "/units", json!({ "name": "pakke" })).await;
    assert_eq!(
        (status, created["unit"]["number"].clone()),
        (StatusCode::CREATED, json!(7))
    );
    let (status, updated) = send(&h, Method::PUT, "/units/7", json!({ "name": "pk" })).await;
    assert_eq!(
        (status, updated["unit"]["name"].clone()),
        (StatusCode::OK, json!("pk"))
    );
    let (status, _, _) = call(&h, Method::DELETE, "/units/7", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, v) = get(&h, "/units/7").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(v["message"].as_str().is_some_and(|m| m.contains("Unit")));
}

#[tokio::test]
async fn item_numbers_with_slash_hash_and_space_are_decoded_once() {
    let h = sandbox().await;
    let (status, v) = get(&h, "/products/HYLLE%2F30%20%232%20B").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["product"]["number"], json!("HYLLE/30 #2 B"));
    assert_eq!(v["product"]["urlfriendly_number"], json!("HYLLE-30-2-B"));
    let (status, v) = get(&h, "/products/HYLLE-30-2-B").await;
    assert_eq!(
        (status, v["product"]["number"].clone()),
        (StatusCode::OK, json!("HYLLE/30 #2 B"))
    );
    // Encoded twice, the number is `HYLLE%2F30…` after the one decoding: no such product.
    let (status, _) = get(&h, "/products/HYLLE%252F30%2520%25232%2520B").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, v) = get(&h, "/lots/SETT%2F20%20%23B").await;
    assert_eq!(
        (status, v["lot"]["lines"][0]["product_id"].clone()),
        (StatusCode::OK, json!("SETT-10"))
    );
    assert_eq!(
        v["lot"]["self"],
        json!(format!("{}/lots/SETT-20-B", h.base_url))
    );
    assert_eq!(
        v["lot"]["pdf_url"],
        json!(format!("{}/lots/SETT-20-B.pdf", h.base_url))
    );
    let (status, v) = get(&h, "/products/MERK-%E6%97%A5%E6%9C%AC").await;
    assert_eq!(
        (status, v["product"]["urlfriendly_number"].clone()),
        (StatusCode::OK, json!("MERK-日本"))
    );

    let (status, v) = send(
        &h,
        Method::POST,
        "/products",
        json!({ "number": "ABC/123 #9", "name": "Ny vare", "group": 1001 }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let (status, v) = send(
        &h,
        Method::PUT,
        "/products/ABC%2F123%20%239",
        json!({ "sales_price": 10 }),
    )
    .await;
    assert_eq!(
        (status, v["product"]["sales_price"].clone()),
        (StatusCode::OK, json!(10.0))
    );
    let (status, _) = get(&h, "/products/ABC%2F123").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn invalid_writes_get_422_with_errors_by_field() {
    let h = sandbox().await;
    let (status, v) = send(
        &h,
        Method::POST,
        "/products",
        json!({ "number": "  ", "sales_price": "lots" }),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        v,
        json!({ "errors": {
            "sales_price": ["The sales price must be a number."],
            "number": ["The number field is required."],
            "name": ["The name field is required."],
            "group": ["The group field is required."],
        } })
    );
    let (_, v) = send(
        &h,
        Method::POST,
        "/products",
        json!({ "number": "VARE-1001", "name": "Kopi", "group": 9999 }),
    )
    .await;
    assert_eq!(
        v,
        json!({ "errors": { "number": ["The number has already been taken."], "group": ["The selected group is invalid."] } })
    );
    let (_, v) = send(&h, Method::POST, "/lots", json!({ "number": "SETT-99", "name": "Sett", "lines": [{ "product_id": "VARE-1001", "quantity": 1 }, { "product_id": "FINNES-IKKE" }] })).await;
    assert_eq!(
        v,
        json!({ "errors": { "lines.1.product_id": ["The selected lines.1.product_id is invalid."] } })
    );
    let (_, v) = send(
        &h,
        Method::PUT,
        "/lots/SETT-10",
        json!({ "lines": [{ "product_id": "SETT/20 #B" }] }),
    )
    .await;
    assert_eq!(
        v,
        json!({ "errors": { "lines.0.product_id": ["A lot cannot contain itself."] } })
    );
    let (_, v) = send(&h, Method::POST, "/payment-terms", json!({})).await;
    assert_eq!(
        v["errors"]
            .as_object()
            .map(|e| e.keys().cloned().collect::<Vec<_>>()),
        Some(vec![
            "name".to_string(),
            "maturity_days".to_string(),
            "type".to_string()
        ])
    );
    let (_, v) = send(
        &h,
        Method::POST,
        "/customers",
        json!({ "number": 10001, "vat_zone": "moon" }),
    )
    .await;
    assert_eq!(
        v,
        json!({ "errors": { "name": ["The name field is required."], "number": ["The number has already been taken."], "vat_zone": ["The selected vat zone is invalid."] } })
    );
    let (_, v) = send(
        &h,
        Method::POST,
        "/customer-invoices",
        json!({ "customer_id": 1, "lines": [{ "quantity": 1 }] }),
    )
    .await;
    assert_eq!(
        v,
        json!({ "errors": { "lines.0.item_id": ["Product needed"], "customer_id": ["The selected Customer is invalid."] } })
    );
    let (_, v) = send(
        &h,
        Method::POST,
        "/customer-invoices/drafts",
        json!({ "customer_id": 10001, "lines": [] }),
    )
    .await;
    assert_eq!(
        v,
        json!({ "errors": { "lines": ["The lines field is required."] } })
    );
    let (status, v) = send(
        &h,
        Method::PUT,
        "/customer-invoices/20001",
        json!({ "note": "x" }),
    )
    .await;
    assert_eq!(
        (status, v),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "errors": { "is_booked": ["A booked invoice cannot be changed."] } })
        )
    );
    let (status, _, v) = call(&h, Method::DELETE, "/product-groups/1001", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        v["errors"]["number"][0]
            .as_str()
            .is_some_and(|m| m.contains("used by product"))
    );
}

#[tokio::test]
async fn a_subscription_shows_its_token_once_and_resubscribing_updates_it() {
    let h = sandbox().await;
    let url = "http://127.0.0.1:9/hook";
    let w = subscribe(&h, "product.created", url).await;
    let token = w["token"].as_str().unwrap_or("");
    assert_eq!(token.len(), 32);
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        (
            w["failures_since_last_success"].clone(),
            w["plugin"].clone(),
            w["is_active"].clone()
        ),
        (json!(0), Value::Null, json!(true))
    );

    let (status, again) = send(
        &h,
        Method::POST,
        "/webhooks",
        json!({ "event": "product.created", "url": url, "is_active": false }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["webhook"]["id"], w["id"]);
    assert_eq!(again["webhook"]["is_active"], json!(false));
    assert!(again["webhook"].get("token").is_none());

    subscribe(&h, "lot.created", url).await;
    let (status, list) = get(&h, "/webhooks?event=product.created").await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(list["total"], json!(1));
    assert!(list["webhooks"][0].get("token").is_none());
    let (_, all) = get(&h, "/webhooks").await;
    assert_eq!(all["total"], json!(2));

    let (_, bad) = send(
        &h,
        Method::POST,
        "/webhooks",
        json!({ "event": "product.exploded", "url": "not a url" }),
    )
    .await;
    assert_eq!(
        bad,
        json!({ "errors": { "event": ["The selected event is invalid."], "url": ["The url format is invalid."] } })
    );

    let (status, _, _) = call(&h, Method::DELETE, &format!("/webhooks/{}", w["id"]), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, all) = get(&h, "/webhooks").await;
    assert_eq!(all["total"], json!(1));
}

#[tokio::test]
async fn a_create_delivers_a_thin_webhook_with_rackbeats_headers() {
    let h = sandbox().await;
    let (url, rx) = receiver().await;
    let w = subscribe(&h, "product.created", &url).await;
    let (status, _) = send(
        &h,
        Method::POST,
        "/products",
        json!({ "number": "VARE-9001", "name": "Testvare", "group": 1001, "sales_price": 10 }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    let hits = rx.wait_for(1).await;
    assert_eq!(hits.len(), 1);
    let hit = &hits[0];
    assert_eq!(
        hit.body,
        json!({ "key_name": "number", "key": "VARE-9001" })
    );
    assert_eq!(
        header(hit, "rackbeat-webhook-token"),
        w["token"].as_str().unwrap_or("?")
    );
    assert_eq!(header(hit, "rackbeat-webhook-event"), "product.created");
    assert_eq!(
        header(hit, "rackbeat-account-id"),
        RACKBEAT_ACCOUNT_ID.to_string()
    );
    assert_eq!(header(hit, "user-agent"), "Rackbeat Webhook");
    assert_eq!(header(hit, "content-type"), "application/json");

    let deliveries = h.wait_for_deliveries(1, Duration::from_secs(5)).await;
    assert_eq!(
        (
            deliveries[0].attempt,
            deliveries[0].status,
            deliveries[0].ok()
        ),
        (1, Some(200), true)
    );
    // Only subscribed events are delivered.
    h.update(Resource::Product, "VARE-9001", json!({ "name": "Endret" }))
        .expect("update");
    assert_eq!(
        h.events()
            .iter()
            .map(|e| e.event.as_str())
            .collect::<Vec<_>>(),
        ["product.created", "product.updated"]
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rx.hits().len(), 1);
}

#[tokio::test]
async fn suppressed_writes_deliver_nothing() {
    let h = sandbox().await;
    let (url, rx) = receiver().await;
    subscribe(&h, "customer.created", &url).await;
    subscribe(&h, "customer.updated", &url).await;
    let (status, _) = send(
        &h,
        Method::POST,
        "/customers?suppress_webhooks=true",
        json!({ "number": 50001, "name": "Stille AS" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, v) = send(
        &h,
        Method::PUT,
        "/customers/50001",
        json!({ "name": "Fortsatt stille AS", "suppress_webhooks": true }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(v["customer"].get("suppress_webhooks").is_none());
    // A write that is not suppressed, to the same URL: deliveries go out in order, so once it has
    // arrived, anything from the suppressed writes would have too.
    let (status, _) = send(
        &h,
        Method::POST,
        "/customers",
        json!({ "number": 50002, "name": "Høylytt AS" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let hits = rx.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(hits.len(), 1);
    assert_eq!(rx.hits().len(), 1);
    assert_eq!(
        hits[0].body,
        json!({ "key_name": "number", "key": "50002" })
    );
    assert_eq!(h.events().len(), 1);
}

#[tokio::test]
async fn invoice_totals_round_each_line_to_ore_in_decimals() {
    let h = sandbox().await;
    let lines = json!([
        { "item_id": "VARE-1001", "quantity": 3, "line_price": 99.995 },
        { "name": "Kaffe", "quantity": 7, "line_price": 0.3333, "vat_percentage": 15 }
    ]);
    let (status, v) = send(
        &h,
        Method::POST,
        "/customer-invoices/drafts",
        json!({ "customer_id": 10001, "lines": lines }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let inv = &v["customer_invoice"];
    // 3 × 99.995 = 299.985 → 299.99 (f64 holds 299.98499… and would round down), VAT 75.00;
    // 7 × 0.3333 = 2.3331 → 2.33, VAT 0.3495 → 0.35. Rounding only the sums would give 377.66.
    assert_eq!(
        (inv["total_subtotal"].clone(), inv["total_total"].clone()),
        (json!(302.32), json!(377.67))
    );
}

#[tokio::test]
async fn booking_an_invoice_delivers_the_booked_event() {
    let h = sandbox().await;
    let (url, rx) = receiver().await;
    subscribe(&h, INVOICE_BOOKED_EVENT, &url).await;
    let (status, v) = send(&h, Method::POST, "/customer-invoices/drafts", json!({ "customer_id": 10001, "lines": [{ "item_id": "SETT-10", "quantity": 2, "discount_percentage": 10 }] })).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let draft = &v["customer_invoice"];
    let number = draft["number"].as_i64().unwrap_or(0);
    assert_eq!(
        (draft["is_booked"].clone(), draft["booked_at"].clone()),
        (json!(false), Value::Null)
    );
    assert_eq!(draft["lines"][0]["child_type"], json!("lot"));
    // 2 × 899 less 10 % is 1618.2, plus 25 % VAT.
    assert_eq!(
        (
            draft["total_subtotal"].clone(),
            draft["total_total"].clone()
        ),
        (json!(1618.2), json!(2022.75))
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(rx.hits().is_empty(), "a draft fires nothing");

    let (status, v) = send(
        &h,
        Method::POST,
        &format!("/customer-invoices/{number}/book"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["customer_invoice"]["is_booked"], json!(true));
    assert!(
        v["customer_invoice"]["booked_at"]
            .as_str()
            .is_some_and(|t| t.len() == 25)
    );
    let hits = rx.wait_for(1).await;
    assert_eq!(
        hits[0].body,
        json!({ "key_name": "number", "key": number.to_string() })
    );
    assert_eq!(
        header(&hits[0], "rackbeat-webhook-event"),
        INVOICE_BOOKED_EVENT
    );

    let (status, v) = send(
        &h,
        Method::POST,
        &format!("/customer-invoices/{number}/book"),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, v),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "errors": { "is_booked": ["The invoice is already booked."] } })
        )
    );
    // Through the admin surface too, and a direct create is booked at once.
    let draft = h
        .create_draft_invoice(
            json!({ "customer_id": 10001, "lines": [{ "item_id": "VARE-1001" }] }),
        )
        .expect("draft");
    h.book_invoice(draft["number"].as_u64().unwrap_or(0))
        .expect("book");
    let (status, _) = send(
        &h,
        Method::POST,
        "/customer-invoices",
        json!({ "customer_id": 10001, "lines": [{ "child_id": "VARE-1001" }] }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(rx.wait_for(3).await.len(), 3);
}

#[tokio::test]
async fn converting_a_product_delivers_product_deleted_then_lot_created() {
    let h = sandbox().await;
    let (url, rx) = receiver().await;
    subscribe(&h, "product.deleted", &url).await;
    subscribe(&h, "lot.created", &url).await;
    let (status, v) = send(
        &h,
        Method::POST,
        "/products/VARE-2001/convert",
        json!({ "lines": [{ "product_id": "VARE-3003", "quantity": 2 }] }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (v["lot"]["type"].clone(), v["lot"]["number"].clone()),
        (json!("lot"), json!("VARE-2001"))
    );
    assert_eq!(v["lot"]["lines"][0]["product_id"], json!("VARE-3003"));

    let hits = rx.wait_for(2).await;
    assert_eq!(hits.len(), 2);
    assert_eq!(
        header(&hits[0], "rackbeat-webhook-event"),
        "product.deleted"
    );
    assert_eq!(
        hits[0].body,
        json!({ "key_name": "number", "key": "VARE-2001", "converted_to_lot": true })
    );
    assert_eq!(header(&hits[1], "rackbeat-webhook-event"), "lot.created");
    assert_eq!(
        hits[1].body,
        json!({ "key_name": "number", "key": "VARE-2001" })
    );
    assert_eq!(
        get(&h, "/products/VARE-2001").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(get(&h, "/lots/VARE-2001").await.0, StatusCode::OK);

    // A product used in lines cannot be converted.
    let (status, v) = send(&h, Method::POST, "/products/VARE-1001/convert", json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(v["errors"]["number"].is_array());
}

#[tokio::test]
async fn renumbering_sends_old_and_new_key_and_follows_references() {
    let h = sandbox().await;
    let (url, rx) = receiver().await;
    subscribe(&h, "product.updated", &url).await;
    let (status, v) = send(
        &h,
        Method::PUT,
        "/products/VARE-3003",
        json!({ "number": "VARE-3003-B" }),
    )
    .await;
    assert_eq!(
        (status, v["product"]["number"].clone()),
        (StatusCode::OK, json!("VARE-3003-B"))
    );
    let hits = rx.wait_for(1).await;
    assert_eq!(
        hits[0].body,
        json!({ "key_name": "number", "key": "VARE-3003-B", "old_key": "VARE-3003", "new_key": "VARE-3003-B" })
    );
    let lot = h.get(Resource::Lot, "SETT-10").expect("lot");
    assert_eq!(lot["lines"][1]["product_id"], json!("VARE-3003-B"));
}

#[tokio::test]
async fn failed_deliveries_are_retried_and_counted() {
    let h = sandbox().await;
    h.set_retry_delays(vec![Duration::from_millis(20), Duration::from_millis(40)]);
    let (url, rx) = receiver().await;
    rx.failing.store(true, Ordering::SeqCst);
    let w = subscribe(&h, "employee.created", &url).await;
    h.create(Resource::Employee, json!({ "name": "Per Hansen" }))
        .expect("employee");

    let deliveries = h.wait_for_deliveries(3, Duration::from_secs(5)).await;
    assert_eq!(
        deliveries
            .iter()
            .map(|d| (d.attempt, d.status))
            .collect::<Vec<_>>(),
        [(1, Some(500)), (2, Some(500)), (3, Some(500))]
    );
    assert_eq!(rx.hits().len(), 3);
    let (_, v) = get(&h, &format!("/webhooks/{}", w["id"])).await;
    assert_eq!(v["webhook"]["failures_since_last_success"], json!(3));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(h.deliveries().len(), 3, "no retries beyond the schedule");

    rx.failing.store(false, Ordering::SeqCst);
    h.create(Resource::Employee, json!({ "name": "Kari Olsen" }))
        .expect("employee");
    let deliveries = h.wait_for_deliveries(4, Duration::from_secs(5)).await;
    assert!(deliveries[3].ok());
    let (_, v) = get(&h, &format!("/webhooks/{}", w["id"])).await;
    assert_eq!(v["webhook"]["failures_since_last_success"], json!(0));
    let (_, logs) = get(&h, &format!("/webhooks/{}/logs", w["id"])).await;
    assert_eq!(logs["total"], json!(4));
    let admin: Value = reqwest::get(format!("http://{}/admin/deliveries", h.addr))
        .await
        .expect("admin")
        .json()
        .await
        .expect("json");
    assert_eq!(admin[0]["status"], json!(500));
    assert_eq!(admin[3]["status"], json!(200));
}

#[tokio::test]
async fn updated_at_filters_select_by_local_time() {
    let h = sandbox().await;
    let created = h
        .create(Resource::Customer, json!({ "name": "Ny Kunde AS" }))
        .expect("customer");
    assert_eq!(created["number"], json!(10009));
    // `2026-01-05T10:11:12+01:00` → `2026-01-05 10:11:12`
    let since = created["updated_at"]
        .as_str()
        .unwrap_or("")
        .get(..19)
        .unwrap_or("")
        .replace('T', "%20");
    let (status, v) = get(&h, &format!("/customers?updated_at_from={since}")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(v["total"], json!(1));
    assert_eq!(v["customers"][0]["number"], json!(10009));

    let bound = "2025-01-01 00:00:00";
    let expected = h
        .list(Resource::Customer)
        .iter()
        .filter(|c| {
            c["updated_at"]
                .as_str()
                .and_then(|t| t.get(..19))
                .is_some_and(|t| t.replace('T', " ").as_str() <= bound)
        })
        .count();
    let (_, v) = get(&h, "/customers?updated_at_to=2025-01-01%2000:00:00").await;
    assert_eq!(v["total"], json!(expected));
    assert!(
        (1..8).contains(&expected),
        "some seeded customers were updated before 2025, not all ({expected})"
    );

    let (status, v) = get(&h, "/customers?updated_at_from=01.01.2025").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        v,
        json!({ "errors": { "updated_at_from": ["The updated at from does not match the format Y-m-d H:i:s."] } })
    );
}

#[tokio::test]
async fn injected_faults_throttle_fail_and_drop() {
    let h = sandbox().await;
    h.set_faults(FaultConfig {
        rate_429: 1.0,
        ..Default::default()
    });
    let (s1, h1, v1) = call(&h, Method::GET, "/units", None).await;
    let (s2, h2, _) = call(&h, Method::GET, "/units", None).await;
    assert_eq!(
        (s1, s2),
        (StatusCode::TOO_MANY_REQUESTS, StatusCode::TOO_MANY_REQUESTS)
    );
    assert_eq!(v1, json!({ "message": "Too Many Attempts." }));
    assert_eq!(
        h1.contains_key("retry-after") as u8 + h2.contains_key("retry-after") as u8,
        1,
        "one of two carries Retry-After"
    );

    h.set_faults(FaultConfig {
        rate_5xx: 1.0,
        ..Default::default()
    });
    let (status, _, _) = call(&h, Method::GET, "/units", None).await;
    assert!([500, 502, 503].contains(&status.as_u16()));

    h.set_faults(FaultConfig {
        rate_drop: 1.0,
        writes_only: true,
        ..Default::default()
    });
    assert_eq!(
        get(&h, "/units").await.0,
        StatusCode::PARTIAL_CONTENT,
        "reads pass when only writes fail"
    );
    let dropped = reqwest::Client::new()
        .post(format!("{}/units", h.base_url))
        .bearer_auth(&h.token)
        .json(&json!({ "name": "x" }))
        .send()
        .await;
    assert!(dropped.is_err(), "the connection closes without an answer");
    assert_eq!(h.requests().last().map(|r| r.status), Some(None));

    // The admin routes set faults for a sandbox in another process; they are not faulted themselves.
    let admin = format!("http://{}/admin/faults", h.addr);
    let config = json!({ "rate_timeout": 1.0, "timeout_ms": 200 });
    let resp = reqwest::Client::new()
        .put(&admin)
        .json(&config)
        .send()
        .await
        .expect("admin");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        h.faults(),
        FaultConfig {
            rate_timeout: 1.0,
            timeout_ms: 200,
            ..Default::default()
        }
    );
    let started = std::time::Instant::now();
    assert_eq!(get(&h, "/units").await.0, StatusCode::PARTIAL_CONTENT);
    assert!(started.elapsed() >= Duration::from_millis(200));
    let requests: Value = reqwest::get(format!("http://{}/admin/requests", h.addr))
        .await
        .expect("admin")
        .json()
        .await
        .expect("json");
    assert_eq!(requests.as_array().map(Vec::len), Some(h.requests().len()));
}

#[tokio::test]
async fn seed_data_is_deterministic_and_large_on_request() {
    let strip = |mut v: Vec<Value>| {
        for x in &mut v {
            if let Some(m) = x.as_object_mut() {
                m.remove("self");
            }
        }
        v
    };
    let a = sandbox_with(SandboxConfig {
        seed: 7,
        ..Default::default()
    })
    .await;
    let b = sandbox_with(SandboxConfig {
        seed: 7,
        ..Default::default()
    })
    .await;
    let c = sandbox_with(SandboxConfig {
        seed: 8,
        ..Default::default()
    })
    .await;
    assert_eq!(
        strip(a.list(Resource::Customer)),
        strip(b.list(Resource::Customer))
    );
    assert_ne!(
        strip(a.list(Resource::Customer)),
        strip(c.list(Resource::Customer))
    );

    let large = sandbox_with(SandboxConfig {
        data: DataSize::Large,
        ..Default::default()
    })
    .await;
    let (status, v) = get(&large, "/products?limit=1000&page=6").await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        (v["total"].clone(), v["pages"].clone()),
        (json!(5008), json!(6))
    );
    assert_eq!(v["products"].as_array().map(Vec::len), Some(8));
    let (_, v) = get(&large, "/customer-invoices?is_booked=true&limit=1").await;
    assert_eq!(v["total"], json!(2001));
    let (_, v) = get(&large, "/customers?limit=1").await;
    assert_eq!(v["total"], json!(3001));
}

#[tokio::test]
async fn a_credit_note_is_drafted_from_a_booked_invoice_booked_with_the_same_event_and_never_credits_more()
 {
    let h = sandbox().await;
    let (url, rx) = receiver().await;
    subscribe(&h, INVOICE_BOOKED_EVENT, &url).await;
    // A draft dated three days before its booking keeps its own date; one without takes the
    // booking day.
    let (status, v) = send(
        &h,
        Method::POST,
        "/customer-invoices/drafts",
        json!({ "customer_id": 10001, "invoice_date": "2026-01-28",
        "lines": [{ "item_id": "VARE-1001", "quantity": 2, "line_price": 100 }] }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let number = v["customer_invoice"]["number"].as_i64().unwrap_or(0);
    assert_eq!(v["customer_invoice"]["is_creditnote"], json!(false));
    let path = format!("/customer-invoices/{number}");
    let (status, _) = send(
        &h,
        Method::POST,
        &format!("{path}/create-creditnote"),
        json!({}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a draft cannot be credited"
    );
    let (_, booked) = send(&h, Method::POST, &format!("{path}/book"), json!({})).await;
    assert_eq!(
        booked["customer_invoice"]["invoice_date"],
        json!("2026-01-28")
    );
    let other = h
        .create_draft_invoice(
            json!({ "customer_id": 10001, "lines": [{ "item_id": "VARE-1001" }] }),
        )
        .expect("draft");
    let other = h
        .book_invoice(other["number"].as_u64().unwrap_or(0))
        .expect("book");
    assert_eq!(
        other["invoice_date"].as_str().map(str::len),
        Some(10),
        "the booking day: {other}"
    );
    rx.wait_for(2).await;

    // The draft credit note has the invoice's lines, the flag and the invoice's number.
    let (status, v) = send(
        &h,
        Method::POST,
        &format!("{path}/create-creditnote"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let credit = &v["customer_invoice"];
    let credit_number = credit["number"].as_i64().unwrap_or(0);
    assert_eq!(
        (
            credit["is_creditnote"].clone(),
            credit["is_booked"].clone(),
            credit["credited_invoice_number"].clone()
        ),
        (json!(true), json!(false), json!(number))
    );
    assert_eq!(
        (
            credit["lines"][0]["child_id"].clone(),
            credit["lines"][0]["quantity"].clone(),
            credit["total_subtotal"].clone()
        ),
        (json!("VARE-1001"), json!(2), json!(200.0))
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(rx.hits().len(), 2, "a draft credit note fires nothing");

    // Changed to one unit, then booked: the booked-invoice event fires for it.
    let credit_path = format!("/customer-invoices/{credit_number}");
    let (status, v) = send(
        &h,
        Method::PUT,
        &credit_path,
        json!({ "lines": [{ "item_id": "VARE-1001", "quantity": 1, "line_price": 100 }] }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["customer_invoice"]["is_creditnote"], json!(true));
    let (status, _) = send(&h, Method::POST, &format!("{credit_path}/book"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let hits = rx.wait_for(3).await;
    assert_eq!(hits[2].body["key"], json!(credit_number.to_string()));
    assert_eq!(
        header(&hits[2], "rackbeat-webhook-event"),
        INVOICE_BOOKED_EVENT
    );

    // One unit is left: a second credit note of both units is refused when booked, and one of
    // the last unit goes through; after it nothing is left to draft from.
    let (_, v) = send(
        &h,
        Method::POST,
        &format!("{path}/create-creditnote"),
        json!({}),
    )
    .await;
    let second = v["customer_invoice"]["number"].as_i64().unwrap_or(0);
    let (status, body) = send(
        &h,
        Method::POST,
        &format!("/customer-invoices/{second}/book"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["errors"]["lines"][0]
            .as_str()
            .is_some_and(|m| m.contains("more than is left")),
        "{body}"
    );
    send(
        &h,
        Method::PUT,
        &format!("/customer-invoices/{second}"),
        json!({ "lines": [{ "item_id": "VARE-1001", "quantity": 1, "line_price": 100 }] }),
    )
    .await;
    let (status, _) = send(
        &h,
        Method::POST,
        &format!("/customer-invoices/{second}/book"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(
        &h,
        Method::POST,
        &format!("{path}/create-creditnote"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = send(
        &h,
        Method::POST,
        &format!("{credit_path}/create-creditnote"),
        json!({}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a credit note is not credited"
    );
}
