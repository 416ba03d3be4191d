//! GitHub Actions webhooks: `workflow_run` (a run of a workflow, the news that
//! counts) and `check_suite` (all checks of one app on a commit); every other event
//! (`ping`, `push`, `workflow_job`, `check_run`, …) is about no run conjunction follows.

use conjunction_protocol::ReportState;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::outcome::{Accepted, Outcome, TriggerValues};
use super::{ChangeAction, ChangeEvent, ChangeNews, Hook, HookError, RunNews, RunState};
use crate::call::{self, Failure};
use conjunction_protocol::{CiKind, Run};

/// The header GitHub signs the body in: `sha256=<hex HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// The header naming the event.
pub const EVENT_HEADER: &str = "x-github-event";
/// The header naming the delivery, the same when GitHub delivers it again.
pub const DELIVERY_HEADER: &str = "x-github-delivery";

/// Checks `signature` (the `X-Hub-Signature-256` value) against the raw `body`, in
/// constant time.
pub fn verify(secret: &[u8], body: &[u8], signature: Option<&str>) -> Result<(), HookError> {
    let signature = signature.ok_or(HookError::Unsigned("X-Hub-Signature-256"))?;
    let bad = || HookError::BadSignature("X-Hub-Signature-256");
    let hex_digest = signature.strip_prefix("sha256=").ok_or_else(bad)?;
    let digest = hex::decode(hex_digest).map_err(|_| bad())?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    mac.verify_slice(&digest).map_err(|_| bad())
}

/// The REST API version conjunction speaks.
const API_VERSION: &str = "2022-11-28";

/// What a GitHub trigger names.
pub struct Dispatch<'a> {
    /// `…/repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches`.
    pub endpoint: reqwest::Url,
    pub repo: &'a str,
    pub workflow: &'a str,
    pub git_ref: &'a str,
    pub token: &'a str,
}

/// Starts a run by `workflow_dispatch`, asking for the run's id and page
/// (`return_run_details`). A GitHub that does not know that field yet (GitHub
/// Enterprise Server before it) refuses it; the dispatch is then made once more
/// without it, and the run is found later by its title, `conjunction <build>`, which
/// the workflow's `run-name` makes from the `conjunction_build` input.
pub async fn trigger(
    client: &reqwest::Client,
    timeout: std::time::Duration,
    d: &Dispatch<'_>,
    values: &TriggerValues,
) -> Outcome {
    let context = format!("workflow {} in {} on ref {}", d.workflow, d.repo, d.git_ref);
    let request = |details: bool| {
        let mut body = serde_json::json!({
            "ref": d.git_ref,
            "inputs": {
                "conjunction_build": values.build,
                "conjunction_report": values.report_url,
                "conjunction_token": values.token,
                "upstream": values.upstream,
            },
        });
        // Only in promotions: a workflow that is never promoted need not declare them,
        // and GitHub refuses inputs a workflow does not declare.
        for (input, value) in [
            ("conjunction_environment", &values.environment),
            ("conjunction_version", &values.version),
        ] {
            if let Some(v) = value {
                body["inputs"][input] = v.as_str().into();
            }
        }
        // Only for candidates, for the same reason: `CONJUNCTION_CANDIDATE` is
        // `conjunction_candidate`, and so on.
        for (name, value) in values.candidate_values() {
            body["inputs"][name.to_ascii_lowercase()] = value.into();
        }
        if details {
            body["return_run_details"] = true.into();
        }
        let mut request = client
            .post(d.endpoint.clone())
            .timeout(timeout)
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", API_VERSION)
            .json(&body);
        request = call::bearer(request, d.token);
        request
    };
    match call::send(client, request(true), "GitHub", &context, dispatched).await {
        Err(Failure::Refused(reason)) if reason.contains("return_run_details") => {
            tracing::info!(repo = d.repo, %reason, "this GitHub does not return run details; dispatching without them");
            call::send(client, request(false), "GitHub", &context, dispatched).await
        }
        other => other,
    }
}

#[derive(Deserialize)]
struct RunDetails {
    workflow_run_id: u64,
    html_url: Option<String>,
}

