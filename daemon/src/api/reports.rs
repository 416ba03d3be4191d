//! Reports and builds: a CI reports, anyone with a token reads a build, and a
//! maintainer of its project rebuilds it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use conjunction_protocol::{BuildId, Report};

use super::error::ApiError;
use super::extract::{must_manage, shown, ApiJson, Reporter};
use super::state::AppState;
use crate::auth::Caller;
use crate::planner::Refusal;

fn build_id(raw: &str) -> Result<BuildId, ApiError> {
    Ok(BuildId::parse(raw)?)
}

pub(super) async fn post(
    Reporter(principal): Reporter,
    State(s): State<AppState>,
    ApiJson(mut report): ApiJson<Report>,
) -> Result<Response, ApiError> {
    report.clean();
    report.validate()?;
    let state = report.state.to_node_state().kind().as_str();
    let is_root = report.build.is_none();
    // Counted once taken: a refused report is counted as a refusal, by its code.
    let ack = s.writer.report(report, principal).await?;
    s.metrics.report("api", state);
    let status = if is_root {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(ack)).into_response())
}

pub(super) async fn build(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = build_id(&id)?;
    match s.store.node(id)? {
        Some(n) => shown(&caller, &s, &n),
        None => Err(Refusal::UnknownBuild(id).into()),
    }
}

pub(super) async fn rebuild(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let node = rebuild_as(&s, &caller, build_id(&id)?).await?;
    Ok(Json(node).into_response())
}

/// Starts the next attempt of `build` if `caller` maintains its project: from the
/// API and from the feed alike.
pub(super) async fn rebuild_as(
    s: &AppState,
    caller: &Caller,
    build: BuildId,
) -> Result<conjunction_protocol::Node, ApiError> {
    if !caller.scope.is_operator() {
        let node = s.store.node(build)?.ok_or(Refusal::UnknownBuild(build))?;
        must_manage(
            caller,
            &node.project,
            &format!("rebuilding a build of {}", node.project),
        )?;
    }
    Ok(s.writer.rebuild(build, caller.actor()).await?)
}
