//! Mutations of the shipped pack that would break it in production, each of which `validate`
//! must catch at the line where it was made: a body field renamed, a source field renamed, a
//! constant given the wrong type.

use std::path::{Path, PathBuf};

use rbtx::plan::load_pack;
use rbtx::spec::{Code, Document};
use serde_json::Value;

/// One edit of one file, and what `validate` must then say.
struct Mutation {
    file: PathBuf,
    what: String,
    text: String,
    code: Code,
    /// The line the diagnostic must point at (1-based).
    line: usize,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn splice(text: &str, range: std::ops::Range<usize>, with: &str) -> String {
    format!("{}{with}{}", &text[..range.start], &text[range.end..])
}

/// Every object field under the body, with its JSON pointer; directives are not fields.
fn fields(v: &Value, pointer: &str, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1"));
                if !k.starts_with('$') {
                    out.push((p.clone(), child.clone()));
                }
                fields(child, &p, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                fields(child, &format!("{pointer}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn mutations(file: &Path) -> Vec<Mutation> {
    let doc = Document::load(file).expect("a shipped mapping");
    let text: &str = &doc.text;
    // Bodies sent to Tripletex; a request with no body (a credit note's) has no fields to check.
    let to_tripletex = doc.value["direction"] == "rackbeat_to_tripletex"
        && doc.value["target"]["create"]["without_body"] != true;
    let natural_key = format!(
        "/body/{}",
        doc.value["target"]["natural_key"]
            .as_str()
            .unwrap_or_default()
    );
    let mut out = Vec::new();
    let mut body = Vec::new();
    fields(&doc.value["body"], "/body", &mut body);
    for (pointer, value) in &body {
        let key = doc.spans.key(pointer);
        // A body field renamed: Tripletex's schema is known, so the name must be one of it.
        if to_tripletex {
            let name = &text[key.clone()];
            // Without its natural key the mapping cannot match records: said where it is declared.
            let (code, line) = if *pointer == natural_key {
                let declared = doc.spans.value("/target/natural_key");
                (Code::NaturalKey, line_of(text, declared.start))
            } else {
                (Code::UnknownTargetField, line_of(text, key.start))
            };
            out.push(Mutation {
                file: file.to_path_buf(),
                what: format!("rename {pointer}"),
                text: splice(text, key.clone(), &format!("{name}Zq")),
                code,
                line,
            });
        }
        // A constant of the wrong type.
        if to_tripletex && matches!(value, Value::Bool(_) | Value::Number(_)) {
            let span = doc.spans.value(pointer);
            out.push(Mutation {
                file: file.to_path_buf(),
                what: format!("{pointer} as text"),
                text: splice(text, span.clone(), "\"not a constant of its type\""),
                code: Code::WrongType,
                line: line_of(text, span.start),
            });
        }
        // A source field renamed, in the first template of the field that reads one.
        if let Value::String(s) = value
            && let Some(at) = s.find("source.")
        {
            let span = doc.spans.value(pointer);
            let node = &text[span.clone()];
            let Some(in_node) = node.find(&s[at..at + 7]) else {
                continue;
            };
            let start = span.start + in_node + "source.".len();
            let end = start
                + text[start..]
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(0);
            if end > start {
                out.push(Mutation {
                    file: file.to_path_buf(),
                    what: format!("rename the source field {} in {pointer}", &text[start..end]),
                    text: splice(text, start..end, &format!("{}Zq", &text[start..end])),
                    code: Code::UnknownSourceField,
                    line: line_of(text, start),
                });
            }
        }
    }
    out
}

#[test]
fn every_mutation_of_the_shipped_pack_is_caught_where_it_was_made() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings");
    let work = std::env::temp_dir().join(format!("rbtx-mutations-{}", std::process::id()));
    let mut files = Vec::new();
    for dir in ["rackbeat-to-tripletex", "tripletex-to-rackbeat"] {
        std::fs::create_dir_all(work.join(dir)).expect("work dir");
        for e in std::fs::read_dir(root.join(dir)).expect("pack") {
            let p = e.expect("entry").path();
            if rbtx::plan::is_mapping_file(&p) {
                std::fs::copy(&p, work.join(dir).join(p.file_name().expect("name"))).expect("copy");
                files.push(work.join(dir).join(p.file_name().expect("name")));
            }
        }
    }
    let (mut made, mut missed) = (0, Vec::new());
    let mut by_code = std::collections::BTreeMap::new();
    for file in &files {
        let original = std::fs::read_to_string(file).expect("read");
        for m in mutations(file) {
            std::fs::write(&m.file, &m.text).expect("write the mutation");
            let pack = load_pack(std::slice::from_ref(&m.file));
            let caught = pack
                .diagnostics
                .iter()
                .chain(&pack.warnings)
                .any(|d| d.code == m.code && d.file == m.file && d.line_col().0 == m.line);
            made += 1;
            *by_code.entry(m.code.as_str()).or_insert(0) += 1;
            if !caught {
                missed.push(format!(
                    "{}: {} (wanted {} at line {}; got {:?})",
                    m.file.display(),
                    m.what,
                    m.code,
                    m.line,
                    pack.diagnostics
                        .iter()
                        .chain(&pack.warnings)
                        .map(|d| format!("{}:{} {}", d.line_col().0, d.code, d.message))
                        .collect::<Vec<_>>()
                ));
            }
        }
        std::fs::write(file, original).expect("restore");
    }
    std::fs::remove_dir_all(&work).ok();
    eprintln!("{made} mutations, all caught: {by_code:?}");
    assert!(made > 200, "only {made} mutations: {by_code:?}");
    assert!(
        missed.is_empty(),
        "{} of {made} mutations not caught:\n{}",
        missed.len(),
        missed.join("\n")
    );
}
