//! GitLab: every Pipeline Hook is read, and the request with a broken body is refused.

use conjunction_daemon::ci::{gitlab, Hook, HookError, RunState};
use conjunction_protocol::ReportState;

fn read(name: &str) -> Vec<u8> {
    crate::read("gitlab", name)
}

/// A file, and the run it must be read as: source, pipeline id, state, sha, ref, URL.
type Expected = (
    &'static str,
    &'static str,
    &'static str,
    RunState,
    &'static str,
    &'static str,
    &'static str,
);

const APP_SHA: &str = "e2b9fff8bb1f4a7c7036b348963358bd74457cc2";
const TEST_SHA: &str = "bcbb5ec396a2c0f828686f14fac9b80b780504f2";
const REQUEST: &str = "pipeline.running.request-invalid-json.http";

#[test]
fn every_gitlab_pipeline_hook_is_read_into_its_run() {
    use RunState::*;
    let passed = Finished(ReportState::Passed);
    #[rustfmt::skip]
    let expected: Vec<Expected> = vec![
        ("pipeline.running.json", "android-team/customer-app", "53479", Running, APP_SHA, "main",
         "https://gitlab.com/android-team/customer-app/-/pipelines/53479"),
        ("pipeline.failed.json", "android-team/customer-app", "53480", Finished(ReportState::Failed), APP_SHA, "main",
         "https://gitlab.com/android-team/customer-app/-/pipelines/53480"),
        ("pipeline.success.json", "android-team/customer-app", "53481", passed, APP_SHA, "main",
         "https://gitlab.com/android-team/customer-app/-/pipelines/53481"),
        ("pipeline-event.go-playground.json", "gitlab-org/gitlab-test", "31", passed, TEST_SHA, "master",
         "http://192.168.64.1:3005/gitlab-org/gitlab-test/-/pipelines/31"),
        // The documentation's example predates `url`: it is made from the project's page.
        ("pipeline.success.docs-example.json", "gitlab-org/gitlab-test", "31", passed, TEST_SHA, "master",
         "http://192.168.64.1:3005/gitlab-org/gitlab-test/-/pipelines/31"),
    ];
    let mut names: Vec<&str> = expected.iter().map(|e| e.0).collect();
    names.push(REQUEST);
    crate::all_named("gitlab", &names);
    for (file, source, run_id, state, sha, git_ref, url) in expected {
        let news = crate::run(
            gitlab::parse(Some("Pipeline Hook"), &read(file))
                .unwrap_or_else(|e| panic!("{file}: {e}")),
        );
        assert_eq!(news.source, source, "{file}");
        assert_eq!(news.run_id.as_deref(), Some(run_id), "{file}");
        assert_eq!(news.state, state, "{file}");
        assert_eq!(news.commit.as_deref(), Some(sha), "{file}");
        assert_eq!(news.git_ref.as_deref(), Some(git_ref), "{file}");
        assert_eq!(news.url.as_deref(), Some(url), "{file}");
        assert_eq!(
            news.conjunction_build, None,
            "{file}: no CONJUNCTION_BUILD variable"
        );
    }
}

#[test]
fn the_published_request_with_a_broken_body_is_refused_with_the_reason() {
    let text = String::from_utf8(read(REQUEST)).unwrap();
    let (head, body) = text
        .split_once("\n\n")
        .expect("headers, a blank line, the body");
    assert!(head.lines().any(|l| l == "X-Gitlab-Event: Pipeline Hook"));
    let err = gitlab::parse(Some("Pipeline Hook"), body.as_bytes()).unwrap_err();
    let HookError::Unreadable { ci, reason } = &err else {
        panic!("refused as unreadable: {err}");
    };
    assert_eq!(*ci, "GitLab");
    assert!(reason.contains("line 40"), "says where: {reason}");
    assert!(
        err.to_string()
            .starts_with("the body is not a GitLab webhook"),
        "{err}"
    );
}

#[test]
fn the_trigger_variables_come_back_with_the_conjunction_build() {
    let mut hook: serde_json::Value =
        serde_json::from_slice(&read("pipeline.running.json")).unwrap();
    hook["object_attributes"]["variables"] = serde_json::json!([
        {"key": "UPSTREAM_VERSION", "value": "1.4.0"},
        {"key": "CONJUNCTION_BUILD", "value": "01JD3Q8Z5K2V7WQ4M6N8P0R2S4/2"},
    ]);
    let news = crate::run(gitlab::parse(None, &serde_json::to_vec(&hook).unwrap()).unwrap());
    assert_eq!(
        news.conjunction_build.as_deref(),
        Some("01JD3Q8Z5K2V7WQ4M6N8P0R2S4/2")
    );
}

#[test]
fn the_secret_token_is_compared_whole() {
    assert!(gitlab::verify(b"s3cret-token", Some("s3cret-token")).is_ok());
    for wrong in ["s3cret-toke", "s3cret-token ", "S3CRET-TOKEN", ""] {
        assert_eq!(
            gitlab::verify(b"s3cret-token", Some(wrong)),
            Err(HookError::BadSignature("X-Gitlab-Token")),
            "{wrong:?}"
        );
    }
    assert_eq!(
        gitlab::verify(b"s3cret-token", None),
        Err(HookError::Unsigned("X-Gitlab-Token"))
    );
}

#[test]
fn every_other_event_a_project_webhook_sends_is_noted_without_reading_it() {
    let issue = br#"{"object_kind":"issue","project":{"path_with_namespace":"a/b"},"object_attributes":{"id":1,"status":"x"}}"#;
    let Hook::Unused(note) = gitlab::parse(None, issue).unwrap() else {
        panic!("an issue event is about no pipeline");
    };
    assert!(
        note.contains("pipeline and merge request events only"),
        "{note}"
    );
    // GitLab ticks "Push events" by default; its push payload has no object_attributes.
    let push = crate::read_acceptance("ops", "gitlab-push-event.json");
    for event in [
        "Push Hook",
        "Tag Push Hook",
        "Job Hook",
        "Note Hook",
        "Issue Hook",
        "Wiki Page Hook",
        "Deployment Hook",
        "Release Hook",
    ] {
        let Hook::Unused(note) = gitlab::parse(Some(event), &push).unwrap() else {
            panic!("{event} is about no pipeline");
        };
        assert!(note.contains(event), "{note}");
    }
    let Hook::Unused(_) = gitlab::parse(None, &push).unwrap() else {
        panic!("a push without the header is read by its object_kind");
    };
}

#[test]
fn a_merge_request_pipeline_from_a_fork_is_a_candidate_and_a_tag_pipeline_says_so() {
    // The documentation's example is a merge request pipeline within the project.
    let docs = read("pipeline.success.docs-example.json");
    let own = crate::run(gitlab::parse(Some("Pipeline Hook"), &docs).unwrap());
    let change = own
        .candidate
        .expect("a merge request pipeline tests a change");
    assert_eq!(change.fork, None, "within the project");
    assert_eq!(change.number.as_deref(), Some("1"));
    assert_eq!(own.tag, Some(false), "a branch pipeline");
    let mut hook: serde_json::Value = serde_json::from_slice(&docs).unwrap();
    hook["merge_request"]["source_project_id"] = 99.into();
    hook["merge_request"]["iid"] = 12.into();
    let fork = crate::run(
        gitlab::parse(Some("Pipeline Hook"), &serde_json::to_vec(&hook).unwrap()).unwrap(),
    );
    let change = fork.candidate.unwrap();
    assert_eq!(
        change.what,
        "a pipeline of merge request !12 from project 99"
    );
    assert_eq!(change.fork.as_deref(), Some("project 99"));
}
