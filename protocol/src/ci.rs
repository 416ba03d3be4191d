//! Native CI systems: which ones conjunction speaks to through their own APIs, the run
//! a build is in one of them, and how a project's own CI tells conjunction about its
//! runs (its `source`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::http_url::{self, check_url};
use crate::limits::*;
use crate::text::{check_text, Layout};

/// A CI system conjunction triggers through its API and hears from through its
/// webhooks. The generic webhook trigger is not one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CiKind {
    Github,
    Gitlab,
    Buildkite,
    Jenkins,
}

impl CiKind {
    pub const ALL: [CiKind; 4] = [
        CiKind::Github,
        CiKind::Gitlab,
        CiKind::Buildkite,
        CiKind::Jenkins,
    ];

    /// As it is written in JSON and in URLs (`/v1/hooks/github/…`).
    pub fn as_str(self) -> &'static str {
        match self {
            CiKind::Github => "github",
            CiKind::Gitlab => "gitlab",
            CiKind::Buildkite => "buildkite",
            CiKind::Jenkins => "jenkins",
        }
    }

    /// As people write it.
    pub fn name(self) -> &'static str {
        match self {
            CiKind::Github => "GitHub",
            CiKind::Gitlab => "GitLab",
            CiKind::Buildkite => "Buildkite",
            CiKind::Jenkins => "Jenkins",
        }
    }

    pub fn parse(s: &str) -> Option<CiKind> {
        CiKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for CiKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The run of a native CI that builds a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub ci: CiKind,
    /// The CI's own id for the run: GitHub's workflow run id, GitLab's pipeline id,
    /// Buildkite's build UUID, Jenkins's queue item id. Unknown while the CI has not
    /// said it (a GitHub dispatch without run details, until its webhook arrives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The run's number where the CI shows one (Buildkite's and Jenkins's build number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u64>,
    /// Set when conjunction learnt the run's state by asking the CI's API rather than
    /// from its webhook, and says why it asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learnt: Option<String>,
}

impl Run {
    /// Such as `GitHub run 30433642`, `Jenkins build #12`, `Jenkins queue item 7`.
    pub fn describe(&self) -> String {
        let (run, queued) = match self.ci {
            CiKind::Github => ("run", "run"),
            CiKind::Gitlab => ("pipeline", "pipeline"),
            CiKind::Buildkite => ("build", "build"),
            CiKind::Jenkins => ("build", "queue item"),
        };
        match (&self.number, &self.id) {
            (Some(n), _) => format!("{} {run} #{n}", self.ci.name()),
            (None, Some(id)) => format!("{} {queued} {id}", self.ci.name()),
            (None, None) => format!("{} {run} (id not known yet)", self.ci.name()),
        }
    }
}

/// The value that ties a CI run to a conjunction build: `<build id>/<attempt>`. It
/// goes out in the trigger (a workflow input, a pipeline variable, meta-data, a job
/// parameter) and comes back in the run's own fields.
pub fn build_key(build: crate::BuildId, attempt: u32) -> String {
    format!("{build}/{attempt}")
}

/// Reads a [`build_key`] back.
pub fn parse_build_key(key: &str) -> Option<(crate::BuildId, u32)> {
    let (build, attempt) = key.trim().split_once('/')?;
    Some((crate::BuildId::parse(build).ok()?, attempt.parse().ok()?))
}

