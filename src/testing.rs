//! Mapping unit tests (`rbtx test`): a source record and fixtures in, the exact requests out.
//! Every request a Tripletex-bound mapping makes is also checked against Tripletex's spec.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use serde_json::Value;

use crate::engine::{Body, FixtureResolver, Outcome, Request};
use crate::plan::{Pack, Plan};
use crate::spec::{
    Code, Connection, Cx, Diagnostic, Document, ExpectedRequest, TestCase, TestFile, schema_check,
};

/// The result of one case.
#[derive(Debug)]
pub struct CaseResult {
    pub file: PathBuf,
    pub name: String,
    /// `None` when it passed.
    pub failure: Option<String>,
}

/// What `rbtx test` found.
#[derive(Debug, Default)]
pub struct Report {
    pub cases: Vec<CaseResult>,
    /// Test files that could not be read.
    pub diagnostics: Vec<Diagnostic>,
    /// Requests the cases produced for Tripletex, for callers that check them further.
    pub tripletex_requests: Vec<(String, Request)>,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.cases.iter().filter(|c| c.failure.is_some()).count()
    }

    /// Human-readable summary: one line per case, failures with their diff.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.cases {
            match &c.failure {
                None => out.push_str(&format!("ok    {} :: {}\n", c.file.display(), c.name)),
                Some(f) => {
                    out.push_str(&format!("FAIL  {} :: {}\n", c.file.display(), c.name));
                    for line in f.lines() {
                        out.push_str(&format!("      {line}\n"));
                    }
                }
            }
        }
        out.push_str(&format!(
            "\n{} passed, {} failed\n",
            self.cases.len() - self.failed(),
            self.failed()
        ));
        out
    }
}

/// Finds `*.test.yaml` files under `paths`.
pub fn discover(paths: &[PathBuf]) -> Vec<PathBuf> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        if crate::files::is_dir(p) {
            for e in crate::files::list(p).unwrap_or_default() {
                walk(&e, out);
            }
        } else if p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".test.yaml") || n.ends_with(".test.yml"))
        {
            out.push(p.to_path_buf());
        }
    }
    let mut out = Vec::new();
    for p in paths {
        walk(p, &mut out);
    }
    out.sort();
    out
}

static TEST_SCHEMA: LazyLock<Value> = LazyLock::new(crate::spec::test_schema);
static TEST_VALIDATOR: LazyLock<Option<jsonschema::Validator>> =
    LazyLock::new(|| jsonschema::validator_for(&TEST_SCHEMA).ok());

/// Runs every test file under `paths` against the compiled `pack`. With `bless`, cases that keep
/// their expectation in an `expect_file` get it rewritten from what the mapping produced.
pub fn run(paths: &[PathBuf], pack: &Pack, bless: bool) -> Report {
    let mut report = Report::default();
    for file in discover(paths) {
        let doc = match Document::load(&file) {
            Ok(d) => d,
            Err(d) => {
                report.diagnostics.push(*d);
                continue;
            }
        };
        let mut cx = Cx::new(&doc);
        let mut value = doc.value.clone();
        if schema_check(&mut cx, &TEST_SCHEMA, TEST_VALIDATOR.as_ref(), &mut value) {
            report.diagnostics.append(&mut cx.diags);
            continue;
        }
        let tf: TestFile = match serde_json::from_value(value) {
            Ok(t) => t,
            Err(e) => {
                cx.error(Code::InvalidValue, "", format!("invalid test file: {e}"));
                report.diagnostics.append(&mut cx.diags);
                continue;
            }
        };
        let dir = file.parent().unwrap_or(Path::new("."));
        let mapping_path = dir.join(&tf.mapping);
        let plan = find_plan(pack, &mapping_path);
        for case in &tf.cases {
            let failure = match plan {
                None => Some(format!(
                    "mapping {} did not compile (run `rbtx validate`)",
                    mapping_path.display()
                )),
                Some(plan) => {
                    run_case(plan, &tf, case, dir, bless, &mut report.tripletex_requests).err()
                }
            };
            report.cases.push(CaseResult {
                file: file.clone(),
                name: case.name.clone(),
                failure,
            });
        }
    }
    report
}

fn find_plan<'a>(pack: &'a Pack, path: &Path) -> Option<&'a Plan> {
    let want = crate::files::canonical(path)?;
    pack.plans
        .iter()
        .find(|p| crate::files::canonical(&p.file).as_ref() == Some(&want))
}

