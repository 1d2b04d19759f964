//! Several company pairs in one `rbtx run`: a tenants file is checked with every problem at its
//! file:line:col; two tenants (two sandbox pairs with different Rackbeat account ids) are served
//! by one process, webhooks routed by `Rackbeat-Account-Id`, each with its own invoice mode and
//! bindings; and a changed mapping pack is swapped in on reload, or refused while invalid.

mod support;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rbtx::connectors::rackbeat::{Rackbeat, RackbeatConfig};
use rbtx::runtime::accounts::load_tenants;
use rbtx::runtime::alerts::AlertSettings;
use rbtx::runtime::run::{RunConfig, TenantSource};
use rbtx::runtime::tenant::InvoiceMode;
use rbtx::sandbox::rackbeat::Resource;
use rbtx::sandbox::tripletex::Kind;
use rbtx::sandbox::{self, SandboxConfig, Sandboxes};
use rbtx::secret::Secret;
use rbtx::spec::Code;
use rbtx::store::sqlite::SqliteStore;
use rbtx::store::{Location, Store};
use serde_json::{Value, json};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rbtx-tenants-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn a_token_written_in_the_file_is_refused_where_it_is() {
    let dir = temp_dir("plain");
    let file = write(
        &dir,
        "tenants.yaml",
        "version: 1
tenants:
  - id: fjord
    tripletex:
      consumer_token: sandbox-consumer-token
      employee_token: { env: RBTX_TEST_NOT_SET_1 }
    rackbeat:
      token: { env: RBTX_TEST_NOT_SET_2 }
      colour: blue
",
    );
    let diags = load_tenants(&file).expect_err("refused");
    std::fs::remove_dir_all(&dir).ok();
    let at: Vec<(Code, String)> = diags
        .iter()
        .map(|d| {
            let loc = d.location();
            (d.code, loc[loc.find(':').unwrap_or(0)..].to_string())
        })
        .collect();
    assert!(
        at.contains(&(Code::WrongType, ":5:23".into())),
        "the plain token is a wrong type at its place: {at:?}"
    );
    assert!(
        at.iter()
            .any(|(c, l)| *c == Code::UnknownField && l.starts_with(":9:")),
        "{at:?}"
    );
    assert!(
        !diags
            .iter()
            .any(|d| format!("{} {:?}", d.message, d.hint).contains("sandbox-consumer-token")),
        "the secret is not repeated in the error"
    );
}

#[test]
fn every_problem_of_a_tenants_file_is_reported() {
    let dir = temp_dir("problems");
    let secret = write(&dir, "token", "t0k3n\n");
    let file = write(
        &dir,
        "tenants.yaml",
        &format!(
            "version: 1
tenants:
  - id: fjord
    tripletex:
      consumer_token: {{ file: {s} }}
      employee_token: {{ env: RBTX_TEST_NOT_SET_3 }}
    rackbeat:
      token: {{ file: {s} }}
      account_id: \"77\"
  - id: fjord
    invoice_mode: as_order
    tripletex:
      consumer_token: {{ file: {s} }}
      employee_token: {{ file: {missing} }}
    rackbeat:
      token: {{ file: {s} }}
      account_id: \"77\"
",
            s = secret.display(),
            missing = dir.join("no-such-file").display()
        ),
    );
    let diags = load_tenants(&file).expect_err("refused");
    std::fs::remove_dir_all(&dir).ok();
    let lines: Vec<(usize, String)> = diags
        .iter()
        .map(|d| (d.line_col().0, d.message.clone()))
        .collect();
    let has = |line: usize, text: &str| lines.iter().any(|(l, m)| *l == line && m.contains(text));
    assert!(has(6, "RBTX_TEST_NOT_SET_3 is not set"), "{lines:#?}");
    assert!(has(10, "`fjord` is used twice"), "{lines:#?}");
    assert!(has(14, "cannot read"), "{lines:#?}");
    assert!(has(17, "account 77 belongs to two tenants"), "{lines:#?}");
    assert_eq!(lines.len(), 4, "{lines:#?}");
}

