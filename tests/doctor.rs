//! `rbtx doctor` against both sandboxes (in-process): a sound setup passes, and each injected
//! misconfiguration is reported, with a fix, by the check it belongs to.

mod support;

use std::path::PathBuf;

use rbtx::connectors::rackbeat::{Rackbeat, RackbeatConfig};
use rbtx::connectors::tripletex::{Tripletex, TripletexConfig};
use rbtx::doctor::{self, Report, Setup, Severity};
use rbtx::plan::{Pack, load_pack};
use rbtx::runtime::tenant::{InvoiceMode, Tenant};
use rbtx::sandbox::{self, SandboxConfig, Sandboxes};
use rbtx::secret::Secret;
use rbtx::spec::Direction;
use rbtx::store::Store;
use rbtx::store::sqlite::SqliteStore;
use serde_json::json;

const WEBHOOK_URL: &str = "http://127.0.0.1:9/webhooks/rackbeat";

fn shipped_pack() -> Pack {
    load_pack(&[PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings")])
}

fn tenant(sb: &Sandboxes, consumer_token: &str, rackbeat_token: &str) -> Tenant {
    Tenant {
        id: "t1".into(),
        rackbeat: Rackbeat::new(RackbeatConfig::new(
            sb.rackbeat.base_url.as_str(),
            Secret::new(rackbeat_token),
        ))
        .expect("rackbeat client"),
        tripletex: Tripletex::new(TripletexConfig::new(
            sb.tripletex.base_url.as_str(),
            Secret::new(consumer_token),
            Secret::new(sandbox::EMPLOYEE_TOKEN),
        ))
        .expect("tripletex client"),
        invoice_mode: InvoiceMode::Booked,
    }
}

/// Subscribes the webhook URL to every event the pack triggers on, as `rbtx webhooks install` does.
async fn subscribe(t: &Tenant, pack: &Pack) -> Vec<u64> {
    let mut ids = Vec::new();
    for plan in pack
        .plans
        .iter()
        .filter(|p| p.direction == Direction::RackbeatToTripletex)
    {
        for event in &plan.on {
            let answer = t
                .rackbeat
                .post(
                    "/webhooks",
                    &[],
                    &json!({"event": event, "url": WEBHOOK_URL, "is_active": true}),
                )
                .await
                .expect("subscribe");
            ids.extend(answer.pointer("/webhook/id").and_then(|v| v.as_u64()));
        }
    }
    ids
}

async fn migrated() -> SqliteStore {
    let store = SqliteStore::in_memory().expect("store");
    store.migrate().await.expect("migrate");
    store
}

async fn examine(pack: &Pack, store: Option<&SqliteStore>, t: &Tenant) -> Report {
    doctor::check(&Setup {
        pack,
        pack_path: "mappings",
        store,
        store_name: "rbtx.sqlite",
        tenant: t,
        public_url: Some(WEBHOOK_URL),
    })
    .await
}

/// The one check called `name` that is not ok (there must be exactly one).
fn problem<'a>(report: &'a Report, name: &str, severity: Severity) -> &'a doctor::Check {
    let found: Vec<_> = report
        .checks
        .iter()
        .filter(|c| c.name == name && c.severity != Severity::Ok)
        .collect();
    assert_eq!(found.len(), 1, "{}", report.render());
    assert_eq!(found[0].severity, severity, "{}", report.render());
    assert!(found[0].fix.is_some(), "a problem comes with a fix");
    found[0]
}

async fn start() -> Sandboxes {
    sandbox::start(SandboxConfig::default())
        .await
        .expect("sandboxes start")
}

#[tokio::test]
async fn a_sound_setup_passes() {
    let sb = start().await;
    let pack = shipped_pack();
    let t = tenant(&sb, sandbox::CONSUMER_TOKEN, sandbox::RACKBEAT_TOKEN);
    subscribe(&t, &pack).await;
    let store = migrated().await;
    let report = examine(&pack, Some(&store), &t).await;
    assert!(!report.blocked(), "{}", report.render());
    for name in [
        "mappings",
        "store",
        "tripletex login",
        "rackbeat login",
        "invoice bank account",
        "webhooks",
    ] {
        assert_eq!(
            report.find(name).map(|c| c.severity),
            Some(Severity::Ok),
            "{name}: {}",
            report.render()
        );
    }
    assert!(
        report.checks.iter().any(|c| c.name == "lookups"
            && c.severity == Severity::Ok
            && c.detail.contains("invoice `vat_type` ← `vat_code`")),
        "{}",
        report.render()
    );
    assert!(report.render().contains("Sync can run") || report.render().contains("Everything"));
}

#[tokio::test]
async fn wrong_credentials_are_named_with_the_environment_hint() {
    let sb = start().await;
    let pack = shipped_pack();
    let t = tenant(&sb, "a-production-token", "not-a-rackbeat-token");
    let report = examine(&pack, None, &t).await;
    assert!(report.blocked());
    let tx = problem(&report, "tripletex login", Severity::Fail);
    assert!(tx.detail.contains("consumer token"), "{}", tx.detail);
    assert!(
        tx.fix
            .as_deref()
            .is_some_and(|f| f.contains("api-test.tripletex.tech")),
        "{:?}",
        tx.fix
    );
    let rb = problem(&report, "rackbeat login", Severity::Fail);
    assert!(rb.detail.contains("401"), "{}", rb.detail);
    // Checks that need a login are not run on a failed one; the store is reported all the same.
    assert!(report.find("invoice bank account").is_none());
    assert!(report.find("webhooks").is_none());
    problem(&report, "store", Severity::Warn);
    assert!(
        !report.render().contains("a-production-token"),
        "no secret in the report"
    );
}

