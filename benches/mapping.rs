//! Mapping throughput, against the plain JSON round trip of the same records, in the same run.
//!
//! For each mapping: records/s on one core for (a) parse the API response as the connectors do
//! (`json::parse`) + apply the mapping + serialize the request body (the engine renders the
//! body straight to JSON text), and (b) parse + serialize the same bytes with plain serde_json.
//! The target is a ratio (a)/(b) of at least 0.5: mapping costs no more than one extra round trip.
//! Run: `cargo bench --bench mapping`.
//!
//! Instructions per record, which noisy shared machines do not disturb: `RBTX_BENCH_RECORDS=N`
//! maps and round-trips each record exactly N times instead of timing them, so under
//! `valgrind --tool=callgrind` the inclusive cost of `map_record` and `json_round_trip`, divided by
//! N, is the cost of one record (`scripts/mapping-instructions.sh`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rbtx::engine::{FixtureResolver, Outcome};
use rbtx::plan::{Pack, Plan, load_pack};
use rbtx::spec::{Direction, Document, Fixtures, TestFile};
use serde_json::{Value, json};

const ROUNDS: usize = 7;
const ROUND_TIME: Duration = Duration::from_millis(400);

/// One mapping on one input record.
struct Scenario<'p> {
    name: String,
    plan: &'p Plan,
    input: String,
    resolver: Arc<FixtureResolver>,
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let pack = load_pack(&[root.join("mappings")]);
    assert!(pack.diagnostics.is_empty(), "the pack does not validate");
    let counted: Option<usize> = std::env::var("RBTX_BENCH_RECORDS")
        .ok()
        .and_then(|n| n.parse().ok());
    let scenarios = scenarios(&pack, &root);
    let width = scenarios.iter().map(|s| s.name.len()).max().unwrap_or(0);
    println!(
        "mapping throughput, {ROUNDS} rounds of {} ms, one thread",
        ROUND_TIME.as_millis()
    );
    println!(
        "{:<width$} {:>10} {:>10} {:>6} {:>6} {:>6}",
        "mapping (input)", "map rec/s", "json rec/s", "min", "median", "max"
    );
    for Scenario {
        name,
        plan,
        input,
        resolver,
    } in &scenarios
    {
        // RBTX_BENCH_ONLY="r2t invoice" runs the scenarios whose name starts so (for profiling).
        if std::env::var("RBTX_BENCH_ONLY").is_ok_and(|only| !name.starts_with(&only)) {
            continue;
        }
        check_once(plan, input, resolver);
        if let Some(n) = counted {
            for _ in 0..n {
                std::hint::black_box(json_round_trip(input));
                std::hint::black_box(map_record(plan, input, resolver));
            }
            println!("{name} {n} records mapped and round-tripped");
            continue;
        }
        let mut ratios = Vec::new();
        let (mut map_rates, mut json_rates) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let j = rate(|| json_round_trip(input));
            let m = rate(|| map_record(plan, input, resolver));
            ratios.push(m / j);
            map_rates.push(m);
            json_rates.push(j);
        }
        ratios.sort_by(f64::total_cmp);
        map_rates.sort_by(f64::total_cmp);
        json_rates.sort_by(f64::total_cmp);
        println!(
            "{:<width$} {:>10.0} {:>10.0} {:>6.2} {:>6.2} {:>6.2}",
            name,
            map_rates[ROUNDS / 2],
            json_rates[ROUNDS / 2],
            ratios[0],
            ratios[ROUNDS / 2],
            ratios[ROUNDS - 1]
        );
    }
    println!("rates are medians; ratio = mapping rate / JSON round-trip rate (target >= 0.5)");
}

/// Every shipped mapping on the first sample record its tests create a record from, and on its
/// largest such sample when that is another one (the 120-line invoices); plus the invoice of 20
/// generated lines the throughput target was first measured on.
fn scenarios<'p>(pack: &'p Pack, root: &Path) -> Vec<Scenario<'p>> {
    let mut out = Vec::new();
    for file in rbtx::testing::discover(&[root.join("mappings")]) {
        let doc = Document::load(&file).expect("test file");
        let tf: TestFile = serde_json::from_value(doc.value).expect("test file");
        let dir = file.parent().expect("test file in a folder");
        let mapping = std::fs::canonicalize(dir.join(&tf.mapping)).expect("mapping file");
        let plan = pack
            .plans
            .iter()
            .find(|p| std::fs::canonicalize(&p.file).is_ok_and(|f| f == mapping))
            .expect("mapping in pack");
        let creates: Vec<_> = tf
            .cases
            .iter()
            .filter(|c| c.target.is_none() && !c.expect_skip && c.expect_error.is_none())
            .filter_map(|c| Some((c, c.source_file.as_ref()?)))
            .collect();
        let size = |f: &String| std::fs::metadata(dir.join(f)).map_or(0, |m| m.len());
        let first = creates.first().map(|(_, f)| *f);
        let largest = creates.iter().map(|(_, f)| *f).max_by_key(|f| size(f));
        let mut picked: Vec<&String> = first.into_iter().chain(largest).collect();
        picked.dedup();
        for sample in picked {
            let Some((case, _)) = creates.iter().find(|(_, f)| *f == sample) else {
                continue;
            };
            let stem = plan
                .file
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("?");
            out.push(Scenario {
                name: format!("{} {stem} ({sample})", direction(plan)),
                plan,
                input: std::fs::read_to_string(dir.join(sample)).expect("sample"),
                resolver: Arc::new(FixtureResolver::layered(&tf.fixtures, &case.fixtures)),
            });
        }
    }
    let invoice = pack
        .plans
        .iter()
        .find(|p| {
            p.direction == Direction::RackbeatToTripletex
                && p.entity == "invoice"
                && p.mode.as_deref() == Some("booked")
        })
        .expect("invoice-booked in pack");
    out.push(Scenario {
        name: "r2t invoice-booked (20 generated lines)".into(),
        plan: invoice,
        input: invoice_with_lines(20),
        resolver: Arc::new(fixtures()),
    });
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn direction(plan: &Plan) -> &'static str {
    match plan.direction {
        Direction::RackbeatToTripletex => "r2t",
        Direction::TripletexToRackbeat => "t2r",
    }
}

