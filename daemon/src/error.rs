//! The daemon's refusals: an HTTP status, a stable code and a sentence to act on.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use conjunction_protocol::{BuildId, ProjectId, ValidationError};

use crate::store::StoreError;

/// A refusal as the API sends it. The code is stable; clients may match on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn unknown_project(id: &ProjectId) -> Self {
        Self::not_found(
            "unknown_project",
            format!(
                "no project {id} is registered; create it with PUT {}",
                project_path(id)
            ),
        )
    }

    pub fn unknown_build(id: BuildId) -> Self {
        Self::not_found(
            "unknown_build",
            format!("no build {id} exists; check the id from the trigger payload"),
        )
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", message)
    }

    pub fn body(&self) -> conjunction_protocol::ApiError {
        conjunction_protocol::ApiError {
            error: self.code.to_owned(),
            message: self.message.clone(),
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        Self::bad_request("invalid_field", e.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "storage failure");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage_error",
            "the daemon could not read or write its database; nothing was changed, try again or check the daemon's log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// The API path of a project, for messages: its id percent-encoded as one segment.
pub(crate) fn project_path(id: &ProjectId) -> String {
    // Ids hold only [a-z0-9._-] and '/', so '/' is the one character to encode.
    format!("/v1/projects/{}", id.as_str().replace('/', "%2F"))
}
