//! The one writer: every change to the store happens here.
//!
//! Requests arrive as [`Command`]s over a channel. The writer thread takes every
//! command waiting, applies them all in one redb write transaction and commits once
//! (group commit), so many concurrent reports share one fsync. Only after the commit
//! does it answer the requests, publish the events to the hub and hand new triggers
//! to the dispatcher: a 2xx answer always means the change is on disk.
//!
//! Each command checks everything that could refuse it before its first write, so a
//! refused command changes nothing even though it shares a transaction with others.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use axum::http::StatusCode;
use conjunction_protocol::project::ProjectUpserted;
use conjunction_protocol::trigger::{ReportEndpoint, TriggerParent, TriggerPayload, TriggerRoot};
use conjunction_protocol::ws::{Change, Event, ServerMessage};
use conjunction_protocol::{
    BlockedBy, BuildId, Node, NodeState, ProjectId, ProjectSpec, Report, ReportAck, Timestamp,
};
use redb::{ReadableTable, Table, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use crate::auth::{generate_token, hash_token};
use crate::error::{project_path, ApiError};
use crate::hub::{Hub, Published};
use crate::planner::{
    accept_report, may_rebuild, next_steps, plan_cascade, EventNode, Graph, RebuildRefusal,
    ReportRefusal, ReportVerdict, Step,
};
use crate::store::{
    decode, encode, Member, OutboxEntry, Principal, Store, StoreError, StoredProject, StoredRoot,
    EVENTS, META, NODES, OUTBOX, PROJECTS, ROOTS, SEQ_KEY, TOKENS,
};

/// Most commands applied in one transaction.
const MAX_BATCH: usize = 1024;
/// Commands that may wait for the writer before senders have to wait too.
const QUEUE_DEPTH: usize = 8192;

type Reply<T> = oneshot::Sender<Result<T, ApiError>>;

/// What the dispatcher learned from one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The CI accepted the trigger.
    Delivered,
    /// The CI refused it, or it stayed unreachable: give up.
    Failed { reason: String },
    /// Try again at `due`; `tries` attempts have been made.
    RetryAt {
        due: Timestamp,
        tries: u32,
        error: String,
    },
}

enum Command {
    UpsertProject {
        id: ProjectId,
        spec: ProjectSpec,
        reply: Reply<(ProjectUpserted, bool)>,
    },
    DeleteProject {
        id: ProjectId,
        reply: Reply<()>,
    },
    Report {
        report: Report,
        principal: Principal,
        reply: Reply<ReportAck>,
    },
    Rebuild {
        build: BuildId,
        reply: Reply<Node>,
    },
    Delivery {
        build: BuildId,
        attempt: u32,
        delivery: Delivery,
        reply: Reply<()>,
    },
}

/// A cheap handle for sending commands to the writer.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Command>,
}

impl WriterHandle {
    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| ApiError::unavailable("the daemon is shutting down; try again shortly"))?;
        answer
            .await
            .map_err(|_| ApiError::unavailable("the daemon is shutting down; try again shortly"))?
    }

    /// Creates or updates a project; `true` when it was created.
    pub async fn upsert_project(
        &self,
        id: ProjectId,
        spec: ProjectSpec,
    ) -> Result<(ProjectUpserted, bool), ApiError> {
        self.call(|reply| Command::UpsertProject { id, spec, reply })
            .await
    }

    pub async fn delete_project(&self, id: ProjectId) -> Result<(), ApiError> {
        self.call(|reply| Command::DeleteProject { id, reply })
            .await
    }

    pub async fn report(
        &self,
        report: Report,
        principal: Principal,
    ) -> Result<ReportAck, ApiError> {
        self.call(|reply| Command::Report {
            report,
            principal,
            reply,
        })
        .await
    }

    pub async fn rebuild(&self, build: BuildId) -> Result<Node, ApiError> {
        self.call(|reply| Command::Rebuild { build, reply }).await
    }

    pub async fn delivery(
        &self,
        build: BuildId,
        attempt: u32,
        delivery: Delivery,
    ) -> Result<(), ApiError> {
        self.call(|reply| Command::Delivery {
            build,
            attempt,
            delivery,
            reply,
        })
        .await
    }
}

/// The running writer thread.
pub struct WriterThread(std::thread::JoinHandle<()>);

impl WriterThread {
    /// Waits for the thread; `false` when it panicked.
    pub fn join(self) -> bool {
        self.0.join().is_ok()
    }
}

