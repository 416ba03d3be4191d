//! Forge reports: the outbox that tells an upstream's forges how its dependents fared.
//!
//! An entry is queued in the same transaction as the change that moved its event,
//! and says only which event and which forge: the send reads the event as it is
//! then, so one send tells the newest state however many changes came before it.
//! Each is sent at least once, with retries and back-off that survive a restart; a
//! forge's rate limit is waited out without counting as a try. It is an outbox of
//! its own, so a forge that is down holds up no trigger and no notice. What a forge
//! is shown, and how, is [`crate::forge`]'s.

use std::sync::Arc;

use conjunction_protocol::{BuildId, Timestamp};
use serde::Deserialize;
use tokio::sync::OwnedSemaphorePermit;

use super::judge::{judge, Next, Retries, Tally};
use super::worker::{Limits, Sender};
use super::Entry;
use crate::call::Failure;
use crate::forge::{self, Apps, Kept, Shown};
use crate::store::{ForgeEntry, Store};
use crate::writer::{ForgeOutcome, WriterHandle};

/// The `[forge]` settings: how forge reports are sent and tried again.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForgeConfig {
    /// Tries before a report is given up (the first included); a rate limit's wait
    /// is not a try.
    pub max_attempts: u32,
    /// How long one call to a forge may take, in milliseconds.
    pub timeout_ms: u64,
    /// Delay before the first retry, in milliseconds; it doubles with each retry.
    pub backoff_base_ms: u64,
    /// Longest delay between two tries, in milliseconds.
    pub backoff_max_ms: u64,
    /// Reports in flight at once.
    pub concurrency: usize,
}

impl Default for ForgeConfig {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            timeout_ms: 15_000,
            backoff_base_ms: 2_000,
            backoff_max_ms: 600_000,
            concurrency: 4,
        }
    }
}

/// The most dependents read for a forge's table; the table says how many more
/// there are.
const MAX_ROWS: usize = 2_000;

/// Sends forge reports.
pub struct Forges {
    pub metrics: Arc<crate::metrics::Metrics>,
    pub writer: WriterHandle,
    pub store: Store,
    pub client: reqwest::Client,
    pub apps: Apps,
    pub config: ForgeConfig,
}

impl Forges {
    pub fn retries(config: &ForgeConfig) -> Retries {
        Retries {
            max_attempts: config.max_attempts,
            backoff_base_ms: config.backoff_base_ms,
            backoff_max_ms: config.backoff_max_ms,
            noun: "tries",
        }
    }

    pub fn limits(config: &ForgeConfig) -> Limits {
        Limits {
            concurrency: config.concurrency,
            lane_share: config.concurrency,
            send_timeout: Some(std::time::Duration::from_millis(config.timeout_ms)),
        }
    }

    /// Tells the forge once: what the event is now, to the target its mark names.
    /// Answers the forge's kind too, once known, for the metrics.
    async fn tell(
        &self,
        entry: &ForgeEntry,
        kind: &mut &'static str,
    ) -> Result<ForgeOutcome, Failure> {
        let store = self.store.clone();
        let root = entry.root;
        let unread = |e: &dyn std::fmt::Display| Failure::Transient {
            error: format!("reading the event failed: {e}"),
            retry_after: None,
        };
        let view = tokio::task::spawn_blocking(move || store.forge_view(root, MAX_ROWS))
            .await
            .map_err(|e| unread(&e))?
            .map_err(|e| unread(&e))?
            .ok_or_else(|| Failure::Refused("the event is no longer kept".into()))?;
        let mark = view
            .record
            .forge
            .get(entry.index as usize)
            .ok_or_else(|| Failure::Refused("the event has no such forge report".into()))?;
        let target = view
            .upstream
            .report_to
            .iter()
            .find(|t| t.forge.label() == mark.report.to)
            .ok_or_else(|| {
                Failure::Refused(format!(
                    "{} is no longer in the upstream's report_to",
                    mark.report.to
                ))
            })?;
        *kind = target.forge.kind();
        let shown = Shown::of(&view, target);
        let kept = Kept {
            remote: mark.remote.clone(),
            posted: mark.posted.clone(),
            comment: mark.comment.clone(),
        };
        let generation = mark.generation;
        let kept = forge::report(&self.client, &self.apps, target, &shown, kept).await?;
        Ok(ForgeOutcome::Told {
            generation,
            outlook: shown.told.outlook,
            remote: kept.remote,
            posted: kept.posted,
            comment: kept.comment,
        })
    }
}

impl Sender for Forges {
    type Entry = ForgeEntry;
    type Job = ();

    const OUTBOX: &'static str = "forges";
    const TABLE: redb::TableDefinition<'static, u128, &'static [u8]> = crate::store::FORGES;

    async fn admit(&self, _: &ForgeEntry) -> ((), Option<String>) {
        ((), None)
    }

    async fn send(
        self: Arc<Self>,
        entry: ForgeEntry,
        (): (),
        permit: OwnedSemaphorePermit,
    ) -> Option<ForgeEntry> {
        let mut kind = "unknown";
        let told = self.tell(&entry, &mut kind).await;
        drop(permit);
        let (outcome, tally) = match told {
            Ok(outcome) => {
                tracing::debug!(event = %entry.root, "forge told");
                (outcome, Tally::Succeeded)
            }
            Err(failure) => {
                let next = judge(entry.tries, failure, &Self::retries(&self.config));
                let tally = next.tally(entry.tries);
                let outcome = match next {
                    Next::GaveUp(error) => {
                        tracing::warn!(event = %entry.root, %error, "forge report given up");
                        ForgeOutcome::GaveUp {
                            tries: entry.tries + 1,
                            error,
                        }
                    }
                    Next::Retry { due, tries, error } => {
                        tracing::info!(event = %entry.root, %error, tries, "forge report will be retried");
                        ForgeOutcome::Retry { due, tries, error }
                    }
                };
                (outcome, tally)
            }
        };
        self.metrics.forge(kind, tally.label("told", "gave_up"));
        if tally == Tally::Retry {
            self.metrics.retry(Self::OUTBOX);
        }
        match self.writer.forge(entry.id, outcome).await {
            Ok(again) => again,
            Err(e) => {
                tracing::warn!(event = %entry.root, error = %e, "forge report outcome not recorded; it is sent again after a restart");
                None
            }
        }
    }
}

impl Entry for ForgeEntry {
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