async fn dispatched(
    _status: reqwest::StatusCode,
    _headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
) -> Outcome {
    // 204 without details; 200 with them.
    let details = serde_json::from_slice::<RunDetails>(&body).ok();
    Ok(Accepted {
        run: Some(Run {
            ci: CiKind::Github,
            id: details.as_ref().map(|d| d.workflow_run_id.to_string()),
            number: None,
            learnt: None,
        }),
        url: details.and_then(|d| d.html_url),
        queue_item: None,
    })
}

#[derive(Deserialize)]
struct Repository {
    full_name: String,
}

#[derive(Deserialize)]
struct Workflow {
    path: String,
}

#[derive(Deserialize)]
struct WorkflowRun {
    id: u64,
    status: Option<String>,
    conclusion: Option<String>,
    head_sha: Option<String>,
    head_branch: Option<String>,
    path: Option<String>,
    html_url: Option<String>,
    display_title: Option<String>,
    run_attempt: Option<u32>,
    /// Where the head commit came from: another repository for a fork's pull request.
    head_repository: Option<Repository>,
    /// The repository the run is in (the REST API's run has it; a webhook has it at
    /// the top level too).
    repository: Option<Repository>,
    /// What started the run: `push`, `pull_request`, `workflow_dispatch`, …
    event: Option<String>,
    /// The pull requests the run is for; GitHub leaves it empty for a fork's.
    #[serde(default)]
    pull_requests: Vec<PullRef>,
}

/// A pull request as a run names it.
#[derive(Deserialize)]
struct PullRef {
    number: u64,
    base: Option<PullEnd>,
}

#[derive(Deserialize)]
struct PullEnd {
    sha: Option<String>,
}

#[derive(Deserialize)]
struct CheckSuite {
    id: u64,
    status: Option<String>,
    conclusion: Option<String>,
    head_sha: Option<String>,
    head_branch: Option<String>,
}

#[derive(Deserialize)]
struct RunEvent {
    repository: Option<Repository>,
    workflow_run: Option<WorkflowRun>,
    workflow: Option<serde_json::Value>,
    check_suite: Option<CheckSuite>,
}

/// The JSON of a delivery: the body itself, or the `payload` field of a form, which
/// is what GitHub sends when the webhook's content type is left at
/// `application/x-www-form-urlencoded`.
pub fn json_body<'b>(
    content_type: Option<&str>,
    body: &'b [u8],
) -> Result<std::borrow::Cow<'b, [u8]>, HookError> {
    let form = content_type.is_some_and(|t| {
        t.split(';').next().is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    });
    if !form {
        return Ok(std::borrow::Cow::Borrowed(body));
    }
    url::form_urlencoded::parse(body)
        .find(|(key, _)| key == "payload")
        .map(|(_, value)| std::borrow::Cow::Owned(value.into_owned().into_bytes()))
        .ok_or_else(|| HookError::Unreadable {
            ci: "GitHub",
            reason: "a form-encoded delivery without its `payload` field".into(),
        })
}

/// Reads a webhook of `event` (the `X-GitHub-Event` value), whose JSON is `body`.
/// Verify its signature first. Events about no workflow run are not read at all.
pub fn parse(event: &str, body: &[u8]) -> Result<Hook, HookError> {
    let unused = |why: &str| Ok(Hook::Unused(format!("GitHub's {event} event: {why}")));
    match event {
        "workflow_run" | "check_suite" => {}
        "pull_request" => return pull_request(body),
        "workflow_job" => {
            return unused("a job of a run; the run's own workflow_run event says how it ends")
        }
        "workflow_dispatch" | "repository_dispatch" => {
            return unused("a dispatch names no run; its run's workflow_run events do")
        }
        "ping" => return unused("GitHub's test delivery; the webhook reaches conjunction"),
        _ => {
            return unused(
                "conjunction does not act on it; the webhook needs only \"Workflow runs\"",
            )
        }
    }
    let unreadable = |reason: String| HookError::Unreadable {
        ci: "GitHub",
        reason,
    };
    let e: RunEvent = serde_json::from_slice(body).map_err(|e| unreadable(e.to_string()))?;
    let missing = |field: &str| unreadable(format!("a {event} event without `{field}`"));
    let source = e.repository.ok_or_else(|| missing("repository"))?.full_name;
    let news = if event == "workflow_run" {
        let run = e.workflow_run.ok_or_else(|| missing("workflow_run"))?;
        let workflow = e
            .workflow
            .and_then(|w| serde_json::from_value::<Workflow>(w).ok())
            .map(|w| w.path);
        run_news(source, run, workflow)
    } else {
        let suite = e.check_suite.ok_or_else(|| missing("check_suite"))?;
        RunNews {
            semantic_key: format!(
                "check_suite:{}:{}:{}",
                suite.id,
                suite.status.as_deref().unwrap_or_default(),
                suite.conclusion.as_deref().unwrap_or_default()
            ),
            source,
            run_id: Some(suite.id.to_string()),
            workflow: None,
            attempt: None,
            number: None,
            summary: None,
            state: state(suite.status.as_deref(), suite.conclusion.as_deref()),
            commit: suite.head_sha,
            git_ref: suite.head_branch,
            tag: None,
            candidate: None,
            url: None,
            title: None,
            conjunction_build: None,
        }
    };
    Ok(Hook::Run(news))
}