/// Signals the end of the writer thread when dropped, also while unwinding.
struct EndSignal(Option<oneshot::Sender<()>>);

impl Drop for EndSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// Starts the writer thread. It runs until every [`WriterHandle`] is dropped, then
/// finishes its last batch and returns. The receiver resolves when the thread ends,
/// however it ends (a panic included).
pub fn spawn(
    store: Store,
    graph: Graph,
    shared_graph: Arc<RwLock<Arc<Graph>>>,
    hub: Hub,
    dispatch: mpsc::UnboundedSender<OutboxEntry>,
    report_url: String,
) -> std::io::Result<(WriterHandle, WriterThread, oneshot::Receiver<()>)> {
    let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
    let (end_tx, gone) = oneshot::channel();
    let writer = Writer {
        store,
        graph,
        shared_graph,
        hub,
        dispatch,
        report_url,
        ulids: ulid::Generator::new(),
    };
    let thread = std::thread::Builder::new()
        .name("conjunction-writer".into())
        .spawn(move || {
            let _end = EndSignal(Some(end_tx));
            writer.run(rx);
        })?;
    Ok((WriterHandle { tx }, WriterThread(thread), gone))
}

struct Writer {
    store: Store,
    graph: Graph,
    shared_graph: Arc<RwLock<Arc<Graph>>>,
    hub: Hub,
    dispatch: mpsc::UnboundedSender<OutboxEntry>,
    report_url: String,
    ulids: ulid::Generator,
}

/// What a committed batch hands on.
struct Committed {
    published: Vec<Published>,
    queued: Vec<OutboxEntry>,
}

/// Sends a command's answer once the batch's fate is known.
type Answer = Box<dyn FnOnce(Option<&ApiError>) + Send>;

