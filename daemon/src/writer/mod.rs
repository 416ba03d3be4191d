//! The one writer: every change to the store happens here.
//!
//! Requests arrive as commands over a channel. The writer thread takes every command
//! waiting, applies them all in one write transaction and commits once (group
//! commit), so many concurrent reports share one fsync. Only after the commit does it
//! answer the requests, publish the events to the hub and hand new triggers to the
//! dispatcher: a 2xx answer always means the change is on disk.
//!
//! Each use case has its own file ([`projects`], [`reports`], [`rebuilds`],
//! [`deliveries`]) and checks everything that could refuse it before its first write,
//! so a refused command changes nothing even though it shares a transaction with
//! others. [`cascade`] carries out what the planner decides; [`work`] is the unit of
//! work of one batch. The writer speaks domain types only: a refusal is a
//! [`Refusal`], and the API decides how to say it over HTTP.

mod candidates;
mod cascade;
mod clock;
mod deliveries;
mod forges;
mod hooks;
mod lines;
mod manifests;
mod notices;
mod projects;
mod rebuilds;
mod reports;
mod retention;
mod tokens;
mod verdicts;
mod work;

use std::sync::{Arc, RwLock};

use conjunction_protocol::audit::Actor;
use conjunction_protocol::project::ProjectUpserted;
use conjunction_protocol::{
    BuildId, Node, ProjectEntry, ProjectId, ProjectSpec, Report, ReportAck,
};
use tokio::sync::{mpsc, oneshot};

use crate::auth::{BuildTokens, Caller};
use crate::health::{Fault, Health};
use crate::hub::Hub;
use crate::planner::{Environments, Graph, Principal, Refusal};
use crate::store::{ForgeEntry, NoticeEntry, OutboxEntry, Store, StoreError, WriteTx};

pub use clock::Clock;
pub use deliveries::{prepare_outbox, Delivery};
pub use forges::ForgeOutcome;
pub use hooks::{Heard, News, Via};
pub use notices::NoticeOutcome;
pub use retention::Pruned;
use work::{Committed, Work};

/// Most commands applied in one transaction.
const MAX_BATCH: usize = 1024;
/// Commands that may wait for the writer before senders have to wait too.
const QUEUE_DEPTH: usize = 8192;

/// The dependency graph as last committed, for readers. The writer changes it in
/// place after each commit; a reader clones the `Arc` and lets go of the lock at once.
pub type SharedGraph = Arc<RwLock<Arc<Graph>>>;

/// Why a command did not take effect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Entries of a list were refused; nothing of the list was applied.
    #[error("{} of the entries were refused", .0.len())]
    RefusedEntries(Vec<EntryRefusal>),
    #[error("the database could not be written")]
    Storage,
    /// On PostgreSQL: this daemon does not hold the writer's role now.
    #[error("this daemon does not hold the writer's role now")]
    NotWriter,
    #[error("the daemon is shutting down")]
    Unavailable,
}

/// One refused entry of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRefusal {
    /// The entry's place in the list as the client sent it.
    pub index: usize,
    pub project: ProjectId,
    pub refusal: Refusal,
}

type Reply<T> = oneshot::Sender<Result<T, WriteError>>;

