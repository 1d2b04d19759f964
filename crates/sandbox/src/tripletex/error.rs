//! Tripletex's error body (`ApiError`): `{status, code, message, link, developerMessage,
//! validationMessages[{field, message, path, rootId}], requestId}`, with the codes and the
//! Norwegian messages the real service answers with.

use serde_json::{Value, json};

const LINK: &str = "https://tripletex.no/v2-docs/";
/// What every 401 explains, as the real service does.
const AUTH_FORMAT: &str = "The expected format is base64encoded(<<companyId>>:<<sessionToken>>)";

/// One entry of `validationMessages`.
#[derive(Debug, Clone, PartialEq)]
pub struct Msg {
    pub field: Option<String>,
    pub message: String,
    pub path: Option<String>,
}

impl Msg {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Msg {
            field: Some(field.into()),
            message: message.into(),
            path: None,
        }
    }

    /// A message with no field, like the missing-bank-account one.
    pub fn general(message: impl Into<String>) -> Self {
        Msg {
            field: None,
            message: message.into(),
            path: None,
        }
    }

    pub fn at(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }
}

/// An error answer; the request id is added when the response is written.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: u32,
    pub message: String,
    pub developer_message: Option<String>,
    pub validation: Option<Vec<Msg>>,
}

impl ApiError {
    fn new(status: u16, code: u32, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            developer_message: None,
            validation: None,
        }
    }

    fn developer(mut self, m: impl Into<String>) -> Self {
        self.developer_message = Some(m.into());
        self
    }

    /// 422/18000: a rule the server enforces beyond the schema.
    pub fn validation(msgs: Vec<Msg>) -> Self {
        ApiError {
            validation: Some(msgs),
            ..ApiError::new(422, 18000, "Validering feilet.").developer("VALIDATION_ERROR")
        }
    }

    /// 422/16000: an unknown field or a value of the wrong type.
    pub fn mapping(msgs: Vec<Msg>) -> Self {
        ApiError {
            validation: Some(msgs),
            ..ApiError::new(422, 16000, "Request mapping failed")
        }
    }

    /// 422/22000: a body that is not JSON at all.
    pub fn invalid_json(detail: impl Into<String>) -> Self {
        ApiError::new(422, 22000, "Invalid JSON").developer(detail)
    }

    pub fn not_found() -> Self {
        ApiError::new(404, 6000, "Object not found")
    }

    pub fn unauthorized(detail: &str) -> Self {
        ApiError::new(401, 3000, "Unauthorized").developer(format!("{detail} {AUTH_FORMAT}"))
    }

    pub fn revision(current: i64, sent: i64) -> Self {
        ApiError::new(409, 8000, "RevisionException").developer(format!(
            "The object has been changed since version {sent} was read; the current version is {current}."
        ))
    }

    /// 400/11000: a `fields` or filter value the server cannot use.
    pub fn illegal_filter(message: impl Into<String>) -> Self {
        ApiError::new(400, 11000, message)
    }

    /// 400/12000: a path parameter that is not an id.
    pub fn path_param(value: &str) -> Self {
        ApiError::new(400, 12000, format!("Illegal path parameter: {value}"))
    }

    /// 422/17000: a `sorting` field the model does not have.
    pub fn sorting(field: &str) -> Self {
        ApiError::new(422, 17000, format!("Illegal field in sorting: {field}"))
    }

    pub fn method_not_allowed() -> Self {
        ApiError::new(405, 4000, "HTTP 405 Method Not Allowed")
    }

    pub fn too_many_requests() -> Self {
        ApiError::new(429, 0, "Too many requests").developer(
            "The rate limit for this employee and API consumer is exceeded; wait until the period resets.",
        )
    }

    /// A server failure with the given status (500, 502, 503…).
    pub fn server(status: u16) -> Self {
        let message = match status {
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            504 => "Gateway Timeout",
            _ => "Internal Server Error",
        };
        ApiError::new(status, 1000, message)
    }

    pub fn body(&self, request_id: &str) -> Value {
        let messages = self.validation.as_ref().map(|msgs| {
            msgs.iter()
                .map(|m| json!({"field": m.field, "message": m.message, "path": m.path, "rootId": null}))
                .collect::<Vec<_>>()
        });
        json!({
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "link": LINK,
            "developerMessage": self.developer_message,
            "validationMessages": messages,
            "requestId": request_id,
        })
    }
}
