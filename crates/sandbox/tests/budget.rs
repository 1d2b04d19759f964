//! The sandboxes charge like the real services: Rackbeat's per-token limit and its 429s,
//! Tripletex's rate headers on every answer, request counts by route, Tripletex's list
//! endpoints (all-or-nothing) and finds by lists of numbers.

use std::time::Duration;

use base64::Engine;
use rbtx_sandbox::tripletex::Kind;
use rbtx_sandbox::{RACKBEAT_TOKEN, SandboxConfig, rackbeat, tripletex};
use reqwest::{Client, Method};
use serde_json::{Value, json};

#[tokio::test]
async fn the_481st_rackbeat_request_in_a_minute_is_a_429_and_the_next_window_admits_again() {
    let rb = rackbeat::start(&SandboxConfig::default())
        .await
        .expect("starts");
    let client = Client::new();
    let get = || {
        client
            .get(format!("{}/products", rb.base_url))
            .bearer_auth(RACKBEAT_TOKEN)
            .send()
    };
    for i in 0..480 {
        let r = get().await.expect("answer");
        assert_eq!(r.status().as_u16(), 206, "request {}", i + 1);
    }
    let r = get().await.expect("answer");
    assert_eq!(r.status().as_u16(), 429);
    let h = r.headers();
    let retry: u64 = h["retry-after"]
        .to_str()
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(h["x-ratelimit-limit"], "480");
    assert_eq!(h["x-ratelimit-remaining"], "0");
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(body, json!({"message": "Too Many Attempts."}));
    rb.advance_rate_clock(Duration::from_secs(60));
    assert_eq!(get().await.expect("answer").status().as_u16(), 206);
    let counts = rb.request_counts();
    assert_eq!((counts.total, counts.throttled), (482, 1));
    assert_eq!(counts.route("GET /products"), 482);
    rb.set_rate_limit(0);
    for _ in 0..600 {
        assert_eq!(get().await.expect("answer").status().as_u16(), 206);
    }
}

#[tokio::test]
async fn rackbeat_counts_requests_by_route_template() {
    let rb = rackbeat::start(&SandboxConfig::default())
        .await
        .expect("starts");
    let client = Client::new();
    let first = rb.list(rackbeat::Resource::Product);
    let number = first[0]["number"].as_str().unwrap_or_default().to_string();
    for _ in 0..3 {
        let r = client
            .get(format!("{}/products/{number}", rb.base_url))
            .bearer_auth(RACKBEAT_TOKEN)
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status().as_u16(), 200);
    }
    let c = rb.request_counts();
    assert_eq!(c.route("GET /products/{number}"), 3, "{c:?}");
    let over_http: Value = client
        .get(format!("http://{}/admin/request-counts", rb.addr))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .unwrap_or(Value::Null);
    assert_eq!(over_http["by_route"]["GET /products/{number}"], 3);
    rb.reset_request_counts();
    assert_eq!(rb.request_counts().total, 0);
}

struct Tx {
    sb: tripletex::Handle,
    client: Client,
    auth: String,
}

impl Tx {
    async fn start() -> Tx {
        let sb = tripletex::start(&SandboxConfig::default())
            .await
            .expect("starts");
        let token = sb.create_session();
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("0:{token}"));
        Tx {
            sb,
            client: Client::new(),
            auth: format!("Basic {auth}"),
        }
    }

    async fn call(
        &self,
        m: Method,
        path: &str,
        q: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self
            .client
            .request(m, format!("{}{path}", self.sb.base_url))
            .header("Authorization", &self.auth)
            .query(q);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("answer");
        let (s, h) = (r.status().as_u16(), r.headers().clone());
        (s, h, r.json().await.unwrap_or(Value::Null))
    }
}

