//! The cascade executor: carries out what the planner decides about a root event,
//! turning its steps into node states, triggers in the outbox and build tokens.

use conjunction_protocol::trigger::{ReportEndpoint, TriggerParent, TriggerPayload, TriggerRoot};
use conjunction_protocol::{BlockedBy, Bump, Node, NodeState};

use std::collections::BTreeMap;

use conjunction_protocol::BuildId;

use super::work::{Edit, Work, STEP_BUDGET};
use super::{lines, verdicts};
use crate::auth::hash_token;
use crate::planner::{
    plan_cascade, start_event, Principal, Promotion, Reach, Settled, Stage, Step,
};
use crate::store::{OutboxEntry, StoreError};

/// Plans the dependents of a root that just passed (its node and member already say
/// so) and carries out the first steps.
pub(super) fn start(work: &mut Work<'_, '_>, edit: &mut Edit) -> Result<(), StoreError> {
    let root = edit.root;
    let record = &work.event(root)?.record;
    let project = record.project.clone();
    let environment = record.environment.clone();
    let mut notes = Vec::new();
    // A candidate is planned as its base would be released: its ranges are judged
    // against the base version, and every dependent is built when it names none.
    let (version, candidate) = (record.version.clone(), record.candidate.clone());
    let version = match candidate {
        None => version,
        Some(candidate) => {
            let ecosystem = work.graph.ecosystem(&project);
            let base = candidate.base.clone();
            match base.filter(|b| crate::planner::versions::Version::parse(ecosystem, b).is_ok()) {
                Some(base) => Some(base),
                None => {
                    notes.push(format!(
                        "{} names no version it changes, so every dependent is built whatever range it declares",
                        candidate.label()
                    ));
                    None
                }
            }
        }
    };
    let promotion = match (work.environments.stage(environment.as_deref()), &version) {
        (Ok(Stage::Promotion { previous, .. }), Some(v)) => {
            let previous = previous.to_owned();
            let dependents = work.tx.line_dependents(&project, v)?;
            let line = work.tx.line(&project, v)?;
            Some(Promotion::of(v, line.as_ref(), &dependents, &previous))
        }
        (Ok(_), _) => None,
        // The environment was known when the report came; the daemon's list changed
        // since. The event goes on as a release.
        (Err(refusal), _) => {
            notes.push(format!("{refusal}: it was built as a release"));
            None
        }
    };
    let reach = match &promotion {
        Some(promotion) => Reach::Promotion(promotion),
        None => Reach::Release(version.as_deref()),
    };
    let mut plan = plan_cascade(work.graph, &project, reach);
    plan.notes.extend(notes);
    let mut ids = vec![root];
    for _ in 1..plan.nodes.len() {
        ids.push(work.next_id());
    }
    let graph = &*work.graph;
    let started = start_event(&plan, &ids, STEP_BUDGET, &|p| graph.triggerable(p));
    let record = work.record_mut(root)?;
    record.notes = plan.notes;
    record.cascade_started = true;
    work.tx.set_open(root, true)?;
    if let (Some(v), Some(env)) = (&version, &environment) {
        for n in &plan.not_promoted {
            lines::not_promoted(work, (&project, v, env), root, &n.project, &n.why)?;
        }
    }
    work.record_mut(root)?.not_promoted = plan.not_promoted;
    let now = work.now;
    for ((position, member), planned) in started.members.into_iter().enumerate().zip(plan.nodes) {
        if position > 0 {
            let parents = member.parents.iter().map(|&p| ids[p as usize]).collect();
            let state = match (planned.cycle, planned.needs_bump) {
                (Some(cycle), _) => NodeState::Skipped { cycle },
                (None, Some(range)) => NodeState::NeedsBump {
                    bump: Bump {
                        upstream: project.clone(),
                        range,
                        version: version.clone().unwrap_or_default(),
                    },
                },
                (None, None) => NodeState::Pending,
            };
            let mut node = Node::new(member.id, planned.project, root, parents, state, now);
            node.target_ref = planned.on_ref;
            if let Some(pin) = planned.pin {
                node.target_ref = pin.on_ref;
                node.target_version = Some(pin.version);
            }
            if node.state.kind().is_final() {
                node.finished_at = Some(now);
            }
            edit.put(position as u32, node);
        }
        work.set_member(root, position as u32, member)?;
    }
    defer(work, root, &started.deferred)?;
    carry_out(work, edit, started.steps)
}

/// Settles the event after node `position` (as `edit` now has it) changed from
/// outside: a report, a delivery outcome, a rebuild.
pub(super) fn changed(
    work: &mut Work<'_, '_>,
    edit: &mut Edit,
    position: u32,
) -> Result<(), StoreError> {
    let to = edit.node_mut(work, position)?.state.kind();
    let settled = work.settle(edit.root, &[(position, to)], &[])?;
    apply(work, edit, settled)
}

