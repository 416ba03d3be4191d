//! How refusals are spoken over HTTP: a status, a stable code and a sentence to act
//! on. The domain says why ([`Refusal`]); this is the one place that says how.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use conjunction_protocol::node::RebuildRefusal;
use conjunction_protocol::{EntryError, ValidationError};

use crate::planner::{Refusal, ReportRefusal};
use crate::store::StoreError;
use crate::writer::WriteError;

/// A refusal as the API sends it. The code is stable; clients may match on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The refused entries of a list.
    pub entries: Vec<EntryError>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            entries: Vec::new(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn body(&self) -> conjunction_protocol::ApiError {
        conjunction_protocol::ApiError {
            error: self.code.to_owned(),
            message: self.message.clone(),
            entries: self.entries.clone(),
        }
    }
}

/// The status and stable code of a refusal.
pub fn status_and_code(refusal: &Refusal) -> (StatusCode, &'static str) {
    use StatusCode as S;
    match refusal {
        Refusal::UnknownProject(_) => (S::NOT_FOUND, "unknown_project"),
        Refusal::UnknownBuild(_) => (S::NOT_FOUND, "unknown_build"),
        Refusal::Forbidden(_) => (S::FORBIDDEN, "forbidden"),
        Refusal::ProjectMismatch { .. } => (S::BAD_REQUEST, "project_mismatch"),
        Refusal::Report(r) => (
            S::CONFLICT,
            match r {
                ReportRefusal::StaleAttempt { .. } => "stale_attempt",
                ReportRefusal::FutureAttempt { .. } => "unknown_attempt",
                ReportRefusal::NotTriggered { .. } => "not_triggered",
                ReportRefusal::AlreadyFinal { .. } => "already_final",
            },
        ),
        Refusal::Rebuild(r) => (
            S::CONFLICT,
            match r {
                RebuildRefusal::InProgress(_) => "in_progress",
                RebuildRefusal::Blocked => "blocked",
                RebuildRefusal::Skipped => "in_cycle",
            },
        ),
        Refusal::ProjectGone(_) => (S::CONFLICT, "project_gone"),
        Refusal::NoTrigger(_) => (S::CONFLICT, "no_trigger"),
        Refusal::TokenInUse => (S::CONFLICT, "token_in_use"),
        Refusal::ListedTwice(_) => (S::BAD_REQUEST, "listed_twice"),
        Refusal::BadRange { .. } => (S::BAD_REQUEST, "invalid_range"),
        Refusal::BreaksRanges { .. } => (S::CONFLICT, "ranges_would_break"),
        Refusal::UnknownEnvironment { .. } => (S::BAD_REQUEST, "unknown_environment"),
        Refusal::PromotionWithoutVersion { .. } => (S::BAD_REQUEST, "version_required"),
        Refusal::NotPassedBefore { .. } => (S::CONFLICT, "not_passed_before"),
        Refusal::Superseded { .. } => (S::CONFLICT, "superseded"),
        Refusal::UnknownToken(_) => (S::NOT_FOUND, "unknown_token"),
        Refusal::TokenNameInUse(_) => (S::CONFLICT, "token_name_in_use"),
        Refusal::OutOfScope(_) => (S::FORBIDDEN, "forbidden_scope"),
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        let (status, code) = status_and_code(&refusal);
        Self::new(status, code, refusal.to_string())
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Refused(refusal) => refusal.into(),
            WriteError::RefusedEntries(entries) => refused_entries(
                entries
                    .into_iter()
                    .map(|e| {
                        let (_, code) = status_and_code(&e.refusal);
                        EntryError {
                            index: e.index,
                            project: Some(e.project.to_string()),
                            error: code.to_owned(),
                            message: e.refusal.to_string(),
                        }
                    })
                    .collect(),
            ),
            WriteError::Storage => storage_error(),
            WriteError::NotWriter => not_writer(),
            WriteError::Unavailable => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the daemon is shutting down; try again shortly",
            ),
        }
    }
}

/// The refusal of a whole list, naming every refused entry. A list refused only for
/// conflicts with what is stored answers 409; one with malformed entries, 400.
pub fn refused_entries(mut entries: Vec<EntryError>) -> ApiError {
    entries.sort_by_key(|e| e.index);
    let all = |code: &str| entries.iter().all(|e| e.error == code);
    let status = if all("forbidden_scope") {
        StatusCode::FORBIDDEN
    } else if all("token_in_use") {
        StatusCode::CONFLICT
    } else {
        StatusCode::BAD_REQUEST
    };
    let n = entries.len();
    // A list refused only for the caller's scope says so in its code, as a single
    // request refused for it does.
    let code = if status == StatusCode::FORBIDDEN {
        "forbidden_scope"
    } else {
        "entries_refused"
    };
    let mut error = ApiError::new(
        status,
        code,
        format!(
            "{n} entr{} of the list {} refused, so nothing was applied; fix {} and send the whole list again",
            if n == 1 { "y" } else { "ies" },
            if n == 1 { "was" } else { "were" },
            if n == 1 { "it" } else { "them" },
        ),
    );
    error.entries = entries;
    error
}

pub fn body_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        "the request body is larger than this endpoint takes (1 MiB; 64 MiB for PUT /v1/projects); send less",
    )
}

fn storage_error() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "storage_error",
        "the daemon could not read or write its database; nothing was changed, try again or check the daemon's log",
    )
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        Self::bad_request("invalid_field", e.message)
    }
}

/// A write this daemon cannot make now, on a PostgreSQL store another daemon (or
/// none, during a takeover) writes to: nothing was changed, and trying again shortly
/// reaches the writer.
fn not_writer() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not_writer",
        "this daemon cannot write to the shared database just now (the writer's role is changing hands); nothing was changed: try again in a few seconds",
    )
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.not_writer() {
            return not_writer();
        }
        if let StoreError::RedbOnly(_) = e {
            return ApiError::new(StatusCode::CONFLICT, "not_on_postgres", e.to_string());
        }
        tracing::error!(error = %e, "storage failure");
        storage_error()
    }
}

/// The code a response was refused with, for the refusal counter.
#[derive(Debug, Clone, Copy)]
pub struct RefusalCode(pub &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        response.extensions_mut().insert(RefusalCode(self.code));
        response
    }
}
