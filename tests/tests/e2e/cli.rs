//! The `conjunction` command line, run as a real process against a real daemon.

use std::path::Path;

use conjunction_sim::webhook::Behaviour;
use conjunction_tests::daemon::{binaries, TestDaemon, OPERATOR_TOKEN};

use crate::*;

pub(crate) struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `conjunction args…` in `dir` against `daemon` with `token`.
pub(crate) async fn conjunction(
    daemon: &TestDaemon,
    token: &str,
    args: &[&str],
    dir: &Path,
) -> Output {
    let out = tokio::process::Command::new(binaries().join("conjunction"))
        .args(args)
        .current_dir(dir)
        .env("CONJUNCTION_URL", daemon.url())
        .env("CONJUNCTION_TOKEN", token)
        .env("APP_SECRET", SECRET)
        .env("XDG_CONFIG_HOME", dir)
        .output()
        .await
        .expect("conjunction runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test]
async fn the_command_line_applies_reports_and_shows_a_cascade() {
    let d = TestDaemon::start().await;
    let ci = super::webhook_ci().await;
    ci.set(
        "acme/app",
        Behaviour::fail("2 tests failed: api::tests::login"),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("projects.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[[project]]
id = "acme/lib"
name = "Acme Lib"
report_token = "acme-lib-report-token-0001"

[[project]]
id = "acme/app"
name = "Acme App"
depends_on = [{{ project = "acme/lib", range = "^1.2" }}, {{ project = "acme/cli" }}]
trigger = {{ kind = "webhook", url = "{url}", secret = "env:APP_SECRET" }}

[[project]]
id = "acme/cli"
name = "Acme CLI"
depends_on = [{{ project = "acme/app" }}]
trigger = {{ kind = "webhook", url = "{url}" }}
"#,
            url = ci.url()
        ),
    )
    .unwrap();

    let applied = conjunction(
        &d,
        OPERATOR_TOKEN,
        &["apply", "-f", "projects.toml"],
        dir.path(),
    )
    .await;
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    assert!(
        applied.stdout.contains("created acme/lib\n"),
        "{}",
        applied.stdout
    );
    assert!(
        applied
            .stdout
            .contains("created acme/app (report token, shown once: cjr_"),
        "{}",
        applied.stdout
    );
    assert!(
        applied
            .stdout
            .contains("warning: dependency cycle: acme/cli -> acme/app -> acme/cli"),
        "{}",
        applied.stdout
    );
    let again = conjunction(
        &d,
        OPERATOR_TOKEN,
        &["apply", "-f", "projects.toml"],
        dir.path(),
    )
    .await;
    assert_eq!(again.code, 0);
    assert!(
        again.stdout.contains("unchanged acme/lib"),
        "{}",
        again.stdout
    );

    let dependents = conjunction(&d, OPERATOR_TOKEN, &["dependents", "acme/lib"], dir.path()).await;
    assert!(
        dependents
            .stdout
            .starts_with("acme/app\tdepth 1\tvia acme/lib"),
        "{}",
        dependents.stdout
    );

    let reported = conjunction(
        &d,
        "acme-lib-report-token-0001",
        &[
            "report",
            "--project",
            "acme/lib",
            "--state",
            "passed",
            "--version",
            "1.4.0",
            "--meta",
            "pipeline=release",
        ],
        dir.path(),
    )
    .await;
    assert_eq!(reported.code, 0, "{}", reported.stderr);
    let root = conjunction_protocol::BuildId::parse(reported.stdout.trim())
        .expect("report prints the build id");
    let event = settled(&d.api, root).await;
    assert_eq!(
        state_of(&event, "acme/app"),
        conjunction_protocol::StateKind::Skipped
    );

    let tree = conjunction(&d, OPERATOR_TOKEN, &["tree", &root.to_string()], dir.path()).await;
    assert_eq!(tree.code, 0, "{}", tree.stderr);
    let lines: Vec<&str> = tree.stdout.lines().collect();
    assert!(
        lines[0].starts_with(&format!("acme/lib@1.4.0 (root {root}")),
        "{}",
        tree.stdout
    );
    assert!(
        lines.iter().any(|l| l.starts_with("acme/lib passed")),
        "{}",
        tree.stdout
    );
    assert!(
        lines.iter().any(|l| l.starts_with("  acme/app skipped")
            && l.contains("dependency cycle acme/app -> acme/cli -> acme/app")),
        "{}",
        tree.stdout
    );

    let refused = conjunction(
        &d,
        "cjr_not-a-token",
        &["report", "--project", "acme/lib", "--state", "passed"],
        dir.path(),
    )
    .await;
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("this report token is not known"),
        "{}",
        refused.stderr
    );
    let refused = conjunction(
        &d,
        OPERATOR_TOKEN,
        &["rebuild", &root.to_string()],
        dir.path(),
    )
    .await;
    assert_eq!(refused.code, 1);
    assert!(
        refused
            .stderr
            .contains("acme/lib has no trigger configured"),
        "{}",
        refused.stderr
    );
    d.stop().await;
}

#[tokio::test]
async fn the_command_line_rebuilds_a_failed_build() {
    let d = TestDaemon::start().await;
    let ci = super::webhook_ci().await;
    ci.set("acme/app", Behaviour::FailFirstAttempt);
    let token = register(&d.api, "acme/lib", &[], None).await;
    register(&d.api, "acme/app", &["acme/lib"], Some(&ci)).await;
    let ack = report_root(&d.api, &token, "acme/lib", "1.4.0").await;
    let event = settled(&d.api, ack.root).await;
    let app = node_of(&event, "acme/app").id;
    let dir = tempfile::tempdir().unwrap();

    let tree = conjunction(
        &d,
        OPERATOR_TOKEN,
        &["tree", &ack.root.to_string()],
        dir.path(),
    )
    .await;
    assert!(
        tree.stdout.contains("  acme/app failed")
            && tree.stdout.contains("3 tests failed: parser::tests::utf8"),
        "{}",
        tree.stdout
    );
    let rebuilt = conjunction(
        &d,
        OPERATOR_TOKEN,
        &["rebuild", &app.to_string()],
        dir.path(),
    )
    .await;
    assert_eq!(rebuilt.code, 0, "{}", rebuilt.stderr);
    assert!(
        rebuilt.stdout.starts_with(&format!("{app} attempt 2 ")),
        "{}",
        rebuilt.stdout
    );
    let event = settled(&d.api, ack.root).await;
    assert_eq!(
        state_of(&event, "acme/app"),
        conjunction_protocol::StateKind::Passed
    );
    d.stop().await;
}

#[tokio::test]
async fn tokens_are_created_listed_and_revoked_from_the_command_line() {
    let d = TestDaemon::start().await;
    let dir = tempfile::tempdir().unwrap();
    let created = conjunction(
        &d,
        OPERATOR_TOKEN,
        &[
            "token",
            "create",
            "ana",
            "--role",
            "maintainer",
            "--of",
            "acme/*",
            "--expires-in",
            "30d",
        ],
        dir.path(),
    )
    .await;
    assert_eq!(created.code, 0, "{}", created.stderr);
    let ana = created.stdout.trim().to_owned();
    assert!(
        ana.starts_with("cjp_") && !ana.contains(' '),
        "only the token on stdout: {ana}"
    );
    assert!(
        created.stderr.contains("issued ana (maintainer acme/*)"),
        "{}",
        created.stderr
    );

    // Ana applies her namespace; an entry outside it is named and nothing applies.
    let file = dir.path().join("projects.toml");
    std::fs::write(
        &file,
        "[[project]]\nid = \"acme/app\"\nname = \"App\"\n\n[[project]]\nid = \"other/lib\"\nname = \"Not hers\"\n",
    )
    .unwrap();
    let refused = conjunction(&d, &ana, &["apply", "-f", "projects.toml"], dir.path()).await;
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("refused other/lib (entry 2)")
            && refused
                .stderr
                .contains("outside what ana (maintainer acme/*) manages"),
        "{}",
        refused.stderr
    );
    assert!(
        !refused.stderr.contains("acme/app (entry"),
        "{}",
        refused.stderr
    );
    assert!(
        d.api.project(&pid("acme/app")).await.is_err(),
        "nothing was applied"
    );
    std::fs::write(&file, "[[project]]\nid = \"acme/app\"\nname = \"App\"\n").unwrap();
    let applied = conjunction(&d, &ana, &["apply", "-f", "projects.toml"], dir.path()).await;
    assert_eq!(applied.code, 0, "{}", applied.stderr);

    // She issues a viewer token for her wallboard, lists, and revokes it.
    let wall = conjunction(
        &d,
        &ana,
        &["token", "create", "wallboard", "--role", "viewer"],
        dir.path(),
    )
    .await;
    assert_eq!(wall.code, 0, "{}", wall.stderr);
    let wall_token = wall.stdout.trim().to_owned();
    let listed = conjunction(&d, &ana, &["token", "list"], dir.path()).await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let names: Vec<&str> = listed
        .stdout
        .lines()
        .filter_map(|l| l.split("  ").nth(1))
        .collect();
    assert_eq!(names, ["ana", "wallboard"], "{}", listed.stdout);
    assert!(listed.stdout.contains("by ana"), "{}", listed.stdout);
    assert!(
        !listed.stdout.contains(&wall_token) && !listed.stdout.contains(&ana),
        "no token is listed"
    );
    let projects = conjunction(&d, &wall_token, &["projects"], dir.path()).await;
    assert_eq!(projects.code, 0, "a viewer reads: {}", projects.stderr);
    let revoked = conjunction(&d, &ana, &["token", "revoke", "wallboard"], dir.path()).await;
    assert_eq!(revoked.code, 0, "{}", revoked.stderr);
    assert!(
        revoked.stdout.contains("revoked wallboard (viewer)"),
        "{}",
        revoked.stdout
    );
    let refused = conjunction(&d, &wall_token, &["projects"], dir.path()).await;
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("unauthorized"),
        "{}",
        refused.stderr
    );

    // A viewer's rebuild is refused with the sentence that says what would do.
    let viewer = conjunction(
        &d,
        OPERATOR_TOKEN,
        &["token", "create", "vera", "--role", "viewer"],
        dir.path(),
    )
    .await;
    let vera = viewer.stdout.trim().to_owned();
    let refused = conjunction(
        &d,
        &vera,
        &["token", "create", "x", "--role", "viewer"],
        dir.path(),
    )
    .await;
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("forbidden_scope"),
        "{}",
        refused.stderr
    );
}
