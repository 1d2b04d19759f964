//! A mapping's `reconcile` block: what `rbtx reconcile` lists of the target and compares.

use super::Compiler;
use crate::plan::ReconcilePlan;
use crate::spec::diagnostic::did_you_mean;
use crate::spec::{Code, Direction, Mapping};

impl Compiler<'_> {
    pub(super) fn reconcile(&mut self, m: &Mapping) -> Option<ReconcilePlan> {
        let r = m.reconcile.as_ref()?;
        if m.direction != Direction::RackbeatToTripletex {
            self.cx.error_hint(
                Code::InvalidValue,
                "/reconcile",
                "only a rackbeat_to_tripletex mapping is reconciled".into(),
                Some("remove `reconcile`: the initial sync runs once and is not compared".into()),
            );
            return None;
        }
        if let Some(date) = &r.date
            && !m.body.contains_key(date)
        {
            self.cx.error_hint(
                Code::UnknownField,
                "/reconcile/date",
                format!("`{date}` is not a field of the body"),
                did_you_mean(date, m.body.keys().map(String::as_str))
                    .map(|n| format!("did you mean `{n}`?")),
            );
        }
        if r.list.is_empty() {
            self.cx.error(
                Code::MissingField,
                "/reconcile/list",
                "reconcile needs at least one list of the target's records".into(),
            );
        }
        if r.period.is_some() && r.date.is_none() {
            self.cx.error_hint(
                Code::MissingField,
                "/reconcile/period",
                "a period needs the body field that holds each document's date".into(),
                Some("add `date:` naming it, e.g. `date: invoiceDate`".into()),
            );
        }
        let total = match &r.total {
            None => None,
            Some(t) => {
                let source =
                    self.template(&t.source, "/reconcile/total/source", &["source", "body"]);
                let target = self.template(&t.target, "/reconcile/total/target", &["item"]);
                Some((source?, target?))
            }
        };
        let only = match &r.only {
            None => None,
            Some(src) => Some((
                src.clone(),
                self.expression(src, "/reconcile/only", &["item"])?,
            )),
        };
        Some(ReconcilePlan {
            list: r.list.clone(),
            only,
            period: r.period.clone(),
            date: r.date.clone(),
            total,
        })
    }
}
