//! Real logs as summaries: a coloured test log with Windows line ends, sent by a CI in
//! its report and by `conjunction report --summary-file`, is stored as plain lines and
//! the build is judged, where it used to be refused and left `triggered`.

use conjunction_protocol::{Report, ReportState, StateKind};
use conjunction_sim::webhook::Behaviour;
use conjunction_tests::daemon::{binaries, TestDaemon};
use conjunction_tests::fixture_json;

use super::{node_of, register, report_root, settled, WAIT};

/// Criterion's coloured output, as a Windows runner writes a log: each line ended with
/// CRLF.
fn criterion_log() -> String {
    let lines = fixture_json("acceptance/notify/criterion-asserts-output.json");
    let lines: Vec<&str> = lines
        .as_array()
        .expect("a list of lines")
        .iter()
        .map(|l| l.as_str().expect("lines are text"))
        .collect();
    let log = lines.join("\r\n") + "\r\n";
    assert!(log.contains('\u{1b}'), "the log is coloured");
    log
}

/// The summary is what the log says, without its escapes and carriage returns.
fn assert_plain(summary: Option<&str>) {
    let summary = summary.expect("the build keeps the summary");
    assert!(
        !summary.contains('\u{1b}') && !summary.contains('\r'),
        "{summary:?}"
    );
    assert!(
        summary.contains("[----] asserts.c:12: Assertion Failed\n"),
        "{summary:?}"
    );
}

#[tokio::test]
async fn a_coloured_windows_log_reported_by_a_ci_is_stored_plain_and_the_build_judged() {
    let d = TestDaemon::start().await;
    let ci = super::webhook_ci().await;
    let lib = register(&d.api, "acme/lib", &[], None).await;
    register(&d.api, "acme/app", &["acme/lib"], Some(&ci)).await;
    ci.set("acme/app", Behaviour::fail(&criterion_log()));
    let root = report_root(&d.api, &lib, "acme/lib", "1.0.0").await.root;
    let event = settled(&d.api, root).await;
    let app = node_of(&event, "acme/app");
    assert_eq!(app.state.kind(), StateKind::Failed, "{app:?}");
    assert!(app.verdict.is_some(), "a finished build is judged: {app:?}");
    assert_plain(app.summary.as_deref());
}

#[tokio::test]
async fn conjunction_report_sends_a_coloured_log_file_as_the_summary() {
    let d = TestDaemon::start().await;
    let ci = super::webhook_ci().await;
    let lib = register(&d.api, "acme/lib", &[], None).await;
    register(&d.api, "acme/app", &["acme/lib"], Some(&ci)).await;
    ci.set("acme/app", Behaviour::Silent);
    let root = report_root(&d.api, &lib, "acme/lib", "1.0.0").await.root;
    let trigger = conjunction_tests::eventually("the trigger", WAIT, || async {
        ci.triggers_of("acme/app").into_iter().next()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("test.log");
    std::fs::write(&log, criterion_log()).unwrap();
    let out = tokio::process::Command::new(binaries().join("conjunction"))
        .args(["report", "--project", "acme/app", "--state", "failed"])
        .args(["--build", &trigger.payload.build.to_string()])
        .args(["--attempt", &trigger.payload.attempt.to_string()])
        .arg("--summary-file")
        .arg(&log)
        .env("CONJUNCTION_URL", d.url())
        .env("CONJUNCTION_TOKEN", &trigger.payload.report.token)
        .env("XDG_CONFIG_HOME", dir.path())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let event = settled(&d.api, root).await;
    let app = node_of(&event, "acme/app");
    assert_eq!(app.state.kind(), StateKind::Failed);
    assert!(app.verdict.is_some(), "{app:?}");
    assert_plain(app.summary.as_deref());
}

#[tokio::test]
async fn a_one_line_field_with_a_control_character_is_still_refused() {
    let d = TestDaemon::start().await;
    let lib = register(&d.api, "acme/lib", &[], None).await;
    let mut report = Report::new(super::pid("acme/lib"), ReportState::Failed);
    report.summary = Some(criterion_log());
    report.git_ref = Some("main\u{1b}[31m".into());
    let err = d.api.report(&lib, &report).await.unwrap_err().to_string();
    assert!(err.contains("ref") && err.contains("U+001B"), "{err}");
    report.git_ref = Some("main".into());
    d.api.report(&lib, &report).await.unwrap();
}
