//! The YAML contract: what an integrator writes. These types are the only ones serialized or turned
//! into JSON Schema; the runtime never executes them directly (see `plan`). `yaml` loads a file
//! with spans, `schema_check` turns JSON Schema errors into diagnostics, `report` points each at
//! its place, `diagnostic` renders them.

pub mod diagnostic;
pub mod report;
pub mod schema_check;
pub mod yaml;

use std::borrow::Cow;

use indexmap::IndexMap;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

pub use diagnostic::{Code, Diagnostic, Severity};
pub use report::Cx;
pub use schema_check::schema_check;
pub use yaml::{Document, Spans};

/// One mapping file: how one entity moves in one direction.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "rbtx mapping", extend("$id" = "https://rbtx.dev/schemas/mapping.schema.json"))]
pub struct Mapping {
    /// Version of the mapping language. Only `1` exists.
    #[schemars(range(min = 1, max = 1))]
    pub version: u32,
    /// The entity this file maps, in snake_case (`product`, `customer`, `payment_term`, …). References
    /// (`ref('customer', …)`) name entities of the same direction by this name.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9_]*$"))]
    pub entity: String,
    /// Which way records flow.
    pub direction: Direction,
    /// For entities with alternative mappings (customer invoices), the mode this file implements. The
    /// tenant's configuration picks one mode per entity; files without a mode are always active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z][a-z0-9_]*$"))]
    pub mode: Option<String>,
    /// Source events that trigger this mapping (Rackbeat webhook names such as `product.created`).
    /// Only `rackbeat_to_tripletex` mappings have triggers; the other direction runs in the initial sync.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on: Vec<EventName>,
    /// Expression over `source`; when it is false the record is skipped (and the skip is logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// How to read source records.
    pub source: Source,
    /// How to find, create and update the target record.
    pub target: Target,
    /// Named lookup tables used in templates as `lookup('name', key)`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub lookups: IndexMap<String, Lookup>,
    /// The target request body: one node per target field.
    pub body: IndexMap<String, Node>,
    /// Body fields that do not come back equal when a Tripletex record travels to Rackbeat (the
    /// initial sync) and back (this mapping), each with the reason (`rackbeat_to_tripletex` only).
    /// The round trip of `rbtx test` fails on a loss that is not listed here.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub round_trip_losses: IndexMap<String, String>,
    /// How `rbtx reconcile` lists the target's records and compares them with what this mapping
    /// would send now (`rackbeat_to_tripletex` only). A mapping without it is not reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile: Option<Reconcile>,
    /// Where a person opens a record of this mapping in each system's web app: the console links
    /// each synced record there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<Links>,
}

/// Web addresses of one record, `{key}` standing for its Rackbeat key and `{id}` for its
/// Tripletex id (`https://tripletex.no/execute/productMenu?productId={id}`); no other braces.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Links {
    /// The record in Rackbeat (`{key}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rackbeat: Option<String>,
    /// The record in Tripletex (`{id}`, and `{key}` if need be).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tripletex: Option<String>,
}

/// What `rbtx reconcile` reads of the target, in pages, and what it compares.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reconcile {
    /// Requests that together list the target's records, each paged by the connector (use two
    /// where Tripletex hides inactive records unless asked). `fields` must return every body field
    /// compared, nested objects expanded (`postalAddress(*)`). Mappings that list the same path
    /// and query share one read.
    pub list: Vec<ListRequest>,
    /// Expression over `item`, a listed record: only records for which it holds are this
    /// mapping's (an order list also holds the orders people make in Tripletex, and those of
    /// invoices). Others are neither compared, reported nor summed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only: Option<String>,
    /// For documents: the list's query parameters that take the period of `--since` and
    /// `--until` (`YYYY-MM-DD`, `until` exclusive, as Tripletex's `invoiceDateTo` is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// The body field, named the same in the target's records, that holds a document's date:
    /// a Rackbeat record belongs to the period when its body's date does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// For documents that are never changed once sent (a booked invoice): their totals are
    /// compared, to the øre, instead of their fields, and summed over the period on both sides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<Totals>,
}

/// The query parameters a period goes into.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Period {
    /// The first day's parameter, e.g. `invoiceDateFrom`.
    pub from: String,
    /// The parameter of the day after the last, e.g. `invoiceDateTo`.
    pub until: String,
}

/// A document's total on both sides.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    /// Template over `source` and `body`: the Rackbeat document's total as Tripletex should hold
    /// it (a credit note's negative).
    pub source: String,
    /// Template over `item`, a record of the list: Tripletex's total.
    pub target: String,
}

