//! Builds (nodes of a cascade), their states, and root events.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ci::Run;
use crate::id::{BuildId, ProjectId};
use crate::notify::Notice;
pub use crate::state::StateKind;
use crate::time::Timestamp;
use crate::verdict::{Baseline, Verdict};

/// The state of a node, with the reason where the state needs one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum NodeState {
    /// Waits for its parents in this event.
    Pending,
    /// Its trigger is in the outbox.
    Queued,
    /// The CI accepted the trigger.
    Triggered,
    Running,
    Passed,
    Failed,
    /// The CI's infrastructure failed, not the build.
    Errored,
    Cancelled,
    /// A parent in this event did not pass.
    Blocked {
        blocked_by: BlockedBy,
    },
    /// The project is on a dependency cycle among the dependents; `cycle` is the path,
    /// starting and ending with this project.
    Skipped {
        cycle: Vec<ProjectId>,
    },
    /// The CI refused the trigger or stayed unreachable.
    TriggerFailed {
        reason: String,
    },
    /// The project's declared range on `upstream` stops below the new `version`: it
    /// is not built until someone bumps the range. Final, and not a failure.
    NeedsBump {
        bump: Bump,
    },
}

/// What a `needs_bump` node's project must change: its range on `upstream`, which
/// stops below `version`. (A field of its own, since a node's `version` is the one
/// it built.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bump {
    pub upstream: ProjectId,
    pub range: String,
    pub version: String,
}

/// The parent that kept a node from being triggered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedBy {
    pub build: BuildId,
    pub project: ProjectId,
    /// The parent's state when it blocked this node.
    pub state: StateKind,
}

impl NodeState {
    pub fn kind(&self) -> StateKind {
        match self {
            NodeState::Pending => StateKind::Pending,
            NodeState::Queued => StateKind::Queued,
            NodeState::Triggered => StateKind::Triggered,
            NodeState::Running => StateKind::Running,
            NodeState::Passed => StateKind::Passed,
            NodeState::Failed => StateKind::Failed,
            NodeState::Errored => StateKind::Errored,
            NodeState::Cancelled => StateKind::Cancelled,
            NodeState::Blocked { .. } => StateKind::Blocked,
            NodeState::Skipped { .. } => StateKind::Skipped,
            NodeState::TriggerFailed { .. } => StateKind::TriggerFailed,
            NodeState::NeedsBump { .. } => StateKind::NeedsBump,
        }
    }

    /// A sentence saying why the node is in this state, for states that have a reason.
    pub fn reason(&self) -> Option<String> {
        match self {
            NodeState::Blocked { blocked_by } => Some(format!(
                "blocked because {} ({}) {}",
                blocked_by.project, blocked_by.build, blocked_by.state
            )),
            NodeState::Skipped { cycle } => Some(format!(
                "skipped: dependency cycle {}",
                cycle
                    .iter()
                    .map(ProjectId::as_str)
                    .collect::<Vec<_>>()
                    .join(" -> ")
            )),
            NodeState::TriggerFailed { reason } => Some(format!("trigger failed: {reason}")),
            NodeState::NeedsBump {
                bump:
                    Bump {
                        upstream,
                        range,
                        version,
                    },
            } => Some(format!(
                "declares {range} on {upstream}; {version} is outside it: bump the range to adopt it"
            )),
            _ => None,
        }
    }
}

/// Why a rebuild is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RebuildRefusal {
    #[error("the build is still {0}; wait until it ends before rebuilding it")]
    InProgress(StateKind),
    #[error("the build is blocked by another build; rebuild that one and this one follows")]
    Blocked,
    #[error(
        "the build is skipped because its project is on a dependency cycle; break the cycle first"
    )]
    Skipped,
}

/// Says whether a node in state `current` may start its next attempt. The daemon
/// enforces this; clients use it to explain a refusal before asking.
pub fn may_rebuild(current: StateKind) -> Result<(), RebuildRefusal> {
    match current {
        StateKind::Pending | StateKind::Queued | StateKind::Triggered | StateKind::Running => {
            Err(RebuildRefusal::InProgress(current))
        }
        StateKind::Blocked => Err(RebuildRefusal::Blocked),
        StateKind::Skipped => Err(RebuildRefusal::Skipped),
        StateKind::Passed
        | StateKind::Failed
        | StateKind::Errored
        | StateKind::Cancelled
        | StateKind::TriggerFailed
        | StateKind::NeedsBump => Ok(()),
    }
}

/// One build of one project within a root event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub id: BuildId,
    pub project: ProjectId,
    /// The root event this node belongs to (the id of its root node).
    pub root: BuildId,
    /// The nodes of this event it waits for; empty for the root.
    pub parents: Vec<BuildId>,
    pub attempt: u32,
    #[serde(flatten)]
    pub state: NodeState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    /// The ref the trigger asks the CI to build: the ref of the line the project
    /// declares for the upstream's version. None builds the trigger's own ref.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<String>,
    /// The exact version of this project a promotion builds or deploys: the one its
    /// CI reported on the release line. None outside promotions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_version: Option<String>,
    /// Where the CI shows this build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The native CI run that builds this node, once the CI has accepted the trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<Run>,
    /// The failure excerpt from the last report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Set when this attempt is an automatic rerun, the nth, to confirm a failure
    /// that would otherwise break the project (its `confirm_failures`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun: Option<u32>,
    /// What the finished build means against the project's last built result in an
    /// earlier event of the same upstream; none while it runs, and for states that
    /// say nothing about the project's code (blocked, skipped, needs_bump, cancelled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// The earlier build the verdict compared with; none for `new` and `infra`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,
    /// Everyone told about this build (and, on a root, the upstream's digest).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<Notice>,
    /// What its reports carried that could not be used, such as a manifest that
    /// does not parse (the build's own state is taken all the same).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggered_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// The sequence number of the event that last changed this node.
    pub seq: u64,
}

