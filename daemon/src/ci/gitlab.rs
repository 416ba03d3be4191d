//! GitLab CI webhooks: the Pipeline Hook (`object_kind: "pipeline"`), sent on every
//! change of a pipeline's status, authenticated by the secret token in clear.

use conjunction_protocol::ReportState;
use serde::Deserialize;

use super::outcome::{Accepted, Outcome, TriggerValues};
use super::{
    ChangeAction, ChangeEvent, ChangeNews, Hook, HookError, RunNews, RunState, BUILD_VARIABLE,
};
use crate::call::{self, Failure};
use conjunction_protocol::{CiKind, Run};

/// The header carrying the webhook's secret token, in clear.
pub const TOKEN_HEADER: &str = "x-gitlab-token";
/// The header naming the event (`Pipeline Hook`).
pub const EVENT_HEADER: &str = "x-gitlab-event";
/// The header naming the delivery, the same when it is sent again (GitLab 17.4 on).
pub const DELIVERY_HEADER: &str = "idempotency-key";

/// The signed-webhook headers of GitLab 19.0 on (Standard Webhooks).
pub const SIGNATURE_HEADER: &str = "webhook-signature";
pub const WEBHOOK_ID_HEADER: &str = "webhook-id";
pub const WEBHOOK_TIMESTAMP_HEADER: &str = "webhook-timestamp";

/// Checks a signed webhook (GitLab 19.0 on): `webhook-signature` holds one or more
/// space-separated `v1,<base64 HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")>`,
/// where the key is the base64 part of the signing token (`whsec_<key>`). A timestamp
/// more than five minutes from `now` (Unix seconds) is refused, so a captured request
/// cannot be replayed.
pub fn verify_signed(
    signing_token: &str,
    body: &[u8],
    id: Option<&str>,
    timestamp: Option<&str>,
    signature: Option<&str>,
    now: u64,
) -> Result<(), HookError> {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let signature = signature.ok_or(HookError::Unsigned("webhook-signature"))?;
    let bad = || HookError::BadSignature("webhook-signature");
    let id = id.ok_or_else(bad)?;
    let timestamp = timestamp.ok_or_else(bad)?;
    let sent_at: u64 = timestamp.trim().parse().map_err(|_| bad())?;
    if sent_at.abs_diff(now) > super::buildkite::REPLAY_WINDOW_SECS {
        return Err(HookError::Stale {
            header: "webhook-timestamp",
            age_secs: now.saturating_sub(sent_at),
        });
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = signing_token
        .strip_prefix("whsec_")
        .unwrap_or(signing_token);
    let key = b64.decode(key).map_err(|_| bad())?;
    for candidate in signature.split_whitespace() {
        let Some(sig) = candidate.strip_prefix("v1,") else {
            continue;
        };
        let Ok(digest) = b64.decode(sig) else {
            continue;
        };
        let mut mac =
            Hmac::<sha2::Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        if mac.verify_slice(&digest).is_ok() {
            return Ok(());
        }
    }
    Err(bad())
}

/// Checks the `X-Gitlab-Token` value against the configured token, in constant time.
pub fn verify(token: &[u8], sent: Option<&str>) -> Result<(), HookError> {
    super::verify_clear_token("X-Gitlab-Token", token, sent)
}

/// What a GitLab trigger names.
pub struct Trigger<'a> {
    /// `…/api/v4/projects/{project}/trigger/pipeline`.
    pub endpoint: reqwest::Url,
    pub project: &'a str,
    pub git_ref: &'a str,
    /// The pipeline trigger token: it goes in the body, not in a header.
    pub token: &'a str,
    /// A token that may read pipelines, for [`lookup`].
    pub api_token: Option<&'a str>,
}

#[derive(Deserialize)]
struct PipelineRead {
    id: u64,
    status: String,
    sha: Option<String>,
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    tag: Option<bool>,
    web_url: Option<String>,
}

/// Asks GitLab about pipeline `id` (`GET /projects/:id/pipelines/:pipeline_id`).
pub async fn lookup(
    client: &reqwest::Client,
    timeout: std::time::Duration,
    t: &Trigger<'_>,
    id: &str,
) -> Result<Option<RunNews>, String> {
    let mut url = t.endpoint.clone();
    url.path_segments_mut()
        .map_err(|()| "the GitLab URL cannot have a path".to_owned())?
        // From `…/projects/{project}/trigger/pipeline`.
        .pop()
        .pop()
        .extend(["pipelines", id]);
    let mut request = client.get(url).timeout(timeout);
    if let Some(token) = t.api_token.and_then(call::secret_header) {
        request = request.header("PRIVATE-TOKEN", token);
    }
    let body = call::get(client, request, "GitLab").await?;
    let p: PipelineRead = serde_json::from_slice(&body)
        .map_err(|e| format!("GitLab's pipeline does not read: {e}"))?;
    Ok(Some(RunNews {
        semantic_key: format!("pipeline:{}:{}", p.id, p.status),
        source: t.project.to_owned(),
        run_id: Some(p.id.to_string()),
        workflow: None,
        attempt: None,
        number: None,
        state: state(&p.status),
        commit: p.sha,
        git_ref: p.git_ref,
        tag: p.tag,
        candidate: None,
        url: p.web_url,
        title: None,
        conjunction_build: None,
        summary: None,
    }))
}

