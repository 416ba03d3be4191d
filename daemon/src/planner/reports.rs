//! Reports and rebuilds: who may report on what, whether a report fits the node's
//! attempt and state, what a report makes of a node, and whether a node may start its
//! next attempt.

use conjunction_protocol::node::may_rebuild;
use conjunction_protocol::{
    BuildId, Node, NodeState, ProjectId, Report, ReportState, StateKind, Timestamp,
};
use serde::{Deserialize, Serialize};

use super::graph::Untriggerable;
use super::refusal::{Forbidden, Refusal};

/// Whom a report token speaks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Principal {
    /// A project's report token.
    Project { project: ProjectId },
    /// A build-scoped token, valid for one node and attempt.
    Build { build: BuildId, attempt: u32 },
}

/// A root report (one without `build`) must come with the project's own report token.
pub fn authorize_root_report(principal: &Principal, report: &Report) -> Result<(), Refusal> {
    match principal {
        Principal::Project { project } if *project == report.project => Ok(()),
        Principal::Project { project } => Err(Forbidden::OtherProject {
            owner: project.clone(),
            project: report.project.clone(),
        }
        .into()),
        Principal::Build { build, .. } => {
            Err(Forbidden::BuildTokenForRoot { build: *build }.into())
        }
    }
}

/// A report on `node` must come with its project's report token or with the build
/// token of that node and attempt. Returns the attempt the report is about: the one it
/// names, or else the token's, or else the node's current one.
pub fn authorize_node_report(
    principal: &Principal,
    node: &Node,
    report: &Report,
) -> Result<u32, Refusal> {
    let build = node.id;
    let attempt = match principal {
        Principal::Project { project } if *project != node.project => {
            return Err(Forbidden::OtherProjectsBuild {
                owner: project.clone(),
                build,
                project: node.project.clone(),
            }
            .into())
        }
        Principal::Project { .. } => report.attempt.unwrap_or(node.attempt),
        Principal::Build { build: scoped, .. } if *scoped != build => {
            return Err(Forbidden::OtherBuild {
                scoped: *scoped,
                build,
            }
            .into())
        }
        Principal::Build { attempt, .. } if report.attempt.is_some_and(|a| a != *attempt) => {
            return Err(Forbidden::OtherAttempt {
                attempt: *attempt,
                build,
            }
            .into())
        }
        Principal::Build { attempt, .. } => *attempt,
    };
    if report.project != node.project {
        return Err(Refusal::ProjectMismatch {
            build,
            owner: node.project.clone(),
            named: report.project.clone(),
        });
    }
    Ok(attempt)
}

/// How a report relates to the node it is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportVerdict {
    /// Record the report.
    Apply,
    /// The node already has this final state: answer as before and change nothing.
    Duplicate,
}

/// Why a report about an existing node is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportRefusal {
    #[error("attempt {reported} is older than the current attempt {current}; reports for earlier attempts are refused")]
    StaleAttempt { reported: u32, current: u32 },
    #[error("attempt {reported} has not started; the build is at attempt {current}")]
    FutureAttempt { reported: u32, current: u32 },
    #[error("the build is {current} and was never triggered, so it cannot be reported on")]
    NotTriggered { current: StateKind },
    #[error("the build already ended as {current}; it cannot become {reported} without a rebuild")]
    AlreadyFinal {
        current: StateKind,
        reported: StateKind,
    },
}

/// Judges a report of `reported` for `attempt` about a node that is at `current_attempt`
/// in state `current`.
pub fn accept_report(
    current: StateKind,
    current_attempt: u32,
    attempt: u32,
    reported: ReportState,
) -> Result<ReportVerdict, ReportRefusal> {
    if attempt < current_attempt {
        return Err(ReportRefusal::StaleAttempt {
            reported: attempt,
            current: current_attempt,
        });
    }
    if attempt > current_attempt {
        return Err(ReportRefusal::FutureAttempt {
            reported: attempt,
            current: current_attempt,
        });
    }
    match current {
        StateKind::Pending | StateKind::Blocked | StateKind::Skipped | StateKind::NeedsBump => {
            Err(ReportRefusal::NotTriggered { current })
        }
        StateKind::Queued | StateKind::Triggered | StateKind::Running => Ok(ReportVerdict::Apply),
        // The trigger looked lost (a timeout, say) but the CI ran after all: believe the CI.
        StateKind::TriggerFailed => Ok(ReportVerdict::Apply),
        StateKind::Passed | StateKind::Failed | StateKind::Errored | StateKind::Cancelled => {
            if reported.kind() == current {
                Ok(ReportVerdict::Duplicate)
            } else {
                Err(ReportRefusal::AlreadyFinal {
                    current,
                    reported: reported.kind(),
                })
            }
        }
    }
}

/// The node after an accepted report: the new state and its timestamps, the fields
/// the report sets (the others keep their values) and its metadata merged in.
pub fn reported(node: &Node, report: Report, now: Timestamp) -> Node {
    let mut updated = node.clone();
    updated.state = report.state.to_node_state();
    if report.state.is_final() {
        updated.finished_at = Some(now);
    } else if updated.started_at.is_none() {
        updated.started_at = Some(now);
    }
    for (field, value) in [
        (&mut updated.version, report.version),
        (&mut updated.commit, report.commit),
        (&mut updated.git_ref, report.git_ref),
        (&mut updated.url, report.url),
        (&mut updated.summary, report.summary),
    ] {
        if value.is_some() {
            *field = value;
        }
    }
    updated.metadata.extend(report.metadata);
    updated
}

