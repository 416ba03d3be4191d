//! GitLab CI webhooks: the Pipeline Hook (`object_kind: "pipeline"`), sent on every
//! change of a pipeline's status, authenticated by the secret token in clear.

use conjunction_protocol::ReportState;
use serde::Deserialize;

use super::{HookError, RunNews, RunState, BUILD_VARIABLE};

/// The header carrying the webhook's secret token, in clear.
pub const TOKEN_HEADER: &str = "x-gitlab-token";
/// The header naming the event (`Pipeline Hook`).
pub const EVENT_HEADER: &str = "x-gitlab-event";
/// The header naming the delivery, the same when it is sent again (GitLab 17.4 on).
pub const DELIVERY_HEADER: &str = "idempotency-key";

/// Checks the `X-Gitlab-Token` value against the configured token, in constant time.
pub fn verify(token: &[u8], sent: Option<&str>) -> Result<(), HookError> {
    super::verify_clear_token("X-Gitlab-Token", token, sent)
}

#[derive(Deserialize)]
struct Project {
    path_with_namespace: String,
    web_url: Option<String>,
}

#[derive(Deserialize)]
struct Variable {
    key: String,
    value: String,
}

#[derive(Deserialize)]
struct Pipeline {
    id: u64,
    name: Option<String>,
    status: String,
    sha: Option<String>,
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    url: Option<String>,
    #[serde(default)]
    variables: Vec<Variable>,
}

#[derive(Deserialize)]
struct Hook {
    object_kind: String,
    project: Project,
    object_attributes: Pipeline,
}

/// Reads a Pipeline Hook body. Verify its token first.
pub fn parse(body: &[u8]) -> Result<RunNews, HookError> {
    let unreadable = |reason: String| HookError::Unreadable {
        ci: "GitLab",
        reason,
    };
    let hook: Hook = serde_json::from_slice(body).map_err(|e| unreadable(e.to_string()))?;
    if hook.object_kind != "pipeline" {
        return Err(unreadable(format!(
            "a {} hook; conjunction reads pipeline events only",
            hook.object_kind
        )));
    }
    let pipeline = hook.object_attributes;
    // Older GitLab leaves the URL out; it is the project's page of the pipeline.
    let url = pipeline.url.or_else(|| {
        hook.project
            .web_url
            .map(|web| format!("{}/-/pipelines/{}", web.trim_end_matches('/'), pipeline.id))
    });
    let conjunction_build = pipeline
        .variables
        .iter()
        .find(|v| v.key == BUILD_VARIABLE)
        .map(|v| v.value.clone());
    Ok(RunNews {
        source: hook.project.path_with_namespace,
        run_id: Some(pipeline.id.to_string()),
        workflow: pipeline.name.clone(),
        attempt: None,
        state: state(&pipeline.status),
        commit: pipeline.sha,
        git_ref: pipeline.git_ref,
        url,
        title: pipeline.name,
        conjunction_build,
    })
}

/// A pipeline's `status` as conjunction sees it (reference §2.2).
fn state(status: &str) -> RunState {
    match status {
        "success" => RunState::Finished(ReportState::Passed),
        "failed" => RunState::Finished(ReportState::Failed),
        "canceled" | "canceling" => RunState::Finished(ReportState::Cancelled),
        "skipped" => RunState::Ignored("the pipeline was skipped"),
        // Waiting for a runner, a resource, a schedule or a person: still going.
        "created"
        | "waiting_for_resource"
        | "preparing"
        | "pending"
        | "running"
        | "scheduled"
        | "manual" => RunState::Running,
        _ => RunState::Ignored("a pipeline status conjunction does not know"),
    }
}
