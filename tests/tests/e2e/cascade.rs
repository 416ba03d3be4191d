//! Cascades through the dependency graph: chains, diamonds, cycles, failures and rebuilds.

use conjunction_protocol::{NodeState, StateKind};
use conjunction_sim::webhook::{Behaviour, Record};
use conjunction_tests::daemon::TestDaemon;
use std::time::Duration;

use crate::*;

#[tokio::test]
async fn chain_triggers_each_project_in_turn_with_a_signed_payload() {
    let d = TestDaemon::start().await;
    let ci = super::webhook_ci().await;
    let token = register(&d.api, "acme/a", &[], None).await;
    register(&d.api, "acme/b", &["acme/a"], Some(&ci)).await;
    register(&d.api, "acme/c", &["acme/b"], Some(&ci)).await;

    let ack = report_root(&d.api, &token, "acme/a", "1.4.0").await;
    assert_eq!(ack.build, ack.root);
    assert_eq!(ack.state, StateKind::Passed);
    let event = settled(&d.api, ack.root).await;

    let order: Vec<&str> = event.nodes.iter().map(|n| n.project.as_str()).collect();
    assert_eq!(order, ["acme/a", "acme/b", "acme/c"]);
    assert!(
        event.nodes.iter().all(|n| n.state == NodeState::Passed),
        "{event:#?}"
    );

    let b = ci.triggers_of("acme/b");
    let c = ci.triggers_of("acme/c");
    assert_eq!((b.len(), c.len()), (1, 1));
    let b = &b[0];
    assert!(b.signature_ok, "the trigger carries a valid HMAC signature");
    assert_eq!(b.bearer.as_deref(), Some(TRIGGER_TOKEN));
    assert_eq!(b.payload.root.project.as_str(), "acme/a");
    assert_eq!(b.payload.root.version.as_deref(), Some("1.4.0"));
    assert_eq!(b.payload.root.commit.as_deref(), Some("9f1c2e0"));
    assert_eq!(b.payload.attempt, 1);
    assert_eq!(b.payload.report.url, format!("{}/v1/reports", d.url()));
    assert_eq!(c[0].payload.parents.len(), 1);
    assert_eq!(c[0].payload.parents[0].project.as_str(), "acme/b");

    // c is triggered only after b reported passed.
    let log = ci.log();
    let b_passed = log
        .iter()
        .position(|r| matches!(r, Record::Reporting { project, state: conjunction_protocol::ReportState::Passed, .. } if project == "acme/b"))
        .expect("b passed");
    let c_triggered = log
        .iter()
        .position(|r| matches!(r, Record::Triggered { project, .. } if project == "acme/c"))
        .expect("c triggered");
    assert!(b_passed < c_triggered, "{log:?}");
    d.stop().await;
}

#[tokio::test]
async fn diamond_join_is_triggered_once_after_both_parents_pass() {
    let d = TestDaemon::start().await;
    let ci = super::webhook_ci().await;
    ci.set("acme/b", Behaviour::pass_after(Duration::from_millis(150)));
    ci.set("acme/c", Behaviour::pass_after(Duration::from_millis(10)));
    let token = register(&d.api, "acme/a", &[], None).await;
    register(&d.api, "acme/b", &["acme/a"], Some(&ci)).await;
    register(&d.api, "acme/c", &["acme/a"], Some(&ci)).await;
    register(&d.api, "acme/d", &["acme/b", "acme/c"], Some(&ci)).await;

    let ack = report_root(&d.api, &token, "acme/a", "2.0.0").await;
    let event = settled(&d.api, ack.root).await;
    assert!(
        event.nodes.iter().all(|n| n.state == NodeState::Passed),
        "{event:#?}"
    );

    let joins = ci.triggers_of("acme/d");
    assert_eq!(joins.len(), 1, "the join is triggered exactly once");
    let mut parents: Vec<&str> = joins[0]
        .payload
        .parents
        .iter()
        .map(|p| p.project.as_str())
        .collect();
    parents.sort();
    assert_eq!(parents, ["acme/b", "acme/c"]);

    let log = ci.log();
    let passed = |p: &str| {
        log.iter()
            .position(|r| matches!(r, Record::Reporting { project, state: conjunction_protocol::ReportState::Passed, .. } if project == p))
            .unwrap_or_else(|| panic!("{p} passed"))
    };
    let d_triggered = log
        .iter()
        .position(|r| matches!(r, Record::Triggered { project, .. } if project == "acme/d"))
        .expect("d triggered");
    assert!(
        passed("acme/b") < d_triggered && passed("acme/c") < d_triggered,
        "{log:?}"
    );
    d.stop().await;
}

