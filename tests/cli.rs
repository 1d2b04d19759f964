//! The command line as a contract: exit codes, the lines `rbtx sandbox` prints before serving,
//! `rbtx preview`'s output, `rbtx test --bless`, and `rbtx dlq` on either store.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use rbtx::runtime::initial::INITIAL_SYNC_EVENT;
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
    // As the worker writes it: the reason names its field, which is also kept apart.
    let reason = "body.vatType.id: lookup `vat_code` has no entry for `7`";
    let dl = s
        .dead_letter(
            ev[0].id,
            "w",
            reason,
            Some("mappings/rackbeat-to-tripletex/product.yaml"),
            Some("body.vatType.id"),
            20,
            None,
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
    assert_eq!(
        list.matches("body.vatType.id").count(),
        1,
        "the field once: {list}"
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

    // `--all` puts the queue's dead letters back, and leaves the initial sync's for it to retry.
    let (queued, initial) = (
        dead_letter(s, "product.updated").await,
        dead_letter(s, INITIAL_SYNC_EVENT).await,
    );
    let (code, replay) = out(&["dlq", "replay", &initial.to_string()]);
    assert_eq!(code, Some(2), "an initial-sync dead letter is refused");
    let (code, replay_all) = out(&["dlq", "replay", "--all"]);
    assert_eq!(code, Some(0), "{replay_all}");
    assert_eq!(
        replay_all,
        "1 dead letter back in the queue\n1 left for `rbtx sync initial` to retry\n"
    );
    let left: Vec<i64> = s
        .list_dead_letters()
        .await
        .expect("list")
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(left, vec![initial], "{replay}");
    assert!(!left.contains(&queued));
}

/// Files a dead letter of a fresh event named `event`; its id.
async fn dead_letter<S: Store>(s: &S, event: &str) -> i64 {
    let key = format!("VARE-{event}");
    s.enqueue(NewEvent {
        tenant: "default".into(),
        entity: "product".into(),
        key: key.clone(),
        event: event.into(),
        payload: serde_json::json!({}),
        received_at: 1,
    })
    .await
    .expect("enqueue");
    let claimed = s.claim(None, "w", 16, 30, 60_000).await.expect("claim");
    let ev = claimed.iter().find(|e| e.key == key).expect("claimed");
    s.dead_letter(ev.id, "w", "failed", None, None, 40, None)
        .await
        .expect("dead letter")
        .expect("filed")
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

#[test]
fn preview_renders_a_shipped_mapping_with_placeholders() {
    let out = rbtx()
        .args([
            "preview",
            "mappings/rackbeat-to-tripletex/invoice-booked.yaml",
            "--input",
            "mappings/rackbeat-to-tripletex/samples/customer-invoice.json",
        ])
        .output()
        .expect("rbtx preview");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout));
}

#[test]
fn preview_of_a_record_the_mapping_refuses_exits_1() {
    let dir = std::env::temp_dir().join(format!("rbtx-cli-preview-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let input = dir.join("empty.json");
    std::fs::write(&input, "{}").expect("write");
    let out = rbtx()
        .args([
            "preview",
            "mappings/rackbeat-to-tripletex/product.yaml",
            "--input",
        ])
        .arg(&input)
        .output()
        .expect("rbtx preview");
    std::fs::remove_dir_all(&dir).ok();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.starts_with("error: ") && said.contains("empty.json: "),
        "{said}"
    );
}

/// Every file under `dir`, by path relative to it, with its bytes.
fn tree(dir: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let rel = path.strip_prefix(dir).expect("inside").to_path_buf();
                out.insert(rel, std::fs::read(&path).expect("read"));
            }
        }
    }
    out
}

#[test]
fn test_bless_rewrites_a_changed_golden_and_nothing_else() {
    let dir = std::env::temp_dir().join(format!("rbtx-cli-bless-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let pack = dir.join("mappings");
    support::copy_dir(
        &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings"),
        &pack,
    );
    let golden = pack.join("rackbeat-to-tripletex/samples/invoice-booked-120-lines.expected.json");
    let before = tree(&pack);
    let blessed = std::fs::read_to_string(&golden).expect("golden");
    let changed = blessed.replacen("\"count\": -1,", "\"count\": 7,", 1);
    assert_ne!(changed, blessed);
    std::fs::write(&golden, &changed).expect("change the golden");

    let test = |bless: bool| {
        let mut c = rbtx();
        c.arg("test")
            .arg(pack.join("rackbeat-to-tripletex/invoice-booked.test.yaml"))
            .arg("--pack")
            .arg(&pack);
        if bless {
            c.arg("--bless");
        }
        let o = c.output().expect("rbtx test");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).to_string(),
        )
    };
    let (code, said) = test(false);
    assert_eq!(code, Some(1), "the changed golden fails: {said}");
    assert!(said.contains("requests differ"), "{said}");
    let (code, said) = test(true);
    assert_eq!(code, Some(0), "{said}");
    let (code, said) = test(false);
    assert_eq!(code, Some(0), "the blessed golden passes: {said}");
    assert_eq!(
        tree(&pack),
        before,
        "only the changed golden was rewritten, back to what the mapping sends"
    );
    std::fs::remove_dir_all(&dir).ok();
}
