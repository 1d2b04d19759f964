//! A fresh PostgreSQL database per test, so tests never see each other's rows.
//!
//! Where the server comes from, in order:
//! 1. `RBTX_TEST_POSTGRES_URL`: a server someone runs (CI does); the role must be allowed to
//!    create databases. Each test creates its own database there and drops it at the end.
//! 2. PostgreSQL's server programs (`initdb`, `pg_ctl` under `/usr/lib/postgresql/*/bin` or on
//!    `PATH`): a throwaway cluster in a temp dir on a free 127.0.0.1 port, one per test binary,
//!    stopped and deleted by a watcher process once the test binary exits. initdb refuses to run
//!    as root, so as root the cluster runs as the `postgres` user.
//! 3. Neither: with `CI` set the test fails (CI must test both backends); otherwise it prints why
//!    and passes without testing anything.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio_postgres::NoTls;

const URL_VAR: &str = "RBTX_TEST_POSTGRES_URL";

/// A database of its own, dropped when this is dropped.
pub struct TestDb {
    /// Connection URL of the database (no password for the throwaway cluster).
    pub url: String,
    admin_url: String,
    name: String,
}

/// A fresh, empty database, or `None` (after saying why) when no PostgreSQL is available and this
/// is not CI.
pub async fn database() -> Option<TestDb> {
    let admin_url = match server() {
        Ok(Some(url)) => url.clone(),
        Ok(None) if std::env::var_os("CI").is_some() => {
            panic!("CI needs PostgreSQL for the store tests: set {URL_VAR} or install postgresql")
        }
        Ok(None) => {
            eprintln!("skipped: no PostgreSQL (install postgresql or set {URL_VAR})");
            return None;
        }
        Err(e) => panic!("cannot start a PostgreSQL server for the tests: {e}"),
    };
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "rbtx_test_{}_{}_{}",
        std::process::id(),
        nanos() % 1_000_000_000,
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    let (client, connection) = tokio_postgres::connect(&admin_url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to the test server: {e}"));
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    Some(TestDb {
        url: with_dbname(&admin_url, &name),
        admin_url,
        name,
    })
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on; a thread with a runtime
        // of its own can. FORCE ends the connections the test's stores still hold.
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let (client, connection) = tokio_postgres::connect(&url, NoTls).await.ok()?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        });
        dropped.join().ok();
    }
}

/// The URL of a maintenance database on the server, started once per test binary.
fn server() -> Result<&'static Option<String>, &'static String> {
    static SERVER: OnceLock<Result<Option<String>, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| match std::env::var(URL_VAR) {
            Ok(url) => Ok(Some(url)),
            Err(_) => match bin_dir() {
                Some(bin) => start_cluster(&bin).map(Some),
                None => Ok(None),
            },
        })
        .as_ref()
}

/// `url` with its database name replaced by `name`.
fn with_dbname(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let query = rest[end..].find('?').map_or("", |i| &rest[end + i..]);
    format!("{scheme}://{}/{name}{query}", &rest[..end])
}

/// Where `initdb` and `pg_ctl` are: the newest Debian install, else `PATH`.
fn bin_dir() -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| has_both(bin))
        .collect();
    debian.sort();
    debian
        .pop()
        .map(|(_, bin)| bin)
        .or_else(|| std::env::split_paths(&std::env::var_os("PATH")?).find(|dir| has_both(dir)))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

/// Initializes and starts a cluster that only this test binary uses; returns its admin URL.
fn start_cluster(bin: &Path) -> Result<String, String> {
    let root = is_root();
    // A program from `bin`, run as `postgres` when we are root.
    let pg = |program: &str| {
        let path = bin.join(program);
        if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    };
    let dir = std::env::temp_dir().join(format!("rbtx-pg-{}-{}", std::process::id(), nanos()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if root {
        run(Command::new("chown").arg("postgres:").arg(&dir))?;
    }
    let data = dir.join("data");
    run(pg("initdb").arg("-D").arg(&data).args([
        "-U",
        "postgres",
        "--auth=trust",
        "--no-sync",
        "-E",
        "UTF8",
    ]))?;
    watch(
        &dir,
        pg("pg_ctl")
            .arg("stop")
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate"]),
    )?;

    // The port is free when picked but may be taken before the server binds it: try a few.
    let mut last_error = String::new();
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| e.to_string())?;
        // Durability settings off: a test cluster is thrown away, and fsyncs only slow it down.
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            dir.display()
        );
        match run(pg("pg_ctl")
            .arg("start")
            .arg("-w")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("server.log"))
            .args(["-o", &options]))
        {
            Ok(()) => return Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres")),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

/// Runs `stop` and deletes `dir` once this process has exited. The watcher is in its own process
/// group, so a Ctrl-C to the test run does not stop it before it has cleaned up.
fn watch(dir: &Path, stop: &mut Command) -> Result<(), String> {
    let mut args = vec![stop.get_program().to_owned()];
    args.extend(stop.get_args().map(ToOwned::to_owned));
    Command::new("sh")
        .arg("-c")
        .arg(
            r#"pid=$1; dir=$2; shift 2
               while kill -0 "$pid" 2>/dev/null; do sleep 1; done
               "$@"; rm -rf "$dir""#,
        )
        .arg("sh")
        .arg(std::process::id().to_string())
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map(drop)
        .map_err(|e| format!("starting the cleanup watcher: {e}"))
}

fn run(command: &mut Command) -> Result<(), String> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{:?}: {e}", command.get_program()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} failed: {}{}",
            command.get_program(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
