//! Reports: what a CI says about a build, and the daemon's acknowledgement.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::candidate::Candidate;
use crate::error::ValidationError;
use crate::http_url::check_url;
use crate::id::{BuildId, ProjectId};
use crate::limits::*;
use crate::node::{NodeState, StateKind};
use crate::text::{check_text, Layout};

/// The states a CI may report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportState {
    Running,
    Passed,
    Failed,
    Errored,
    Cancelled,
}

impl ReportState {
    pub fn to_node_state(self) -> NodeState {
        match self {
            ReportState::Running => NodeState::Running,
            ReportState::Passed => NodeState::Passed,
            ReportState::Failed => NodeState::Failed,
            ReportState::Errored => NodeState::Errored,
            ReportState::Cancelled => NodeState::Cancelled,
        }
    }

    pub fn kind(self) -> StateKind {
        self.to_node_state().kind()
    }

    pub fn is_final(self) -> bool {
        self != ReportState::Running
    }
}

/// The body of `POST /v1/reports`.
///
/// Without `build` it is a root report: the project's own CI says one of its pipelines
/// reached `state`, which starts a root event. With `build` it updates a node that the
/// daemon triggered (or a root node reported earlier).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub project: ProjectId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildId>,
    /// The attempt this report is about; the node's current attempt when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    pub state: ReportState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    /// On a root report: the environment the version went to. Left out, the report is
    /// a release into the first environment; a later one promotes the version's
    /// release line there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// On a root report: the pipeline tested a change before it merges (a pull or
    /// merge request), which starts a candidate event instead of a release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<Candidate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "crate::json::unique_map"
    )]
    pub metadata: BTreeMap<String, String>,
    /// The package manifests the build used, the project's own first, then what it
    /// refers to (a workspace root, a parent POM, an included requirements file). A
    /// project with `dependencies = "from_manifest"` takes its `depends_on` from them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<ManifestFile>,
}

/// One manifest file, by its path in the repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    pub path: String,
    pub content: String,
}

/// Most manifest files one report may carry.
pub const MAX_MANIFESTS: usize = 16;
/// Most bytes of manifests one report may carry, all files together.
pub const MAX_MANIFEST_BYTES: usize = 512 * 1024;

impl Report {
    /// A report of `state` for `project`'s own pipeline (a root report), with every
    /// optional field left out.
    pub fn new(project: ProjectId, state: ReportState) -> Self {
        Self {
            project,
            build: None,
            attempt: None,
            state,
            version: None,
            commit: None,
            git_ref: None,
            environment: None,
            candidate: None,
            url: None,
            summary: None,
            metadata: Default::default(),
            manifests: Vec::new(),
        }
    }

    /// Makes the summary printable (a coloured or Windows log, see
    /// [`crate::text::clean_log`]) before it is checked and stored. The single-line
    /// fields are left as they came: [`Report::validate`] refuses what they must not
    /// hold.
    pub fn clean(&mut self) {
        if let Some(summary) = &mut self.summary {
            if let std::borrow::Cow::Owned(clean) = crate::text::clean_log(summary) {
                *summary = clean;
            }
        }
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.attempt.is_some() && self.build.is_none() {
            return Err(ValidationError::new(
                "attempt",
                "attempt only makes sense with build: a root report starts attempt 1",
            ));
        }
        if self.attempt == Some(0) {
            return Err(ValidationError::new(
                "attempt",
                "attempts are counted from 1",
            ));
        }
        if let Some(environment) = &self.environment {
            if self.build.is_some() {
                return Err(ValidationError::new(
                    "environment",
                    "environment belongs on a root report: a build's environment is its event's",
                ));
            }
            crate::project::check_environment("environment", environment)?;
        }
        if let Some(candidate) = &self.candidate {
            if self.build.is_some() {
                return Err(ValidationError::new(
                    "candidate",
                    "candidate belongs on a root report: a build's change is its event's",
                ));
            }
            if self.environment.is_some() {
                return Err(ValidationError::new(
                    "candidate",
                    "a candidate goes to no environment: it is tested, never released; \
                     leave environment out",
                ));
            }
            candidate.validate()?;
        }
        for (field, value) in [
            ("version", &self.version),
            ("commit", &self.commit),
            ("ref", &self.git_ref),
        ] {
            if let Some(v) = value {
                check_text(field, v, MAX_SHORT_TEXT, true, Layout::Line)?;
            }
        }
        if let Some(version) = &self.version {
            if version.chars().any(char::is_whitespace) {
                return Err(ValidationError::new(
                    "version",
                    "version must not contain spaces",
                ));
            }
        }
        if let Some(url) = &self.url {
            if crate::http_url::has_credentials(&check_url("url", url)?) {
                return Err(ValidationError::new(
                    "url",
                    "url must not carry credentials: it is shown to everyone who follows the build",
                ));
            }
        }
        if let Some(summary) = &self.summary {
            check_text("summary", summary, MAX_SUMMARY, false, Layout::Lines)?;
        }
        if self.metadata.len() > MAX_METADATA_ENTRIES {
            return Err(ValidationError::new(
                "metadata",
                format!("metadata may hold at most {MAX_METADATA_ENTRIES} entries"),
            ));
        }
        for (k, v) in &self.metadata {
            check_text(
                &format!("metadata key {k:?}"),
                k,
                MAX_METADATA_KEY,
                true,
                Layout::Line,
            )?;
            check_text(
                &format!("metadata[{k:?}]"),
                v,
                MAX_METADATA_VALUE,
                false,
                Layout::Line,
            )?;
        }
        if self.manifests.len() > MAX_MANIFESTS {
            return Err(ValidationError::new(
                "manifests",
                format!("a report may carry at most {MAX_MANIFESTS} manifests: the project's own and what it refers to"),
            ));
        }
        let bytes: usize = self.manifests.iter().map(|m| m.content.len()).sum();
        if bytes > MAX_MANIFEST_BYTES {
            return Err(ValidationError::new(
                "manifests",
                format!(
                    "the manifests hold {bytes} bytes; a report may carry at most {MAX_MANIFEST_BYTES}: send the project's own manifest and what it refers to, not lock files"
                ),
            ));
        }
        for (i, m) in self.manifests.iter().enumerate() {
            check_text(
                &format!("manifests[{i}].path"),
                &m.path,
                MAX_URL,
                true,
                Layout::Line,
            )?;
        }
        Ok(())
    }
}

