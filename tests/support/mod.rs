//! Helpers shared by the test binaries (`mod support;` in each).

// Each test binary uses some of these helpers, not all.
#[allow(dead_code)]
pub mod postgres;

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
