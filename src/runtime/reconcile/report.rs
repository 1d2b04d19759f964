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
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Mapping(String),
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
    pub fn differences(&self) -> usize {
        self.entities.iter().map(|e| e.differences.len()).sum()
    }
}
