//! Trigger delivery: refusals, retries with back-off, and projects without a trigger.

use conjunction_protocol::{NodeState, StateKind};
use conjunction_tests::daemon::TestDaemon;
use conjunction_tests::mock_ci::{Behaviour, MockCi};

use crate::*;

#[tokio::test]
async fn a_trigger_refused_with_403_fails_at_once_and_names_the_answer() {
    let d = TestDaemon::start().await;
    let ci = MockCi::start(Some(SECRET)).await;
    ci.set(
        "acme/b",
        Behaviour::Refuse {
            status: 403,
            body: "{\"message\":\"trigger token expired\"}".into(),
        },
    );
    let token = register(&d.api, "acme/a", &[], None).await;
    register(&d.api, "acme/b", &["acme/a"], Some(&ci)).await;
    register(&d.api, "acme/c", &["acme/b"], Some(&ci)).await;

    let ack = report_root(&d.api, &token, "acme/a", "1.0.0").await;
    let event = settled(&d.api, ack.root).await;
    match &node_of(&event, "acme/b").state {
        NodeState::TriggerFailed { reason } => {
            assert!(reason.contains("403"), "{reason}");
            assert!(reason.contains("trigger token expired"), "{reason}");
        }
        other => panic!("b should have failed to trigger, is {other:?}"),
    }
    assert_eq!(ci.attempts_of("acme/b"), 1, "a 403 is not retried");
    assert_eq!(state_of(&event, "acme/c"), StateKind::Blocked);
    d.stop().await;
}

#[tokio::test]
async fn a_trigger_answered_503_twice_is_retried_and_then_succeeds() {
    let d = TestDaemon::start().await;
    let ci = MockCi::start(Some(SECRET)).await;
    ci.set("acme/b", Behaviour::UnavailableTimes { times: 2 });
    let token = register(&d.api, "acme/a", &[], None).await;
    register(&d.api, "acme/b", &["acme/a"], Some(&ci)).await;

    let ack = report_root(&d.api, &token, "acme/a", "1.0.0").await;
    let event = settled(&d.api, ack.root).await;
    assert_eq!(state_of(&event, "acme/b"), StateKind::Passed);
    let answers: Vec<u16> = ci
        .deliveries()
        .iter()
        .filter(|x| x.payload.project.as_str() == "acme/b")
        .map(|x| x.answered)
        .collect();
    assert_eq!(answers, [503, 503, 201]);
    // Every retry carried the same build, attempt and build token.
    let tokens: std::collections::BTreeSet<String> = ci
        .deliveries()
        .iter()
        .map(|x| x.payload.report.token.clone())
        .collect();
    assert_eq!(tokens.len(), 1);
    d.stop().await;
}

#[tokio::test]
async fn a_trigger_that_stays_unreachable_fails_after_the_configured_attempts() {
    let d = TestDaemon::start().await;
    let ci = MockCi::start(Some(SECRET)).await;
    ci.set(
        "acme/b",
        Behaviour::Refuse {
            status: 502,
            body: "bad gateway".into(),
        },
    );
    let token = register(&d.api, "acme/a", &[], None).await;
    register(&d.api, "acme/b", &["acme/a"], Some(&ci)).await;
    let ack = report_root(&d.api, &token, "acme/a", "1.0.0").await;
    let event = settled(&d.api, ack.root).await;
    match &node_of(&event, "acme/b").state {
        NodeState::TriggerFailed { reason } => {
            assert!(reason.contains("gave up after 5 attempts"), "{reason}")
        }
        other => panic!("b should have failed to trigger, is {other:?}"),
    }
    assert_eq!(ci.attempts_of("acme/b"), 5);
    d.stop().await;
}

#[tokio::test]
async fn a_dependent_without_a_trigger_fails_to_trigger_and_blocks_its_dependents() {
    let d = TestDaemon::start().await;
    let ci = MockCi::start(Some(SECRET)).await;
    let token = register(&d.api, "acme/a", &[], None).await;
    register(&d.api, "acme/b", &["acme/a"], None).await;
    register(&d.api, "acme/c", &["acme/b"], Some(&ci)).await;
    let ack = report_root(&d.api, &token, "acme/a", "1.0.0").await;
    let event = settled(&d.api, ack.root).await;
    match &node_of(&event, "acme/b").state {
        NodeState::TriggerFailed { reason } => {
            assert_eq!(reason, "acme/b has no trigger configured")
        }
        other => panic!("b should have failed to trigger, is {other:?}"),
    }
    assert_eq!(state_of(&event, "acme/c"), StateKind::Blocked);
    assert_eq!(ci.attempts_of("acme/c"), 0);
    d.stop().await;
}