fn answer<T: Send + 'static>(reply: Reply<T>, result: Result<T, ApiError>) -> Answer {
    Box::new(move |failure| {
        let _ = reply.send(match failure {
            Some(e) => Err(e.clone()),
            None => result,
        });
    })
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(first) = rx.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(c) => batch.push(c),
                    Err(_) => break,
                }
            }
            self.commit_batch(batch);
        }
        tracing::debug!("writer stopped: no more senders");
    }

    fn commit_batch(&mut self, batch: Vec<Command>) {
        let mut graph_before: Option<Graph> = None;
        let mut answers: Vec<Answer> = Vec::with_capacity(batch.len());
        let result = (|| -> Result<Committed, StoreError> {
            let txn = self.store.database().begin_write()?;
            let (published, queued) = {
                let mut tx = Tx::open(&txn)?;
                for command in batch {
                    answers.push(self.execute(&mut tx, command, &mut graph_before)?);
                }
                tx.finish()?;
                (tx.published, tx.queued)
            };
            txn.commit()?;
            Ok(Committed { published, queued })
        })();
        match result {
            Ok(Committed { published, queued }) => {
                if graph_before.is_some() {
                    if let Ok(mut shared) = self.shared_graph.write() {
                        *shared = Arc::new(self.graph.clone());
                    }
                }
                self.hub.publish(published);
                for entry in queued {
                    // The dispatcher is gone only during shutdown; the entry stays in the
                    // outbox and is delivered after the next start.
                    let _ = self.dispatch.send(entry);
                }
                for a in answers {
                    a(None);
                }
            }
            Err(e) => {
                if let Some(g) = graph_before {
                    self.graph = g;
                }
                let failure = ApiError::from(e);
                for a in answers {
                    a(Some(&failure));
                }
            }
        }
    }

    fn execute(
        &mut self,
        tx: &mut Tx<'_>,
        command: Command,
        graph_before: &mut Option<Graph>,
    ) -> Result<Answer, StoreError> {
        Ok(match command {
            Command::UpsertProject { id, spec, reply } => {
                let r = self.upsert_project(tx, id, spec, graph_before)?;
                answer(reply, r)
            }
            Command::DeleteProject { id, reply } => {
                let r = self.delete_project(tx, &id, graph_before)?;
                answer(reply, r)
            }
            Command::Report {
                report,
                principal,
                reply,
            } => {
                let r = self.report(tx, report, principal)?;
                answer(reply, r)
            }
            Command::Rebuild { build, reply } => {
                let r = self.rebuild(tx, build)?;
                answer(reply, r)
            }
            Command::Delivery {
                build,
                attempt,
                delivery,
                reply,
            } => {
                self.delivery(tx, build, attempt, delivery)?;
                answer(reply, Ok(()))
            }
        })
    }

    fn upsert_project(
        &mut self,
        tx: &mut Tx<'_>,
        id: ProjectId,
        spec: ProjectSpec,
        graph_before: &mut Option<Graph>,
    ) -> Result<Result<(ProjectUpserted, bool), ApiError>, StoreError> {
        let existing = tx.project(&id)?;
        let mut generated = None;
        let token_hash = match (&spec.report_token, &existing) {
            (Some(t), _) => hash_token(t),
            (None, Some(p)) => decode_hash(&p.report_token_sha256),
            (None, None) => {
                let t = generate_token("cjr");
                let h = hash_token(&t);
                generated = Some(t);
                h
            }
        };
        if let Some(owner) = tx.token_owner(&token_hash)? {
            if owner
                != (Principal::Project {
                    project: id.clone(),
                })
            {
                return Ok(Err(ApiError::conflict(
                    "token_in_use",
                    "this report_token is already in use; choose another one or leave it out to have one generated",
                )));
            }
        }
        let now = tx.now;
        let stored = StoredProject {
            id: id.clone(),
            name: spec.name,
            contacts: spec.contacts,
            depends_on: spec.depends_on,
            trigger: spec.trigger,
            package: spec.package,
            report_token_sha256: hex::encode(token_hash),
            created_at: existing.as_ref().map_or(now, |p| p.created_at),
            updated_at: now,
        };
        let outcome = match &existing {
            None => "created",
            Some(p) if p.same_settings(&stored) => "unchanged",
            Some(_) => "updated",
        };
        let view = if outcome == "unchanged" {
            existing
                .as_ref()
                .map_or_else(|| stored.view(), StoredProject::view)
        } else {
            if let Some(old) = &existing {
                if old.report_token_sha256 != stored.report_token_sha256 {
                    tx.tokens
                        .remove(decode_hash(&old.report_token_sha256).as_slice())?;
                }
            }
            tx.tokens.insert(
                token_hash.as_slice(),
                encode(&Principal::Project {
                    project: id.clone(),
                })
                .as_slice(),
            )?;
            tx.projects
                .insert(id.as_str(), encode(&stored).as_slice())?;
            graph_before.get_or_insert_with(|| self.graph.clone());
            self.graph
                .set_upstreams(&id, stored.depends_on.iter().map(|d| d.project.clone()));
            let view = stored.view();
            tx.emit(Change::ProjectUpserted {
                project: view.clone(),
            })?;
            view
        };
        let mut warnings = Vec::new();
        if let Some(cycle) = self.graph.cycle_through(&id) {
            let path: Vec<&str> = cycle.iter().map(ProjectId::as_str).collect();
            warnings.push(format!("dependency cycle: {}", path.join(" -> ")));
        }
        for d in &view.depends_on {
            if !tx.has_project(&d.project)? {
                warnings.push(format!(
                    "{} is not registered yet; {id} will be triggered by it once it is registered and reports",
                    d.project
                ));
            }
        }
        Ok(Ok((
            ProjectUpserted {
                project: view,
                outcome: outcome.to_owned(),
                report_token: generated,
                warnings,
            },
            outcome == "created",
        )))
    }

    fn delete_project(
        &mut self,
        tx: &mut Tx<'_>,
        id: &ProjectId,
        graph_before: &mut Option<Graph>,
    ) -> Result<Result<(), ApiError>, StoreError> {
        let Some(existing) = tx.project(id)? else {
            return Ok(Err(ApiError::unknown_project(id)));
        };
        tx.projects.remove(id.as_str())?;
        tx.tokens
            .remove(decode_hash(&existing.report_token_sha256).as_slice())?;
        graph_before.get_or_insert_with(|| self.graph.clone());
        self.graph.remove(id);
        tx.emit(Change::ProjectDeleted {
            project: id.clone(),
        })?;
        Ok(Ok(()))
    }

    fn report(
        &mut self,
        tx: &mut Tx<'_>,
        report: Report,
        principal: Principal,
    ) -> Result<Result<ReportAck, ApiError>, StoreError> {
        match report.build {
            None => self.root_report(tx, report, principal),
            Some(build) => self.node_report(tx, build, report, principal),
        }
    }

    fn root_report(
        &mut self,
        tx: &mut Tx<'_>,
        report: Report,
        principal: Principal,
    ) -> Result<Result<ReportAck, ApiError>, StoreError> {
        match &principal {
            Principal::Project { project } if *project == report.project => {}
            Principal::Project { project } => {
                return Ok(Err(ApiError::forbidden(format!(
                    "this report token belongs to {project}, not {}",
                    report.project
                ))))
            }
            Principal::Build { build, .. } => {
                return Ok(Err(ApiError::forbidden(format!(
                    "this token is scoped to build {build}; a root report needs the project's report token"
                ))))
            }
        }
        if !tx.has_project(&report.project)? {
            return Ok(Err(ApiError::unknown_project(&report.project)));
        }
        let now = tx.now;
        let id = BuildId(self.next_ulid());
        let state = report.state.to_node_state();
        let node = Node {
            id,
            project: report.project.clone(),
            root: id,
            parents: Vec::new(),
            attempt: 1,
            state: state.clone(),
            version: report.version.clone(),
            commit: report.commit.clone(),
            git_ref: report.git_ref.clone(),
            url: report.url.clone(),
            summary: report.summary.clone(),
            metadata: report.metadata.clone(),
            created_at: now,
            triggered_at: None,
            started_at: (!state.kind().is_final()).then_some(now),
            finished_at: state.kind().is_final().then_some(now),
            seq: 0,
        };
        let root = StoredRoot {
            id,
            project: report.project.clone(),
            version: report.version,
            commit: report.commit,
            git_ref: report.git_ref,
            created_at: now,
            notes: Vec::new(),
            cascade_started: false,
            members: vec![Member {
                id,
                project: report.project,
                parents: Vec::new(),
                state: state.kind(),
                blocked_by: None,
            }],
        };
        let mut work = EventWork::new(root);
        work.created = true;
        work.put(0, node);
        if state == NodeState::Passed {
            self.start_cascade(tx, &mut work)?;
        }
        let node = work.flush(tx, id)?;
        Ok(Ok(ack(&node)))
    }

    fn node_report(
        &mut self,
        tx: &mut Tx<'_>,
        build: BuildId,
        report: Report,
        principal: Principal,
    ) -> Result<Result<ReportAck, ApiError>, StoreError> {
        let Some(node) = tx.node(build)? else {
            return Ok(Err(ApiError::unknown_build(build)));
        };
        let attempt = match &principal {
            Principal::Project { project } if *project != node.project => {
                return Ok(Err(ApiError::forbidden(format!(
                    "this report token belongs to {project}; build {build} is a build of {}",
                    node.project
                ))))
            }
            Principal::Project { .. } => report.attempt.unwrap_or(node.attempt),
            Principal::Build { build: scoped, .. } if *scoped != build => {
                return Ok(Err(ApiError::forbidden(format!(
                    "this token is scoped to build {scoped}, not {build}"
                ))))
            }
            Principal::Build { attempt, .. } if report.attempt.is_some_and(|a| a != *attempt) => {
                return Ok(Err(ApiError::forbidden(format!(
                    "this token is scoped to attempt {attempt} of build {build}"
                ))))
            }
            Principal::Build { attempt, .. } => *attempt,
        };
        if report.project != node.project {
            return Ok(Err(ApiError::bad_request(
                "project_mismatch",
                format!(
                    "build {build} belongs to {}, but the report names {}",
                    node.project, report.project
                ),
            )));
        }
        match accept_report(node.state.kind(), node.attempt, attempt, report.state) {
            Err(refusal) => return Ok(Err(report_refusal(refusal))),
            Ok(ReportVerdict::Duplicate) => return Ok(Ok(ack(&node))),
            Ok(ReportVerdict::Apply) => {}
        }
        let now = tx.now;
        let mut updated = node.clone();
        updated.state = report.state.to_node_state();
        if report.state.is_final() {
            updated.finished_at = Some(now);
        } else if updated.started_at.is_none() {
            updated.started_at = Some(now);
        }
        for (field, value) in [
            (&mut updated.version, report.version),
            (&mut updated.commit, report.commit),
            (&mut updated.git_ref, report.git_ref),
            (&mut updated.url, report.url),
            (&mut updated.summary, report.summary),
        ] {
            if value.is_some() {
                *field = value;
            }
        }
        updated.metadata.extend(report.metadata);
        if updated == node {
            return Ok(Ok(ack(&node)));
        }
        let (mut work, i) = EventWork::containing(tx, &node)?;
        if i == 0
            && (work.root.version != updated.version
                || work.root.commit != updated.commit
                || work.root.git_ref != updated.git_ref)
        {
            work.root.version.clone_from(&updated.version);
            work.root.commit.clone_from(&updated.commit);
            work.root.git_ref.clone_from(&updated.git_ref);
            work.header_changed = true;
        }
        let passed_root =
            i == 0 && updated.state == NodeState::Passed && !work.root.cascade_started;
        work.put(i, updated);
        if passed_root {
            self.start_cascade(tx, &mut work)?;
        } else if report.state.is_final() {
            self.settle(tx, &mut work)?;
        }
        let node = work.flush(tx, build)?;
        Ok(Ok(ack(&node)))
    }

    fn rebuild(
        &mut self,
        tx: &mut Tx<'_>,
        build: BuildId,
    ) -> Result<Result<Node, ApiError>, StoreError> {
        let Some(node) = tx.node(build)? else {
            return Ok(Err(ApiError::unknown_build(build)));
        };
        if let Err(refusal) = may_rebuild(node.state.kind()) {
            let code = match refusal {
                RebuildRefusal::InProgress(_) => "in_progress",
                RebuildRefusal::Blocked => "blocked",
                RebuildRefusal::Skipped => "in_cycle",
            };
            return Ok(Err(ApiError::conflict(code, refusal.to_string())));
        }
        match tx.project(&node.project)? {
            None => {
                return Ok(Err(ApiError::conflict(
                    "project_gone",
                    format!(
                        "{} is no longer registered, so it cannot be triggered",
                        node.project
                    ),
                )))
            }
            Some(p) if p.trigger.is_none() => {
                return Ok(Err(ApiError::conflict(
                    "no_trigger",
                    format!(
                        "{} has no trigger configured; add one with PUT {}",
                        node.project,
                        project_path(&node.project)
                    ),
                )))
            }
            Some(_) => {}
        }
        let (mut work, i) = EventWork::containing(tx, &node)?;
        let mut next = node;
        next.attempt += 1;
        next.state = NodeState::Pending;
        next.url = None;
        next.summary = None;
        next.triggered_at = None;
        next.started_at = None;
        next.finished_at = None;
        if i != 0 {
            next.version = None;
            next.commit = None;
            next.git_ref = None;
            next.metadata.clear();
        }
        work.put(i, next);
        self.queue(tx, &mut work, i)?;
        self.settle(tx, &mut work)?;
        Ok(Ok(work.flush(tx, build)?))
    }

    fn delivery(
        &mut self,
        tx: &mut Tx<'_>,
        build: BuildId,
        attempt: u32,
        delivery: Delivery,
    ) -> Result<(), StoreError> {
        let Some(mut entry) = tx.outbox_entry(build)? else {
            return Ok(());
        };
        if entry.attempt != attempt {
            return Ok(());
        }
        let now = tx.now;
        let new_state = match delivery {
            Delivery::RetryAt { due, tries, error } => {
                entry.due = due;
                entry.tries = tries;
                entry.last_error = Some(error);
                tx.outbox.insert(build.0 .0, encode(&entry).as_slice())?;
                return Ok(());
            }
            Delivery::Delivered => None,
            Delivery::Failed { reason } => Some(NodeState::TriggerFailed { reason }),
        };
        tx.outbox.remove(build.0 .0)?;
        let Some(node) = tx.node(build)? else {
            return Ok(());
        };
        if node.attempt != attempt {
            return Ok(());
        }
        let (mut work, i) = EventWork::containing(tx, &node)?;
        let mut updated = node.clone();
        match new_state {
            None => {
                if updated.state == NodeState::Queued {
                    updated.state = NodeState::Triggered;
                }
                updated.triggered_at.get_or_insert(now);
            }
            Some(failed) => {
                if matches!(updated.state, NodeState::Queued | NodeState::Triggered) {
                    updated.state = failed;
                    updated.finished_at = Some(now);
                }
            }
        }
        if updated == node {
            return Ok(());
        }
        let ended = updated.state.kind().is_final();
        work.put(i, updated);
        if ended {
            self.settle(tx, &mut work)?;
        }
        work.flush(tx, build)?;
        Ok(())
    }

    /// Plans the dependents of a root that just passed and queues the ready ones.
    fn start_cascade(&mut self, tx: &mut Tx<'_>, work: &mut EventWork) -> Result<(), StoreError> {
        let plan = plan_cascade(&self.graph, &work.root.project);
        work.root.notes = plan.notes;
        work.root.cascade_started = true;
        work.header_changed = true;
        let mut ids = vec![work.root.id];
        for _ in 1..plan.nodes.len() {
            ids.push(BuildId(self.next_ulid()));
        }
        for (i, planned) in plan.nodes.into_iter().enumerate().skip(1) {
            let state = match planned.cycle {
                Some(cycle) => NodeState::Skipped { cycle },
                None => NodeState::Pending,
            };
            work.root.members.push(Member {
                id: ids[i],
                project: planned.project.clone(),
                parents: planned.parents.iter().map(|&p| p as u32).collect(),
                state: state.kind(),
                blocked_by: None,
            });
            let mut node = Node::new(
                ids[i],
                planned.project,
                work.root.id,
                planned.parents.iter().map(|&p| ids[p]).collect(),
                state,
                tx.now,
            );
            if node.state.kind().is_final() {
                node.finished_at = Some(tx.now);
            }
            work.put(i, node);
        }
        self.settle(tx, work)
    }

    /// Applies the planner's steps until the event is quiet.
    fn settle(&mut self, tx: &mut Tx<'_>, work: &mut EventWork) -> Result<(), StoreError> {
        for _ in 0..work.root.members.len() + 2 {
            let view: Vec<EventNode> = work
                .root
                .members
                .iter()
                .map(|m| EventNode {
                    state: m.state,
                    blocked_by: m.blocked_by.map(|b| b as usize),
                    parents: m.parents.iter().map(|&p| p as usize).collect(),
                })
                .collect();
            let steps = next_steps(&view);
            if steps.is_empty() {
                return Ok(());
            }
            for (i, step) in steps {
                match step {
                    Step::Queue => self.queue(tx, work, i)?,
                    Step::Block { by } => {
                        let parent = &work.root.members[by];
                        let state = NodeState::Blocked {
                            blocked_by: BlockedBy {
                                build: parent.id,
                                project: parent.project.clone(),
                                state: parent.state,
                            },
                        };
                        let now = tx.now;
                        work.set_state(tx, i, state)?.finished_at = Some(now);
                        work.root.members[i].blocked_by = Some(by as u32);
                    }
                    Step::Unblock => {
                        work.set_state(tx, i, NodeState::Pending)?.finished_at = None;
                    }
                }
            }
        }
        tracing::warn!(root = %work.root.id, "planning did not settle; leaving the event as it is");
        Ok(())
    }

    /// Puts node `i`'s trigger in the outbox, or fails it when there is nothing to trigger.
    fn queue(&mut self, tx: &mut Tx<'_>, work: &mut EventWork, i: usize) -> Result<(), StoreError> {
        let member = work.root.members[i].clone();
        let trigger_missing = match tx.project(&member.project)? {
            None => Some(format!("{} is no longer registered", member.project)),
            Some(p) if p.trigger.is_none() => {
                Some(format!("{} has no trigger configured", member.project))
            }
            Some(_) => None,
        };
        let now = tx.now;
        if let Some(reason) = trigger_missing {
            work.set_state(tx, i, NodeState::TriggerFailed { reason })?
                .finished_at = Some(now);
            return Ok(());
        }
        let token = generate_token("cjb");
        let parents = member
            .parents
            .iter()
            .map(|&p| {
                let m = &work.root.members[p as usize];
                TriggerParent {
                    build: m.id,
                    project: m.project.clone(),
                }
            })
            .collect();
        let root = TriggerRoot {
            build: work.root.id,
            project: work.root.project.clone(),
            version: work.root.version.clone(),
            commit: work.root.commit.clone(),
        };
        let attempt = work.set_state(tx, i, NodeState::Queued)?.attempt;
        let payload = TriggerPayload {
            build: member.id,
            attempt,
            project: member.project.clone(),
            root,
            parents,
            report: ReportEndpoint {
                url: self.report_url.clone(),
                token,
            },
        };
        tx.tokens.insert(
            hash_token(&payload.report.token).as_slice(),
            encode(&Principal::Build {
                build: member.id,
                attempt,
            })
            .as_slice(),
        )?;
        let entry = OutboxEntry {
            build: member.id,
            attempt,
            project: member.project,
            payload,
            tries: 0,
            due: now,
            last_error: None,
        };
        tx.outbox
            .insert(member.id.0 .0, encode(&entry).as_slice())?;
        tx.queued.push(entry);
        Ok(())
    }

    fn next_ulid(&mut self) -> ulid::Ulid {
        // The generator refuses only when 2^80 ids were made in one millisecond.
        self.ulids.generate().unwrap_or_else(|_| ulid::Ulid::new())
    }
}

