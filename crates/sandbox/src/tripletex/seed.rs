//! The sandbox company, generated deterministically from the seed: reference data with
//! Tripletex's quirks (VAT type ids that differ from their codes, a bank account on ledger account
//! 1920), then customers, suppliers, products, employees, and a year of orders and invoices.
//! Natural keys stay clear of other sandboxes' (customers from 50001, suppliers from 60001,
//! products `TX-…`).

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::body::finish_address;
use super::entities::finish_account;
use super::sales::{InvoiceRequest, create_order, seed_invoice};
use super::store::{Db, Kind, Record, from_decimal, reference};
use super::time;
use crate::config::{DataSize, SandboxConfig};

/// The bank account number the seed company has registered (MOD11-valid).
pub const BANK_ACCOUNT: &str = "11111111113";
pub const COMPANY_ORG_NUMBER: &str = "984809085";

fn rec(v: Value) -> Record {
    match v {
        Value::Object(o) => o,
        _ => Record::new(),
    }
}

struct Sizes {
    customers: usize,
    suppliers: usize,
    products: usize,
    employees: usize,
    orders: usize,
}

pub fn seed(config: &SandboxConfig) -> Db {
    let sizes = match config.data {
        DataSize::Small => Sizes {
            customers: 8,
            suppliers: 5,
            products: 12,
            employees: 4,
            orders: 6,
        },
        DataSize::Large => Sizes {
            customers: 2500,
            suppliers: 600,
            products: 4000,
            employees: 120,
            orders: 1500,
        },
    };
    let sizes = Sizes {
        customers: config.customers.unwrap_or(sizes.customers),
        ..sizes
    };
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut db = Db::new();
    reference_data(&mut db);
    let department = db.insert(
        Kind::Department,
        rec(json!({"name": "Hovedavdeling", "departmentNumber": "1", "displayName": "1 Hovedavdeling"})),
    );
    employees(&mut db, &mut rng, department, sizes.employees);
    company(&mut db);
    accounts(&mut db);
    let customers = parties(&mut db, &mut rng, Kind::Customer, sizes.customers);
    let suppliers = parties(&mut db, &mut rng, Kind::Supplier, sizes.suppliers);
    let products = products(&mut db, &mut rng, &suppliers, sizes.products);
    orders(&mut db, &mut rng, &customers, &products, sizes.orders);
    db
}

