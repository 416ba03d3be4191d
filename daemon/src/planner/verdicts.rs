//! Verdicts' history: the same project's last built results in earlier events of the
//! same upstream and environment, which a finished build is judged against (the rule
//! itself, [`conjunction_protocol::verdict::judge`], is pure and shared with the
//! client's sample data).
//!
//! "Built" means the project's code ran and said something: the build passed or
//! failed. An errored build or a refused trigger is `infra` and leaves the history as
//! it was; blocked, skipped, cancelled and needs-bump builds get no verdict at all.

use conjunction_protocol::{Baseline, BuildId, StateKind};
use serde::{Deserialize, Serialize};

/// What the store keeps per (upstream, environment, project): the project's last two
/// built results from different events, so that a build can be compared with the
/// latest one from an *earlier* event even after its own event's result is recorded,
/// and the range last told to need a bump.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Baseline>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Baseline>,
    /// The range a needs-bump notice was last queued for; cleared once the project
    /// builds against the upstream again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bump_told: Option<String>,
    /// How the project's last result ended when it was infra (errored, or its trigger
    /// refused); cleared once it builds again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infra: Option<StateKind>,
    /// The mail that told of the project's last break on this upstream, as (notice,
    /// root event): the fix answers it, in whichever event it comes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_mail: Option<(BuildId, BuildId)>,
}

impl History {
    /// The latest built result from an event older than `root` (root ids grow with
    /// time, so an older event has a smaller id).
    pub fn baseline(&self, root: BuildId) -> Option<&Baseline> {
        [&self.last, &self.before]
            .into_iter()
            .flatten()
            .find(|b| b.root < root)
    }

    /// What a candidate's build is compared with: the latest kept result built with
    /// the upstream at `base` when it names a version kept here, else the latest
    /// result of a release (a candidate never records one).
    pub fn of_base(&self, base: Option<&str>) -> Option<&Baseline> {
        let kept = [&self.last, &self.before].into_iter().flatten();
        let with_base = base.and_then(|b| {
            kept.clone()
                .find(|r| r.upstream_version.as_deref() == Some(b))
        });
        with_base.or(self.last.as_ref())
    }

    /// Keeps `built` if it is among the two latest events' results. A later result of
    /// the same event replaces that event's; an event that finishes after a newer one
    /// takes the second place if it is newer than what is there.
    pub fn record(&mut self, built: Baseline) {
        match &self.last {
            Some(last) if last.root == built.root => self.last = Some(built),
            Some(last) if last.root > built.root => {
                if self.before.as_ref().is_none_or(|b| b.root <= built.root) {
                    self.before = Some(built);
                }
            }
            _ => self.before = self.last.replace(built),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use conjunction_protocol::Timestamp;
    use StateKind::*;

    fn built(root: u128, state: StateKind) -> Baseline {
        Baseline {
            root: BuildId(ulid::Ulid(root)),
            build: BuildId(ulid::Ulid(root * 100)),
            state,
            upstream_version: None,
            at: Timestamp(root as u64),
        }
    }

    #[test]
    fn the_baseline_is_the_latest_result_of_an_earlier_event() {
        let mut h = History::default();
        assert_eq!(h.baseline(BuildId(ulid::Ulid(5))), None);
        h.record(built(1, Passed));
        h.record(built(2, Failed));
        // Event 2's own result is not its baseline; event 1's is.
        assert_eq!(h.baseline(BuildId(ulid::Ulid(2))), Some(&built(1, Passed)));
        assert_eq!(h.baseline(BuildId(ulid::Ulid(3))), Some(&built(2, Failed)));
        // A rebuild in event 2 replaces event 2's result and keeps event 1's.
        h.record(built(2, Passed));
        assert_eq!(h.last, Some(built(2, Passed)));
        assert_eq!(h.before, Some(built(1, Passed)));
    }

    #[test]
    fn a_candidate_compares_with_its_base_or_the_latest_release() {
        let mut h = History::default();
        assert_eq!(h.of_base(None), None);
        let mut one = built(1, Passed);
        one.upstream_version = Some("1.0.0".into());
        let mut two = built(2, Failed);
        two.upstream_version = Some("2.0.0".into());
        h.record(one.clone());
        h.record(two.clone());
        assert_eq!(h.of_base(Some("1.0.0")), Some(&one));
        assert_eq!(h.of_base(Some("2.0.0")), Some(&two));
        // A commit, or a version no longer kept: the latest release's result.
        assert_eq!(h.of_base(Some("9f1c2e0")), Some(&two));
        assert_eq!(h.of_base(None), Some(&two));
    }

    #[test]
    fn an_event_that_finishes_after_a_newer_one_keeps_the_newer_as_last() {
        let mut h = History::default();
        h.record(built(1, Passed));
        h.record(built(3, Failed));
        h.record(built(2, Failed));
        assert_eq!(h.last, Some(built(3, Failed)));
        assert_eq!(h.before, Some(built(2, Failed)));
        // Something older than both is forgotten.
        h.record(built(1, Failed));
        assert_eq!(h.before, Some(built(2, Failed)));
        assert_eq!(h.baseline(BuildId(ulid::Ulid(3))), Some(&built(2, Failed)));
    }
}
