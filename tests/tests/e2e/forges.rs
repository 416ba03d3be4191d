//! Forge reports: an upstream's dependents' results on its own commit, in its own
//! forge, through the forge outbox: a GitHub App's check run, GitHub, GitLab and
//! Forgejo commit statuses, a Buildkite annotation and a Jenkins build description,
//! against a simulated forge that follows each documented API strictly.

use std::time::{Duration, Instant};

use conjunction_daemon::Settings;
use conjunction_protocol::forge::{Forge, ForgeDelivery, GithubApp, ReportTarget, CONTEXT};
use conjunction_protocol::{BuildId, RootEvent};
use conjunction_sim::forge::{app_key, MockForge, JENKINS_USER, TOKEN};
use conjunction_sim::webhook::Behaviour;
use conjunction_tests::daemon::{free_address, TestDaemon};
use conjunction_tui::client::Client;

use crate::*;

fn config(dir: &std::path::Path) -> Settings {
    let mut c = Settings::new(dir);
    c.dispatch = conjunction_tests::daemon::fast_dispatch();
    c.forge.backoff_base_ms = 50;
    c.forge.backoff_max_ms = 500;
    c.forge.timeout_ms = 2_000;
    c
}

fn github_token(forge: &MockForge) -> ReportTarget {
    ReportTarget {
        forge: Forge::Github {
            repo: "acme/lib".into(),
            token: Some(TOKEN.into()),
            app: None,
            per_dependent: false,
            api_url: Some(forge.base_url()),
        },
        needs_bump_fails: false,
        comment: false,
    }
}

/// Registers the upstream `acme/lib` reporting to `targets`; its report token.
async fn upstream(api: &Client, targets: Vec<ReportTarget>) -> String {
    let mut s = spec("acme/lib", &[], None);
    s.report_to = targets;
    let (status, answer) = api.put_project(&pid("acme/lib"), &s).await.unwrap();
    assert_eq!(status, 201);
    answer.report_token.unwrap()
}

/// The event once every forge report has been sent for its final state.
async fn told(api: &Client, root: BuildId) -> RootEvent {
    eventually("the forges to be told the end", WAIT, || async move {
        let event = api.root(root).await.ok()?;
        let done = event.nodes.iter().all(|n| n.state.kind().is_final())
            && !event.summary.forge.is_empty()
            && event.summary.forge.iter().all(|f| {
                f.state == ForgeDelivery::Sent
                    && f.outlook != Some(conjunction_protocol::forge::Outlook::Pending)
            });
        done.then_some(event)
    })
    .await
}

