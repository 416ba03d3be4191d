//! Projects: who they are, whom to contact, what they depend on and how to trigger them.

use serde::{Deserialize, Serialize};

use crate::ci::{
    check_base_url, check_path, check_ref, check_secret, is_slug, CiKind, SourceSpec, SourceView,
};
pub use crate::ci::{BUILDKITE_API, GITHUB_API};
use crate::error::ValidationError;
use crate::http_url::{self, check_url};
use crate::id::ProjectId;
use crate::limits::*;
use crate::notify::{validate_rules, NotifyRule, NotifyView};
use crate::text::{check_text, Layout};
use crate::time::Timestamp;

/// A person to contact about a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// A chat handle, such as `@ana` or `#acme-builds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<String>,
    /// What the person does for the project, such as `maintainer` or `release manager`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// One upstream a project depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    pub project: ProjectId,
    /// The versions of the upstream this project accepts, such as `^1.2`, read the way
    /// the upstream's package ecosystem reads ranges (Cargo's way when it has none).
    /// A release the range does not take does not trigger this project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
    /// Instead of one range: the lines of the upstream this project follows, newest
    /// first, each built from its own ref. A release is built on the ref of the first
    /// line whose range takes it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<Line>,
}

/// One line of an upstream that a dependent follows: the versions it takes, and the
/// ref of the dependent that builds against them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub range: String,
}

/// Most lines one dependency may list.
pub const MAX_LINES: usize = 16;

/// A package ecosystem: how versions of a project and ranges on it are read.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Ecosystem {
    Npm,
    /// The default: ranges on a project without a package are Cargo's.
    #[default]
    Cargo,
    Pypi,
    Maven,
    Go,
}

impl Ecosystem {
    pub const ALL: [Ecosystem; 5] = [
        Ecosystem::Npm,
        Ecosystem::Cargo,
        Ecosystem::Pypi,
        Ecosystem::Maven,
        Ecosystem::Go,
    ];

    /// The word in JSON: `npm`, `cargo`, `pypi`, `maven`, `go`.
    pub fn as_str(self) -> &'static str {
        match self {
            Ecosystem::Npm => "npm",
            Ecosystem::Cargo => "cargo",
            Ecosystem::Pypi => "pypi",
            Ecosystem::Maven => "maven",
            Ecosystem::Go => "go",
        }
    }

    /// The name people write: `npm`, `Cargo`, `PyPI`, `Maven`, `Go`.
    pub fn name(self) -> &'static str {
        match self {
            Ecosystem::Npm => "npm",
            Ecosystem::Cargo => "Cargo",
            Ecosystem::Pypi => "PyPI",
            Ecosystem::Maven => "Maven",
            Ecosystem::Go => "Go",
        }
    }
}

impl std::fmt::Display for Ecosystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The package a project publishes: it says how versions of the project and ranges
/// on it are read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    pub ecosystem: Ecosystem,
    pub name: String,
}

/// How the daemon starts a project's CI. Secrets in here are write-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TriggerSpec {
    /// A generic webhook: the daemon POSTs the trigger payload as JSON to `url`,
    /// signed with `secret` and authorised with `token` when they are set.
    Webhook {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
    },
    /// GitHub Actions: a `workflow_dispatch` of `workflow` on `ref` in `repo`.
    Github {
        /// `owner/name`.
        repo: String,
        /// The workflow's file name (`downstream.yml`) or numeric id.
        workflow: String,
        #[serde(rename = "ref")]
        git_ref: String,
        /// A token with "Actions: write" on the repository.
        token: String,
        /// The REST API's root; GitHub Enterprise Server has `https://HOST/api/v3`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_url: Option<String>,
    },
    /// GitLab CI: the pipeline trigger API of `project` (a path or numeric id) on
    /// the instance at `url`.
    Gitlab {
        url: String,
        project: String,
        #[serde(rename = "ref")]
        git_ref: String,
        /// A pipeline trigger token (`glptt-…`).
        token: String,
        /// A token with `read_api`, for checking a pipeline whose webhook went
        /// missing; a public project needs none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_token: Option<String>,
    },
    /// Buildkite: creates a build of `org`'s `pipeline`.
    Buildkite {
        org: String,
        pipeline: String,
        branch: String,
        /// A commit, ref or `HEAD` (the branch's newest commit).
        #[serde(default = "head", skip_serializing_if = "is_head")]
        commit: String,
        /// An API access token with `write_builds` (and `read_builds`, for checking
        /// runs whose webhook went missing).
        token: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_url: Option<String>,
    },
    /// Jenkins: `buildWithParameters` of `job` (a folder path, `team/app`) on the
    /// instance at `url`, as `user` with an API token.
    Jenkins {
        url: String,
        job: String,
        user: String,
        token: String,
    },
}

