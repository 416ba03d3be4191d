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
use conjunction_protocol::{CiKind, SourceSpec};

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
            format!("conjunction takes webhooks from github, gitlab, buildkite and jenkins, not {kind:?}: POST /v1/hooks/<kind>/<project>"),
        )
    })?;
    let id = project_id(&project)?;
    let stored = s
        .store
        .stored_project(&id)?
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
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    verify(&source, &body, &header, query.token.as_deref(), now).map_err(refused)?;
    let (run, delivery) = match parse(ci, &body, &header).map_err(refused)? {
        (Hook::Run(run), delivery) => (run, delivery),
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

/// Checks the request against the source's secret, before the body is read.
fn verify<'h>(
    source: &SourceSpec,
    body: &[u8],
    header: &impl Fn(&str) -> Option<&'h str>,
    query_token: Option<&str>,
    now: u64,
) -> Result<(), HookError> {
    match source {
        SourceSpec::Github { secret, .. } => ci::github::verify(
            secret.as_bytes(),
            body,
            header(ci::github::SIGNATURE_HEADER),
        ),
        SourceSpec::Gitlab {
            token,
            signing_token,
            ..
        } => {
            ci::gitlab::verify(token.as_bytes(), header(ci::gitlab::TOKEN_HEADER))?;
            match signing_token {
                Some(signing) => ci::gitlab::verify_signed(
                    signing,
                    body,
                    header(ci::gitlab::WEBHOOK_ID_HEADER),
                    header(ci::gitlab::WEBHOOK_TIMESTAMP_HEADER),
                    header(ci::gitlab::SIGNATURE_HEADER),
                    now,
                ),
                None => Ok(()),
            }
        }
        SourceSpec::Buildkite {
            token,
            allow_plain_token,
            ..
        } => match header(ci::buildkite::SIGNATURE_HEADER) {
            Some(signature) => {
                ci::buildkite::verify_signature(token.as_bytes(), body, Some(signature), now)
            }
            None if *allow_plain_token => {
                ci::buildkite::verify_token(token.as_bytes(), header(ci::buildkite::TOKEN_HEADER))
            }
            None => Err(HookError::Unsigned("X-Buildkite-Signature")),
        },
        SourceSpec::Jenkins { secret, .. } => {
            let basic = basic_password(header("authorization"));
            let sent = basic.as_deref().or(query_token);
            ci::verify_clear_token("Authorization", secret.as_bytes(), sent)
        }
    }
}

/// The password of an HTTP Basic `Authorization` header.
fn basic_password(value: Option<&str>) -> Option<String> {
    use base64::Engine;
    let encoded = value?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (_, password) = text.split_once(':')?;
    Some(password.to_owned())
}

/// Reads the body as `ci`'s webhook, with its delivery id where the CI sends one.
fn parse<'h>(
    ci: CiKind,
    body: &[u8],
    header: &impl Fn(&str) -> Option<&'h str>,
) -> Result<(Hook, Option<String>), HookError> {
    let delivery = |name: &str| header(name).map(str::to_owned);
    Ok(match ci {
        CiKind::Github => {
            let event = header(ci::github::EVENT_HEADER).ok_or(HookError::Unreadable {
                ci: "GitHub",
                reason: "the request has no X-GitHub-Event header".into(),
            })?;
            let json = ci::github::json_body(header("content-type"), body)?;
            (
                ci::github::parse(event, &json)?,
                delivery(ci::github::DELIVERY_HEADER),
            )
        }
        CiKind::Gitlab => (
            ci::gitlab::parse(header(ci::gitlab::EVENT_HEADER), body)?,
            delivery(ci::gitlab::DELIVERY_HEADER),
        ),
        CiKind::Buildkite => (
            ci::buildkite::parse_webhook(header(ci::buildkite::EVENT_HEADER), body)?,
            delivery(ci::buildkite::DELIVERY_HEADER),
        ),
        CiKind::Jenkins => (ci::jenkins::parse(body)?, None),
    })
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
