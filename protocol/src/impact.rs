//! The impact preview: what a release of a project would do, before it is reported.

use serde::{Deserialize, Serialize};

use crate::id::ProjectId;
use crate::project::{Contact, Ecosystem};

/// The answer to `GET /v1/projects/{id}/impact?version=…`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Impact {
    pub project: ProjectId,
    pub version: String,
    /// The environment asked about; absent, the first one (a release).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Set when the promotion would roll the environment back: the newer version it
    /// has now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_from: Option<String>,
    /// How the version and the ranges on the project are read.
    pub ecosystem: Ecosystem,
    /// How many builds the release would trigger.
    pub builds: usize,
    /// The projects the release would build, in the order the event would plan
    /// them (parents first).
    pub triggered: Vec<ImpactBuild>,
    /// The projects whose range stops below the version.
    pub needs_bump: Vec<ImpactBump>,
    /// Projects that depend on this one, directly or not, but would not be built.
    pub not_affected: Vec<NotAffected>,
    /// Projects that would not be built because something above them in the event
    /// cannot be: a cycle, or a project without a trigger.
    pub blocked: Vec<NotAffected>,
    /// Dependency cycles among the dependents, each a path from a project back to it.
    pub cycles: Vec<Vec<ProjectId>>,
    /// In a promotion: the dependents left where they are, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_promoted: Vec<NotAffected>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImpactBuild {
    pub project: ProjectId,
    /// The ref a line of the project names for this version.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    /// In a promotion: the exact version of the project it would build or deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The projects it would wait for in the event.
    pub after: Vec<ProjectId>,
    /// Why it could not be triggered, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cannot_trigger: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImpactBump {
    pub project: ProjectId,
    pub range: String,
    /// "acme/app declares ^1.2 on acme/lib; 2.0.0 is outside it: bump the range to adopt it".
    pub message: String,
    /// Whom to ask for the bump.
    pub contacts: Vec<Contact>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotAffected {
    pub project: ProjectId,
    pub why: String,
}
