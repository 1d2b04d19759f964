//! What `rbtx reconcile` is asked and what it found: the types of its JSON output.

use serde::Serialize;
use serde_json::Value;

use crate::connectors::ApiError;
use crate::store::StoreError;

/// What `rbtx reconcile` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Only these entities (empty: every reconciled one).
    pub entities: Vec<String>,
    /// The documents' period: `since` ≤ date < `until` (`YYYY-MM-DD`).
    pub since: String,
    pub until: String,
    /// Queue a sync for each difference a sync can repair, and sync them.
    pub fix: bool,
    /// A spinner on stderr while lists are read (on a terminal only).
    pub progress: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Boxed: an API error is large, and errors travel by value.
    #[error(transparent)]
    Api(Box<ApiError>),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Mapping(String),
}

impl From<ApiError> for ReconcileError {
    fn from(e: ApiError) -> Self {
        ReconcileError::Api(Box::new(e))
    }
}

/// Everything one reconciliation found.
#[derive(Debug, Serialize)]
pub struct Report {
    pub tenant: String,
    pub since: String,
    pub until: String,
    pub entities: Vec<EntityReport>,
    /// Documents of the period, summed on both sides (credit notes negative).
    pub periods: Vec<PeriodTotals>,
    /// What `--fix` queued, and how the syncs went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed: Option<Fixed>,
}

#[derive(Debug, Serialize)]
pub struct EntityReport {
    pub entity: String,
    pub mapping: String,
    /// Rackbeat records this mapping holds for (in the period, for documents).
    pub rackbeat: usize,
    /// Tripletex records listed.
    pub tripletex: usize,
    pub in_step: usize,
    pub differences: Vec<Difference>,
}

/// One way the two systems disagree.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Difference {
    /// In Rackbeat, not in Tripletex (`reason`: why the mapping could not render it).
    Missing {
        key: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// In Tripletex and bound to nothing; `key`: the Rackbeat record with its natural key.
    Unbound {
        tripletex_id: Value,
        natural_key: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    /// Bound to a Tripletex record that is not there (deleted, or outside the period).
    Gone { key: String, tripletex_id: Value },
    /// Fields whose value in Tripletex is not what the mapping renders.
    Different {
        key: String,
        tripletex_id: Value,
        fields: Vec<FieldDifference>,
    },
    /// A document whose total differs.
    Total {
        key: String,
        tripletex_id: Value,
        rackbeat: String,
        tripletex: String,
    },
    /// Several Tripletex records with one natural key.
    Duplicate {
        natural_key: String,
        tripletex_ids: Vec<Value>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct FieldDifference {
    pub field: String,
    pub rackbeat: Value,
    pub tripletex: Value,
}

#[derive(Debug, Serialize)]
pub struct PeriodTotals {
    pub entities: Vec<String>,
    pub rackbeat: Sum,
    pub tripletex: Sum,
}

#[derive(Debug, Default, Serialize)]
pub struct Sum {
    pub documents: usize,
    /// To the øre, as text (`"-1234.50"`).
    pub total: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Fixed {
    /// `entity key` of each record queued.
    pub queued: Vec<String>,
    /// Of those, the ones that failed (see `rbtx dlq list`).
    pub failed: Vec<String>,
    /// Differences a sync does not repair, with why.
    pub left: Vec<String>,
}

impl Report {
    /// The report as a bookkeeper reads it.
    pub fn human(&self) -> String {
        let r = self;
        use std::fmt::Write;
        let last = crate::dates::parse_strict(&r.until)
            .map_or(r.until.clone(), |d| crate::dates::format(d - 1));
        let mut out = format!(
            "tenant {}: documents from {} to {last}\n",
            r.tenant, r.since
        );
        for e in &r.entities {
            let _ = writeln!(
                out,
                "{:<20} {} in Rackbeat, {} in Tripletex, {} in step, {} different",
                e.entity,
                e.rackbeat,
                e.tripletex,
                e.in_step,
                e.differences.len()
            );
            for d in &e.differences {
                let _ = writeln!(out, "  {}", line(&e.entity, d));
            }
        }
        for p in &r.periods {
            let _ = writeln!(
                out,
                "{}: Rackbeat {} documents, total {}; Tripletex {} documents, total {}{}",
                p.entities.join(" + "),
                p.rackbeat.documents,
                p.rackbeat.total,
                p.tripletex.documents,
                p.tripletex.total,
                if p.rackbeat.total == p.tripletex.total {
                    " (equal)"
                } else {
                    " (NOT equal)"
                }
            );
        }
        match r.differences() {
            0 => out.push_str("In step.\n"),
            n => {
                let _ = writeln!(out, "{n} difference{}.", if n == 1 { "" } else { "s" });
            }
        }
        if let Some(f) = &r.fixed {
            let _ = writeln!(
                out,
                "--fix queued {} sync{}{}",
                f.queued.len(),
                if f.queued.len() == 1 { "" } else { "s" },
                if f.queued.is_empty() {
                    ".".to_string()
                } else {
                    format!(": {}", f.queued.join(", "))
                }
            );
            for l in &f.failed {
                let _ = writeln!(out, "  failed: {l} (see rbtx dlq list)");
            }
            for l in &f.left {
                let _ = writeln!(out, "  not repaired: {l}");
            }
        }
        out
    }

    pub fn differences(&self) -> usize {
        self.entities.iter().map(|e| e.differences.len()).sum()
    }
}

fn line(entity: &str, d: &Difference) -> String {
    match d {
        Difference::Missing { key, reason: None } => {
            format!("missing    {entity} {key}: not in Tripletex")
        }
        Difference::Missing {
            key,
            reason: Some(r),
        } => format!("missing    {entity} {key}: not in Tripletex: {r}"),
        Difference::Unbound {
            tripletex_id,
            natural_key,
            key: Some(k),
        } => format!(
            "unbound    Tripletex {tripletex_id} ({natural_key}) is {entity} {k}, but not bound to it"
        ),
        Difference::Unbound {
            tripletex_id,
            natural_key,
            key: None,
        } => format!(
            "unbound    Tripletex {tripletex_id} ({natural_key}) is bound to nothing, and no Rackbeat {entity} has its key"
        ),
        Difference::Gone { key, tripletex_id } => format!(
            "gone       {entity} {key} is bound to Tripletex {tripletex_id}, which is not there"
        ),
        Difference::Different {
            key,
            tripletex_id,
            fields,
        } => {
            let f: Vec<String> = fields
                .iter()
                .map(|f| {
                    format!(
                        "{}: Rackbeat {}, Tripletex {}",
                        f.field, f.rackbeat, f.tripletex
                    )
                })
                .collect();
            format!(
                "different  {entity} {key} (Tripletex {tripletex_id}): {}",
                f.join("; ")
            )
        }
        Difference::Total {
            key,
            tripletex_id,
            rackbeat,
            tripletex,
        } => format!(
            "total      {entity} {key} (Tripletex {tripletex_id}): Rackbeat {rackbeat}, Tripletex {tripletex}"
        ),
        Difference::Duplicate {
            natural_key,
            tripletex_ids,
        } => {
            let ids: Vec<String> = tripletex_ids.iter().map(ToString::to_string).collect();
            format!(
                "duplicate  {entity} {natural_key} is in Tripletex {} times: {}",
                ids.len(),
                ids.join(", ")
            )
        }
    }
}
