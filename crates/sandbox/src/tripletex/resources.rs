//! Reads: query parameters, the search filters of each resource, sorting, paging and the list
//! envelope `{fullResultSize, from, count, versionDigest, values}`.

use std::cmp::Ordering;
use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Value, json};

use super::body::NOT_NULL;
use super::entities::outgoing_vat_allowed;
use super::error::{ApiError, Msg};
use super::schema::{Fields, Renderer, Ty, prop};
use super::store::{Db, Kind, Record, dec, flag, int, ref_id, text};
use super::time;
use crate::support::to_decimal;

/// Query parameters in order; a parameter may repeat (`productNumber=a&productNumber=b`).
#[derive(Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        let pairs = raw
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k, true), decode(v, true))
            })
            .collect();
        Query { pairs }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated or comma-separated parameter.
    pub fn list(&self, key: &str) -> Option<Vec<String>> {
        let values: Vec<String> = self
            .pairs
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        (!values.is_empty()).then_some(values)
    }

    pub fn ints(&self, key: &str) -> Result<Option<Vec<i64>>, ApiError> {
        self.list(key)
            .map(|vs| {
                vs.iter()
                    .map(|v| v.parse().map_err(|_| illegal(key, v)))
                    .collect()
            })
            .transpose()
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .map(|v| v.parse().map_err(|_| illegal(key, v)))
            .transpose()
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key).map(str::to_ascii_lowercase).as_deref() {
            None | Some("") => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(v) => Err(illegal(key, v)),
        }
    }

    pub fn date(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .map(|v| time::parse(v).ok_or_else(|| illegal(key, v)))
            .transpose()
    }

    pub fn decimal(&self, key: &str) -> Result<Option<rust_decimal::Decimal>, ApiError> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse::<f64>()
                    .ok()
                    .and_then(|f| to_decimal(&json!(f)))
                    .ok_or_else(|| illegal(key, v))
            })
            .transpose()
    }

    /// `text` contains `key`'s value, ignoring case.
    fn contains(&self, key: &str, text: &str) -> bool {
        self.get(key)
            .is_none_or(|v| text.to_lowercase().contains(&v.to_lowercase()))
    }

    fn equals(&self, key: &str, text: &str) -> bool {
        self.get(key).is_none_or(|v| v.is_empty() || v == text)
    }
}

fn illegal(key: &str, value: &str) -> ApiError {
    ApiError::illegal_filter(format!("Illegal filter value for {key}: {value}"))
}

