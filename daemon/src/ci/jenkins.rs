//! Jenkins: the Notification plugin's JSON, posted for each phase of a build. Jenkins
//! signs nothing; the endpoint is protected by a secret the operator puts into the
//! notification URL, checked with [`super::verify_clear_token`].

use conjunction_protocol::ReportState;
use serde::Deserialize;

use super::outcome::{Accepted, Outcome, TriggerValues};
use super::{Hook, HookError, RunNews, RunState, BUILD_VARIABLE};
use crate::call::{self, Failure};
use conjunction_protocol::{CiKind, Run};

/// What a Jenkins trigger names.
pub struct BuildWithParameters<'a> {
    /// `{base}/job/a/job/b/buildWithParameters`.
    pub endpoint: reqwest::Url,
    /// The instance's root, where queue items are.
    pub base: &'a str,
    pub job: &'a str,
    pub user: &'a str,
    pub token: &'a str,
}

impl BuildWithParameters<'_> {
    fn basic(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        use base64::Engine;
        let credentials = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.user, self.token));
        match call::secret_header(&format!("Basic {credentials}")) {
            Some(auth) => request.header(reqwest::header::AUTHORIZATION, auth),
            None => request,
        }
    }

    /// The API page of queue item `id`, under the configured root: never under the
    /// host of a `Location` header, so the credentials go nowhere else.
    pub fn queue_item(&self, id: &str) -> Option<reqwest::Url> {
        let mut url = reqwest::Url::parse(self.base).ok()?;
        url.path_segments_mut()
            .ok()?
            .pop_if_empty()
            .extend(["queue", "item", id, "api", "json"]);
        Some(url)
    }
}

/// Queues a build with conjunction's values as parameters (the job declares them;
/// `CONJUNCTION_TOKEN` as a password parameter, so Jenkins never shows it). Jenkins
/// answers with the queue item in `Location`; its id is the run id until the build
/// leaves the queue, and it comes back as `queue_id` in notifications.
pub async fn trigger(
    client: &reqwest::Client,
    timeout: std::time::Duration,
    b: &BuildWithParameters<'_>,
    values: &TriggerValues,
) -> Outcome {
    let mut form: Vec<(&str, &str)> = values.variables();
    form.push(("delay", "0sec"));
    let request = b.basic(client.post(b.endpoint.clone()).timeout(timeout).form(&form));
    let context = format!("job {}", b.job);
    call::send(
        client,
        request,
        "Jenkins",
        &context,
        |_, headers, _| async move {
            let id = headers
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(queue_id);
            match id {
            Some(id) => Ok(Accepted {
                queue_item: Some(id.clone()),
                run: Some(Run {
                    ci: CiKind::Jenkins,
                    id: Some(id),
                    number: None,
                    learnt: None,
                }),
                url: None,
            }),
            None => Err(Failure::Refused(
                "Jenkins accepted the trigger without naming a queue item (no Location header); \
                 is the URL a Jenkins job?"
                    .into(),
            )),
        }
        },
    )
    .await
}

