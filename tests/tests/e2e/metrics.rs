//! `GET /metrics`: off unless configured, for operator tokens and the metrics token
//! only, and its numbers move with the traffic.

use conjunction_sim::webhook::Behaviour;
use conjunction_tests::daemon::{TestDaemon, OPERATOR_TOKEN};
use reqwest::Method;

use crate::*;

/// The value of the sample named `name` with exactly `labels` (`{a="b"}`, or empty),
/// from the OpenMetrics text.
pub fn sample(text: &str, name: &str, labels: &str) -> f64 {
    let prefix = format!("{name}{labels} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0.0, |v| v.split(' ').next().unwrap().parse().unwrap())
}

pub async fn scrape(d: &TestDaemon, token: &str) -> (u16, String) {
    let r = d
        .api
        .raw(Method::GET, "/metrics", Some(token), None)
        .await
        .unwrap();
    (r.status, String::from_utf8(r.body).unwrap())
}

#[tokio::test]
async fn metrics_are_off_unless_configured() {
    let d = TestDaemon::start().await;
    let (status, body) = scrape(&d, OPERATOR_TOKEN).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no_such_endpoint"), "{body}");
    d.stop().await;
}

#[tokio::test]
async fn the_counters_move_with_the_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("metrics-token");
    std::fs::write(&token_file, "metrics-scraper-token-0123456789\n").unwrap();
    let d = TestDaemon::start_adjusted(|c| {
        c.metrics.enabled = true;
        c.metrics.token_file = Some(token_file.clone());
    })
    .await;
    let ci = super::webhook_ci().await;
    let token = register(&d.api, "acme/lib", &[], None).await;
    for p in ["acme/a", "acme/b", "acme/c"] {
        register(&d.api, p, &["acme/lib"], Some(&ci)).await;
    }
    ci.set_default(Behaviour::pass());

    // The metrics token reads /metrics and nothing else; no token reads nothing.
    let other = d
        .api
        .raw(
            Method::GET,
            "/v1/roots",
            Some("metrics-scraper-token-0123456789"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(other.status, 401);
    let none = d
        .api
        .raw(Method::GET, "/metrics", None, None)
        .await
        .unwrap();
    assert_eq!(none.status, 401);
    let (status, before) = scrape(&d, "metrics-scraper-token-0123456789").await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(
        sample(
            &before,
            "conjunction_refusals_total",
            "{code=\"unauthorized\"}"
        ),
        2.0,
        "{before}"
    );

    let root = report_root(&d.api, &token, "acme/lib", "1.0.0").await;
    settled(&d.api, root.root).await;
    // Two refused reports: a token nobody knows, and an unknown build.
    let refused = d
        .api
        .raw(
            Method::POST,
            "/v1/reports",
            Some("not-a-token-at-all"),
            Some(serde_json::to_vec(&root_report("acme/lib", "1.0.1")).unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(refused.status, 401);

    let (_, after) = scrape(&d, OPERATOR_TOKEN).await;
    let moved =
        |name: &str, labels: &str| sample(&after, name, labels) - sample(&before, name, labels);
    // The root report and three dependents' passed reports (and their running ones).
    assert_eq!(
        moved(
            "conjunction_reports_received_total",
            "{via=\"api\",state=\"passed\"}"
        ),
        4.0,
        "{after}"
    );
    assert_eq!(
        moved("conjunction_refusals_total", "{code=\"unauthorized\"}"),
        1.0,
        "{after}"
    );
    assert_eq!(
        moved(
            "conjunction_deliveries_total",
            "{kind=\"webhook\",outcome=\"delivered\"}"
        ),
        3.0,
        "{after}"
    );
    // Commands are grouped into batches as they come, so their count is what is
    // certain: 7 reports and 3 delivery outcomes went through the writer at least.
    assert!(
        moved("conjunction_commit_batch_size_sum", "") >= 10.0,
        "{after}"
    );
    assert!(
        moved("conjunction_commit_batch_size_count", "") >= 1.0,
        "{after}"
    );
    assert!(
        sample(&after, "conjunction_commit_fsync_seconds_sum", "") > 0.0,
        "{after}"
    );
    assert_eq!(sample(&after, "conjunction_projects", ""), 4.0, "{after}");
    assert_eq!(
        sample(&after, "conjunction_cascades_in_progress", ""),
        0.0,
        "{after}"
    );
    assert!(
        sample(&after, "conjunction_event_log_events", "")
            > sample(&before, "conjunction_event_log_events", ""),
        "{after}"
    );
    assert!(
        sample(&after, "conjunction_database_bytes", "") > 0.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, "conjunction_outbox_depth", "{outbox=\"triggers\"}"),
        0.0,
        "{after}"
    );
    assert!(
        after.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );
    d.stop().await;
}

#[tokio::test]
async fn refused_reports_and_noted_webhooks_are_not_counted_as_reports_taken() {
    let d = TestDaemon::start_adjusted(|c| c.metrics.enabled = true).await;
    let ci = super::webhook_ci().await;
    let lib = register(&d.api, "acme/lib", &[], None).await;
    let app = register(&d.api, "acme/app", &["acme/lib"], Some(&ci)).await;
    let secret = "webhook-secret-0123456789";
    let source = conjunction_protocol::SourceSpec::Github {
        secret: secret.into(),
        repo: Some("acme/gh".into()),
        workflow: Some("release.yml".into()),
        branch: Some("main".into()),
        candidates: false,
        candidates_from_forks: false,
    };
    let spec = conjunction_protocol::ProjectSpec {
        source: Some(source),
        ..spec("acme/gh", &[], None)
    };
    d.api.put_project(&pid("acme/gh"), &spec).await.unwrap();
    let root = report_root(&d.api, &lib, "acme/lib", "1.0.0").await;
    let event = settled(&d.api, root.root).await;
    let built = node_of(&event, "acme/app").clone();
    // A report is counted once its answer is on its way, a moment after its state
    // is readable: wait until the release's two passes are counted.
    let before =
        conjunction_tests::eventually("the release's reports to be counted", WAIT, || async {
            let (_, text) = scrape(&d, OPERATOR_TOKEN).await;
            let passed = sample(
                &text,
                "conjunction_reports_received_total",
                "{via=\"api\",state=\"passed\"}",
            );
            (passed == 2.0).then_some(text)
        })
        .await;

    // 403: acme/app's token for acme/lib's release.
    let forbidden = d.api.report(&app, &root_report("acme/lib", "1.0.1")).await;
    assert_eq!(forbidden.unwrap_err().code(), Some("forbidden"));
    // 409: a passed build reported failed.
    let mut late = conjunction_protocol::Report::new(pid("acme/app"), ReportState::Failed);
    late.build = Some(built.id);
    late.attempt = Some(1);
    let conflict = d.api.report(&app, &late).await;
    assert_eq!(conflict.unwrap_err().code(), Some("already_final"));
    // 401: no such token.
    assert!(d
        .api
        .report("no-such-token-anywhere", &root_report("acme/lib", "1.0.2"))
        .await
        .is_err());
    // A green run on a branch the source does not count: 202 noted.
    let run = serde_json::to_vec(&serde_json::json!({
        "action": "completed",
        "workflow_run": {"id": 5, "path": ".github/workflows/release.yml", "status": "completed",
                         "conclusion": "success", "head_branch": "feature", "run_attempt": 1},
        "repository": {"full_name": "acme/gh"},
    }))
    .unwrap();
    let noted = reqwest::Client::new()
        .post(format!("{}/v1/hooks/github/acme%2Fgh", d.url()))
        .header("x-github-event", "workflow_run")
        .header("x-github-delivery", "noted-1")
        .header(
            "x-hub-signature-256",
            conjunction_sim::native::github_signature(secret, &run),
        )
        .body(run)
        .send()
        .await
        .unwrap();
    assert_eq!(noted.status(), 202);

    let (_, after) = scrape(&d, OPERATOR_TOKEN).await;
    let moved =
        |name: &str, labels: &str| sample(&after, name, labels) - sample(&before, name, labels);
    let taken = "conjunction_reports_received_total";
    for state in ["passed", "failed", "running"] {
        for via in ["api", "webhook"] {
            let labels = format!("{{via=\"{via}\",state=\"{state}\"}}");
            assert_eq!(moved(taken, &labels), 0.0, "{labels}: {after}");
        }
    }
    assert_eq!(
        moved(taken, "{via=\"webhook\",state=\"ignored\"}"),
        1.0,
        "{after}"
    );
    for code in ["forbidden", "already_final", "unauthorized"] {
        let labels = format!("{{code=\"{code}\"}}");
        assert_eq!(
            moved("conjunction_refusals_total", &labels),
            1.0,
            "{code}: {after}"
        );
    }
    d.stop().await;
}

#[tokio::test]
async fn the_oldest_outbox_entry_ages_between_scrapes_while_the_dispatcher_sleeps() {
    // The first try fails and the next is a minute away: the dispatcher sleeps.
    let d = TestDaemon::start_adjusted(|c| {
        c.metrics.enabled = true;
        c.dispatch.backoff_base_ms = 120_000;
        c.dispatch.backoff_max_ms = 120_000;
    })
    .await;
    let ci = super::webhook_ci().await;
    let lib = register(&d.api, "acme/lib", &[], None).await;
    register(&d.api, "acme/app", &["acme/lib"], Some(&ci)).await;
    ci.set("acme/app", Behaviour::UnavailableTimes { times: 100 });
    report_root(&d.api, &lib, "acme/lib", "1.0.0").await;
    conjunction_tests::eventually("the first try", WAIT, || async {
        (ci.attempts_of("acme/app") == 1).then_some(())
    })
    .await;
    let oldest = |text: &str| {
        sample(
            text,
            "conjunction_outbox_oldest_seconds",
            "{outbox=\"triggers\"}",
        )
    };
    let first = conjunction_tests::eventually("a waiting entry", WAIT, || async {
        let (_, text) = scrape(&d, OPERATOR_TOKEN).await;
        (sample(&text, "conjunction_outbox_depth", "{outbox=\"triggers\"}") == 1.0)
            .then(|| oldest(&text))
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let (_, text) = scrape(&d, OPERATOR_TOKEN).await;
    let second = oldest(&text);
    assert!(
        second - first >= 1.4,
        "the age moves with the clock, not with the dispatcher: {first} then {second}"
    );
    assert_eq!(ci.attempts_of("acme/app"), 1, "the dispatcher slept");
    d.stop().await;
}