enum Command {
    ApplyProjects {
        entries: Vec<(usize, ProjectEntry)>,
        commit: bool,
        by: Actor,
        reply: Reply<Vec<(ProjectUpserted, bool)>>,
    },
    DeleteProject {
        id: ProjectId,
        by: Actor,
        reply: Reply<()>,
    },
    RotateReportToken {
        id: ProjectId,
        by: Actor,
        reply: Reply<String>,
    },
    Report {
        // Boxed: a report is the largest command by far, and most commands are
        // smaller ones queued beside it.
        report: Box<Report>,
        principal: Principal,
        /// Who the audit trail names for a root report, when not the principal's
        /// token (a CI identity).
        by: Option<Actor>,
        reply: Reply<ReportAck>,
    },
    Rebuild {
        build: BuildId,
        by: Actor,
        reply: Reply<Node>,
    },
    Delivery {
        build: BuildId,
        attempt: u32,
        delivery: Delivery,
        reply: Reply<()>,
    },
    News {
        news: Box<News>,
        reply: Reply<Heard>,
    },
    Notice {
        id: BuildId,
        outcome: NoticeOutcome,
        reply: Reply<()>,
    },
    Forge {
        id: BuildId,
        outcome: ForgeOutcome,
        reply: Reply<Option<ForgeEntry>>,
    },
    /// A pull or merge request was closed or merged: its live candidate ends.
    CloseChange {
        project: ProjectId,
        ids: Vec<String>,
        why: String,
        reply: Reply<Option<BuildId>>,
    },
    /// Answered once a batch holding it has committed: the writer's pulse.
    Ping { reply: Reply<()> },
    IssueToken {
        request: conjunction_protocol::access::TokenRequest,
        by: Caller,
        reply: Reply<conjunction_protocol::access::TokenIssued>,
    },
    RevokeToken {
        id: String,
        by: Caller,
        reply: Reply<conjunction_protocol::access::TokenInfo>,
    },
    /// When people's tokens (by id) were last used.
    TokensUsed {
        used: Vec<(String, conjunction_protocol::Timestamp)>,
        reply: Reply<()>,
    },
    /// One step of retention.
    Prune {
        cutoff: conjunction_protocol::Timestamp,
        keep_per_upstream: usize,
        cursor: Option<BuildId>,
        reply: Reply<Pruned>,
    },
}

/// A cheap handle for sending commands to the writer.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Command>,
}

impl WriterHandle {
    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| WriteError::Unavailable)?;
        answer.await.map_err(|_| WriteError::Unavailable)?
    }

    /// Creates or updates a project; `true` when it was created.
    pub async fn upsert_project(
        &self,
        id: ProjectId,
        spec: ProjectSpec,
        by: Actor,
    ) -> Result<(ProjectUpserted, bool), WriteError> {
        let entries = vec![(0, ProjectEntry { id, spec })];
        let mut applied = self
            .call(|reply| Command::ApplyProjects {
                entries,
                commit: true,
                by,
                reply,
            })
            .await
            .map_err(|e| match e {
                // One entry: its refusal is the answer.
                WriteError::RefusedEntries(mut refused) if refused.len() == 1 => {
                    WriteError::Refused(refused.remove(0).refusal)
                }
                other => other,
            })?;
        applied.pop().ok_or(WriteError::Storage)
    }

    /// Creates or updates every project of a list in one transaction, or none of
    /// them: the refusal names every entry that was refused. With `commit` false the
    /// list is only checked (the caller already found entries it must refuse) and
    /// nothing is applied.
    pub async fn apply_projects(
        &self,
        entries: Vec<(usize, ProjectEntry)>,
        commit: bool,
        by: Actor,
    ) -> Result<Vec<(ProjectUpserted, bool)>, WriteError> {
        self.call(|reply| Command::ApplyProjects {
            entries,
            commit,
            by,
            reply,
        })
        .await
    }

    /// Replaces `id`'s report token with a generated one, answered this once.
    pub async fn rotate_report_token(
        &self,
        id: ProjectId,
        by: Actor,
    ) -> Result<String, WriteError> {
        self.call(|reply| Command::RotateReportToken { id, by, reply })
            .await
    }

    pub async fn delete_project(&self, id: ProjectId, by: Actor) -> Result<(), WriteError> {
        self.call(|reply| Command::DeleteProject { id, by, reply })
            .await
    }

    pub async fn report(
        &self,
        report: Report,
        principal: Principal,
        by: Option<Actor>,
    ) -> Result<ReportAck, WriteError> {
        self.call(|reply| Command::Report {
            report: Box::new(report),
            principal,
            by,
            reply,
        })
        .await
    }

    pub async fn rebuild(&self, build: BuildId, by: Actor) -> Result<Node, WriteError> {
        self.call(|reply| Command::Rebuild { build, by, reply })
            .await
    }

    /// Hears news of a native CI run: from its webhook (once per delivery), or from
    /// asking its API.
    pub async fn news(&self, news: News) -> Result<Heard, WriteError> {
        self.call(|reply| Command::News {
            news: Box::new(news),
            reply,
        })
        .await
    }

    /// Ends the live candidate of `project`'s change known by any of `ids`, whose
    /// request was closed or merged; answers the event it ended.
    pub async fn close_change(
        &self,
        project: ProjectId,
        ids: Vec<String>,
        why: String,
    ) -> Result<Option<BuildId>, WriteError> {
        self.call(|reply| Command::CloseChange {
            project,
            ids,
            why,
            reply,
        })
        .await
    }

    pub async fn delivery(
        &self,
        build: BuildId,
        attempt: u32,
        delivery: Delivery,
    ) -> Result<(), WriteError> {
        self.call(|reply| Command::Delivery {
            build,
            attempt,
            delivery,
            reply,
        })
        .await
    }
}

