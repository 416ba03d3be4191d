//! Notices: the outbox that sends queued notices on their channels.
//!
//! Notices are written to their outbox in the same transaction as the change they
//! are about, so none is lost or sent for a change that did not commit. Each is sent
//! at least once: with retries and back-off, surviving restarts, and every outcome
//! reported through the writer, which records it on the build ("told #design on
//! Slack"). A notice never holds up a report. How a notice is said on each channel is
//! [`crate::notify`]'s, and how it is sent [`crate::channels`]'s.

use std::sync::Arc;

use conjunction_protocol::{BuildId, Timestamp};
use tokio::sync::OwnedSemaphorePermit;

use super::judge::{judge, Next, Retries, Tally};
use super::worker::{Limits, Sender};
use super::Entry;
use crate::call::Failure;
use crate::channels::{Channels, NotifyConfig};
use crate::store::NoticeEntry;
use crate::writer::{NoticeOutcome, WriterHandle};

/// Sends notices, each on its channel.
pub struct Notices {
    pub metrics: Arc<crate::metrics::Metrics>,
    pub writer: WriterHandle,
    pub channels: Arc<Channels>,
    pub config: NotifyConfig,
}

impl Notices {
    /// How notices are tried again.
    pub fn retries(config: &NotifyConfig) -> Retries {
        Retries {
            max_attempts: config.max_attempts,
            backoff_base_ms: config.backoff_base_ms,
            backoff_max_ms: config.backoff_max_ms,
            noun: "tries",
        }
    }

    /// How many notices go out at once; notices have no lanes.
    pub fn limits(config: &NotifyConfig) -> Limits {
        Limits {
            concurrency: config.concurrency,
            lane_share: config.concurrency,
            send_timeout: None,
        }
    }
}

impl Sender for Notices {
    type Entry = NoticeEntry;
    type Job = ();

    const OUTBOX: &'static str = "notices";
    const TABLE: redb::TableDefinition<'static, u128, &'static [u8]> = crate::store::NOTICES;

    async fn admit(&self, _: &NoticeEntry) -> ((), Option<String>) {
        ((), None)
    }

    /// Tries to send `entry` once and records the outcome.
    async fn send(
        self: Arc<Self>,
        mut entry: NoticeEntry,
        (): (),
        permit: OwnedSemaphorePermit,
    ) -> Option<NoticeEntry> {
        let sent = self
            .channels
            .send(entry.id, &entry.channel, &entry.message)
            .await;
        drop(permit);
        let tries = entry.tries + 1;
        let channel = entry.channel.describe();
        let failure = match sent {
            Ok(()) => None,
            // A notice keeps to its own back-off: a chat's Retry-After on a 5xx is
            // not waited for (a rate limit is).
            Err(Failure::Transient { error, .. }) => Some(Failure::Transient {
                error,
                retry_after: None,
            }),
            Err(failure) => Some(failure),
        };
        let (outcome, tally) = match failure {
            None => {
                tracing::info!(notice = %entry.id, build = %entry.build, kind = %entry.message.kind, %channel, "notice sent");
                (NoticeOutcome::Sent { tries }, Tally::Succeeded)
            }
            Some(failure) => {
                let refused = matches!(failure, Failure::Refused(_));
                let next = judge(entry.tries, failure, &Self::retries(&self.config));
                let tally = next.tally(entry.tries);
                let outcome = match next {
                    Next::GaveUp(error) => {
                        if refused {
                            tracing::warn!(notice = %entry.id, %channel, %error, "notice refused");
                        } else {
                            tracing::warn!(notice = %entry.id, %channel, %error, tries, "notice given up");
                        }
                        NoticeOutcome::GaveUp { tries, error }
                    }
                    Next::Retry { due, tries, error } => {
                        if tally == Tally::Retry {
                            tracing::info!(notice = %entry.id, %channel, %error, tries, "notice will be retried");
                        }
                        NoticeOutcome::Retry { due, tries, error }
                    }
                };
                (outcome, tally)
            }
        };
        self.metrics
            .notice(entry.channel.kind(), tally.label("sent", "gave_up"));
        if tally == Tally::Retry {
            self.metrics.retry(Self::OUTBOX);
        }
        let again = entry.again(match &outcome {
            NoticeOutcome::Retry { due, tries, error } => Some((*due, *tries, error.as_str())),
            _ => None,
        });
        match self.writer.notice(entry.id, outcome).await {
            Ok(()) => again,
            Err(e) => {
                tracing::warn!(notice = %entry.id, error = %e, "notice outcome not recorded; it is sent again after a restart");
                None
            }
        }
    }
}

impl Entry for NoticeEntry {
    fn key(&self) -> BuildId {
        self.id
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
