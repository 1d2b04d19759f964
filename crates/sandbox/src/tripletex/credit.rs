//! Credit notes: `PUT /invoice/{id}/:createCreditNote` (the whole invoice reversed, on the
//! credit-note date, which must not be before the invoice's), and `invoiceIdIfIsCreditNote` of
//! `PUT /order/{id}/:invoice` (an order of negative lines invoiced as a credit note of another
//! invoice). Either way the new invoice has `isCreditNote` and `creditedInvoice`; a full credit
//! note marks the original `isCredited`.

use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

use super::error::{ApiError, Msg};
use super::sales::{self, InvoiceRequest};
use super::store::{Db, Kind, dec, flag, ref_id, ref_ids, reference, text};
use super::time;

const ALREADY_CREDITED: &str = "Fakturaen er allerede kreditert.";
const CREDIT_OF_CREDIT: &str = "En kreditnota kan ikke krediteres.";
const BEFORE_INVOICE: &str = "Kreditnotaens dato kan ikke være før fakturadatoen.";
const NOT_NEGATIVE: &str = "En kreditnota må ha et negativt beløp.";

/// `PUT /invoice/{id}/:createCreditNote?date=…`: a new invoice with the original's lines
/// negated, linked to it, with `comment` (the OpenAPI's parameter) as its comment; the original
/// becomes `isCredited`.
pub fn create_credit_note(
    db: &mut Db,
    invoice_id: i64,
    date: i64,
    comment: Option<&str>,
    send: bool,
) -> Result<i64, ApiError> {
    let original = db
        .get(Kind::Invoice, invoice_id)
        .cloned()
        .ok_or_else(ApiError::not_found)?;
    if flag(&original, "isCreditNote") {
        return Err(ApiError::validation(vec![Msg::general(CREDIT_OF_CREDIT)]));
    }
    if flag(&original, "isCredited") {
        return Err(ApiError::validation(vec![Msg::general(ALREADY_CREDITED)]));
    }
    let invoice_date = time::parse(text(&original, "invoiceDate")).unwrap_or_default();
    if date < invoice_date {
        return Err(ApiError::validation(vec![Msg::new("date", BEFORE_INVOICE)]));
    }
    let lines: Vec<Value> = ref_ids(&original, "orderLines")
        .into_iter()
        .filter_map(|id| db.get(Kind::OrderLine, id))
        .map(|l| {
            let mut line = Map::new();
            if let Some(p) = ref_id(l, "product") {
                line.insert("product".into(), reference(p));
            }
            line.insert("description".into(), json!(text(l, "description")));
            line.insert("count".into(), number(-dec(l, "count")));
            line.insert(
                "unitPriceExcludingVatCurrency".into(),
                number(dec(l, "unitPriceExcludingVatCurrency")),
            );
            line.insert("discount".into(), number(dec(l, "discount")));
            line.insert(
                "vatType".into(),
                reference(ref_id(l, "vatType").unwrap_or_default()),
            );
            Value::Object(line)
        })
        .collect();
    let day = json!(time::format(date));
    let mut order = Map::new();
    for key in ["customer", "currency"] {
        if let Some(v) = original.get(key) {
            order.insert(key.into(), v.clone());
        }
    }
    order.insert("orderDate".into(), day.clone());
    order.insert("deliveryDate".into(), day);
    order.insert("isPrioritizeAmountsIncludingVat".into(), json!(false));
    order.insert("orderLines".into(), Value::Array(lines));
    let order_id = sales::create_order(db, &order);
    let req = InvoiceRequest {
        invoice_date: date,
        due_date: Some(date),
        send,
        paid_amount: None,
        payment_type_id: None,
    };
    let id = sales::invoice_order(db, order_id, None, &req);
    link(db, id, invoice_id);
    if let Some(c) = comment {
        db.update(Kind::Invoice, id, |r| {
            r.insert("comment".into(), json!(c));
        });
    }
    db.update(Kind::Invoice, invoice_id, |r| {
        r.insert("isCredited".into(), json!(true));
    });
    Ok(id)
}

/// Before `PUT /order/{id}/:invoice?invoiceIdIfIsCreditNote=…` invoices the order: the credited
/// invoice exists and is no credit note itself, and the order's open lines sum to less than zero.
pub fn check_credit_order(db: &Db, order_id: i64, credited: i64) -> Result<(), ApiError> {
    let Some(original) = db.get(Kind::Invoice, credited) else {
        return Err(ApiError::validation(vec![Msg::new(
            "invoiceIdIfIsCreditNote",
            format!("Objektet med id {credited} finnes ikke."),
        )]));
    };
    if flag(original, "isCreditNote") {
        return Err(ApiError::validation(vec![Msg::general(CREDIT_OF_CREDIT)]));
    }
    let order = db
        .get(Kind::Order, order_id)
        .ok_or_else(ApiError::not_found)?;
    let total: Decimal = sales::open_lines(db, order)
        .into_iter()
        .filter_map(|l| db.get(Kind::OrderLine, l))
        .map(|l| dec(l, "amountExcludingVatCurrency"))
        .sum();
    if total >= Decimal::ZERO {
        return Err(ApiError::validation(vec![Msg::general(NOT_NEGATIVE)]));
    }
    Ok(())
}

/// Marks invoice `credit` as a credit note of `original`.
pub fn link(db: &mut Db, credit: i64, original: i64) {
    db.update(Kind::Invoice, credit, |r| {
        r.insert("isCreditNote".into(), json!(true));
        r.insert("creditedInvoice".into(), reference(original));
    });
}

fn number(d: Decimal) -> Value {
    super::store::from_decimal(d.normalize())
}