/// The queue id at the end of a `Location` such as `https://ci/queue/item/42/`.
fn queue_id(location: &str) -> Option<String> {
    let path = location.trim_end_matches('/');
    let (rest, id) = path.rsplit_once('/')?;
    (rest.ends_with("/queue/item") && !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
        .then(|| id.to_owned())
}

#[derive(Deserialize)]
struct QueueItem {
    #[serde(default)]
    cancelled: bool,
    executable: Option<Executable>,
}

#[derive(Deserialize)]
struct Executable {
    number: u64,
    url: String,
}

#[derive(Deserialize)]
struct BuildRead {
    number: u64,
    url: String,
    #[serde(default)]
    building: bool,
    result: Option<String>,
}

/// Asks Jenkins about the build of queue item `queue_id`: build `number` when it is
/// known, else what the queue item became.
pub async fn lookup(
    client: &reqwest::Client,
    timeout: std::time::Duration,
    b: &BuildWithParameters<'_>,
    queue_id: &str,
    number: Option<u64>,
) -> Result<Option<RunNews>, String> {
    let number = match number {
        Some(n) => n,
        None => match queue_item(client, timeout, b, queue_id).await? {
            Queued::Started { number, .. } => number,
            Queued::Waiting => {
                return Ok(Some(queued_news(
                    b.job,
                    queue_id,
                    RunState::Running,
                    None,
                    None,
                )))
            }
            Queued::Cancelled => {
                return Ok(Some(queued_news(
                    b.job,
                    queue_id,
                    RunState::Finished(ReportState::Cancelled),
                    None,
                    None,
                )))
            }
            Queued::Gone => {
                return Err(format!(
                    "Jenkins no longer knows queue item {queue_id} (it keeps them five \
                     minutes after they start); the job's notification names its build"
                ))
            }
        },
    };
    let mut url = b.endpoint.clone();
    url.path_segments_mut()
        .map_err(|()| "the Jenkins URL cannot have a path".to_owned())?
        // From `…/job/{name}/buildWithParameters`.
        .pop()
        .extend([number.to_string().as_str(), "api", "json"]);
    let body = call::get(client, b.basic(client.get(url).timeout(timeout)), "Jenkins").await?;
    let build: BuildRead =
        serde_json::from_slice(&body).map_err(|e| format!("Jenkins's build does not read: {e}"))?;
    let state = match (build.building, build.result.as_deref()) {
        (true, _) | (false, None) => RunState::Running,
        (false, Some(result)) => result_state(result),
    };
    Ok(Some(queued_news(
        b.job,
        queue_id,
        state,
        Some(build.number),
        Some(build.url),
    )))
}

/// News of a build known by its queue item.
pub fn queued_news(
    job: &str,
    queue_id: &str,
    state: RunState,
    number: Option<u64>,
    url: Option<String>,
) -> RunNews {
    RunNews {
        semantic_key: format!("queue:{queue_id}:{number:?}"),
        source: job.to_owned(),
        run_id: Some(queue_id.to_owned()),
        workflow: Some(job.to_owned()),
        attempt: None,
        number,
        state,
        commit: None,
        git_ref: None,
        tag: None,
        candidate: None,
        url,
        title: number.map(|n| format!("#{n}")),
        conjunction_build: None,
        summary: None,
    }
}

/// Where a queue item stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Queued {
    /// Still waiting for an executor (a quiet period, a busy agent).
    Waiting,
    /// Left the queue as build `number` at `url`.
    Started { number: u64, url: String },
    /// Cancelled before it started.
    Cancelled,
    /// Jenkins no longer knows it (left items are kept five minutes).
    Gone,
}

/// Asks Jenkins about queue item `id`.
pub async fn queue_item(
    client: &reqwest::Client,
    timeout: std::time::Duration,
    b: &BuildWithParameters<'_>,
    id: &str,
) -> Result<Queued, String> {
    let url = b
        .queue_item(id)
        .ok_or_else(|| "the Jenkins URL does not parse".to_owned())?;
    let response = b
        .basic(client.get(url).timeout(timeout))
        .send()
        .await
        .map_err(|e| call::describe_send_error(b.base, &e))?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(Queued::Gone);
    }
    let body = call::read_body(response, call::LOOKUP_BYTES).await;
    if !status.is_success() {
        return Err(format!(
            "Jenkins answered {}: {}",
            status.as_u16(),
            call::their_message(&body)
        ));
    }
    let item: QueueItem = serde_json::from_slice(&body)
        .map_err(|e| format!("a queue item that does not read: {e}"))?;
    Ok(match (item.executable, item.cancelled) {
        (Some(e), _) => Queued::Started {
            number: e.number,
            url: e.url,
        },
        (None, true) => Queued::Cancelled,
        (None, false) => Queued::Waiting,
    })
}

#[derive(Deserialize)]
struct Scm {
    branch: Option<String>,
    commit: Option<String>,
}

#[derive(Deserialize)]
struct Build {
    full_url: Option<String>,
    number: u64,
    queue_id: Option<u64>,
    phase: String,
    status: Option<String>,
    scm: Option<Scm>,
    #[serde(default)]
    parameters: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    test_summary: Option<TestSummary>,
}

#[derive(Deserialize)]
struct TestSummary {
    #[serde(default)]
    total: u64,
    #[serde(default)]
    failed: u64,
    #[serde(default)]
    failed_tests: Vec<serde_json::Value>,
}

/// `2 of 140 tests failed:` and the failed tests' names, one per line.
fn failed_tests(summary: &TestSummary) -> Option<String> {
    if summary.failed == 0 {
        return None;
    }
    let mut out = format!("{} of {} tests failed", summary.failed, summary.total);
    let names: Vec<String> = summary
        .failed_tests
        .iter()
        .filter_map(|t| match t {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Object(o) => ["full_name", "name", "display_name"]
                .iter()
                .find_map(|k| o.get(*k).and_then(|v| v.as_str()).map(str::to_owned)),
            _ => None,
        })
        .take(20)
        .collect();
    if !names.is_empty() {
        out.push_str(":\n");
        out.push_str(&names.join("\n"));
    }
    Some(out)
}

