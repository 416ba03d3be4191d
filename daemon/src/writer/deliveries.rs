//! Delivery outcomes: what the dispatcher learned from one attempt to trigger a build.

use conjunction_protocol::{BuildId, NodeState, Run, Timestamp};

use super::work::{Edit, Work};
use super::{cascade, lines, verdicts};
use crate::auth::{hash_token, BuildTokens};
use crate::planner::Principal;
use crate::store::{OutboxEntry, RunRecord, Store, StoreError, WriteTx};

/// What the dispatcher learned from one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The CI accepted the trigger; a native CI said which run it started and where
    /// that run is shown.
    Delivered {
        run: Option<Run>,
        url: Option<String>,
    },
    /// The CI refused it, or it stayed unreachable: give up.
    Failed { reason: String },
    /// Try again at `due`; `tries` attempts have been made.
    RetryAt {
        due: Timestamp,
        tries: u32,
        error: String,
    },
}

/// Records a delivery outcome. An outcome for an attempt that is no longer queued (a
/// rebuild started another, or the CI already reported) changes nothing.
pub(super) fn record(
    work: &mut Work<'_, '_>,
    build: BuildId,
    attempt: u32,
    delivery: Delivery,
) -> Result<(), StoreError> {
    let Some(mut entry) = work.tx.outbox_entry(build)? else {
        return Ok(());
    };
    if entry.attempt != attempt {
        return Ok(());
    }
    let failure = match delivery {
        Delivery::RetryAt { due, tries, error } => {
            entry.due = due;
            entry.tries = tries;
            entry.last_error = Some(error);
            return work.tx.put_outbox(&entry);
        }
        Delivery::Delivered { run, url } => Ok((run, url)),
        Delivery::Failed { reason } => Err(reason),
    };
    work.tx.remove_outbox(build)?;
    let Some(node) = work.tx.node(build)? else {
        return Ok(());
    };
    if node.attempt != attempt {
        return Ok(());
    }
    let mut updated = node.clone();
    match failure {
        Ok((run, url)) => {
            if updated.state == NodeState::Queued {
                updated.state = NodeState::Triggered;
            }
            updated.triggered_at.get_or_insert(work.now);
            if let Some(run) = run {
                if let Some(id) = &run.id {
                    let record = RunRecord {
                        build,
                        attempt,
                        ci_attempt: None,
                    };
                    work.tx.put_run(&updated.project, run.ci, id, &record)?;
                }
                // The run's webhook may have come first and said more.
                match &mut updated.run {
                    Some(known) if known.ci == run.ci => {
                        known.id = known.id.take().or(run.id);
                        known.number = known.number.or(run.number);
                    }
                    _ => updated.run = Some(run),
                }
            }
            if updated.url.is_none() {
                updated.url = url;
            }
        }
        Err(reason) => {
            if matches!(updated.state, NodeState::Queued | NodeState::Triggered) {
                updated.state = NodeState::TriggerFailed { reason };
                updated.finished_at = Some(work.now);
            }
        }
    }
    if updated == node {
        return Ok(());
    }
    let position = work.tx.position(build)?.ok_or_else(|| {
        StoreError::Inconsistent(format!("build {build} has no position in its root event"))
    })?;
    let mut edit = Edit::of(node.root);
    edit.put(position, updated);
    cascade::changed(work, &mut edit, position)?;
    verdicts::judge_all(work, &mut edit)?;
    let written = edit.write(work)?;
    lines::record(work, &written)
}

/// Before the writer starts: makes the build token of every queued trigger one the
/// dispatcher can derive with `tokens`, in one transaction. Needed when the key is new
/// (`rekey`: it was lost or removed) and for entries an older daemon queued with the
/// token itself in the payload, which this takes out. Returns how many it changed.
pub fn prepare_outbox(
    store: &Store,
    outbox: &mut [OutboxEntry],
    tokens: &BuildTokens,
    rekey: bool,
) -> Result<usize, StoreError> {
    let stale = |e: &OutboxEntry| rekey || !e.payload.report.token.is_empty();
    if !outbox.iter().any(stale) {
        return Ok(0);
    }
    let txn = store.begin_write()?;
    let mut changed = 0;
    {
        let mut tx = WriteTx::open(&txn)?;
        for entry in outbox.iter_mut().filter(|e| stale(e)) {
            let (build, attempt) = (entry.build, entry.attempt);
            let token = tokens.token(build, attempt);
            tx.put_token(&hash_token(&token), &Principal::Build { build, attempt })?;
            if !entry.payload.report.token.is_empty() {
                tx.remove_token(&hash_token(&entry.payload.report.token))?;
                entry.payload.report.token.clear();
            }
            tx.put_outbox(entry)?;
            changed += 1;
        }
    }
    txn.commit()?;
    Ok(changed)
}
