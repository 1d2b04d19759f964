//! What templates resolve `lookup()` and `ref()` with while a record syncs: API lookup tables,
//! loaded once per tenant and pack, and the references bound for the record.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Mutex;

use super::tenant::Tenant;
use crate::connectors::ApiError;
use crate::expr::{Resolver, key_text_json};
use crate::plan::{ApiLookup, Pack, Plan};
use crate::spec::Connection;

/// The tables of a plan's API lookups, by name.
pub type Tables = Arc<HashMap<String, Arc<HashMap<String, Value>>>>;

/// API lookup tables by definition, for the pack they were loaded for: a tenant's workers share
/// one, so each table is read once per tenant, and again after a reload.
#[derive(Clone, Default)]
pub struct LookupCache(Arc<Mutex<LoadedLookups>>);

/// Tables by definition, per pack: during a reload, workers on the old pack and on the new one
/// each keep theirs instead of emptying each other's.
#[derive(Default)]
struct LoadedLookups {
    packs: Vec<(std::sync::Weak<Pack>, ByDefinition)>,
}

/// Loaded tables, keyed by their definition (two mappings may give one name to different tables).
type ByDefinition = HashMap<String, Arc<HashMap<String, Value>>>;

impl LookupCache {
    /// The API lookup tables `plan` uses, by name, loading those not loaded yet for `pack`.
    pub async fn tables(
        &self,
        pack: &Arc<Pack>,
        tenant: &Tenant,
        plan: &Plan,
    ) -> Result<Tables, (Connection, ApiError)> {
        let mut out = HashMap::new();
        if plan.api_lookups.is_empty() {
            return Ok(Arc::new(out));
        }
        // Held while a table loads: the other workers wait for it instead of reading it too.
        let mut loaded = self.0.lock().await;
        // A pack no worker holds any more has had its last use.
        loaded.packs.retain(|(p, _)| p.strong_count() > 0);
        let at = match loaded
            .packs
            .iter()
            .position(|(p, _)| p.upgrade().is_some_and(|p| Arc::ptr_eq(&p, pack)))
        {
            Some(at) => at,
            None => {
                loaded.packs.push((Arc::downgrade(pack), HashMap::new()));
                loaded.packs.len() - 1
            }
        };
        let cache = &mut loaded.packs[at].1;
        for l in &plan.api_lookups {
            // Keyed by definition: two mappings may use one name for different tables.
            let id = format!(
                "{:?} {} {:?} {} {:?}",
                l.connection, l.path, l.query, l.key, l.value
            );
            let table = match cache.get(&id) {
                Some(t) => t.clone(),
                None => {
                    let t = Arc::new(
                        load_lookup(tenant, l)
                            .await
                            .map_err(|e| (l.connection, e))?,
                    );
                    tracing::info!(tenant = %tenant.id, table = %l.name, entries = t.len(), "Loaded an API lookup table.");
                    cache.insert(id, t.clone());
                    t
                }
            };
            out.insert(l.name.clone(), table);
        }
        Ok(Arc::new(out))
    }
}

/// An API lookup table of `tenant`: `key` → `value` of every record its request lists.
pub async fn load_lookup(
    tenant: &Tenant,
    l: &ApiLookup,
) -> Result<HashMap<String, Value>, ApiError> {
    let query: Vec<(&str, String)> = l
        .query
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let items = match l.connection {
        Connection::Rackbeat => tenant.rackbeat.list_all(&l.path, &query).await?,
        Connection::Tripletex => tenant.tripletex.list_all(&l.path, &query).await?,
    };
    let mut table = HashMap::with_capacity(items.len());
    for item in &items {
        // Without `value`, the table holds the whole record.
        let value = match &l.value {
            Some(path) => field(item, path),
            None => Some(item),
        };
        let (Some(k), Some(v)) = (field(item, &l.key), value) else {
            continue;
        };
        if let Some(k) = key_text_json(k)
            && !v.is_null()
        {
            table.entry(k).or_insert_with(|| v.clone());
        }
    }
    Ok(table)
}

/// A dotted field path inside a record (`number`, `group.number`).
fn field<'a>(item: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(item, |v, k| v.get(k))
}

pub(super) fn ref_key(entity: &str, key: &str) -> String {
    format!("{entity}\u{0}{key}")
}

/// Where a binding `bound()` read is kept among the refs: apart from `ref()`'s ids.
pub(super) fn bound_key(entity: &str, key: &str) -> String {
    format!("{entity}\u{1}{key}")
}

/// Resolves references from the bindings gathered for one record, and lookups from the
/// worker's loaded tables.
pub(super) struct MapResolver {
    pub refs: HashMap<String, Value>,
    pub lookups: Tables,
}

impl Resolver for MapResolver {
    fn reference(&self, entity: &str, key: &str) -> Option<Value> {
        self.refs.get(&ref_key(entity, key)).cloned()
    }
    fn lookup(&self, table: &str, key: &str) -> Option<Value> {
        self.lookups.get(table)?.get(key).cloned()
    }
    fn bound(&self, entity: &str, key: &str) -> Option<Option<Value>> {
        // `null`: read, and not bound.
        let b = self.refs.get(&bound_key(entity, key))?;
        Some((!b.is_null()).then(|| b.clone()))
    }
}
