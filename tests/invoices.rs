//! Booked Rackbeat invoices through the worker into Tripletex, end to end, in both invoice modes
//! (`booked`: `POST /invoice` with its order inline, not sent; `as_order`: `POST /order`, not
//! invoiced), for a table of awkward invoices. For each case and mode, on fresh sandboxes: the
//! customer, products and BOM are made in Rackbeat, the invoice is made as a draft and booked, the
//! worker applies `invoice.booked`, and then
//! - Tripletex's totals excluding and including VAT equal Rackbeat's `total_subtotal` and
//!   `total_total` to the øre, and both equal the rounding rule written out below;
//! - every line carries its item's product, count, unit price, discount, and the VAT type of its
//!   group's rate in the customer's VAT zone, resolved to this company's VAT type id;
//! - the customer and each product were created once, before the invoice or order;
//! - no request was refused (the Tripletex sandbox checks every body against the official
//!   schema, so an accepted write is spec-valid), and the invoice was not sent to the customer;
//! - the same event delivered again writes nothing.
//!
//! The rounding rule (Rackbeat's is not documented; see `crates/sandbox/src/rackbeat/store.rs`): a line's
//! amount is quantity × unit price × (100 − discount) / 100 rounded to øre, its VAT is that amount
//! × rate rounded to øre, and the totals are the sums.

mod support;

use std::str::FromStr;

use rbtx::sandbox::rackbeat::Resource;
use rbtx::sandbox::tripletex::{Kind, RequestRecord};
use rbtx::store::{NewEvent, Store};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Value, json};
use support::worker::{Env, TENANT};

/// Product groups: number, name, VAT % for the domestic, eu and abroad zones.
const GROUPS: &[(i64, &str, i64, i64, i64)] = &[
    (1901, "Varer 25 %", 25, 0, 0),
    (1902, "Næringsmidler 15 %", 15, 0, 0),
    (1903, "Persontransport 12 %", 12, 0, 0),
    (1904, "Bøker 0 %", 0, 0, 0),
];

/// Products: number, name, group, sales price.
const PRODUCTS: &[(&str, &str, i64, f64)] = &[
    ("INV-HYLLE", "Hylle 80 cm", 1901, 149.0),
    ("INV/SKRUE #7", "Skrue 4×40 (løs)", 1901, 0.5),
    ("INV-KAFFE", "Kaffe 500 g", 1902, 89.9),
    ("INV-FRAKT", "Frakt Oslo → Tromsø", 1903, 450.0),
    ("INV-BOK", "Monteringsbok", 1904, 299.0),
];

/// The BOM (a Rackbeat lot), its group and its components.
const LOT: (&str, &str, i64, &[(&str, i64)]) = (
    "INV-SETT",
    "Hyllesett komplett",
    1901,
    &[("INV-HYLLE", 4), ("INV/SKRUE #7", 16)],
);

/// Customers: number, name, VAT zone, currency, general discount %.
const CUSTOMERS: &[(i64, &str, &str, &str, &str)] = &[
    (30001, "Fjordlager AS", "domestic", "NOK", "0"),
    (30002, "Nordsee Handel GmbH", "eu", "EUR", "0"),
    (30003, "Pacific Shelving Inc.", "abroad", "USD", "0"),
    (30004, "Rabattkunden AS", "domestic", "NOK", "10"),
];

/// Rackbeat VAT zone and rate → Norwegian outgoing VAT code (reference/tripletex/API-NOTES.md
/// §4.5): sales abroad at 0 % are exports (52).
fn vat_code(zone: &str, rate: Decimal) -> &'static str {
    let rate = rate.normalize().to_string();
    match (zone, rate.as_str()) {
        ("domestic", "25") => "3",
        ("domestic", "15") => "31",
        ("domestic", "12") => "33",
        ("domestic", "0") => "5",
        ("eu" | "abroad", "0") => "52",
        other => panic!("the table has no VAT code for {other:?}"),
    }
}

