//! Every request the mapping pack's tests make for Tripletex is sent to the Tripletex sandbox, which
//! checks it as the real server does (official schemas, then the server's own rules), and must be
//! accepted. The ids in the tests are fixtures, so references are pointed at records the sandbox
//! has before sending.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use rbtx::connectors::RetryPolicy;
use rbtx::connectors::tripletex::{Tripletex, TripletexConfig};
use rbtx::plan::load_pack;
use rbtx::sandbox::{self, SandboxConfig};
use rbtx::secret::Secret;
use serde_json::{Value, json};

/// Reference fields and the list that holds what they point at.
const REFERENCES: &[(&str, &str)] = &[
    ("customer", "/customer"),
    ("supplier", "/supplier"),
    ("product", "/product"),
    ("productUnit", "/product/unit"),
    ("currency", "/currency"),
    ("country", "/country"),
];

fn repoint(v: &mut Value, ids: &HashMap<&str, i64>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                if let Some(id) = ids.get(k.as_str())
                    && let Some(obj) = child.as_object_mut()
                    && obj.contains_key("id")
                {
                    obj.insert("id".into(), json!(id));
                }
                repoint(child, ids);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| repoint(x, ids)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_accepts_every_body_the_pack_makes_and_rejects_unknown_fields() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings");
    let pack = load_pack(std::slice::from_ref(&root));
    let report = rbtx::testing::run(&[root], &pack, false);
    assert_eq!(report.failed(), 0, "{}", report.render());
    assert!(
        report.tripletex_requests.len() >= 40,
        "{} requests",
        report.tripletex_requests.len()
    );

    let sb = sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let mut config = TripletexConfig::new(
        sb.tripletex.base_url.as_str(),
        Secret::new(sandbox::CONSUMER_TOKEN),
        Secret::new(sandbox::EMPLOYEE_TOKEN),
    );
    config.retry = RetryPolicy {
        max_retries: 2,
        min_delay: Duration::from_millis(10),
        ..Default::default()
    };
    let tx = Tripletex::new(config).expect("client");

    let mut ids = HashMap::new();
    for (field, list) in REFERENCES {
        let first = tx
            .list_all(list, &[])
            .await
            .expect("list")
            .into_iter()
            .find_map(|r| r["id"].as_i64());
        ids.insert(*field, first.expect("the sandbox has one"));
    }

    let (mut accepted, mut actions) = (0, 0);
    for (file, request) in &report.tripletex_requests {
        // Actions on a record (`/invoice/{id}/:createCreditNote`, `/order/{id}/:invoice`) need
        // the invoice or order they act on: tests/credit_notes.rs sends them end to end.
        if request.path.contains("/:") {
            actions += 1;
            continue;
        }
        let mut body = request
            .body
            .as_ref()
            .map(rbtx::engine::Body::value)
            .unwrap_or(Value::Null);
        repoint(&mut body, &ids);
        // Product and customer numbers must be new in the company.
        let unique = format!("PACK-{accepted}");
        if request.path == "/product" || request.path.starts_with("/product/") {
            body["number"] = json!(unique);
        }
        for key in ["customerNumber", "supplierNumber"] {
            if body.get(key).is_some() {
                body[key] = json!(900_000 + accepted);
            }
        }
        let query: Vec<(&str, String)> = request
            .query
            .pairs()
            .map(|(k, v)| (k, v.to_string()))
            .collect();
        let result = match request.method {
            "POST" => tx.post(&request.path, &query, &body).await,
            _ => {
                // An update: aim it at a record that exists, without a version (last write wins).
                let kind = request.path.split('/').nth(1).unwrap_or("");
                let created = tx
                    .post(
                        &format!("/{kind}"),
                        &[],
                        &json!({"name": format!("target {accepted}")}),
                    )
                    .await
                    .expect("a record to update");
                if let Some(obj) = body.as_object_mut() {
                    obj.remove("version");
                    for addr in ["postalAddress", "physicalAddress", "deliveryAddress"] {
                        if let Some(a) = obj.get_mut(addr).and_then(Value::as_object_mut) {
                            a.remove("id");
                        }
                    }
                }
                tx.put(&format!("/{kind}/{}", created["id"]), &query, &body)
                    .await
            }
        };
        if let Err(e) = result {
            panic!(
                "{file}: {} {} was refused: {e}\nbody: {body:#}",
                request.method, request.path
            );
        }
        accepted += 1;
    }
    assert_eq!(accepted + actions, report.tripletex_requests.len());

    // And an unknown field is refused as the real server refuses it.
    let e = tx
        .post("/product", &[], &json!({"name": "x", "colour": "red"}))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            rbtx::connectors::ApiError::Status {
                status: 422,
                code: Some(16000),
                ..
            }
        ),
        "{e}"
    );
}