/// Percent-decoding of a URL component (`+` is a space in a query).
pub fn decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(b) = hex {
                    out.push(b);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn id_in(ids: &Option<Vec<i64>>, rec: &Record) -> bool {
    ids.as_ref().is_none_or(|ids| ids.contains(&int(rec, "id")))
}

fn ref_in(ids: &Option<Vec<i64>>, rec: &Record, key: &str) -> bool {
    ids.as_ref()
        .is_none_or(|ids| ref_id(rec, key).is_some_and(|r| ids.contains(&r)))
}

fn bool_is(want: Option<bool>, rec: &Record, key: &str) -> bool {
    want.is_none_or(|w| flag(rec, key) == w)
}

/// A required date range `[from, to)` of a search.
fn date_range(q: &Query, from_key: &str, to_key: &str) -> Result<(i64, i64), ApiError> {
    let (from, to) = (q.date(from_key)?, q.date(to_key)?);
    let mut msgs = Vec::new();
    if from.is_none() {
        msgs.push(Msg::new(from_key, NOT_NULL));
    }
    if to.is_none() {
        msgs.push(Msg::new(to_key, NOT_NULL));
    }
    match (from, to) {
        (Some(f), Some(t)) if f < t => Ok((f, t)),
        (Some(_), Some(_)) => Err(ApiError::validation(vec![Msg::new(
            to_key,
            format!("{to_key} må være etter {from_key}."),
        )])),
        _ => Err(ApiError::validation(msgs)),
    }
}

fn in_range(rec: &Record, key: &str, (from, to): (i64, i64)) -> bool {
    time::parse(text(rec, key)).is_some_and(|d| from <= d && d < to)
}

/// The records of a kind that match a search's filters.
pub fn search<'a>(db: &'a Db, kind: Kind, q: &Query) -> Result<Vec<&'a Record>, ApiError> {
    let ids = q.ints(if kind == Kind::Product { "ids" } else { "id" })?;
    let ids = match (ids, kind) {
        (None, Kind::Product) => q.ints("id")?,
        (ids, _) => ids,
    };
    let base = db.values(kind).filter(|r| id_in(&ids, r));
    let rows: Vec<&Record> = match kind {
        Kind::Customer | Kind::Supplier => {
            let (number_key, number_field) = if kind == Kind::Customer {
                ("customerAccountNumber", "customerNumber")
            } else {
                ("supplierNumber", "supplierNumber")
            };
            let numbers = q.ints(number_key)?;
            let inactive = q.bool("isInactive")?.unwrap_or(false);
            let managers = q.ints("accountManagerId")?;
            let since = match q.get("changedSince").filter(|v| !v.is_empty()) {
                Some(v) => {
                    Some(time::parse_date_time(v).ok_or_else(|| illegal("changedSince", v))?)
                }
                None => None,
            };
            base.filter(|r| {
                numbers
                    .as_ref()
                    .is_none_or(|n| n.contains(&int(r, number_field)))
                    && flag(r, "isInactive") == inactive
                    && q.equals("organizationNumber", text(r, "organizationNumber"))
                    && q.equals("email", text(r, "email"))
                    && q.equals("invoiceEmail", text(r, "invoiceEmail"))
                    && q.contains("customerName", text(r, "name"))
                    && q.equals("phoneNumberMobile", text(r, "phoneNumberMobile"))
                    && ref_in(&managers, r, "accountManager")
                    && since.is_none_or(|s| int(r, "_changed") >= s)
            })
            .collect()
        }
        Kind::Product => {
            let numbers = q.list("productNumber");
            let legacy = q.list("number");
            let (inactive, stock) = (q.bool("isInactive")?, q.bool("isStockItem")?);
            let refs = [
                ("supplierId", "supplier"),
                ("currencyId", "currency"),
                ("vatTypeId", "vatType"),
                ("productUnitId", "productUnit"),
                ("departmentId", "department"),
                ("accountId", "account"),
            ]
            .into_iter()
            .map(|(p, f)| Ok((q.ints(p)?, f)))
            .collect::<Result<Vec<_>, ApiError>>()?;
            let mut ranges = Vec::new();
            for field in [
                "costExcludingVatCurrency",
                "priceExcludingVatCurrency",
                "priceIncludingVatCurrency",
            ] {
                let (from, to) = (
                    q.decimal(&format!("{field}From"))?,
                    q.decimal(&format!("{field}To"))?,
                );
                ranges.push((field, from, to));
            }
            let keep = |r: &&Record| {
                numbers
                    .as_ref()
                    .is_none_or(|n| n.iter().any(|n| n == text(r, "number")))
                    && legacy
                        .as_ref()
                        .is_none_or(|n| n.iter().any(|n| n == text(r, "number")))
                    && q.contains("name", text(r, "name"))
                    && q.equals("ean", text(r, "ean"))
                    && bool_is(inactive, r, "isInactive")
                    && bool_is(stock, r, "isStockItem")
                    && refs.iter().all(|(ids, f)| ref_in(ids, r, f))
                    && ranges.iter().all(|(f, from, to)| {
                        let v = dec(r, f);
                        from.is_none_or(|x| v >= x) && to.is_none_or(|x| v < x)
                    })
            };
            // A search by number starts from the number index instead of every product.
            match numbers.as_ref().or(legacy.as_ref()) {
                Some(wanted) => {
                    let mut found: Vec<&Record> = wanted
                        .iter()
                        .flat_map(|n| db.products_numbered(n))
                        .filter(|r| id_in(&ids, r))
                        .filter(keep)
                        .collect();
                    found.sort_by_key(|r| int(r, "id"));
                    found.dedup_by_key(|r| int(r, "id"));
                    found
                }
                None => base.filter(keep).collect(),
            }
        }
        Kind::ProductUnit => base
            .filter(|r| {
                q.equals("name", text(r, "name"))
                    && q.equals("nameShort", text(r, "nameShort"))
                    && q.equals("commonCode", text(r, "commonCode"))
            })
            .collect(),
        Kind::VatType => {
            let numbers = q.list("number");
            let type_of_vat = q
                .get("typeOfVat")
                .filter(|v| !v.is_empty())
                .map(str::to_uppercase);
            base.filter(|r| {
                numbers
                    .as_ref()
                    .is_none_or(|n| n.iter().any(|n| n == text(r, "number")))
                    && match type_of_vat.as_deref() {
                        None | Some("LEDGER") => true,
                        Some("OUTGOING" | "PROJECT") => outgoing_vat_allowed(db, r),
                        Some(_) => matches!(text(r, "_typeOfVat"), "INCOMING" | "BOTH"),
                    }
            })
            .collect()
        }
        Kind::Country => {
            let disabled = q.bool("isDisabled")?;
            base.filter(|r| {
                q.get("code").is_none_or(|c| {
                    c.is_empty()
                        || c.eq_ignore_ascii_case(text(r, "isoAlpha2Code"))
                        || c.eq_ignore_ascii_case(text(r, "isoAlpha3Code"))
                }) && bool_is(disabled, r, "_disabled")
            })
            .collect()
        }
        Kind::Currency => base
            .filter(|r| {
                q.get("code")
                    .is_none_or(|c| c.is_empty() || c.eq_ignore_ascii_case(text(r, "code")))
            })
            .collect(),
        Kind::Employee => {
            let departments = q.ints("departmentId")?;
            base.filter(|r| {
                q.contains("firstName", text(r, "firstName"))
                    && q.contains("lastName", text(r, "lastName"))
                    && q.equals("employeeNumber", text(r, "employeeNumber"))
                    && q.contains("email", text(r, "email"))
                    && ref_in(&departments, r, "department")
            })
            .collect()
        }
        Kind::Account => {
            let numbers = q.ints("number")?;
            let (bank, inactive) = (q.bool("isBankAccount")?, q.bool("isInactive")?);
            base.filter(|r| {
                numbers
                    .as_ref()
                    .is_none_or(|n| n.contains(&int(r, "number")))
                    && bool_is(bank, r, "isBankAccount")
                    && bool_is(inactive, r, "isInactive")
                    && q.get("ledgerType")
                        .is_none_or(|t| t.is_empty() || t == text(r, "ledgerType"))
            })
            .collect()
        }
        Kind::Order => {
            let range = date_range(q, "orderDateFrom", "orderDateTo")?;
            let customers = q.ints("customerId")?;
            let (closed, subscription) = (q.bool("isClosed")?, q.bool("isSubscription")?);
            base.filter(|r| {
                in_range(r, "orderDate", range)
                    && q.equals("number", text(r, "number"))
                    && ref_in(&customers, r, "customer")
                    && q.contains("deliveryComment", text(r, "deliveryComment"))
                    && bool_is(closed, r, "isClosed")
                    && bool_is(subscription, r, "isSubscription")
            })
            .collect()
        }
        Kind::Invoice => {
            let range = date_range(q, "invoiceDateFrom", "invoiceDateTo")?;
            let customers = q.ints("customerId")?;
            let vouchers = q.ints("voucherId")?;
            let number = q.int("invoiceNumber")?;
            base.filter(|r| {
                in_range(r, "invoiceDate", range)
                    && number.is_none_or(|n| int(r, "invoiceNumber") == n)
                    && q.equals("kid", text(r, "kid"))
                    && ref_in(&customers, r, "customer")
                    && ref_in(&vouchers, r, "voucher")
            })
            .collect()
        }
        _ => base.collect(),
    };
    Ok(rows)
}