/// One invoice line as written in Rackbeat: an item (or a text line), quantity, unit price and
/// optional discount and VAT rate, as decimal text.
#[derive(Clone)]
struct Line {
    item: Option<&'static str>,
    name: Option<String>,
    quantity: &'static str,
    price: &'static str,
    discount: Option<&'static str>,
    vat: Option<&'static str>,
}

fn item(number: &'static str, quantity: &'static str, price: &'static str) -> Line {
    Line {
        item: Some(number),
        name: None,
        quantity,
        price,
        discount: None,
        vat: None,
    }
}

fn text(name: &str, quantity: &'static str, price: &'static str) -> Line {
    Line {
        item: None,
        name: Some(name.into()),
        quantity,
        price,
        discount: None,
        vat: None,
    }
}

impl Line {
    fn discount(mut self, d: &'static str) -> Line {
        self.discount = Some(d);
        self
    }

    fn vat(mut self, v: &'static str) -> Line {
        self.vat = Some(v);
        self
    }

    fn body(&self) -> Value {
        let mut b = json!({
            "quantity": json_number(self.quantity),
            "line_price": json_number(self.price),
        });
        if let Some(i) = self.item {
            b["item_id"] = json!(i);
        }
        if let Some(n) = &self.name {
            b["name"] = json!(n);
        }
        if let Some(d) = self.discount {
            b["discount_percentage"] = json_number(d);
        }
        if let Some(v) = self.vat {
            b["vat_percentage"] = json_number(v);
        }
        b
    }
}

struct Case {
    name: &'static str,
    customer: i64,
    lines: Vec<Line>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "prices with many decimals",
            customer: 30001,
            lines: vec![
                item("INV-HYLLE", "3", "99.995"),
                item("INV-KAFFE", "7", "0.3333"),
                item("INV-FRAKT", "1", "12.3456789"),
                item("INV/SKRUE #7", "13", "0.005"),
                item("INV-BOK", "1", "0.015"),
                item("INV-HYLLE", "1", "1234.5678"),
            ],
        },
        Case {
            name: "fractional and large quantities",
            customer: 30001,
            lines: vec![
                item("INV-HYLLE", "2.5", "19.99"),
                item("INV-KAFFE", "0.333", "45.55"),
                item("INV/SKRUE #7", "1000000", "0.0137"),
                item("INV-FRAKT", "12345.678", "1.11"),
                item("INV-BOK", "0.001", "999.99"),
            ],
        },
        Case {
            name: "zero and negative quantities (credit lines)",
            customer: 30001,
            lines: vec![
                item("INV-HYLLE", "-2", "149"),
                item("INV-KAFFE", "0", "12.34"),
                item("INV-FRAKT", "-1", "99.995").discount("12.5"),
                item("INV-HYLLE", "5", "149"),
                item("INV/SKRUE #7", "-0.5", "0.3333"),
            ],
        },
        Case {
            name: "discounts of 12.5 %, 33.33 %, 50 % and 100 %",
            customer: 30001,
            lines: vec![
                item("INV-HYLLE", "3", "99.99").discount("12.5"),
                item("INV-KAFFE", "7", "10.01").discount("33.33"),
                item("INV-FRAKT", "1", "0.03").discount("50"),
                item("INV-BOK", "11", "9.09").discount("33.33"),
                item("INV/SKRUE #7", "3", "0.3333").discount("33.33"),
                item("INV-HYLLE", "1", "100").discount("100"),
            ],
        },
        Case {
            name: "every VAT rate, a text note and a priced text line",
            customer: 30001,
            lines: vec![
                item("INV-HYLLE", "1", "149"),
                item("INV-KAFFE", "3", "24.9"),
                item("INV-FRAKT", "2", "450"),
                item("INV-BOK", "1", "299"),
                text("Merk: levert i to pakker 📦", "0", "0"),
                text("Ekspedisjonsgebyr", "1", "49.5").vat("25"),
            ],
        },
        Case {
            name: "a customer in the EU zone, in euro",
            customer: 30002,
            lines: vec![
                item("INV-HYLLE", "3", "14.995"),
                item("INV-KAFFE", "2", "3.3333").discount("12.5"),
                item("INV-FRAKT", "1", "40"),
                item("INV-SETT", "1", "89.95"),
            ],
        },
        Case {
            name: "a customer abroad, in US dollars",
            customer: 30003,
            lines: vec![
                item("INV-HYLLE", "1", "99.995"),
                item("INV-BOK", "4", "0.3333"),
                item("INV-KAFFE", "-1", "45"),
            ],
        },
        Case {
            name: "a BOM on a line, sold and credited",
            customer: 30001,
            lines: vec![
                item("INV-SETT", "2", "899").discount("10"),
                item("INV-HYLLE", "4", "149"),
                item("INV-SETT", "-1", "899.995"),
            ],
        },
        Case {
            name: "the customer's general discount, unless a line says otherwise",
            customer: 30004,
            lines: vec![
                item("INV-HYLLE", "3", "99.995"),
                item("INV-KAFFE", "2", "10").discount("0"),
                item("INV-FRAKT", "1", "33.33").discount("33.33"),
            ],
        },
        Case {
            name: "120 lines",
            customer: 30001,
            lines: many_lines(120),
        },
    ]
}

