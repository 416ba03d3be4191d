//! The upstream's own forge: where conjunction tells an upstream how its dependents
//! fared (`report_to` on the upstream project), the public face of those settings,
//! what is told (the state and the summary line, a pure rule over an event's
//! counts), and how the telling went ([`ForgeReport`], on the event).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ci::{check_base_url, check_path, check_secret, is_slug, GITHUB_API};
use crate::error::ValidationError;
use crate::state::StateKind;
use crate::time::Timestamp;
use crate::verdict::Verdict;

/// The most forges one project reports to.
pub const MAX_REPORT_TO: usize = 4;
/// The most dependents a GitHub upstream may have one commit status each for; a
/// larger event gets the one aggregated status, as 200 entries on a pull request
/// would bury everything else there.
pub const MAX_PER_DEPENDENT: usize = 20;
/// The longest GitHub App private key (a 4096-bit RSA key in PEM is about 3.3 KB).
pub const MAX_PRIVATE_KEY: usize = 8 * 1024;
/// The name the results go under on every forge: the status context, the check
/// run's name, the annotation's context.
pub const CONTEXT: &str = "conjunction/downstream";

/// One forge an upstream's results are reported to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportTarget {
    #[serde(flatten)]
    pub forge: Forge,
    /// A dependent that needs a version bump turns the upstream's commit red too
    /// (by default only a `broke` verdict does).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub needs_bump_fails: bool,
    /// For candidates: one comment on the pull request (GitHub) or note on the merge
    /// request (GitLab), edited in place as the event goes and by every newer
    /// candidate of the same change. The token needs to write pull requests'
    /// comments (GitHub: "Pull requests: write" or an App's; GitLab: `api`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub comment: bool,
}

/// The forge, where on it, and its credentials (write-only, like every secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Forge {
    /// GitHub: a check run when `app` is set, else one commit status
    /// (`conjunction/downstream`), or one per dependent with `per_dependent`.
    Github {
        /// `owner/name`.
        repo: String,
        /// A token with "Commit statuses: write" (fine-grained) or `repo:status`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        app: Option<GithubApp>,
        /// One commit status per dependent (`conjunction/<dependent>`), for events of
        /// at most [`MAX_PER_DEPENDENT`] dependents; the aggregated one beyond that.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        per_dependent: bool,
        /// The REST API's root; GitHub Enterprise Server has `https://HOST/api/v3`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_url: Option<String>,
    },
    /// GitLab: a commit status on `project` (a path or numeric id).
    Gitlab {
        url: String,
        project: String,
        /// A token with the `api` scope and at least the Developer role.
        token: String,
    },
    /// Forgejo or Gitea: a commit status on `repo`.
    Forgejo {
        url: String,
        repo: String,
        /// A token with `write:repository`.
        token: String,
    },
    /// Buildkite: an annotation on the upstream's own build of `org`'s `pipeline`.
    Buildkite {
        org: String,
        pipeline: String,
        /// An API access token with `write_builds`.
        token: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_url: Option<String>,
    },
    /// Jenkins: the description of the upstream's own build, on the instance at `url`
    /// (the root report's build URL must be under it), as `user` with an API token
    /// that has Run/Update.
    Jenkins {
        url: String,
        user: String,
        token: String,
    },
}

/// A GitHub App the upstream installed on its repository: check runs need one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubApp {
    /// The App's client ID (`Iv23…`) or numeric app id: the JWT's issuer.
    pub id: String,
    /// The App's private key, in PEM as GitHub hands it out.
    pub private_key: String,
}

/// Buildkite's REST API root when a target does not name one.
pub use crate::ci::BUILDKITE_API;

/// The public face of a report target: where it goes and how it signs in, never the
/// secrets themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportToView {
    pub kind: String,
    /// Such as `acme/lib on https://api.github.com`.
    pub to: String,
    /// Such as `token`, `GitHub App Iv23abc`.
    pub auth: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub per_dependent: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub needs_bump_fails: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub comment: bool,
}

