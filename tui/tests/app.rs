//! The terminal UI's state and update function, driven without a terminal: key
//! actions, feed messages, selection across updates, and reconnection.

use conjunction_protocol::ws::{Change, ClientMessage, ServerMessage};
use conjunction_protocol::{NodeState, StateKind, Timestamp};
use conjunction_sim::sample::{self, build, ids, NOW};
use conjunction_tui::app::{App, Effect, FeedEvent, Fetched, Focus, Link, Mode, Msg};
use conjunction_tui::keys::Action;
use conjunction_tui::model::Held;

mod common;
use common::{connected_app, select};

fn act(app: &mut App, action: Action) -> Vec<Effect> {
    app.update(Msg::Action(action))
}

fn selected_project(app: &App) -> String {
    app.selected_node()
        .expect("a node is selected")
        .project
        .to_string()
}

#[test]
fn a_snapshot_selects_the_newest_root_and_its_root_build() {
    let app = connected_app();
    assert_eq!(app.selected_root, Some(ids().root));
    assert_eq!(selected_project(&app), "core/runtime");
    let roots: Vec<String> = app
        .visible_roots()
        .iter()
        .map(|&i| app.model.roots[i].summary.version.clone().unwrap())
        .collect();
    assert_eq!(roots, ["1.5.0", "3.2.0", "1.4.2"]);
}

#[test]
fn a_shared_node_is_listed_under_each_parent_and_expanded_once() {
    let app = connected_app();
    let rows = app.rows();
    let root = app.root().unwrap();
    let http: Vec<_> = rows
        .iter()
        .filter(|r| root.nodes[r.line.node].project.as_str() == "net/http")
        .collect();
    assert_eq!(http.len(), 2, "net/http has two parents");
    assert!(http.iter().all(|r| r.line.shared));
    assert_eq!(http.iter().filter(|r| !r.line.elsewhere).count(), 1);
    assert_eq!(
        rows.iter()
            .filter(|r| root.nodes[r.line.node].project.as_str() == "apps/legacy-portal")
            .count(),
        1,
        "the shared node's child is shown once"
    );
}

#[test]
fn selection_stays_on_the_same_node_while_new_roots_and_builds_arrive() {
    let mut app = connected_app();
    select(&mut app, "data/sql");
    assert!(!app.follow, "moving by hand stops following");
    let before = app.selected;

    let newer = build(5, 1);
    let event = sample::root_event(newer, "core/runtime", "1.5.1", 5, Vec::new());
    app.update(Msg::Feed(FeedEvent::Message(sample::event(
        101,
        Change::RootCreated {
            root: event.summary,
        },
    ))));
    let mut sql = app.root().unwrap().node(ids().sql).unwrap().clone();
    sql.state = NodeState::Failed;
    app.update(Msg::Feed(FeedEvent::Message(sample::event(
        102,
        Change::NodeChanged { node: sql },
    ))));

    assert_eq!(app.model.roots[0].id(), newer, "the new root is at the top");
    assert_eq!(app.selected_root, Some(ids().root));
    assert_eq!(app.selected, before);
    assert_eq!(app.selected_node().unwrap().state.kind(), StateKind::Failed);
}

#[test]
fn following_moves_to_each_new_root() {
    let mut app = connected_app();
    select(&mut app, "data/sql");
    act(&mut app, Action::ToggleFollow);
    assert!(app.follow);
    let newer = build(5, 1);
    let event = sample::root_event(newer, "ui/design-system", "3.3.0", 5, Vec::new());
    app.update(Msg::Feed(FeedEvent::Message(sample::event(
        101,
        Change::RootCreated {
            root: event.summary,
        },
    ))));
    assert_eq!(app.selected_root, Some(newer));
}

#[test]
fn an_event_already_applied_is_not_applied_again() {
    let mut app = connected_app();
    let mut http = app.root().unwrap().node(ids().http).unwrap().clone();
    http.state = NodeState::Passed;
    // seq 100 is the snapshot's: a replay that overlaps it changes nothing.
    app.update(Msg::Feed(FeedEvent::Message(sample::event(
        100,
        Change::NodeChanged { node: http },
    ))));
    let now = app.root().unwrap().node(ids().http).unwrap();
    assert_eq!(now.state.kind(), StateKind::Failed);
}

