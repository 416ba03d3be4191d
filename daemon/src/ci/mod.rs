//! Native CI systems. What their webhooks say about a run is read into one shape,
//! [`RunNews`], by a module per CI ([`github`], [`gitlab`], [`buildkite`],
//! [`jenkins`]); each also checks its webhooks'
//! signatures against the raw body, before anything in it is believed.
//!
//! The shapes and state mappings follow `../shared/reference/ci-native.md`; the tests
//! read real payloads from `../shared/fixtures/ci/`.

pub mod buildkite;
pub mod github;
pub mod gitlab;
pub mod jenkins;

use conjunction_protocol::ReportState;

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
    pub state: RunState,
    pub commit: Option<String>,
    /// The branch or tag the run built, as the CI names it.
    pub git_ref: Option<String>,
    /// The run's page, for people.
    pub url: Option<String>,
    /// The run's title (GitHub's `display_title`, GitLab's pipeline name).
    pub title: Option<String>,
    /// The conjunction build (`<build id>/<attempt>`) the run says it is for, in a field
    /// of its own: a title set by the workflow's `run-name` (`conjunction <build>`), a
    /// pipeline variable or parameter (`CONJUNCTION_BUILD`).
    pub conjunction_build: Option<String>,
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
    /// Says nothing conjunction acts on (a job of a run, a dispatch, a skipped run),
    /// and why.
    Ignored(&'static str),
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
