//! Versions: a release builds the dependents whose range takes it, stops at the ones
//! that need a bump, builds declared lines on their ref, and the impact preview says
//! all of that before the release, node for node.

use std::collections::BTreeSet;

use conjunction_protocol::project::{Ecosystem, Line, Package};
use conjunction_protocol::{NodeState, StateKind};
use conjunction_tests::daemon::TestDaemon;
use conjunction_tests::mock_ci::MockCi;
use conjunction_tui::client::{Client, ClientError};

use crate::*;

/// Registers `id` depending on `acme/lib` with `range` (and on `also`), triggered at
/// `ci`.
async fn dependent(api: &Client, ci: &MockCi, id: &str, range: Option<&str>, also: &[&str]) {
    let mut deps = vec!["acme/lib"];
    deps.extend(also);
    let mut s = spec(id, &deps, Some(ci));
    s.depends_on[0].range = range.map(str::to_owned);
    let (status, _) = api.put_project(&pid(id), &s).await.unwrap();
    assert_eq!(status, 201, "{id}");
}

async fn library(api: &Client, ecosystem: Ecosystem) -> String {
    let mut s = spec("acme/lib", &[], None);
    s.package = Some(Package {
        ecosystem,
        name: "acme-lib".into(),
    });
    let (status, answer) = api.put_project(&pid("acme/lib"), &s).await.unwrap();
    assert_eq!(status, 201);
    answer.report_token.unwrap()
}

fn projects<'a>(
    list: impl IntoIterator<Item = &'a conjunction_protocol::ProjectId>,
) -> BTreeSet<String> {
    list.into_iter().map(|p| p.to_string()).collect()
}

#[tokio::test]
async fn a_new_major_builds_the_two_dependents_that_take_it_and_the_preview_said_so() {
    let d = TestDaemon::start().await;
    let ci = MockCi::start(Some(SECRET)).await;
    let token = library(&d.api, Ecosystem::Cargo).await;
    dependent(&d.api, &ci, "acme/a1", Some("^2"), &[]).await;
    dependent(&d.api, &ci, "acme/a2", Some(">=1.4"), &[]).await;
    dependent(&d.api, &ci, "acme/b1", Some("^1.2"), &[]).await;
    dependent(&d.api, &ci, "acme/b2", Some("~1.4"), &[]).await;
    dependent(&d.api, &ci, "acme/b3", Some("1"), &[]).await;
    // Below a project that needs a bump, and below one that takes the release.
    register(&d.api, "acme/x", &["acme/b1"], Some(&ci)).await;
    register(&d.api, "acme/y", &["acme/a1"], Some(&ci)).await;

    let preview = d.api.impact(&pid("acme/lib"), "2.0.0").await.unwrap();
    assert_eq!(preview.builds, 3);
    assert_eq!(preview.ecosystem, Ecosystem::Cargo);
    let bumps: Vec<(&str, &str)> = preview
        .needs_bump
        .iter()
        .map(|b| (b.project.as_str(), b.range.as_str()))
        .collect();
    assert_eq!(
        bumps,
        [("acme/b1", "^1.2"), ("acme/b2", "~1.4"), ("acme/b3", "1")]
    );
    assert_eq!(
        preview.needs_bump[0].message,
        "acme/b1 declares ^1.2 on acme/lib; 2.0.0 is outside it: bump the range to adopt it"
    );
    assert_eq!(preview.needs_bump[0].contacts[0].name, "acme/b1 maintainer");
    assert_eq!(preview.not_affected.len(), 1);
    assert_eq!(preview.not_affected[0].project.as_str(), "acme/x");
    assert!(
        preview.not_affected[0]
            .why
            .contains("only through acme/b1, which needs a bump"),
        "{:?}",
        preview.not_affected
    );

    let ack = report_root(&d.api, &token, "acme/lib", "2.0.0").await;
    let event = settled(&d.api, ack.root).await;
    let built = projects(
        event
            .nodes
            .iter()
            .skip(1)
            .filter(|n| n.state.kind() == StateKind::Passed)
            .map(|n| &n.project),
    );
    let bumped = projects(
        event
            .nodes
            .iter()
            .filter(|n| n.state.kind() == StateKind::NeedsBump)
            .map(|n| &n.project),
    );
    // Node for node, what the preview said.
    assert_eq!(
        built,
        projects(preview.triggered.iter().map(|b| &b.project))
    );
    assert_eq!(
        bumped,
        projects(preview.needs_bump.iter().map(|b| &b.project))
    );
    assert_eq!(
        event.nodes.len(),
        1 + built.len() + bumped.len(),
        "{event:#?}"
    );
    assert_eq!(
        built,
        projects(&[pid("acme/a1"), pid("acme/a2"), pid("acme/y")])
    );

    let b1 = node_of(&event, "acme/b1");
    assert_eq!(
        b1.state,
        NodeState::NeedsBump {
            bump: conjunction_protocol::Bump {
                upstream: pid("acme/lib"),
                range: "^1.2".into(),
                version: "2.0.0".into()
            }
        }
    );
    assert!(b1.state.reason().unwrap().contains("2.0.0 is outside it"));
    for p in ["acme/b1", "acme/b2", "acme/b3", "acme/x"] {
        assert!(ci.triggers_of(p).is_empty(), "{p} is not triggered");
    }
    assert_eq!(ci.triggers_of("acme/a1").len(), 1);
    let summary = d.api.root(ack.root).await.unwrap().summary;
    assert_eq!(
        summary.counts.get(&StateKind::NeedsBump),
        Some(&3),
        "{summary:?}"
    );
    d.stop().await;
}

