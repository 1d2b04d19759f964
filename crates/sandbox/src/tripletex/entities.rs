//! Writes to customers, suppliers, products and ledger accounts: the rules the real service
//! enforces beyond its schema (required names, unique numbers, valid VAT codes and bank account
//! numbers), then the stored record with its derived read-only fields.

use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

use super::body::{
    BAD_VAT, EMPTY_LIST, NOT_NULL, Problems, REQUIRED, Scope, blank, body_ref, check_refs,
    check_version, finish_address, store_fields,
};
use super::error::{ApiError, Msg};
use super::store::{Db, Kind, Record, dec, flag, from_decimal, int, ref_id, reference, text};

type Body = Map<String, Value>;

/// The number field of a customer or supplier, and the first number handed out.
fn number_field(kind: Kind) -> (&'static str, i64, &'static str) {
    match kind {
        Kind::Supplier => ("supplierNumber", 20_000, "Leverandørnummeret"),
        _ => ("customerNumber", 10_000, "Kundenummeret"),
    }
}

/// POST /customer and POST /supplier.
pub fn create_party(db: &mut Db, kind: Kind, body: &Body) -> Result<i64, ApiError> {
    let mut problems = Problems::default();
    if blank(body, "name") {
        problems
            .validation
            .push(Scope::root().msg("name", REQUIRED));
    }
    check_party(db, kind, None, body, &mut problems);
    problems.into_result()?;

    let mut rec = Record::new();
    rec.insert("language".into(), json!("NO"));
    rec.insert("currency".into(), reference(db.nok_id));
    if kind == Kind::Customer {
        rec.insert("isCustomer".into(), json!(true));
        rec.insert("invoiceSendMethod".into(), json!("EMAIL"));
        rec.insert("emailAttachmentType".into(), json!("LINK"));
        rec.insert("invoicesDueIn".into(), json!(14));
        rec.insert("invoicesDueInType".into(), json!("DAYS"));
    } else {
        rec.insert("isSupplier".into(), json!(true));
        rec.insert("locale".into(), json!("nb_NO"));
    }
    store_fields(db, kind.schema(), &mut rec, body, &[]);
    let (field, first, _) = number_field(kind);
    if int(&rec, field) == 0 {
        let next = db
            .values(kind)
            .map(|r| int(r, field))
            .max()
            .unwrap_or(first - 1)
            .max(first - 1)
            + 1;
        rec.insert(field.into(), json!(next));
    }
    for (key, address_kind) in [
        ("postalAddress", Kind::Address),
        ("physicalAddress", Kind::Address),
        ("deliveryAddress", Kind::DeliveryAddress),
    ] {
        if ref_id(&rec, key).is_none() {
            let mut address = Record::new();
            finish_address(&mut address);
            let id = db.insert(address_kind, address);
            rec.insert(key.into(), reference(id));
        }
    }
    finish_party(kind, &mut rec);
    Ok(db.insert(kind, rec))
}

/// PUT /customer/{id} and PUT /supplier/{id}: a partial update.
pub fn update_party(db: &mut Db, kind: Kind, id: i64, body: &Body) -> Result<(), ApiError> {
    let mut rec = db.get(kind, id).cloned().ok_or_else(ApiError::not_found)?;
    check_version(&rec, body)?;
    let mut problems = Problems::default();
    if body.contains_key("name") && blank(body, "name") {
        problems
            .validation
            .push(Scope::root().msg("name", REQUIRED));
    }
    check_party(db, kind, Some(id), body, &mut problems);
    problems.into_result()?;
    store_fields(db, kind.schema(), &mut rec, body, &[]);
    finish_party(kind, &mut rec);
    db.replace(kind, id, rec);
    Ok(())
}

fn check_party(db: &Db, kind: Kind, own_id: Option<i64>, body: &Body, problems: &mut Problems) {
    let (field, _, noun) = number_field(kind);
    if let Some(n) = body.get(field).and_then(Value::as_i64).filter(|n| *n > 0) {
        let taken = db
            .values(kind)
            .any(|r| int(r, field) == n && Some(int(r, "id")) != own_id);
        if taken {
            problems
                .validation
                .push(Scope::root().msg(field, format!("{noun} {n} er i bruk.")));
        }
    }
    check_refs(db, kind.schema(), body, &Scope::root(), &[], problems);
}

fn finish_party(kind: Kind, rec: &mut Record) {
    let (field, _, _) = number_field(kind);
    let display = format!("{} ({})", text(rec, "name"), int(rec, field));
    rec.insert("displayName".into(), json!(display));
}