#[test]
fn a_lost_connection_keeps_the_picture_and_resumes_with_the_missed_events() {
    let mut app = connected_app();
    let retry_at = Timestamp(NOW.0 + 3_000);
    app.update(Msg::Feed(FeedEvent::Disconnected {
        reason: "cannot reach http://127.0.0.1:7431: connection refused".into(),
        retry_at,
    }));
    assert!(matches!(app.link, Link::Down { .. }));
    assert_eq!(app.model.roots.len(), 3, "what was known stays on screen");
    app.update(Msg::Feed(FeedEvent::Connecting));
    assert!(
        matches!(app.link, Link::Down { .. }),
        "a retry in progress still shows the outage"
    );

    // The daemon replays what happened while we were away.
    app.update(Msg::Feed(FeedEvent::Connected));
    let mut auth = app.root().unwrap().node(ids().auth).unwrap().clone();
    auth.state = NodeState::Passed;
    auth.seq = 101;
    app.update(Msg::Feed(FeedEvent::Message(sample::event(
        101,
        Change::NodeChanged { node: auth },
    ))));
    assert_eq!(app.link, Link::Live);
    assert_eq!(app.model.seq, 101);
    let auth = app.root().unwrap().node(ids().auth).unwrap();
    assert_eq!(auth.state.kind(), StateKind::Passed);
}

#[test]
fn a_message_that_cannot_be_read_is_reported_and_skipped() {
    let mut app = connected_app();
    app.update(Msg::Feed(FeedEvent::Unreadable(
        "unknown variant `shiny_new_thing`".into(),
    )));
    let status = app.status.as_ref().expect("a status line");
    assert!(status.error);
    assert!(status.text.contains("shiny_new_thing"));
    assert_eq!(app.model.roots.len(), 3);
}

#[test]
fn rebuilding_a_failed_node_asks_first_and_sends_after_yes() {
    let mut app = connected_app();
    select(&mut app, "net/http");
    assert!(act(&mut app, Action::Rebuild).is_empty());
    let Mode::Confirm(confirm) = &app.mode else {
        panic!("a question is asked first, not {:?}", app.mode);
    };
    assert!(confirm.question.contains("net/http"));
    assert!(confirm.question.contains("attempt 2"));
    let effects = act(&mut app, Action::Answer(true));
    assert_eq!(
        effects,
        [Effect::Send(ClientMessage::Rebuild { build: ids().http })]
    );
    assert_eq!(app.mode, Mode::Browse);
}

#[test]
fn answering_no_sends_nothing() {
    let mut app = connected_app();
    select(&mut app, "net/http");
    act(&mut app, Action::Rebuild);
    assert!(act(&mut app, Action::Answer(false)).is_empty());
    assert_eq!(app.mode, Mode::Browse);
}

#[test]
fn a_blocked_node_is_not_rebuilt_and_the_blocker_is_named() {
    let mut app = connected_app();
    select(&mut app, "apps/legacy-portal");
    act(&mut app, Action::Rebuild);
    assert_eq!(app.mode, Mode::Browse, "no question for a refused rebuild");
    let status = app.status.as_ref().unwrap();
    assert!(status.error);
    assert!(
        status.text.contains("rebuild net/http instead"),
        "{}",
        status.text
    );
}

#[test]
fn a_superseded_candidates_builds_are_not_rebuilt_there_and_the_newer_event_is_named() {
    let mut app = connected_app();
    select(&mut app, "net/http");
    let newer = ids().deploy;
    let root = app.selected_root.expect("a selected root");
    let at = app.model.root_index(root).expect("the root is held");
    app.model.roots[at].summary.superseded_by = Some(newer);
    for action in [Action::Rebuild, Action::RebuildRoot] {
        app.status = None;
        assert!(act(&mut app, action).is_empty());
        assert_eq!(app.mode, Mode::Browse, "no question for {action:?}");
        let status = app.status.as_ref().expect("a status line");
        assert!(status.error);
        assert!(
            status.text.contains(&format!("superseded by {newer}")),
            "{}",
            status.text
        );
    }
}

