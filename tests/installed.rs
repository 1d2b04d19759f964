//! The binary as a user installs it: copied to a folder of its own and run from another, empty
//! one, with nothing from the repository beside it and no variables in its environment.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::process::Said;

mod support;

/// A fresh folder holding `bin/rbtx` and an empty `work/` to run it in; removed when dropped.
struct Installed {
    root: PathBuf,
}

impl Installed {
    fn new(name: &str) -> Installed {
        let root =
            std::env::temp_dir().join(format!("rbtx-installed-{name}-{}", std::process::id()));
        std::fs::remove_dir_all(&root).ok();
        std::fs::create_dir_all(root.join("bin")).expect("bin folder");
        std::fs::create_dir_all(root.join("work")).expect("work folder");
        std::fs::copy(env!("CARGO_BIN_EXE_rbtx"), root.join("bin/rbtx")).expect("copy the binary");
        Installed { root }
    }

    fn work(&self) -> PathBuf {
        self.root.join("work")
    }

    /// `rbtx ARGS` in `work/`, with an environment holding nothing but a temporary folder.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(self.root.join("bin/rbtx"));
        c.args(args)
            .current_dir(self.work())
            .env_clear()
            .env("TMPDIR", &self.root);
        c
    }

    fn run(&self, args: &[&str]) -> Ran {
        Ran::from(output(&mut self.command(args)))
    }
}

/// Runs `c`. A binary just copied can be "busy" for a moment: a test thread that forks while
/// another copies inherits the copy's open handle until it execs, so the exec is tried again.
fn output(c: &mut Command) -> Output {
    for _ in 0..50 {
        match c.output() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(Duration::from_millis(100));
            }
            other => return other.expect("run rbtx"),
        }
    }
    c.output().expect("run rbtx")
}