/// Which system is read and which is written.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Real-time: Rackbeat webhooks drive writes to Tripletex.
    RackbeatToTripletex,
    /// One-off initial sync: Tripletex lists drive writes to Rackbeat.
    TripletexToRackbeat,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::RackbeatToTripletex => "rackbeat_to_tripletex",
            Direction::TripletexToRackbeat => "tripletex_to_rackbeat",
        }
    }
    /// The system records are read from.
    pub fn source(self) -> Connection {
        match self {
            Direction::RackbeatToTripletex => Connection::Rackbeat,
            Direction::TripletexToRackbeat => Connection::Tripletex,
        }
    }
    /// The system records are written to.
    pub fn target(self) -> Connection {
        match self {
            Direction::RackbeatToTripletex => Connection::Tripletex,
            Direction::TripletexToRackbeat => Connection::Rackbeat,
        }
    }
}

/// One of the two APIs rbtx talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Connection {
    Rackbeat,
    Tripletex,
}

impl Connection {
    /// The product's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Connection::Rackbeat => "Rackbeat",
            Connection::Tripletex => "Tripletex",
        }
    }
}

/// A Rackbeat webhook event name: `<resource>.<verb>`, e.g. `lot.created`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct EventName(#[schemars(regex(pattern = r"^[a-z_]+\.[a-z_]+$"))] pub String);

/// Where source records come from. Envelopes and paging belong to the connector.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Path template that reads one record by its key (variable `key`), e.g.
    /// `/products/{{ key | urlencode }}`. Needed by mappings with triggers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub get: Option<String>,
    /// JSONPath that selects the record inside the response of `get` (e.g. `$.product`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<String>,
    /// Requests that together list every record (initial sync, catch-up). Each is paged by the
    /// connector; use several to cover, say, active and inactive customers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub list: Vec<ListRequest>,
    /// Lists the records changed since a time, so that several waiting events of this entity (a
    /// burst, or a backlog the rate limit built up) are read with one request, a page at a time,
    /// instead of a `get` each. A lone event is still read with `get`, and a key the list does not
    /// return falls back to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<ChangedRequest>,
    /// Template over `source` giving the record's key, under which its binding is remembered.
    pub key: String,
}

/// A list of the records changed since a time.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangedRequest {
    /// Path, e.g. `/products`; the connector pages it.
    pub path: String,
    /// Query parameters (constant strings), e.g. the order of the list.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub query: IndexMap<String, String>,
    /// The query parameter that takes the time (`YYYY-MM-DD HH:MM:SS`), e.g. `updated_at_from`:
    /// rbtx sets it an hour before the oldest waiting event was received.
    pub since: String,
}

/// One paged list request.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    /// Path, e.g. `/customer`.
    pub path: String,
    /// Query parameters (constant strings).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub query: IndexMap<String, String>,
}

/// How the target record is found, created and updated.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The body field that holds the natural key (`number`, `customerNumber`, …). It must be set in
    /// `body`; a record whose natural key is empty is rejected rather than created blind.
    pub natural_key: String,
    /// The field of the target record that identifies it: the binding keeps it, and `ref()` to
    /// this entity resolves to it. Tripletex records have `id`; Rackbeat's are known by `number`.
    #[serde(
        default = "default_id_field",
        skip_serializing_if = "is_default_id_field"
    )]
    pub id: String,
    /// Finds an existing record by its natural key before anything is created (variables `source`,
    /// `body`). The first list item for which `match` holds is the existing record.
    pub find: FindRequest,
    /// Lists the records already in the target, a page at a time, before the initial sync writes
    /// this entity, keeping only their natural keys: a record whose key is not among them is
    /// created without a `find` request (one request per record instead of two).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<ListRequest>,
    /// Creates the record.
    pub create: WriteRequest,
    /// Updates an existing record (variables `source`, `body`, `target`). Without it, an existing
    /// record is left as it is (invoices are never sent twice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<WriteRequest>,
    /// Requests that handle many records at once, used when several records of this entity are
    /// synced together: one find for all their natural keys, one create and one update per
    /// `size` records. A lone record uses `find`, `create` and `update`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchRequests>,
    /// A second request sent once after the create, on the record it made (variable `created`,
    /// the create's answer, besides `source` and `body`): an order invoiced as a credit note.
    /// The record is bound before it is sent, and its own success is bound too, so a restart
    /// between the two requests neither creates the record again nor sends this twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub then: Option<ThenRequest>,
}