/// The nodes of one event that a command reads and changes, written back by `flush`.
struct EventWork {
    root: StoredRoot,
    nodes: BTreeMap<usize, Node>,
    dirty: BTreeSet<usize>,
    /// The root event is new in this command.
    created: bool,
    /// The root event's own fields (not its members) changed.
    header_changed: bool,
}

impl EventWork {
    fn new(root: StoredRoot) -> Self {
        Self {
            root,
            nodes: BTreeMap::new(),
            dirty: BTreeSet::new(),
            created: false,
            header_changed: false,
        }
    }

    /// The event `node` belongs to, and the node's index in it.
    fn containing(tx: &Tx<'_>, node: &Node) -> Result<(Self, usize), StoreError> {
        let root = match tx.root_cache.get(&node.root) {
            Some(cached) => cached.clone(),
            None => {
                let found = tx.roots.get(node.root.0 .0)?;
                let Some(root) = found.map(|g| decode::<StoredRoot>(g.value())).transpose()? else {
                    return Err(StoreError::Inconsistent(format!(
                        "build {} names root {}, which does not exist",
                        node.id, node.root
                    )));
                };
                root
            }
        };
        let Some(i) = root.index_of(node.id) else {
            return Err(StoreError::Inconsistent(format!(
                "root {} does not list its build {}",
                node.root, node.id
            )));
        };
        Ok((Self::new(root), i))
    }

