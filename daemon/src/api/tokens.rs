//! People's tokens: `POST /v1/tokens` issues one (the token in that answer only),
//! `GET /v1/tokens` lists those the caller may revoke, `DELETE /v1/tokens/{id}`
//! revokes one and closes its feeds.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use conjunction_protocol::access::{TokenInfo, TokenRequest};
use conjunction_protocol::Timestamp;

use super::error::ApiError;
use super::extract::{out_of_scope, ApiJson};
use super::state::AppState;
use crate::auth::Caller;
use crate::planner::Refusal;
use crate::writer::WriteError;

pub(super) async fn post(
    caller: Caller,
    State(s): State<AppState>,
    ApiJson(request): ApiJson<TokenRequest>,
) -> Result<Response, ApiError> {
    request.validate(Timestamp::from_system_time(std::time::SystemTime::now()))?;
    if matches!(caller.scope, conjunction_protocol::access::Scope::Viewer) {
        return Err(out_of_scope(
            &caller,
            format!(
                "issuing tokens needs a maintainer or operator token; {}",
                caller.view().reach()
            ),
        ));
    }
    let issued = s
        .writer
        .issue_token(request, caller.clone())
        .await
        .map_err(|e| logged(&caller, e))?;
    tracing::info!(by = %caller.name, token = %issued.info.name, scope = %issued.info.scope, "token issued");
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}

pub(super) async fn list(caller: Caller, State(s): State<AppState>) -> Result<Response, ApiError> {
    let people = s.store.read(|store| store.people()).await?;
    let shown: Vec<TokenInfo> = people
        .into_iter()
        .filter(|p| caller.may_revoke(&p.info.id, &p.info.scope, p.issuer.as_deref()))
        .map(|p| p.info)
        .collect();
    Ok(Json(serde_json::json!({ "tokens": shown })).into_response())
}

pub(super) async fn delete(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let revoked = s
        .writer
        .revoke_token(id, caller.clone())
        .await
        .map_err(|e| logged(&caller, e))?;
    s.last_used.forget(&revoked.id);
    // Committed: the token opens nothing from here on. Its open feeds close now.
    let _ = s.revoked.send(revoked.id.clone());
    tracing::info!(by = %caller.name, token = %revoked.name, "token revoked");
    Ok(Json(revoked).into_response())
}

/// A writer's refusal for lack of permission is logged like the API's own.
fn logged(caller: &Caller, e: WriteError) -> ApiError {
    match e {
        WriteError::Refused(Refusal::OutOfScope(message)) => out_of_scope(caller, message),
        other => other.into(),
    }
}