fn reference_data(db: &mut Db) {
    let currencies = [
        (1, "NOK", "Norske kroner", 1, "1"),
        (2, "SEK", "Svenske kroner", 100, "0.97"),
        (3, "DKK", "Danske kroner", 100, "1.58"),
        (4, "USD", "Amerikanske dollar", 1, "10.85"),
        (5, "EUR", "Euro", 1, "11.75"),
        (6, "GBP", "Britiske pund", 1, "13.62"),
        (7, "CHF", "Sveitsiske franc", 1, "12.31"),
        (8, "PLN", "Polske zloty", 100, "2.74"),
    ];
    for (id, code, description, factor, rate) in currencies {
        let r = rec(
            json!({"code": code, "description": description, "factor": factor,
            "displayName": format!("{code} {description}"), "_rate": rate.parse::<f64>().unwrap_or(1.0)}),
        );
        db.insert_with_id(Kind::Currency, id, r);
    }
    db.nok_id = 1;
    let countries = [
        (161, "Norge", "NO", "NOR", "578"),
        (207, "Sverige", "SE", "SWE", "752"),
        (59, "Danmark", "DK", "DNK", "208"),
        (73, "Finland", "FI", "FIN", "246"),
        (82, "Tyskland", "DE", "DEU", "276"),
        (78, "Storbritannia", "GB", "GBR", "826"),
        (232, "USA", "US", "USA", "840"),
        (156, "Nederland", "NL", "NLD", "528"),
        (75, "Frankrike", "FR", "FRA", "250"),
        (176, "Polen", "PL", "POL", "616"),
        (68, "Spania", "ES", "ESP", "724"),
        (110, "Italia", "IT", "ITA", "380"),
        (105, "Island", "IS", "ISL", "352"),
        (69, "Estland", "EE", "EST", "233"),
        (121, "Latvia", "LV", "LVA", "428"),
        (127, "Litauen", "LT", "LTU", "440"),
        (22, "Belgia", "BE", "BEL", "056"),
        (15, "Østerrike", "AT", "AUT", "040"),
        (43, "Sveits", "CH", "CHE", "756"),
        (103, "Irland", "IE", "IRL", "372"),
        (46, "Kina", "CN", "CHN", "156"),
        (113, "Japan", "JP", "JPN", "392"),
        (40, "Canada", "CA", "CAN", "124"),
    ];
    for (id, name, iso2, iso3, num) in countries {
        let r = rec(
            json!({"name": name, "displayName": name, "isoAlpha2Code": iso2,
            "isoAlpha3Code": iso3, "isoNumericCode": num}),
        );
        db.insert_with_id(Kind::Country, id, r);
    }
    // Ids differ from the codes (`number`), as in real companies: id 32 is code 33.
    let vat_types = [
        (0, "0", "Ingen avgiftsbehandling", 0, "BOTH"),
        (1, "1", "Fradrag inngående avgift, høy sats", 25, "INCOMING"),
        (
            11,
            "11",
            "Fradrag inngående avgift, middels sats",
            15,
            "INCOMING",
        ),
        (
            12,
            "13",
            "Fradrag inngående avgift, lav sats",
            12,
            "INCOMING",
        ),
        (3, "3", "Utgående avgift, høy sats", 25, "OUTGOING"),
        (31, "31", "Utgående avgift, middels sats", 15, "OUTGOING"),
        (32, "33", "Utgående avgift, lav sats", 12, "OUTGOING"),
        (
            5,
            "5",
            "Ingen utgående avgift (innenfor mva-loven)",
            0,
            "OUTGOING",
        ),
        (
            6,
            "6",
            "Ingen utgående avgift (utenfor mva-loven)",
            0,
            "OUTGOING",
        ),
        (
            52,
            "52",
            "Utførsel av varer og tjenester, fritatt",
            0,
            "OUTGOING",
        ),
    ];
    for (id, number, name, pct, kind) in vat_types {
        let r = rec(
            json!({"number": number, "name": name, "displayName": format!("{number} {name}"),
            "percentage": pct, "deductionPercentage": if kind == "INCOMING" { 100 } else { 0 },
            "_typeOfVat": kind}),
        );
        db.insert_with_id(Kind::VatType, id, r);
    }
    let units = [
        ("Stykk", "stk", "Piece", "pcs", "H87"),
        ("Kilogram", "kg", "Kilogram", "kg", "KGM"),
        ("Liter", "l", "Litre", "l", "LTR"),
        ("Meter", "m", "Metre", "m", "MTR"),
        ("Time", "t", "Hour", "h", "HUR"),
        ("Pakke", "pk", "Package", "pkg", "PK"),
        ("Kvadratmeter", "m2", "Square metre", "m2", "MTK"),
        ("Sett", "sett", "Set", "set", "SET"),
    ];
    for (name, short, en, short_en, code) in units {
        db.insert(
            Kind::ProductUnit,
            rec(json!({"name": name, "nameShort": short, "nameEN": en, "nameShortEN": short_en,
                "commonCode": code, "displayName": name, "displayNameShort": short, "isDeletable": false})),
        );
    }
}

fn company(db: &mut Db) {
    let address = address(db, Kind::Address, "Sandkassegata 1", "0150", "Oslo", 161);
    let id = db.insert(
        Kind::Company,
        rec(
            json!({"name": "Sandkasse Demo AS", "displayName": "Sandkasse Demo AS",
            "organizationNumber": COMPANY_ORG_NUMBER, "email": "post@sandkasse.example",
            "phoneNumber": "+47 22 00 00 00", "address": reference(address), "type": "AS",
            "currency": reference(1), "startDate": "2015-01-01"}),
        ),
    );
    db.company_id = id;
}

