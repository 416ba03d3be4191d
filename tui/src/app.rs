//! The terminal UI's state and its update function: messages in (actions, feed
//! events, clock ticks), effects out (messages for the daemon). Drawing reads this
//! state and never changes it, so everything here is tested without a terminal.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::sync::Arc;

use conjunction_protocol::impact::Impact;
use conjunction_protocol::node::may_rebuild;
use conjunction_protocol::releases::Releases;
use conjunction_protocol::tree::TreeLine;
use conjunction_protocol::ws::{Change, ClientMessage, ServerMessage};
use conjunction_protocol::{BuildId, Node, NodeState, ProjectId, RootEvent, StateKind, Timestamp};

use crate::keys::{Action, KeyMode};
use crate::model::{Model, RootView};

/// Rows a page key moves.
const PAGE: usize = 10;
/// How long a status message stays on the footer.
const STATUS_MS: u64 = 15_000;

/// The pane that takes the movement keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Roots,
    Tree,
    Details,
}

/// What the body of the screen shows, besides overlays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Browse,
    /// The failure drill-down of one node.
    Drill {
        root: BuildId,
        node: BuildId,
    },
    /// A y/n question before rebuilding.
    Confirm(Confirm),
    /// Typing a search query.
    Search,
    /// Typing what to preview: `project version [environment]`.
    Prompt,
    /// A view over the whole body.
    View(View),
}

/// The views that take the whole body, over the roots, tree and details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    /// A project's release lines: its versions, each with its dependents' versions
    /// and states per environment.
    Releases {
        project: ProjectId,
        loaded: Loading<Box<Releases>>,
    },
    /// The impact preview of a release or a promotion, as typed at the prompt.
    Impact {
        asked: String,
        loaded: Loading<Box<Impact>>,
    },
}

/// Something asked of the daemon for a view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loading<T> {
    Waiting,
    Ready(T),
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    pub builds: Vec<BuildId>,
    pub question: String,
    /// Where to go back to after answering.
    pub from_drill: Option<(BuildId, BuildId)>,
}

/// The state of the connection to the daemon's feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    Connecting,
    Live,
    Down { reason: String, retry_at: Timestamp },
}

/// What the feed connection tells the app.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedEvent {
    Connecting,
    Connected,
    Message(ServerMessage),
    /// A message this version does not understand; it is skipped.
    Unreadable(String),
    Disconnected {
        reason: String,
        retry_at: Timestamp,
    },
}

/// What fetching a root event's nodes brought.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetched {
    /// One page of nodes; the last has no `next_after`.
    Page(Box<RootEvent>),
    Failed {
        root: BuildId,
        reason: String,
    },
}

/// What the daemon answered for a view.
#[derive(Debug, Clone, PartialEq)]
pub enum Loaded {
    Releases(ProjectId, Result<Box<Releases>, String>),
    /// The preview asked as `asked` at the prompt.
    Impact(String, Result<Box<Impact>, String>),
}

/// Everything that changes the app.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    Action(Action),
    Feed(FeedEvent),
    Fetched(Fetched),
    Loaded(Loaded),
    Tick(Timestamp),
}

/// What the app asks the outside world to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Send(ClientMessage),
    /// Read every node of this root event from the daemon, page by page, and hand
    /// the pages back as [`Msg::Fetched`].
    Fetch(BuildId),
    /// Read a project's release lines, for [`Msg::Loaded`].
    LoadReleases(ProjectId),
    /// Ask for the impact preview of `version` of `project` (promoted to
    /// `environment`), for [`Msg::Loaded`] under `asked`.
    LoadImpact {
        asked: String,
        project: ProjectId,
        version: String,
        environment: Option<String>,
    },
}

/// A line on the footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub text: String,
    pub error: bool,
    pub at: Timestamp,
}

/// Identifies one occurrence of a node in the tree: a shared node appears once per
/// parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LineKey {
    pub node: BuildId,
    pub via: Option<BuildId>,
}

/// One visible row of the tree.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub line: TreeLine,
    pub key: LineKey,
    /// No later sibling follows this row.
    pub last: bool,
    pub has_children: bool,
    pub collapsed: bool,
}

/// What a root's rows were laid out from.
#[derive(Debug, PartialEq, Eq)]
struct RowsKey {
    root: BuildId,
    layout: u64,
    nodes: Option<u64>,
    collapsed: u64,
    failing_only: bool,
    search: String,
}

/// Which root events the list shows: releases and candidates alike, or one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kinds {
    #[default]
    All,
    Candidates,
    Releases,
}