#[test]
fn rebuild_all_takes_every_failed_build_of_the_root() {
    let mut app = connected_app();
    act(&mut app, Action::RebuildRoot);
    let Mode::Confirm(confirm) = &app.mode else {
        panic!("a question is asked first");
    };
    let mut builds = confirm.builds.clone();
    builds.sort();
    let mut want = vec![ids().http, ids().deploy];
    want.sort();
    assert_eq!(builds, want);
    assert!(confirm.question.contains("net/http"));
    assert!(confirm.question.contains("ops/deploy-bot"));
    assert!(confirm.question.contains("1 blocked build follows"));
    assert_eq!(act(&mut app, Action::Answer(true)).len(), 2);
}

#[test]
fn nothing_is_sent_while_disconnected() {
    let mut app = connected_app();
    select(&mut app, "net/http");
    app.update(Msg::Feed(FeedEvent::Disconnected {
        reason: "gone".into(),
        retry_at: NOW,
    }));
    act(&mut app, Action::Rebuild);
    assert!(act(&mut app, Action::Answer(true)).is_empty());
    assert!(app.status.as_ref().unwrap().text.contains("not connected"));
}

#[test]
fn the_daemons_answer_to_a_rebuild_shows_on_the_status_line() {
    let mut app = connected_app();
    app.update(Msg::Feed(FeedEvent::Message(
        ServerMessage::RebuildStarted {
            build: ids().http,
            attempt: 2,
            seq: 101,
        },
    )));
    assert_eq!(
        app.status.as_ref().unwrap().text,
        "rebuilding net/http: attempt 2"
    );
}

#[test]
fn failing_only_keeps_the_paths_to_failures() {
    let mut app = connected_app();
    act(&mut app, Action::ToggleFailing);
    let root = app.root().unwrap();
    let shown: Vec<&str> = app
        .rows()
        .iter()
        .map(|r| root.nodes[r.line.node].project.as_str())
        .collect();
    assert!(
        shown.contains(&"core/runtime"),
        "ancestors of a failure stay"
    );
    assert!(shown.contains(&"net/http"));
    assert!(shown.contains(&"ops/deploy-bot"));
    assert!(
        !shown.contains(&"svc/auth"),
        "a running leaf is hidden: {shown:?}"
    );
    let roots: Vec<&str> = app
        .visible_roots()
        .iter()
        .map(|&i| app.model.roots[i].summary.project.as_str())
        .collect();
    assert_eq!(
        roots,
        ["core/runtime", "core/runtime"],
        "only roots with a failure"
    );
}

#[test]
fn search_narrows_roots_and_tree_and_esc_clears_it() {
    let mut app = connected_app();
    act(&mut app, Action::Search);
    for c in "portal".chars() {
        act(&mut app, Action::SearchType(c));
    }
    act(&mut app, Action::SearchDone);
    assert_eq!(app.mode, Mode::Browse);
    let root = app.root().unwrap();
    let shown: Vec<&str> = app
        .rows()
        .iter()
        .map(|r| root.nodes[r.line.node].project.as_str())
        .collect();
    assert!(shown.contains(&"apps/legacy-portal"));
    assert!(!shown.contains(&"data/sql"));
    assert_eq!(
        app.visible_roots().len(),
        2,
        "the design-system root has no portal"
    );
    act(&mut app, Action::Back);
    assert!(app.search.is_empty());
    assert_eq!(app.visible_roots().len(), 3);
}

#[test]
fn collapsing_hides_the_subtree_and_expanding_shows_it() {
    let mut app = connected_app();
    select(&mut app, "core/io");
    let all = app.rows().len();
    act(&mut app, Action::Collapse);
    let collapsed = app.rows().len();
    assert!(collapsed < all);
    assert_eq!(selected_project(&app), "core/io");
    act(&mut app, Action::Expand);
    assert_eq!(app.rows().len(), all);
    // Left on a leaf goes to its parent.
    select(&mut app, "apps/legacy-portal");
    act(&mut app, Action::Collapse);
    assert_eq!(selected_project(&app), "net/http");
}

