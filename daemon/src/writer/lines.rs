//! Release lines: every node change in an event of a version is written to that
//! version's line as it is flushed. The root's state is the upstream's run in the
//! event's environment; a dependent's is its cell in that environment, and a pass in
//! the first environment sets the version promotions pin it to. One row is read and
//! written per node change, however long the line is.

use conjunction_protocol::releases::{LineCell, LineDependent, LineRun, ReleaseLine};
use conjunction_protocol::{Node, ProjectId, StateKind};

use super::work::{Work, Written};
use crate::store::StoreError;

/// Writes each node a command wrote, as it now stands, to its event's release line
/// (the root to the line's run in its environment, a dependent to the line's
/// dependents), when the event is a release.
pub(super) fn record(work: &mut Work<'_, '_>, written: &Written) -> Result<(), StoreError> {
    for (position, node) in &written.nodes {
        record_node(work, *position, node)?;
    }
    Ok(())
}

/// Writes node `position` of its event, as it now stands, to the event's line.
fn record_node(work: &mut Work<'_, '_>, position: u32, node: &Node) -> Result<(), StoreError> {
    let environments = work.environments;
    let first = environments.first();
    let record = &work.event(node.root)?.record;
    // A candidate is never released: it has no line.
    let (Some(version), None) = (record.version.clone(), &record.candidate) else {
        return Ok(());
    };
    let upstream = record.project.clone();
    let rollback_from = record.rollback_from.clone();
    let environment = record
        .environment
        .clone()
        .unwrap_or_else(|| first.to_owned());
    let in_first = environment == first;
    let state = node.state.kind();
    if position == 0 {
        let mut line = work
            .tx
            .line(&upstream, &version)?
            .unwrap_or_else(|| ReleaseLine {
                project: upstream.clone(),
                version: version.clone(),
                created_at: work.now,
                environments: Default::default(),
                dependents: Vec::new(),
            });
        let run = LineRun {
            root: node.root,
            state,
            at: work.now,
            rollback_from,
        };
        line.environments.insert(environment.clone(), run);
        work.tx.put_line(&line)?;
        if state == StateKind::Passed {
            work.tx.put_deployed(&upstream, &environment, &version)?;
        }
        return Ok(());
    }
    if state == StateKind::Pending {
        return Ok(());
    }
    let cell = LineCell::Built {
        root: node.root,
        build: node.id,
        attempt: node.attempt,
        state,
        version: node.version.clone(),
    };
    let mut entry = dependent(work, &upstream, &version, &node.project)?;
    if in_first && state == StateKind::Passed {
        entry.version.clone_from(&node.version);
        entry.git_ref.clone_from(&node.target_ref);
    }
    entry.environments.insert(environment, cell);
    work.tx.put_line_dependent(&upstream, &version, &entry)
}

/// Writes why a promotion left `project` where it was.
pub(super) fn not_promoted(
    work: &mut Work<'_, '_>,
    (upstream, version, environment): (&ProjectId, &str, &str),
    root: conjunction_protocol::BuildId,
    project: &ProjectId,
    why: &str,
) -> Result<(), StoreError> {
    let mut entry = dependent(work, upstream, version, project)?;
    entry.environments.insert(
        environment.to_owned(),
        LineCell::NotPromoted {
            root,
            not_promoted: why.to_owned(),
        },
    );
    work.tx.put_line_dependent(upstream, version, &entry)
}

fn dependent(
    work: &Work<'_, '_>,
    upstream: &ProjectId,
    version: &str,
    project: &ProjectId,
) -> Result<LineDependent, StoreError> {
    Ok(work
        .tx
        .line_dependent(upstream, version, project)?
        .unwrap_or_else(|| LineDependent {
            project: project.clone(),
            version: None,
            git_ref: None,
            environments: Default::default(),
        }))
}
