//! The shipped mapping pack: it validates, its unit tests pass, every Tripletex request they make
//! satisfies Tripletex's official spec, and the committed schemas match the Rust types.

use std::path::{Path, PathBuf};

use rbtx::plan::load_pack;
use rbtx::spec::Direction;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn mappings() -> PathBuf {
    root().join("mappings")
}

#[test]
fn the_pack_validates() {
    let pack = load_pack(&[mappings()]);
    let rendered =
        rbtx::spec::diagnostic::render(&pack.diagnostics, rbtx::spec::diagnostic::Format::Human);
    assert!(pack.diagnostics.is_empty(), "{rendered}");
    // Every field the mappings read that Rackbeat's schema lacks is added there, with its reason.
    let warnings =
        rbtx::spec::diagnostic::render(&pack.warnings, rbtx::spec::diagnostic::Format::Human);
    assert!(pack.warnings.is_empty(), "{warnings}");
}

/// The Rackbeat schemas `validate` checks source fields against describe every Rackbeat sample
/// record in the pack (they were derived from them; an edited sample must keep to them).
#[test]
fn every_rackbeat_sample_fits_its_schema() {
    let resources = [
        ("product", "products"),
        ("lot", "lots"),
        ("customer", "customers"),
        ("supplier", "suppliers"),
        ("customer_invoice", "customer-invoices"),
    ];
    let samples = mappings().join("rackbeat-to-tripletex/samples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&samples).expect("samples") {
        let path = entry.expect("entry").path();
        let Ok(doc) = serde_json::from_str::<serde_json::Value>(
            &std::fs::read_to_string(&path).unwrap_or_default(),
        ) else {
            continue;
        };
        for (key, resource) in resources {
            let Some(record) = doc.get(key) else { continue };
            let schema: serde_json::Value = serde_json::from_str(
                rbtx::files::schema(&format!("rackbeat/{resource}.schema.json"))
                    .expect("a schema per resource"),
            )
            .expect("JSON");
            let v = jsonschema::validator_for(&schema).expect("a valid schema");
            let errors: Vec<String> = v.iter_errors(record).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{}: {errors:?}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} samples checked");
}

#[test]
fn the_pack_has_every_entity_in_both_directions() {
    let pack = load_pack(&[mappings()]);
    let mut have: Vec<(Direction, String, Option<String>)> = pack
        .plans
        .iter()
        .map(|p| (p.direction, p.entity.clone(), p.mode.clone()))
        .collect();
    have.sort();
    let r2t = Direction::RackbeatToTripletex;
    let t2r = Direction::TripletexToRackbeat;
    let mut want = vec![
        (r2t, "bom".to_string(), None),
        (r2t, "credit_note".to_string(), Some("booked".to_string())),
        (r2t, "customer".to_string(), None),
        (r2t, "invoice".to_string(), Some("as_order".to_string())),
        (r2t, "invoice".to_string(), Some("booked".to_string())),
        (
            r2t,
            "partial_credit_note".to_string(),
            Some("booked".to_string()),
        ),
        (r2t, "product".to_string(), None),
        (r2t, "supplier".to_string(), None),
        (t2r, "customer".to_string(), None),
        (t2r, "employee".to_string(), None),
        (t2r, "payment_term".to_string(), None),
        (t2r, "product".to_string(), None),
        (t2r, "supplier".to_string(), None),
    ];
    want.sort();
    assert_eq!(have, want);
}

#[test]
fn every_mapping_has_tests_and_they_pass() {
    let pack = load_pack(&[mappings()]);
    let report = rbtx::testing::run(&[mappings()], &pack, false);
    assert!(report.diagnostics.is_empty(), "{:?}", report.diagnostics);
    assert_eq!(report.failed(), 0, "{}", report.render());
    for plan in &pack.plans {
        let cases = report
            .cases
            .iter()
            .filter(|c| c.file == plan.file.with_extension("test.yaml"))
            .count();
        assert!(
            cases >= 3,
            "{} has {cases} test cases; each mapping needs at least 3",
            plan.file.display()
        );
    }
}

#[test]
fn every_tripletex_request_in_the_tests_is_spec_valid() {
    // rbtx::testing fails a case whose request breaks the spec; this checks the coverage: each
    // Tripletex-bound mapping actually produced requests that went through that check.
    let pack = load_pack(&[mappings()]);
    let report = rbtx::testing::run(&[mappings()], &pack, false);
    for plan in pack
        .plans
        .iter()
        .filter(|p| p.direction == Direction::RackbeatToTripletex)
    {
        let file = plan.file.display().to_string();
        let n = report
            .tripletex_requests
            .iter()
            .filter(|(f, _)| *f == file)
            .count();
        assert!(n > 0, "{file}: no test produced a Tripletex request");
        for (_, r) in report.tripletex_requests.iter().filter(|(f, _)| *f == file) {
            let q: Vec<(&str, &str)> = r.query.pairs().collect();
            let body = r
                .body
                .as_ref()
                .filter(|_| r.sends_body)
                .map(rbtx::engine::Body::value);
            assert_eq!(
                rbtx::tripletex_spec::check(r.method, &r.path, &q, body.as_ref()),
                vec![]
            );
        }
    }
}

#[test]
fn a_body_with_an_unknown_field_is_rejected_by_the_spec_check() {
    let body = serde_json::json!({"name": "x", "numbr": "1"});
    let v = rbtx::tripletex_spec::check("POST", "/product", &[], Some(&body));
    assert_eq!(v.len(), 1);
    assert!(v[0].message.contains("`numbr`"), "{v:?}");
}

fn committed(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

#[test]
fn committed_schemas_match_the_rust_types() {
    let hint = "regenerate with `cargo run -- schema > schemas/mapping.schema.json`, \
                `cargo run -- schema test > schemas/mapping-test.schema.json` and \
                `cargo run -- schema tenants > schemas/tenants.schema.json`";
    assert!(
        committed(&root().join("schemas/mapping.schema.json")) == rbtx::spec::mapping_schema(),
        "{hint}"
    );
    assert!(
        committed(&root().join("schemas/mapping-test.schema.json")) == rbtx::spec::test_schema(),
        "{hint}"
    );
    assert!(
        committed(&root().join("schemas/tenants.schema.json"))
            == rbtx::runtime::accounts::tenants_schema(),
        "{hint}"
    );
}

#[test]
fn every_shipped_yaml_file_starts_with_the_schema_modeline() {
    let mut files = rbtx::plan::discover(&[mappings()]).unwrap_or_default();
    files.extend(rbtx::testing::discover(&[mappings()]));
    assert!(files.len() >= 22, "{files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        let first = text.lines().next().unwrap_or("");
        let schema = if f.to_string_lossy().contains(".test.") {
            "mapping-test.schema.json"
        } else {
            "mapping.schema.json"
        };
        assert!(
            first.starts_with("# yaml-language-server: $schema=") && first.ends_with(schema),
            "{} must start with the modeline for {schema}",
            f.display()
        );
    }
}

#[test]
fn the_fast_path_agrees_with_minijinja_on_every_case() {
    // Every expression with a native evaluation is also evaluated by minijinja; any difference
    // fails the case.
    rbtx::expr::set_cross_check(true);
    let pack = load_pack(&[mappings()]);
    let report = rbtx::testing::run(&[mappings()], &pack, false);
    assert_eq!(report.failed(), 0, "{}", report.render());
}

#[test]
fn most_pack_expressions_take_the_fast_path() {
    use rbtx::expr::Template;
    use rbtx::plan::{Node, NodeKind};
    fn count(t: &Template, fast: &mut usize, slow: &mut Vec<String>, at: &str) {
        match t {
            Template::Expr { fast: Some(_), .. } => *fast += 1,
            Template::Expr { fast: None, .. } => slow.push(at.to_string()),
            Template::Interp(parts) => {
                for p in parts {
                    if let rbtx::expr::Part::Value(t) = p {
                        count(t, fast, slow, at);
                    }
                }
            }
            _ => {}
        }
    }
    fn walk(n: &Node, fast: &mut usize, slow: &mut Vec<String>, at: &str) {
        if let Some(w) = &n.when {
            count(w, fast, slow, at);
        }
        match &n.kind {
            NodeKind::Value(t) => count(t, fast, slow, at),
            NodeKind::Object(fields) => fields
                .iter()
                .for_each(|(k, n)| walk(n, fast, slow, &format!("{at}.{k}"))),
            NodeKind::List(items) => items.iter().for_each(|n| walk(n, fast, slow, at)),
            NodeKind::ForEach { item, .. } => walk(item, fast, slow, at),
        }
    }
    let pack = load_pack(&[mappings()]);
    let (mut fast, mut slow) = (0, Vec::new());
    for p in &pack.plans {
        for (k, n) in &p.body {
            walk(
                n,
                &mut fast,
                &mut slow,
                &format!("{}:{k}", p.file.display()),
            );
        }
    }
    let share = fast as f64 / (fast + slow.len()) as f64;
    assert!(
        share >= 0.8,
        "only {fast} of {} expressions are fast; slow: {slow:#?}",
        fast + slow.len()
    );
}

/// README's list of filters is the registry's, row for row: same names, same order, same words.
#[test]
fn readme_lists_every_filter_of_the_registry() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap_or_default();
    let (start, end) = (
        "<!-- filters: from src/expr/filters.rs -->\n",
        "<!-- end filters -->",
    );
    let listed = readme
        .split_once(start)
        .and_then(|(_, rest)| rest.split_once(end))
        .map(|(table, _)| table);
    let want = rbtx::expr::filters::markdown_table();
    assert_eq!(
        listed,
        Some(want.as_str()),
        "README's filter list (between `{}` and `{end}`) differs from the registry; it should read:\n{want}",
        start.trim()
    );
}

/// Every pair of opposite mappings, there and back on the sandboxes' seed: what does not come back
/// equal is listed in the mapping with its reason, and every listed loss still happens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_round_trip_loses_only_what_the_mappings_declare() {
    let pack = load_pack(&[mappings()]);
    let report = rbtx::round_trip::run(std::sync::Arc::new(pack))
        .await
        .expect("the round trip runs");
    let checked: Vec<&str> = report.checked.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        checked,
        ["customer", "product", "supplier"],
        "{}",
        report.render()
    );
    assert!(
        report.checked.iter().all(|(_, n)| *n > 0),
        "{}",
        report.render()
    );
    assert!(report.passed(), "{}", report.render());
    assert!(report.unseen.is_empty(), "{}", report.render());
}

/// The same with the customer mapping's list of losses taken away: each loss is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undeclared_round_trip_loss_is_named_with_both_values() {
    let mut pack = load_pack(&[mappings()]);
    for plan in &mut pack.plans {
        if plan.direction == Direction::RackbeatToTripletex && plan.entity == "customer" {
            plan.round_trip_losses.clear();
        }
    }
    let report = rbtx::round_trip::run(std::sync::Arc::new(pack))
        .await
        .expect("the round trip runs");
    let fields: std::collections::BTreeSet<&str> =
        report.undeclared().map(|l| l.field.as_str()).collect();
    assert_eq!(
        fields,
        ["invoiceEmail", "invoicesDueIn", "invoicesDueInType"].into(),
        "{}",
        report.render()
    );
    assert!(
        report.render().contains("`invoiceEmail` is \"faktura@"),
        "{}",
        report.render()
    );
}
