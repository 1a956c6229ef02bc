//! `ApiError`: every failure leaves the server as PocketBase's `{data, message, status}` body.
//! Store errors map here explicitly; internal details are logged once and never returned.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::{StoreError, ValidationErrors};
use serde_json::{Value, json};

/// An HTTP error in PocketBase's shape.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub data: Value,
    /// Why, for the request log and the `--dev` console only (never sent to the client).
    pub detail: Option<Box<str>>,
}

/// What the request log records of an error answer (`error`, `details`); attached to the
/// response's extensions by [`ApiError::into_response`].
#[derive(Debug, Clone)]
pub struct LoggedError {
    pub message: String,
    pub details: Value,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with an explicit message (normalized like PocketBase: capital first letter,
    /// closing period).
    pub fn new(status: StatusCode, message: &str) -> Self {
        ApiError {
            status,
            message: normalize_message(message),
            data: json!({}),
            detail: None,
        }
    }

    /// The same error, with `detail` recorded in the request log (not sent to the client).
    pub fn with_detail(mut self, detail: impl std::fmt::Display) -> Self {
        self.detail = Some(detail.to_string().into_boxed_str());
        self
    }

    /// 400 with the generic message, as PocketBase answers malformed query parameters.
    pub fn bad_request() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "Something went wrong while processing your request.",
        )
    }

    pub fn bad_request_msg(message: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 400 carrying field errors.
    pub fn validation(message: &str, errors: ValidationErrors) -> Self {
        let mut error = Self::new(StatusCode::BAD_REQUEST, message);
        error.data = errors.into_json();
        error
    }

    pub fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn forbidden(message: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 404 with the default message.
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "The requested resource wasn't found.",
        )
    }

    pub fn not_found_msg(message: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn too_large() -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "Request entity too large.")
    }

    /// 500 without detail; `detail` is logged.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong while processing your request.",
        )
        .with_detail(detail)
    }

    /// Maps a store error for an endpoint whose failures PocketBase reports with `message`
    /// (e.g. "Failed to create record."): validation errors carry their field data.
    pub fn from_store(error: StoreError, message: &str) -> Self {
        match error {
            StoreError::NotFound => Self::not_found(),
            StoreError::GuardRejected => Self::bad_request_msg(message),
            StoreError::Validation(errors) => Self::validation(message, errors),
            StoreError::RequiredReference => Self::bad_request_msg(
                "Failed to delete record. Make sure that the record is not part of a required relation reference.",
            ),
            StoreError::Schema(detail) => {
                tracing::debug!(%detail, "schema change refused");
                Self::bad_request_msg(message)
            }
            // A query interrupted at the query timeout: PocketBase answers a list with the
            // generic 400, a failed save with its own message.
            StoreError::TimedOut => {
                tracing::debug!("a database query timed out");
                Self::bad_request_msg(message)
            }
            StoreError::Internal(detail) => Self::internal(detail),
            StoreError::Hook {
                status: Some(status),
                message,
                data,
            } => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
                let mut error = Self::new(status, &message);
                if data.as_object().is_some_and(|d| !d.is_empty()) {
                    error.data = data;
                }
                error
            }
            StoreError::Hook {
                status: None,
                message: detail,
                ..
            } => {
                tracing::warn!(error = %detail, "a hook refused a write");
                Self::bad_request_msg(message)
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::from_store(error, "Something went wrong while processing your request.")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let logged = LoggedError {
            message: self.message.clone(),
            details: log_details(&self.data, self.detail),
        };
        let body =
            json!({"data": self.data, "message": self.message, "status": self.status.as_u16()});
        let mut response = (self.status, Json(body)).into_response();
        response.extensions_mut().insert(logged);
        response
    }
}

/// The `details` of a logged error: the field errors as `{field: "message"}` (lower case, no
/// period, as PocketBase logs them), else the recorded detail, else `null`.
fn log_details(data: &Value, detail: Option<Box<str>>) -> Value {
    if let Some(fields) = data.as_object().filter(|fields| !fields.is_empty()) {
        let details = fields
            .iter()
            .map(|(name, error)| {
                let message = error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let mut chars = message.trim_end_matches('.').chars();
                let lowered: String = match chars.next() {
                    Some(first) => first.to_lowercase().chain(chars).collect(),
                    None => String::new(),
                };
                (name.clone(), Value::String(lowered))
            })
            .collect();
        return Value::Object(details);
    }
    detail.map_or(Value::Null, |detail| Value::String(detail.into()))
}

/// Capitalizes the first letter and ends the sentence with a period, as PocketBase does.
fn normalize_message(message: &str) -> String {
    let mut chars = message.trim().chars();
    let mut out: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !out.ends_with(['.', '?', '!']) {
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timed_out_queries_answer_like_pocketbase() {
        let list = ApiError::from(StoreError::TimedOut);
        assert_eq!(list.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            list.message,
            "Something went wrong while processing your request."
        );
        let save = ApiError::from_store(StoreError::TimedOut, "Failed to create record.");
        assert_eq!(save.message, "Failed to create record.");
    }

    #[test]
    fn messages_are_sentences() {
        assert_eq!(
            normalize_message("invalid or expired OTP"),
            "Invalid or expired OTP."
        );
        assert_eq!(normalize_message("Done!"), "Done!");
    }
}
