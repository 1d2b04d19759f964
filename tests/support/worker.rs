//! A worker of the shipped pack against both sandboxes (in this process) and an in-memory SQLite
//! store. Events are enqueued by hand as the intake would; time is passed in, so retries are made
//! due by moving `now` forward rather than by sleeping.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rbtx::connectors::RetryPolicy;
use rbtx::connectors::rackbeat::{Rackbeat, RackbeatConfig};
use rbtx::connectors::tripletex::{Tripletex, TripletexConfig};
use rbtx::plan::load_pack;
use rbtx::runtime::tenant::Tenant;
use rbtx::runtime::worker::Worker;
use rbtx::sandbox::{self, SandboxConfig, Sandboxes};
use rbtx::secret::Secret;
use rbtx::store::Store;
use rbtx::store::sqlite::SqliteStore;

pub const TENANT: &str = "t1";
pub const START_MS: i64 = 1_750_000_000_000;

pub struct Env {
    pub sb: Sandboxes,
    pub store: Arc<SqliteStore>,
    pub worker: Worker<SqliteStore>,
    pub now: i64,
}

/// Fresh sandboxes, store and worker `id`, for a tenant in `invoice_mode`.
pub async fn env(invoice_mode: &str, id: &str) -> Env {
    let sb = sandbox::start(SandboxConfig::default())
        .await
        .expect("sandboxes start");
    let tenant = tenant(&sb, invoice_mode);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings");
    let pack = load_pack(&[root]);
    assert!(
        pack.diagnostics.is_empty(),
        "the shipped pack loads cleanly: {:?}",
        pack.diagnostics
    );
    let store = Arc::new(SqliteStore::in_memory().expect("store"));
    store.migrate().await.expect("migrate");
    let worker = Worker::new(store.clone(), Arc::new(pack), tenant, id);
    Env {
        sb,
        store,
        worker,
        now: START_MS,
    }
}

/// A tenant of the sandboxes `sb` in `invoice_mode`, with clients of its own.
pub fn tenant(sb: &Sandboxes, invoice_mode: &str) -> Tenant {
    let mut tx = TripletexConfig::new(
        sb.tripletex.base_url.as_str(),
        Secret::new(sandbox::CONSUMER_TOKEN),
        Secret::new(sandbox::EMPLOYEE_TOKEN),
    );
    tx.retry = quick_retries();
    let mut rb = RackbeatConfig::new(
        sb.rackbeat.base_url.as_str(),
        Secret::new(sandbox::RACKBEAT_TOKEN),
    );
    rb.retry = quick_retries();
    rb.requests_per_minute = 60_000;
    Tenant {
        id: TENANT.into(),
        rackbeat: Rackbeat::new(rb).expect("rackbeat client"),
        tripletex: Tripletex::new(tx).expect("tripletex client"),
        invoice_mode: invoice_mode.parse().expect("an invoice mode"),
    }
}

impl Env {
    /// `rbtx reconcile` of this tenant over the last 30 days and today, of `entities` (empty:
    /// all), with `--fix` or without.
    pub async fn reconcile(
        &self,
        entities: &[&str],
        fix: bool,
    ) -> rbtx::runtime::reconcile::Report {
        let today = rbtx::dates::today_in_denmark();
        let options = rbtx::runtime::reconcile::Options {
            entities: entities.iter().map(|e| e.to_string()).collect(),
            since: rbtx::dates::format(today - 30),
            until: rbtx::dates::format(today + 1),
            fix,
            progress: false,
        };
        rbtx::runtime::reconcile::run_on(
            self.store.clone(),
            self.worker.pack.clone(),
            tenant(&self.sb, self.worker.tenant.invoice_mode.as_str()),
            &options,
        )
        .await
        .expect("reconcile runs")
    }
}

/// Quick retries, so a test that injects faults does not wait for production backoff.
fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        max_retries: 3,
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
    }
}