/// Starts a pipeline through the pipeline trigger API, with conjunction's values as
/// pipeline variables (which come back in the Pipeline Hook).
pub async fn trigger(
    client: &reqwest::Client,
    timeout: std::time::Duration,
    t: &Trigger<'_>,
    values: &TriggerValues,
) -> Outcome {
    let variables = values.variables_json();
    let body = serde_json::json!({
        "token": t.token,
        "ref": t.git_ref,
        "variables": variables,
    });
    let request = client.post(t.endpoint.clone()).timeout(timeout).json(&body);
    let context = format!("project {}", t.project);
    call::send(
        client,
        request,
        "GitLab",
        &context,
        |_, _, body| async move {
            match serde_json::from_slice::<Created>(&body) {
                Ok(p) => Ok(Accepted {
                    run: Some(Run {
                        ci: CiKind::Gitlab,
                        id: Some(p.id.to_string()),
                        number: None,
                        learnt: None,
                    }),
                    url: p.web_url,
                    queue_item: None,
                }),
                Err(e) => Err(Failure::Refused(format!(
                    "GitLab accepted the trigger but its answer is not a pipeline: {e}"
                ))),
            }
        },
    )
    .await
}

#[derive(Deserialize)]
struct Created {
    id: u64,
    web_url: Option<String>,
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
    tag: Option<bool>,
    url: Option<String>,
    #[serde(default)]
    variables: Vec<Variable>,
}

#[derive(Deserialize)]
struct Job {
    name: String,
    stage: Option<String>,
    status: String,
    failure_reason: Option<String>,
    #[serde(default)]
    allow_failure: bool,
}

#[derive(Deserialize)]
struct PipelineHook {
    project: Project,
    object_attributes: Pipeline,
    /// The merge request of a merge request pipeline; null otherwise.
    merge_request: Option<MergeRequest>,
    #[serde(default)]
    builds: Vec<Job>,
}

#[derive(Deserialize)]
struct MergeRequest {
    iid: Option<u64>,
    source_project_id: Option<u64>,
    target_project_id: Option<u64>,
}

#[derive(Deserialize)]
struct Kind {
    object_kind: Option<String>,
}

/// The jobs that failed the pipeline, one per line: `test (stage test): script_failure`.
fn failed_jobs(jobs: &[Job]) -> Option<String> {
    let lines: Vec<String> = jobs
        .iter()
        .filter(|j| j.status == "failed" && !j.allow_failure)
        .map(|j| {
            let stage = j
                .stage
                .as_deref()
                .map(|s| format!(" (stage {s})"))
                .unwrap_or_default();
            match &j.failure_reason {
                Some(reason) => format!("{}{stage}: {reason}", j.name),
                None => format!("{}{stage} failed", j.name),
            }
        })
        .collect();
    (!lines.is_empty()).then(|| format!("failed jobs:\n{}", lines.join("\n")))
}