    /// Replaces node `i` with `node`, keeping the event's index in step.
    fn put(&mut self, i: usize, node: Node) {
        self.root.members[i].state = node.state.kind();
        self.nodes.insert(i, node);
        self.dirty.insert(i);
    }

    /// Sets node `i`'s state (and the index's), clearing any blocker, and returns the
    /// node for further changes.
    fn set_state(
        &mut self,
        tx: &Tx<'_>,
        i: usize,
        state: NodeState,
    ) -> Result<&mut Node, StoreError> {
        self.root.members[i].state = state.kind();
        self.root.members[i].blocked_by = None;
        let node = self.node_mut(tx, i)?;
        node.state = state;
        Ok(node)
    }

    /// Node `i`, read on first use and marked as changed.
    fn node_mut(&mut self, tx: &Tx<'_>, i: usize) -> Result<&mut Node, StoreError> {
        self.dirty.insert(i);
        if !self.nodes.contains_key(&i) {
            let id = self.root.members[i].id;
            let node = tx.node(id)?.ok_or_else(|| {
                StoreError::Inconsistent(format!("root {} lists missing build {id}", self.root.id))
            })?;
            self.nodes.insert(i, node);
        }
        Ok(self.nodes.get_mut(&i).expect("inserted above"))
    }

    /// Writes every changed node (one event each, parents first) and the root record,
    /// and returns node `wanted` as written.
    fn flush(mut self, tx: &mut Tx<'_>, wanted: BuildId) -> Result<Node, StoreError> {
        if self.created {
            tx.emit(Change::RootCreated {
                root: self.root.summary(),
            })?;
        } else if self.header_changed {
            tx.emit(Change::RootChanged {
                root: self.root.summary(),
            })?;
        }
        let mut found = None;
        for i in std::mem::take(&mut self.dirty) {
            let Some(mut node) = self.nodes.remove(&i) else {
                continue;
            };
            node.seq = tx.next_seq();
            tx.nodes.insert(node.id.0 .0, encode(&node).as_slice())?;
            tx.emit_at(node.seq, Change::NodeChanged { node: node.clone() })?;
            if node.id == wanted {
                found = Some(node);
            }
        }
        tx.root_cache.insert(self.root.id, self.root);
        match found {
            Some(n) => Ok(n),
            None => tx.node(wanted)?.ok_or_else(|| {
                StoreError::Inconsistent(format!("build {wanted} vanished while it was written"))
            }),
        }
    }
}

