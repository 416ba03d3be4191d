//! `POST /v1/hooks/{kind}/{project}`: a native CI's own webhook about a run of
//! `project`. The project's `source` names the CI and holds the secret; the request
//! is checked against the raw body before anything in it is believed, then handed to
//! the writer, and answered once what it changed is committed.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use conjunction_protocol::ci::{HookAnswer, HookOutcome};
use conjunction_protocol::CiKind;

use super::error::ApiError;
use super::projects::project_id;
use super::state::AppState;
use crate::ci::{self, Hook, HookError, RunState};
use crate::planner::Refusal;
use crate::writer::{Heard, News, Via};

#[derive(serde::Deserialize)]
pub(super) struct HookQuery {
    /// Jenkins's secret, for a Notification endpoint that cannot send user info.
    token: Option<String>,
}

pub(super) async fn post(
    State(s): State<AppState>,
    Path((kind, project)): Path<(String, String)>,
    Query(query): Query<HookQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let ci = CiKind::parse(&kind).ok_or_else(|| {
        ApiError::not_found(
            "unknown_ci",
            format!(
                "conjunction takes webhooks from {}, not {kind:?}: POST /v1/hooks/<kind>/<project>",
                kinds()
            ),
        )
    })?;
    let id = project_id(&project)?;
    let wanted = id.clone();
    let stored = s
        .store
        .quick(move |st| st.stored_project(&wanted))
        .await?
        .ok_or_else(|| ApiError::from(Refusal::UnknownProject(id.clone())))?;
    let Some(source) = stored.source else {
        return Err(ApiError::not_found(
            "no_source",
            format!("{id} has no source configured, so its webhooks cannot be checked; add a `source` to its registration"),
        ));
    };
    if source.kind() != ci {
        return Err(ApiError::bad_request(
            "wrong_ci",
            format!(
                "{id}'s source is {}, not {ci}; send its webhooks to /v1/hooks/{}/{}",
                source.kind(),
                source.kind(),
                project
            ),
        ));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    ci::verify(&source, &headers, query.token.as_deref(), &body, now).map_err(refused)?;
    let (run, delivery) = match ci::read_hook(ci, &headers, &body).map_err(refused)? {
        (Hook::Run(run), delivery) => (run, delivery),
        (Hook::Change(change), _) => {
            return changed(&s, id, &source, stored.trigger.as_ref(), change).await;
        }
        (Hook::Unused(note), _) => {
            s.metrics.report("webhook", "ignored");
            let answer = answer(
                HookOutcome::Noted,
                None,
                Some(format!("{note}; nothing changed")),
            );
            return Ok((StatusCode::ACCEPTED, Json(answer)).into_response());
        }
    };
    let state = match run.state {
        RunState::Ignored(_) => "ignored",
        state => state.report_state().to_node_state().kind().as_str(),
    };
    let delivery = delivery.unwrap_or_else(|| run.semantic_key.clone());
    let news = News {
        project: id,
        ci,
        run,
        via: Via::Webhook { delivery },
    };
    let heard = s.writer.news(news).await?;
    // What changed nothing is counted as ignored, whatever state the run said.
    s.metrics.report(
        "webhook",
        match heard {
            Heard::Build(_) | Heard::Root(_) => state,
            Heard::Duplicate => "duplicate",
            Heard::Noted(_) => "ignored",
        },
    );
    let (status, answer) = match heard {
        Heard::Build(ack) => (
            StatusCode::OK,
            answer(HookOutcome::Updated, Some(ack), None),
        ),
        Heard::Root(ack) => (
            StatusCode::CREATED,
            answer(HookOutcome::Started, Some(ack), None),
        ),
        Heard::Duplicate => (StatusCode::OK, answer(HookOutcome::Duplicate, None, None)),
        Heard::Noted(note) => (
            StatusCode::ACCEPTED,
            answer(HookOutcome::Noted, None, Some(note)),
        ),
    };
    Ok((status, Json(answer)).into_response())
}

/// A pull or merge request of the project's own repository was closed or merged:
/// its candidate, if one still runs, is ended. Anything else a request does is
/// noted: a candidate starts from the run of its pipeline, not from the request.
async fn changed(
    s: &AppState,
    id: conjunction_protocol::ProjectId,
    source: &conjunction_protocol::SourceSpec,
    trigger: Option<&conjunction_protocol::TriggerSpec>,
    change: ci::ChangeEvent,
) -> Result<Response, ApiError> {
    let noted = |note: String| {
        s.metrics.report("webhook", "ignored");
        let answer = answer(
            HookOutcome::Noted,
            None,
            Some(format!("{note}; nothing changed")),
        );
        Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
    };
    let request = format!("request #{} in {}", change.number, change.source);
    let place = source.release(trigger).place;
    if let Some(wanted) = place.filter(|w| !ci::same_place(source.kind(), &change.source, w)) {
        return noted(format!(
            "{request} is not in {wanted}, whose requests the source follows"
        ));
    }
    if !source.candidates().enabled {
        return noted(format!(
            "{request} was {}; the source takes no candidates (`candidates = true`)",
            change.action.as_str()
        ));
    }
    if !change.action.ends() {
        return noted(format!(
            "{request} was {}; its candidate starts from its pipeline's run",
            change.action.as_str()
        ));
    }
    let why = format!("{request} was {}", change.action.as_str());
    match s
        .writer
        .close_change(id, change.change_ids(), why.clone())
        .await?
    {
        Some(root) => {
            s.metrics.report("webhook", "cancelled");
            let answer = answer(
                HookOutcome::Updated,
                None,
                Some(format!("{why}: its candidate {root} was ended")),
            );
            Ok((StatusCode::OK, Json(answer)).into_response())
        }
        None => noted(format!("{why}, and no candidate of it is running")),
    }
}

fn answer(
    outcome: HookOutcome,
    build: Option<conjunction_protocol::ReportAck>,
    note: Option<String>,
) -> HookAnswer {
    HookAnswer {
        outcome,
        build,
        note,
    }
}

/// The CI kinds a webhook may come from, as a sentence: "github, gitlab and jenkins".
fn kinds() -> String {
    let names: Vec<&str> = CiKind::ALL.iter().map(|k| k.as_str()).collect();
    match names.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

fn refused(e: HookError) -> ApiError {
    let code = match &e {
        HookError::Unsigned(_) => "unsigned",
        HookError::BadSignature(_) => "bad_signature",
        HookError::Stale { .. } => "stale_signature",
        HookError::Unreadable { .. } => {
            return ApiError::bad_request("unreadable_body", e.to_string())
        }
    };
    ApiError::new(StatusCode::UNAUTHORIZED, code, e.to_string())
}
