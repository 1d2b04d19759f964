//! Orders, order lines and invoices: the required fields, VAT codes and price rules of the real
//! service, amounts computed with decimal arithmetic, and invoicing (which needs a bank account).

use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Map, Value, json};

use super::body::{
    EMPTY_LIST, NOT_NULL, Problems, Scope, WRONG_TYPE, body_ref, check_refs, check_version,
    is_null, store_fields,
};
use super::entities::{has_bank_account, outgoing_vat_allowed};
use super::error::{ApiError, Msg};
use super::store::{
    Db, Kind, Record, dec, flag, from_decimal, int, ref_id, ref_ids, reference, text,
};
use super::time;
use crate::support::to_decimal;

type Body = Map<String, Value>;

pub const NO_BANK_ACCOUNT: &str =
    "Faktura kan ikke opprettes før selskapet har registrert et bankkontonummer.";
const NOTHING_TO_INVOICE: &str = "Ordren har ingen ordrelinjer som kan faktureres.";
const EXCL_VAT: &str =
    "The unit price must be exclusive VAT since the unit price on the order is exclusive VAT.";
const INCL_VAT: &str =
    "The unit price must be inclusive VAT since the unit price on the order is inclusive VAT.";
/// Order fields this module writes itself.
const ORDER_SKIP: [&str; 3] = ["orderLines", "orderGroups", "preliminaryInvoice"];
const INVOICE_SKIP: [&str; 2] = ["orders", "voucher"];

fn money(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// Unit prices keep up to 10 decimals (Tripletex since 2.71.16).
fn unit_price(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(10, RoundingStrategy::MidpointAwayFromZero)
        .normalize()
}

/// A date field that must be there and be `YYYY-MM-DD`.
fn required_date(body: &Body, key: &str, scope: &Scope, problems: &mut Problems) {
    match body.get(key) {
        None | Some(Value::Null) => problems.validation.push(scope.msg(key, NOT_NULL)),
        Some(v) => check_date(v, key, scope, problems),
    }
}

fn check_date(v: &Value, key: &str, scope: &Scope, problems: &mut Problems) {
    if !v.is_null() && v.as_str().and_then(time::parse).is_none() {
        problems.mapping.push(scope.msg(key, WRONG_TYPE));
    }
}

/// Checks an order body for POST /order (or inline in POST /invoice).
pub fn check_new_order(db: &Db, body: &Body, scope: &Scope, problems: &mut Problems) {
    if body_ref(body, "customer").is_none() && is_null(body, "customer") {
        problems.validation.push(scope.msg("customer", NOT_NULL));
    }
    required_date(body, "orderDate", scope, problems);
    required_date(body, "deliveryDate", scope, problems);
    check_order_fields(db, body, scope, problems);
    check_lines(db, body, scope, problems);
}

fn check_order_fields(db: &Db, body: &Body, scope: &Scope, problems: &mut Problems) {
    check_refs(db, "Order", body, scope, &ORDER_SKIP, problems);
    if body
        .get("orderGroups")
        .and_then(Value::as_array)
        .is_some_and(|g| !g.is_empty())
    {
        problems
            .validation
            .push(scope.msg("orderGroups", "Ordregrupper støttes ikke i sandkassen."));
    }
}

fn check_lines(db: &Db, body: &Body, scope: &Scope, problems: &mut Problems) {
    let incl = flag(body, "isPrioritizeAmountsIncludingVat");
    let lines = body.get("orderLines").and_then(Value::as_array);
    for (i, line) in lines.into_iter().flatten().enumerate() {
        let Some(line) = line.as_object() else {
            continue;
        };
        let s = scope.item("orderLines", i);
        check_refs(db, "OrderLine", line, &s, &["order"], problems);
        let vat = body_ref(line, "vatType").and_then(|id| db.get(Kind::VatType, id));
        if vat.is_some_and(|v| !outgoing_vat_allowed(db, v)) {
            problems
                .validation
                .push(s.msg("vatType", super::body::BAD_VAT));
        }
        let has_excl = !is_null(line, "unitPriceExcludingVatCurrency");
        let has_incl = !is_null(line, "unitPriceIncludingVatCurrency");
        if !incl && has_incl && !has_excl {
            problems
                .validation
                .push(s.msg("unitPriceIncludingVatCurrency", EXCL_VAT));
        }
        if incl && has_excl && !has_incl {
            problems
                .validation
                .push(s.msg("unitPriceExcludingVatCurrency", INCL_VAT));
        }
    }
}

/// Stores a checked new order and its lines.
pub fn create_order(db: &mut Db, body: &Body) -> i64 {
    let customer = body_ref(body, "customer")
        .and_then(|id| db.get(Kind::Customer, id))
        .cloned();
    let mut rec = Record::new();
    if let Some(c) = &customer {
        // (?) The spec calls the customer's `discountPercentage` its default and the order's "the
        // default discount percentage for order lines": applied as read, customer → new order →
        // a line sent without `discount`. Unconfirmed on the real API; a client that states every
        // line's discount is right either way.
        for key in [
            "currency",
            "invoicesDueIn",
            "invoicesDueInType",
            "discountPercentage",
        ] {
            if let Some(v) = c.get(key) {
                rec.insert(key.into(), v.clone());
            }
        }
        rec.insert("customerName".into(), json!(text(c, "name")));
    }
    rec.entry("currency")
        .or_insert_with(|| reference(db.nok_id));
    rec.insert("ourContactEmployee".into(), reference(db.owner_employee_id));
    rec.insert("status".into(), json!("NOT_CHOSEN"));
    rec.insert("orderLineSorting".into(), json!("ID"));
    rec.insert("subscriptionDurationType".into(), json!("MONTHS"));
    rec.insert("subscriptionPeriodsOnInvoiceType".into(), json!("MONTHS"));
    rec.insert(
        "subscriptionInvoicingTimeInAdvanceOrArrears".into(),
        json!("ADVANCE"),
    );
    rec.insert("subscriptionInvoicingTimeType".into(), json!("DAYS"));
    store_fields(db, "Order", &mut rec, body, &ORDER_SKIP);
    if text(&rec, "number").is_empty() {
        rec.insert("number".into(), json!(db.next_order_number.to_string()));
        db.next_order_number += 1;
    }
    rec.insert("displayName".into(), json!(text(&rec, "number")));
    let id = db.insert(Kind::Order, rec);
    let lines = body
        .get("orderLines")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ids: Vec<Value> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| Some(reference(create_line(db, id, l.as_object()?, i))))
        .collect();
    if let Some(order) = db.get_mut(Kind::Order, id) {
        order.insert("orderLines".into(), Value::Array(ids));
    }
    id
}

