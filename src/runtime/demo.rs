//! `rbtx demo`: the whole product on one machine with no accounts. Two simulated company pairs
//! (one invoicing in mode 1, one in mode 2) on an embedded SQLite store: the initial sync from
//! Tripletex, then changes made in Rackbeat arriving in Tripletex in real time, an invalid record
//! dead-lettered (its alert e-mail caught by a local SMTP server), fixed and replayed. Everything
//! goes through the same code as `rbtx run` and `rbtx sync initial`; the demo only makes the
//! changes and watches the sandboxes.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::accounts::{Accounts, AccountsError};
use super::alerts::AlertSettings;
use super::initial::{self, InitialError};
use super::reconcile;
use super::run::{InvalidPack, RunConfig, RunError, TenantSource, console_base, run};
use super::tenant::InvoiceMode;
use super::worker::Worker;
use crate::plan::load_pack;
use crate::sandbox::rackbeat::Resource;
use crate::sandbox::tripletex::Kind;
use crate::sandbox::{self, SandboxConfig, Sandboxes};
use crate::secret::Secret;
use crate::store::sqlite::SqliteStore;
use crate::store::{Location, Store, StoreError};

/// Who the demo's alert e-mails are to.
const ALERTS_TO: &str = "ops@example.com";

/// How long one change may take to arrive before the demo gives up.
const PATIENCE: Duration = Duration::from_secs(30);