impl Kinds {
    fn next(self) -> Self {
        match self {
            Kinds::All => Kinds::Candidates,
            Kinds::Candidates => Kinds::Releases,
            Kinds::Releases => Kinds::All,
        }
    }

    /// Whether an event of this kind is shown.
    pub fn keeps(self, candidate: bool) -> bool {
        match self {
            Kinds::All => true,
            Kinds::Candidates => candidate,
            Kinds::Releases => !candidate,
        }
    }

    /// What the header says while the list is narrowed.
    pub fn label(self) -> Option<&'static str> {
        match self {
            Kinds::All => None,
            Kinds::Candidates => Some("candidates only"),
            Kinds::Releases => Some("releases only"),
        }
    }
}

pub struct App {
    pub model: Model,
    /// The daemon's address, for the header.
    pub address: String,
    pub link: Link,
    pub now: Timestamp,
    pub focus: Focus,
    pub mode: Mode,
    pub help: bool,
    pub follow: bool,
    pub failing_only: bool,
    pub kinds: Kinds,
    pub search: String,
    /// What is typed at the impact prompt.
    pub prompt: String,
    /// How far a view is scrolled.
    pub view_scroll: u16,
    /// The open release lines are being read again.
    releases_asked: bool,
    pub selected_root: Option<BuildId>,
    pub selected: Option<LineKey>,
    collapsed: HashSet<LineKey>,
    /// The rows last laid out and what they were laid out from: a frame draws a
    /// screenful of them, and a node changing state does not move any (unless a
    /// filter is on), so they are laid out again only when their inputs change.
    rows_cache: RefCell<Option<(RowsKey, Arc<[Row]>)>>,
    /// Changes whenever a row is collapsed or expanded.
    collapsed_stamp: u64,
    /// The selected root event whose nodes could not be read: not asked for again
    /// until it is selected anew or the feed reconnects, so a daemon that is away is
    /// not asked in a loop.
    pub unreadable: Option<BuildId>,
    pub status: Option<Status>,
    pub details_scroll: u16,
    pub drill_scroll: u16,
    pub quit: bool,
    /// First visible row of the tree and of the roots list; drawing keeps the
    /// selection in view, like ratatui's `ListState`.
    pub tree_offset: Cell<usize>,
    pub roots_offset: Cell<usize>,
    /// The model changed since the trees were laid out and the selection checked.
    stale: bool,
    /// Effects decided while settling the selection, handed out by `update_all`.
    effects: Vec<Effect>,
}

impl App {
    pub fn new(address: impl Into<String>, now: Timestamp) -> Self {
        Self {
            model: Model::default(),
            address: address.into(),
            link: Link::Connecting,
            now,
            focus: Focus::Tree,
            mode: Mode::Browse,
            help: false,
            follow: true,
            failing_only: false,
            kinds: Kinds::All,
            search: String::new(),
            prompt: String::new(),
            view_scroll: 0,
            releases_asked: false,
            selected_root: None,
            selected: None,
            collapsed: HashSet::new(),
            rows_cache: RefCell::new(None),
            collapsed_stamp: 0,
            unreadable: None,
            status: None,
            details_scroll: 0,
            drill_scroll: 0,
            quit: false,
            tree_offset: Cell::new(0),
            roots_offset: Cell::new(0),
            stale: false,
            effects: Vec::new(),
        }
    }

    /// How keys are read right now.
    pub fn key_mode(&self) -> KeyMode {
        if self.help {
            return KeyMode::Help;
        }
        match self.mode {
            Mode::Confirm(_) => KeyMode::Confirm,
            Mode::Search | Mode::Prompt => KeyMode::Search,
            Mode::Browse | Mode::Drill { .. } | Mode::View(_) => KeyMode::Browse,
        }
    }

    pub fn update(&mut self, msg: Msg) -> Vec<Effect> {
        self.update_all([msg])
    }

    /// Applies a burst of messages, then lays out what changed and settles the
    /// selection once for the whole burst: a burst of ten thousand node changes
    /// costs one layout, not ten thousand.
    pub fn update_all(&mut self, msgs: impl IntoIterator<Item = Msg>) -> Vec<Effect> {
        for msg in msgs {
            match msg {
                Msg::Tick(now) => {
                    self.now = now;
                    if let Some(s) = &self.status {
                        if now.since(s.at).as_millis() as u64 > STATUS_MS {
                            self.status = None;
                        }
                    }
                }
                Msg::Feed(event) => self.on_feed(event),
                Msg::Fetched(fetched) => self.on_fetched(fetched),
                Msg::Loaded(loaded) => self.on_loaded(loaded),
                Msg::Action(action) => {
                    // Keys act on what is on screen: settle it first.
                    self.settle();
                    let effects = self.on_action(action);
                    self.effects.extend(effects);
                }
            }
        }
        self.settle();
        std::mem::take(&mut self.effects)
    }

