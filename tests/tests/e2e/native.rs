//! Native CI end to end: the daemon triggers GitHub Actions, GitLab CI, Buildkite and
//! Jenkins through their own APIs (simulated on loopback by a server that checks what
//! each API takes) and hears back from their own webhooks, signed as each CI signs
//! them. Nothing in these tests calls `POST /v1/reports`.

use std::time::Duration;

use conjunction_protocol::ci::{build_key, HookAnswer, HookOutcome};
use conjunction_protocol::{CiKind, Node, ProjectSpec, StateKind};
use conjunction_sim::native::{self, buildkite_signature, github_signature, NativeCi, Pipeline};
use conjunction_tests::daemon::{TestDaemon, OPERATOR_TOKEN};
use conjunction_tests::eventually;
use conjunction_tui::client::Client;
use reqwest::StatusCode;

use super::{node_of, pid, settled, WAIT};

const RELEASE: &str = native::RELEASE_WORKFLOW;
const GH_TOKEN: &str = "ghp_simulated0123456789";
const GL_TOKEN: &str = "glptt-simulated0123456789";
const BK_TOKEN: &str = "bkua_simulated0123456789";
/// The Jenkins user of `native::trigger`.
const JK_USER: &str = "conjunction";
const JK_TOKEN: &str = "11aa22bb33cc44dd55ee";
const HOOK_SECRET: &str = "webhook-secret-0123456789";

/// The API token a trigger on `ci` carries.
fn api_token(ci: CiKind) -> &'static str {
    match ci {
        CiKind::Github => GH_TOKEN,
        CiKind::Gitlab => GL_TOKEN,
        CiKind::Buildkite => BK_TOKEN,
        CiKind::Jenkins => JK_TOKEN,
    }
}

/// The simulated pipeline of a project on `ci`, named `name` there.
fn pipeline(ci: CiKind, name: &str, project: &str) -> Pipeline {
    let credential = match ci {
        CiKind::Jenkins => format!("{JK_USER}:{JK_TOKEN}"),
        _ => api_token(ci).to_owned(),
    };
    Pipeline::new(ci, name, pid(project), &credential, HOOK_SECRET)
}

/// Registers `project`, depending on `deps`, after `adjust` has changed its spec.
async fn register(
    api: &Client,
    project: &str,
    deps: &[&str],
    adjust: impl FnOnce(&mut ProjectSpec),
) {
    let mut spec = super::spec(project, deps, None);
    adjust(&mut spec);
    let (status, _) = api
        .put_project(&pid(project), &spec)
        .await
        .unwrap_or_else(|e| panic!("registering {project}: {e}"));
    assert_eq!(status, 201, "{project} is created");
}

/// Registers `project`, depending on `deps` and built on `ci` as `name` there
/// (triggered through its API, heard from by its webhook), and adds its simulated
/// pipeline after `tune` has changed the two.
async fn downstream(
    api: &Client,
    ci: &NativeCi,
    project: &str,
    deps: &[&str],
    (kind, name): (CiKind, &str),
    tune: impl FnOnce(&mut ProjectSpec, &mut Pipeline),
) {
    let mut p = pipeline(kind, name, project);
    register(api, project, deps, |spec| {
        spec.trigger = Some(native::trigger(kind, name, ci.base_url(), api_token(kind)));
        spec.source = Some(native::source(kind, name, HOOK_SECRET));
        tune(spec, &mut p);
    })
    .await;
    ci.add(p);
}

/// An upstream whose GitHub release workflow reports by its webhook.
async fn upstream(api: &Client, ci: &NativeCi, project: &str) {
    register(api, project, &[], |s| {
        s.source = Some(native::source(CiKind::Github, project, HOOK_SECRET))
    })
    .await;
    ci.add(pipeline(CiKind::Github, project, project));
}

fn answer(hook: &conjunction_sim::native::HookSent) -> HookAnswer {
    serde_json::from_str(&hook.answer).unwrap_or_else(|e| panic!("{hook:?}: {e}"))
}

/// Releases `project` through its GitHub workflow's webhook; the root it started.
async fn release(ci: &NativeCi, project: &str, version: &str) -> conjunction_protocol::BuildId {
    let sent = ci.release(project, RELEASE, version).await;
    assert_eq!(
        sent.status, 201,
        "the release starts a root event: {sent:?}"
    );
    let a = answer(&sent);
    assert_eq!(a.outcome, HookOutcome::Started);
    a.build.expect("a started root names its build").root
}

