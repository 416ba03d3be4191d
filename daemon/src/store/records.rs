//! What the tables hold: the records, and how they are encoded.
//!
//! Records are JSON, so a newer daemon reads what an older one wrote and an operator
//! can read them with any redb tool. Members (the planner's view of a node) are
//! [`crate::planner::Member`] itself; whom a token speaks for is
//! [`crate::planner::Principal`].

use std::collections::BTreeMap;

use conjunction_protocol::impact::NotAffected;
use conjunction_protocol::notify::{Channel, NotifyRule};

use crate::notify::message::Message;
use conjunction_protocol::project::{Badges, DependencyOrigin, ManifestSource};
use conjunction_protocol::trigger::TriggerPayload;
use conjunction_protocol::{
    Baseline, BuildId, CiKind, Contact, Dependency, Package, Project, ProjectId, RootSummary,
    SourceSpec, StateKind, Timestamp, TriggerSpec, Verdict,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::StoreError;

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    Ok(serde_json::from_slice(bytes)?)
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value)
        .expect("records serialize: they hold only strings, numbers and maps with string keys")
}

/// A person's token as stored under its hash: what `GET /v1/tokens` shows, and the
/// id of the token that issued it (none for the operator token files), by which a
/// maintainer finds the viewer tokens it may revoke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonToken {
    #[serde(flatten)]
    pub info: conjunction_protocol::access::TokenInfo,
    #[serde(default)]
    pub issuer: Option<String>,
}

/// A project as stored: its public fields, its trigger with secrets, and the hash of
/// its report token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredProject {
    pub id: ProjectId,
    pub name: String,
    pub contacts: Vec<Contact>,
    pub depends_on: Vec<Dependency>,
    pub trigger: Option<TriggerSpec>,
    pub package: Option<Package>,
    #[serde(default)]
    pub source: Option<SourceSpec>,
    #[serde(default)]
    pub reconcile_after_secs: Option<u64>,
    #[serde(default)]
    pub confirm_failures: u32,
    #[serde(default)]
    pub badges: Badges,
    #[serde(default)]
    pub notify: Vec<NotifyRule>,
    /// Its people hear of its upstreams' candidates too, not only of releases.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub notify_candidates: bool,
    pub report_token_sha256: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Who last changed it.
    #[serde(default)]
    pub changed: Option<conjunction_protocol::audit::Changed>,
    #[serde(default)]
    pub trusted_ci: Vec<conjunction_protocol::identity::TrustedCi>,
    /// The forges its commits are told its dependents' results on, with their
    /// credentials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub report_to: Vec<conjunction_protocol::forge::ReportTarget>,
    /// Where its `depends_on` comes from.
    #[serde(default, skip_serializing_if = "DependencyOrigin::is_declared")]
    pub dependencies: DependencyOrigin,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dev_dependencies: bool,
    /// The manifests `depends_on` was last read from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<ManifestSource>,
}

impl StoredProject {
    pub fn view(&self) -> Project {
        Project {
            id: self.id.clone(),
            name: self.name.clone(),
            contacts: self.contacts.clone(),
            depends_on: self.depends_on.clone(),
            trigger: self.trigger.as_ref().map(TriggerSpec::view),
            package: self.package.clone(),
            source: self.source.as_ref().map(|s| s.view(self.trigger.as_ref())),
            reconcile_after_secs: self.reconcile_after_secs,
            confirm_failures: self.confirm_failures,
            badges: self.badges,
            notify: self.notify.iter().map(NotifyRule::view).collect(),
            notify_candidates: self.notify_candidates,
            created_at: self.created_at,
            updated_at: self.updated_at,
            changed: self.changed.clone(),
            trusted_ci: self.trusted_ci.clone(),
            report_to: self.report_to.iter().map(|t| t.view()).collect(),
            dependencies: self.dependencies,
            dev_dependencies: self.dev_dependencies,
            manifest: self.manifest.clone(),
        }
    }

    /// Equal in everything a user sets: the timestamps aside.
    pub fn same_settings(&self, other: &StoredProject) -> bool {
        let strip = |p: &StoredProject| StoredProject {
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
            changed: None,
            ..p.clone()
        };
        strip(self) == strip(other)
    }