    /// Lays out the trees the model changed, puts the selection back on something
    /// that exists, asks for the nodes of a selected event the UI does not hold, and
    /// lets go of the nodes of old events beyond the budget.
    fn settle(&mut self) {
        if !self.stale {
            return;
        }
        self.stale = false;
        self.model.refresh();
        self.reconcile();
        self.model.trim(self.selected_root);
    }

    fn on_fetched(&mut self, fetched: Fetched) {
        match fetched {
            Fetched::Page(page) => self.model.apply_page(*page),
            Fetched::Failed { root, reason } => {
                self.model.fetch_failed(root);
                self.unreadable = Some(root);
                self.complain(format!(
                    "could not read the builds of that root event: {reason}"
                ));
            }
        }
        self.stale = true;
    }

    fn on_loaded(&mut self, loaded: Loaded) {
        let Mode::View(view) = &mut self.mode else {
            return;
        };
        match (view, loaded) {
            (View::Releases { project, loaded }, Loaded::Releases(p, answer)) if *project == p => {
                self.releases_asked = false;
                *loaded = match answer {
                    Ok(releases) => Loading::Ready(releases),
                    Err(e) => Loading::Failed(e),
                };
            }
            (View::Impact { asked, loaded }, Loaded::Impact(a, answer)) if *asked == a => {
                *loaded = match answer {
                    Ok(impact) => Loading::Ready(impact),
                    Err(e) => Loading::Failed(e),
                };
            }
            // An answer for a view that is no longer open.
            _ => {}
        }
    }

    /// Opens the release lines of the selected root's project.
    fn open_releases(&mut self) -> Vec<Effect> {
        let Some(project) = self.root().map(|r| r.summary.project.clone()) else {
            self.complain("select a root event first: its project's release lines are shown");
            return Vec::new();
        };
        self.view_scroll = 0;
        self.mode = Mode::View(View::Releases {
            project: project.clone(),
            loaded: Loading::Waiting,
        });
        vec![Effect::LoadReleases(project)]
    }

    /// Opens the impact prompt, with the selected root's project typed in.
    fn open_prompt(&mut self) {
        self.prompt = self
            .root()
            .map(|r| format!("{} ", r.summary.project))
            .unwrap_or_default();
        self.mode = Mode::Prompt;
    }

    /// Asks for the preview typed at the prompt.
    fn submit_prompt(&mut self) -> Vec<Effect> {
        let asked = self.prompt.trim().to_owned();
        let words: Vec<String> = asked.split_whitespace().map(str::to_owned).collect();
        let (project, version, environment) = match &words[..] {
            [p, v] => (p, v, None),
            [p, v, e] => (p, v, Some(e.clone())),
            _ => {
                self.complain("type a project, a version and, for a promotion, an environment: acme/lib 2.0.0 test");
                return Vec::new();
            }
        };
        let project = match ProjectId::parse(project) {
            Ok(p) => p,
            Err(e) => {
                self.complain(e.to_string());
                return Vec::new();
            }
        };
        self.view_scroll = 0;
        self.mode = Mode::View(View::Impact {
            asked: asked.clone(),
            loaded: Loading::Waiting,
        });
        vec![Effect::LoadImpact {
            asked,
            project,
            version: version.clone(),
            environment,
        }]
    }

    fn say(&mut self, text: impl Into<String>) {
        self.status = Some(Status {
            text: text.into(),
            error: false,
            at: self.now,
        });
    }

    fn complain(&mut self, text: impl Into<String>) {
        self.status = Some(Status {
            text: text.into(),
            error: true,
            at: self.now,
        });
    }

    fn on_feed(&mut self, event: FeedEvent) {
        match event {
            FeedEvent::Connecting => {
                if !matches!(self.link, Link::Down { .. }) {
                    self.link = Link::Connecting;
                }
            }
            FeedEvent::Connected => {
                self.link = Link::Live;
                self.unreadable = None;
                self.stale = true;
            }
            FeedEvent::Disconnected { reason, retry_at } => {
                self.link = Link::Down { reason, retry_at };
            }
            FeedEvent::Unreadable(why) => {
                self.complain(format!("skipped a message from the daemon: {why}"));
            }
            FeedEvent::Message(ServerMessage::RebuildStarted { build, attempt, .. }) => {
                let name = self.project_of(build).unwrap_or_else(|| build.to_string());
                self.say(format!("rebuilding {name}: attempt {attempt}"));
            }
            FeedEvent::Message(ServerMessage::Error { message, .. }) => {
                self.complain(format!("the daemon refused: {message}"));
            }
            FeedEvent::Message(message) => {
                self.reload_releases(&message);
                if let Some(line) = self.dependency_news(&message) {
                    self.say(line);
                }
                self.stale |= self.model.apply(message);
            }
        }
    }

