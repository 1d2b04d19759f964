//! Links to a record in each system's web app, from its mapping's `links` (what the addresses
//! look like is a fact about the web apps, so it lives in the YAML).

use serde_json::{Value, json};

use super::state::ConsoleTenant;
use crate::plan::{LinkTemplates, Pack};

/// `{"rackbeat": url?, "tripletex": url?}` for one record of `entity`.
pub fn of(
    pack: &Pack,
    t: &ConsoleTenant,
    entity: &str,
    key: &str,
    target_id: Option<&Value>,
) -> Value {
    let id = target_id.and_then(|v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    let Some(plan) = t.view(pack).realtime().find(|p| p.entity == entity) else {
        return json!({});
    };
    let fill = |template: &Option<String>| {
        template
            .as_deref()
            .and_then(|t| LinkTemplates::fill(t, key, id.as_deref()))
    };
    json!({
        "rackbeat": fill(&plan.links.rackbeat),
        "tripletex": fill(&plan.links.tripletex),
    })
}