fn accounts(db: &mut Db) {
    let accounts: [(i64, &str, &str, &str, Option<i64>); 11] = [
        (1500, "Kundefordringer", "ASSETS", "CUSTOMER", None),
        (1920, "Bankinnskudd", "ASSETS", "GENERAL", None),
        (
            1950,
            "Bankinnskudd for skattetrekk",
            "ASSETS",
            "GENERAL",
            None,
        ),
        (2400, "Leverandørgjeld", "LIABILITIES", "VENDOR", None),
        (
            2700,
            "Utgående merverdiavgift",
            "LIABILITIES",
            "GENERAL",
            None,
        ),
        (
            3000,
            "Salgsinntekt, avgiftspliktig",
            "OPERATING_REVENUES",
            "GENERAL",
            Some(3),
        ),
        (
            3100,
            "Salgsinntekt, avgiftsfri",
            "OPERATING_REVENUES",
            "GENERAL",
            Some(5),
        ),
        (
            4000,
            "Innkjøp av råvarer og halvfabrikata",
            "OPERATING_EXPENSES",
            "GENERAL",
            Some(1),
        ),
        (
            4300,
            "Innkjøp av varer for videresalg",
            "OPERATING_EXPENSES",
            "GENERAL",
            Some(1),
        ),
        (
            5000,
            "Lønn til ansatte",
            "OPERATING_EXPENSES",
            "GENERAL",
            None,
        ),
        (
            6300,
            "Leie lokale",
            "OPERATING_EXPENSES",
            "GENERAL",
            Some(0),
        ),
    ];
    for (number, name, ty, ledger, vat) in accounts {
        let mut r = rec(
            json!({"number": number, "name": name, "type": ty, "ledgerType": ledger,
            "currency": reference(1), "vatType": vat.map_or(Value::Null, reference),
            "vatLocked": vat.is_some(), "isApplicableForSupplierInvoice": ty == "OPERATING_EXPENSES",
            "balanceGroup": if ty == "ASSETS" || ty == "LIABILITIES" { "BALANCE" } else { "RESULT" }}),
        );
        if number == 1920 || number == 1950 {
            r.insert("isBankAccount".into(), json!(true));
            r.insert("bankAccountCountry".into(), reference(161));
        }
        if number == 1920 {
            r.insert("isInvoiceAccount".into(), json!(true));
            r.insert("bankAccountNumber".into(), json!(BANK_ACCOUNT));
            r.insert("bankName".into(), json!("Sandkassebanken"));
        }
        finish_account(&mut r);
        db.insert(Kind::Account, r);
    }
}

const FIRST_NAMES: [&str; 16] = [
    "Ola", "Kari", "Per", "Ingrid", "Lars", "Marit", "Jonas", "Nora", "Emil", "Sofie", "Henrik",
    "Ida", "Magnus", "Thea", "Sindre", "Hanne",
];
const LAST_NAMES: [&str; 14] = [
    "Hansen",
    "Johansen",
    "Olsen",
    "Larsen",
    "Andersen",
    "Pedersen",
    "Nilsen",
    "Kristiansen",
    "Jensen",
    "Karlsen",
    "Haugen",
    "Berg",
    "Dahl",
    "Solberg",
];

fn employees(db: &mut Db, rng: &mut StdRng, department: i64, n: usize) {
    let owner = db.insert(
        Kind::Employee,
        rec(
            json!({"firstName": "Sandra", "lastName": "Sandvik", "displayName": "Sandra Sandvik",
            "employeeNumber": "1", "email": "sandra.sandvik@sandkasse.example",
            "phoneNumberMobile": "+47 900 00 001", "userType": "EXTENDED",
            "department": reference(department), "dateOfBirth": "1980-04-12",
            "allowInformationRegistration": true}),
        ),
    );
    db.owner_employee_id = owner;
    for i in 1..n {
        let (first, last) = (pick(rng, &FIRST_NAMES), pick(rng, &LAST_NAMES));
        let email = format!("{}.{}{i}@sandkasse.example", ascii(first), ascii(last));
        db.insert(
            Kind::Employee,
            rec(json!({"firstName": first, "lastName": last, "displayName": format!("{first} {last}"),
                "employeeNumber": (i + 1).to_string(), "email": email,
                "phoneNumberMobile": format!("+47 9{:02} {:02} {:03}", rng.random_range(0..100u32),
                    rng.random_range(0..100u32), rng.random_range(0..1000u32)),
                "userType": if i % 3 == 0 { "NO_ACCESS" } else { "STANDARD" },
                "department": reference(department),
                "dateOfBirth": time::format(time::parse("1960-01-01").unwrap_or(0) + rng.random_range(0..14_000i64))})),
        );
    }
    // An accountant's proxy login, which integrations should leave out.
    db.insert(
        Kind::Employee,
        rec(json!({"firstName": "Regnskapsfører", "lastName": "Proxy", "displayName": "Regnskapsfører Proxy",
            "email": "proxy@regnskap.example", "userType": "EXTENDED", "isProxy": true,
            "department": reference(department)})),
    );
}

fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

