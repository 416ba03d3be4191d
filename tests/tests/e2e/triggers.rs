//! Trigger delivery: refusals, retries with back-off, and projects without a trigger.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use conjunction_protocol::{NodeState, StateKind};
use conjunction_sim::webhook::Behaviour;
use conjunction_tests::daemon::{DaemonProcess, TestDaemon};

use crate::*;

#[tokio::test]
async fn a_trigger_refused_with_403_fails_at_once_and_names_the_answer() {
    let d = TestDaemon::start().await;
    let ci = super::webhook_ci().await;
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
    let ci = super::webhook_ci().await;
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
    let ci = super::webhook_ci().await;
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
    let ci = super::webhook_ci().await;
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

/// A CI that takes connections and never answers: it reads nothing and holds them.
/// The count is of the connections it took.
async fn hanging_ci() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let taken = Arc::new(AtomicUsize::new(0));
    let count = taken.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
            count.fetch_add(1, Ordering::Relaxed);
        }
    });
    (url, taken)
}

#[tokio::test]
async fn a_ci_that_never_answers_holds_only_its_share_of_deliveries_and_does_not_hold_up_shutdown()
{
    let dir = tempfile::tempdir().unwrap();
    let (hanging, taken) = hanging_ci().await;
    let good = super::webhook_ci().await;
    let config = "[dispatch]\ntimeout_ms = 10000\nconcurrency = 64\nper_host = 16\n";
    let daemon = DaemonProcess::start(dir.path(), config).await;
    let api = &daemon.api;
    let token = register(api, "acme/lib", &[], None).await;
    // 100 dependents whose CI never answers, and one whose CI does.
    let mut entries = Vec::new();
    for i in 0..100 {
        let mut s = spec(&format!("acme/stuck-{i}"), &["acme/lib"], None);
        s.trigger = Some(conjunction_protocol::TriggerSpec::Webhook {
            url: hanging.clone(),
            token: None,
            secret: None,
        });
        entries.push(conjunction_protocol::ProjectEntry {
            id: pid(&format!("acme/stuck-{i}")),
            spec: s,
        });
    }
    api.apply_projects(&entries).await.unwrap();
    let other = register(api, "acme/other-lib", &[], None).await;
    register(api, "acme/app", &["acme/other-lib"], Some(&good)).await;

    // The stuck deliveries go out first and hang; then another project's trigger.
    report_root(api, &token, "acme/lib", "1.0.0").await;
    eventually("the hanging CI to hold its share", WAIT, || async {
        (taken.load(Ordering::Relaxed) >= 16).then_some(())
    })
    .await;
    let started = std::time::Instant::now();
    report_root(api, &other, "acme/other-lib", "1.0.0").await;
    eventually("the answering CI is triggered", WAIT, || async {
        good.triggers_of("acme/app").into_iter().next()
    })
    .await;
    let took = started.elapsed();
    // Without a per-host limit the 64 slots wait out the 10 s timeout first.
    assert!(took < Duration::from_secs(3), "triggered after {took:?}");

    // SIGTERM does not wait out the receivers that hang.
    let stopping = std::time::Instant::now();
    assert!(daemon.terminate().await.success());
    let stop = stopping.elapsed();
    assert!(stop < Duration::from_secs(5), "stopped after {stop:?}");
}

#[tokio::test]
async fn a_trigger_answered_after_the_timeout_is_sent_again_with_the_same_delivery_key() {
    let d = TestDaemon::start_adjusted(|c| c.dispatch.timeout_ms = 500).await;
    let ci = super::webhook_ci().await;
    ci.set(
        "acme/b",
        Behaviour::AnswerLateOnce {
            delay: Duration::from_millis(1_500),
        },
    );
    let token = register(&d.api, "acme/a", &[], None).await;
    register(&d.api, "acme/b", &["acme/a"], Some(&ci)).await;
    let ack = report_root(&d.api, &token, "acme/a", "1.0.0").await;
    let event = settled(&d.api, ack.root).await;
    assert_eq!(state_of(&event, "acme/b"), StateKind::Passed);
    let b = node_of(&event, "acme/b");
    let deliveries: Vec<_> = ci
        .deliveries()
        .into_iter()
        .filter(|d| d.payload.project.as_str() == "acme/b")
        .collect();
    assert_eq!(
        deliveries.len(),
        2,
        "the CI may have taken the first: sent again"
    );
    let key = format!("{}-{}", b.id, b.attempt);
    for delivery in &deliveries {
        assert_eq!(
            delivery.delivery_key.as_deref(),
            Some(key.as_str()),
            "one key to drop the copy by"
        );
    }
    d.stop().await;
}