/// Whether a node in `state` of a project that is `triggerable` (or not) may start
/// its next attempt.
pub fn judge_rebuild(
    state: StateKind,
    triggerable: Result<(), Untriggerable>,
) -> Result<(), Refusal> {
    may_rebuild(state)?;
    match triggerable {
        Ok(()) => Ok(()),
        Err(Untriggerable::Unregistered(p)) => Err(Refusal::ProjectGone(p)),
        Err(Untriggerable::NoTrigger(p)) => Err(Refusal::NoTrigger(p)),
    }
}

/// The node at the start of its next attempt, queued: what the last attempt's CI said
/// is cleared, its run too (the next attempt is another run, which its trigger's
/// answer or webhook names). A dependent's version, commit and ref came from its CI
/// too; the root's came from the upstream's report and stay.
pub fn next_attempt(node: &Node) -> Node {
    let mut next = node.clone();
    next.attempt += 1;
    next.state = NodeState::Queued;
    next.run = None;
    next.url = None;
    next.summary = None;
    next.triggered_at = None;
    next.started_at = None;
    next.finished_at = None;
    // A rebuild asked for by a person is no rerun; an automatic one says so itself.
    next.rerun = None;
    if !node.is_root() {
        next.version = None;
        next.commit = None;
        next.git_ref = None;
        next.metadata.clear();
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_judged_by_attempt_and_state() {
        use ReportState::*;
        assert_eq!(
            accept_report(StateKind::Triggered, 1, 1, Running),
            Ok(ReportVerdict::Apply)
        );
        assert_eq!(
            accept_report(StateKind::Passed, 1, 1, Passed),
            Ok(ReportVerdict::Duplicate)
        );
        assert!(matches!(
            accept_report(StateKind::Passed, 1, 1, Failed),
            Err(ReportRefusal::AlreadyFinal { .. })
        ));
        assert!(matches!(
            accept_report(StateKind::Queued, 2, 1, Passed),
            Err(ReportRefusal::StaleAttempt { .. })
        ));
        assert!(matches!(
            accept_report(StateKind::Pending, 1, 1, Passed),
            Err(ReportRefusal::NotTriggered { .. })
        ));
    }

    #[test]
    fn only_finished_unblocked_builds_of_triggerable_projects_may_be_rebuilt() {
        let p = ProjectId::parse("acme/app").unwrap();
        assert!(judge_rebuild(StateKind::Failed, Ok(())).is_ok());
        assert!(judge_rebuild(StateKind::TriggerFailed, Ok(())).is_ok());
        assert_eq!(
            judge_rebuild(StateKind::Running, Ok(())),
            Err(Refusal::Rebuild(
                conjunction_protocol::node::RebuildRefusal::InProgress(StateKind::Running)
            ))
        );
        assert_eq!(
            judge_rebuild(StateKind::Failed, Err(Untriggerable::NoTrigger(p.clone()))),
            Err(Refusal::NoTrigger(p.clone()))
        );
        assert_eq!(
            judge_rebuild(
                StateKind::Failed,
                Err(Untriggerable::Unregistered(p.clone()))
            ),
            Err(Refusal::ProjectGone(p))
        );
    }

    fn node(project: &str, attempt: u32) -> Node {
        let id = BuildId(ulid::Ulid::from_parts(1, 2));
        let root = BuildId(ulid::Ulid::from_parts(1, 1));
        let mut n = Node::new(
            id,
            ProjectId::parse(project).unwrap(),
            root,
            vec![root],
            NodeState::Triggered,
            Timestamp(0),
        );
        n.attempt = attempt;
        n
    }

    fn report(project: &str, attempt: Option<u32>) -> Report {
        let mut r: Report =
            serde_json::from_value(serde_json::json!({"project": project, "state": "passed"}))
                .unwrap();
        r.build = Some(BuildId(ulid::Ulid::from_parts(1, 2)));
        r.attempt = attempt;
        r
    }

    #[test]
    fn a_token_speaks_only_for_its_project_build_and_attempt() {
        let n = node("acme/app", 2);
        let own = Principal::Project {
            project: n.project.clone(),
        };
        let other = Principal::Project {
            project: ProjectId::parse("acme/lib").unwrap(),
        };
        let scoped = Principal::Build {
            build: n.id,
            attempt: 2,
        };
        let elsewhere = Principal::Build {
            build: n.root,
            attempt: 2,
        };
        assert_eq!(
            authorize_node_report(&own, &n, &report("acme/app", None)),
            Ok(2)
        );
        assert_eq!(
            authorize_node_report(&own, &n, &report("acme/app", Some(1))),
            Ok(1)
        );
        assert_eq!(
            authorize_node_report(&scoped, &n, &report("acme/app", None)),
            Ok(2)
        );
        for (principal, r) in [
            (&other, report("acme/app", None)),
            (&elsewhere, report("acme/app", None)),
            (&scoped, report("acme/app", Some(1))),
        ] {
            assert!(matches!(
                authorize_node_report(principal, &n, &r),
                Err(Refusal::Forbidden(_))
            ));
        }
        assert!(matches!(
            authorize_node_report(&scoped, &n, &report("acme/lib", None)),
            Err(Refusal::ProjectMismatch { .. })
        ));
        assert!(matches!(
            authorize_root_report(&scoped, &report("acme/app", None)),
            Err(Refusal::Forbidden(Forbidden::BuildTokenForRoot { .. }))
        ));
    }
}
