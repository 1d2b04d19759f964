//! The mapping pack's files, on disk or in the copy compiled into the binary.
//!
//! The shipped pack (`mappings/` with its tests and samples, and `schemas/`) is part of the
//! binary, so `rbtx` works from any directory. Its files have paths under [`EMBEDDED`], which
//! every diagnostic shows as it would a directory's; everything that reads a pack file goes
//! through here, so one path type serves both kinds of pack.

use std::io;
use std::path::{Component, Path, PathBuf};

use include_dir::{Dir, include_dir};

/// The root under which the built-in pack's files are named.
pub const EMBEDDED: &str = "<built-in>";

static PACK: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/mappings");
static SCHEMAS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/schemas");

/// A JSON Schema shipped with rbtx, by its path under `schemas/` (`rackbeat/products.schema.json`).
pub fn schema(rel: &str) -> Option<&'static str> {
    SCHEMAS.get_file(rel)?.contents_utf8()
}

/// The built-in pack's root.
pub fn embedded_root() -> PathBuf {
    PathBuf::from(EMBEDDED)
}

/// The path inside the built-in pack, when `path` names one of its files or folders.
fn inside(path: &Path) -> Option<PathBuf> {
    let rest = path.strip_prefix(EMBEDDED).ok()?;
    // `dir.join("../x")` from a test file: resolve it as a file system would.
    let mut out = PathBuf::new();
    for c in rest.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    Some(out)
}

pub fn is_embedded(path: &Path) -> bool {
    path.starts_with(EMBEDDED)
}

pub fn read_to_string(path: &Path) -> io::Result<String> {
    let Some(rel) = inside(path) else {
        return std::fs::read_to_string(path);
    };
    PACK.get_file(&rel)
        .and_then(|f| f.contents_utf8())
        .map(str::to_string)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "not in the built-in pack"))
}

pub fn is_dir(path: &Path) -> bool {
    match inside(path) {
        Some(rel) if rel.as_os_str().is_empty() => true,
        Some(rel) => PACK.get_dir(&rel).is_some(),
        None => path.is_dir(),
    }
}

pub fn exists(path: &Path) -> bool {
    match inside(path) {
        Some(rel) => rel.as_os_str().is_empty() || PACK.get_entry(&rel).is_some(),
        None => path.exists(),
    }
}

/// The entries of a folder, as paths under it.
pub fn list(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let Some(rel) = inside(dir) else {
        return std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.path()))
            .collect();
    };
    let folder = if rel.as_os_str().is_empty() {
        Some(&PACK)
    } else {
        PACK.get_dir(&rel)
    };
    let folder = folder
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "not in the built-in pack"))?;
    Ok(folder
        .entries()
        .iter()
        .map(|e| embedded_root().join(e.path()))
        .collect())
}

/// One name for one file, so a test file's `mapping:` finds the plan compiled from it.
pub fn canonical(path: &Path) -> Option<PathBuf> {
    match inside(path) {
        Some(rel) => Some(embedded_root().join(rel)),
        None => std::fs::canonicalize(path).ok(),
    }
}

/// How a pack is named to a person: "the pack built into rbtx 0.1.0", or its folder.
pub fn describe(root: &Path) -> String {
    if is_embedded(root) {
        format!("the pack built into rbtx {}", env!("CARGO_PKG_VERSION"))
    } else {
        root.display().to_string()
    }
}

/// Why `rbtx init` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{} already exists; rbtx init writes into a new folder and overwrites nothing", .0.display())]
    Exists(PathBuf),
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
}

/// Writes the built-in pack into `dest` for editing: the mappings with their tests and samples,
/// and the JSON Schemas under `dest/schemas`, with the editor modelines pointing there. Refuses
/// when any file it would write is already there, before writing anything.
pub fn init(dest: &Path) -> Result<Vec<PathBuf>, InitError> {
    let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    collect(&PACK, dest, &mut files, true);
    collect(&SCHEMAS, &dest.join("schemas"), &mut files, false);
    if let Some((path, _)) = files.iter().find(|(p, _)| p.exists()) {
        return Err(InitError::Exists(path.clone()));
    }
    for (path, bytes) in &files {
        let write = || -> io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, bytes)
        };
        write().map_err(|source| InitError::Write {
            path: path.clone(),
            source,
        })?;
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}

fn collect(dir: &Dir<'static>, dest: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>, pack: bool) {
    for f in dir.files() {
        let mut bytes = f.contents().to_vec();
        // In the repository the schemas sit beside `mappings/`; in a written pack, inside it.
        if pack && let Ok(text) = std::str::from_utf8(&bytes) {
            bytes = text
                .replace("$schema=../../schemas/", "$schema=../schemas/")
                .into_bytes();
        }
        out.push((dest.join(f.path()), bytes));
    }
    for d in dir.dirs() {
        collect(d, dest, out, pack);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_pack_reads_like_a_folder() {
        let root = embedded_root();
        assert!(is_dir(&root));
        assert!(is_dir(&root.join("rackbeat-to-tripletex")));
        let product = root.join("rackbeat-to-tripletex/product.yaml");
        assert!(exists(&product) && !is_dir(&product));
        let text = read_to_string(&product).expect("the shipped product mapping");
        let on_disk = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("mappings/rackbeat-to-tripletex/product.yaml"),
        )
        .expect("the repository's copy");
        assert_eq!(text, on_disk);
        assert!(list(&root.join("rackbeat-to-tripletex")).is_ok_and(|l| l.contains(&product)));
        // A test file's `../` resolves as on disk.
        let up = root.join("rackbeat-to-tripletex/samples/../product.yaml");
        assert_eq!(canonical(&up), Some(product));
        assert!(!exists(&root.join("nothing.yaml")));
        assert!(read_to_string(&root.join("nothing.yaml")).is_err());
    }
}
