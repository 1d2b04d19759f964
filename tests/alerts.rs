//! Alerts end to end: `rbtx run` against the sandboxes dead-letters a burst of records Tripletex
//! cannot take (products in a 7 % VAT group, for which it has no VAT code), and the operator is
//! told once per window: by e-mail to a real SMTP server on 127.0.0.1 (the sandbox's mail
//! catcher, which lettre speaks to over TCP), and by a JSON POST to a local webhook. A failing
//! webhook is retried while the sync goes on; refused credentials are alerted as such.
//!
//! The burst's events are queued before `run` starts, as the intake would have queued them, so
//! one claim takes them all and the burst fits one window however slow the machine is.

mod support;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use rbtx::runtime::accounts::Accounts;
use rbtx::runtime::alerts::{AlertSettings, LISTED};
use rbtx::runtime::run::{RunConfig, TenantSource};
use rbtx::runtime::tenant::InvoiceMode;
use rbtx::sandbox::rackbeat::Resource;
use rbtx::sandbox::{self, SandboxConfig, Sandboxes};
use rbtx::secret::Secret;
use rbtx::store::sqlite::SqliteStore;
use rbtx::store::{DeadLetter, Location, NewEvent, Store};
use serde_json::{Value, json};
use tokio::sync::Notify;

/// A deadline for what should take seconds, never a speed check.
const PATIENCE: Duration = Duration::from_secs(60);
/// The digest window of the burst tests: long enough that the burst (one claim) fits in it.
const WINDOW: Duration = Duration::from_secs(3);

struct Setup {
    sb: Sandboxes,
    store_path: PathBuf,
    store: SqliteStore,
}