#[derive(Deserialize)]
struct Notification {
    name: String,
    /// The job's page under the root: `job/team/job/lib/`.
    url: Option<String>,
    build: Build,
}

/// A job's full name (`team/lib`, its folders and its name) from its page under the
/// root (`job/team/job/lib/`); the plugin's `name` is the last part only.
pub fn full_name(job_url: &str) -> Option<String> {
    let mut parts = Vec::new();
    let mut segments = job_url.trim_matches('/').split('/');
    while let Some(segment) = segments.next() {
        if segment != "job" {
            return None;
        }
        let name = segments.next()?;
        parts.push(urlencoding::decode(name).ok()?.into_owned());
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Reads a notification. Verify its secret first. The run id is the queue id when
/// the plugin sends it (what the trigger learns from `buildWithParameters`), else the
/// build's URL.
pub fn parse(body: &[u8]) -> Result<Hook, HookError> {
    let n: Notification = serde_json::from_slice(body).map_err(|e| HookError::Unreadable {
        ci: "Jenkins",
        reason: e.to_string(),
    })?;
    let build = n.build;
    let Some(state) = state(&build.phase, build.status.as_deref()) else {
        return Ok(Hook::Unused(format!(
            "Jenkins's {} phase of {} #{}: conjunction reads QUEUED, STARTED, COMPLETED and FINALIZED",
            build.phase, n.name, build.number
        )));
    };
    let job = n.url.as_deref().and_then(full_name).unwrap_or(n.name);
    let (branch, commit) = match build.scm {
        Some(scm) => (scm.branch, scm.commit),
        None => (None, None),
    };
    let run_id = match (build.queue_id, &build.full_url) {
        (Some(q), _) => Some(q.to_string()),
        (None, Some(url)) => Some(url.clone()),
        (None, None) => None,
    };
    Ok(Hook::Run(RunNews {
        semantic_key: format!(
            "{}:{}:{}",
            build.full_url.as_deref().unwrap_or(&job),
            build.number,
            build.phase
        ),
        summary: build.test_summary.as_ref().and_then(failed_tests),
        workflow: Some(job.clone()),
        source: job,
        run_id,
        attempt: None,
        number: Some(build.number),
        state,
        commit,
        git_ref: branch.as_deref().map(branch_name),
        tag: None,
        candidate: None,
        url: build.full_url,
        title: Some(format!("#{}", build.number)),
        conjunction_build: build
            .parameters
            .as_ref()
            .and_then(|p| p.get(BUILD_VARIABLE))
            .and_then(|v| v.as_str())
            .map(str::to_owned),
    }))
}

/// The branch as people name it: the Git plugin says `origin/main` or
/// `refs/remotes/origin/main` for a branch it fetched.
fn branch_name(branch: &str) -> String {
    let name = branch
        .strip_prefix("refs/remotes/")
        .or_else(|| branch.strip_prefix("remotes/"))
        .unwrap_or(branch);
    let name = name.strip_prefix("refs/heads/").unwrap_or(name);
    name.strip_prefix("origin/").unwrap_or(name).to_owned()
}

/// A build's phase and result as conjunction sees them (reference §4.2); `None` for a
/// phase that says nothing about how the build went. The result is known from
/// COMPLETED on; FINALIZED (FINISHED in old versions of the plugin) repeats it once
/// post-build steps are done.
fn state(phase: &str, status: Option<&str>) -> Option<RunState> {
    Some(match (phase, status) {
        ("QUEUED" | "STARTED", _) => RunState::Running,
        ("COMPLETED" | "FINALIZED" | "FINISHED", None) => RunState::Running,
        ("COMPLETED" | "FINALIZED" | "FINISHED", Some(result)) => result_state(result),
        _ => return None,
    })
}

/// A finished build's result.
fn result_state(result: &str) -> RunState {
    match result {
        "SUCCESS" => RunState::Finished(ReportState::Passed),
        // Tests failed but the build ran.
        "UNSTABLE" | "FAILURE" => RunState::Finished(ReportState::Failed),
        "ABORTED" | "NOT_BUILT" => RunState::Finished(ReportState::Cancelled),
        _ => RunState::Ignored("a build result conjunction does not know"),
    }
}
