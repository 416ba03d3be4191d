//! Triggers: the outbox that delivers queued triggers to CI systems.
//!
//! Entries come from the writer after each commit, and from the outbox table at
//! start-up, so a trigger queued before a crash is still delivered. Every delivery
//! attempt's outcome goes back through the writer before the next one is scheduled,
//! so retries and their back-off survive a restart too. Delivery is at least once:
//! the `X-Conjunction-Delivery` header lets a receiver drop duplicates. The admission
//! rule is per host: a CI that does not answer holds its share of the slots and no
//! more.

use std::sync::Arc;
use std::time::Duration;

use conjunction_protocol::{BuildId, Timestamp, TriggerSpec};
use tokio::sync::OwnedSemaphorePermit;

use super::judge::{judge, Next, Retries, Tally};
use super::worker::{Limits, Sender};
use super::{later, Entry};
use crate::auth::BuildTokens;
use crate::call::Failure;
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
    /// How triggers are tried again.
    pub fn retries(&self) -> Retries {
        Retries {
            max_attempts: self.max_attempts,
            backoff_base_ms: self.backoff_base_ms,
            backoff_max_ms: self.backoff_max_ms,
            noun: "attempts",
        }
    }

    /// How many triggers go out at once, and to one host.
    pub fn limits(&self) -> Limits {
        Limits {
            concurrency: self.concurrency,
            lane_share: self.per_host,
            send_timeout: Some(Duration::from_millis(self.timeout_ms)),
        }
    }
}

/// Sends triggers: each CI's own API or a generic webhook.
pub struct Triggers {
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

impl Sender for Triggers {
    type Entry = OutboxEntry;
    /// The project's trigger as it stands when the entry is sent.
    type Job = Result<Option<TriggerSpec>, StoreError>;

    const OUTBOX: &'static str = "triggers";
    const TABLE: redb::TableDefinition<'static, u128, &'static [u8]> = crate::store::OUTBOX;

    async fn admit(&self, entry: &OutboxEntry) -> (Self::Job, Option<String>) {
        let project = entry.project.clone();
        let trigger = self.store.quick(move |st| st.trigger_of(&project)).await;
        let host = host_key(entry, &trigger);
        (trigger, Some(host))
    }

    /// Makes one delivery attempt, holding `permit` only until the request is done,
    /// and records its outcome through the writer.
    async fn send(
        self: Arc<Self>,
        mut entry: OutboxEntry,
        trigger: Self::Job,
        permit: OwnedSemaphorePermit,
    ) -> Option<OutboxEntry> {
        let trigger = match trigger {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, build = %entry.build, "cannot read the trigger; retrying later");
                entry.due = later(Duration::from_secs(5));
                return Some(entry);
            }
        };
        let outcome = match &trigger {
            None => Err(Failure::Refused(format!(
                "{} has no trigger configured",
                entry.project
            ))),
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
        let mut queue_item = None;
        let (delivery, tally) = match outcome {
            Ok(accepted) => {
                tracing::info!(build = %entry.build, attempt = entry.attempt, project = %entry.project, run = accepted.run.as_ref().map(|r| r.describe()), "trigger delivered");
                queue_item = accepted.queue_item;
                let delivered = Delivery::Delivered {
                    run: accepted.run,
                    url: accepted.url,
                };
                (delivered, Tally::Succeeded)
            }
            Err(failure) => {
                let refused = matches!(failure, Failure::Refused(_));
                let next = judge(entry.tries, failure, &self.config.retries());
                let tally = next.tally(entry.tries);
                let (build, project) = (&entry.build, &entry.project);
                let delivery = match next {
                    Next::GaveUp(reason) => {
                        if refused {
                            tracing::warn!(%build, %project, %reason, "trigger refused");
                        } else {
                            tracing::warn!(%build, %project, %reason, "trigger given up");
                        }
                        Delivery::Failed { reason }
                    }
                    Next::Retry { due, tries, error } => {
                        if tally == Tally::RateLimited {
                            // Not a failed try: the CI asked to be called later.
                            tracing::info!(%build, %project, %error, "rate limited; the trigger waits");
                        } else {
                            tracing::info!(%build, %project, %error, tries, "trigger will be retried");
                        }
                        Delivery::RetryAt { due, tries, error }
                    }
                };
                (delivery, tally)
            }
        };
        let kind = trigger.as_ref().map_or("none", |t| t.kind());
        self.metrics
            .delivery(kind, tally.label("delivered", "failed"));
        if tally == Tally::Retry {
            self.metrics.retry(Self::OUTBOX);
        }
        let again = entry.again(match &delivery {
            Delivery::RetryAt { due, tries, error } => Some((*due, *tries, error.as_str())),
            _ => None,
        });
        match self
            .writer
            .delivery(entry.build, entry.attempt, delivery)
            .await
        {
            Ok(()) => {
                if let (Some(queue_item), Some(trigger)) = (queue_item, trigger) {
                    self.follow.send(Follow {
                        build: entry.build,
                        attempt: entry.attempt,
                        project: entry.project.clone(),
                        trigger,
                        queue_item,
                    });
                }
                again
            }
            Err(e) => {
                tracing::warn!(build = %entry.build, error = %e, "delivery outcome not recorded; it is retried after a restart");
                None
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

impl Entry for OutboxEntry {
    fn key(&self) -> BuildId {
        self.build
    }
    fn due(&self) -> Timestamp {
        self.due
    }
    fn postpone(&mut self, due: Timestamp) {
        self.due = due;
    }
    fn retry(&mut self, due: Timestamp, tries: u32, error: &str) {
        self.due = due;
        self.tries = tries;
        self.last_error = Some(error.to_owned());
    }
}
