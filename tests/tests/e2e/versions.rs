//! Versions: a release builds the dependents whose range takes it, stops at the ones
//! that need a bump, builds declared lines on their ref, and the impact preview says
//! all of that before the release, node for node.

use std::collections::BTreeSet;

use conjunction_protocol::project::{Ecosystem, Line, Package};
use conjunction_protocol::{NodeState, StateKind};
use conjunction_sim::webhook::{Behaviour, WebhookCi};
use conjunction_tests::daemon::TestDaemon;
use conjunction_tui::client::{Client, ClientError};

use crate::*;

/// Registers `id` depending on `acme/lib` with `range` (and on `also`), triggered at
/// `ci`.
async fn dependent(api: &Client, ci: &WebhookCi, id: &str, range: Option<&str>, also: &[&str]) {
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
    let ci = super::webhook_ci().await;
    let token = library(&d.api, Ecosystem::Cargo).await;
    dependent(&d.api, &ci, "acme/a1", Some("^2"), &[]).await;
    dependent(&d.api, &ci, "acme/a2", Some(">=1.4"), &[]).await;
    dependent(&d.api, &ci, "acme/b1", Some("^1.2"), &[]).await;
    dependent(&d.api, &ci, "acme/b2", Some("~1.4"), &[]).await;
    dependent(&d.api, &ci, "acme/b3", Some("1"), &[]).await;
    // Below a project that needs a bump, and below one that takes the release.
    register(&d.api, "acme/x", &["acme/b1"], Some(&ci)).await;
    register(&d.api, "acme/y", &["acme/a1"], Some(&ci)).await;

    let preview = d.api.impact(&pid("acme/lib"), "2.0.0", None).await.unwrap();
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
    let ci = super::webhook_ci().await;
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

    let preview = d.api.impact(&pid("acme/lib"), "1.5.0", None).await.unwrap();
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
    let ci = super::webhook_ci().await;
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
    let err = d
        .api
        .impact(&pid("acme/lib"), "two", None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("invalid_version"), "{err}");
    d.stop().await;
}

/// Reports `version` of acme/lib as having gone to `environment`.
async fn promote(
    api: &Client,
    token: &str,
    version: &str,
    environment: &str,
) -> Result<conjunction_protocol::ReportAck, ClientError> {
    let mut report = root_report("acme/lib", version);
    report.environment = Some(environment.into());
    api.report(token, &report).await
}

/// The version and environment `project`'s trigger in event `root` asked for.
fn asked(ci: &WebhookCi, project: &str, root: conjunction_protocol::BuildId) -> (String, String) {
    let triggers = ci.triggers_of(project);
    let t = triggers
        .iter()
        .find(|t| t.payload.root.build == root)
        .unwrap_or_else(|| panic!("{project} was triggered in {root}"));
    (
        t.payload.version.clone().unwrap_or_default(),
        t.payload.environment.clone().unwrap_or_default(),
    )
}

