//! The dispatcher: delivers queued triggers from the outbox to CI systems.
//!
//! Entries come from the writer after each commit, and from the outbox table at
//! start-up, so a trigger queued before a crash is still delivered. Every delivery
//! attempt's outcome goes back through the writer before the next one is scheduled,
//! so retries and their back-off survive a restart too. Delivery is at least once:
//! the `X-Conjunction-Delivery` header lets a receiver drop duplicates.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use conjunction_protocol::{BuildId, Timestamp, TriggerSpec};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::auth::BuildTokens;
use crate::ci::call::Outcome;
use crate::outbox::{later, Schedule};
use crate::reconcile::{Follow, Follows};
use crate::store::{OutboxEntry, Store, StoreError};
use crate::writer::{Delivery, WriterHandle};

/// How hard the dispatcher tries.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DispatchConfig {
    /// How long one delivery attempt may take, in milliseconds.
    pub timeout_ms: u64,
    /// Delivery attempts before giving up (the first included).
    pub max_attempts: u32,
    /// Delay before the first retry, in milliseconds; it doubles with each retry.
    pub backoff_base_ms: u64,
    /// Longest delay between two attempts, in milliseconds.
    pub backoff_max_ms: u64,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Deliveries in flight to one host (and port) at once, so that a CI that does
    /// not answer holds this many of the `concurrency` slots and no more.
    pub per_host: usize,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            timeout_ms: 10_000,
            max_attempts: 8,
            backoff_base_ms: 1_000,
            backoff_max_ms: 300_000,
            concurrency: 64,
            per_host: 16,
        }
    }
}

impl DispatchConfig {
    /// The delay before attempt `tries + 1`: exponential, capped, with jitter in the
    /// upper half so that triggers failing together do not retry together.
    pub fn backoff(&self, tries: u32) -> Duration {
        crate::outbox::backoff(self.backoff_base_ms, self.backoff_max_ms, tries)
    }
}

pub struct Dispatcher {
    pub metrics: Arc<crate::metrics::Metrics>,
    pub store: Store,
    pub writer: WriterHandle,
    pub client: reqwest::Client,
    pub config: DispatchConfig,
    /// The report URL put into every payload.
    pub report_url: String,
    /// Derives the build token put into every payload.
    pub build_tokens: BuildTokens,
    /// Where Jenkins queue items go to be followed until they are builds.
    pub follow: Follows,
}

