//! Forge reports: an event whose upstream reports to its forges gets one mark per
//! forge when it starts. Each batch that moves the event's counts moves the marks'
//! generation and, where no entry is queued, queues one: at once for the first
//! telling and the last, otherwise no sooner than [`UPDATE_INTERVAL`] after the
//! forge was last told. A send tells the newest state, however many changes came
//! before it; the sender's outcome of every try comes back here.

use std::collections::BTreeMap;
use std::time::Duration;

use conjunction_protocol::forge::{ForgeDelivery, ForgeReport, Outlook};
use conjunction_protocol::{BuildId, ProjectId, Timestamp};
use sha2::{Digest, Sha256};

use super::work::Work;
use crate::store::{ForgeEntry, ForgeMark, RootRecord, StoreError, StoredProject};

/// The least time between two updates of one forge about a running event.
pub const UPDATE_INTERVAL: Duration = Duration::from_secs(10);

/// What the forge sender made of one try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForgeOutcome {
    /// The forge was told generation `generation`, with this outlook; `remote` and
    /// `posted` are what it keeps for the next update.
    Told {
        generation: u64,
        outlook: Outlook,
        remote: Option<String>,
        posted: BTreeMap<ProjectId, String>,
        /// The candidate's comment on its pull or merge request, once made.
        comment: Option<String>,
    },
    Retry {
        due: Timestamp,
        tries: u32,
        error: String,
    },
    GaveUp {
        tries: u32,
        error: String,
    },
}

/// Gives a new event of `upstream` a mark for each forge it reports to, or a note
/// saying why a forge cannot be told (no commit, no build URL).
pub(super) fn start(record: &mut RootRecord, upstream: &StoredProject, root_url: Option<&str>) {
    for target in &upstream.report_to {
        let label = target.forge.label();
        if target.forge.needs_commit() && record.commit.is_none() {
            record.notes.push(format!(
                "not reported to {label}: the report named no commit"
            ));
            continue;
        }
        if !target.forge.needs_commit() && root_url.is_none() {
            record.notes.push(format!(
                "not reported to {label}: the report named no build URL"
            ));
            continue;
        }
        record.forge.push(ForgeMark {
            report: ForgeReport {
                to: label,
                state: ForgeDelivery::Queued,
                at: None,
                updates: 0,
                outlook: None,
                error: None,
            },
            remote: None,
            comment: None,
            posted: BTreeMap::new(),
            entry: None,
            generation: 0,
            told: 0,
            progress: 0,
        });
    }
}

/// A fingerprint of what a forge is shown: the counts and verdicts.
fn fingerprint(record: &RootRecord) -> u64 {
    let mut hash = Sha256::new();
    for (state, n) in &record.counts {
        hash.update(state.as_str());
        hash.update(n.to_le_bytes());
    }
    hash.update(b"|");
    for (verdict, n) in &record.verdicts {
        hash.update(verdict.as_str());
        hash.update(n.to_le_bytes());
    }
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // Never 0, which a new mark has.
    u64::from_le_bytes(first) | 1
}

/// Moves the marks of an event whose counts changed, and queues an entry for each
/// mark that has none.
pub(super) fn touch(
    record: &mut RootRecord,
    now: Timestamp,
    mut next_id: impl FnMut() -> BuildId,
) -> Vec<ForgeEntry> {
    let print = fingerprint(record);
    let finished = record.is_finished();
    let root = record.id;
    let mut queued = Vec::new();
    for (index, mark) in record.forge.iter_mut().enumerate() {
        if mark.progress == print {
            continue;
        }
        mark.progress = print;
        mark.generation += 1;
        if mark.entry.is_some() {
            continue;
        }
        let due = match mark.report.at {
            Some(at) if !finished => {
                Timestamp::from_system_time(at.to_system_time() + UPDATE_INTERVAL).max(now)
            }
            _ => now,
        };
        let entry = ForgeEntry {
            id: next_id(),
            root,
            index: index as u32,
            due,
            tries: 0,
            last_error: None,
        };
        mark.entry = Some(entry.id);
        queued.push(entry);
    }
    queued
}

/// Records how a try went on the event's mark; answers the entry to send again (a
/// retry, or an update for changes that came while it was sent).
pub(super) fn record(
    work: &mut Work<'_, '_>,
    id: BuildId,
    outcome: ForgeOutcome,
) -> Result<Option<ForgeEntry>, StoreError> {
    let Some(mut entry) = work.tx.forge_entry(id)? else {
        return Ok(None);
    };
    if work.tx.root(entry.root)?.is_none() {
        work.tx.remove_forge(id)?;
        return Ok(None);
    }
    let now = work.now;
    let record = work.record_mut(entry.root)?;
    let Some(mark) = record.forge.get_mut(entry.index as usize) else {
        work.tx.remove_forge(id)?;
        return Ok(None);
    };
    let again = match outcome {
        ForgeOutcome::Told {
            generation,
            outlook,
            remote,
            posted,
            comment,
        } => {
            mark.report.state = ForgeDelivery::Sent;
            mark.report.at = Some(now);
            mark.report.updates += 1;
            mark.report.outlook = Some(outlook);
            mark.report.error = None;
            if remote.is_some() {
                mark.remote = remote;
            }
            if comment.is_some() {
                mark.comment = comment;
            }
            mark.posted = posted;
            mark.told = generation;
            if mark.generation > generation {
                entry.due = Timestamp::from_system_time(now.to_system_time() + UPDATE_INTERVAL);
                entry.tries = 0;
                entry.last_error = None;
                Some(entry)
            } else {
                None
            }
        }
        ForgeOutcome::Retry { due, tries, error } => {
            mark.report.state = ForgeDelivery::Retrying;
            mark.report.error = Some(error.clone());
            entry.due = due;
            entry.tries = tries;
            entry.last_error = Some(error);
            Some(entry)
        }
        ForgeOutcome::GaveUp { error, .. } => {
            mark.report.state = ForgeDelivery::GaveUp;
            mark.report.at = Some(now);
            mark.report.error = Some(error);
            None
        }
    };
    if again.is_none() {
        mark.entry = None;
    }
    match &again {
        Some(entry) => work.tx.put_forge(entry)?,
        None => work.tx.remove_forge(id)?,
    }
    Ok(again)
}
