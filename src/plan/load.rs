//! Finding and loading a pack: the mapping files under the given paths, each compiled, then
//! checked against each other.

use std::path::{Path, PathBuf};

use super::Pack;
use super::checks::check_pack;
use super::compile::compile;
use crate::files;
use crate::spec::{Code, Diagnostic, Document};

/// Finds the mapping files under `paths`: YAML files, not the `*.test.yaml` beside them.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Box<Diagnostic>> {
    let mut out = Vec::new();
    for p in paths {
        if files::is_dir(p) {
            walk(p, &mut out).map_err(|e| {
                Box::new(Diagnostic::bare(
                    Code::Io,
                    p,
                    format!("cannot read {}: {e}", p.display()),
                ))
            })?;
        } else if files::exists(p) {
            out.push(p.clone());
        } else {
            return Err(Box::new(Diagnostic::bare(
                Code::Io,
                p,
                format!("{} does not exist", p.display()),
            )));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for path in files::list(dir)? {
        if files::is_dir(&path) {
            walk(&path, out)?;
        } else if is_mapping_file(&path) {
            out.push(path);
        }
    }
    Ok(())
}

pub fn is_mapping_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    (name.ends_with(".yaml") || name.ends_with(".yml"))
        && !name.ends_with(".test.yaml")
        && !name.ends_with(".test.yml")
}

/// Loads and compiles every mapping file under `paths`, then checks them against each other.
pub fn load_pack(paths: &[PathBuf]) -> Pack {
    let mut pack = Pack::default();
    let files = match discover(paths) {
        Ok(f) => f,
        Err(d) => {
            pack.diagnostics.push(*d);
            return pack;
        }
    };
    let mut docs = Vec::new();
    for f in files {
        match Document::load(&f) {
            Ok(doc) => docs.push(doc),
            Err(d) => pack.diagnostics.push(*d),
        }
    }
    let mut compiled = Vec::new();
    for doc in &docs {
        let (plan, mut diags, uses) = compile(doc);
        pack.diagnostics.append(&mut diags);
        if let Some(plan) = plan {
            compiled.push((plan, doc, uses));
        }
    }
    // Entities as the files declare them, compiled or not, so one broken file does not make every
    // reference to its entity an error too.
    // A file validated on its own is checked against the mappings beside it, which start-up
    // would load with it; they are read for their entity only, and not reported on.
    let mut context: Vec<Document> = Vec::new();
    for p in paths
        .iter()
        .filter(|p| files::exists(p) && !files::is_dir(p))
    {
        let siblings = p
            .parent()
            .map(|d| discover(&[d.to_path_buf()]))
            .and_then(Result::ok);
        for s in siblings.unwrap_or_default() {
            if !docs.iter().chain(&context).any(|d| d.path == s)
                && let Ok(d) = Document::load(&s)
            {
                context.push(d);
            }
        }
    }
    let declared: Vec<(String, String)> = docs
        .iter()
        .chain(&context)
        .filter_map(|d| {
            Some((
                d.value.get("direction")?.as_str()?.to_string(),
                d.value.get("entity")?.as_str()?.to_string(),
            ))
        })
        .collect();
    check_pack(&compiled, &declared, &mut pack.diagnostics);
    pack.plans = compiled.into_iter().map(|(p, _, _)| p).collect();
    let (warnings, errors) = std::mem::take(&mut pack.diagnostics)
        .into_iter()
        .partition(|d| d.severity == crate::spec::Severity::Warning);
    pack.diagnostics = errors;
    pack.warnings = warnings;
    crate::spec::diagnostic::sort(&mut pack.diagnostics);
    crate::spec::diagnostic::sort(&mut pack.warnings);
    pack
}