impl WriterHandle {
    /// Answers once the writer has committed a batch with this request in it: proof
    /// that it is alive and its commits go through.
    pub async fn ping(&self) -> Result<(), WriteError> {
        self.call(|reply| Command::Ping { reply }).await
    }

    /// Removes, in one small step, what retention no longer keeps: finished root events
    /// created before `cutoff` (but the last `keep_per_upstream` of each upstream)
    /// after `cursor`, and events of the log written before it.
    pub async fn prune(
        &self,
        cutoff: conjunction_protocol::Timestamp,
        keep_per_upstream: usize,
        cursor: Option<BuildId>,
    ) -> Result<Pruned, WriteError> {
        self.call(|reply| Command::Prune {
            cutoff,
            keep_per_upstream,
            cursor,
            reply,
        })
        .await
    }

    /// Issues a person's token, if `by` may issue one of that scope.
    pub async fn issue_token(
        &self,
        request: conjunction_protocol::access::TokenRequest,
        by: Caller,
    ) -> Result<conjunction_protocol::access::TokenIssued, WriteError> {
        self.call(|reply| Command::IssueToken { request, by, reply })
            .await
    }

    /// Revokes the person's token `id`, if `by` may: from the commit on, it opens
    /// nothing.
    pub async fn revoke_token(
        &self,
        id: String,
        by: Caller,
    ) -> Result<conjunction_protocol::access::TokenInfo, WriteError> {
        self.call(|reply| Command::RevokeToken { id, by, reply })
            .await
    }

    /// Writes down when people's tokens were last used.
    pub async fn tokens_used(
        &self,
        used: Vec<(String, conjunction_protocol::Timestamp)>,
    ) -> Result<(), WriteError> {
        self.call(|reply| Command::TokensUsed { used, reply }).await
    }

    /// Records what the notifier made of a try to send notice `id`.
    pub async fn notice(&self, id: BuildId, outcome: NoticeOutcome) -> Result<(), WriteError> {
        self.call(|reply| Command::Notice { id, outcome, reply })
            .await
    }

    /// Records what the forge sender made of a try to send forge report `id`;
    /// answers the entry to send again, if any.
    pub async fn forge(
        &self,
        id: BuildId,
        outcome: ForgeOutcome,
    ) -> Result<Option<ForgeEntry>, WriteError> {
        self.call(|reply| Command::Forge { id, outcome, reply })
            .await
    }
}

/// The running writer thread.
pub struct WriterThread(std::thread::JoinHandle<Result<(), Fault>>);

impl WriterThread {
    /// Waits for the thread: `Err` when it stopped on a fault rather than because
    /// every handle was dropped.
    pub fn join(self) -> Result<(), Fault> {
        self.0
            .join()
            .unwrap_or_else(|panic| Err(Fault::Panicked(crate::health::panic_message(&*panic))))
    }
}

