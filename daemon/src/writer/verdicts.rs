//! Verdicts, given as builds finish: each command's changed nodes are judged before
//! they are written. A build that reached a final state gets its verdict against the
//! project's history with the event's upstream (one row read, one written), and the
//! event's counts move with it; a build that starts another attempt gives its verdict
//! back. A failure that would break a project that asks for confirmation is rebuilt
//! instead, as an ordinary next attempt marked as a rerun.

use conjunction_protocol::notify::NoticeKind;
use conjunction_protocol::{Baseline, BuildId, Node, NodeState, StateKind};

use super::cascade;
use super::notices;
use super::work::{Edit, Work};
use crate::notify::message::{Digest, MailRef};
use crate::notify::route::{bump_is_news, transition};
use crate::planner::reports::next_attempt;
use crate::store::StoreError;
use conjunction_protocol::verdict::{is_built, judge, Judgement};

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
            let project = node.project.clone();
            work.record_mut(root)?.count_verdict(&project, old, None);
        }
        return Ok(());
    }
    if state == StateKind::NeedsBump && position > 0 {
        return needs_bump(work, edit, position);
    }
    if node.verdict.is_some() || !ran(state) {
        return Ok(());
    }
    let (project, rerun_of) = (node.project.clone(), node.rerun);
    let result = built(work, node)?;
    let environments = work.environments;
    let (upstream, environment, candidate) = {
        let record = &work.event(root)?.record;
        let environment = record
            .environment
            .clone()
            .unwrap_or_else(|| environments.first().to_owned());
        (
            record.project.clone(),
            environment,
            record.candidate.clone(),
        )
    };
    // A candidate's builds are about a change that may never merge: they are nobody's
    // latest result and nobody's baseline.
    if candidate.is_none() {
        let mut latest = work.tx.latest(&project)?;
        if latest.own.as_ref().is_none_or(|o| o.root <= root) {
            latest.own = Some(result.clone());
            work.tx.put_latest(&project, &latest)?;
        }
    }
    if position == 0 {
        return Ok(());
    }
    let mut history = work.tx.history(&upstream, &environment, &project)?;
    let baseline = match &candidate {
        None => history.baseline(root).cloned(),
        Some(candidate) => history.of_base(candidate.base.as_deref()).cloned(),
    };
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
    if candidate.is_some() {
        // Told as a release's would be (the routing keeps it to the upstream unless
        // the dependent asks), and the history stays the releases'.
        if let Some(kind) = transition(verdict, state, &notices::told(node), None) {
            notices::queue(work, node, kind, None, None)?;
        }
        work.record_mut(root)?
            .count_verdict(&project, None, Some(verdict));
        return Ok(());
    }
    if let Some(kind) = transition(verdict, state, &notices::told(node), history.infra) {
        let replies_to = match kind {
            NoticeKind::Fixed => history
                .break_mail
                .take()
                .map(|(notice, root)| MailRef { notice, root }),
            _ => None,
        };
        let mail = notices::queue(work, node, kind, None, replies_to)?;
        if kind == NoticeKind::Broke {
            history.break_mail = mail.map(|m| (m.notice, m.root));
        }
    }
    if is_built(state) {
        history.record(result);
        history.bump_told = None;
        history.infra = None;
    } else {
        history.infra = Some(state);
    }
    work.tx
        .put_history(&upstream, &environment, &project, &history)?;
    work.record_mut(root)?
        .count_verdict(&project, None, Some(verdict));
    Ok(())
}

/// A dependent whose range stops below the release: named in the digest, and told,
/// unless it was told about this very range on this upstream already (it is told again
/// once it has built against the upstream since, or declares another range).
fn needs_bump(work: &mut Work<'_, '_>, edit: &mut Edit, position: u32) -> Result<(), StoreError> {
    let root = edit.root;
    let node = edit.node_mut(work, position)?;
    let NodeState::NeedsBump { bump } = &node.state else {
        return Ok(());
    };
    let (project, range) = (node.project.clone(), bump.range.clone());
    let environments = work.environments;
    let record = work.record_mut(root)?;
    record.name("needs_bump", &project);
    let upstream = record.project.clone();
    let environment = record
        .environment
        .clone()
        .unwrap_or_else(|| environments.first().to_owned());
    if record.candidate.is_some() {
        // Whether it was told already is the releases' business; a candidate's
        // notice goes by the candidate routing.
        let node = edit.node_mut(work, position)?;
        return notices::queue(work, node, NoticeKind::NeedsBump, None, None).map(drop);
    }
    let mut history = work.tx.history(&upstream, &environment, &project)?;
    if !bump_is_news(&range, history.bump_told.as_deref()) {
        return Ok(());
    }
    history.bump_told = Some(range);
    work.tx
        .put_history(&upstream, &environment, &project, &history)?;
    let node = edit.node_mut(work, position)?;
    notices::queue(work, node, NoticeKind::NeedsBump, None, None).map(drop)
}

/// A cascade finished: it becomes its upstream's latest for the badges (unless a
/// newer one finished first), and the upstream's digest is queued on the root, once.
pub(super) fn event_finished(work: &mut Work<'_, '_>, root: BuildId) -> Result<(), StoreError> {
    let record = work.record_mut(root)?;
    record.digest_queued = true;
    work.tx.set_open(root, false)?;
    let record = work.record_mut(root)?;
    if record.ended.is_some() {
        // Nothing about a superseded or closed candidate is told.
        return Ok(());
    }
    let candidate = record.candidate.is_some();
    let project = record.project.clone();
    let digest = Digest {
        counts: record.counts.clone(),
        verdicts: record.verdicts.clone(),
        named: record.named.clone(),
    };
    let mut latest = work.tx.latest(&project)?;
    if !candidate && latest.finished.is_none_or(|f| f < root) {
        latest.previous = latest.finished.replace(root);
        work.tx.put_latest(&project, &latest)?;
    }
    let mut node = work
        .tx
        .node(root)?
        .ok_or_else(|| StoreError::Inconsistent(format!("root event {root} has no root build")))?;
    let before = node.notices.len();
    notices::queue(work, &mut node, NoticeKind::Digest, Some(digest), None)?;
    if node.notices.len() > before {
        let now = work.now;
        work.tx.put_node(now, &mut node)?;
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

/// Starts rerun `n` of the failed build at `position`, to confirm its failure. The
/// failed attempt is written first, so the feed and the event log show it (with its
/// summary and CI link) before the rerun takes its place.
fn rerun(
    work: &mut Work<'_, '_>,
    edit: &mut Edit,
    position: u32,
    n: u32,
) -> Result<(), StoreError> {
    let now = work.now;
    let mut failed = edit.node_mut(work, position)?.clone();
    work.tx.put_node(now, &mut failed)?;
    let mut next = next_attempt(&failed);
    next.rerun = Some(n);
    edit.put(position, next);
    cascade::queue(work, edit, position)?;
    cascade::changed(work, edit, position)
}
