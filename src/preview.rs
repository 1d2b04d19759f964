//! `rbtx preview`: the requests a mapping would send for one record, rendered against an
//! optional existing target, with fixtures or placeholders (`<id of customer 10001>`) standing in
//! for references and API lookups. Sends nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};

use crate::engine::{FixtureResolver, Outcome, PlaceholderResolver, RecordError};
use crate::files;
use crate::plan::{Plan, load_pack};
use crate::spec::diagnostic::Diagnostic;
use crate::spec::{Document, Fixtures};

/// What to preview.
#[derive(Debug, Clone)]
pub struct Input {
    /// The mapping file.
    pub mapping: PathBuf,
    /// The source record as JSON (a `source.get` response or one listed record).
    pub source: PathBuf,
    /// The existing target record as JSON, to preview an update.
    pub target: Option<PathBuf>,
    /// Fixtures (YAML `refs:` and `lookups:`); without them placeholders are shown.
    pub fixtures: Option<PathBuf>,
    /// The pack the mapping belongs to (a mapping outside it is loaded on its own).
    pub pack: PathBuf,
}

/// How a preview went.
#[derive(Debug)]
pub enum Preview {
    /// The pack has problems; nothing was rendered.
    Invalid(Vec<Diagnostic>),
    /// The mapping's answer, as pretty JSON: `key`, `requests`, and `skipped` or `kept`.
    Rendered(String),
    /// The record cannot be mapped (a missing field, a bad value).
    Refused(RecordError),
}

/// Why a preview could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("{}: {source}", path.display())]
    Mapping {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a mapping in the pack", .0.display())]
    NotInPack(PathBuf),
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not valid JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// The fixtures file as rendered for a person.
    #[error("{0}")]
    FixturesFile(String),
    #[error("{}: not fixtures (`refs:` and `lookups:`): {source}", path.display())]
    Fixtures {
        path: PathBuf,
        source: serde_json::Error,
    },
}

pub fn preview(input: &Input) -> Result<Preview, PreviewError> {
    // A mapping named the way the pack names it (`rackbeat-to-tripletex/product.yaml`) is the
    // pack's, which is how the built-in pack's mappings are reached.
    let in_pack = input.pack.join(&input.mapping);
    let mapping = if !files::exists(&input.mapping) && files::exists(&in_pack) {
        &in_pack
    } else {
        &input.mapping
    };
    let mut roots = vec![input.pack.clone()];
    if !roots.iter().any(|r| mapping.starts_with(r)) {
        roots = vec![mapping.clone()];
    }
    let pack = load_pack(&roots);
    if !pack.diagnostics.is_empty() {
        return Ok(Preview::Invalid(pack.diagnostics));
    }
    let want = files::canonical(mapping).ok_or_else(|| PreviewError::Mapping {
        path: mapping.clone(),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    })?;
    let plan = pack
        .plans
        .iter()
        .find(|p| files::canonical(&p.file).as_ref() == Some(&want))
        .ok_or_else(|| PreviewError::NotInPack(mapping.clone()))?;
    let raw = read_json(&input.source)?;
    let source = plan.select(&raw).cloned().unwrap_or(raw);
    let target = input.target.as_deref().map(read_json).transpose()?;
    let fixtures = match &input.fixtures {
        Some(f) => FixtureResolver::layered(&read_fixtures(f)?, &Fixtures::default()),
        None => FixtureResolver::default(),
    };
    let resolver = Arc::new(PlaceholderResolver { fixtures });
    Ok(match render(plan, &source, target.as_ref(), resolver) {
        // A JSON value always serializes; the fallback is never taken.
        Ok(out) => Preview::Rendered(serde_json::to_string_pretty(&out).unwrap_or_default()),
        Err(e) => Preview::Refused(e),
    })
}

/// The mapping's answer for one record: `key`, `requests`, and `skipped` or `kept`. The
/// console's preview shows the same.
pub fn render(
    plan: &Plan,
    source: &Value,
    target: Option<&Value>,
    resolver: Arc<PlaceholderResolver>,
) -> Result<Value, RecordError> {
    let applied = plan.apply(source, target, resolver)?;
    Ok(match applied.outcome {
        Outcome::Write(r) => json!({"key": applied.key, "requests": [r]}),
        Outcome::Skip { reason } => {
            json!({"key": applied.key, "skipped": reason, "requests": []})
        }
        Outcome::Keep { .. } => {
            json!({"key": applied.key, "kept": "the target record exists and this mapping has no update", "requests": []})
        }
    })
}

fn read_fixtures(path: &Path) -> Result<Fixtures, PreviewError> {
    let doc = Document::load(path)
        .map_err(|d| PreviewError::FixturesFile(crate::spec::diagnostic::render_human(&d)))?;
    serde_json::from_value(doc.value).map_err(|source| PreviewError::Fixtures {
        path: path.to_path_buf(),
        source,
    })
}

fn read_json(path: &Path) -> Result<Value, PreviewError> {
    let text = files::read_to_string(path).map_err(|source| PreviewError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| PreviewError::Json {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(mapping: &str, source: &str) -> Input {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings");
        Input {
            mapping: root.join(mapping),
            source: root.join(source),
            target: None,
            fixtures: None,
            pack: root,
        }
    }

    #[test]
    fn references_and_lookups_show_as_placeholders() {
        let got = preview(&input(
            "rackbeat-to-tripletex/product.yaml",
            "rackbeat-to-tripletex/samples/product.json",
        ));
        let Ok(Preview::Rendered(text)) = got else {
            panic!("not rendered: {got:?}");
        };
        let v: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(v["key"], "VARE-1001");
        assert_eq!(v["requests"][0]["method"], "POST");
        assert_eq!(v["requests"][0]["body"]["vatType"]["id"], "<vat_type[3]>");
    }

    #[test]
    fn a_record_that_is_not_json_is_named() {
        let got = preview(&input(
            "rackbeat-to-tripletex/product.yaml",
            "rackbeat-to-tripletex/product.test.yaml",
        ));
        let Err(e @ PreviewError::Json { .. }) = got else {
            panic!("not a JSON error: {got:?}");
        };
        assert!(
            e.to_string()
                .contains("product.test.yaml is not valid JSON"),
            "{e}"
        );
    }
}