/// `n` lines cycling through every item, awkward quantities, prices and discounts.
fn many_lines(n: usize) -> Vec<Line> {
    const ITEMS: [&str; 6] = [
        "INV-HYLLE",
        "INV-KAFFE",
        "INV-FRAKT",
        "INV-BOK",
        "INV/SKRUE #7",
        "INV-SETT",
    ];
    const QUANTITIES: [&str; 7] = ["1", "-3", "0", "0.5", "7", "1000", "2.25"];
    const PRICES: [&str; 5] = ["0.3333", "99.995", "12.5", "1234.5678", "0.01"];
    const DISCOUNTS: [Option<&str>; 4] = [None, Some("12.5"), Some("33.33"), None];
    (0..n)
        .map(|i| {
            let mut l = item(
                ITEMS[i % ITEMS.len()],
                QUANTITIES[i % QUANTITIES.len()],
                PRICES[i % PRICES.len()],
            );
            l.name = Some(format!("Linje {:03}", i + 1));
            l.discount = DISCOUNTS[i % DISCOUNTS.len()];
            l
        })
        .collect()
}

/// A decimal written as text, as a JSON number.
fn json_number(text: &str) -> Value {
    serde_json::from_str(text).expect("a number")
}

/// A JSON number as an exact decimal, through its shortest text form.
fn dec(v: &Value) -> Decimal {
    let s = match v {
        Value::Number(n) => n.to_string(),
        other => panic!("not a number: {other}"),
    };
    Decimal::from_str(&s)
        .or_else(|_| Decimal::from_scientific(&s))
        .expect("a decimal")
}

fn parse(text: &str) -> Decimal {
    Decimal::from_str(text).expect("a decimal")
}

