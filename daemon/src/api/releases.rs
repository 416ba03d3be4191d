//! Release routes: a project's release lines, and the impact preview of a release or
//! a promotion before it is reported.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use conjunction_protocol::limits::MAX_SHORT_TEXT;
use conjunction_protocol::releases::Releases;
use conjunction_protocol::text::{check_text, Layout};
use serde::Deserialize;

use super::error::ApiError;
use super::extract::shown;
use super::projects::project_id;
use super::state::AppState;
use crate::auth::Caller;
use crate::planner::impact::{self, Preview};
use crate::planner::lines::{judge_promotion, rollback_from};
use crate::planner::versions::Version;
use crate::planner::{Promotion, Refusal, Stage};

/// Most release lines one page lists.
const MAX_LINES_PAGE: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReleasesQuery {
    before: Option<String>,
    limit: Option<usize>,
}

/// A project's release lines, newest first, each with its dependents' versions and
/// states per environment.
pub(super) async fn list(
    _: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<ReleasesQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let id = project_id(&id)?;
    let Query(q) = query.map_err(|e| {
        ApiError::bad_request(
            "invalid_query",
            format!("{e}; use ?limit=<1 to {MAX_LINES_PAGE}>&before=<a version listed>"),
        )
    })?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=MAX_LINES_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and {MAX_LINES_PAGE}"),
        ));
    }
    known(&s, &id)?;
    let project = id.clone();
    let page = s
        .store
        .read(move |store| store.releases(&project, q.before.as_deref(), limit))
        .await?;
    let next_before = page
        .more
        .then(|| page.lines.last().map(|l| l.version.clone()))
        .flatten();
    Ok(Json(Releases {
        project: id,
        environments: s.environments.names().to_vec(),
        current: page.current,
        lines: page.lines,
        next_before,
    })
    .into_response())
}

/// One release line.
pub(super) async fn get(
    caller: Caller,
    State(s): State<AppState>,
    Path((id, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = project_id(&id)?;
    check_text("version", &version, MAX_SHORT_TEXT, true, Layout::Line)?;
    known(&s, &id)?;
    let project = id.clone();
    let wanted = version.clone();
    let (line, _) = s
        .store
        .read(move |store| store.release_line(&project, &wanted))
        .await?;
    match line {
        Some(line) => shown(&caller, &s, &line),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_release",
            format!(
                "{id} has no release line for {version}: no root report of {id} named that version"
            ),
        )),
    }
}

fn known(s: &AppState, id: &conjunction_protocol::ProjectId) -> Result<(), ApiError> {
    let registered = s.graph.read().is_ok_and(|g| g.is_registered(id));
    if registered {
        Ok(())
    } else {
        Err(Refusal::UnknownProject(id.clone()).into())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ImpactQuery {
    version: String,
    environment: Option<String>,
}

/// What releasing a version of a project would do: the same planner code that runs
/// when the release is reported, on the graph as committed now.
pub(super) async fn impact(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<ImpactQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let id = project_id(&id)?;
    let Query(q) = query.map_err(|e| {
        ApiError::bad_request(
            "invalid_query",
            format!("{e}; use ?version=<the version to release>"),
        )
    })?;
    check_text("version", &q.version, MAX_SHORT_TEXT, true, Layout::Line)?;
    let graph = s.graph.read().map(|g| g.clone()).unwrap_or_default();
    if !graph.is_registered(&id) {
        return Err(Refusal::UnknownProject(id).into());
    }
    if let Err(e) = Version::parse(graph.ecosystem(&id), &q.version) {
        return Err(ApiError::bad_request("invalid_version", e.to_string()));
    }
    let stage = s.environments.stage(q.environment.as_deref())?;
    let promotion = match stage {
        Stage::Release { .. } => None,
        Stage::Promotion {
            environment,
            previous,
        } => {
            let (project, version) = (id.clone(), q.version.clone());
            let (line, current) = s
                .store
                .read(move |store| store.release_line(&project, &version))
                .await?;
            judge_promotion(&id, Some(&q.version), environment, previous, line.as_ref())?;
            let dependents = line.as_ref().map_or(&[][..], |l| &l.dependents[..]);
            let promotion = Promotion::of(&q.version, line.as_ref(), dependents, previous);
            let rollback_from = rollback_from(
                graph.ecosystem(&id),
                &q.version,
                current.get(environment).map(String::as_str),
            );
            Some((environment.to_owned(), promotion, rollback_from))
        }
    };
    let mut answer = tokio::task::spawn_blocking(move || {
        let preview = match &promotion {
            None => Preview::Release,
            Some((environment, promotion, rollback_from)) => Preview::Promotion {
                environment,
                promotion,
                rollback_from: rollback_from.as_deref(),
            },
        };
        impact::impact(&graph, &id, &q.version, preview)
    })
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the impact preview could not be worked out; the daemon's log says why",
        )
    })?;
    for bump in &mut answer.needs_bump {
        let id = bump.project.clone();
        if let Some(p) = s.store.quick(move |st| st.project(&id)).await? {
            bump.contacts = p.contacts;
        }
    }
    shown(&caller, &s, &answer)
}