#[tokio::test]
async fn a_maintenance_release_reaches_only_the_dependent_declaring_that_line_on_its_ref() {
    let d = TestDaemon::start().await;
    let ci = MockCi::start(Some(SECRET)).await;
    let token = library(&d.api, Ecosystem::Npm).await;
    dependent(&d.api, &ci, "acme/current", Some("^2"), &[]).await;
    let mut s = spec("acme/lts", &["acme/lib"], Some(&ci));
    s.depends_on[0].lines = vec![
        Line {
            git_ref: "main".into(),
            range: "^2".into(),
        },
        Line {
            git_ref: "release-1.x".into(),
            range: "^1.4".into(),
        },
    ];
    d.api.put_project(&pid("acme/lts"), &s).await.unwrap();
    register(&d.api, "acme/on-current", &["acme/current"], Some(&ci)).await;

    let preview = d.api.impact(&pid("acme/lib"), "1.5.0").await.unwrap();
    assert_eq!(preview.builds, 1);
    assert_eq!(preview.triggered[0].git_ref.as_deref(), Some("release-1.x"));
    let unaffected = projects(preview.not_affected.iter().map(|n| &n.project));
    assert_eq!(
        unaffected,
        projects(&[pid("acme/current"), pid("acme/on-current")])
    );

    let ack = report_root(&d.api, &token, "acme/lib", "1.5.0").await;
    let event = settled(&d.api, ack.root).await;
    let nodes: Vec<&str> = event.nodes.iter().map(|n| n.project.as_str()).collect();
    assert_eq!(nodes, ["acme/lib", "acme/lts"]);
    assert_eq!(
        node_of(&event, "acme/lts").target_ref.as_deref(),
        Some("release-1.x")
    );
    let triggers = ci.triggers_of("acme/lts");
    assert_eq!(triggers.len(), 1);
    assert_eq!(triggers[0].payload.git_ref.as_deref(), Some("release-1.x"));
    assert!(ci.triggers_of("acme/current").is_empty());

    // The next major takes the main line.
    let ack = report_root(&d.api, &token, "acme/lib", "2.1.0").await;
    let event = settled(&d.api, ack.root).await;
    assert_eq!(
        node_of(&event, "acme/lts").target_ref.as_deref(),
        Some("main")
    );
    assert_eq!(state_of(&event, "acme/on-current"), StateKind::Passed);
    d.stop().await;
}

#[tokio::test]
async fn ranges_are_checked_in_their_upstreams_ecosystem_when_registered() {
    let d = TestDaemon::start().await;
    let ci = MockCi::start(Some(SECRET)).await;
    library(&d.api, Ecosystem::Npm).await;
    let refused = |r: Result<(u16, _), ClientError>| match r {
        Err(ClientError::Refused { status, error }) => (status, error.error, error.message),
        other => panic!("expected a refusal, got {other:?}"),
    };

    // A Cargo-style list of comparators is not an npm range.
    let mut s = spec("acme/app", &["acme/lib"], Some(&ci));
    s.depends_on[0].range = Some(">=1.2, <2".into());
    let (status, code, message) = refused(d.api.put_project(&pid("acme/app"), &s).await);
    assert_eq!((status, code.as_str()), (400, "invalid_range"));
    assert!(message.contains("is not an npm range"), "{message}");
    assert!(message.starts_with("depends_on[0].range"), "{message}");
    assert!(
        d.api.project(&pid("acme/app")).await.is_err(),
        "nothing was created"
    );

    // The npm spelling is taken; then the library cannot turn into a PyPI package
    // under it.
    s.depends_on[0].range = Some(">=1.2 <2".into());
    d.api.put_project(&pid("acme/app"), &s).await.unwrap();
    let mut lib = spec("acme/lib", &[], None);
    lib.package = Some(Package {
        ecosystem: Ecosystem::Pypi,
        name: "acme-lib".into(),
    });
    let (status, code, message) = refused(d.api.put_project(&pid("acme/lib"), &lib).await);
    assert_eq!((status, code.as_str()), (409, "ranges_would_break"));
    assert!(
        message.contains("acme/app declares \">=1.2 <2\""),
        "{message}"
    );

    // A preview of a version the ecosystem does not read is refused too.
    let err = d.api.impact(&pid("acme/lib"), "two").await.unwrap_err();
    assert_eq!(err.code(), Some("invalid_version"), "{err}");
    d.stop().await;
}