/// `POST|PUT /customer/list`, `/supplier/list`, `/product/list`: every item written in order, as
/// the single endpoints would write it, or none. Items are written one after another to a copy
/// of the tables (so two items of one list cannot take the same number), and the copy replaces
/// the tables only if every item passed. A refused item refuses the request: 422 with every bad
/// item's messages, `path` naming the item (`[3].number`) and `field` as for a single record;
/// a stale `version` is the single PUT's 409/8000. No maximum count: Tripletex gives one (100)
/// only for `/order/list` and `/invoice/list`.
pub fn write_list(
    db: &mut Db,
    kind: Kind,
    update: bool,
    items: &[Body],
) -> Result<Vec<i64>, ApiError> {
    if items.is_empty() {
        return Err(ApiError::validation(vec![Msg::general(EMPTY_LIST)]));
    }
    let mut scratch = db.clone();
    let mut ids = Vec::with_capacity(items.len());
    let mut problems = Problems::default();
    for (i, item) in items.iter().enumerate() {
        let written = if update {
            update_item(&mut scratch, kind, item)
        } else {
            match kind {
                Kind::Product => create_product(&mut scratch, item),
                _ => create_party(&mut scratch, kind, item),
            }
        };
        match written {
            Ok(id) => ids.push(id),
            Err(mut e) if e.status == 422 => {
                let msgs = e.validation.take().unwrap_or_default();
                let msgs = msgs.into_iter().map(|m| in_item(i, m));
                if e.code == 16000 {
                    problems.mapping.extend(msgs);
                } else {
                    problems.validation.extend(msgs);
                }
            }
            Err(mut e) => {
                e.developer_message = Some(format!(
                    "[{i}]: {}",
                    e.developer_message.unwrap_or_default()
                ));
                return Err(e);
            }
        }
    }
    problems.into_result()?;
    *db = scratch;
    Ok(ids)
}

/// One item of a PUT list: it must name its record and the version it was read at.
fn update_item(db: &mut Db, kind: Kind, item: &Body) -> Result<i64, ApiError> {
    let mut missing = Vec::new();
    for key in ["id", "version"] {
        if item.get(key).and_then(Value::as_i64).is_none() {
            missing.push(Scope::root().msg(key, NOT_NULL));
        }
    }
    let Some(id) = item
        .get("id")
        .and_then(Value::as_i64)
        .filter(|_| missing.is_empty())
    else {
        return Err(ApiError::validation(missing));
    };
    if db.get(kind, id).is_none() {
        return Err(ApiError::validation(vec![
            Scope::root().msg("id", format!("Objektet med id {id} finnes ikke.")),
        ]));
    }
    match kind {
        Kind::Product => update_product(db, id, item)?,
        _ => update_party(db, kind, id, item)?,
    }
    Ok(id)
}

/// A message about item `i` of a list body: its path starts with `[i]`.
fn in_item(i: usize, m: Msg) -> Msg {
    let inner = m.path.clone().or_else(|| m.field.clone());
    let path = match inner {
        Some(p) if !p.is_empty() => format!("[{i}].{p}"),
        _ => format!("[{i}]"),
    };
    m.at(path)
}

/// Whether a VAT type may be used on a sale: an outgoing type, and only code 6 (or 0, no VAT
/// treatment) for a company outside the VAT system.
pub fn outgoing_vat_allowed(db: &Db, vat: &Record) -> bool {
    let outgoing = matches!(text(vat, "_typeOfVat"), "OUTGOING" | "BOTH");
    outgoing && (db.vat_registered || matches!(text(vat, "number"), "0" | "6"))
}

/// A VAT type the body sets that exists but cannot be used on a sale.
fn check_sale_vat(db: &Db, body: &Body, scope: &Scope, problems: &mut Problems) {
    if let Some(vat) = body_ref(body, "vatType").and_then(|id| db.get(Kind::VatType, id))
        && !outgoing_vat_allowed(db, vat)
    {
        problems.validation.push(scope.msg("vatType", BAD_VAT));
    }
}

/// The default VAT type of a new product: high rate, or code 6 outside the VAT system.
fn default_vat(db: &Db) -> i64 {
    let number = if db.vat_registered { "3" } else { "6" };
    db.values(Kind::VatType)
        .find(|v| text(v, "number") == number)
        .map_or(0, |v| int(v, "id"))
}

/// POST /product.
pub fn create_product(db: &mut Db, body: &Body) -> Result<i64, ApiError> {
    let mut problems = Problems::default();
    if blank(body, "name") {
        problems
            .validation
            .push(Scope::root().msg("name", REQUIRED));
    }
    check_product(db, None, body, &mut problems);
    problems.into_result()?;
    let mut rec = Record::new();
    rec.insert("vatType".into(), reference(default_vat(db)));
    rec.insert("currency".into(), reference(db.nok_id));
    rec.insert("weightUnit".into(), json!("kg"));
    rec.insert("volumeUnit".into(), json!("cm3"));
    rec.insert("isDeletable".into(), json!(true));
    store_fields(db, "Product", &mut rec, body, &[]);
    finish_product(&mut rec);
    Ok(db.insert(Kind::Product, rec))
}

