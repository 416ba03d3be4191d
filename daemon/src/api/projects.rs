//! Project routes: register one or a list, read, delete, and who depends on whom.
//! Anyone with a token reads; changing a project needs a maintainer of it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use conjunction_protocol::limits::MAX_BULK_PROJECTS;
use conjunction_protocol::project::ProjectsApplied;
use conjunction_protocol::{EntryError, ProjectEntry, ProjectId, ProjectSpec};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::{refused_entries, ApiError};
use super::extract::{log_out_of_scope, must_manage, shown, ApiJson};
use super::state::AppState;
use crate::auth::Caller;
use crate::planner::Refusal;
use crate::writer::WriteError;

pub(super) fn project_id(raw: &str) -> Result<ProjectId, ApiError> {
    Ok(ProjectId::parse(raw)?)
}

pub(super) async fn list(caller: Caller, State(s): State<AppState>) -> Result<Response, ApiError> {
    let projects = s.store.read(|store| store.projects()).await?;
    shown(&caller, &s, &projects)
}

pub(super) async fn get(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = project_id(&id)?;
    let wanted = id.clone();
    match s.store.quick(move |st| st.project(&wanted)).await? {
        Some(p) => shown(&caller, &s, &p),
        None => Err(Refusal::UnknownProject(id).into()),
    }
}

pub(super) async fn put(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiJson(spec): ApiJson<ProjectSpec>,
) -> Result<Response, ApiError> {
    let id = project_id(&id)?;
    must_manage(&caller, &id, &format!("registering or changing {id}"))?;
    spec.validate(&id)?;
    let (answer, created) = s.writer.upsert_project(id, spec, caller.actor()).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(answer)).into_response())
}

/// The body of `PUT /v1/projects`. Entries are kept as their JSON text and read one
/// by one, so that every bad one can be named without holding the list twice.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProjectList {
    projects: Vec<Box<RawValue>>,
}

/// Just the id of an entry, to name it when the rest of it is bad.
#[derive(Deserialize)]
struct Named {
    id: Option<String>,
}

/// Creates or updates every project of the list in one transaction, or none. Entries
/// the caller does not manage are refused by name, and then nothing is applied.
pub(super) async fn apply(
    caller: Caller,
    State(s): State<AppState>,
    ApiJson(list): ApiJson<ProjectList>,
) -> Result<Response, ApiError> {
    if list.projects.len() > MAX_BULK_PROJECTS {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!(
                "the list holds {} projects; send at most {MAX_BULK_PROJECTS} at a time",
                list.projects.len()
            ),
        ));
    }
    let mut refused = Vec::new();
    let mut entries = Vec::with_capacity(list.projects.len());
    for (index, raw) in list.projects.into_iter().enumerate() {
        let checked = serde_json::from_str::<ProjectEntry>(raw.get())
            .map_err(|e| ("invalid_body", e.to_string()))
            .and_then(|entry| match entry.spec.validate(&entry.id) {
                Ok(()) => Ok(entry),
                Err(e) => Err(("invalid_field", e.message)),
            });
        match checked {
            Ok(entry) if !caller.manages(&entry.id) => refused.push(EntryError {
                index,
                project: Some(entry.id.to_string()),
                error: "forbidden_scope".to_owned(),
                message: format!(
                    "{} is outside what {} manages; leave it out, or apply it with a token that reaches it",
                    entry.id,
                    caller.describe()
                ),
            }),
            Ok(entry) => entries.push((index, entry)),
            Err((error, message)) => refused.push(EntryError {
                index,
                project: serde_json::from_str::<Named>(raw.get())
                    .ok()
                    .and_then(|n| n.id),
                error: error.to_owned(),
                message,
            }),
        }
    }
    let outside = refused
        .iter()
        .filter(|e| e.error == "forbidden_scope")
        .count();
    if outside > 0 {
        // Logged once for the list, and counted once as the list's refusal.
        log_out_of_scope(
            &caller,
            &format!("{outside} entries of a list are outside the token's scope"),
        );
    }
    match s
        .writer
        .apply_projects(entries, refused.is_empty(), caller.actor())
        .await
    {
        Ok(applied) => Ok(Json(ProjectsApplied {
            projects: applied.into_iter().map(|(answer, _)| answer).collect(),
        })
        .into_response()),
        Err(WriteError::RefusedEntries(more)) => {
            let ApiError { entries, .. } = WriteError::RefusedEntries(more).into();
            refused.extend(entries);
            Err(refused_entries(refused))
        }
        Err(other) => Err(other.into()),
    }
}

pub(super) async fn delete(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = project_id(&id)?;
    must_manage(&caller, &id, &format!("removing {id}"))?;
    s.writer.delete_project(id, caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Replaces the project's report token with a generated one, shown in this answer
/// only; the old one stops working at once.
pub(super) async fn rotate_report_token(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = project_id(&id)?;
    must_manage(&caller, &id, &format!("rotating {id}'s report token"))?;
    let token = s
        .writer
        .rotate_report_token(id.clone(), caller.actor())
        .await?;
    Ok(Json(serde_json::json!({ "project": id, "report_token": token })).into_response())
}

pub(super) async fn dependents(
    _: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = project_id(&id)?;
    // Take the graph as committed and let go of the lock before walking it.
    let graph = s.graph.read().map(|g| g.clone()).unwrap_or_default();
    let dependents = graph.transitive_dependents(&id);
    if dependents.is_empty() && !graph.is_registered(&id) {
        return Err(Refusal::UnknownProject(id).into());
    }
    Ok(Json(serde_json::json!({"project": id, "dependents": dependents})).into_response())
}
