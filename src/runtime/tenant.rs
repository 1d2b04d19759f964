//! A tenant: one company pair, the invoice mode it runs, and its view of the mapping pack (the
//! plans of its mode, the events the real-time mappings trigger on).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::connectors::rackbeat::Rackbeat;
use crate::connectors::tripletex::Tripletex;
use crate::plan::{Pack, Plan};
use crate::spec::Direction;

// How booked invoices reach Tripletex: which of an entity's alternative mappings (`mode:`) runs.
// (A plain comment: a doc comment would change the tenants file's committed schema.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceMode {
    /// A booked, non-editable invoice (`POST /invoice`).
    #[default]
    Booked,
    /// An editable sales order, invoiced later in Tripletex (`POST /order`).
    AsOrder,
}

impl InvoiceMode {
    pub fn as_str(self) -> &'static str {
        match self {
            InvoiceMode::Booked => "booked",
            InvoiceMode::AsOrder => "as_order",
        }
    }

    /// Whether a tenant in this mode runs `plan`: a plan without a mode always runs.
    pub fn runs(self, plan: &Plan) -> bool {
        plan.mode.as_deref().is_none_or(|m| m == self.as_str())
    }
}

impl std::fmt::Display for InvoiceMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not an invoice mode: write `booked` or `as_order`")]
pub struct UnknownInvoiceMode(pub String);

impl std::str::FromStr for InvoiceMode {
    type Err = UnknownInvoiceMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "booked" => Ok(InvoiceMode::Booked),
            "as_order" => Ok(InvoiceMode::AsOrder),
            other => Err(UnknownInvoiceMode(other.to_string())),
        }
    }
}

/// One company pair, with its API clients.
#[derive(Debug)]
pub struct Tenant {
    pub id: String,
    pub rackbeat: Rackbeat,
    pub tripletex: Tripletex,
    pub invoice_mode: InvoiceMode,
}

impl Tenant {
    /// The plans of `pack` this tenant runs.
    pub fn view<'a>(&self, pack: &'a Pack) -> TenantPack<'a> {
        TenantPack {
            pack,
            mode: self.invoice_mode,
        }
    }
}

/// A pack as a tenant in one invoice mode sees it.
#[derive(Debug, Clone, Copy)]
pub struct TenantPack<'a> {
    pub pack: &'a Pack,
    pub mode: InvoiceMode,
}

impl<'a> TenantPack<'a> {
    /// Both directions, and of an entity's alternatives only the tenant's mode.
    pub fn plans(self) -> impl Iterator<Item = &'a Plan> {
        self.pack.plans.iter().filter(move |p| self.mode.runs(p))
    }

    /// The real-time (Rackbeat → Tripletex) plans the tenant runs.
    pub fn realtime(self) -> impl Iterator<Item = &'a Plan> {
        self.plans()
            .filter(|p| p.direction == Direction::RackbeatToTripletex)
    }

    /// The real-time plan a webhook event triggers (the first, when several share it).
    pub fn for_event(self, event: &str) -> Option<&'a Plan> {
        self.realtime().find(|p| p.on.iter().any(|e| e == event))
    }

    /// Every real-time plan a webhook event triggers, in the pack's order: several share an
    /// event when their `when` tells them apart (an invoice and a credit note), and the record
    /// is synced by the one whose `when` holds (`Syncer::sync_chosen`).
    pub fn all_for_event(self, event: &str) -> Vec<&'a Plan> {
        self.realtime()
            .filter(|p| p.on.iter().any(|e| e == event))
            .collect()
    }

    /// The plan syncing `entity` in `direction`.
    pub fn for_entity(self, direction: Direction, entity: &str) -> Option<&'a Plan> {
        self.plans()
            .find(|p| p.direction == direction && p.entity == entity)
    }
}

/// Every (event, plan) of the pack's real-time mappings, of every invoice mode: a subscription
/// and the intake serve all of them, whichever mode a tenant runs.
pub fn triggers(pack: &Pack) -> impl Iterator<Item = (&str, &Plan)> {
    pack.plans
        .iter()
        .filter(|p| p.direction == Direction::RackbeatToTripletex)
        .flat_map(|p| p.on.iter().map(move |e| (e.as_str(), p)))
}

/// The events the real-time mappings trigger on, sorted, each once.
pub fn trigger_events(pack: &Pack) -> Vec<&str> {
    let mut events: Vec<&str> = triggers(pack).map(|(e, _)| e).collect();
    events.sort_unstable();
    events.dedup();
    events
}