/// Why the demo could not run (what went wrong while it ran is in its [`Outcome`]).
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Pack(#[from] InvalidPack),
    #[error("cannot start the sandboxes: {0}")]
    Sandboxes(std::io::Error),
    #[error("{}: {source}", path.display())]
    Store { path: PathBuf, source: StoreError },
    #[error("{}: {source}", path.display())]
    ScratchDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Migrate(#[from] StoreError),
    #[error(transparent)]
    Accounts(#[from] AccountsError),
    #[error(transparent)]
    Initial(#[from] InitialError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Reconcile(#[from] Box<super::reconcile::ReconcileError>),
    #[error("rbtx run stopped before it was ready")]
    NotReady,
    /// The sandbox's answer, as it shows it.
    #[error("creating the invalid product in Rackbeat: {0}")]
    Rackbeat(String),
}

/// What the demo saw.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Seconds each real-time change took from the Rackbeat write to the Tripletex record.
    pub arrivals: Vec<f64>,
    pub failures: Vec<String>,
}

fn step(text: &str) {
    println!("\n{text}");
}

fn done(what: &str, result: &str, seconds: f64) {
    println!("  ✓ {what}\n      → {result}   ({seconds:.2} s)");
}

/// Polls `probe` until it yields, up to [`PATIENCE`].
async fn wait_for<T>(mut probe: impl FnMut() -> Option<T>) -> Option<(T, f64)> {
    let started = Instant::now();
    loop {
        if let Some(v) = probe() {
            return Some((v, started.elapsed().as_secs_f64()));
        }
        if started.elapsed() > PATIENCE {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for_async<T, F: Future<Output = Option<T>>>(
    mut probe: impl FnMut() -> F,
) -> Option<T> {
    let started = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        if started.elapsed() > PATIENCE {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn find(sb: &Sandboxes, kind: Kind, test: impl Fn(&Value) -> bool) -> Option<Value> {
    sb.tripletex.records(kind).into_iter().find(|r| test(r))
}

fn money(v: &Value) -> String {
    v.as_f64()
        .map(|f| format!("{f:.2}"))
        .unwrap_or_else(|| v.to_string())
}

/// Runs the demo; `Ok` with what it saw (failures included), `Err` when it could not run.
/// With `keep`, `rbtx run` is started again when the demo is done and its console stays up, with
/// the demo's data, until Ctrl-C.
pub async fn demo(pack_path: &Path, dir: &Path, keep: bool) -> Result<Outcome, DemoError> {
    let pack = load_pack(&[pack_path.to_path_buf()]);
    if !pack.diagnostics.is_empty() {
        return Err(InvalidPack::new(pack_path, &pack, 0).into());
    }
    let pack = Arc::new(pack);
    let start = |account| {
        sandbox::start(SandboxConfig {
            rackbeat_account_id: account,
            ..SandboxConfig::default()
        })
    };
    let fjord = start(sandbox::RACKBEAT_ACCOUNT_ID)
        .await
        .map_err(DemoError::Sandboxes)?;
    let nord = start(sandbox::RACKBEAT_ACCOUNT_ID + 1)
        .await
        .map_err(DemoError::Sandboxes)?;
    // Alert e-mails go to a local SMTP server that keeps them; a short window, so the dead
    // letter's digest comes within the step.
    let mail = sandbox::mail::start().await.map_err(DemoError::Sandboxes)?;
    let alerts = AlertSettings {
        smtp_url: Some(Secret::new(mail.url())),
        email_to: vec![ALERTS_TO.into()],
        interval: Some(Duration::from_secs(1)),
        ..AlertSettings::default()
    };
    let mut a = Accounts::sandbox(&fjord, InvoiceMode::Booked);
    a.id = "fjord".into();
    let mut b = Accounts::sandbox(&nord, InvoiceMode::AsOrder);
    b.id = "nord".into();
    let store_path = dir.join("rbtx.sqlite");
    println!("rbtx demo: Rackbeat and Tripletex simulated on this machine, no accounts needed.");
    println!(
        "  tenant fjord (invoices booked in Tripletex):  tripletex {}  rackbeat {}",
        fjord.tripletex.base_url, fjord.rackbeat.base_url
    );
    println!(
        "  tenant nord  (invoices as editable orders):   tripletex {}  rackbeat {}",
        nord.tripletex.base_url, nord.rackbeat.base_url
    );
    println!("  store: {}", store_path.display());
    println!(
        "  alert e-mails: {} (an SMTP server on this machine)",
        mail.url()
    );

    let store = Arc::new(
        SqliteStore::open(&store_path).map_err(|source| DemoError::Store {
            path: store_path.clone(),
            source,
        })?,
    );
    store.migrate().await?;
    let mut outcome = Outcome::default();

    step("1. Initial sync, Tripletex → Rackbeat (tenant fjord): `rbtx sync initial`");
    let worker = Worker::new(
        store.clone(),
        pack.clone(),
        a.tenant()?,
        "demo-initial-sync",
    );
    let started = Instant::now();
    let report = initial::run(&worker, &initial::Options::default(), &mut std::io::sink()).await?;
    for line in report.table().lines() {
        println!("   {line}");
    }
    println!("   in {:.2} s", started.elapsed().as_secs_f64());
    if report.failed() > 0 {
        outcome.failures.push(format!(
            "{} records failed in the initial sync",
            report.failed()
        ));
    }

    step("2. Real time, Rackbeat → Tripletex: `rbtx run` serving both tenants");
    let (up, is_up) = tokio::sync::oneshot::channel::<String>();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let console_token = Secret::new(
        crate::console::auth::random_token().map_err(|e| RunError::Console(e.to_string()))?,
    );
    let config = RunConfig {
        pack: pack_path.to_path_buf(),
        store: Location::Sqlite(store_path.clone()),
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        public_url: None,
        tenants: TenantSource::Given {
            accounts: vec![a, b],
            subscribe: true,
        },
        workers: 2,
        catch_up_seconds: 3600,
        reconcile_every_seconds: None,
        lease_ms: 30_000,
        watch: false,
        console_token: Some(console_token.clone()),
        alerts,
    };
    let kept_config = config.clone();
    let server = tokio::spawn(run(
        config,
        move |url| {
            up.send(url.to_string()).ok();
        },
        async {
            stopped.await.ok();
        },
    ));
    let url = match is_up.await {
        Ok(url) => url,
        Err(_) => {
            return Err(match server.await {
                Ok(Err(e)) => e.into(),
                _ => DemoError::NotReady,
            });
        }
    };
    println!("  webhooks arrive at {url}; each change below is made through Rackbeat's API model");

    let arrived = |what: &str, result: Option<(String, f64)>, outcome: &mut Outcome| match result {
        Some((text, secs)) => {
            done(what, &text, secs);
            outcome.arrivals.push(secs);
        }
        None => {
            println!("  ✗ {what}: did not arrive within {} s", PATIENCE.as_secs());
            outcome.failures.push(what.to_string());
        }
    };

    // A new customer.
    let rb = &fjord.rackbeat;
    let made = rb.create(
        Resource::Customer,
        json!({"number": 20001, "name": "Demo Kunde AS", "vat_zone": "domestic",
               "contact_email": "post@demokunde.example.no", "address_country": "NO"}),
    );
    let seen = match made {
        Ok(_) => wait_for(|| find(&fjord, Kind::Customer, |c| c["customerNumber"] == 20001))
            .await
            .map(|(c, s)| {
                (
                    format!(
                        "Tripletex customer {} \"{}\"",
                        c["id"],
                        c["name"].as_str().unwrap_or("")
                    ),
                    s,
                )
            }),
        Err(e) => {
            println!("  ✗ creating the customer in Rackbeat: {e:?}");
            None
        }
    };
    arrived(
        "new customer 20001 \"Demo Kunde AS\" in Rackbeat",
        seen,
        &mut outcome,
    );

    // A product's price changed.
    let seen = match rb.update(
        Resource::Product,
        "VARE-1001",
        json!({"sales_price": 159.0}),
    ) {
        Ok(_) => wait_for(|| {
            find(&fjord, Kind::Product, |p| {
                p["number"] == "VARE-1001" && p["priceExcludingVatCurrency"].as_f64() == Some(159.0)
            })
        })
        .await
        .map(|(p, s)| {
            (
                format!(
                    "Tripletex product {} at {} excl. VAT ({} incl.)",
                    p["id"],
                    money(&p["priceExcludingVatCurrency"]),
                    money(&p["priceIncludingVatCurrency"])
                ),
                s,
            )
        }),
        Err(e) => {
            println!("  ✗ updating the product in Rackbeat: {e:?}");
            None
        }
    };
    arrived(
        "product VARE-1001 repriced to 159.00 in Rackbeat",
        seen,
        &mut outcome,
    );

    // A bill of materials.
    let seen = match rb.create(
        Resource::Lot,
        json!({"number": "DEMO-SETT", "name": "Demosett: 2 hyller og 8 skruer", "group": 1001, "unit_id": 1,
               "sales_price": 499.0, "lines": [{"product_id": "VARE-1001", "quantity": 2},
                                               {"product_id": "VARE-3003", "quantity": 8}]}),
    ) {
        Ok(_) => wait_for(|| find(&fjord, Kind::Product, |p| p["number"] == "DEMO-SETT"))
            .await
            .map(|(p, s)| (format!("Tripletex product {} with its components listed in the description", p["id"]), s)),
        Err(e) => {
            println!("  ✗ creating the BOM in Rackbeat: {e:?}");
            None
        }
    };
    arrived(
        "BOM (Rackbeat lot) DEMO-SETT with 2 components",
        seen,
        &mut outcome,
    );

    // The same booked invoice in both tenants: a booked invoice for fjord, an order for nord.
    for (sb, tenant, kind, what) in [
        (
            &fjord,
            "fjord",
            Kind::Invoice,
            "mode 1: a booked invoice, not sent to the customer",
        ),
        (
            &nord,
            "nord",
            Kind::Order,
            "mode 2: an editable sales order, not invoiced",
        ),
    ] {
        let lines = json!([
            {"item_id": "VARE-1001", "quantity": 3, "line_price": 149.5, "discount_percentage": 12.5},
            {"item_id": "DEMO-SETT", "quantity": 1, "line_price": 499.0},
        ]);
        let mut invoice = json!({"number": 90001, "customer_id": 10001, "lines": lines});
        if tenant == "nord" {
            // nord has no DEMO-SETT; the seeded VARE-3003 instead.
            invoice["lines"][1]["item_id"] = json!("VARE-3003");
        }
        let booked = sb
            .rackbeat
            .create_draft_invoice(invoice)
            .and_then(|_| sb.rackbeat.book_invoice(90001));
        let label = format!("booked invoice 90001 in tenant {tenant} ({what})");
        let seen = match booked {
            Ok(rb_invoice) => {
                let marker = "Rackbeat invoice 90001";
                wait_for(|| find(sb, kind, |r| r.to_string().contains(marker)))
                    .await
                    .map(|(r, s)| {
                        let text = match kind {
                            Kind::Invoice => format!(
                                "Tripletex invoice {} total {} = Rackbeat's {}",
                                r["invoiceNumber"],
                                money(&r["amount"]),
                                money(&rb_invoice["total_total"])
                            ),
                            _ => format!("Tripletex order {} (open for editing)", r["id"]),
                        };
                        (text, s)
                    })
            }
            Err(e) => {
                println!("  ✗ booking the invoice in Rackbeat: {e:?}");
                None
            }
        };
        arrived(&label, seen, &mut outcome);
    }

    step("3. An invalid record: a product in a 7 % VAT group, which Tripletex has no VAT code for");
    let made = rb
        .create(Resource::ProductGroup, json!({"number": 1099, "name": "Sju prosent", "vat_domestic": 7.0}))
        .and_then(|_| rb.create(Resource::Product, json!({"number": "DEMO-7", "name": "Demovare til 7 %", "group": 1099, "sales_price": 70.0})));
    if let Err(e) = made {
        return Err(DemoError::Rackbeat(format!("{e:?}")));
    }
    let dead = wait_for_async(|| {
        let store = store.clone();
        async move {
            store
                .list_dead_letters()
                .await
                .ok()?
                .into_iter()
                .find(|d| d.event.key == "DEMO-7")
        }
    })
    .await;
    match dead {
        None => {
            println!("  ✗ the invalid product was not dead-lettered");
            outcome.failures.push("dead letter".into());
        }
        Some(d) => {
            println!(
                "  ✓ dead-lettered, nothing sent to Tripletex (`rbtx dlq list`, `rbtx dlq show {}`):",
                d.id
            );
            println!("      reason:  {}", d.reason);
            println!("      field:   {}", d.field.as_deref().unwrap_or("-"));
            println!("      mapping: {}", d.mapping.as_deref().unwrap_or("-"));
            let mails = mail.wait_for(1, PATIENCE).await;
            match mails.first() {
                Some(m) => println!(
                    "  ✓ alert e-mail to {}: \"{}\"",
                    m.to.join(", "),
                    m.subject().unwrap_or_default()
                ),
                None => {
                    println!("  ✗ no alert e-mail within {} s", PATIENCE.as_secs());
                    outcome.failures.push("alert e-mail".into());
                }
            }
            println!(
                "  Fixing the data in Rackbeat (product group 1001, 25 %), then `rbtx dlq replay {}`:",
                d.id
            );
            let replayed = rb
                .update(Resource::Product, "DEMO-7", json!({"group": 1001}))
                .map_err(|e| format!("{e:?}"))
                .map(|_| ());
            let replayed = match replayed {
                Ok(()) => store.replay(d.id).await.map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            let seen = match replayed {
                Ok(true) => wait_for(|| find(&fjord, Kind::Product, |p| p["number"] == "DEMO-7"))
                    .await
                    .map(|(p, s)| {
                        (
                            format!(
                                "Tripletex product {} (once: the binding and body hash keep it so)",
                                p["id"]
                            ),
                            s,
                        )
                    }),
                Ok(false) | Err(_) => None,
            };
            arrived(
                &format!("dead letter {} replayed", d.id),
                seen,
                &mut outcome,
            );
        }
    }

    // Each record exactly once, however often its events were delivered or retried.
    let once: [(&Sandboxes, Kind, &str, Value); 6] = [
        (&fjord, Kind::Customer, "customerNumber", json!(20001)),
        (&fjord, Kind::Product, "number", json!("VARE-1001")),
        (&fjord, Kind::Product, "number", json!("DEMO-SETT")),
        (&fjord, Kind::Product, "number", json!("DEMO-7")),
        (&fjord, Kind::Customer, "customerNumber", json!(10001)),
        (&nord, Kind::Customer, "customerNumber", json!(10001)),
    ];
    for (sb, kind, field, value) in once {
        let n = sb
            .tripletex
            .records(kind)
            .iter()
            .filter(|r| r[field] == value)
            .count();
        if n != 1 {
            outcome.failures.push(format!(
                "{kind:?} {field}={value} is in Tripletex {n} times"
            ));
        }
    }

    stop.send(()).ok();
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => outcome.failures.push(format!("rbtx run: {e}")),
        Err(e) => outcome.failures.push(format!("rbtx run: {e}")),
    }

    step(
        "4. `rbtx reconcile --fix` (tenant fjord): both systems compared; what no webhook announced is brought over",
    );
    let fjord_accounts = || {
        let mut a = Accounts::sandbox(&fjord, InvoiceMode::Booked);
        a.id = "fjord".into();
        a
    };
    let today = crate::dates::today_in_denmark();
    let period = |fix| reconcile::Options {
        entities: Vec::new(),
        since: format!("{:04}-01-01", crate::dates::civil_from_days(today).0),
        until: crate::dates::format(today + 1),
        fix,
        progress: false,
    };
    let reconciled = |fix| {
        let (store, pack) = (store.clone(), pack.clone());
        async move {
            let tenant = fjord_accounts().tenant()?;
            reconcile::run_on(store, pack, tenant, &period(fix))
                .await
                .map_err(|e| DemoError::Reconcile(Box::new(e)))
        }
    };
    let first = reconciled(true).await?;
    let queued = first.fixed.as_ref().map_or(0, |f| f.queued.len());
    println!(
        "  {} differences; --fix queued {queued} syncs (records made in Rackbeat before any webhook)",
        first.differences()
    );
    step("5. Drift: the price of VARE-1001 edited by hand in Tripletex, found and repaired");
    let tripletex = fjord_accounts().tenant()?.tripletex;
    if let Some(p) = find(&fjord, Kind::Product, |p| p["number"] == "VARE-1001") {
        let edited = tripletex
            .update_versioned(
                &format!("/product/{}", p["id"]),
                3,
                |_| json!({ "priceExcludingVatCurrency": 1.0 }),
            )
            .await;
        if let Err(e) = edited {
            outcome
                .failures
                .push(format!("editing the price by hand: {e}"));
        }
    }
    let drift = reconciled(false).await?;
    for line in drift.human().lines() {
        println!("   {line}");
    }
    let repaired = reconciled(true).await?;
    let after = reconciled(false).await?;
    let queued = repaired.fixed.as_ref().map_or(0, |f| f.queued.len());
    println!(
        "  --fix queued {queued} sync; reconciled again: {}",
        if after.differences() == 0 {
            "in step".to_string()
        } else {
            format!("{} differences", after.differences())
        }
    );
    if drift.differences() != 1 || after.differences() != 0 {
        outcome.failures.push(format!(
            "reconcile found {} differences after the hand edit (expected 1) and {} after --fix",
            drift.differences(),
            after.differences()
        ));
    }

    step("Summary");
    let mut sorted = outcome.arrivals.clone();
    sorted.sort_by(f64::total_cmp);
    if let (Some(first), Some(last)) = (sorted.first(), sorted.last()) {
        println!(
            "  {} changes arrived in Tripletex: fastest {first:.2} s, median {:.2} s, slowest {last:.2} s (webhook → worker → Tripletex).",
            sorted.len(),
            sorted[sorted.len() / 2]
        );
    }
    println!(
        "  initial sync: {} records read from Tripletex; one invalid record dead-lettered and replayed.",
        report.entities.iter().map(|e| e.counts.read).sum::<u64>()
    );
    if outcome.failures.is_empty() {
        println!(
            "  Everything arrived once. With real accounts in the environment, `rbtx run` does this job for real (see README)."
        );
    } else {
        println!("  Problems: {}", outcome.failures.join("; "));
    }
    if keep {
        keep_console(kept_config, &console_token).await?;
    } else {
        println!(
            "  `rbtx demo --keep` leaves the console up afterwards, with this data, to look around in."
        );
    }
    Ok(outcome)
}

/// `rbtx run` over the demo's store and sandboxes again, until Ctrl-C: the console shows what the
/// demo did (the dead letter, the activity, the retries).
async fn keep_console(config: RunConfig, token: &Secret) -> Result<(), DemoError> {
    let (up, is_up) = tokio::sync::oneshot::channel::<String>();
    let server = tokio::spawn(run(
        config,
        move |url| {
            up.send(url.to_string()).ok();
        },
        async {
            tokio::signal::ctrl_c().await.ok();
        },
    ));
    match is_up.await {
        Ok(url) => {
            step("The console stays up with the demo's data; Ctrl-C ends the demo");
            println!(
                "  console: {}/console/ (token: {})",
                console_base(&url),
                token.expose()
            );
        }
        Err(_) => {
            return Err(match server.await {
                Ok(Err(e)) => e.into(),
                _ => DemoError::NotReady,
            });
        }
    }
    match server.await {
        Ok(result) => Ok(result?),
        Err(_) => Err(DemoError::NotReady),
    }
}

/// A fresh folder for the demo's store.
pub fn scratch_dir() -> Result<PathBuf, DemoError> {
    let dir = std::env::temp_dir().join(format!("rbtx-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| DemoError::ScratchDir {
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}