#[derive(PartialEq, PartialOrd)]
enum SortKey {
    Null,
    Bool(bool),
    Num(f64),
    Text(String),
}

fn sort_key(v: Option<&Value>) -> SortKey {
    match v {
        Some(Value::Bool(b)) => SortKey::Bool(*b),
        Some(Value::Number(n)) => SortKey::Num(n.as_f64().unwrap_or(0.0)),
        Some(Value::String(s)) => SortKey::Text(s.to_lowercase()),
        _ => SortKey::Null,
    }
}

/// The value at a dotted path (`customer.name`), following references.
fn value_at<'a>(db: &'a Db, schema: &str, rec: &'a Record, path: &str) -> Option<&'a Value> {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    let v = rec.get(head)?;
    match (rest, prop(schema, head).map(|p| &p.ty)) {
        (None, _) => Some(v),
        (Some(rest), Some(Ty::Ref(t))) => {
            let row = db.lookup(t, v.get("id")?.as_i64()?)?;
            value_at(db, t, row, rest)
        }
        _ => None,
    }
}

fn check_sort_path(schema: &str, path: &str) -> bool {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    match (prop(schema, head), rest) {
        (Some(_), None) => true,
        (Some(p), Some(rest)) => match &p.ty {
            Ty::Ref(t) => check_sort_path(t, rest),
            _ => false,
        },
        (None, _) => false,
    }
}

