//! Helpers shared by the UI's test binaries.

use conjunction_sim::sample::{self, NOW};
use conjunction_tui::app::{App, FeedEvent, Focus, Msg};
use conjunction_tui::keys::Action;

/// An app connected to a daemon that sent the sample snapshot.
pub fn connected_app() -> App {
    let mut app = App::new("http://127.0.0.1:7431", NOW);
    app.update(Msg::Feed(FeedEvent::Connected));
    app.update(Msg::Feed(FeedEvent::Message(sample::snapshot())));
    app
}

/// Moves the tree selection from the top down until `project` is selected.
pub fn select(app: &mut App, project: &str) {
    app.focus = Focus::Tree;
    app.update(Msg::Action(Action::Top));
    for _ in 0..50 {
        if app.selected_node().map(|n| n.project.as_str()) == Some(project) {
            return;
        }
        app.update(Msg::Action(Action::Down));
    }
    panic!("{project} is not in the tree");
}

/// Two release lines of core/runtime: 1.5.0 in dev and test, 1.4.2 everywhere and
/// rolled back to in prod, with a dependent that was not promoted.
#[allow(dead_code)]
pub fn releases() -> conjunction_protocol::releases::Releases {
    use conjunction_protocol::releases::{LineCell, LineDependent, LineRun, ReleaseLine, Releases};
    use conjunction_protocol::{ProjectId, StateKind, Timestamp};
    let pid = |s: &str| ProjectId::parse(s).unwrap();
    let b = |n: u128| sample::build(100, n);
    let run = |n, state| LineRun {
        root: b(n),
        state,
        at: Timestamp(NOW.0 - 60_000),
        rollback_from: None,
    };
    let built = |n, state, version: &str| LineCell::Built {
        root: b(n),
        build: b(n + 50),
        attempt: 1,
        state,
        version: Some(version.into()),
    };
    let dependent = |p: &str, v: &str, cells: Vec<(&str, LineCell)>| LineDependent {
        project: pid(p),
        version: Some(v.into()),
        git_ref: None,
        environments: cells.into_iter().map(|(e, c)| (e.to_owned(), c)).collect(),
    };
    let mut prod = run(6, StateKind::Passed);
    prod.rollback_from = Some("1.5.0".into());
    Releases {
        project: pid("core/runtime"),
        environments: vec!["dev".into(), "test".into(), "prod".into()],
        current: [
            ("dev".to_owned(), "1.5.0".to_owned()),
            ("test".to_owned(), "1.5.0".to_owned()),
            ("prod".to_owned(), "1.4.2".to_owned()),
        ]
        .into(),
        lines: vec![
            ReleaseLine {
                project: pid("core/runtime"),
                version: "1.5.0".into(),
                created_at: Timestamp(NOW.0 - 3_600_000),
                environments: [
                    ("dev".to_owned(), run(1, StateKind::Passed)),
                    ("test".to_owned(), run(2, StateKind::Running)),
                ]
                .into(),
                dependents: vec![
                    dependent(
                        "net/http",
                        "4.1.0",
                        vec![
                            ("dev", built(1, StateKind::Passed, "4.1.0")),
                            ("test", built(2, StateKind::Running, "4.1.0")),
                        ],
                    ),
                    LineDependent {
                        version: None,
                        ..dependent(
                            "data/sql",
                            "",
                            vec![
                                ("dev", built(1, StateKind::Failed, "2.0.1")),
                                (
                                    "test",
                                    LineCell::NotPromoted {
                                        root: b(2),
                                        not_promoted: "it ended failed in dev".into(),
                                    },
                                ),
                            ],
                        )
                    },
                ],
            },
            ReleaseLine {
                project: pid("core/runtime"),
                version: "1.4.2".into(),
                created_at: Timestamp(NOW.0 - 86_400_000),
                environments: [
                    ("dev".to_owned(), run(3, StateKind::Passed)),
                    ("test".to_owned(), run(4, StateKind::Passed)),
                    ("prod".to_owned(), prod),
                ]
                .into(),
                dependents: vec![dependent(
                    "net/http",
                    "4.0.3",
                    vec![
                        ("dev", built(3, StateKind::Passed, "4.0.3")),
                        ("test", built(4, StateKind::Passed, "4.0.3")),
                        ("prod", built(6, StateKind::Passed, "4.0.3")),
                    ],
                )],
            },
        ],
        next_before: None,
    }
}
