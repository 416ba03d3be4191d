//! Whole frames drawn on ratatui's `TestBackend` and compared with the committed
//! snapshots in `tests/snapshots/`, at 80x24 (the smallest supported terminal) and
//! 160x48. After an intended change, review with `cargo insta review`.

use conjunction_protocol::Timestamp;
use conjunction_sim::sample::NOW;
use conjunction_tui::app::{App, FeedEvent, Focus, Msg};
use conjunction_tui::keys::Action;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

mod common;
use common::{connected_app, select};

const SIZES: [(u16, u16); 2] = [(80, 24), (160, 48)];

fn frame(app: &App, (width, height): (u16, u16)) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("a test terminal");
    terminal
        .draw(|f| conjunction_tui::ui::draw(f, app))
        .expect("drawing succeeds");
    terminal.backend().to_string()
}

fn snapshot_both_sizes(name: &str, app: &App) {
    for size in SIZES {
        insta::assert_snapshot!(format!("{name}_{}x{}", size.0, size.1), frame(app, size));
    }
}

#[test]
fn roots_list() {
    let mut app = connected_app();
    app.focus = Focus::Roots;
    snapshot_both_sizes("roots_list", &app);
}

#[test]
fn tree_with_a_shared_node_and_a_cycle() {
    let mut app = connected_app();
    select(&mut app, "plugins/alpha");
    snapshot_both_sizes("tree_shared_and_cycle", &app);
}

#[test]
fn failure_drill_down() {
    let mut app = connected_app();
    select(&mut app, "net/http");
    app.update(Msg::Action(Action::DrillDown));
    snapshot_both_sizes("drill_down", &app);
}

#[test]
fn help_overlay() {
    let mut app = connected_app();
    app.update(Msg::Action(Action::Help));
    snapshot_both_sizes("help", &app);
}

#[test]
fn disconnected_header() {
    let mut app = connected_app();
    app.update(Msg::Feed(FeedEvent::Disconnected {
        reason: "cannot reach http://127.0.0.1:7431: Connection refused (os error 111)".into(),
        retry_at: Timestamp(NOW.0 + 4_000),
    }));
    snapshot_both_sizes("disconnected", &app);
}

#[test]
fn rebuild_confirmation() {
    let mut app = connected_app();
    app.update(Msg::Action(Action::RebuildRoot));
    snapshot_both_sizes("rebuild_confirmation", &app);
}

#[test]
fn release_lines() {
    use conjunction_tui::app::Loaded;
    let mut app = connected_app();
    app.update(Msg::Action(Action::Releases));
    app.update(Msg::Loaded(Loaded::Releases(
        conjunction_protocol::ProjectId::parse("core/runtime").unwrap(),
        Ok(Box::new(common::releases())),
    )));
    snapshot_both_sizes("release_lines", &app);
}
