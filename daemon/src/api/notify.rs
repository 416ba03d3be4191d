//! `POST /v1/projects/{id}/notify/test`: a test notice on every channel the project's
//! notices go to, sent now, and how each went, so that a maintainer knows the rules
//! work before the first break. Nothing is queued or recorded on a build.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use conjunction_protocol::notify::{ChannelTest, NoticeKind, NotifyTest, TestOutcome};
use conjunction_protocol::{BuildId, StateKind};

use super::error::ApiError;
use super::extract::must_manage;
use super::projects::project_id;
use super::state::AppState;
use crate::auth::Caller;
use crate::call::Failure;
use crate::notify::message::Message;
use crate::notify::route::{route, Side};
use crate::planner::Refusal;

pub(super) async fn test(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = project_id(&id)?;
    must_manage(&caller, &id, &format!("testing {id}'s notify rules"))?;
    let wanted = id.clone();
    let project = s
        .store
        .quick(move |st| st.stored_project(&wanted))
        .await?
        .ok_or_else(|| ApiError::from(Refusal::UnknownProject(id.clone())))?;
    let side = Side {
        project: &project.id,
        contacts: &project.contacts,
        rules: &project.notify,
    };
    let targets = route(NoticeKind::Test, Some(side), side, s.channels.has_email());
    let sends = targets.into_iter().map(|target| {
        let channels = s.channels.clone();
        let notice = BuildId(ulid::Ulid::new());
        let message = Message {
            kind: NoticeKind::Test,
            upstream: project.id.clone(),
            version: None,
            environment: None,
            candidate: None,
            root: notice,
            project: project.id.clone(),
            build: notice,
            attempt: 1,
            state: StateKind::Passed,
            verdict: None,
            url: None,
            excerpt: None,
            reason: None,
            downstream_contacts: project.contacts.clone(),
            upstream_contacts: Vec::new(),
            digest: None,
            replies_to: None,
        };
        async move {
            let (outcome, error) = match channels.send(notice, &target.channel, &message).await {
                Ok(()) => (TestOutcome::Sent, None),
                Err(Failure::Refused(e)) => (TestOutcome::Refused, Some(e)),
                Err(Failure::Transient { error, .. } | Failure::RateLimited { error, .. }) => {
                    (TestOutcome::Failed, Some(error))
                }
            };
            tracing::info!(project = %message.project, channel = %target.label, ?outcome, "test notice");
            ChannelTest {
                channel: target.label,
                kind: target.channel.kind().to_owned(),
                outcome,
                error,
            }
        }
    });
    let channels = futures_util::future::join_all(sends).await;
    let note = channels.is_empty().then(|| {
        let why = if !project.notify.is_empty() {
            "its rules name no channel it can be sent on"
        } else if s.channels.has_email() {
            "it has no notify rules, and none of its contacts has an email address"
        } else {
            "it has no notify rules, and the daemon sends no mail ([notify.smtp])"
        };
        format!("{}'s notices go nowhere: {why}", project.id)
    });
    Ok(Json(NotifyTest {
        project: project.id,
        channels,
        note,
    })
    .into_response())
}
