//! Big things in small pieces: a root event read a page at a time, a snapshot that
//! carries nodes only within its budget, counts kept current by `root_changed`, and a
//! list of projects applied in one transaction or not at all.

use std::time::Duration;

use conjunction_protocol::ws::{Change, ServerMessage};
use conjunction_protocol::{ProjectEntry, StateKind};
use conjunction_sim::webhook::WebhookCi;
use conjunction_tests::daemon::{TestDaemon, OPERATOR_TOKEN};
use conjunction_tests::feed::Feed;
use reqwest::Method;
use serde_json::json;

use crate::*;

fn entry(id: &str, deps: &[&str], ci: Option<&WebhookCi>) -> ProjectEntry {
    ProjectEntry {
        id: pid(id),
        spec: spec(id, deps, ci),
    }
}

#[tokio::test]
async fn a_root_event_is_read_a_page_at_a_time_in_planning_order() {
    let d = TestDaemon::start().await;
    let token = register(&d.api, "acme/lib", &[], None).await;
    let deps: Vec<ProjectEntry> = (0..24)
        .map(|i| entry(&format!("acme/dep-{i:02}"), &["acme/lib"], None))
        .collect();
    d.api.apply_projects(&deps).await.unwrap();
    let ack = report_root(&d.api, &token, "acme/lib", "1.0.0").await;
    let whole = d.api.root(ack.root).await.unwrap();
    assert_eq!(whole.nodes.len(), 25);
    assert!(whole.next_after.is_none());

    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = d.api.root_page(ack.root, after, 10).await.unwrap();
        assert_eq!(page.summary, whole.summary);
        after = page.next_after;
        if let Some(a) = after {
            assert_eq!(Some(a), page.nodes.last().map(|n| n.id));
        }
        pages.push(page.nodes);
        if after.is_none() {
            break;
        }
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
    let paged: Vec<_> = pages.concat();
    assert_eq!(paged, whole.nodes, "the pages together are the whole event");
    assert_eq!(paged[0].id, ack.root, "the root comes first");
    assert!(
        paged.windows(2).all(|w| w[0].id < w[1].id),
        "planning order is build id order"
    );

    // A cursor that is not a node of this event, or not an id at all, is refused.
    let other = report_root(&d.api, &token, "acme/lib", "1.0.1").await;
    for query in [format!("after={}", other.build), "after=nope".into()] {
        let raw = d
            .api
            .raw(
                Method::GET,
                &format!("/v1/roots/{}?{query}", ack.root),
                Some(OPERATOR_TOKEN),
                None,
            )
            .await
            .unwrap();
        assert_eq!(raw.status, 400, "{query}: {}", raw.json());
        assert_eq!(raw.json()["error"], "invalid_query");
    }
    d.stop().await;
}

