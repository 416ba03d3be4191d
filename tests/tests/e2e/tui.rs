//! The terminal UI as a person uses it: the real `conjunction` binary in a detached
//! tmux session, driven with keys and read off the screen.

use std::time::Duration;

use conjunction_protocol::{Report, ReportState};
use conjunction_sim::webhook::Behaviour;
use conjunction_tests::daemon::{binaries, DaemonProcess, OPERATOR_TOKEN};
use conjunction_tests::eventually;
use conjunction_tests::tmux::Tmux;

use crate::*;

/// Whether the roots list counts a failed build in some root event: its summary
/// line reads like `✓12 ✗1 ⊘3` (the header's count has a space: `✗ 1 failing`).
fn lists_a_failed_build(screen: &str) -> bool {
    screen
        .split('✗')
        .skip(1)
        .any(|after| after.starts_with(|c: char| c.is_ascii_digit()))
}

/// The project named in the open rebuild question, and whether it failed.
fn question(screen: &str) -> Option<(String, bool)> {
    let line = screen.lines().find(|l| l.contains("Rebuild "))?;
    let rest = &line[line.find("Rebuild ")? + "Rebuild ".len()..];
    let project = rest.split(" (attempt").next()?.trim().to_owned();
    Some((project, line.contains("after failed)")))
}

/// Whether the selected root event is a superseded candidate and the footer says
/// its build cannot be rebuilt there.
fn refused_as_superseded(screen: &str) -> bool {
    let tree_title = screen
        .lines()
        .find_map(|l| l.split('╭').nth(2))
        .unwrap_or_default();
    tree_title.contains("(superseded)")
        && screen.contains("cannot rebuild ")
        && screen.contains("superseded by")
}

#[tokio::test]
async fn demo_a_failed_build_is_rebuilt_from_the_keyboard_and_its_attempt_rises() {
    let ui = Tmux::start(
        &binaries().join("conjunction"),
        &["demo", "--interval", "2"],
        120,
        40,
    );
    ui.wait_for("the demo's UI to connect", Duration::from_secs(30), |s| {
        s.contains("● live").then_some(())
    })
    .await;
    ui.wait_for(
        "a root event with a failed build",
        Duration::from_secs(120),
        |s| lists_a_failed_build(s).then_some(()),
    )
    .await;

    // `n` jumps to the next failed build, across root events (a refused trigger
    // counts too); `r` asks about the selected one. Go on until the question is
    // about a build that failed, cancelling the others.
    // A superseded candidate's builds are not rebuilt there: the UI says so
    // instead of asking, and the search goes on.
    let mut project = None;
    for _ in 0..30 {
        ui.keys(&["n", "r"]).await;
        let asked = ui
            .wait_for(
                "the rebuild question or a superseded candidate's refusal",
                Duration::from_secs(5),
                |s| match question(s) {
                    Some(asked) => Some(Some(asked)),
                    None => refused_as_superseded(s).then_some(None),
                },
            )
            .await;
        let Some((name, failed)) = asked else {
            continue;
        };
        ui.keys(&["n"]).await;
        if failed {
            project = Some(name);
            break;
        }
    }
    let project = project.expect("one of the failures is a failed build");
    let title = format!("╭ {project} ");
    ui.wait_for(
        &format!("{project} selected at attempt 1"),
        Duration::from_secs(5),
        |s| (s.contains(&title) && s.contains("attempt 1")).then_some(()),
    )
    .await;

    // New roots keep arriving; the selection stays on this build.
    ui.keys(&["r"]).await;
    let (asked, _) = ui
        .wait_for("the rebuild question", Duration::from_secs(5), question)
        .await;
    assert_eq!(asked, project, "the selection stayed on the failed build");
    ui.keys(&["y"]).await;
    ui.wait_for(
        &format!("{project} at attempt 2"),
        Duration::from_secs(30),
        |s| (s.contains(&title) && s.contains("attempt 2") && s.contains(" #2")).then_some(()),
    )
    .await;
}