/// A list answer: filters applied by the caller; here sorting, paging and rendering.
pub fn list(
    r: &Renderer,
    kind: Kind,
    q: &Query,
    mut rows: Vec<&Record>,
    if_none_match: Option<&str>,
) -> Result<Value, ApiError> {
    let fields = fields_of(q, kind)?;
    let schema = kind.schema();
    if let Some(sorting) = q.get("sorting").filter(|s| !s.trim().is_empty()) {
        let keys: Vec<(&str, bool)> = sorting
            .split(',')
            .map(str::trim)
            .map(|s| s.strip_prefix('-').map_or((s, false), |s| (s, true)))
            .collect();
        if let Some((bad, _)) = keys.iter().find(|(k, _)| !check_sort_path(schema, k)) {
            return Err(ApiError::sorting(bad));
        }
        rows.sort_by(|a, b| {
            keys.iter()
                .map(|(k, desc)| {
                    let (x, y) = (
                        sort_key(value_at(r.db, schema, a, k)),
                        sort_key(value_at(r.db, schema, b, k)),
                    );
                    let o = x.partial_cmp(&y).unwrap_or(Ordering::Equal);
                    if *desc { o.reverse() } else { o }
                })
                .find(|o| *o != Ordering::Equal)
                .unwrap_or(Ordering::Equal)
        });
    }
    let from = q.int("from")?.unwrap_or(0).max(0);
    let count = q.int("count")?.unwrap_or(1000).max(0);
    let total = rows.len();
    let values: Vec<Value> = rows
        .into_iter()
        .skip(usize::try_from(from).unwrap_or(usize::MAX))
        .take(usize::try_from(count).unwrap_or(usize::MAX))
        .map(|rec| r.render(schema, rec, &fields))
        .collect();
    // Without If-None-Match the real service answers with this sentence instead of a digest.
    let digest = match if_none_match {
        None => json!("'If-None-Match' header not specified"),
        Some(_) => {
            let mut h = DefaultHasher::new();
            Value::Array(values.clone()).to_string().hash(&mut h);
            json!(format!("{:016x}", h.finish()))
        }
    };
    Ok(json!({
        "fullResultSize": total,
        "from": from,
        "count": values.len(),
        "versionDigest": digest,
        "values": values,
    }))
}

/// The `fields` parameter, checked against the model.
pub fn fields_of(q: &Query, kind: Kind) -> Result<Fields, ApiError> {
    let fields = match q.get("fields").map(str::trim).filter(|f| !f.is_empty()) {
        Some(f) => Fields::parse(f)?,
        None => Fields::all(),
    };
    fields.check(kind.schema())?;
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode_and_repeat() {
        let q = Query::parse(Some(
            "productNumber=A%2F1&productNumber=B+2&count=5&name=%C3%B8l",
        ));
        assert_eq!(
            q.list("productNumber"),
            Some(vec!["A/1".to_string(), "B 2".to_string()])
        );
        assert_eq!(q.int("count").ok().flatten(), Some(5));
        assert_eq!(q.get("name"), Some("øl"));
        assert_eq!(decode("100%", false), "100%");
        assert_eq!(decode("%3EwhoAmI", false), ">whoAmI");
    }
}