fn head() -> String {
    "HEAD".into()
}

fn is_head(s: &String) -> bool {
    s == "HEAD"
}

/// The public face of a trigger: where it goes and which secrets are set, never
/// the secrets themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerView {
    pub kind: String,
    /// The URL the trigger calls, with any user info and query string removed.
    pub url: String,
    pub has_token: bool,
    pub has_secret: bool,
}

impl TriggerSpec {
    /// The native CI this trigger speaks to; `None` for a generic webhook.
    pub fn ci(&self) -> Option<CiKind> {
        match self {
            TriggerSpec::Webhook { .. } => None,
            TriggerSpec::Github { .. } => Some(CiKind::Github),
            TriggerSpec::Gitlab { .. } => Some(CiKind::Gitlab),
            TriggerSpec::Buildkite { .. } => Some(CiKind::Buildkite),
            TriggerSpec::Jenkins { .. } => Some(CiKind::Jenkins),
        }
    }

    pub fn kind(&self) -> &'static str {
        self.ci().map_or("webhook", CiKind::as_str)
    }

    /// The URL a trigger calls: the webhook's own, or the CI API endpoint that starts
    /// a run. `None` only for a trigger whose URLs do not parse, which validation
    /// refuses.
    pub fn endpoint(&self) -> Option<url::Url> {
        let under = |base: &str, segments: &[&str]| {
            let mut url = url::Url::parse(base).ok()?;
            url.set_query(None);
            url.set_fragment(None);
            url.path_segments_mut()
                .ok()?
                .pop_if_empty()
                .extend(segments);
            Some(url)
        };
        match self {
            TriggerSpec::Webhook { url, .. } => url::Url::parse(url).ok(),
            TriggerSpec::Github {
                repo,
                workflow,
                api_url,
                ..
            } => {
                let (owner, name) = repo.split_once('/')?;
                under(
                    api_url.as_deref().unwrap_or(GITHUB_API),
                    &[
                        "repos",
                        owner,
                        name,
                        "actions",
                        "workflows",
                        workflow,
                        "dispatches",
                    ],
                )
            }
            TriggerSpec::Gitlab { url, project, .. } => under(
                url,
                &["api", "v4", "projects", project, "trigger", "pipeline"],
            ),
            TriggerSpec::Buildkite {
                org,
                pipeline,
                api_url,
                ..
            } => under(
                api_url.as_deref().unwrap_or(BUILDKITE_API),
                &["v2", "organizations", org, "pipelines", pipeline, "builds"],
            ),
            TriggerSpec::Jenkins { url, job, .. } => {
                let mut segments = Vec::new();
                for part in job.split('/') {
                    segments.extend(["job", part]);
                }
                segments.push("buildWithParameters");
                under(url, &segments)
            }
        }
    }

    pub fn view(&self) -> TriggerView {
        let url = self.endpoint().map_or_else(
            || "(a URL that does not parse)".into(),
            |u| http_url::redact(&u),
        );
        let (has_token, has_secret) = match self {
            TriggerSpec::Webhook { token, secret, .. } => (token.is_some(), secret.is_some()),
            _ => (true, false),
        };
        TriggerView {
            kind: self.kind().into(),
            url,
            has_token,
            has_secret,
        }
    }

    /// Every secret, named by its field, for resolving `env:` and `file:` references.
    pub fn secrets_mut(&mut self) -> Vec<(&'static str, &mut String)> {
        match self {
            TriggerSpec::Webhook { token, secret, .. } => {
                let mut out = Vec::new();
                if let Some(t) = token {
                    out.push(("trigger.token", t));
                }
                if let Some(s) = secret {
                    out.push(("trigger.secret", s));
                }
                out
            }
            TriggerSpec::Gitlab {
                token, api_token, ..
            } => {
                let mut out = vec![("trigger.token", token)];
                if let Some(t) = api_token {
                    out.push(("trigger.api_token", t));
                }
                out
            }
            TriggerSpec::Github { token, .. }
            | TriggerSpec::Buildkite { token, .. }
            | TriggerSpec::Jenkins { token, .. } => vec![("trigger.token", token)],
        }
    }

    fn validate(&self) -> Result<(), ValidationError> {
        let mut this = self.clone();
        for (field, secret) in this.secrets_mut() {
            check_secret(field, Some(secret))?;
        }
        match self {
            TriggerSpec::Webhook { url, token, .. } => {
                let parsed = check_url("trigger.url", url)?;
                if token.is_some() && http_url::has_credentials(&parsed) {
                    return Err(ValidationError::new(
                        "trigger.url",
                        "trigger.url carries credentials and trigger.token is set, but a \
                         request has one Authorization header: keep one of them",
                    ));
                }
            }
            TriggerSpec::Github {
                repo,
                workflow,
                git_ref,
                api_url,
                ..
            } => {
                let parts: Vec<&str> = repo.split('/').collect();
                if parts.len() != 2 || !parts.iter().all(|p| is_slug(p)) {
                    return Err(ValidationError::new(
                        "trigger.repo",
                        format!("trigger.repo {repo:?} must be owner/name, such as acme/app"),
                    ));
                }
                if !is_slug(workflow) {
                    return Err(ValidationError::new(
                        "trigger.workflow",
                        format!(
                            "trigger.workflow {workflow:?} must be the workflow's file name \
                             (downstream.yml, not .github/workflows/downstream.yml) or its id"
                        ),
                    ));
                }
                check_ref("trigger.ref", git_ref)?;
                if let Some(api) = api_url {
                    check_base_url("trigger.api_url", api)?;
                }
            }
            TriggerSpec::Gitlab {
                url,
                project,
                git_ref,
                ..
            } => {
                check_base_url("trigger.url", url)?;
                check_path("trigger.project", project, "acme/app or 42")?;
                check_ref("trigger.ref", git_ref)?;
            }
            TriggerSpec::Buildkite {
                org,
                pipeline,
                branch,
                commit,
                api_url,
                ..
            } => {
                for (field, slug) in [("trigger.org", org), ("trigger.pipeline", pipeline)] {
                    if !is_slug(slug) {
                        return Err(ValidationError::new(
                            field,
                            format!("{field} {slug:?} must be a slug as Buildkite shows it in URLs, such as acme"),
                        ));
                    }
                }
                check_ref("trigger.branch", branch)?;
                check_ref("trigger.commit", commit)?;
                if let Some(api) = api_url {
                    check_base_url("trigger.api_url", api)?;
                }
            }
            TriggerSpec::Jenkins { url, job, user, .. } => {
                check_base_url("trigger.url", url)?;
                check_text("trigger.job", job, MAX_SHORT_TEXT, true, Layout::Line)?;
                if job
                    .split('/')
                    .any(|p| p.trim().is_empty() || p == "." || p == "..")
                {
                    return Err(ValidationError::new(
                        "trigger.job",
                        format!("trigger.job {job:?} must be the job's full name, folders separated by /, such as team/app"),
                    ));
                }
                check_text("trigger.user", user, MAX_SHORT_TEXT, true, Layout::Line)?;
                if user.contains(':') {
                    return Err(ValidationError::new(
                        "trigger.user",
                        "trigger.user cannot contain ':', which separates user and token in HTTP Basic authentication",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Longest environment name.
pub const MAX_ENVIRONMENT: usize = 32;

/// An environment's name (`dev`, `test`, `prod`, `eu-staging`): a lower-case letter,
/// then lower-case letters, digits, `-` and `_`, at most [`MAX_ENVIRONMENT`] in all.
pub fn check_environment(field: &str, name: &str) -> Result<(), ValidationError> {
    let well_formed = name.len() <= MAX_ENVIRONMENT
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_'));
    if well_formed {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!(
                "{field} {name:?} is not an environment name: use a lower-case letter, then                  lower-case letters, digits, - and _, at most {MAX_ENVIRONMENT} in all"
            ),
        ))
    }
}

/// The body of `PUT /v1/projects/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectSpec {
    pub name: String,
    #[serde(default)]
    pub contacts: Vec<Contact>,
    #[serde(default)]
    pub depends_on: Vec<Dependency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<TriggerSpec>,
    /// The token this project's own CI reports with. Generated by the daemon and
    /// returned once when a new project leaves it out; kept when an update leaves it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<Package>,
    /// How this project's own CI tells conjunction about its runs, by its own webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceSpec>,
    /// A build of a native trigger kind that hears nothing for this long while it is
    /// triggered or running is checked through its CI's API. 30 minutes when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile_after_secs: Option<u64>,
    /// How many times a failure that would break this project (it passed the last
    /// time) is rebuilt before it is called a break; a rerun that passes makes it
    /// `flaky`. 0, the default, believes the first failure.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub confirm_failures: u32,
    /// Whether anyone may fetch this project's badges without a token.
    #[serde(default, skip_serializing_if = "Badges::is_private")]
    pub badges: Badges,
    /// Who is told what, on which channel. When left out, the project's contacts
    /// are emailed (if the daemon has SMTP settings) about everything but `infra`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<NotifyRule>,
    /// Whether this project's people hear of its upstreams' candidates (changes
    /// tested before they merge) by its rules, as of releases. Off by default: a
    /// candidate's notices go to the upstream only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub notify_candidates: bool,
    /// CI identities whose id tokens (OIDC) report for this project, beside or
    /// instead of its report token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_ci: Vec<crate::identity::TrustedCi>,
    /// The forges this project's commits are told its dependents' results on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub report_to: Vec<crate::forge::ReportTarget>,
    /// Where `depends_on` comes from: as declared here (the default), or
    /// `from_manifest`, the manifests its builds report, `depends_on` only
    /// starting the graph until the first of them.
    #[serde(default, skip_serializing_if = "DependencyOrigin::is_declared")]
    pub dependencies: DependencyOrigin,
    /// With `from_manifest`: development dependencies count too (tests, docs).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dev_dependencies: bool,
}

/// Where a project's `depends_on` comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DependencyOrigin {
    /// As the projects file or the API declares it.
    #[default]
    Declared,
    /// From the package manifests its builds report with their results.
    FromManifest,
}

impl DependencyOrigin {
    pub fn is_declared(&self) -> bool {
        *self == DependencyOrigin::Declared
    }
}

/// The manifests a project's `depends_on` was last read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestSource {
    /// The build that reported them, and when: the last whose manifests said
    /// something new (a later build saying the same is not written again).
    pub build: crate::id::BuildId,
    pub at: Timestamp,
    /// Their paths, the project's own first.
    pub files: Vec<String>,
    /// Declared packages no registered project is, as many as fit
    /// [`MAX_UNREGISTERED_SHOWN`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unregistered: Vec<UnregisteredDependency>,
    /// How many unregistered ones there are in all.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unregistered_count: u32,
    /// What was chosen where a manifest says two things, and what has no range.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The last change manifests made to `depends_on`, as the feed said it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
}

/// Most unregistered dependencies a project's page lists.
pub const MAX_UNREGISTERED_SHOWN: usize = 64;

/// A declared dependency on a package no registered project is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnregisteredDependency {
    pub name: String,
    /// What it asks for, as the manifest writes it.
    pub spec: String,
}