/// A name as ASCII for e-mail addresses and web sites.
fn ascii(s: &str) -> String {
    s.to_lowercase()
        .chars()
        .flat_map(|c| match c {
            'æ' => "ae".chars().collect::<Vec<_>>(),
            'ø' => vec!['o'],
            'å' => vec!['a'],
            c if c.is_ascii_alphanumeric() => vec![c],
            _ => vec!['-'],
        })
        .collect::<String>()
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// A MOD11-valid Norwegian organisation number.
fn org_number(rng: &mut StdRng) -> String {
    const WEIGHTS: [u32; 8] = [3, 2, 7, 6, 5, 4, 3, 2];
    loop {
        let mut digits = vec![rng.random_range(8..10u32)];
        digits.extend((0..7).map(|_| rng.random_range(0..10u32)));
        let sum: u32 = digits.iter().zip(WEIGHTS).map(|(d, w)| d * w).sum();
        let check = match 11 - sum % 11 {
            11 => 0,
            10 => continue,
            c => c,
        };
        digits.push(check);
        return digits
            .iter()
            .filter_map(|d| char::from_digit(*d, 10))
            .collect();
    }
}

const PLACES: [(&str, &str); 10] = [
    ("0150", "Oslo"),
    ("5003", "Bergen"),
    ("7010", "Trondheim"),
    ("4006", "Stavanger"),
    ("9008", "Tromsø"),
    ("3015", "Drammen"),
    ("4610", "Kristiansand"),
    ("1606", "Fredrikstad"),
    ("6002", "Ålesund"),
    ("2317", "Hamar"),
];
const STREETS: [&str; 8] = [
    "Storgata",
    "Kongens gate",
    "Strandveien",
    "Industriveien",
    "Fjordgata",
    "Sjøgata",
    "Parkveien",
    "Havnegata",
];
/// Foreign customers and suppliers: country id, currency id, a city.
const FOREIGN: [(i64, i64, &str, &str); 4] = [
    (207, 2, "111 20", "Stockholm"),
    (82, 5, "20095", "Hamburg"),
    (59, 3, "1050", "København"),
    (78, 6, "EC1A 1BB", "London"),
];

fn address(db: &mut Db, kind: Kind, line: &str, postal: &str, city: &str, country: i64) -> i64 {
    let mut a = rec(
        json!({"addressLine1": line, "postalCode": postal, "city": city,
        "country": reference(country)}),
    );
    finish_address(&mut a);
    db.insert(kind, a)
}

fn parties(db: &mut Db, rng: &mut StdRng, kind: Kind, n: usize) -> Vec<i64> {
    const PREFIXES: [&str; 20] = [
        "Fjord", "Nord", "Vest", "Fjell", "Havbris", "Skog", "Bryggen", "Elve", "Lys", "Sol",
        "Kyst", "Berg", "Dal", "Vik", "Strand", "Furu", "Bjørk", "Lade", "Nidar", "Polar",
    ];
    const TRADES: [&str; 15] = [
        "Bygg",
        "Handel",
        "Trelast",
        "Maskin",
        "Elektro",
        "Rør",
        "Transport",
        "Interiør",
        "Verksted",
        "Data",
        "Mat",
        "Sport",
        "Marine",
        "Design",
        "Service",
    ];
    const SUPPLIES: [&str; 6] = [
        "Engros",
        "Import",
        "Grossist",
        "Industri",
        "Produksjon",
        "Lager",
    ];
    let (number_field, first_number) = match kind {
        Kind::Supplier => ("supplierNumber", 60_001),
        _ => ("customerNumber", 50_001),
    };
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let trade = if kind == Kind::Supplier {
            pick(rng, &SUPPLIES)
        } else {
            pick(rng, &TRADES)
        };
        let private = kind == Kind::Customer && i % 7 == 3;
        let foreign = (i % 5 == 4).then(|| FOREIGN[(i / 5) % FOREIGN.len()]);
        let name = if private {
            format!("{} {}", pick(rng, &FIRST_NAMES), pick(rng, &LAST_NAMES))
        } else {
            let form = match foreign {
                Some((82, ..)) => "GmbH",
                Some((207, ..)) => "AB",
                Some((78, ..)) => "Ltd",
                Some(_) => "ApS",
                None => ["AS", "AS", "AS", "ANS", "DA"][i % 5],
            };
            format!("{}{} {form}", pick(rng, &PREFIXES), trade.to_lowercase())
        };
        let slug = ascii(&name);
        let (line, postal, city, country, currency) = match foreign {
            Some((country, currency, postal, city)) => (
                format!(
                    "{} {}",
                    pick(
                        rng,
                        &["Hauptstraße", "Storgatan", "High Street", "Vestergade"]
                    ),
                    rng.random_range(1..200u32)
                ),
                postal,
                city,
                country,
                currency,
            ),
            None => {
                let (postal, city) = PLACES[rng.random_range(0..PLACES.len())];
                (
                    format!("{} {}", pick(rng, &STREETS), rng.random_range(1..120u32)),
                    postal,
                    city,
                    161,
                    1,
                )
            }
        };
        let postal_address = address(db, Kind::Address, &line, postal, city, country);
        let physical = address(db, Kind::Address, &line, postal, city, country);
        let delivery = address(db, Kind::DeliveryAddress, &line, postal, city, country);
        let number = first_number + i64::try_from(i).unwrap_or(0);
        let mut r = rec(json!({
            "name": name,
            "organizationNumber": if private || foreign.is_some() { String::new() } else { org_number(rng) },
            "email": if private { format!("{slug}@epost.example") } else { format!("post@{slug}.example") },
            "invoiceEmail": if private { String::new() } else { format!("faktura@{slug}.example") },
            "phoneNumber": format!("+47 {:08}", rng.random_range(20_000_000..80_000_000u32)),
            "isPrivateIndividual": private,
            "isInactive": i % 8 == 6,
            "language": if foreign.is_some() { "EN" } else { "NO" },
            "currency": reference(currency),
            "postalAddress": reference(postal_address),
            "physicalAddress": reference(physical),
            "deliveryAddress": reference(delivery),
            "displayName": format!("{name} ({number})"),
            "website": if private { String::new() } else { format!("www.{slug}.example") },
        }));
        r.insert(number_field.into(), json!(number));
        if kind == Kind::Customer {
            let (due_in, due_type) = match i % 6 {
                1 => (30, "DAYS"),
                2 => (1, "MONTHS"),
                3 => (10, "DAYS"),
                5 => (20, "RECURRING_DAY_OF_MONTH"),
                _ => (14, "DAYS"),
            };
            for (k, v) in [
                ("isCustomer", json!(true)),
                (
                    "invoiceSendMethod",
                    json!(if private { "PAPER" } else { "EMAIL" }),
                ),
                ("emailAttachmentType", json!("LINK")),
                ("invoicesDueIn", json!(due_in)),
                ("invoicesDueInType", json!(due_type)),
                ("discountPercentage", json!(if i % 4 == 1 { 5 } else { 0 })),
            ] {
                r.insert(k.into(), v);
            }
        } else {
            r.insert("isSupplier".into(), json!(true));
            r.insert(
                "locale".into(),
                json!(if foreign.is_some() { "en_GB" } else { "nb_NO" }),
            );
        }
        ids.push(db.insert(kind, r));
    }
    ids
}

