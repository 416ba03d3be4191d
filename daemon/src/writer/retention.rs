//! Retention: finished root events older than the cutoff go, with their builds, in
//! small steps (one per command, so a step shares a batch with reports and never holds
//! them up), except the last few of every upstream, which verdicts and badges compare
//! with. The event log is cut at the same age; a client resuming from before it gets a
//! snapshot. A release line goes with the last root event that ran it, unless an
//! environment still has its version.

use conjunction_protocol::{BuildId, Timestamp};

use super::work::Work;
use crate::auth::hash_token;
use crate::store::StoreError;

/// Root events looked at per step.
const ROOTS_STEP: usize = 64;
/// Events of the log removed per step.
const EVENTS_STEP: usize = 4096;

/// What one step removed, and where the next one goes on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub roots: u64,
    pub builds: u64,
    pub events: u64,
    pub lines: u64,
    /// Root events not yet looked at may be older than the cutoff, or the log has
    /// older events left: step again from `cursor`.
    pub more: bool,
    pub cursor: Option<BuildId>,
}

/// One step: root events created before `cutoff` after `cursor`, and the log's
/// events written before it.
pub(super) fn step(
    work: &mut Work<'_, '_>,
    cutoff: Timestamp,
    keep_per_upstream: usize,
    cursor: Option<BuildId>,
) -> Result<Pruned, StoreError> {
    let before = BuildId(ulid::Ulid::from_parts(cutoff.0, 0));
    let candidates = work.tx.roots_before(before, cursor, ROOTS_STEP)?;
    let mut pruned = Pruned {
        more: candidates.len() == ROOTS_STEP,
        cursor: candidates.last().map(|r| r.id).or(cursor),
        ..Pruned::default()
    };
    let tokens = work.build_tokens;
    for record in candidates {
        // A cascade still running stays, and so does an event this batch has open.
        if !record.is_finished() || work.has_event(record.id) {
            continue;
        }
        if work
            .tx
            .newer_roots_of(&record.project, record.id, keep_per_upstream)?
            < keep_per_upstream
        {
            continue;
        }
        pruned.builds += work.tx.remove_event(&record, &|build, attempt| {
            hash_token(&tokens.token(build, attempt))
        })?;
        pruned.roots += 1;
        if let Some(version) = &record.version {
            pruned.lines += line_if_done(work, &record.project, version)?;
        }
    }
    let (events, more_events) = work.tx.prune_log(cutoff, EVENTS_STEP)?;
    pruned.events = events;
    pruned.more |= more_events;
    Ok(pruned)
}

/// Removes the line of `version` once no root event that ran it is kept and no
/// environment has the version; answers 1 when it went.
fn line_if_done(
    work: &mut Work<'_, '_>,
    upstream: &conjunction_protocol::ProjectId,
    version: &str,
) -> Result<u64, StoreError> {
    let Some(line) = work.tx.line(upstream, version)? else {
        return Ok(0);
    };
    for run in line.environments.values() {
        if work.tx.root(run.root)?.is_some() {
            return Ok(0);
        }
    }
    if work.tx.is_deployed(upstream, version)? {
        return Ok(0);
    }
    work.tx.remove_line(upstream, version)?;
    Ok(1)
}