/// The bulk form of a target's requests.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequests {
    /// The `find.query` parameter that takes a comma-separated list of natural keys, so that one
    /// find looks up a whole batch (`productNumber`). Each record keeps the items whose natural
    /// key is its own. Without it, each record is looked up alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub find_param: Option<String>,
    /// Creates many records: the body is the list of the records' bodies, and the answer lists
    /// the records created in the same order (`POST /product/list`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<BatchWrite>,
    /// Updates many records; each item carries its `id` and `version` (`PUT /product/list`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<BatchWrite>,
    /// Records per request, 2 to 1,000.
    #[serde(default = "default_batch_size")]
    pub size: usize,
}

fn default_batch_size() -> usize {
    100
}

/// A request that writes a list of bodies.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchWrite {
    /// HTTP method.
    pub method: WriteMethod,
    /// Path (constant).
    pub path: String,
}

/// The follow-up request of `target.then`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThenRequest {
    /// HTTP method.
    pub method: WriteMethod,
    /// Path template (variables `source`, `body`, `created`), e.g.
    /// `/order/{{ created.id }}/:invoice`.
    pub path: String,
    /// Query parameter templates (variables `source`, `body`, `created`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub query: IndexMap<String, String>,
    /// Looks for what the request makes before it is sent again after a restart (variables
    /// `source`, `body`, `created`; `item` in `match`): when an item matches, the step is done.
    /// Without it, a restart right after the request was answered sends it once more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub find: Option<FindRequest>,
}

fn default_id_field() -> String {
    "id".into()
}

fn is_default_id_field(f: &String) -> bool {
    f == "id"
}

/// A GET that looks the target record up.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindRequest {
    /// Path template.
    pub path: String,
    /// Query parameter templates.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub query: IndexMap<String, String>,
    /// Expression over `item` (one record of the response), `body` and `source`; the default takes
    /// the first record returned.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "match")]
    pub matches: Option<String>,
    /// Query parameters (constant strings) set over `query` for a second request when the first
    /// finds no match. Tripletex hides inactive customers and suppliers unless asked
    /// (`isInactive: "true"`), and a record that exists must be found, not created again.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub fallback_query: IndexMap<String, String>,
}

/// A request that writes the body.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteRequest {
    /// HTTP method.
    pub method: WriteMethod,
    /// Path template.
    pub path: String,
    /// Query parameter templates, e.g. `sendToCustomer: "false"`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub query: IndexMap<String, String>,
    /// What an `update` carries (a create always sends the whole body): `changed`, the fields
    /// whose mapped value differs from the body last sent (plus `id` and `version`), so fields set
    /// by hand in the target survive; or `all`, the whole body, for an API whose PUT replaces the
    /// record.
    #[serde(default, skip_serializing_if = "UpdateFields::is_changed")]
    pub send: UpdateFields,
    /// `true`: the request carries no body, for Tripletex actions that take query parameters only
    /// (`PUT /invoice/{id}/:createCreditNote`). The body is still rendered: the binding keeps it,
    /// and `find` and the query read it as `body`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub without_body: bool,
}

/// What an update sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpdateFields {
    /// The fields that differ from the body last sent, with `id` and `version`.
    #[default]
    Changed,
    /// The whole body.
    All,
}

impl UpdateFields {
    fn is_changed(&self) -> bool {
        *self == UpdateFields::Changed
    }
}

/// Methods that write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum WriteMethod {
    Post,
    Put,
}

impl WriteMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            WriteMethod::Post => "POST",
            WriteMethod::Put => "PUT",
        }
    }
}

/// A lookup table, used in templates as `lookup('name', key)`. Keys are compared as text, and whole
/// numbers lose their `.0` (`25.0` finds the entry `"25"`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Lookup {
    /// A table written in the mapping.
    Static {
        /// Key → value.
        entries: IndexMap<String, serde_json::Value>,
        /// Value for keys not in `entries`; without it a missing key is an error for that record.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        default: Option<serde_json::Value>,
    },
    /// A table read once per tenant from a list endpoint (e.g. Tripletex VAT types, whose ids differ
    /// between companies).
    Api {
        /// Which API to read.
        connection: Connection,
        /// List path, e.g. `/ledger/vatType`.
        path: String,
        /// Query parameters (constant strings).
        #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
        query: IndexMap<String, String>,
        /// Field of each listed record used as the key (e.g. `number`).
        key: String,
        /// Field of each listed record returned as the value (e.g. `id`). Without it, the value is
        /// the whole record, for a table whose entries have several fields a template picks from
        /// (`lookup('product_group', n)['vat_' ~ zone]`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<String>,
    },
}

