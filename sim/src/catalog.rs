//! The demo's projects: a small ecosystem of about thirty projects with chains, a
//! diamond, a dependency cycle, several contacts each, and how each one's CI behaves.

use std::time::Duration;

use conjunction_protocol::notify::{Channel, NoticeKind, NotifyRule};
use conjunction_protocol::trigger::TriggerPayload;
use conjunction_protocol::{
    CiKind, Contact, Dependency, ProjectId, ProjectSpec, ReportState, TriggerSpec,
};
use rand::Rng;

use crate::webhook::{Behaviour, Build};

/// How a project's simulated CI answers triggers and how its builds end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conduct {
    /// Passes, except for a small chance of failing or of the runner erroring.
    Steady,
    /// Fails two in five of its first attempts; a rebuild passes.
    Flaky,
    /// Fails whenever the runtime it is built against is 1.5 or later.
    BreaksOnRuntime15,
    /// The CI refuses the trigger: its pipeline triggers are switched off.
    RefusesTriggers,
}

pub struct DemoProject {
    pub id: &'static str,
    pub name: &'static str,
    /// Upstream ids, each with the range it takes after an `@` when it declares one.
    pub depends_on: &'static [&'static str],
    pub contacts: &'static [(&'static str, &'static str, &'static str)],
    pub conduct: Conduct,
}

use Conduct::*;