#[tokio::test]
async fn a_release_line_is_promoted_pinned_refused_out_of_order_and_rolled_back() {
    let d = TestDaemon::start().await;
    let ci = super::webhook_ci().await;
    let token = library(&d.api, Ecosystem::Cargo).await;
    dependent(&d.api, &ci, "acme/app", Some("^1"), &[]).await;
    dependent(&d.api, &ci, "acme/svc", Some("^1"), &[]).await;
    dependent(&d.api, &ci, "acme/red", Some("^1"), &[]).await;
    dependent(&d.api, &ci, "acme/next", Some("^2"), &[]).await;
    register(&d.api, "acme/web", &["acme/app"], Some(&ci)).await;
    ci.set("acme/red", Behaviour::fail("tests failed"));
    for (p, v) in [
        ("acme/app", "3.1.0"),
        ("acme/svc", "0.9.2"),
        ("acme/web", "7.0.0"),
    ] {
        ci.publishes(p, v);
    }

    // The release into dev records the line from the dependents' reports.
    let dev = report_root(&d.api, &token, "acme/lib", "1.0.0").await;
    let event = settled(&d.api, dev.root).await;
    assert!(event.nodes.iter().all(|n| n.target_version.is_none()));
    assert_eq!(
        asked(&ci, "acme/app", dev.root),
        (String::new(), String::new())
    );
    let line = d.api.release_line(&pid("acme/lib"), "1.0.0").await.unwrap();
    let versions: Vec<(&str, Option<&str>, String)> = line
        .dependents
        .iter()
        .map(|dep| {
            let state = conjunction_tui::tree::cell_text(dep.environments.get("dev"));
            (dep.project.as_str(), dep.version.as_deref(), state)
        })
        .collect();
    assert_eq!(
        versions,
        [
            ("acme/app", Some("3.1.0"), "passed".to_owned()),
            ("acme/red", None, "failed".to_owned()),
            ("acme/svc", Some("0.9.2"), "passed".to_owned()),
            ("acme/web", Some("7.0.0"), "passed".to_owned()),
        ]
    );
    assert_eq!(line.environments["dev"].state, StateKind::Passed);

    // Skipping test is refused, names it, and changes nothing.
    let roots_before = d.api.roots(100).await.unwrap().len();
    let err = promote(&d.api, &token, "1.0.0", "prod").await.unwrap_err();
    assert_eq!(err.code(), Some("not_passed_before"), "{err}");
    assert!(
        err.to_string()
            .contains("acme/lib 1.0.0 has not passed in test, the environment before prod"),
        "{err}"
    );
    assert_eq!(d.api.roots(100).await.unwrap().len(), roots_before);
    let err = promote(&d.api, &token, "1.0.0", "staging")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("unknown_environment"), "{err}");
    let mut unversioned = root_report("acme/lib", "1.0.0");
    unversioned.version = None;
    unversioned.environment = Some("test".into());
    let err = d.api.report(&token, &unversioned).await.unwrap_err();
    assert_eq!(err.code(), Some("version_required"), "{err}");
    assert_eq!(
        d.api.release_line(&pid("acme/lib"), "1.0.0").await.unwrap(),
        line
    );

    // The preview of the promotion, then the promotion: the line's dependents only,
    // each pinned to its version on the line.
    let preview = d
        .api
        .impact(&pid("acme/lib"), "1.0.0", Some("test"))
        .await
        .unwrap();
    let pinned: Vec<(&str, Option<&str>)> = preview
        .triggered
        .iter()
        .map(|b| (b.project.as_str(), b.version.as_deref()))
        .collect();
    assert_eq!(
        pinned,
        [
            ("acme/app", Some("3.1.0")),
            ("acme/svc", Some("0.9.2")),
            ("acme/web", Some("7.0.0")),
        ]
    );
    let stays: Vec<&str> = preview
        .not_promoted
        .iter()
        .map(|n| n.project.as_str())
        .collect();
    assert_eq!(stays, ["acme/next", "acme/red"]);
    assert_eq!(preview.not_promoted[1].why, "it ended failed in dev");
    let test = promote(&d.api, &token, "1.0.0", "test").await.unwrap();
    let event = settled(&d.api, test.root).await;
    assert_eq!(
        projects(event.nodes.iter().skip(1).map(|n| &n.project)),
        projects(preview.triggered.iter().map(|b| &b.project))
    );
    assert_eq!(event.summary.environment.as_deref(), Some("test"));
    assert_eq!(event.summary.not_promoted, preview.not_promoted);
    assert_eq!(
        asked(&ci, "acme/app", test.root),
        ("3.1.0".to_owned(), "test".to_owned())
    );
    assert_eq!(
        node_of(&event, "acme/web").target_version.as_deref(),
        Some("7.0.0")
    );

    // Newer versions of the dependents do not leak into the promotion of 1.0.0.
    ci.publishes("acme/app", "3.2.0");
    let prod = promote(&d.api, &token, "1.0.0", "prod").await.unwrap();
    settled(&d.api, prod.root).await;
    assert_eq!(
        asked(&ci, "acme/app", prod.root),
        ("3.1.0".to_owned(), "prod".to_owned())
    );

    // 1.1.0 goes all the way with app at 3.2.0; then prod rolls back to 1.0.0 and
    // app goes back to 3.1.0.
    let dev = report_root(&d.api, &token, "acme/lib", "1.1.0").await;
    settled(&d.api, dev.root).await;
    for env in ["test", "prod"] {
        let ack = promote(&d.api, &token, "1.1.0", env).await.unwrap();
        settled(&d.api, ack.root).await;
        assert_eq!(
            asked(&ci, "acme/app", ack.root),
            ("3.2.0".to_owned(), env.to_owned())
        );
    }
    let preview = d
        .api
        .impact(&pid("acme/lib"), "1.0.0", Some("prod"))
        .await
        .unwrap();
    assert_eq!(preview.rollback_from.as_deref(), Some("1.1.0"));
    let back = promote(&d.api, &token, "1.0.0", "prod").await.unwrap();
    let event = settled(&d.api, back.root).await;
    assert_eq!(event.summary.rollback_from.as_deref(), Some("1.1.0"));
    assert_eq!(
        asked(&ci, "acme/app", back.root),
        ("3.1.0".to_owned(), "prod".to_owned())
    );
    assert_eq!(
        asked(&ci, "acme/web", back.root),
        ("7.0.0".to_owned(), "prod".to_owned())
    );

    let releases = d.api.releases(&pid("acme/lib")).await.unwrap();
    assert_eq!(releases.environments, ["dev", "test", "prod"]);
    let now: Vec<(&str, &str)> = releases
        .current
        .iter()
        .map(|(e, v)| (e.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        now,
        [("dev", "1.1.0"), ("prod", "1.0.0"), ("test", "1.1.0")]
    );
    let versions: Vec<&str> = releases.lines.iter().map(|l| l.version.as_str()).collect();
    assert_eq!(versions, ["1.1.0", "1.0.0"]);
    let old = &releases.lines[1];
    assert_eq!(
        old.environments["prod"].rollback_from.as_deref(),
        Some("1.1.0")
    );
    let red = old
        .dependents
        .iter()
        .find(|d| d.project.as_str() == "acme/red")
        .unwrap();
    assert_eq!(
        conjunction_tui::tree::cell_text(red.environments.get("prod")),
        "not promoted (it was not promoted to test: it ended failed in dev)"
    );
    d.stop().await;
}