fn numbers(v: &Value, key: &str) -> Vec<Value> {
    v["values"]
        .as_array()
        .map(|a| a.iter().map(|x| x[key].clone()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn tripletex_sends_its_rate_headers_on_every_answer() {
    let tx = Tx::start().await;
    let bad_auth = tx
        .client
        .get(format!("{}/product", tx.sb.base_url))
        .send()
        .await
        .expect("answer");
    let mut answers = vec![(bad_auth.status().as_u16(), bad_auth.headers().clone())];
    for (m, p) in [
        (Method::GET, "/product"),
        (Method::GET, "/product/1"),
        (Method::POST, "/product"),
        (Method::GET, "/nothing"),
    ] {
        let body = (m == Method::POST).then(|| json!({"name": ""}));
        let (s, h, _) = tx.call(m, p, &[], body).await;
        answers.push((s, h));
    }
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses, vec![401, 200, 404, 422, 404]);
    for (s, h) in &answers {
        for name in [
            "x-rate-limit-limit",
            "x-rate-limit-remaining",
            "x-rate-limit-reset",
        ] {
            assert!(h.get(name).is_some(), "{name} missing on a {s}");
        }
        assert_eq!(h["x-rate-limit-limit"], "10000");
    }
    let c = tx.sb.request_counts();
    assert_eq!(c.route("GET /product/{id}"), 1);
    assert_eq!(c.route("GET /product"), 2);
    assert_eq!(c.total, 5);
    tx.sb.reset();
    assert_eq!(tx.sb.request_counts().total, 0);
}

#[tokio::test]
async fn tripletex_list_writes_are_all_or_nothing_and_name_the_item() {
    let tx = Tx::start().await;
    let before = tx.sb.count(Kind::Product);
    let items = json!([
        {"name": "Liste 1", "number": "L-1"},
        {"name": "Liste 2", "number": "L-2"},
        {"name": "Liste 3", "number": "L-3"},
        {"name": "Liste 4", "number": "L-1"},
    ]);
    let (s, _, body) = tx
        .call(Method::POST, "/product/list", &[], Some(items))
        .await;
    assert_eq!((s, body["code"].clone()), (422, json!(18000)), "{body}");
    let m = &body["validationMessages"][0];
    assert_eq!(
        (m["field"].clone(), m["path"].clone()),
        (json!("number"), json!("[3].number"))
    );
    assert_eq!(tx.sb.count(Kind::Product), before, "nothing written");

    let (s, _, body) = tx
        .call(
            Method::POST,
            "/product/list",
            &[],
            Some(json!([{"name": "A", "colour": "red"}])),
        )
        .await;
    assert_eq!((s, body["code"].clone()), (422, json!(16000)), "{body}");
    assert_eq!(body["validationMessages"][0]["path"], "[0].colour");

    let items = json!([{"name": "Liste 1", "number": "L-1"}, {"name": "Liste 2", "number": "L-2"}]);
    let (s, _, body) = tx
        .call(Method::POST, "/product/list", &[], Some(items))
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["fullResultSize"], 2);
    assert_eq!(numbers(&body, "number"), vec![json!("L-1"), json!("L-2")]);
    let (a, b) = (body["values"][0].clone(), body["values"][1].clone());

    let update = json!([
        {"id": a["id"], "version": a["version"], "name": "Ny 1"},
        {"id": b["id"], "version": b["version"], "name": "Ny 2"},
    ]);
    let (s, _, body) = tx
        .call(Method::PUT, "/product/list", &[], Some(update))
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(numbers(&body, "name"), vec![json!("Ny 1"), json!("Ny 2")]);
    let stale = json!([
        {"id": a["id"], "version": body["values"][0]["version"], "name": "Nyere 1"},
        {"id": b["id"], "version": b["version"], "name": "Nyere 2"},
    ]);
    let (s, _, body) = tx
        .call(Method::PUT, "/product/list", &[], Some(stale))
        .await;
    assert_eq!((s, body["code"].clone()), (409, json!(8000)), "{body}");
    let id = a["id"].as_i64().unwrap_or(0);
    assert_eq!(
        tx.sb.record(Kind::Product, id).map(|r| r["name"].clone()),
        Some(json!("Ny 1"))
    );
    let (s, _, body) = tx
        .call(
            Method::PUT,
            "/customer/list",
            &[],
            Some(json!([{"name": "Uten id"}])),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    let paths: Vec<Value> = body["validationMessages"]
        .as_array()
        .map(|a| a.iter().map(|m| m["path"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(paths, vec![json!("[0].id"), json!("[0].version")]);
    let (s, _, body) = tx
        .call(
            Method::POST,
            "/supplier/list",
            &[],
            Some(json!([{"name": "Lev 1"}, {"name": "Lev 2"}])),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let c = tx.sb.request_counts();
    assert_eq!(
        (c.route("POST /product/list"), c.route("PUT /product/list")),
        (3, 2)
    );
}

#[tokio::test]
async fn tripletex_finds_by_lists_of_numbers_with_paging() {
    let tx = Tx::start().await;
    let products = tx.sb.records(Kind::Product);
    let nums: Vec<String> = products
        .iter()
        .take(3)
        .filter_map(|p| p["number"].as_str().map(str::to_string))
        .collect();
    assert_eq!(nums.len(), 3);
    let joined = nums.join(",");
    let (s, _, body) = tx
        .call(Method::GET, "/product", &[("productNumber", &joined)], None)
        .await;
    assert_eq!(
        (s, body["fullResultSize"].clone()),
        (200, json!(3)),
        "{body}"
    );
    let repeated: Vec<(&str, &str)> = nums.iter().map(|n| ("productNumber", n.as_str())).collect();
    let (_, _, body) = tx.call(Method::GET, "/product", &repeated, None).await;
    assert_eq!(body["values"].as_array().map(Vec::len), Some(3));
    let (_, _, body) = tx
        .call(
            Method::GET,
            "/product",
            &[("productNumber", &joined), ("from", "1"), ("count", "1")],
            None,
        )
        .await;
    assert_eq!(
        (body["fullResultSize"].clone(), body["count"].clone()),
        (json!(3), json!(1))
    );
    let (_, _, body) = tx
        .call(
            Method::GET,
            "/product",
            &[("productNumber", nums[0].as_str())],
            None,
        )
        .await;
    assert_eq!(numbers(&body, "number"), vec![json!(nums[0])]);
    for (path, key, field) in [
        ("/customer", "customerAccountNumber", "customerNumber"),
        ("/supplier", "supplierNumber", "supplierNumber"),
    ] {
        let kind = if path == "/customer" {
            Kind::Customer
        } else {
            Kind::Supplier
        };
        let wanted: Vec<String> = tx
            .sb
            .records(kind)
            .iter()
            .take(2)
            .map(|r| r[field].to_string())
            .collect();
        let (s, _, body) = tx
            .call(Method::GET, path, &[(key, &wanted.join(","))], None)
            .await;
        assert_eq!(s, 200);
        let got: Vec<String> = numbers(&body, field).iter().map(Value::to_string).collect();
        assert_eq!(got, wanted, "{path}");
    }
}
