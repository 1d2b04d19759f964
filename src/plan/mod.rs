//! Compiling mapping files into plans the engine executes. `rbtx validate` and start-up both call
//! [`load_pack`]: if it returns no diagnostics, the runtime can run what it returns.
//!
//! This file holds the plan types; `load` finds and loads the pack, `compile` compiles one
//! mapping, `checks` relates the mappings of a pack, and `jsonpath` compiles and walks JSONPaths.

mod checks;
mod compile;
mod jsonpath;
mod load;
mod requests;
mod shapes;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use crate::expr::{StaticTable, Template};
use crate::spec::{Connection, Diagnostic, Direction, UpdateFields, WriteMethod};

pub use compile::{RefUse, compile};
pub use jsonpath::{JsonPath, Matches};
pub use load::{discover, is_mapping_file, load_pack};

/// A compiled mapping.
#[derive(Debug)]
pub struct Plan {
    pub file: PathBuf,
    pub entity: String,
    pub direction: Direction,
    pub mode: Option<String>,
    pub on: Vec<String>,
    pub when: Option<Template>,
    pub source: SourcePlan,
    pub target: TargetPlan,
    /// Static lookup tables by name. A mapping has a few: they are found by comparing names,
    /// which costs less than hashing the name on every lookup.
    pub statics: Arc<Vec<(String, StaticTable)>>,
    pub api_lookups: Vec<ApiLookup>,
    /// `(outer, inner)` for each `lookup('outer', lookup('inner', …))` in the mapping.
    pub lookup_chains: BTreeSet<(String, String)>,
    pub body: Fields,
    /// Entities this mapping references through `ref()`: synced first when missing.
    pub depends_on: BTreeSet<String>,
    /// Body fields declared not to survive the round trip Tripletex → Rackbeat → Tripletex, with why.
    pub round_trip_losses: Vec<(String, String)>,
    /// An update renders fields of the target beyond its id and version (an address id, order
    /// lines): the current record is read first. Otherwise the binding's id and version do, and
    /// the record is read only when Tripletex reports a revision conflict.
    pub update_reads_target: bool,
    /// How `rbtx reconcile` compares this mapping's records with the target's.
    pub reconcile: Option<ReconcilePlan>,
    pub links: LinkTemplates,
}

/// A mapping's `links`, checked: web addresses with `{key}` and `{id}` to fill in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkTemplates {
    pub rackbeat: Option<String>,
    pub tripletex: Option<String>,
}

impl LinkTemplates {
    /// The address `template` names for a record; `None` when it needs an id the record lacks.
    pub fn fill(template: &str, key: &str, id: Option<&str>) -> Option<String> {
        if template.contains("{id}") && id.is_none() {
            return None;
        }
        let enc = crate::expr::filters::percent_encode;
        Some(
            template
                .replace("{key}", &enc(key))
                .replace("{id}", &enc(id.unwrap_or(""))),
        )
    }
}

/// A mapping's `reconcile`, compiled.
#[derive(Debug)]
pub struct ReconcilePlan {
    pub list: Vec<crate::spec::ListRequest>,
    /// Which listed records are this mapping's (`item`).
    pub only: Option<(String, Template)>,
    pub period: Option<crate::spec::Period>,
    pub date: Option<String>,
    /// The document's total: from the source record and body, and from a listed target record.
    pub total: Option<(Template, Template)>,
}

/// The first-level target fields the body, the update's path and its query read.
pub fn target_fields(body: &Fields, update: Option<&WritePlan>) -> BTreeSet<String> {
    fn node(n: &Node, out: &mut BTreeSet<String>) {
        if let Some(w) = &n.when {
            w.fields_read("target", out);
        }
        match &n.kind {
            NodeKind::Value(t) => t.fields_read("target", out),
            NodeKind::Object(fields) => fields.iter().for_each(|(_, n)| node(n, out)),
            NodeKind::List(items) => items.iter().for_each(|n| node(n, out)),
            NodeKind::ForEach { item, .. } => node(item, out),
        }
    }
    let mut out = BTreeSet::new();
    body.iter().for_each(|(_, n)| node(n, &mut out));
    if let Some(u) = update {
        u.path.template.fields_read("target", &mut out);
        for (_, q) in &u.query {
            q.template.fields_read("target", &mut out);
        }
    }
    out
}

#[derive(Debug)]
pub struct SourcePlan {
    pub get: Option<Template>,
    pub select: Option<JsonPath>,
    pub list: Vec<crate::spec::ListRequest>,
    /// Lists records changed since a time, to read many waiting events at once.
    pub changed: Option<crate::spec::ChangedRequest>,
    pub key: Template,
}