fn create_line(db: &mut Db, order_id: i64, body: &Body, index: usize) -> i64 {
    let product = body_ref(body, "product")
        .and_then(|id| db.get(Kind::Product, id))
        .cloned();
    let order = db.get(Kind::Order, order_id).cloned().unwrap_or_default();
    let mut rec = Record::new();
    rec.insert("count".into(), json!(1));
    rec.insert("sortIndex".into(), json!(index));
    if let Some(p) = &product {
        let description = match text(p, "orderLineDescription") {
            "" => text(p, "name"),
            d => d,
        };
        rec.insert("description".into(), json!(description));
        rec.insert(
            "vatType".into(),
            p.get("vatType").cloned().unwrap_or(Value::Null),
        );
        rec.insert(
            "unitCostCurrency".into(),
            from_decimal(dec(p, "costExcludingVatCurrency")),
        );
        let (excl, incl) = (
            dec(p, "priceExcludingVatCurrency"),
            dec(p, "priceIncludingVatCurrency"),
        );
        rec.insert("unitPriceExcludingVatCurrency".into(), from_decimal(excl));
        if flag(&order, "isPrioritizeAmountsIncludingVat") && !incl.is_zero() {
            rec.insert("unitPriceIncludingVatCurrency".into(), from_decimal(incl));
        }
    }
    if ref_id(&rec, "vatType").is_none() {
        // No VAT type and no product: no VAT treatment (0%), as Tripletex falls back to.
        rec.insert("vatType".into(), reference(0));
    }
    if let Some(d) = order.get("discountPercentage") {
        rec.insert("discount".into(), d.clone());
    }
    store_fields(db, "OrderLine", &mut rec, body, &["order"]);
    rec.insert("order".into(), reference(order_id));
    rec.insert(
        "currency".into(),
        order.get("currency").cloned().unwrap_or(Value::Null),
    );
    compute_line(
        db,
        &mut rec,
        flag(&order, "isPrioritizeAmountsIncludingVat"),
    );
    db.insert(Kind::OrderLine, rec)
}