/// A valid EAN-13 from twelve digits.
fn ean13(rng: &mut StdRng) -> String {
    let digits: Vec<u32> = std::iter::once(7)
        .chain(std::iter::once(0))
        .chain((0..10).map(|_| rng.random_range(0..10u32)))
        .collect();
    let sum: u32 = digits
        .iter()
        .enumerate()
        .map(|(i, d)| if i % 2 == 0 { *d } else { d * 3 })
        .sum();
    let check = (10 - sum % 10) % 10;
    digits
        .iter()
        .chain(std::iter::once(&check))
        .filter_map(|d| char::from_digit(*d, 10))
        .collect()
}

fn products(db: &mut Db, rng: &mut StdRng, suppliers: &[i64], n: usize) -> Vec<i64> {
    const NOUNS: [&str; 16] = [
        "Hylle", "Reol", "Skrue", "Bolt", "Plate", "Lampe", "Kabel", "Stol", "Bord", "Skap",
        "Hammer", "Sag", "Drill", "Mutter", "Beslag", "Lister",
    ];
    const KINDS: [&str; 10] = [
        "Galvanisert",
        "Eik",
        "Furu",
        "Stål",
        "Hvit",
        "Sort",
        "Industri",
        "Mini",
        "Maxi",
        "Premium",
    ];
    let units: Vec<i64> = db
        .values(Kind::ProductUnit)
        .filter_map(|u| u.get("id")?.as_i64())
        .collect();
    let revenue = db
        .values(Kind::Account)
        .find(|a| a.get("number") == Some(&json!(3000)))
        .and_then(|a| a.get("id")?.as_i64());
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("{} {}", pick(rng, &KINDS), pick(rng, &NOUNS).to_lowercase());
        let number = format!("TX-{}", 1001 + i);
        let cents = [0, 50, 90][rng.random_range(0..3)];
        let price = Decimal::new(i64::from(rng.random_range(49..5000u32)) * 100 + cents, 2);
        // Most goods at 25%, some food at 15% and some books at 0%.
        let (vat, pct) = match i % 10 {
            7 => (31, Decimal::new(15, 0)),
            9 => (5, Decimal::ZERO),
            _ => (3, Decimal::new(25, 0)),
        };
        let incl = (price * (Decimal::ONE + pct / Decimal::ONE_HUNDRED)).round_dp(2);
        let cost = (price * Decimal::new(rng.random_range(40..75i64), 2)).round_dp(2);
        let mut r = rec(json!({
            "name": name,
            "number": number,
            "displayNumber": number,
            "displayName": format!("{number} {name}"),
            "description": format!("{name}, varenummer {number}"),
            "priceExcludingVatCurrency": from_decimal(price),
            "priceIncludingVatCurrency": from_decimal(incl),
            "costExcludingVatCurrency": from_decimal(cost),
            "costPrice": from_decimal(cost),
            "profit": from_decimal(price - cost),
            "profitInPercent": from_decimal(((price - cost) * Decimal::ONE_HUNDRED / price).round_dp(2)),
            "discountPrice": from_decimal(price),
            "vatType": reference(vat),
            "currency": reference(1),
            "isStockItem": i % 3 != 2,
            "isInactive": i % 10 == 8,
            "weight": from_decimal(Decimal::new(rng.random_range(1..5000i64), 2)),
            "weightUnit": "kg",
            "volumeUnit": "cm3",
            "isDeletable": true,
        }));
        if let Some(unit) = units.get(i % 3) {
            r.insert("productUnit".into(), reference(*unit));
        }
        if i % 2 == 0 {
            r.insert("ean".into(), json!(ean13(rng)));
        }
        if let Some(s) = suppliers.get(i % (suppliers.len() + 1)) {
            r.insert("supplier".into(), reference(*s));
        }
        if let Some(a) = revenue {
            r.insert("account".into(), reference(a));
        }
        ids.push(db.insert(Kind::Product, r));
    }
    ids
}

