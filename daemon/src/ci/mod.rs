//! Native CI systems, behind one face: [`trigger`] starts a run, [`check`] asks how
//! one went, [`verify`] checks a webhook against a project's source and [`read_hook`]
//! reads it into one shape, [`RunNews`]; which runs are a source's release follows
//! each CI's naming rules ([`same_place`], [`same_workflow`]). A module per CI
//! ([`github`], [`gitlab`], [`buildkite`], [`jenkins`]) holds its API calls, its
//! webhook format and its signature check against the raw body, before anything in
//! it is believed. Adding a CI touches this folder and the protocol's closed enums
//! (`CiKind`, `SourceSpec`, `TriggerSpec`) only.
//!
//! The shapes and state mappings follow `../shared/reference/ci-native.md`; the tests
//! read real payloads from `../shared/fixtures/ci/`.

pub mod buildkite;
pub mod github;
pub mod gitlab;
mod hooks;
pub mod jenkins;
pub mod outcome;
mod release;
pub mod webhook;

use std::time::Duration;

use conjunction_protocol::trigger::TriggerPayload;
use conjunction_protocol::{ReportState, Run, TriggerSpec};

use crate::call::Failure;
pub use hooks::{read_hook, verify};
use outcome::{Outcome, TriggerValues};
pub use release::{foreign_claim, release_fields, same_place, same_workflow};

