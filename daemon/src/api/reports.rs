//! Reports and builds: a CI reports, an operator reads a build or rebuilds it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use conjunction_protocol::{BuildId, Report};

use super::error::ApiError;
use super::extract::{ApiJson, Operator, Reporter};
use super::state::AppState;
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
    _: Operator,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = build_id(&id)?;
    match s.store.node(id)? {
        Some(n) => Ok(Json(n).into_response()),
        None => Err(Refusal::UnknownBuild(id).into()),
    }
}

pub(super) async fn rebuild(
    _: Operator,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let node = s.writer.rebuild(build_id(&id)?).await?;
    Ok(Json(node).into_response())
}
