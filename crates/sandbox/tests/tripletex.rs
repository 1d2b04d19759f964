//! The Tripletex sandbox answers like Tripletex: sessions and auth, envelopes and paging, the
//! error codes and Norwegian messages, versions, date ranges, invoicing, rate limits and faults.

use base64::Engine;
use rbtx_sandbox::faults::FaultConfig;
use rbtx_sandbox::tripletex::{self, Handle, Kind};
use rbtx_sandbox::{CONSUMER_TOKEN, DataSize, EMPLOYEE_TOKEN, SandboxConfig};
use reqwest::{Client, Method, Response};
use serde_json::{Value, json};

struct Tx {
    sandbox: Handle,
    client: Client,
    auth: String,
}

async fn start(config: SandboxConfig) -> Tx {
    let sandbox = tripletex::start(&config).await.expect("sandbox starts");
    let auth = basic(&sandbox.create_session());
    Tx {
        sandbox,
        client: Client::new(),
        auth,
    }
}

async fn small() -> Tx {
    start(SandboxConfig::default()).await
}

fn basic(token: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("0:{token}"));
    format!("Basic {encoded}")
}

fn tomorrow() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    civil(i64::try_from(secs / 86_400).unwrap_or(0) + 1)
}

fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    civil(i64::try_from(secs / 86_400).unwrap_or(0))
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01).
fn civil(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    format!("{:04}-{m:02}-{d:02}", yoe + era * 400 + i64::from(m <= 2))
}