/// The most reruns `confirm_failures` may ask for.
pub const MAX_CONFIRM_FAILURES: u32 = 5;

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Who may see a project's badges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Badges {
    /// Only holders of an operator token; anyone else gets the same 404 as for a
    /// project that does not exist.
    #[default]
    Private,
    /// Anyone, without a token: for README badges.
    Public,
}

impl Badges {
    pub fn is_private(&self) -> bool {
        *self == Badges::Private
    }
}

/// How long a native build may go without news before its CI is asked about it.
pub const RECONCILE_AFTER_DEFAULT_SECS: u64 = 30 * 60;
/// The longest `reconcile_after_secs`: a week.
pub const RECONCILE_AFTER_MAX_SECS: u64 = 7 * 24 * 3600;

impl ProjectSpec {
    /// Checks every field against the protocol's bounds and shapes.
    pub fn validate(&self, id: &ProjectId) -> Result<(), ValidationError> {
        check_text("name", &self.name, MAX_SHORT_TEXT, true, Layout::Line)?;
        if self.trusted_ci.len() > crate::identity::MAX_TRUSTED_CI {
            return Err(ValidationError::new(
                "trusted_ci",
                format!(
                    "a project may trust at most {} CI identities",
                    crate::identity::MAX_TRUSTED_CI
                ),
            ));
        }
        for (i, t) in self.trusted_ci.iter().enumerate() {
            t.validate(&format!("trusted_ci[{i}]"))?;
        }
        if self.contacts.len() > MAX_CONTACTS {
            return Err(ValidationError::new(
                "contacts",
                format!("a project may list at most {MAX_CONTACTS} contacts"),
            ));
        }
        for (i, c) in self.contacts.iter().enumerate() {
            check_text(
                &format!("contacts[{i}].name"),
                &c.name,
                MAX_SHORT_TEXT,
                true,
                Layout::Line,
            )?;
            if let Some(email) = &c.email {
                check_text(
                    &format!("contacts[{i}].email"),
                    email,
                    MAX_SHORT_TEXT,
                    true,
                    Layout::Line,
                )?;
                if !email.contains('@') {
                    return Err(ValidationError::new(
                        format!("contacts[{i}].email"),
                        format!("contacts[{i}].email {email:?} is not an email address"),
                    ));
                }
            }
            for (field, value) in [("chat", &c.chat), ("role", &c.role)] {
                if let Some(v) = value {
                    check_text(
                        &format!("contacts[{i}].{field}"),
                        v,
                        MAX_SHORT_TEXT,
                        true,
                        Layout::Line,
                    )?;
                }
            }
        }
        if self.depends_on.len() > MAX_DEPENDENCIES {
            return Err(ValidationError::new(
                "depends_on",
                format!("a project may depend on at most {MAX_DEPENDENCIES} projects"),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, d) in self.depends_on.iter().enumerate() {
            if &d.project == id {
                return Err(ValidationError::new(
                    format!("depends_on[{i}].project"),
                    format!("{id} cannot depend on itself"),
                ));
            }
            if !seen.insert(&d.project) {
                return Err(ValidationError::new(
                    format!("depends_on[{i}].project"),
                    format!("{} is listed twice in depends_on", d.project),
                ));
            }
            // The ranges themselves are read by the daemon, in the ecosystem of the
            // upstream as it is registered then.
            if let Some(range) = &d.range {
                check_text(
                    &format!("depends_on[{i}].range"),
                    range,
                    MAX_SHORT_TEXT,
                    true,
                    Layout::Line,
                )?;
            }
            if d.range.is_some() && !d.lines.is_empty() {
                return Err(ValidationError::new(
                    format!("depends_on[{i}].lines"),
                    format!("depends_on[{i}] has both a range and lines: give one range, or one range per line"),
                ));
            }
            if d.lines.len() > MAX_LINES {
                return Err(ValidationError::new(
                    format!("depends_on[{i}].lines"),
                    format!("depends_on[{i}] may list at most {MAX_LINES} lines"),
                ));
            }
            for (k, line) in d.lines.iter().enumerate() {
                check_ref(&format!("depends_on[{i}].lines[{k}].ref"), &line.git_ref)?;
                check_text(
                    &format!("depends_on[{i}].lines[{k}].range"),
                    &line.range,
                    MAX_SHORT_TEXT,
                    true,
                    Layout::Line,
                )?;
            }
        }
        if self.dependencies == DependencyOrigin::FromManifest {
            if let Some(i) = self.depends_on.iter().position(|d| !d.lines.is_empty()) {
                return Err(ValidationError::new(
                    format!("depends_on[{i}].lines"),
                    format!("depends_on[{i}] follows lines, which no manifest says: a project whose dependencies come from_manifest declares ranges only"),
                ));
            }
        } else if self.dev_dependencies {
            return Err(ValidationError::new(
                "dev_dependencies",
                "dev_dependencies says which of a manifest's dependencies count: set dependencies = \"from_manifest\" too, or leave it out",
            ));
        }
        if let Some(trigger) = &self.trigger {
            trigger.validate()?;
        }
        if let Some(token) = &self.report_token {
            check_secret("report_token", Some(token))?;
            if token.len() < MIN_CLIENT_TOKEN {
                return Err(ValidationError::new(
                    "report_token",
                    format!("report_token must be at least {MIN_CLIENT_TOKEN} characters; leave it out to have one generated"),
                ));
            }
        }
        if let Some(p) = &self.package {
            check_text("package.name", &p.name, MAX_SHORT_TEXT, true, Layout::Line)?;
        }
        if let Some(source) = &self.source {
            source.validate(self.trigger.as_ref())?;
        }
        if let Some(secs) = self.reconcile_after_secs {
            if !(1..=RECONCILE_AFTER_MAX_SECS).contains(&secs) {
                return Err(ValidationError::new(
                    "reconcile_after_secs",
                    format!("reconcile_after_secs must be from 1 to {RECONCILE_AFTER_MAX_SECS} (a week)"),
                ));
            }
        }
        validate_rules(&self.notify)?;
        crate::forge::validate_targets(&self.report_to)?;
        if self.confirm_failures > MAX_CONFIRM_FAILURES {
            return Err(ValidationError::new(
                "confirm_failures",
                format!(
                    "confirm_failures must be from 0 to {MAX_CONFIRM_FAILURES}: the reruns a failure gets before it is called a break"
                ),
            ));
        }
        Ok(())
    }
}

/// A project as the API and the feed show it: everything but its secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    pub id: ProjectId,
    pub name: String,
    pub contacts: Vec<Contact>,
    pub depends_on: Vec<Dependency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<TriggerView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<Package>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile_after_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub confirm_failures: u32,
    #[serde(default, skip_serializing_if = "Badges::is_private")]
    pub badges: Badges,
    /// The notification rules, their channels named without secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<NotifyView>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub notify_candidates: bool,
    /// The CI identities whose id tokens report for it (ids, not secrets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_ci: Vec<crate::identity::TrustedCi>,
    /// The forges its results are reported to (places, not secrets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub report_to: Vec<crate::forge::ReportToView>,
    #[serde(default, skip_serializing_if = "DependencyOrigin::is_declared")]
    pub dependencies: DependencyOrigin,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dev_dependencies: bool,
    /// With `from_manifest`: the manifests `depends_on` was last read from; absent
    /// until a build reports some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<ManifestSource>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Who last changed it, and when; absent for a project stored before the audit
    /// trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<crate::audit::Changed>,
}

impl Project {
    /// Where its `depends_on` comes from, for people: "declared (changed by ana
    /// (maintainer acme/*) at …)", "from package.json of build 01K… at …".
    pub fn dependencies_from(&self) -> String {
        match (&self.dependencies, &self.manifest) {
            (DependencyOrigin::FromManifest, Some(m)) => format!(
                "from {} of build {} at {}{}",
                m.files.join(" + "),
                m.build,
                m.at,
                if self.dev_dependencies {
                    ", dev dependencies included"
                } else {
                    ""
                }
            ),
            (DependencyOrigin::FromManifest, None) => {
                "from_manifest, but no build has sent one yet: as declared until then".into()
            }
            (DependencyOrigin::Declared, _) => match &self.changed {
                Some(c) => format!("declared (changed by {} at {})", c.by, c.at),
                None => "declared".into(),
            },
        }
    }