#[tokio::test]
async fn a_github_app_check_run_goes_from_in_progress_to_completed_with_the_summary_and_table() {
    let forge = MockForge::start().await.unwrap();
    let (private_key, public_key) = app_key();
    forge.add_app("31337", public_key.clone(), Duration::from_secs(3600));
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start_with(config(dir.path())).await;
    let ci = webhook_ci().await;
    let token = upstream(
        &d.api,
        vec![ReportTarget {
            forge: Forge::Github {
                repo: "acme/lib".into(),
                token: None,
                app: Some(GithubApp {
                    id: "31337".into(),
                    private_key: private_key.clone(),
                }),
                per_dependent: false,
                api_url: Some(forge.base_url()),
            },
            needs_bump_fails: false,
            comment: false,
        }],
    )
    .await;
    for p in ["acme/app", "acme/svc", "acme/ops"] {
        register(&d.api, p, &["acme/lib"], Some(&ci)).await;
    }
    // The key never comes back.
    let shown = d.api.project(&pid("acme/lib")).await.unwrap();
    assert_eq!(shown.report_to[0].auth, "GitHub App 31337");
    assert!(!serde_json::to_string(&shown)
        .unwrap()
        .contains("PRIVATE KEY"));

    ci.set_default(Behaviour::pass());
    let first = report_root(&d.api, &token, "acme/lib", "1.0.0").await;
    told(&d.api, first.root).await;

    // The second release breaks app; ops takes its time, so the run is seen in
    // progress first.
    ci.set(
        "acme/app",
        Behaviour::fail("error[E0432]: unresolved import"),
    );
    ci.set("acme/ops", Behaviour::pass_after(Duration::from_secs(2)));
    let mut second = root_report("acme/lib", "2.0.0");
    second.commit = Some("c0ffee1".into());
    let second = d.api.report(&token, &second).await.unwrap();
    let running = eventually("the check run in progress", WAIT, || async {
        forge
            .check_runs()
            .into_iter()
            .find(|r| r["head_sha"] == "c0ffee1" && r["status"] == "in_progress")
    })
    .await;
    assert_eq!(running["name"], CONTEXT);
    assert_eq!(running["external_id"], second.root.to_string());
    let event = told(&d.api, second.root).await;
    let runs: Vec<_> = forge
        .check_runs()
        .into_iter()
        .filter(|r| r["head_sha"] == "c0ffee1")
        .collect();
    assert_eq!(runs.len(), 1, "one check run per event, updated in place");
    let run = &runs[0];
    assert_eq!(run["status"], "completed");
    assert_eq!(run["conclusion"], "failure");
    let title = run["output"]["title"].as_str().unwrap();
    assert_eq!(title, "acme/lib 2.0.0: 1 broke · 2 same", "{run}");
    let text = run["output"]["text"].as_str().unwrap();
    let app_row = text
        .find("`acme/app` | failed | broke | [run](")
        .expect(text);
    assert!(
        app_row < text.find("`acme/svc`").unwrap(),
        "the break comes first:\n{text}"
    );
    let creates = forge
        .calls()
        .iter()
        .filter(|c| c.method == "POST" && c.path == "/repos/acme/lib/check-runs")
        .count();
    assert_eq!(creates, 2, "one create per event");
    // Installation tokens are kept until they near their expiry: one for both events.
    let fetched = |forge: &MockForge| {
        forge
            .calls()
            .iter()
            .filter(|c| c.path.ends_with("/access_tokens") && c.status == 201)
            .count()
    };
    assert_eq!(fetched(&forge), 1);
    let report = &event.summary.forge[0];
    assert_eq!(
        report.to,
        format!("GitHub acme/lib on {}", forge.base_url())
    );
    assert!(report.updates >= 2, "{report:?}");

    // A token GitHub no longer takes is fetched anew, and one that expires within
    // the refresh margin is not kept: each telling fetches its own.
    forge.add_app("31337", public_key, Duration::from_secs(120));
    forge.expire_tokens();
    ci.set("acme/app", Behaviour::pass());
    ci.set("acme/ops", Behaviour::pass());
    let before = fetched(&forge);
    let third = report_root(&d.api, &token, "acme/lib", "2.0.1").await;
    let third = told(&d.api, third.root).await;
    let sends = third.summary.forge[0].updates as usize;
    assert_eq!(
        fetched(&forge) - before,
        sends,
        "one token per telling once tokens live shorter than the margin"
    );
    assert!(
        forge
            .calls()
            .iter()
            .any(|c| c.status == 401 && c.path.contains("check-runs")),
        "the expired token was refused once"
    );
    d.stop().await;
}

#[tokio::test]
async fn gitlab_forgejo_and_jenkins_show_the_event_and_turn_red_only_on_a_break() {
    let forge = MockForge::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start_with(config(dir.path())).await;
    let ci = webhook_ci().await;
    let base = forge.base_url();
    let token = upstream(
        &d.api,
        vec![
            ReportTarget {
                forge: Forge::Gitlab {
                    url: base.clone(),
                    project: "acme/lib".into(),
                    token: TOKEN.into(),
                },
                needs_bump_fails: false,
                comment: false,
            },
            ReportTarget {
                forge: Forge::Forgejo {
                    url: base.clone(),
                    repo: "acme/lib".into(),
                    token: TOKEN.into(),
                },
                needs_bump_fails: false,
                comment: false,
            },
            ReportTarget {
                forge: Forge::Jenkins {
                    url: base.clone(),
                    user: JENKINS_USER.into(),
                    token: TOKEN.into(),
                },
                needs_bump_fails: false,
                comment: false,
            },
        ],
    )
    .await;
    for p in ["acme/app", "acme/svc"] {
        register(&d.api, p, &["acme/lib"], Some(&ci)).await;
    }
    let release = |version: &str, sha: &str| {
        let mut r = root_report("acme/lib", version);
        r.commit = Some(sha.into());
        r.url = Some(format!("{base}/job/lib/{}/", sha.len()));
        r
    };
    ci.set_default(Behaviour::pass());
    let first = d
        .api
        .report(&token, &release("1.0.0", "aaa111"))
        .await
        .unwrap();
    told(&d.api, first.root).await;
    let gitlab = &forge.latest_statuses("gitlab", "aaa111")[CONTEXT];
    assert_eq!(
        (gitlab.context.as_str(), gitlab.state.as_str()),
        (CONTEXT, "success")
    );
    assert_eq!(gitlab.description, "2 new");
    let forgejo = &forge.latest_statuses("forgejo", "aaa111")[CONTEXT];
    assert_eq!(forgejo.state, "success");
    assert_eq!(
        forge.descriptions().get("/job/lib/6").map(String::as_str),
        Some("conjunction, dependents of acme/lib 1.0.0: 2 new")
    );
    // While it ran, GitLab was told "running" first.
    let gitlab_states: Vec<String> = forge
        .statuses()
        .into_iter()
        .filter(|s| s.forge == "gitlab" && s.sha == "aaa111")
        .map(|s| s.state)
        .collect();
    assert_eq!(gitlab_states.first().map(String::as_str), Some("running"));

    // A dependent that was failing already does not turn the upstream red.
    ci.set("acme/app", Behaviour::fail("boom"));
    let second = d
        .api
        .report(&token, &release("1.1.0", "bbb222"))
        .await
        .unwrap();
    told(&d.api, second.root).await;
    let gitlab = forge.latest_statuses("gitlab", "bbb222")[CONTEXT].clone();
    assert_eq!(
        (gitlab.state.as_str(), gitlab.description.as_str()),
        ("failed", "1 broke · 1 same")
    );
    let third = d
        .api
        .report(&token, &release("1.1.1", "ccc333"))
        .await
        .unwrap();
    told(&d.api, third.root).await;
    for s in ["gitlab", "forgejo"].map(|f| forge.latest_statuses(f, "ccc333")[CONTEXT].clone()) {
        assert_eq!(s.state, "success", "{s:?}");
        assert_eq!(
            s.description,
            "1 still failing · 1 same (none caused by this change)"
        );
    }
    d.stop().await;
}

