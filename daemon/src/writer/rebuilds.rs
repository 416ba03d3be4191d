//! Rebuilds: a final, unblocked build of a triggerable project starts its next
//! attempt, and the builds it held back wait for it again.

use conjunction_protocol::audit::{Action, Actor};
use conjunction_protocol::{BuildId, Node};

use super::work::{Edit, Work};
use super::{cascade, lines, verdicts};
use crate::planner::reports::{judge_rebuild, next_attempt};
use crate::planner::Refusal;
use crate::store::StoreError;

pub(super) fn rebuild(
    work: &mut Work<'_, '_>,
    build: BuildId,
    by: &Actor,
) -> Result<Result<Node, Refusal>, StoreError> {
    let Some(node) = work.tx.node(build)? else {
        return Ok(Err(Refusal::UnknownBuild(build)));
    };
    if let Some(by) = work.event(node.root)?.record.superseded_by {
        return Ok(Err(Refusal::Superseded { build, by }));
    }
    if let Err(refusal) = judge_rebuild(node.state.kind(), work.graph.triggerable(&node.project)) {
        return Ok(Err(refusal));
    }
    let position = work.tx.position(build)?.ok_or_else(|| {
        StoreError::Inconsistent(format!("build {build} has no position in its root event"))
    })?;
    let mut edit = Edit::of(node.root);
    edit.put(position, next_attempt(&node));
    cascade::queue(work, &mut edit, position)?;
    cascade::changed(work, &mut edit, position)?;
    verdicts::judge_all(work, &mut edit)?;
    let written = edit.write(work)?;
    lines::record(work, &written)?;
    let node = written.node(work, build)?;
    let detail = format!("{build} attempt {}", node.attempt);
    work.tx
        .audit(work.now, by, Action::Rebuilt, Some(&node.project), detail)?;
    Ok(Ok(node))
}
