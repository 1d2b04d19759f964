//! Why applying a record failed, by class: what the caller does next (retry, dead-letter, tell
//! someone the credentials were refused) follows from the class, never from the message. A refusal
//! from an API carries what was sent and answered (`detail`), so the dead letter shows the request
//! and the API's own words beside the reason.

use serde_json::{Value, json};

use crate::connectors::ApiError;
use crate::engine::RecordError;
use crate::plan::Plan;
use crate::spec::Connection;
use crate::store::StoreError;

/// Why applying a record failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Throttling, server trouble, a lost answer, a revision conflict: try again later.
    Retry { reason: String },
    /// Needs a fix in the data or the mapping, then a replay.
    Permanent {
        reason: String,
        mapping: Option<String>,
        field: Option<String>,
        /// What the API was sent and answered, when it refused a request:
        /// `{"request": {"method", "path", "body"}, "response": {"status", "code", "message",
        /// "validationMessages": [{"field", "message"}], "requestId"}}`. Boxed: most failures
        /// have none, and a `Result` of this stays small.
        detail: Option<Box<Value>>,
    },
    /// An API refused the tenant's credentials (a 401, or Tripletex refusing to make a session of
    /// the tokens) or what they may do (403): nothing of the tenant gets through until the tokens
    /// are fixed; then a replay.
    Refused {
        /// `Tripletex` or `Rackbeat`.
        api: &'static str,
        reason: String,
        mapping: Option<String>,
    },
}

/// A write as it was sent.
pub(super) struct Sent<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a [(&'a str, String)],
    pub body: &'a str,
}

impl Failure {
    pub(super) fn permanent(plan: &Plan, reason: impl Into<String>, field: Option<String>) -> Self {
        Failure::Permanent {
            reason: reason.into(),
            mapping: Some(plan.file.display().to_string()),
            field,
            detail: None,
        }
    }

    /// A failure of a request to `plan`'s target API: by its class, a refusal of the
    /// credentials, retried, else permanent with the API's answer as its detail.
    pub(super) fn api(plan: &Plan, e: &ApiError) -> Self {
        Failure::api_of(plan, plan.direction.target(), e)
    }

    /// The same for a request to the API `api`.
    pub(super) fn api_of(plan: &Plan, api: Connection, e: &ApiError) -> Self {
        let session = crate::connectors::tripletex::session_refused(e);
        if session || e.refuses_credentials() {
            return Failure::Refused {
                api: if session { "Tripletex" } else { api.name() },
                reason: e.to_string(),
                mapping: Some(plan.file.display().to_string()),
            };
        }
        if e.is_retryable() || e.is_ambiguous() {
            return Failure::Retry {
                reason: e.to_string(),
            };
        }
        let field = match e {
            ApiError::Status { fields, .. } => fields
                .iter()
                .find(|f| !f.field.is_empty())
                .map(|f| f.field.clone()),
            _ => None,
        };
        let reason = match crate::connectors::tripletex::fix_for(e) {
            Some(fix) => format!("{e}. To fix: {fix}"),
            None => e.to_string(),
        };
        Failure::Permanent {
            reason,
            mapping: Some(plan.file.display().to_string()),
            field,
            detail: response(e).map(|r| Box::new(json!({ "response": r }))),
        }
    }

    /// A refused write, with the request it sent: its query after the path (as rendered, for a
    /// person to read), `body` as sent (JSON text, empty for none).
    pub(super) fn api_write(plan: &Plan, e: &ApiError, request: Sent<'_>) -> Self {
        let mut failure = Failure::api(plan, e);
        if let Failure::Permanent { detail, .. } = &mut failure {
            let mut path = request.path.to_string();
            for (i, (k, v)) in request.query.iter().enumerate() {
                path.push(if i == 0 { '?' } else { '&' });
                path.push_str(&format!("{k}={v}"));
            }
            let detail = detail.get_or_insert_with(|| Box::new(json!({})));
            detail["request"] = json!({
                "method": request.method,
                "path": path,
                "body": request_body(request.body),
            });
        }
        failure
    }

    pub(super) fn record(plan: &Plan, e: RecordError) -> Self {
        match e {
            RecordError::Field { field, message } => {
                Failure::permanent(plan, format!("{field}: {message}"), Some(field))
            }
            missing @ (RecordError::Missing(_) | RecordError::Unbound(_)) => {
                Failure::permanent(plan, missing.to_string(), None)
            }
        }
    }

    pub(super) fn store(e: StoreError) -> Self {
        Failure::Retry {
            reason: format!("store: {e}"),
        }
    }

    /// Why, whatever the class.
    pub fn reason(&self) -> &str {
        match self {
            Failure::Retry { reason }
            | Failure::Permanent { reason, .. }
            | Failure::Refused { reason, .. } => reason,
        }
    }
}

/// The API's answer to a refused request, as the dead letter shows it.
fn response(e: &ApiError) -> Option<Value> {
    let ApiError::Status {
        status,
        code,
        message,
        fields,
        request_id,
        ..
    } = e
    else {
        return None;
    };
    let messages: Vec<Value> = fields
        .iter()
        .map(|f| json!({ "field": f.field, "message": f.message }))
        .collect();
    Some(json!({
        "status": status,
        "code": code,
        "message": message,
        "validationMessages": messages,
        "requestId": request_id,
    }))
}

/// A body as sent: its JSON, `null` for none, the text itself when it is not JSON.
fn request_body(body: &str) -> Value {
    if body.trim().is_empty() {
        return Value::Null;
    }
    serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::FieldMessage;

    #[test]
    fn a_refusal_keeps_the_answer_and_a_failure_stays_small() {
        let e = ApiError::Status {
            method: "POST".into(),
            path: "/product".into(),
            status: 422,
            code: Some(18000),
            message: "Validering feilet.".into(),
            fields: vec![FieldMessage {
                field: "number".into(),
                message: "Produktnummeret 1 er i bruk.".into(),
            }],
            request_id: Some("r-1".into()),
        };
        assert_eq!(
            response(&e),
            Some(json!({
                "status": 422, "code": 18000, "message": "Validering feilet.",
                "validationMessages": [{ "field": "number", "message": "Produktnummeret 1 er i bruk." }],
                "requestId": "r-1",
            }))
        );
        assert_eq!(request_body(""), Value::Null);
        assert_eq!(request_body("{\"a\":1}"), json!({ "a": 1 }));
        assert_eq!(request_body("not json"), json!("not json"));
        assert!(
            std::mem::size_of::<Failure>() <= 80,
            "{}",
            std::mem::size_of::<Failure>()
        );
    }
}
