//! What `rbtx run` knows about itself that the store does not keep: the loaded pack and the last
//! reload's problems, and each tenant's last catch-up. The console reads it; the parts of `run`
//! that do the work write it. Everything else the console shows comes from the store.

use std::collections::HashMap;
use std::sync::RwLock;

use serde::Serialize;

/// The pack `run` works with, and what became of the last reload.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PackStatus {
    /// Where the pack was loaded from (`the pack built into rbtx 0.1.0`, a folder).
    pub source: String,
    /// Mapping files in it.
    pub mappings: usize,
    /// Unix milliseconds: when the running pack was loaded.
    pub loaded_at: i64,
    /// The last reload that was refused, while the running pack stayed.
    pub refused: Option<RefusedReload>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RefusedReload {
    pub at: i64,
    /// Each problem as `validate` prints it (file:line:col, code, message).
    pub problems: Vec<String>,
}

/// The last catch-up of one tenant.
#[derive(Debug, Clone, Serialize)]
pub struct CatchUp {
    pub at: i64,
    /// Events it queued.
    pub queued: usize,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// Shared between `run` and the console.
#[derive(Debug, Default)]
pub struct Status {
    pack: RwLock<PackStatus>,
    catch_ups: RwLock<HashMap<String, CatchUp>>,
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Status {
    pub fn pack_loaded(&self, source: String, mappings: usize, at: i64) {
        let mut p = write(&self.pack);
        *p = PackStatus {
            source,
            mappings,
            loaded_at: at,
            refused: None,
        };
    }

    pub fn pack_refused(&self, problems: Vec<String>, at: i64) {
        write(&self.pack).refused = Some(RefusedReload { at, problems });
    }

    pub fn caught_up(&self, tenant: &str, catch_up: CatchUp) {
        write(&self.catch_ups).insert(tenant.to_string(), catch_up);
    }

    pub fn pack(&self) -> PackStatus {
        read(&self.pack).clone()
    }

    pub fn catch_up(&self, tenant: &str) -> Option<CatchUp> {
        read(&self.catch_ups).get(tenant).cloned()
    }
}