    /// The report token's hash, as bytes.
    pub fn token_hash(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        // Written from a 32-byte hash; anything else reads as no token.
        let _ = hex::decode_to_slice(&self.report_token_sha256, &mut out);
        out
    }
}

/// A root event's own record: what started it and how many of its nodes are in each
/// state. Its nodes are members of their own, keyed by root and position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RootRecord {
    pub id: BuildId,
    pub project: ProjectId,
    pub version: Option<String>,
    pub commit: Option<String>,
    pub git_ref: Option<String>,
    /// The environment the root report named; none is a release into the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Set when this promotion rolls the environment back: the newer version it had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_from: Option<String>,
    pub created_at: Timestamp,
    pub notes: Vec<String>,
    /// In a promotion: the dependents left where they are, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_promoted: Vec<NotAffected>,
    /// Set once the root passed and its dependents were planned.
    pub cascade_started: bool,
    /// Nodes in each state, kept as they change.
    pub counts: BTreeMap<StateKind, u32>,
    /// Finished builds with each verdict, kept as they are given.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub verdicts: BTreeMap<Verdict, u32>,
    /// Projects to name in the digest, per verdict (`broke`, `fixed`) and for
    /// `needs_bump`: the first few, kept as verdicts are given and given back.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub named: BTreeMap<String, Vec<ProjectId>>,
    /// Set once the upstream's digest of the finished event was queued.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub digest_queued: bool,
    /// How many nodes the event has (positions `0..size`).
    pub size: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_by: Option<conjunction_protocol::audit::Actor>,
    /// Telling the upstream's forges about this event, one mark per forge.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forge: Vec<ForgeMark>,
    /// Set on a candidate event: the change it tests before it merges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<conjunction_protocol::Candidate>,
    /// The newer candidate of the same change that took this one's place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<BuildId>,
    /// Why a candidate was ended before it finished (its request was closed, or
    /// superseded): nothing about it is told after that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
}

/// Telling one of the upstream's forges about an event: how it went (shown on the
/// event), what the forge calls what conjunction made there, and whether the event
/// moved since the forge was last told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ForgeMark {
    /// How it went; `report.to` is the target's label, by which the sender finds its
    /// settings on the upstream.
    pub report: conjunction_protocol::forge::ForgeReport,
    /// The forge's id of what conjunction made there (a check run), once made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// The candidate's comment on its pull or merge request, once made or found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// With one commit status per dependent: the state each was last told.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub posted: BTreeMap<ProjectId, String>,
    /// The outbox entry while one is queued or being sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<BuildId>,
    /// Goes up each time the event's counts move.
    pub generation: u64,
    /// The generation the forge was last told.
    pub told: u64,
    /// A fingerprint of the counts at the last move.
    pub progress: u64,
}

/// A forge report waiting to be sent: which event, which of the upstream's forges,
/// and how its tries went. What it says is read when it is sent, so one send tells
/// the newest state however many changes came before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgeEntry {
    pub id: BuildId,
    pub root: BuildId,
    /// The position of its mark in the event's record.
    pub index: u32,
    pub due: Timestamp,
    pub tries: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// What a forge report is made from, read in one transaction.
pub(crate) struct ForgeView {
    pub record: RootRecord,
    pub root: conjunction_protocol::Node,
    pub upstream: StoredProject,
    /// The event's dependents, when asked for.
    pub dependents: Vec<conjunction_protocol::Node>,
}

impl RootRecord {
    pub fn summary(&self) -> RootSummary {
        RootSummary {
            id: self.id,
            project: self.project.clone(),
            version: self.version.clone(),
            commit: self.commit.clone(),
            git_ref: self.git_ref.clone(),
            environment: self.environment.clone(),
            rollback_from: self.rollback_from.clone(),
            created_at: self.created_at,
            counts: self.counts.clone(),
            verdicts: self.verdicts.clone(),
            notes: self.notes.clone(),
            not_promoted: self.not_promoted.clone(),
            reported_by: self.reported_by.clone(),
            forge: self.forge.iter().map(|m| m.report.clone()).collect(),
            candidate: self.candidate.clone(),
            superseded_by: self.superseded_by,
        }
    }