async fn setup(name: &str) -> Setup {
    let sb = sandbox::start(SandboxConfig::default())
        .await
        .expect("sandboxes");
    sb.rackbeat
        .create(
            Resource::ProductGroup,
            json!({"number": 1099, "name": "Sju prosent", "vat_domestic": 7.0}),
        )
        .expect("a 7 % group");
    let dir = std::env::temp_dir().join(format!("rbtx-alerts-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).expect("temp dir");
    let store_path = dir.join("store.sqlite");
    let store = SqliteStore::open(&store_path).expect("store");
    store.migrate().await.expect("migrate");
    Setup {
        sb,
        store_path,
        store,
    }
}

impl Setup {
    /// Products `{prefix}-00…` in the 7 % group, made in Rackbeat and queued as the intake would.
    async fn burst(&self, prefix: &str, n: usize) {
        let mut events = Vec::new();
        for i in 0..n {
            let number = format!("{prefix}-{i:02}");
            self.sb
                .rackbeat
                .create(
                    Resource::Product,
                    json!({"number": number, "name": format!("Vare {i}"), "group": 1099, "sales_price": 70.0}),
                )
                .expect("product");
            events.push(NewEvent {
                tenant: "default".into(),
                entity: "product".into(),
                key: number.clone(),
                event: "product.created".into(),
                payload: json!({ "key": number }),
                received_at: rbtx::dates::now_millis(),
            });
        }
        self.store.enqueue_many(events).await.expect("queued");
    }

    fn config(&self, accounts: Accounts) -> RunConfig {
        RunConfig {
            pack: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings"),
            store: Location::Sqlite(self.store_path.clone()),
            listen: "127.0.0.1:0".parse().expect("address"),
            public_url: None,
            tenants: TenantSource::Given {
                accounts: vec![accounts],
                subscribe: false,
            },
            workers: 2,
            catch_up_seconds: 3600,
            reconcile_every_seconds: None,
            lease_ms: 60_000,
            watch: false,
            // Alerts link to the console only when it is on.
            console_token: Some(Secret::new("alerts-test-console-token")),
            alerts: AlertSettings::default(),
        }
    }

    /// The sandbox tenant with `alerts` as its own settings.
    fn accounts(&self, alerts: AlertSettings) -> Accounts {
        let mut a = Accounts::sandbox(&self.sb, InvoiceMode::Booked);
        a.account_id = Some(sandbox::RACKBEAT_ACCOUNT_ID.to_string());
        // Nothing is delivered: the events are queued by the test.
        a.webhook_tokens = vec![Secret::new("not-delivered-to")];
        a.alerts = alerts;
        a
    }

    /// Waits until `n` dead letters of keys starting with `prefix` exist.
    async fn dead_letters(&self, prefix: &str, n: usize) -> Vec<DeadLetter> {
        let started = Instant::now();
        loop {
            let dead: Vec<DeadLetter> = self
                .store
                .list_dead_letters()
                .await
                .expect("dead letters")
                .into_iter()
                .filter(|d| d.event.key.starts_with(prefix))
                .collect();
            if dead.len() >= n {
                return dead;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "{} of {n} `{prefix}` records dead-lettered within {PATIENCE:?}; queue depth {:?}",
                dead.len(),
                self.store.queue_depth().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The console's base, from the intake's webhook URL.
fn console(running: &support::Running) -> String {
    running
        .url
        .strip_suffix("/webhooks/rackbeat")
        .expect("the intake's URL")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_fifty_dead_letters_is_one_e_mail() {
    let s = setup("mail").await;
    let mail = sandbox::mail::start().await.expect("mail catcher");
    s.burst("ALERT", 50).await;
    let alerts = AlertSettings {
        smtp_url: Some(Secret::new(mail.url())),
        email_from: Some("rbtx@fjord.example".into()),
        email_to: vec!["ops@example.com".into(), "lead@example.com".into()],
        interval: Some(WINDOW),
        ..AlertSettings::default()
    };
    let running = support::start_run(s.config(s.accounts(alerts))).await;
    let dead = s.dead_letters("ALERT-", 50).await;

    let mails = mail.wait_for(1, PATIENCE).await;
    assert_eq!(mails.len(), 1, "the digest arrived");
    // A second window's digest would come one window after the first.
    tokio::time::sleep(WINDOW * 2).await;
    let mails = mail.messages();
    let subjects: Vec<Option<String>> = mails.iter().map(|m| m.subject()).collect();
    assert_eq!(mails.len(), 1, "one e-mail for the burst: {subjects:?}");
    let m = &mails[0];
    assert_eq!(m.from, "rbtx@fjord.example");
    assert_eq!(m.to, ["ops@example.com", "lead@example.com"]);
    assert_eq!(
        m.subject().as_deref(),
        Some("rbtx: 50 records failed for tenant default")
    );
    let text = m.text();
    assert!(text.contains("50 records were dead-lettered"), "{text}");
    assert_eq!(text.matches("\n- product ALERT-").count(), LISTED, "{text}");
    // What failed, why, and where: each listed record's own reason and console link.
    let first = dead
        .iter()
        .find(|d| text.contains(&format!("- product {} ", d.event.key)))
        .expect("a listed dead letter");
    assert!(
        text.contains(&format!("why:     {}", first.reason)),
        "{text}"
    );
    let link = format!(
        "{}/console/dead-letters/{}?tenant=default",
        console(&running),
        first.id
    );
    assert!(text.contains(&link), "{link} in {text}");
    assert!(text.contains("... and 30 more dead letters"), "{text}");
    running.stop().await.expect("stopped");
}

/// A webhook that answers each POST with the next status of a script (then 200), keeping the
/// bodies; a status of 0 holds the answer until `release` is notified, then answers 500.
#[derive(Clone)]
struct Hook {
    bodies: Arc<Mutex<Vec<Value>>>,
    script: Arc<Mutex<Vec<u16>>>,
    release: Arc<Notify>,
}

impl Hook {
    async fn start(script: &[u16]) -> (Hook, String) {
        let hook = Hook {
            bodies: Arc::default(),
            script: Arc::new(Mutex::new(script.iter().rev().copied().collect())),
            release: Arc::new(Notify::new()),
        };
        let h = hook.clone();
        let app = axum::Router::new().route(
            "/hooks/T000/B000/secret-part",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let h = h.clone();
                async move {
                    h.bodies.lock().expect("bodies").push(body);
                    let next = h.script.lock().expect("script").pop().unwrap_or(200);
                    let status = match next {
                        0 => {
                            tokio::time::timeout(PATIENCE, h.release.notified())
                                .await
                                .ok();
                            500
                        }
                        s => s,
                    };
                    StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (hook, format!("http://{addr}/hooks/T000/B000/secret-part"))
    }

    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().expect("bodies").clone()
    }

    /// How many posts listed records whose keys start with `prefix`.
    fn posts_of(&self, prefix: &str) -> usize {
        self.bodies().iter().filter(|b| mentions(b, prefix)).count()
    }

    /// Waits until `n` POSTs have come.
    async fn wait_for(&self, n: usize) -> Vec<Value> {
        let started = Instant::now();
        while self.bodies().len() < n {
            assert!(
                started.elapsed() < PATIENCE,
                "{} of {n} webhook posts within {PATIENCE:?}",
                self.bodies().len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.bodies()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_one_webhook_post_that_slack_and_teams_can_show() {
    let s = setup("hook").await;
    let (hook, url) = Hook::start(&[]).await;
    s.burst("HOOK", 50).await;
    let alerts = AlertSettings {
        webhook_url: Some(Secret::new(url)),
        interval: Some(WINDOW),
        ..AlertSettings::default()
    };
    let running = support::start_run(s.config(s.accounts(alerts))).await;
    s.dead_letters("HOOK-", 50).await;
    hook.wait_for(1).await;
    tokio::time::sleep(WINDOW * 2).await;
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 1, "one post for the burst: {bodies:#?}");
    let body = &bodies[0];
    let text = body["text"].as_str().expect("a text Slack and Teams show");
    assert!(
        text.starts_with("rbtx: 50 records failed for tenant default"),
        "{text}"
    );
    assert_eq!(body["tenant"], "default");
    assert_eq!(body["counts"]["dead_lettered"], 50);
    let items = body["alerts"].as_array().expect("alerts");
    assert_eq!(items.len(), LISTED);
    let base = console(&running);
    for item in items {
        assert_eq!(item["kind"], "dead_lettered");
        assert_eq!(item["entity"], "product");
        assert!(
            item["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{item}"
        );
        let link = item["link"].as_str().expect("a link");
        assert_eq!(
            link,
            format!(
                "{base}/console/dead-letters/{}?tenant=default",
                item["dead_letter_id"]
            )
        );
    }
    running.stop().await.expect("stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_webhook_is_retried_while_the_sync_goes_on() {
    let s = setup("retry").await;
    // The first post fails at once, the second is held (and then fails), the rest succeed.
    let (hook, url) = Hook::start(&[500, 0]).await;
    s.burst("FIRST", 10).await;
    let alerts = AlertSettings {
        webhook_url: Some(Secret::new(url)),
        interval: Some(Duration::from_millis(500)),
        ..AlertSettings::default()
    };
    let running = support::start_run(s.config(s.accounts(alerts))).await;
    s.dead_letters("FIRST-", 10).await;
    // The digest was refused once and its retry hangs at the webhook.
    hook.wait_for(2).await;

    // Meanwhile the sync goes on: a second burst is dead-lettered with the notification held.
    s.burst("SECOND", 10).await;
    s.dead_letters("SECOND-", 10).await;
    assert_eq!(hook.posts_of("FIRST-"), 2, "the first digest is still held");

    hook.release.notify_waiters();
    // The second burst is a digest of its own, sent on its own (before or after the retry).
    let started = Instant::now();
    while hook.posts_of("FIRST-") < 3 || hook.posts_of("SECOND-") < 1 {
        assert!(started.elapsed() < PATIENCE, "posts: {:#?}", hook.bodies());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bodies = hook.bodies();
    let first: Vec<&Value> = bodies.iter().filter(|b| mentions(b, "FIRST-")).collect();
    assert_eq!(first.len(), 3, "refused, held, then delivered");
    assert!(
        first.iter().all(|b| *b == first[0]),
        "each retry carries the same digest"
    );
    assert_eq!(first[2]["counts"]["dead_lettered"], 10);
    let second: Vec<&Value> = bodies.iter().filter(|b| mentions(b, "SECOND-")).collect();
    assert_eq!(second.len(), 1, "delivered at once");
    assert!(!mentions(second[0], "FIRST-"));
    assert_eq!(second[0]["counts"]["dead_lettered"], 10);
    running.stop().await.expect("stopped");
}

/// Whether a digest lists records whose keys start with `prefix`.
fn mentions(body: &Value, prefix: &str) -> bool {
    body["text"]
        .as_str()
        .is_some_and(|t| t.contains(&format!("- product {prefix}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_alerted_as_such() {
    let s = setup("refused").await;
    let (hook, url) = Hook::start(&[]).await;
    s.burst("LOCKED", 1).await;
    let alerts = AlertSettings {
        webhook_url: Some(Secret::new(url)),
        interval: Some(Duration::from_millis(500)),
        ..AlertSettings::default()
    };
    let mut accounts = s.accounts(alerts);
    accounts.employee_token = Secret::new("a-revoked-employee-token");
    let running = support::start_run(s.config(accounts)).await;
    let dead = s.dead_letters("LOCKED-", 1).await;
    assert!(
        dead[0].reason.contains("/token/session/:create"),
        "{}",
        dead[0].reason
    );
    let bodies = hook.wait_for(1).await;
    let body = &bodies[0];
    assert_eq!(body["counts"]["credentials_refused"], 1, "{body:#}");
    assert_eq!(body["counts"]["dead_lettered"], 1, "{body:#}");
    let text = body["text"].as_str().unwrap_or_default();
    assert!(
        text.starts_with(
            "rbtx: 1 record failed; Tripletex refused the credentials for tenant default"
        ),
        "{text}"
    );
    assert!(text.contains("/token/session/:create"), "{text}");
    assert!(!text.contains("a-revoked-employee-token"), "{text}");
    running.stop().await.expect("stopped");
}