/// The answer to an accepted report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportAck {
    pub build: BuildId,
    pub root: BuildId,
    pub attempt: u32,
    pub state: StateKind,
    /// The sequence number of the event that recorded this state.
    pub seq: u64,
    /// What the daemon took the report for but could not use, such as a manifest
    /// that does not parse; the report itself is taken.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_root_report_parses_and_validates() {
        let r: Report = serde_json::from_str(
            r#"{"project":"acme/lib","state":"passed","version":"1.4.0","commit":"9f1c2e0","ref":"main",
                "url":"https://ci.example/runs/881","summary":null,"metadata":{"pipeline":"release"}}"#,
        )
        .unwrap();
        r.validate().unwrap();
        assert_eq!(r.git_ref.as_deref(), Some("main"));
    }

    #[test]
    fn oversized_metadata_is_refused() {
        let mut r: Report =
            serde_json::from_str(r#"{"project":"acme/lib","state":"failed"}"#).unwrap();
        for i in 0..=MAX_METADATA_ENTRIES {
            r.metadata.insert(format!("k{i}"), "v".into());
        }
        assert_eq!(r.validate().unwrap_err().field, "metadata");
    }

    #[test]
    fn a_candidate_is_a_root_report_into_no_environment() {
        let r: Report = serde_json::from_str(
            r#"{"project":"acme/lib","state":"passed","commit":"9f1c2e0",
                "candidate":{"change":"123","base":"1.4.0"}}"#,
        )
        .unwrap();
        r.validate().unwrap();
        let mut promoted = r.clone();
        promoted.environment = Some("prod".into());
        assert_eq!(promoted.validate().unwrap_err().field, "candidate");
        let mut build = r;
        build.build = Some(BuildId(ulid::Ulid(1)));
        assert_eq!(build.validate().unwrap_err().field, "candidate");
    }

    #[test]
    fn a_report_carries_a_bounded_number_and_size_of_manifests() {
        let mut r: Report = serde_json::from_str(
            r#"{"project":"acme/app","state":"passed",
                "manifests":[{"path":"package.json","content":"{}"}]}"#,
        )
        .unwrap();
        r.validate().unwrap();
        let file = r.manifests[0].clone();
        r.manifests = vec![file.clone(); MAX_MANIFESTS + 1];
        assert_eq!(r.validate().unwrap_err().field, "manifests");
        r.manifests = vec![ManifestFile {
            content: "x".repeat(MAX_MANIFEST_BYTES + 1),
            ..file
        }];
        assert_eq!(r.validate().unwrap_err().field, "manifests");
        assert!(serde_json::from_str::<Report>(
            r#"{"project":"acme/app","state":"passed","manifests":[{"path":"a","content":"","size":1}]}"#
        )
        .is_err());
    }

    #[test]
    fn unknown_states_are_refused() {
        assert!(
            serde_json::from_str::<Report>(r#"{"project":"acme/lib","state":"exploded"}"#).is_err()
        );
    }
}
