//! Checks of a mapping's requests that need no template compiled: values sent as written, and the
//! bulk forms (`source.changed`, `target.batch`) against the single requests they stand in for.

use crate::spec::diagnostic::did_you_mean;
use crate::spec::yaml::escape_pointer;
use crate::spec::{BatchRequests, Code, Cx, Mapping};

/// Values sent as written: a template there would be sent verbatim, so it is an error.
pub(super) fn constant(cx: &mut Cx, value: &str, pointer: &str) {
    if value.contains("{{") || value.contains("{%") {
        cx.error_hint(
            Code::BadTemplate,
            pointer,
            "templates are not evaluated here; this value is sent as written".into(),
            Some("use a constant".into()),
        );
    }
}

/// `source.changed` and `target.batch`.
pub(super) fn check(cx: &mut Cx, m: &Mapping) {
    if let Some(c) = &m.source.changed {
        constant(cx, &c.path, "/source/changed/path");
        for (k, v) in &c.query {
            constant(
                cx,
                v,
                &format!("/source/changed/query/{}", escape_pointer(k)),
            );
        }
        if m.source.get.is_none() {
            cx.error_hint(
                Code::MissingSource,
                "/source/changed",
                "`source.changed` needs `source.get`: a lone event, and a key the list does not return, are read with it".into(),
                Some("add `get: \"/<resource>/{{ key | urlencode }}\"`".into()),
            );
        }
    }
    if let Some(b) = &m.target.batch {
        batch(cx, m, b);
    }
}

/// `target.batch`: its find parameter is one of `find`'s, its paths are constants, an update
/// in bulk has a single update beside it, and its size is one the APIs take.
fn batch(cx: &mut Cx, m: &Mapping, b: &BatchRequests) {
    if let Some(param) = &b.find_param
        && !m.target.find.query.contains_key(param)
    {
        let names: Vec<&str> = m.target.find.query.keys().map(String::as_str).collect();
        cx.error_hint(
            Code::InvalidValue,
            "/target/batch/find_param",
            format!("`{param}` is not a parameter of `target.find.query`"),
            Some(
                did_you_mean(param, names.iter().copied())
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| format!("its parameters: {}", names.join(", "))),
            ),
        );
    }
    // Each record keeps the items of a shared find whose natural key is its own, so the
    // parameter must be the natural key itself.
    if let Some(param) = &b.find_param
        && let Some(value) = m.target.find.query.get(param)
    {
        let wanted = format!("body.{}", m.target.natural_key);
        let inner = value
            .trim()
            .strip_prefix("{{")
            .and_then(|v| v.strip_suffix("}}"))
            .map(str::trim);
        if inner != Some(wanted.as_str()) {
            cx.error_hint(
                Code::InvalidValue,
                "/target/batch/find_param",
                format!(
                    "`find.query.{param}` must be `{{{{ {wanted} }}}}` to look up many records at once: each keeps the items whose `{}` is its own",
                    m.target.natural_key
                ),
                None,
            );
        }
    }
    if let Some(c) = &b.create {
        constant(cx, &c.path, "/target/batch/create/path");
    }
    if let Some(u) = &b.update {
        constant(cx, &u.path, "/target/batch/update/path");
        if m.target.update.is_none() {
            cx.error_hint(
                Code::MissingField,
                "/target/batch/update",
                "a bulk update needs `target.update`, which a lone record uses".into(),
                None,
            );
        }
    }
    if !(2..=1000).contains(&b.size) {
        cx.error_hint(
            Code::InvalidValue,
            "/target/batch/size",
            format!("{} records per request; it must be 2 to 1,000", b.size),
            None,
        );
    }
}