async fn node_where(
    api: &Client,
    root: conjunction_protocol::BuildId,
    project: &str,
    what: &str,
    check: impl Fn(&Node) -> bool,
) -> Node {
    eventually(what, WAIT, || async {
        let event = api.root(root).await.ok()?;
        let node = event.nodes.iter().find(|n| n.project.as_str() == project)?;
        check(node).then(|| node.clone())
    })
    .await
}

async fn daemon() -> TestDaemon {
    TestDaemon::start_adjusted(|c| {
        c.reconcile.interval_ms = 100;
        c.reconcile.queue_poll_ms = 50;
        c.metrics.enabled = true;
    })
    .await
}

#[tokio::test]
async fn a_github_release_cascades_through_all_four_cis_by_their_apis_and_webhooks() {
    let d = daemon().await;
    let ci = NativeCi::start(&d.url()).await.unwrap();
    upstream(&d.api, &ci, "acme/lib").await;
    let chain = [
        ("acme/gh", CiKind::Github, "acme/gh", "acme/lib"),
        ("acme/gl", CiKind::Gitlab, "acme/sub/gl", "acme/gh"),
        ("acme/bk", CiKind::Buildkite, "acme/bk", "acme/gl"),
        ("acme/jk", CiKind::Jenkins, "team/jk", "acme/bk"),
    ];
    for (project, kind, name, up) in chain {
        downstream(&d.api, &ci, project, &[up], (kind, name), |_, _| {}).await;
    }

    let root = release(&ci, "acme/lib", "1.4.0").await;
    let event = settled(&d.api, root).await;
    assert_eq!(
        event.summary.version.as_deref(),
        Some("1.4.0"),
        "the version comes from the tag"
    );
    let runs = ci.runs();
    for (project, kind, name, _) in chain {
        let node = node_of(&event, project);
        assert_eq!(node.state.kind(), StateKind::Passed, "{project}: {node:?}");
        let run = node
            .run
            .as_ref()
            .unwrap_or_else(|| panic!("{project} has a run"));
        assert_eq!(run.ci, kind);
        let sim = runs
            .iter()
            .find(|r| r.ci == kind && r.pipeline == name)
            .unwrap_or_else(|| panic!("{name} ran on {kind}"));
        assert_eq!(
            run.id.as_deref(),
            Some(sim.id.as_str()),
            "{project}'s run id"
        );
        assert_eq!(
            node.url.as_deref(),
            Some(sim.web_url.as_str()),
            "{project}'s run page"
        );
        // What the trigger carried, under the names each CI takes them by.
        let (build, upstream) = match kind {
            CiKind::Github => ("conjunction_build", "upstream"),
            CiKind::Buildkite => ("conjunction:build", "UPSTREAM"),
            _ => ("CONJUNCTION_BUILD", "UPSTREAM"),
        };
        assert_eq!(sim.values[build], build_key(node.id, 1), "{project}");
        assert_eq!(sim.values[upstream], "acme/lib@1.4.0", "{project}");
        assert_eq!(sim.credentials.len(), 1, "{project}: one credential");
        let token = match kind {
            CiKind::Github => "conjunction_token",
            _ => "CONJUNCTION_TOKEN",
        };
        assert!(sim.values[token].len() >= 32, "{project}: a build token");
    }
    assert_eq!(runs.len(), 4, "each project is built once: {runs:?}");
    // Every webhook of the cascade was taken: running, then finished, for each run.
    let hooks = ci.hooks();
    assert!(
        hooks.iter().all(|h| h.status == 200 || h.status == 201),
        "{hooks:?}"
    );
    assert_eq!(hooks.len(), 1 + 4 * 2, "{hooks:?}");
    // And each is counted as a report, by how it came.
    let (_, metrics) = crate::metrics::scrape(&d, OPERATOR_TOKEN).await;
    let reports = |labels: &str| {
        crate::metrics::sample(&metrics, "conjunction_reports_received_total", labels)
    };
    assert_eq!(
        reports("{via=\"webhook\",state=\"passed\"}"),
        5.0,
        "{metrics}"
    );
    assert_eq!(
        reports("{via=\"webhook\",state=\"running\"}"),
        4.0,
        "{metrics}"
    );
    assert_eq!(reports("{via=\"api\",state=\"passed\"}"), 0.0, "{metrics}");
    assert!(
        ci.refused().is_empty(),
        "no CI refused a call: {:?}",
        ci.refused()
    );
}

