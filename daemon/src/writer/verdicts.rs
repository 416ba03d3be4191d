//! Verdicts, given as builds finish: each command's changed nodes are judged before
//! they are written. A build that reached a final state gets its verdict against the
//! project's history with the event's upstream (one row read, one written), and the
//! event's counts move with it; a build that starts another attempt gives its verdict
//! back. A failure that would break a project that asks for confirmation is rebuilt
//! instead, as an ordinary next attempt marked as a rerun.

use conjunction_protocol::{Baseline, Node, StateKind};

use super::cascade;
use super::work::{Edit, Work};
use crate::planner::reports::next_attempt;
use crate::planner::verdicts::{is_built, judge, Judgement};
use crate::store::{RootRecord, StoreError, WriteTx};

/// Judges every node `edit` changed.
pub(super) fn judge_all(work: &mut Work<'_, '_>, edit: &mut Edit) -> Result<(), StoreError> {
    for position in edit.positions() {
        judge_one(work, edit, position)?;
    }
    Ok(())
}

fn judge_one(work: &mut Work<'_, '_>, edit: &mut Edit, position: u32) -> Result<(), StoreError> {
    let root = edit.root;
    let node = edit.node_mut(work, position)?;
    let state = node.state.kind();
    if !state.is_final() {
        if node.verdict.is_some() {
            let old = node.verdict.take();
            node.baseline = None;
            work.record_mut(root)?.count_verdict(old, None);
        }
        return Ok(());
    }
    if node.verdict.is_some() || !ran(state) {
        return Ok(());
    }
    let (project, rerun_of) = (node.project.clone(), node.rerun);
    let result = built(work, node)?;
    let mut latest = work.tx.latest(&project)?;
    if latest.own.as_ref().is_none_or(|o| o.root <= root) {
        latest.own = Some(result.clone());
        work.tx.put_latest(&project, &latest)?;
    }
    if position == 0 {
        return Ok(());
    }
    let environments = work.environments;
    let (upstream, environment) = {
        let record = &work.event(root)?.record;
        let environment = record
            .environment
            .clone()
            .unwrap_or_else(|| environments.first().to_owned());
        (record.project.clone(), environment)
    };
    let mut history = work.tx.history(&upstream, &environment, &project)?;
    let baseline = history.baseline(root).cloned();
    let before = baseline.as_ref().map(|b| b.state);
    let confirm = if state == StateKind::Failed && before == Some(StateKind::Passed) {
        work.tx.project(&project)?.map_or(0, |p| p.confirm_failures)
    } else {
        0
    };
    let verdict = match judge(state, before, rerun_of, confirm) {
        Judgement::None => return Ok(()),
        Judgement::Rerun(n) => return rerun(work, edit, position, n),
        Judgement::Verdict(verdict) => verdict,
    };
    let node = edit.node_mut(work, position)?;
    node.verdict = Some(verdict);
    node.baseline = baseline.filter(|_| is_built(state));
    if is_built(state) {
        history.record(result);
        history.bump_told = None;
        work.tx
            .put_history(&upstream, &environment, &project, &history)?;
    }
    work.record_mut(root)?.count_verdict(None, Some(verdict));
    Ok(())
}

/// A cascade finished: it becomes its upstream's latest for the badges (unless a
/// newer one finished first), and the upstream's digest is queued, once.
pub(super) fn event_finished(
    tx: &mut WriteTx<'_>,
    record: &mut RootRecord,
) -> Result<(), StoreError> {
    record.digest_queued = true;
    let mut latest = tx.latest(&record.project)?;
    if latest.finished.is_none_or(|f| f < record.id) {
        latest.previous = latest.finished.replace(record.id);
        tx.put_latest(&record.project, &latest)?;
    }
    Ok(())
}

/// The build ran: its result says something about the project itself.
fn ran(state: StateKind) -> bool {
    matches!(
        state,
        StateKind::Passed | StateKind::Failed | StateKind::Errored | StateKind::TriggerFailed
    )
}

/// `node`'s result as a later build compares with it.
fn built(work: &mut Work<'_, '_>, node: &Node) -> Result<Baseline, StoreError> {
    let (root, build, state, at) = (node.root, node.id, node.state.kind(), node.finished_at);
    let version = work.event(root)?.record.version.clone();
    Ok(Baseline {
        root,
        build,
        state,
        upstream_version: version,
        at: at.unwrap_or(work.now),
    })
}

/// Starts rerun `n` of the failed build at `position`, to confirm its failure.
fn rerun(
    work: &mut Work<'_, '_>,
    edit: &mut Edit,
    position: u32,
    n: u32,
) -> Result<(), StoreError> {
    let node = edit.node_mut(work, position)?;
    let mut next = next_attempt(node);
    next.rerun = Some(n);
    edit.put(position, next);
    cascade::queue(work, edit, position)?;
    cascade::changed(work, edit, position)
}