impl Dispatcher {
    /// Runs until `stop` turns true, then gives the deliveries in flight a short while
    /// ([`crate::shutdown::Shutdown::grace`]) and abandons the rest: they stay in the outbox and go out
    /// again after the next start, with the same `X-Conjunction-Delivery` key.
    pub async fn run(
        self,
        initial: Vec<OutboxEntry>,
        mut incoming: mpsc::UnboundedReceiver<OutboxEntry>,
        retry: mpsc::UnboundedSender<OutboxEntry>,
        mut stop: crate::shutdown::Shutdown,
    ) {
        let this = Arc::new(self);
        let permits = Arc::new(Semaphore::new(this.config.concurrency.max(1)));
        let mut schedule = Schedule::<OutboxEntry>::default();
        for e in initial {
            schedule.insert(e);
        }
        let mut hosts = Hosts::new(this.config.per_host.max(1));
        let mut in_flight = JoinSet::new();
        let mut host_of_task = HashMap::new();
        loop {
            // What is due goes out now, as far as there are permits: a timer, even
            // one of zero length, would wait for the timer wheel's next tick (a
            // millisecond), and each step of a chain of dependents would pay it. What
            // has no permit yet waits in the schedule, not as a task of its own; what
            // is due for a host that has its share in flight waits beside that host.
            let now = Timestamp::from_system_time(SystemTime::now());
            while schedule.next_due().is_some_and(|due| due <= now) {
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    break;
                };
                let Some(entry) = schedule.pop_first() else {
                    break;
                };
                let trigger = this.store.trigger_of(&entry.project);
                let host = host_key(&entry, &trigger);
                let Some(entry) = hosts.take(&host, entry) else {
                    continue;
                };
                let (this, retry) = (this.clone(), retry.clone());
                let task = in_flight
                    .spawn(async move { this.deliver(entry, trigger, permit, retry).await });
                host_of_task.insert(task.id(), host);
            }
            this.metrics.outbox(
                "triggers",
                schedule.len() + hosts.waiting_len() + in_flight.len(),
                schedule.oldest(),
            );
            let waiting_for_permit = schedule.next_due().is_some_and(|due| due <= now);
            let next = schedule.next_due().filter(|_| !waiting_for_permit);
            let sleep = crate::outbox::until(next);
            tokio::select! {
                entry = incoming.recv() => match entry {
                    Some(e) => schedule.insert(e),
                    None => break,
                },
                () = sleep => {}
                // A permit came back: the loop's top sends what is due with it (only
                // this loop takes permits, so it is still free there).
                _ = permits.acquire(), if waiting_for_permit => {}
                Some(done) = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                    let id = match &done {
                        Ok((id, finished)) => {
                            if let Some(build) = finished {
                                schedule.done(*build);
                            }
                            *id
                        }
                        Err(e) => e.id(),
                    };
                    if let Some(host) = host_of_task.remove(&id) {
                        if let Some(waiting) = hosts.done(&host) {
                            schedule.insert(waiting);
                        }
                    }
                }
                () = stop.requested() => break,
            }
        }
        let grace = stop
            .grace()
            .min(Duration::from_millis(this.config.timeout_ms));
        let drained = tokio::time::timeout(grace, async {
            while in_flight.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                left = in_flight.len(),
                "deliveries still running at shutdown stay in the outbox and go out after the next start"
            );
            in_flight.abort_all();
        }
    }

    /// Makes one delivery attempt, holding `permit` only until the request is done,
    /// and records its outcome through the writer. Answers the build when its entry
    /// is done with (not to be tried again by this process).
    async fn deliver(
        &self,
        mut entry: OutboxEntry,
        trigger: Result<Option<TriggerSpec>, StoreError>,
        permit: OwnedSemaphorePermit,
        retry: mpsc::UnboundedSender<OutboxEntry>,
    ) -> Option<BuildId> {
        let trigger = match trigger {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, build = %entry.build, "cannot read the trigger; retrying later");
                entry.due = later(Duration::from_secs(5));
                let _ = retry.send(entry);
                return None;
            }
        };
        let outcome = match &trigger {
            None => Outcome::Refused(format!("{} has no trigger configured", entry.project)),
            Some(t) => {
                let token = self.build_tokens.token(entry.build, entry.attempt);
                let timeout = Duration::from_millis(self.config.timeout_ms);
                crate::ci::trigger(
                    &self.client,
                    timeout,
                    t,
                    &entry.payload,
                    &self.report_url,
                    token,
                )
                .await
            }
        };
        drop(permit);
        let tries = entry.tries + 1;
        let mut queue_item = None;
        let delivery = match outcome {
            Outcome::Accepted {
                run,
                url,
                queue_item: item,
            } => {
                tracing::info!(build = %entry.build, attempt = entry.attempt, project = %entry.project, run = run.as_ref().map(|r| r.describe()), "trigger delivered");
                queue_item = item;
                Delivery::Delivered { run, url }
            }
            Outcome::Refused(reason) => {
                tracing::warn!(build = %entry.build, project = %entry.project, %reason, "trigger refused");
                Delivery::Failed { reason }
            }
            Outcome::RateLimited { error, wait } => {
                // Not a failed try: the CI asked to be called later.
                tracing::info!(build = %entry.build, project = %entry.project, %error, ?wait, "rate limited; the trigger waits");
                Delivery::RetryAt {
                    due: later(wait),
                    tries: entry.tries,
                    error: format!("{error} (rate limited; waiting {}s)", wait.as_secs()),
                }
            }
            Outcome::Transient { error, .. } if tries >= self.config.max_attempts => {
                tracing::warn!(build = %entry.build, project = %entry.project, %error, tries, "trigger given up");
                Delivery::Failed {
                    reason: format!("gave up after {tries} attempts; last: {error}"),
                }
            }
            Outcome::Transient { error, retry_after } => {
                let wait = self
                    .config
                    .backoff(tries)
                    .max(retry_after.unwrap_or_default())
                    .min(Duration::from_millis(self.config.backoff_max_ms.max(1)));
                tracing::info!(build = %entry.build, project = %entry.project, %error, tries, ?wait, "trigger will be retried");
                Delivery::RetryAt {
                    due: later(wait),
                    tries,
                    error,
                }
            }
        };
        let kind = trigger.as_ref().map_or("none", |t| t.kind());
        let outcome = match &delivery {
            Delivery::Delivered { .. } => "delivered",
            Delivery::Failed { .. } => "failed",
            Delivery::RetryAt { tries, .. } if *tries == entry.tries => "rate_limited",
            Delivery::RetryAt { .. } => "retry",
        };
        self.metrics.delivery(kind, outcome);
        if outcome == "retry" {
            self.metrics.retry("triggers");
        }
        let requeue = match &delivery {
            Delivery::RetryAt { due, tries, error } => {
                entry.due = *due;
                entry.tries = *tries;
                entry.last_error = Some(error.clone());
                Some(entry.clone())
            }
            _ => None,
        };
        match self
            .writer
            .delivery(entry.build, entry.attempt, delivery)
            .await
        {
            Ok(()) => {
                let requeued = requeue.is_some();
                if let Some(e) = requeue {
                    let _ = retry.send(e);
                }
                if let (Some(queue_item), Some(trigger)) = (queue_item, trigger) {
                    self.follow.send(Follow {
                        build: entry.build,
                        attempt: entry.attempt,
                        project: entry.project.clone(),
                        trigger,
                        queue_item,
                    });
                }
                (!requeued).then_some(entry.build)
            }
            Err(e) => {
                tracing::warn!(build = %entry.build, error = %e, "delivery outcome not recorded; it is retried after a restart");
                Some(entry.build)
            }
        }
    }
}