#[tokio::test]
async fn a_jenkins_build_is_found_through_its_queue_item() {
    let d = daemon().await;
    let ci = NativeCi::start(&d.url()).await.unwrap();
    upstream(&d.api, &ci, "acme/lib").await;
    // The job sends no notifications, waits in the queue for three polls, then runs
    // for a minute: only the queue item can say which build it became.
    let jenkins = (CiKind::Jenkins, "team/jk");
    downstream(&d.api, &ci, "acme/jk", &["acme/lib"], jenkins, |_, p| {
        p.silent = true;
        p.queue_polls = 3;
        p.run = Duration::from_secs(60);
    })
    .await;

    let root = release(&ci, "acme/lib", "2.0.0").await;
    let node = node_where(
        &d.api,
        root,
        "acme/jk",
        "the queue item to become a build",
        |n| n.run.as_ref().is_some_and(|r| r.number.is_some()),
    )
    .await;
    let sim = &ci.runs()[0];
    let run = node.run.as_ref().unwrap();
    assert_eq!(
        run.id.as_deref(),
        Some(sim.id.as_str()),
        "the run id is the queue id"
    );
    assert_eq!(run.number, Some(sim.number));
    assert_eq!(node.url.as_deref(), Some(sim.web_url.as_str()));
    assert_eq!(node.state.kind(), StateKind::Running);
}

#[tokio::test]
async fn a_github_dispatch_without_run_details_is_tied_to_its_build_by_its_run_name() {
    let d = daemon().await;
    let ci = NativeCi::start(&d.url()).await.unwrap();
    upstream(&d.api, &ci, "acme/lib").await;
    let github = (CiKind::Github, "acme/app");
    downstream(&d.api, &ci, "acme/app", &["acme/lib"], github, |_, p| {
        p.no_run_details = true
    })
    .await;

    let root = release(&ci, "acme/lib", "1.0.1").await;
    let event = settled(&d.api, root).await;
    let node = node_of(&event, "acme/app");
    assert_eq!(node.state.kind(), StateKind::Passed);
    let sim = ci
        .runs()
        .into_iter()
        .find(|r| r.pipeline == "acme/app")
        .unwrap();
    assert_eq!(
        node.run.as_ref().and_then(|r| r.id.as_deref()),
        Some(sim.id.as_str())
    );
    assert_eq!(
        ci.refused(),
        ["return_run_details on an old GitHub"],
        "asked once with the field, then without"
    );
    assert_eq!(ci.runs().len(), 1, "one run for one build");
}

#[tokio::test]
async fn a_rebuilt_github_build_shows_the_run_its_dispatch_answered_with() {
    let d = daemon().await;
    let ci = NativeCi::start(&d.url()).await.unwrap();
    upstream(&d.api, &ci, "acme/lib").await;
    let github = (CiKind::Github, "acme/app");
    downstream(&d.api, &ci, "acme/app", &["acme/lib"], github, |_, p| {
        p.outcome = conjunction_protocol::ReportState::Failed;
    })
    .await;
    let root = release(&ci, "acme/lib", "1.0.2").await;
    let event = settled(&d.api, root).await;
    let first = node_of(&event, "acme/app").clone();
    assert_eq!(first.state.kind(), StateKind::Failed);

    // Attempt 2's run sends no webhook: only the dispatch's answer names it.
    let mut quiet = pipeline(CiKind::Github, "acme/app", "acme/app");
    quiet.silent = true;
    ci.add(quiet);
    d.api.rebuild(first.id).await.unwrap();
    let second_run = eventually("attempt 2's run", WAIT, || async {
        ci.runs()
            .into_iter()
            .filter(|r| r.pipeline == "acme/app")
            .nth(1)
    })
    .await;
    let node = node_where(&d.api, root, "acme/app", "attempt 2 to be triggered", |n| {
        n.attempt == 2 && n.state.kind() == StateKind::Triggered
    })
    .await;
    assert_eq!(
        node.run.as_ref().and_then(|r| r.id.as_deref()),
        Some(second_run.id.as_str()),
        "attempt 2's run, not attempt 1's {:?}",
        first.run
    );
    assert_eq!(node.url.as_deref(), Some(second_run.web_url.as_str()));
    assert_ne!(
        first.run.as_ref().and_then(|r| r.id.clone()),
        Some(second_run.id)
    );
}