/// Decides up to a budget of the nodes earlier commands left undecided, oldest
/// event first.
pub(super) fn continue_ready(work: &mut Work<'_, '_>) -> Result<(), StoreError> {
    let mut by_root: BTreeMap<BuildId, Vec<u32>> = BTreeMap::new();
    for (root, position) in work.tx.take_ready(STEP_BUDGET)? {
        by_root.entry(root).or_default().push(position);
    }
    for (root, ready) in by_root {
        let mut edit = Edit::of(root);
        let settled = work.settle(root, &[], &ready)?;
        apply(work, &mut edit, settled)?;
        verdicts::judge_all(work, &mut edit)?;
        let written = edit.write(work)?;
        lines::record(work, &written)?;
    }
    Ok(())
}

/// Records what the planner decided: members, node changes, triggers, and the nodes
/// it left for later.
fn apply(work: &mut Work<'_, '_>, edit: &mut Edit, settled: Settled) -> Result<(), StoreError> {
    let Settled {
        members,
        steps,
        deferred,
    } = settled;
    for (p, member) in members {
        work.set_member(edit.root, p, member)?;
    }
    defer(work, edit.root, &deferred)?;
    carry_out(work, edit, steps)
}

fn defer(work: &mut Work<'_, '_>, root: BuildId, positions: &[u32]) -> Result<(), StoreError> {
    for &p in positions {
        work.tx.put_ready(root, p)?;
    }
    Ok(())
}

/// Turns the planner's steps into node changes and queued triggers.
fn carry_out(
    work: &mut Work<'_, '_>,
    edit: &mut Edit,
    steps: Vec<(u32, Step)>,
) -> Result<(), StoreError> {
    let now = work.now;
    for (position, step) in steps {
        match step {
            Step::Queue => queue(work, edit, position)?,
            Step::FailTrigger(why) => {
                let node = edit.node_mut(work, position)?;
                node.state = NodeState::TriggerFailed {
                    reason: why.to_string(),
                };
                node.finished_at = Some(now);
            }
            Step::Block { by } => {
                let parent = work.member(edit.root, by)?;
                let blocked_by = BlockedBy {
                    build: parent.id,
                    project: parent.project.clone(),
                    state: parent.state,
                };
                let node = edit.node_mut(work, position)?;
                node.state = NodeState::Blocked { blocked_by };
                node.finished_at = Some(now);
            }
            Step::Unblock => {
                let node = edit.node_mut(work, position)?;
                node.state = NodeState::Pending;
                node.finished_at = None;
            }
        }
    }
    Ok(())
}

/// Queues node `position`'s trigger for its current attempt: a build token valid for
/// that attempt only, and the payload in the outbox.
pub(super) fn queue(
    work: &mut Work<'_, '_>,
    edit: &mut Edit,
    position: u32,
) -> Result<(), StoreError> {
    let root = edit.root;
    let parent_positions = work.member(root, position)?.parents.clone();
    let mut parents = Vec::with_capacity(parent_positions.len());
    for p in parent_positions {
        let m = work.member(root, p)?;
        parents.push(TriggerParent {
            build: m.id,
            project: m.project.clone(),
        });
    }
    let record = &work.event(root)?.record;
    let environment = record.environment.clone();
    let trigger_root = TriggerRoot {
        build: record.id,
        project: record.project.clone(),
        version: record.version.clone(),
        commit: record.commit.clone(),
        git_ref: record.git_ref.clone(),
        candidate: record.candidate.clone(),
    };
    let node = edit.node_mut(work, position)?;
    node.state = NodeState::Queued;
    let (build, attempt, project) = (node.id, node.attempt, node.project.clone());
    let target_ref = node.target_ref.clone();
    let pinned = node.target_version.clone();
    let token = work.build_tokens.token(build, attempt);
    work.tx
        .put_token(&hash_token(&token), &Principal::Build { build, attempt })?;
    let entry = OutboxEntry {
        build,
        attempt,
        project: project.clone(),
        payload: TriggerPayload {
            build,
            attempt,
            project,
            root: trigger_root,
            parents,
            report: ReportEndpoint {
                url: work.report_url.to_owned(),
                // Derived again as it is sent: the outbox holds no usable token.
                token: String::new(),
            },
            git_ref: target_ref,
            // A promotion pins every node it builds; a release's payload names no
            // environment, so its triggers stay as they were before environments.
            environment: pinned.is_some().then_some(environment).flatten(),
            version: pinned,
        },
        tries: 0,
        due: work.now,
        last_error: None,
    };
    work.queue(entry)
}