/// Derives the other unit price and the line amounts: count × unit price × (1 − discount/100),
/// VAT from the VAT type's percentage, each amount rounded to øre.
fn compute_line(db: &Db, rec: &mut Record, prices_incl_vat: bool) {
    let pct = ref_id(rec, "vatType")
        .and_then(|id| db.get(Kind::VatType, id))
        .map_or(Decimal::ZERO, |v| dec(v, "percentage"));
    let rate = Decimal::ONE + pct / Decimal::ONE_HUNDRED;
    let factor = (Decimal::ONE_HUNDRED - dec(rec, "discount")) / Decimal::ONE_HUNDRED;
    let count = dec(rec, "count");
    let (excl, incl) = if prices_incl_vat {
        // A line that only got a price excluding VAT (from its product) has it converted.
        let unit = match rec
            .get("unitPriceIncludingVatCurrency")
            .and_then(to_decimal)
        {
            Some(unit) => unit,
            None => unit_price(dec(rec, "unitPriceExcludingVatCurrency") * rate),
        };
        rec.insert("unitPriceIncludingVatCurrency".into(), from_decimal(unit));
        rec.insert(
            "unitPriceExcludingVatCurrency".into(),
            from_decimal(unit_price(unit / rate)),
        );
        let incl = money(count * unit * factor);
        (money(incl / rate), incl)
    } else {
        let unit = dec(rec, "unitPriceExcludingVatCurrency");
        rec.insert(
            "unitPriceIncludingVatCurrency".into(),
            from_decimal(unit_price(unit * rate)),
        );
        let excl = money(count * unit * factor);
        (excl, money(excl * rate))
    };
    rec.insert("amountExcludingVatCurrency".into(), from_decimal(excl));
    rec.insert("amountIncludingVatCurrency".into(), from_decimal(incl));
    rec.insert("displayName".into(), json!(text(rec, "description")));
}

/// PUT /order/{id}. Lines change only with `updateLinesAndGroups=true`, and then the lines sent
/// are the order's lines: those with an id are updated, those without are added, the rest go.
pub fn update_order(db: &mut Db, id: i64, body: &Body, update_lines: bool) -> Result<(), ApiError> {
    let mut rec = db
        .get(Kind::Order, id)
        .cloned()
        .ok_or_else(ApiError::not_found)?;
    check_version(&rec, body)?;
    let mut problems = Problems::default();
    let root = Scope::root();
    if body.contains_key("customer") && body_ref(body, "customer").is_none() {
        problems.validation.push(root.msg("customer", NOT_NULL));
    }
    for key in ["orderDate", "deliveryDate"] {
        match body.get(key) {
            Some(Value::Null) => problems.validation.push(root.msg(key, NOT_NULL)),
            Some(v) => check_date(v, key, &root, &mut problems),
            None => {}
        }
    }
    check_order_fields(db, body, &root, &mut problems);
    let existing = ref_ids(&rec, "orderLines");
    if update_lines {
        let mut merged = body.clone();
        merged.insert(
            "isPrioritizeAmountsIncludingVat".into(),
            json!(
                body.get("isPrioritizeAmountsIncludingVat")
                    .and_then(Value::as_bool)
                    .unwrap_or(flag(&rec, "isPrioritizeAmountsIncludingVat"))
            ),
        );
        check_lines(db, &merged, &root, &mut problems);
        for (i, line) in lines_of(body).iter().enumerate() {
            if let Some(line_id) = line.get("id").and_then(Value::as_i64)
                && !existing.contains(&line_id)
            {
                problems.validation.push(
                    root.item("orderLines", i)
                        .msg("id", format!("Objektet med id {line_id} finnes ikke.")),
                );
            }
        }
    }
    problems.into_result()?;
    store_fields(db, "Order", &mut rec, body, &ORDER_SKIP);
    if let Some(c) = ref_id(&rec, "customer").and_then(|c| db.get(Kind::Customer, c)) {
        rec.insert("customerName".into(), json!(text(c, "name")));
    }
    rec.insert("displayName".into(), json!(text(&rec, "number")));
    let incl = flag(&rec, "isPrioritizeAmountsIncludingVat");
    db.replace(Kind::Order, id, rec);
    if update_lines {
        let mut kept = Vec::new();
        for (i, line) in lines_of(body).iter().enumerate() {
            match line.get("id").and_then(Value::as_i64) {
                Some(line_id) => {
                    if let Some(mut l) = db.get(Kind::OrderLine, line_id).cloned() {
                        store_fields(db, "OrderLine", &mut l, line, &["order"]);
                        compute_line(db, &mut l, incl);
                        db.replace(Kind::OrderLine, line_id, l);
                    }
                    kept.push(line_id);
                }
                None => kept.push(create_line(db, id, line, i)),
            }
        }
        for gone in existing.iter().filter(|l| !kept.contains(l)) {
            db.remove(Kind::OrderLine, *gone);
        }
        if let Some(order) = db.get_mut(Kind::Order, id) {
            let refs = kept.into_iter().map(reference).collect();
            order.insert("orderLines".into(), Value::Array(refs));
        }
    }
    Ok(())
}

