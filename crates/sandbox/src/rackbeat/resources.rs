//! What each Rackbeat resource looks like: paths and envelope keys, the fields a write may set
//! and their types, required fields, and the full record a create starts from (in the key order
//! of the reference samples).

use serde_json::{Map, Value, json};

/// The event fired when a customer invoice is booked. (?) Rackbeat's name for it is unconfirmed;
/// change it here only.
pub const INVOICE_BOOKED_EVENT: &str = "invoice.booked";

/// Events a webhook may subscribe to: the ones the sandbox fires plus documented ones it never
/// fires (orders, delivery terms, plugins are not simulated).
pub const KNOWN_EVENTS: &[&str] = &[
    "product.created",
    "product.updated",
    "product.deleted",
    "lot.created",
    "lot.updated",
    "lot.deleted",
    "customer.created",
    "customer.updated",
    "supplier.created",
    "supplier.updated",
    INVOICE_BOOKED_EVENT,
    "employee.created",
    "employee.updated",
    "payment_terms.created",
    "payment_terms.updated",
    "order.created",
    "order.shipped",
    "delivery_terms.created",
    "delivery_terms.updated",
    "plugin.uninstalled",
];

/// (?) Rackbeat's API strings for payment-term types are unconfirmed: "net" is seen in a sample,
/// the rest follow the UI's names (Net, End of Month, Cash Payment, Prepayment, Due Date,
/// Factoring).
pub const PAYMENT_TERM_TYPES: &[(&str, &str)] = &[
    ("net", "Netto"),
    ("end_of_month", "Løpende måned"),
    ("cash", "Kontant"),
    ("prepayment", "Forskudd"),
    ("due_date", "Forfallsdato"),
    ("factoring", "Factoring"),
];

/// (?) Only these VAT zones have been seen on real customers.
pub const VAT_ZONES: &[&str] = &["domestic", "eu", "abroad"];

/// A Rackbeat resource the sandbox serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    Product,
    Lot,
    Customer,
    Supplier,
    CustomerInvoice,
    PaymentTerm,
    Employee,
    ProductGroup,
    Unit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Created,
    Updated,
    Deleted,
}

impl Resource {
    pub const ALL: [Resource; 9] = [
        Resource::Product,
        Resource::Lot,
        Resource::Customer,
        Resource::Supplier,
        Resource::CustomerInvoice,
        Resource::PaymentTerm,
        Resource::Employee,
        Resource::ProductGroup,
        Resource::Unit,
    ];

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The path segment under `/api`.
    pub fn path(self) -> &'static str {
        match self {
            Resource::Product => "products",
            Resource::Lot => "lots",
            Resource::Customer => "customers",
            Resource::Supplier => "suppliers",
            Resource::CustomerInvoice => "customer-invoices",
            Resource::PaymentTerm => "payment-terms",
            Resource::Employee => "employees",
            Resource::ProductGroup => "product-groups",
            Resource::Unit => "units",
        }
    }

    /// The key of a single-object envelope.
    pub fn singular(self) -> &'static str {
        match self {
            Resource::Product => "product",
            Resource::Lot => "lot",
            Resource::Customer => "customer",
            Resource::Supplier => "supplier",
            Resource::CustomerInvoice => "customer_invoice",
            Resource::PaymentTerm => "payment_term",
            Resource::Employee => "employee",
            Resource::ProductGroup => "product_group",
            Resource::Unit => "unit",
        }
    }

    /// The key of a list envelope.
    pub fn plural(self) -> &'static str {
        match self {
            Resource::Product => "products",
            Resource::Lot => "lots",
            Resource::Customer => "customers",
            Resource::Supplier => "suppliers",
            Resource::CustomerInvoice => "customer_invoices",
            Resource::PaymentTerm => "payment_terms",
            Resource::Employee => "employees",
            Resource::ProductGroup => "product_groups",
            Resource::Unit => "units",
        }
    }

    /// The Laravel model named in a 404 message.
    pub(crate) fn model(self) -> &'static str {
        match self {
            Resource::Product => "Product",
            Resource::Lot => "Lot",
            Resource::Customer => "Customer",
            Resource::Supplier => "Supplier",
            Resource::CustomerInvoice => "CustomerInvoice",
            Resource::PaymentTerm => "PaymentTerm",
            Resource::Employee => "Employee",
            Resource::ProductGroup => "ProductGroup",
            Resource::Unit => "Unit",
        }
    }

    /// Items (products and lots) are keyed by a free-text number; the rest by an integer.
    pub fn keyed_by_text(self) -> bool {
        matches!(self, Resource::Product | Resource::Lot)
    }

    /// The webhook a write fires, if Rackbeat has one for it.
    pub(crate) fn event(self, action: Action) -> Option<&'static str> {
        use Action::*;
        match (self, action) {
            (Resource::Product, Created) => Some("product.created"),
            (Resource::Product, Updated) => Some("product.updated"),
            (Resource::Product, Deleted) => Some("product.deleted"),
            (Resource::Lot, Created) => Some("lot.created"),
            (Resource::Lot, Updated) => Some("lot.updated"),
            (Resource::Lot, Deleted) => Some("lot.deleted"),
            (Resource::Customer, Created) => Some("customer.created"),
            (Resource::Customer, Updated) => Some("customer.updated"),
            (Resource::Supplier, Created) => Some("supplier.created"),
            (Resource::Supplier, Updated) => Some("supplier.updated"),
            (Resource::Employee, Created) => Some("employee.created"),
            (Resource::Employee, Updated) => Some("employee.updated"),
            (Resource::PaymentTerm, Created) => Some("payment_terms.created"),
            (Resource::PaymentTerm, Updated) => Some("payment_terms.updated"),
            _ => None,
        }
    }

    /// The first number handed out when a create leaves it to Rackbeat.
    pub(crate) fn first_number(self) -> i64 {
        match self {
            Resource::Customer => 10001,
            Resource::Supplier => 2001,
            Resource::CustomerInvoice => 20001,
            Resource::ProductGroup => 1001,
            _ => 1,
        }
    }
}

