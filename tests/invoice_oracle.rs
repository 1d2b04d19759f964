//! The 120-line invoice's goldens, checked line by line against the source from the mapping's rules
//! written out again by hand here, not from rbtx's output: `rbtx test` only compares a mapping
//! with its blessed golden, so this is what says the golden itself is right.
//!
//! The rules: product or BOM id from the test fixtures, count = quantity, unit price = line_price,
//! discount (0 when there is none), VAT type from `<zone>:<rate>` → code → id. The source is written
//! by `scripts/make-invoice-120.py`.

use std::path::PathBuf;

use serde_json::{Map, Value, json};

/// The ids the `.test.yaml` files' fixtures give the records the lines refer to.
const PRODUCT: [(&str, i64); 5] = [
    ("VARE-1001", 7001),
    ("VARE-3003", 7003),
    ("HYLLE/30 #2 B", 7099),
    ("VARE-2001", 7201),
    ("VARE-3001", 7301),
];
const BOM: [(&str, i64); 2] = [("SETT-10", 8001), ("SETT/20 #B", 8002)];
/// `<vat zone>:<rate>` → the Tripletex VAT code, as the mapping's lookup table has it.
const VAT_CODE: [(&str, &str); 6] = [
    ("domestic:25", "3"),
    ("domestic:15", "31"),
    ("domestic:12", "33"),
    ("domestic:0", "5"),
    ("eu:0", "52"),
    ("abroad:0", "52"),
];
/// VAT code → the VAT type's id in the fixtures.
const VAT_TYPE: [(&str, i64); 5] = [("3", 3), ("31", 31), ("33", 32), ("5", 5), ("52", 52)];
/// The customer's id in the fixtures.
const CUSTOMER_ID: i64 = 501;

fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings/rackbeat-to-tripletex/samples")
}

fn read(name: &str) -> Value {
    let path = samples().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn find<T: Copy>(table: &[(&str, T)], key: &str, what: &str) -> T {
    table
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no {what} for {key:?}"))
}

fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not a string: {}", v[field]))
}

/// A rate as the lookup's key writes it: `25` for 25 and 25.0, `12.5` for 12.5.
fn rate_text(rate: &Value) -> String {
    let r = rate
        .as_f64()
        .unwrap_or_else(|| panic!("vat_percentage {rate} is not a number"));
    if r.fract() == 0.0 {
        format!("{}", r as i64)
    } else {
        format!("{r}")
    }
}

/// A number that is zero, or none at all, is 0; any other value stays as it is.
fn or_zero(v: &Value) -> Value {
    match v.as_f64() {
        Some(n) if n != 0.0 => v.clone(),
        _ => json!(0),
    }
}

fn expected_line(invoice: &Value, line: &Value) -> Value {
    let child = text(line, "child_id");
    let id = if text(line, "child_type") == "lot" {
        find(&BOM, child, "BOM")
    } else {
        find(&PRODUCT, child, "product")
    };
    let zone = [&invoice["vat_zone"], &invoice["customer"]["vat_zone"]]
        .into_iter()
        .find_map(|z| z.as_str().filter(|z| !z.is_empty()))
        .unwrap_or("domestic");
    let code = find(
        &VAT_CODE,
        &format!("{zone}:{}", rate_text(&line["vat_percentage"])),
        "VAT code",
    );
    json!({
        "product": {"id": id},
        "description": line["name"],
        "count": line["quantity"],
        "unitPriceExcludingVatCurrency": line["line_price"],
        "discount": or_zero(&line["discount_percentage"]),
        "vatType": {"id": find(&VAT_TYPE, code, "VAT type")},
    })
}

/// The order both mappings send (invoice-booked inside its invoice, invoice-as-order alone).
fn expected_order(invoice: &Value) -> Value {
    let lines = invoice["lines"].as_array().expect("lines");
    assert_eq!(lines.len(), 120, "the sample has 120 lines");
    let date = &text(invoice, "booked_at")[..10];
    let reference = format!("Rackbeat invoice {}", invoice["number"]);
    let order_lines: Vec<Value> = lines.iter().map(|l| expected_line(invoice, l)).collect();
    json!({
        "customer": {"id": CUSTOMER_ID},
        "orderDate": date,
        "deliveryDate": date,
        "reference": reference,
        "currency": {"id": 1},
        "isPrioritizeAmountsIncludingVat": false,
        "orderLines": order_lines,
    })
}

fn source() -> Value {
    read("customer-invoice-120-lines.json")["customer_invoice"].clone()
}

/// The first difference between `want` and `got`, named by its path. Numbers compare by value
/// (149 and 149.0 are the same JSON number); everything else by type and value.
fn difference(want: &Value, got: &Value, at: &str) -> Option<String> {
    match (want, got) {
        (Value::Object(a), Value::Object(b)) => {
            let keys = |m: &Map<String, Value>| {
                let mut k: Vec<String> = m.keys().cloned().collect();
                k.sort();
                k
            };
            if keys(a) != keys(b) {
                return Some(format!("{at}: fields {:?} != {:?}", keys(a), keys(b)));
            }
            a.iter()
                .find_map(|(k, v)| difference(v, &b[k], &format!("{at}.{k}")))
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                return Some(format!("{at}: {} items != {}", a.len(), b.len()));
            }
            a.iter()
                .zip(b)
                .enumerate()
                .find_map(|(i, (x, y))| difference(x, y, &format!("{at}[{i}]")))
        }
        (Value::Number(a), Value::Number(b)) => {
            let same = match (a.as_i64(), b.as_i64()) {
                (Some(x), Some(y)) => x == y,
                _ => a.as_f64() == b.as_f64(),
            };
            (!same).then(|| format!("{at}: {a} != {b}"))
        }
        _ => (want != got).then(|| format!("{at}: {want} != {got}")),
    }
}

fn check(golden: &str, want: Value) {
    let got = read(golden);
    if let Some(d) = difference(&want, &got, golden) {
        panic!("the golden does not follow the mapping's rules: {d}");
    }
}

#[test]
fn the_booked_invoice_golden_follows_the_rules_line_by_line() {
    let invoice = source();
    let reference = format!("Rackbeat invoice {}", invoice["number"]);
    let date = &text(&invoice, "booked_at")[..10];
    check(
        "invoice-booked-120-lines.expected.json",
        json!([{
            "method": "POST",
            "path": "/invoice",
            "query": {"sendToCustomer": "false"},
            "body": {
                "invoiceDate": date,
                "invoiceDueDate": invoice["due_date"],
                "customer": {"id": CUSTOMER_ID},
                "comment": reference,
                "currency": {"id": 1},
                "orders": [expected_order(&invoice)],
            },
        }]),
    );
}

#[test]
fn the_invoice_as_order_golden_follows_the_rules_line_by_line() {
    check(
        "invoice-as-order-120-lines.expected.json",
        json!([{"method": "POST", "path": "/order", "body": expected_order(&source())}]),
    );
}

#[test]
fn numbers_compare_by_value_and_the_rest_by_type() {
    assert_eq!(difference(&json!(149), &json!(149.0), "n"), None);
    assert_eq!(
        difference(&json!(1), &json!("1"), "n").as_deref(),
        Some("n: 1 != \"1\"")
    );
    assert_eq!(
        difference(&json!({"a": [1, 2]}), &json!({"a": [1, 3]}), "x").as_deref(),
        Some("x.a[1]: 2 != 3")
    );
    assert!(difference(&json!({"a": 1}), &json!({"b": 1}), "x").is_some());
}