    /// Its dependencies on what no registered project is: the packages its
    /// manifests name ("left-pad ^1.3"), or the upstreams it declares that
    /// `registered` says are not.
    pub fn unregistered(&self, registered: impl Fn(&ProjectId) -> bool) -> Vec<String> {
        let mut out: Vec<String> = self
            .depends_on
            .iter()
            .filter(|d| !registered(&d.project))
            .map(|d| match &d.range {
                Some(r) => format!("{} {r}", d.project),
                None => d.project.to_string(),
            })
            .collect();
        if let (DependencyOrigin::FromManifest, Some(m)) = (&self.dependencies, &self.manifest) {
            out.extend(
                m.unregistered
                    .iter()
                    .map(|u| format!("{} {}", u.name, u.spec)),
            );
            let more = (m.unregistered_count as usize).saturating_sub(m.unregistered.len());
            if more > 0 {
                out.push(format!("and {more} more"));
            }
        }
        out
    }
}

/// One entry of `GET /v1/projects/{id}/dependents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependent {
    pub project: ProjectId,
    /// 1 for a direct dependent, 2 for a dependent of a dependent, and so on
    /// (the shortest path).
    pub depth: u32,
    /// The upstreams through which it depends on the queried project at that depth.
    pub via: Vec<ProjectId>,
}

