//! The round trip of each pair of opposite mappings: every record of the Tripletex sandbox's seed
//! is copied to Rackbeat by the initial sync, and the body the `rackbeat_to_tripletex` mapping
//! would send back for it (the baseline the initial sync binds) is compared with the Tripletex
//! record, field by field. A field that does not come back equal is a loss; a loss the mapping does
//! not list in `round_trip_losses`, with its reason, fails `rbtx test`.
//!
//! Losses matter because the round trip is what the initial sync sets up: nothing is written back
//! (the baseline absorbs the echo), but a field that comes back different is one a later change in
//! Rackbeat may carry over what Tripletex holds.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::Value;

use crate::engine::changes::holds;
use crate::plan::{NodeKind, Pack};
use crate::runtime::accounts::{Accounts, AccountsError};
use crate::runtime::initial::{self, InitialError, Options};
use crate::runtime::sync::Syncer;
use crate::runtime::tenant::InvoiceMode;
use crate::sandbox::{self, SandboxConfig};
use crate::spec::Direction;
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RoundTripError {
    #[error("starting the sandboxes: {0}")]
    Sandbox(std::io::Error),
    #[error(transparent)]
    Accounts(#[from] AccountsError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("the initial sync: {0}")]
    Initial(#[from] InitialError),
    #[error(
        "the initial sync could not copy {0} record(s) of the seed; run it with `rbtx sandbox` to see why"
    )]
    Failed(u64),
    #[error("reading {path} from the Tripletex sandbox: {source}")]
    Read {
        path: String,
        source: Box<crate::connectors::ApiError>,
    },
}

/// A field that came back different.
#[derive(Debug, Clone, PartialEq)]
pub struct Loss {
    pub entity: String,
    pub key: String,
    pub field: String,
    /// What Tripletex holds.
    pub tripletex: Value,
    /// What the mapping would send back.
    pub back: Value,
    /// The reason the mapping gives, when it lists the field.
    pub declared: Option<String>,
}

#[derive(Debug, Default)]
pub struct Report {
    /// (entity, records compared).
    pub checked: Vec<(String, usize)>,
    pub losses: Vec<Loss>,
    /// Listed losses that no record showed: (entity, field).
    pub unseen: Vec<(String, String)>,
    /// Records the initial sync wrote that got no way back (no baseline): (entity, key).
    pub unbound: Vec<(String, String)>,
}

impl Report {
    pub fn undeclared(&self) -> impl Iterator<Item = &Loss> {
        self.losses.iter().filter(|l| l.declared.is_none())
    }

    /// Nothing came back different without a reason, and every record came back.
    pub fn passed(&self) -> bool {
        self.undeclared().next().is_none() && self.unbound.is_empty()
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for l in self.undeclared() {
            out.push_str(&format!(
                "LOSS  {} {}: `{}` is {} in Tripletex but comes back from Rackbeat as {}; fix the mappings or list it in `round_trip_losses` with the reason\n",
                l.entity, l.key, l.field, l.tripletex, l.back
            ));
        }
        for (entity, key) in &self.unbound {
            out.push_str(&format!(
                "LOSS  {entity} {key}: the initial sync wrote it to Rackbeat but bound no way back (see the warning in the log), so its next change in Rackbeat would send the whole body\n"
            ));
        }
        for (entity, field) in &self.unseen {
            out.push_str(&format!(
                "note  {entity}: `{field}` is listed in `round_trip_losses` but came back equal for every seed record\n"
            ));
        }
        let checked: Vec<String> = self
            .checked
            .iter()
            .map(|(e, n)| format!("{n} {e}"))
            .collect();
        let declared = self.losses.len() - self.undeclared().count();
        out.push_str(&format!(
            "round trip Tripletex → Rackbeat → Tripletex: {} record(s) ({}), {} declared loss(es), {} undeclared\n",
            self.checked.iter().map(|(_, n)| n).sum::<usize>(),
            checked.join(", "),
            declared,
            self.undeclared().count()
        ));
        out
    }
}

