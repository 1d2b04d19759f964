//! The spec of rbtx's error messages: every broken mapping under tests/bad-mappings/ (a file, or a
//! folder validated as one pack) has its exact rendered diagnostics as a golden file.

use std::path::{Path, PathBuf};

use rbtx::plan::load_pack;
use rbtx::spec::diagnostic::{Format, render};

fn rendered(path: &Path) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let rel = path.strip_prefix(&root).unwrap_or(path).to_path_buf();
    // Relative paths, so the golden files do not depend on where the checkout lives.
    let mut pack = load_pack(&[rel]);
    // Warnings are part of what a broken file shows, after its errors.
    pack.diagnostics.append(&mut pack.warnings);
    assert!(
        !pack.diagnostics.is_empty(),
        "{} validated clean",
        path.display()
    );
    let json = render(&pack.diagnostics, Format::Json);
    let github = render(&pack.diagnostics, Format::Github);
    format!(
        "{}\n--- json ---\n{json}--- github ---\n{github}",
        render(&pack.diagnostics, Format::Human)
    )
}

#[test]
fn bad_mapping_files() {
    std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")).ok();
    insta::glob!("bad-mappings/*.yaml", |path| {
        insta::assert_snapshot!(rendered(path));
    });
}

#[test]
fn bad_mapping_packs() {
    std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")).ok();
    insta::glob!("bad-mappings/pack-*", |path| {
        insta::assert_snapshot!(rendered(path));
    });
}

#[test]
fn there_are_at_least_thirty_broken_files() {
    let n = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-mappings"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(n >= 30, "only {n} broken mappings");
}