    /// The feed's line when a build's manifests changed a project's dependencies.
    fn dependency_news(&self, message: &ServerMessage) -> Option<String> {
        let ServerMessage::Event(event) = message else {
            return None;
        };
        let Change::ProjectUpserted { project } = &event.change else {
            return None;
        };
        let change = project.manifest.as_ref()?.change.as_ref()?;
        let before = self
            .model
            .projects
            .get(&project.id)
            .and_then(|p| p.manifest.as_ref())
            .and_then(|m| m.change.as_ref());
        (before != Some(change)).then(|| change.clone())
    }

    /// Keeps an open release-line view current: an event of its project that moved
    /// reads the lines again, unless a read is already on its way.
    fn reload_releases(&mut self, message: &ServerMessage) {
        let Mode::View(View::Releases { project, loaded }) = &mut self.mode else {
            return;
        };
        let ServerMessage::Event(event) = message else {
            return;
        };
        let moved = match &event.change {
            Change::RootCreated { root } | Change::RootChanged { root } => &root.project == project,
            _ => false,
        };
        // The lines on screen stay until the new ones come.
        if moved && *loaded != Loading::Waiting && !self.releases_asked {
            self.releases_asked = true;
            self.effects.push(Effect::LoadReleases(project.clone()));
        }
    }

    fn project_of(&self, build: BuildId) -> Option<String> {
        self.model
            .roots
            .iter()
            .find_map(|r| r.node(build))
            .map(|n| n.project.to_string())
    }

    // ---- what is visible ----

    /// The roots the list shows, as indexes into `model.roots`, newest first.
    pub fn visible_roots(&self) -> Vec<usize> {
        let query = self.search.to_lowercase();
        self.model
            .roots
            .iter()
            .enumerate()
            .filter(|(_, r)| !self.failing_only || r.has_failure())
            .filter(|(_, r)| self.kinds.keeps(r.summary.candidate.is_some()))
            .filter(|(_, r)| {
                query.is_empty()
                    || r.summary.project.as_str().contains(&query)
                    || r.nodes.iter().any(|n| n.project.as_str().contains(&query))
            })
            .map(|(i, _)| i)
            .collect()
    }

    pub fn root(&self) -> Option<&RootView> {
        self.selected_root.and_then(|id| self.model.root(id))
    }

    /// The tree rows of the selected root after collapsing and filtering.
    pub fn rows(&self) -> Arc<[Row]> {
        let Some(root) = self.root() else {
            return Arc::from([]);
        };
        let filtered = self.failing_only || !self.search.is_empty();
        let key = RowsKey {
            root: root.id(),
            layout: root.layout_stamp(),
            // Which rows a filter keeps depends on the nodes' states and names.
            nodes: filtered.then(|| root.nodes_stamp()),
            collapsed: self.collapsed_stamp,
            failing_only: self.failing_only,
            search: self.search.clone(),
        };
        let mut cache = self.rows_cache.borrow_mut();
        if let Some((cached, rows)) = cache.as_ref() {
            if *cached == key {
                return rows.clone();
            }
        }
        let laid_out: Arc<[Row]> =
            rows(root, &self.collapsed, self.row_filter(root).as_deref()).into();
        *cache = Some((key, laid_out.clone()));
        laid_out
    }

    /// Which rows match the failing-only filter and the search, when either is on.
    fn row_filter(&self, root: &RootView) -> Option<Vec<bool>> {
        if !self.failing_only && self.search.is_empty() {
            return None;
        }
        let query = self.search.to_lowercase();
        Some(
            root.lines()
                .iter()
                .map(|l| {
                    let node = &root.nodes[l.node];
                    (!self.failing_only || node.state.kind().is_failure())
                        && (query.is_empty() || node.project.as_str().contains(&query))
                })
                .collect(),
        )
    }

    pub fn selected_node(&self) -> Option<&Node> {
        let root = self.root()?;
        root.node(self.selected?.node)
    }

