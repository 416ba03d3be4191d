//! `GET /v1/audit`: who changed what, newest first, for one project or everything.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::error::ApiError;
use super::projects::project_id;
use super::state::AppState;
use crate::auth::Caller;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    project: Option<String>,
    before: Option<u64>,
    limit: Option<usize>,
}

pub(super) async fn list(
    _: Caller,
    State(s): State<AppState>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| {
        ApiError::bad_request(
            "invalid_query",
            format!("{e}; use ?project=acme/app&limit=N&before=SEQ"),
        )
    })?;
    let project = q.project.as_deref().map(project_id).transpose()?;
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let page = s
        .store
        .read(move |store| store.audit(project.as_ref(), q.before, limit))
        .await?;
    Ok(Json(page).into_response())
}