#[tokio::test]
async fn a_rate_limited_trigger_waits_and_is_not_counted_as_a_failed_try() {
    // One try only: a rate limit counted as a try would fail the trigger.
    let d = TestDaemon::start_adjusted(|c| c.dispatch.max_attempts = 1).await;
    let ci = NativeCi::start(&d.url()).await.unwrap();
    upstream(&d.api, &ci, "acme/lib").await;
    for (project, kind, name) in [
        ("acme/gh", CiKind::Github, "acme/gh"),
        ("acme/bk", CiKind::Buildkite, "acme/bk"),
    ] {
        downstream(&d.api, &ci, project, &["acme/lib"], (kind, name), |_, p| {
            p.rate_limit_first = Some(Duration::from_secs(1))
        })
        .await;
    }
    let started = std::time::Instant::now();
    let root = release(&ci, "acme/lib", "1.1.0").await;
    let event = settled(&d.api, root).await;
    for project in ["acme/gh", "acme/bk"] {
        assert_eq!(
            node_of(&event, project).state.kind(),
            StateKind::Passed,
            "{project}"
        );
    }
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the limit's reset was waited for"
    );
    assert_eq!(ci.runs().len(), 2);
}

#[tokio::test]
async fn lost_webhooks_are_recovered_by_asking_each_cis_api() {
    let d = daemon().await;
    let ci = NativeCi::start(&d.url()).await.unwrap();
    upstream(&d.api, &ci, "acme/lib").await;
    let projects = [
        ("acme/gh", CiKind::Github, "acme/gh"),
        ("acme/gl", CiKind::Gitlab, "acme/gl"),
        ("acme/bk", CiKind::Buildkite, "acme/bk"),
        ("acme/jk", CiKind::Jenkins, "team/jk"),
    ];
    for (project, kind, name) in projects {
        downstream(&d.api, &ci, project, &["acme/lib"], (kind, name), |s, p| {
            s.reconcile_after_secs = Some(1);
            p.lose_finish_webhook = true;
            if kind == CiKind::Gitlab {
                p.outcome = conjunction_protocol::ReportState::Failed;
            }
        })
        .await;
    }
    let root = release(&ci, "acme/lib", "3.0.0").await;
    let event = settled(&d.api, root).await;
    for (project, kind, _) in projects {
        let node = node_of(&event, project);
        let expected = if kind == CiKind::Gitlab {
            StateKind::Failed
        } else {
            StateKind::Passed
        };
        assert_eq!(node.state.kind(), expected, "{project}: {node:?}");
        let learnt = node
            .run
            .as_ref()
            .and_then(|r| r.learnt.as_deref())
            .unwrap_or_default();
        assert!(
            learnt.contains(kind.name()) && learnt.contains("without a webhook"),
            "{project} says how it was learnt: {learnt:?}"
        );
    }
}

/// Sends `body` to the hooks endpoint with `headers`.
pub(crate) async fn post_hook(
    d: &TestDaemon,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (StatusCode, serde_json::Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}{path}", d.url()))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (k, v) in headers {
        request = request.header(*k, v);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let json = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, json)
}

fn release_body(run_id: u64, path: &str, branch: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "action": "completed",
        "workflow_run": {
            "id": run_id, "path": path, "display_title": "release", "run_attempt": 1,
            "status": "completed", "conclusion": "success", "head_branch": branch,
            "head_sha": "9f1c2e0", "html_url": "https://github.example/acme/lib/actions/runs/1",
        },
        "workflow": {"path": path},
        "repository": {"full_name": "acme/lib"},
    }))
    .unwrap()
}

fn github_headers(body: &[u8], secret: &str, delivery: &str) -> Vec<(&'static str, String)> {
    vec![
        ("x-github-event", "workflow_run".into()),
        ("x-github-delivery", delivery.into()),
        ("x-hub-signature-256", github_signature(secret, body)),
    ]
}