/// How a written value is checked and stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// A number kept as sent (quantities print as integers when they are).
    Num,
    /// A money amount, always stored as a decimal (`149.0`).
    Price,
    Int,
    Bool,
    /// An object merged into the stored one.
    Obj,
    Date,
}

/// The writable fields of a resource, their aliases, required fields and search fields.
pub struct Spec {
    /// Two lists (common and specific fields), to share the common ones between resources.
    pub fields: [&'static [(&'static str, Kind)]; 2],
    /// `(alias, field)`: other names a write may use for a field.
    pub aliases: &'static [(&'static str, &'static str)],
    /// `(field, name in the error)`: fields that must end up non-null.
    pub required: &'static [(&'static str, &'static str)],
    pub search: &'static [&'static str],
}

use Kind::*;

const ITEM_FIELDS: &[(&str, Kind)] = &[
    ("number", Text),
    ("name", Text),
    ("group_id", Int),
    ("barcode", Text),
    ("description", Text),
    ("sales_price", Price),
    ("recommended_sales_price", Price),
    ("recommended_cost_price", Price),
    ("cost_addition_percentage", Num),
    ("min_order", Num),
    ("min_sales", Num),
    ("min_stock", Num),
    ("stock_quantity", Num),
    ("default_location_id", Int),
    ("is_barred", Bool),
    ("inventory_enabled", Bool),
    ("unit_id", Int),
];

const PRODUCT_FIELDS: &[(&str, Kind)] = &[
    ("default_supplier_id", Int),
    ("should_assure_quality", Bool),
    ("physical", Obj),
    ("goods_code", Text),
    ("country_code", Text),
];

const LOT_FIELDS: &[(&str, Kind)] = &[
    ("min_produced", Num),
    ("recommended_cost_is_locked", Bool),
    ("cost_is_locked", Bool),
    ("adjust_to_zero", Bool),
];

const ITEM_ALIASES: &[(&str, &str)] = &[
    ("group", "group_id"),
    ("unit", "unit_id"),
    ("min_inventory_quantity", "min_stock"),
    ("min_sales_quantity", "min_sales"),
    ("min_purchase_quantity", "min_order"),
];

const PARTY_FIELDS: &[(&str, Kind)] = &[
    ("number", Int),
    ("name", Text),
    ("company_vat", Text),
    ("address_street", Text),
    ("address_street2", Text),
    ("address_city", Text),
    ("address_zipcode", Text),
    ("address_country", Text),
    ("contact_email", Text),
    ("contact_phone", Text),
    ("locale", Text),
    ("currency", Text),
    ("vat_zone", Text),
    ("payment_terms_id", Int),
    ("is_barred", Bool),
];