/// Every demo project. The ones published as new upstream versions are in
/// [`UPSTREAMS`].
pub const PROJECTS: &[DemoProject] = &[
    p(
        "core/runtime",
        "Runtime",
        &[],
        &[
            ("Ana Lima", "maintainer", "@ana"),
            ("Jon Park", "release manager", "@jpark"),
        ],
        Steady,
    ),
    p(
        "core/io",
        "Async I/O",
        &["core/runtime@>=1.4, <3"],
        &[("Mei Chen", "maintainer", "@mei")],
        Steady,
    ),
    p(
        "core/codec",
        "Codecs",
        &["core/runtime@>=1.4"],
        &[
            ("Omar Haddad", "maintainer", "@omar"),
            ("Ana Lima", "reviewer", "@ana"),
        ],
        Steady,
    ),
    p(
        "core/metrics",
        "Metrics",
        &["core/runtime@^1"],
        &[("Lena Vogel", "maintainer", "@lena")],
        Steady,
    ),
    p(
        "net/http",
        "HTTP",
        &["core/io", "core/codec"],
        &[
            ("Sam Okafor", "maintainer", "@sam"),
            ("Mei Chen", "reviewer", "@mei"),
        ],
        Steady,
    ),
    p(
        "net/tls",
        "TLS",
        &["core/io"],
        &[("Ines Duarte", "security lead", "@ines")],
        Steady,
    ),
    p(
        "net/grpc",
        "gRPC",
        &["net/http", "net/tls"],
        &[("Raj Patel", "maintainer", "@raj")],
        Steady,
    ),
    p(
        "net/websocket",
        "WebSocket",
        &["net/http"],
        &[("Sam Okafor", "maintainer", "@sam")],
        Flaky,
    ),
    p(
        "data/sql",
        "SQL driver",
        &["core/io", "core/codec"],
        &[
            ("Tomas Novak", "maintainer", "@tomas"),
            ("Aiko Sato", "on call", "@aiko"),
        ],
        Steady,
    ),
    p(
        "data/cache",
        "Cache",
        &["core/io"],
        &[("Aiko Sato", "maintainer", "@aiko")],
        Steady,
    ),
    p(
        "data/orm",
        "ORM",
        &["data/sql", "core/codec"],
        &[("Tomas Novak", "maintainer", "@tomas")],
        Steady,
    ),
    p(
        "svc/gateway",
        "API gateway",
        &["net/grpc", "net/websocket", "core/metrics"],
        &[
            ("Priya Nair", "tech lead", "@priya"),
            ("Leo Brandt", "on call", "@leo"),
        ],
        Steady,
    ),
    p(
        "svc/auth",
        "Auth service",
        &["net/http", "data/sql", "net/tls"],
        &[
            ("Ines Duarte", "maintainer", "@ines"),
            ("Leo Brandt", "on call", "@leo"),
        ],
        Steady,
    ),
    p(
        "svc/billing",
        "Billing",
        &["data/orm", "svc/auth"],
        &[
            ("Noor Aziz", "maintainer", "@noor"),
            ("Finance builds", "team channel", "#billing-ci"),
        ],
        Flaky,
    ),
    p(
        "svc/search",
        "Search",
        &["net/http", "data/cache"],
        &[("Kai Müller", "maintainer", "@kai")],
        Steady,
    ),
    p(
        "svc/notify",
        "Notifications",
        &["net/websocket", "data/cache"],
        &[("Zoe Martin", "maintainer", "@zoe")],
        Steady,
    ),
    p(
        "apps/web",
        "Web app",
        &["svc/gateway", "svc/auth", "ui/design-system"],
        &[
            ("Hana Ito", "maintainer", "@hana"),
            ("Web team", "team channel", "#web"),
        ],
        Steady,
    ),
    p(
        "apps/mobile-api",
        "Mobile API",
        &["svc/gateway", "svc/billing"],
        &[("Diego Ruiz", "maintainer", "@diego")],
        Steady,
    ),
    p(
        "apps/legacy-portal",
        "Legacy portal",
        &["net/http", "data/orm"],
        &[
            ("Greta Olsen", "maintainer", "@greta"),
            ("Platform team", "escalation", "#platform"),
        ],
        BreaksOnRuntime15,
    ),
    p(
        "apps/admin",
        "Admin console",
        &["apps/web", "svc/auth", "ui/design-system"],
        &[("Hana Ito", "maintainer", "@hana")],
        Steady,
    ),
    p(
        "plugins/alpha",
        "Plugin alpha",
        &["net/http", "plugins/beta"],
        &[("Ivo Petrov", "maintainer", "@ivo")],
        Steady,
    ),
    p(
        "plugins/beta",
        "Plugin beta",
        &["plugins/alpha", "core/codec"],
        &[
            ("Ivo Petrov", "maintainer", "@ivo"),
            ("Ruth Klein", "co-maintainer", "@ruth"),
        ],
        Steady,
    ),
    p(
        "plugins/gamma",
        "Plugin gamma",
        &["plugins/beta"],
        &[("Ruth Klein", "maintainer", "@ruth")],
        Steady,
    ),
    p(
        "ops/deploy-bot",
        "Deploy bot",
        &["svc/gateway"],
        &[("Leo Brandt", "maintainer", "@leo")],
        RefusesTriggers,
    ),
    p(
        "ops/dashboards",
        "Dashboards",
        &["core/metrics"],
        &[("Lena Vogel", "maintainer", "@lena")],
        Steady,
    ),
    p(
        "tools/cli",
        "CLI",
        &["net/http", "core/codec"],
        &[("Jon Park", "maintainer", "@jpark")],
        Steady,
    ),
    p(
        "tools/sdk-python",
        "Python SDK",
        &["net/grpc"],
        &[
            ("Raj Patel", "maintainer", "@raj"),
            ("SDK team", "team channel", "#sdk"),
        ],
        Steady,
    ),
    p(
        "tools/sdk-js",
        "JavaScript SDK",
        &["net/grpc"],
        &[
            ("Zoe Martin", "maintainer", "@zoe"),
            ("SDK team", "team channel", "#sdk"),
        ],
        Flaky,
    ),
    p(
        "docs/site",
        "Documentation site",
        &["tools/cli"],
        &[("Kai Müller", "maintainer", "@kai")],
        Steady,
    ),
    p(
        "ui/design-system",
        "Design system",
        &[],
        &[
            ("Hana Ito", "maintainer", "@hana"),
            ("Design team", "team channel", "#design"),
        ],
        Steady,
    ),
];

