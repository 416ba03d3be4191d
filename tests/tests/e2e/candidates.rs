//! Candidate cascades: an upstream's pull request built with its dependents before it
//! merges, from the upstream's own GitHub `workflow_run` webhook (a real delivery of
//! a run with `event: pull_request`, `../shared/fixtures/acceptance/`). The
//! candidate's commit reaches every trigger, verdicts compare with the latest
//! release, no release line or baseline is written, a newer push supersedes the
//! older, one pull-request comment is edited in place, a fork's run is refused
//! unless the source allows it, and the candidate's notices go to the upstream only.

use conjunction_protocol::forge::{Forge, ReportTarget};
use conjunction_protocol::notify::{Channel, NoticeKind, NotifyRule};
use conjunction_protocol::{ProjectSpec, SourceSpec, StateKind, Verdict};
use conjunction_sim::forge::{MockForge, TOKEN};
use conjunction_sim::native::github_signature;
use conjunction_sim::webhook::Behaviour;
use conjunction_tests::daemon::TestDaemon;
use conjunction_tests::{eventually, fixture_json};
use reqwest::StatusCode;

use super::native::post_hook;
use super::*;

const HOOK_SECRET: &str = "webhook-secret-0123456789";
/// A real `workflow_run` delivery of a pull request's run (anonymised by its source).
const PR_RUN: &str = "acceptance/native-ci/github/workflow_run.completed.cdviz.json";
const WORKFLOW: &str = ".github/workflows/aa.yml";
const HOOK_PATH: &str = "/v1/hooks/github/acme%2Flib";
/// The pull request the captured run is for, and the commit it is made on.
const PR: &str = "35";
const PR_BASE: &str = "446a9bfc0365c3293130f490b2f190f8127fc0da";

/// The captured run, moved to `acme/lib`, as run `id` of commit `sha`.
fn pr_run(id: u64, sha: &str, fork: Option<&str>) -> Vec<u8> {
    let mut run = fixture_json(PR_RUN);
    run["repository"]["full_name"] = "acme/lib".into();
    run["workflow_run"]["repository"]["full_name"] = "acme/lib".into();
    run["workflow_run"]["head_repository"]["full_name"] = fork.unwrap_or("acme/lib").into();
    run["workflow_run"]["id"] = id.into();
    run["workflow_run"]["head_sha"] = sha.into();
    if fork.is_some() {
        // GitHub names no pull request on a fork's run.
        run["workflow_run"]["pull_requests"] = serde_json::json!([]);
    }
    serde_json::to_vec(&run).unwrap()
}

fn headers(body: &[u8], delivery: &str) -> Vec<(&'static str, String)> {
    vec![
        ("x-github-event", "workflow_run".into()),
        ("x-github-delivery", delivery.into()),
        ("x-hub-signature-256", github_signature(HOOK_SECRET, body)),
    ]
}

fn source(from_forks: bool) -> SourceSpec {
    SourceSpec::Github {
        secret: HOOK_SECRET.into(),
        repo: Some("acme/lib".into()),
        workflow: Some(WORKFLOW.into()),
        branch: Some("main".into()),
        candidates: true,
        candidates_from_forks: from_forks,
    }
}

fn notices_to(url: &str) -> Vec<NotifyRule> {
    vec![NotifyRule {
        channel: Channel::Webhook {
            url: url.into(),
            secret: None,
        },
        on: NoticeKind::defaults(),
        name: None,
    }]
}

/// `acme/lib` (taking candidates from its own repository, reporting to `forge` with
/// a comment) and its dependents on `ci`: `acme/app` and `acme/tool` on it,
/// `acme/deep` on `acme/app`, `acme/old` on it. Answers the upstream's report token.
async fn graph(
    d: &TestDaemon,
    ci: &conjunction_sim::webhook::WebhookCi,
    forge: &MockForge,
) -> String {
    let upstream = ProjectSpec {
        source: Some(source(false)),
        report_to: vec![ReportTarget {
            forge: Forge::Github {
                repo: "acme/lib".into(),
                token: Some(TOKEN.into()),
                app: None,
                per_dependent: false,
                api_url: Some(forge.base_url()),
            },
            needs_bump_fails: false,
            comment: true,
        }],
        notify: notices_to("http://127.0.0.1:9/upstream"),
        ..spec("acme/lib", &[], None)
    };
    let (status, answer) = d
        .api
        .put_project(&pid("acme/lib"), &upstream)
        .await
        .unwrap();
    assert_eq!(status, 201, "{answer:?}");
    for (name, deps) in [
        ("acme/app", &["acme/lib"][..]),
        ("acme/tool", &["acme/lib"]),
        ("acme/deep", &["acme/app"]),
        ("acme/old", &["acme/lib"]),
    ] {
        let dependent = ProjectSpec {
            notify: notices_to("http://127.0.0.1:9/downstream"),
            ..spec(name, deps, Some(ci))
        };
        let (status, _) = d.api.put_project(&pid(name), &dependent).await.unwrap();
        assert_eq!(status, 201, "{name}");
    }
    answer.report_token.unwrap()
}