/// The reconnect countdown on the header, in seconds.
fn retry_in(screen: &str) -> Option<u64> {
    let at = screen.find("retry in ")? + "retry in ".len();
    let digits: String = screen[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[tokio::test]
async fn the_ui_shows_an_outage_reconnects_and_catches_up_on_builds_reported_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let ci = super::webhook_ci().await;
    ci.set_default(Behaviour::Silent);
    let daemon = DaemonProcess::start(dir.path(), "").await;
    let addr = daemon.addr;
    let lib = register(&daemon.api, "acme/lib", &[], None).await;
    register(&daemon.api, "acme/app", &["acme/lib"], Some(&ci)).await;
    report_root(&daemon.api, &lib, "acme/lib", "1.0.0").await;

    let url = format!("http://{addr}");
    let ui = Tmux::start(
        &binaries().join("conjunction"),
        &["--url", &url, "--token", OPERATOR_TOKEN],
        120,
        40,
    );
    ui.wait_for("the first root event", Duration::from_secs(30), |s| {
        (s.contains("● live") && s.contains("acme/lib@1.0.0") && s.contains("◔ acme/app"))
            .then_some(())
    })
    .await;
    let trigger = eventually("the trigger of acme/app", WAIT, || async {
        ci.triggers_of("acme/app").first().cloned()
    })
    .await;

    daemon.kill().await;
    // Wait until the UI has failed a few times and waits 8 s before its next try,
    // so what follows happens while it is away.
    ui.wait_for("the UI to back off", Duration::from_secs(30), |s| {
        retry_in(s).filter(|n| *n >= 5)
    })
    .await;

    let daemon = DaemonProcess::start_on(addr, dir.path(), "").await;
    let payload = &trigger.payload;
    daemon
        .api
        .report(
            &payload.report.token,
            &Report {
                build: Some(payload.build),
                attempt: Some(payload.attempt),
                ..Report::new(pid("acme/app"), ReportState::Passed)
            },
        )
        .await
        .expect("the downstream build's report is taken");
    report_root(&daemon.api, &lib, "acme/lib", "1.1.0").await;
    let during = ui.screen();
    assert!(
        during.contains("disconnected") && !during.contains("acme/lib@1.1.0"),
        "the UI was still away when the builds were reported:\n{during}"
    );

    ui.wait_for(
        "the UI to reconnect and show what it missed",
        Duration::from_secs(30),
        |s| {
            let lines: Vec<&str> = s.lines().collect();
            let old = lines.iter().position(|l| l.contains("acme/lib@1.0.0"))?;
            // The old root's summary line: both of its builds passed now.
            let both_passed = lines.get(old + 1)?.contains("✓2");
            (s.contains("● live") && s.contains("acme/lib@1.1.0") && both_passed).then_some(())
        },
    )
    .await;
    daemon.kill().await;
}

#[tokio::test]
async fn a_root_event_left_out_of_the_snapshot_is_read_when_selected() {
    // A snapshot budget of 3 nodes holds the newest event (3 builds) only.
    let d =
        conjunction_tests::daemon::TestDaemon::start_adjusted(|c| c.feed.snapshot_nodes = 3).await;
    let lib = register(&d.api, "acme/lib", &[], None).await;
    register(&d.api, "acme/app", &["acme/lib"], None).await;
    register(&d.api, "acme/cli", &["acme/lib"], None).await;
    for version in ["1.0.0", "1.1.0"] {
        let ack = report_root(&d.api, &lib, "acme/lib", version).await;
        settled(&d.api, ack.root).await;
    }
    let mut feed = conjunction_tests::feed::Feed::connect(&d.api.feed_url(None), OPERATOR_TOKEN)
        .await
        .unwrap();
    feed.next(WAIT).await;
    match feed.next(WAIT).await {
        conjunction_protocol::ws::ServerMessage::Snapshot { roots, events, .. } => {
            assert_eq!(roots.len(), 2);
            assert_eq!(events.len(), 1, "the older event is a summary only");
            assert_eq!(events[0].summary.version.as_deref(), Some("1.1.0"));
        }
        other => panic!("expected a snapshot, got {other:?}"),
    }

    let ui = Tmux::start(
        &binaries().join("conjunction"),
        &["--url", &d.url(), "--token", OPERATOR_TOKEN],
        120,
        40,
    );
    ui.wait_for(
        "the newest root event's tree",
        Duration::from_secs(30),
        |s| {
            (s.contains("● live")
                && s.contains("acme/lib@1.1.0 · 3 builds")
                && s.contains("acme/cli"))
            .then_some(())
        },
    )
    .await;
    // Tree -> details -> roots, then down to the older event.
    ui.keys(&["Tab", "Tab", "j"]).await;
    ui.wait_for("the older event's builds", Duration::from_secs(30), |s| {
        let tree: Vec<&str> = s
            .lines()
            .skip_while(|l| !l.contains("acme/lib@1.0.0 · 3 builds"))
            .take(5)
            .collect();
        (tree.iter().any(|l| l.contains("⚠ acme/app"))
            && tree.iter().any(|l| l.contains("⚠ acme/cli"))
            && !s.contains("Reading its"))
        .then_some(())
    })
    .await;
    d.stop().await;
}

#[tokio::test]
async fn a_viewer_reads_everything_and_is_told_why_it_may_not_rebuild_while_a_maintainer_rebuilds_its_own(
) {
    use conjunction_protocol::access::{ProjectPattern, Scope, TokenRequest};
    let dir = tempfile::tempdir().unwrap();
    let ci = super::webhook_ci().await;
    ci.set(
        "acme/app",
        Behaviour::fail("1 test failed: app::tests::login"),
    );
    let daemon = DaemonProcess::start(dir.path(), "").await;
    let url = format!("http://{}", daemon.addr);
    let lib = register(&daemon.api, "acme/lib", &[], None).await;
    register(&daemon.api, "acme/app", &["acme/lib"], Some(&ci)).await;
    let ack = report_root(&daemon.api, &lib, "acme/lib", "1.0.0").await;
    settled(&daemon.api, ack.root).await;
    let token = |name: &str, scope: Scope| {
        let api = daemon.api.clone();
        let name = name.to_owned();
        async move {
            api.create_token(&TokenRequest {
                name,
                scope,
                expires_at: None,
            })
            .await
            .expect("issue a token")
            .token
        }
    };
    let viewer = token("vera", Scope::Viewer).await;
    let maintainer = token(
        "ana",
        Scope::Maintainer {
            of: vec![ProjectPattern::parse("acme/app").unwrap()],
        },
    )
    .await;

    let ui = Tmux::start(
        &binaries().join("conjunction"),
        &["--url", &url, "--token", &viewer],
        200,
        50,
    );
    ui.wait_for(
        "the viewer's UI with the failed build",
        Duration::from_secs(30),
        |s| {
            (s.contains("● live")
                && s.contains("acme/lib@1.0.0")
                && s.contains("(viewer: reads only)"))
            .then_some(())
        },
    )
    .await;
    ui.keys(&["n"]).await;
    ui.wait_for("acme/app's details", Duration::from_secs(5), |s| {
        (s.contains("╭ acme/app ")
            && s.contains("rebuilding needs a maintainer")
            && s.contains("created by operator (operator)"))
        .then_some(())
    })
    .await;
    ui.keys(&["r"]).await;
    ui.wait_for("the refusal, in a sentence", Duration::from_secs(5), |s| {
        s.contains("rebuilding a build of acme/app needs a maintainer of acme/app")
            .then_some(())
    })
    .await;
    assert!(
        question(&ui.screen()).is_none(),
        "a viewer is not asked to rebuild"
    );
    drop(ui);

    let ui = Tmux::start(
        &binaries().join("conjunction"),
        &["--url", &url, "--token", &maintainer],
        200,
        50,
    );
    ui.wait_for("the maintainer's UI", Duration::from_secs(30), |s| {
        (s.contains("● live") && s.contains("r/R:rebuild")).then_some(())
    })
    .await;
    ui.keys(&["n", "r"]).await;
    let (asked, failed) = ui
        .wait_for("the rebuild question", Duration::from_secs(5), question)
        .await;
    assert_eq!((asked.as_str(), failed), ("acme/app", true));
    ui.keys(&["y"]).await;
    ui.wait_for("acme/app at attempt 2", Duration::from_secs(30), |s| {
        (s.contains("╭ acme/app ") && s.contains("attempt 2")).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_candidate_event_is_marked_named_and_filtered_in_the_ui_the_tree_and_the_feed() {
    let d = conjunction_tests::daemon::TestDaemon::start().await;
    let lib = register(&d.api, "acme/lib", &[], None).await;
    register(&d.api, "acme/app", &["acme/lib"], None).await;
    let release = report_root(&d.api, &lib, "acme/lib", "1.0.0").await;
    settled(&d.api, release.root).await;
    // The upstream's CI reports its pull request's pipeline from the command line.
    let dir = tempfile::tempdir().unwrap();
    let report = [
        "report",
        "--project",
        "acme/lib",
        "--state",
        "passed",
        "--commit",
        "5e5e5e5",
        "--ref",
        "topic",
        "--candidate",
        "123",
        "--base",
        "1.0.0",
    ];
    let out = super::cli::conjunction(&d, &lib, &report, dir.path()).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let candidate: conjunction_protocol::BuildId = out.stdout.trim().parse().unwrap();
    settled(&d.api, candidate).await;

    let root = candidate.to_string();
    let tree = super::cli::conjunction(&d, OPERATOR_TOKEN, &["tree", &root], dir.path())
        .await
        .stdout;
    assert!(tree.contains("acme/lib candidate #123 (root"), "{tree}");
    assert!(
        tree.contains("candidate: change 123 tested before it merges, on 5e5e5e5, made on 1.0.0"),
        "{tree}"
    );

    // The feed names the change on the event.
    let mut feed = conjunction_tests::feed::Feed::connect(&d.api.feed_url(None), OPERATOR_TOKEN)
        .await
        .unwrap();
    feed.next(WAIT).await;
    match feed.next(WAIT).await {
        conjunction_protocol::ws::ServerMessage::Snapshot { roots, .. } => {
            let named: Vec<_> = roots
                .iter()
                .map(|r| r.candidate.as_ref().map(|c| c.change.as_str()))
                .collect();
            assert_eq!(named, vec![Some("123"), None], "newest first");
        }
        other => panic!("expected a snapshot, got {other:?}"),
    }

    let ui = Tmux::start(
        &binaries().join("conjunction"),
        &["--url", &d.url(), "--token", OPERATOR_TOKEN],
        120,
        40,
    );
    ui.wait_for("both events", Duration::from_secs(30), |s| {
        (s.contains("● live")
            && s.contains("acme/lib candidate #123")
            && s.contains("acme/lib@1.0.0"))
        .then_some(())
    })
    .await;
    ui.keys(&["c"]).await;
    ui.wait_for("candidates only", Duration::from_secs(10), |s| {
        (s.contains("candidates only")
            && s.contains("acme/lib candidate #123")
            && !s.contains("acme/lib@1.0.0"))
        .then_some(())
    })
    .await;
    ui.keys(&["c"]).await;
    ui.wait_for("releases only", Duration::from_secs(10), |s| {
        (s.contains("releases only")
            && s.contains("acme/lib@1.0.0")
            && !s.contains("candidate #123"))
        .then_some(())
    })
    .await;
    ui.keys(&["Escape"]).await;
    ui.wait_for("everything again", Duration::from_secs(10), |s| {
        let header = s.lines().next().unwrap_or_default();
        (!header.contains("releases only")
            && s.contains("acme/lib@1.0.0")
            && s.contains("candidate #123"))
        .then_some(())
    })
    .await;
    d.stop().await;
}

#[tokio::test]
async fn the_ui_says_where_a_projects_dependencies_come_from_and_what_a_manifest_changed() {
    let d = conjunction_tests::daemon::TestDaemon::start().await;
    let ci = webhook_ci().await;
    let (_, app) = super::manifests::from_manifest(&d, &ci).await;
    let ui = Tmux::start(
        &binaries().join("conjunction"),
        &["--url", &d.url(), "--token", OPERATOR_TOKEN],
        120,
        40,
    );
    ui.wait_for("the live feed", Duration::from_secs(30), |s| {
        s.contains("● live").then_some(())
    })
    .await;
    // The app's build sends its manifest while the UI watches.
    let mut report = root_report("acme/app", "3.1.0");
    report.manifests = vec![conjunction_protocol::ManifestFile {
        path: "package.json".into(),
        content: super::manifests::package_json("^2.0.0"),
    }];
    let ack = d.api.report(&app, &report).await.unwrap();
    let said = format!(
        "acme/app now depends on acme/lib ^2.0.0 (was ^1.4), from its build {}",
        ack.build
    );
    ui.wait_for("the change on the footer", Duration::from_secs(10), |s| {
        s.contains(&said).then_some(())
    })
    .await;
    // The build's details say where the app's dependencies now come from, and
    // what it declares that nobody registered.
    let screen = ui
        .wait_for("the dependencies' source", Duration::from_secs(10), |s| {
            (s.contains(&format!(
                "deps     from package.json of build {}",
                ack.build
            )) && s.contains("not registered: left-pad ^1.3.0"))
            .then(|| s.to_owned())
        })
        .await;
    assert!(screen.contains("acme/app@3.1.0"), "{screen}");

    // A manifest that does not parse is a warning on its build.
    report.version = Some("3.1.1".into());
    report.manifests[0].content = "{ \"dependencies\": ".into();
    let ack = d.api.report(&app, &report).await.unwrap();
    assert_eq!(ack.warnings.len(), 1);
    ui.wait_for("the warning on the build", Duration::from_secs(10), |s| {
        (s.contains("acme/app@3.1.1") && s.contains("warning  package.json is not valid JSON"))
            .then_some(())
    })
    .await;
    d.stop().await;
}
