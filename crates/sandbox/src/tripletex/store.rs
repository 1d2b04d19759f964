//! The sandbox company's data: one table of JSON records per kind. A record holds only the fields
//! that were set (the renderer fills in the rest from the schema); references are stored as
//! `{"id": n}`. Keys starting with `_` are bookkeeping the API never shows.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

use super::time;

pub type Record = Map<String, Value>;

/// The kinds of record the sandbox keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Customer,
    Supplier,
    Product,
    ProductUnit,
    VatType,
    Country,
    Currency,
    Employee,
    Department,
    Account,
    Order,
    OrderLine,
    Invoice,
    Address,
    DeliveryAddress,
    Company,
}

impl Kind {
    pub const ALL: [Kind; 16] = [
        Kind::Customer,
        Kind::Supplier,
        Kind::Product,
        Kind::ProductUnit,
        Kind::VatType,
        Kind::Country,
        Kind::Currency,
        Kind::Employee,
        Kind::Department,
        Kind::Account,
        Kind::Order,
        Kind::OrderLine,
        Kind::Invoice,
        Kind::Address,
        Kind::DeliveryAddress,
        Kind::Company,
    ];

    /// The schema name in Tripletex's spec.
    pub fn schema(self) -> &'static str {
        match self {
            Kind::Customer => "Customer",
            Kind::Supplier => "Supplier",
            Kind::Product => "Product",
            Kind::ProductUnit => "ProductUnit",
            Kind::VatType => "VatType",
            Kind::Country => "Country",
            Kind::Currency => "Currency",
            Kind::Employee => "Employee",
            Kind::Department => "Department",
            Kind::Account => "Account",
            Kind::Order => "Order",
            Kind::OrderLine => "OrderLine",
            Kind::Invoice => "Invoice",
            Kind::Address => "Address",
            Kind::DeliveryAddress => "DeliveryAddress",
            Kind::Company => "Company",
        }
    }

    /// The resource path under `/v2`.
    pub fn path(self) -> &'static str {
        match self {
            Kind::Customer => "customer",
            Kind::Supplier => "supplier",
            Kind::Product => "product",
            Kind::ProductUnit => "product/unit",
            Kind::VatType => "ledger/vatType",
            Kind::Country => "country",
            Kind::Currency => "currency",
            Kind::Employee => "employee",
            Kind::Department => "department",
            Kind::Account => "ledger/account",
            Kind::Order => "order",
            Kind::OrderLine => "order/orderline",
            Kind::Invoice => "invoice",
            Kind::Address => "address",
            Kind::DeliveryAddress => "deliveryAddress",
            Kind::Company => "company",
        }
    }

    pub fn from_schema(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.schema() == name)
    }

    /// A kind by its schema name or resource path, case-insensitively (`OrderLine`,
    /// `order/orderline`, `ledger/account`).
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.schema().eq_ignore_ascii_case(name) || k.path().eq_ignore_ascii_case(name))
    }

    /// First id handed out; Tripletex ids are large (invoices' pass `i32::MAX`).
    fn first_id(self) -> i64 {
        match self {
            Kind::Customer => 108_000_001,
            Kind::Supplier => 108_500_001,
            Kind::Product => 84_000_001,
            Kind::ProductUnit => 4_001,
            Kind::VatType | Kind::Country | Kind::Currency => 1_000,
            Kind::Employee => 18_600_001,
            Kind::Department => 742_001,
            Kind::Account => 463_300_001,
            Kind::Order => 401_900_001,
            Kind::OrderLine => 1_600_000_001,
            Kind::Invoice => 2_147_600_001,
            Kind::Address => 300_000_001,
            Kind::DeliveryAddress => 310_000_001,
            Kind::Company => 9_876_001,
        }
    }
}

/// The schema-level tables a reference can point into without a resource of its own.
pub fn path_of_schema(schema: &str) -> String {
    if let Some(k) = Kind::from_schema(schema) {
        return k.path().to_string();
    }
    match schema {
        "Voucher" => "ledger/voucher".into(),
        "Posting" => "ledger/posting".into(),
        _ => {
            let mut c = schema.chars();
            c.next()
                .map(|f| f.to_lowercase().chain(c).collect())
                .unwrap_or_default()
        }
    }
}

#[derive(Debug, Clone)]
pub struct Db {
    tables: HashMap<Kind, BTreeMap<i64, Record>>,
    /// Product number → ids, kept by every write of a product: finding a product by its number
    /// (as the real service does, from an index) must not scan the whole table, or the sandbox's
    /// answer time grows with its data and the latency benchmark measures the sandbox.
    product_numbers: HashMap<String, BTreeSet<i64>>,
    next_ids: HashMap<Kind, i64>,
    pub company_id: i64,
    pub owner_employee_id: i64,
    pub nok_id: i64,
    /// A company outside the VAT system only offers outgoing code 6.
    pub vat_registered: bool,
    pub next_invoice_number: i64,
    pub next_order_number: i64,
    pub next_voucher_id: i64,
    /// Invoices created with `sendToCustomer=true`, in order.
    pub sent_invoices: Vec<i64>,
}

impl Db {
    pub fn new() -> Db {
        Db {
            tables: HashMap::new(),
            product_numbers: HashMap::new(),
            next_ids: HashMap::new(),
            company_id: 0,
            owner_employee_id: 0,
            nok_id: 0,
            vat_registered: true,
            next_invoice_number: 1,
            next_order_number: 1,
            next_voucher_id: 609_000_001,
            sent_invoices: Vec::new(),
        }
    }