/// A trigger as the module of its CI takes it.
enum Target<'a> {
    Webhook(webhook::Webhook<'a>),
    Github(github::Dispatch<'a>),
    Gitlab(gitlab::Trigger<'a>),
    Buildkite(buildkite::CreateBuild<'a>),
    Jenkins(jenkins::BuildWithParameters<'a>),
}

impl<'a> Target<'a> {
    /// The call `trigger` makes; `on_ref`, when a line names one, replaces the ref
    /// or branch the trigger builds.
    fn of(trigger: &'a TriggerSpec, on_ref: Option<&'a str>) -> Result<Self, String> {
        let endpoint = trigger
            .endpoint()
            .ok_or("the trigger's URL does not parse; register the project again")?;
        Ok(match trigger {
            TriggerSpec::Webhook { url, token, secret } => Target::Webhook(webhook::Webhook {
                url,
                token: token.as_deref(),
                secret: secret.as_deref(),
            }),
            TriggerSpec::Github {
                repo,
                workflow,
                git_ref,
                token,
                ..
            } => Target::Github(github::Dispatch {
                endpoint,
                repo,
                workflow,
                git_ref: on_ref.unwrap_or(git_ref),
                token,
            }),
            TriggerSpec::Gitlab {
                project,
                git_ref,
                token,
                api_token,
                ..
            } => Target::Gitlab(gitlab::Trigger {
                endpoint,
                project,
                git_ref: on_ref.unwrap_or(git_ref),
                token,
                api_token: api_token.as_deref(),
            }),
            TriggerSpec::Buildkite {
                org,
                pipeline,
                branch,
                commit,
                token,
                ..
            } => Target::Buildkite(buildkite::CreateBuild {
                endpoint,
                org,
                pipeline,
                branch: on_ref.unwrap_or(branch),
                commit,
                token,
            }),
            TriggerSpec::Jenkins {
                url,
                job,
                user,
                token,
            } => Target::Jenkins(jenkins::BuildWithParameters {
                endpoint,
                base: url,
                job,
                user,
                token,
            }),
        })
    }
}

/// Makes one attempt to start `trigger`'s CI for `payload`, whose report URL and
/// build token are filled in from `report_url` and `token`.
pub async fn trigger(
    client: &reqwest::Client,
    timeout: Duration,
    trigger: &TriggerSpec,
    payload: &TriggerPayload,
    report_url: &str,
    token: String,
) -> Outcome {
    let target = match Target::of(trigger, payload.git_ref.as_deref()) {
        Ok(t) => t,
        Err(why) => return Err(Failure::Refused(why)),
    };
    let values = TriggerValues::new(payload, report_url, token);
    match target {
        Target::Webhook(w) => {
            let mut payload = payload.clone();
            payload.report.url = values.report_url.clone();
            payload.report.token = values.token.clone();
            let delivery = format!("{}-{}", payload.build, payload.attempt);
            webhook::trigger(client, timeout, &w, &payload, &delivery).await
        }
        Target::Github(d) => github::trigger(client, timeout, &d, &values).await,
        Target::Gitlab(t) => gitlab::trigger(client, timeout, &t, &values).await,
        Target::Buildkite(c) => buildkite::trigger(client, timeout, &c, &values).await,
        Target::Jenkins(b) => jenkins::trigger(client, timeout, &b, &values).await,
    }
}

/// Asks `trigger`'s CI how `run`, started for build key `build_key`, stands.
/// `Ok(None)` when the CI does not show the run yet (a GitHub dispatch without run
/// details, before its run is listed).
pub async fn check(
    client: &reqwest::Client,
    timeout: Duration,
    trigger: &TriggerSpec,
    run: &Run,
    build_key: &str,
) -> Result<Option<RunNews>, String> {
    let target = Target::of(trigger, None)?;
    let id = run.id.as_deref();
    let unknown = || format!("{} has not said which run it started", run.ci.name());
    match target {
        Target::Webhook(_) => Err("a generic webhook has no runs to ask about".into()),
        Target::Github(d) => github::lookup(client, timeout, &d, id, build_key).await,
        Target::Gitlab(t) => gitlab::lookup(client, timeout, &t, id.ok_or_else(unknown)?).await,
        Target::Buildkite(c) => {
            let number = run.number.ok_or_else(unknown)?;
            buildkite::lookup(client, timeout, &c, number).await
        }
        Target::Jenkins(b) => {
            jenkins::lookup(client, timeout, &b, id.ok_or_else(unknown)?, run.number).await
        }
    }
}

/// Asks Jenkins where queue item `id` of `trigger` stands.
pub async fn jenkins_queue(
    client: &reqwest::Client,
    timeout: Duration,
    trigger: &TriggerSpec,
    id: &str,
) -> Result<jenkins::Queued, String> {
    match Target::of(trigger, None)? {
        Target::Jenkins(b) => jenkins::queue_item(client, timeout, &b, id).await,
        _ => Err("only Jenkins has queue items".into()),
    }
}

/// What one webhook delivery is about.
// One per request, moved once: boxing the run would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hook {
    /// News of a run.
    Run(RunNews),
    /// News of a pull or merge request itself (opened, pushed to, closed).
    Change(ChangeEvent),
    /// An event about no run conjunction follows (a ping, a push, a job of a run):
    /// answered `202` with this note, and nothing changes.
    Unused(String),
}

impl Hook {
    /// The news of a run, when the delivery is about one.
    pub fn into_run(self) -> Option<RunNews> {
        match self {
            Hook::Run(news) => Some(news),
            Hook::Change(_) | Hook::Unused(_) => None,
        }
    }
}

/// What a CI's webhook says about one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunNews {
    /// Where it ran: the repository (`owner/repo`), project path, pipeline or job.
    pub source: String,
    /// The CI's own id for the run (GitHub's workflow run id, say); `None` for an event
    /// about no run in particular.
    pub run_id: Option<String>,
    /// Which of the source's pipelines: GitHub's workflow file, say.
    pub workflow: Option<String>,
    /// The run's attempt as the CI counts it (a re-run from the CI's UI raises it).
    pub attempt: Option<u32>,
    /// The run's number where the CI shows one (Buildkite's, Jenkins's build number).
    pub number: Option<u64>,
    pub state: RunState,
    pub commit: Option<String>,
    /// The branch or tag the run built, as the CI names it.
    pub git_ref: Option<String>,
    /// Whether `git_ref` is a tag, where the CI says (GitLab, Buildkite).
    pub tag: Option<bool>,
    /// The change the run tests rather than releasing one: a pull or merge
    /// request's run, a fork's commit. Never a release; a candidate when the source
    /// takes them.
    pub candidate: Option<ChangeNews>,
    /// The run's page, for people.
    pub url: Option<String>,
    /// The run's title (GitHub's `display_title`, GitLab's pipeline name).
    pub title: Option<String>,
    /// The conjunction build (`<build id>/<attempt>`) the run says it is for, in a field
    /// of its own: a title set by the workflow's `run-name` (`conjunction <build>`), a
    /// pipeline variable or parameter (`CONJUNCTION_BUILD`).
    pub conjunction_build: Option<String>,
    /// What went wrong, where the payload says (GitLab's failed jobs, Jenkins's
    /// failed tests).
    pub summary: Option<String>,
    /// Names this news for dropping it when it comes again, for deliveries that carry
    /// no delivery id of their own (Jenkins, older GitLab): the run, its attempt and
    /// its state as the CI wrote them.
    pub semantic_key: String,
}

/// What a run says of the change it tests before it merges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeNews {
    /// The pull or merge request's number, where the payload says.
    pub number: Option<String>,
    /// The commit the change is made on, where the payload says.
    pub base: Option<String>,
    /// Where the change's code comes from when it is not the project's repository
    /// (a fork), as the payload names it; `Some("an unnamed repository")` when the
    /// payload cannot tell.
    pub fork: Option<String>,
    /// The run as people say it: "a run of pull request #12".
    pub what: String,
}

impl ChangeNews {
    /// The change's id for its candidate events: the request's number, or else the
    /// fork and branch the run built, which stay the same across its pushes.
    pub fn change(&self, git_ref: Option<&str>) -> String {
        match (&self.number, &self.fork, git_ref) {
            (Some(n), _, _) => n.clone(),
            (None, Some(fork), Some(r)) => format!("{fork}:{r}").replace(' ', "-"),
            (None, _, Some(r)) => r.replace(' ', "-"),
            (None, _, None) => "unnamed".into(),
        }
    }
}

/// What a forge says happened to a pull or merge request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    /// The repository (GitHub) or project path (GitLab) it is a request on.
    pub source: String,
    /// Its number (GitHub's pull request number, GitLab's `iid`).
    pub number: String,
    pub action: ChangeAction,
    /// The head commit.
    pub head: Option<String>,
    /// The head branch.
    pub branch: Option<String>,
    /// Where the head is when not in `source`: a fork.
    pub fork: Option<String>,
}