const CUSTOMER_FIELDS: &[(&str, Kind)] = &[
    ("ean", Text),
    ("layout_id", Int),
    ("customer_group_id", Int),
    ("employee_id", Int),
    ("our_reference", Text),
    ("their_reference", Text),
    ("attention", Text),
    ("max_credit", Price),
    ("general_discount_percentage", Price),
];

const SUPPLIER_FIELDS: &[(&str, Kind)] = &[("supplier_group_id", Int)];

const PARTY_ALIASES: &[(&str, &str)] = &[("company_name", "name")];

const INVOICE_FIELDS: &[(&str, Kind)] = &[
    ("number", Int),
    ("customer_id", Int),
    ("heading", Text),
    ("note", Text),
    ("currency", Text),
    ("currency_rate", Num),
    ("due_date", Date),
    ("invoice_date", Date),
    ("order_id", Int),
    ("address_street", Text),
    ("address_street2", Text),
    ("address_city", Text),
    ("address_zipcode", Text),
    ("address_country", Text),
];

const PAYMENT_TERM_FIELDS: &[(&str, Kind)] = &[
    ("number", Int),
    ("name", Text),
    ("description", Text),
    ("type", Text),
    ("maturity_days", Int),
];

const EMPLOYEE_FIELDS: &[(&str, Kind)] = &[
    ("number", Int),
    ("name", Text),
    ("initials", Text),
    ("contact_phone", Text),
    ("contact_email", Text),
    ("locale", Text),
    ("job_title", Text),
    ("should_notify", Bool),
    ("default_location_id", Int),
];

const PRODUCT_GROUP_FIELDS: &[(&str, Kind)] = &[
    ("number", Int),
    ("name", Text),
    ("has_inventory", Bool),
    ("is_sellable", Bool),
    ("should_spread_cost", Bool),
    ("vat_domestic", Num),
    ("vat_eu", Num),
    ("vat_abroad", Num),
    ("vat_domestic_exempt", Num),
];

const NAME: &[(&str, &str)] = &[("name", "name")];