impl Forge {
    pub fn kind(&self) -> &'static str {
        match self {
            Forge::Github { .. } => "github",
            Forge::Gitlab { .. } => "gitlab",
            Forge::Forgejo { .. } => "forgejo",
            Forge::Buildkite { .. } => "buildkite",
            Forge::Jenkins { .. } => "jenkins",
        }
    }

    /// The forge's name as a person says it.
    pub fn name(&self) -> &'static str {
        match self {
            Forge::Github { .. } => "GitHub",
            Forge::Gitlab { .. } => "GitLab",
            Forge::Forgejo { .. } => "Forgejo",
            Forge::Buildkite { .. } => "Buildkite",
            Forge::Jenkins { .. } => "Jenkins",
        }
    }

    /// Where on the forge, such as `acme/lib`, `acme/lib on https://gitlab.example`.
    pub fn place(&self) -> String {
        match self {
            Forge::Github { repo, api_url, .. } => match api_url {
                Some(api) => format!("{repo} on {api}"),
                None => repo.clone(),
            },
            Forge::Gitlab { url, project, .. } => format!("{project} on {url}"),
            Forge::Forgejo { url, repo, .. } => format!("{repo} on {url}"),
            Forge::Buildkite { org, pipeline, .. } => format!("{org}/{pipeline}"),
            Forge::Jenkins { url, .. } => url.clone(),
        }
    }

    /// What the event says it was reported to: `GitHub acme/lib`.
    pub fn label(&self) -> String {
        format!("{} {}", self.name(), self.place())
    }

    /// Whether the root event must name a commit for this forge to be told (the
    /// forges that show results on a commit), or else its build's URL.
    pub fn needs_commit(&self) -> bool {
        matches!(
            self,
            Forge::Github { .. } | Forge::Gitlab { .. } | Forge::Forgejo { .. }
        )
    }

    /// Every secret, named by its field, for resolving `env:` and `file:` references.
    pub fn secrets_mut(&mut self) -> Vec<(&'static str, &mut String)> {
        match self {
            Forge::Github { token, app, .. } => {
                let mut out = Vec::new();
                if let Some(t) = token {
                    out.push(("report_to.token", t));
                }
                if let Some(app) = app {
                    out.push(("report_to.app.private_key", &mut app.private_key));
                }
                out
            }
            Forge::Gitlab { token, .. }
            | Forge::Forgejo { token, .. }
            | Forge::Buildkite { token, .. }
            | Forge::Jenkins { token, .. } => vec![("report_to.token", token)],
        }
    }
}

impl ReportTarget {
    pub fn view(&self) -> ReportToView {
        let auth = match &self.forge {
            Forge::Github { app: Some(app), .. } => format!("GitHub App {}", app.id),
            Forge::Jenkins { user, .. } => format!("API token of {user}"),
            _ => "token".into(),
        };
        ReportToView {
            kind: self.forge.kind().into(),
            to: self.forge.place(),
            auth,
            per_dependent: matches!(
                self.forge,
                Forge::Github {
                    per_dependent: true,
                    ..
                }
            ),
            needs_bump_fails: self.needs_bump_fails,
            comment: self.comment,
        }
    }

