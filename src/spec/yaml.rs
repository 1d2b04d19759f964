//! Loading YAML with a position for every node. saphyr parses the text; the tree is turned into a
//! `serde_json::Value` (so the JSON Schema and serde see exactly what the user wrote) plus a table
//! from JSON pointer to source span, which every later diagnostic uses.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use saphyr::{LoadableYamlNode, MarkedYamlOwned, ScalarOwned, YamlDataOwned};
use serde_json::{Map, Number, Value};

use super::diagnostic::{Code, Diagnostic};

/// Where a node sits in its file, in byte offsets.
#[derive(Debug, Clone, Default)]
pub struct NodeSpan {
    /// The key that introduced the node, for mapping values.
    pub key: Option<Range<usize>>,
    /// The node itself.
    pub value: Range<usize>,
}

/// JSON pointer → span.
#[derive(Debug, Clone, Default)]
pub struct Spans(HashMap<String, NodeSpan>);

impl Spans {
    /// The span of the node at `pointer`, or of its nearest ancestor that has one.
    pub fn value(&self, pointer: &str) -> Range<usize> {
        let mut p = pointer;
        loop {
            if let Some(s) = self.0.get(p) {
                return s.value.clone();
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return 0..0,
            }
        }
    }

    /// The span of the key that introduced `pointer`, falling back to the value.
    pub fn key(&self, pointer: &str) -> Range<usize> {
        match self.0.get(pointer).and_then(|s| s.key.clone()) {
            Some(k) => k,
            None => self.value(pointer),
        }
    }
}

/// A loaded source file: its text (shared with diagnostics), its value and its spans.
#[derive(Debug, Clone)]
pub struct Document {
    pub path: PathBuf,
    pub text: Arc<str>,
    pub value: Value,
    pub spans: Spans,
}

impl Document {
    /// Reads and parses one YAML file. A file that cannot be parsed gives one diagnostic at the
    /// place the parser stopped.
    pub fn load(path: &Path) -> Result<Document, Box<Diagnostic>> {
        let text = crate::files::read_to_string(path).map_err(|e| {
            Box::new(Diagnostic::bare(
                Code::Io,
                path,
                format!("cannot read {}: {e}", path.display()),
            ))
        })?;
        Document::parse(path, text)
    }

    /// Parses YAML text that came from `path`.
    pub fn parse(path: &Path, text: String) -> Result<Document, Box<Diagnostic>> {
        let text: Arc<str> = Arc::from(text);
        let offsets = CharOffsets::new(&text);
        let docs = MarkedYamlOwned::load_from_str(&text).map_err(|e| {
            let at = offsets.byte(e.marker().index());
            Box::new(syntax_diagnostic(path, &text, at, e.info()))
        })?;
        let root = match docs.len() {
            1 => docs.into_iter().next(),
            0 => None,
            _ => {
                let start = offsets.span(&docs[1].span).start;
                // Point at the `---` that starts the second document.
                let at = text[..start.min(text.len())]
                    .rfind("---")
                    .map(|i| i..i + 3)
                    .unwrap_or(start..start);
                return Err(Box::new(
                    Diagnostic::new(
                        Code::YamlSyntax,
                        path,
                        text.clone(),
                        at,
                        "",
                        "a mapping file holds exactly one YAML document".to_string(),
                    )
                    .with_hint(
                        "remove the `---` and what follows, or move it to a file of its own",
                    ),
                ));
            }
        };
        let Some(root) = root else {
            return Err(Box::new(Diagnostic::new(
                Code::YamlSyntax,
                path,
                text.clone(),
                0..0,
                "",
                "the file is empty".to_string(),
            )));
        };
        let mut conv = Converter {
            offsets: &offsets,
            spans: HashMap::new(),
            error: None,
        };
        let value = conv.node(&root, String::new(), None);
        if let Some((span, message, hint)) = conv.error {
            let mut d = Diagnostic::new(Code::YamlSyntax, path, text.clone(), span, "", message);
            d.hint = hint;
            return Err(Box::new(d));
        }
        Ok(Document {
            path: path.to_path_buf(),
            text,
            value,
            spans: Spans(conv.spans),
        })
    }
}

/// saphyr counts characters; diagnostics need bytes.
struct CharOffsets {
    /// Byte offset of each char, or empty when the text is ASCII (then they are equal).
    table: Vec<usize>,
    len: usize,
}

impl CharOffsets {
    fn new(text: &str) -> Self {
        let table = if text.is_ascii() {
            Vec::new()
        } else {
            text.char_indices().map(|(i, _)| i).collect()
        };
        CharOffsets {
            table,
            len: text.len(),
        }
    }
    fn byte(&self, char_index: usize) -> usize {
        if self.table.is_empty() {
            char_index.min(self.len)
        } else {
            self.table.get(char_index).copied().unwrap_or(self.len)
        }
    }
    fn span(&self, s: &saphyr_parser::Span) -> Range<usize> {
        let start = self.byte(s.start.index());
        let end = self.byte(s.end.index()).max(start);
        start..end
    }
}

struct Converter<'a> {
    offsets: &'a CharOffsets,
    spans: HashMap<String, NodeSpan>,
    error: Option<(Range<usize>, String, Option<String>)>,
}