pub fn spec(r: Resource) -> Spec {
    let (fields, aliases, required, search): ([&[_]; 2], &[_], &[_], &[_]) = match r {
        Resource::Product => (
            [ITEM_FIELDS, PRODUCT_FIELDS],
            ITEM_ALIASES,
            &[
                ("number", "number"),
                ("name", "name"),
                ("group_id", "group"),
            ],
            &["number", "name", "barcode", "description"],
        ),
        Resource::Lot => (
            [ITEM_FIELDS, LOT_FIELDS],
            ITEM_ALIASES,
            &[("number", "number"), ("name", "name")],
            &["number", "name", "barcode", "description"],
        ),
        Resource::Customer => (
            [PARTY_FIELDS, CUSTOMER_FIELDS],
            PARTY_ALIASES,
            NAME,
            &["number", "name", "company_vat", "contact_email"],
        ),
        Resource::Supplier => (
            [PARTY_FIELDS, SUPPLIER_FIELDS],
            PARTY_ALIASES,
            NAME,
            &["number", "name", "company_vat", "contact_email"],
        ),
        Resource::CustomerInvoice => (
            [INVOICE_FIELDS, &[]],
            &[
                ("customer_number", "customer_id"),
                ("customer", "customer_id"),
            ],
            &[("customer_id", "customer_id")],
            &["number", "heading"],
        ),
        Resource::PaymentTerm => (
            [PAYMENT_TERM_FIELDS, &[]],
            &[],
            &[
                ("name", "name"),
                ("maturity_days", "maturity_days"),
                ("type", "type"),
            ],
            &["number", "name"],
        ),
        Resource::Employee => (
            [EMPLOYEE_FIELDS, &[]],
            &[],
            NAME,
            &["number", "name", "initials", "contact_email"],
        ),
        Resource::ProductGroup => ([PRODUCT_GROUP_FIELDS, &[]], &[], NAME, &["number", "name"]),
        Resource::Unit => (
            [&[("number", Int), ("name", Text)], &[]],
            &[],
            NAME,
            &["number", "name"],
        ),
    };
    Spec {
        fields,
        aliases,
        required,
        search,
    }
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn pictures() -> Value {
    json!({ "thumb": null, "display": null, "large": null, "original": null })
}

/// The record a create starts from, with every field Rackbeat shows (relations as null
/// placeholders, filled when the record is read).
pub fn template(r: Resource) -> Map<String, Value> {
    // Built in parts: one json! of a whole item exceeds the macro's recursion limit.
    let parts = match r {
        Resource::Product => vec![
            item_head("product"),
            json!({
                "min_order": 0, "min_sales": 1, "min_stock": 0,
                "stock_quantity": 0, "in_order_quantity": 0, "available_quantity": 0,
                "purchased_quantity": 0, "used_in_production_quantity": 0,
                "default_supplier_id": null, "default_location_id": 1, "default_location": null,
                "picture_url": null, "pictures": pictures(),
                "is_barred": false, "is_convertable": true, "inventory_enabled": true,
                "should_assure_quality": false,
            }),
            json!({
                "group_id": null, "group": null, "discount_group": null,
                "unit_id": null, "unit": null, "variation_id": null, "variation": null,
                "physical": { "weight": 0, "weight_unit": "kg", "height": 0, "width": 0, "depth": 0, "size_unit": "cm" },
                "serial_numbers": { "is_active": false, "index": null },
                "batch_control": { "is_active": false },
                "created_at": null, "updated_at": null, "deleted_at": null, "pdf_url": null,
                "department_id": null, "department": null, "goods_code": null, "country_code": null,
                "self": null
            }),
        ],
        Resource::Lot => vec![
            item_head("lot"),
            json!({
                "default_location_id": 1,
                "stock_quantity": 0, "in_order_quantity": 0, "available_quantity": 0,
                "purchased_quantity": 0, "used_in_production_quantity": 0,
                "min_order": 0, "min_sales": 1, "min_stock": 0, "min_produced": 1,
                "picture_url": null, "pictures": pictures(),
            }),
            json!({
                "inventory_enabled": true, "recommended_cost_is_locked": false, "cost_is_locked": false,
                "is_barred": false, "adjust_to_zero": false,
                "group_id": null, "discount_group": null, "unit_id": null, "pdf_url": null,
                "created_at": null, "updated_at": null, "deleted_at": null,
                "lines": [],
                "self": null
            }),
        ],
        Resource::Customer => vec![json!({
            "number": null, "name": null, "company_vat": null, "ean": null,
            "address_street": null, "address_street2": null, "address_city": null,
            "address_zipcode": null, "address_country": null,
            "contact_email": null, "contact_phone": null,
            "locale": "nb", "currency": "NOK", "vat_zone": "domestic",
            "payment_terms_id": null, "payment_terms": null,
            "layout_id": 1, "customer_group_id": 1, "employee_id": null,
            "our_reference": null, "their_reference": null, "attention": null,
            "max_credit": 0.0, "general_discount_percentage": 0.0,
            "is_barred": false, "is_deleted": false, "addresses": [],
            "created_at": null, "updated_at": null, "self": null
        })],
        // (?) Whether suppliers are called `name` or `company_name` today is unconfirmed: both
        // are shown, and either is accepted on write.
        Resource::Supplier => vec![json!({
            "number": null, "name": null, "company_name": null, "company_vat": null,
            "address_street": null, "address_street2": null, "address_city": null,
            "address_zipcode": null, "address_country": null,
            "contact_email": null, "contact_phone": null,
            "locale": "nb", "currency": "NOK", "vat_zone": "domestic",
            "payment_terms_id": null, "supplier_group_id": 1,
            "is_barred": false, "is_deleted": false,
            "created_at": null, "updated_at": null, "self": null
        })],
        Resource::CustomerInvoice => vec![json!({
            "number": null, "heading": null, "note": null,
            "currency": "NOK", "currency_rate": 1.0,
            "total_subtotal": 0.0, "total_total": 0.0, "total_base_currency": 0.0, "balance": 0.0,
            "is_booked": false, "booked_at": null, "invoice_date": null,
            "is_creditnote": false, "credited_invoice_number": null,
            "is_paid": false, "is_party_paid": false, "is_overpaid": false,
            "due_date": null, "customer_id": null, "customer": null, "order_id": null,
            "address_street": null, "address_street2": null, "address_city": null,
            "address_zipcode": null, "address_country": null,
            "lines": [],
            "created_at": null, "updated_at": null, "self": null
        })],
        Resource::PaymentTerm => vec![json!({
            "number": null, "name": null, "description": null,
            "type": null, "type_translated": null, "maturity_days": null,
            "created_at": null, "updated_at": null, "self": null
        })],
        Resource::Employee => vec![json!({
            "number": null, "name": null, "initials": null,
            "contact_phone": null, "contact_email": null, "locale": "nb", "job_title": null,
            "should_notify": false, "default_location_id": 1, "default_location": null,
            "created_at": null, "updated_at": null, "self": null
        })],
        Resource::ProductGroup => vec![json!({
            "number": null, "name": null,
            "has_inventory": true, "is_sellable": true, "should_spread_cost": false,
            "vat_domestic": 25, "vat_eu": 0, "vat_abroad": 0, "vat_domestic_exempt": 0,
            "created_at": null, "updated_at": null, "self": null
        })],
        Resource::Unit => vec![json!({
            "number": null, "name": null, "created_at": null, "updated_at": null, "self": null
        })],
    };
    parts.into_iter().flat_map(obj).collect()
}

/// The fields products and lots start with, in the samples' order.
fn item_head(kind: &str) -> Value {
    json!({
        "id": null, "number": null, "urlfriendly_number": null, "type": kind,
        "barcode": null, "name": null, "description": null,
        "sales_price": 0.0, "recommended_sales_price": 0.0, "sales_profit": 0.0,
        "cost_price": 0.0, "recommended_cost_price": 0.0, "cost_addition_percentage": 0,
    })
}

/// The single location the sandbox has (Rackbeat's default warehouse).
pub fn default_location() -> Value {
    json!({ "number": 1, "name": "Hovedlager", "is_default": true, "parent_id": null })
}

/// A number as an item's URL-safe form: runs of anything but letters and digits become one
/// dash (`HYLLE/30 #2 B` → `HYLLE-30-2-B`).
pub fn urlfriendly(number: &str) -> String {
    let mut out = String::with_capacity(number.len());
    for c in number.chars() {
        if c.is_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// Laravel's name for a field in messages: `sales_price` → `sales price`.
pub fn attribute(field: &str) -> String {
    field.replace('_', " ")
}

/// Checks one written value and converts it to what is stored; `Err` is the end of a Laravel
/// message ("must be a number").
pub fn coerce(kind: Kind, v: &Value) -> Result<Value, &'static str> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    match kind {
        Text => match v {
            Value::String(_) => Ok(v.clone()),
            Value::Number(n) => Ok(Value::String(n.to_string())),
            _ => Err("must be a string"),
        },
        Num => match v {
            Value::Number(_) => Ok(v.clone()),
            Value::String(s) => parse_number(s).ok_or("must be a number"),
            _ => Err("must be a number"),
        },
        Price => as_f64(v).map(Value::from).ok_or("must be a number"),
        Int => match v {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .map(Value::from)
                .ok_or("must be an integer"),
            Value::String(s) => s
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| "must be an integer"),
            _ => Err("must be an integer"),
        },
        Bool => match v {
            Value::Bool(_) => Ok(v.clone()),
            Value::Number(n) if n.as_i64() == Some(0) => Ok(Value::Bool(false)),
            Value::Number(n) if n.as_i64() == Some(1) => Ok(Value::Bool(true)),
            Value::String(s) if s == "0" || s == "false" => Ok(Value::Bool(false)),
            Value::String(s) if s == "1" || s == "true" => Ok(Value::Bool(true)),
            _ => Err("field must be true or false"),
        },
        Obj => match v {
            Value::Object(_) => Ok(v.clone()),
            _ => Err("must be an array"),
        },
        Date => match v {
            Value::String(s) if super::time::parse_day(s).is_some() => Ok(v.clone()),
            _ => Err("is not a valid date"),
        },
    }
}

fn parse_number(s: &str) -> Option<Value> {
    if let Ok(i) = s.parse::<i64>() {
        return Some(Value::from(i));
    }
    s.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(Value::from)
}

/// A JSON number, or a numeric string, as f64.
pub fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// Laravel's input middleware: strings are trimmed and empty ones become null, at any depth.
pub fn laravel_input(v: Value) -> Value {
    match v {
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() {
                Value::Null
            } else {
                Value::String(t.to_string())
            }
        }
        Value::Array(a) => Value::Array(a.into_iter().map(laravel_input).collect()),
        Value::Object(o) => {
            Value::Object(o.into_iter().map(|(k, v)| (k, laravel_input(v))).collect())
        }
        other => other,
    }
}
