//! What the terminal UI knows about the daemon: projects and recent root events,
//! kept current by applying feed messages in sequence order.
//!
//! A root event is held either with its nodes or as its summary alone: the daemon's
//! snapshot carries the nodes of its newest events only, and the UI keeps nodes for a
//! bounded number of builds. The nodes of a summary-only event are fetched page by
//! page when someone selects it ([`Model::begin_loading`], [`Model::apply_page`]).
//!
//! A node change costs a lookup and a count, not a new tree: the tree is laid out
//! again only when nodes are added or their parents change, and then once per burst
//! of messages ([`Model::refresh`]), not once per message.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use conjunction_protocol::tree::{assemble, TreeLine};
use conjunction_protocol::ws::{Change, ServerMessage};
use conjunction_protocol::{
    BuildId, Node, NodeState, Project, ProjectId, RootEvent, RootSummary, StateKind,
};

/// Root events kept in memory; older ones fall off the end of the list.
pub const MAX_ROOTS: usize = 200;
/// Nodes kept in memory across all root events; beyond it, the nodes of the oldest
/// events not on screen are let go (their summaries stay).
pub const MAX_NODES: usize = 200_000;

/// A mark that differs from every mark handed out before, so that what is drawn
/// from a root event can be kept until the event changes, even across a view
/// replaced by a new one.
fn fresh_stamp() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// How much of a root event the UI holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Every node, kept current by the feed.
    Nodes,
    /// The summary only; the nodes are being fetched, and changes to them that arrive
    /// meanwhile are kept.
    Loading,
    /// The summary only.
    Summary,
}

/// One root event: its summary and, when held, its nodes in planning order (which is
/// build id order) and their tree.
#[derive(Debug, Clone)]
pub struct RootView {
    pub summary: RootSummary,
    pub nodes: Vec<Node>,
    held: Held,
    index: HashMap<BuildId, usize>,
    /// Each project's build in this event (a project is built once per event).
    by_project: HashMap<ProjectId, BuildId>,
    /// The builds that failed on their own, for the header's count of failing
    /// projects.
    own_failures: BTreeSet<BuildId>,
    /// The tree of `nodes`; laid out again by `refresh` when `reshaped`.
    lines: Vec<TreeLine>,
    children: Vec<Vec<usize>>,
    reshaped: bool,
    counts: BTreeMap<StateKind, u32>,
    /// Changes whenever the tree is laid out again.
    layout_stamp: u64,
    /// Changes whenever a node changes.
    nodes_stamp: u64,
}

impl RootView {
    /// An event with all its nodes.
    pub fn new(summary: RootSummary, nodes: Vec<Node>) -> Self {
        let mut view = Self::summary_only(summary);
        view.held = Held::Nodes;
        view.nodes = nodes;
        view.nodes.sort_by_key(|n| n.id);
        view.restructure();
        view
    }

    /// An event whose nodes the UI does not hold.
    pub fn summary_only(summary: RootSummary) -> Self {
        Self {
            summary,
            nodes: Vec::new(),
            held: Held::Summary,
            index: HashMap::new(),
            by_project: HashMap::new(),
            own_failures: BTreeSet::new(),
            lines: Vec::new(),
            children: Vec::new(),
            reshaped: false,
            counts: BTreeMap::new(),
            layout_stamp: fresh_stamp(),
            nodes_stamp: fresh_stamp(),
        }
    }

    pub fn id(&self) -> BuildId {
        self.summary.id
    }

    pub fn held(&self) -> Held {
        self.held
    }

    /// Differs from any value it had before once the tree has been laid out again.
    pub fn layout_stamp(&self) -> u64 {
        self.layout_stamp
    }

    /// Differs from any value it had before once a node has changed.
    pub fn nodes_stamp(&self) -> u64 {
        self.nodes_stamp
    }

    pub fn lines(&self) -> &[TreeLine] {
        &self.lines
    }

    /// How many builds the event has.
    pub fn size(&self) -> usize {
        match self.held {
            Held::Nodes => self.nodes.len(),
            Held::Loading | Held::Summary => {
                self.summary.counts.values().map(|&n| n as usize).sum()
            }
        }
    }

    /// How many nodes are in each state: counted from the nodes when the UI holds
    /// them, as the daemon last said otherwise.
    pub fn counts(&self) -> &BTreeMap<StateKind, u32> {
        match self.held {
            Held::Nodes => &self.counts,
            Held::Loading | Held::Summary => &self.summary.counts,
        }
    }

