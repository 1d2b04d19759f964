//! Why the Rackbeat sandbox refuses a request: Laravel's 404 and its 422 validation errors.

use indexmap::IndexMap;

use super::resources::Resource;

/// Validation errors: field path → messages, in the order found.
pub type Errors = IndexMap<String, Vec<String>>;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// 404, with Laravel's message.
    NotFound(String),
    /// 422 `{"errors": {field: [message]}}`.
    Invalid(Errors),
}

impl ApiError {
    pub(crate) fn not_found(r: Resource, key: &str) -> Self {
        ApiError::NotFound(format!(
            "No query results for model [App\\Models\\{}] {key}",
            r.model()
        ))
    }

    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        let mut errors = Errors::new();
        push(&mut errors, field, message);
        ApiError::Invalid(errors)
    }
}

/// Adds a message for a field, after any it already has.
pub(crate) fn push(errors: &mut Errors, field: &str, message: impl Into<String>) {
    errors
        .entry(field.to_string())
        .or_default()
        .push(message.into());
}
