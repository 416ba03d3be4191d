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
use crate::planner::{Principal, Refusal};
use conjunction_protocol::audit::Actor;

/// Whose `token` (a CI's id token) is, for a report of `report.project`: an
/// identity the project trusts, or the refusal that says why not.
async fn identify(
    s: &AppState,
    token: &str,
    report: &Report,
) -> Result<crate::oidc::Identified, ApiError> {
    use crate::oidc::Refused;
    let wanted = report.project.clone();
    let project = s
        .store
        .quick(move |st| st.stored_project(&wanted))
        .await?
        .ok_or_else(|| ApiError::from(Refusal::UnknownProject(report.project.clone())))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    s.id_tokens
        .identify(token, report.project.as_str(), &project.trusted_ci, report.build, now)
        .await
        .map_err(|refused| {
            let (status, code) = match &refused {
                Refused::Token(_) => (StatusCode::UNAUTHORIZED, "invalid_id_token"),
                Refused::Issuer(_) => (StatusCode::SERVICE_UNAVAILABLE, "issuer_unavailable"),
                Refused::NotTrusted { .. } | Refused::Mismatch { .. } => {
                    (StatusCode::FORBIDDEN, "untrusted_identity")
                }
                Refused::OtherBuild { .. } | Refused::SecondRoot => (StatusCode::FORBIDDEN, "forbidden"),
            };
            tracing::warn!(project = %report.project, reason = %refused, "a report's id token was refused");
            ApiError::new(status, code, refused.to_string())
        })
}

fn build_id(raw: &str) -> Result<BuildId, ApiError> {
    Ok(BuildId::parse(raw)?)
}

pub(super) async fn post(
    reporter: Reporter,
    State(s): State<AppState>,
    ApiJson(mut report): ApiJson<Report>,
) -> Result<Response, ApiError> {
    report.clean();
    report.validate()?;
    let state = report.state.to_node_state().kind().as_str();
    let is_root = report.build.is_none();
    let (principal, identified) = match reporter {
        Reporter::Token(principal) => (principal, None),
        Reporter::IdToken(token) => {
            let identified = identify(&s, &token, &report).await?;
            let principal = Principal::Project {
                project: report.project.clone(),
            };
            (principal, Some(identified))
        }
    };
    let by = identified.as_ref().map(|i| Actor::CiIdentity {
        identity: i.identity.clone(),
    });
    // Counted once taken: a refused report is counted as a refusal, by its code.
    let ack = match s.writer.report(report, principal, by).await {
        Ok(ack) => ack,
        Err(e) => {
            if let Some(i) = &identified {
                s.id_tokens.refused(i);
            }
            return Err(e.into());
        }
    };
    if let (Some(i), true) = (&identified, is_root) {
        s.id_tokens.started(i, ack.build);
    }
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
    match s.store.quick(move |st| st.node(id)).await? {
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
        let node = s
            .store
            .quick(move |st| st.node(build))
            .await?
            .ok_or(Refusal::UnknownBuild(build))?;
        must_manage(
            caller,
            &node.project,
            &format!("rebuilding a build of {}", node.project),
        )?;
    }
    Ok(s.writer.rebuild(build, caller.actor()).await?)
}
