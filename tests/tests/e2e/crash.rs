//! Durability: the real `conjunctiond` binary killed with SIGKILL right after it
//! acknowledged reports, then restarted on the same data.

use std::collections::BTreeSet;
use std::time::Duration;

use conjunction_protocol::ws::ServerMessage;
use conjunction_protocol::{BuildId, StateKind};
use conjunction_sim::webhook::Behaviour;
use conjunction_tests::daemon::DaemonProcess;
use conjunction_tests::eventually;

use crate::*;

const CONFIG: &str =
    "[dispatch]\nbackoff_base_ms = 50\nbackoff_max_ms = 200\nmax_attempts = 1000\n";

#[tokio::test]
async fn acknowledged_reports_survive_sigkill_and_queued_triggers_are_delivered_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ci = super::webhook_ci().await;
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

#[tokio::test]
async fn a_cascade_still_being_queued_when_killed_carries_on_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    // The CI takes every trigger and never reports: what is checked is that every
    // dependent is queued and delivered, once, whatever the kill interrupted.
    let ci = super::webhook_ci().await;
    ci.set_default(Behaviour::Silent);
    let daemon = DaemonProcess::start(dir.path(), CONFIG).await;
    let token = register(&daemon.api, "acme/lib", &[], None).await;
    const DEPENDENTS: usize = 5_000;
    let entries: Vec<conjunction_protocol::ProjectEntry> = (0..DEPENDENTS)
        .map(|i| {
            let id = format!("wide/p{i:04}");
            conjunction_protocol::ProjectEntry {
                id: pid(&id),
                spec: spec(&id, &["acme/lib"], Some(&ci)),
            }
        })
        .collect();
    daemon.api.apply_projects(&entries).await.unwrap();

    // The root report is acknowledged once the event is planned and its first
    // triggers queued; the rest are queued in the batches after it. Killed now, the
    // daemon has recorded which builds it had still to queue.
    let ack = report_root(&daemon.api, &token, "acme/lib", "2.0.0").await;
    let planned = daemon.api.root(ack.root).await.unwrap();
    assert_eq!(
        planned.nodes.len(),
        DEPENDENTS + 1,
        "every node exists at once"
    );
    daemon.kill().await;

    let daemon = DaemonProcess::start(dir.path(), CONFIG).await;
    let api = daemon.api.clone();
    eventually(
        "every dependent to be triggered after the restart",
        Duration::from_secs(120),
        || {
            let api = api.clone();
            async move {
                let roots = api.roots(1).await.ok()?;
                let triggered = roots[0].counts.get(&StateKind::Triggered).copied();
                (triggered == Some(DEPENDENTS as u32)).then_some(())
            }
        },
    )
    .await;
    // Each dependent was queued once: every delivery it got (one in flight at the
    // kill is sent again) is of the same build and attempt.
    let mut builds: std::collections::BTreeMap<String, BTreeSet<(BuildId, u32)>> =
        Default::default();
    for d in ci.deliveries() {
        builds
            .entry(d.payload.project.to_string())
            .or_default()
            .insert((d.payload.build, d.payload.attempt));
    }
    assert_eq!(builds.len(), DEPENDENTS);
    assert!(
        builds
            .values()
            .all(|b| b.len() == 1 && b.iter().all(|(_, a)| *a == 1)),
        "a dependent was queued twice"
    );
    daemon.kill().await;
}

#[tokio::test]
async fn the_database_holds_no_build_token_and_a_lost_key_still_lets_queued_builds_report() {
    let dir = tempfile::tempdir().unwrap();
    let ci = super::webhook_ci().await;
    // The first delivery meets a CI that is down; the retry is due 1-2 s later.
    ci.set("acme/app", Behaviour::UnavailableTimes { times: 1 });
    let slow_retry = "[dispatch]\nbackoff_base_ms = 2000\nbackoff_max_ms = 2000\n";
    let daemon = DaemonProcess::start(dir.path(), slow_retry).await;
    let token = register(&daemon.api, "acme/lib", &[], None).await;
    register(&daemon.api, "acme/app", &["acme/lib"], Some(&ci)).await;
    let ack = report_root(&daemon.api, &token, "acme/lib", "1.0.0").await;
    let first = eventually("the first delivery", WAIT, || async {
        ci.deliveries().into_iter().next()
    })
    .await;
    assert_eq!(first.answered, 503);
    // Restarted where the CI reports to.
    let addr = daemon.addr;
    assert!(daemon.terminate().await.success());

    // The trigger is still queued, and the file does not hold its token.
    let token_sent = first.payload.report.token;
    assert!(token_sent.starts_with("cjb_"));
    let db = conjunction_tests::postgres::stored_bytes(dir.path());
    assert!(
        !db.windows(token_sent.len())
            .any(|w| w == token_sent.as_bytes()),
        "the database holds the queued build token"
    );
    let key = dir.path().join("build-token.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only the daemon's user reads the key");
    }

    // Without its key the daemon makes a new one; the queued trigger goes out with a
    // token from it, and the build's report with that token is taken.
    std::fs::remove_file(&key).unwrap();
    let daemon = DaemonProcess::start_on(addr, dir.path(), slow_retry).await;
    let event = settled(&daemon.api, ack.root).await;
    assert_eq!(state_of(&event, "acme/app"), StateKind::Passed);
    let second = ci.triggers_of("acme/app").pop().unwrap();
    assert_ne!(
        second.payload.report.token, token_sent,
        "a token of the new key"
    );
    assert!(daemon.terminate().await.success());
}

#[tokio::test]
async fn with_quick_repair_a_start_after_sigkill_does_not_read_the_whole_file() {
    if conjunction_tests::redb_only("redb's repair of the file after a crash") {
        return;
    }
    for (quick, repairs) in [(false, true), (true, false)] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("conjunctiond.log");
        let config = format!("[store]\nquick_repair = {quick}\n");
        let daemon = DaemonProcess::start_logging(dir.path(), &config, &log).await;
        let token = register(&daemon.api, "acme/lib", &[], None).await;
        let ack = report_root(&daemon.api, &token, "acme/lib", "1.0.0").await;
        let addr = daemon.addr;
        daemon.kill().await;
        let daemon = DaemonProcess::start_on_logging(addr, dir.path(), &config, &log).await;
        assert_eq!(
            daemon.api.root(ack.root).await.unwrap().summary.id,
            ack.root
        );
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            text.contains("not closed cleanly"),
            repairs,
            "quick_repair = {quick}: {text}"
        );
        assert!(daemon.terminate().await.success());
    }
}
