//! Buildkite's webhooks and REST builds, and the Jenkins Notification plugin's JSON.

use conjunction_daemon::ci::{buildkite, jenkins, Hook, HookError, RunNews, RunState};
use conjunction_protocol::ReportState;

fn read(ci: &str, name: &str) -> String {
    String::from_utf8(crate::read(ci, name)).unwrap()
}

fn check(
    news: &RunNews,
    source: &str,
    run_id: &str,
    state: RunState,
    commit: Option<&str>,
    git_ref: Option<&str>,
    url: &str,
) {
    assert_eq!(news.source, source);
    assert_eq!(news.run_id.as_deref(), Some(run_id));
    assert_eq!(news.state, state);
    assert_eq!(news.commit.as_deref(), commit);
    assert_eq!(news.git_ref.as_deref(), git_ref);
    assert_eq!(news.url.as_deref(), Some(url));
}

const BLOCKED: &str = "build.finished.blocked.json";
const BLOCKED_REQUEST: &str = "build.finished.blocked.request.txt";
const CREATE_REQUEST: &str = "rest.create-build.request.docs-example.md-snippet.txt";
const CREATE_RESPONSE: &str = "rest.create-build.response.docs-example.md-snippet.txt";

#[test]
fn every_buildkite_build_is_read_and_a_blocked_build_is_still_running() {
    crate::all_named(
        "buildkite",
        &[
            BLOCKED,
            BLOCKED_REQUEST,
            CREATE_REQUEST,
            CREATE_RESPONSE,
            "rest.get-build.failed.json",
            "rest.get-build.passed.json",
        ],
    );
    // "passed" with blocked: true waits at a block step for a person.
    let blocked =
        crate::run(buildkite::parse_webhook(None, read("buildkite", BLOCKED).as_bytes()).unwrap());
    let web = "https://buildkite.com/fluid-project/infusion/builds/302";
    check(
        &blocked,
        "fluid-project/infusion",
        "1517afce-dbe4-4baf-89a8-42fb4f0aace6",
        RunState::Running,
        None,
        Some("master"),
        web,
    );
    // The published request carries the same body, with the headers it came with.
    let request = read("buildkite", BLOCKED_REQUEST);
    let (head, body) = request.split_once("\nBody\n").unwrap();
    assert!(head.contains("X-Buildkite-Event: build.finished"));
    assert!(head.lines().any(|l| l.starts_with("X-Buildkite-Request: ")));
    assert_eq!(
        crate::run(
            buildkite::parse_webhook(Some("build.finished"), body.trim().as_bytes()).unwrap()
        ),
        blocked
    );

    // REST builds: the commit is known, the pipeline's organization is in the API URL.
    let sha = "51d7c2d0fc8f182f8ffad40ef79471789e6f5578";
    let failed =
        buildkite::parse_build(read("buildkite", "rest.get-build.failed.json").as_bytes()).unwrap();
    check(
        &failed,
        "ahrefs/pipeline2",
        "018fd828-7bce-4c40-a75e-df46ea0bae8d",
        RunState::Finished(ReportState::Failed),
        Some(sha),
        Some("develop"),
        "https://buildkite.com/org/pipeline2/builds/181734",
    );
    let passed =
        buildkite::parse_build(read("buildkite", "rest.get-build.passed.json").as_bytes()).unwrap();
    check(
        &passed,
        "ahrefs/pipeline2",
        "018fd828-7bce-4c40-a75e-df46ea0bae8d",
        RunState::Finished(ReportState::Passed),
        Some(sha),
        Some("other-branch"),
        "https://buildkite.com/org/pipeline2/builds/181733",
    );

    // The documentation's create-build answer (markdown escapes `:` as `\:`).
    let created = read("buildkite", CREATE_RESPONSE).replace("\\:", ":");
    let created = buildkite::parse_build(created.as_bytes()).unwrap();
    check(
        &created,
        "my-great-org/my-pipeline",
        "f62a1b4d-10f9-4790-bc1c-e2c3a0c80983",
        RunState::Running,
        Some("abcd0b72a1e580e90712cdd9eb26d3fb41cd09c8"),
        Some("main"),
        "https://buildkite.com/my-great-org/my-pipeline/builds/1",
    );
    // The create-build request is what conjunction sends, not something it reads.
    let request: serde_json::Value =
        serde_json::from_str(&read("buildkite", CREATE_REQUEST).replace("\\:", ":")).unwrap();
    assert!(request["commit"].is_string() && request["branch"].is_string());
}