#[test]
fn enter_drills_down_and_esc_comes_back() {
    let mut app = connected_app();
    select(&mut app, "net/http");
    act(&mut app, Action::DrillDown);
    assert_eq!(
        app.mode,
        Mode::Drill {
            root: ids().root,
            node: ids().http
        }
    );
    act(&mut app, Action::Back);
    assert_eq!(app.mode, Mode::Browse);
}

#[test]
fn the_history_of_a_project_lists_its_results_in_earlier_held_events() {
    let app = connected_app();
    let root = app.root().unwrap();
    // ops/deploy-bot's trigger was refused in the older event too.
    let deploy = root.node(ids().deploy).unwrap();
    let history = app.model.history(root.id(), &deploy.project);
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].node.state.kind(), StateKind::TriggerFailed);
}

#[test]
fn the_help_overlay_opens_and_closes_and_swallows_other_keys() {
    let mut app = connected_app();
    act(&mut app, Action::Help);
    assert!(app.help);
    act(&mut app, Action::Rebuild);
    assert_eq!(app.mode, Mode::Browse, "keys under the overlay do nothing");
    act(&mut app, Action::Back);
    assert!(!app.help);
}

#[test]
fn tab_cycles_focus_through_the_three_panes() {
    let mut app = connected_app();
    assert_eq!(app.focus, Focus::Tree);
    act(&mut app, Action::FocusNext);
    assert_eq!(app.focus, Focus::Details);
    act(&mut app, Action::FocusNext);
    assert_eq!(app.focus, Focus::Roots);
    act(&mut app, Action::FocusPrevious);
    assert_eq!(app.focus, Focus::Details);
}

#[test]
fn moving_in_the_roots_list_changes_the_tree() {
    let mut app = connected_app();
    app.focus = Focus::Roots;
    act(&mut app, Action::Down);
    assert_eq!(
        app.root().unwrap().summary.project.as_str(),
        "ui/design-system"
    );
    assert_eq!(selected_project(&app), "ui/design-system");
    assert!(!app.follow);
}

#[test]
fn header_counts_running_waiting_and_projects_failing_now() {
    let app = connected_app();
    let counts = app.model.counts();
    assert_eq!(counts.running, 1, "svc/auth");
    assert_eq!(counts.waiting, 0);
    // net/http failed and ops/deploy-bot was not triggered; the blocked portal
    // is not counted as failing itself.
    assert_eq!(counts.failing, 2);
}

#[test]
fn the_failing_count_follows_each_projects_latest_result_across_events() {
    // From scratch: each project's first finished build, newest event first.
    fn failing_from_scratch(app: &App) -> u32 {
        let mut latest = std::collections::HashMap::new();
        for root in &app.model.roots {
            for node in root.nodes.iter().filter(|n| n.state.kind().is_final()) {
                latest
                    .entry(node.project.clone())
                    .or_insert(node.state.kind());
            }
        }
        latest.values().filter(|k| k.is_own_failure()).count() as u32
    }
    let mut app = connected_app();
    let nodes: Vec<_> = app
        .model
        .roots
        .iter()
        .flat_map(|r| r.nodes.iter().cloned())
        .collect();
    let states = [
        NodeState::Passed,
        NodeState::Failed,
        NodeState::Errored,
        NodeState::Queued,
        NodeState::Running,
    ];
    // The same project fails, passes and is rebuilt in the newer and the older
    // events in turn; the header never recounts, so compare after every change.
    let mut draw = 0x9e37_79b9_u64;
    for seq in 101..400 {
        draw = draw.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let mut node = nodes[(draw >> 33) as usize % nodes.len()].clone();
        node.state = states[(draw >> 17) as usize % states.len()].clone();
        node.seq = seq;
        app.update(Msg::Feed(FeedEvent::Message(sample::event(
            seq,
            Change::NodeChanged { node },
        ))));
        assert_eq!(
            app.model.counts().failing,
            failing_from_scratch(&app),
            "after seq {seq}"
        );
    }
}