/// A tenant's `alerts:` block reads its secrets from files and overrides the environment's
/// settings field by field; a tenant without one gets the environment's; a URL written in the
/// file is refused like a token, and the password in an SMTP URL never shows.
#[test]
fn a_tenants_alerts_override_the_environments_field_by_field() {
    let dir = temp_dir("alerts");
    let token = write(&dir, "token", "t0k3n\n");
    let smtp = write(
        &dir,
        "smtp",
        "smtp://fjord:hemmelig@mail.fjord.test:2525?tls=required\n",
    );
    let hook = write(&dir, "hook", "https://hooks.slack.test/services/T0/B0/x\n");
    let tenant = |id: &str, account: u32, alerts: &str| {
        format!(
            "  - id: {id}
    tripletex:
      consumer_token: {{ file: {t} }}
      employee_token: {{ file: {t} }}
    rackbeat:
      token: {{ file: {t} }}
      account_id: \"{account}\"
{alerts}",
            t = token.display()
        )
    };
    let fjord_alerts = format!(
        "    alerts:
      smtp_url: {{ file: {} }}
      email_to: [bokholder@fjord.test]
      webhook_url: {{ file: {} }}
",
        smtp.display(),
        hook.display()
    );
    let file = write(
        &dir,
        "tenants.yaml",
        &format!(
            "version: 1\ntenants:\n{}{}",
            tenant("fjord", 71, &fjord_alerts),
            tenant("nord", 72, "")
        ),
    );
    let tenants = load_tenants(&file).expect("loads");
    let global = AlertSettings {
        smtp_url: Some(Secret::new("smtp://relay.firma.test:25")),
        email_from: Some("rbtx@firma.test".into()),
        email_to: vec!["drift@firma.test".into()],
        interval: Some(Duration::from_secs(60)),
        ..AlertSettings::default()
    };
    let config = |id: &str| {
        let t = tenants.iter().find(|t| t.id == id).expect("tenant");
        t.alerts
            .over(&global)
            .resolve(id)
            .expect("valid")
            .expect("alerts on")
    };

    let fjord = config("fjord");
    let mail = fjord.smtp.as_ref().expect("e-mail");
    assert_eq!(mail.host(), "mail.fjord.test", "the tenant's own server");
    assert_eq!(mail.to, vec!["bokholder@fjord.test".to_string()]);
    assert_eq!(
        mail.from, "rbtx@firma.test",
        "the sender left out is the environment's"
    );
    assert_eq!(
        fjord.webhook_url.as_ref().map(|u| u.expose().to_string()),
        Some("https://hooks.slack.test/services/T0/B0/x".to_string()),
        "read from its file, without the newline"
    );
    assert_eq!(fjord.interval, Duration::from_secs(60));
    let shown = format!("{} {:?} {:?}", fjord.describe(), fjord, tenants);
    assert!(!shown.contains("hemmelig"), "no password shows: {shown}");
    assert!(
        !shown.contains("services/T0"),
        "no webhook URL shows: {shown}"
    );

    let nord = config("nord");
    let mail = nord.smtp.as_ref().expect("e-mail");
    assert_eq!(mail.host(), "relay.firma.test", "the environment's");
    assert_eq!(mail.to, vec!["drift@firma.test".to_string()]);
    assert!(nord.webhook_url.is_none());

    // A URL written in the file is refused where it is, and not repeated.
    let plain = write(
        &dir,
        "plain.yaml",
        &format!(
            "version: 1\ntenants:\n{}",
            tenant(
                "fjord",
                71,
                "    alerts:\n      smtp_url: smtp://fjord:hemmelig@mail.fjord.test\n"
            )
        ),
    );
    let diags = load_tenants(&plain).expect_err("refused");
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        diags
            .iter()
            .any(|d| d.code == Code::WrongType && d.line_col().0 == 11),
        "{diags:#?}"
    );
    assert!(
        !diags
            .iter()
            .any(|d| format!("{} {:?}", d.message, d.hint).contains("hemmelig")),
        "the password is not repeated in the error"
    );
}

async fn sandbox_pair(account_id: u64) -> Sandboxes {
    sandbox::start(SandboxConfig {
        rackbeat_account_id: account_id,
        ..SandboxConfig::default()
    })
    .await
    .expect("sandboxes")
}

fn rackbeat(sb: &Sandboxes) -> Rackbeat {
    let mut c = RackbeatConfig::new(
        sb.rackbeat.base_url.as_str(),
        Secret::new(sandbox::RACKBEAT_TOKEN),
    );
    c.requests_per_minute = 60_000;
    Rackbeat::new(c).expect("rackbeat")
}

