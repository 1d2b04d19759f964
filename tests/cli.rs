//! The command line as a contract: exit codes, the lines `rbtx sandbox` prints before serving, and
//! `rbtx dlq` on either store.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use rbtx::secret::Secret;
use rbtx::store::postgres::PostgresStore;
use rbtx::store::sqlite::SqliteStore;
use rbtx::store::{NewEvent, Store};

fn rbtx() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rbtx"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

#[test]
fn validate_exits_0_clean_1_with_problems_2_when_it_cannot_run() {
    let code = |args: &[&str]| {
        rbtx()
            .args(args)
            .output()
            .map(|o| o.status.code())
            .ok()
            .flatten()
    };
    assert_eq!(code(&["validate", "mappings"]), Some(0));
    assert_eq!(
        code(&[
            "validate",
            "tests/bad-mappings/34-template-unknown-variable.yaml"
        ]),
        Some(1)
    );
    assert_eq!(code(&["validate", "no/such/folder"]), Some(2));
    assert_eq!(code(&["validate", "--format", "xml", "mappings"]), Some(2));
}

#[test]
fn github_format_prints_annotations() {
    let out = rbtx()
        .args([
            "validate",
            "--format",
            "github",
            "tests/bad-mappings/38-template-unknown-filter.yaml",
        ])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("::error file=tests/bad-mappings/38-template-unknown-filter.yaml,line="),
        "{text}"
    );
    assert!(text.contains("title=rbtx unknown-filter::"), "{text}");
}

#[test]
fn sandbox_prints_its_urls_and_credentials_before_serving() {
    let mut child = rbtx()
        .args([
            "sandbox",
            "--tripletex-addr",
            "127.0.0.1:0",
            "--rackbeat-addr",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start");
    let stdout = child.stdout.take().expect("stdout");
    let lines: Vec<String> = BufReader::new(stdout)
        .lines()
        .take(5)
        .map_while(Result::ok)
        .collect();
    child.kill().ok();
    child.wait().ok();
    assert!(
        lines[0].starts_with("tripletex: http://127.0.0.1:") && lines[0].ends_with("/v2"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("rackbeat: http://127.0.0.1:") && lines[1].ends_with("/api"),
        "{lines:?}"
    );
    assert!(
        lines[2..]
            .iter()
            .any(|l| l.contains("sandbox-consumer-token")),
        "{lines:?}"
    );
    assert!(
        lines[2..]
            .iter()
            .any(|l| l.contains("sandbox-rackbeat-api-token")),
        "{lines:?}"
    );
}

/// Dead-letters one event in `s`, then lists, shows and replays it with `rbtx dlq`, told where the
/// store is by `locate`.
async fn dlq_lists_shows_and_replays<S: Store>(s: &S, locate: impl Fn(&mut Command)) {
    s.migrate().await.expect("migrate");
    let new = NewEvent {
        tenant: "default".into(),
        entity: "product".into(),
        key: "VARE-5001".into(),
        event: "product.updated".into(),
        payload: serde_json::json!({"key": "VARE-5001", "key_name": "number"}),
        received_at: 1,
    };
    s.enqueue(new).await.expect("enqueue");
    let ev = s.claim(None, "w", 1, 10, 60_000).await.expect("claim");
    let reason = "lookup `vat_code` has no entry for `7`";
    let dl = s
        .dead_letter(
            ev[0].id,
            "w",
            reason,
            Some("mappings/rackbeat-to-tripletex/product.yaml"),
            Some("body.vatType.id"),
            20,
        )
        .await
        .expect("dead letter");
    assert!(dl.is_some());

    let out = |args: &[&str]| {
        let mut command = rbtx();
        command.args(args);
        locate(&mut command);
        let o = command.output().expect("run");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).to_string(),
        )
    };
    let (code, list) = out(&["dlq", "list"]);
    assert_eq!(code, Some(0));
    assert!(
        list.contains("VARE-5001")
            && list.contains("body.vatType.id: lookup `vat_code` has no entry for `7`"),
        "{list}"
    );
    assert!(list.contains("1 dead letter"), "{list}");
    let id = list.split_whitespace().next().unwrap_or("").to_string();
    let (code, show) = out(&["dlq", "show", &id]);
    assert_eq!(code, Some(0));
    let shown: serde_json::Value = serde_json::from_str(&show).expect("JSON");
    assert_eq!(
        shown["mapping"],
        "mappings/rackbeat-to-tripletex/product.yaml"
    );
    assert_eq!(shown["payload"]["key"], "VARE-5001");
    let (code, replay) = out(&["dlq", "replay", &id]);
    assert_eq!(code, Some(0), "{replay}");
    let (_, list) = out(&["dlq", "list"]);
    assert!(list.contains("0 dead letters"), "{list}");
    assert_eq!(
        s.queue_depth().await.expect("depth"),
        1,
        "the event is queued again"
    );
    assert_eq!(out(&["dlq", "show", "999"]).0, Some(2));
}

#[tokio::test]
async fn dlq_on_a_sqlite_file() {
    let dir = std::env::temp_dir().join(format!("rbtx-dlq-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("store.sqlite");
    let s = SqliteStore::open(&path).expect("store");
    dlq_lists_shows_and_replays(&s, |c| {
        c.arg("--store").arg(&path);
    })
    .await;
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = std::env::temp_dir().join(format!("rbtx-cli-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut child = rbtx()
        .args([
            "--log-format",
            "json",
            "run",
            "--sandbox",
            "--listen",
            "127.0.0.1:0",
            "--store",
        ])
        .arg(dir.join("store.sqlite"))
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rbtx run");
    let first = BufReader::new(child.stderr.take().expect("stderr"))
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("rbtx is running"));
    child.kill().ok();
    child.wait().ok();
    std::fs::remove_dir_all(&dir).ok();
    let line = first.expect("the start-up line is logged");
    let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON object");
    assert_eq!(v["level"], "INFO", "{line}");
    assert_eq!(v["message"], "rbtx is running.", "{line}");
    assert!(
        v["url"]
            .as_str()
            .is_some_and(|u| u.ends_with("/webhooks/rackbeat")),
        "{line}"
    );
}

/// The URL comes from the environment, as one with a password would.
#[tokio::test]
async fn dlq_on_postgres() {
    let Some(db) = support::postgres::database().await else {
        return;
    };
    let s = PostgresStore::connect(&Secret::new(db.url.as_str()))
        .await
        .expect("store");
    dlq_lists_shows_and_replays(&s, |c| {
        c.env("RBTX_STORE_URL", &db.url);
    })
    .await;
}

#[test]
fn the_demo_runs_end_to_end_and_exits_0() {
    let out = rbtx().arg("demo").output().expect("rbtx demo");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "1. Initial sync",
        "new customer 20001",
        "mode 1: a booked invoice",
        "mode 2: an editable sales order",
        "dead-lettered, nothing sent to Tripletex",
        "Everything arrived once.",
    ] {
        assert!(said.contains(line), "missing {line:?} in:\n{said}");
    }
    assert!(!said.contains('✗'), "{said}");
}