    pub fn node(&self, id: BuildId) -> Option<&Node> {
        self.index.get(&id).map(|&i| &self.nodes[i])
    }

    fn position(&self, id: BuildId) -> Option<usize> {
        self.index.get(&id).copied()
    }

    /// The root event's own node.
    pub fn root_node(&self) -> Option<&Node> {
        self.node(self.summary.id)
    }

    /// Whether any node of this event did not pass.
    pub fn has_failure(&self) -> bool {
        self.counts().iter().any(|(k, n)| k.is_failure() && *n > 0)
    }

    /// Takes a node's newest version: a node it does not have is added, one it has
    /// is replaced unless what it has is newer (a page read before an event arrived).
    fn upsert(&mut self, node: Node) {
        self.nodes_stamp = fresh_stamp();
        match self.index.get(&node.id) {
            Some(&i) => {
                let old = &self.nodes[i];
                if old.seq > node.seq {
                    return;
                }
                self.reshaped |= old.parents != node.parents;
                count(&mut self.counts, Some(old.state.kind()), node.state.kind());
                self.note_failure(&node);
                self.nodes[i] = node;
            }
            None => {
                count(&mut self.counts, None, node.state.kind());
                self.note_failure(&node);
                // Nodes mostly arrive in planning order, which is id order: at the end.
                let at = self.nodes.partition_point(|n| n.id < node.id);
                let id = node.id;
                self.nodes.insert(at, node);
                if at + 1 == self.nodes.len() {
                    self.index.insert(id, at);
                    self.by_project.insert(self.nodes[at].project.clone(), id);
                } else {
                    self.reindex();
                }
                self.reshaped = true;
            }
        }
    }

    /// Merges a page of nodes (in id order) with those held, keeping the newer
    /// version of a node that is in both.
    fn merge(&mut self, page: Vec<Node>) {
        let held = std::mem::take(&mut self.nodes);
        let mut merged = Vec::with_capacity(held.len() + page.len());
        let (mut a, mut b) = (held.into_iter().peekable(), page.into_iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.id == y.id => {
                    let (x, y) = (a.next(), b.next());
                    x.zip(y).map(|(x, y)| if x.seq >= y.seq { x } else { y })
                }
                (Some(x), Some(y)) if x.id < y.id => a.next(),
                (Some(_), Some(_)) | (None, Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, None) => break,
            };
            merged.extend(next);
        }
        self.nodes = merged;
        self.nodes_stamp = fresh_stamp();
        self.reindex();
        self.own_failures = self
            .nodes
            .iter()
            .filter(|n| n.state.kind().is_own_failure())
            .map(|n| n.id)
            .collect();
        self.reshaped = true;
    }

    /// Keeps `own_failures` true to `node`'s new state.
    fn note_failure(&mut self, node: &Node) {
        if node.state.kind().is_own_failure() {
            self.own_failures.insert(node.id);
        } else {
            self.own_failures.remove(&node.id);
        }
    }

    fn reindex(&mut self) {
        self.index = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id, i))
            .collect();
        self.by_project = self
            .nodes
            .iter()
            .map(|n| (n.project.clone(), n.id))
            .collect();
    }

    /// Whether `project` has a finished build in this event.
    fn has_finished(&self, project: &ProjectId) -> bool {
        self.by_project
            .get(project)
            .and_then(|id| self.node(*id))
            .is_some_and(|n| n.state.kind().is_final())
    }

    fn drop_nodes(&mut self) {
        *self = Self::summary_only(self.summary.clone());
    }

    fn restructure(&mut self) {
        if self.index.len() != self.nodes.len() {
            self.reindex();
        }
        self.children = vec![Vec::new(); self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for p in &n.parents {
                if let Some(&pi) = self.index.get(p) {
                    self.children[pi].push(i);
                }
            }
        }
        self.lines = assemble(&self.nodes);
        self.counts.clear();
        self.own_failures.clear();
        for n in &self.nodes {
            *self.counts.entry(n.state.kind()).or_default() += 1;
            if n.state.kind().is_own_failure() {
                self.own_failures.insert(n.id);
            }
        }
        self.reshaped = false;
        self.layout_stamp = fresh_stamp();
    }

    /// Every node below `id` in this event, nearest first, each once.
    pub fn descendants(&self, id: BuildId) -> Vec<&Node> {
        let Some(start) = self.position(id) else {
            return Vec::new();
        };
        let mut seen = vec![false; self.nodes.len()];
        seen[start] = true;
        let mut queue = std::collections::VecDeque::from([start]);
        let mut found = Vec::new();
        while let Some(i) = queue.pop_front() {
            for &c in self.children.get(i).into_iter().flatten() {
                if !seen[c] {
                    seen[c] = true;
                    found.push(&self.nodes[c]);
                    queue.push_back(c);
                }
            }
        }
        found
    }

    /// The chain from the root down to `id`: for a blocked node through the parent
    /// that blocked it, otherwise through its first parent.
    pub fn causes(&self, id: BuildId) -> Vec<&Node> {
        let mut chain = Vec::new();
        let mut current = self.node(id);
        while let Some(node) = current {
            if chain.iter().any(|n: &&Node| n.id == node.id) {
                break;
            }
            chain.push(node);
            let next = match &node.state {
                NodeState::Blocked { blocked_by } => Some(blocked_by.build),
                _ => node.parents.first().copied(),
            };
            current = next.and_then(|p| self.node(p));
        }
        chain.reverse();
        chain
    }
}