impl ChangeEvent {
    /// The ids its candidates may have: its number, and for a fork the fork and
    /// branch a run of it is known by (GitHub names no pull request on those runs).
    pub fn change_ids(&self) -> Vec<String> {
        let mut ids = vec![self.number.clone()];
        if let (Some(fork), Some(branch)) = (&self.fork, &self.branch) {
            ids.push(format!("{fork}:{branch}").replace(' ', "-"));
        }
        ids
    }
}

/// What happened to a pull or merge request, as far as its candidates care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeAction {
    Opened,
    /// New commits were pushed to it.
    Pushed,
    Closed,
    Merged,
    /// Anything else (labelled, edited, approved…).
    Other,
}

impl ChangeAction {
    /// Whether the change's candidate has nothing left to test.
    pub fn ends(self) -> bool {
        matches!(self, ChangeAction::Closed | ChangeAction::Merged)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeAction::Opened => "opened",
            ChangeAction::Pushed => "pushed to",
            ChangeAction::Closed => "closed",
            ChangeAction::Merged => "merged",
            ChangeAction::Other => "changed",
        }
    }
}

/// The variable, input or parameter name that carries the conjunction build id.
pub const BUILD_VARIABLE: &str = "CONJUNCTION_BUILD";

/// Checks a secret sent in clear in `header` (GitLab's `X-Gitlab-Token`, Buildkite's
/// `X-Buildkite-Token`) against the configured one, in constant time, lengths included.
pub fn verify_clear_token(
    header: &'static str,
    configured: &[u8],
    sent: Option<&str>,
) -> Result<(), HookError> {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let sent = sent.ok_or(HookError::Unsigned(header))?;
    let same: bool = Sha256::digest(configured)
        .ct_eq(&Sha256::digest(sent.as_bytes()))
        .into();
    if same {
        Ok(())
    } else {
        Err(HookError::BadSignature(header))
    }
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Queued, running, or waiting for a person (an approval, a blocked step).
    Running,
    /// Finished, with the result conjunction records.
    Finished(ReportState),
    /// Says nothing conjunction acts on (a skipped run, a state it does not know),
    /// and why.
    Ignored(&'static str),
}

impl RunState {
    /// The state a report of this news carries: a run that has not finished is
    /// running.
    pub fn report_state(self) -> ReportState {
        match self {
            RunState::Finished(s) => s,
            RunState::Running | RunState::Ignored(_) => ReportState::Running,
        }
    }
}

/// Why a webhook is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    #[error("the request has no {0} header; configure the webhook's secret on the CI's side")]
    Unsigned(&'static str),
    #[error("the {0} header does not match the body and the configured secret")]
    BadSignature(&'static str),
    #[error("the {header} header was made {age_secs} s ago; a signature is taken for 5 minutes")]
    Stale { header: &'static str, age_secs: u64 },
    #[error("the body is not a {ci} webhook this daemon can read: {reason}")]
    Unreadable { ci: &'static str, reason: String },
}