    /// Checks the target's shape; `field` is where it sits (`report_to[0]`).
    pub fn validate(&self, field: &str) -> Result<(), ValidationError> {
        let at = |name: &str| format!("{field}.{name}");
        let slug = |name: &str, value: &str, example: &str| {
            if is_slug(value) {
                Ok(())
            } else {
                Err(ValidationError::new(
                    at(name),
                    format!(
                        "{} {value:?} must be a name as the forge shows it in URLs, such as {example}",
                        at(name)
                    ),
                ))
            }
        };
        let repo_of = |name: &str, repo: &str| {
            let parts: Vec<&str> = repo.split('/').collect();
            if parts.len() == 2 && parts.iter().all(|p| is_slug(p)) {
                Ok(())
            } else {
                Err(ValidationError::new(
                    at(name),
                    format!("{} {repo:?} must be owner/name, such as acme/lib", at(name)),
                ))
            }
        };
        if self.comment && !matches!(self.forge, Forge::Github { .. } | Forge::Gitlab { .. }) {
            return Err(ValidationError::new(
                at("comment"),
                format!(
                    "{} is for GitHub's pull requests and GitLab's merge requests; {} has no such comment",
                    at("comment"),
                    self.forge.name()
                ),
            ));
        }
        match &self.forge {
            Forge::Github {
                repo,
                token,
                app,
                api_url,
                ..
            } => {
                repo_of("repo", repo)?;
                check_secret(&at("token"), token.as_deref())?;
                match (token, app) {
                    (None, None) => {
                        return Err(ValidationError::new(
                            at("token"),
                            format!(
                                "{field} needs a token (for a commit status) or an app (for a check run)"
                            ),
                        ))
                    }
                    (Some(_), Some(_)) => {
                        return Err(ValidationError::new(
                            at("app"),
                            format!(
                                "{field} has both a token and an app: a GitHub App's check run, or a token's commit status, not both"
                            ),
                        ))
                    }
                    _ => {}
                }
                if let Some(app) = app {
                    let id_ok = !app.id.is_empty()
                        && app.id.len() <= 64
                        && app.id.chars().all(|c| c.is_ascii_alphanumeric());
                    if !id_ok {
                        return Err(ValidationError::new(
                            at("app.id"),
                            format!(
                                "{} must be the App's client ID (Iv23…) or its numeric id",
                                at("app.id")
                            ),
                        ));
                    }
                    let key = app.private_key.trim();
                    let pem = key.len() <= MAX_PRIVATE_KEY
                        && key.starts_with("-----BEGIN ")
                        && key.contains("PRIVATE KEY-----")
                        && key.is_ascii();
                    if !pem {
                        return Err(ValidationError::new(
                            at("app.private_key"),
                            format!(
                                "{} must be the App's private key in PEM (-----BEGIN RSA PRIVATE KEY-----), at most {MAX_PRIVATE_KEY} bytes; file:app.pem reads it from a file",
                                at("app.private_key")
                            ),
                        ));
                    }
                }
                if let Some(api) = api_url {
                    check_base_url(&at("api_url"), api)?;
                }
            }
            Forge::Gitlab {
                url,
                project,
                token,
            } => {
                check_base_url(&at("url"), url)?;
                check_path(&at("project"), project, "acme/lib or 42")?;
                check_secret(&at("token"), Some(token))?;
            }
            Forge::Forgejo { url, repo, token } => {
                check_base_url(&at("url"), url)?;
                repo_of("repo", repo)?;
                check_secret(&at("token"), Some(token))?;
            }
            Forge::Buildkite {
                org,
                pipeline,
                token,
                api_url,
            } => {
                slug("org", org, "acme")?;
                slug("pipeline", pipeline, "lib")?;
                check_secret(&at("token"), Some(token))?;
                if let Some(api) = api_url {
                    check_base_url(&at("api_url"), api)?;
                }
            }
            Forge::Jenkins { url, user, token } => {
                check_base_url(&at("url"), url)?;
                if user.is_empty()
                    || user.len() > 128
                    || user.contains(':')
                    || user.chars().any(char::is_control)
                {
                    return Err(ValidationError::new(
                        at("user"),
                        format!("{} must be a Jenkins user name, without ':'", at("user")),
                    ));
                }
                check_secret(&at("token"), Some(token))?;
            }
        }
        Ok(())
    }
}

/// Checks a project's `report_to` list.
pub fn validate_targets(targets: &[ReportTarget]) -> Result<(), ValidationError> {
    if targets.len() > MAX_REPORT_TO {
        return Err(ValidationError::new(
            "report_to",
            format!("a project may report to at most {MAX_REPORT_TO} forges"),
        ));
    }
    for (i, t) in targets.iter().enumerate() {
        t.validate(&format!("report_to[{i}]"))?;
    }
    Ok(())
}

/// The GitHub API root a target uses.
pub fn github_api(api_url: Option<&str>) -> &str {
    api_url.unwrap_or(GITHUB_API)
}

/// What the upstream's commit shows for an event, on every forge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outlook {
    /// Dependents are still building (or waiting to).
    Pending,
    /// Finished, and nothing broke because of this change.
    Success,
    /// Finished, and something broke because of it (or needs a bump, when the
    /// target says that counts).
    Failure,
}

/// What is told about an event: its outlook and the one-line summary
/// (`2 broke · 1 fixed · 39 same · 3 need a bump`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Told {
    pub outlook: Outlook,
    pub line: String,
    /// Every build of the event is final.
    pub finished: bool,
}

