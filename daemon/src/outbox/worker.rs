//! The one outbox worker: takes entries as the writer commits them (and from the
//! outbox table at start), sends each when it is due with at most `concurrency` in
//! flight and at most a lane's share for each lane, schedules again what is to be
//! tried again, keeps the outbox's depth and age in the metrics, and at shutdown lets
//! what is in flight finish within the grace; the rest stays in the outbox table and
//! goes out after the next start. What an entry is and how it is sent is its
//! [`Sender`]'s.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use conjunction_protocol::Timestamp;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::{until, Entry, Schedule};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::store::postgres::claims::Claim;

/// What one outbox sends, and how.
pub trait Sender: Send + Sync + 'static {
    type Entry: Entry + Send + 'static;
    /// What [`Sender::admit`] finds out about an entry to send it.
    type Job: Send + 'static;

    /// The outbox's name in metrics ("triggers").
    const OUTBOX: &'static str;
    /// The store's table of its entries.
    const TABLE: redb::TableDefinition<'static, u128, &'static [u8]>;

    /// What sending `entry` needs, and the lane it goes in: entries of one lane take
    /// at most [`Limits::lane_share`] of the slots (a CI that does not answer holds
    /// its share and no more). `None`: no lane, only the outbox's concurrency.
    fn admit(
        &self,
        entry: &Self::Entry,
    ) -> impl Future<Output = (Self::Job, Option<String>)> + Send;

    /// Tries `entry` once, lets `permit` go as soon as the far side has answered, and
    /// records the outcome. Answers the entry to schedule again, or `None` when it
    /// left the outbox (done, given up, or left for the next start).
    fn send(
        self: Arc<Self>,
        entry: Self::Entry,
        job: Self::Job,
        permit: OwnedSemaphorePermit,
    ) -> impl Future<Output = Option<Self::Entry>> + Send;
}

/// How long a claim of an entry lasts beyond the send's timeout (or instead of it,
/// for an outbox without one).
const CLAIM_MARGIN: Duration = Duration::from_secs(5);
const DEFAULT_HOLD: Duration = Duration::from_secs(30);

/// How much an outbox sends at once, and how long it waits for it at shutdown.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Sends in flight at once.
    pub concurrency: usize,
    /// Sends in flight in one lane at once (for a sender whose entries have lanes).
    pub lane_share: usize,
    /// The longest one send can take; shutdown waits no longer than this either.
    pub send_timeout: Option<Duration>,
}

