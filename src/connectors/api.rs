//! Either API behind one type, for the code that works the same way on both.

use std::collections::HashSet;

use serde_json::Value;

use super::{ApiError, rackbeat, tripletex};
use crate::spec::WriteMethod;

/// Either API, for code that works the same way on both: the direction of a mapping decides
/// which one is its target. Answers come back as records, envelopes removed.
#[derive(Clone, Copy)]
pub enum Api<'a> {
    Rackbeat(&'a rackbeat::Rackbeat),
    Tripletex(&'a tripletex::Tripletex),
}

impl Api<'_> {
    pub fn name(&self) -> &'static str {
        match self {
            Api::Rackbeat(_) => "Rackbeat",
            Api::Tripletex(_) => "Tripletex",
        }
    }

    /// The records a mapping's `find` request answers.
    pub async fn find(&self, path: &str, query: &[(&str, String)]) -> Result<Vec<Value>, ApiError> {
        match self {
            Api::Rackbeat(rb) => rb.find(path, query).await,
            Api::Tripletex(tx) => tx.list_all(path, query).await,
        }
    }

    /// One record; `None` on 404.
    pub async fn get(&self, path: &str) -> Result<Option<Value>, ApiError> {
        match self {
            Api::Rackbeat(rb) => Ok(rb.get(path, &[]).await?.map(rackbeat::unwrap_single)),
            Api::Tripletex(tx) => tx.get(path, &[]).await,
        }
    }

    /// Sends a write whose body is JSON text already, and returns the record written.
    pub async fn write(
        &self,
        method: WriteMethod,
        path: &str,
        query: &[(&str, String)],
        json: &str,
    ) -> Result<Value, ApiError> {
        match (self, method) {
            (Api::Tripletex(tx), WriteMethod::Post) => tx.post_json(path, query, json).await,
            (Api::Tripletex(tx), WriteMethod::Put) => tx.put_json(path, query, json).await,
            (Api::Rackbeat(rb), method) => {
                let body: Value = serde_json::from_str(json).map_err(|e| ApiError::Decode {
                    method: method.as_str().into(),
                    path: path.into(),
                    message: format!("the body to send is not JSON: {e}"),
                })?;
                let answer = match method {
                    WriteMethod::Post => rb.post(path, query, &body).await,
                    WriteMethod::Put => rb.put(path, query, &body).await,
                };
                answer.map(rackbeat::unwrap_single)
            }
        }
    }

    /// The `field` of every record a list holds, as text, read a page at a time so that only
    /// the keys are kept.
    pub async fn keys(
        &self,
        path: &str,
        query: &[(&str, String)],
        field: &str,
    ) -> Result<HashSet<String>, ApiError> {
        let mut keys = HashSet::new();
        let mut add = |items: &[Value]| {
            for item in items {
                match item.get(field) {
                    Some(Value::String(s)) => {
                        keys.insert(s.clone());
                    }
                    Some(v) if !v.is_null() => {
                        keys.insert(v.to_string());
                    }
                    _ => {}
                }
            }
        };
        match self {
            Api::Rackbeat(rb) => {
                let mut page = 1;
                loop {
                    let p = rb.page(path, query, page).await?;
                    add(&p.items);
                    match p.next {
                        Some(n) => page = n,
                        None => break,
                    }
                }
            }
            Api::Tripletex(tx) => {
                let mut from = 0;
                loop {
                    let p = tx.page(path, query, from).await?;
                    add(&p.values);
                    match p.next {
                        Some(n) => from = n,
                        None => break,
                    }
                }
            }
        }
        Ok(keys)
    }
}