#[tokio::test]
async fn cycle_among_dependents_is_skipped_and_named_and_an_edge_into_the_root_is_ignored() {
    let d = TestDaemon::start().await;
    let ci = super::webhook_ci().await;
    // a <- b <-> c <- d, and a <-> e (an edge back into the root).
    let token = register(&d.api, "acme/a", &[], None).await;
    register(&d.api, "acme/b", &["acme/a"], Some(&ci)).await;
    let (_, c) = d
        .api
        .put_project(&pid("acme/c"), &spec("acme/c", &["acme/b"], Some(&ci)))
        .await
        .unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // b now depends on c too, closing the cycle: accepted, with a warning naming it.
    let (status, b) = d
        .api
        .put_project(
            &pid("acme/b"),
            &spec("acme/b", &["acme/a", "acme/c"], Some(&ci)),
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(b.warnings, ["dependency cycle: acme/b -> acme/c -> acme/b"]);
    register(&d.api, "acme/d", &["acme/c"], Some(&ci)).await;
    register(&d.api, "acme/e", &["acme/a"], Some(&ci)).await;
    let (_, a) = d
        .api
        .put_project(&pid("acme/a"), &spec("acme/a", &["acme/e"], None))
        .await
        .unwrap();
    assert_eq!(a.warnings, ["dependency cycle: acme/a -> acme/e -> acme/a"]);

    let ack = report_root(&d.api, &token, "acme/a", "3.1.0").await;
    let event = settled(&d.api, ack.root).await;

    let cycle = |p: &str| match &node_of(&event, p).state {
        NodeState::Skipped { cycle } => cycle.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        other => panic!("{p} should be skipped, is {other:?}"),
    };
    assert_eq!(cycle("acme/b"), ["acme/b", "acme/c", "acme/b"]);
    assert_eq!(cycle("acme/c"), ["acme/c", "acme/b", "acme/c"]);
    match &node_of(&event, "acme/d").state {
        NodeState::Blocked { blocked_by } => assert_eq!(blocked_by.project.as_str(), "acme/c"),
        other => panic!("d should be blocked by c, is {other:?}"),
    }
    assert_eq!(state_of(&event, "acme/e"), StateKind::Passed);
    assert_eq!(
        event
            .nodes
            .iter()
            .filter(|n| n.project.as_str() == "acme/a")
            .count(),
        1
    );
    assert!(
        event
            .summary
            .notes
            .iter()
            .any(|n| n.contains("acme/a depends on acme/e")),
        "{:?}",
        event.summary.notes
    );
    // Every node is final, so nothing on the cycle can ever be triggered.
    for p in ["acme/b", "acme/c", "acme/d"] {
        assert_eq!(ci.attempts_of(p), 0, "{p} was never triggered");
    }
    assert_eq!(ci.triggers_of("acme/e").len(), 1);
    d.stop().await;
}

#[tokio::test]
async fn failure_blocks_descendants_and_a_passing_rebuild_unblocks_them() {
    let d = TestDaemon::start().await;
    let ci = super::webhook_ci().await;
    ci.set("acme/b", Behaviour::FailFirstAttempt);
    let token = register(&d.api, "acme/a", &[], None).await;
    register(&d.api, "acme/b", &["acme/a"], Some(&ci)).await;
    register(&d.api, "acme/c", &["acme/b"], Some(&ci)).await;
    register(&d.api, "acme/d", &["acme/c"], Some(&ci)).await;

    let ack = report_root(&d.api, &token, "acme/a", "1.0.0").await;
    let event = settled(&d.api, ack.root).await;
    let b = node_of(&event, "acme/b");
    assert_eq!(b.state, NodeState::Failed);
    assert_eq!(
        b.summary.as_deref(),
        Some("3 tests failed: parser::tests::utf8")
    );
    match &node_of(&event, "acme/c").state {
        NodeState::Blocked { blocked_by } => {
            assert_eq!(blocked_by.project.as_str(), "acme/b");
            assert_eq!(blocked_by.build, b.id);
            assert_eq!(blocked_by.state, StateKind::Failed);
        }
        other => panic!("c should be blocked, is {other:?}"),
    }
    match &node_of(&event, "acme/d").state {
        NodeState::Blocked { blocked_by } => assert_eq!(blocked_by.project.as_str(), "acme/c"),
        other => panic!("d should be blocked, is {other:?}"),
    }
    assert_eq!(ci.triggers_of("acme/c").len(), 0);

    // A blocked node cannot be rebuilt itself; its blocker can.
    let refused = d
        .api
        .rebuild(node_of(&event, "acme/c").id)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("blocked"));
    let rebuilt = d.api.rebuild(b.id).await.expect("rebuild accepted");
    assert_eq!(rebuilt.attempt, 2);

    let event = settled(&d.api, ack.root).await;
    assert!(
        event.nodes.iter().all(|n| n.state == NodeState::Passed),
        "{event:#?}"
    );
    assert_eq!(node_of(&event, "acme/b").attempt, 2);
    assert_eq!(node_of(&event, "acme/c").attempt, 1);
    assert_eq!(ci.triggers_of("acme/b").len(), 2);
    assert_eq!(ci.triggers_of("acme/c").len(), 1);
    assert_eq!(ci.triggers_of("acme/d").len(), 1);
    d.stop().await;
}

#[tokio::test]
async fn dependents_lists_direct_and_transitive_dependents_with_depth() {
    let d = TestDaemon::start().await;
    register(&d.api, "acme/lib", &[], None).await;
    register(&d.api, "acme/app", &["acme/lib"], None).await;
    register(&d.api, "acme/web", &["acme/app"], None).await;
    register(&d.api, "other/tool", &["acme/lib", "acme/web"], None).await;
    let deps = d.api.dependents(&pid("acme/lib")).await.unwrap();
    let shape: Vec<(&str, u32)> = deps.iter().map(|d| (d.project.as_str(), d.depth)).collect();
    assert_eq!(shape, [("acme/app", 1), ("other/tool", 1), ("acme/web", 2)]);
    d.stop().await;
}