    fn selected_index(&self, rows: &[Row]) -> Option<usize> {
        let key = self.selected?;
        rows.iter().position(|r| r.key == key)
    }

    /// Puts the selection back on something that exists after the model or a filter
    /// changed: the same root and the same node when they are still shown.
    fn reconcile(&mut self) {
        let visible = self.visible_roots();
        let newest = visible.first().map(|&i| self.model.roots[i].id());
        let keep = self
            .selected_root
            .filter(|id| visible.iter().any(|&i| self.model.roots[i].id() == *id));
        let root = if self.follow { newest } else { keep.or(newest) };
        if root != self.selected_root {
            self.selected_root = root;
            self.selected = None;
            self.details_scroll = 0;
        }
        // Moving off a root event whose nodes could not be read forgets that, so
        // coming back to it asks again.
        self.unreadable = self.unreadable.filter(|u| Some(*u) == self.selected_root);
        if let Some(id) = self.selected_root {
            if self.unreadable != Some(id) && self.model.begin_loading(id) {
                self.effects.push(Effect::Fetch(id));
            }
        }
        let rows = self.rows();
        if self.selected_index(&rows).is_some() {
            return;
        }
        self.selected = self
            .selected
            .and_then(|key| rows.iter().find(|r| r.key.node == key.node))
            .or_else(|| rows.first())
            .map(|r| r.key);
    }

    // ---- actions ----

    fn on_action(&mut self, action: Action) -> Vec<Effect> {
        if self.help {
            match action {
                Action::Help | Action::Back => self.help = false,
                Action::Quit => self.quit = true,
                _ => {}
            }
            return Vec::new();
        }
        match action {
            Action::Quit => self.quit = true,
            Action::Help => self.help = true,
            Action::Answer(yes) => return self.answer(yes),
            Action::Search => {
                self.mode = Mode::Search;
            }
            Action::SearchType(c) if self.mode == Mode::Prompt => self.prompt.push(c),
            Action::SearchErase if self.mode == Mode::Prompt => {
                self.prompt.pop();
            }
            Action::SearchDone if self.mode == Mode::Prompt => return self.submit_prompt(),
            Action::SearchType(c) => {
                self.search.push(c);
                self.reconcile();
            }
            Action::SearchErase => {
                self.search.pop();
                self.reconcile();
            }
            Action::SearchDone => self.mode = Mode::Browse,
            Action::Releases => return self.open_releases(),
            Action::Preview => self.open_prompt(),
            Action::Back => self.back(),
            Action::ToggleFollow => {
                self.follow = !self.follow;
                self.reconcile();
                self.say(if self.follow {
                    "following the newest root event"
                } else {
                    "not following: the selection stays where it is"
                });
            }
            Action::ToggleFailing => {
                self.failing_only = !self.failing_only;
                self.reconcile();
            }
            Action::CycleKinds => {
                self.kinds = self.kinds.next();
                self.reconcile();
                self.say(match self.kinds {
                    Kinds::All => "showing releases and candidates",
                    Kinds::Candidates => {
                        "showing candidates only (changes tested before they merge)"
                    }
                    Kinds::Releases => "showing releases only",
                });
            }
            Action::FocusNext | Action::FocusPrevious => {
                let order = [Focus::Roots, Focus::Tree, Focus::Details];
                let at = order.iter().position(|f| *f == self.focus).unwrap_or(0);
                let step = if action == Action::FocusNext { 1 } else { 2 };
                self.focus = order[(at + step) % order.len()];
            }
            Action::Up => self.step(-1),
            Action::Down => self.step(1),
            Action::PageUp => self.step(-(PAGE as isize)),
            Action::PageDown => self.step(PAGE as isize),
            Action::Top => self.step(isize::MIN / 2),
            Action::Bottom => self.step(isize::MAX / 2),
            Action::Collapse => self.collapse(),
            Action::Expand => self.expand(),
            Action::NextFailure => self.next_failure(),
            Action::DrillDown => self.drill_down(),
            Action::Rebuild => self.ask_rebuild(),
            Action::RebuildRoot => self.ask_rebuild_root(),
        }
        Vec::new()
    }

    fn back(&mut self) {
        match self.mode {
            Mode::Drill { .. } => {
                self.mode = Mode::Browse;
                self.drill_scroll = 0;
            }
            Mode::Search => {
                self.mode = Mode::Browse;
                self.search.clear();
                self.reconcile();
            }
            Mode::Prompt | Mode::View(_) => {
                self.mode = Mode::Browse;
                self.view_scroll = 0;
            }
            Mode::Browse if !self.search.is_empty() => {
                self.search.clear();
                self.reconcile();
            }
            Mode::Browse if self.failing_only => {
                self.failing_only = false;
                self.reconcile();
            }
            Mode::Browse if self.kinds != Kinds::All => {
                self.kinds = Kinds::All;
                self.reconcile();
            }
            Mode::Browse | Mode::Confirm(_) => {}
        }
    }