/// The change a run tests rather than releases: a run started by a pull request
/// (`event: pull_request`), or of a fork's commit whatever started it. GitHub names
/// no pull request for a fork's run, so such a change is known by its fork and
/// branch.
fn candidate(source: &str, run: &WorkflowRun) -> Option<ChangeNews> {
    let fork = run
        .head_repository
        .as_ref()
        .filter(|head| !head.full_name.eq_ignore_ascii_case(source))
        .map(|head| head.full_name.clone());
    let pull = run.event.as_deref() == Some("pull_request");
    if !pull && fork.is_none() {
        return None;
    }
    let request = run.pull_requests.first();
    let number = request.map(|p| p.number.to_string());
    let what = match (&number, &fork) {
        (Some(n), Some(f)) => format!("a run of pull request #{n} from the fork {f}"),
        (Some(n), None) => format!("a run of pull request #{n}"),
        (None, Some(f)) => format!("a run of a commit from the fork {f}"),
        (None, None) => "a run of a pull request".to_owned(),
    };
    Some(ChangeNews {
        number,
        base: request
            .and_then(|p| p.base.as_ref())
            .and_then(|b| b.sha.clone()),
        fork,
        what,
    })
}

#[derive(Deserialize)]
struct PullRequestEvent {
    action: String,
    number: u64,
    pull_request: PullRequest,
    repository: Repository,
}

#[derive(Deserialize)]
struct PullRequest {
    head: PullHead,
    #[serde(default)]
    merged: Option<bool>,
}

#[derive(Deserialize)]
struct PullHead {
    sha: Option<String>,
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    /// Null when the fork was deleted.
    repo: Option<Repository>,
}

/// Reads a `pull_request` event: what happened to the request, for its candidates.
fn pull_request(body: &[u8]) -> Result<Hook, HookError> {
    let e: PullRequestEvent = serde_json::from_slice(body).map_err(|e| HookError::Unreadable {
        ci: "GitHub",
        reason: format!("a pull_request event that does not read ({e})"),
    })?;
    let source = e.repository.full_name;
    let head = e.pull_request.head;
    let fork = match &head.repo {
        Some(repo) if repo.full_name.eq_ignore_ascii_case(&source) => None,
        Some(repo) => Some(repo.full_name.clone()),
        None => Some("a deleted fork".to_owned()),
    };
    let action = match (e.action.as_str(), e.pull_request.merged) {
        ("opened" | "reopened", _) => ChangeAction::Opened,
        ("synchronize", _) => ChangeAction::Pushed,
        ("closed", Some(true)) => ChangeAction::Merged,
        ("closed", _) => ChangeAction::Closed,
        _ => ChangeAction::Other,
    };
    Ok(Hook::Change(ChangeEvent {
        source,
        number: e.number.to_string(),
        action,
        head: head.sha,
        branch: head.git_ref,
        fork,
    }))
}

