//! GitHub: every payload is read, and the signed captures verify with the secret their
//! source publishes.

use conjunction_daemon::ci::{github, Hook, HookError, RunNews, RunState};
use conjunction_protocol::ReportState;

fn read(name: &str) -> Vec<u8> {
    crate::read("github", name)
}

/// Requests as GitHub sent them: headers, and the body in base64.
const CAPTURES: [&str; 2] = [
    "workflow_run.in_progress.signed-capture.json",
    "check_suite.completed.signed-capture.json",
];

/// The secret Cogni-DAO/cogni-git-review publishes for its captures.
const CAPTURE_SECRET: &str = "402786017574bd28f9d8f7a18648939751c47fe09077d56e10f0444f14fbb73b";

struct Expected {
    file: &'static str,
    source: &'static str,
    run_id: Option<&'static str>,
    workflow: Option<&'static str>,
    state: RunState,
    commit: Option<&'static str>,
    git_ref: Option<&'static str>,
    url: Option<&'static str>,
}

const SHA_OCTO: &str = "3484a3fb816e0859fd6e1cea078d76385ff50625";
const SHA_TEST_REPO: &str = "a69811586879ea72cb7657e555fcdb45cf96c6d6";
const RUN_URL: &str = "https://github.com/octo-org/octo-repo/actions/runs/289782451";

fn expected() -> Vec<Expected> {
    use RunState::*;
    vec![
        Expected {
            file: "workflow_run.completed.success.json",
            source: "octo-org/octo-repo",
            run_id: Some("289782451"),
            workflow: Some(".github/workflows/test.yml"),
            state: Finished(ReportState::Passed),
            commit: Some(SHA_OCTO),
            git_ref: Some("master"),
            url: Some(RUN_URL),
        },
        Expected {
            file: "workflow_run.requested.json",
            source: "octo-org/octo-repo",
            run_id: Some("289782451"),
            workflow: Some(".github/workflows/test.yml"),
            state: Running,
            commit: Some(SHA_OCTO),
            git_ref: Some("master"),
            url: Some(RUN_URL),
        },
        Expected {
            // Completed, waiting for a maintainer to approve a fork's run: not finished.
            file: "workflow_run.requested.action_required.json",
            source: "octo-org/octo-repo",
            run_id: Some("289782451"),
            workflow: Some(".github/workflows/test.yml"),
            state: Running,
            commit: Some(SHA_OCTO),
            git_ref: Some("master"),
            url: Some(RUN_URL),
        },
        Expected {
            file: "workflow_run.in_progress.signed-body.json",
            source: "derekg1729/test-repo",
            run_id: Some("18436407157"),
            workflow: Some("dynamic/github-code-scanning/codeql"),
            state: Running,
            commit: Some(SHA_TEST_REPO),
            git_ref: Some("refs/pull/166/head"),
            url: Some("https://github.com/derekg1729/test-repo/actions/runs/18436407157"),
        },
        Expected {
            file: "check_suite.completed.success.json",
            source: "Codertocat/Hello-World",
            run_id: Some("118578147"),
            workflow: None,
            state: Finished(ReportState::Passed),
            commit: Some("ec26c3e57ca3a959ca5aad62de7213c562f8c821"),
            git_ref: Some("main"),
            url: None,
        },
        Expected {
            file: "check_suite.completed.signed-body.json",
            source: "derekg1729/test-repo",
            run_id: Some("47422842078"),
            workflow: None,
            state: Finished(ReportState::Passed),
            commit: Some(SHA_TEST_REPO),
            git_ref: Some("e2e-test-1760227487027"),
            url: None,
        },
    ]
}

/// Deliveries about no run, and what their note says.
const UNUSED: [(&str, &str); 4] = [
    ("workflow_job.completed.failure.json", "a job of a run"),
    ("workflow_job.in_progress.json", "a job of a run"),
    ("workflow_dispatch.json", "a dispatch names no run"),
    ("repository_dispatch.json", "a dispatch names no run"),
];

