//! Candidates: a root event that tests an upstream's change before it merges. Each
//! change has one live event; a newer candidate of the same change supersedes the
//! older, whose builds that have not finished end cancelled, telling nobody.

use conjunction_protocol::{BuildId, Candidate, NodeState, ProjectId, StateKind};

use super::work::{Edit, Work};
use crate::store::StoreError;

/// Makes `root` the live event of `upstream`'s `candidate` change, superseding the
/// one before it.
pub(super) fn begin(
    work: &mut Work<'_, '_>,
    upstream: &ProjectId,
    candidate: &Candidate,
    root: BuildId,
) -> Result<(), StoreError> {
    let before = work.tx.change(upstream, &candidate.change)?;
    work.tx.put_change(upstream, &candidate.change, root)?;
    match before {
        Some(old) if old != root => supersede(work, old, root),
        _ => Ok(()),
    }
}

/// Ends the live candidate of `upstream`'s change, known by any of `ids`, when its
/// request was closed or merged: its builds that have not finished are cancelled.
/// Answers the event it ended, if one was still running.
pub(super) fn close(
    work: &mut Work<'_, '_>,
    upstream: &ProjectId,
    ids: &[String],
    why: &str,
) -> Result<Option<BuildId>, StoreError> {
    for id in ids {
        let Some(root) = work.tx.change(upstream, id)? else {
            continue;
        };
        if !kept(work, root)? {
            continue;
        }
        let record = &work.event(root)?.record;
        if record.ended.is_some() || record.is_finished() {
            continue;
        }
        end(work, root, why)?;
        return Ok(Some(root));
    }
    Ok(None)
}

/// Ends event `old`, which `by` took the place of.
pub(super) fn supersede(
    work: &mut Work<'_, '_>,
    old: BuildId,
    by: BuildId,
) -> Result<(), StoreError> {
    if !kept(work, old)? {
        return Ok(());
    }
    let record = work.record_mut(old)?;
    if record.superseded_by.is_some() {
        return Ok(());
    }
    record.superseded_by = Some(by);
    end(work, old, &format!("superseded by {by}"))
}

/// Ends event `old` for `why`: every build that has not finished is cancelled (its
/// trigger taken back from the outbox if it was not sent), with `why` as its
/// summary, and its digest is never sent.
fn end(work: &mut Work<'_, '_>, old: BuildId, why: &str) -> Result<(), StoreError> {
    let record = work.record_mut(old)?;
    record.ended = Some(why.to_owned());
    record.notes.push(why.to_owned());
    let size = record.size;
    let now = work.now;
    let mut edit = Edit::of(old);
    for position in 0..size {
        let member = work.member(old, position)?;
        if member.state.is_final() {
            continue;
        }
        let mut member = member.clone();
        member.state = StateKind::Cancelled;
        work.set_member(old, position, member)?;
        work.tx.remove_ready(old, position)?;
        let node = edit.node_mut(work, position)?;
        node.state = NodeState::Cancelled;
        node.finished_at = Some(now);
        node.summary = Some(why.to_owned());
        let build = node.id;
        work.tx.remove_outbox(build)?;
    }
    edit.write(work).map(drop)
}

/// Whether event `root` is still kept: retention may have removed a change's last
/// candidate since.
fn kept(work: &mut Work<'_, '_>, root: BuildId) -> Result<bool, StoreError> {
    Ok(work.has_event(root) || work.tx.root(root)?.is_some())
}
