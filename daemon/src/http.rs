//! The HTTP API: routes that parse, authenticate and hand over to the store or the
//! writer. No business logic lives here.

use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use conjunction_protocol::limits::MAX_BODY_BYTES;
use conjunction_protocol::{BuildId, ProjectId, ProjectSpec, Report};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::sync::watch;

use crate::auth::{bearer, OperatorTokens};
use crate::error::ApiError;
use crate::feed;
use crate::hub::Hub;
use crate::planner::Graph;
use crate::store::{Principal, Store};
use crate::writer::WriterHandle;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub writer: WriterHandle,
    pub hub: Hub,
    pub graph: Arc<RwLock<Arc<Graph>>>,
    pub operators: OperatorTokens,
    pub shutdown: watch::Receiver<bool>,
    pub feed: feed::FeedConfig,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/projects", get(list_projects))
        .route(
            "/v1/projects/{id}",
            get(get_project).put(put_project).delete(delete_project),
        )
        .route("/v1/projects/{id}/dependents", get(dependents))
        .route("/v1/reports", post(post_report))
        .route("/v1/builds/{id}", get(get_build))
        .route("/v1/builds/{id}/rebuild", post(rebuild))
        .route("/v1/roots", get(list_roots))
        .route("/v1/roots/{id}", get(get_root))
        .route("/v1/ws", get(feed::upgrade))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// A request made with a valid operator token.
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers).ok_or_else(|| {
            ApiError::unauthorized("this endpoint needs an operator token in an 'Authorization: Bearer <token>' header")
        })?;
        if state.operators.verify(token) {
            Ok(Operator)
        } else {
            Err(ApiError::unauthorized("the operator token is not valid; check CONJUNCTION_TOKEN or the daemon's operator.token file"))
        }
    }
}

/// Whom the bearer token of a report speaks for.
pub struct Reporter(pub Principal);

impl FromRequestParts<AppState> for Reporter {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers).ok_or_else(|| {
            ApiError::unauthorized(
                "reports need 'Authorization: Bearer <token>' with the project's report token or the build token from the trigger",
            )
        })?;
        match state.store.principal(token)? {
            Some(p) => Ok(Reporter(p)),
            None => Err(ApiError::unauthorized(
                "this report token is not known; use the project's report token or the build token from the trigger payload",
            )),
        }
    }
}

/// A JSON body, refused with a JSON error when it is too large, malformed or has
/// fields the protocol does not know.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e: BytesRejection| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        format!(
                            "the request body is larger than {} KiB; send less",
                            MAX_BODY_BYTES / 1024
                        ),
                    )
                } else {
                    ApiError::bad_request(
                        "unreadable_body",
                        format!("the request body could not be read: {e}"),
                    )
                }
            })?;
        serde_json::from_slice(&bytes).map(ApiJson).map_err(|e| {
            let code = if e.is_data() {
                "invalid_body"
            } else {
                "invalid_json"
            };
            ApiError::bad_request(code, format!("the request body is not valid: {e}"))
        })
    }
}

fn project_id(raw: &str) -> Result<ProjectId, ApiError> {
    Ok(ProjectId::parse(raw)?)
}

fn build_id(raw: &str) -> Result<BuildId, ApiError> {
    Ok(BuildId::parse(raw)?)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

async fn list_projects(_: Operator, State(s): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(s.store.projects()?).into_response())
}

async fn get_project(
    _: Operator,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = project_id(&id)?;
    match s.store.project(&id)? {
        Some(p) => Ok(Json(p).into_response()),
        None => Err(ApiError::unknown_project(&id)),
    }
}

async fn put_project(
    _: Operator,
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiJson(spec): ApiJson<ProjectSpec>,
) -> Result<Response, ApiError> {
    let id = project_id(&id)?;
    spec.validate(&id)?;
    let (answer, created) = s.writer.upsert_project(id, spec).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(answer)).into_response())
}

async fn delete_project(
    _: Operator,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    s.writer.delete_project(project_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn dependents(
    _: Operator,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = project_id(&id)?;
    let graph = s.graph.read().map(|g| g.clone()).unwrap_or_default();
    let dependents = graph.transitive_dependents(&id);
    if dependents.is_empty() && s.store.project(&id)?.is_none() {
        return Err(ApiError::unknown_project(&id));
    }
    Ok(Json(serde_json::json!({"project": id, "dependents": dependents})).into_response())
}

async fn post_report(
    Reporter(principal): Reporter,
    State(s): State<AppState>,
    ApiJson(report): ApiJson<Report>,
) -> Result<Response, ApiError> {
    report.validate()?;
    let is_root = report.build.is_none();
    let ack = s.writer.report(report, principal).await?;
    let status = if is_root {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(ack)).into_response())
}

async fn get_build(
    _: Operator,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = build_id(&id)?;
    match s.store.node(id)? {
        Some(n) => Ok(Json(n).into_response()),
        None => Err(ApiError::unknown_build(id)),
    }
}

async fn rebuild(
    _: Operator,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let node = s.writer.rebuild(build_id(&id)?).await?;
    Ok(Json(node).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RootsQuery {
    limit: Option<usize>,
}

async fn list_roots(
    _: Operator,
    State(s): State<AppState>,
    query: Result<Query<RootsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) =
        query.map_err(|e| ApiError::bad_request("invalid_query", format!("{e}; use ?limit=N")))?;
    let limit = q.limit.unwrap_or(20).clamp(1, 500);
    Ok(Json(s.store.read(move |store| store.roots(limit)).await?).into_response())
}

async fn get_root(
    _: Operator,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = build_id(&id)?;
    match s.store.read(move |store| store.root(id)).await? {
        Some(r) => Ok(Json(r).into_response()),
        None => Err(ApiError::not_found(
            "unknown_root",
            format!("no root event {id} exists"),
        )),
    }
}

async fn no_route() -> ApiError {
    ApiError::not_found(
        "no_such_endpoint",
        "there is no such endpoint; project ids in paths are percent-encoded, as in /v1/projects/acme%2Fapp",
    )
}

async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method; see the API section of the README",
    )
}
