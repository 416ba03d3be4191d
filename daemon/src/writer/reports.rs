//! Reports: a root report starts a root event (and, when it passed, its cascade); a
//! report on a build moves that build on and settles its event.

use conjunction_protocol::audit::{Action, Actor};
use conjunction_protocol::{BuildId, Node, Report, ReportAck, StateKind};

use super::manifests::{self, Reading};
use super::work::{Edit, Work};
use super::{candidates, cascade, forges, lines, verdicts};
use crate::planner::lines::{judge_promotion, rollback_from};
use crate::planner::reports::{
    accept_report, authorize_node_report, authorize_root_report, reported,
};
use crate::planner::{Member, Principal, Refusal, ReportVerdict, Stage};
use crate::store::{RootRecord, StoreError};

pub(super) fn report(
    work: &mut Work<'_, '_>,
    report: Report,
    principal: Principal,
    by: Option<Actor>,
) -> Result<Result<ReportAck, Refusal>, StoreError> {
    let by = by.unwrap_or_else(|| match &principal {
        Principal::Project { project } => Actor::ReportToken {
            project: project.clone(),
        },
        Principal::Build { build, .. } => Actor::BuildToken { build: *build },
    });
    let project = report.project.clone();
    // Only a report that carries manifests pays for asking which event it is in.
    let candidate = match report.build {
        _ if report.manifests.is_empty() => false,
        None => report.candidate.is_some(),
        Some(build) => match work.tx.node(build)? {
            Some(node) => work.event(node.root)?.record.candidate.is_some(),
            None => false,
        },
    };
    let reading = manifests::read(work, &report, candidate)?;
    let mut warnings = Vec::new();
    let refused = match &reading {
        Reading::Ignored(why) => {
            warnings.push(why.clone());
            None
        }
        Reading::Refused(why) => {
            warnings.push(why.clone());
            Some(why.clone())
        }
        Reading::Nothing | Reading::Read(_) => None,
    };
    // A manifest that cannot be used is said on the build it came with.
    let mut amend = |node: &mut Node| {
        if let Some(why) = &refused {
            if !node.warnings.contains(why) {
                node.warnings.push(why.clone());
            }
        }
    };
    let ack = match report.build {
        None => {
            let detail = match (&report.candidate, &report.version) {
                (Some(c), Some(v)) => format!("{} {v}", c.label()),
                (Some(c), None) => c.label(),
                (None, v) => v.clone().unwrap_or_default(),
            };
            let ack = root_report(work, report, principal, &mut amend)?;
            if let Ok(ack) = &ack {
                work.tx
                    .audit(work.now, &by, Action::RootReported, Some(&project), detail)?;
                work.record_mut(ack.root)?.reported_by = Some(by.clone());
            }
            ack
        }
        Some(build) => node_report(work, build, report, principal, &mut amend)?,
    };
    let Ok(mut ack) = ack else {
        return Ok(ack);
    };
    if let Reading::Read(read) = reading {
        warnings.extend(manifests::take(work, *read, ack.build, &by)?);
    }
    ack.warnings = warnings;
    Ok(Ok(ack))
}

