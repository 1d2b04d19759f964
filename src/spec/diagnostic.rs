//! Diagnostics: one problem, where it is (file:line:col and field path), a stable code and a hint.
//! Rendering for people goes through miette; `json` and `github` are for machines.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};
use serde::Serialize;

/// Stable problem codes. They are part of the contract: CI scripts may match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Code {
    Io,
    YamlSyntax,
    DuplicateKey,
    UnknownField,
    UnknownTargetField,
    UnknownSourceField,
    MissingField,
    WrongType,
    InvalidValue,
    UnsupportedVersion,
    BadTemplate,
    BadJsonpath,
    UnknownVariable,
    UnknownFunction,
    UnknownFilter,
    UnknownReference,
    UnknownLookup,
    BadDirective,
    NaturalKey,
    MissingSource,
    TriggerDirection,
    DuplicateTrigger,
    DuplicateMapping,
    ModeConflict,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Io => "io",
            Code::YamlSyntax => "yaml-syntax",
            Code::DuplicateKey => "duplicate-key",
            Code::UnknownField => "unknown-field",
            Code::UnknownTargetField => "unknown-target-field",
            Code::UnknownSourceField => "unknown-source-field",
            Code::MissingField => "missing-field",
            Code::WrongType => "wrong-type",
            Code::InvalidValue => "invalid-value",
            Code::UnsupportedVersion => "unsupported-version",
            Code::BadTemplate => "bad-template",
            Code::BadJsonpath => "bad-jsonpath",
            Code::UnknownVariable => "unknown-variable",
            Code::UnknownFunction => "unknown-function",
            Code::UnknownFilter => "unknown-filter",
            Code::UnknownReference => "unknown-reference",
            Code::UnknownLookup => "unknown-lookup",
            Code::BadDirective => "bad-directive",
            Code::NaturalKey => "natural-key",
            Code::MissingSource => "missing-source",
            Code::TriggerDirection => "trigger-direction",
            Code::DuplicateTrigger => "duplicate-trigger",
            Code::DuplicateMapping => "duplicate-mapping",
            Code::ModeConflict => "mode-conflict",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    /// Likely wrong, where what is known of the API is incomplete (Rackbeat's records): shown,
    /// and failing `validate` only with `--deny-warnings`; never stops start-up.
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One problem found while loading or compiling.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub file: PathBuf,
    /// The file's text, when there is one to point into.
    pub text: Option<Arc<str>>,
    /// Byte range in `text`.
    pub span: Range<usize>,
    /// The field path, e.g. `body.orderLines.count`; empty for the whole file.
    pub field: String,
    pub message: String,
    /// Text under the underline.
    pub label: Option<String>,
    /// What to do about it.
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(
        code: Code,
        file: &Path,
        text: Arc<str>,
        span: Range<usize>,
        field: &str,
        message: String,
    ) -> Diagnostic {
        Diagnostic {
            code,
            severity: Severity::Error,
            file: file.to_path_buf(),
            text: Some(text),
            span,
            field: field.to_string(),
            message,
            label: None,
            hint: None,
        }
    }

    /// A problem with no text to point into (an unreadable file).
    pub fn bare(code: Code, file: &Path, message: String) -> Diagnostic {
        Diagnostic {
            code,
            severity: Severity::Error,
            file: file.to_path_buf(),
            text: None,
            span: 0..0,
            field: String::new(),
            message,
            label: None,
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// 1-based line and column (in characters) of the start of the span.
    pub fn line_col(&self) -> (usize, usize) {
        position(self.text.as_deref().unwrap_or(""), self.span.start)
    }

    /// 1-based line and column of the end of the span.
    pub fn end_line_col(&self) -> (usize, usize) {
        position(self.text.as_deref().unwrap_or(""), self.span.end)
    }

    /// `file:line:col`.
    pub fn location(&self) -> String {
        let (l, c) = self.line_col();
        format!("{}:{l}:{c}", self.file.display())
    }
}

fn position(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// How `validate` prints what it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Source excerpts with the problem underlined.
    Human,
    /// A JSON array, one object per problem.
    Json,
    /// GitHub Actions workflow commands (annotations on the pull request).
    Github,
}

/// Sorts diagnostics by file and position so output is stable.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (&a.file, a.span.start, a.code, &a.message).cmp(&(
            &b.file,
            b.span.start,
            b.code,
            &b.message,
        ))
    });
}