/// The event a fixture holds, from its name: `workflow_run.completed.success.json`.
fn event_of(file: &str) -> &str {
    file.split('.').next().unwrap()
}

#[test]
fn every_github_payload_is_read_into_its_run() {
    let expected = expected();
    let mut names: Vec<&str> = expected.iter().map(|e| e.file).collect();
    names.extend(UNUSED.iter().map(|(file, _)| *file));
    // The captures' bodies are the *.signed-body.json files; the next test takes them.
    names.extend(CAPTURES);
    crate::all_named("github", &names);
    for (file, why) in UNUSED {
        match github::parse(event_of(file), &read(file)).unwrap() {
            Hook::Unused(note) => assert!(note.contains(why), "{file}: {note}"),
            Hook::Run(news) => panic!("{file} is about no run: {news:?}"),
            Hook::Change(change) => panic!("{file} is about no request: {change:?}"),
        }
    }
    for e in expected {
        let news: RunNews = crate::run(
            github::parse(event_of(e.file), &read(e.file))
                .unwrap_or_else(|err| panic!("{}: {err}", e.file)),
        );
        assert_eq!(news.source, e.source, "{}", e.file);
        assert_eq!(news.run_id.as_deref(), e.run_id, "{}", e.file);
        assert_eq!(news.workflow.as_deref(), e.workflow, "{}", e.file);
        assert_eq!(news.state, e.state, "{}", e.file);
        assert_eq!(news.commit.as_deref(), e.commit, "{}", e.file);
        assert_eq!(news.git_ref.as_deref(), e.git_ref, "{}", e.file);
        assert_eq!(news.url.as_deref(), e.url, "{}", e.file);
    }
}

#[test]
fn the_signed_captures_verify_with_their_secret_and_fail_after_a_one_byte_change() {
    for capture in CAPTURES {
        let capture_json: serde_json::Value = serde_json::from_slice(&read(capture)).unwrap();
        let headers = &capture_json["headers"];
        let signature = headers[github::SIGNATURE_HEADER].as_str().unwrap();
        let body = read(&capture.replace("signed-capture", "signed-body"));
        assert_eq!(
            headers["content-length"].as_str().unwrap(),
            body.len().to_string(),
            "{capture}: the body as sent"
        );
        let secret = CAPTURE_SECRET.as_bytes();
        github::verify(secret, &body, Some(signature)).unwrap_or_else(|e| panic!("{capture}: {e}"));

        let mut changed = body.clone();
        changed[body.len() / 2] ^= 0x01;
        assert_eq!(
            github::verify(secret, &changed, Some(signature)),
            Err(HookError::BadSignature("X-Hub-Signature-256"))
        );
        assert!(github::verify(b"another secret", &body, Some(signature)).is_err());
        assert_eq!(
            github::verify(secret, &body, None),
            Err(HookError::Unsigned("X-Hub-Signature-256"))
        );
        let sha1_only = headers["x-hub-signature"].as_str().unwrap();
        assert!(
            github::verify(secret, &body, Some(sha1_only)).is_err(),
            "SHA-1 is not taken"
        );
        // The event header names what the body is.
        let event = headers[github::EVENT_HEADER].as_str().unwrap();
        assert!(github::parse(event, &body).is_ok());
        assert!(headers[github::DELIVERY_HEADER].as_str().is_some());
    }
}

