//! The operator console served by `rbtx run` at `/console/`, as a client and as a person in a real
//! browser see it: a token opens it and a wrong one does not, a POST without the session's form
//! token is refused, what came from the APIs is shown as text, and a dead letter is opened, its
//! record fixed in Rackbeat and retried from the page until it arrives in Tripletex once.
//!
//! The browser is Debian's `chromium` driven through `chromedriver` (WebDriver, `fantoccini`).
//! `.ci/run` installs both and sets `RBTX_REQUIRE_BROWSER`, so there the browser test cannot be
//! skipped; on a machine without them it says so and checks the rest over HTTP.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rbtx::runtime::accounts::Accounts;
use rbtx::runtime::run::{RunConfig, TenantSource};
use rbtx::runtime::tenant::InvoiceMode;
use rbtx::sandbox::rackbeat::Resource;
use rbtx::sandbox::tripletex::Kind;
use rbtx::sandbox::{self, SandboxConfig, Sandboxes};
use rbtx::secret::Secret;
use rbtx::store::Location;
use serde_json::json;

const TOKEN: &str = "console-test-token";
const SCRIPT: &str = "<script>alert(1)</script>";

struct Console {
    sb: Sandboxes,
    run: support::Running,
    /// `http://127.0.0.1:PORT`
    origin: String,
    dir: PathBuf,
}

/// `rbtx run` over a store in `dir` for `accounts`, subscribed to their sandboxes, with the
/// console open to [`TOKEN`].
fn run_config(dir: &std::path::Path, accounts: Vec<Accounts>) -> RunConfig {
    RunConfig {
        pack: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings"),
        store: Location::Sqlite(dir.join("store.sqlite")),
        listen: "127.0.0.1:0".parse().expect("address"),
        public_url: None,
        tenants: TenantSource::Given {
            accounts,
            subscribe: true,
        },
        workers: 2,
        catch_up_seconds: 3600,
        reconcile_every_seconds: None,
        lease_ms: 60_000,
        watch: false,
        console_token: Some(Secret::new(TOKEN)),
        alerts: Default::default(),
    }
}

