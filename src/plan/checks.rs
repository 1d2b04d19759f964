//! Checks across the files of a pack: unknown references, duplicate mappings and triggers, mode
//! conflicts; and each body against the API it is written to (`shapes.rs`).

use std::collections::BTreeMap;

use super::Plan;
use super::compile::RefUse;
use crate::spec::diagnostic::did_you_mean;
use crate::spec::{Code, Cx, Diagnostic, Direction, Document};

/// Checks across files: unknown references, duplicate mappings and triggers, mode conflicts.
pub(super) fn check_pack(
    compiled: &[(Plan, &Document, Vec<RefUse>)],
    declared: &[(String, String)],
    diags: &mut Vec<Diagnostic>,
) {
    let mut entities: BTreeMap<(Direction, &str), Vec<&Plan>> = BTreeMap::new();
    for (p, _, _) in compiled {
        entities
            .entry((p.direction, p.entity.as_str()))
            .or_default()
            .push(p);
    }
    for (plan, doc, uses) in compiled {
        let mut cx = Cx::new(doc);
        let dir = plan.direction.as_str();
        for u in uses {
            let exists = declared.iter().any(|(d, e)| d == dir && *e == u.entity);
            if !exists {
                let mut known: Vec<&str> = declared
                    .iter()
                    .filter(|(d, _)| d == dir)
                    .map(|(_, e)| e.as_str())
                    .collect();
                known.sort();
                known.dedup();
                let other = declared.iter().any(|(d, e)| d != dir && *e == u.entity);
                let hint = did_you_mean(&u.entity, known.iter().copied())
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| {
                        if other {
                            format!("`{}` is mapped only in the other direction; references stay within {dir}", u.entity)
                        } else {
                            format!("{dir} entities in this pack: {}", known.join(", "))
                        }
                    });
                cx.error_at_text(
                    Code::UnknownReference,
                    &u.pointer,
                    Some(&u.entity),
                    format!("reference to unknown entity `{}`", u.entity),
                    Some(hint),
                );
            }
        }
        super::shapes::check(plan, doc, &mut cx);
        diags.append(&mut cx.diags);
    }

    // Duplicate mappings and modes.
    let mut duplicates: Vec<&Plan> = Vec::new();
    for ((_, entity), plans) in &entities {
        let with_mode = plans.iter().filter(|p| p.mode.is_some()).count();
        if with_mode > 0 && with_mode < plans.len() {
            for p in plans.iter().filter(|p| p.mode.is_none()) {
                push(
                    diags,
                    compiled,
                    p,
                    "/entity",
                    Code::ModeConflict,
                    format!("`{entity}` has mappings with a `mode`, so this one needs a mode too"),
                    Some(
                        "give each alternative a distinct `mode`, e.g. `booked` and `as_order`"
                            .into(),
                    ),
                );
            }
        }
        let mut seen: BTreeMap<Option<&str>, &Plan> = BTreeMap::new();
        for p in plans {
            if let Some(first) = seen.get(&p.mode.as_deref()) {
                duplicates.push(p);
                push(
                    diags,
                    compiled,
                    p,
                    "/entity",
                    Code::DuplicateMapping,
                    format!(
                        "`{entity}` ({}) is already mapped in {}",
                        p.direction.as_str(),
                        first.file.display()
                    ),
                    Some("one file per entity and direction; use `mode` for alternatives".into()),
                );
            } else {
                seen.insert(p.mode.as_deref(), p);
            }
        }
    }

    // Triggers: one event drives one mapping, or alternative modes of one entity, or mappings
    // that a `when` each chooses between (the runtime syncs with the one whose `when` holds,
    // and refuses a record for which several hold), reading the record the same way.
    let mut triggers: BTreeMap<(Direction, &str), Vec<&Plan>> = BTreeMap::new();
    for (p, _, _) in compiled {
        // A duplicate mapping's triggers are the same problem again; it was reported once.
        if duplicates.iter().any(|d| std::ptr::eq(*d, p)) {
            continue;
        }
        for (i, ev) in p.on.iter().enumerate() {
            if p.on[..i].contains(ev) {
                push(
                    diags,
                    compiled,
                    p,
                    &format!("/on/{i}"),
                    Code::DuplicateTrigger,
                    format!("event `{ev}` is listed twice"),
                    Some("remove one of them".into()),
                );
                continue;
            }
            let earlier = triggers.entry((p.direction, ev.as_str())).or_default();
            let clash = earlier.iter().find(|q| {
                let alternatives = q.entity == p.entity && q.mode != p.mode;
                let never_together = q.mode.is_some() && p.mode.is_some() && q.mode != p.mode;
                !alternatives && !never_together && !chosen_by_when(compiled, q, p)
            });
            match clash {
                Some(first) => {
                    push(diags, compiled, p, &format!("/on/{i}"), Code::DuplicateTrigger,
                        format!("event `{ev}` already triggers `{}` in {}", first.entity, first.file.display()),
                        Some("an event may drive one mapping, the alternative modes of one entity, or mappings that each have a `when` and the same `source.get`".into()));
                }
                None => earlier.push(p),
            }
        }
    }
}

/// Whether `a` and `b` may share an event: each has a `when`, and both read the record with
/// the same `source.get` and `select`, so it is read once and each `when` sees the same record.
fn chosen_by_when(compiled: &[(Plan, &Document, Vec<RefUse>)], a: &Plan, b: &Plan) -> bool {
    let doc = |p: &Plan| {
        compiled
            .iter()
            .find(|(q, _, _)| std::ptr::eq(q, p))
            .map(|(_, d, _)| *d)
    };
    let (Some(da), Some(db)) = (doc(a), doc(b)) else {
        return false;
    };
    let read = |d: &Document| {
        (
            d.value.pointer("/source/get").cloned(),
            d.value.pointer("/source/select").cloned(),
        )
    };
    a.when.is_some() && b.when.is_some() && read(da) == read(db)
}

fn push(
    diags: &mut Vec<Diagnostic>,
    compiled: &[(Plan, &Document, Vec<RefUse>)],
    plan: &Plan,
    pointer: &str,
    code: Code,
    message: String,
    hint: Option<String>,
) {
    if let Some((_, doc, _)) = compiled.iter().find(|(p, _, _)| std::ptr::eq(p, plan)) {
        let mut cx = Cx::new(doc);
        cx.error_hint(code, pointer, message, hint);
        diags.append(&mut cx.diags);
    }
}