/// How a project's own CI tells conjunction about its runs: the webhook its CI sends
/// to `POST /v1/hooks/{kind}/{project}`, with the secret that proves it. Secrets are
/// write-only.
///
/// A run the daemon triggered updates its node. A run is a root report only when the
/// source names the release it is: its repository and workflow (GitHub), project
/// (GitLab), pipeline (Buildkite) or job (Jenkins), and it ran on the branch the
/// source names or on a version tag, never for a pull request or from a fork. A
/// source that names no release only updates builds conjunction triggered. Anything
/// else is noted and changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceSpec {
    /// A repository or organisation webhook with the "Workflow runs" event.
    Github {
        /// The webhook's secret: it signs each delivery (`X-Hub-Signature-256`).
        secret: String,
        /// The project's repository (`owner/name`): only its runs are root reports.
        /// An organisation webhook sends every repository's runs with one secret.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        repo: Option<String>,
        /// The release workflow whose runs are this project's root reports, as its
        /// path (`.github/workflows/release.yml`) or file name. Without it, the
        /// webhook only updates builds conjunction triggered.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workflow: Option<String>,
        /// The branch whose runs of the release workflow count. Runs of a version tag
        /// (`v1.4.0`) always count: a release is built from its tag. Without it, only
        /// tags count.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        branch: Option<String>,
        /// Runs of pull requests (the workflow's runs with `event: pull_request`) are
        /// candidates: their change is built with the dependents before it merges.
        /// Off by default.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        candidates: bool,
        /// With `candidates`: a fork's pull request is a candidate too. Off by
        /// default, since a fork's code is anyone's.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        candidates_from_forks: bool,
    },
    /// A project (or group) webhook with "Pipeline events".
    Gitlab {
        /// The webhook's secret token, which GitLab sends in clear (`X-Gitlab-Token`).
        token: String,
        /// The webhook's signing token (`whsec_…`, GitLab 19.0 and later): when set,
        /// every delivery must carry a valid `webhook-signature`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signing_token: Option<String>,
        /// The project's path (`group/name`) whose pipelines are root reports.
        /// Without it, the webhook only updates builds conjunction triggered.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        project: Option<String>,
        /// The branch whose pipelines count. Tag pipelines of a version (`v1.4.0`)
        /// always count; without it, only they do.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        git_ref: Option<String>,
        /// Merge request pipelines are candidates: their change is built with the
        /// dependents before it merges. Off by default.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        candidates: bool,
        /// With `candidates`: a fork's pull request is a candidate too. Off by
        /// default, since a fork's code is anyone's.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        candidates_from_forks: bool,
    },
    /// A Notification Service webhook with the `build.*` events.
    Buildkite {
        /// The webhook's token. Buildkite signs with it (`X-Buildkite-Signature`), or
        /// sends it in clear (`X-Buildkite-Token`) when set up that way.
        token: String,
        /// Accept deliveries that carry the token in clear instead of a signature.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        allow_plain_token: bool,
        /// The pipeline whose builds are root reports, as its slug (`lib`) or with its
        /// organization (`acme/lib`). Without it, the webhook only updates builds
        /// conjunction triggered.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pipeline: Option<String>,
        /// The branch whose builds count; version tags always do, and without it
        /// only they do.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        branch: Option<String>,
        /// Builds of pull requests are candidates: their change is built with the
        /// dependents before it merges. Off by default.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        candidates: bool,
        /// With `candidates`: a fork's pull request is a candidate too. Off by
        /// default, since a fork's code is anyone's.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        candidates_from_forks: bool,
    },
    /// A Notification plugin endpoint (JSON over HTTP). The plugin cannot sign, so the
    /// secret goes in the endpoint URL: as the password of its user info
    /// (`https://jenkins:SECRET@conjunction.example/v1/hooks/jenkins/…`) or as
    /// `?token=SECRET`.
    Jenkins {
        secret: String,
        /// The job whose builds are root reports, by its full name (`team/lib`, a
        /// folder path). Without it, the endpoint only updates builds conjunction
        /// triggered.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        job: Option<String>,
        /// The branch whose builds count; version tags always do, and without it
        /// only they do.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        branch: Option<String>,
    },
}

/// What a source names as the project's own release: where its root reports come
/// from. `None` parts are not named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Release<'a> {
    /// GitHub's repository, GitLab's project path, Buildkite's pipeline.
    pub place: Option<&'a str>,
    /// GitHub's workflow, Jenkins's job.
    pub workflow: Option<&'a str>,
    pub branch: Option<&'a str>,
}

/// The public face of a source: its kind and what it names as the project's release,
/// never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceView {
    pub kind: CiKind,
    /// The repository (GitHub), project path (GitLab) or pipeline (Buildkite) whose
    /// runs are root reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
    /// Which workflow or job's runs are root reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// Which branch's runs are root reports (besides version tags).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The source names a release, so its runs can start root events; otherwise it
    /// only updates builds conjunction triggered.
    #[serde(default)]
    pub roots: bool,
    /// Deliveries are signed (not only a token sent in clear).
    pub signed: bool,
    /// Runs of pull or merge requests start candidate events.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub candidates: bool,
    /// Forks' too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub candidates_from_forks: bool,
}

