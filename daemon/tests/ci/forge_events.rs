//! Pull-request and merge-request deliveries as GitHub and GitLab send them (every
//! file of `../shared/fixtures/forge/`, real deliveries and the forges' own
//! examples; origins in its SOURCES.md): each read into what happened to which
//! request, the signed captures checked against the secret their repository
//! publishes, and the events about no request noted.

use std::path::PathBuf;

use conjunction_daemon::ci::{github, gitlab, ChangeAction, ChangeEvent, Hook};

fn dir(forge: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/forge")
        .join(forge);
    assert!(
        dir.is_dir(),
        "the forge fixtures are read from {}",
        dir.display()
    );
    dir
}

fn read(forge: &str, name: &str) -> Vec<u8> {
    std::fs::read(dir(forge).join(name)).unwrap_or_else(|e| panic!("{forge}/{name}: {e}"))
}

/// The secret Cogni-DAO/cogni-git-review publishes for its captured deliveries.
const CAPTURE_SECRET: &str = "402786017574bd28f9d8f7a18648939751c47fe09077d56e10f0444f14fbb73b";

fn change(hook: Hook) -> ChangeEvent {
    match hook {
        Hook::Change(change) => change,
        other => panic!("expected news of a request, got {other:?}"),
    }
}

struct Expected {
    file: &'static str,
    source: &'static str,
    number: &'static str,
    action: ChangeAction,
    head: &'static str,
    branch: &'static str,
}

const GITHUB: &[Expected] = &[
    Expected {
        file: "pull_request.opened.octokit.json",
        source: "Codertocat/Hello-World",
        number: "2",
        action: ChangeAction::Opened,
        head: "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
        branch: "changes",
    },
    Expected {
        file: "pull_request.synchronize.octokit.json",
        source: "Codertocat/Hello-World",
        number: "2",
        action: ChangeAction::Pushed,
        head: "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
        branch: "changes",
    },
    Expected {
        file: "pull_request.opened.signed-body.json",
        source: "derekg1729/test-repo",
        number: "315",
        action: ChangeAction::Opened,
        head: "eeb67d6e0f131d27102080b6bb50be2ddae28cc3",
        branch: "cogni-e2e-1759155366275",
    },
    Expected {
        file: "pull_request.synchronize.signed-body.json",
        source: "derekg1729/test-repo",
        number: "315",
        action: ChangeAction::Pushed,
        head: "b47337c4",
        branch: "cogni-e2e-1759155366275",
    },
    Expected {
        file: "pull_request.opened.go-scm.json",
        source: "bradrydzewski/drone-test-go",
        number: "1",
        action: ChangeAction::Opened,
        head: "d2b75aa7797ec26b088fa2dd527e9d2c052fcedd",
        branch: "master",
    },
    Expected {
        file: "pull_request.synchronize.go-scm.json",
        source: "bradrydzewski/drone-test-go",
        number: "1",
        action: ChangeAction::Pushed,
        head: "8102e371",
        branch: "master",
    },
];

/// Deliveries about no pull request itself, and what their note says.
const GITHUB_OTHER: &[(&str, &str, &str)] = &[
    (
        "check_run.completed.success.octokit.json",
        "check_run",
        "does not act on it",
    ),
    (
        "check_run.completed.failure.octokit.json",
        "check_run",
        "does not act on it",
    ),
    (
        "check_run.completed.signed-body.json",
        "check_run",
        "does not act on it",
    ),
    (
        "status.success.octokit.json",
        "status",
        "does not act on it",
    ),
    ("status.success.go-scm.json", "status", "does not act on it"),
];

const CAPTURES: &[&str] = &[
    "pull_request.opened.signed-capture.json",
    "pull_request.synchronize.signed-capture.json",
    "check_run.completed.signed-capture.json",
];

const WITH_PULL_REQUESTS: &str = "workflow_run.completed.with-pull-requests.octokit.json";

#[test]
fn every_github_pull_request_delivery_says_what_happened_to_which_request() {
    let mut names: Vec<&str> = GITHUB.iter().map(|e| e.file).collect();
    names.extend(GITHUB_OTHER.iter().map(|(f, _, _)| *f));
    names.extend(CAPTURES);
    names.push(WITH_PULL_REQUESTS);
    for entry in std::fs::read_dir(dir("github")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            names.contains(&name.as_str()),
            "github/{name} is read by this test"
        );
    }
    for e in GITHUB {
        let got = change(github::parse("pull_request", &read("github", e.file)).unwrap());
        assert_eq!(got.source, e.source, "{}", e.file);
        assert_eq!(got.number, e.number, "{}", e.file);
        assert_eq!(got.action, e.action, "{}", e.file);
        assert!(
            got.head.as_deref().unwrap().starts_with(e.head),
            "{}: {:?}",
            e.file,
            got.head
        );
        assert_eq!(got.branch.as_deref(), Some(e.branch), "{}", e.file);
        // Every real delivery found has its head in the repository itself.
        assert_eq!(got.fork, None, "{}", e.file);
        assert_eq!(got.change_ids(), vec![e.number.to_owned()], "{}", e.file);
    }
    for (file, event, says) in GITHUB_OTHER {
        match github::parse(event, &read("github", file)).unwrap() {
            Hook::Unused(note) => assert!(note.contains(says), "{file}: {note}"),
            other => panic!("{file}: {other:?}"),
        }
    }
}