/// Rounded to øre, halves away from zero.
fn money(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// What one line should become: Rackbeat's defaults filled in, then the rule written out.
struct Expected {
    product: Option<&'static str>,
    count: Decimal,
    price: Decimal,
    discount: Decimal,
    vat_code: &'static str,
    net: Decimal,
    vat: Decimal,
}

fn expected(case: &Case) -> Vec<Expected> {
    let (_, _, zone, _, general_discount) = customer(case.customer);
    case.lines
        .iter()
        .map(|l| {
            let group = l
                .item
                .map(|i| PRODUCTS.iter().find(|p| p.0 == i).map_or(LOT.2, |p| p.2));
            let group_rate = group.map_or(0, |g| {
                let (_, _, domestic, eu, abroad) =
                    GROUPS.iter().find(|x| x.0 == g).copied().expect("a group");
                match zone {
                    "eu" => eu,
                    "abroad" => abroad,
                    _ => domestic,
                }
            });
            let rate = l.vat.map_or(Decimal::from(group_rate), parse);
            let discount = parse(l.discount.unwrap_or(general_discount));
            let (count, price) = (parse(l.quantity), parse(l.price));
            let net =
                money(count * price * (Decimal::ONE_HUNDRED - discount) / Decimal::ONE_HUNDRED);
            Expected {
                product: l.item,
                count,
                price,
                discount,
                vat_code: vat_code(zone, rate),
                net,
                vat: money(net * rate / Decimal::ONE_HUNDRED),
            }
        })
        .collect()
}

fn customer(number: i64) -> (i64, &'static str, &'static str, &'static str, &'static str) {
    CUSTOMERS
        .iter()
        .find(|c| c.0 == number)
        .copied()
        .expect("a customer of the table")
}

impl Env {
    /// The groups, items and customers of the tables, made in Rackbeat as a user would.
    fn rackbeat_catalogue(&self) {
        let rb = &self.sb.rackbeat;
        for &(number, name, domestic, eu, abroad) in GROUPS {
            rb.create(
                Resource::ProductGroup,
                json!({ "number": number, "name": name, "vat_domestic": domestic, "vat_eu": eu,
                        "vat_abroad": abroad, "vat_domestic_exempt": 0 }),
            )
            .expect("group");
        }
        for &(number, name, group, price) in PRODUCTS {
            rb.create(
                Resource::Product,
                json!({ "number": number, "name": name, "group": group, "sales_price": price }),
            )
            .expect("product");
        }
        let (number, name, group, components) = LOT;
        let lines: Vec<Value> = components
            .iter()
            .map(|(p, q)| json!({ "product_id": p, "quantity": q }))
            .collect();
        rb.create(
            Resource::Lot,
            json!({ "number": number, "name": name, "group": group, "sales_price": 899.0,
                    "lines": lines }),
        )
        .expect("lot");
        for &(customer, name, zone, currency, discount) in CUSTOMERS {
            rb.create(
                Resource::Customer,
                json!({ "number": customer, "name": name, "vat_zone": zone, "currency": currency,
                        "general_discount_percentage": json_number(discount) }),
            )
            .expect("customer");
        }
    }

    async fn deliver(&mut self, number: i64) {
        self.store
            .enqueue(NewEvent {
                tenant: TENANT.into(),
                entity: "invoice".into(),
                key: number.to_string(),
                event: "invoice.booked".into(),
                payload: json!({ "key_name": "number", "key": number.to_string() }),
                received_at: self.now,
            })
            .await
            .expect("enqueue");
        // One pass must do it: a refused or failed request would leave the event retried or
        // dead-lettered.
        self.worker.run_once(self.now).await.expect("run_once");
        self.now += 1_000;
        assert_eq!(self.store.queue_depth().await.expect("depth"), 0);
        let dead = self.store.list_dead_letters().await.expect("dlq");
        assert!(dead.is_empty(), "{dead:#?}");
    }

    fn writes(&self) -> Vec<RequestRecord> {
        self.sb
            .tripletex
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET" && !r.path.starts_with("/v2/token/"))
            .collect()
    }

    /// The one Tripletex record of `kind` whose `field` is `value`: its id.
    fn only_id(&self, kind: Kind, field: &str, value: Value, what: &str) -> Value {
        let found: Vec<Value> = self
            .sb
            .tripletex
            .records(kind)
            .into_iter()
            .filter(|r| r[field] == value)
            .collect();
        assert_eq!(found.len(), 1, "{what}: one {kind:?} with {field} {value}");
        found[0]["id"].clone()
    }

    fn customer_id(&self, number: i64) -> Value {
        self.only_id(Kind::Customer, "customerNumber", json!(number), "customer")
    }

    /// The only writes are the customer and each distinct item of the lines, once each, and
    /// then the invoice (`booked`, not sent) or the order (`as_order`).
    fn assert_dependencies_first(&self, case: &Case, mode: &str, what: &str) {
        let writes = self.writes();
        let (last, first) = writes.split_last().expect("writes");
        let (target, query) = match mode {
            "booked" => ("/v2/invoice", Some("sendToCustomer=false")),
            _ => ("/v2/order", None),
        };
        assert_eq!(
            (
                last.method.as_str(),
                last.path.as_str(),
                last.query.as_deref()
            ),
            ("POST", target, query),
            "{what}"
        );
        let mut items: Vec<&str> = case.lines.iter().filter_map(|l| l.item).collect();
        items.sort_unstable();
        items.dedup();
        let mut made: Vec<String> = first
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        made.sort();
        let mut want = vec!["POST /v2/customer".to_string()];
        want.extend(items.iter().map(|_| "POST /v2/product".to_string()));
        want.sort();
        assert_eq!(made, want, "{what}: dependencies first, once each");
        for i in items {
            self.only_id(Kind::Product, "number", json!(i), what);
        }
    }

    /// Line by line: product, count, unit price, discount, the company's VAT type id for the
    /// code of the group's rate in the customer's zone, and the amounts.
    fn assert_lines(&self, lines: &[Value], want: &[Expected], what: &str) {
        assert_eq!(lines.len(), want.len(), "{what}: every line");
        let vat_types = self.sb.tripletex.records(Kind::VatType);
        let vat_id = |code: &str| {
            vat_types
                .iter()
                .find(|v| v["number"] == json!(code))
                .map(|v| v["id"].clone())
                .expect("the company has the VAT code")
        };
        for (i, (got, want)) in lines.iter().zip(want).enumerate() {
            let at = format!("{what}, line {}", i + 1);
            let product = want.product.map_or(Value::Null, |n| {
                self.only_id(Kind::Product, "number", json!(n), &at)
            });
            assert_eq!(got["product"]["id"], product, "{at}: product");
            assert_eq!(dec(&got["count"]), want.count, "{at}: count");
            assert_eq!(
                dec(&got["unitPriceExcludingVatCurrency"]),
                want.price,
                "{at}: unit price"
            );
            assert_eq!(dec(&got["discount"]), want.discount, "{at}: discount");
            assert_eq!(
                got["vatType"]["id"],
                vat_id(want.vat_code),
                "{at}: VAT type"
            );
            assert_eq!(
                (
                    dec(&got["amountExcludingVatCurrency"]),
                    dec(&got["amountIncludingVatCurrency"])
                ),
                (want.net, want.net + want.vat),
                "{at}: amounts"
            );
        }
    }

    fn lines_of_order(&self, order_id: &Value) -> Vec<Value> {
        let mut lines: Vec<Value> = self
            .sb
            .tripletex
            .records(Kind::OrderLine)
            .into_iter()
            .filter(|l| &l["order"]["id"] == order_id)
            .collect();
        lines.sort_by_key(|l| l["sortIndex"].as_i64());
        lines
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booked_invoices_arrive_as_one_unsent_invoice_with_rackbeats_totals() {
    for case in cases() {
        run(&case, "booked").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booked_invoices_arrive_as_one_open_order_with_rackbeats_totals() {
    for case in cases() {
        run(&case, "as_order").await;
    }
}

async fn run(case: &Case, mode: &str) {
    let what = format!("{} ({mode})", case.name);
    let mut e = support::worker::env(mode, "invoice-worker").await;
    e.rackbeat_catalogue();
    let number = 90001;
    let lines: Vec<Value> = case.lines.iter().map(Line::body).collect();
    e.sb.rackbeat
        .create_draft_invoice(json!({ "number": number, "customer_id": case.customer,
                                      "lines": lines }))
        .expect("draft invoice");
    let invoice = e.sb.rackbeat.book_invoice(number as u64).expect("booked");
    let rackbeat_totals = (
        dec(&invoice["total_subtotal"]),
        dec(&invoice["total_total"]),
    );
    let want = expected(case);
    let net: Decimal = want.iter().map(|l| l.net).sum();
    let vat: Decimal = want.iter().map(|l| l.vat).sum();
    assert_eq!(
        rackbeat_totals,
        (net, net + vat),
        "{what}: Rackbeat's totals follow the rounding rule"
    );
    let invoices_before = e.sb.tripletex.count(Kind::Invoice);
    let orders_before = e.sb.tripletex.count(Kind::Order);

    e.deliver(number).await;

    // `rbtx reconcile` finds it in step, its total to the øre, and the period's sums equal.
    let r = e.reconcile(&["invoice"], false).await;
    let inv = r
        .entities
        .iter()
        .find(|x| x.entity == "invoice")
        .expect("the invoices are reconciled");
    assert_eq!(
        (inv.in_step, inv.differences.len()),
        (1, 0),
        "{what}: {:?}",
        inv.differences
    );
    let sums = r.periods.first().expect("the period's sums");
    assert_eq!(
        (sums.rackbeat.total.as_str(), sums.tripletex.total.as_str()),
        (
            format!("{:.2}", rackbeat_totals.0).as_str(),
            format!("{:.2}", rackbeat_totals.0).as_str()
        ),
        "{what}"
    );

    let tx = &e.sb.tripletex;
    let log = tx.requests();
    let refused: Vec<&RequestRecord> = log
        .iter()
        .filter(|r| r.status.is_none_or(|s| s >= 400))
        .collect();
    assert!(refused.is_empty(), "{what}: refused requests {refused:#?}");
    assert!(tx.sent_invoices().is_empty(), "{what}: nothing is sent");
    e.assert_dependencies_first(case, mode, &what);

    // One order for the invoice; in `booked` mode invoiced by exactly one new invoice.
    let reference = format!("Rackbeat invoice {number}");
    let orders: Vec<Value> = tx
        .records(Kind::Order)
        .into_iter()
        .filter(|o| o["reference"] == json!(reference))
        .collect();
    assert_eq!(orders.len(), 1, "{what}: one order");
    assert_eq!(tx.count(Kind::Order), orders_before + 1, "{what}");
    let order = &orders[0];
    assert_eq!(
        order["customer"]["id"],
        e.customer_id(case.customer),
        "{what}"
    );
    let lines = e.lines_of_order(&order["id"]);
    if mode == "booked" {
        assert_eq!(tx.count(Kind::Invoice), invoices_before + 1, "{what}");
        let found: Vec<Value> = tx
            .records(Kind::Invoice)
            .into_iter()
            .filter(|i| i["comment"] == json!(reference))
            .collect();
        assert_eq!(found.len(), 1, "{what}: one invoice");
        let inv = &found[0];
        assert_eq!(inv["orders"][0]["id"], order["id"], "{what}");
        assert_eq!(dec(&inv["amountRoundoffCurrency"]), Decimal::ZERO, "{what}");
        assert_eq!(
            (
                dec(&inv["amountExcludingVatCurrency"]),
                dec(&inv["amountCurrency"])
            ),
            rackbeat_totals,
            "{what}: Tripletex's invoice totals are Rackbeat's"
        );
    } else {
        assert_eq!(
            tx.count(Kind::Invoice),
            invoices_before,
            "{what}: no invoice"
        );
        assert_eq!(order["isClosed"], json!(false), "{what}");
        assert!(
            lines.iter().all(|l| l["isCharged"] == json!(false)),
            "{what}: not invoiced"
        );
    }
    let line_totals = lines
        .iter()
        .fold((Decimal::ZERO, Decimal::ZERO), |(n, g), l| {
            (
                n + dec(&l["amountExcludingVatCurrency"]),
                g + dec(&l["amountIncludingVatCurrency"]),
            )
        });
    assert_eq!(
        line_totals, rackbeat_totals,
        "{what}: the lines add up to Rackbeat's totals"
    );
    e.assert_lines(&lines, &want, &what);

    // Rackbeat delivers the event again: nothing more is written.
    let before = e.writes().len();
    e.deliver(number).await;
    assert_eq!(e.writes().len(), before, "{what}: nothing sent twice");
    assert_eq!(
        e.sb.tripletex.count(Kind::Order),
        orders_before + 1,
        "{what}"
    );
    let invoices = invoices_before + usize::from(mode == "booked");
    assert_eq!(e.sb.tripletex.count(Kind::Invoice), invoices, "{what}");
}