#[tokio::test]
async fn a_pull_requests_run_is_built_with_its_dependents_and_never_becomes_a_release() {
    let d = TestDaemon::start().await;
    let ci = webhook_ci().await;
    let forge = MockForge::start().await.unwrap();
    let token = graph(&d, &ci, &forge).await;
    const FIRST: &str = "1a11a11a11111111aa11a1111aaaa11111aaaa11";
    const SECOND: &str = "2b22b22b22222222bb22b2222bbbb22222bbbb22";
    // acme/tool builds with every release and breaks with the pull request; acme/old
    // always fails; acme/app, on the first push, is still building when the second
    // comes.
    ci.decide(|p, _| {
        let candidate = p.root.candidate.is_some();
        match p.project.as_str() {
            "acme/old" => Behaviour::fail("always broken"),
            "acme/tool" if candidate => Behaviour::fail("error[E0599]: no method `frob`"),
            "acme/app" if p.root.commit.as_deref() == Some(FIRST) => Behaviour::Silent,
            _ => Behaviour::pass(),
        }
    });
    let release = report_root(&d.api, &token, "acme/lib", "1.0.0").await;
    settled(&d.api, release.root).await;

    let body = pr_run(501, FIRST, None);
    let (status, answer) = post_hook(&d, HOOK_PATH, &headers(&body, "pr-1"), &body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let first: conjunction_protocol::BuildId =
        answer["build"]["root"].as_str().unwrap().parse().unwrap();
    let event = eventually("the first candidate's builds to run", WAIT, || async {
        let e = d.api.root(first).await.ok()?;
        (state_of(&e, "acme/tool").is_final()
            && state_of(&e, "acme/old").is_final()
            && state_of(&e, "acme/app") == StateKind::Triggered)
            .then_some(e)
    })
    .await;
    let candidate = event.summary.candidate.clone().expect("a candidate event");
    assert_eq!(candidate.change, PR);
    assert_eq!(candidate.base.as_deref(), Some(PR_BASE));
    assert_eq!(
        event.summary.version, None,
        "a pull request's branch names no version"
    );
    for name in ["acme/app", "acme/tool", "acme/old"] {
        let trigger = &ci.triggers_of(name)[1].payload;
        assert_eq!(trigger.root.candidate.as_ref(), Some(&candidate), "{name}");
        assert_eq!(trigger.root.commit.as_deref(), Some(FIRST), "{name}");
    }
    // Judged against the latest release: broke only where the release passed.
    let tool = node_of(&event, "acme/tool");
    assert_eq!(tool.verdict, Some(Verdict::Broke));
    assert_eq!(tool.baseline.as_ref().map(|b| b.root), Some(release.root));
    assert_eq!(
        node_of(&event, "acme/old").verdict,
        Some(Verdict::StillFailing)
    );
    // Told to the upstream only: the dependent did not ask about unmerged changes.
    let told: Vec<_> = tool
        .notices
        .iter()
        .filter(|n| n.kind == NoticeKind::Broke)
        .collect();
    assert_eq!(told.len(), 1, "{:?}", tool.notices);
    assert_eq!(told[0].to, vec![pid("acme/lib")]);

    // The comment on the pull request, made once.
    let comment = eventually("the pull request's comment", WAIT, || async {
        let all = forge.comments();
        all.iter()
            .find(|c| c.body.contains(&first.to_string()) && c.body.contains("acme/tool"))
            .cloned()
    })
    .await;
    assert_eq!(comment.number, 35);
    assert!(
        comment.body.contains("#### Regressed (1)"),
        "{}",
        comment.body
    );
    assert!(
        comment.body.contains("#### Still failing (1)"),
        "{}",
        comment.body
    );

    // A second push supersedes the first: its untriggered and running builds end
    // cancelled, nobody is told, and the same comment now speaks of the second.
    let body = pr_run(502, SECOND, None);
    let (status, answer) = post_hook(&d, HOOK_PATH, &headers(&body, "pr-2"), &body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let second: conjunction_protocol::BuildId =
        answer["build"]["root"].as_str().unwrap().parse().unwrap();
    let old = d.api.root(first).await.unwrap();
    assert_eq!(old.summary.superseded_by, Some(second));
    for name in ["acme/app", "acme/deep"] {
        let node = node_of(&old, name);
        assert_eq!(node.state.kind(), StateKind::Cancelled, "{name}");
        let why = format!("superseded by {second}");
        assert_eq!(node.summary.as_deref(), Some(why.as_str()), "{name}");
        assert!(node.notices.is_empty(), "{name}: {:?}", node.notices);
    }
    assert!(
        node_of(&old, "acme/deep").triggered_at.is_none(),
        "acme/deep was never triggered"
    );
    let newer = settled(&d.api, second).await;
    assert_eq!(state_of(&newer, "acme/deep"), StateKind::Passed);
    // The pull request's head commit says what the change broke.
    let head = eventually("the status on the newer head commit", WAIT, || async {
        forge
            .latest_statuses("github", SECOND)
            .get(conjunction_protocol::forge::CONTEXT)
            .filter(|s| s.state == "failure")
            .cloned()
    })
    .await;
    assert!(head.description.contains("1 broke"), "{head:?}");
    let edited = eventually("the comment to speak of the second push", WAIT, || async {
        let all: Vec<_> = forge
            .comments()
            .into_iter()
            .filter(|c| c.number == 35)
            .collect();
        assert_eq!(all.len(), 1, "one comment on the pull request: {all:?}");
        all[0]
            .body
            .contains(&second.to_string())
            .then(|| all[0].clone())
    })
    .await;
    assert!(edited.edits >= 1);
    assert!(!edited.body.contains(&first.to_string()), "{}", edited.body);

    // No release line, and the next release is judged against releases only: acme/tool
    // passed with 1.0.0, so passing with 1.1.0 is `same`, not `fixed`.
    let releases = d.api.releases(&pid("acme/lib")).await.unwrap();
    let versions: Vec<_> = releases.lines.iter().map(|l| l.version.as_str()).collect();
    assert_eq!(versions, vec!["1.0.0"]);
    let next = report_root(&d.api, &token, "acme/lib", "1.1.0").await;
    let next = settled(&d.api, next.root).await;
    let tool = node_of(&next, "acme/tool");
    assert_eq!(tool.verdict, Some(Verdict::Same));
    assert_eq!(tool.baseline.as_ref().map(|b| b.root), Some(release.root));
}

#[tokio::test]
async fn a_forks_run_is_a_candidate_only_when_the_source_allows_it() {
    let d = TestDaemon::start().await;
    let ci = webhook_ci().await;
    let forge = MockForge::start().await.unwrap();
    graph(&d, &ci, &forge).await;
    ci.set_default(Behaviour::pass());
    let body = pr_run(
        601,
        "3c33c33c33333333cc33c3333cccc33333cccc33",
        Some("someone/lib"),
    );
    let (status, answer) = post_hook(&d, HOOK_PATH, &headers(&body, "fork-1"), &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let note = answer["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("someone/lib") && note.contains("candidates_from_forks"),
        "{note}"
    );
    assert!(d.api.roots(10).await.unwrap().is_empty(), "nothing started");
    assert!(ci.deliveries().is_empty(), "nothing triggered");

    // Allowed, the fork's change is named by its fork and branch.
    let spec = ProjectSpec {
        source: Some(source(true)),
        ..spec("acme/lib", &[], None)
    };
    let (status, _) = d.api.put_project(&pid("acme/lib"), &spec).await.unwrap();
    assert_eq!(status, 200);
    let (status, answer) = post_hook(&d, HOOK_PATH, &headers(&body, "fork-2"), &body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let root: conjunction_protocol::BuildId =
        answer["build"]["root"].as_str().unwrap().parse().unwrap();
    let event = settled(&d.api, root).await;
    let candidate = event.summary.candidate.clone().unwrap();
    assert_eq!(candidate.change, "someone/lib:fix-1");
}

#[tokio::test]
async fn closing_the_pull_request_ends_its_running_candidate() {
    let d = TestDaemon::start().await;
    let ci = webhook_ci().await;
    let forge = MockForge::start().await.unwrap();
    graph(&d, &ci, &forge).await;
    ci.set_default(Behaviour::Silent);
    let body = pr_run(701, "4d44d44d44444444dd44d4444dddd44444dddd44", None);
    let (status, answer) = post_hook(&d, HOOK_PATH, &headers(&body, "run-1"), &body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let root: conjunction_protocol::BuildId =
        answer["build"]["root"].as_str().unwrap().parse().unwrap();
    eventually("the dependents to be triggered", WAIT, || async {
        (ci.deliveries().len() == 3).then_some(())
    })
    .await;

    // GitHub's own example delivery, as the pull request on acme/lib is closed.
    let mut closed = fixture_json("forge/github/pull_request.opened.octokit.json");
    closed["action"] = "closed".into();
    closed["number"] = 35.into();
    closed["repository"]["full_name"] = "acme/lib".into();
    closed["pull_request"]["head"]["repo"]["full_name"] = "acme/lib".into();
    let closed = serde_json::to_vec(&closed).unwrap();
    let mut hook = headers(&closed, "closed-1");
    hook[0].1 = "pull_request".into();
    let (status, answer) = post_hook(&d, HOOK_PATH, &hook, &closed).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(
        answer["note"].as_str().unwrap().contains(&root.to_string()),
        "{answer}"
    );
    let event = d.api.root(root).await.unwrap();
    for name in ["acme/app", "acme/tool", "acme/old", "acme/deep"] {
        let node = node_of(&event, name);
        assert_eq!(node.state.kind(), StateKind::Cancelled, "{name}");
        assert_eq!(
            node.summary.as_deref(),
            Some("request #35 in acme/lib was closed"),
            "{name}"
        );
    }
    assert!(
        node_of(&event, "acme/lib").notices.is_empty(),
        "no digest of a closed candidate"
    );
    // Closed again, nothing is left to end.
    let mut hook = headers(&closed, "closed-2");
    hook[0].1 = "pull_request".into();
    let (status, answer) = post_hook(&d, HOOK_PATH, &hook, &closed).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
}

#[tokio::test]
async fn a_gitlab_merge_request_pipeline_is_a_candidate_with_one_note_on_its_merge_request() {
    let d = TestDaemon::start().await;
    let ci = webhook_ci().await;
    let forge = MockForge::start().await.unwrap();
    // The documentation's example: a merge request pipeline of !1 in gitlab-test.
    const PROJECT: &str = "gitlab-org/gitlab-test";
    let hook = fixture_json("ci/gitlab/pipeline.success.docs-example.json");
    let sha = hook["object_attributes"]["sha"]
        .as_str()
        .unwrap()
        .to_owned();
    let upstream = ProjectSpec {
        source: Some(SourceSpec::Gitlab {
            token: HOOK_SECRET.into(),
            signing_token: None,
            project: Some(PROJECT.into()),
            git_ref: Some("main".into()),
            candidates: true,
            candidates_from_forks: false,
        }),
        report_to: vec![ReportTarget {
            forge: Forge::Gitlab {
                url: forge.base_url(),
                project: PROJECT.into(),
                token: TOKEN.into(),
            },
            needs_bump_fails: false,
            comment: true,
        }],
        ..spec("acme/lib", &[], None)
    };
    let (status, _) = d
        .api
        .put_project(&pid("acme/lib"), &upstream)
        .await
        .unwrap();
    assert_eq!(status, 201);
    register(&d.api, "acme/app", &["acme/lib"], Some(&ci)).await;
    ci.set_default(Behaviour::pass());
    // A note by someone else that quotes conjunction's marker is left alone.
    let marker = "<!-- conjunction:change=acme/lib#1 -->";
    forge.add_comment(
        "gitlab",
        PROJECT,
        1,
        &format!("{marker}\nnot conjunction's"),
        7,
    );

    let body = serde_json::to_vec(&hook).unwrap();
    let headers = vec![
        ("x-gitlab-token", HOOK_SECRET.to_owned()),
        ("x-gitlab-event", "Pipeline Hook".to_owned()),
    ];
    let (status, answer) = post_hook(&d, "/v1/hooks/gitlab/acme%2Flib", &headers, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let root: conjunction_protocol::BuildId =
        answer["build"]["root"].as_str().unwrap().parse().unwrap();
    let event = settled(&d.api, root).await;
    assert_eq!(event.summary.candidate.as_ref().unwrap().change, "1");
    let trigger = &ci.triggers_of("acme/app")[0].payload;
    assert_eq!(trigger.root.commit.as_deref(), Some(sha.as_str()));
    assert_eq!(trigger.root.candidate.as_ref().unwrap().change, "1");

    let note = eventually(
        "the merge request's note to say it finished",
        WAIT,
        || async {
            let ours: Vec<_> = forge
                .comments()
                .into_iter()
                .filter(|c| c.forge == "gitlab" && c.user == conjunction_sim::forge::TOKEN_USER)
                .collect();
            assert!(ours.len() <= 1, "one note: {ours:?}");
            ours.into_iter().find(|c| c.body.contains("**1 new**"))
        },
    )
    .await;
    assert_eq!((note.repo.as_str(), note.number), (PROJECT, 1));
    assert!(note.body.starts_with(marker), "{}", note.body);
    let theirs = forge.comments().into_iter().find(|c| c.user == 7).unwrap();
    assert_eq!(theirs.edits, 0, "someone else's note is never edited");
    // And the pipeline's commit has its status.
    let status = eventually("the commit status", WAIT, || async {
        forge
            .latest_statuses("gitlab", &sha)
            .get(conjunction_protocol::forge::CONTEXT)
            .filter(|s| s.state == "success")
            .cloned()
    })
    .await;
    assert!(status.description.contains("1 new"), "{status:?}");
}
