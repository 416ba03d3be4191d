//! What the terminal UI knows about the daemon: projects and recent root events,
//! kept current by applying feed messages in sequence order.

use std::collections::{BTreeMap, HashMap};

use conjunction_protocol::tree::{assemble, TreeLine};
use conjunction_protocol::ws::{Change, ServerMessage};
use conjunction_protocol::{
    BuildId, Node, NodeState, Project, ProjectId, RootEvent, RootSummary, StateKind,
};

/// Root events kept in memory; older ones fall off the end of the list.
pub const MAX_ROOTS: usize = 200;

/// One root event: its summary, its nodes in planning order and their tree.
#[derive(Debug, Clone)]
pub struct RootView {
    pub summary: RootSummary,
    pub nodes: Vec<Node>,
    index: HashMap<BuildId, usize>,
    /// The tree of `nodes`, rebuilt when a node is added or its parents change.
    lines: Vec<TreeLine>,
    children: Vec<Vec<usize>>,
    counts: BTreeMap<StateKind, u32>,
}

impl RootView {
    pub fn new(summary: RootSummary, nodes: Vec<Node>) -> Self {
        let mut view = Self {
            summary,
            nodes,
            index: HashMap::new(),
            lines: Vec::new(),
            children: Vec::new(),
            counts: BTreeMap::new(),
        };
        view.restructure();
        view
    }

    pub fn id(&self) -> BuildId {
        self.summary.id
    }

    pub fn lines(&self) -> &[TreeLine] {
        &self.lines
    }

    /// How many nodes are in each state, counted from the nodes themselves.
    pub fn counts(&self) -> &BTreeMap<StateKind, u32> {
        &self.counts
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
        self.counts.iter().any(|(k, n)| k.is_failure() && *n > 0)
    }

    fn upsert(&mut self, node: Node) {
        match self.index.get(&node.id) {
            Some(&i) => {
                let reshaped = self.nodes[i].parents != node.parents;
                self.nodes[i] = node;
                if reshaped {
                    self.restructure();
                } else {
                    self.recount();
                }
            }
            None => {
                self.nodes.push(node);
                self.restructure();
            }
        }
    }

    fn restructure(&mut self) {
        self.index = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id, i))
            .collect();
        self.children = vec![Vec::new(); self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for p in &n.parents {
                if let Some(&pi) = self.index.get(p) {
                    self.children[pi].push(i);
                }
            }
        }
        self.lines = assemble(&self.nodes);
        self.recount();
    }

    fn recount(&mut self) {
        self.counts.clear();
        for n in &self.nodes {
            *self.counts.entry(n.state.kind()).or_default() += 1;
        }
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
            for &c in &self.children[i] {
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

/// What a project's earlier results say about its result now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It passed the last time this upstream changed, and fails now.
    Regression,
    /// It did not pass the last time either.
    FailedBefore,
    /// No earlier final result from this upstream is known.
    NoHistory,
    /// It has not failed now.
    NotFailing,
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
}

impl Model {
    /// Applies one feed message. Returns whether anything changed; an event the
    /// model has already applied (a replay overlap) changes nothing.
    pub fn apply(&mut self, message: ServerMessage) -> bool {
        match message {
            ServerMessage::Hello { daemon, .. } => {
                self.daemon = Some(daemon);
                false
            }
            ServerMessage::Snapshot {
                seq,
                projects,
                roots,
            } => {
                self.seq = seq;
                self.projects = projects.into_iter().map(|p| (p.id.clone(), p)).collect();
                self.roots = roots
                    .into_iter()
                    .map(|RootEvent { summary, nodes }| RootView::new(summary, nodes))
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
                        // Root ids are ULIDs: newer roots sort higher.
                        let at = self.roots.partition_point(|r| r.id() > root.id);
                        self.roots.insert(at, RootView::new(root, Vec::new()));
                        self.roots.truncate(MAX_ROOTS);
                    }
                }
            }
            Change::NodeChanged { node } => {
                // A node of a root older than what is kept has nowhere to go.
                if let Some(i) = self.root_index(node.root) {
                    self.roots[i].upsert(node);
                }
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
    /// than `root`, newest first; only final results count.
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

    /// Whether `node`'s result in `root` is a regression: compared with the last
    /// earlier build of the project that ran (blocked or untriggered ones say
    /// nothing about the project's code).
    pub fn verdict(&self, root: BuildId, node: &Node) -> Verdict {
        if !node.state.kind().is_failure() {
            return Verdict::NotFailing;
        }
        let ran = |k: StateKind| {
            matches!(
                k,
                StateKind::Passed | StateKind::Failed | StateKind::Errored
            )
        };
        let history = self.history(root, &node.project);
        match history.iter().find(|p| ran(p.node.state.kind())) {
            None => Verdict::NoHistory,
            Some(past) if past.node.state.kind() == StateKind::Passed => Verdict::Regression,
            Some(_) => Verdict::FailedBefore,
        }
    }

    /// Live counts for the header: builds running, waiting to run, and projects
    /// whose latest final result is a failure of their own (failed, errored or not
    /// triggered); projects merely blocked by an upstream are not counted.
    pub fn counts(&self) -> HeaderCounts {
        let mut counts = HeaderCounts::default();
        let mut latest: HashMap<&ProjectId, StateKind> = HashMap::new();
        for root in &self.roots {
            for (kind, n) in root.counts() {
                match kind {
                    StateKind::Triggered | StateKind::Running => counts.running += n,
                    StateKind::Pending | StateKind::Queued => counts.waiting += n,
                    _ => {}
                }
            }
            if root.counts().keys().any(|k| k.is_final()) {
                for node in &root.nodes {
                    let kind = node.state.kind();
                    if kind.is_final() {
                        // Roots are newest first: the first final result seen is the latest.
                        latest.entry(&node.project).or_insert(kind);
                    }
                }
            }
        }
        counts.failing = latest.values().filter(|k| k.is_own_failure()).count() as u32;
        counts
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeaderCounts {
    pub running: u32,
    pub waiting: u32,
    pub failing: u32,
}
