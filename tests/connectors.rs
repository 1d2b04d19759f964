//! Contract tests: each connector against its sandbox, over real HTTP on 127.0.0.1.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rbtx::connectors::rackbeat::{Rackbeat, RackbeatConfig};
use rbtx::connectors::tripletex::{Tripletex, TripletexConfig};
use rbtx::connectors::{ApiError, RetryPolicy};
use rbtx::sandbox::faults::FaultConfig;
use rbtx::sandbox::{self, SandboxConfig};
use rbtx::secret::Secret;
use serde_json::{Value, json};

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        max_retries: 8,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(200),
    }
}

fn tripletex_client(base_url: &str) -> Tripletex {
    let mut c = TripletexConfig::new(
        base_url,
        Secret::new(sandbox::CONSUMER_TOKEN),
        Secret::new(sandbox::EMPLOYEE_TOKEN),
    );
    c.retry = quick_retries();
    Tripletex::new(c).expect("client")
}

fn rackbeat_client(base_url: &str) -> Rackbeat {
    let mut c = RackbeatConfig::new(base_url, Secret::new(sandbox::RACKBEAT_TOKEN));
    c.retry = quick_retries();
    c.requests_per_minute = 60_000;
    Rackbeat::new(c).expect("client")
}

async fn sandboxes(config: SandboxConfig) -> sandbox::Sandboxes {
    sandbox::start(config).await.expect("sandboxes start")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tripletex_pages_until_a_short_page() {
    let sb = sandboxes(SandboxConfig::default()).await;
    let whole = tripletex_client(&sb.tripletex.base_url)
        .list_all("/customer", &[])
        .await
        .expect("list");
    assert!(whole.len() >= 5, "seed has {} customers", whole.len());

    let mut c = TripletexConfig::new(
        sb.tripletex.base_url.as_str(),
        Secret::new(sandbox::CONSUMER_TOKEN),
        Secret::new(sandbox::EMPLOYEE_TOKEN),
    );
    c.page_size = 2;
    let paged = Tripletex::new(c)
        .expect("client")
        .list_all("/customer", &[])
        .await
        .expect("paged");
    let ids = |v: &[Value]| {
        v.iter()
            .filter_map(|c| c.get("id").and_then(Value::as_i64))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&paged),
        ids(&whole),
        "pages of 2 give the same customers in the same order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tripletex_errors_are_decoded_with_codes_and_fields() {
    let sb = sandboxes(SandboxConfig::default()).await;
    let tx = tripletex_client(&sb.tripletex.base_url);

    // Unknown field: 422 / 16000, naming the field.
    let e = tx
        .post("/product", &[], &json!({"name": "Hylle", "colour": "red"}))
        .await
        .unwrap_err();
    let ApiError::Status {
        status,
        code,
        fields,
        request_id,
        ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!((*status, *code), (422, Some(16000)));
    assert!(
        fields.iter().any(|f| f.field.contains("colour")),
        "{fields:?}"
    );
    assert!(request_id.is_some(), "the request id is kept");
    assert!(!e.is_retryable());

    // Validation: 422 / 18000 (a product needs a name).
    let e = tx
        .post("/product", &[], &json!({"number": "X-1"}))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ApiError::Status {
                status: 422,
                code: Some(18000),
                ..
            }
        ),
        "{e:?}"
    );

    // Not found is not an error for `get`.
    assert_eq!(tx.get("/product/999999999", &[]).await.expect("get"), None);

    // A stale version: 409 / 8000, a revision conflict.
    let created = tx
        .post(
            "/product",
            &[],
            &json!({"name": "Konflikt", "number": "REV-1"}),
        )
        .await
        .expect("create");
    let id = created["id"].as_i64().expect("id");
    let path = format!("/product/{id}");
    tx.put(
        &path,
        &[],
        &json!({"name": "Konflikt 2", "version": created["version"]}),
    )
    .await
    .expect("first update");
    let e = tx
        .put(
            &path,
            &[],
            &json!({"name": "Konflikt 3", "version": created["version"]}),
        )
        .await
        .unwrap_err();
    assert!(e.is_revision_conflict(), "{e:?}");

    // ... which update_versioned resolves by rereading and reapplying.
    let updated = tx
        .update_versioned(&path, 3, |_current| json!({"name": "Konflikt løst"}))
        .await
        .expect("versioned update");
    assert_eq!(updated["name"], "Konflikt løst");

    // A bad consumer token cannot create a session.
    let mut c = TripletexConfig::new(
        sb.tripletex.base_url.as_str(),
        Secret::new("wrong"),
        Secret::new(sandbox::EMPLOYEE_TOKEN),
    );
    c.retry = quick_retries();
    let e = Tripletex::new(c)
        .expect("client")
        .get("/customer/1", &[])
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ApiError::Status {
                status: 422 | 401,
                ..
            }
        ),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tripletex_429_is_waited_out_not_failed() {
    let sb = sandboxes(SandboxConfig {
        tripletex_rate_limit: Some(5),
        tripletex_rate_period_seconds: 1,
        ..Default::default()
    })
    .await;
    let tx = tripletex_client(&sb.tripletex.base_url);
    let started = Instant::now();
    for _ in 0..12 {
        tx.get("/ledger/vatType", &[])
            .await
            .expect("every call succeeds in the end");
    }
    // 12 calls (plus the session) at 5 per second cannot finish in under two periods.
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tripletex_faults_are_retried_for_reads() {
    let sb = sandboxes(SandboxConfig {
        faults: FaultConfig {
            seed: 4,
            rate_429: 0.2,
            rate_5xx: 0.2,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let tx = tripletex_client(&sb.tripletex.base_url);
    for _ in 0..10 {
        tx.list_all("/ledger/vatType", &[])
            .await
            .expect("reads survive 429 and 5xx");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rackbeat_pages_envelopes_and_encoded_numbers() {
    let sb = sandboxes(SandboxConfig::default()).await;
    let rb = rackbeat_client(&sb.rackbeat.base_url);
    let all = rb.list_all("/products", &[]).await.expect("list");
    assert!(all.len() >= 3, "seed has {} products", all.len());

    let mut c = RackbeatConfig::new(
        sb.rackbeat.base_url.as_str(),
        Secret::new(sandbox::RACKBEAT_TOKEN),
    );
    c.page_size = 2;
    let paged = Rackbeat::new(c)
        .expect("client")
        .list_all("/products", &[])
        .await
        .expect("paged");
    assert_eq!(paged.len(), all.len());

    // A number with `/`, `#` and a space, encoded once in the path.
    let number = "HK 30/45#B";
    let body = json!({"number": number, "name": "Hylleknekt", "group": all[0]["group_id"].clone(), "sales_price": 10});
    rb.post("/products", &[], &body).await.expect("create");
    let path = format!("/products/{}", urlencode(number));
    let got = rb.get(&path, &[]).await.expect("get").expect("found");
    assert_eq!(got["product"]["number"], number);
    assert_eq!(
        rb.get("/products/NO-SUCH-ITEM", &[]).await.expect("get"),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rackbeat_422_names_the_fields() {
    let sb = sandboxes(SandboxConfig::default()).await;
    let rb = rackbeat_client(&sb.rackbeat.base_url);
    let e = rb
        .post("/products", &[], &json!({"number": "NO-NAME"}))
        .await
        .unwrap_err();
    let ApiError::Status {
        status: 422,
        fields,
        ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert!(fields.iter().any(|f| f.field == "name"), "{fields:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rackbeat_throttling_and_server_errors_are_retried() {
    let sb = sandboxes(SandboxConfig {
        faults: FaultConfig {
            seed: 9,
            rate_429: 0.3,
            rate_5xx: 0.2,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let rb = rackbeat_client(&sb.rackbeat.base_url);
    for _ in 0..10 {
        rb.list_all("/customers", &[])
            .await
            .expect("reads survive 429 and 5xx");
    }
}

/// A `tracing` writer into memory, to read what the connectors logged.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// One thread, so the thread-local subscriber sees every span of the calls under test.
#[tokio::test(flavor = "current_thread")]
async fn secrets_never_appear_in_logs_errors_or_debug() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let sb = sandboxes(SandboxConfig {
        faults: FaultConfig {
            seed: 2,
            rate_5xx: 0.3,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let tx = tripletex_client(&sb.tripletex.base_url);
    let rb = rackbeat_client(&sb.rackbeat.base_url);
    let mut texts = vec![format!("{tx:?}"), format!("{rb:?}")];
    texts.push(
        tx.list_all("/customer", &[])
            .await
            .map(|v| v.len().to_string())
            .unwrap_or_else(|e| e.to_string()),
    );
    texts.push(
        tx.post("/product", &[], &json!({"bad": 1}))
            .await
            .map(|v| v.to_string())
            .unwrap_or_else(|e| format!("{e} {e:?}")),
    );
    texts.push(
        rb.post("/products", &[], &json!({}))
            .await
            .map(|v| v.to_string())
            .unwrap_or_else(|e| format!("{e} {e:?}")),
    );
    let mut wrong = TripletexConfig::new(
        sb.tripletex.base_url.as_str(),
        Secret::new("consumer-SECRET-1"),
        Secret::new("employee-SECRET-2"),
    );
    wrong.retry = quick_retries();
    texts.push(format!("{wrong:?}"));
    let wrong = Tripletex::new(wrong).expect("client");
    texts.push(
        wrong
            .get("/customer", &[])
            .await
            .map(|_| String::new())
            .unwrap_or_else(|e| format!("{e} {e:?}")),
    );

    let logs = String::from_utf8(captured.0.lock().map(|b| b.clone()).unwrap_or_default())
        .unwrap_or_default();
    assert!(
        logs.contains("Tripletex"),
        "the test captured the connectors' logs: {logs}"
    );
    for secret in [
        sandbox::CONSUMER_TOKEN,
        sandbox::EMPLOYEE_TOKEN,
        sandbox::RACKBEAT_TOKEN,
        "SECRET-1",
        "SECRET-2",
    ] {
        assert!(!logs.contains(secret), "a secret is in the logs");
        for t in &texts {
            assert!(!t.contains(secret), "a secret is in {t}");
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tripletex_session_is_renewed_after_a_401() {
    let sb = sandboxes(SandboxConfig::default()).await;
    let tx = tripletex_client(&sb.tripletex.base_url);
    let before = tx
        .list_all("/ledger/vatType", &[])
        .await
        .expect("first call");
    // The sandbox now answers the old session token with 401/3000, as Tripletex does after
    // midnight of the expiration date.
    sb.tripletex.expire_sessions();
    let after = tx
        .list_all("/ledger/vatType", &[])
        .await
        .expect("renewed and retried");
    assert_eq!(before.len(), after.len());
}

/// Clones share the session (a tenant's workers): refused together after the session expired,
/// they make one new session between them, not one each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clones_refused_together_renew_the_shared_session_once() {
    let sb = sandboxes(SandboxConfig::default()).await;
    let tx = tripletex_client(&sb.tripletex.base_url);
    tx.list_all("/ledger/vatType", &[]).await.expect("session");
    let clones: Vec<_> = (0..4).map(|_| tx.clone()).collect();
    sb.tripletex.expire_sessions();
    let from = sb.tripletex.requests().len();
    let calls = clones.iter().map(|c| c.list_all("/ledger/vatType", &[]));
    for answer in futures_util::future::join_all(calls).await {
        answer.expect("renewed and retried");
    }
    let sessions = sb.tripletex.requests()[from..]
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/token/session/:create"))
        .count();
    assert_eq!(sessions, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_answer_is_lost_is_reported_ambiguous_not_retried() {
    let sb = sandboxes(SandboxConfig::default()).await;
    let tx = tripletex_client(&sb.tripletex.base_url);
    tx.list_all("/ledger/vatType", &[]).await.expect("session");
    // The sandbox applies the write, then drops the connection without answering.
    sb.tripletex.set_faults(FaultConfig {
        seed: 1,
        rate_drop: 1.0,
        writes_only: true,
        ..Default::default()
    });
    let e = tx
        .post(
            "/product",
            &[],
            &json!({"name": "Tapt svar", "number": "LOST-1"}),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ApiError::Transport { sent: true, .. }), "{e:?}");
    assert!(
        e.is_ambiguous(),
        "the caller must look the record up before writing again"
    );
    sb.tripletex.set_faults(FaultConfig::default());
    let found = tx
        .list_all("/product", &[("productNumber", "LOST-1".to_string())])
        .await
        .expect("lookup");
    assert_eq!(found.len(), 1, "the POST was applied once and not repeated");
}
