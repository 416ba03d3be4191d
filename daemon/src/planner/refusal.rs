//! Every reason the domain refuses a request: the request changes nothing, and the
//! message is a sentence the person who sent it can act on. How a refusal is spoken
//! over HTTP (status, stable code) is the API's business, not this module's.

use conjunction_protocol::node::RebuildRefusal;
use conjunction_protocol::{BuildId, ProjectId};

use super::reports::ReportRefusal;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no project {0} is registered; create it with PUT {path}", path = project_path(.0))]
    UnknownProject(ProjectId),
    #[error("no build {0} exists; check the id from the trigger payload")]
    UnknownBuild(BuildId),
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    #[error("build {build} belongs to {owner}, but the report names {named}")]
    ProjectMismatch {
        build: BuildId,
        owner: ProjectId,
        named: ProjectId,
    },
    #[error(transparent)]
    Report(#[from] ReportRefusal),
    #[error(transparent)]
    Rebuild(#[from] RebuildRefusal),
    #[error("{0} is no longer registered, so it cannot be triggered")]
    ProjectGone(ProjectId),
    #[error("{0} has no trigger configured; add one with PUT {path}", path = project_path(.0))]
    NoTrigger(ProjectId),
    #[error("this report_token is already in use; choose another one or leave it out to have one generated")]
    TokenInUse,
    #[error("{0} is listed more than once; list each project once")]
    ListedTwice(ProjectId),
    #[error("{field} {bad}{why_ecosystem}")]
    BadRange {
        field: String,
        bad: super::versions::BadRange,
        /// Why ranges on that upstream are read in that ecosystem, when it is not
        /// the upstream's own package that says so.
        why_ecosystem: String,
    },
    #[error("{project} would read ranges on it as {ecosystem}'s, but {dependent} declares {range:?} on it, which {ecosystem} does not read ({why}); change that range first, or both projects in one list")]
    BreaksRanges {
        project: ProjectId,
        ecosystem: super::versions::Ecosystem,
        dependent: ProjectId,
        range: String,
        why: String,
    },
    #[error("environment {named:?} is not one of this daemon's environments ({known}); name one of them, or leave environment out for a release into the first")]
    UnknownEnvironment { named: String, known: String },
    #[error("a promotion to {environment} names the version it promotes; add `version`")]
    PromotionWithoutVersion { environment: String },
    #[error("{project} {version} {how} in {previous}, the environment before {environment}; it must pass in {previous} first", how = match state {
        None => "has not passed".to_owned(),
        Some(state) => format!("{state}"),
    })]
    NotPassedBefore {
        project: ProjectId,
        version: String,
        environment: String,
        previous: String,
        /// The project's state in its latest run of the version in `previous`.
        state: Option<conjunction_protocol::StateKind>,
    },
    #[error(
        "build {build} belongs to a candidate superseded by {by}; rebuild it in that newer event"
    )]
    Superseded { build: BuildId, by: BuildId },
    #[error("no token {0} exists (it may have been revoked); list tokens with GET /v1/tokens")]
    UnknownToken(String),
    #[error("a token named {0:?} exists already; choose another name, or revoke that token first")]
    TokenNameInUse(String),
    /// The caller's scope does not reach what it asked for; the sentence says what
    /// would.
    #[error("{0}")]
    OutOfScope(String),
}

/// A token used for something it does not speak for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Forbidden {
    #[error("this report token belongs to {owner}, not {project}")]
    OtherProject {
        owner: ProjectId,
        project: ProjectId,
    },
    #[error(
        "this token is scoped to build {build}; a root report needs the project's report token"
    )]
    BuildTokenForRoot { build: BuildId },
    #[error("this report token belongs to {owner}; build {build} is a build of {project}")]
    OtherProjectsBuild {
        owner: ProjectId,
        build: BuildId,
        project: ProjectId,
    },
    #[error("this token is scoped to build {scoped}, not {build}")]
    OtherBuild { scoped: BuildId, build: BuildId },
    #[error("this token is scoped to attempt {attempt} of build {build}")]
    OtherAttempt { attempt: u32, build: BuildId },
}

/// The API path of a project, for messages: its id percent-encoded as one segment.
pub fn project_path(id: &ProjectId) -> String {
    // Ids hold only [a-z0-9._-] and '/', so '/' is the one character to encode.
    format!("/v1/projects/{}", id.as_str().replace('/', "%2F"))
}
