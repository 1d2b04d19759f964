//! Small helpers both sandboxes use.

use std::str::FromStr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rust_decimal::Decimal;
use serde_json::Value;

/// Locks a mutex, recovering the data if a holder panicked (nothing here leaves it half-written).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A JSON number as an exact decimal (floats through their shortest form, so 99.995 stays
/// 99.995 rather than the binary 99.99499…).
pub(crate) fn to_decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                return Some(Decimal::from(i));
            }
            let s = n.to_string();
            Decimal::from_str(&s)
                .or_else(|_| Decimal::from_scientific(&s))
                .ok()
        }
        _ => None,
    }
}