#[test]
fn n_jumps_to_the_next_build_that_failed_on_its_own_then_to_older_roots() {
    let mut app = connected_app();
    act(&mut app, Action::NextFailure);
    assert_eq!(selected_project(&app), "net/http");
    // The blocked portal between the two is skipped.
    act(&mut app, Action::NextFailure);
    assert_eq!(selected_project(&app), "ops/deploy-bot");
    assert_eq!(app.selected_root, Some(ids().root));
    // Nothing else failed in this root: the next failure is in the older one.
    act(&mut app, Action::NextFailure);
    assert_eq!(selected_project(&app), "ops/deploy-bot");
    assert_ne!(app.selected_root, Some(ids().root));
    assert!(!app.follow);
}

/// An app whose snapshot held the nodes of the newest root event only, as the
/// daemon's does when the events are large; the other events are summaries.
fn app_with_summaries_only() -> App {
    let ServerMessage::Snapshot {
        seq,
        projects,
        roots,
        mut events,
    } = sample::snapshot()
    else {
        unreachable!("the sample is a snapshot")
    };
    events.truncate(1);
    let mut app = App::new("http://127.0.0.1:7431", NOW);
    app.update(Msg::Feed(FeedEvent::Connected));
    app.update(Msg::Feed(FeedEvent::Message(ServerMessage::Snapshot {
        seq,
        projects,
        roots,
        events,
    })));
    app
}

/// The sample's design-system event, as `GET /v1/roots/{id}` pages it.
fn design_pages() -> (
    conjunction_protocol::RootEvent,
    conjunction_protocol::RootEvent,
) {
    let ServerMessage::Snapshot { events, .. } = sample::snapshot() else {
        unreachable!("the sample is a snapshot")
    };
    let whole = events
        .into_iter()
        .find(|e| e.summary.project.as_str() == "ui/design-system")
        .expect("the sample has a design-system event");
    let mut first = whole.clone();
    first.nodes.truncate(1);
    first.next_after = Some(first.nodes[0].id);
    let mut second = whole;
    second.nodes.remove(0);
    (first, second)
}

#[test]
fn selecting_a_root_held_as_a_summary_fetches_its_nodes_page_by_page() {
    let mut app = app_with_summaries_only();
    let (first, second) = design_pages();
    let design = first.summary.id;
    assert_eq!(app.model.root(design).unwrap().held(), Held::Summary);
    assert!(app.model.root(design).unwrap().nodes.is_empty());

    app.focus = Focus::Roots;
    let effects = act(&mut app, Action::Down);
    assert_eq!(app.selected_root, Some(design));
    assert_eq!(effects, vec![Effect::Fetch(design)]);
    assert_eq!(app.model.root(design).unwrap().held(), Held::Loading);

    // While the pages are on their way, the feed says apps/web failed on a rebuild.
    let mut web = second.nodes[0].clone();
    web.state = NodeState::Failed;
    web.attempt = 2;
    web.seq = 101;
    app.update(Msg::Feed(FeedEvent::Message(sample::event(
        101,
        Change::NodeChanged { node: web.clone() },
    ))));

    let effects = app.update(Msg::Fetched(Fetched::Page(Box::new(first))));
    assert!(effects.is_empty(), "the client reads the next pages itself");
    assert_eq!(app.model.root(design).unwrap().held(), Held::Loading);
    app.update(Msg::Fetched(Fetched::Page(Box::new(second))));
    let root = app.model.root(design).unwrap();
    assert_eq!(root.held(), Held::Nodes);
    assert_eq!(root.nodes.len(), 2);
    assert_eq!(
        root.node(web.id).unwrap().state,
        NodeState::Failed,
        "the page's older copy did not undo the feed's newer one"
    );
    assert_eq!(root.counts().get(&StateKind::Failed), Some(&1));
    assert_eq!(app.rows().len(), 2, "both builds are in the tree");
    // Selecting it again reads nothing more.
    let effects = act(&mut app, Action::Up);
    assert!(effects.is_empty());
    assert!(act(&mut app, Action::Down).is_empty());
}