    /// Moves the selection in the focused pane by `by` rows.
    fn step(&mut self, by: isize) {
        match self.mode {
            Mode::Drill { .. } => {
                self.drill_scroll = scrolled(self.drill_scroll, by);
                return;
            }
            Mode::View(_) => {
                self.view_scroll = scrolled(self.view_scroll, by);
                return;
            }
            _ => {}
        }
        match self.focus {
            Focus::Details => self.details_scroll = scrolled(self.details_scroll, by),
            Focus::Roots => {
                let visible = self.visible_roots();
                let ids: Vec<BuildId> = visible.iter().map(|&i| self.model.roots[i].id()).collect();
                let at = self
                    .selected_root
                    .and_then(|id| ids.iter().position(|r| *r == id))
                    .unwrap_or(0);
                if let Some(&id) = ids.get(moved(at, by, ids.len())) {
                    self.follow = false;
                    if Some(id) != self.selected_root {
                        self.selected_root = Some(id);
                        self.selected = None;
                        self.details_scroll = 0;
                        self.reconcile();
                    }
                }
            }
            Focus::Tree => {
                let rows = self.rows();
                let at = self.selected_index(&rows).unwrap_or(0);
                if let Some(row) = rows.get(moved(at, by, rows.len())) {
                    self.select(row.key);
                }
            }
        }
    }

    /// Selects a tree row by hand: that stops following the newest root.
    fn select(&mut self, key: LineKey) {
        if self.selected != Some(key) {
            self.details_scroll = 0;
        }
        self.selected = Some(key);
        self.follow = false;
    }

    fn collapse(&mut self) {
        if self.focus == Focus::Roots {
            return;
        }
        let rows = self.rows();
        let Some(at) = self.selected_index(&rows) else {
            return;
        };
        let row = rows[at];
        if row.has_children && !row.collapsed {
            self.collapsed.insert(row.key);
            self.collapsed_stamp += 1;
        } else if let Some(parent) = rows[..at]
            .iter()
            .rev()
            .find(|r| r.line.depth + 1 == row.line.depth)
        {
            self.select(parent.key);
        }
    }

    fn expand(&mut self) {
        if self.focus == Focus::Roots {
            self.focus = Focus::Tree;
            return;
        }
        let rows = self.rows();
        let Some(at) = self.selected_index(&rows) else {
            return;
        };
        let row = rows[at];
        if row.collapsed {
            self.collapsed.remove(&row.key);
            self.collapsed_stamp += 1;
        } else if let Some(child) = rows.get(at + 1).filter(|r| r.line.depth > row.line.depth) {
            self.select(child.key);
        }
    }

    /// Selects the next build that failed on its own: further down this root's
    /// tree, then in the roots below it in the list, then round from the top.
    fn next_failure(&mut self) {
        let visible = self.visible_roots();
        if visible.is_empty() {
            return;
        }
        let current = self
            .selected_root
            .and_then(|id| visible.iter().position(|&i| self.model.roots[i].id() == id))
            .unwrap_or(0);
        // The failed rows of a root with their place in its tree.
        let failures = |root: &RootView| -> Vec<(usize, LineKey)> {
            rows(root, &self.collapsed, self.row_filter(root).as_deref())
                .into_iter()
                .enumerate()
                // A shared build's second appearance is the same build.
                .filter(|(_, r)| {
                    !r.line.elsewhere && root.nodes[r.line.node].state.kind().is_own_failure()
                })
                .map(|(i, r)| (i, r.key))
                .collect()
        };
        let here = &self.model.roots[visible[current]];
        let selected = self.selected_index(&self.rows());
        let (after, before): (Vec<_>, Vec<_>) = failures(here)
            .into_iter()
            .partition(|(i, _)| selected.is_none_or(|s| *i > s));
        let found = after
            .first()
            .map(|(_, key)| (here.id(), *key))
            .or_else(|| {
                (1..visible.len()).find_map(|step| {
                    let root = &self.model.roots[visible[(current + step) % visible.len()]];
                    failures(root).first().map(|(_, key)| (root.id(), *key))
                })
            })
            .or_else(|| before.first().map(|(_, key)| (here.id(), *key)));
        match found {
            Some((root, key)) => {
                self.focus = Focus::Tree;
                self.selected_root = Some(root);
                self.select(key);
            }
            None => self.say("no build failed in the root events shown"),
        }
    }