async fn start(name: &str) -> Console {
    let sb = sandbox::start(SandboxConfig::default())
        .await
        .expect("sandboxes");
    let dir = std::env::temp_dir().join(format!("rbtx-console-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut accounts = Accounts::sandbox(&sb, InvoiceMode::Booked);
    accounts.account_id = Some(sandbox::RACKBEAT_ACCOUNT_ID.to_string());
    let run = support::start_run(run_config(&dir, vec![accounts])).await;
    let origin = run.url.trim_end_matches("/webhooks/rackbeat").to_string();
    Console {
        sb,
        run,
        origin,
        dir,
    }
}

impl Console {
    async fn stop(self) {
        self.run.stop().await.expect("stopped cleanly");
        std::fs::remove_dir_all(&self.dir).ok();
    }

    /// A product whose VAT group Tripletex has no code for: dead-lettered before anything is sent.
    fn refused_product(&self, number: &str, name: &str) {
        self.sb
            .rackbeat
            .create(
                Resource::ProductGroup,
                json!({"number": 1099, "name": "Sju prosent", "vat_domestic": 7.0}),
            )
            .ok();
        self.sb
            .rackbeat
            .create(
                Resource::Product,
                json!({"number": number, "name": name, "group": 1099, "sales_price": 70.0}),
            )
            .expect("product");
    }

    fn in_tripletex(&self, number: &str) -> usize {
        self.sb
            .tripletex
            .records(Kind::Product)
            .iter()
            .filter(|p| p["number"] == number)
            .count()
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Signs in over HTTP; the session cookie.
async fn sign_in(http: &reqwest::Client, origin: &str) -> String {
    let answer = http
        .post(format!("{origin}/console/login"))
        .form(&[("token", TOKEN)])
        .send()
        .await
        .expect("sign in");
    assert_eq!(answer.status(), 303);
    let cookie = answer
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie")
        .to_string();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Secure"), "not over plain HTTP: {cookie}");
    cookie.split(';').next().expect("name=value").to_string()
}

async fn page(http: &reqwest::Client, origin: &str, cookie: &str, path: &str) -> (u16, String) {
    let answer = http
        .get(format!("{origin}{path}"))
        .header("cookie", cookie)
        .send()
        .await
        .expect("page");
    let status = answer.status().as_u16();
    (status, answer.text().await.unwrap_or_default())
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    // A deadline for a hang, not a speed check.
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < Duration::from_secs(60), "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a form token") + 19;
    html[at..].split('"').next().expect("value").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_opens_the_console_and_forged_or_foreign_requests_do_not() {
    let c = start("http").await;
    let http = client();
    let o = c.origin.clone();

    // Not signed in: to the sign-in form; a wrong token is refused there and by bearer.
    let answer = http.get(format!("{o}/console/")).send().await.expect("get");
    assert_eq!(answer.status(), 303);
    assert_eq!(answer.headers()["location"], "/console/login");
    let wrong = http
        .post(format!("{o}/console/login"))
        .form(&[("token", "not-the-token")])
        .send()
        .await
        .expect("post");
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    // Another site's form cannot sign a browser in, even with the right token.
    let cross = http
        .post(format!("{o}/console/login"))
        .header("sec-fetch-site", "cross-site")
        .form(&[("token", TOKEN)])
        .send()
        .await
        .expect("post");
    assert_eq!(cross.status(), 403);
    assert!(cross.headers().get("set-cookie").is_none());
    assert!(
        wrong
            .text()
            .await
            .unwrap_or_default()
            .contains("does not open the console")
    );
    let bearer = http
        .get(format!("{o}/console/"))
        .bearer_auth("not-the-token")
        .send()
        .await
        .expect("get");
    assert_eq!(bearer.status(), 401);
    let bearer = http
        .get(format!("{o}/console/"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("get");
    assert_eq!(bearer.status(), 200);

    let cookie = sign_in(&http, &o).await;
    c.refused_product("XSS-1", SCRIPT);
    let mut id = 0;
    wait_for("the refused product is dead-lettered", async || {
        let (_, html) = page(&http, &o, &cookie, "/console/dead-letters").await;
        const LINK: &str = "href=\"/console/dead-letters/";
        match html.find(LINK) {
            Some(at) if html.contains("XSS-1") => {
                let rest = &html[at + LINK.len()..];
                id = rest[..rest.find('"').unwrap_or(0)].parse().unwrap_or(0);
                id > 0
            }
            _ => false,
        }
    })
    .await;

    // What Rackbeat holds is text on the page, never markup.
    let (status, html) = page(&http, &o, &cookie, &format!("/console/dead-letters/{id}")).await;
    assert_eq!(status, 200);
    assert!(html.contains("&lt;script&gt;alert(1)&lt;"), "{html}");
    assert!(!html.contains(SCRIPT), "the name is escaped");
    assert!(
        html.contains("vat_code"),
        "the reason names the lookup: {html}"
    );

    // A POST without this session's form token changes nothing.
    for form in [
        vec![("id", id.to_string())],
        vec![("id", id.to_string()), ("csrf", "forged".into())],
    ] {
        let forged = http
            .post(format!("{o}/console/dead-letters/retry"))
            .header("cookie", &cookie)
            .form(&form)
            .send()
            .await
            .expect("post");
        assert_eq!(forged.status(), 403);
    }
    let (status, _) = page(&http, &o, &cookie, &format!("/console/dead-letters/{id}")).await;
    assert_eq!(status, 200, "the dead letter is still there");

    // Every page answers, and the preview checks what it would send against the spec.
    for path in [
        "/console/",
        "/console/activity",
        "/console/dead-letters?q=XSS",
        "/console/preview",
    ] {
        let (status, html) = page(&http, &o, &cookie, path).await;
        assert_eq!(status, 200, "{path}: {html}");
    }
    let (_, preview) = page(&http, &o, &cookie, "/console/preview").await;
    // Mappings are named by their file, as the pack was given (here, an absolute path).
    let mapping = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("mappings/rackbeat-to-tripletex/product.yaml")
        .display()
        .to_string();
    assert!(
        preview.contains("product.yaml"),
        "the form offers the mapping"
    );
    let sample = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("mappings/rackbeat-to-tripletex/samples/product.json"),
    )
    .expect("sample");
    let answer = http
        .post(format!("{o}/console/preview"))
        .header("cookie", &cookie)
        .form(&[
            ("csrf", csrf_of(&preview).as_str()),
            ("tenant", "default"),
            ("mapping", mapping.as_str()),
            ("record", sample.as_str()),
        ])
        .send()
        .await
        .expect("preview");
    let html = answer
        .text()
        .await
        .unwrap_or_default()
        .replace("&#x2f;", "/");
    assert!(html.contains("POST /product"), "{html}");
    assert!(html.contains("Matches Tripletex's spec."), "{html}");
    assert_eq!(c.in_tripletex("VARE-1001"), 0, "a preview sends nothing");

    // A tenant nobody has is not found, and signing out ends the session.
    let (status, _) = page(&http, &o, &cookie, "/console/activity?tenant=other").await;
    assert_eq!(status, 404);
    let (_, html) = page(&http, &o, &cookie, "/console/").await;
    let out = http
        .post(format!("{o}/console/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf_of(&html))])
        .send()
        .await
        .expect("logout");
    assert_eq!(out.status(), 303);
    let (status, _) = page(&http, &o, &cookie, "/console/").await;
    assert_eq!(status, 303, "signed out");
    c.stop().await;
}

/// A refused product in `sb`'s Rackbeat (see `Console::refused_product`).
fn refuse(sb: &Sandboxes, number: &str) {
    sb.rackbeat
        .create(
            Resource::ProductGroup,
            json!({"number": 1099, "name": "Sju prosent", "vat_domestic": 7.0}),
        )
        .ok();
    sb.rackbeat
        .create(
            Resource::Product,
            json!({"number": number, "name": number, "group": 1099, "sales_price": 70.0}),
        )
        .expect("product");
}

/// The ids of the dead letters a page links to, each once.
fn letter_ids(html: &str) -> Vec<i64> {
    html.split("href=\"/console/dead-letters/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next()?.parse().ok())
        .collect::<std::collections::BTreeSet<i64>>()
        .into_iter()
        .collect()
}

/// Two tenants in one process: a tenant's token sees and acts on that tenant's records alone,
/// and another tenant's pages and dead letters are not found for it; the global token sees both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_token_sees_and_acts_on_its_own_records_only() {
    const FJORD: &str = "fjord-console-token";
    const NORD: &str = "nord-console-token";
    let pair = async |account| {
        sandbox::start(SandboxConfig {
            rackbeat_account_id: account,
            ..SandboxConfig::default()
        })
        .await
        .expect("sandboxes")
    };
    let (fjord, nord) = (
        pair(sandbox::RACKBEAT_ACCOUNT_ID).await,
        pair(sandbox::RACKBEAT_ACCOUNT_ID + 1).await,
    );
    let accounts = |sb: &Sandboxes, id: &str, account: u64, token: &str| {
        let mut a = Accounts::sandbox(sb, InvoiceMode::Booked);
        a.id = id.into();
        a.account_id = Some(account.to_string());
        a.console_token = Some(Secret::new(token));
        a
    };
    let dir = std::env::temp_dir().join(format!("rbtx-console-tenants-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let run = support::start_run(run_config(
        &dir,
        vec![
            accounts(&fjord, "fjord", sandbox::RACKBEAT_ACCOUNT_ID, FJORD),
            accounts(&nord, "nord", sandbox::RACKBEAT_ACCOUNT_ID + 1, NORD),
        ],
    ))
    .await;
    let o = run.url.trim_end_matches("/webhooks/rackbeat").to_string();
    let http = client();
    let get = async |token: &str, path: &str| {
        let answer = http
            .get(format!("{o}{path}"))
            .bearer_auth(token)
            .send()
            .await
            .expect("get");
        let status = answer.status().as_u16();
        (status, answer.text().await.unwrap_or_default())
    };
    let post = async |token: &str, path: &str, form: &[(&str, String)]| {
        http.post(format!("{o}{path}"))
            .bearer_auth(token)
            .form(form)
            .send()
            .await
            .expect("post")
            .status()
            .as_u16()
    };

    refuse(&fjord, "FJ-1");
    refuse(&nord, "NO-1");
    let (mut fjord_letter, mut nord_letter) = (0, 0);
    wait_for("both tenants have a dead letter", async || {
        let (_, f) = get(TOKEN, "/console/dead-letters?tenant=fjord").await;
        let (_, n) = get(TOKEN, "/console/dead-letters?tenant=nord").await;
        fjord_letter = letter_ids(&f).first().copied().unwrap_or(0);
        nord_letter = letter_ids(&n).first().copied().unwrap_or(0);
        fjord_letter > 0 && nord_letter > 0
    })
    .await;

    // Nord's token: its own letter, nothing of fjord's.
    let (status, html) = get(NORD, "/console/dead-letters").await;
    assert_eq!(status, 200);
    assert!(html.contains("NO-1") && !html.contains("FJ-1"), "{html}");
    assert_eq!(letter_ids(&html), vec![nord_letter]);
    let (_, status_page) = get(NORD, "/console/").await;
    assert!(!status_page.contains("fjord"), "{status_page}");
    for path in [
        format!("/console/dead-letters/{fjord_letter}"),
        "/console/dead-letters?tenant=fjord".to_string(),
        "/console/activity?tenant=fjord".to_string(),
        "/console/preview?tenant=fjord".to_string(),
    ] {
        assert_eq!(get(NORD, &path).await.0, 404, "{path}");
    }
    let fjord_id = fjord_letter.to_string();
    let refused = [
        post(
            NORD,
            "/console/dead-letters/retry",
            &[("tenant", "nord".into()), ("id", fjord_id.clone())],
        )
        .await,
        post(
            NORD,
            "/console/dead-letters/discard",
            &[("tenant", "nord".into()), ("id", fjord_id.clone())],
        )
        .await,
        post(
            NORD,
            "/console/dead-letters/discard",
            &[("tenant", "fjord".into()), ("all", "1".into())],
        )
        .await,
    ];
    assert_eq!(
        refused,
        [404, 404, 404],
        "another tenant's letter is not found"
    );
    let (_, f) = get(TOKEN, "/console/dead-letters?tenant=fjord").await;
    assert_eq!(
        letter_ids(&f),
        vec![fjord_letter],
        "fjord's letter is untouched"
    );

    // "All that match" for nord is nord's alone.
    let done = post(
        NORD,
        "/console/dead-letters/discard",
        &[("tenant", "nord".into()), ("all", "1".into())],
    )
    .await;
    assert_eq!(done, 303);
    let (_, n) = get(NORD, "/console/dead-letters").await;
    assert!(letter_ids(&n).is_empty(), "{n}");
    let (_, f) = get(FJORD, "/console/dead-letters").await;
    assert_eq!(letter_ids(&f), vec![fjord_letter]);

    run.stop().await.expect("stopped cleanly");
    std::fs::remove_dir_all(&dir).ok();
}

/// A chromedriver on a free port, stopped when dropped.
struct Driver {
    child: std::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn chromedriver() -> Option<Driver> {
    let path = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(path) = path else {
        assert!(
            std::env::var_os("RBTX_REQUIRE_BROWSER").is_none(),
            "RBTX_REQUIRE_BROWSER is set but chromedriver is not installed (apt-get install chromium chromium-driver)"
        );
        eprintln!(
            "skipped: no chromedriver here; .ci/run installs Debian's chromium and chromium-driver"
        );
        return None;
    };
    let port = support::free_port();
    let child = std::process::Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    Some(Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    })
}

async fn browser(driver: &Driver) -> fantoccini::Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"]}),
    );
    let started = Instant::now();
    loop {
        match fantoccini::ClientBuilder::rustls()
            .expect("TLS roots")
            .capabilities(caps.clone())
            .connect(&driver.url)
            .await
        {
            Ok(client) => return client,
            Err(e) if started.elapsed() < Duration::from_secs(30) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("chromedriver does not answer: {e}"),
        }
    }
}

/// Keeps a screenshot of the page: under `target/`, and in `docs/` with `RBTX_UPDATE_SCREENSHOTS`.
/// Clicks what `at` finds (it must be on the page).
async fn click(b: &fantoccini::Client, at: fantoccini::Locator<'_>) {
    let found = b.find(at).await.unwrap_or_else(|e| panic!("{at:?}: {e}"));
    found
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {at:?}: {e}"));
}

/// Types `text` into what `at` finds.
async fn type_into(b: &fantoccini::Client, at: fantoccini::Locator<'_>, text: &str) {
    let found = b.find(at).await.unwrap_or_else(|e| panic!("{at:?}: {e}"));
    found
        .send_keys(text)
        .await
        .unwrap_or_else(|e| panic!("type into {at:?}: {e}"));
}

/// The text of what `at` finds, waiting for it to appear (a page may still be loading).
async fn text_of(b: &fantoccini::Client, at: fantoccini::Locator<'_>) -> String {
    let found = b
        .wait()
        .for_element(at)
        .await
        .unwrap_or_else(|e| panic!("{at:?}: {e}"));
    found
        .text()
        .await
        .unwrap_or_else(|e| panic!("text of {at:?}: {e}"))
}

async fn screenshot(b: &fantoccini::Client, name: &str) {
    let png = b.screenshot().await.expect("screenshot");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("target/console-screenshots");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join(format!("{name}.png")), &png).expect("write");
    if std::env::var_os("RBTX_UPDATE_SCREENSHOTS").is_some() {
        std::fs::write(root.join(format!("docs/console-{name}.png")), &png).expect("write docs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_a_dead_letter_is_fixed_in_rackbeat_and_retried_from_the_page() {
    use fantoccini::Locator;
    let Some(driver) = chromedriver() else {
        return;
    };
    let c = start("browser").await;
    let b = browser(&driver).await;
    let o = c.origin.clone();

    // A wrong token first: the form says so and lets nobody in.
    b.goto(&format!("{o}/console/")).await.expect("goto");
    screenshot(&b, "sign-in").await;
    type_into(&b, Locator::Id("token"), "wrong").await;
    click(&b, Locator::Id("sign-in")).await;
    let error = text_of(&b, Locator::Id("error")).await;
    assert!(error.contains("does not open"), "{error}");
    type_into(&b, Locator::Id("token"), TOKEN).await;
    click(&b, Locator::Id("sign-in")).await;
    b.wait()
        .for_element(Locator::Id("tenant-default"))
        .await
        .expect("the tenant's status card");

    // Rackbeat has a product Tripletex cannot take (no VAT code for its group), named like a script.
    c.refused_product("XSS-1", SCRIPT);
    let deadline = Instant::now();
    loop {
        b.goto(&format!("{o}/console/dead-letters"))
            .await
            .expect("goto");
        if b.find(Locator::LinkText("XSS-1")).await.is_ok() {
            break;
        }
        assert!(
            deadline.elapsed() < Duration::from_secs(60),
            "the dead letter shows"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    screenshot(&b, "dead-letters").await;
    click(&b, Locator::LinkText("XSS-1")).await;
    let reason = text_of(&b, Locator::Id("reason")).await;
    assert!(reason.contains("vat_code"), "{reason}");
    let record = text_of(&b, Locator::Id("record")).await;
    assert!(
        record.contains(SCRIPT),
        "the name shows as the text it is: {record}"
    );
    assert!(b.get_alert_text().await.is_err(), "no script ran");
    screenshot(&b, "dead-letter").await;

    // The bookkeeper fixes the record in Rackbeat (no webhook announces the fix, as when its
    // delivery never came), then retries it from the page.
    c.sb.rackbeat
        .update_without_webhooks(Resource::Product, "XSS-1", json!({"group": 1001}))
        .expect("fix the group");
    assert_eq!(c.in_tripletex("XSS-1"), 0, "nothing has gone over yet");
    click(&b, Locator::Id("retry")).await;
    let deadline = Instant::now();
    loop {
        if let Ok(outcome) = b.find(Locator::Id("outcome-value")).await
            && outcome.text().await.expect("text") == "completed"
        {
            break;
        }
        if deadline.elapsed() > Duration::from_secs(60) {
            let page = b.source().await.unwrap_or_default();
            panic!("the retry's outcome shows: {page}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    screenshot(&b, "event").await;
    assert_eq!(c.in_tripletex("XSS-1"), 1, "arrived in Tripletex once");
    let tripletex_name =
        c.sb.tripletex
            .records(Kind::Product)
            .into_iter()
            .find(|p| p["number"] == "XSS-1")
            .map(|p| p["name"].clone());
    assert_eq!(tripletex_name, Some(json!(SCRIPT)));

    // The other pages, as a person sees them.
    b.goto(&format!("{o}/console/activity"))
        .await
        .expect("goto");
    b.find(Locator::Id("activity"))
        .await
        .expect("the activity table");
    screenshot(&b, "activity").await;
    b.goto(&format!("{o}/console/")).await.expect("goto");
    screenshot(&b, "status").await;
    b.goto(&format!("{o}/console/preview")).await.expect("goto");
    let product_mapping = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("mappings/rackbeat-to-tripletex/product.yaml");
    b.find(Locator::Id("mapping"))
        .await
        .expect("the mappings")
        .select_by_value(&product_mapping.display().to_string())
        .await
        .expect("pick the product mapping");
    type_into(&b, Locator::Id("preview-key"), "XSS-1").await;
    click(&b, Locator::Id("preview")).await;
    let said = text_of(&b, Locator::Id("said")).await;
    assert!(said.contains("nothing would be sent"), "{said}");
    screenshot(&b, "preview").await;
    assert!(b.get_alert_text().await.is_err(), "no script ran anywhere");
    b.close().await.ok();
    assert_eq!(c.in_tripletex("XSS-1"), 1, "still once");
    c.stop().await;
}