    /// Stores a new record under the next id of its kind, at version 0.
    pub fn insert(&mut self, kind: Kind, rec: Record) -> i64 {
        let next = self.next_ids.entry(kind).or_insert_with(|| kind.first_id());
        let id = *next;
        *next += 1;
        self.insert_with_id(kind, id, rec);
        id
    }

    /// Stores a record under a fixed id (reference data whose ids are well known).
    pub fn insert_with_id(&mut self, kind: Kind, id: i64, mut rec: Record) {
        rec.insert("id".into(), json!(id));
        rec.insert("version".into(), json!(0));
        rec.insert("_changed".into(), json!(time::now_seconds()));
        self.put(kind, id, rec);
        let next = self.next_ids.entry(kind).or_insert_with(|| kind.first_id());
        *next = (*next).max(id + 1);
    }

    /// Replaces a record after a write: the version goes up by one.
    pub fn replace(&mut self, kind: Kind, id: i64, mut rec: Record) {
        let version = self.get(kind, id).map_or(0, |r| int(r, "version")) + 1;
        rec.insert("id".into(), json!(id));
        rec.insert("version".into(), json!(version));
        rec.insert("_changed".into(), json!(time::now_seconds()));
        self.put(kind, id, rec);
    }

    /// Stores `rec` under `id`, keeping the product number index.
    fn put(&mut self, kind: Kind, id: i64, rec: Record) {
        if kind == Kind::Product {
            let number = text(&rec, "number").to_string();
            let old = self.get(kind, id).map(|r| text(r, "number").to_string());
            if let Some(old) = old.filter(|o| *o != number) {
                self.unindex_number(id, &old);
            }
            self.index_number(id, &number);
        }
        self.tables.entry(kind).or_default().insert(id, rec);
    }

    fn index_number(&mut self, id: i64, number: &str) {
        if !number.is_empty() {
            self.product_numbers
                .entry(number.to_string())
                .or_default()
                .insert(id);
        }
    }

    fn unindex_number(&mut self, id: i64, number: &str) {
        if let Some(ids) = self.product_numbers.get_mut(number) {
            ids.remove(&id);
            if ids.is_empty() {
                self.product_numbers.remove(number);
            }
        }
    }

    /// The products numbered `number`, in id order.
    pub fn products_numbered(&self, number: &str) -> impl Iterator<Item = &Record> {
        self.product_numbers
            .get(number)
            .into_iter()
            .flatten()
            .filter_map(|id| self.get(Kind::Product, *id))
    }

    pub fn remove(&mut self, kind: Kind, id: i64) -> Option<Record> {
        let rec = self.tables.get_mut(&kind)?.remove(&id)?;
        if kind == Kind::Product {
            self.unindex_number(id, text(&rec, "number"));
        }
        Some(rec)
    }

    pub fn get(&self, kind: Kind, id: i64) -> Option<&Record> {
        self.tables.get(&kind)?.get(&id)
    }

    /// Edits a record without a new version (filling in what a create computes afterwards).
    /// Not for products: their number index would not see the edit.
    pub fn get_mut(&mut self, kind: Kind, id: i64) -> Option<&mut Record> {
        debug_assert!(kind != Kind::Product, "products are edited with `replace`");
        self.tables.get_mut(&kind)?.get_mut(&id)
    }

    /// A record by the schema name a reference points to.
    pub fn lookup(&self, schema: &str, id: i64) -> Option<&Record> {
        self.get(Kind::from_schema(schema)?, id)
    }

    pub fn values(&self, kind: Kind) -> impl Iterator<Item = &Record> {
        self.tables.get(&kind).into_iter().flat_map(|t| t.values())
    }

    pub fn count(&self, kind: Kind) -> usize {
        self.tables.get(&kind).map_or(0, |t| t.len())
    }

    /// Edits a record in place as a write: the version goes up.
    pub fn update(&mut self, kind: Kind, id: i64, edit: impl FnOnce(&mut Record)) {
        if let Some(mut rec) = self.get(kind, id).cloned() {
            edit(&mut rec);
            self.replace(kind, id, rec);
        }
    }
}

pub fn text<'a>(rec: &'a Record, key: &str) -> &'a str {
    rec.get(key).and_then(Value::as_str).unwrap_or("")
}

pub fn int(rec: &Record, key: &str) -> i64 {
    rec.get(key).and_then(Value::as_i64).unwrap_or(0)
}

pub fn flag(rec: &Record, key: &str) -> bool {
    rec.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// The id of a reference field (`{"id": n}`), if set.
pub fn ref_id(rec: &Record, key: &str) -> Option<i64> {
    rec.get(key)?.get("id")?.as_i64()
}

pub fn reference(id: i64) -> Value {
    json!({ "id": id })
}

/// The ids in an array of references (`orderLines`, `orders`).
pub fn ref_ids(rec: &Record, key: &str) -> Vec<i64> {
    rec.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.get("id")?.as_i64()).collect())
        .unwrap_or_default()
}

use crate::support::to_decimal;

pub fn dec(rec: &Record, key: &str) -> Decimal {
    rec.get(key).and_then(to_decimal).unwrap_or_default()
}

/// A decimal as a JSON number: an integer when whole, else the float with the same digits.
pub fn from_decimal(d: Decimal) -> Value {
    let d = d.normalize();
    if d.scale() == 0
        && let Ok(i) = i64::try_from(d)
    {
        return json!(i);
    }
    d.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}