    fn drill_down(&mut self) {
        if self.focus == Focus::Roots {
            self.focus = Focus::Tree;
            return;
        }
        if let (Some(root), Some(node)) = (self.selected_root, self.selected_node()) {
            self.mode = Mode::Drill {
                root,
                node: node.id,
            };
            self.drill_scroll = 0;
        }
    }

    /// The node a rebuild key applies to: the drilled-down one, else the selection.
    fn target(&self) -> Option<(&RootView, &Node)> {
        match self.mode {
            Mode::Drill { root, node } => {
                let root = self.model.root(root)?;
                Some((root, root.node(node)?))
            }
            _ => Some((self.root()?, self.selected_node()?)),
        }
    }

    /// Why this client's token may not rebuild `project`'s builds, if it may not.
    pub fn rebuild_refusal(&self, project: &ProjectId) -> Option<String> {
        let caller = self.model.caller.as_ref()?;
        caller.refusal(project, &format!("rebuilding a build of {project}"))
    }

    /// Why no build of `root` may be rebuilt: a superseded candidate's builds are
    /// rebuilt in the newer candidate (the daemon refuses them with this sentence).
    fn superseded(root: &RootView, project: &ProjectId) -> Option<String> {
        let by = root.summary.superseded_by?;
        Some(format!(
            "cannot rebuild {project}: its candidate was superseded by {by}; rebuild it in that newer event"
        ))
    }

    fn ask_rebuild(&mut self) {
        let Some((root, node)) = self.target() else {
            return;
        };
        if let Some(text) = Self::superseded(root, &node.project) {
            self.complain(text);
            return;
        }
        if let Err(refusal) = may_rebuild(node.state.kind()) {
            let hint = match &node.state {
                NodeState::Blocked { blocked_by } => {
                    format!("; rebuild {} instead", blocked_by.project)
                }
                _ => String::new(),
            };
            let text = format!("cannot rebuild {}: {refusal}{hint}", node.project);
            self.complain(text);
            return;
        }
        if let Some(refusal) = self.rebuild_refusal(&node.project) {
            self.complain(refusal);
            return;
        }
        let question = format!(
            "Rebuild {} (attempt {} after {})?",
            node.project,
            node.attempt + 1,
            node.state.kind()
        );
        let builds = vec![node.id];
        self.confirm(builds, question);
    }

    fn ask_rebuild_root(&mut self) {
        let Some((root, _)) = self.target().or_else(|| {
            let root = self.root()?;
            Some((root, root.root_node()?))
        }) else {
            return;
        };
        if let Some(text) = Self::superseded(root, &root.summary.project) {
            self.complain(text);
            return;
        }
        let failed: Vec<&Node> = root
            .nodes
            .iter()
            .filter(|n| n.state.kind().is_failure() && may_rebuild(n.state.kind()).is_ok())
            .collect();
        let blocked = root.counts().get(&StateKind::Blocked).copied().unwrap_or(0);
        if failed.is_empty() {
            self.say("nothing to rebuild: no build of this root event failed");
            return;
        }
        // Only the builds this token may rebuild are asked for.
        let (rebuildable, theirs): (Vec<&Node>, Vec<&Node>) = failed
            .into_iter()
            .partition(|n| self.rebuild_refusal(&n.project).is_none());
        if rebuildable.is_empty() {
            if let Some(refusal) = self.rebuild_refusal(&theirs[0].project) {
                self.complain(refusal);
            }
            return;
        }
        let names: Vec<&str> = rebuildable.iter().map(|n| n.project.as_str()).collect();
        let shown = if names.len() > 4 {
            format!("{} and {} more", names[..3].join(", "), names.len() - 3)
        } else {
            names.join(", ")
        };
        let mut question = format!(
            "Rebuild {} failed build{} of {}: {shown}?",
            names.len(),
            if names.len() == 1 { "" } else { "s" },
            root_title(root),
        );
        if !theirs.is_empty() {
            question.push_str(&format!(
                " {} more failed, which this token may not rebuild.",
                theirs.len()
            ));
        }
        if blocked > 0 {
            let (noun, verb) = if blocked == 1 {
                ("build", "follows")
            } else {
                ("builds", "follow")
            };
            question.push_str(&format!(" {blocked} blocked {noun} {verb} when they pass."));
        }
        let builds = rebuildable.iter().map(|n| n.id).collect();
        self.confirm(builds, question);
    }

