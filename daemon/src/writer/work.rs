//! The unit of work of one batch: the write transaction, the root records and
//! members the batch has read or changed (written once, at its end), the triggers it
//! queued and the graph changes to publish after the commit.
//!
//! A batch of many reports about one large event reads and writes that event's record
//! once, not once per report, and each report touches only the members it changes.

use std::collections::{BTreeMap, HashMap};

use conjunction_protocol::project::{Dependency, Package};
use conjunction_protocol::ws::Change;
use conjunction_protocol::{BuildId, Node, ProjectId, RootSummary, StateKind, Timestamp};

use crate::auth::BuildTokens;
use crate::hub::Published;
use crate::planner::{self, Environments, EventMembers, Graph, Member, Settled};
use crate::store::{
    ForgeEntry, NoticeEntry, OutboxEntry, RootRecord, StoreError, StoredProject, WriteTx,
};

/// The most steps (nodes queued, blocked, unblocked or failed) the planner takes for
/// one command, or for one batch's share of what earlier ones left: a root report
/// that reaches a hundred thousand projects is acknowledged, and other reports are
/// committed, without waiting for all of them to be queued.
pub(crate) const STEP_BUDGET: usize = 500;

/// A change to the dependency graph, replayed on the readers' copy after the commit.
#[derive(Debug, Clone)]
pub(crate) enum GraphChange {
    Set {
        project: ProjectId,
        depends_on: Vec<Dependency>,
        has_trigger: bool,
        package: Option<Package>,
    },
    Remove {
        project: ProjectId,
    },
}

impl GraphChange {
    /// What `stored` says the graph is at it.
    pub fn of(stored: &StoredProject) -> Self {
        GraphChange::Set {
            project: stored.id.clone(),
            depends_on: stored.depends_on.clone(),
            has_trigger: stored.trigger.is_some(),
            package: stored.package.clone(),
        }
    }

    pub fn apply(self, graph: &mut Graph) {
        match self {
            GraphChange::Set {
                project,
                depends_on,
                has_trigger,
                package,
            } => {
                graph.register(
                    &project,
                    &depends_on,
                    has_trigger,
                    package.as_ref().map(|p| p.ecosystem),
                );
                graph.set_package(&project, package.as_ref());
            }
            GraphChange::Remove { project } => graph.remove_project(&project),
        }
    }
}

/// What a batch hands on once it has committed.
pub(crate) struct Committed {
    pub published: Vec<Published>,
    pub queued: Vec<OutboxEntry>,
    /// Notices queued, for the notifier.
    pub notices: Vec<NoticeEntry>,
    /// Forge reports queued, for the forge sender.
    pub forges: Vec<ForgeEntry>,
    pub graph: Vec<GraphChange>,
    /// Nodes are left for the planner to decide in a later batch.
    pub ready_left: bool,
}

/// One root event as this batch knows it.
pub(crate) struct EventState {
    pub record: RootRecord,
    /// The summary clients last heard about; `None` until a new event is announced.
    announced: Option<RootSummary>,
    members: HashMap<u32, Member>,
    /// Members to write at the end, and whether each is new.
    dirty: BTreeMap<u32, bool>,
    record_changed: bool,
}

pub(crate) struct Work<'t, 'w> {
    pub tx: WriteTx<'t>,
    pub now: Timestamp,
    pub graph: &'w mut Graph,
    pub report_url: &'w str,
    pub build_tokens: &'w BuildTokens,
    pub environments: &'w Environments,
    /// The daemon can send mail: a side without notify rules has its contacts
    /// emailed.
    pub email_default: bool,
    ulids: &'w mut ulid::Generator,
    graph_changes: Vec<GraphChange>,
    events: HashMap<BuildId, EventState>,
    queued: Vec<OutboxEntry>,
    notices: Vec<NoticeEntry>,
    forges: Vec<ForgeEntry>,
}

impl<'t, 'w> Work<'t, 'w> {
    pub fn new(
        tx: WriteTx<'t>,
        graph: &'w mut Graph,
        report_url: &'w str,
        build_tokens: &'w BuildTokens,
        environments: &'w Environments,
        email_default: bool,
        ulids: &'w mut ulid::Generator,
    ) -> Self {
        Self {
            tx,
            now: Timestamp::from_system_time(std::time::SystemTime::now()),
            graph,
            report_url,
            build_tokens,
            environments,
            email_default,
            ulids,
            graph_changes: Vec::new(),
            events: HashMap::new(),
            queued: Vec::new(),
            notices: Vec::new(),
            forges: Vec::new(),
        }
    }

    pub fn next_id(&mut self) -> BuildId {
        // The generator refuses only when 2^80 ids were made in one millisecond.
        BuildId(self.ulids.generate().unwrap_or_else(|_| ulid::Ulid::new()))
    }