#[tokio::test]
async fn a_promotion_names_every_dependent_it_leaves_transitive_ones_included() {
    let d = TestDaemon::start().await;
    let ci = super::webhook_ci().await;
    let token = library(&d.api, Ecosystem::Cargo).await;
    dependent(&d.api, &ci, "acme/app", Some("^1"), &[]).await;
    dependent(&d.api, &ci, "acme/red", Some("^1"), &[]).await;
    ci.set("acme/red", Behaviour::fail("tests failed"));
    ci.publishes("acme/app", "3.1.0");
    let dev = report_root(&d.api, &token, "acme/lib", "1.0.0").await;
    settled(&d.api, dev.root).await;
    // Subscribed after the release, below a project the promotion leaves behind: it is
    // on no line and depends on nothing the promotion builds.
    register(&d.api, "acme/late", &["acme/red"], Some(&ci)).await;
    register(&d.api, "acme/later", &["acme/late"], Some(&ci)).await;

    let preview = d
        .api
        .impact(&pid("acme/lib"), "1.0.0", Some("test"))
        .await
        .unwrap();
    let stays: Vec<(&str, &str)> = preview
        .not_promoted
        .iter()
        .map(|n| (n.project.as_str(), n.why.as_str()))
        .collect();
    let through = "it depends on acme/lib only through projects that are not promoted";
    assert_eq!(
        stays,
        [
            ("acme/late", through),
            ("acme/later", through),
            ("acme/red", "it ended failed in dev"),
        ]
    );
    assert!(
        preview.not_affected.is_empty(),
        "the preview files nobody else: {:?}",
        preview.not_affected
    );
    let test = promote(&d.api, &token, "1.0.0", "test").await.unwrap();
    let event = settled(&d.api, test.root).await;
    assert_eq!(
        event.summary.not_promoted, preview.not_promoted,
        "the event names whom it leaves exactly as its preview did"
    );
}