/// What the writer works with.
pub struct Wiring {
    pub store: Store,
    /// The graph the store holds, and then the writer's own with the running batch's
    /// changes; `shared` has the committed one.
    pub graph: Graph,
    pub shared: SharedGraph,
    pub hub: Hub,
    pub dispatch: mpsc::UnboundedSender<OutboxEntry>,
    /// Where queued notices go once committed.
    pub notify: mpsc::UnboundedSender<NoticeEntry>,
    /// Where queued forge reports go once committed.
    pub forge: mpsc::UnboundedSender<ForgeEntry>,
    /// The daemon can send mail, so a project without notify rules has its contacts
    /// emailed.
    pub email_default: bool,
    pub report_url: String,
    pub build_tokens: BuildTokens,
    /// The environments releases are promoted through, in order.
    pub environments: Environments,
    pub health: Health,
    /// The planner left nodes to decide (before the last stop, then in the last
    /// batch): the next batch carries on with them.
    pub backlog: bool,
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Starts the writer thread. It runs until every [`WriterHandle`] is dropped, then
/// finishes its last batch and returns; or until a [`Fault`], which it records in
/// `health` before it answers the batch that met it, so `/healthz` never reports a
/// writer that has stopped. The receiver resolves when the thread ends, however it
/// ends.
pub fn spawn(
    wiring: Wiring,
) -> std::io::Result<(WriterHandle, WriterThread, oneshot::Receiver<()>)> {
    let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
    let (end_tx, gone) = oneshot::channel::<()>();
    // What the daemon read at start is current for the role it has now.
    let fence = wiring.store.writer_fence();
    let writer = Writer {
        w: wiring,
        ulids: ulid::Generator::new(),
        fence,
    };
    let thread = std::thread::Builder::new()
        .name("conjunction-writer".into())
        .spawn(move || {
            // Dropped when the thread ends, which resolves `gone`.
            let _end = end_tx;
            writer.run(rx)
        })?;
    Ok((WriterHandle { tx }, WriterThread(thread), gone))
}

struct Writer {
    w: Wiring,
    ulids: ulid::Generator,
    /// On PostgreSQL, the fence of the writer's role this thread last wrote under.
    fence: Option<i64>,
}

/// The planner's graph of `projects`, as the store holds them.
pub(crate) fn graph_of(projects: &[crate::store::StoredProject]) -> Graph {
    let mut graph = Graph::new();
    for p in projects {
        let ecosystem = p.package.as_ref().map(|p| p.ecosystem);
        graph.register(&p.id, &p.depends_on, p.trigger.is_some(), ecosystem);
        graph.set_package(&p.id, p.package.as_ref());
    }
    graph
}

/// Sends a command's answer once the batch's fate is known.
type Answer = Box<dyn FnOnce(Option<&WriteError>) + Send>;

fn answer<T: Send + 'static>(reply: Reply<T>, result: Result<T, WriteError>) -> Answer {
    Box::new(move |failure| {
        let _ = reply.send(match failure {
            Some(e) => Err(e.clone()),
            None => result,
        });
    })
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Command>) -> Result<(), Fault> {
        loop {
            let mut batch = Vec::new();
            if !self.w.backlog {
                match rx.blocking_recv() {
                    Some(first) => batch.push(first),
                    None => break,
                }
            }
            // With work left over, take what is waiting but do not wait for more.
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(c) => batch.push(c),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) if batch.is_empty() => {
                        // Shutting down: what is left stays in the store for the next start.
                        tracing::debug!("writer stopped: no more senders");
                        return Ok(());
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
            }
            let mut answers = Vec::with_capacity(batch.len());
            // A damaged page can make redb panic. The batch then gets a storage error,
            // not a dropped connection, and the writer stops with the reason.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.commit_batch(batch, &mut answers)
            }))
            .unwrap_or_else(|panic| Err(Fault::Panicked(crate::health::panic_message(&*panic))));
            if let Err(fault) = outcome {
                tracing::error!(%fault, "the database writer stopped");
                self.w.health.fail(&fault);
                for a in answers {
                    a(Some(&WriteError::Storage));
                }
                return Err(fault);
            }
        }
        tracing::debug!("writer stopped: no more senders");
        Ok(())
    }

    /// Applies and commits one batch and answers it. An error of the store itself
    /// (redb's) is a [`Fault`], returned with the answers still to send; a record that
    /// cannot be read fails only this batch.
    /// On PostgreSQL, when this daemon has taken the writer's role since its last
    /// batch (from a daemon that died or stepped down): what another writer
    /// committed meanwhile is what it goes on from, so the planner's graph is read
    /// again, the nodes left to decide are taken up, and the outboxes are given
    /// what is queued (an entry already waiting there is not doubled).
    fn take_over(&mut self) -> Result<(), StoreError> {
        let Some(fence) = self.w.store.writer_fence() else {
            return Ok(());
        };
        if self.fence == Some(fence) {
            return Ok(());
        }
        let graph = graph_of(&self.w.store.stored_projects()?);
        self.w.backlog = self.w.store.has_ready()?;
        {
            let mut shared = self.w.shared.write().unwrap_or_else(|p| p.into_inner());
            *shared = Arc::new(graph.clone());
        }
        self.w.graph = graph;
        for entry in self.w.store.outbox()? {
            let _ = self.w.dispatch.send(entry);
        }
        for entry in self.w.store.notices()? {
            let _ = self.w.notify.send(entry);
        }
        for entry in self.w.store.forges()? {
            let _ = self.w.forge.send(entry);
        }
        self.fence = Some(fence);
        tracing::info!(fence, "this daemon writes now");
        Ok(())
    }

    fn commit_batch(
        &mut self,
        batch: Vec<Command>,
        answers: &mut Vec<Answer>,
    ) -> Result<(), Fault> {
        if let Err(e) = self.take_over() {
            // Not the writer (yet), or the database is away: the batch below fails
            // with the reason, and the next one tries again.
            tracing::debug!(error = %e, "not taking over the writer's role yet");
        }
        let started = std::time::Instant::now();
        let size = batch.len();
        // What is not taken when the batch fails (it failed before the command was
        // reached, as when this daemon may not write) is answered with the failure.
        let mut batch = batch.into_iter();
        let mut commit_time = std::time::Duration::ZERO;
        let result = (|| -> Result<Committed, StoreError> {
            let mut txn = self.w.store.begin_write()?;
            txn.set_quick_repair(self.w.store.quick_repair());
            let committed = {
                let mut work = Work::new(
                    WriteTx::open(&txn)?,
                    &mut self.w.graph,
                    &self.w.report_url,
                    &self.w.build_tokens,
                    &self.w.environments,
                    self.w.email_default,
                    &mut self.ulids,
                );
                for command in batch.by_ref() {
                    answers.push(execute(&mut work, command)?);
                }
                if self.w.backlog {
                    cascade::continue_ready(&mut work)?;
                }
                // An event this batch finished becomes its upstream's latest and has
                // its digest queued, once, in the same commit.
                for root in work.finished_events() {
                    verdicts::event_finished(&mut work, root)?;
                }
                work.finish()?
            };
            let committing = std::time::Instant::now();
            txn.commit()?;
            commit_time = committing.elapsed();
            Ok(committed)
        })();
        match result {
            Ok(done) => {
                let m = &self.w.metrics;
                m.batch_size.observe(size as f64);
                m.batch_seconds.observe(started.elapsed().as_secs_f64());
                m.fsync_seconds.observe(commit_time.as_secs_f64());
                self.w.backlog = done.ready_left;
                if !done.graph.is_empty() {
                    let mut shared = self.w.shared.write().unwrap_or_else(|p| p.into_inner());
                    let graph = Arc::make_mut(&mut shared);
                    for change in done.graph {
                        change.apply(graph);
                    }
                }
                self.w.hub.publish(done.published);
                for entry in done.queued {
                    // The dispatcher is gone only during shutdown; the entry stays in the
                    // outbox and is delivered after the next start.
                    let _ = self.w.dispatch.send(entry);
                }
                for entry in done.notices {
                    let _ = self.w.notify.send(entry);
                }
                for entry in done.forges {
                    let _ = self.w.forge.send(entry);
                }
                for a in answers.drain(..) {
                    a(None);
                }
                Ok(())
            }
            Err(StoreError::Db(e)) => Err(Fault::Storage(e.to_string())),
            Err(e) => {
                let failure = if e.not_writer() {
                    // A follower's every pulse comes here: its normal state, not news.
                    tracing::debug!(error = %e, "a batch of changes was not committed: this daemon does not write now");
                    WriteError::NotWriter
                } else {
                    tracing::error!(error = %e, "a batch of changes could not be committed; none of it took effect");
                    WriteError::Storage
                };
                // Nodes left to decide are still in the store; the next command's batch
                // finds them, rather than this loop retrying a failing store at once.
                self.w.backlog = false;
                // Back to the graph as committed.
                let committed = self.w.shared.read().unwrap_or_else(|p| p.into_inner());
                self.w.graph = Graph::clone(&committed);
                drop(committed);
                for a in answers.drain(..) {
                    a(Some(&failure));
                }
                for command in batch {
                    refuse(command, &failure);
                }
                Ok(())
            }
        }
    }
}