/// The open tables of one write transaction and what it will publish after commit.
struct Tx<'t> {
    meta: Table<'t, &'static str, u64>,
    projects: Table<'t, &'static str, &'static [u8]>,
    nodes: Table<'t, u128, &'static [u8]>,
    roots: Table<'t, u128, &'static [u8]>,
    events: Table<'t, u64, &'static str>,
    outbox: Table<'t, u128, &'static [u8]>,
    tokens: Table<'t, &'static [u8], &'static [u8]>,
    seq: u64,
    now: Timestamp,
    published: Vec<Published>,
    queued: Vec<OutboxEntry>,
    /// Root records changed in this batch, written once at its end: a batch of many
    /// reports about one large event then encodes its index once, not once per report.
    root_cache: HashMap<BuildId, StoredRoot>,
}

impl<'t> Tx<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self, StoreError> {
        let meta = txn.open_table(META)?;
        let seq = meta.get(SEQ_KEY)?.map_or(0, |g| g.value());
        Ok(Self {
            meta,
            projects: txn.open_table(PROJECTS)?,
            nodes: txn.open_table(NODES)?,
            roots: txn.open_table(ROOTS)?,
            events: txn.open_table(EVENTS)?,
            outbox: txn.open_table(OUTBOX)?,
            tokens: txn.open_table(TOKENS)?,
            seq,
            now: Timestamp::from_system_time(SystemTime::now()),
            published: Vec::new(),
            queued: Vec::new(),
            root_cache: HashMap::new(),
        })
    }

    /// Writes the batch's changed root records and the sequence number.
    fn finish(&mut self) -> Result<(), StoreError> {
        for (id, root) in self.root_cache.drain() {
            self.roots.insert(id.0 .0, encode(&root).as_slice())?;
        }
        self.meta.insert(SEQ_KEY, self.seq)?;
        Ok(())
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn emit(&mut self, change: Change) -> Result<u64, StoreError> {
        let seq = self.next_seq();
        self.emit_at(seq, change)?;
        Ok(seq)
    }

    fn emit_at(&mut self, seq: u64, change: Change) -> Result<(), StoreError> {
        let message = ServerMessage::Event(Box::new(Event {
            seq,
            at: self.now,
            change,
        }));
        let json: Arc<str> = serde_json::to_string(&message)?.into();
        self.events.insert(seq, &*json)?;
        self.published.push((seq, json));
        Ok(())
    }

    fn project(&self, id: &ProjectId) -> Result<Option<StoredProject>, StoreError> {
        let found = self.projects.get(id.as_str())?;
        found.map(|g| decode(g.value())).transpose()
    }

    fn has_project(&self, id: &ProjectId) -> Result<bool, StoreError> {
        Ok(self.projects.get(id.as_str())?.is_some())
    }

    fn node(&self, id: BuildId) -> Result<Option<Node>, StoreError> {
        let found = self.nodes.get(id.0 .0)?;
        found.map(|g| decode(g.value())).transpose()
    }

    fn outbox_entry(&self, id: BuildId) -> Result<Option<OutboxEntry>, StoreError> {
        let found = self.outbox.get(id.0 .0)?;
        found.map(|g| decode(g.value())).transpose()
    }

    fn token_owner(&self, hash: &[u8; 32]) -> Result<Option<Principal>, StoreError> {
        let found = self.tokens.get(hash.as_slice())?;
        found.map(|g| decode(g.value())).transpose()
    }
}

fn ack(node: &Node) -> ReportAck {
    ReportAck {
        build: node.id,
        root: node.root,
        attempt: node.attempt,
        state: node.state.kind(),
        seq: node.seq,
    }
}

fn decode_hash(hex_hash: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    // Written by this module from a 32-byte hash; anything else reads as no token.
    let _ = hex::decode_to_slice(hex_hash, &mut out);
    out
}

fn report_refusal(refusal: ReportRefusal) -> ApiError {
    let code = match refusal {
        ReportRefusal::StaleAttempt { .. } => "stale_attempt",
        ReportRefusal::FutureAttempt { .. } => "unknown_attempt",
        ReportRefusal::NotTriggered { .. } => "not_triggered",
        ReportRefusal::AlreadyFinal { .. } => "already_final",
    };
    ApiError::new(StatusCode::CONFLICT, code, refusal.to_string())
}
