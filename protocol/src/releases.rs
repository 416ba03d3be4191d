//! Release lines: for each version of an upstream, the versions its dependents built
//! against it, and how the upstream and each dependent fared in each environment.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::id::{BuildId, ProjectId};
use crate::node::StateKind;
use crate::time::Timestamp;

/// The answer to `GET /v1/projects/{id}/releases`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Releases {
    pub project: ProjectId,
    /// The daemon's environments, in promotion order.
    pub environments: Vec<String>,
    /// The version each environment has now: its last release or promotion that passed.
    pub current: BTreeMap<String, String>,
    /// The project's versions, newest first.
    pub lines: Vec<ReleaseLine>,
    /// Set when older lines were left out: ask again with `?before=` this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<String>,
}

/// One version of an upstream and its dependents (`GET /v1/projects/{id}/releases/{version}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseLine {
    pub project: ProjectId,
    pub version: String,
    /// When the version was first reported.
    pub created_at: Timestamp,
    /// The upstream's own latest run of this version in each environment.
    pub environments: BTreeMap<String, LineRun>,
    /// The dependents built against this version, by project.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependents: Vec<LineDependent>,
}

/// The upstream's run of a version in one environment: the root event it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineRun {
    pub root: BuildId,
    pub state: StateKind,
    pub at: Timestamp,
    /// Set when the run rolled the environment back: the newer version it had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_from: Option<String>,
}

/// A dependent on a release line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineDependent {
    pub project: ProjectId,
    /// The version its CI reported when it passed against this release in the first
    /// environment: the version promotions build or deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The ref it was built on, when a line of its dependency named one.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    /// How it fared in each environment, in the upstream's latest run there.
    pub environments: BTreeMap<String, LineCell>,
}

/// A dependent in one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LineCell {
    /// Its build in the event: state, and the version its CI reported.
    Built {
        root: BuildId,
        build: BuildId,
        attempt: u32,
        state: StateKind,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
    },
    /// The promotion left it where it was.
    NotPromoted { root: BuildId, not_promoted: String },
}

impl LineCell {
    /// The root event the cell was written in.
    pub fn root(&self) -> BuildId {
        match self {
            LineCell::Built { root, .. } | LineCell::NotPromoted { root, .. } => *root,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_of_cell_read_back_as_written() {
        let id = BuildId(ulid::Ulid::from_parts(1, 2));
        for cell in [
            LineCell::Built {
                root: id,
                build: id,
                attempt: 2,
                state: StateKind::Passed,
                version: Some("2.3.1".into()),
            },
            LineCell::NotPromoted {
                root: id,
                not_promoted: "failed in test".into(),
            },
        ] {
            let json = serde_json::to_string(&cell).unwrap();
            assert_eq!(
                serde_json::from_str::<LineCell>(&json).unwrap(),
                cell,
                "{json}"
            );
        }
    }
}