/// Tells an event by its counts: failure only when the event caused something (a
/// `broke` verdict, or a needed bump when `needs_bump_fails`); a dependent that was
/// failing already, failed on infrastructure or turned out flaky does not turn the
/// upstream red, and the line says so. `root` is the upstream's own build's state.
pub fn tell(
    root: StateKind,
    counts: &BTreeMap<StateKind, u32>,
    verdicts: &BTreeMap<Verdict, u32>,
    needs_bump_fails: bool,
) -> Told {
    let finished = counts.keys().all(|k| k.is_final());
    let n = |v: Verdict| verdicts.get(&v).copied().unwrap_or(0);
    let state = |s: StateKind| counts.get(&s).copied().unwrap_or(0);
    let mut parts = Vec::new();
    let mut say = |count: u32, one: &str, many: &str| {
        if count > 0 {
            parts.push(format!("{count} {}", if count == 1 { one } else { many }));
        }
    };
    if root.is_own_failure() || root == StateKind::Cancelled {
        return Told {
            outlook: if finished {
                Outlook::Success
            } else {
                Outlook::Pending
            },
            line: format!(
                "the upstream's own build {}: no dependents were built",
                root.as_str().replace('_', " ")
            ),
            finished,
        };
    }
    say(n(Verdict::Broke), "broke", "broke");
    say(n(Verdict::Fixed), "fixed", "fixed");
    say(n(Verdict::StillFailing), "still failing", "still failing");
    say(n(Verdict::Flaky), "flaky", "flaky");
    say(n(Verdict::Infra), "infra failure", "infra failures");
    say(n(Verdict::New), "new", "new");
    say(n(Verdict::Same), "same", "same");
    let bumps = state(StateKind::NeedsBump);
    say(bumps, "needs a bump", "need a bump");
    say(state(StateKind::Blocked), "blocked", "blocked");
    let building: u32 = counts
        .iter()
        .filter(|(k, _)| !k.is_final())
        .map(|(_, v)| v)
        .sum();
    if !finished {
        say(building, "to go", "to go");
    }
    let broke = n(Verdict::Broke) > 0;
    let bump_fails = needs_bump_fails && bumps > 0;
    let outlook = if !finished {
        Outlook::Pending
    } else if broke || bump_fails {
        Outlook::Failure
    } else {
        Outlook::Success
    };
    let mut line = if parts.is_empty() {
        if finished {
            "no dependents".to_owned()
        } else {
            "starting".to_owned()
        }
    } else {
        parts.join(" · ")
    };
    let unblamed = n(Verdict::StillFailing) + n(Verdict::Flaky) + n(Verdict::Infra);
    if finished && unblamed > 0 && outlook == Outlook::Success {
        line.push_str(" (none caused by this change)");
    }
    Told {
        outlook,
        line,
        finished,
    }
}

/// How telling a forge about an event went, as the event shows it ("reported to
/// GitHub acme/lib 10 s ago").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgeReport {
    /// Such as `GitHub acme/lib`.
    pub to: String,
    pub state: ForgeDelivery,
    /// When it was last sent, or given up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
    /// How many times the forge was told (the create and each update).
    #[serde(default)]
    pub updates: u32,
    /// The outlook last told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlook: Option<Outlook>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where telling a forge stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForgeDelivery {
    /// Waiting for its first send.
    Queued,
    /// Told, and told again as the event moves.
    Sent,
    /// The last try failed and will be tried again.
    Retrying,
    /// The forge refused it, or did not answer in the tries allowed.
    GaveUp,
}