/// One project of a list, as `PUT /v1/projects` and `conjunction apply` take them: its
/// id beside the fields of `PUT /v1/projects/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectEntry {
    pub id: ProjectId,
    #[serde(flatten)]
    pub spec: ProjectSpec,
}

// Not derived: `#[serde(flatten)]` would let unknown fields through unnoticed, because
// the flattened spec never sees them as unknown. The id is taken out and the rest must
// be a spec, unknown fields refused.
impl<'de> Deserialize<'de> for ProjectEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let entries = crate::json::UniqueEntries::<serde_json::Value>::deserialize(d)?.0;
        let mut fields: serde_json::Map<String, serde_json::Value> = entries.into_iter().collect();
        let id = fields
            .remove("id")
            .ok_or_else(|| D::Error::missing_field("id"))?;
        let id = ProjectId::deserialize(id).map_err(D::Error::custom)?;
        let spec = ProjectSpec::deserialize(serde_json::Value::Object(fields))
            .map_err(D::Error::custom)?;
        Ok(Self { id, spec })
    }
}

/// The answer to `PUT /v1/projects`: one result per entry, in the order given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectsApplied {
    pub projects: Vec<ProjectUpserted>,
}

/// The answer to `PUT /v1/projects/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectUpserted {
    pub project: Project,
    /// `created`, `updated` or `unchanged`.
    pub outcome: String,
    /// The generated report token, present only in the answer that created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_token: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ProjectSpec {
        serde_json::from_str(
            r#"{"name":"Acme App","contacts":[{"name":"Ana Ortiz","email":"ana@acme.example","chat":"@ana","role":"maintainer"}],
                "depends_on":[{"project":"acme/lib","range":"^1.2"}],
                "trigger":{"kind":"webhook","url":"https://ci.example/hook","token":"t0ken","secret":"s3cret"}}"#,
        )
        .unwrap()
    }

    #[test]
    fn dependencies_from_manifests_take_ranges_only_and_dev_dependencies_need_them() {
        let id = ProjectId::parse("acme/app").unwrap();
        let mut from: ProjectSpec = serde_json::from_str(
            r#"{"name":"App","dependencies":"from_manifest","dev_dependencies":true,
                "depends_on":[{"project":"acme/lib","range":"^1.2"}]}"#,
        )
        .unwrap();
        assert_eq!(from.dependencies, DependencyOrigin::FromManifest);
        from.validate(&id).unwrap();
        from.depends_on[0].range = None;
        from.depends_on[0].lines = vec![Line {
            git_ref: "release-1.x".into(),
            range: "^1".into(),
        }];
        assert_eq!(from.validate(&id).unwrap_err().field, "depends_on[0].lines");
        let mut declared = spec();
        declared.dev_dependencies = true;
        assert_eq!(
            declared.validate(&id).unwrap_err().field,
            "dev_dependencies"
        );
        let json = serde_json::to_value(spec()).unwrap();
        assert!(
            json.get("dependencies").is_none(),
            "declared is the default, left out"
        );
        assert!(
            serde_json::from_str::<ProjectSpec>(r#"{"name":"A","dependencies":"guessed"}"#)
                .is_err()
        );
    }

    #[test]
    fn a_full_spec_is_valid() {
        spec()
            .validate(&ProjectId::parse("acme/app").unwrap())
            .unwrap();
    }

    #[test]
    fn unknown_fields_and_trigger_kinds_are_refused() {
        assert!(serde_json::from_str::<ProjectSpec>(r#"{"name":"x","colour":"red"}"#).is_err());
        assert!(serde_json::from_str::<ProjectSpec>(
            r#"{"name":"x","trigger":{"kind":"carrier-pigeon","url":"https://x"}}"#
        )
        .is_err());
    }

    #[test]
    fn self_dependency_and_bad_ranges_and_lines_are_refused() {
        let id = ProjectId::parse("acme/lib").unwrap();
        let err = spec().validate(&id).unwrap_err();
        assert!(err.message.contains("cannot depend on itself"), "{err}");
        let app = ProjectId::parse("acme/app").unwrap();
        let line = |r: &str| Line {
            git_ref: r.into(),
            range: "^1".into(),
        };
        let mut s = spec();
        s.depends_on[0].range = Some("^1\n".into());
        assert_eq!(s.validate(&app).unwrap_err().field, "depends_on[0].range");
        let mut s = spec();
        s.depends_on[0].lines = vec![line("release-1.x")];
        let err = s.validate(&app).unwrap_err();
        assert!(err.message.contains("both a range and lines"), "{err}");
        s.depends_on[0].range = None;
        s.validate(&app).unwrap();
        s.depends_on[0].lines.push(line("release 0"));
        assert_eq!(
            s.validate(&app).unwrap_err().field,
            "depends_on[0].lines[1].ref"
        );
    }

    #[test]
    fn ecosystems_are_read_by_their_lowercase_names() {
        for e in Ecosystem::ALL {
            let json = format!(r#"{{"ecosystem":"{}","name":"x"}}"#, e.as_str());
            assert_eq!(serde_json::from_str::<Package>(&json).unwrap().ecosystem, e);
        }
        assert!(serde_json::from_str::<Package>(r#"{"ecosystem":"rubygems","name":"x"}"#).is_err());
    }

    #[test]
    fn an_entry_takes_the_id_beside_the_spec_and_refuses_unknown_fields() {
        let e: ProjectEntry = serde_json::from_str(
            r#"{"id":"acme/app","name":"App","depends_on":[{"project":"acme/lib"}]}"#,
        )
        .unwrap();
        assert_eq!(e.id.as_str(), "acme/app");
        assert_eq!(e.spec.depends_on.len(), 1);
        assert!(serde_json::from_str::<ProjectEntry>(
            r#"{"id":"acme/app","name":"App","colour":"red"}"#
        )
        .is_err());
    }

    #[test]
    fn trigger_view_hides_secrets_and_credentials_in_the_url() {
        let t = TriggerSpec::Webhook {
            url: "https://bot:hunter2@ci.example/hook?token=abc".into(),
            token: Some("t".into()),
            secret: None,
        };
        let v = t.view();
        assert_eq!(v.url, "https://ci.example/hook");
        assert!(v.has_token && !v.has_secret);
        assert!(!serde_json::to_string(&v).unwrap().contains("hunter2"));
    }

    fn trigger(json: &str) -> TriggerSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn native_triggers_call_their_cis_documented_endpoints() {
        let gh = trigger(
            r#"{"kind":"github","repo":"acme/app","workflow":"downstream.yml","ref":"main","token":"ghp_x"}"#,
        );
        gh.validate().unwrap();
        assert_eq!(
            gh.endpoint().unwrap().as_str(),
            "https://api.github.com/repos/acme/app/actions/workflows/downstream.yml/dispatches"
        );
        let ghes = trigger(
            r#"{"kind":"github","repo":"acme/app","workflow":"7","ref":"main","token":"t","api_url":"https://ghe.acme.example/api/v3/"}"#,
        );
        assert_eq!(
            ghes.endpoint().unwrap().as_str(),
            "https://ghe.acme.example/api/v3/repos/acme/app/actions/workflows/7/dispatches"
        );
        let gl = trigger(
            r#"{"kind":"gitlab","url":"https://gitlab.com","project":"acme/sub/app","ref":"main","token":"glptt-x"}"#,
        );
        gl.validate().unwrap();
        assert_eq!(
            gl.endpoint().unwrap().as_str(),
            "https://gitlab.com/api/v4/projects/acme%2Fsub%2Fapp/trigger/pipeline"
        );
        let bk = trigger(
            r#"{"kind":"buildkite","org":"acme","pipeline":"app","branch":"main","token":"bkua_x"}"#,
        );
        bk.validate().unwrap();
        assert_eq!(
            bk.endpoint().unwrap().as_str(),
            "https://api.buildkite.com/v2/organizations/acme/pipelines/app/builds"
        );
        let jk = trigger(
            r#"{"kind":"jenkins","url":"https://jenkins.acme.org/ci","job":"team/my app","user":"conjunction","token":"11ab"}"#,
        );
        jk.validate().unwrap();
        assert_eq!(
            jk.endpoint().unwrap().as_str(),
            "https://jenkins.acme.org/ci/job/team/job/my%20app/buildWithParameters"
        );
        let view = serde_json::to_string(&jk.view()).unwrap();
        assert!(!view.contains("11ab"), "{view}");
    }

    #[test]
    fn native_triggers_refuse_what_their_cis_would() {
        let bad = [
            (
                r#"{"kind":"github","repo":"acme","workflow":"d.yml","ref":"main","token":"t"}"#,
                "trigger.repo",
            ),
            (
                r#"{"kind":"github","repo":"acme/app","workflow":".github/workflows/d.yml","ref":"main","token":"t"}"#,
                "trigger.workflow",
            ),
            (
                r#"{"kind":"github","repo":"acme/app","workflow":"d.yml","ref":"two words","token":"t"}"#,
                "trigger.ref",
            ),
            (
                r#"{"kind":"gitlab","url":"https://u:p@gitlab.com","project":"a/b","ref":"main","token":"t"}"#,
                "trigger.url",
            ),
            (
                r#"{"kind":"buildkite","org":"Acme Corp","pipeline":"app","branch":"main","token":"t"}"#,
                "trigger.org",
            ),
            (
                r#"{"kind":"jenkins","url":"https://j","job":"team//app","user":"u","token":"t"}"#,
                "trigger.job",
            ),
            (
                r#"{"kind":"jenkins","url":"https://j","job":"team/../app","user":"u","token":"t"}"#,
                "trigger.job",
            ),
            (
                r#"{"kind":"jenkins","url":"https://j","job":"app","user":"a:b","token":"t"}"#,
                "trigger.user",
            ),
        ];
        for (json, field) in bad {
            let err = trigger(json).validate().unwrap_err();
            assert_eq!(err.field, field, "{json}: {err}");
        }
        // A native trigger without its token is not a trigger.
        assert!(serde_json::from_str::<TriggerSpec>(
            r#"{"kind":"gitlab","url":"https://gitlab.com","project":"a/b","ref":"main"}"#
        )
        .is_err());
    }
}
