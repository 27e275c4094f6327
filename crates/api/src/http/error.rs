//! One error type that is also the HTTP response: `{"error": {"code", "message"}}`.
//!
//! Handlers return `Result<_, Error>` and use `?` on anything; database and internal failures are
//! logged with their cause and answered with a bare 500 that leaks nothing.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Missing or invalid credentials.
    #[error("missing or invalid credentials")]
    Unauthorized,
    /// Anything the caller may not see, including other brands' objects.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request is well-formed JSON but a field is invalid (422) or the request itself is (400).
    #[error("{message}")]
    Invalid { status: StatusCode, code: &'static str, message: String },
    /// The request conflicts with the current state (a duplicate promo code, say).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("request body is larger than the limit")]
    PayloadTooLarge,
    /// Over a rate limit; `retry_after` is how long until a request would pass (sent as `Retry-After`).
    #[error("too many requests")]
    RateLimited { retry_after: std::time::Duration },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl Error {
    /// A 422 naming the field that is wrong.
    pub fn invalid_field(code: &'static str, message: impl Into<String>) -> Self {
        Error::Invalid { status: StatusCode::UNPROCESSABLE_ENTITY, code, message: message.into() }
    }

    /// A 400 for a malformed request (query string, cursor, ...).
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Error::Invalid { status: StatusCode::BAD_REQUEST, code, message: message.into() }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Error::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Error::Invalid { status, code, .. } => (*status, code),
            Error::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            Error::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Error::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Error::Database(_) | Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// The JSON body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"code": "invalid_destination_url", "message": "destination_url must be an absolute http(s) URL"}))]
pub struct ErrorDetail {
    /// Stable, snake_case; clients branch on it.
    pub code: String,
    /// A sentence for people; may change.
    pub message: String,
}

impl Error {
    /// The `{"code", "message"}` of this error's answer, for answers that carry several (a batch's items).
    /// Database and internal failures are logged here, and say nothing more than "internal".
    pub fn detail(&self) -> ErrorDetail {
        let (_, code) = self.status_and_code();
        let message = match self {
            Error::Database(e) => {
                tracing::error!(error = %e, "database error");
                "an internal error occurred".to_owned()
            }
            Error::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "internal error");
                "an internal error occurred".to_owned()
            }
            other => other.to_string(),
        };
        ErrorDetail { code: code.to_owned(), message }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, _) = self.status_and_code();
        let retry_after = match &self {
            Error::RateLimited { retry_after } => Some(crate::limits::retry_after_secs(*retry_after)),
            _ => None,
        };
        let mut response = (status, Json(ErrorBody { error: self.detail() })).into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
        }
        response
    }
}

impl From<JsonRejection> for Error {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let message = rejection.body_text();
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Error::Invalid { status, code: "unsupported_media_type", message },
            StatusCode::UNPROCESSABLE_ENTITY => Error::Invalid { status, code: "invalid_body", message },
            _ => Error::Invalid { status: StatusCode::BAD_REQUEST, code: "malformed_json", message },
        }
    }
}

impl From<crate::domains::DomainError> for Error {
    fn from(e: crate::domains::DomainError) -> Self {
        use crate::domains::DomainError;
        match e {
            DomainError::Invalid(why) => Error::invalid_field("invalid_hostname", format!("hostname {why}")),
            DomainError::NotFound => Error::NotFound("domain"),
            DomainError::Taken(message) => Error::Conflict { code: "domain_taken", message: message.into() },
            e @ DomainError::InUse(_) => Error::Conflict { code: "domain_in_use", message: e.to_string() },
            e @ DomainError::TooMany => Error::Conflict { code: "too_many_domains", message: e.to_string() },
            e @ DomainError::Provider(_) => Error::invalid_field("domain_refused", e.to_string()),
            e @ DomainError::Unavailable(_) => Error::Invalid {
                status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
                code: "provider_unavailable",
                message: e.to_string(),
            },
            DomainError::Database(db) => Error::Database(db),
            DomainError::Internal(e) => Error::Internal(e),
        }
    }
}

impl From<crate::links::LinkError> for Error {
    fn from(e: crate::links::LinkError) -> Self {
        use crate::links::LinkError;
        match e {
            LinkError::Invalid { code, message } => Error::invalid_field(code, message),
            LinkError::NotFound(what) => Error::NotFound(what),
            LinkError::Conflict { code, message } => Error::Conflict { code, message },
            LinkError::Database(db) => Error::Database(db),
            LinkError::Internal(e) => Error::Internal(e),
        }
    }
}

impl From<QueryRejection> for Error {
    fn from(rejection: QueryRejection) -> Self {
        Error::bad_request("invalid_query", rejection.body_text())
    }
}

impl From<PathRejection> for Error {
    // A path that does not name one of our ids names nothing the caller may see.
    fn from(_: PathRejection) -> Self {
        Error::NotFound("resource")
    }
}
