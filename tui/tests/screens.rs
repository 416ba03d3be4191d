//! Whole frames drawn on ratatui's `TestBackend` and compared with the committed
//! snapshots in `tests/snapshots/`, at 80x24 (the smallest supported terminal) and
//! 160x48. After an intended change, review with `cargo insta review`.

use conjunction_protocol::Timestamp;
use conjunction_tui::app::{App, FeedEvent, Focus, Msg};
use conjunction_tui::keys::Action;
use conjunction_tui::sample::{self, NOW};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

const SIZES: [(u16, u16); 2] = [(80, 24), (160, 48)];

fn app() -> App {
    let mut app = App::new("http://127.0.0.1:7431", NOW);
    app.update(Msg::Feed(FeedEvent::Connected));
    app.update(Msg::Feed(FeedEvent::Message(sample::snapshot())));
    app
}

fn frame(app: &App, (width, height): (u16, u16)) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("a test terminal");
    terminal
        .draw(|f| conjunction_tui::ui::draw(f, app))
        .expect("drawing succeeds");
    terminal.backend().to_string()
}

fn select(app: &mut App, project: &str) {
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

fn snapshot_both_sizes(name: &str, app: &App) {
    for size in SIZES {
        insta::assert_snapshot!(format!("{name}_{}x{}", size.0, size.1), frame(app, size));
    }
}

#[test]
fn roots_list() {
    let mut app = app();
    app.focus = Focus::Roots;
    snapshot_both_sizes("roots_list", &app);
}

#[test]
fn tree_with_a_shared_node_and_a_cycle() {
    let mut app = app();
    select(&mut app, "plugins/alpha");
    snapshot_both_sizes("tree_shared_and_cycle", &app);
}

#[test]
fn failure_drill_down() {
    let mut app = app();
    select(&mut app, "net/http");
    app.update(Msg::Action(Action::DrillDown));
    snapshot_both_sizes("drill_down", &app);
}

#[test]
fn help_overlay() {
    let mut app = app();
    app.update(Msg::Action(Action::Help));
    snapshot_both_sizes("help", &app);
}

#[test]
fn disconnected_header() {
    let mut app = app();
    app.update(Msg::Feed(FeedEvent::Disconnected {
        reason: "cannot reach http://127.0.0.1:7431: Connection refused (os error 111)".into(),
        retry_at: Timestamp(NOW.0 + 4_000),
    }));
    snapshot_both_sizes("disconnected", &app);
}

#[test]
fn rebuild_confirmation() {
    let mut app = app();
    app.update(Msg::Action(Action::RebuildRoot));
    snapshot_both_sizes("rebuild_confirmation", &app);
}
