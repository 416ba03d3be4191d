//! A database written by the previous release (storage layout 1) opens with the
//! current daemon, is migrated once with a log line, shows a client exactly what it
//! showed before, and goes on working: queued triggers are delivered with their old
//! build tokens, rebuilds unblock what the old event had blocked, and the event log
//! continues where it stopped.

use std::path::{Path, PathBuf};

use conjunction_protocol::ws::ServerMessage;
use conjunction_protocol::{BuildId, NodeState, ProjectSpec, StateKind, TriggerSpec};
use conjunction_sim::webhook::WebhookCi;
use conjunction_tests::daemon::{DaemonProcess, OPERATOR_TOKEN};
use conjunction_tests::eventually;
use conjunction_tests::feed::Feed;
use serde_json::Value;

use crate::*;

const CONFIG: &str =
    "[dispatch]\nbackoff_base_ms = 50\nbackoff_max_ms = 200\nmax_attempts = 1000\n";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/layout-1")
}

/// Points a migrated project's trigger at `ci`, keeping everything else it declares.
async fn retarget(api: &Client, manifest: &Value, project: &str, ci: &WebhookCi) {
    let view = manifest["projects"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["id"] == project))
        .unwrap_or_else(|| panic!("{project} is in the manifest"));
    let mut spec: ProjectSpec = serde_json::from_value(serde_json::json!({
        "name": view["name"],
        "contacts": view["contacts"],
        "depends_on": view["depends_on"],
    }))
    .expect("the manifest's project reads as a spec");
    spec.trigger = Some(TriggerSpec::Webhook {
        url: ci.url(),
        token: Some(TRIGGER_TOKEN.into()),
        secret: Some(SECRET.into()),
    });
    let (status, answer) = api.put_project(&pid(project), &spec).await.unwrap();
    assert_eq!((status, answer.outcome.as_str()), (200, "updated"));
}

#[tokio::test]
async fn a_database_written_by_the_previous_release_opens_with_nothing_lost() {
    if conjunction_tests::redb_only("the layout-1 file of the previous release") {
        return;
    }
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(fixture().join("manifest.json")).expect("the manifest is there"),
    )
    .expect("the manifest is JSON");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture().join("conjunction.redb"),
        dir.path().join("conjunction.redb"),
    )
    .expect("copy the layout-1 database");
    let log = dir.path().join("first-start.log");
    let daemon = DaemonProcess::start_logging(dir.path(), CONFIG, &log).await;
    let api = &daemon.api;

    // Everything a client saw before, it sees now.
    let projects = serde_json::to_value(api.projects().await.unwrap()).unwrap();
    assert_eq!(projects, manifest["projects"]);
    let old_roots = manifest["roots"].as_array().unwrap();
    let summaries = api.roots(500).await.unwrap();
    assert_eq!(summaries.len(), old_roots.len());
    for (summary, old) in summaries.iter().zip(old_roots) {
        let event = serde_json::to_value(api.root(summary.id).await.unwrap()).unwrap();
        assert_eq!(&event, old, "root event {} as before", summary.id);
    }
    let mut feed = Feed::connect(&api.feed_url(Some(0)), OPERATOR_TOKEN)
        .await
        .unwrap();
    assert!(matches!(feed.next(WAIT).await, ServerMessage::Hello { .. }));
    for (i, old) in manifest["events"].as_array().unwrap().iter().enumerate() {
        let replayed = serde_json::to_value(feed.next(WAIT).await).unwrap();
        assert_eq!(&replayed, old, "event {} of the log as before", i + 1);
    }
    feed.close().await;
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(
        log_text.contains("migrated the database to the current layout")
            && log_text.contains("roots=3"),
        "the first start says it migrated: {log_text}"
    );

    // It goes on: the CI that was down comes back, and the triggers queued before the
    // upgrade are delivered and reported with the build tokens they were given then.
    let ci = super::webhook_ci().await;
    for project in ["acme/down", "acme/cli", "acme/docs", "acme/join"] {
        retarget(api, &manifest, project, &ci).await;
    }
    let newest: BuildId = serde_json::from_value(old_roots[0]["id"].clone()).unwrap();
    let older: BuildId = serde_json::from_value(old_roots[1]["id"].clone()).unwrap();
    for root in [newest, older] {
        eventually(
            "the queued trigger to be delivered and pass",
            WAIT,
            || async move {
                let e = api.root(root).await.ok()?;
                (state_of(&e, "acme/down") == StateKind::Passed).then_some(())
            },
        )
        .await;
    }
    assert_eq!(ci.triggers_of("acme/down").len(), 2);

    // In the newest event acme/cli failed and blocked acme/docs and acme/join; its
    // rebuild passes and both follow.
    let event = api.root(newest).await.unwrap();
    let cli = node_of(&event, "acme/cli");
    assert_eq!(cli.state, NodeState::Failed);
    api.rebuild(cli.id)
        .await
        .expect("the migrated build can be rebuilt");
    let event = eventually(
        "the blocked builds to follow the rebuild",
        WAIT,
        || async move {
            let e = api.root(newest).await.ok()?;
            (state_of(&e, "acme/docs") == StateKind::Passed
                && state_of(&e, "acme/join") == StateKind::Passed)
                .then_some(e)
        },
    )
    .await;
    assert_eq!(node_of(&event, "acme/cli").attempt, 2);
    let counts = &event.summary.counts;
    assert_eq!(counts.get(&StateKind::Blocked), Some(&2), "{counts:?}");
    assert_eq!(counts.get(&StateKind::Passed), Some(&7), "{counts:?}");

    // The log continues after the old sequence numbers, and the old report token works.
    let token = manifest["report_tokens"]["acme/lib"].as_str().unwrap();
    let ack = report_root(api, token, "acme/lib", "1.2.0").await;
    assert!(ack.seq > manifest["seq"].as_u64().unwrap());

    // A second start finds the current layout and migrates nothing.
    daemon.terminate().await;
    let again = dir.path().join("second-start.log");
    let daemon = DaemonProcess::start_logging(dir.path(), CONFIG, &again).await;
    assert_eq!(daemon.api.roots(500).await.unwrap().len(), 4);
    let log_text = std::fs::read_to_string(&again).unwrap();
    assert!(!log_text.contains("migrated"), "{log_text}");
    daemon.kill().await;
}
