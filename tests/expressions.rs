//! The native evaluator and minijinja provably agree: every expression of `tests/expressions/*.yaml`
//! on every record there, by minijinja, by the native evaluator, by the native body writer, and as
//! text inside text (`"<{{ e }}>"` and `"{{ '<' ~ (e) ~ '>' }}"`, the one text rule). An expression
//! that falls back to minijinja where the file says it stays native fails. Every shipped mapping
//! case is cross-checked the same way (values and body bytes) by
//! `tests/pack.rs::the_fast_path_agrees_with_minijinja_on_every_case`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rbtx::expr::template::{Uses, compile, compile_expr, native_on};
use rbtx::expr::{Out, RecordRt, Resolver, Scope, Template, Var, set_cross_check};
use serde_json::Value;

const VARS: &[&str] = &["source", "index"];

/// Bindings and API tables the expressions reach: unit numbers and VAT codes.
struct Fixtures;

impl Resolver for Fixtures {
    fn reference(&self, entity: &str, key: &str) -> Option<Value> {
        match (entity, key) {
            ("unit", "STK") => Some(Value::from(3)),
            ("unit", "7") => Some(Value::from(7)),
            _ => None,
        }
    }
    fn lookup(&self, table: &str, key: &str) -> Option<Value> {
        match (table, key) {
            ("vat_code", "25") => Some(Value::from("3")),
            ("vat_code", "0") => Some(Value::from("6")),
            ("vat_type", "3") => Some(Value::from(1)),
            ("vat_type", "6") => Some(Value::from(6)),
            _ => None,
        }
    }
}

fn rt() -> Arc<RecordRt> {
    Arc::new(RecordRt {
        resolver: Arc::new(Fixtures),
        statics: Arc::new(Vec::new()),
        missing: Mutex::new(Vec::new()),
        unlooked: Mutex::new(Vec::new()),
    })
}

/// Equal as JSON values, numbers by value (25 and 25.0 are one number).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn same_out(a: &Out, b: &Out) -> bool {
    match (a, b) {
        (Out::Absent, Out::Absent) => true,
        (Out::Value(x), Out::Value(y)) => same(x, y),
        _ => false,
    }
}

/// The text of a whole template (an interpolation or a `~`), or its error.
fn text(t: &Template, scope: &Scope, cross_check: bool) -> Result<String, String> {
    set_cross_check(cross_check);
    let r = t.eval(scope);
    set_cross_check(false);
    match r {
        Ok(Out::Value(Value::String(s))) => Ok(s),
        Ok(other) => Err(format!("not text: {other:?}")),
        Err(e) => Err(e.0),
    }
}

fn data_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/expressions");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    files.sort();
    assert!(!files.is_empty(), "no data files in {}", dir.display());
    files
}

#[derive(Default)]
struct Counts {
    expressions: usize,
    records: usize,
    evaluations: usize,
    native: usize,
}