/// Where a trigger goes, for the per-host limit: the URL's host and port. A project
/// whose trigger cannot be read is a host of its own.
fn host_key(entry: &OutboxEntry, trigger: &Result<Option<TriggerSpec>, StoreError>) -> String {
    let url = match trigger {
        Ok(Some(t)) => t.endpoint(),
        _ => None,
    };
    match url {
        Some(u) => format!(
            "{}:{}",
            u.host_str().unwrap_or_default(),
            u.port_or_known_default().unwrap_or_default()
        ),
        None => format!("project {}", entry.project),
    }
}

/// Deliveries in flight per host, and the entries that wait for their host.
struct Hosts {
    per_host: usize,
    busy: HashMap<String, usize>,
    waiting: HashMap<String, std::collections::VecDeque<OutboxEntry>>,
}

impl Hosts {
    fn new(per_host: usize) -> Self {
        Self {
            per_host,
            busy: HashMap::new(),
            waiting: HashMap::new(),
        }
    }

    /// The entry back to send now, counted against its host; `None` when the host
    /// has its share in flight, and the entry waits for it.
    fn take(&mut self, host: &str, entry: OutboxEntry) -> Option<OutboxEntry> {
        let busy = self.busy.entry(host.to_owned()).or_insert(0);
        if *busy >= self.per_host {
            self.waiting
                .entry(host.to_owned())
                .or_default()
                .push_back(entry);
            return None;
        }
        *busy += 1;
        Some(entry)
    }

    /// How many entries wait for their host.
    fn waiting_len(&self) -> usize {
        self.waiting.values().map(|q| q.len()).sum()
    }

    /// A delivery to `host` ended: the entry that waited longest for it, if any.
    fn done(&mut self, host: &str) -> Option<OutboxEntry> {
        if let Some(busy) = self.busy.get_mut(host) {
            *busy = busy.saturating_sub(1);
            if *busy == 0 {
                self.busy.remove(host);
            }
        }
        let queue = self.waiting.get_mut(host)?;
        let next = queue.pop_front();
        if queue.is_empty() {
            self.waiting.remove(host);
        }
        next
    }
}

impl crate::outbox::Entry for OutboxEntry {
    fn key(&self) -> BuildId {
        self.build
    }
    fn due(&self) -> Timestamp {
        self.due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_stays_capped() {
        let c = DispatchConfig {
            backoff_base_ms: 100,
            backoff_max_ms: 1_000,
            ..DispatchConfig::default()
        };
        for _ in 0..50 {
            let first = c.backoff(1).as_millis();
            assert!((50..=100).contains(&first), "{first}");
            let third = c.backoff(3).as_millis();
            assert!((200..=400).contains(&third), "{third}");
            assert!(c.backoff(30).as_millis() <= 1_000);
        }
    }
}