/// Renders diagnostics in the chosen format. Human output ends with a summary line.
pub fn render(diags: &[Diagnostic], format: Format) -> String {
    match format {
        Format::Human => {
            let mut out = String::new();
            for d in diags {
                out.push_str(&render_human(d));
                out.push('\n');
            }
            out
        }
        Format::Json => {
            let items: Vec<serde_json::Value> = diags.iter().map(to_json).collect();
            let mut s = serde_json::to_string_pretty(&items).unwrap_or_default();
            s.push('\n');
            s
        }
        Format::Github => diags.iter().map(render_github).collect(),
    }
}

fn to_json(d: &Diagnostic) -> serde_json::Value {
    let (line, column) = d.line_col();
    let (end_line, end_column) = d.end_line_col();
    serde_json::json!({
        "file": d.file.display().to_string(),
        "line": line,
        "column": column,
        "end_line": end_line,
        "end_column": end_column,
        "severity": d.severity,
        "code": d.code,
        "field": d.field,
        "message": d.message,
        "hint": d.hint,
    })
}

fn render_github(d: &Diagnostic) -> String {
    let (line, col) = d.line_col();
    let (end_line, end_col) = d.end_line_col();
    let mut msg = d.message.clone();
    if !d.field.is_empty() {
        msg = format!("{msg} (at {})", d.field);
    }
    if let Some(h) = &d.hint {
        msg = format!("{msg}. Hint: {h}");
    }
    format!(
        "::{} file={},line={line},col={col},endLine={end_line},endColumn={end_col},title=rbtx {}::{}\n",
        d.severity.as_str(),
        gh_escape_prop(&d.file.display().to_string()),
        d.code,
        gh_escape_data(&msg)
    )
}

fn gh_escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn gh_escape_prop(s: &str) -> String {
    gh_escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// The miette view of one diagnostic.
struct Report<'a> {
    d: &'a Diagnostic,
    source: Option<NamedSource<String>>,
    headline: String,
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.headline)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.headline)
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.d
            .hint
            .as_ref()
            .map(|h| Box::new(h.clone()) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.source.as_ref()?;
        let span = SourceSpan::from(self.d.span.start..self.d.span.end.max(self.d.span.start));
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            self.d.label.clone(),
            span,
        ))))
    }
}

/// Renders one diagnostic for a person: location, code, message, the line with the problem
/// underlined, and the hint. No colour, fixed width, so golden files are stable.
pub fn render_human(d: &Diagnostic) -> String {
    let headline = if d.field.is_empty() {
        d.message.clone()
    } else {
        format!("{} (at `{}`)", d.message, d.field)
    };
    let source = d
        .text
        .as_ref()
        .map(|t| NamedSource::new(d.file.display().to_string(), t.to_string()));
    let report = Report {
        d,
        source,
        headline,
    };
    let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .with_width(160)
        .with_context_lines(1)
        // miette counts the header's column in bytes; the first line already gives file:line:col.
        .without_primary_span_start();
    let mut out = format!("{}: {}[{}]\n", d.location(), d.severity.as_str(), d.code);
    if handler.render_report(&mut out, &report).is_err() {
        out.push_str(&d.message);
        out.push('\n');
    }
    out
}

/// The closest candidate to `word`, when one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = levenshtein(&word.to_lowercase(), &c.to_lowercase());
        let limit = (c.chars().count().max(word.chars().count()) / 3).max(1);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Edit distance counting a swap of two neighbouring letters as one edit (`itme` → `item`).
fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typos_only() {
        assert_eq!(did_you_mean("boddy", ["body", "source"]), Some("body"));
        assert_eq!(did_you_mean("xyz", ["body", "source"]), None);
        assert_eq!(did_you_mean("itme", ["item", "source"]), Some("item"));
    }

    #[test]
    fn positions_count_characters() {
        assert_eq!(position("ab\næøå x", 10), (2, 5));
        assert_eq!(position("", 0), (1, 1));
    }
}