impl Node {
    /// A node nothing has been reported about yet: its place in the event and its state.
    pub fn new(
        id: BuildId,
        project: ProjectId,
        root: BuildId,
        parents: Vec<BuildId>,
        state: NodeState,
        created_at: Timestamp,
    ) -> Self {
        Self {
            id,
            project,
            root,
            parents,
            attempt: 1,
            state,
            version: None,
            commit: None,
            git_ref: None,
            target_ref: None,
            target_version: None,
            url: None,
            run: None,
            summary: None,
            metadata: BTreeMap::new(),
            rerun: None,
            verdict: None,
            baseline: None,
            notices: Vec::new(),
            warnings: Vec::new(),
            created_at,
            triggered_at: None,
            started_at: None,
            finished_at: None,
            seq: 0,
        }
    }

    pub fn is_root(&self) -> bool {
        self.id == self.root
    }
}

/// A root event without its nodes: what the list of recent events shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootSummary {
    pub id: BuildId,
    pub project: ProjectId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    /// The environment the release went to, when its report named one; a report
    /// without one is a release into the first environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Set when this promotion rolls the environment back: the newer version it had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_from: Option<String>,
    pub created_at: Timestamp,
    /// How many nodes are in each state.
    pub counts: BTreeMap<StateKind, u32>,
    /// How many finished builds have each verdict.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub verdicts: BTreeMap<Verdict, u32>,
    /// Things the planner noticed and ignored, such as an edge back into the root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The dependents a promotion leaves where they are, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_promoted: Vec<crate::impact::NotAffected>,
    /// Who reported the root: a report token, a CI identity, a CI's run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_by: Option<crate::audit::Actor>,
    /// How telling the upstream's forges about this event went.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forge: Vec<crate::forge::ForgeReport>,
    /// Set on a candidate event: the change it tests before it merges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<crate::Candidate>,
    /// Set once a newer candidate of the same change took this one's place: its
    /// builds that had not finished were cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<BuildId>,
}

/// A root event with its nodes in planning order (parents before children), or one
/// page of them.
///
/// Within a root event, build ids increase in planning order: sorting an event's
/// nodes by id puts them in the same order as the daemon lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootEvent {
    #[serde(flatten)]
    pub summary: RootSummary,
    pub nodes: Vec<Node>,
    /// Set when more nodes follow this page: ask again with `?after=` this build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<BuildId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_with_its_reason_reads_back_from_a_node_with_every_field_set() {
        let id = BuildId(ulid::Ulid::from_parts(1, 1));
        let lib = ProjectId::parse("acme/lib").unwrap();
        let states = [
            NodeState::Pending,
            NodeState::Passed,
            NodeState::Blocked {
                blocked_by: BlockedBy {
                    build: id,
                    project: lib.clone(),
                    state: StateKind::Failed,
                },
            },
            NodeState::Skipped {
                cycle: vec![lib.clone(), lib.clone()],
            },
            NodeState::TriggerFailed {
                reason: "refused".into(),
            },
            NodeState::NeedsBump {
                bump: Bump {
                    upstream: lib.clone(),
                    range: "^1".into(),
                    version: "2.0.0".into(),
                },
            },
        ];
        for state in states {
            // A state's fields sit beside the node's own: no name may be used twice.
            let mut node = Node::new(
                id,
                lib.clone(),
                id,
                vec![id],
                state,
                Timestamp(1_700_000_000_000),
            );
            node.version = Some("1.0.0".into());
            node.commit = Some("abc".into());
            node.git_ref = Some("main".into());
            node.target_ref = Some("release-1.x".into());
            node.target_version = Some("1.0.3".into());
            node.url = Some("https://ci.example/1".into());
            node.summary = Some("summary".into());
            let json = serde_json::to_string(&node).unwrap();
            assert_eq!(serde_json::from_str::<Node>(&json).unwrap(), node, "{json}");
        }
    }

    #[test]
    fn node_state_is_flattened_into_the_node_with_its_reason() {
        let id = BuildId(ulid::Ulid::from_parts(1, 1));
        let mut node = Node::new(
            id,
            ProjectId::parse("acme/app").unwrap(),
            id,
            vec![],
            NodeState::Blocked {
                blocked_by: BlockedBy {
                    build: id,
                    project: ProjectId::parse("acme/lib").unwrap(),
                    state: StateKind::Failed,
                },
            },
            Timestamp(0),
        );
        node.seq = 3;
        let json = serde_json::to_value(&node).unwrap();
        assert_eq!(json["state"], "blocked");
        assert_eq!(json["blocked_by"]["project"], "acme/lib");
        let back: Node = serde_json::from_value(json).unwrap();
        assert_eq!(back, node);
    }

    #[test]
    fn only_final_non_passed_states_are_failures() {
        assert!(!StateKind::Running.is_failure());
        assert!(!StateKind::Passed.is_failure());
        assert!(StateKind::Blocked.is_failure());
        assert!(StateKind::TriggerFailed.is_failure());
    }
}