#[tokio::test]
async fn a_missing_bank_account_blocks_with_the_fix() {
    let sb = start().await;
    sb.tripletex.set_bank_account(None);
    let pack = shipped_pack();
    let t = tenant(&sb, sandbox::CONSUMER_TOKEN, sandbox::RACKBEAT_TOKEN);
    subscribe(&t, &pack).await;
    let report = examine(&pack, Some(&migrated().await), &t).await;
    assert!(report.blocked());
    let bank = problem(&report, "invoice bank account", Severity::Fail);
    let fix = bank.fix.as_deref().unwrap_or_default();
    assert!(
        fix.contains("Company information")
            && fix.contains("11111111113")
            && fix.contains("984809085"),
        "{fix}"
    );
}

#[tokio::test]
async fn a_vat_code_the_company_lacks_is_reported() {
    // A copy of the pack whose invoice mapping asks for a VAT code no company has.
    let dir = std::env::temp_dir().join(format!("rbtx-doctor-{}", std::process::id()));
    support::copy_dir(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings"),
        &dir,
    );
    let file = dir.join("rackbeat-to-tripletex/invoice-booked.yaml");
    let text = std::fs::read_to_string(&file).expect("read");
    assert!(text.contains(r#""domestic:25": "3""#));
    std::fs::write(
        &file,
        text.replace(r#""domestic:25": "3""#, r#""domestic:25": "99""#),
    )
    .expect("write");
    let pack = load_pack(std::slice::from_ref(&dir));
    assert!(pack.diagnostics.is_empty(), "{:?}", pack.diagnostics);

    let sb = start().await;
    let t = tenant(&sb, sandbox::CONSUMER_TOKEN, sandbox::RACKBEAT_TOKEN);
    subscribe(&t, &pack).await;
    let report = examine(&pack, Some(&migrated().await), &t).await;
    std::fs::remove_dir_all(&dir).ok();
    let vat: Vec<_> = report
        .checks
        .iter()
        .filter(|c| c.severity == Severity::Fail)
        .collect();
    assert_eq!(vat.len(), 1, "{}", report.render());
    assert_eq!(vat[0].name, "lookups");
    assert!(
        vat[0].detail.contains("invoice `vat_type` ← `vat_code`")
            && vat[0].detail.ends_with(": 99"),
        "{}",
        vat[0].detail
    );
    assert!(
        vat[0]
            .fix
            .as_deref()
            .is_some_and(|f| f.contains("invoice-booked.yaml")),
        "the fix names the mapping file"
    );
}

#[tokio::test]
async fn missing_and_inactive_webhooks_are_reported() {
    let sb = start().await;
    let pack = shipped_pack();
    let t = tenant(&sb, sandbox::CONSUMER_TOKEN, sandbox::RACKBEAT_TOKEN);
    let store = migrated().await;

    let none = examine(&pack, Some(&store), &t).await;
    let hooks = problem(&none, "webhooks", Severity::Fail);
    assert!(
        hooks.detail.contains("product.created: no subscription"),
        "{}",
        hooks.detail
    );
    assert!(
        hooks
            .fix
            .as_deref()
            .is_some_and(|f| f.contains("rbtx webhooks install --url")),
        "{:?}",
        hooks.fix
    );

    let ids = subscribe(&t, &pack).await;
    assert!(!examine(&pack, Some(&store), &t).await.blocked());
    let first = ids.first().expect("a subscription");
    t.rackbeat
        .put(
            &format!("/webhooks/{first}"),
            &[],
            &json!({ "is_active": false }),
        )
        .await
        .expect("deactivate");
    let inactive = examine(&pack, Some(&store), &t).await;
    let hooks = problem(&inactive, "webhooks", Severity::Fail);
    assert!(
        hooks.detail.contains("subscribed but inactive"),
        "{}",
        hooks.detail
    );
}

#[tokio::test]
async fn an_invalid_pack_and_an_unmigrated_store_are_reported() {
    let sb = start().await;
    let pack = load_pack(&[PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/bad-mappings/12-unknown-field-in-source.yaml")]);
    assert!(
        pack.diagnostics
            .iter()
            .any(|d| d.code != rbtx::spec::Code::Io),
        "the file is there and has a real problem"
    );
    let t = tenant(&sb, sandbox::CONSUMER_TOKEN, sandbox::RACKBEAT_TOKEN);
    let unmigrated = SqliteStore::in_memory().expect("store");
    let report = examine(&pack, Some(&unmigrated), &t).await;
    let m = problem(&report, "mappings", Severity::Fail);
    assert!(
        m.fix
            .as_deref()
            .is_some_and(|f| f.contains("rbtx validate"))
    );
    let s = problem(&report, "store", Severity::Warn);
    assert!(s.detail.contains("not applied"), "{}", s.detail);
}
