//! Which runs a project's `source` counts as its releases, with real payloads: only
//! the release the source names (its repository and workflow, project, pipeline or
//! job), on its branch or a version tag, never a fork's; a source that names no
//! release only updates builds conjunction triggered; and every other event a CI
//! sends to the same URL with a valid signature is answered `202 noted`.

use conjunction_protocol::{CiKind, ProjectSpec, SourceSpec};
use conjunction_sim::native::{buildkite_signature, github_signature};
use conjunction_sim::webhook::WebhookCi;
use conjunction_tests::daemon::TestDaemon;
use conjunction_tests::{fixture, fixture_json};
use reqwest::StatusCode;
use serde_json::Value;

use super::native::post_hook as post;
use super::pid;

const HOOK_SECRET: &str = "webhook-secret-0123456789";
/// The repository of the captured cdviz runs (anonymised by their source).
const CDVIZ_REPO: &str = "aaaaa-aaa/aaaaa-aaaaaaaaa";
const CDVIZ_RUN: &str = "acceptance/native-ci/github/workflow_run.completed.cdviz.json";

/// Registers `project` with `source`, upstream of a dependent that a cascade would
/// trigger on `mock`.
async fn upstream_with(d: &TestDaemon, mock: &WebhookCi, project: &str, source: SourceSpec) {
    let spec = ProjectSpec {
        source: Some(source),
        ..super::spec(project, &[], None)
    };
    let (status, _) = d.api.put_project(&pid(project), &spec).await.unwrap();
    assert_eq!(status, 201, "{project} is registered");
    let dependent = format!("{project}-user");
    super::register(&d.api, &dependent, &[project], Some(mock)).await;
}

fn github(event: &str, body: &[u8], secret: &str, delivery: &str) -> Vec<(&'static str, String)> {
    vec![
        ("x-github-event", event.into()),
        ("x-github-delivery", delivery.into()),
        ("x-hub-signature-256", github_signature(secret, body)),
    ]
}

fn github_source(repo: Option<&str>, workflow: Option<&str>, branch: Option<&str>) -> SourceSpec {
    SourceSpec::Github {
        secret: HOOK_SECRET.into(),
        repo: repo.map(str::to_owned),
        workflow: workflow.map(str::to_owned),
        branch: branch.map(str::to_owned),
        candidates: false,
        candidates_from_forks: false,
    }
}

/// The captured run with `change` applied to it.
fn cdviz(change: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut run = fixture_json(CDVIZ_RUN);
    change(&mut run);
    serde_json::to_vec(&run).unwrap()
}

fn assert_noted(what: &str, (status, answer): &(StatusCode, Value), says: &str) {
    assert_eq!(*status, StatusCode::ACCEPTED, "{what}: {answer}");
    assert_eq!(answer["outcome"], "noted", "{what}: {answer}");
    let note = answer["note"].as_str().unwrap_or_default();
    assert!(
        note.contains(says),
        "{what}: the note says {says:?}: {note}"
    );
}

#[tokio::test]
async fn a_source_that_names_no_release_workflow_or_job_only_updates_triggered_builds() {
    let d = TestDaemon::start().await;
    let mock = super::webhook_ci().await;
    // As docs/ci/github.md and jenkins.md show a downstream's source: a secret only.
    upstream_with(&d, &mock, "up/gh", github_source(None, None, None)).await;
    let jenkins = SourceSpec::Jenkins {
        secret: HOOK_SECRET.into(),
        job: None,
        branch: None,
    };
    upstream_with(&d, &mock, "up/jk", jenkins).await;

    // A green pull-request run on branch fix-1, exactly as GitHub sent it.
    let body = fixture(CDVIZ_RUN);
    let answer = post(
        &d,
        "/v1/hooks/github/up%2Fgh",
        &github("workflow_run", &body, HOOK_SECRET, "gh-1"),
        &body,
    )
    .await;
    assert_noted(
        "a pull request run",
        &answer,
        "only updates builds conjunction triggered",
    );
    // A FINALIZED SUCCESS of some job, as the Notification plugin posts it.
    let body =
        fixture("acceptance/native-ci/jenkins/notification.finalized.success.matrix-neb.json");
    let path = format!("/v1/hooks/jenkins/up%2Fjk?token={HOOK_SECRET}");
    let answer = post(&d, &path, &[], &body).await;
    assert_noted(
        "a Jenkins build",
        &answer,
        "only updates builds conjunction triggered",
    );

    assert!(
        d.api.roots(10).await.unwrap().is_empty(),
        "no cascade started"
    );
    assert!(mock.deliveries().is_empty(), "nothing was triggered");
}