    /// Changes the graph now and, after the commit, the readers' copy.
    pub fn change_graph(&mut self, change: GraphChange) {
        change.clone().apply(self.graph);
        self.graph_changes.push(change);
    }

    pub fn queue(&mut self, entry: OutboxEntry) -> Result<(), StoreError> {
        self.tx.put_outbox(&entry)?;
        self.queued.push(entry);
        Ok(())
    }

    pub fn queue_notice(&mut self, entry: NoticeEntry) -> Result<(), StoreError> {
        self.tx.put_notice(&entry)?;
        self.notices.push(entry);
        Ok(())
    }

    // ---- root events ----

    /// Starts a root event that did not exist before.
    pub fn create_event(&mut self, record: RootRecord) {
        self.events.insert(
            record.id,
            EventState {
                record,
                announced: None,
                members: HashMap::new(),
                dirty: BTreeMap::new(),
                record_changed: true,
            },
        );
    }

    /// Whether this batch has root event `root` open.
    pub fn has_event(&self, root: BuildId) -> bool {
        self.events.contains_key(&root)
    }

    /// A root event, read on first use in this batch.
    pub fn event(&mut self, root: BuildId) -> Result<&mut EventState, StoreError> {
        if !self.events.contains_key(&root) {
            let record = self.tx.root(root)?.ok_or_else(|| {
                StoreError::Inconsistent(format!("a build names root {root}, which does not exist"))
            })?;
            self.events.insert(
                root,
                EventState {
                    announced: Some(record.summary()),
                    record,
                    members: HashMap::new(),
                    dirty: BTreeMap::new(),
                    record_changed: false,
                },
            );
        }
        Ok(self.events.get_mut(&root).expect("inserted above"))
    }

    /// The record of a root event, for changing its own fields.
    pub fn record_mut(&mut self, root: BuildId) -> Result<&mut RootRecord, StoreError> {
        let event = self.event(root)?;
        event.record_changed = true;
        Ok(&mut event.record)
    }

    /// What the planner says follows from outside changes to an event's nodes and
    /// from deciding the `ready` ones, within the executor's budget of steps.
    pub fn settle(
        &mut self,
        root: BuildId,
        changes: &[(u32, StateKind)],
        ready: &[u32],
    ) -> Result<Settled, StoreError> {
        self.event(root)?;
        let graph: &Graph = self.graph;
        let mut members = Members {
            tx: &self.tx,
            event: self.events.get_mut(&root).expect("loaded above"),
            root,
        };
        planner::settle(&mut members, changes, ready, STEP_BUDGET, &|p| {
            graph.triggerable(p)
        })
    }

    pub fn member(&mut self, root: BuildId, position: u32) -> Result<&Member, StoreError> {
        self.event(root)?;
        let mut members = Members {
            tx: &self.tx,
            event: self.events.get_mut(&root).expect("loaded above"),
            root,
        };
        members.load(position)?;
        Ok(&self.events[&root].members[&position])
    }

    /// Records a member's new value, keeping the event's counts in step.
    pub fn set_member(
        &mut self,
        root: BuildId,
        position: u32,
        member: Member,
    ) -> Result<(), StoreError> {
        let size = self.event(root)?.record.size;
        if position < size {
            // Its old state must be known to move it in the counts.
            self.member(root, position)?;
        }
        let event = self.event(root)?;
        let before = event.members.get(&position).map(|m| m.state);
        let new = position >= size;
        if before != Some(member.state) {
            event.record.count(before, member.state);
            event.record_changed = true;
        }
        if new {
            event.record.size = position + 1;
        }
        *event.dirty.entry(position).or_insert(false) |= new;
        event.members.insert(position, member);
        Ok(())
    }

    /// The events this batch finished, in id order: a cascade that started and whose
    /// every build is now final, its digest not yet queued.
    pub fn finished_events(&self) -> Vec<BuildId> {
        let mut finished: Vec<BuildId> = self
            .events
            .values()
            .filter(|e| {
                e.record_changed
                    && e.record.cascade_started
                    && !e.record.digest_queued
                    && e.record.is_finished()
            })
            .map(|e| e.record.id)
            .collect();
        finished.sort();
        finished
    }