fn lines_of(body: &Body) -> Vec<Body> {
    body.get("orderLines")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|l| l.as_object().cloned()).collect())
        .unwrap_or_default()
}

/// DELETE /order/{id}: not once it has been invoiced.
pub fn delete_order(db: &mut Db, id: i64) -> Result<(), ApiError> {
    let lines = ref_ids(
        db.get(Kind::Order, id).ok_or_else(ApiError::not_found)?,
        "orderLines",
    );
    let invoiced = lines.iter().any(|l| {
        db.get(Kind::OrderLine, *l)
            .is_some_and(|l| flag(l, "isCharged"))
    });
    if invoiced {
        return Err(ApiError::validation(vec![Msg::general(
            "Ordren kan ikke slettes. Fakturaer er generert.",
        )]));
    }
    for line in lines {
        db.remove(Kind::OrderLine, line);
    }
    db.remove(Kind::Order, id);
    Ok(())
}

/// Lines of an order not invoiced yet.
pub(super) fn open_lines(db: &Db, order: &Record) -> Vec<i64> {
    ref_ids(order, "orderLines")
        .into_iter()
        .filter(|l| {
            db.get(Kind::OrderLine, *l)
                .is_some_and(|l| !flag(l, "isCharged"))
        })
        .collect()
}

fn bank_account_required(db: &Db) -> Result<(), ApiError> {
    if has_bank_account(db) {
        Ok(())
    } else {
        Err(ApiError::validation(vec![Msg::general(NO_BANK_ACCOUNT)]))
    }
}

/// Sending needs an address to send to: a customer invoiced by e-mail must have one.
fn check_can_send(db: &Db, customer: Option<i64>) -> Result<(), ApiError> {
    let Some(c) = customer.and_then(|c| db.get(Kind::Customer, c)) else {
        return Ok(());
    };
    let by_email = matches!(
        c.get("invoiceSendMethod").and_then(Value::as_str),
        None | Some("EMAIL")
    );
    if by_email && text(c, "invoiceEmail").is_empty() && text(c, "email").is_empty() {
        return Err(ApiError::validation(vec![Msg::new(
            "invoiceEmail",
            "Kunden mangler e-postadresse for utsendelse av faktura.",
        )]));
    }
    Ok(())
}

/// How an invoice is paid and sent: the query parameters of POST /invoice and
/// PUT /order/{id}/:invoice.
pub struct Payment {
    /// `sendToCustomer`, which defaults to true.
    pub send: bool,
    pub paid_amount: Option<Decimal>,
    pub payment_type_id: Option<i64>,
}

/// Everything an invoice is made from besides its order.
pub struct InvoiceRequest {
    pub invoice_date: i64,
    pub due_date: Option<i64>,
    pub send: bool,
    pub paid_amount: Option<Decimal>,
    pub payment_type_id: Option<i64>,
}

