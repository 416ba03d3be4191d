//! GitHub Actions webhooks: `workflow_run` (a run of a workflow, the news that
//! counts), `check_suite` (all checks of one app on a commit), and the events that name
//! no run (`workflow_job`, `workflow_dispatch`, `repository_dispatch`, `ping`).

use conjunction_protocol::ReportState;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::{HookError, RunNews, RunState};

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
struct WorkflowJob {
    run_id: u64,
    head_sha: Option<String>,
    head_branch: Option<String>,
    html_url: Option<String>,
    run_attempt: Option<u32>,
}

#[derive(Deserialize)]
struct Event {
    repository: Repository,
    workflow_run: Option<WorkflowRun>,
    workflow: Option<serde_json::Value>,
    check_suite: Option<CheckSuite>,
    workflow_job: Option<WorkflowJob>,
}

/// Reads a webhook of `event` (the `X-GitHub-Event` value). Verify its signature
/// first.
pub fn parse(event: &str, body: &[u8]) -> Result<RunNews, HookError> {
    let unreadable = |reason: String| HookError::Unreadable {
        ci: "GitHub",
        reason,
    };
    let e: Event = serde_json::from_slice(body).map_err(|e| unreadable(e.to_string()))?;
    let source = e.repository.full_name;
    let missing = |field: &str| unreadable(format!("a {event} event without `{field}`"));
    let news = match event {
        "workflow_run" => {
            let run = e.workflow_run.ok_or_else(|| missing("workflow_run"))?;
            let workflow = run.path.or_else(|| {
                e.workflow
                    .and_then(|w| serde_json::from_value::<Workflow>(w).ok())
                    .map(|w| w.path)
            });
            RunNews {
                source,
                run_id: Some(run.id.to_string()),
                workflow,
                attempt: run.run_attempt,
                state: state(run.status.as_deref(), run.conclusion.as_deref()),
                commit: run.head_sha,
                git_ref: run.head_branch,
                url: run.html_url,
                conjunction_build: run
                    .display_title
                    .as_deref()
                    .and_then(|t| t.strip_prefix("conjunction "))
                    .map(str::to_owned),
                title: run.display_title,
            }
        }
        "check_suite" => {
            let suite = e.check_suite.ok_or_else(|| missing("check_suite"))?;
            RunNews {
                source,
                run_id: Some(suite.id.to_string()),
                workflow: None,
                attempt: None,
                state: state(suite.status.as_deref(), suite.conclusion.as_deref()),
                commit: suite.head_sha,
                git_ref: suite.head_branch,
                url: None,
                title: None,
                conjunction_build: None,
            }
        }
        "workflow_job" => {
            let job = e.workflow_job.ok_or_else(|| missing("workflow_job"))?;
            RunNews {
                source,
                run_id: Some(job.run_id.to_string()),
                workflow: None,
                attempt: job.run_attempt,
                state: RunState::Ignored(
                    "a job of a run; the run's own workflow_run event says how it ends",
                ),
                commit: job.head_sha,
                git_ref: job.head_branch,
                url: job.html_url,
                title: None,
                conjunction_build: None,
            }
        }
        other => RunNews {
            source,
            run_id: None,
            workflow: e.workflow.and_then(|w| w.as_str().map(str::to_owned)),
            attempt: None,
            state: RunState::Ignored(match other {
                "workflow_dispatch" | "repository_dispatch" => {
                    "a dispatch names no run; its run's workflow_run events do"
                }
                "ping" => "GitHub's test delivery",
                _ => "an event conjunction does not act on; subscribe to workflow runs",
            }),
            commit: None,
            git_ref: None,
            url: None,
            title: None,
            conjunction_build: None,
        },
    };
    Ok(news)
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