fn count(counts: &mut BTreeMap<StateKind, u32>, from: Option<StateKind>, to: StateKind) {
    if let Some(from) = from {
        if let Some(n) = counts.get_mut(&from) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&from);
            }
        }
    }
    *counts.entry(to).or_default() += 1;
}

/// One earlier result of a project.
#[derive(Debug, Clone)]
pub struct PastResult<'a> {
    pub root: &'a RootSummary,
    pub node: &'a Node,
}

/// Projects and recent root events, newest first.
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub projects: BTreeMap<ProjectId, Project>,
    pub roots: Vec<RootView>,
    /// The sequence number of the last applied event.
    pub seq: u64,
    /// The daemon's version, from its hello.
    pub daemon: Option<String>,
    /// Whom this client's token speaks for, from the hello (none from a daemon
    /// before people's tokens, whose feed took operator tokens only).
    pub caller: Option<conjunction_protocol::access::CallerView>,
}

impl Model {
    /// Applies one feed message. Returns whether anything changed; an event the
    /// model has already applied (a replay overlap) changes nothing. Call
    /// [`Model::refresh`] before reading trees again.
    pub fn apply(&mut self, message: ServerMessage) -> bool {
        match message {
            ServerMessage::Hello { daemon, caller, .. } => {
                self.daemon = Some(daemon);
                self.caller = caller;
                false
            }
            ServerMessage::Snapshot {
                seq,
                projects,
                roots,
                events,
            } => {
                self.seq = seq;
                self.projects = projects.into_iter().map(|p| (p.id.clone(), p)).collect();
                let mut with_nodes: HashMap<BuildId, Vec<Node>> = events
                    .into_iter()
                    .map(|e| (e.summary.id, e.nodes))
                    .collect();
                self.roots = roots
                    .into_iter()
                    .map(|summary| match with_nodes.remove(&summary.id) {
                        Some(nodes) => RootView::new(summary, nodes),
                        None => RootView::summary_only(summary),
                    })
                    .collect();
                self.roots.sort_by_key(|r| std::cmp::Reverse(r.id()));
                self.roots.truncate(MAX_ROOTS);
                true
            }
            ServerMessage::Event(event) => {
                if event.seq <= self.seq {
                    return false;
                }
                self.seq = event.seq;
                self.apply_change(event.change);
                true
            }
            ServerMessage::RebuildStarted { .. } | ServerMessage::Error { .. } => false,
        }
    }

    fn apply_change(&mut self, change: Change) {
        match change {
            Change::ProjectUpserted { project } => {
                self.projects.insert(project.id.clone(), project);
            }
            Change::ProjectDeleted { project } => {
                self.projects.remove(&project);
            }
            Change::RootCreated { root } | Change::RootChanged { root } => {
                match self.root_index(root.id) {
                    Some(i) => self.roots[i].summary = root,
                    None => {
                        // Root ids are ULIDs: newer roots sort higher. A new event's
                        // nodes all follow as events, so it is held from the start.
                        let at = self.roots.partition_point(|r| r.id() > root.id);
                        self.roots.insert(at, RootView::new(root, Vec::new()));
                        self.roots.truncate(MAX_ROOTS);
                    }
                }
            }
            Change::NodeChanged { node } => {
                // A node of a root older than what is kept has nowhere to go.
                if let Some(i) = self.root_index(node.root) {
                    if self.roots[i].held != Held::Summary {
                        self.roots[i].upsert(node);
                    }
                }
            }
        }
    }

