//! Resolvers for running a mapping without the runtime: fixtures (`rbtx test`) and placeholders
//! (`rbtx preview`).

use indexmap::IndexMap;
use serde_json::Value;

use crate::expr::Resolver;

/// Resolves from fixtures: what a test says the bindings and API tables hold.
#[derive(Debug, Default, Clone)]
pub struct FixtureResolver {
    pub refs: IndexMap<String, IndexMap<String, Value>>,
    pub lookups: IndexMap<String, IndexMap<String, Value>>,
    pub bindings: IndexMap<String, IndexMap<String, Value>>,
}

impl FixtureResolver {
    /// `base` with `over` layered on top.
    pub fn layered(base: &crate::spec::Fixtures, over: &crate::spec::Fixtures) -> Self {
        let mut r = FixtureResolver {
            refs: base.refs.clone(),
            lookups: base.lookups.clone(),
            bindings: base.bindings.clone(),
        };
        for (e, m) in &over.refs {
            r.refs.entry(e.clone()).or_default().extend(m.clone());
        }
        for (t, m) in &over.lookups {
            r.lookups.entry(t.clone()).or_default().extend(m.clone());
        }
        for (e, m) in &over.bindings {
            r.bindings.entry(e.clone()).or_default().extend(m.clone());
        }
        r
    }
}

impl Resolver for FixtureResolver {
    fn reference(&self, entity: &str, key: &str) -> Option<Value> {
        // A fixture of `null` means "not bound", so a case can unset a shared fixture.
        self.refs
            .get(entity)?
            .get(key)
            .filter(|v| !v.is_null())
            .cloned()
    }
    fn lookup(&self, table: &str, key: &str) -> Option<Value> {
        self.lookups.get(table)?.get(key).cloned()
    }
    fn bound(&self, entity: &str, key: &str) -> Option<Option<Value>> {
        // Like `refs`, `null` means "not bound".
        let binding = self.bindings.get(entity).and_then(|m| m.get(key));
        Some(binding.filter(|v| !v.is_null()).cloned())
    }
}

/// Resolves anything to a visible placeholder, so `preview` works with no API at hand.
#[derive(Debug, Default)]
pub struct PlaceholderResolver {
    pub fixtures: FixtureResolver,
}

impl Resolver for PlaceholderResolver {
    fn reference(&self, entity: &str, key: &str) -> Option<Value> {
        Some(
            self.fixtures
                .reference(entity, key)
                .unwrap_or_else(|| Value::String(format!("<id of {entity} {key}>"))),
        )
    }
    fn lookup(&self, table: &str, key: &str) -> Option<Value> {
        Some(
            self.fixtures
                .lookup(table, key)
                .unwrap_or_else(|| Value::String(format!("<{table}[{key}]>"))),
        )
    }
}