/// Runs one data file; returns what it covered and every disagreement.
fn run_file(path: &Path, counts: &mut Counts) -> Vec<String> {
    let doc = match rbtx::spec::yaml::Document::load(path) {
        Ok(d) => d.value,
        Err(e) => return vec![format!("{}: {e:?}", path.display())],
    };
    let records: Vec<(String, Arc<Value>)> = doc["records"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), Arc::new(v.clone())))
                .collect()
        })
        .unwrap_or_default();
    let expressions = doc["expressions"].as_array().cloned().unwrap_or_default();
    counts.records += records.len();
    counts.expressions += expressions.len();
    let mut problems = Vec::new();
    let rt = rt();
    let index = Arc::new(Value::from(0));
    for entry in &expressions {
        let Some(src) = entry["expr"].as_str() else {
            problems.push(format!(
                "{}: an entry without `expr`: {entry}",
                path.display()
            ));
            continue;
        };
        let stays_native = entry["native"].as_bool().unwrap_or(true);
        let at = format!("{}: `{src}`", path.display());
        let whole = compile_expr(src, VARS, &mut Uses::default(), None);
        let interp = compile(
            &format!("<{{{{ {src} }}}}>"),
            VARS,
            &mut Uses::default(),
            None,
        );
        let concat = compile(
            &format!("{{{{ '<' ~ ({src}) ~ '>' }}}}"),
            VARS,
            &mut Uses::default(),
            None,
        );
        let (Ok(whole), Ok(interp), Ok(concat)) = (whole, interp, concat) else {
            problems.push(format!("{at} does not compile"));
            continue;
        };
        let mut fell_back = false;
        for (name, record) in &records {
            let at = format!("{at} on `{name}`");
            let vars = [("source", Var::root(record)), ("index", Var::root(&index))];
            let scope = Scope::new(&vars, &rt);
            let Some(e) = whole.evaluations(&scope) else {
                problems.push(format!(
                    "{at}: a plain path, not an expression; leave it out"
                ));
                break;
            };
            counts.evaluations += 1;
            match (&e.native, &e.minijinja) {
                (None, _) => fell_back = true,
                (Some(Ok(a)), Ok(b)) if same_out(a, b) => counts.native += 1,
                (Some(Err(_)), Err(_)) => counts.native += 1,
                (Some(a), b) => problems.push(format!("{at}: native {a:?}, minijinja {b:?}")),
            }
            if let (Some(native), Some(body)) = (&e.native, &e.native_body) {
                // The bytes are serde_json's for the native value, to the byte.
                let want = match native {
                    Ok(Out::Value(v)) => Ok(Some(serde_json::to_vec(v).unwrap_or_default())),
                    Ok(Out::Absent) => Ok(None),
                    Err(e) => Err(e.0.clone()),
                };
                let got = body.clone().map_err(|e| e.0);
                if got != want {
                    let show = |r: &Result<Option<Vec<u8>>, String>| {
                        r.clone()
                            .map(|b| b.map(|b| String::from_utf8_lossy(&b).into_owned()))
                    };
                    problems.push(format!(
                        "{at}: the body writer wrote {:?}, the value is {:?}",
                        show(&got),
                        show(&want)
                    ));
                }
            } else if e.native.is_some() != e.native_body.is_some() {
                problems.push(format!("{at}: one of value and body writer fell back"));
            }
            // Text inside text: the rule applied to minijinja's value, and both forms, natively
            // and cross-checked against minijinja.
            let want = e.minijinja.as_ref().map(|v| {
                let mut s = String::from("<");
                if let Out::Value(v) = v {
                    rbtx::expr::value::push_text(&mut s, v);
                }
                s.push('>');
                s
            });
            let forms = [
                ("interpolated", text(&interp, &scope, false)),
                ("interpolated, cross-checked", text(&interp, &scope, true)),
                ("with ~", text(&concat, &scope, false)),
                ("with ~, cross-checked", text(&concat, &scope, true)),
            ];
            for (form, got) in forms {
                match (&want, &got) {
                    (Ok(w), Ok(g)) if w == g => {}
                    (Err(_), Err(_)) => {}
                    _ => {
                        problems.push(format!("{at}: {form} text {got:?}, the rule says {want:?}"))
                    }
                }
            }
        }
        if native_on() {
            if stays_native && fell_back {
                problems.push(format!(
                    "{at} fell back to minijinja; it is expected to stay native"
                ));
            }
            if !stays_native && !fell_back {
                problems.push(format!(
                    "{at} stayed native on every record: drop its `native: false`"
                ));
            }
        }
    }
    problems
}

#[test]
fn the_evaluators_agree_on_every_expression_and_record() {
    let mut counts = Counts::default();
    let mut problems = Vec::new();
    for f in data_files() {
        problems.extend(run_file(&f, &mut counts));
    }
    println!(
        "{} expressions × {} records: {} evaluations, {} native",
        counts.expressions, counts.records, counts.evaluations, counts.native
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        counts.expressions >= 40,
        "only {} expressions",
        counts.expressions
    );
    if native_on() {
        assert!(
            counts.native * 10 >= counts.evaluations * 7,
            "too few native evaluations"
        );
    } else {
        assert_eq!(
            counts.native, 0,
            "RBTX_NATIVE_EVAL=0 left native evaluations on"
        );
    }
}

/// `RBTX_NATIVE_EVAL=0` turns the native evaluator off: the same harness, run again with it set,
/// finds no native evaluation and still agrees.
#[test]
fn the_switch_turns_the_native_evaluator_off() {
    if !native_on() {
        return;
    }
    let Ok(me) = std::env::current_exe() else {
        panic!("no path to this test binary");
    };
    let out = std::process::Command::new(me)
        .args([
            "--exact",
            "the_evaluators_agree_on_every_expression_and_record",
            "--nocapture",
        ])
        .env(rbtx::expr::template::NATIVE_SWITCH, "0")
        .output()
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed") && stdout.contains(", 0 native"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