/// Reads a delivery whose `X-Gitlab-Event` header is `event`. Verify its token first.
/// Only pipeline events are read; every other event a project webhook can send
/// (pushes, tags, merge requests, jobs, …) is noted.
pub fn parse(event: Option<&str>, body: &[u8]) -> Result<Hook, HookError> {
    let unreadable = |reason: String| HookError::Unreadable {
        ci: "GitLab",
        reason,
    };
    let kind = match event {
        Some(e) if e.eq_ignore_ascii_case("Pipeline Hook") => Some("pipeline".to_owned()),
        Some(e) if e.eq_ignore_ascii_case("Merge Request Hook") => Some("merge_request".to_owned()),
        Some(_) => None,
        // Without the header, the body says what it is.
        None => {
            let kind: Kind = serde_json::from_slice(body).map_err(|e| unreadable(e.to_string()))?;
            kind.object_kind
        }
    };
    if kind.as_deref() == Some("merge_request") {
        return merge_request(body);
    }
    let pipeline = kind.as_deref() == Some("pipeline");
    if !pipeline {
        let what = event.map_or_else(|| "a delivery".to_owned(), |e| format!("a {e}"));
        return Ok(Hook::Unused(format!(
            "{what}: conjunction reads pipeline and merge request events only; the webhook needs only \"Pipeline events\" (and \"Merge request events\" for candidates)"
        )));
    }
    let hook: PipelineHook = serde_json::from_slice(body).map_err(|e| unreadable(e.to_string()))?;
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
    // A merge request pipeline tests the change, never releases it (a fork's code
    // least of all). The hook names the source project by id only.
    let candidate = hook.merge_request.as_ref().map(|mr| {
        let fork = match (mr.source_project_id, mr.target_project_id) {
            (Some(from), Some(to)) if from != to => Some(format!("project {from}")),
            (Some(_), Some(_)) => None,
            _ => Some("an unnamed project".to_owned()),
        };
        let number = mr.iid.map(|iid| iid.to_string());
        let what = match (&number, &fork) {
            (Some(n), Some(f)) => format!("a pipeline of merge request !{n} from {f}"),
            (Some(n), None) => format!("a pipeline of merge request !{n}"),
            (None, _) => "a merge request pipeline".to_owned(),
        };
        ChangeNews {
            number,
            base: None,
            fork,
            what,
        }
    });
    Ok(Hook::Run(RunNews {
        semantic_key: format!("pipeline:{}:{}", pipeline.id, pipeline.status),
        summary: failed_jobs(&hook.builds),
        source: hook.project.path_with_namespace,
        run_id: Some(pipeline.id.to_string()),
        workflow: pipeline.name.clone(),
        attempt: None,
        number: None,
        state: state(&pipeline.status),
        commit: pipeline.sha,
        git_ref: pipeline.git_ref,
        tag: pipeline.tag,
        candidate,
        url,
        title: pipeline.name,
        conjunction_build,
    }))
}

#[derive(Deserialize)]
struct MergeRequestHook {
    project: Project,
    object_attributes: MergeRequestAttributes,
}

#[derive(Deserialize)]
struct MergeRequestAttributes {
    iid: u64,
    action: Option<String>,
    /// Set on an `update` that pushed new commits: the head before them.
    oldrev: Option<String>,
    source_branch: Option<String>,
    source_project_id: Option<u64>,
    target_project_id: Option<u64>,
    last_commit: Option<LastCommit>,
}

#[derive(Deserialize)]
struct LastCommit {
    id: String,
}

/// Reads a Merge Request Hook: what happened to the request, for its candidates.
fn merge_request(body: &[u8]) -> Result<Hook, HookError> {
    let hook: MergeRequestHook =
        serde_json::from_slice(body).map_err(|e| HookError::Unreadable {
            ci: "GitLab",
            reason: format!("a merge request event that does not read ({e})"),
        })?;
    let mr = hook.object_attributes;
    let action = match (mr.action.as_deref(), &mr.oldrev) {
        (Some("open" | "reopen"), _) => ChangeAction::Opened,
        (Some("update"), Some(_)) => ChangeAction::Pushed,
        (Some("close"), _) => ChangeAction::Closed,
        (Some("merge"), _) => ChangeAction::Merged,
        _ => ChangeAction::Other,
    };
    let fork = match (mr.source_project_id, mr.target_project_id) {
        (Some(from), Some(to)) if from != to => Some(format!("project {from}")),
        _ => None,
    };
    Ok(Hook::Change(ChangeEvent {
        source: hook.project.path_with_namespace,
        number: mr.iid.to_string(),
        action,
        head: mr.last_commit.map(|c| c.id),
        branch: mr.source_branch,
        fork,
    }))
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

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use hmac::{Hmac, Mac};

    fn sign(key: &[u8], id: &str, ts: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(body);
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        )
    }

    #[test]
    fn a_signed_webhook_verifies_with_any_of_its_signatures_and_only_fresh() {
        let key = b"a signing key of some length";
        let token = format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(key)
        );
        let body = br#"{"object_kind":"pipeline"}"#;
        let good = sign(key, "msg_1", "1000", body);
        let header = format!("v1,AAAA {good}");
        verify_signed(
            &token,
            body,
            Some("msg_1"),
            Some("1000"),
            Some(&header),
            1100,
        )
        .unwrap();
        // Another body, another id, or too old: refused.
        assert_eq!(
            verify_signed(
                &token,
                b"{}",
                Some("msg_1"),
                Some("1000"),
                Some(&good),
                1100
            ),
            Err(HookError::BadSignature("webhook-signature"))
        );
        assert!(
            verify_signed(&token, body, Some("msg_2"), Some("1000"), Some(&good), 1100).is_err()
        );
        assert!(matches!(
            verify_signed(&token, body, Some("msg_1"), Some("1000"), Some(&good), 2000),
            Err(HookError::Stale { .. })
        ));
        assert_eq!(
            verify_signed(&token, body, Some("msg_1"), Some("1000"), None, 1100),
            Err(HookError::Unsigned("webhook-signature"))
        );
    }
}