#[tokio::test]
async fn a_buildkite_upstream_build_gets_one_annotation_rewritten_in_place() {
    let forge = MockForge::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start_with(config(dir.path())).await;
    let ci = webhook_ci().await;
    let token = upstream(
        &d.api,
        vec![ReportTarget {
            forge: Forge::Buildkite {
                org: "acme".into(),
                pipeline: "lib".into(),
                token: TOKEN.into(),
                api_url: Some(forge.base_url()),
            },
            needs_bump_fails: false,
            comment: false,
        }],
    )
    .await;
    register(&d.api, "acme/app", &["acme/lib"], Some(&ci)).await;
    ci.set_default(Behaviour::pass_after(Duration::from_millis(300)));
    let mut r = root_report("acme/lib", "3.0.0");
    r.url = Some("https://buildkite.com/acme/lib/builds/42".into());
    let ack = d.api.report(&token, &r).await.unwrap();
    told(&d.api, ack.root).await;
    let annotations = forge.annotations();
    assert_eq!(annotations.len(), 1, "{annotations:?}");
    let ((build, context), a) = annotations.into_iter().next().unwrap();
    assert_eq!(
        (build.as_str(), context.as_str()),
        ("acme/lib/builds/42", "conjunction")
    );
    assert_eq!(a["style"], "success");
    let body = a["body"].as_str().unwrap();
    assert!(
        body.contains("**1 new**") && body.contains("`acme/app` | passed | new"),
        "{body}"
    );
    let posts = forge
        .calls()
        .iter()
        .filter(|c| c.path.ends_with("/annotations"))
        .count();
    assert!(
        posts >= 2,
        "created at the start and rewritten at the end: {posts}"
    );
    d.stop().await;
}

#[tokio::test]
async fn a_200_dependent_event_makes_a_bounded_number_of_forge_calls() {
    let forge = MockForge::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start_with(config(dir.path())).await;
    let ci = WebhookCi::quiet().await.unwrap();
    let token = upstream(&d.api, vec![github_token(&forge)]).await;
    let names: Vec<String> = (0..200).map(|i| format!("acme/dep-{i:03}")).collect();
    let mut specs = Vec::new();
    for name in &names {
        let mut s = spec(name, &["acme/lib"], Some(&ci));
        s.trigger = Some(conjunction_protocol::TriggerSpec::Webhook {
            url: ci.url(),
            token: None,
            secret: None,
        });
        specs.push((pid(name), s));
    }
    for (id, s) in &specs {
        d.api.put_project(id, s).await.unwrap();
    }
    ci.set_default(Behaviour::pass_after(Duration::from_millis(50)));
    let started = Instant::now();
    let ack = report_root(&d.api, &token, "acme/lib", "1.0.0").await;
    let event = told(&d.api, ack.root).await;
    let took = started.elapsed();
    let posts = forge
        .calls()
        .iter()
        .filter(|c| c.path.starts_with("/repos/acme/lib/statuses/"))
        .count();
    // One at the start, at most one per ten seconds while it ran, one at the end.
    let bound = 2 + (took.as_secs() / 10) as usize + 1;
    assert!(
        posts <= bound,
        "{posts} status posts in {took:?} (bound {bound})"
    );
    let latest = forge.latest_statuses("github", "9f1c2e0");
    assert_eq!(latest.len(), 1, "one aggregated status, not 200");
    let status = &latest[CONTEXT];
    assert_eq!(
        (status.state.as_str(), status.description.as_str()),
        ("success", "200 new")
    );
    assert_eq!(event.summary.forge[0].updates as usize, posts);
    d.stop().await;
}

