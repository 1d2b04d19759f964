//! Reporting problems in one document: each diagnostic points at its place in the file, found
//! through the document's JSON pointer → span table.

use std::ops::Range;

use serde_json::Value;

use super::diagnostic::{Code, Diagnostic};
use super::yaml::{Document, field_path};

/// One document and the problems found in it so far.
pub struct Cx<'a> {
    pub doc: &'a Document,
    pub diags: Vec<Diagnostic>,
}

impl<'a> Cx<'a> {
    pub fn new(doc: &'a Document) -> Self {
        Cx {
            doc,
            diags: Vec::new(),
        }
    }

    /// A diagnostic at `span`, about the field at `pointer`.
    pub fn diag(
        &self,
        code: Code,
        pointer: &str,
        span: Range<usize>,
        message: String,
    ) -> Diagnostic {
        Diagnostic::new(
            code,
            &self.doc.path,
            self.doc.text.clone(),
            span,
            &field_path(pointer),
            message,
        )
    }

    /// An error at the value at `pointer`.
    pub fn error(&mut self, code: Code, pointer: &str, message: String) {
        let d = self.diag(code, pointer, self.doc.spans.value(pointer), message);
        self.diags.push(d);
    }

    /// An error at the value at `pointer`, with a hint.
    pub fn error_hint(&mut self, code: Code, pointer: &str, message: String, hint: Option<String>) {
        let mut d = self.diag(code, pointer, self.doc.spans.value(pointer), message);
        d.hint = hint;
        self.diags.push(d);
    }

    /// Points at `needle` inside the node at `pointer` when it can be found there.
    pub fn error_at_text(
        &mut self,
        code: Code,
        pointer: &str,
        needle: Option<&str>,
        message: String,
        hint: Option<String>,
    ) {
        self.error_at_offset(code, pointer, needle, None, message, hint);
    }

    /// Like `error_at_text`, searching from `offset` bytes into the value (quotes and escapes
    /// only ever move text to the right, so the offset in the template is a lower bound).
    pub fn error_at_offset(
        &mut self,
        code: Code,
        pointer: &str,
        needle: Option<&str>,
        offset: Option<usize>,
        message: String,
        hint: Option<String>,
    ) {
        let span = self.doc.spans.value(pointer);
        let span = needle
            .and_then(|n| {
                let text = self.doc.text.get(span.clone())?;
                let from = offset.unwrap_or(0).min(text.len());
                let from = (0..=from)
                    .rev()
                    .find(|i| text.is_char_boundary(*i))
                    .unwrap_or(0);
                let at = find_word(&text[from..], n)
                    .map(|i| i + from)
                    .or_else(|| find_word(text, n))?;
                Some(span.start + at..span.start + at + n.len())
            })
            .unwrap_or(span);
        let mut d = self.diag(code, pointer, span, message);
        d.hint = hint;
        self.diags.push(d);
    }
}

/// Finds `word` in `text` as a whole identifier, falling back to a plain substring.
fn find_word(text: &str, word: &str) -> Option<usize> {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(i) = text[from..].find(word) {
        let at = from + i;
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        if !before.is_some_and(is_ident) && !after.is_some_and(is_ident) {
            return Some(at);
        }
        from = at + word.len().max(1);
    }
    text.find(word)
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// The first line of a multi-line message that is not blank.
pub fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_string()
}