/// The upstreams that publish new versions, how often each is picked (out of the
/// sum), and its first version.
pub const UPSTREAMS: &[(&str, u32, (u64, u64, u64))] = &[
    ("core/runtime", 5, (1, 4, 0)),
    ("ui/design-system", 2, (3, 2, 0)),
    ("data/sql", 2, (0, 9, 0)),
];

const fn p(
    id: &'static str,
    name: &'static str,
    depends_on: &'static [&'static str],
    contacts: &'static [(&'static str, &'static str, &'static str)],
    conduct: Conduct,
) -> DemoProject {
    DemoProject {
        id,
        name,
        depends_on,
        contacts,
        conduct,
    }
}

/// The projects built on a native CI, triggered through its API and heard from by its
/// webhook, with their names on that CI; the rest use the generic webhook.
pub const NATIVE: &[(&str, CiKind, &str)] = &[
    ("net/http", CiKind::Github, "acme-net/http"),
    ("net/tls", CiKind::Gitlab, "acme/net/tls"),
    ("core/metrics", CiKind::Buildkite, "acme/metrics"),
    ("core/codec", CiKind::Jenkins, "core/codec"),
];

/// How `project` conducts itself; a project outside the catalog is steady.
pub fn conduct(project: &ProjectId) -> Conduct {
    PROJECTS
        .iter()
        .find(|p| p.id == project.as_str())
        .map_or(Steady, |p| p.conduct)
}

/// How the demo's webhook CI builds `payload` as its pipeline `number`: queued and
/// run for as long as a busy shared runner takes, and ended as the project's conduct
/// and the odds of a real pipeline say. A release publishes `1.0.{number}`; a
/// promotion deploys the version its trigger pins.
pub fn build(payload: &TriggerPayload, number: u64) -> Behaviour {
    let mut rng = rand::rng();
    let roll: u32 = rng.random_range(0..100);
    let (outcome, summary) = match conduct(&payload.project) {
        RefusesTriggers => {
            return Behaviour::Refuse {
                status: 403,
                body: format!(
                    "pipeline triggers are disabled for {}; a maintainer can enable them under Settings > CI/CD",
                    payload.project
                ),
            }
        }
        BreaksOnRuntime15 if runtime_at_least_1_5(payload) => (
            ReportState::Failed,
            Some(
                "error[E0599]: no method named `spawn_legacy` found for struct `runtime::Handle`\n  \
                 --> src/jobs/scheduler.rs:88:14\n   \
                 = note: `spawn_legacy` was removed in core/runtime 1.5.0; use `spawn_blocking`\n\
                 error: could not compile `legacy-portal` (lib) due to 1 previous error",
            ),
        ),
        Flaky if payload.attempt == 1 && roll < 40 => (
            ReportState::Failed,
            Some(
                "test sessions::reconnect_after_idle ... FAILED\n\
                 thread 'sessions::reconnect_after_idle' panicked at tests/sessions.rs:141:9:\n\
                 timed out after 5s waiting for pong\n\
                 test result: FAILED. 311 passed; 1 failed; 0 ignored",
            ),
        ),
        _ if roll < 2 => (
            ReportState::Failed,
            Some(
                "test integration::roundtrip_large_payload ... FAILED\n\
                 assertion `left == right` failed: body length\n  left: 1048576\n right: 1048575\n\
                 test result: FAILED. 212 passed; 1 failed; 3 ignored",
            ),
        ),
        _ if roll < 3 => (
            ReportState::Errored,
            Some("runner lost: the machine running the job stopped responding"),
        ),
        _ => (ReportState::Passed, None),
    };
    Behaviour::Build(Build {
        queued: Duration::from_millis(rng.random_range(200..1500)),
        running: true,
        took: Duration::from_millis(rng.random_range(1000..5000)),
        outcome,
        summary: summary.map(str::to_owned),
        version: Some(format!("1.0.{number}")),
    })
}