#[tokio::test]
async fn a_delivery_taken_twice_and_other_workflows_change_nothing() {
    let d = daemon().await;
    let ci = NativeCi::start(&d.url()).await.unwrap();
    upstream(&d.api, &ci, "acme/lib").await;
    let path = "/v1/hooks/github/acme%2Flib";
    let body = release_body(77, RELEASE, "v1.2.3");
    let headers = github_headers(&body, HOOK_SECRET, "d-1");
    let (status, first) = post_hook(&d, path, &headers, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again) = post_hook(&d, path, &headers, &body).await;
    assert_eq!(
        (status, again["outcome"].as_str()),
        (StatusCode::OK, Some("duplicate"))
    );
    // The same run's news in another delivery is that run's, not a new root.
    let other = github_headers(&body, HOOK_SECRET, "d-2");
    let (status, same_run) = post_hook(&d, path, &other, &body).await;
    assert_eq!(status, StatusCode::OK, "{same_run}");
    assert_eq!(same_run["build"]["root"], first["build"]["root"]);
    // Another workflow, another branch: noted with why, nothing changed.
    for (run, wf, branch, why) in [
        (78, ".github/workflows/test.yml", "main", "test.yml"),
        (79, RELEASE, "feature/x", "feature/x"),
    ] {
        let body = release_body(run, wf, branch);
        let (status, noted) = post_hook(
            &d,
            path,
            &github_headers(&body, HOOK_SECRET, &format!("d-{run}")),
            &body,
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{noted}");
        assert!(noted["note"].as_str().unwrap().contains(why), "{noted}");
    }
    assert_eq!(
        d.api.roots(10).await.unwrap().len(),
        1,
        "one root event in all"
    );
}

#[tokio::test]
async fn every_refused_webhook_gets_a_json_error_and_changes_nothing() {
    let d = daemon().await;
    let ci = NativeCi::start(&d.url()).await.unwrap();
    upstream(&d.api, &ci, "acme/lib").await;
    let buildkite = (CiKind::Buildkite, "acme/bk");
    downstream(&d.api, &ci, "acme/bk", &["acme/lib"], buildkite, |_, _| {}).await;
    let gitlab = (CiKind::Gitlab, "acme/gl");
    downstream(&d.api, &ci, "acme/gl", &["acme/lib"], gitlab, |_, _| {}).await;
    register(&d.api, "acme/plain", &[], |_| {}).await;
    let body = release_body(5, RELEASE, "main");
    let good = github_headers(&body, HOOK_SECRET, "r-1");
    let bk_body = br#"{"event":"build.finished","build":{"id":"b","url":"https://api.buildkite.com/v2/organizations/acme/pipelines/bk/builds/1","state":"passed"}}"#;
    let old = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 600;
    let gitlab_fixture = std::fs::read_to_string(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fixtures/ci/gitlab/pipeline.running.request-invalid-json.http"),
    )
    .expect("the GitLab fixtures are read from ../shared beside the repository");
    let broken = gitlab_fixture
        .split_once("\n\n")
        .or_else(|| gitlab_fixture.split_once("\r\n\r\n"))
        .expect("an HTTP request with a body")
        .1
        .as_bytes()
        .to_vec();
    /// What is wrong, where it goes, its headers and body, and the answer it gets.
    type Case<'a> = (
        &'a str,
        &'a str,
        Vec<(&'a str, String)>,
        Vec<u8>,
        StatusCode,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "bad signature",
            "/v1/hooks/github/acme%2Flib",
            github_headers(&body, "not-the-secret", "r-2"),
            body.clone(),
            StatusCode::UNAUTHORIZED,
            "bad_signature",
        ),
        (
            "one byte changed",
            "/v1/hooks/github/acme%2Flib",
            good.clone(),
            {
                let mut b = body.clone();
                b[10] ^= 1;
                b
            },
            StatusCode::UNAUTHORIZED,
            "bad_signature",
        ),
        (
            "unsigned",
            "/v1/hooks/github/acme%2Flib",
            vec![("x-github-event", "workflow_run".into())],
            body.clone(),
            StatusCode::UNAUTHORIZED,
            "unsigned",
        ),
        (
            "stale Buildkite timestamp",
            "/v1/hooks/buildkite/acme%2Fbk",
            vec![(
                "x-buildkite-signature",
                buildkite_signature(HOOK_SECRET, old, bk_body),
            )],
            bk_body.to_vec(),
            StatusCode::UNAUTHORIZED,
            "stale_signature",
        ),
        (
            "Buildkite token in clear, not allowed",
            "/v1/hooks/buildkite/acme%2Fbk",
            vec![("x-buildkite-token", HOOK_SECRET.into())],
            bk_body.to_vec(),
            StatusCode::UNAUTHORIZED,
            "unsigned",
        ),
        (
            "unknown project",
            "/v1/hooks/github/acme%2Fnobody",
            good.clone(),
            body.clone(),
            StatusCode::NOT_FOUND,
            "unknown_project",
        ),
        (
            "no source configured",
            "/v1/hooks/github/acme%2Fplain",
            good.clone(),
            body.clone(),
            StatusCode::NOT_FOUND,
            "no_source",
        ),
        (
            "wrong kind",
            "/v1/hooks/gitlab/acme%2Flib",
            good.clone(),
            body.clone(),
            StatusCode::BAD_REQUEST,
            "wrong_ci",
        ),
        (
            "unknown CI",
            "/v1/hooks/travis/acme%2Flib",
            good.clone(),
            body.clone(),
            StatusCode::NOT_FOUND,
            "unknown_ci",
        ),
        (
            "unparsable body",
            "/v1/hooks/github/acme%2Flib",
            github_headers(b"{not json", HOOK_SECRET, "r-3"),
            b"{not json".to_vec(),
            StatusCode::BAD_REQUEST,
            "unreadable_body",
        ),
        (
            "GitLab's broken request",
            "/v1/hooks/gitlab/acme%2Fgl",
            vec![
                ("x-gitlab-token", HOOK_SECRET.into()),
                ("x-gitlab-event", "Pipeline Hook".into()),
            ],
            broken,
            StatusCode::BAD_REQUEST,
            "unreadable_body",
        ),
    ];
    for (what, path, headers, body, status, code) in cases {
        let (got, error) = post_hook(&d, path, &headers, &body).await;
        assert_eq!(
            (got, error["error"].as_str()),
            (status, Some(code)),
            "{what}: {error}"
        );
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.len() > 20, "{what}: a sentence to act on: {error}");
        assert!(
            !message.contains(HOOK_SECRET),
            "{what}: the secret is never echoed"
        );
    }
    assert!(
        d.api.roots(10).await.unwrap().is_empty(),
        "no refused webhook changed anything"
    );
}