impl ForgeReport {
    /// One line for a person: `reported to GitHub acme/lib (2 updates)`.
    pub fn describe(&self) -> String {
        match self.state {
            ForgeDelivery::Queued => format!("reporting to {}", self.to),
            ForgeDelivery::Sent => format!(
                "reported to {} ({} update{})",
                self.to,
                self.updates,
                if self.updates == 1 { "" } else { "s" }
            ),
            ForgeDelivery::Retrying => format!(
                "reporting to {}: {}",
                self.to,
                self.error.as_deref().unwrap_or("retrying")
            ),
            ForgeDelivery::GaveUp => format!(
                "not reported to {}: {}",
                self.to,
                self.error.as_deref().unwrap_or("gave up")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(StateKind, u32)]) -> BTreeMap<StateKind, u32> {
        pairs.iter().copied().collect()
    }

    fn verdicts(pairs: &[(Verdict, u32)]) -> BTreeMap<Verdict, u32> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn only_a_break_caused_by_the_change_turns_the_upstream_red() {
        let c = counts(&[
            (StateKind::Passed, 41),
            (StateKind::Failed, 3),
            (StateKind::NeedsBump, 3),
        ]);
        let v = verdicts(&[
            (Verdict::Broke, 2),
            (Verdict::Fixed, 1),
            (Verdict::Same, 39),
            (Verdict::StillFailing, 1),
        ]);
        let told = tell(StateKind::Passed, &c, &v, false);
        assert_eq!(told.outlook, Outlook::Failure);
        assert_eq!(
            told.line,
            "2 broke · 1 fixed · 1 still failing · 39 same · 3 need a bump"
        );
        // Without the break: a pre-existing failure and a flaky one say so, green.
        let v = verdicts(&[
            (Verdict::Same, 40),
            (Verdict::StillFailing, 1),
            (Verdict::Flaky, 1),
        ]);
        let told = tell(StateKind::Passed, &c, &v, false);
        assert_eq!(told.outlook, Outlook::Success);
        assert!(
            told.line.ends_with("(none caused by this change)"),
            "{}",
            told.line
        );
        // Needs-bump counts only when the target says so.
        assert_eq!(
            tell(StateKind::Passed, &c, &v, true).outlook,
            Outlook::Failure
        );
    }

    #[test]
    fn a_running_event_is_pending_and_counts_what_is_left() {
        let c = counts(&[
            (StateKind::Passed, 2),
            (StateKind::Running, 3),
            (StateKind::Queued, 1),
        ]);
        let v = verdicts(&[(Verdict::Broke, 1), (Verdict::Same, 1)]);
        let told = tell(StateKind::Passed, &c, &v, false);
        assert_eq!(told.outlook, Outlook::Pending);
        assert!(!told.finished);
        assert_eq!(told.line, "1 broke · 1 same · 4 to go");
    }

    #[test]
    fn a_failed_upstream_build_builds_no_dependents_and_blames_none() {
        let c = counts(&[(StateKind::Failed, 1)]);
        let told = tell(StateKind::Failed, &c, &BTreeMap::new(), false);
        assert_eq!((told.outlook, told.finished), (Outlook::Success, true));
        assert_eq!(
            told.line,
            "the upstream's own build failed: no dependents were built"
        );
    }

    #[test]
    fn targets_read_from_toml_shapes_and_refuse_what_cannot_work() {
        let t: ReportTarget = serde_json::from_value(serde_json::json!({
            "kind": "github", "repo": "acme/lib", "token": "ghp_x", "needs_bump_fails": true
        }))
        .unwrap();
        assert!(t.needs_bump_fails);
        assert_eq!(t.forge.label(), "GitHub acme/lib");
        t.validate("report_to[0]").unwrap();
        let unknown = serde_json::from_value::<ReportTarget>(serde_json::json!({
            "kind": "gitlab", "url": "https://gitlab.example", "project": "a/b", "token": "t", "colour": "red"
        }));
        assert!(unknown.is_err(), "an unknown field is refused");
        let neither = ReportTarget {
            forge: Forge::Github {
                repo: "acme/lib".into(),
                token: None,
                app: None,
                per_dependent: false,
                api_url: None,
            },
            needs_bump_fails: false,
            comment: false,
        };
        let e = neither.validate("report_to[0]").unwrap_err();
        assert_eq!(e.field, "report_to[0].token");
        let bad_key = ReportTarget {
            forge: Forge::Github {
                repo: "acme/lib".into(),
                token: None,
                app: Some(GithubApp {
                    id: "123".into(),
                    private_key: "not a key".into(),
                }),
                per_dependent: false,
                api_url: None,
            },
            needs_bump_fails: false,
            comment: false,
        };
        assert_eq!(
            bad_key.validate("report_to[0]").unwrap_err().field,
            "report_to[0].app.private_key"
        );
        let view = bad_key.view();
        assert_eq!(view.auth, "GitHub App 123");
        assert!(!serde_json::to_string(&view).unwrap().contains("not a key"));
    }
}
