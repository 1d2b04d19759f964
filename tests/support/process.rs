//! `rbtx` as separate processes: the sandboxes (`rbtx sandbox`) and `rbtx run`, for tests that
//! kill a process or share a store between two.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rbtx::connectors::RetryPolicy;
use rbtx::connectors::tripletex::{Tripletex, TripletexConfig};
use rbtx::sandbox;
use rbtx::secret::Secret;
use serde_json::Value;

/// A child process, killed when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// The first `n` lines the child prints. The rest is read and dropped in the background: with
/// the pipe closed, the child's next print would fail and stop it.
pub fn first_lines(child: &mut Child, n: usize) -> Vec<String> {
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.by_ref().take(n).map_while(Result::ok).collect();
    std::thread::spawn(move || lines.for_each(drop));
    first
}

/// The `rbtx` binary under test, in the project folder (where `mappings/` is).
pub fn rbtx() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rbtx"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// `rbtx run`, started from [`Sandboxes::run`], once its intake listens.
pub fn listening(mut child: Child) -> Killed {
    let said = first_lines(&mut child, 1);
    assert!(
        said.first().is_some_and(|l| l.starts_with("webhooks:")),
        "{said:?}"
    );
    Killed(child)
}

/// Both sandboxes in one `rbtx sandbox` process of their own, so they outlive an `rbtx run`.
pub struct Sandboxes {
    pub tx_url: String,
    pub rb_url: String,
    _process: Killed,
}

pub fn start_sandboxes() -> Sandboxes {
    let mut sb = rbtx()
        .args([
            "sandbox",
            "--tripletex-addr",
            "127.0.0.1:0",
            "--rackbeat-addr",
            "127.0.0.1:0",
            // Many requests a minute: the budget is not what these measure.
            "--rackbeat-rate-limit",
            "0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the sandboxes");
    let lines = first_lines(&mut sb, 5);
    Sandboxes {
        tx_url: lines[0].trim_start_matches("tripletex: ").to_string(),
        rb_url: lines[1].trim_start_matches("rackbeat: ").to_string(),
        _process: Killed(sb),
    }
}

impl Sandboxes {
    /// `rbtx run --listen 127.0.0.1:port` with the sandboxes' accounts; add the store and more.
    pub fn run(&self, port: u16) -> Command {
        let mut c = rbtx();
        c.args(["run", "--listen", &format!("127.0.0.1:{port}")])
            .env("RBTX_TRIPLETEX_URL", &self.tx_url)
            .env("RBTX_RACKBEAT_URL", &self.rb_url)
            .env("RBTX_TRIPLETEX_CONSUMER_TOKEN", sandbox::CONSUMER_TOKEN)
            .env("RBTX_TRIPLETEX_EMPLOYEE_TOKEN", sandbox::EMPLOYEE_TOKEN)
            .env("RBTX_RACKBEAT_TOKEN", sandbox::RACKBEAT_TOKEN)
            .env(
                "RBTX_RACKBEAT_ACCOUNT_ID",
                sandbox::RACKBEAT_ACCOUNT_ID.to_string(),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        c
    }

    /// `rbtx webhooks install` for an intake on `port`, keeping the tokens in `store`.
    pub fn install_webhooks(&self, port: u16, store: &str) {
        let install = rbtx()
            .args([
                "webhooks",
                "install",
                "--url",
                &format!("http://127.0.0.1:{port}/webhooks/rackbeat"),
                "--store",
                store,
            ])
            .env("RBTX_RACKBEAT_URL", &self.rb_url)
            .env("RBTX_RACKBEAT_TOKEN", sandbox::RACKBEAT_TOKEN)
            .output()
            .expect("webhooks install");
        let said = String::from_utf8_lossy(&install.stdout);
        assert!(
            install.status.success() && said.contains("product.created: subscribed, token stored"),
            "{said}{}",
            String::from_utf8_lossy(&install.stderr)
        );
    }

    /// How many times each Tripletex product numbered `prefix…` exists, once `want` numbers have
    /// arrived or `wait` has passed.
    pub async fn tripletex_products(
        &self,
        prefix: &str,
        want: usize,
        wait: Duration,
    ) -> HashMap<String, usize> {
        let mut config = TripletexConfig::new(
            self.tx_url.as_str(),
            Secret::new(sandbox::CONSUMER_TOKEN),
            Secret::new(sandbox::EMPLOYEE_TOKEN),
        );
        config.retry = RetryPolicy {
            max_retries: 2,
            ..Default::default()
        };
        let tx = Tripletex::new(config).expect("tripletex");
        let deadline = Instant::now() + wait;
        loop {
            let products = tx.list_all("/product", &[]).await.expect("list products");
            let mut counts: HashMap<String, usize> = HashMap::new();
            for p in products {
                if let Some(n) = p
                    .get("number")
                    .and_then(Value::as_str)
                    .filter(|n| n.starts_with(prefix))
                {
                    *counts.entry(n.to_string()).or_default() += 1;
                }
            }
            if counts.len() == want || Instant::now() > deadline {
                return counts;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// What `rbtx run --sandbox` prints before it serves: one `name: value` line for each URL and
/// token a client needs, up to the intake's `webhooks: …`.
pub struct Said(pub Vec<String>);

impl Said {
    pub fn read(stdout: impl std::io::Read) -> Said {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let last = line.starts_with("webhooks: ");
            lines.push(line);
            if last {
                break;
            }
        }
        Said(lines)
    }

    /// The value of the line starting with `prefix`.
    pub fn get(&self, prefix: &str) -> String {
        self.0
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no `{prefix}` line in {:?}", self.0))
    }
}
