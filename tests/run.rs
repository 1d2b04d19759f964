//! `rbtx run --sandbox` end to end, as a separate process: records created and updated through the
//! Rackbeat sandbox's API reach the Tripletex sandbox through webhooks, each exactly once.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rbtx::connectors::rackbeat::{Rackbeat, RackbeatConfig};
use rbtx::connectors::tripletex::{Tripletex, TripletexConfig};
use rbtx::secret::Secret;
use serde_json::{Value, json};
use support::process::Said;

mod support;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// Polls `check` until it returns `Some`, for up to 20 s.
async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_made_in_rackbeat_arrive_in_tripletex_once() {
    let dir = std::env::temp_dir().join(format!("rbtx-run-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rbtx"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "--sandbox", "--listen", "127.0.0.1:0", "--store"])
        .arg(dir.join("store.sqlite"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rbtx run");
    let stdout = child.stdout.take().expect("stdout");
    let _running = Running(child);
    let printed = Said::read(stdout);
    let said = |prefix: &str| printed.get(prefix);
    let (tx_url, rb_url) = (said("tripletex: "), said("rackbeat: "));
    assert!(
        printed
            .0
            .iter()
            .any(|l| l.starts_with("webhooks: http://127.0.0.1:")),
        "{:?}",
        printed.0
    );

    // An outside client knows only what was printed.
    let rb = Rackbeat::new(RackbeatConfig::new(
        rb_url,
        Secret::new(said("rackbeat api token: ")),
    ))
    .expect("rackbeat");
    let tx = Tripletex::new(TripletexConfig::new(
        tx_url,
        Secret::new(said("tripletex consumer token: ")),
        Secret::new(said("tripletex employee token: ")),
    ))
    .expect("tripletex");

    // A new product, then an update of it, then a new customer: as a Rackbeat user would.
    rb.post(
        "/products",
        &[],
        &json!({"number": "RUN 1/A", "name": "Hylle ÆØÅ", "group": 1001, "sales_price": 99.99}),
    )
    .await
    .expect("create product");
    let find = |number: &'static str| {
        let tx = &tx;
        async move {
            tx.list_all("/product", &[("productNumber", number.to_string())])
                .await
                .unwrap_or_default()
        }
    };
    let created = eventually("the product in Tripletex", async || {
        let found = find("RUN 1/A").await;
        (!found.is_empty()).then_some(found)
    })
    .await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["priceIncludingVatCurrency"], json!(124.99));

    rb.put(
        "/products/RUN%201%2FA",
        &[],
        &json!({"name": "Hylle oppdatert"}),
    )
    .await
    .expect("update");
    let updated = eventually("the update in Tripletex", async || {
        let found = find("RUN 1/A").await;
        found
            .first()
            .filter(|p| p["name"] == "Hylle oppdatert")
            .cloned()
    })
    .await;
    assert_eq!(updated["id"], created[0]["id"], "updated in place");
    assert_eq!(find("RUN 1/A").await.len(), 1, "still exactly one");

    let customer = rb
        .post(
            "/customers",
            &[],
            &json!({"name": "Kjøpmann Hansen AS", "payment_terms_id": 1}),
        )
        .await
        .expect("create customer");
    let number = customer["customer"]["number"]
        .as_i64()
        .expect("customer number");
    let found: Vec<Value> = eventually("the customer in Tripletex", async || {
        let found = tx
            .list_all(
                "/customer",
                &[("customerAccountNumber", number.to_string())],
            )
            .await
            .unwrap_or_default();
        (!found.is_empty()).then_some(found)
    })
    .await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["name"], "Kjøpmann Hansen AS");

    // The operations endpoints of the same process.
    let base = said("webhooks: ")
        .trim_end_matches("/webhooks/rackbeat")
        .to_string();
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    let completed = metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"rbtx_events_handled_total{outcome="completed"} "#))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(completed >= 3, "{metrics}");
    assert!(
        metrics.contains(r#"rbtx_webhooks_received_total{outcome="queued"}"#),
        "{metrics}"
    );
    let ready = reqwest::get(format!("{base}/readyz"))
        .await
        .expect("readyz");
    assert_eq!(ready.status().as_u16(), 200);
    std::fs::remove_dir_all(&dir).ok();
}