    /// Lays out again the trees whose nodes were added or reshaped.
    pub fn refresh(&mut self) {
        for root in &mut self.roots {
            if root.reshaped {
                root.restructure();
            }
        }
    }

    /// Marks a summary-only event as being fetched; `true` if it was summary-only.
    pub fn begin_loading(&mut self, id: BuildId) -> bool {
        match self.root_index(id) {
            Some(i) if self.roots[i].held == Held::Summary => {
                self.roots[i].held = Held::Loading;
                true
            }
            _ => false,
        }
    }

    /// Takes one fetched page of an event's nodes; the last page makes the event
    /// held. Nodes the feed changed meanwhile keep their newer version.
    pub fn apply_page(&mut self, page: RootEvent) {
        let Some(i) = self.root_index(page.summary.id) else {
            return;
        };
        let root = &mut self.roots[i];
        if root.held != Held::Loading {
            return;
        }
        let mut nodes = page.nodes;
        nodes.sort_by_key(|n| n.id);
        root.merge(nodes);
        if page.next_after.is_none() {
            root.held = Held::Nodes;
        }
    }

    /// Gives up fetching an event's nodes: it is summary-only again.
    pub fn fetch_failed(&mut self, id: BuildId) {
        if let Some(i) = self.root_index(id) {
            if self.roots[i].held == Held::Loading {
                self.roots[i].drop_nodes();
            }
        }
    }

    /// Lets go of the nodes of the oldest events, except `keep`, until at most
    /// [`MAX_NODES`] are held.
    pub fn trim(&mut self, keep: Option<BuildId>) {
        let mut held: usize = self.roots.iter().map(|r| r.nodes.len()).sum();
        for root in self.roots.iter_mut().rev() {
            if held <= MAX_NODES {
                break;
            }
            if Some(root.id()) != keep && root.held == Held::Nodes {
                held -= root.nodes.len();
                root.drop_nodes();
            }
        }
    }

    pub fn root_index(&self, id: BuildId) -> Option<usize> {
        self.roots.iter().position(|r| r.id() == id)
    }

    pub fn root(&self, id: BuildId) -> Option<&RootView> {
        self.root_index(id).map(|i| &self.roots[i])
    }

    /// The results of `project` in root events of the same upstream that are older
    /// than `root` and whose nodes the UI holds, newest first; only final results.
    pub fn history(&self, root: BuildId, project: &ProjectId) -> Vec<PastResult<'_>> {
        let Some(i) = self.root_index(root) else {
            return Vec::new();
        };
        let upstream = &self.roots[i].summary.project;
        self.roots[i + 1..]
            .iter()
            .filter(|r| &r.summary.project == upstream)
            .filter_map(|r| {
                r.nodes
                    .iter()
                    .find(|n| &n.project == project && n.state.kind().is_final())
                    .map(|node| PastResult {
                        root: &r.summary,
                        node,
                    })
            })
            .collect()
    }

    /// Live counts for the header: builds running, waiting to run, and projects
    /// whose latest final result (in the events whose nodes are held) is a failure
    /// of their own (failed, errored or not triggered); projects merely blocked by
    /// an upstream are not counted.
    ///
    /// It costs the failures held, not the nodes: a frame asks for it while a large
    /// cascade is coming in.
    pub fn counts(&self) -> HeaderCounts {
        let mut counts = HeaderCounts::default();
        for (i, root) in self.roots.iter().enumerate() {
            for (kind, n) in root.counts() {
                match kind {
                    StateKind::Triggered | StateKind::Running => counts.running += n,
                    StateKind::Pending | StateKind::Queued => counts.waiting += n,
                    _ => {}
                }
            }
            // Roots are newest first: a failure is the project's latest final result
            // unless a newer event has a finished build of the project.
            for id in &root.own_failures {
                let Some(node) = root.node(*id) else { continue };
                let newer = &self.roots[..i];
                if !newer.iter().any(|r| r.has_finished(&node.project)) {
                    counts.failing += 1;
                }
            }
        }
        counts
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeaderCounts {
    pub running: u32,
    pub waiting: u32,
    pub failing: u32,
}