#[derive(Debug)]
pub struct TargetPlan {
    pub natural_key: String,
    /// The target record's identifying field (`target.id`).
    pub id: String,
    pub find: FindPlan,
    /// Lists the target's existing records for the initial sync (their natural keys).
    pub list: Option<crate::spec::ListRequest>,
    pub create: WritePlan,
    pub update: Option<WritePlan>,
    /// The bulk form of find, create and update, for records synced together.
    pub batch: Option<crate::spec::BatchRequests>,
    /// `target.then`: a request sent once on the record the create made.
    pub then: Option<ThenPlan>,
}

/// The follow-up request after a create (variables `source`, `body`, `created`).
#[derive(Debug)]
pub struct ThenPlan {
    pub method: WriteMethod,
    pub path: RequestText,
    pub query: Vec<(Arc<str>, RequestText)>,
    /// Finds what the request made, before it is sent again after a restart (`item` in `match`).
    pub find: Option<FindPlan>,
}

#[derive(Debug)]
pub struct FindPlan {
    pub path: RequestText,
    pub query: Vec<(Arc<str>, RequestText)>,
    pub matches: Option<Template>,
    /// Set over `query` for a second request when the first finds no match.
    pub fallback_query: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct WritePlan {
    pub method: WriteMethod,
    pub path: RequestText,
    pub query: Vec<(Arc<str>, RequestText)>,
    /// The path or the query reads `body`: the engine parses the rendered body for them.
    pub reads_body: bool,
    /// What an update carries; a create sends the whole body whatever this says.
    pub send: UpdateFields,
    /// The request is sent without a body (a Tripletex action taking query parameters only).
    pub without_body: bool,
}

/// A request's path or query value. Text the mapping fixes is kept `fixed`, so that every request
/// shares it instead of copying it.
#[derive(Debug)]
pub struct RequestText {
    pub template: Template,
    pub fixed: Option<Arc<str>>,
}

impl RequestText {
    pub(crate) fn new(template: Template) -> RequestText {
        let fixed = match &template {
            Template::Const(Value::String(s)) => Some(Arc::from(s.as_str())),
            _ => None,
        };
        RequestText { template, fixed }
    }
}

impl WritePlan {
    pub(crate) fn new(
        method: WriteMethod,
        path: RequestText,
        query: Vec<(Arc<str>, RequestText)>,
        send: UpdateFields,
        without_body: bool,
    ) -> WritePlan {
        let reads_body =
            path.template.reads("body") || query.iter().any(|(_, t)| t.template.reads("body"));
        WritePlan {
            method,
            path,
            query,
            reads_body,
            send,
            without_body,
        }
    }
}

/// An API lookup table the engine loads once per tenant.
#[derive(Debug, Clone)]
pub struct ApiLookup {
    pub name: String,
    pub connection: Connection,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub key: String,
    /// The field taken as the value; `None`: the whole record.
    pub value: Option<String>,
}

/// A body node.
#[derive(Debug)]
pub struct Node {
    /// Leaves the node out (or, on a `$for_each`, the item out) when false.
    pub when: Option<Template>,
    /// `$create_only`: left out whenever there is a target record, i.e. on every update.
    pub create_only: bool,
    pub kind: NodeKind,
}

#[derive(Debug)]
pub enum NodeKind {
    Value(Template),
    Object(Fields),
    List(Vec<Node>),
    ForEach {
        path: JsonPath,
        var: String,
        item: Box<Node>,
        join: Option<String>,
        /// How many loop-invariant values the item's templates memoize (`Fast::Memo`).
        memo_slots: usize,
    },
}

/// The fields of an object node, in order, each with its key as JSON (`"name":`), ready to be
/// written into a body.
#[derive(Debug)]
pub struct Fields {
    fields: Vec<(String, Node)>,
    json_keys: Vec<String>,
}

impl Fields {
    pub fn new(fields: Vec<(String, Node)>) -> Fields {
        let json_keys = fields
            .iter()
            .map(|(k, _)| format!("{}:", Value::String(k.clone())))
            .collect();
        Fields { fields, json_keys }
    }

    pub fn json_keys(&self) -> &[String] {
        &self.json_keys
    }
}

impl std::ops::Deref for Fields {
    type Target = [(String, Node)];
    fn deref(&self) -> &Self::Target {
        &self.fields
    }
}

impl<'a> IntoIterator for &'a Fields {
    type Item = &'a (String, Node);
    type IntoIter = std::slice::Iter<'a, (String, Node)>;
    fn into_iter(self) -> Self::IntoIter {
        self.fields.iter()
    }
}

/// Everything the loader found: the plans that compiled, and every problem.
#[derive(Debug, Default)]
pub struct Pack {
    pub plans: Vec<Plan>,
    /// Errors: a pack with any is not run.
    pub diagnostics: Vec<Diagnostic>,
    /// Warnings: shown by `validate`, never a reason not to run.
    pub warnings: Vec<Diagnostic>,
}

impl Pack {
    pub fn plan(&self, direction: Direction, entity: &str) -> Option<&Plan> {
        self.plans
            .iter()
            .find(|p| p.direction == direction && p.entity == entity)
    }
}
