//! Verdicts: a finished build against the same project's last built result in an
//! earlier event of the same upstream and environment, and when a failure is rebuilt
//! to confirm it before it is called a break.
//!
//! "Built" means the project's code ran and said something: the build passed or
//! failed. An errored build or a refused trigger is `infra` and leaves the history as
//! it was; blocked, skipped, cancelled and needs-bump builds get no verdict at all.

use conjunction_protocol::{Baseline, BuildId, StateKind, Verdict};
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

/// What to make of a build that just reached a final state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    /// Give it this verdict.
    Verdict(Verdict),
    /// It would break the project: rebuild it (rerun `n`) before saying so.
    Rerun(u32),
    /// The state says nothing about the project's code.
    None,
}

/// Judges a build that ended in `state`. `baseline` is the last built result from an
/// earlier event; `rerun` is set when this attempt is an automatic rerun, the nth;
/// `confirm_failures` is how many reruns the project asks for before a break.
pub fn judge(
    state: StateKind,
    baseline: Option<StateKind>,
    rerun: Option<u32>,
    confirm_failures: u32,
) -> Judgement {
    use StateKind::*;
    let verdict = match (state, baseline) {
        (Passed, _) if rerun.is_some() => Verdict::Flaky,
        (Passed | Failed, None) => Verdict::New,
        (Passed, Some(Passed)) => Verdict::Same,
        (Passed, Some(_)) => Verdict::Fixed,
        (Failed, Some(Passed)) => {
            let done = rerun.unwrap_or(0);
            if done < confirm_failures {
                return Judgement::Rerun(done + 1);
            }
            Verdict::Broke
        }
        (Failed, Some(_)) => Verdict::StillFailing,
        (Errored | TriggerFailed, _) => Verdict::Infra,
        (Pending | Queued | Triggered | Running, _)
        | (Cancelled | Blocked | Skipped | NeedsBump, _) => return Judgement::None,
    };
    Judgement::Verdict(verdict)
}

/// Whether a build in `state` is a built result the next event compares with.
pub fn is_built(state: StateKind) -> bool {
    matches!(state, StateKind::Passed | StateKind::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use conjunction_protocol::Timestamp;
    use StateKind::*;

    fn v(verdict: Verdict) -> Judgement {
        Judgement::Verdict(verdict)
    }

    #[test]
    fn a_result_is_judged_against_the_last_built_one() {
        assert_eq!(judge(Passed, None, None, 0), v(Verdict::New));
        assert_eq!(judge(Failed, None, None, 0), v(Verdict::New));
        assert_eq!(judge(Passed, Some(Passed), None, 0), v(Verdict::Same));
        assert_eq!(judge(Passed, Some(Failed), None, 0), v(Verdict::Fixed));
        assert_eq!(judge(Failed, Some(Passed), None, 0), v(Verdict::Broke));
        assert_eq!(
            judge(Failed, Some(Failed), None, 0),
            v(Verdict::StillFailing)
        );
    }

    #[test]
    fn infrastructure_failures_are_infra_whatever_came_before() {
        for before in [None, Some(Passed), Some(Failed)] {
            assert_eq!(judge(Errored, before, None, 2), v(Verdict::Infra));
            assert_eq!(judge(TriggerFailed, before, None, 2), v(Verdict::Infra));
        }
    }

    #[test]
    fn states_that_say_nothing_about_the_code_get_no_verdict() {
        for state in [Cancelled, Blocked, Skipped, NeedsBump, Running, Pending] {
            assert_eq!(judge(state, Some(Passed), None, 0), Judgement::None);
        }
    }

    #[test]
    fn a_break_is_rerun_as_often_as_the_project_asks_before_it_is_called_one() {
        assert_eq!(judge(Failed, Some(Passed), None, 2), Judgement::Rerun(1));
        assert_eq!(judge(Failed, Some(Passed), Some(1), 2), Judgement::Rerun(2));
        assert_eq!(judge(Failed, Some(Passed), Some(2), 2), v(Verdict::Broke));
        // A rerun that passes shows the failure was flaky.
        assert_eq!(judge(Passed, Some(Passed), Some(1), 2), v(Verdict::Flaky));
        // A rerun that errors says nothing about the code either way.
        assert_eq!(judge(Errored, Some(Passed), Some(1), 2), v(Verdict::Infra));
        // Only a would-be break is confirmed: failing again and new failures are not.
        assert_eq!(
            judge(Failed, Some(Failed), None, 2),
            v(Verdict::StillFailing)
        );
        assert_eq!(judge(Failed, None, None, 2), v(Verdict::New));
    }

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
