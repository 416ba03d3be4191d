//! Durability: the real `conjunctiond` binary killed with SIGKILL right after it
//! acknowledged reports, then restarted on the same data.

use std::collections::BTreeSet;
use std::time::Duration;

use conjunction_protocol::ws::ServerMessage;
use conjunction_protocol::{BuildId, StateKind};
use conjunction_tests::daemon::DaemonProcess;
use conjunction_tests::eventually;
use conjunction_tests::mock_ci::{Behaviour, MockCi};

use crate::*;

const CONFIG: &str =
    "[dispatch]\nbackoff_base_ms = 50\nbackoff_max_ms = 200\nmax_attempts = 1000\n";

#[tokio::test]
async fn acknowledged_reports_survive_sigkill_and_queued_triggers_are_delivered_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ci = MockCi::start(Some(SECRET)).await;
    // The downstream CI is down: every trigger stays queued in the outbox.
    ci.set_default(Behaviour::Refuse {
        status: 503,
        body: "down for maintenance".into(),
    });

    let daemon = DaemonProcess::start(dir.path(), CONFIG).await;
    let token = register(&daemon.api, "acme/lib", &[], None).await;
    register(&daemon.api, "acme/app", &["acme/lib"], Some(&ci)).await;

    const REPORTS: usize = 40;
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..REPORTS {
        let api = daemon.api.clone();
        let token = token.clone();
        sends.spawn(async move {
            api.report(&token, &root_report("acme/lib", &format!("1.0.{i}")))
                .await
        });
    }
    let mut acked: BTreeSet<BuildId> = BTreeSet::new();
    while let Some(answer) = sends.join_next().await {
        acked.insert(answer.unwrap().expect("report acknowledged").root);
    }
    // Killed the moment the last acknowledgement arrived: no graceful shutdown.
    daemon.kill().await;
    assert_eq!(acked.len(), REPORTS);

    ci.set_default(Behaviour::pass());
    let daemon = DaemonProcess::start(dir.path(), CONFIG).await;
    let roots: BTreeSet<BuildId> = daemon
        .api
        .roots(500)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert!(
        acked.is_subset(&roots),
        "lost: {:?}",
        acked.difference(&roots).collect::<Vec<_>>()
    );

    // Every acknowledged root's downstream trigger is delivered and its build passes.
    for root in &acked {
        let api = daemon.api.clone();
        let root = *root;
        let event = eventually(
            "the downstream build after restart",
            Duration::from_secs(30),
            || {
                let api = api.clone();
                async move {
                    let e = api.root(root).await.ok()?;
                    (e.nodes.len() == 2
                        && e.nodes.iter().all(|n| n.state.kind() == StateKind::Passed))
                    .then_some(e)
                }
            },
        )
        .await;
        let app = node_of(&event, "acme/app");
        assert!(ci
            .triggers_of("acme/app")
            .iter()
            .any(|t| t.payload.build == app.id));
    }
    daemon.kill().await;
}

#[tokio::test]
async fn sigterm_shuts_down_cleanly_with_a_feed_client_connected_and_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = DaemonProcess::start(dir.path(), CONFIG).await;
    let token = register(&daemon.api, "acme/lib", &[], None).await;
    let ack = report_root(&daemon.api, &token, "acme/lib", "1.0.0").await;
    let mut feed = conjunction_tests::feed::Feed::connect(
        &daemon.api.feed_url(None),
        conjunction_tests::daemon::OPERATOR_TOKEN,
    )
    .await
    .unwrap();
    let hello = feed.next(Duration::from_secs(5)).await;
    assert!(matches!(hello, ServerMessage::Hello { .. }), "{hello:?}");
    let snapshot = feed.next(Duration::from_secs(5)).await;
    assert!(
        matches!(snapshot, ServerMessage::Snapshot { .. }),
        "{snapshot:?}"
    );

    let status = daemon.terminate().await;
    assert!(status.success(), "a clean exit after SIGTERM: {status}");
    assert!(
        feed.next_or_end(Duration::from_secs(5)).await.is_none(),
        "the feed was closed"
    );

    let daemon = DaemonProcess::start(dir.path(), CONFIG).await;
    let root = daemon
        .api
        .root(ack.root)
        .await
        .expect("the root event is still there");
    assert_eq!(root.nodes[0].state.kind(), StateKind::Passed);
    daemon.kill().await;
}