fn rate(mut f: impl FnMut() -> usize) -> f64 {
    let start = Instant::now();
    let mut n = 0usize;
    let mut sink = 0usize;
    while start.elapsed() < ROUND_TIME {
        for _ in 0..64 {
            sink = sink.wrapping_add(f());
            n += 1;
        }
    }
    std::hint::black_box(sink);
    n as f64 / start.elapsed().as_secs_f64()
}

// Not inlined, so a profiler can attribute each side's cost to one function.
#[inline(never)]
fn json_round_trip(input: &str) -> usize {
    let v: Value = serde_json::from_str(input).unwrap_or(Value::Null);
    serde_json::to_vec(&v).map(|b| b.len()).unwrap_or(0)
}

#[inline(never)]
fn map_record(plan: &Plan, input: &str, resolver: &Arc<FixtureResolver>) -> usize {
    let v = rbtx::json::parse(input).unwrap_or(Value::Null);
    let Some(source) = plan.select_owned(v) else {
        return 0;
    };
    match plan.apply_shared(&Arc::new(source), None, resolver.clone()) {
        Ok(a) => match a.outcome {
            // The engine writes the body as JSON text while rendering: that is its serialization.
            Outcome::Write(r) => r.body.map_or(0, |b| b.as_str().len()),
            _ => 0,
        },
        Err(_) => 0,
    }
}

fn check_once(plan: &Plan, input: &str, resolver: &Arc<FixtureResolver>) {
    let v: Value = serde_json::from_str(input).expect("sample JSON");
    let source = plan.select(&v).expect("select");
    match plan.apply(source, None, resolver.clone()) {
        Ok(a) => assert!(matches!(a.outcome, Outcome::Write(_)), "{:?}", a.outcome),
        Err(e) => panic!("{}: {e}", plan.file.display()),
    }
}

fn invoice_with_lines(n: usize) -> String {
    let lines: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "id": 900 + i, "child_id": format!("VARE-{}", 1000 + i % 7), "child_type": "product",
                "location_id": 1, "name": format!("Vare nr {i} – hylle"), "quantity": (i % 5) + 1,
                "line_price": 149.0 + i as f64 * 0.37, "discount_percentage": if i % 3 == 0 { 10 } else { 0 },
                "vat_percentage": 25, "variations": []
            })
        })
        .collect();
    json!({"customer_invoice": {
        "number": 20045, "heading": "Ordre 10042", "note": null, "currency": "NOK", "currency_rate": 1.0,
        "total_subtotal": 1192.0, "total_total": 1490.0, "is_booked": true,
        "booked_at": "2025-03-01T10:00:00+01:00", "due_date": "2025-03-15", "customer_id": 10001,
        "customer": {"number": 10001, "name": "Fjord Bygg AS", "vat_zone": "domestic"},
        "order_id": 10042, "address_street": "Strandveien 12", "address_city": "Bergen",
        "address_zipcode": "5003", "address_country": "NO", "lines": lines,
        "created_at": "2025-03-01T09:58:00+01:00", "updated_at": "2025-03-01T10:00:00+01:00",
        "self": "https://app.rackbeat.com/api/customer-invoices/20045"
    }})
    .to_string()
}

fn fixtures() -> FixtureResolver {
    let f: Fixtures = serde_json::from_value(json!({
        "refs": {
            "customer": {"10001": 501},
            "product": (0..7).map(|i| (format!("VARE-{}", 1000 + i), json!(7000 + i))).collect::<serde_json::Map<_, _>>()
        },
        "lookups": {
            "vat_type": {"3": 3, "31": 31, "33": 32, "5": 5, "6": 6, "52": 52},
            "unit": {"stk": 14},
            "currency": {"NOK": 1},
            "country": {"NO": 161}
        }
    }))
    .expect("fixtures");
    FixtureResolver::layered(&f, &Fixtures::default())
}
