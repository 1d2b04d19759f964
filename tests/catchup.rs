//! Catch-up polling: a record changed in Rackbeat without a webhook (a CSV import, a lost
//! delivery) is found by `updated_at_from` since the last look and queued; the first look only
//! notes where "now" is.

use std::path::PathBuf;

use rbtx::connectors::rackbeat::{Rackbeat, RackbeatConfig};
use rbtx::plan::load_pack;
use rbtx::runtime::catchup;
use rbtx::runtime::tenant::InvoiceMode;
use rbtx::sandbox::{self, SandboxConfig};
use rbtx::secret::Secret;
use rbtx::store::Store;
use rbtx::store::sqlite::SqliteStore;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_changed_without_a_webhook_are_queued() {
    let pack = load_pack(&[PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings")]);
    let sb = sandbox::start(SandboxConfig::default())
        .await
        .expect("sandboxes");
    let rb = Rackbeat::new(RackbeatConfig::new(
        sb.rackbeat.base_url.as_str(),
        Secret::new(sandbox::RACKBEAT_TOKEN),
    ))
    .expect("client");
    let store = SqliteStore::in_memory().expect("store");
    store.migrate().await.expect("migrate");

    // The first look queues nothing: old records are not pushed again.
    assert_eq!(
        catchup::poll(&store, &rb, &pack, "t", InvoiceMode::Booked, 1)
            .await
            .expect("poll"),
        0
    );
    assert_eq!(store.queue_depth().await.expect("depth"), 0);

    // A change made with webhooks suppressed, as an import would.
    rb.put(
        "/products/VARE-1001",
        &[("suppress_webhooks", "true".into())],
        &json!({"name": "Importert navn"}),
    )
    .await
    .expect("update");
    let queued = catchup::poll(&store, &rb, &pack, "t", InvoiceMode::Booked, 2)
        .await
        .expect("poll");
    assert!(queued >= 1);
    let events = store
        .claim(Some("t"), "w", 100, i64::MAX / 4, 60_000)
        .await
        .expect("claim");
    assert!(
        events
            .iter()
            .any(|e| e.entity == "product" && e.key == "VARE-1001" && e.event == "product.updated"),
        "{events:?}"
    );
}