    /// Moves `project`'s build from verdict `from` to `to` in the verdict counts, and
    /// in the names the digest gives.
    pub fn count_verdict(
        &mut self,
        project: &ProjectId,
        from: Option<Verdict>,
        to: Option<Verdict>,
    ) {
        if let Some(from) = from {
            if let Some(n) = self.verdicts.get_mut(&from) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.verdicts.remove(&from);
                }
            }
            self.unname(from.as_str(), project);
        }
        if let Some(to) = to {
            *self.verdicts.entry(to).or_insert(0) += 1;
            if matches!(to, Verdict::Broke | Verdict::Fixed) {
                self.name(to.as_str(), project);
            }
        }
    }

    /// Names `project` under `key` for the digest, while there is room.
    pub fn name(&mut self, key: &str, project: &ProjectId) {
        let names = self.named.entry(key.to_owned()).or_default();
        if names.len() < crate::notify::message::DIGEST_NAMES && !names.contains(project) {
            names.push(project.clone());
        }
    }

    fn unname(&mut self, key: &str, project: &ProjectId) {
        if let Some(names) = self.named.get_mut(key) {
            names.retain(|p| p != project);
            if names.is_empty() {
                self.named.remove(key);
            }
        }
    }

    /// Every node has reached a final state.
    pub fn is_finished(&self) -> bool {
        self.counts.keys().all(|k| k.is_final())
    }

    /// Moves one node from state `from` (if it had one) to `to` in the counts.
    pub fn count(&mut self, from: Option<StateKind>, to: StateKind) {
        if let Some(from) = from {
            if let Some(n) = self.counts.get_mut(&from) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.counts.remove(&from);
                }
            }
        }
        *self.counts.entry(to).or_insert(0) += 1;
    }
}

/// What a project's badges show: its own latest result, and its latest finished
/// cascades as an upstream (the one before is what the changes badge compares with).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latest {
    /// The project's own latest final build (as a root or a dependent) that ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own: Option<Baseline>,
    /// Its latest root event whose cascade finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<BuildId>,
    /// The finished one before that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<BuildId>,
}

/// A notice waiting to be sent: where to (with the channel's secrets), what it says,
/// and the build whose `notices[index]` records how it went.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeEntry {
    pub id: BuildId,
    pub build: BuildId,
    pub index: u32,
    pub channel: Channel,
    pub message: Message,
    /// Tries made so far.
    pub tries: u32,
    pub due: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl std::fmt::Debug for NoticeEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoticeEntry")
            .field("id", &self.id)
            .field("build", &self.build)
            .field("channel", &self.channel.describe())
            .field("kind", &self.message.kind)
            .field("tries", &self.tries)
            .field("due", &self.due)
            .finish_non_exhaustive()
    }
}

/// A native CI run conjunction knows, and the build it is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RunRecord {
    pub build: BuildId,
    /// The build's attempt the run is for.
    pub attempt: u32,
    /// The run's own attempt, as the CI counts it, when the run is a root event's: a
    /// re-run from the CI's page is a new root event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_attempt: Option<u32>,
}

/// The key of a run in the runs table.
pub(crate) fn run_key(project: &ProjectId, ci: CiKind, run_id: &str) -> String {
    format!("{project}\n{ci}\n{run_id}")
}

/// A build of a native CI that is triggered or running: the reconciler asks its CI
/// about it when it has had no news for a while.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watched {
    pub build: BuildId,
    pub project: ProjectId,
    pub attempt: u32,
    /// When the build last changed.
    pub since: Timestamp,
}

/// A trigger waiting to be delivered.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub build: BuildId,
    pub attempt: u32,
    pub project: ProjectId,
    /// The body to send; it holds the build-scoped token. Its report URL is set
    /// from the daemon's public URL when it is sent, so a changed URL applies.
    pub payload: TriggerPayload,
    /// Delivery attempts made so far.
    pub tries: u32,
    pub due: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl std::fmt::Debug for OutboxEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxEntry")
            .field("build", &self.build)
            .field("attempt", &self.attempt)
            .field("project", &self.project)
            .field("tries", &self.tries)
            .field("due", &self.due)
            .finish_non_exhaustive()
    }
}