#[test]
fn a_root_whose_nodes_cannot_be_read_is_asked_for_again_only_when_selected_again() {
    let mut app = app_with_summaries_only();
    let design = design_pages().0.summary.id;
    app.focus = Focus::Roots;
    assert_eq!(act(&mut app, Action::Down), vec![Effect::Fetch(design)]);

    let effects = app.update(Msg::Fetched(Fetched::Failed {
        root: design,
        reason: "connection refused".into(),
    }));
    assert!(effects.is_empty(), "no second request straight away");
    let status = app.status.clone().expect("the failure is on the footer");
    assert!(status.error && status.text.contains("connection refused"));
    assert_eq!(app.model.root(design).unwrap().held(), Held::Summary);
    // Feed traffic goes on; the root is not asked for in a loop.
    for seq in 101..104 {
        let effects = app.update(Msg::Feed(FeedEvent::Message(sample::event(
            seq,
            Change::RootChanged {
                root: app.model.root(design).unwrap().summary.clone(),
            },
        ))));
        assert!(effects.is_empty());
    }
    assert!(app.update(Msg::Tick(NOW)).is_empty());

    // Away and back: asked again.
    assert!(act(&mut app, Action::Up).is_empty());
    assert_eq!(act(&mut app, Action::Down), vec![Effect::Fetch(design)]);
    // So does a reconnect while it is selected.
    app.update(Msg::Fetched(Fetched::Failed {
        root: design,
        reason: "connection refused".into(),
    }));
    assert_eq!(
        app.update(Msg::Feed(FeedEvent::Connected)),
        vec![Effect::Fetch(design)]
    );
}

#[test]
fn v_opens_the_release_lines_of_the_selected_roots_project_and_esc_closes_them() {
    use conjunction_tui::app::{Loaded, Loading, View};
    let mut app = connected_app();
    let effects = act(&mut app, Action::Releases);
    let project = conjunction_protocol::ProjectId::parse("core/runtime").unwrap();
    assert_eq!(effects, [Effect::LoadReleases(project.clone())]);
    assert!(matches!(
        &app.mode,
        Mode::View(View::Releases {
            loaded: Loading::Waiting,
            ..
        })
    ));
    let releases = common::releases();
    app.update(Msg::Loaded(Loaded::Releases(
        project.clone(),
        Ok(Box::new(releases.clone())),
    )));
    assert_eq!(
        app.mode,
        Mode::View(View::Releases {
            project: project.clone(),
            loaded: Loading::Ready(Box::new(releases)),
        })
    );
    // A new event of the project reads the lines again, once until they come.
    let event = sample::root_event(build(9, 1), "core/runtime", "1.6.0", 1, Vec::new());
    let created = |seq| {
        Msg::Feed(FeedEvent::Message(sample::event(
            seq,
            Change::RootCreated {
                root: event.summary.clone(),
            },
        )))
    };
    let effects = app.update(created(201));
    assert!(
        effects.contains(&Effect::LoadReleases(project.clone())),
        "{effects:?}"
    );
    let effects = app.update(created(202));
    assert!(
        !effects.contains(&Effect::LoadReleases(project)),
        "{effects:?}"
    );
    act(&mut app, Action::Back);
    assert_eq!(app.mode, Mode::Browse);
}

#[test]
fn the_impact_prompt_starts_with_the_project_and_asks_for_what_was_typed() {
    let mut app = connected_app();
    act(&mut app, Action::Preview);
    assert_eq!(app.mode, Mode::Prompt);
    assert_eq!(app.prompt, "core/runtime ");
    for c in "2.0.0 prod".chars() {
        // Letters that are commands elsewhere are typed here.
        act(&mut app, Action::SearchType(c));
    }
    act(&mut app, Action::SearchErase);
    act(&mut app, Action::SearchType('d'));
    let effects = act(&mut app, Action::SearchDone);
    assert_eq!(
        effects,
        [Effect::LoadImpact {
            asked: "core/runtime 2.0.0 prod".into(),
            project: conjunction_protocol::ProjectId::parse("core/runtime").unwrap(),
            version: "2.0.0".into(),
            environment: Some("prod".into()),
        }]
    );
    assert!(app.search.is_empty(), "the prompt is not the search");

    // Too little typed: the prompt stays and says what it wants.
    act(&mut app, Action::Back);
    act(&mut app, Action::Preview);
    act(&mut app, Action::SearchErase);
    assert!(act(&mut app, Action::SearchDone).is_empty());
    assert_eq!(app.mode, Mode::Prompt);
    assert!(app
        .status
        .as_ref()
        .unwrap()
        .text
        .contains("acme/lib 2.0.0 test"));
}