#[tokio::test]
async fn only_the_named_workflow_of_the_projects_own_repository_on_its_branch_or_a_tag_is_a_root() {
    let d = TestDaemon::start().await;
    let mock = super::webhook_ci().await;
    let source = github_source(
        Some(CDVIZ_REPO),
        Some(".github/workflows/aa.yml"),
        Some("main"),
    );
    upstream_with(&d, &mock, "up/lib", source).await;
    let path = "/v1/hooks/github/up%2Flib";

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "the run as captured, of its pull request",
            fixture(CDVIZ_RUN),
            "a run of pull request #35, which tests a change and is never a release",
        ),
        (
            "a fork's commit on a version tag",
            cdviz(|r| {
                r["workflow_run"]["head_branch"] = "v3.4.1".into();
                r["workflow_run"]["head_repository"]["full_name"] =
                    "someone/aaaaa-aaaaaaaaa".into();
            }),
            "from the fork someone/aaaaa-aaaaaaaaa",
        ),
        (
            // One organisation webhook, one secret, every repository's runs.
            "another repository of the organisation",
            cdviz(|r| {
                r["workflow_run"]["id"] = 11111111113u64.into();
                r["workflow_run"]["head_branch"] = "v3.4.1".into();
                r["repository"]["full_name"] = "aaaaa-aaa/other".into();
                r["workflow_run"]["repository"]["full_name"] = "aaaaa-aaa/other".into();
                r["workflow_run"]["head_repository"]["full_name"] = "aaaaa-aaa/other".into();
            }),
            "not in aaaaa-aaa/aaaaa-aaaaaaaaa",
        ),
        (
            "another workflow on a version tag",
            cdviz(|r| {
                r["workflow_run"]["head_branch"] = "v3.4.1".into();
                r["workflow_run"]["path"] = ".github/workflows/lint.yml".into();
                r["workflow"]["path"] = ".github/workflows/lint.yml".into();
            }),
            "not of .github/workflows/aa.yml",
        ),
    ];
    for (i, (what, body, says)) in cases.iter().enumerate() {
        let headers = github("workflow_run", body, HOOK_SECRET, &format!("n-{i}"));
        let answer = post(&d, path, &headers, body).await;
        assert_noted(what, &answer, says);
    }
    assert!(
        d.api.roots(10).await.unwrap().is_empty(),
        "none of them is a release"
    );

    let tagged = cdviz(|r| {
        r["workflow_run"]["head_branch"] = "v3.4.1".into();
        r["workflow_run"]["event"] = "push".into();
        r["workflow_run"]["pull_requests"] = serde_json::json!([]);
    });
    let (status, answer) = post(
        &d,
        path,
        &github("workflow_run", &tagged, HOOK_SECRET, "tag"),
        &tagged,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the release workflow on a tag: {answer}"
    );
    assert_eq!(answer["outcome"], "started");
    let roots = d.api.roots(10).await.unwrap();
    assert_eq!(roots.len(), 1);
    assert_eq!(roots[0].version.as_deref(), Some("3.4.1"));
}

#[tokio::test]
async fn a_github_source_with_a_release_workflow_must_name_its_repository() {
    let d = TestDaemon::start().await;
    let spec = ProjectSpec {
        source: Some(github_source(None, Some("release.yml"), Some("main"))),
        ..super::spec("up/lib", &[], None)
    };
    let err = d
        .api
        .put_project(&pid("up/lib"), &spec)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("source.repo") && err.contains("owner/name"),
        "{err}"
    );
}

/// A project with a source of each kind, none naming a release, and the headers a
/// delivery of `event` carries to it, signed with `secret`.
fn signed(
    ci: CiKind,
    event: &str,
    body: &[u8],
    secret: &str,
) -> (String, Vec<(&'static str, String)>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    match ci {
        CiKind::Github => (
            "/v1/hooks/github/up%2Fgh".into(),
            github(event, body, secret, &format!("{event}-{}", body.len())),
        ),
        CiKind::Gitlab => (
            "/v1/hooks/gitlab/up%2Fgl".into(),
            vec![
                ("x-gitlab-event", event.into()),
                ("x-gitlab-token", secret.into()),
            ],
        ),
        CiKind::Buildkite => (
            "/v1/hooks/buildkite/up%2Fbk".into(),
            vec![
                ("x-buildkite-event", event.into()),
                (
                    "x-buildkite-signature",
                    buildkite_signature(secret, now, body),
                ),
            ],
        ),
        CiKind::Jenkins => (format!("/v1/hooks/jenkins/up%2Fjk?token={secret}"), vec![]),
    }
}