impl Drop for Installed {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.root).ok();
    }
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl From<Output> for Ran {
    fn from(o: Output) -> Ran {
        Ran {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl std::fmt::Debug for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

#[test]
fn the_built_in_pack_validates_tests_previews_and_demos_from_an_empty_folder() {
    let rbtx = Installed::new("pack");
    let validate = rbtx.run(&["validate"]);
    assert_eq!(validate.code, Some(0), "{validate:?}");
    assert!(
        validate.stdout.ends_with(" mappings valid\n"),
        "{validate:?}"
    );
    assert!(
        validate.stderr.contains("pack: the pack built into rbtx"),
        "it says which pack it loaded: {validate:?}"
    );

    let test = rbtx.run(&["test"]);
    assert_eq!(test.code, Some(0), "{test:?}");
    assert!(test.stdout.contains(" passed, 0 failed"), "{test:?}");
    assert!(
        test.stdout
            .contains("<built-in>/rackbeat-to-tripletex/product.test.yaml"),
        "the cases are named by their place in the built-in pack: {test:?}"
    );

    // A record of the user's own, and one of the built-in pack's samples.
    std::fs::write(
        rbtx.work().join("record.json"),
        include_str!("../mappings/rackbeat-to-tripletex/samples/product.json"),
    )
    .expect("write a record");
    for input in [
        "record.json",
        "<built-in>/rackbeat-to-tripletex/samples/product.json",
    ] {
        let preview = rbtx.run(&[
            "preview",
            "rackbeat-to-tripletex/product.yaml",
            "--input",
            input,
        ]);
        assert_eq!(preview.code, Some(0), "{preview:?}");
        let shown: Value = serde_json::from_str(&preview.stdout).expect("JSON");
        assert_eq!(shown["key"], "VARE-1001", "{preview:?}");
        assert_eq!(shown["requests"][0]["path"], "/product", "{preview:?}");
    }

    let demo = rbtx.run(&["demo"]);
    assert_eq!(demo.code, Some(0), "{demo:?}");
}

#[test]
fn init_writes_a_pack_that_validates_and_tests_and_overwrites_nothing() {
    let rbtx = Installed::new("init");
    let init = rbtx.run(&["init", "mine"]);
    assert_eq!(init.code, Some(0), "{init:?}");
    let mine = rbtx.work().join("mine");
    let product = mine.join("rackbeat-to-tripletex/product.yaml");
    let text = std::fs::read_to_string(&product).expect("the product mapping");
    // The editor's modeline points at a schema that was written beside the pack.
    let schema = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# yaml-language-server: $schema="))
        .expect("a modeline");
    assert!(
        product
            .parent()
            .map(|d| d.join(schema))
            .is_some_and(|p| p.is_file()),
        "{schema} resolves from {}",
        product.display()
    );
    assert!(
        mine.join("rackbeat-to-tripletex/samples/product.json")
            .is_file(),
        "samples are written"
    );

    let validate = rbtx.run(&["validate", "mine"]);
    assert_eq!(validate.code, Some(0), "{validate:?}");
    let test = rbtx.run(&["test", "--pack", "mine"]);
    assert_eq!(test.code, Some(0), "{test:?}");
    assert!(
        test.stdout
            .contains("mine/rackbeat-to-tripletex/product.test.yaml"),
        "{test:?}"
    );
    // RBTX_PACK names it as well as --pack does.
    let by_env = Ran::from(output(rbtx.command(&["validate"]).env("RBTX_PACK", "mine")));
    assert_eq!(by_env.code, Some(0), "{by_env:?}");
    assert!(by_env.stderr.contains("pack: mine"), "{by_env:?}");

    let edited = format!("{text}# edited by hand\n");
    std::fs::write(&product, &edited).expect("edit");
    let again = rbtx.run(&["init", "mine"]);
    assert_eq!(again.code, Some(2), "{again:?}");
    assert!(again.stderr.contains("already exists"), "{again:?}");
    assert_eq!(
        std::fs::read_to_string(&product).ok().as_deref(),
        Some(edited.as_str()),
        "nothing is overwritten"
    );

    let missing = rbtx.run(&["run", "--pack", "no-such-pack"]);
    assert_eq!(missing.code, Some(2), "{missing:?}");
    assert!(
        missing
            .stderr
            .contains("the mapping pack no-such-pack does not exist"),
        "{missing:?}"
    );
}

#[test]
fn commands_that_need_accounts_refuse_to_run_without_them() {
    let rbtx = Installed::new("accounts");
    let vars = [
        "RBTX_TRIPLETEX_CONSUMER_TOKEN",
        "RBTX_TRIPLETEX_EMPLOYEE_TOKEN",
        "RBTX_RACKBEAT_TOKEN",
    ];
    for args in [
        &["run"][..],
        &["sync", "initial"],
        &["doctor"],
        &[
            "webhooks",
            "install",
            "--url",
            "https://example.invalid/webhooks",
        ],
    ] {
        let ran = rbtx.run(args);
        assert_eq!(ran.code, Some(2), "{args:?}: {ran:?}");
        // `webhooks install` needs only the Rackbeat token.
        let named: Vec<_> = vars.iter().filter(|v| ran.stderr.contains(*v)).collect();
        assert!(
            named.len() == 3 || (args[0] == "webhooks" && named == [&vars[2]]),
            "{args:?} names the variables it looked for: {ran:?}"
        );
        assert!(
            !ran.stdout.contains("webhooks: http"),
            "nothing was served: {ran:?}"
        );
    }
    assert!(
        !rbtx.work().join("rbtx.sqlite").exists(),
        "no store was made"
    );
    // What each of them reads is in its help.
    for args in [
        &["run", "--help"][..],
        &["sync", "initial", "--help"],
        &["doctor", "--help"],
    ] {
        let help = rbtx.run(args);
        assert_eq!(help.code, Some(0), "{help:?}");
        for v in vars.iter().chain(&["RBTX_STORE_URL", "RBTX_PACK"]) {
            assert!(help.stdout.contains(v), "{args:?} names {v}: {help:?}");
        }
    }
}

#[test]
fn completions_are_printed_for_each_shell() {
    let rbtx = Installed::new("completions");
    for shell in ["bash", "zsh", "fish"] {
        let ran = rbtx.run(&["completions", shell]);
        assert_eq!(ran.code, Some(0), "{ran:?}");
        assert!(
            ran.stdout.contains("validate") && ran.stdout.contains("--pack"),
            "{shell}: {ran:?}"
        );
    }
    assert_eq!(rbtx.run(&["completions", "tcsh"]).code, Some(2));
}

/// `curl ARGS`, its output as JSON.
fn curl(args: &[&str]) -> Value {
    let out = Command::new("curl")
        .args(["-sS", "--fail-with-body"])
        .args(args)
        .output()
        .expect("curl is installed (.ci/run installs it)");
    assert!(out.status.success(), "curl {args:?}: {:?}", Ran::from(out));
    serde_json::from_slice(&out.stdout).expect("a JSON answer")
}

#[test]
fn run_sandbox_prints_the_urls_and_tokens_curl_needs() {
    let rbtx = Installed::new("sandbox");
    let mut command = rbtx.command(&["run", "--sandbox", "--listen", "127.0.0.1:0"]);
    command.stdout(Stdio::piped()).stderr(Stdio::null());
    // As in `output`: a just-copied binary may be busy for a moment.
    let mut child = (0..50)
        .find_map(|_| match command.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(Duration::from_millis(100));
                None
            }
            other => Some(other.expect("start rbtx run --sandbox")),
        })
        .expect("rbtx started");
    let stdout = child.stdout.take().expect("stdout");
    let printed = Said::read(stdout);
    let said = |prefix: &str| printed.get(prefix);
    let (tx, rb) = (said("tripletex: "), said("rackbeat: "));
    let bearer = format!("Authorization: Bearer {}", said("rackbeat api token: "));
    let session = curl(&[
        "-X",
        "PUT",
        &format!(
            "{tx}/token/session/:create?consumerToken={}&employeeToken={}&expirationDate=2099-12-31",
            said("tripletex consumer token: "),
            said("tripletex employee token: ")
        ),
    ]);
    let token = session["value"]["token"]
        .as_str()
        .expect("a session token")
        .to_string();
    let basic = format!("0:{token}");

    curl(&[
        "-X",
        "POST",
        "-H",
        &bearer,
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"number": "CURL-1", "name": "Made with curl", "group": 1001, "sales_price": 10}"#,
        &format!("{rb}/products"),
    ]);
    // As the real Tripletex does, the sandbox tells every client its budget.
    let headers = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-D", "-", "-u", &basic])
        .arg(format!("{tx}/product?count=1"))
        .output()
        .expect("curl");
    let headers = String::from_utf8_lossy(&headers.stdout).to_lowercase();
    for h in [
        "x-rate-limit-limit:",
        "x-rate-limit-remaining:",
        "x-rate-limit-reset:",
    ] {
        assert!(headers.contains(h), "{h} in {headers}");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let arrived = loop {
        let found = curl(&["-u", &basic, &format!("{tx}/product?productNumber=CURL-1")]);
        if found["fullResultSize"] == 1 {
            break found;
        }
        assert!(Instant::now() < deadline, "CURL-1 never reached Tripletex");
        std::thread::sleep(Duration::from_millis(100));
    };
    child.kill().ok();
    child.wait().ok();
    assert_eq!(arrived["values"][0]["name"], "Made with curl");
    assert!(Path::new(&rbtx.work()).join("rbtx.sqlite").exists());
}