#[tokio::test]
async fn the_demo_builds_a_project_on_each_native_ci_with_its_run_link() {
    use tokio::io::AsyncBufReadExt;
    let mut demo =
        tokio::process::Command::new(conjunction_tests::daemon::binaries().join("conjunction"))
            .args(["demo", "--headless", "--interval", "2"])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the demo starts");
    let mut lines = tokio::io::BufReader::new(demo.stdout.take().unwrap()).lines();
    let (mut url, mut token) = (None, None);
    while url.is_none() || token.is_none() {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the demo prints its address")
            .unwrap()
            .expect("the demo keeps running");
        if let Some(u) = line.trim().strip_prefix("daemon:") {
            url = Some(u.trim().to_owned());
        }
        if let Some(t) = line.trim().strip_prefix("token:") {
            token = Some(t.trim().to_owned());
        }
    }
    let api = Client::new(&url.unwrap(), token);
    let wanted = [
        ("net/http", CiKind::Github),
        ("net/tls", CiKind::Gitlab),
        ("core/metrics", CiKind::Buildkite),
        ("core/codec", CiKind::Jenkins),
    ];
    eventually(
        "a root event with a finished run on each native CI",
        Duration::from_secs(60),
        || {
            let api = api.clone();
            async move {
                for root in api.roots(20).await.ok()? {
                    let event = api.root(root.id).await.ok()?;
                    let all = wanted.iter().all(|(project, kind)| {
                        event.nodes.iter().any(|n| {
                            n.project.as_str() == *project
                                && n.state.kind().is_final()
                                && n.run
                                    .as_ref()
                                    .is_some_and(|r| r.ci == *kind && r.id.is_some())
                                && n.url.is_some()
                        })
                    });
                    if all {
                        return Some(());
                    }
                }
                None
            }
        },
    )
    .await;
}