/// Which runs of changes before they merge a source takes as candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Candidates {
    pub enabled: bool,
    pub from_forks: bool,
}

impl SourceSpec {
    pub fn kind(&self) -> CiKind {
        match self {
            SourceSpec::Github { .. } => CiKind::Github,
            SourceSpec::Gitlab { .. } => CiKind::Gitlab,
            SourceSpec::Buildkite { .. } => CiKind::Buildkite,
            SourceSpec::Jenkins { .. } => CiKind::Jenkins,
        }
    }

    /// What the source names as the project's release. A GitHub source that names no
    /// repository is about the repository `trigger` dispatches to, when it is a GitHub
    /// trigger: the project's own.
    pub fn release<'a>(&'a self, trigger: Option<&'a crate::TriggerSpec>) -> Release<'a> {
        match self {
            SourceSpec::Github {
                repo,
                workflow,
                branch,
                ..
            } => Release {
                place: repo.as_deref().or(match trigger {
                    Some(crate::TriggerSpec::Github { repo, .. }) => Some(repo.as_str()),
                    _ => None,
                }),
                workflow: workflow.as_deref(),
                branch: branch.as_deref(),
            },
            SourceSpec::Gitlab {
                project, git_ref, ..
            } => Release {
                place: project.as_deref(),
                workflow: None,
                branch: git_ref.as_deref(),
            },
            SourceSpec::Buildkite {
                pipeline, branch, ..
            } => Release {
                place: pipeline.as_deref(),
                workflow: None,
                branch: branch.as_deref(),
            },
            SourceSpec::Jenkins { job, branch, .. } => Release {
                place: None,
                workflow: job.as_deref(),
                branch: branch.as_deref(),
            },
        }
    }

    /// Whether the source names its release fully enough for runs to be root
    /// reports: GitHub needs the repository and the workflow, GitLab the project,
    /// Buildkite the pipeline, Jenkins the job.
    pub fn names_release(&self, trigger: Option<&crate::TriggerSpec>) -> bool {
        let r = self.release(trigger);
        match self.kind() {
            CiKind::Github => r.place.is_some() && r.workflow.is_some(),
            CiKind::Gitlab | CiKind::Buildkite => r.place.is_some(),
            CiKind::Jenkins => r.workflow.is_some(),
        }
    }

    /// The source of a project whose trigger is `trigger`, without its secrets.
    pub fn view(&self, trigger: Option<&crate::TriggerSpec>) -> SourceView {
        let r = self.release(trigger);
        SourceView {
            kind: self.kind(),
            place: r.place.map(str::to_owned),
            workflow: r.workflow.map(str::to_owned),
            branch: r.branch.map(str::to_owned),
            roots: self.names_release(trigger),
            signed: match self {
                SourceSpec::Github { .. } => true,
                SourceSpec::Gitlab { signing_token, .. } => signing_token.is_some(),
                SourceSpec::Buildkite {
                    allow_plain_token, ..
                } => !allow_plain_token,
                SourceSpec::Jenkins { .. } => false,
            },
            candidates: self.candidates().enabled,
            candidates_from_forks: self.candidates().from_forks,
        }
    }

    /// Whether the source's runs of pull or merge requests start candidate events.
    /// Jenkins's Notification plugin says nothing of pull requests, so never.
    pub fn candidates(&self) -> Candidates {
        match self {
            SourceSpec::Github {
                candidates,
                candidates_from_forks,
                ..
            }
            | SourceSpec::Gitlab {
                candidates,
                candidates_from_forks,
                ..
            }
            | SourceSpec::Buildkite {
                candidates,
                candidates_from_forks,
                ..
            } => Candidates {
                enabled: *candidates,
                from_forks: *candidates && *candidates_from_forks,
            },
            SourceSpec::Jenkins { .. } => Candidates::default(),
        }
    }

