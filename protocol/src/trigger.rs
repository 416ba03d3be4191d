//! The payload the daemon POSTs to a CI to trigger a downstream build.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::id::{BuildId, ProjectId};

/// The signature header on webhook triggers: `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Conjunction-Signature";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerPayload {
    pub build: BuildId,
    pub attempt: u32,
    pub project: ProjectId,
    pub root: TriggerRoot,
    pub parents: Vec<TriggerParent>,
    pub report: ReportEndpoint,
    /// The ref to build: the ref of the line the project declares for the root's
    /// version. Absent, the CI builds what its trigger names.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    /// The environment a promotion moves the project to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The exact version of this project to build or deploy, in a promotion: the one
    /// its CI reported on the upstream's release line, never a newer one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// The upstream build that started the cascade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerRoot {
    pub build: BuildId,
    pub project: ProjectId,
    pub version: Option<String>,
    pub commit: Option<String>,
    /// The upstream's ref (the pull request's head branch, for a candidate).
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    /// Set when the upstream's change is a candidate, not a release: build the
    /// upstream at `commit`, and without secrets if the change is not trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<crate::Candidate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerParent {
    pub build: BuildId,
    pub project: ProjectId,
}

/// Where and how the triggered build reports back.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportEndpoint {
    pub url: String,
    /// A token valid for this build and attempt only.
    pub token: String,
}

impl fmt::Debug for ReportEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReportEndpoint")
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .finish()
    }
}
