//! Key presses to actions. The mapping depends only on the mode the screen is in,
//! so it is tested without a terminal.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// Something the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    /// Collapse the selected node, or go to its parent.
    Collapse,
    /// Expand the selected node, or go to its first child.
    Expand,
    FocusNext,
    FocusPrevious,
    DrillDown,
    Back,
    Rebuild,
    RebuildRoot,
    Answer(bool),
    ToggleFollow,
    ToggleFailing,
    /// All root events, candidates only, releases only.
    CycleKinds,
    NextFailure,
    Search,
    /// Open the release lines of the selected root's project.
    Releases,
    /// Open the impact prompt.
    Preview,
    SearchType(char),
    SearchErase,
    SearchDone,
    Help,
    Quit,
}

/// What keys mean right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMode {
    /// Browsing: the roots, tree and details panes, or the drill-down view.
    Browse,
    /// A y/n question is open.
    Confirm,
    /// Typing text: a search, or what to preview at the impact prompt.
    Search,
    /// The help overlay is open.
    Help,
}

/// The action for `key` in `mode`, if it has one.
pub fn action(mode: KeyMode, key: KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Some(Action::Quit);
    }
    match mode {
        KeyMode::Confirm => match key.code {
            KeyCode::Char('y' | 'Y') => Some(Action::Answer(true)),
            KeyCode::Char('n' | 'N') | KeyCode::Esc => Some(Action::Answer(false)),
            _ => None,
        },
        KeyMode::Search => match key.code {
            KeyCode::Enter => Some(Action::SearchDone),
            KeyCode::Esc => Some(Action::Back),
            KeyCode::Backspace => Some(Action::SearchErase),
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                Some(Action::SearchType(c))
            }
            _ => None,
        },
        KeyMode::Help => match key.code {
            KeyCode::Char('?') | KeyCode::Esc => Some(Action::Help),
            KeyCode::Char('q') => Some(Action::Quit),
            _ => None,
        },
        KeyMode::Browse => match key.code {
            KeyCode::Up | KeyCode::Char('k') => Some(Action::Up),
            KeyCode::Down | KeyCode::Char('j') => Some(Action::Down),
            KeyCode::PageUp => Some(Action::PageUp),
            KeyCode::PageDown => Some(Action::PageDown),
            KeyCode::Home | KeyCode::Char('g') => Some(Action::Top),
            KeyCode::End | KeyCode::Char('G') => Some(Action::Bottom),
            KeyCode::Left | KeyCode::Char('h') => Some(Action::Collapse),
            KeyCode::Right | KeyCode::Char('l') => Some(Action::Expand),
            KeyCode::Tab => Some(Action::FocusNext),
            KeyCode::BackTab => Some(Action::FocusPrevious),
            KeyCode::Enter => Some(Action::DrillDown),
            KeyCode::Esc => Some(Action::Back),
            KeyCode::Char('r') => Some(Action::Rebuild),
            KeyCode::Char('R') => Some(Action::RebuildRoot),
            KeyCode::Char('F') => Some(Action::ToggleFollow),
            KeyCode::Char('f') => Some(Action::ToggleFailing),
            KeyCode::Char('c') => Some(Action::CycleKinds),
            KeyCode::Char('n') => Some(Action::NextFailure),
            KeyCode::Char('/') => Some(Action::Search),
            KeyCode::Char('v') => Some(Action::Releases),
            KeyCode::Char('i') => Some(Action::Preview),
            KeyCode::Char('?') => Some(Action::Help),
            KeyCode::Char('q') => Some(Action::Quit),
            _ => None,
        },
    }
}

/// The key list, for the help overlay and the README.
pub const HELP: &[(&str, &str)] = &[
    ("↑ ↓  k j", "move the selection"),
    ("← →  h l", "collapse / expand; go to parent / child"),
    ("PgUp PgDn g G", "page up / down, first / last"),
    (
        "Tab  Shift-Tab",
        "next / previous pane: roots, tree, details",
    ),
    ("Enter", "drill down into the selected build"),
    ("Esc", "back: close a view, clear the search"),
    ("r", "rebuild the selected build (asks y/n)"),
    ("R", "rebuild every failed build of the root (asks y/n)"),
    ("n", "jump to the next failed build"),
    ("f", "show only failing paths"),
    ("c", "all events, candidates only, releases only"),
    ("/", "search projects; Enter keeps it, Esc clears"),
    ("F", "follow the newest root event on/off"),
    ("v", "release lines of the root's project"),
    ("i", "impact preview: project version [environment]"),
    ("?", "this help"),
    ("q  Ctrl-C", "quit"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn vim_keys_and_arrows_move_the_same_way() {
        for (a, b, want) in [
            (KeyCode::Up, KeyCode::Char('k'), Action::Up),
            (KeyCode::Down, KeyCode::Char('j'), Action::Down),
            (KeyCode::Left, KeyCode::Char('h'), Action::Collapse),
            (KeyCode::Right, KeyCode::Char('l'), Action::Expand),
        ] {
            assert_eq!(action(KeyMode::Browse, press(a)), Some(want));
            assert_eq!(action(KeyMode::Browse, press(b)), Some(want));
        }
    }

    #[test]
    fn a_confirmation_only_takes_yes_or_no() {
        assert_eq!(
            action(KeyMode::Confirm, press(KeyCode::Char('y'))),
            Some(Action::Answer(true))
        );
        assert_eq!(
            action(KeyMode::Confirm, press(KeyCode::Esc)),
            Some(Action::Answer(false))
        );
        assert_eq!(action(KeyMode::Confirm, press(KeyCode::Char('r'))), None);
        assert_eq!(action(KeyMode::Confirm, press(KeyCode::Char('q'))), None);
    }

    #[test]
    fn typing_a_search_does_not_trigger_commands() {
        assert_eq!(
            action(KeyMode::Search, press(KeyCode::Char('q'))),
            Some(Action::SearchType('q'))
        );
        assert_eq!(
            action(KeyMode::Search, press(KeyCode::Char('r'))),
            Some(Action::SearchType('r'))
        );
    }

    #[test]
    fn ctrl_c_quits_from_every_mode() {
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        for mode in [
            KeyMode::Browse,
            KeyMode::Confirm,
            KeyMode::Search,
            KeyMode::Help,
        ] {
            assert_eq!(action(mode, ctrl_c), Some(Action::Quit));
        }
    }
}
