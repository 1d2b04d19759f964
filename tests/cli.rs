//! The command line as a contract: exit codes, and the lines `rbtx sandbox` prints before serving.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

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
