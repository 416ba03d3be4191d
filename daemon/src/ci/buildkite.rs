//! Buildkite: pipeline webhooks (`build.*` events) and the REST build object (what
//! creating or reading a build answers), which share the build's shape. Webhooks are
//! authenticated by a signature over a timestamp and the body, or by the token in
//! clear where the operator allows it.

use conjunction_protocol::ReportState;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::outcome::{Accepted, Outcome, TriggerValues};
use super::{ChangeNews, Hook, HookError, RunNews, RunState};
use crate::call::{self, Failure};
use conjunction_protocol::{CiKind, Run};

/// `timestamp=<unix seconds>,signature=<hex HMAC-SHA256(token, "<timestamp>.<body>")>`.
pub const SIGNATURE_HEADER: &str = "x-buildkite-signature";
/// The header naming the event: `build.finished`, `ping`, …
pub const EVENT_HEADER: &str = "x-buildkite-event";
/// The webhook token in clear, when Buildkite is set to send it instead of signing.
pub const TOKEN_HEADER: &str = "x-buildkite-token";
/// The header naming the delivery (undocumented, seen in real requests).
pub const DELIVERY_HEADER: &str = "x-buildkite-request";
/// The meta-data key that carries the conjunction build on a build conjunction started.
pub const BUILD_META_DATA: &str = "conjunction:build";
/// How far a signature's timestamp may be from now, as Buildkite's docs suggest.
pub const REPLAY_WINDOW_SECS: u64 = 300;

/// Checks an `X-Buildkite-Signature` value against the raw `body` and the webhook
/// `token`, in constant time, refusing a timestamp more than [`REPLAY_WINDOW_SECS`] from
/// `now` (Unix seconds) so that a captured request cannot be replayed later.
pub fn verify_signature(
    token: &[u8],
    body: &[u8],
    header: Option<&str>,
    now: u64,
) -> Result<(), HookError> {
    let header = header.ok_or(HookError::Unsigned("X-Buildkite-Signature"))?;
    let bad = || HookError::BadSignature("X-Buildkite-Signature");
    let mut timestamp = None;
    let mut signature = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("timestamp", t)) => timestamp = Some(t),
            Some(("signature", s)) => signature = Some(s),
            _ => {}
        }
    }
    let (timestamp, signature) = timestamp.zip(signature).ok_or_else(bad)?;
    let sent_at: u64 = timestamp.parse().map_err(|_| bad())?;
    if sent_at.abs_diff(now) > REPLAY_WINDOW_SECS {
        return Err(HookError::Stale {
            header: "X-Buildkite-Signature",
            age_secs: now.saturating_sub(sent_at),
        });
    }
    let digest = hex::decode(signature).map_err(|_| bad())?;
    let mut mac = Hmac::<Sha256>::new_from_slice(token).expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&digest).map_err(|_| bad())
}

/// Checks an `X-Buildkite-Token` value (the token in clear) in constant time.
pub fn verify_token(token: &[u8], sent: Option<&str>) -> Result<(), HookError> {
    super::verify_clear_token("X-Buildkite-Token", token, sent)
}

/// What a Buildkite trigger names.
pub struct CreateBuild<'a> {
    /// `…/v2/organizations/{org}/pipelines/{pipeline}/builds`.
    pub endpoint: reqwest::Url,
    pub org: &'a str,
    pub pipeline: &'a str,
    pub branch: &'a str,
    pub commit: &'a str,
    pub token: &'a str,
}