    fn confirm(&mut self, builds: Vec<BuildId>, question: String) {
        let from_drill = match self.mode {
            Mode::Drill { root, node } => Some((root, node)),
            _ => None,
        };
        self.mode = Mode::Confirm(Confirm {
            builds,
            question,
            from_drill,
        });
    }

    fn answer(&mut self, yes: bool) -> Vec<Effect> {
        let Mode::Confirm(confirm) = std::mem::replace(&mut self.mode, Mode::Browse) else {
            return Vec::new();
        };
        if let Some((root, node)) = confirm.from_drill {
            self.mode = Mode::Drill { root, node };
        }
        if !yes {
            self.say("rebuild cancelled");
            return Vec::new();
        }
        if self.link != Link::Live {
            self.complain(
                "not connected to the daemon: nothing was rebuilt; try again once it is back",
            );
            return Vec::new();
        }
        let n = confirm.builds.len();
        self.say(format!(
            "asked the daemon to rebuild {n} build{}",
            if n == 1 { "" } else { "s" }
        ));
        confirm
            .builds
            .into_iter()
            .map(|build| Effect::Send(ClientMessage::Rebuild { build }))
            .collect()
    }
}

/// `package@version` of a root event, or just the package.
/// `acme/lib@2.0.0`, and where a promotion took it: `acme/lib@2.0.0 to prod`; a
/// candidate is named by its change: `acme/lib candidate #123`.
pub fn root_title(root: &RootView) -> String {
    let s = &root.summary;
    if let Some(c) = &s.candidate {
        let superseded = if s.superseded_by.is_some() {
            " (superseded)"
        } else {
            ""
        };
        return format!("{} {}{superseded}", s.project, c.label());
    }
    let promoted =
        crate::tree::promotion_title(s.environment.as_deref(), s.rollback_from.as_deref());
    match &s.version {
        Some(v) => format!("{}@{v}{promoted}", s.project),
        None => format!("{}{promoted}", s.project),
    }
}

fn scrolled(at: u16, by: isize) -> u16 {
    (at as isize + by).clamp(0, u16::MAX as isize) as u16
}

fn moved(at: usize, by: isize, len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    (at as isize).saturating_add(by).clamp(0, len as isize - 1) as usize
}

/// Lays out the visible rows of `root`'s tree: the rows under a collapsed row are
/// left out, and with a `filter` only rows that match or lead to a match are kept.
pub fn rows(root: &RootView, collapsed: &HashSet<LineKey>, filter: Option<&[bool]>) -> Vec<Row> {
    let lines = root.lines();
    // Whether a row or anything below it matches: a backward pass that carries, per
    // depth, whether a match was seen under the current parent.
    let keep: Option<Vec<bool>> = filter.map(|matches| {
        let mut keep = vec![false; lines.len()];
        let mut below: Vec<bool> = Vec::new();
        for (i, line) in lines.iter().enumerate().rev() {
            let d = line.depth;
            let sub = below.iter().skip(d + 1).any(|b| *b);
            below.truncate(d + 1);
            below.resize(d + 1, false);
            keep[i] = matches[i] || sub;
            below[d] |= keep[i];
        }
        keep
    });
    let mut out = Vec::with_capacity(lines.len());
    let mut parents: Vec<BuildId> = Vec::new();
    let mut hidden_below: Option<usize> = None;
    for (i, line) in lines.iter().enumerate() {
        parents.truncate(line.depth);
        let via = parents.last().copied();
        let id = root.nodes[line.node].id;
        parents.push(id);
        if let Some(d) = hidden_below {
            if line.depth > d {
                continue;
            }
            hidden_below = None;
        }
        if keep.as_ref().is_some_and(|k| !k[i]) {
            hidden_below = Some(line.depth);
            continue;
        }
        let key = LineKey { node: id, via };
        let has_children = lines.get(i + 1).is_some_and(|n| n.depth > line.depth);
        let is_collapsed = has_children && collapsed.contains(&key);
        if is_collapsed {
            hidden_below = Some(line.depth);
        }
        out.push(Row {
            line: *line,
            key,
            last: true,
            has_children,
            collapsed: is_collapsed,
        });
    }
    // A row is the last of its siblings when no row of the same depth follows before
    // a shallower one.
    let mut seen: Vec<bool> = Vec::new();
    for row in out.iter_mut().rev() {
        let d = row.line.depth;
        seen.truncate(d + 1);
        seen.resize(d + 1, false);
        row.last = !seen[d];
        seen[d] = true;
    }
    out
}
