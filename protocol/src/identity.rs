//! The CI identities a project may trust instead of a stored report token: a CI job
//! that presents its issuer's id token (OIDC) with these claims reports for it.
//!
//! Each is matched on the immutable ids the issuer puts in its claims (a repository,
//! an owner, a project, a pipeline): a name can be given up and taken by someone
//! else, an id cannot. Names are only for display.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::limits::MAX_SHORT_TEXT;

/// GitHub Actions' issuer on github.com.
pub const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";
/// GitLab.com's issuer; a self-managed instance's is its URL.
pub const GITLAB_ISSUER: &str = "https://gitlab.com";
/// Buildkite's agent issuer.
pub const BUILDKITE_ISSUER: &str = "https://agent.buildkite.com";

/// One CI identity a project trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TrustedCi {
    /// A GitHub Actions workflow of one repository.
    Github {
        /// `repository_id`: the repository's number, which survives renames and is
        /// never given to a re-created repository of the same name.
        repository_id: String,
        /// `repository_owner_id`: the owner's number.
        repository_owner_id: String,
        /// The workflow file in `.github/workflows/`, such as `release.yml`: the one
        /// whose job runs (a reusable workflow of another repository is not it).
        workflow: String,
        /// Only from this ref, such as `refs/heads/main` or `refs/tags/v1.2.0`.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        git_ref: Option<String>,
        /// Only jobs of this deployment environment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        environment: Option<String>,
        /// `owner/name`, for display.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        repository: Option<String>,
        /// GitHub Enterprise Server's issuer (`https://HOST/_services/token`); github.com's
        /// when left out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        issuer: Option<String>,
    },
    /// A GitLab CI project's pipelines.
    Gitlab {
        /// `project_id`: the project's number.
        project_id: String,
        /// `namespace_id`: its group's or user's number.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace_id: Option<String>,
        /// Only from this branch or tag name (`ref`), such as `main`.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        git_ref: Option<String>,
        /// Only from protected branches and tags (`ref_protected`).
        #[serde(default)]
        protected: bool,
        /// `group/project`, for display.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        project_path: Option<String>,
        /// The instance's URL; gitlab.com's when left out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        issuer: Option<String>,
    },
    /// A Buildkite pipeline, whose token carries `organization_id` and `pipeline_id`
    /// (`buildkite-agent oidc request-token --claim organization_id,pipeline_id`).
    Buildkite {
        organization_id: String,
        pipeline_id: String,
        /// Only builds of this branch (`build_branch`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        branch: Option<String>,
        /// `organization/pipeline`, for display.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pipeline: Option<String>,
    },
}

/// Most identities one project trusts.
pub const MAX_TRUSTED_CI: usize = 16;

impl TrustedCi {
    /// The issuer whose tokens this identity takes.
    pub fn issuer(&self) -> &str {
        match self {
            TrustedCi::Github { issuer, .. } => issuer.as_deref().unwrap_or(GITHUB_ISSUER),
            TrustedCi::Gitlab { issuer, .. } => issuer.as_deref().unwrap_or(GITLAB_ISSUER),
            TrustedCi::Buildkite { .. } => BUILDKITE_ISSUER,
        }
    }

    pub fn validate(&self, field: &str) -> Result<(), ValidationError> {
        let id = |name: &str, value: &str| {
            if value.is_empty()
                || value.len() > 32
                || !value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                Err(ValidationError::new(
                    format!("{field}.{name}"),
                    format!("{field}.{name} must be the issuer's id (digits, or a UUID), not a name: names can be taken over, ids cannot"),
                ))
            } else {
                Ok(())
            }
        };
        let text = |name: &str, value: Option<&str>| {
            match value {
            Some(v) if v.is_empty() || v.len() > MAX_SHORT_TEXT || v.chars().any(char::is_control) => {
                Err(ValidationError::new(
                    format!("{field}.{name}"),
                    format!("{field}.{name} must be 1 to {MAX_SHORT_TEXT} characters without control characters"),
                ))
            }
            _ => Ok(()),
        }
        };
        let issuer = |value: Option<&str>| {
            match value {
            Some(v) if !v.starts_with("https://") || v.len() > MAX_SHORT_TEXT => Err(ValidationError::new(
                format!("{field}.issuer"),
                format!("{field}.issuer must be the issuer's https:// URL, as its tokens' iss claim has it"),
            )),
            _ => Ok(()),
        }
        };
        match self {
            TrustedCi::Github {
                repository_id,
                repository_owner_id,
                workflow,
                git_ref,
                environment,
                repository,
                issuer: iss,
            } => {
                id("repository_id", repository_id)?;
                id("repository_owner_id", repository_owner_id)?;
                if workflow.is_empty()
                    || workflow.contains('/')
                    || !(workflow.ends_with(".yml") || workflow.ends_with(".yaml"))
                {
                    return Err(ValidationError::new(
                        format!("{field}.workflow"),
                        format!("{field}.workflow must be a file name in .github/workflows, such as \"release.yml\""),
                    ));
                }
                text("ref", git_ref.as_deref())?;
                text("environment", environment.as_deref())?;
                text("repository", repository.as_deref())?;
                issuer(iss.as_deref())
            }
            TrustedCi::Gitlab {
                project_id,
                namespace_id,
                git_ref,
                project_path,
                issuer: iss,
                ..
            } => {
                id("project_id", project_id)?;
                if let Some(n) = namespace_id {
                    id("namespace_id", n)?;
                }
                text("ref", git_ref.as_deref())?;
                text("project_path", project_path.as_deref())?;
                issuer(iss.as_deref())
            }
            TrustedCi::Buildkite {
                organization_id,
                pipeline_id,
                branch,
                pipeline,
            } => {
                id("organization_id", organization_id)?;
                id("pipeline_id", pipeline_id)?;
                text("branch", branch.as_deref())?;
                text("pipeline", pipeline.as_deref())
            }
        }
    }
}

impl fmt::Display for TrustedCi {
    /// `GitHub acme/lib release.yml`, `GitLab project 4711`, `Buildkite acme/lib`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustedCi::Github {
                repository,
                repository_id,
                workflow,
                ..
            } => match repository {
                Some(name) => write!(f, "GitHub {name} {workflow}"),
                None => write!(f, "GitHub repository {repository_id} {workflow}"),
            },
            TrustedCi::Gitlab {
                project_path,
                project_id,
                ..
            } => match project_path {
                Some(path) => write!(f, "GitLab {path}"),
                None => write!(f, "GitLab project {project_id}"),
            },
            TrustedCi::Buildkite {
                pipeline,
                pipeline_id,
                ..
            } => match pipeline {
                Some(name) => write!(f, "Buildkite {name}"),
                None => write!(f, "Buildkite pipeline {pipeline_id}"),
            },
        }
    }
}