/// PUT /product/{id}.
pub fn update_product(db: &mut Db, id: i64, body: &Body) -> Result<(), ApiError> {
    let mut rec = db
        .get(Kind::Product, id)
        .cloned()
        .ok_or_else(ApiError::not_found)?;
    check_version(&rec, body)?;
    let mut problems = Problems::default();
    if body.contains_key("name") && blank(body, "name") {
        problems
            .validation
            .push(Scope::root().msg("name", REQUIRED));
    }
    check_product(db, Some(id), body, &mut problems);
    problems.into_result()?;
    store_fields(db, "Product", &mut rec, body, &[]);
    finish_product(&mut rec);
    db.replace(Kind::Product, id, rec);
    Ok(())
}

fn check_product(db: &Db, own_id: Option<i64>, body: &Body, problems: &mut Problems) {
    if let Some(n) = body
        .get("number")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        let taken = db
            .products_numbered(n)
            .any(|r| Some(int(r, "id")) != own_id);
        if taken {
            problems
                .validation
                .push(Scope::root().msg("number", format!("Produktnummeret {n} er i bruk.")));
        }
    }
    check_refs(db, "Product", body, &Scope::root(), &[], problems);
    check_sale_vat(db, body, &Scope::root(), problems);
}

/// The read-only fields Tripletex derives; the two sales prices are stored as sent, never
/// derived from each other (as the real service does on product writes).
fn finish_product(rec: &mut Record) {
    let number = text(rec, "number").to_string();
    let name = text(rec, "name").to_string();
    let price = dec(rec, "priceExcludingVatCurrency");
    let cost = dec(rec, "costExcludingVatCurrency");
    let profit = price - cost;
    let percent = if price.is_zero() {
        Decimal::ZERO
    } else {
        (profit * Decimal::ONE_HUNDRED / price).round_dp(2)
    };
    let display = if number.is_empty() {
        name
    } else {
        format!("{number} {name}")
    };
    rec.insert("displayNumber".into(), json!(number));
    rec.insert("displayName".into(), json!(display));
    rec.insert("costPrice".into(), from_decimal(cost));
    rec.insert("profit".into(), from_decimal(profit));
    rec.insert("profitInPercent".into(), from_decimal(percent));
    rec.insert("discountPrice".into(), from_decimal(price));
}

/// PUT /ledger/account/{id}: how an integration registers the company's bank account number.
pub fn update_account(db: &mut Db, id: i64, body: &Body) -> Result<(), ApiError> {
    let mut rec = db
        .get(Kind::Account, id)
        .cloned()
        .ok_or_else(ApiError::not_found)?;
    check_version(&rec, body)?;
    let mut problems = Problems::default();
    if let Some(n) = body.get("bankAccountNumber").and_then(Value::as_str)
        && !n.is_empty()
        && !valid_bank_account(n)
    {
        problems.validation.push(Scope::root().msg(
            "bankAccountNumber",
            "Dette er ikke et gyldig norsk kontonummer",
        ));
    }
    if body.contains_key("name") && blank(body, "name") {
        problems
            .validation
            .push(Scope::root().msg("name", REQUIRED));
    }
    check_refs(db, "Account", body, &Scope::root(), &[], &mut problems);
    problems.into_result()?;
    store_fields(db, "Account", &mut rec, body, &[]);
    finish_account(&mut rec);
    db.replace(Kind::Account, id, rec);
    Ok(())
}

pub fn finish_account(rec: &mut Record) {
    let number = int(rec, "number");
    let display = format!("{number} {}", text(rec, "name"));
    rec.insert("numberPretty".into(), json!(number.to_string()));
    rec.insert("displayName".into(), json!(display));
}

/// A Norwegian account number: 11 digits (dots and spaces allowed) with a MOD11 check digit.
pub fn valid_bank_account(s: &str) -> bool {
    let digits: Vec<u32> = s
        .chars()
        .filter(|c| !matches!(c, '.' | ' '))
        .map(|c| c.to_digit(10))
        .collect::<Option<_>>()
        .unwrap_or_default();
    if digits.len() != 11 {
        return false;
    }
    const WEIGHTS: [u32; 10] = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];
    let sum: u32 = digits.iter().zip(WEIGHTS).map(|(d, w)| d * w).sum();
    let check = match 11 - sum % 11 {
        11 => 0,
        10 => return false,
        c => c,
    };
    digits[10] == check
}

/// Whether any bank ledger account has a number, which invoicing needs.
pub fn has_bank_account(db: &Db) -> bool {
    db.values(Kind::Account)
        .any(|a| flag(a, "isBankAccount") && !text(a, "bankAccountNumber").is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bank_account_numbers_need_a_mod11_check_digit() {
        assert!(valid_bank_account("11111111113"));
        assert!(valid_bank_account("1234.56.78903"));
        assert!(!valid_bank_account("12345678901"));
        assert!(!valid_bank_account("1234567890"));
    }
}
