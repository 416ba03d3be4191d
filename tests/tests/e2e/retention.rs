//! Retention, with a clock the test moves: finished root events older than the
//! cutoff go with their builds and release lines, except the last few of every
//! upstream and cascades still running; the log is cut at the same age, and a client
//! resuming from before the cut gets a snapshot.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use conjunction_daemon::Clock;
use conjunction_daemon::RetentionConfig;
use conjunction_protocol::ws::ServerMessage;
use conjunction_protocol::{BuildId, Timestamp};
use conjunction_sim::webhook::Behaviour;
use conjunction_tests::daemon::{TestDaemon, OPERATOR_TOKEN};
use conjunction_tests::feed::Feed;
use conjunction_tui::client::Client;

use crate::*;

const DAY_MS: u64 = 24 * 3600 * 1000;

/// The versions of each upstream's root events the daemon lists.
async fn kept(api: &Client) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for root in api.roots(500).await.unwrap() {
        out.entry(root.project.to_string())
            .or_default()
            .push(root.version.unwrap_or_default());
    }
    for versions in out.values_mut() {
        versions.sort();
    }
    out
}

fn versions(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    pairs
        .iter()
        .map(|(p, v)| ((*p).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
        .collect()
}

#[tokio::test]
async fn old_finished_events_go_but_the_last_of_each_upstream_and_running_cascades_stay() {
    let now = Arc::new(AtomicU64::new(
        Timestamp::from_system_time(std::time::SystemTime::now()).0,
    ));
    let clock = now.clone();
    let d = TestDaemon::start_adjusted(move |c| {
        c.retention = RetentionConfig {
            enabled: true,
            keep_days: 1.0,
            keep_per_upstream: 2,
            interval_ms: 50,
        };
        c.clock = Clock::new(move || Timestamp(clock.load(Ordering::Relaxed)));
    })
    .await;
    let ci = super::webhook_ci().await;
    let lib = register(&d.api, "acme/lib", &[], None).await;
    let other = register(&d.api, "acme/other", &[], None).await;
    let slow = register(&d.api, "acme/slow", &[], None).await;
    for p in ["acme/a", "acme/b"] {
        register(&d.api, p, &["acme/lib"], Some(&ci)).await;
    }
    register(&d.api, "acme/stuck", &["acme/slow"], Some(&ci)).await;
    ci.set_default(Behaviour::pass());
    ci.set("acme/stuck", Behaviour::Silent);

    let mut lib_roots: Vec<BuildId> = Vec::new();
    for v in ["1.0.0", "1.0.1", "1.0.2", "1.0.3", "1.0.4"] {
        let ack = report_root(&d.api, &lib, "acme/lib", v).await;
        settled(&d.api, ack.root).await;
        lib_roots.push(ack.root);
    }
    let oldest = d.api.root(lib_roots[0]).await.unwrap();
    let old_build = node_of(&oldest, "acme/a").id;
    report_root(&d.api, &other, "acme/other", "0.1.0").await;
    // A cascade that never finishes: its CI stays silent.
    report_root(&d.api, &slow, "acme/slow", "3.0.0").await;

    tokio::time::sleep(Duration::from_millis(300)).await;
    let everything = versions(&[
        ("acme/lib", &["1.0.0", "1.0.1", "1.0.2", "1.0.3", "1.0.4"]),
        ("acme/other", &["0.1.0"]),
        ("acme/slow", &["3.0.0"]),
    ]);
    assert_eq!(kept(&d.api).await, everything, "nothing is a day old yet");

    // Two days later.
    now.fetch_add(2 * DAY_MS, Ordering::Relaxed);
    let after = eventually("retention to prune", WAIT, || async {
        let k = kept(&d.api).await;
        (k != everything).then_some(k)
    })
    .await;
    assert_eq!(
        after,
        versions(&[
            ("acme/lib", &["1.0.3", "1.0.4"]),
            ("acme/other", &["0.1.0"]),
            ("acme/slow", &["3.0.0"]),
        ]),
        "the last two of each upstream and the running cascade stay"
    );
    // The pruned events' builds and release lines went with them.
    assert!(d.api.build(old_build).await.is_err());
    let lines: Vec<String> = d
        .api
        .releases(&pid("acme/lib"))
        .await
        .unwrap()
        .lines
        .into_iter()
        .map(|l| l.version)
        .collect();
    assert_eq!(lines, ["1.0.4", "1.0.3"]);

    // The log was cut too: a client resuming from its start gets a snapshot.
    let url = format!("ws://{}/v1/ws?since=1", d.addr);
    let mut feed = Feed::connect(&url, OPERATOR_TOKEN).await.unwrap();
    assert!(matches!(feed.next(WAIT).await, ServerMessage::Hello { .. }));
    assert!(
        matches!(feed.next(WAIT).await, ServerMessage::Snapshot { .. }),
        "a resume from a pruned sequence number starts from a snapshot"
    );

    // Reports go on, and the next release pushes 1.0.3 out.
    let ack = report_root(&d.api, &lib, "acme/lib", "2.0.0").await;
    settled(&d.api, ack.root).await;
    let after = eventually("the next round", WAIT, || async {
        let k = kept(&d.api).await;
        (k["acme/lib"] == ["1.0.4", "2.0.0"]).then_some(k)
    })
    .await;
    assert_eq!(after["acme/slow"], ["3.0.0"]);
    d.stop().await;
}