/// Starts a root event from a root report; `amend` may add to the root node what
/// the report cannot say (the native CI run it came from).
pub(super) fn root_report(
    work: &mut Work<'_, '_>,
    report: Report,
    principal: Principal,
    amend: &mut dyn FnMut(&mut Node),
) -> Result<Result<ReportAck, Refusal>, StoreError> {
    if let Err(refusal) = authorize_root_report(&principal, &report) {
        return Ok(Err(refusal));
    }
    if !work.graph.is_registered(&report.project) {
        return Ok(Err(Refusal::UnknownProject(report.project)));
    }
    let rollback_from = match promotion(work, &report)? {
        Ok(rollback_from) => rollback_from,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let now = work.now;
    let id = work.next_id();
    let state = report.state.to_node_state();
    let kind = state.kind();
    let node = Node {
        id,
        project: report.project.clone(),
        root: id,
        parents: Vec::new(),
        attempt: 1,
        state,
        version: report.version.clone(),
        commit: report.commit.clone(),
        git_ref: report.git_ref.clone(),
        target_ref: None,
        target_version: None,
        url: report.url,
        run: None,
        summary: report.summary,
        metadata: report.metadata,
        rerun: None,
        verdict: None,
        baseline: None,
        notices: Vec::new(),
        warnings: Vec::new(),
        created_at: now,
        triggered_at: None,
        started_at: (!kind.is_final()).then_some(now),
        finished_at: kind.is_final().then_some(now),
        seq: 0,
    };
    work.tx.index_root(&report.project, id)?;
    work.create_event(RootRecord {
        id,
        project: report.project.clone(),
        version: report.version,
        commit: report.commit,
        git_ref: report.git_ref,
        environment: report.environment,
        rollback_from,
        created_at: now,
        notes: Vec::new(),
        not_promoted: Vec::new(),
        cascade_started: false,
        counts: Default::default(),
        verdicts: Default::default(),
        named: Default::default(),
        digest_queued: false,
        size: 0,
        reported_by: None,
        forge: Vec::new(),
        candidate: report.candidate.clone(),
        superseded_by: None,
        ended: None,
    });
    work.set_member(
        id,
        0,
        Member {
            id,
            project: report.project.clone(),
            state: kind,
            blocked_by: None,
            parents: Vec::new(),
            children: Vec::new(),
            waiting: 0,
        },
    )?;
    if let Some(candidate) = &report.candidate {
        candidates::begin(work, &report.project, candidate, id)?;
    }
    let mut node = node;
    amend(&mut node);
    // The upstream's forges hear of the event from its start.
    if let Some(upstream) = work
        .tx
        .project(&node.project)?
        .filter(|p| !p.report_to.is_empty())
    {
        forges::start(work.record_mut(id)?, &upstream, node.url.as_deref());
    }
    let mut edit = Edit::creating(id);
    edit.put(0, node);
    if kind == StateKind::Passed {
        cascade::start(work, &mut edit)?;
    }
    verdicts::judge_all(work, &mut edit)?;
    let written = edit.write(work)?;
    lines::record(work, &written)?;
    Ok(Ok(ack(&written.node(work, id)?)))
}

/// Checks the environment a root report names. A promotion must name a version that
/// passed in the environment before; it rolls the environment back (the answer names
/// the version it had) when that version is older than the environment's.
fn promotion(
    work: &mut Work<'_, '_>,
    report: &Report,
) -> Result<Result<Option<String>, Refusal>, StoreError> {
    let stage = match work.environments.stage(report.environment.as_deref()) {
        Ok(stage) => stage,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let Stage::Promotion {
        environment,
        previous,
    } = stage
    else {
        return Ok(Ok(None));
    };
    let version = report.version.as_deref();
    let line = match version {
        Some(v) => work.tx.line(&report.project, v)?,
        None => None,
    };
    if let Err(refusal) = judge_promotion(
        &report.project,
        version,
        environment,
        previous,
        line.as_ref(),
    ) {
        return Ok(Err(refusal));
    }
    let current = work.tx.deployed(&report.project, environment)?;
    let ecosystem = work.graph.ecosystem(&report.project);
    Ok(Ok(version.and_then(|v| {
        rollback_from(ecosystem, v, current.as_deref())
    })))
}

/// Moves a build on by a report; `amend` may add to the node what the report cannot
/// say (the native CI run it came from), and is applied whether or not the state
/// changes.
pub(super) fn node_report(
    work: &mut Work<'_, '_>,
    build: BuildId,
    report: Report,
    principal: Principal,
    amend: &mut dyn FnMut(&mut Node),
) -> Result<Result<ReportAck, Refusal>, StoreError> {
    let Some(node) = work.tx.node(build)? else {
        return Ok(Err(Refusal::UnknownBuild(build)));
    };
    let attempt = match authorize_node_report(&principal, &node, &report) {
        Ok(attempt) => attempt,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let mut updated = match accept_report(node.state.kind(), node.attempt, attempt, report.state) {
        Err(refusal) => return Ok(Err(refusal.into())),
        Ok(ReportVerdict::Duplicate) => node.clone(),
        Ok(ReportVerdict::Apply) => reported(&node, report, work.now),
    };
    amend(&mut updated);
    if updated == node {
        return Ok(Ok(ack(&node)));
    }
    let position = work.tx.position(build)?.ok_or_else(|| {
        StoreError::Inconsistent(format!("build {build} has no position in its root event"))
    })?;
    let root = node.root;
    let mut edit = Edit::of(root);
    let mut starts_cascade = false;
    if position == 0 {
        let record = &work.event(root)?.record;
        starts_cascade = updated.state.kind() == StateKind::Passed && !record.cascade_started;
        if (&record.version, &record.commit, &record.git_ref)
            != (&updated.version, &updated.commit, &updated.git_ref)
        {
            let record = work.record_mut(root)?;
            record.version.clone_from(&updated.version);
            record.commit.clone_from(&updated.commit);
            record.git_ref.clone_from(&updated.git_ref);
        }
    }
    let state_changed = updated.state.kind() != node.state.kind();
    edit.put(position, updated);
    if starts_cascade {
        cascade::start(work, &mut edit)?;
    } else if state_changed {
        cascade::changed(work, &mut edit, position)?;
    }
    verdicts::judge_all(work, &mut edit)?;
    let written = edit.write(work)?;
    lines::record(work, &written)?;
    Ok(Ok(ack(&written.node(work, build)?)))
}

pub(super) fn ack(node: &Node) -> ReportAck {
    ReportAck {
        build: node.id,
        root: node.root,
        attempt: node.attempt,
        state: node.state.kind(),
        seq: node.seq,
        warnings: Vec::new(),
    }
}