impl Tx {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sandbox.base_url)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Response {
        let mut req = self
            .client
            .request(method, self.url(path))
            .header("Authorization", &self.auth)
            .query(query);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.expect("the sandbox answers")
    }

    /// Status and JSON body.
    async fn json(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let resp = self.call(method, path, query, body).await;
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
        self.json(Method::GET, path, query, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.json(Method::POST, path, &[], Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.json(Method::PUT, path, &[], Some(body)).await
    }
}

/// The `(field, message)` pairs of an error body.
fn messages(body: &Value) -> Vec<(Value, String)> {
    body["validationMessages"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    (
                        m["field"].clone(),
                        m["message"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn sessions_are_created_both_ways_and_rejected_with_tripletex_messages() {
    let tx = small().await;
    let post = tx
        .client
        .post(tx.url("/token/session/:create"))
        .json(&json!({"consumerToken": CONSUMER_TOKEN, "employeeToken": EMPLOYEE_TOKEN, "expirationDate": tomorrow()}))
        .send()
        .await
        .expect("answer");
    assert_eq!(post.status().as_u16(), 201);
    let session: Value = post.json().await.unwrap_or_default();
    let token = session["value"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(token.starts_with("test-"), "{session}");
    assert_eq!(session["value"]["expirationDate"], json!(tomorrow()));
    assert!(session["value"]["consumerToken"]["id"].is_i64());

    let put = tx
        .client
        .put(tx.url("/token/session/:create"))
        .query(&[
            ("consumerToken", CONSUMER_TOKEN),
            ("employeeToken", EMPLOYEE_TOKEN),
            ("expirationDate", &tomorrow()),
        ])
        .send()
        .await
        .expect("answer");
    assert_eq!(put.status().as_u16(), 200);
    let legacy: Value = put.json().await.unwrap_or_default();
    let legacy_token = legacy["value"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_ne!(legacy_token, token);

    for t in [&token, &legacy_token] {
        let resp = tx
            .client
            .get(tx.url("/token/session/%3EwhoAmI"))
            .header("Authorization", basic(t))
            .send()
            .await;
        let who: Value = resp.expect("answer").json().await.unwrap_or_default();
        assert!(
            who["value"]["companyId"].as_i64().is_some_and(|c| c > 0),
            "{who}"
        );
        assert_eq!(who["value"]["employee"]["id"], who["value"]["employeeId"]);
    }

    let wrong = tx
        .client
        .put(tx.url("/token/session/:create"))
        .query(&[
            ("consumerToken", "prod-token"),
            ("employeeToken", EMPLOYEE_TOKEN),
            ("expirationDate", &tomorrow()),
        ])
        .send()
        .await
        .expect("answer");
    assert_eq!(wrong.status().as_u16(), 422);
    let body: Value = wrong.json().await.unwrap_or_default();
    assert_eq!(body["code"], 18000);
    assert_eq!(
        messages(&body),
        vec![(
            json!("arg:consumerToken"),
            "The consumer token is invalid or does not exist.".to_string()
        )]
    );

    let (status, body) = tx
        .post("/token/session/:create", json!({"consumerToken": CONSUMER_TOKEN, "employeeToken": EMPLOYEE_TOKEN, "expirationDate": today()}))
        .await;
    assert_eq!((status, body["code"].clone()), (422, json!(18000)));
    assert_eq!(messages(&body)[0].0, json!("expirationDate"));
}

#[tokio::test]
async fn a_missing_bad_or_expired_token_is_401_code_3000() {
    let tx = small().await;
    let requests = [
        tx.client.get(tx.url("/customer")),
        tx.client
            .get(tx.url("/customer"))
            .header("Authorization", basic("no-such-token")),
        tx.client
            .get(tx.url("/customer"))
            .basic_auth("someone@example.com", Some("token")),
    ];
    for req in requests {
        let resp = req.send().await.expect("answer");
        assert_eq!(resp.status().as_u16(), 401);
        let request_id = resp
            .headers()
            .get("x-tlx-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body: Value = resp.json().await.unwrap_or_default();
        assert_eq!(body["status"], 401);
        assert_eq!(body["code"], 3000);
        assert_eq!(body["message"], "Unauthorized");
        assert_eq!(body["link"], "https://tripletex.no/v2-docs/");
        assert!(
            body["developerMessage"].as_str().is_some_and(|m| m
                .ends_with("The expected format is base64encoded(<<companyId>>:<<sessionToken>>)")),
            "{body}"
        );
        assert_eq!(body["validationMessages"], Value::Null);
        assert_eq!(body["requestId"].as_str(), request_id.as_deref());
    }
    let (status, _) = tx.get("/customer", &[]).await;
    assert_eq!(status, 200);
    tx.sandbox.expire_sessions();
    let (status, body) = tx.get("/customer", &[]).await;
    assert_eq!((status, body["code"].clone()), (401, json!(3000)));
}

#[tokio::test]
async fn lists_page_with_from_and_count_over_large_data() {
    let tx = start(SandboxConfig {
        data: DataSize::Large,
        ..Default::default()
    })
    .await;
    let active = tx
        .sandbox
        .records(Kind::Customer)
        .into_iter()
        .filter(|c| c["isInactive"] == json!(false))
        .count();
    assert!(active > 2000, "{active}");
    let mut ids = Vec::new();
    let mut from = 0;
    loop {
        let (status, page) = tx
            .get(
                "/customer",
                &[
                    ("from", &from.to_string()),
                    ("count", "700"),
                    ("fields", "id,name"),
                ],
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(page["from"], from);
        assert_eq!(page["fullResultSize"], active);
        assert_eq!(
            page["versionDigest"],
            "'If-None-Match' header not specified"
        );
        let values = page["values"].as_array().cloned().unwrap_or_default();
        assert_eq!(page["count"], values.len());
        assert!(
            values
                .iter()
                .all(|v| v.as_object().is_some_and(|o| o.len() == 2))
        );
        ids.extend(values.iter().filter_map(|v| v["id"].as_i64()));
        if values.len() < 700 {
            break;
        }
        from += 700;
    }
    let unique: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!((ids.len(), unique.len()), (active, active));

    let (_, default_page) = tx.get("/product", &[]).await;
    assert_eq!(default_page["count"], 1000);
    let (_, inactive) = tx
        .get("/customer", &[("isInactive", "true"), ("count", "5")])
        .await;
    assert!(
        inactive["values"]
            .as_array()
            .is_some_and(|v| v.iter().all(|c| c["isInactive"] == json!(true)))
    );
}

#[tokio::test]
async fn fields_expand_references_and_unknown_fields_are_400() {
    let tx = small().await;
    let (_, list) = tx.get("/customer", &[("count", "1")]).await;
    let customer = &list["values"][0];
    assert!(
        customer["postalAddress"]["url"]
            .as_str()
            .is_some_and(|u| u.contains("/v2/address/"))
    );
    assert_eq!(
        customer["postalAddress"].as_object().map(|o| o.len()),
        Some(2)
    );
    let id = customer["id"].as_i64().unwrap_or_default();
    let (status, one) = tx
        .get(
            &format!("/customer/{id}"),
            &[(
                "fields",
                "id,name,postalAddress(city,country(isoAlpha2Code)),currency(code)",
            )],
        )
        .await;
    assert_eq!(status, 200);
    let value = &one["value"];
    assert_eq!(value.as_object().map(|o| o.len()), Some(4), "{value}");
    assert!(value["postalAddress"]["city"].is_string());
    assert!(value["postalAddress"]["country"]["isoAlpha2Code"].is_string());
    assert!(value["currency"]["code"].is_string());

    let (status, body) = tx
        .get(
            "/invoice",
            &[
                ("invoiceDateFrom", "2025-01-01"),
                ("invoiceDateTo", "2026-01-01"),
                ("fields", "id,amountUnpaid"),
            ],
        )
        .await;
    assert_eq!((status, body["code"].clone()), (400, json!(11000)));
    assert_eq!(
        body["message"],
        "Illegal field in fields filter: amountUnpaid. amountUnpaid does not match a field in the model: InvoiceDTO"
    );
}

#[tokio::test]
async fn unknown_fields_and_wrong_types_are_422_code_16000() {
    let tx = small().await;
    let before = tx.sandbox.count(Kind::Product);
    let (status, body) = tx
        .post("/product", json!({"name": "Hylle", "colour": "red"}))
        .await;
    assert_eq!(
        (status, body["code"].clone(), body["message"].clone()),
        (422, json!(16000), json!("Request mapping failed"))
    );
    assert_eq!(
        messages(&body),
        vec![(
            json!("colour"),
            "Feltet eksisterer ikke i objektet.".to_string()
        )]
    );

    let (status, body) = tx
        .post(
            "/product",
            json!({"name": "Hylle", "priceExcludingVatCurrency": "ti kroner"}),
        )
        .await;
    assert_eq!((status, body["code"].clone()), (422, json!(16000)));
    assert_eq!(
        messages(&body),
        vec![(
            json!("priceExcludingVatCurrency"),
            "Verdien er ikke av korrekt type for dette feltet.".to_string()
        )]
    );

    let customer = tx.sandbox.records(Kind::Customer)[0]["id"].clone();
    let order = json!({"customer": {"id": customer}, "orderDate": "2025-05-01", "deliveryDate": "2025-05-01",
        "orderLines": [{"description": "x", "count": "2", "quantity": 2}]});
    let (status, body) = tx.post("/order", order).await;
    assert_eq!((status, body["code"].clone()), (422, json!(16000)));
    let fields: Vec<Value> = messages(&body).into_iter().map(|(f, _)| f).collect();
    assert!(
        fields.contains(&json!("orderLines.quantity"))
            && fields.contains(&json!("orderLines.count")),
        "{body}"
    );
    assert_eq!(tx.sandbox.count(Kind::Product), before);
}

#[tokio::test]
async fn a_missing_name_is_422_code_18000() {
    let tx = small().await;
    for path in ["/customer", "/supplier", "/product"] {
        let (status, body) = tx.post(path, json!({"description": "Uten navn"})).await;
        assert_eq!(
            (status, body["code"].clone()),
            (422, json!(18000)),
            "{path}"
        );
        assert_eq!(body["message"], "Validering feilet.");
        assert_eq!(body["developerMessage"], "VALIDATION_ERROR");
        assert_eq!(
            messages(&body),
            vec![(json!("name"), "Feltet må fylles ut.".to_string())]
        );
    }
    let (status, created) = tx.post("/customer", json!({"name": "Ny Kunde AS"})).await;
    assert_eq!(status, 201);
    let c = &created["value"];
    assert_eq!(c["version"], 0);
    assert!(c["customerNumber"].as_i64().is_some_and(|n| n > 50_000));
    assert_eq!(c["invoicesDueIn"], 14);
    assert_eq!(c["invoicesDueInType"], "DAYS");
    assert!(c["postalAddress"]["id"].is_i64());
    assert!(
        c["url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("/v2/customer/{}", c["id"])))
    );
}

#[tokio::test]
async fn a_product_number_in_use_is_rejected() {
    let tx = small().await;
    let (status, first) = tx
        .post(
            "/product",
            json!({"name": "Hylle", "number": "A-1", "priceExcludingVatCurrency": 100}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(first["value"]["displayNumber"], "A-1");
    assert_eq!(first["value"]["vatType"]["id"], 3);
    let before = tx.sandbox.count(Kind::Product);
    let (status, body) = tx
        .post("/product", json!({"name": "Annen hylle", "number": "A-1"}))
        .await;
    assert_eq!((status, body["code"].clone()), (422, json!(18000)));
    assert_eq!(
        messages(&body),
        vec![(
            json!("number"),
            "Produktnummeret A-1 er i bruk.".to_string()
        )]
    );
    assert_eq!(tx.sandbox.count(Kind::Product), before);
    let (_, found) = tx
        .get(
            "/product",
            &[("productNumber", "A-1"), ("productNumber", "TX-1001")],
        )
        .await;
    assert_eq!(found["fullResultSize"], 2);
}

#[tokio::test]
async fn vat_type_ids_differ_from_codes_and_invalid_ones_are_rejected() {
    let tx = small().await;
    let (_, vat) = tx
        .get(
            "/ledger/vatType",
            &[("typeOfVat", "OUTGOING"), ("number", "33")],
        )
        .await;
    assert_eq!(vat["values"][0]["id"], 32);
    assert_eq!(vat["values"][0]["percentage"], 12);
    let (status, body) = tx
        .post("/product", json!({"name": "Brød", "vatType": {"id": 33}}))
        .await;
    assert_eq!((status, body["code"].clone()), (422, json!(18000)));
    assert_eq!(
        messages(&body),
        vec![(json!("vatType"), "Ugyldig mva-kode.".to_string())]
    );
    let (status, body) = tx
        .post("/product", json!({"name": "Brød", "vatType": {"id": 32}}))
        .await;
    assert_eq!(
        (status, body["value"]["vatType"]["id"].clone()),
        (201, json!(32))
    );

    tx.sandbox.set_vat_registered(false);
    let (_, outgoing) = tx
        .get("/ledger/vatType", &[("typeOfVat", "OUTGOING")])
        .await;
    let numbers: Vec<&str> = outgoing["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["number"].as_str())
        .collect();
    assert_eq!(numbers, vec!["0", "6"]);
    let (status, body) = tx
        .post("/product", json!({"name": "Stol", "vatType": {"id": 3}}))
        .await;
    assert_eq!(status, 422);
    assert_eq!(
        messages(&body),
        vec![(json!("vatType"), "Ugyldig mva-kode.".to_string())]
    );
}

#[tokio::test]
async fn a_stale_version_is_409_code_8000_and_put_is_partial() {
    let tx = small().await;
    let product = tx.sandbox.records(Kind::Product)[0].clone();
    let id = product["id"].as_i64().unwrap_or_default();
    let path = format!("/product/{id}");
    let (status, updated) = tx
        .put(&path, json!({"version": 0, "name": "Nytt navn"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(updated["value"]["version"], 1);
    assert_eq!(updated["value"]["name"], "Nytt navn");
    assert_eq!(updated["value"]["number"], product["number"]);
    assert_eq!(
        updated["value"]["priceExcludingVatCurrency"],
        product["priceExcludingVatCurrency"]
    );

    let (status, body) = tx
        .put(&path, json!({"version": 0, "name": "Gammelt"}))
        .await;
    assert_eq!(
        (status, body["code"].clone(), body["message"].clone()),
        (409, json!(8000), json!("RevisionException"))
    );
    let (status, body) = tx.put(&path, json!({"name": "Uten versjon"})).await;
    assert_eq!((status, body["value"]["version"].clone()), (200, json!(2)));
    let (_, fetched) = tx.get(&path, &[]).await;
    assert_eq!(fetched["value"]["name"], "Uten versjon");
}

#[tokio::test]
async fn orders_need_a_date_range_with_an_exclusive_end() {
    let tx = small().await;
    let (status, body) = tx.get("/order", &[]).await;
    assert_eq!((status, body["code"].clone()), (422, json!(18000)));
    let fields: Vec<Value> = messages(&body).into_iter().map(|(f, _)| f).collect();
    assert_eq!(fields, vec![json!("orderDateFrom"), json!("orderDateTo")]);
    let (status, _) = tx
        .get(
            "/order",
            &[
                ("orderDateFrom", "2025-03-01"),
                ("orderDateTo", "2025-03-01"),
            ],
        )
        .await;
    assert_eq!(status, 422);

    let customer = tx.sandbox.records(Kind::Customer)[0]["id"].clone();
    let (status, order) = tx
        .post("/order", json!({"customer": {"id": customer}, "orderDate": "2026-02-10", "deliveryDate": "2026-02-12", "reference": "R-1"}))
        .await;
    assert_eq!(status, 201);
    let id = order["value"]["id"].clone();
    let (_, day) = tx
        .get(
            "/order",
            &[
                ("orderDateFrom", "2026-02-10"),
                ("orderDateTo", "2026-02-11"),
            ],
        )
        .await;
    assert_eq!(
        day["values"]
            .as_array()
            .map(|v| v.iter().map(|o| o["id"].clone()).collect::<Vec<_>>()),
        Some(vec![id])
    );
    let (_, before) = tx
        .get(
            "/order",
            &[
                ("orderDateFrom", "2026-02-09"),
                ("orderDateTo", "2026-02-10"),
            ],
        )
        .await;
    assert_eq!(before["fullResultSize"], 0);

    let (status, body) = tx
        .post("/order", json!({"customer": {"id": customer}}))
        .await;
    assert_eq!(status, 422);
    assert_eq!(
        messages(&body),
        vec![
            (json!("orderDate"), "Kan ikke være null.".to_string()),
            (json!("deliveryDate"), "Kan ikke være null.".to_string())
        ]
    );
}

#[tokio::test]
async fn a_line_without_a_discount_gets_the_order_default_from_the_customer() {
    let tx = small().await;
    let customer = tx
        .sandbox
        .records(Kind::Customer)
        .into_iter()
        .find(|c| c["discountPercentage"] == json!(5))
        .map(|c| c["id"].clone())
        .expect("a seeded customer with 5 % discount");
    let order = json!({"customer": {"id": customer}, "orderDate": "2026-03-02", "deliveryDate": "2026-03-02",
    "orderLines": [
        {"description": "Uten rabatt oppgitt", "count": 1, "unitPriceExcludingVatCurrency": 100, "vatType": {"id": 3}},
        {"description": "Rabatt 0", "count": 1, "unitPriceExcludingVatCurrency": 100, "discount": 0, "vatType": {"id": 3}},
        {"description": "Rabatt 12,5", "count": 1, "unitPriceExcludingVatCurrency": 100, "discount": 12.5, "vatType": {"id": 3}}
    ]});
    let (status, created) = tx.post("/order", order).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["value"]["discountPercentage"], 5);
    let id = created["value"]["id"].as_i64().unwrap_or_default();
    let (_, full) = tx
        .get(
            &format!("/order/{id}"),
            &[("fields", "orderLines(discount,amountExcludingVatCurrency)")],
        )
        .await;
    let got: Vec<(Value, Value)> = full["value"]["orderLines"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            (
                l["discount"].clone(),
                l["amountExcludingVatCurrency"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (json!(5), json!(95)),
            (json!(0), json!(100)),
            (json!(12.5), json!(87.5))
        ]
    );
}

#[tokio::test]
async fn the_request_log_keeps_each_answer_and_the_code_of_a_refusal() {
    let tx = small().await;
    let (status, _) = tx
        .post("/product", json!({"name": "Lampe", "colour": "blå"}))
        .await;
    assert_eq!(status, 422);
    let (status, _) = tx.get("/product/unit", &[("count", "1")]).await;
    assert_eq!(status, 200);
    let log = tx.sandbox.requests();
    let last: Vec<_> = log
        .iter()
        .rev()
        .take(2)
        .map(|r| {
            (
                r.method.as_str(),
                r.path.as_str(),
                r.query.as_deref(),
                r.status,
                r.code,
            )
        })
        .collect();
    assert_eq!(
        last,
        vec![
            ("GET", "/v2/product/unit", Some("count=1"), Some(200), None),
            ("POST", "/v2/product", None, Some(422), Some(16000)),
        ]
    );
}

#[tokio::test]
async fn order_and_invoice_amounts_are_computed_from_the_lines() {
    let tx = small().await;
    let customer = tx.sandbox.records(Kind::Customer)[0]["id"].clone();
    let order = json!({"customer": {"id": customer}, "orderDate": "2026-03-02", "deliveryDate": "2026-03-02",
    "orderLines": [
        {"description": "Hyller", "count": 3, "unitPriceExcludingVatCurrency": 100, "discount": 10, "vatType": {"id": 3}},
        {"description": "Mat", "count": 2, "unitPriceExcludingVatCurrency": 49.9, "vatType": {"id": 32}}
    ]});
    let (status, created) = tx.post("/order", order).await;
    assert_eq!(status, 201, "{created}");
    let id = created["value"]["id"].as_i64().unwrap_or_default();
    let (_, full) = tx
        .get(&format!("/order/{id}"), &[("fields", "*,orderLines(*)")])
        .await;
    let lines = full["value"]["orderLines"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let amounts: Vec<(Value, Value)> = lines
        .iter()
        .map(|l| {
            (
                l["amountExcludingVatCurrency"].clone(),
                l["amountIncludingVatCurrency"].clone(),
            )
        })
        .collect();
    assert_eq!(
        amounts,
        vec![(json!(270), json!(337.5)), (json!(99.8), json!(111.78))]
    );
    assert_eq!(lines[0]["unitPriceIncludingVatCurrency"], 125);

    let (status, invoice) = tx
        .json(
            Method::PUT,
            &format!("/order/{id}/:invoice"),
            &[("invoiceDate", "2026-03-05"), ("sendToCustomer", "false")],
            None,
        )
        .await;
    assert_eq!(status, 200, "{invoice}");
    let inv = &invoice["value"];
    assert_eq!(inv["amountExcludingVat"], 369.8);
    assert_eq!(inv["amount"], 449.28);
    assert_eq!(inv["amountOutstanding"], 449.28);
    assert_eq!(inv["invoiceDate"], "2026-03-05");
    assert!(inv["invoiceNumber"].as_i64().is_some_and(|n| n > 0));
    assert_eq!(tx.sandbox.sent_invoices(), Vec::<i64>::new());
    let (_, again) = tx
        .json(
            Method::PUT,
            &format!("/order/{id}/:invoice"),
            &[("invoiceDate", "2026-03-05")],
            None,
        )
        .await;
    assert_eq!(again["code"], 18000);
}

#[tokio::test]
async fn invoicing_without_a_bank_account_fails_with_the_norwegian_message() {
    let tx = small().await;
    tx.sandbox.set_bank_account(None);
    let customer = tx.sandbox.records(Kind::Customer)[0]["id"].clone();
    let invoice = json!({"invoiceDate": "2026-04-01", "invoiceDueDate": "2026-04-15", "customer": {"id": customer},
        "orders": [{"customer": {"id": customer}, "orderDate": "2026-04-01", "deliveryDate": "2026-04-01",
            "orderLines": [{"description": "Konsulenttime", "count": 2, "unitPriceExcludingVatCurrency": 1000, "vatType": {"id": 3}}]}]});
    let (invoices, orders) = (
        tx.sandbox.count(Kind::Invoice),
        tx.sandbox.count(Kind::Order),
    );
    let resp = tx
        .call(
            Method::POST,
            "/invoice",
            &[("sendToCustomer", "false")],
            Some(invoice.clone()),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 422);
    let body: Value = resp.json().await.unwrap_or_default();
    assert_eq!(body["code"], 18000);
    assert_eq!(
        body["validationMessages"][0]["message"],
        "Faktura kan ikke opprettes før selskapet har registrert et bankkontonummer."
    );
    assert_eq!(body["validationMessages"][0]["field"], Value::Null);
    assert_eq!(
        (
            tx.sandbox.count(Kind::Invoice),
            tx.sandbox.count(Kind::Order)
        ),
        (invoices, orders)
    );

    let (_, banks) = tx
        .get(
            "/ledger/account",
            &[("isBankAccount", "true"), ("number", "1920")],
        )
        .await;
    let account = banks["values"][0].clone();
    let path = format!("/ledger/account/{}", account["id"]);
    let (status, body) = tx.put(&path, json!({"id": account["id"], "version": account["version"], "bankAccountNumber": "12345678901"})).await;
    assert_eq!(status, 422);
    assert_eq!(
        messages(&body),
        vec![(
            json!("bankAccountNumber"),
            "Dette er ikke et gyldig norsk kontonummer".to_string()
        )]
    );
    let (status, _) = tx.put(&path, json!({"id": account["id"], "version": account["version"], "bankAccountNumber": "12345678903"})).await;
    assert_eq!(status, 200);

    let (status, created) = tx
        .json(
            Method::POST,
            "/invoice",
            &[("sendToCustomer", "false")],
            Some(invoice),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["value"]["amountExcludingVatCurrency"], 2000);
    assert_eq!(created["value"]["amountCurrency"], 2500);
    assert_eq!(created["value"]["invoiceDueDate"], "2026-04-15");
    assert_eq!(tx.sandbox.count(Kind::Order), orders + 1);
}

#[tokio::test]
async fn invoices_need_dates_a_customer_and_one_order() {
    let tx = small().await;
    let (status, body) = tx
        .json(
            Method::POST,
            "/invoice",
            &[("sendToCustomer", "false")],
            Some(json!({"orders": []})),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(
        messages(&body),
        vec![
            (json!("invoiceDate"), "Kan ikke være null.".to_string()),
            (json!("invoiceDueDate"), "Kan ikke være null.".to_string()),
            (json!("customer"), "Kan ikke være null.".to_string()),
            (json!("orders"), "Listen kan ikke være tom.".to_string()),
        ]
    );
    let (status, body) = tx
        .get("/invoice", &[("invoiceDateFrom", "2025-01-01")])
        .await;
    assert_eq!(
        (status, messages(&body)),
        (
            422,
            vec![(json!("invoiceDateTo"), "Kan ikke være null.".to_string())]
        )
    );
    let (status, seeded) = tx
        .get(
            "/invoice",
            &[
                ("invoiceDateFrom", "2025-01-01"),
                ("invoiceDateTo", "2026-01-01"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(seeded["fullResultSize"], tx.sandbox.count(Kind::Invoice));
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_its_headers() {
    let tx = start(SandboxConfig {
        tripletex_rate_limit: Some(3),
        tripletex_rate_period_seconds: 60,
        ..Default::default()
    })
    .await;
    for remaining in ["2", "1", "0"] {
        let resp = tx.call(Method::GET, "/currency", &[], None).await;
        assert_eq!(resp.status().as_u16(), 200);
        let h = resp.headers();
        assert_eq!(
            h.get("x-rate-limit-limit").and_then(|v| v.to_str().ok()),
            Some("3")
        );
        assert_eq!(
            h.get("x-rate-limit-remaining")
                .and_then(|v| v.to_str().ok()),
            Some(remaining)
        );
        let reset: u64 = h
            .get("x-rate-limit-reset")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(0);
        assert!((1..=60).contains(&reset), "{reset}");
    }
    let resp = tx.call(Method::GET, "/currency", &[], None).await;
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(
        resp.headers()
            .get("x-rate-limit-remaining")
            .and_then(|v| v.to_str().ok()),
        Some("0")
    );
    assert!(resp.headers().get("x-rate-limit-reset").is_some());
    assert!(resp.headers().get("x-tlx-request-id").is_some());
    let body: Value = resp.json().await.unwrap_or_default();
    assert_eq!(body["status"], 429);

    tx.sandbox.set_rate_reset_header_on_429(false);
    let resp = tx.call(Method::GET, "/currency", &[], None).await;
    assert_eq!(resp.status().as_u16(), 429);
    assert!(resp.headers().get("x-rate-limit-reset").is_none());
    assert!(resp.headers().get("x-rate-limit-limit").is_some());
}

#[tokio::test]
async fn faults_are_reproducible_by_seed() {
    let faults = FaultConfig {
        seed: 7,
        rate_429: 0.25,
        rate_5xx: 0.25,
        ..Default::default()
    };
    let run = || async {
        let tx = start(SandboxConfig {
            faults: faults.clone(),
            ..Default::default()
        })
        .await;
        let mut statuses = Vec::new();
        for _ in 0..30 {
            let (status, body) = tx.get("/country", &[]).await;
            if status >= 500 {
                assert_eq!(body["code"], 1000);
            }
            statuses.push(status);
        }
        statuses
    };
    let (a, b) = (run().await, run().await);
    assert_eq!(a, b);
    assert!(
        a.contains(&200) && a.contains(&429) && a.iter().any(|s| *s >= 500),
        "{a:?}"
    );

    let tx = small().await;
    tx.sandbox.set_faults(FaultConfig {
        rate_drop: 1.0,
        writes_only: true,
        ..Default::default()
    });
    let before = tx.sandbox.count(Kind::Customer);
    let dropped = tx
        .client
        .post(tx.url("/customer"))
        .header("Authorization", &tx.auth)
        .json(&json!({"name": "Tapt svar AS"}))
        .send()
        .await;
    assert!(dropped.is_err(), "{dropped:?}");
    assert_eq!(
        tx.sandbox.count(Kind::Customer),
        before + 1,
        "the write happened; only its answer was lost"
    );
    let (status, _) = tx.get("/customer", &[]).await;
    assert_eq!(status, 200, "reads are not faulted with writes_only");
}

#[tokio::test]
async fn lines_take_their_product_defaults_and_follow_the_vat_inclusive_flag() {
    let tx = small().await;
    let (_, product) = tx
        .post("/product", json!({"name": "Lampe", "number": "L-1", "priceExcludingVatCurrency": 80, "priceIncludingVatCurrency": 100, "vatType": {"id": 3}}))
        .await;
    let product = product["value"]["id"].clone();
    let customer = tx.sandbox.records(Kind::Customer)[0]["id"].clone();
    let order = |incl: bool, line: Value| {
        json!({"customer": {"id": customer}, "orderDate": "2026-05-04", "deliveryDate": "2026-05-04",
            "isPrioritizeAmountsIncludingVat": incl, "orderLines": [line]})
    };
    let line_of = |body: &Value| body["value"]["orderLines"][0]["id"].clone();

    let (status, excl) = tx
        .post(
            "/order",
            order(false, json!({"product": {"id": product}, "count": 2})),
        )
        .await;
    assert_eq!(status, 201, "{excl}");
    let (_, line) = tx
        .get(&format!("/order/orderline/{}", line_of(&excl)), &[])
        .await;
    let line = &line["value"];
    assert_eq!(line["description"], "Lampe");
    assert_eq!(line["vatType"]["id"], 3);
    assert_eq!(line["unitPriceExcludingVatCurrency"], 80);
    assert_eq!(
        (
            line["amountExcludingVatCurrency"].clone(),
            line["amountIncludingVatCurrency"].clone()
        ),
        (json!(160), json!(200))
    );

    let (status, incl) = tx
        .post(
            "/order",
            order(
                true,
                json!({"product": {"id": product}, "count": 1, "discount": 50}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{incl}");
    let (_, line) = tx
        .get(&format!("/order/orderline/{}", line_of(&incl)), &[])
        .await;
    let line = &line["value"];
    assert_eq!(line["unitPriceIncludingVatCurrency"], 100);
    assert_eq!(
        (
            line["amountExcludingVatCurrency"].clone(),
            line["amountIncludingVatCurrency"].clone()
        ),
        (json!(40), json!(50))
    );

    let (status, body) = tx
        .post(
            "/order",
            order(
                true,
                json!({"description": "Frakt", "unitPriceExcludingVatCurrency": 100}),
            ),
        )
        .await;
    assert_eq!((status, body["code"].clone()), (422, json!(18000)));
    assert_eq!(
        messages(&body),
        vec![(
            json!("orderLines.unitPriceExcludingVatCurrency"),
            "The unit price must be inclusive VAT since the unit price on the order is inclusive VAT.".to_string()
        )]
    );
    assert_eq!(
        body["validationMessages"][0]["path"],
        "orderLines[0].unitPriceExcludingVatCurrency"
    );
}

#[tokio::test]
async fn a_customer_update_edits_its_address_in_place() {
    let tx = small().await;
    let (_, created) = tx
        .post("/customer", json!({"name": "Adresse AS", "customerNumber": 70001, "postalAddress": {"addressLine1": "Gata 1", "postalCode": "0150", "city": "Oslo", "country": {"id": 161}}}))
        .await;
    let c = &created["value"];
    let address = c["postalAddress"]["id"].clone();
    let (_, found) = tx
        .get(
            "/customer",
            &[
                ("customerAccountNumber", "70001"),
                ("fields", "id,version,customerNumber,postalAddress(id)"),
            ],
        )
        .await;
    assert_eq!(
        found["values"],
        json!([{"id": c["id"], "version": 0, "customerNumber": 70001, "postalAddress": {"id": address}}])
    );

    let (status, updated) = tx
        .put(
            &format!("/customer/{}", c["id"]),
            json!({"version": 0, "postalAddress": {"id": address, "addressLine1": "Gata 2"}}),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["value"]["postalAddress"]["id"], address);
    let (_, a) = tx
        .get(
            &format!("/address/{address}"),
            &[("fields", "addressLine1,city,version")],
        )
        .await;
    assert_eq!(
        a["value"],
        json!({"version": 1, "addressLine1": "Gata 2", "city": "Oslo"})
    );

    let (status, body) = tx
        .post(
            "/customer",
            json!({"name": "Dobbel AS", "customerNumber": 70001}),
        )
        .await;
    assert_eq!(
        (status, messages(&body)[0].0.clone()),
        (422, json!("customerNumber"))
    );
    let (status, body) = tx
        .post(
            "/customer",
            json!({"name": "Feil AS", "currency": {"id": 999}}),
        )
        .await;
    assert_eq!(
        (status, messages(&body)[0].0.clone()),
        (422, json!("currency.id"))
    );
}

/// An order of `lines` for the first seeded customer, invoiced on `date`: the invoice's id.
async fn invoiced(tx: &Tx, lines: Value, date: &str, query: &[(&str, &str)]) -> (u16, Value) {
    let customer = tx.sandbox.records(Kind::Customer)[0]["id"].clone();
    let order = json!({"customer": {"id": customer}, "orderDate": date, "deliveryDate": date,
        "orderLines": lines});
    let (status, created) = tx.post("/order", order).await;
    assert_eq!(status, 201, "{created}");
    let id = created["value"]["id"].as_i64().unwrap_or_default();
    let mut q = vec![("invoiceDate", date), ("sendToCustomer", "false")];
    q.extend_from_slice(query);
    tx.json(Method::PUT, &format!("/order/{id}/:invoice"), &q, None)
        .await
}

#[tokio::test]
async fn a_credit_note_reverses_the_whole_invoice_and_links_both_ways() {
    let tx = small().await;
    let lines = json!([{"description": "Hyller", "count": 3, "unitPriceExcludingVatCurrency": 100,
        "discount": 10, "vatType": {"id": 3}}]);
    let (_, inv) = invoiced(&tx, lines, "2026-03-05", &[]).await;
    let id = inv["value"]["id"].as_i64().unwrap_or_default();
    assert_eq!(
        (
            inv["value"]["isCreditNote"].clone(),
            inv["value"]["isCredited"].clone()
        ),
        (json!(false), json!(false))
    );
    let path = format!("/invoice/{id}/:createCreditNote");

    // `date` is required, and may not be before the invoice date.
    let (status, body) = tx
        .json(Method::PUT, &path, &[("sendToCustomer", "false")], None)
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        messages(&body),
        vec![(json!("date"), "Kan ikke være null.".to_string())]
    );
    let (status, body) = tx
        .json(Method::PUT, &path, &[("date", "2026-03-04")], None)
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(messages(&body)[0].0, json!("date"));
    let (status, credit) = tx
        .json(
            Method::PUT,
            &path,
            &[("date", "2026-03-06"), ("sendToCustomer", "false")],
            None,
        )
        .await;
    assert_eq!(status, 200, "{credit}");
    let c = &credit["value"];
    assert_eq!(c["isCreditNote"], json!(true));
    assert_eq!(c["creditedInvoice"]["id"], json!(id));
    assert_eq!(c["invoiceDate"], "2026-03-06");
    assert_eq!(
        (c["amountExcludingVat"].clone(), c["amount"].clone()),
        (json!(-270), json!(-337.5))
    );
    assert_ne!(c["id"], json!(id));

    // Both show it through GET /invoice, and a second credit note of it is refused.
    let (_, list) = tx
        .get(
            "/invoice",
            &[
                ("invoiceDateFrom", "2026-03-01"),
                ("invoiceDateTo", "2026-03-31"),
                (
                    "fields",
                    "id,isCreditNote,isCredited,creditedInvoice,amountExcludingVat",
                ),
            ],
        )
        .await;
    let rows = list["values"].as_array().cloned().unwrap_or_default();
    let original = rows
        .iter()
        .find(|r| r["id"] == json!(id))
        .cloned()
        .unwrap_or_default();
    assert_eq!(original["isCredited"], json!(true), "{list}");
    let credit_row = rows
        .iter()
        .find(|r| r["id"] == c["id"])
        .cloned()
        .unwrap_or_default();
    assert_eq!(credit_row["creditedInvoice"]["id"], json!(id), "{list}");
    let (status, _) = tx
        .json(Method::PUT, &path, &[("date", "2026-03-07")], None)
        .await;
    assert_eq!(status, 422);
    assert_eq!(tx.sandbox.sent_invoices(), Vec::<i64>::new());
}

#[tokio::test]
async fn an_order_invoiced_as_a_credit_note_is_negative_and_linked() {
    let tx = small().await;
    let two = json!([{"description": "Hyller", "count": 2, "unitPriceExcludingVatCurrency": 100,
        "vatType": {"id": 3}}]);
    let (_, inv) = invoiced(&tx, two, "2026-03-05", &[]).await;
    let id = inv["value"]["id"].as_i64().unwrap_or_default();
    let id_text = id.to_string();

    // A positive order is no credit note, and the credited invoice must exist.
    let one = json!([{"description": "Hyller", "count": 1, "unitPriceExcludingVatCurrency": 100,
        "vatType": {"id": 3}}]);
    let (status, body) = invoiced(
        &tx,
        one,
        "2026-03-06",
        &[("invoiceIdIfIsCreditNote", &id_text)],
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let minus_one = json!([{"description": "Hyller", "count": -1, "unitPriceExcludingVatCurrency": 100,
        "vatType": {"id": 3}}]);
    let (status, body) = invoiced(
        &tx,
        minus_one.clone(),
        "2026-03-06",
        &[("invoiceIdIfIsCreditNote", "999999")],
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(messages(&body)[0].0, json!("invoiceIdIfIsCreditNote"));

    let (status, credit) = invoiced(
        &tx,
        minus_one,
        "2026-03-06",
        &[("invoiceIdIfIsCreditNote", &id_text)],
    )
    .await;
    assert_eq!(status, 200, "{credit}");
    let c = &credit["value"];
    assert_eq!(c["isCreditNote"], json!(true));
    assert_eq!(c["creditedInvoice"]["id"], json!(id));
    assert_eq!(
        (c["amountExcludingVat"].clone(), c["amount"].clone()),
        (json!(-100), json!(-125))
    );
    let (_, original) = tx.get(&format!("/invoice/{id}"), &[]).await;
    assert_eq!(original["value"]["isCreditNote"], json!(false));
}