/// A node of the target body.
///
/// * a string is a template: `"{{ expr }}"` alone keeps the expression's type (number, bool, object,
///   list); text around or between `{{ }}` makes a string; no `{{` at all is a constant string;
/// * a number, boolean or null is a constant;
/// * a list is a list of nodes;
/// * a mapping is an object of nodes, with optional directives, keys starting with `$`:
///   `$when` (expression; the field is left out when false), `$for_each` (JSONPath; the node becomes
///   a list with one item per match, bound to `$as`, default `item`), `$value` (the node's value, for
///   a condition or loop over a non-object), `$join` (join the list's items into one string),
///   `$create_only` (`true`: sent when the record is created, never on an update).
///
/// A field whose value is none or undefined is left out of the body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Node(pub serde_json::Value);

/// Directive keys a mapping node may carry.
pub const DIRECTIVES: &[&str] = &[
    "$when",
    "$for_each",
    "$as",
    "$value",
    "$join",
    "$create_only",
];

impl JsonSchema for Node {
    fn schema_name() -> Cow<'static, str> {
        "Node".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let node = generator.subschema_for::<Node>();
        json_schema!({
            "description": "A body node: a template string, a constant, a list of nodes, or an object of nodes with optional `$` directives.",
            "type": ["string", "number", "boolean", "null", "array", "object"],
            "items": node,
            "properties": {
                "$when": { "type": "string", "description": "Expression; the field is left out when it is false." },
                "$for_each": { "type": "string", "description": "JSONPath over the source (`$…`) or the enclosing item (`@…`); the node becomes a list." },
                "$as": { "type": "string", "pattern": "^[a-z_][a-z0-9_]*$", "description": "Name of the loop variable (default `item`)." },
                "$value": node,
                "$join": { "type": "string", "description": "Join the items of a `$for_each` list into one string with this separator." },
                "$create_only": { "type": "boolean", "description": "`true`: the field is sent when the record is created, never on an update (a value derived once, then kept by hand in the target)." }
            },
            "additionalProperties": node
        })
    }
}

/// A file of unit tests for one mapping, beside it as `<name>.test.yaml`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "rbtx mapping tests",
    extend("$id" = "https://rbtx.dev/schemas/mapping-test.schema.json")
)]
pub struct TestFile {
    /// The mapping under test, relative to this file.
    pub mapping: String,
    /// Fixtures shared by every case; a case's own fixtures are layered on top.
    #[serde(default)]
    pub fixtures: Fixtures,
    /// The cases.
    pub cases: Vec<TestCase>,
}

/// What the engine would have resolved through the APIs, given as data.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fixtures {
    /// Entity → source key → target id (`ref('customer', 10001)` → `refs.customer["10001"]`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub refs: IndexMap<String, IndexMap<String, serde_json::Value>>,
    /// API lookup name → key → value.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub lookups: IndexMap<String, IndexMap<String, serde_json::Value>>,
    /// Entity → source key → what `bound('entity', key)` returns: `{ id, body }`, the target id
    /// and the body last sent. A key not listed is not bound.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub bindings: IndexMap<String, IndexMap<String, serde_json::Value>>,
}

/// One case: a source record in, the exact requests out.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// What the case shows.
    pub name: String,
    /// The source record, inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<serde_json::Value>,
    /// The source record, from a JSON file relative to this file (the response of `source.get`, or
    /// one listed record; `select` applies when `source.get` has one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_file: Option<String>,
    /// The key a webhook would name, to check the path `source.get` reads (with `expect_get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The path `source.get` must read for `key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_get: Option<String>,
    /// The lookup `target.find` must send for this record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_find: Option<ExpectedRequest>,
    /// The existing target record that `find` returned; without it the record is new.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<serde_json::Value>,
    /// Fixtures for this case only.
    #[serde(default)]
    pub fixtures: Fixtures,
    /// The requests the mapping must produce, in order (empty when nothing is written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Vec<ExpectedRequest>>,
    /// The expected requests, from a JSON file relative to this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_file: Option<String>,
    /// The record must be skipped by `when`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expect_skip: bool,
    /// The record must fail with an error containing this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_error: Option<String>,
}

/// A request as the engine would send it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectedRequest {
    pub method: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub query: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
}

/// The JSON Schema of a mapping file, as committed in `schemas/mapping.schema.json`.
pub fn mapping_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Mapping)).unwrap_or_default()
}

/// The JSON Schema of a mapping test file, as committed in `schemas/mapping-test.schema.json`.
pub fn test_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(TestFile)).unwrap_or_default()
}