    /// Every secret, named by its field, for resolving `env:` and `file:` references.
    pub fn secrets_mut(&mut self) -> Vec<(&'static str, &mut String)> {
        match self {
            SourceSpec::Github { secret, .. } | SourceSpec::Jenkins { secret, .. } => {
                vec![("source.secret", secret)]
            }
            SourceSpec::Gitlab {
                token,
                signing_token,
                ..
            } => {
                let mut out = vec![("source.token", token)];
                if let Some(s) = signing_token {
                    out.push(("source.signing_token", s));
                }
                out
            }
            SourceSpec::Buildkite { token, .. } => vec![("source.token", token)],
        }
    }

    /// Checks the source of a project whose trigger is `trigger`.
    pub(crate) fn validate(
        &self,
        trigger: Option<&crate::TriggerSpec>,
    ) -> Result<(), ValidationError> {
        let mut this = self.clone();
        for (field, secret) in this.secrets_mut() {
            check_secret(field, Some(secret))?;
        }
        if let SourceSpec::Gitlab {
            signing_token: Some(s),
            ..
        } = self
        {
            let key = s.strip_prefix("whsec_").unwrap_or(s);
            if key.is_empty() {
                return Err(ValidationError::new(
                    "source.signing_token",
                    "source.signing_token must be the whole signing token GitLab shows (whsec_…)",
                ));
            }
        }
        let release = self.release(None);
        let (place_field, workflow_field, branch_field) = match self.kind() {
            CiKind::Github => ("source.repo", "source.workflow", "source.branch"),
            CiKind::Gitlab => ("source.project", "source.workflow", "source.ref"),
            CiKind::Buildkite => ("source.pipeline", "source.workflow", "source.branch"),
            CiKind::Jenkins => ("source.place", "source.job", "source.branch"),
        };
        if let Some(place) = release.place {
            check_place(place_field, place)?;
        }
        if let Some(w) = release.workflow {
            check_text(workflow_field, w, MAX_SHORT_TEXT, true, Layout::Line)?;
        }
        if let Some(b) = release.branch {
            check_ref(branch_field, b)?;
        }
        if let (CiKind::Github, Some(_), None) =
            (self.kind(), release.workflow, self.release(trigger).place)
        {
            return Err(ValidationError::new(
                "source.repo",
                "source.workflow names a release workflow but source.repo names no repository: \
                 add repo = \"owner/name\", the repository whose runs of that workflow are this \
                 project's releases (an organisation webhook sends every repository's runs)",
            ));
        }
        Ok(())
    }
}

/// What became of a webhook: the answer of `POST /v1/hooks/{kind}/{project}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookAnswer {
    pub outcome: HookOutcome,
    /// The build the webhook moved on, or the root it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<crate::ReportAck>,
    /// Why nothing changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookOutcome {
    /// A build conjunction triggered moved on (200).
    Updated,
    /// A run of the project's own pipeline started a root event (201).
    Started,
    /// The same delivery came before; nothing changed (200).
    Duplicate,
    /// The webhook is about nothing conjunction acts on; nothing changed (202).
    Noted,
}

/// A branch, tag or other git ref as a CI takes it: one line without spaces.
pub(crate) fn check_ref(field: &str, value: &str) -> Result<(), ValidationError> {
    check_text(field, value, MAX_SHORT_TEXT, true, Layout::Line)?;
    if value.chars().any(char::is_whitespace) {
        return Err(ValidationError::new(
            field,
            format!("{field} {value:?} is not a git ref: refs have no spaces"),
        ));
    }
    Ok(())
}

/// A repository, project path or pipeline as a CI names it: one line of
/// `/`-separated names without spaces (`acme/lib`, `group/sub/lib`, `lib`).
fn check_place(field: &str, value: &str) -> Result<(), ValidationError> {
    check_text(field, value, MAX_SHORT_TEXT, true, Layout::Line)?;
    let bad = value.chars().any(char::is_whitespace)
        || value.starts_with('/')
        || value.ends_with('/')
        || value.contains("//");
    if bad {
        return Err(ValidationError::new(
            field,
            format!("{field} {value:?} is not a name its CI uses: write it as `owner/name`, without spaces or empty parts"),
        ));
    }
    Ok(())
}