#[tokio::test]
async fn a_rate_limited_forge_is_waited_out_and_a_forge_that_is_down_delays_no_trigger() {
    let forge = MockForge::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = config(dir.path());
    // The forge that is down is tried for longer than the test runs.
    settings.forge.max_attempts = 1_000;
    let d = TestDaemon::start_with(settings).await;
    let ci = webhook_ci().await;
    let down = format!("http://{}", free_address());
    let token = upstream(
        &d.api,
        vec![
            github_token(&forge),
            ReportTarget {
                forge: Forge::Github {
                    repo: "acme/lib".into(),
                    token: Some(TOKEN.into()),
                    app: None,
                    per_dependent: false,
                    api_url: Some(down.clone()),
                },
                needs_bump_fails: false,
                comment: false,
            },
        ],
    )
    .await;
    register(&d.api, "acme/app", &["acme/lib"], Some(&ci)).await;
    ci.set_default(Behaviour::pass());
    forge.rate_limit_next(2);
    let ack = report_root(&d.api, &token, "acme/lib", "1.0.0").await;
    // The cascade runs as if no forge were there: it ends while the forge that is
    // down has still never been told.
    let event = settled(&d.api, ack.root).await;
    let gone = &event.summary.forge[1];
    assert_eq!(gone.updates, 0, "{gone:?}");
    assert_ne!(gone.state, ForgeDelivery::Sent);
    assert_eq!(ci.triggers_of("acme/app").len(), 1);
    assert_eq!(
        state_of(&event, "acme/app"),
        conjunction_protocol::StateKind::Passed
    );
    // The limited forge is told once its limit resets; the one that is down is
    // retried and says why.
    let event = eventually("the rate limit to be waited out", WAIT, || async {
        let event = d.api.root(ack.root).await.ok()?;
        let up = &event.summary.forge[0];
        let gone = &event.summary.forge[1];
        (up.state == ForgeDelivery::Sent
            && up.outlook == Some(conjunction_protocol::forge::Outlook::Success)
            && gone.state == ForgeDelivery::Retrying)
            .then_some(event)
    })
    .await;
    let limited = forge.calls().iter().filter(|c| c.status == 403).count();
    assert_eq!(limited, 2);
    let gone = &event.summary.forge[1];
    assert!(
        gone.error
            .as_deref()
            .is_some_and(|e| e.contains("could not connect")),
        "{gone:?}"
    );
    assert!(
        gone.describe()
            .contains("GitHub acme/lib on http://127.0.0.1:"),
        "{}",
        gone.describe()
    );
    d.stop().await;
}

#[tokio::test]
async fn forge_reports_survive_a_restart_without_a_duplicate_post() {
    let forge = MockForge::start().await.unwrap();
    let (private_key, public_key) = app_key();
    forge.add_app("42", public_key, Duration::from_secs(3600));
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start_with(config(dir.path())).await;
    let ci = webhook_ci().await;
    let token = upstream(
        &d.api,
        vec![ReportTarget {
            forge: Forge::Github {
                repo: "acme/lib".into(),
                token: None,
                app: Some(GithubApp {
                    id: "42".into(),
                    private_key,
                }),
                per_dependent: false,
                api_url: Some(forge.base_url()),
            },
            needs_bump_fails: false,
            comment: false,
        }],
    )
    .await;
    register(&d.api, "acme/app", &["acme/lib"], Some(&ci)).await;
    ci.set_default(Behaviour::fail("boom"));
    let ack = report_root(&d.api, &token, "acme/lib", "1.0.0").await;
    let event = told(&d.api, ack.root).await;
    let app = node_of(&event, "acme/app").id;
    let updates = event.summary.forge[0].updates;
    d.stop().await;

    // After a restart, a rebuild moves the event: the same check run is updated.
    let d = TestDaemon::start_with(config(dir.path())).await;
    ci.set_default(Behaviour::pass());
    d.api.rebuild(app).await.unwrap();
    eventually("the rebuilt run told", WAIT, || async {
        let event = d.api.root(ack.root).await.ok()?;
        (event.summary.forge[0].updates > updates
            && node_of(&event, "acme/app").attempt == 2
            && event.nodes.iter().all(|n| n.state.kind().is_final())
            && forge.check_runs().first()?["output"]["text"]
                .as_str()?
                .contains("`acme/app` | passed |"))
        .then_some(())
    })
    .await;
    let creates = forge
        .calls()
        .iter()
        .filter(|c| c.method == "POST" && c.path == "/repos/acme/lib/check-runs")
        .count();
    assert_eq!(creates, 1, "{:?}", forge.calls());
    assert_eq!(forge.check_runs().len(), 1);
    d.stop().await;
}