fn read_json(dir: &Path, rel: &str) -> Result<Value, String> {
    let p = dir.join(rel);
    let text = crate::files::read_to_string(&p)
        .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not valid JSON: {e}", p.display()))
}

/// Where in the mapping file a body field a request broke the spec with was written, as
/// `file:line:col`: `orders[0].orderLines[2].vatType.id` is `orderLines: { $for_each … }` under
/// the first order, then `vatType`, then `id`.
fn place_in_mapping(file: &Path, field: &str) -> Option<String> {
    if field.is_empty() || field.starts_with('?') {
        return None;
    }
    let doc = Document::load(file).ok()?;
    let mut pointer = "/body".to_string();
    let mut node = doc.value.get("body")?;
    for seg in field.split('.') {
        let (name, indexes) = match seg.find('[') {
            Some(i) => (&seg[..i], &seg[i..]),
            None => (seg, ""),
        };
        if let Some(v) = node.get("$value").filter(|_| node.get(name).is_none()) {
            pointer.push_str("/$value");
            node = v;
        }
        node = node.get(name)?;
        pointer.push('/');
        pointer.push_str(&name.replace('~', "~0").replace('/', "~1"));
        for index in indexes.split(']').filter_map(|i| i.strip_prefix('[')) {
            // A list written out item by item has the item; a `$for_each` is written once.
            if let (Some(items), Ok(i)) = (node.as_array(), index.parse::<usize>()) {
                node = items.get(i)?;
                pointer.push_str(&format!("/{i}"));
            }
        }
    }
    let at = doc.spans.key(&pointer).start;
    let before = doc.text.get(..at)?;
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Some(format!("{}:{line}:{col}", file.display()))
}