/// A secret: 1 to [`MAX_SECRET`] printable ASCII characters.
pub(crate) fn check_secret(field: &str, value: Option<&str>) -> Result<(), ValidationError> {
    match value {
        Some(v)
            if v.is_empty() || v.len() > MAX_SECRET || !v.chars().all(|c| c.is_ascii_graphic()) =>
        {
            Err(ValidationError::new(
                field,
                format!(
                    "{field} must be 1 to {MAX_SECRET} printable ASCII characters without spaces"
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// The version a run built, from the tag it built: `v1.4.0` and `refs/tags/1.4.0`
/// give `1.4.0`; a branch name gives nothing.
pub fn version_from_ref(git_ref: &str) -> Option<String> {
    let name = git_ref.strip_prefix("refs/tags/").unwrap_or(git_ref);
    let bare = name.strip_prefix('v').unwrap_or(name);
    semver::Version::parse(bare).ok().map(|v| v.to_string())
}

/// GitHub's REST API root when a trigger does not name one.
pub const GITHUB_API: &str = "https://api.github.com";
/// Buildkite's REST API root when a trigger does not name one.
pub const BUILDKITE_API: &str = "https://api.buildkite.com";

/// Letters, digits, `.`, `_` and `-`: an owner, repository, workflow file or slug.
pub(crate) fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SHORT_TEXT
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Slugs separated by `/`: a GitLab project path (or its numeric id).
pub(crate) fn check_path(field: &str, value: &str, example: &str) -> Result<(), ValidationError> {
    if value.split('/').all(is_slug) {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!("{field} {value:?} must be a path such as {example}"),
        ))
    }
}

/// The root URL of a CI's instance or API: no credentials (the token field carries
/// them), no query.
pub(crate) fn check_base_url(field: &str, url: &str) -> Result<(), ValidationError> {
    let parsed = check_url(field, url)?;
    if http_url::has_credentials(&parsed) {
        return Err(ValidationError::new(
            field,
            format!(
                "{field} carries credentials; put the token in the token field beside it instead"
            ),
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(ValidationError::new(
            field,
            format!("{field} must be the instance's root URL, without a query"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_come_from_version_tags_only() {
        assert_eq!(version_from_ref("v1.4.0").as_deref(), Some("1.4.0"));
        assert_eq!(
            version_from_ref("refs/tags/2.0.0-rc.1").as_deref(),
            Some("2.0.0-rc.1")
        );
        assert_eq!(version_from_ref("main"), None);
        assert_eq!(version_from_ref("v1.4"), None);
    }

    #[test]
    fn build_keys_read_back() {
        let build = crate::BuildId(ulid::Ulid::from_parts(7, 9));
        assert_eq!(parse_build_key(&build_key(build, 3)), Some((build, 3)));
        assert_eq!(parse_build_key("nonsense/1"), None);
        assert_eq!(parse_build_key(&build.to_string()), None);
    }

    #[test]
    fn a_source_view_has_no_secret() {
        let s: SourceSpec = serde_json::from_str(
            r#"{"kind":"github","secret":"hunter2hunter2","repo":"acme/lib","workflow":".github/workflows/release.yml","branch":"main"}"#,
        )
        .unwrap();
        s.validate(None).unwrap();
        let json = serde_json::to_string(&s.view(None)).unwrap();
        assert!(!json.contains("hunter2"), "{json}");
        assert!(json.contains("release.yml"), "{json}");
        assert!(json.contains(r#""place":"acme/lib""#), "{json}");
        assert!(json.contains(r#""roots":true"#), "{json}");
    }

    #[test]
    fn sources_refuse_unknown_fields_and_bad_secrets() {
        assert!(serde_json::from_str::<SourceSpec>(
            r#"{"kind":"gitlab","token":"t","colour":"red"}"#
        )
        .is_err());
        let s: SourceSpec =
            serde_json::from_str(r#"{"kind":"jenkins","secret":"two words"}"#).unwrap();
        assert_eq!(s.validate(None).unwrap_err().field, "source.secret");
    }
}
