//! Verdicts: each finished build is judged by the daemon against the project's last
//! built result in an earlier event of the same upstream, the event counts them, and
//! a failure that would break a project asking for confirmation is rerun first.

use std::collections::BTreeMap;

use conjunction_protocol::{RootEvent, StateKind, Verdict};
use conjunction_sim::webhook::Behaviour;
use conjunction_tests::daemon::TestDaemon;

use crate::*;

fn verdicts(event: &RootEvent) -> BTreeMap<String, Option<Verdict>> {
    event
        .nodes
        .iter()
        .skip(1)
        .map(|n| (n.project.to_string(), n.verdict))
        .collect()
}

fn expect(pairs: &[(&str, Option<Verdict>)]) -> BTreeMap<String, Option<Verdict>> {
    pairs.iter().map(|(p, v)| ((*p).to_owned(), *v)).collect()
}

#[tokio::test]
async fn builds_are_judged_against_the_last_event_counted_on_the_root_and_rebuilds_judged_again() {
    use Verdict::*;
    let d = TestDaemon::start().await;
    let ci = super::webhook_ci().await;
    let token = register(&d.api, "acme/lib", &[], None).await;
    for p in ["acme/app", "acme/svc", "acme/ops"] {
        register(&d.api, p, &["acme/lib"], Some(&ci)).await;
    }
    // down sits below app: it is blocked when app fails, and blocked says nothing.
    register(&d.api, "acme/down", &["acme/app"], Some(&ci)).await;
    ci.set_default(Behaviour::pass());

    let first = report_root(&d.api, &token, "acme/lib", "1.0.0").await;
    let first = settled(&d.api, first.root).await;
    assert_eq!(
        verdicts(&first),
        expect(&[
            ("acme/app", Some(New)),
            ("acme/svc", Some(New)),
            ("acme/ops", Some(New)),
            ("acme/down", Some(New)),
        ])
    );
    assert!(first.nodes[0].verdict.is_none(), "the root is not judged");
    assert_eq!(first.summary.verdicts, BTreeMap::from([(New, 4)]));

    ci.set(
        "acme/app",
        Behaviour::fail("error[E0432]: unresolved import `lib::old`"),
    );
    ci.set(
        "acme/ops",
        Behaviour::Refuse {
            status: 403,
            body: "{\"message\":\"no\"}".into(),
        },
    );
    let second = report_root(&d.api, &token, "acme/lib", "1.1.0").await;
    let second = settled(&d.api, second.root).await;
    assert_eq!(
        verdicts(&second),
        expect(&[
            ("acme/app", Some(Broke)),
            ("acme/svc", Some(Same)),
            ("acme/ops", Some(Infra)),
            ("acme/down", None),
        ])
    );
    assert_eq!(state_of(&second, "acme/down"), StateKind::Blocked);
    let app = node_of(&second, "acme/app");
    let baseline = app
        .baseline
        .as_ref()
        .expect("a break names what it compared with");
    assert_eq!(baseline.root, first.summary.id);
    assert_eq!(baseline.state, StateKind::Passed);
    assert_eq!(baseline.upstream_version.as_deref(), Some("1.0.0"));
    assert_eq!(
        second.summary.verdicts,
        BTreeMap::from([(Broke, 1), (Same, 1), (Infra, 1)])
    );

    let third = report_root(&d.api, &token, "acme/lib", "1.2.0").await;
    let third = settled(&d.api, third.root).await;
    let app = node_of(&third, "acme/app");
    assert_eq!(app.verdict, Some(StillFailing));
    // The refused trigger left the history alone: ops still compares with event 1.
    ci.set("acme/ops", Behaviour::pass());

    // A rebuild gives the verdict back while it runs and is judged again; app still
    // compares with event 2 (failed), not with its own first attempt here.
    ci.set("acme/app", Behaviour::pass());
    d.api.rebuild(app.id).await.unwrap();
    let ops = node_of(&third, "acme/ops").id;
    d.api.rebuild(ops).await.unwrap();
    let third = eventually("the rebuilds to be judged", WAIT, || async {
        let event = d.api.root(third.summary.id).await.ok()?;
        let app = node_of(&event, "acme/app");
        let down = node_of(&event, "acme/down");
        (app.attempt == 2
            && app.verdict.is_some()
            && node_of(&event, "acme/ops").verdict.is_some()
            && down.verdict.is_some())
        .then_some(event)
    })
    .await;
    assert_eq!(
        verdicts(&third),
        expect(&[
            ("acme/app", Some(Fixed)),
            ("acme/svc", Some(Same)),
            ("acme/ops", Some(Same)),
            ("acme/down", Some(Same)),
        ])
    );
    assert_eq!(
        third.summary.verdicts,
        BTreeMap::from([(Fixed, 1), (Same, 3)]),
        "the counts moved with the rebuilds"
    );
    let ops = node_of(&third, "acme/ops");
    assert_eq!(
        ops.baseline.as_ref().map(|b| b.root),
        Some(first.summary.id),
        "an infra result is not a built result"
    );
    d.stop().await;
}