/// POST /invoice: the invoice with its one order, inline or by id.
pub fn create_invoice(db: &mut Db, body: &Body, pay: Payment) -> Result<i64, ApiError> {
    let root = Scope::root();
    let mut problems = Problems::default();
    required_date(body, "invoiceDate", &root, &mut problems);
    required_date(body, "invoiceDueDate", &root, &mut problems);
    if body_ref(body, "customer").is_none() {
        problems.validation.push(root.msg("customer", NOT_NULL));
    }
    check_refs(db, "Invoice", body, &root, &INVOICE_SKIP, &mut problems);
    let orders = body
        .get("orders")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    match orders.as_slice() {
        [] => problems.validation.push(root.msg("orders", EMPTY_LIST)),
        [order] => match (order.get("id").and_then(Value::as_i64), order.as_object()) {
            (Some(id), _) => match db.get(Kind::Order, id) {
                None => problems.validation.push(
                    root.item("orders", 0)
                        .msg("id", format!("Objektet med id {id} finnes ikke.")),
                ),
                Some(o) if open_lines(db, o).is_empty() => {
                    problems.validation.push(Msg::general(NOTHING_TO_INVOICE))
                }
                Some(_) => {}
            },
            (None, Some(o)) => check_new_order(db, o, &root.item("orders", 0), &mut problems),
            (None, None) => problems.mapping.push(root.msg("orders", WRONG_TYPE)),
        },
        _ => problems.validation.push(root.msg(
            "orders",
            "Only one order per invoice is supported at the moment.",
        )),
    }
    problems.into_result()?;
    bank_account_required(db)?;
    if pay.send {
        check_can_send(db, body_ref(body, "customer"))?;
    }
    let order_id = match orders
        .first()
        .map(|o| (o.get("id").and_then(Value::as_i64), o.as_object()))
    {
        Some((Some(id), _)) => id,
        Some((None, Some(o))) => create_order(db, o),
        _ => return Err(ApiError::validation(vec![root.msg("orders", EMPTY_LIST)])),
    };
    let date_of = |key: &str| body.get(key).and_then(Value::as_str).and_then(time::parse);
    let req = InvoiceRequest {
        invoice_date: date_of("invoiceDate").unwrap_or_default(),
        due_date: date_of("invoiceDueDate"),
        send: pay.send,
        paid_amount: pay
            .paid_amount
            .or_else(|| body.get("paidAmount").and_then(to_decimal)),
        payment_type_id: pay.payment_type_id,
    };
    Ok(invoice_order(db, order_id, Some(body), &req))
}

/// PUT /order/{id}/:invoice. The due date comes from the order's payment terms.
pub fn invoice_existing_order(
    db: &mut Db,
    order_id: i64,
    invoice_date: i64,
    pay: Payment,
) -> Result<i64, ApiError> {
    let order = db
        .get(Kind::Order, order_id)
        .ok_or_else(ApiError::not_found)?;
    bank_account_required(db)?;
    if open_lines(db, order).is_empty() {
        return Err(ApiError::validation(vec![Msg::general(NOTHING_TO_INVOICE)]));
    }
    if pay.send {
        check_can_send(db, ref_id(order, "customer"))?;
    }
    let req = InvoiceRequest {
        invoice_date,
        due_date: None,
        send: pay.send,
        paid_amount: pay.paid_amount,
        payment_type_id: pay.payment_type_id,
    };
    Ok(invoice_order(db, order_id, None, &req))
}

/// An invoice for seed data: no checks, no bank account needed.
pub fn seed_invoice(db: &mut Db, order_id: i64, req: &InvoiceRequest) -> i64 {
    invoice_order(db, order_id, None, req)
}

/// The due date from `invoicesDueIn` and `invoicesDueInType`.
pub fn due_date(invoice_date: i64, due_in: i64, due_in_type: &str) -> i64 {
    match due_in_type {
        "MONTHS" => time::add_months(invoice_date, due_in),
        "RECURRING_DAY_OF_MONTH" if due_in > 0 => time::next_day_of_month(invoice_date, due_in),
        _ => invoice_date + due_in,
    }
}

/// A KID: the invoice number with a MOD10 (Luhn) check digit.
fn kid(number: i64) -> String {
    let digits = number.to_string();
    let sum: u32 = digits
        .chars()
        .rev()
        .filter_map(|c| c.to_digit(10))
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 0 {
                let x = d * 2;
                x / 10 + x % 10
            } else {
                d
            }
        })
        .sum();
    format!("{digits}{}", (10 - sum % 10) % 10)
}

