//! JSONPaths in mappings: `source.select` and `$for_each`, compiled once, walked directly when
//! they are `$.a.b[*]`-shaped.

use jsonpath_rust::parser::model::JpQuery;
use jsonpath_rust::parser::parse_json_path;
use serde_json::Value;

use crate::expr::scope::parse_normalized_path;
use crate::expr::value::{Step, field};
use crate::spec::report::first_line;

/// A compiled JSONPath, relative to the source record (`$…`) or to the enclosing loop item (`@…`).
pub struct JsonPath {
    pub text: String,
    pub relative: bool,
    pub query: JpQuery,
    /// `$.a.b[*]`-shaped paths, walked directly: keys, then every item of the array.
    simple: Option<Vec<String>>,
}

impl std::fmt::Debug for JsonPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JsonPath({})", self.text)
    }
}

impl JsonPath {
    pub fn compile(text: &str) -> Result<JsonPath, String> {
        let (relative, rooted) = match text.strip_prefix('@') {
            Some(rest) => (true, format!("${rest}")),
            None if text.starts_with('$') => (false, text.to_string()),
            None => {
                return Err(
                    "a JSONPath starts with `$` (the source record) or `@` (the current item)"
                        .into(),
                );
            }
        };
        let query =
            parse_json_path(&rooted).map_err(|e| describe_jsonpath_error(&e.to_string()))?;
        let simple = rooted
            .strip_prefix("$.")
            .and_then(|r| r.strip_suffix("[*]"))
            .map(|keys| keys.split('.').map(str::to_string).collect::<Vec<_>>())
            .filter(|keys| {
                keys.iter()
                    .all(|k| !k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || c == '_'))
            });
        Ok(JsonPath {
            text: text.to_string(),
            relative,
            query,
            simple,
        })
    }

    pub fn select<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        jsonpath_rust::query::js_path_process(&self.query, root)
            .map(|v| v.into_iter().map(|r| r.val()).collect())
            .unwrap_or_default()
    }

    /// Matches with the steps that lead to them from `root`.
    pub fn matches<'a>(&self, root: &'a Value) -> Matches<'a> {
        if let Some(keys) = &self.simple {
            let mut cur = root;
            for k in keys {
                match cur.as_object().and_then(|m| field(m, k)) {
                    Some(v) => cur = v,
                    None => return Matches::General(Vec::new()),
                }
            }
            return match cur {
                Value::Array(items) => Matches::Items {
                    prefix: keys.iter().map(|k| Step::Key(k.clone())).collect(),
                    items,
                },
                _ => Matches::General(Vec::new()),
            };
        }
        Matches::General(
            jsonpath_rust::query::js_path_process(&self.query, root)
                .map(|v| {
                    v.into_iter()
                        .map(|r| {
                            let val = r.clone().val();
                            (parse_normalized_path(&r.path()), val)
                        })
                        .collect()
                })
                .unwrap_or_default(),
        )
    }
}

/// What a JSONPath found.
pub enum Matches<'a> {
    /// Every item of one array, reached by `prefix`.
    Items {
        prefix: Vec<Step>,
        items: &'a [Value],
    },
    /// Any matches, each with its own steps.
    General(Vec<(Vec<Step>, &'a Value)>),
}

/// pest's multi-line report → "at column N: expected …".
fn describe_jsonpath_error(s: &str) -> String {
    let col = s
        .lines()
        .find_map(|l| l.split_once("--> ").map(|(_, pos)| pos.trim()))
        .and_then(|pos| pos.split(':').nth(1))
        .map(|c| format!("at column {c}"));
    let what = s
        .lines()
        .find_map(|l| l.trim().strip_prefix("= "))
        .map(str::to_string);
    match (col, what) {
        (Some(c), Some(w)) => format!("{c}: {w}"),
        (Some(c), None) => c,
        _ => first_line(s),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn jsonpath_errors_are_one_line() {
        let e = super::JsonPath::compile("$.[product")
            .err()
            .unwrap_or_default();
        assert!(e.starts_with("at column 3"), "{e}");
    }
}