#[tokio::test]
async fn a_failure_that_passes_on_its_confirming_rerun_is_flaky_and_a_repeated_one_breaks() {
    use Verdict::*;
    let d = TestDaemon::start().await;
    let ci = super::webhook_ci().await;
    let token = register(&d.api, "acme/lib", &[], None).await;
    for p in ["acme/shaky", "acme/broken"] {
        let mut s = spec(p, &["acme/lib"], Some(&ci));
        s.confirm_failures = 2;
        let (status, _) = d.api.put_project(&pid(p), &s).await.unwrap();
        assert_eq!(status, 201);
    }
    let project = d.api.project(&pid("acme/shaky")).await.unwrap();
    assert_eq!(project.confirm_failures, 2, "the setting reads back");
    ci.set_default(Behaviour::pass());
    let first = report_root(&d.api, &token, "acme/lib", "1.0.0").await;
    settled(&d.api, first.root).await;

    ci.set("acme/shaky", Behaviour::FailFirstAttempt);
    ci.set("acme/broken", Behaviour::fail("assertion failed"));
    let second = report_root(&d.api, &token, "acme/lib", "1.1.0").await;
    let second = eventually("the reruns to end", WAIT, || async {
        let event = d.api.root(second.root).await.ok()?;
        event
            .nodes
            .iter()
            .all(|n| n.verdict.is_some() || n.is_root())
            .then_some(event)
    })
    .await;
    let shaky = node_of(&second, "acme/shaky");
    assert_eq!(shaky.verdict, Some(Flaky));
    assert_eq!((shaky.attempt, shaky.rerun), (2, Some(1)));
    assert_eq!(shaky.state.kind(), StateKind::Passed);
    let broken = node_of(&second, "acme/broken");
    assert_eq!(broken.verdict, Some(Broke), "two reruns failed too");
    assert_eq!((broken.attempt, broken.rerun), (3, Some(2)));
    let triggered: Vec<u32> = ci
        .triggers_of("acme/broken")
        .iter()
        .filter(|t| t.payload.build == broken.id)
        .map(|t| t.payload.attempt)
        .collect();
    assert_eq!(triggered, [1, 2, 3], "each rerun is an ordinary attempt");
    assert_eq!(
        second.summary.verdicts,
        BTreeMap::from([(Broke, 1), (Flaky, 1)])
    );

    // A rebuild someone asks for is no rerun, and a failure of a project that failed
    // before is not confirmed again.
    let third = report_root(&d.api, &token, "acme/lib", "1.2.0").await;
    let third = settled(&d.api, third.root).await;
    let broken = node_of(&third, "acme/broken");
    assert_eq!(broken.verdict, Some(StillFailing));
    assert_eq!((broken.attempt, broken.rerun), (1, None));
    d.stop().await;
}