#[test]
fn a_body_that_is_not_a_github_event_is_refused_with_the_reason() {
    let err = github::parse("workflow_run", b"{\"zen\":\"Design for failure.\"").unwrap_err();
    assert!(
        matches!(err, HookError::Unreadable { ci: "GitHub", .. }),
        "{err}"
    );
    let err = github::parse("workflow_run", br#"{"repository":{"full_name":"a/b"}}"#).unwrap_err();
    assert!(err.to_string().contains("without `workflow_run`"), "{err}");
}

#[test]
fn a_run_named_by_its_run_name_carries_the_conjunction_build() {
    let mut run: serde_json::Value =
        serde_json::from_slice(&read("workflow_run.completed.success.json")).unwrap();
    run["workflow_run"]["display_title"] = "conjunction 01JD3Q8Z5K2V7WQ4M6N8P0R2S4/2".into();
    let news =
        crate::run(github::parse("workflow_run", &serde_json::to_vec(&run).unwrap()).unwrap());
    assert_eq!(
        news.conjunction_build.as_deref(),
        Some("01JD3Q8Z5K2V7WQ4M6N8P0R2S4/2")
    );
    let plain = crate::run(
        github::parse("workflow_run", &read("workflow_run.completed.success.json")).unwrap(),
    );
    assert_eq!(
        plain.conjunction_build, None,
        "an ordinary title carries none"
    );
}

#[test]
fn events_about_no_run_are_noted_without_reading_them_even_from_an_organisation() {
    // An organisation webhook's ping names no repository; a push or check run is
    // nothing conjunction follows. None of them is read, so none can be refused.
    for (event, body) in [
        (
            "ping",
            &br#"{"zen":"Design for failure.","hook_id":1,"organization":{"login":"acme"}}"#[..],
        ),
        (
            "push",
            &br#"{"ref":"refs/heads/main","repository":{"full_name":"acme/lib"}}"#[..],
        ),
        ("check_run", &b"{}"[..]),
        ("installation", &b"{}"[..]),
    ] {
        let Hook::Unused(note) = github::parse(event, body).unwrap() else {
            panic!("{event} is about no run");
        };
        assert!(note.contains(event), "{note}");
    }
    // A pull request's event is read, for its candidates: a broken one is refused.
    assert!(github::parse("pull_request", b"not even json").is_err());
}

#[test]
fn a_pull_requests_run_and_a_run_of_a_forks_commit_are_candidates() {
    // A real delivery of a run with `event: pull_request`, in the repository itself.
    let body = crate::read_acceptance("native-ci/github", "workflow_run.completed.cdviz.json");
    let own = crate::run(github::parse("workflow_run", &body).unwrap());
    assert_eq!(own.source, "aaaaa-aaa/aaaaa-aaaaaaaaa");
    let change = own.candidate.expect("a pull request's run tests a change");
    assert_eq!(change.number.as_deref(), Some("35"));
    assert_eq!(
        change.base.as_deref(),
        Some("446a9bfc0365c3293130f490b2f190f8127fc0da")
    );
    assert_eq!(change.fork, None, "the head is in the repository itself");
    assert_eq!(change.what, "a run of pull request #35");
    // The same run started by a push tests nothing.
    let mut push: serde_json::Value = serde_json::from_slice(&body).unwrap();
    push["workflow_run"]["event"] = "push".into();
    let push =
        crate::run(github::parse("workflow_run", &serde_json::to_vec(&push).unwrap()).unwrap());
    assert_eq!(push.candidate, None);
    let mut fork: serde_json::Value = serde_json::from_slice(&body).unwrap();
    fork["workflow_run"]["head_repository"]["full_name"] = "someone/aaaaa-aaaaaaaaa".into();
    // GitHub names no pull request on a fork's run.
    fork["workflow_run"]["pull_requests"] = serde_json::json!([]);
    let fork =
        crate::run(github::parse("workflow_run", &serde_json::to_vec(&fork).unwrap()).unwrap());
    let change = fork.candidate.expect("a fork's run tests a change");
    assert_eq!(
        change.what,
        "a run of a commit from the fork someone/aaaaa-aaaaaaaaa"
    );
    assert_eq!(change.fork.as_deref(), Some("someone/aaaaa-aaaaaaaaa"));
}

#[test]
fn a_form_encoded_delivery_is_read_from_its_payload_field() {
    let json = read("workflow_run.completed.success.json");
    let form: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", std::str::from_utf8(&json).unwrap())
        .finish();
    let body =
        github::json_body(Some("application/x-www-form-urlencoded"), form.as_bytes()).unwrap();
    assert_eq!(&*body, &json[..]);
    assert_eq!(
        &*github::json_body(Some("application/json"), &json).unwrap(),
        &json[..]
    );
    assert!(github::json_body(Some("application/x-www-form-urlencoded"), b"x=1").is_err());
}