#[test]
fn a_buildkite_signature_covers_the_timestamp_and_the_body_and_expires() {
    use hmac::{Hmac, Mac};
    let token = b"webhook-token";
    let body = read("buildkite", BLOCKED);
    let sign = |timestamp: u64, body: &[u8]| {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(token).unwrap();
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(body);
        format!(
            "timestamp={timestamp},signature={}",
            hex::encode(mac.finalize().into_bytes())
        )
    };
    let now = 1_763_900_000;
    let header = sign(now - 10, body.as_bytes());
    buildkite::verify_signature(token, body.as_bytes(), Some(&header), now).unwrap();

    let mut changed = body.clone().into_bytes();
    changed[100] ^= 1;
    assert_eq!(
        buildkite::verify_signature(token, &changed, Some(&header), now),
        Err(HookError::BadSignature("X-Buildkite-Signature"))
    );
    // The same signature with another timestamp does not verify.
    let moved = header.replace(
        &format!("timestamp={}", now - 10),
        &format!("timestamp={}", now - 11),
    );
    assert!(buildkite::verify_signature(token, body.as_bytes(), Some(&moved), now).is_err());
    // Ten minutes old: a replay.
    let old = sign(now - 600, body.as_bytes());
    assert!(matches!(
        buildkite::verify_signature(token, body.as_bytes(), Some(&old), now),
        Err(HookError::Stale { age_secs: 600, .. })
    ));
    assert_eq!(
        buildkite::verify_signature(token, body.as_bytes(), None, now),
        Err(HookError::Unsigned("X-Buildkite-Signature"))
    );
    assert!(buildkite::verify_token(token, Some("webhook-token")).is_ok());
    assert!(buildkite::verify_token(token, Some("xxx")).is_err());
}