/// Creates a build through the REST API, with conjunction's values in its environment
/// and the build key in its meta-data (which comes back in the webhooks). The report
/// token goes only into the environment: meta-data is shown to anyone who can see the
/// build.
pub async fn trigger(
    client: &reqwest::Client,
    timeout: std::time::Duration,
    c: &CreateBuild<'_>,
    values: &TriggerValues,
) -> Outcome {
    let env = values.variables_json();
    let body = serde_json::json!({
        "commit": c.commit,
        "branch": c.branch,
        "message": format!("conjunction: {} changed", values.upstream),
        "env": env,
        "meta_data": {
            BUILD_META_DATA: values.build,
            "conjunction:upstream": values.upstream,
        },
    });
    let mut request = client.post(c.endpoint.clone()).timeout(timeout).json(&body);
    request = call::bearer(request, c.token);
    let context = format!("pipeline {}/{}", c.org, c.pipeline);
    call::send(
        client,
        request,
        "Buildkite",
        &context,
        |_, _, body| async move {
            match serde_json::from_slice::<Build>(&body) {
                Ok(b) => Ok(Accepted {
                    run: Some(Run {
                        ci: CiKind::Buildkite,
                        id: Some(b.id),
                        number: b.number,
                        learnt: None,
                    }),
                    url: b.web_url,
                    queue_item: None,
                }),
                Err(e) => Err(Failure::Refused(format!(
                    "Buildkite accepted the trigger but its answer is not a build: {e}"
                ))),
            }
        },
    )
    .await
}

/// Asks Buildkite about build `number` of the pipeline (`GET …/builds/{number}`).
pub async fn lookup(
    client: &reqwest::Client,
    timeout: std::time::Duration,
    c: &CreateBuild<'_>,
    number: u64,
) -> Result<Option<RunNews>, String> {
    let mut url = c.endpoint.clone();
    url.path_segments_mut()
        .map_err(|()| "the Buildkite API URL cannot have a path".to_owned())?
        .push(&number.to_string());
    let mut request = client.get(url).timeout(timeout);
    request = call::bearer(request, c.token);
    let body = call::get(client, request, "Buildkite").await?;
    parse_build(&body).map(Some).map_err(|e| e.to_string())
}

#[derive(Deserialize)]
struct Build {
    id: String,
    number: Option<u64>,
    finished_at: Option<String>,
    /// The API URL: `…/organizations/<org>/pipelines/<pipeline>/builds/<n>`.
    url: String,
    web_url: Option<String>,
    state: String,
    #[serde(default)]
    blocked: bool,
    commit: Option<String>,
    branch: Option<String>,
    tag: Option<String>,
    message: Option<String>,
    #[serde(default)]
    meta_data: std::collections::BTreeMap<String, String>,
    /// The pull request a build is for (from a fork too); null otherwise.
    pull_request: Option<PullRequest>,
}

#[derive(Deserialize)]
struct PullRequest {
    id: Option<serde_json::Value>,
    repository: Option<String>,
}

#[derive(Deserialize)]
struct Webhook {
    event: String,
    build: Option<Build>,
    pipeline: Option<PipelineInfo>,
}

#[derive(Deserialize)]
struct PipelineInfo {
    /// The repository the pipeline builds.
    repository: Option<String>,
}

#[derive(Deserialize)]
struct Event {
    event: Option<String>,
}

/// Reads a pipeline webhook (`{"event": "build.finished", "build": {…}, …}`) whose
/// `X-Buildkite-Event` header is `event`. Verify it first. Only build events are
/// read; the rest (`ping`, `job.*`, `agent.*`, …) are noted.
pub fn parse_webhook(event: Option<&str>, body: &[u8]) -> Result<Hook, HookError> {
    let event = match event {
        Some(e) => e.to_owned(),
        None => serde_json::from_slice::<Event>(body)
            .map_err(|e| unreadable(e.to_string()))?
            .event
            .unwrap_or_default(),
    };
    if !event.starts_with("build.") {
        let why = if event == "ping" {
            "Buildkite's test delivery; the webhook reaches conjunction".to_owned()
        } else {
            "conjunction reads build events only; the webhook needs only build.* events".to_owned()
        };
        return Ok(Hook::Unused(format!("Buildkite's {event:?} event: {why}")));
    }
    let hook: Webhook = serde_json::from_slice(body).map_err(|e| unreadable(e.to_string()))?;
    let build = hook
        .build
        .ok_or_else(|| unreadable(format!("a {} event without its build", hook.event)))?;
    let repository = hook.pipeline.and_then(|p| p.repository);
    let mut news = news(build, repository.as_deref())?;
    news.semantic_key = format!("{}:{}", hook.event, news.semantic_key);
    Ok(Hook::Run(news))
}

/// Reads a build as the REST API answers it (creating one, or reading one back).
pub fn parse_build(body: &[u8]) -> Result<RunNews, HookError> {
    news(
        serde_json::from_slice(body).map_err(|e| unreadable(e.to_string()))?,
        None,
    )
}