/// Runs the round trip of every entity that has a mapping each way, on fresh in-process sandboxes
/// and an in-memory store.
pub async fn run(pack: Arc<Pack>) -> Result<Report, RoundTripError> {
    let sb = sandbox::start(SandboxConfig::default())
        .await
        .map_err(RoundTripError::Sandbox)?;
    let tenant = Accounts::sandbox(&sb, InvoiceMode::Booked).tenant()?;
    let store = Arc::new(SqliteStore::in_memory()?);
    store.migrate().await?;
    let syncer = Syncer::new(store.clone(), pack.clone(), tenant, "round-trip");
    let options = Options {
        progress: false,
        ..Options::default()
    };
    let synced = initial::run(&syncer, &options, &mut Vec::new()).await?;
    if synced.failed() > 0 {
        return Err(RoundTripError::Failed(synced.failed()));
    }

    let mut report = Report::default();
    let view = syncer.view();
    for there in view.plans() {
        if there.direction != Direction::TripletexToRackbeat {
            continue;
        }
        let Some(back) = view.for_entity(Direction::RackbeatToTripletex, &there.entity) else {
            continue;
        };
        let declared = &back.round_trip_losses;
        let mut seen = BTreeSet::new();
        let mut checked = 0;
        // Every field the way back writes, objects expanded one level (an address with its
        // fields, a VAT type or currency as its id), so the two sides compare like for like.
        let fields = back
            .body
            .iter()
            .filter(|(_, node)| matches!(node.kind, NodeKind::Object(_)))
            .fold("*".to_string(), |acc, (k, _)| format!("{acc},{k}(*)"));
        for list in &there.source.list {
            let query: Vec<(&str, String)> = list
                .query
                .iter()
                .filter(|(k, _)| k.as_str() != "fields")
                .map(|(k, v)| (k.as_str(), v.clone()))
                .chain([("fields", fields.clone())])
                .collect();
            let records = syncer
                .tenant
                .tripletex
                .list_all(&list.path, &query)
                .await
                .map_err(|e| RoundTripError::Read {
                    path: list.path.clone(),
                    source: Box::new(e),
                })?;
            for record in &records {
                let key = match record.get(&back.target.natural_key) {
                    Some(Value::String(s)) => s.clone(),
                    Some(v) if !v.is_null() => v.to_string(),
                    _ => continue,
                };
                let binding = store
                    .get_binding(
                        &syncer.tenant.id,
                        Direction::RackbeatToTripletex.as_str(),
                        &back.entity,
                        &key,
                    )
                    .await?;
                let there_binding = store
                    .get_binding(
                        &syncer.tenant.id,
                        Direction::TripletexToRackbeat.as_str(),
                        &there.entity,
                        &key,
                    )
                    .await?;
                let Some(Value::Object(body)) = binding.and_then(|b| b.body) else {
                    // Written to Rackbeat, yet no way back: a loss. Skipped on the way (no
                    // number, or the mapping's `when`): nothing to compare.
                    if there_binding.is_some() {
                        report.unbound.push((back.entity.clone(), key.clone()));
                    }
                    continue;
                };
                checked += 1;
                for (field, value) in &body {
                    let has = record.get(field).unwrap_or(&Value::Null);
                    if holds(has, value) {
                        continue;
                    }
                    let reason = declared
                        .iter()
                        .find(|(f, _)| f == field)
                        .map(|(_, r)| r.clone());
                    if reason.is_some() {
                        seen.insert(field.clone());
                    }
                    report.losses.push(Loss {
                        entity: back.entity.clone(),
                        key: key.clone(),
                        field: field.clone(),
                        tripletex: has.clone(),
                        back: value.clone(),
                        declared: reason,
                    });
                }
            }
        }
        report.checked.push((back.entity.clone(), checked));
        for (field, _) in declared {
            if !seen.contains(field) {
                report.unseen.push((back.entity.clone(), field.clone()));
            }
        }
    }
    Ok(report)
}
