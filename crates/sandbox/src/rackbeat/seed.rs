//! Seed data, deterministic from the seed. The records of the reference samples come first, as
//! in the samples (VARE-1001, SETT-10, customer 10001, the booked invoice for 8 × VARE-1001), with
//! a few awkward item numbers (`HYLLE/30 #2 B`, `MERK-日本`); then generated Norwegian-looking
//! records in the same shapes. Everything goes through the store's own create, so seed records
//! are exactly what the API would have made.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

use super::error::ApiError;
use super::resources::Resource;
use super::store::Store;
use super::time::{self, Unix};
use crate::config::DataSize;

struct Counts {
    employees: usize,
    suppliers: usize,
    customers: usize,
    products: usize,
    lots: usize,
    invoices: usize,
    drafts: usize,
}

/// Generated records on top of the fixed ones.
fn counts(size: DataSize) -> Counts {
    match size {
        DataSize::Small => Counts {
            employees: 2,
            suppliers: 3,
            customers: 7,
            products: 6,
            lots: 1,
            invoices: 5,
            drafts: 1,
        },
        DataSize::Large => Counts {
            employees: 40,
            suppliers: 400,
            customers: 3000,
            products: 5000,
            lots: 400,
            invoices: 2000,
            drafts: 50,
        },
    }
}

const GROUPS: &[(i64, &str, bool, f64)] = &[
    (1001, "Varer", true, 25.0),
    (1002, "Tjenester", false, 25.0),
    (1003, "Næringsmidler", true, 15.0),
    (1004, "Persontransport", false, 12.0),
    (1005, "Avgiftsfritt", true, 0.0),
];
const UNITS: &[&str] = &["stk", "kg", "sett", "m", "l", "time"];
const TERMS: &[(&str, &str, i64)] = &[
    ("Netto 14 dager", "net", 14),
    ("Netto 30 dager", "net", 30),
    ("Løpende måned + 30 dager", "end_of_month", 30),
    ("Kontant", "cash", 0),
    ("Forskudd", "prepayment", 0),
];
const NOUNS: &[&str] = &[
    "Hylleknekt",
    "Hyllebord",
    "Skrue",
    "Mutter",
    "Skive",
    "Stolpe",
    "Brakett",
    "Vinkeljern",
    "Hengsel",
    "Lås",
    "Krok",
    "Gulvlist",
    "Plate",
    "Rør",
    "Kabel",
    "Lampe",
    "Bryter",
    "Stikkontakt",
    "Oppbevaringskasse",
    "Boks",
    "Pall",
    "Tau",
    "Kjetting",
    "Malingspann",
    "Pensel",
    "Tape",
    "Lim",
    "Arbeidshanske",
    "Vernebrille",
    "Verktøykasse",
];
const MATERIALS: &[&str] = &[
    "galvanisert",
    "rustfri",
    "svart",
    "hvit",
    "eik",
    "furu",
    "aluminium",
    "messing",
    "plast",
    "kraftig",
];
const SIZES: &[&str] = &[
    "10 cm", "20 cm", "30 cm", "50 cm", "80 cm", "1 m", "2 m", "M6", "M8", "M10", "5 l", "1 kg",
];
const PLACES: &[&str] = &[
    "Fjord", "Nord", "Vest", "Fjell", "Elve", "Bygde", "Kyst", "Skog", "Sol", "Havne", "Dal",
    "Berg", "Øst", "Sør", "Vik", "Ås",
];
const TRADES: &[&str] = &[
    "Bygg",
    "Rør",
    "Elektro",
    "Maskin",
    "Transport",
    "Handel",
    "Interiør",
    "Snekkeri",
    "Eiendom",
    "Marin",
    "Landbruk",
    "Verksted",
];
const FIRST: &[&str] = &[
    "Ola", "Kari", "Per", "Anne", "Lars", "Ingrid", "Jonas", "Silje", "Morten", "Hanne", "Øyvind",
    "Åse", "Bjørn", "Marte", "Emil", "Nora",
];
const LAST: &[&str] = &[
    "Nordmann",
    "Hansen",
    "Johansen",
    "Olsen",
    "Larsen",
    "Andersen",
    "Pedersen",
    "Nilsen",
    "Kristiansen",
    "Jensen",
    "Berg",
    "Haugen",
    "Hagen",
    "Dahl",
    "Lie",
    "Aasen",
];
const STREETS: &[&str] = &[
    "Strandveien",
    "Storgata",
    "Kirkegata",
    "Industriveien",
    "Havnegata",
    "Fjordgata",
    "Skolegata",
    "Bryggen",
    "Sjøgata",
    "Parkveien",
];
/// `(city, zip code, country, VAT zone, locale, currency)`.
const CITIES: &[(&str, &str, &str, &str, &str, &str)] = &[
    ("Oslo", "0150", "NO", "domestic", "nb", "NOK"),
    ("Bergen", "5003", "NO", "domestic", "nb", "NOK"),
    ("Trondheim", "7010", "NO", "domestic", "nb", "NOK"),
    ("Stavanger", "4006", "NO", "domestic", "nb", "NOK"),
    ("Tromsø", "9008", "NO", "domestic", "nb", "NOK"),
    ("Kristiansand", "4610", "NO", "domestic", "nb", "NOK"),
    ("Drammen", "3015", "NO", "domestic", "nb", "NOK"),
    ("Bodø", "8006", "NO", "domestic", "nb", "NOK"),
    ("Ålesund", "6002", "NO", "domestic", "nn", "NOK"),
    ("Hamar", "2317", "NO", "domestic", "nb", "NOK"),
];
const FOREIGN: &[(&str, &str, &str, &str, &str, &str)] = &[
    ("Göteborg", "411 14", "SE", "eu", "sv", "SEK"),
    ("København", "1050", "DK", "eu", "da", "DKK"),
    ("Hamburg", "20095", "DE", "eu", "de", "EUR"),
    ("London", "SW1A 1AA", "GB", "abroad", "en", "GBP"),
];
const JOBS: &[&str] = &[
    "Selger",
    "Lagermedarbeider",
    "Innkjøper",
    "Daglig leder",
    "Regnskapsfører",
];

