//! A mapping's `links`: web addresses the console shows for a record, with `{key}` and `{id}`.

use super::Compiler;
use crate::plan::LinkTemplates;
use crate::spec::{Code, Mapping};

impl Compiler<'_> {
    pub(super) fn links(&mut self, m: &Mapping) -> LinkTemplates {
        let Some(l) = &m.links else {
            return LinkTemplates::default();
        };
        let mut check = |field: &str, t: &Option<String>| -> Option<String> {
            let t = t.as_ref()?;
            let at = format!("/links/{field}");
            if !(t.starts_with("https://") || t.starts_with("http://")) {
                self.cx.error(
                    Code::InvalidValue,
                    &at,
                    format!("`{t}` is not a web address (http:// or https://)"),
                );
                return None;
            }
            let rest = t.replace("{key}", "").replace("{id}", "");
            if rest.contains('{') || rest.contains('}') {
                self.cx.error_hint(
                    Code::InvalidValue,
                    &at,
                    format!("`{t}` has a placeholder other than {{key}} and {{id}}"),
                    Some("write {key} for the Rackbeat key and {id} for the Tripletex id".into()),
                );
                return None;
            }
            Some(t.clone())
        };
        LinkTemplates {
            rackbeat: check("rackbeat", &l.rackbeat),
            tripletex: check("tripletex", &l.tripletex),
        }
    }
}