/// A repository URL as `host/path`, whatever form it is written in
/// (`git@github.com:acme/lib.git`, `https://github.com/acme/lib`).
fn repository_place(url: &str) -> String {
    let url = url.trim().trim_end_matches('/').trim_end_matches(".git");
    let rest = match url.split_once("://") {
        Some((_, rest)) => rest,
        None => url,
    };
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.replacen(':', "/", 1).to_ascii_lowercase()
}

fn unreadable(reason: String) -> HookError {
    HookError::Unreadable {
        ci: "Buildkite",
        reason,
    }
}

/// A build as a webhook or the API says it; `pipeline_repository` is the repository
/// the pipeline builds, which tells a fork's pull request from the project's own.
fn news(build: Build, pipeline_repository: Option<&str>) -> Result<RunNews, HookError> {
    let source = source_of(&build.url)
        .ok_or_else(|| unreadable("a build whose url names no organization and pipeline".into()))?;
    // A build made from the UI or the API may say `HEAD`; Buildkite's agent records the
    // commit it checked out in meta-data.
    let commit = match build.commit.as_deref() {
        Some("HEAD") | None => build
            .meta_data
            .get("buildkite:git:commit")
            .and_then(|c| c.lines().next())
            .and_then(|l| l.strip_prefix("commit "))
            .map(str::to_owned),
        Some(sha) => Some(sha.to_owned()),
    };
    let candidate = build.pull_request.as_ref().map(|pr| {
        let number = match &pr.id {
            Some(serde_json::Value::String(id)) => Some(id.clone()),
            Some(serde_json::Value::Number(id)) => Some(id.to_string()),
            _ => None,
        };
        // A pull request is the project's own only when both repositories are known
        // and the same: a fork's code is never taken on a guess.
        let fork = match (&pr.repository, pipeline_repository) {
            (Some(from), Some(own)) if repository_place(from) == repository_place(own) => None,
            (Some(from), _) => Some(from.clone()),
            (None, _) => Some("an unnamed repository".to_owned()),
        };
        let id = number
            .as_ref()
            .map(|n| format!(" #{n}"))
            .unwrap_or_default();
        let what = match &pr.repository {
            Some(repo) => format!("a build of pull request{id} from {repo}"),
            None => format!("a build of pull request{id}"),
        };
        ChangeNews {
            number,
            base: None,
            fork,
            what,
        }
    });
    Ok(RunNews {
        candidate,
        tag: Some(build.tag.is_some()),
        semantic_key: format!(
            "{}:{}:{}:{}",
            build.id,
            build.state,
            build.blocked,
            build.finished_at.as_deref().unwrap_or_default()
        ),
        source,
        run_id: Some(build.id),
        workflow: None,
        attempt: None,
        number: build.number,
        summary: None,
        state: state(&build.state, build.blocked),
        commit,
        git_ref: build.tag.or(build.branch),
        url: build.web_url,
        title: build.message,
        conjunction_build: build.meta_data.get(BUILD_META_DATA).cloned(),
    })
}

/// `<org>/<pipeline>` from a build's API URL.
fn source_of(api_url: &str) -> Option<String> {
    let rest = api_url.split_once("/organizations/")?.1;
    let (org, rest) = rest.split_once("/pipelines/")?;
    let pipeline = rest.split('/').next()?;
    (!org.is_empty() && !pipeline.is_empty()).then(|| format!("{org}/{pipeline}"))
}

/// A build's `state` as conjunction sees it (reference §3.2).
fn state(state: &str, blocked: bool) -> RunState {
    match state {
        // A build stopped at a block step says "passed" and waits for a person.
        "passed" if blocked => RunState::Running,
        "passed" => RunState::Finished(ReportState::Passed),
        "failed" | "waiting_failed" => RunState::Finished(ReportState::Failed),
        "canceled" | "canceling" | "skipped" | "not_run" => {
            RunState::Finished(ReportState::Cancelled)
        }
        "scheduled" | "running" | "waiting" | "failing" | "blocked" | "creating" => {
            RunState::Running
        }
        _ => RunState::Ignored("a build state conjunction does not know"),
    }
}