#[test]
fn a_closed_or_forked_pull_request_is_read_as_such() {
    let mut closed: serde_json::Value =
        serde_json::from_slice(&read("github", "pull_request.opened.octokit.json")).unwrap();
    closed["action"] = "closed".into();
    let got = change(github::parse("pull_request", &serde_json::to_vec(&closed).unwrap()).unwrap());
    assert_eq!(got.action, ChangeAction::Closed);
    assert!(got.action.ends());
    closed["pull_request"]["merged"] = true.into();
    closed["pull_request"]["head"]["repo"]["full_name"] = "someone/Hello-World".into();
    let got = change(github::parse("pull_request", &serde_json::to_vec(&closed).unwrap()).unwrap());
    assert_eq!(got.action, ChangeAction::Merged);
    assert_eq!(got.fork.as_deref(), Some("someone/Hello-World"));
    // A fork's run names no pull request: its candidate is known by fork and branch.
    assert_eq!(
        got.change_ids(),
        vec!["2".to_owned(), "someone/Hello-World:changes".to_owned()]
    );
}

#[test]
fn the_signed_captures_verify_with_their_published_secret_and_read_as_their_bodies() {
    for capture in CAPTURES {
        let c: serde_json::Value = serde_json::from_slice(&read("github", capture)).unwrap();
        use base64::Engine;
        let body = base64::engine::general_purpose::STANDARD
            .decode(c["body_raw_base64"].as_str().unwrap())
            .unwrap();
        let signature = c["headers"]["x-hub-signature-256"].as_str();
        github::verify(CAPTURE_SECRET.as_bytes(), &body, signature)
            .unwrap_or_else(|e| panic!("{capture}: {e}"));
        assert!(
            github::verify(b"another secret", &body, signature).is_err(),
            "{capture}: a wrong secret is refused"
        );
        let derived = capture.replace("signed-capture", "signed-body");
        assert_eq!(body, read("github", &derived), "{capture} is {derived}");
        let event = c["headers"]["x-github-event"].as_str().unwrap();
        let read = github::parse(event, &body).unwrap();
        match event {
            "pull_request" => assert_eq!(change(read).number, "315"),
            _ => assert!(matches!(read, Hook::Unused(_)), "{capture}"),
        }
    }
}

#[test]
fn a_workflow_run_names_its_pull_request_only_when_a_pull_request_started_it() {
    // The octokit example lists a pull request but was started by a dispatch.
    let body = read("github", WITH_PULL_REQUESTS);
    let Hook::Run(run) = github::parse("workflow_run", &body).unwrap() else {
        panic!("a workflow_run is about a run");
    };
    assert_eq!(run.candidate, None, "started by repository_dispatch");
    // No real run with `event: pull_request` was found with this one's fields, so it
    // is made from the same delivery as GitHub's schema documents it.
    let mut pr: serde_json::Value = serde_json::from_slice(&body).unwrap();
    pr["workflow_run"]["event"] = "pull_request".into();
    let Hook::Run(run) = github::parse("workflow_run", &serde_json::to_vec(&pr).unwrap()).unwrap()
    else {
        panic!("a workflow_run is about a run");
    };
    let change = run.candidate.expect("a pull request's run tests a change");
    assert_eq!(change.number.as_deref(), Some("2"));
    assert_eq!(change.fork, None);
    assert!(change.base.is_some());
}

#[test]
fn every_gitlab_merge_request_delivery_says_what_happened_to_which_request() {
    let expected = [
        (
            "merge_request.open.token-body.json",
            "cogni-dao/core/cogni-git-review",
            ChangeAction::Opened,
            "fb7d5cea20fd333821e718d24283bc7282483492",
            "chore/sync-gitlab",
        ),
        (
            "merge_request.open.go-gitlab.json",
            "gitlabhq/gitlab-test",
            ChangeAction::Opened,
            "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
            "ms-viewport",
        ),
        (
            "merge_request.open.go-scm.json",
            "gitlab-org/hello-world",
            ChangeAction::Opened,
            "c4c79227ed610f1151f05bbc5be33b4f340d39c8",
            "feature",
        ),
        (
            "merge_request.update.go-scm.json",
            "gitlab-org/hello-world",
            ChangeAction::Pushed,
            "c4c79227ed610f1151f05bbc5be33b4f340d39c8",
            "feature",
        ),
    ];
    let capture = "merge_request.open.token-capture.json";
    for entry in std::fs::read_dir(dir("gitlab")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            name == capture || expected.iter().any(|e| e.0 == name),
            "gitlab/{name} is read by this test"
        );
    }
    for (file, source, action, head, branch) in expected {
        // Sent with the header, and read by its object_kind without it.
        for event in [Some("Merge Request Hook"), None] {
            let got = change(gitlab::parse(event, &read("gitlab", file)).unwrap());
            assert_eq!(got.source, source, "{file}");
            assert_eq!(got.number, "1", "{file}");
            assert_eq!(got.action, action, "{file}");
            assert_eq!(got.head.as_deref(), Some(head), "{file}");
            assert_eq!(got.branch.as_deref(), Some(branch), "{file}");
            assert_eq!(got.fork, None, "{file}: source and target project are one");
        }
    }
    // The capture carries its token in clear, as GitLab sends it.
    let c: serde_json::Value = serde_json::from_slice(&read("gitlab", capture)).unwrap();
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD
        .decode(c["body_raw_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(body, read("gitlab", "merge_request.open.token-body.json"));
    gitlab::verify(
        CAPTURE_SECRET.as_bytes(),
        c["headers"]["x-gitlab-token"].as_str(),
    )
    .unwrap();
    let mut closed: serde_json::Value = serde_json::from_slice(&body).unwrap();
    for (action, read_as) in [
        ("close", ChangeAction::Closed),
        ("merge", ChangeAction::Merged),
    ] {
        closed["object_attributes"]["action"] = action.into();
        let got = change(
            gitlab::parse(
                Some("Merge Request Hook"),
                &serde_json::to_vec(&closed).unwrap(),
            )
            .unwrap(),
        );
        assert_eq!(got.action, read_as);
    }
}