/// Creates the invoice for an order's open lines and marks them invoiced.
pub(super) fn invoice_order(
    db: &mut Db,
    order_id: i64,
    body: Option<&Body>,
    req: &InvoiceRequest,
) -> i64 {
    let order = db.get(Kind::Order, order_id).cloned().unwrap_or_default();
    let lines = open_lines(db, &order);
    let (mut excl, mut incl) = (Decimal::ZERO, Decimal::ZERO);
    for l in lines.iter().filter_map(|l| db.get(Kind::OrderLine, *l)) {
        excl += dec(l, "amountExcludingVatCurrency");
        incl += dec(l, "amountIncludingVatCurrency");
    }
    let currency = body
        .and_then(|b| body_ref(b, "currency"))
        .or_else(|| ref_id(&order, "currency"))
        .unwrap_or(db.nok_id);
    let rate = db
        .get(Kind::Currency, currency)
        .map_or(Decimal::ONE, |c| match dec(c, "_rate") {
            r if r.is_zero() => Decimal::ONE,
            r => r,
        });
    let requested = body
        .and_then(|b| b.get("invoiceNumber"))
        .and_then(Value::as_i64)
        .filter(|n| *n > 0);
    let number = requested.unwrap_or(db.next_invoice_number);
    db.next_invoice_number = db.next_invoice_number.max(number + 1);
    let due = req.due_date.unwrap_or_else(|| {
        // The order's own payment terms, else its customer's, else due at once.
        let terms = if order.contains_key("invoicesDueInType") {
            Some(&order)
        } else {
            ref_id(&order, "customer").and_then(|c| db.get(Kind::Customer, c))
        };
        let (n, t) = terms.map_or((0, "DAYS"), |r| {
            (int(r, "invoicesDueIn"), text(r, "invoicesDueInType"))
        });
        due_date(req.invoice_date, n, t)
    });
    let customer = body
        .and_then(|b| body_ref(b, "customer"))
        .map(reference)
        .or_else(|| order.get("customer").cloned())
        .unwrap_or(Value::Null);
    let payment_type = req
        .payment_type_id
        .or_else(|| {
            body.and_then(|b| b.get("paymentTypeId"))
                .and_then(Value::as_i64)
        })
        .unwrap_or(0);
    let paid = req.paid_amount.unwrap_or_default();
    let amount = money(incl * rate);
    let mut rec = Record::new();
    if let Some(b) = body {
        store_fields(db, "Invoice", &mut rec, b, &INVOICE_SKIP);
    }
    let fields = [
        ("invoiceNumber", json!(number)),
        ("invoiceDate", json!(time::format(req.invoice_date))),
        ("invoiceDueDate", json!(time::format(due))),
        ("customer", customer),
        ("kid", json!(kid(number))),
        ("orders", json!([reference(order_id)])),
        (
            "orderLines",
            Value::Array(lines.iter().map(|l| reference(*l)).collect()),
        ),
        (
            "deliveryDate",
            order.get("deliveryDate").cloned().unwrap_or(Value::Null),
        ),
        ("invoiceComment", json!(text(&order, "invoiceComment"))),
        ("currency", reference(currency)),
        ("amount", from_decimal(amount)),
        ("amountCurrency", from_decimal(incl)),
        ("amountExcludingVat", from_decimal(money(excl * rate))),
        ("amountExcludingVatCurrency", from_decimal(excl)),
        ("amountRoundoff", json!(0)),
        ("amountRoundoffCurrency", json!(0)),
        (
            "amountOutstanding",
            from_decimal(amount - money(paid * rate)),
        ),
        ("amountCurrencyOutstanding", from_decimal(incl - paid)),
        (
            "amountOutstandingTotal",
            from_decimal(amount - money(paid * rate)),
        ),
        ("amountCurrencyOutstandingTotal", from_decimal(incl - paid)),
        ("paidAmount", from_decimal(paid)),
        ("paymentTypeId", json!(payment_type)),
        ("isCharged", json!(true)),
        ("isApproved", json!(true)),
        ("isCreditNote", json!(false)),
        ("isCredited", json!(false)),
        ("creditedInvoice", Value::Null),
        ("voucher", reference(db.next_voucher_id)),
        ("ehfSendStatus", json!("DO_NOT_SEND")),
    ];
    db.next_voucher_id += 1;
    for (k, v) in fields {
        rec.insert(k.into(), v);
    }
    let id = db.insert(Kind::Invoice, rec);
    for l in &lines {
        db.update(Kind::OrderLine, *l, |r| {
            r.insert("isCharged".into(), json!(true));
        });
    }
    db.update(Kind::Order, order_id, |r| {
        r.insert("isClosed".into(), json!(true));
    });
    if req.send {
        db.sent_invoices.push(id);
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kid_numbers_carry_a_luhn_digit() {
        assert_eq!(kid(7992739871), "79927398713");
        assert_eq!(kid(1), "18");
    }

    #[test]
    fn due_dates_follow_the_payment_terms() {
        let d = |s| time::parse(s).unwrap_or_default();
        assert_eq!(
            time::format(due_date(d("2025-01-31"), 14, "DAYS")),
            "2025-02-14"
        );
        assert_eq!(
            time::format(due_date(d("2025-01-31"), 1, "MONTHS")),
            "2025-02-28"
        );
        assert_eq!(
            time::format(due_date(d("2025-01-05"), 20, "RECURRING_DAY_OF_MONTH")),
            "2025-01-20"
        );
    }
}