/// `(number, name, group, unit, sales price, cost price, stock, other fields)`.
type FixedProduct = (&'static str, &'static str, i64, i64, f64, f64, i64, Value);

struct Seeder<'a> {
    store: &'a mut Store,
    rng: StdRng,
}

/// The oldest and newest instants generated records get.
fn seed_start() -> Unix {
    at(2024, 1, 2, 8, 0, 0)
}
fn seed_end() -> Unix {
    at(2025, 12, 31, 16, 0, 0)
}

/// A local time written as in the samples.
fn at(y: i16, m: i8, d: i8, h: i8, mi: i8, s: i8) -> Unix {
    time::from_local(jiff::civil::datetime(y, m, d, h, mi, s, 0))
}

impl Seeder<'_> {
    fn pick<'b, T>(&mut self, xs: &'b [T]) -> &'b T {
        &xs[self.rng.random_range(0..xs.len())]
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    /// A creation time and a later update time, both within the seed period.
    fn stamps(&mut self) -> (Unix, Unix) {
        let created = self
            .rng
            .random_range(seed_start()..seed_end() - 200 * 86_400);
        let updated = (created + self.rng.random_range(0..180 * 86_400)).min(seed_end());
        (created, updated)
    }

    fn put(
        &mut self,
        r: Resource,
        body: Value,
        (created, updated): (Unix, Unix),
    ) -> Result<String, ApiError> {
        let (key, _) = self.store.create(r, body, created)?;
        self.store.patch(r, &key, |rec| rec.updated = updated);
        Ok(key)
    }

    /// Sets an item's cost and stock figures, which no API write sets.
    fn stock(
        &mut self,
        r: Resource,
        key: &str,
        cost: f64,
        stock: i64,
        in_order: i64,
        purchased: i64,
    ) {
        self.store.patch(r, key, |rec| {
            rec.data.insert("cost_price".into(), cost.into());
            rec.data.insert("stock_quantity".into(), stock.into());
            rec.data.insert("in_order_quantity".into(), in_order.into());
            rec.data
                .insert("purchased_quantity".into(), purchased.into());
        });
    }

    fn price(&mut self, lo: f64, hi: f64) -> f64 {
        let whole = self.rng.random_range(lo..hi).floor();
        whole + self.pick(&[0.0, 0.5, 0.9])
    }

    fn digits(&mut self, n: usize) -> Vec<u32> {
        (0..n).map(|_| self.rng.random_range(0..10)).collect()
    }

    /// A Norwegian EAN-13 with a valid check digit.
    fn barcode(&mut self) -> String {
        let mut d = vec![7, 0, 9];
        d.extend(self.digits(9));
        let sum: u32 = d
            .iter()
            .enumerate()
            .map(|(i, x)| if i % 2 == 0 { *x } else { x * 3 })
            .sum();
        d.push((10 - sum % 10) % 10);
        d.iter().map(u32::to_string).collect()
    }

    /// A Norwegian organisation number with a valid MOD11 check digit.
    fn org_number(&mut self) -> String {
        const WEIGHTS: [u32; 8] = [3, 2, 7, 6, 5, 4, 3, 2];
        loop {
            let mut d = vec![self.rng.random_range(8..10)];
            d.extend(self.digits(7));
            let sum: u32 = d.iter().zip(WEIGHTS).map(|(a, w)| a * w).sum();
            let check = match 11 - sum % 11 {
                11 => 0,
                10 => continue,
                c => c,
            };
            d.push(check);
            return d.iter().map(u32::to_string).collect();
        }
    }

    fn phone(&mut self) -> String {
        let d: String = self.digits(6).iter().map(u32::to_string).collect();
        format!(
            "+47 {} {} {} {}",
            self.pick(&["22", "55", "73", "51", "90", "41"]),
            &d[0..2],
            &d[2..4],
            &d[4..6]
        )
    }

    fn person(&mut self) -> String {
        format!("{} {}", self.pick(FIRST), self.pick(LAST))
    }
}