/// Runs `sender`'s outbox until `shutdown`, starting with `initial` (what the outbox
/// table held at start) and taking what the writer commits from `incoming`. Only
/// the daemon that writes to `store` sends: on PostgreSQL an entry that comes due
/// while another daemon holds the writer's role is left to that daemon (whose
/// outbox has it from the database), and each entry is claimed before it is sent,
/// so that a writer that was paused and wakes up does not send what the new writer
/// is sending.
pub async fn run<S: Sender>(
    sender: S,
    limits: Limits,
    metrics: Arc<Metrics>,
    store: crate::store::Store,
    initial: Vec<S::Entry>,
    mut incoming: mpsc::UnboundedReceiver<S::Entry>,
    mut shutdown: Shutdown,
) {
    let sender = Arc::new(sender);
    let permits = Arc::new(Semaphore::new(limits.concurrency.max(1)));
    let mut schedule = Schedule::<S::Entry>::default();
    for e in initial {
        schedule.insert(e);
    }
    let mut lanes = Lanes::new(limits.lane_share.max(1));
    // How long a claim of an entry lasts: one send, and a margin for committing its
    // outcome.
    let hold = limits.send_timeout.unwrap_or(DEFAULT_HOLD) + CLAIM_MARGIN;
    let mut in_flight = JoinSet::new();
    let mut lane_of_task = HashMap::new();
    loop {
        // What is due goes out now, as far as there are permits: a timer, even one of
        // zero length, would wait for the timer wheel's next tick (a millisecond), and
        // each step of a chain of dependents would pay it. What has no permit yet
        // waits in the schedule, not as a task of its own; what is due in a lane that
        // has its share in flight waits beside that lane.
        let now = Timestamp::from_system_time(SystemTime::now());
        while schedule.next_due().is_some_and(|due| due <= now) {
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                break;
            };
            let Some(entry) = schedule.pop_first() else {
                break;
            };
            if !store.sends_outboxes() {
                continue;
            }
            let mut entry = entry;
            match store.claim_to_send(S::TABLE, entry.key().0 .0, hold).await {
                Ok(Claim::Mine) => {}
                // Sent, given up or taken back meanwhile: nothing to send.
                Ok(Claim::Gone) => {
                    schedule.done(entry.key());
                    continue;
                }
                // Another daemon is sending it: if its outcome is not committed by
                // the time its claim runs out, this daemon tries then.
                Ok(Claim::Theirs { ms_left }) => {
                    entry.postpone(Timestamp(now.0.saturating_add(ms_left.unsigned_abs())));
                    schedule.insert(entry);
                    continue;
                }
                Err(e) => {
                    tracing::warn!(outbox = S::OUTBOX, error = %e, "cannot claim an outbox entry to send it; trying again in a second");
                    entry.postpone(Timestamp(now.0.saturating_add(1_000)));
                    schedule.insert(entry);
                    continue;
                }
            }
            let (job, lane) = sender.admit(&entry).await;
            let entry = match &lane {
                Some(lane) => match lanes.take(lane, entry) {
                    Some(entry) => entry,
                    None => continue,
                },
                None => entry,
            };
            let key = entry.key();
            let sender = sender.clone();
            let task = in_flight.spawn(async move { (key, sender.send(entry, job, permit).await) });
            if let Some(lane) = lane {
                lane_of_task.insert(task.id(), lane);
            }
        }
        metrics.outbox(
            S::OUTBOX,
            schedule.len() + lanes.waiting_len() + in_flight.len(),
            schedule.oldest(),
        );
        let waiting_for_permit = schedule.next_due().is_some_and(|due| due <= now);
        let next = schedule.next_due().filter(|_| !waiting_for_permit);
        tokio::select! {
            entry = incoming.recv() => match entry {
                Some(e) => schedule.insert(e),
                None => break,
            },
            () = until(next) => {}
            // A permit came back: the loop's top sends what is due with it (only this
            // loop takes permits, so it is still free there).
            _ = permits.acquire(), if waiting_for_permit => {}
            Some(done) = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                let id = match done {
                    Ok((id, (key, again))) => {
                        match again {
                            Some(entry) => {
                                store.release_claims(S::TABLE, Some(key.0 .0)).await;
                                schedule.insert(entry);
                            }
                            None => schedule.done(key),
                        }
                        id
                    }
                    Err(e) => e.id(),
                };
                if let Some(lane) = lane_of_task.remove(&id) {
                    if let Some(waiting) = lanes.done(&lane) {
                        schedule.insert(waiting);
                    }
                }
            }
            () = shutdown.requested() => break,
        }
    }
    let grace = limits
        .send_timeout
        .map_or(shutdown.grace(), |t| t.min(shutdown.grace()));
    let drained = tokio::time::timeout(grace, async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            outbox = S::OUTBOX,
            left = in_flight.len(),
            "entries still being sent at shutdown stay in the outbox and go out after the next start"
        );
        in_flight.abort_all();
    }
    store.release_claims(S::TABLE, None).await;
}

/// Sends in flight per lane, and the entries that wait for their lane.
struct Lanes<E> {
    share: usize,
    busy: HashMap<String, usize>,
    waiting: HashMap<String, VecDeque<E>>,
}

impl<E> Lanes<E> {
    fn new(share: usize) -> Self {
        Self {
            share,
            busy: HashMap::new(),
            waiting: HashMap::new(),
        }
    }

    /// The entry back to send now, counted against its lane; `None` when the lane has
    /// its share in flight, and the entry waits for it.
    fn take(&mut self, lane: &str, entry: E) -> Option<E> {
        let busy = self.busy.entry(lane.to_owned()).or_insert(0);
        if *busy >= self.share {
            self.waiting
                .entry(lane.to_owned())
                .or_default()
                .push_back(entry);
            return None;
        }
        *busy += 1;
        Some(entry)
    }

    /// How many entries wait for their lane.
    fn waiting_len(&self) -> usize {
        self.waiting.values().map(VecDeque::len).sum()
    }

    /// A send in `lane` ended: the entry that waited longest for it, if any.
    fn done(&mut self, lane: &str) -> Option<E> {
        if let Some(busy) = self.busy.get_mut(lane) {
            *busy = busy.saturating_sub(1);
            if *busy == 0 {
                self.busy.remove(lane);
            }
        }
        let queue = self.waiting.get_mut(lane)?;
        let next = queue.pop_front();
        if queue.is_empty() {
            self.waiting.remove(lane);
        }
        next
    }
}
