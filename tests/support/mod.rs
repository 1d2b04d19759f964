//! Helpers shared by the test binaries (`mod support;` in each).

// Each test binary uses some of these helpers, not all.
#[allow(dead_code)]
pub mod postgres;
#[allow(dead_code)]
pub mod process;
#[allow(dead_code)]
pub mod worker;

/// A TCP port free on 127.0.0.1 right now.
#[allow(dead_code)] // not every test binary that has `mod support;` binds a port
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Copies a folder tree (a mapping pack to edit in a test).
#[allow(dead_code)]
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let (path, dest) = (entry.path(), to.join(entry.file_name()));
        if path.is_dir() {
            copy_dir(&path, &dest);
        } else {
            std::fs::copy(&path, &dest).expect("copy");
        }
    }
}

/// `rbtx run` inside the test process, started by [`start_run`].
#[allow(dead_code)]
pub struct Running {
    /// The intake's address, once it listens.
    pub url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), rbtx::runtime::run::RunError>>,
}

#[allow(dead_code)]
impl Running {
    /// Stops it as Ctrl-C would and waits until it has; its result.
    pub async fn stop(self) -> Result<(), String> {
        self.stop.send(()).ok();
        match self.task.await {
            Ok(ran) => ran.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Starts `rbtx run` with `config` and waits until its intake listens.
#[allow(dead_code)]
pub async fn start_run(config: rbtx::runtime::run::RunConfig) -> Running {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (up, is_up) = tokio::sync::oneshot::channel::<String>();
    let task = tokio::spawn(rbtx::runtime::run::run(
        config,
        move |url| {
            up.send(url.to_string()).ok();
        },
        async {
            stopped.await.ok();
        },
    ));
    let url = is_up.await.expect("rbtx run starts");
    Running { url, stop, task }
}