/// Whether the runtime the build is for has dropped `spawn_legacy`: its releases from
/// 1.5.0 on, and the demo's pull request on it, whatever it is made on.
fn runtime_at_least_1_5(payload: &TriggerPayload) -> bool {
    payload.root.project.as_str() == "core/runtime"
        && (payload.root.candidate.is_some()
            || payload
                .root
                .version
                .as_deref()
                .and_then(|v| semver::Version::parse(v).ok())
                .is_some_and(|v| v >= semver::Version::new(1, 5, 0)))
}

impl DemoProject {
    /// The project id; every id in [`PROJECTS`] is valid.
    pub fn project_id(&self) -> Result<ProjectId, conjunction_protocol::ValidationError> {
        ProjectId::parse(self.id)
    }

    /// The registration, with its trigger pointing at the simulated CI: the generic
    /// webhook one taking triggers at `ci_url`, or for a [`NATIVE`] project the native one at `native_base`.
    /// Every project tells its team's channel (`#core` for `core/...`) on the demo
    /// chat at `chat_base` what its rules' defaults say; a flaky project has its
    /// failures rerun once before they count as breaks.
    pub fn spec(
        &self,
        ci_url: &str,
        native_base: &str,
        secret: &str,
        chat_base: &str,
    ) -> Result<ProjectSpec, conjunction_protocol::ValidationError> {
        let depends_on = self
            .depends_on
            .iter()
            .map(|d| {
                // `project@range` declares the versions it takes.
                let (project, range) = match d.split_once('@') {
                    Some((p, r)) => (p, Some(r.to_owned())),
                    None => (*d, None),
                };
                Ok(Dependency {
                    project: ProjectId::parse(project)?,
                    range,
                    lines: Vec::new(),
                })
            })
            .collect::<Result<_, conjunction_protocol::ValidationError>>()?;
        let contacts = self
            .contacts
            .iter()
            .map(|(name, role, chat)| Contact {
                name: (*name).into(),
                email: email(name),
                chat: Some((*chat).into()),
                role: Some((*role).into()),
            })
            .collect();
        let native = NATIVE.iter().find(|(id, _, _)| *id == self.id);
        let (trigger, source) = match native {
            Some(&(_, ci, name)) => (
                crate::native::trigger(ci, name, native_base, secret),
                Some(crate::native::source(ci, name, secret)),
            ),
            None => (
                TriggerSpec::Webhook {
                    url: format!("{ci_url}/{}", self.id),
                    token: None,
                    secret: Some(secret.into()),
                },
                None,
            ),
        };
        let team = self.id.split('/').next().unwrap_or(self.id);
        let notify = vec![NotifyRule {
            channel: Channel::Slack {
                url: format!("{chat_base}/chat/{team}"),
            },
            on: NoticeKind::defaults(),
            name: Some(format!("#{team}")),
        }];
        Ok(ProjectSpec {
            name: self.name.into(),
            contacts,
            depends_on,
            trigger: Some(trigger),
            report_token: None,
            package: None,
            source,
            confirm_failures: u32::from(self.conduct == Flaky),
            notify,
            ..ProjectSpec::default()
        })
    }
}

/// `ana.lima@example.org` for a person; teams have a channel, not an address.
fn email(name: &str) -> Option<String> {
    if name.ends_with("team") || name.ends_with("builds") {
        return None;
    }
    Some(format!(
        "{}@example.org",
        name.to_lowercase().replace(' ', ".").replace('ü', "u")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_demo_project_registers_and_depends_only_on_demo_projects() {
        for p in PROJECTS {
            let id = p.project_id().unwrap();
            let spec = p
                .spec(
                    "http://127.0.0.1:1",
                    "http://127.0.0.1:2",
                    "s3cret0123456789",
                    "http://127.0.0.1:3",
                )
                .unwrap();
            spec.validate(&id).unwrap();
            for d in &spec.depends_on {
                assert!(
                    PROJECTS.iter().any(|q| q.id == d.project.as_str()),
                    "{} depends on unknown {}",
                    p.id,
                    d.project
                );
            }
        }
        assert!((25..=35).contains(&PROJECTS.len()));
        for (u, _, _) in UPSTREAMS {
            assert!(PROJECTS.iter().any(|p| p.id == *u));
        }
    }
}