/// Letters and digits of a name, lower-cased and in ASCII, for e-mail addresses.
fn slug(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .filter_map(|c| match c {
            'æ' => Some('e'),
            'ø' | 'ö' => Some('o'),
            'å' | 'ä' => Some('a'),
            c if c.is_ascii_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

pub fn seed(store: &mut Store, seed: u64, size: DataSize) -> Result<(), ApiError> {
    let n = counts(size);
    let mut s = Seeder {
        store,
        rng: StdRng::seed_from_u64(seed),
    };
    let early = (seed_start(), seed_start());

    for &(number, name, has_inventory, vat) in GROUPS {
        let body = json!({
            "number": number, "name": name, "has_inventory": has_inventory, "is_sellable": true,
            "vat_domestic": vat, "vat_eu": 0, "vat_abroad": 0, "vat_domestic_exempt": 0,
        });
        s.put(Resource::ProductGroup, body, early)?;
    }
    for (i, name) in UNITS.iter().enumerate() {
        s.put(
            Resource::Unit,
            json!({ "number": i + 1, "name": name }),
            early,
        )?;
    }
    for (i, (name, kind, days)) in TERMS.iter().enumerate() {
        let body = json!({ "number": i + 1, "name": name, "type": kind, "maturity_days": days });
        s.put(Resource::PaymentTerm, body, early)?;
    }

    // Employees: number 1 is the sales rep of the sample customer.
    let mut employees = vec![s.put(
        Resource::Employee,
        json!({ "number": 1, "name": "Kari Nordmann", "initials": "KN", "contact_email": "kari@sandkasse.example.no",
                "contact_phone": "+47 90 00 00 01", "job_title": "Selger", "should_notify": true }),
        early,
    )?];
    for i in 0..n.employees {
        let name = s.person();
        let initials: String = name.split(' ').filter_map(|p| p.chars().next()).collect();
        let email = format!(
            "{}.{}@sandkasse.example.no",
            slug(&name).get(..3).unwrap_or("x"),
            i + 2
        );
        let body = json!({
            "number": i + 2, "name": name, "initials": initials, "contact_email": email,
            "contact_phone": s.phone(), "job_title": s.pick(JOBS), "should_notify": s.chance(0.3),
        });
        let stamps = s.stamps();
        employees.push(s.put(Resource::Employee, body, stamps)?);
    }

    // Suppliers: 2001 supplies the sample product.
    let mut suppliers = vec![s.put(
        Resource::Supplier,
        json!({ "number": 2001, "name": "Nordisk Stål Engros AS", "company_vat": "NO987654325MVA",
                "address_street": "Industriveien 4", "address_city": "Drammen", "address_zipcode": "3015",
                "address_country": "NO", "contact_email": "ordre@nordiskstal.example.no",
                "contact_phone": "+47 32 00 00 00", "payment_terms_id": 2 }),
        (at(2024, 3, 4, 9, 0, 0), at(2024, 9, 12, 13, 20, 0)),
    )?];
    for i in 0..n.suppliers {
        let (city, zip, country, zone, locale, currency) = if s.chance(0.85) {
            *s.pick(CITIES)
        } else {
            *s.pick(FOREIGN)
        };
        let name = format!(
            "{} {} Engros {}",
            s.pick(PLACES),
            s.pick(TRADES),
            if country == "NO" { "AS" } else { "AB" }
        );
        let vat = if country == "NO" {
            Some(format!("NO{}MVA", s.org_number()))
        } else {
            None
        };
        let body = json!({
            "number": 2002 + i, "name": name, "company_vat": vat,
            "address_street": format!("{} {}", s.pick(STREETS), s.rng.random_range(1..120)),
            "address_city": city, "address_zipcode": zip, "address_country": country,
            "contact_email": format!("ordre@{}.example.no", slug(&name)), "contact_phone": s.phone(),
            "locale": locale, "currency": currency, "vat_zone": zone,
            "payment_terms_id": s.rng.random_range(1..=3), "is_barred": s.chance(0.03),
        });
        let stamps = s.stamps();
        suppliers.push(s.put(Resource::Supplier, body, stamps)?);
    }

    // Customers: 10001 is sample 09.
    let mut customers = vec![s.put(
        Resource::Customer,
        json!({
            "number": 10001, "name": "Fjord Bygg AS", "company_vat": "NO999888777MVA",
            "address_street": "Strandveien 12", "address_city": "Bergen", "address_zipcode": "5003",
            "address_country": "NO", "contact_email": "post@fjordbygg.example.no",
            "contact_phone": "+47 55 00 00 00", "locale": "nb", "currency": "NOK", "vat_zone": "domestic",
            "payment_terms_id": 1, "layout_id": 1, "customer_group_id": 1, "employee_id": 1,
            "their_reference": "Kari Nordmann", "max_credit": 50000.0, "general_discount_percentage": 0.0,
            "addresses": [{ "id": 55, "type": "delivery", "name": "Fjord Bygg AS lager", "street": "Kaien 3",
                            "zipcode": "5004", "city": "Bergen", "country": "NO" }],
        }),
        (at(2024, 6, 1, 12, 0, 0), at(2025, 2, 1, 9, 30, 0)),
    )?];
    for i in 0..n.customers {
        let (city, zip, country, zone, locale, currency) = if s.chance(0.9) {
            *s.pick(CITIES)
        } else {
            *s.pick(FOREIGN)
        };
        let company = s.chance(0.85);
        let name = if company {
            format!(
                "{} {} {}",
                s.pick(PLACES),
                s.pick(TRADES),
                s.pick(&["AS", "AS", "AS", "ANS", "DA"])
            )
        } else {
            s.person()
        };
        let vat = match (company, country) {
            (true, "NO") => Some(format!("NO{}MVA", s.org_number())),
            (true, "SE") => Some(format!(
                "SE{}01",
                s.digits(10).iter().map(u32::to_string).collect::<String>()
            )),
            (true, "DK") => Some(format!(
                "DK{}",
                s.digits(8).iter().map(u32::to_string).collect::<String>()
            )),
            (true, "DE") => Some(format!(
                "DE{}",
                s.digits(9).iter().map(u32::to_string).collect::<String>()
            )),
            _ => None,
        };
        let street = format!("{} {}", s.pick(STREETS), s.rng.random_range(1..120));
        let addresses = if s.chance(0.3) {
            json!([{ "type": "delivery", "name": format!("{name} lager"),
                     "street": format!("{} {}", s.pick(STREETS), s.rng.random_range(1..60)),
                     "zipcode": zip, "city": city, "country": country }])
        } else {
            json!([])
        };
        let employee = if s.chance(0.7) {
            Some(s.pick(&employees).clone())
        } else {
            None
        };
        let body = json!({
            "number": 10002 + i, "name": name, "company_vat": vat,
            "address_street": street, "address_city": city, "address_zipcode": zip, "address_country": country,
            "contact_email": format!("post@{}{}.example.no", slug(&name), i + 2),
            "contact_phone": s.phone(), "locale": locale, "currency": currency, "vat_zone": zone,
            "payment_terms_id": *s.pick(&[1, 1, 1, 2, 2, 3, 4, 5]), "employee_id": employee,
            "their_reference": if company { Some(s.person()) } else { None },
            "max_credit": *s.pick(&[0.0, 10000.0, 50000.0, 100000.0]),
            "general_discount_percentage": *s.pick(&[0.0, 0.0, 0.0, 0.0, 5.0, 10.0]),
            "is_barred": s.chance(0.02), "addresses": addresses,
        });
        let stamps = s.stamps();
        customers.push(s.put(Resource::Customer, body, stamps)?);
    }

    // Products: sample 07 and its neighbours in the sample lots and invoices first.
    let fixed: &[FixedProduct] = &[
        (
            "VARE-1001",
            "Hylleknekt 30 cm",
            1001,
            1,
            149.0,
            64.5,
            240,
            json!({ "barcode": "7090012345678",
            "description": "Galvanisert stål", "recommended_sales_price": 179.0, "recommended_cost_price": 60.0,
            "min_stock": 10, "default_supplier_id": 2001, "goods_code": "73269098", "country_code": "NO",
            "physical": { "weight": 0.35, "weight_unit": "kg", "height": 3, "width": 4, "depth": 30, "size_unit": "cm" } }),
        ),
        (
            "VARE-3003",
            "Hyllebord 80 cm",
            1001,
            1,
            79.0,
            30.0,
            120,
            json!({ "default_supplier_id": 2001 }),
        ),
        (
            "VARE-2001",
            "Smøreolje 1 l",
            1003,
            5,
            89.0,
            41.0,
            60,
            json!({}),
        ),
        (
            "VARE-3001",
            "Frakt Oslo → Tromsø",
            1004,
            1,
            100.0,
            0.0,
            0,
            json!({ "inventory_enabled": false }),
        ),
        (
            "HYLLE/30 #2 B",
            "Hylleknekt ÆØÅ 🛠️ 棚受け",
            1001,
            1,
            99.99,
            41.123456789,
            240,
            json!({ "description": "Rustfri – «marin» kvalitet", "default_supplier_id": 2001 }),
        ),
        (
            "SKRUE M6/40 #8",
            "Skrue M6×40 galv.",
            1001,
            1,
            1.9,
            0.4125,
            5000,
            json!({}),
        ),
        (
            "STOLPE 200",
            "Stolpe 200 cm – blå",
            1001,
            4,
            249.0,
            120.0,
            40,
            json!({}),
        ),
        (
            "MERK-日本",
            "Merkelapp 日本語 æøå",
            1001,
            1,
            4.9,
            1.0,
            300,
            json!({}),
        ),
    ];
    let mut products = Vec::new();
    for (i, (number, name, group, unit, price, cost, stock, extra)) in fixed.iter().enumerate() {
        let mut body = json!({ "number": number, "name": name, "group": group, "unit_id": unit,
                               "sales_price": price, "recommended_cost_price": cost, "stock_quantity": stock });
        if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
            b.extend(e.clone());
        }
        let stamps = if i == 0 {
            (at(2024, 11, 2, 10, 11, 12), at(2025, 2, 27, 14, 3, 55))
        } else {
            (at(2024, 10, 1, 8, 0, 0), at(2025, 1, 9, 15, 0, 0))
        };
        let key = s.put(Resource::Product, body, stamps)?;
        let (in_order, purchased) = if i == 0 { (12, 100) } else { (0, 0) };
        s.stock(Resource::Product, &key, *cost, *stock, in_order, purchased);
        products.push(key);
    }
    for i in 0..n.products {
        let noun = *s.pick(NOUNS);
        let name = if s.chance(0.5) {
            format!("{noun} {} {}", s.pick(MATERIALS), s.pick(SIZES))
        } else {
            format!("{noun} {}", s.pick(SIZES))
        };
        // Now and then a number that needs percent-encoding in a path.
        let number = match i % 53 {
            17 => format!("ART/{} #{}", 4000 + i, s.rng.random_range(1..9)),
            35 => format!("{} {}", noun.to_uppercase(), 4000 + i),
            _ => format!("VARE-{}", 4000 + i),
        };
        let group = *s.pick(&[1001, 1001, 1001, 1001, 1001, 1001, 1003, 1002, 1005]);
        let price = s.price(9.0, 4999.0);
        let expected = ((price * s.rng.random_range(0.35..0.65)) * 100.0).round() / 100.0;
        let stock = if group == 1002 {
            0
        } else {
            s.rng.random_range(0..500)
        };
        let barcode = if s.chance(0.7) {
            Some(s.barcode())
        } else {
            None
        };
        let body = json!({
            "number": number, "name": name, "group": group,
            "unit_id": if noun == "Tau" || noun == "Kabel" { 4 } else { *s.pick(&[1, 1, 1, 1, 2]) },
            "barcode": barcode, "description": if s.chance(0.3) { Some(format!("{noun} til proff bruk")) } else { None },
            "sales_price": price, "recommended_sales_price": ((price * 1.2) * 100.0).round() / 100.0,
            "recommended_cost_price": expected, "stock_quantity": stock,
            "min_stock": *s.pick(&[0, 0, 5, 10, 25]), "min_sales": 1,
            "default_supplier_id": s.pick(&suppliers).parse::<i64>().ok(),
            "inventory_enabled": group != 1002, "is_barred": s.chance(0.03),
            "physical": { "weight": (s.rng.random_range(0.05..25.0_f64) * 100.0).round() / 100.0, "weight_unit": "kg" },
        });
        let stamps = s.stamps();
        let key = s.put(Resource::Product, body, stamps)?;
        let cost = ((expected * s.rng.random_range(0.95..1.05)) * 100.0).round() / 100.0;
        let in_order = s.rng.random_range(0..=stock.min(20));
        let purchased = stock + s.rng.random_range(0..200);
        s.stock(Resource::Product, &key, cost, stock, in_order, purchased);
        products.push(key);
    }

    // Lots: sample 08 and a nested one holding it (lots can contain lots).
    let sett10 = s.put(
        Resource::Lot,
        json!({ "number": "SETT-10", "name": "Hyllesett 3 hyller", "group": 1001, "unit_id": 1,
                "sales_price": 899.0, "recommended_sales_price": 999.0, "recommended_cost_price": 470.0,
                "stock_quantity": 5,
                "lines": [{ "product_id": "VARE-1001", "quantity": 6 }, { "product_id": "VARE-3003", "quantity": 3 }] }),
        (at(2025, 1, 10, 8, 0, 0), at(2025, 1, 10, 8, 0, 0)),
    )?;
    let nested = s.put(
        Resource::Lot,
        json!({ "number": "SETT/20 #B", "name": "Lagerreol komplett – 2 × hyllesett 🧰", "description": "Komplett reol",
                "barcode": "7090012345999", "group": 1001, "unit_id": 3,
                "sales_price": 2499.5, "recommended_sales_price": 2699.0, "recommended_cost_price": 1255.125,
                "stock_quantity": 1,
                "lines": [{ "product_id": "SETT-10", "quantity": 2.0 }, { "product_id": "SKRUE M6/40 #8", "quantity": 24 },
                          { "product_id": "STOLPE 200", "quantity": 2.5 }, { "product_id": "MERK-日本", "quantity": 1 }] }),
        (at(2025, 1, 10, 8, 0, 0), at(2025, 1, 10, 8, 0, 0)),
    )?;
    let mut lots = vec![sett10, nested];
    for i in 0..n.lots {
        let mut lines = Vec::new();
        let mut price = 0.0;
        for _ in 0..s.rng.random_range(2..=5) {
            let (component, qty) = if s.chance(0.15) {
                (s.pick(&lots).clone(), 1)
            } else {
                (s.pick(&products).clone(), s.rng.random_range(1..=12))
            };
            if lines
                .iter()
                .any(|l: &Value| l["product_id"] == component.as_str())
            {
                continue;
            }
            let sales = s
                .store
                .get(Resource::Product, &component)
                .or_else(|| s.store.get(Resource::Lot, &component));
            price += sales.and_then(|v| v["sales_price"].as_f64()).unwrap_or(0.0) * qty as f64;
            lines.push(json!({ "product_id": component, "quantity": qty }));
        }
        let body = json!({
            "number": format!("SETT-{}", 101 + i), "name": format!("{}sett {}", s.pick(NOUNS), i + 1),
            "group": 1001, "unit_id": 3, "sales_price": (price * 0.9).round(), "stock_quantity": s.rng.random_range(0..20),
            "lines": lines,
        });
        let stamps = s.stamps();
        lots.push(s.put(Resource::Lot, body, stamps)?);
    }

    // Customer invoices: sample 10 first.
    let first = s.put(
        Resource::CustomerInvoice,
        json!({ "customer_id": 10001, "heading": "Ordre 10042", "order_id": 10042,
                "lines": [{ "item_id": "VARE-1001", "quantity": 8, "line_price": 149.0 }] }),
        (at(2025, 3, 1, 9, 58, 0), at(2025, 3, 1, 10, 0, 0)),
    )?;
    s.store.book(&first, at(2025, 3, 1, 10, 0, 0))?;
    for i in 0..n.invoices + n.drafts {
        let draft = i >= n.invoices;
        let customer = s.pick(&customers).clone();
        let mut lines = Vec::new();
        for _ in 0..s.rng.random_range(1..=4) {
            let line = if s.chance(0.05) {
                json!({ "name": "Merk: levert i to pakker", "quantity": 0, "line_price": 0 })
            } else {
                let item = if s.chance(0.1) {
                    s.pick(&lots).clone()
                } else {
                    s.pick(&products).clone()
                };
                json!({ "item_id": item, "quantity": s.rng.random_range(1..=20) })
            };
            lines.push(line);
        }
        let order = 10043 + i;
        let body = json!({ "customer_id": customer.parse::<i64>().ok(), "heading": format!("Ordre {order}"),
                           "order_id": order, "lines": lines });
        let created = if draft {
            s.rng.random_range(seed_end() - 20 * 86_400..seed_end())
        } else {
            s.rng
                .random_range(at(2025, 1, 2, 8, 0, 0)..seed_end() - 86_400)
        };
        let booked = created + s.rng.random_range(60..7200);
        let key = s.put(
            Resource::CustomerInvoice,
            body,
            (created, if draft { created } else { booked }),
        )?;
        if !draft {
            s.store.book(&key, booked)?;
        }
    }
    Ok(())
}