impl Converter<'_> {
    fn node(&mut self, n: &MarkedYamlOwned, pointer: String, key: Option<Range<usize>>) -> Value {
        let span = self.offsets.span(&n.span);
        let value = match &n.data {
            YamlDataOwned::Value(s) => self.scalar(s, &span),
            YamlDataOwned::Representation(raw, _, _) => Value::String(raw.clone()),
            YamlDataOwned::Sequence(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.node(item, format!("{pointer}/{i}"), None))
                    .collect(),
            ),
            YamlDataOwned::Mapping(map) => {
                let mut out = Map::new();
                for (k, v) in map {
                    let kspan = self.offsets.span(&k.span);
                    let name = match &k.data {
                        YamlDataOwned::Value(ScalarOwned::String(s)) => s.clone(),
                        YamlDataOwned::Value(ScalarOwned::Integer(i)) => i.to_string(),
                        YamlDataOwned::Value(ScalarOwned::FloatingPoint(f)) => f.to_string(),
                        YamlDataOwned::Value(ScalarOwned::Boolean(b)) => b.to_string(),
                        YamlDataOwned::Mapping(_) => {
                            // `name: {{ x }}` parses as a flow mapping used as a key.
                            self.fail_hint(
                                kspan.clone(),
                                "mapping keys must be plain scalars",
                                "templates must be quoted: `name: \"{{ source.name }}\"`",
                            );
                            continue;
                        }
                        _ => {
                            self.fail(kspan.clone(), "mapping keys must be plain scalars");
                            continue;
                        }
                    };
                    let child = format!("{pointer}/{}", escape_pointer(&name));
                    let value = self.node(v, child, Some(kspan));
                    out.insert(name, value);
                }
                Value::Object(out)
            }
            YamlDataOwned::Tagged(tag, _) => {
                self.fail(
                    span.clone(),
                    &format!("YAML tags (here `{tag}`) are not part of the mapping language"),
                );
                Value::Null
            }
            YamlDataOwned::Alias(_) | YamlDataOwned::BadValue => {
                self.fail(span.clone(), "this value could not be read");
                Value::Null
            }
        };
        // A collection's own span may be empty; its key still places it.
        let value_span = if span.is_empty() {
            key.clone().unwrap_or(span)
        } else {
            span
        };
        self.spans.insert(
            pointer,
            NodeSpan {
                key,
                value: value_span,
            },
        );
        value
    }

    fn scalar(&mut self, s: &ScalarOwned, span: &Range<usize>) -> Value {
        match s {
            ScalarOwned::Null => Value::Null,
            ScalarOwned::Boolean(b) => Value::Bool(*b),
            ScalarOwned::Integer(i) => Value::Number((*i).into()),
            ScalarOwned::FloatingPoint(f) => match Number::from_f64(f.into_inner()) {
                Some(n) => Value::Number(n),
                None => {
                    self.fail(span.clone(), "NaN and infinity are not valid numbers here");
                    Value::Null
                }
            },
            ScalarOwned::String(s) => Value::String(s.clone()),
        }
    }

    fn fail(&mut self, span: Range<usize>, message: &str) {
        if self.error.is_none() {
            self.error = Some((span, message.to_string(), None));
        }
    }

    fn fail_hint(&mut self, span: Range<usize>, message: &str, hint: &str) {
        if self.error.is_none() {
            self.error = Some((span, message.to_string(), Some(hint.to_string())));
        }
    }
}

/// A parser error as a diagnostic, with a hint for the usual causes.
fn syntax_diagnostic(path: &Path, text: &Arc<str>, at: usize, info: &str) -> Diagnostic {
    if info.contains("duplicated key") {
        // Name the key: it starts where the parser stopped.
        let rest = text.get(at..).unwrap_or("");
        let key: String = rest
            .chars()
            .take_while(|c| *c != ':' && *c != '\n')
            .collect::<String>()
            .trim()
            .trim_matches(['"', '\''])
            .to_string();
        let end = at + rest.find(':').unwrap_or(0);
        return Diagnostic::new(
            Code::DuplicateKey,
            path,
            text.clone(),
            at..end.max(at),
            "",
            format!("duplicate key `{key}`"),
        )
        .with_hint("each key may appear once in a mapping; remove one of them");
    }
    let hint = if info.contains("tab") {
        Some("YAML indents with spaces, not tabs")
    } else if info.contains("quoted scalar") {
        Some("a quoted string may not be closed: check that every `\"` or `'` has its partner")
    } else if info.contains("flow")
        || info.contains("did not find expected ',' or ']'")
        || info.contains("','")
    {
        Some("a `[` or `{` may not be closed")
    } else if info.contains("mapping values are not allowed") || info.contains("':'") {
        Some(
            "a value containing `: ` must be quoted, and so must templates (`\"{{ … }}\"`); check also for an unclosed `[` or `{` above",
        )
    } else if info.contains("indentation") {
        Some("check the indentation: keys of one mapping line up, with spaces")
    } else {
        None
    };
    let mut d = Diagnostic::new(
        Code::YamlSyntax,
        path,
        text.clone(),
        at..at,
        "",
        format!("invalid YAML: {info}"),
    );
    d.hint = hint.map(str::to_string);
    d
}

/// Escapes one JSON pointer segment (RFC 6901).
pub fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// A JSON pointer as a field path (`/orders/0/vatType` → `orders[0].vatType`).
pub use tripletex_openapi::field_path;