/// What a workflow run object says (a webhook's `workflow_run`, or the REST API's run).
fn run_news(source: String, run: WorkflowRun, workflow: Option<String>) -> RunNews {
    let source = run
        .repository
        .as_ref()
        .map_or(source, |r| r.full_name.clone());
    RunNews {
        semantic_key: format!(
            "workflow_run:{}:{}:{}:{}",
            run.id,
            run.run_attempt.unwrap_or(1),
            run.status.as_deref().unwrap_or_default(),
            run.conclusion.as_deref().unwrap_or_default()
        ),
        candidate: candidate(&source, &run),
        source,
        run_id: Some(run.id.to_string()),
        workflow: run.path.or(workflow),
        attempt: run.run_attempt,
        number: None,
        summary: None,
        state: state(run.status.as_deref(), run.conclusion.as_deref()),
        commit: run.head_sha,
        git_ref: run.head_branch,
        tag: None,
        url: run.html_url,
        conjunction_build: run
            .display_title
            .as_deref()
            .and_then(|t| t.strip_prefix(TITLE_PREFIX))
            .map(str::to_owned),
        title: run.display_title,
    }
}

/// What a run's title starts with when the workflow's `run-name` names the
/// conjunction build: `conjunction <build>/<attempt>`.
pub const TITLE_PREFIX: &str = "conjunction ";

#[derive(Deserialize)]
struct Runs {
    workflow_runs: Vec<WorkflowRun>,
}

/// Asks GitHub about the run of `build_key`: by its id when the dispatch returned
/// one, else among the workflow's recent dispatched runs by its title.
pub async fn lookup(
    client: &reqwest::Client,
    timeout: std::time::Duration,
    d: &Dispatch<'_>,
    run_id: Option<&str>,
    build_key: &str,
) -> Result<Option<RunNews>, String> {
    let mut url = d.endpoint.clone();
    {
        let mut path = url
            .path_segments_mut()
            .map_err(|()| "the GitHub API URL cannot have a path".to_owned())?;
        // From `…/actions/workflows/{workflow}/dispatches`.
        path.pop().pop().pop();
        match run_id {
            Some(id) => {
                path.extend(["runs", id]);
            }
            None => {
                path.extend(["workflows", d.workflow, "runs"]);
            }
        }
    }
    if run_id.is_none() {
        url.query_pairs_mut()
            .append_pair("event", "workflow_dispatch")
            .append_pair("per_page", "100");
    }
    let mut request = client
        .get(url)
        .timeout(timeout)
        .header(reqwest::header::ACCEPT, "application/vnd.github+json")
        .header("X-GitHub-Api-Version", API_VERSION);
    request = call::bearer(request, d.token);
    let body = call::get(client, request, "GitHub").await?;
    let source = d.repo.to_owned();
    match run_id {
        Some(_) => {
            let run: WorkflowRun = serde_json::from_slice(&body)
                .map_err(|e| format!("GitHub's run does not read: {e}"))?;
            Ok(Some(run_news(source, run, None)))
        }
        None => {
            let runs: Runs = serde_json::from_slice(&body)
                .map_err(|e| format!("GitHub's list of runs does not read: {e}"))?;
            let title = format!("{TITLE_PREFIX}{build_key}");
            Ok(runs
                .workflow_runs
                .into_iter()
                .find(|r| r.display_title.as_deref() == Some(title.as_str()))
                .map(|r| run_news(source, r, None)))
        }
    }
}

/// A run's `status` and `conclusion` as conjunction sees them (reference §1.4).
fn state(status: Option<&str>, conclusion: Option<&str>) -> RunState {
    match conclusion {
        Some("success") => RunState::Finished(ReportState::Passed),
        Some("failure") => RunState::Finished(ReportState::Failed),
        Some("timed_out" | "startup_failure" | "stale") => RunState::Finished(ReportState::Errored),
        Some("cancelled") => RunState::Finished(ReportState::Cancelled),
        // A run from a fork waits for a maintainer's approval: not finished.
        Some("action_required") => RunState::Running,
        Some("skipped" | "neutral") => RunState::Ignored("the run was skipped"),
        Some(_) => RunState::Ignored("a conclusion conjunction does not know"),
        None if status == Some("completed") => RunState::Ignored("completed without a conclusion"),
        None => RunState::Running,
    }
}