/// A year (2025) of orders; most are invoiced on their delivery date.
fn orders(db: &mut Db, rng: &mut StdRng, customers: &[i64], products: &[i64], n: usize) {
    let active = |db: &Db, kind: Kind, ids: &[i64]| -> Vec<i64> {
        ids.iter()
            .copied()
            .filter(|id| {
                db.get(kind, *id)
                    .is_some_and(|r| r.get("isInactive") != Some(&json!(true)))
            })
            .collect()
    };
    let (customers, products) = (
        active(db, Kind::Customer, customers),
        active(db, Kind::Product, products),
    );
    if customers.is_empty() || products.is_empty() {
        return;
    }
    let start = time::parse("2025-01-02").unwrap_or(0);
    let mut days: Vec<i64> = (0..n)
        .map(|_| start + rng.random_range(0..360i64))
        .collect();
    days.sort_unstable();
    for (i, day) in days.into_iter().enumerate() {
        let customer = customers[rng.random_range(0..customers.len())];
        let delivery = day + rng.random_range(0..7i64);
        let lines: Vec<Value> = (0..rng.random_range(1..5usize))
            .map(|_| {
                let product = products[rng.random_range(0..products.len())];
                let mut line =
                    json!({"product": {"id": product}, "count": rng.random_range(1..11u32)});
                if rng.random_range(0..6u32) == 0 {
                    line["discount"] = json!(10);
                }
                line
            })
            .collect();
        let reference_text = format!("Ordre {}", 9000 + i);
        let body = rec(
            json!({"customer": {"id": customer}, "orderDate": time::format(day),
            "deliveryDate": time::format(delivery), "reference": reference_text, "orderLines": lines}),
        );
        let order = create_order(db, &body);
        if i % 10 < 7 {
            let req = InvoiceRequest {
                invoice_date: delivery,
                due_date: None,
                send: false,
                paid_amount: None,
                payment_type_id: None,
            };
            seed_invoice(db, order, &req);
        }
    }
}
