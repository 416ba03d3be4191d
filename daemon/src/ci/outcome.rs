//! What a trigger carries to a CI (the values its pipeline reads) and what it came to:
//! the run a CI started, or the [`Failure`] the outbox judges.

use conjunction_protocol::ci::build_key;
use conjunction_protocol::trigger::TriggerPayload;
use conjunction_protocol::Run;

use crate::call::Failure;

/// The variable that names a candidate's change: set, the build tests an unmerged
/// change of its upstream and should run without secrets it does not need.
pub const CANDIDATE_VARIABLE: &str = "CONJUNCTION_CANDIDATE";

/// What one attempt to trigger a build came to.
pub type Outcome = Result<Accepted, Failure>;

/// A trigger the CI accepted; a native CI says which run it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accepted {
    pub run: Option<Run>,
    /// The run's page, where the CI said it.
    pub url: Option<String>,
    /// Jenkins's queue item, to follow until it becomes a build.
    pub queue_item: Option<String>,
}

/// The values a native trigger hands to the CI, as workflow inputs, pipeline
/// variables, environment, meta-data or job parameters.
#[derive(Clone)]
pub struct TriggerValues {
    /// `<build id>/<attempt>`: what ties the run back to its node.
    pub build: String,
    /// Where the run may report on its own.
    pub report_url: String,
    /// The build-scoped report token, valid for this build and attempt only.
    pub token: String,
    /// The upstream that started the event, as `project@version` (or the project alone
    /// when it named no version).
    pub upstream: String,
    /// The ref to build, when a line of the project names one for the release.
    pub git_ref: Option<String>,
    /// In a promotion: the environment to deploy to.
    pub environment: Option<String>,
    /// In a promotion: the exact version of the project to build or deploy.
    pub version: Option<String>,
    /// For a candidate: the upstream's change (its pull request's number), the
    /// commit to build the upstream at and its ref.
    pub candidate: Option<Candidate>,
}

/// What a trigger for a candidate adds: the change and where its code is.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub change: String,
    pub commit: Option<String>,
    pub git_ref: Option<String>,
}

impl std::fmt::Debug for TriggerValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TriggerValues")
            .field("build", &self.build)
            .field("report_url", &self.report_url)
            .field("token", &"<redacted>")
            .field("upstream", &self.upstream)
            .field("git_ref", &self.git_ref)
            .field("environment", &self.environment)
            .field("version", &self.version)
            .field("candidate", &self.candidate)
            .finish()
    }
}

impl TriggerValues {
    pub fn new(payload: &TriggerPayload, report_url: &str, token: String) -> Self {
        let root = &payload.root;
        Self {
            build: build_key(payload.build, payload.attempt),
            report_url: report_url.to_owned(),
            token,
            upstream: match &root.version {
                Some(v) => format!("{}@{v}", root.project),
                None => root.project.to_string(),
            },
            git_ref: payload.git_ref.clone(),
            environment: payload.environment.clone(),
            version: payload.version.clone(),
            candidate: root.candidate.as_ref().map(|c| Candidate {
                change: c.change.clone(),
                commit: root.commit.clone(),
                git_ref: root.git_ref.clone(),
            }),
        }
    }

    /// The values under the upper-case names scripts read them by (pipeline
    /// variables, build environment, job parameters).
    pub fn variables(&self) -> Vec<(&'static str, &str)> {
        let mut out = vec![
            (super::BUILD_VARIABLE, self.build.as_str()),
            ("CONJUNCTION_REPORT_URL", &self.report_url),
            ("CONJUNCTION_TOKEN", &self.token),
            ("UPSTREAM", &self.upstream),
        ];
        for (name, value) in [
            ("CONJUNCTION_REF", &self.git_ref),
            ("CONJUNCTION_ENVIRONMENT", &self.environment),
            ("CONJUNCTION_VERSION", &self.version),
        ] {
            if let Some(v) = value {
                out.push((name, v));
            }
        }
        out.extend(self.candidate_values());
        out
    }

    /// For a candidate: the change and the upstream's commit and ref, under their
    /// variable names. Nothing for a release, so a pipeline that never takes
    /// candidates need not know them.
    pub fn candidate_values(&self) -> Vec<(&'static str, &str)> {
        let Some(c) = &self.candidate else {
            return Vec::new();
        };
        let mut out = vec![(CANDIDATE_VARIABLE, c.change.as_str())];
        if let Some(commit) = &c.commit {
            out.push(("CONJUNCTION_UPSTREAM_COMMIT", commit));
        }
        if let Some(r) = &c.git_ref {
            out.push(("CONJUNCTION_UPSTREAM_REF", r));
        }
        out
    }

    /// The variables as a JSON object, as GitLab's `variables` and Buildkite's `env`
    /// take them.
    pub fn variables_json(&self) -> serde_json::Map<String, serde_json::Value> {
        self.variables()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into()))
            .collect()
    }
}
