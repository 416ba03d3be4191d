//! Helpers shared by the UI's test binaries.

use conjunction_tui::app::{App, FeedEvent, Focus, Msg};
use conjunction_tui::keys::Action;
use conjunction_tui::sample::{self, NOW};

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
