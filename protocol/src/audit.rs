//! The audit trail: who changed what, and when (`GET /v1/audit`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::access::Scope;
use crate::ci::CiKind;
use crate::id::{BuildId, ProjectId};
use crate::time::Timestamp;

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// A person's token, by its name and scope; `operator` for the operator token
    /// files.
    Person { name: String, scope: Scope },
    /// A project's report token.
    ReportToken { project: ProjectId },
    /// The token a triggered build was given.
    BuildToken { build: BuildId },
    /// A CI job that presented its issuer's id token (OIDC), as the project trusts it.
    CiIdentity { identity: String },
    /// A native CI's run of the project, heard from its signed webhook or its API.
    CiRun { ci: CiKind, project: ProjectId },
}

impl fmt::Display for Actor {
    /// `ana (maintainer acme/*)`, `acme/lib's report token`, `build 01J…'s token`,
    /// `acme/lib's GitHub run`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Person { name, scope } => write!(f, "{name} ({scope})"),
            Actor::ReportToken { project } => write!(f, "{project}'s report token"),
            Actor::BuildToken { build } => write!(f, "build {build}'s token"),
            Actor::CiRun { ci, project } => write!(f, "{project}'s {ci} run"),
            Actor::CiIdentity { identity } => f.write_str(identity),
        }
    }
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    ProjectCreated,
    ProjectUpdated,
    ProjectDeleted,
    /// A build's manifests replaced a project's dependencies (it takes them
    /// `from_manifest`); the detail says what changed.
    DependenciesRead,
    /// A root report started a root event: a release, a promotion, a pipeline.
    RootReported,
    Rebuilt,
    TokenIssued,
    TokenRevoked,
}

impl Action {
    /// `created`, `updated`, `deleted`, `reported`, `rebuilt`, `issued`, `revoked`.
    pub fn verb(self) -> &'static str {
        match self {
            Action::ProjectCreated => "created",
            Action::ProjectUpdated => "changed",
            Action::ProjectDeleted => "deleted",
            Action::DependenciesRead => "dependencies set from a manifest",
            Action::RootReported => "reported",
            Action::Rebuilt => "rebuilt",
            Action::TokenIssued => "issued",
            Action::TokenRevoked => "revoked",
        }
    }
}

/// One change in the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Its place in the trail: later changes have larger numbers.
    pub seq: u64,
    pub at: Timestamp,
    pub by: Actor,
    pub action: Action,
    /// The project it changed or is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<ProjectId>,
    /// What it changed, in a few words: a build id, a version, a token's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// A project's last change, as its page shows it: "changed by ana (maintainer
/// acme/*)".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changed {
    pub by: Actor,
    pub at: Timestamp,
    pub action: Action,
}

/// The answer to `GET /v1/audit`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` for the older entries; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::ProjectPattern;

    #[test]
    fn actors_read_as_a_person_would_say_them() {
        let ana = Actor::Person {
            name: "ana".into(),
            scope: Scope::Maintainer {
                of: vec![ProjectPattern::parse("acme/*").unwrap()],
            },
        };
        assert_eq!(ana.to_string(), "ana (maintainer acme/*)");
        let json = serde_json::to_value(&ana).unwrap();
        assert_eq!(json["kind"], "person");
        assert_eq!(json["scope"]["role"], "maintainer");
        let ci = Actor::ReportToken {
            project: ProjectId::parse("acme/lib").unwrap(),
        };
        assert_eq!(ci.to_string(), "acme/lib's report token");
    }
}