#[test]
fn buildkite_pings_and_job_and_agent_events_are_noted() {
    let envelope = read("buildkite", BLOCKED);
    for (header, body) in [
        (
            Some("ping"),
            &br#"{"event":"ping","service":{"id":"x"},"organization":{"slug":"acme"}}"#[..],
        ),
        (None, &br#"{"event":"ping"}"#[..]),
        (Some("job.finished"), envelope.as_bytes()),
        (Some("agent.connected"), &b"{}"[..]),
    ] {
        let Hook::Unused(note) = buildkite::parse_webhook(header, body).unwrap() else {
            panic!("{header:?} is about no build");
        };
        assert!(note.contains(header.unwrap_or("ping")), "{note}");
    }
}

#[test]
fn a_buildkite_build_of_a_pull_request_is_a_candidate_and_a_tag_build_says_so() {
    let mut hook: serde_json::Value = serde_json::from_str(&read("buildkite", BLOCKED)).unwrap();
    let plain =
        crate::run(buildkite::parse_webhook(None, &serde_json::to_vec(&hook).unwrap()).unwrap());
    assert_eq!(plain.candidate, None);
    assert_eq!(plain.tag, Some(false));
    hook["build"]["pull_request"] = serde_json::json!({"id": "42", "base": "master", "repository": "https://github.com/someone/infusion.git"});
    hook["build"]["tag"] = "v1.2.3".into();
    let pr =
        crate::run(buildkite::parse_webhook(None, &serde_json::to_vec(&hook).unwrap()).unwrap());
    let change = pr.candidate.expect("a pull request's build tests a change");
    assert_eq!(
        change.what,
        "a build of pull request #42 from https://github.com/someone/infusion.git"
    );
    assert_eq!(change.number.as_deref(), Some("42"));
    assert_eq!(
        change.fork.as_deref(),
        Some("https://github.com/someone/infusion.git"),
        "another repository than the pipeline's"
    );
    // The pipeline's own repository, written another way, is no fork.
    let own = hook["pipeline"]["repository"].as_str().unwrap().to_owned();
    let own = own.replace("https://github.com/", "git@github.com:");
    hook["build"]["pull_request"]["repository"] = own.into();
    let pr =
        crate::run(buildkite::parse_webhook(None, &serde_json::to_vec(&hook).unwrap()).unwrap());
    assert_eq!(pr.candidate.unwrap().fork, None);
    assert_eq!(pr.tag, Some(true));
    assert_eq!(pr.git_ref.as_deref(), Some("v1.2.3"));
}

#[test]
fn every_jenkins_notification_is_read_into_its_build() {
    crate::all_named(
        "jenkins",
        &[
            "notification.started.json",
            "notification.completed.failure.json",
            "notification.completed.unstable.json",
        ],
    );
    let job = "Build my awesome project";
    let base = "http://ec2-18-130-79-165.eu-west-2.compute.amazonaws.com/job/Build%20my%20awesome%20project";
    let parse = |body: &[u8]| crate::run(jenkins::parse(body).unwrap());
    let started = parse(read("jenkins", "notification.started.json").as_bytes());
    check(
        &started,
        job,
        "5",
        RunState::Running,
        None,
        None,
        &format!("{base}/3/"),
    );
    let failed = parse(read("jenkins", "notification.completed.failure.json").as_bytes());
    check(
        &failed,
        job,
        "45",
        RunState::Finished(ReportState::Failed),
        None,
        None,
        &format!("{base}/19/"),
    );
    // An older plugin sends no queue id: the build's URL names the run.
    let url = "http://build1.use.dynamicyield.com:8080/job/cookbook-test/3885/";
    let unstable = parse(read("jenkins", "notification.completed.unstable.json").as_bytes());
    check(
        &unstable,
        "cookbook-test",
        url,
        RunState::Finished(ReportState::Failed),
        Some("5fd7ed5ea61ff8dab124d17c1c7dd23917f26ed3"),
        // The Git plugin's `origin/master`, as people name the branch.
        Some("master"),
        url,
    );
    assert_eq!(unstable.conjunction_build, None);

    let mut with_parameter: serde_json::Value =
        serde_json::from_str(&read("jenkins", "notification.completed.unstable.json")).unwrap();
    with_parameter["build"]["parameters"]["CONJUNCTION_BUILD"] =
        "01JD3Q8Z5K2V7WQ4M6N8P0R2S4/1".into();
    let news = parse(&serde_json::to_vec(&with_parameter).unwrap());
    assert_eq!(
        news.conjunction_build.as_deref(),
        Some("01JD3Q8Z5K2V7WQ4M6N8P0R2S4/1")
    );
    assert!(matches!(
        jenkins::parse(b"[]"),
        Err(HookError::Unreadable { ci: "Jenkins", .. })
    ));
}

#[test]
fn a_jenkins_job_is_named_by_its_full_name_and_other_phases_are_noted() {
    assert_eq!(
        jenkins::full_name("job/team/job/lib/").as_deref(),
        Some("team/lib")
    );
    assert_eq!(
        jenkins::full_name("job/Build%20my%20awesome%20project/").as_deref(),
        Some("Build my awesome project")
    );
    assert_eq!(jenkins::full_name("view/all/job/x/"), None);
    let mut n: serde_json::Value =
        serde_json::from_str(&read("jenkins", "notification.completed.failure.json")).unwrap();
    n["name"] = "lib".into();
    n["url"] = "job/team/job/lib/".into();
    let news = crate::run(jenkins::parse(&serde_json::to_vec(&n).unwrap()).unwrap());
    assert_eq!(news.source, "team/lib");
    assert_eq!(news.workflow.as_deref(), Some("team/lib"));
    // Old plugins say FINISHED for FINALIZED.
    n["build"]["phase"] = "FINISHED".into();
    let news = crate::run(jenkins::parse(&serde_json::to_vec(&n).unwrap()).unwrap());
    assert_eq!(news.state, RunState::Finished(ReportState::Failed));
    n["build"]["phase"] = "DELETED".into();
    let Hook::Unused(note) = jenkins::parse(&serde_json::to_vec(&n).unwrap()).unwrap() else {
        panic!("a deleted build says nothing about how it went");
    };
    assert!(note.contains("DELETED"), "{note}");
}