#[tokio::test]
async fn a_list_of_projects_is_applied_in_one_transaction_or_not_at_all() {
    let d = TestDaemon::start().await;
    let api = &d.api;
    // app is listed before lib, which it depends on: by the end of the list lib is
    // registered, so nothing is worth a warning.
    let first = api
        .apply_projects(&[
            entry("acme/app", &["acme/lib"], None),
            entry("acme/lib", &[], None),
            entry("acme/web", &["acme/app"], None),
        ])
        .await
        .unwrap();
    let outcomes: Vec<(&str, &str, bool, usize)> = first
        .projects
        .iter()
        .map(|p| {
            (
                p.project.id.as_str(),
                p.outcome.as_str(),
                p.report_token.is_some(),
                p.warnings.len(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("acme/app", "created", true, 0),
            ("acme/lib", "created", true, 0),
            ("acme/web", "created", true, 0)
        ]
    );
    let lib_token = first.projects[1].report_token.clone().unwrap();

    let mut changed = entry("acme/app", &["acme/lib"], None);
    changed.spec.name = "Acme App, renamed".into();
    let second = api
        .apply_projects(&[
            entry("acme/lib", &[], None),
            changed,
            entry("acme/tool", &["acme/ghost"], None),
            entry("cyc/a", &["cyc/b"], None),
            entry("cyc/b", &["cyc/a"], None),
        ])
        .await
        .unwrap();
    let outcomes: Vec<&str> = second.projects.iter().map(|p| p.outcome.as_str()).collect();
    assert_eq!(
        outcomes,
        ["unchanged", "updated", "created", "created", "created"]
    );
    assert!(second.projects[2].warnings[0].contains("acme/ghost is not registered yet"));
    assert_eq!(
        second.projects[3].warnings,
        ["dependency cycle: cyc/a -> cyc/b -> cyc/a"]
    );
    assert_eq!(
        second.projects[4].warnings,
        ["dependency cycle: cyc/b -> cyc/a -> cyc/b"]
    );

    // A list with bad entries changes nothing, and the answer names every one.
    let before = serde_json::to_string(&api.projects().await.unwrap()).unwrap();
    let body = json!({"projects": [
        {"id": "acme/fine", "name": "Fine"},
        {"id": "Acme/Bad", "name": "Bad id"},
        {"id": "acme/empty", "name": ""},
        {"id": "acme/twice", "name": "Once"},
        {"id": "acme/twice", "name": "Twice"},
        {"id": "acme/thief", "name": "Thief", "report_token": lib_token},
        {"id": "acme/typo", "name": "Typo", "depend_on": []},
    ]});
    let raw = api
        .raw(
            Method::PUT,
            "/v1/projects",
            Some(OPERATOR_TOKEN),
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await
        .unwrap();
    let answer = raw.json();
    assert_eq!(raw.status, 400, "{answer}");
    assert_eq!(answer["error"], "entries_refused");
    let named: Vec<(u64, &str, &str)> = answer["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["index"].as_u64().unwrap(),
                e["project"].as_str().unwrap(),
                e["error"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        named,
        [
            (1, "Acme/Bad", "invalid_body"),
            (2, "acme/empty", "invalid_field"),
            (4, "acme/twice", "listed_twice"),
            (5, "acme/thief", "token_in_use"),
            (6, "acme/typo", "invalid_body")
        ]
    );
    assert!(answer["entries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["message"].as_str().unwrap().len() > 20));
    let after = serde_json::to_string(&api.projects().await.unwrap()).unwrap();
    assert_eq!(before, after, "a refused list changed nothing");

    // This endpoint takes lists larger than the 1 MiB other bodies are held to.
    let many: Vec<ProjectEntry> = (0..3000)
        .map(|i| {
            let mut e = entry(&format!("bulk/p{i:04}"), &["acme/lib"], None);
            e.spec.contacts[0].name = format!("{i:04} {}", "x".repeat(200));
            e.spec.contacts[0].role = Some("y".repeat(200));
            e
        })
        .collect();
    assert!(serde_json::to_vec(&many).unwrap().len() > 1024 * 1024);
    let applied = api.apply_projects(&many).await.unwrap();
    assert_eq!(applied.projects.len(), 3000);
    assert!(applied.projects.iter().all(|p| p.outcome == "created"));
    assert_eq!(
        api.dependents(&pid("acme/lib")).await.unwrap().len(),
        3000 + 2
    );
    d.stop().await;
}

#[tokio::test]
async fn a_snapshot_holds_nodes_within_its_budget_and_root_changed_keeps_counts_current() {
    let d = TestDaemon::start_adjusted(|c| c.feed.snapshot_nodes = 6).await;
    let ci = super::webhook_ci().await;
    let token = register(&d.api, "acme/lib", &[], None).await;
    for i in 0..4 {
        register(&d.api, &format!("acme/small-{i}"), &["acme/lib"], Some(&ci)).await;
    }
    let small = report_root(&d.api, &token, "acme/lib", "1.0.0").await;
    settled(&d.api, small.root).await;
    for i in 0..3 {
        register(&d.api, &format!("acme/more-{i}"), &["acme/lib"], Some(&ci)).await;
    }

    let mut feed = Feed::connect(&d.api.feed_url(None), OPERATOR_TOKEN)
        .await
        .unwrap();
    assert!(matches!(feed.next(WAIT).await, ServerMessage::Hello { .. }));
    assert!(matches!(
        feed.next(WAIT).await,
        ServerMessage::Snapshot { .. }
    ));
    let large = report_root(&d.api, &token, "acme/lib", "1.1.0").await;
    let done = settled(&d.api, large.root).await;
    assert_eq!(done.nodes.len(), 8);
    // The last root_changed of the new event carries its final counts, so a client
    // that does not hold its nodes still shows them right.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "final counts announced"
        );
        if let ServerMessage::Event(e) = feed.next(WAIT).await {
            if let Change::RootChanged { root } = e.change {
                if root.id == large.root && root.counts == done.summary.counts {
                    break;
                }
            }
        }
    }
    assert_eq!(
        done.summary.counts.get(&StateKind::Passed),
        Some(&8),
        "{:?}",
        done.summary.counts
    );

    // A new client gets both summaries, but the nodes of the small event only: the
    // large one does not fit the budget of six.
    let mut fresh = Feed::connect(&d.api.feed_url(None), OPERATOR_TOKEN)
        .await
        .unwrap();
    assert!(matches!(
        fresh.next(WAIT).await,
        ServerMessage::Hello { .. }
    ));
    match fresh.next(Duration::from_secs(5)).await {
        ServerMessage::Snapshot { roots, events, .. } => {
            let ids: Vec<_> = roots.iter().map(|r| r.id).collect();
            assert_eq!(ids, [large.root, small.root]);
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].summary.id, small.root);
            assert_eq!(events[0].nodes.len(), 5);
        }
        other => panic!("expected a snapshot, got {other:?}"),
    }
    d.stop().await;
}