    /// Writes what the batch changed (members, records, and a `root_changed` event
    /// for each event whose summary moved) and hands back what to publish, dispatch
    /// and apply to the readers' graph after the commit.
    pub fn finish(mut self) -> Result<Committed, StoreError> {
        let mut events: Vec<EventState> = self.events.into_values().collect();
        events.sort_by_key(|e| e.record.id);
        for mut event in events {
            if event.record_changed && !event.record.forge.is_empty() {
                let ulids = &mut *self.ulids;
                let queued = super::forges::touch(&mut event.record, self.now, || {
                    BuildId(ulids.generate().unwrap_or_else(|_| ulid::Ulid::new()))
                });
                for entry in queued {
                    self.tx.put_forge(&entry)?;
                    self.forges.push(entry);
                }
            }
            for (&position, &new) in &event.dirty {
                self.tx
                    .put_member(event.record.id, position, &event.members[&position], new)?;
            }
            if event.record_changed {
                self.tx.put_root(&event.record)?;
                let summary = event.record.summary();
                if event.announced.as_ref() != Some(&summary) {
                    self.tx
                        .emit(self.now, Change::RootChanged { root: summary })?;
                }
            }
        }
        let ready_left = self.tx.has_ready()?;
        Ok(Committed {
            ready_left,
            published: self.tx.finish()?,
            queued: self.queued,
            notices: self.notices,
            forges: self.forges,
            graph: self.graph_changes,
        })
    }
}

/// An event's members as the planner reads them, loaded into the batch on first use.
pub(crate) struct Members<'a, 't> {
    tx: &'a WriteTx<'t>,
    event: &'a mut EventState,
    root: BuildId,
}

impl Members<'_, '_> {
    fn load(&mut self, position: u32) -> Result<(), StoreError> {
        if !self.event.members.contains_key(&position) {
            let member = self.tx.member(self.root, position)?.ok_or_else(|| {
                StoreError::Inconsistent(format!(
                    "root {} has no build at position {position}",
                    self.root
                ))
            })?;
            self.event.members.insert(position, member);
        }
        Ok(())
    }
}

impl EventMembers for Members<'_, '_> {
    type Error = StoreError;
    fn member(&mut self, position: u32) -> Result<&Member, StoreError> {
        self.load(position)?;
        Ok(&self.event.members[&position])
    }
}

/// The nodes one command changes in one root event, written (each with its own
/// `node_changed` event) in position order when the command is done.
pub(crate) struct Edit {
    pub root: BuildId,
    /// The event is new in this command: announce it before its nodes.
    created: bool,
    nodes: BTreeMap<u32, Node>,
}

impl Edit {
    pub fn of(root: BuildId) -> Self {
        Self {
            root,
            created: false,
            nodes: BTreeMap::new(),
        }
    }

    pub fn creating(root: BuildId) -> Self {
        Self {
            created: true,
            ..Self::of(root)
        }
    }

    pub fn put(&mut self, position: u32, node: Node) {
        self.nodes.insert(position, node);
    }

    /// The positions of the nodes this command changed, in order.
    pub fn positions(&self) -> Vec<u32> {
        self.nodes.keys().copied().collect()
    }

    /// The node at `position` as this command has it so far.
    pub fn node_mut(
        &mut self,
        work: &mut Work<'_, '_>,
        position: u32,
    ) -> Result<&mut Node, StoreError> {
        if !self.nodes.contains_key(&position) {
            let id = work.member(self.root, position)?.id;
            let node = work.tx.node(id)?.ok_or_else(|| {
                StoreError::Inconsistent(format!("root {} lists missing build {id}", self.root))
            })?;
            self.nodes.insert(position, node);
        }
        Ok(self.nodes.get_mut(&position).expect("inserted above"))
    }

    /// Writes every changed node in position order, each with its `node_changed`
    /// event (after the event's `root_created` when the command created it). Nothing
    /// else: the use case judges verdicts before and records release lines after.
    pub fn write(self, work: &mut Work<'_, '_>) -> Result<Written, StoreError> {
        if self.created {
            let event = work.event(self.root)?;
            let summary = event.record.summary();
            event.announced = Some(summary.clone());
            work.tx
                .emit(work.now, Change::RootCreated { root: summary })?;
        }
        let mut nodes = Vec::with_capacity(self.nodes.len());
        for (position, mut node) in self.nodes {
            work.tx.put_node(work.now, &mut node)?;
            nodes.push((position, node));
        }
        Ok(Written {
            root: self.root,
            nodes,
        })
    }
}

/// The nodes one command wrote, by position, as written.
pub(crate) struct Written {
    root: BuildId,
    pub nodes: Vec<(u32, Node)>,
}

impl Written {
    /// Build `wanted` as it now stands: as written, or as stored when the command did
    /// not change it.
    pub fn node(self, work: &Work<'_, '_>, wanted: BuildId) -> Result<Node, StoreError> {
        match self.nodes.into_iter().find(|(_, node)| node.id == wanted) {
            Some((_, node)) => Ok(node),
            None => work.tx.node(wanted)?.ok_or_else(|| {
                StoreError::Inconsistent(format!(
                    "build {wanted} of {} vanished while it was written",
                    self.root
                ))
            }),
        }
    }
}
