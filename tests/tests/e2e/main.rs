//! End-to-end tests: the real daemon on loopback, a mock CI server that takes triggers
//! and reports back, and real HTTP and websocket clients. All compile into one test
//! binary; shared helpers live here and in the `conjunction_tests` library.

mod access;
mod backup;
mod bad_input;
mod badges;
mod candidates;
mod cascade;
mod channels;
mod cli;
mod crash;
mod damage;
mod feed;
mod forges;
mod limits;
mod lists;
mod logs;
mod manifests;
mod metrics;
mod migration;
mod native;
mod notify;
mod oidc;
mod retention;
mod sources;
mod startup;
mod storage;
mod systemd;
mod triggers;
mod tui;
mod verdicts;
mod versions;

use std::time::Duration;

use conjunction_protocol::{
    BuildId, Contact, Dependency, ProjectId, ProjectSpec, Report, ReportAck, ReportState,
    RootEvent, StateKind, TriggerSpec,
};
use conjunction_sim::webhook::WebhookCi;
use conjunction_tests::eventually;
use conjunction_tui::client::Client;

pub const SECRET: &str = "webhook-signing-secret";
pub const TRIGGER_TOKEN: &str = "ci-trigger-token";
pub const WAIT: Duration = Duration::from_secs(15);

pub fn pid(s: &str) -> ProjectId {
    ProjectId::parse(s).expect("test project ids are valid")
}

/// A webhook CI on loopback that checks trigger signatures with [`SECRET`].
pub async fn webhook_ci() -> WebhookCi {
    WebhookCi::start(Some(SECRET))
        .await
        .expect("start the webhook CI")
}

pub fn spec(name: &str, deps: &[&str], mock: Option<&WebhookCi>) -> ProjectSpec {
    ProjectSpec {
        name: name.into(),
        contacts: vec![Contact {
            name: format!("{name} maintainer"),
            email: Some("maintainer@acme.example".into()),
            chat: Some("@maint".into()),
            role: Some("maintainer".into()),
        }],
        depends_on: deps
            .iter()
            .map(|d| Dependency {
                project: pid(d),
                range: None,
                lines: Vec::new(),
            })
            .collect(),
        trigger: mock.map(|m| TriggerSpec::Webhook {
            url: m.url(),
            token: Some(TRIGGER_TOKEN.into()),
            secret: Some(SECRET.into()),
        }),
        report_token: None,
        package: None,
        ..Default::default()
    }
}

/// Registers a project whose trigger points at `mock`; returns its generated report token.
pub async fn register(api: &Client, id: &str, deps: &[&str], mock: Option<&WebhookCi>) -> String {
    let (status, answer) = api
        .put_project(&pid(id), &spec(id, deps, mock))
        .await
        .unwrap_or_else(|e| panic!("registering {id}: {e}"));
    assert_eq!(status, 201, "{id} is created");
    answer
        .report_token
        .expect("a new project gets a generated report token")
}

pub fn root_report(project: &str, version: &str) -> Report {
    Report {
        project: pid(project),
        build: None,
        attempt: None,
        state: ReportState::Passed,
        version: Some(version.into()),
        commit: Some("9f1c2e0".into()),
        git_ref: Some("main".into()),
        environment: None,
        candidate: None,
        url: Some("https://ci.example/runs/881".into()),
        summary: None,
        metadata: [("pipeline".to_owned(), "release".to_owned())].into(),
        manifests: Vec::new(),
    }
}

pub async fn report_root(api: &Client, token: &str, project: &str, version: &str) -> ReportAck {
    api.report(token, &root_report(project, version))
        .await
        .unwrap_or_else(|e| panic!("root report of {project}: {e}"))
}

/// Waits until every node of the root event is in a final state.
pub async fn settled(api: &Client, root: BuildId) -> RootEvent {
    settled_within(api, root, WAIT).await
}

/// [`settled`], for an event so large that it may take longer than [`WAIT`].
pub async fn settled_within(api: &Client, root: BuildId, within: Duration) -> RootEvent {
    eventually("the cascade to settle", within, || async move {
        let event = api.root(root).await.ok()?;
        event
            .nodes
            .iter()
            .all(|n| n.state.kind().is_final())
            .then_some(event)
    })
    .await
}

/// The state of `project`'s node in `event`.
pub fn state_of(event: &RootEvent, project: &str) -> StateKind {
    node_of(event, project).state.kind()
}

pub fn node_of<'a>(event: &'a RootEvent, project: &str) -> &'a conjunction_protocol::Node {
    event
        .nodes
        .iter()
        .find(|n| n.project.as_str() == project)
        .unwrap_or_else(|| panic!("{project} has a node in the event"))
}