/// Answers a command that was not applied with why.
fn refuse(command: Command, failure: &WriteError) {
    macro_rules! refuse {
        ($($variant:ident),* $(,)?) => {
            match command {
                $(Command::$variant { reply, .. } => {
                    let _ = reply.send(Err(failure.clone()));
                })*
            }
        };
    }
    refuse!(
        ApplyProjects,
        DeleteProject,
        RotateReportToken,
        Report,
        Rebuild,
        Delivery,
        News,
        Notice,
        Forge,
        CloseChange,
        Ping,
        IssueToken,
        RevokeToken,
        TokensUsed,
        Prune,
    );
}

/// Applies one command; the inner result is the answer the command gets if the batch
/// commits.
fn execute(work: &mut Work<'_, '_>, command: Command) -> Result<Answer, StoreError> {
    Ok(match command {
        Command::ApplyProjects {
            entries,
            commit,
            by,
            reply,
        } => answer(reply, projects::apply(work, entries, commit, &by)?),
        Command::DeleteProject { id, by, reply } => {
            answer(reply, projects::delete(work, &id, &by)?.map_err(Into::into))
        }
        Command::RotateReportToken { id, by, reply } => answer(
            reply,
            projects::rotate_report_token(work, &id, &by)?.map_err(Into::into),
        ),
        Command::Report {
            report,
            principal,
            by,
            reply,
        } => answer(
            reply,
            reports::report(work, *report, principal, by)?.map_err(Into::into),
        ),
        Command::Rebuild { build, by, reply } => answer(
            reply,
            rebuilds::rebuild(work, build, &by)?.map_err(Into::into),
        ),
        Command::Delivery {
            build,
            attempt,
            delivery,
            reply,
        } => {
            deliveries::record(work, build, attempt, delivery)?;
            answer(reply, Ok(()))
        }
        Command::CloseChange {
            project,
            ids,
            why,
            reply,
        } => answer(reply, Ok(candidates::close(work, &project, &ids, &why)?)),
        Command::News { news, reply } => {
            answer(reply, hooks::hear(work, *news)?.map_err(Into::into))
        }
        Command::Notice { id, outcome, reply } => {
            notices::record(work, id, outcome)?;
            answer(reply, Ok(()))
        }
        Command::Forge { id, outcome, reply } => {
            answer(reply, Ok(forges::record(work, id, outcome)?))
        }
        Command::IssueToken { request, by, reply } => answer(
            reply,
            tokens::issue(work, request, &by)?.map_err(Into::into),
        ),
        Command::RevokeToken { id, by, reply } => {
            answer(reply, tokens::revoke(work, &id, &by)?.map_err(Into::into))
        }
        Command::TokensUsed { used, reply } => {
            tokens::used(work, &used)?;
            answer(reply, Ok(()))
        }
        Command::Ping { reply } => answer(reply, Ok(())),
        Command::Prune {
            cutoff,
            keep_per_upstream,
            cursor,
            reply,
        } => answer(
            reply,
            Ok(retention::step(work, cutoff, keep_per_upstream, cursor)?),
        ),
    })
}