fn run_case(
    plan: &Plan,
    tf: &TestFile,
    case: &TestCase,
    dir: &Path,
    bless: bool,
    seen: &mut Vec<(String, Request)>,
) -> Result<(), String> {
    let source = match (&case.source, &case.source_file) {
        (Some(s), None) => s.clone(),
        (None, Some(f)) => {
            let raw = read_json(dir, f)?;
            plan.select(&raw)
                .cloned()
                .ok_or_else(|| format!("`source.select` finds nothing in {f}"))?
        }
        _ => return Err("give exactly one of `source` and `source_file`".into()),
    };
    let resolver = Arc::new(FixtureResolver::layered(&tf.fixtures, &case.fixtures));
    match (&case.key, &case.expect_get) {
        (Some(key), Some(want)) => {
            let got = plan
                .source_path(key)
                .map_err(|e| format!("source.get failed: {e}"))?;
            if got.as_deref() != Some(want.as_str()) {
                return Err(format!(
                    "source.get for key `{key}`: expected `{want}`, got `{}`",
                    got.unwrap_or_default()
                ));
            }
        }
        (None, None) => {}
        _ => return Err("`key` and `expect_get` go together".into()),
    }
    let result = plan.apply(&source, case.target.as_ref(), resolver.clone());
    if let (Some(want), Ok(applied)) = (&case.expect_find, &result) {
        let body = applied.body().map(Body::value).unwrap_or(Value::Null);
        let got = plan
            .find_request(&source, &body, resolver)
            .map_err(|e| format!("target.find failed: {e}"))?;
        let got = ExpectedRequest {
            method: got.method.to_string(),
            path: got.path.to_string(),
            query: got.query.to_map(),
            body: None,
        };
        if &got != want {
            return Err(format!("target.find: expected {want:?}, got {got:?}"));
        }
        if plan.direction.target() == Connection::Tripletex {
            let q: Vec<(&str, &str)> = got
                .query
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let violations = crate::tripletex_spec::check(&got.method, &got.path, &q, None);
            if !violations.is_empty() {
                let list: Vec<String> = violations.iter().map(|v| format!("  - {v}")).collect();
                return Err(format!(
                    "target.find breaks Tripletex's OpenAPI spec:\n{}",
                    list.join("\n")
                ));
            }
        }
    }

    if let Some(want) = &case.expect_error {
        return match result {
            Err(e) if e.to_string().contains(want.as_str()) => Ok(()),
            Err(e) => Err(format!("expected an error containing `{want}`, got: {e}")),
            Ok(a) => Err(format!(
                "expected an error containing `{want}`, got {:?}",
                a.outcome
            )),
        };
    }
    let applied = result.map_err(|e| format!("mapping failed: {e}"))?;
    if case.expect_skip {
        return match applied.outcome {
            Outcome::Skip { .. } => Ok(()),
            other => Err(format!("expected the record to be skipped, got {other:?}")),
        };
    }
    let mut requests: Vec<Request> = match &applied.outcome {
        Outcome::Write(r) => vec![r.clone()],
        Outcome::Keep { .. } => vec![],
        Outcome::Skip { reason } => return Err(format!("record was skipped: {reason}")),
    };
    // A create's `then` step, on a record the create answered with a placeholder id.
    if let (Outcome::Write(r), None) = (&applied.outcome, &case.target) {
        let body = r.body.as_ref().map(Body::value).unwrap_or(Value::Null);
        let created = serde_json::json!({ "id": "<id of the created record>" });
        let then = plan
            .then_request(
                &source,
                &body,
                &created,
                Arc::new(FixtureResolver::layered(&tf.fixtures, &case.fixtures)),
            )
            .map_err(|e| format!("target.then failed: {e}"))?;
        requests.extend(then);
    }
    let actual: Vec<ExpectedRequest> = requests
        .iter()
        .map(|r| ExpectedRequest {
            method: r.method.to_string(),
            path: r.path.to_string(),
            query: r.query.to_map(),
            body: r.body.as_ref().filter(|_| r.sends_body).map(Body::value),
        })
        .collect();

    for r in requests
        .iter()
        .filter(|_| plan.direction.target() == Connection::Tripletex)
    {
        let q: Vec<(&str, &str)> = r.query.pairs().collect();
        let body = r.body.as_ref().filter(|_| r.sends_body).map(Body::value);
        let violations = crate::tripletex_spec::check(r.method, &r.path, &q, body.as_ref());
        if !violations.is_empty() {
            let list: Vec<String> = violations
                .iter()
                .map(|v| match place_in_mapping(&plan.file, &v.field) {
                    Some(at) => format!("  - {at}: {v}"),
                    None => format!("  - {v}"),
                })
                .collect();
            return Err(format!(
                "{} {} breaks Tripletex's OpenAPI spec:\n{}",
                r.method,
                r.path,
                list.join("\n")
            ));
        }
        seen.push((plan.file.display().to_string(), r.clone()));
    }

    let expected: Vec<ExpectedRequest> = match (&case.expect, &case.expect_file) {
        (Some(e), None) => e.clone(),
        (None, Some(f)) => {
            if bless {
                let text = serde_json::to_string_pretty(&actual).map_err(|e| e.to_string())? + "\n";
                std::fs::write(dir.join(f), text).map_err(|e| format!("cannot write {f}: {e}"))?;
            }
            serde_json::from_value(read_json(dir, f)?)
                .map_err(|e| format!("{f} does not hold a list of requests: {e}"))?
        }
        _ => {
            return Err(
                "give exactly one of `expect`, `expect_file`, `expect_skip` and `expect_error`"
                    .into(),
            );
        }
    };
    let (mut expected, mut actual) = (expected, actual);
    for r in expected.iter_mut().chain(actual.iter_mut()) {
        if let Some(b) = r.body.as_mut() {
            normalize_numbers(b);
        }
    }
    if expected == actual {
        return Ok(());
    }
    let e = serde_json::to_string_pretty(&expected).unwrap_or_default();
    let a = serde_json::to_string_pretty(&actual).unwrap_or_default();
    let diff = similar::TextDiff::from_lines(&e, &a)
        .unified_diff()
        .context_radius(3)
        .header("expected", "actual")
        .to_string();
    Err(format!("requests differ:\n{diff}"))
}

/// `149.0` and `149` are the same JSON number; compare them as such.
fn normalize_numbers(v: &mut Value) {
    match v {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64())
                && f.fract() == 0.0
                && f.abs() < 9.0e15
            {
                *v = Value::from(f as i64);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(normalize_numbers),
        Value::Object(m) => m.values_mut().for_each(normalize_numbers),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_violation_is_placed_where_the_mapping_wrote_the_field() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("mappings/rackbeat-to-tripletex/invoice-booked.yaml");
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        // The third line of the first order: the loop is written once, so it is the loop's `id`.
        let at = place_in_mapping(&file, "orders[0].orderLines[2].vatType.id");
        let line = text
            .lines()
            .position(|l| l.trim_start().starts_with("vatType:"))
            .map(|i| i + 3)
            .unwrap_or(0);
        assert_eq!(at, Some(format!("{}:{line}:11", file.display())), "{text}");
        assert_eq!(place_in_mapping(&file, "?sendToCustomer"), None);
        assert_eq!(place_in_mapping(&file, "nothing.here"), None);
    }
}