/// Subscribes `url` to what the shipped pack needs; the tokens, comma-separated.
async fn subscribe(sb: &Sandboxes, url: &str) -> String {
    let rb = rackbeat(sb);
    let mut tokens = Vec::new();
    for event in [
        "customer.created",
        "customer.updated",
        "product.created",
        "product.updated",
        "supplier.created",
        "supplier.updated",
        "lot.created",
        "lot.updated",
        "invoice.booked",
    ] {
        let answer = rb
            .post(
                "/webhooks",
                &[],
                &json!({"event": event, "url": url, "is_active": true}),
            )
            .await
            .expect("subscribe");
        tokens.extend(
            answer
                .pointer("/webhook/token")
                .and_then(Value::as_str)
                .map(str::to_string),
        );
    }
    tokens.join(",")
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for_async<F: Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    let started = Instant::now();
    while !done().await {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn named(records: &[Value], field: &str, value: &str) -> usize {
    records.iter().filter(|r| r[field] == value).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_in_one_process_each_get_their_own_records_and_invoice_mode() {
    let (a, b) = (sandbox_pair(111).await, sandbox_pair(222).await);
    let port = support::free_port();
    let url = format!("http://127.0.0.1:{port}/webhooks/rackbeat");
    let dir = temp_dir("two");
    let secret = |name: &str, value: &str| write(&dir, name, value).display().to_string();
    let (tx_consumer, tx_employee, rb_token) = (
        secret("tx-consumer", sandbox::CONSUMER_TOKEN),
        secret("tx-employee", sandbox::EMPLOYEE_TOKEN),
        secret("rb-token", sandbox::RACKBEAT_TOKEN),
    );
    let hooks_a = secret("hooks-a", &subscribe(&a, &url).await);
    let hooks_b = secret("hooks-b", &subscribe(&b, &url).await);
    let tenant = |id: &str, mode: &str, sb: &Sandboxes, account: u64, hooks: &str| {
        format!(
            "  - id: {id}
    invoice_mode: {mode}
    tripletex:
      url: {tx}
      consumer_token: {{ file: {tx_consumer} }}
      employee_token: {{ file: {tx_employee} }}
    rackbeat:
      url: {rb}
      token: {{ file: {rb_token} }}
      account_id: \"{account}\"
      requests_per_minute: 60000
      webhook_tokens: {{ file: {hooks} }}
",
            tx = sb.tripletex.base_url,
            rb = sb.rackbeat.base_url,
        )
    };
    let file = write(
        &dir,
        "tenants.yaml",
        &format!(
            "version: 1\ntenants:\n{}{}",
            tenant("fjord", "booked", &a, 111, &hooks_a),
            tenant("nord", "as_order", &b, 222, &hooks_b)
        ),
    );
    let config = RunConfig {
        pack: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings"),
        store: Location::Sqlite(dir.join("store.sqlite")),
        listen: format!("127.0.0.1:{port}").parse().expect("address"),
        public_url: None,
        tenants: TenantSource::File(file),
        workers: 2,
        catch_up_seconds: 3600,
        reconcile_every_seconds: None,
        lease_ms: 5_000,
        watch: false,
        console_token: None,
        alerts: Default::default(),
    };
    let server = support::start_run(config).await;

    a.rackbeat
        .create(
            Resource::Product,
            json!({"number": "FJORD-1", "name": "Fjordvare", "group": 1001, "sales_price": 100}),
        )
        .expect("product in A");
    b.rackbeat
        .create(
            Resource::Customer,
            json!({"number": 77001, "name": "Nordkunde AS", "vat_zone": "domestic"}),
        )
        .expect("customer in B");
    wait_for("A's product in A's Tripletex", || {
        named(&a.tripletex.records(Kind::Product), "number", "FJORD-1") == 1
    })
    .await;
    wait_for("B's customer in B's Tripletex", || {
        named(&b.tripletex.records(Kind::Customer), "name", "Nordkunde AS") == 1
    })
    .await;
    assert_eq!(
        named(&b.tripletex.records(Kind::Product), "number", "FJORD-1"),
        0,
        "A's product stays with A"
    );
    assert_eq!(
        named(&a.tripletex.records(Kind::Customer), "name", "Nordkunde AS"),
        0,
        "B's customer stays with B"
    );

    // The same booked invoice in both accounts: an invoice for A (booked), an order for B.
    for sb in [&a, &b] {
        sb.rackbeat
            .create_draft_invoice(json!({"number": 90001, "customer_id": 10001,
                "lines": [{"item_id": "VARE-1001", "quantity": 2, "line_price": 100}]}))
            .expect("draft");
        sb.rackbeat.book_invoice(90001).expect("booked");
    }
    let marker = "Rackbeat invoice 90001";
    let mentions = |records: Vec<Value>| {
        records
            .iter()
            .filter(|r| r.to_string().contains(marker))
            .count()
    };
    wait_for("A's invoice", || {
        mentions(a.tripletex.records(Kind::Invoice)) == 1
    })
    .await;
    wait_for("B's order", || {
        mentions(b.tripletex.records(Kind::Order)) == 1
    })
    .await;
    assert_eq!(
        mentions(b.tripletex.records(Kind::Invoice)),
        0,
        "B invoices later, by hand"
    );

    server.stop().await.expect("rbtx stopped cleanly");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_pack_is_swapped_in_and_an_invalid_one_is_refused() {
    let sb = sandbox_pair(sandbox::RACKBEAT_ACCOUNT_ID).await;
    let dir = temp_dir("reload");
    let pack = dir.join("mappings");
    support::copy_dir(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings"),
        &pack,
    );
    let product_yaml = pack.join("rackbeat-to-tripletex/product.yaml");
    let original = std::fs::read_to_string(&product_yaml).expect("read");
    let config = RunConfig {
        pack: pack.clone(),
        store: Location::Sqlite(dir.join("store.sqlite")),
        listen: "127.0.0.1:0".parse().expect("address"),
        public_url: None,
        tenants: TenantSource::Given {
            accounts: vec![rbtx::runtime::accounts::Accounts::sandbox(
                &sb,
                InvoiceMode::Booked,
            )],
            subscribe: true,
        },
        workers: 1,
        catch_up_seconds: 3600,
        reconcile_every_seconds: None,
        lease_ms: 5_000,
        watch: true,
        console_token: None,
        alerts: Default::default(),
    };
    let server = support::start_run(config).await;
    let product = |number: &str| {
        sb.rackbeat
            .create(
                Resource::Product,
                json!({"number": number, "name": "Vare", "group": 1001, "sales_price": 10}),
            )
            .expect("product");
    };
    let name_of = |number: &str| {
        sb.tripletex
            .records(Kind::Product)
            .into_iter()
            .find(|p| p["number"] == number)
            .map(|p| p["name"].clone())
    };

    // A token `rbtx webhooks install` left in the store after the start (as for a new
    // trigger) is refused until the next reload, then accepted.
    let new_token = "feedfacefeedfacefeedfacefeedface";
    let deliver = || async {
        reqwest::Client::new()
            .post(&server.url)
            .header("Rackbeat-Webhook-Token", new_token)
            .header("Rackbeat-Webhook-Event", "product.updated")
            .header(
                "Rackbeat-Account-Id",
                sandbox::RACKBEAT_ACCOUNT_ID.to_string(),
            )
            .json(&json!({"key_name": "number", "key": "NO-SUCH-PRODUCT"}))
            .send()
            .await
            .expect("delivery")
            .status()
            .as_u16()
    };
    // The reloads the run has made, as `/metrics` counts them: `applied` or `refused`.
    let metrics_url = server.url.replace("/webhooks/rackbeat", "/metrics");
    let reloads = |outcome: &'static str| {
        let url = metrics_url.clone();
        async move {
            let text = reqwest::get(&url)
                .await
                .expect("metrics")
                .text()
                .await
                .expect("metrics text");
            let line = format!("rbtx_pack_reloads_total{{outcome=\"{outcome}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(line.as_str()))
                .map_or(0, |n| n.trim().parse::<u64>().expect("a count"))
        }
    };
    let store = SqliteStore::open(dir.join("store.sqlite")).expect("store");
    store
        .put_webhook_token("default", "product.updated", &Secret::new(new_token))
        .await
        .expect("keep the token");
    assert_eq!(deliver().await, 401, "not yet reloaded");

    // The watcher compares modification times; let the next write land in a later second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(
        &product_yaml,
        original.replace(
            "  name: \"{{ source.name }}\"",
            "  name: \"{{ source.name }} (v2)\"",
        ),
    )
    .expect("edit");
    wait_for_async("the changed pack to be applied", || async {
        reloads("applied").await == 1
    })
    .await;
    assert_eq!(reloads("refused").await, 0);
    product("RELOAD-1");
    wait_for("RELOAD-1", || name_of("RELOAD-1").is_some()).await;
    assert_eq!(
        name_of("RELOAD-1"),
        Some(json!("Vare (v2)")),
        "the new pack"
    );
    assert_eq!(deliver().await, 200, "the reload took the stored token");

    // A broken pack is read and refused, and the running one stays.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(&product_yaml, "version: 1\nentity: [unclosed\n").expect("break");
    wait_for_async("the broken pack to be refused", || async {
        reloads("refused").await == 1
    })
    .await;
    assert_eq!(
        reloads("applied").await,
        1,
        "the broken pack was not applied"
    );
    product("RELOAD-2");
    wait_for("RELOAD-2", || name_of("RELOAD-2").is_some()).await;
    assert_eq!(
        name_of("RELOAD-2"),
        Some(json!("Vare (v2)")),
        "the last valid pack stays"
    );

    server.stop().await.expect("rbtx stopped cleanly");
    std::fs::remove_dir_all(&dir).ok();
}