#[tokio::test]
async fn every_event_a_ci_sends_with_a_valid_signature_is_noted_and_a_bad_one_refused() {
    let d = TestDaemon::start().await;
    let mock = super::webhook_ci().await;
    upstream_with(
        &d,
        &mock,
        "up/gh",
        github_source(Some("acme/lib"), Some("release.yml"), Some("main")),
    )
    .await;
    let gitlab = SourceSpec::Gitlab {
        token: HOOK_SECRET.into(),
        signing_token: None,
        project: Some("acme/lib".into()),
        git_ref: Some("main".into()),
        candidates: false,
        candidates_from_forks: false,
    };
    upstream_with(&d, &mock, "up/gl", gitlab).await;
    let buildkite = SourceSpec::Buildkite {
        token: HOOK_SECRET.into(),
        allow_plain_token: false,
        pipeline: Some("lib".into()),
        branch: Some("main".into()),
        candidates: false,
        candidates_from_forks: false,
    };
    upstream_with(&d, &mock, "up/bk", buildkite).await;
    let jenkins = SourceSpec::Jenkins {
        secret: HOOK_SECRET.into(),
        job: Some("team/lib".into()),
        branch: Some("main".into()),
    };
    upstream_with(&d, &mock, "up/jk", jenkins).await;

    let body = |path: &str| fixture(path);
    let json = |v: Value| serde_json::to_vec(&v).unwrap();
    let push = json(fixture_json("acceptance/ops/gitlab-push-event.json"));
    let jenkins_phase = |phase: &str| {
        let mut n =
            fixture_json("acceptance/native-ci/jenkins/notification.finalized.failure.guilty.json");
        n["build"]["phase"] = phase.into();
        if phase == "QUEUED" || phase == "STARTED" {
            n["build"]["status"] = Value::Null;
        }
        json(n)
    };
    let deliveries: Vec<(CiKind, &str, Vec<u8>)> = vec![
        // An organisation webhook's ping names no repository.
        (
            CiKind::Github,
            "ping",
            json(
                serde_json::json!({"zen": "Keep it logically awesome.", "hook_id": 1, "organization": {"login": "acme"}}),
            ),
        ),
        (
            CiKind::Github,
            "push",
            json(
                serde_json::json!({"ref": "refs/heads/main", "repository": {"full_name": "acme/lib"}}),
            ),
        ),
        (
            CiKind::Github,
            "check_run",
            body("forge/github/check_run.completed.signed-body.json"),
        ),
        (
            CiKind::Github,
            "pull_request",
            body("forge/github/pull_request.opened.signed-body.json"),
        ),
        (
            CiKind::Github,
            "workflow_job",
            body("ci/github/workflow_job.completed.failure.json"),
        ),
        (CiKind::Gitlab, "Push Hook", push.clone()),
        (CiKind::Gitlab, "Tag Push Hook", push.clone()),
        (
            CiKind::Gitlab,
            "Merge Request Hook",
            body("forge/gitlab/merge_request.open.token-body.json"),
        ),
        (CiKind::Gitlab, "Job Hook", push),
        (
            CiKind::Buildkite,
            "ping",
            json(
                serde_json::json!({"event": "ping", "service": {"id": "1"}, "organization": {"slug": "acme"}, "sender": {"name": "Ana"}}),
            ),
        ),
        (
            CiKind::Buildkite,
            "job.finished",
            body("ci/buildkite/build.finished.blocked.json"),
        ),
        (CiKind::Jenkins, "QUEUED", jenkins_phase("QUEUED")),
        (CiKind::Jenkins, "STARTED", jenkins_phase("STARTED")),
        (CiKind::Jenkins, "COMPLETED", jenkins_phase("COMPLETED")),
        (CiKind::Jenkins, "FINALIZED", jenkins_phase("FINALIZED")),
    ];
    for (ci, event, body) in &deliveries {
        let (path, bad) = signed(*ci, event, body, "not-the-secret-at-all");
        let (status, answer) = post(&d, &path, &bad, body).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{ci} {event} with a bad secret: {answer}"
        );
        let (path, good) = signed(*ci, event, body, HOOK_SECRET);
        let (status, answer) = post(&d, &path, &good, body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{ci} {event}: {answer}");
        assert_eq!(answer["outcome"], "noted", "{ci} {event}: {answer}");
        assert!(
            answer["note"].as_str().unwrap_or_default().len() > 20,
            "{ci} {event}: says why: {answer}"
        );
    }
    assert!(d.api.roots(10).await.unwrap().is_empty(), "nothing changed");
}
