//! Verdicts: what a finished build means, compared with the same project's last built
//! result in an earlier event of the same upstream (and environment).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::id::{BuildId, ProjectId};
use crate::state::StateKind;
use crate::time::Timestamp;

/// A finished build compared with the build before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// It passed the last time and fails now (confirmed by reruns when the project
    /// asks for them).
    Broke,
    /// It failed the last time and passes now.
    Fixed,
    /// It failed the last time and fails now.
    StillFailing,
    /// It passed the last time and passes now.
    Same,
    /// It was never built against this upstream before.
    New,
    /// Its CI's infrastructure failed (errored), or the CI refused the trigger: this
    /// says nothing about the project's code.
    Infra,
    /// It failed where it passed the last time, and passed when rebuilt to confirm.
    Flaky,
}

impl Verdict {
    /// Every verdict, in the order counts are written.
    pub const ALL: [Verdict; 7] = [
        Verdict::Broke,
        Verdict::Fixed,
        Verdict::StillFailing,
        Verdict::Flaky,
        Verdict::Infra,
        Verdict::New,
        Verdict::Same,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Broke => "broke",
            Verdict::Fixed => "fixed",
            Verdict::StillFailing => "still_failing",
            Verdict::Same => "same",
            Verdict::New => "new",
            Verdict::Infra => "infra",
            Verdict::Flaky => "flaky",
        }
    }

    /// The verdict as a person reads it in a count ("2 still failing").
    pub fn words(self) -> &'static str {
        match self {
            Verdict::StillFailing => "still failing",
            other => other.as_str(),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The earlier build a verdict was given against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    /// Its root event, and the upstream version that event released.
    pub root: BuildId,
    pub build: BuildId,
    pub state: StateKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_version: Option<String>,
    pub at: Timestamp,
}

/// A sentence that says what `verdict` means for a build of a project against
/// `upstream`, naming the build it compared with.
pub fn explain(verdict: Verdict, baseline: Option<&Baseline>, upstream: &ProjectId) -> String {
    let then = match baseline.and_then(|b| b.upstream_version.as_deref()) {
        Some(v) => format!("{upstream} {v}"),
        None => format!("the last {upstream} event"),
    };
    match verdict {
        Verdict::Broke => format!("broke: it passed with {then} and fails now"),
        Verdict::Fixed => format!("fixed: it failed with {then} and passes now"),
        Verdict::StillFailing => format!("still failing: it failed with {then} too"),
        Verdict::Same => format!("same: it passed with {then} too"),
        Verdict::New => format!("new: it was never built against {upstream} before"),
        Verdict::Infra => {
            "infra: its CI could not run it, which says nothing about its code".to_owned()
        }
        Verdict::Flaky => {
            format!("flaky: it passed with {then}, failed now, and passed when rebuilt to confirm")
        }
    }
}

/// Verdict counts as a short line: "2 broke · 1 fixed · 39 same", in the order of
/// [`Verdict::ALL`]; verdicts with no build are left out.
pub fn counts_line(counts: &std::collections::BTreeMap<Verdict, u32>) -> String {
    Verdict::ALL
        .iter()
        .filter_map(|v| counts.get(v).filter(|n| **n > 0).map(|n| (v, n)))
        .map(|(v, n)| format!("{n} {}", v.words()))
        .collect::<Vec<_>>()
        .join(" · ")
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

    use std::collections::BTreeMap;

    #[test]
    fn counts_read_worst_first_and_leave_out_zeroes() {
        let counts = BTreeMap::from([
            (Verdict::Same, 39),
            (Verdict::Broke, 2),
            (Verdict::Fixed, 1),
            (Verdict::StillFailing, 0),
        ]);
        assert_eq!(counts_line(&counts), "2 broke · 1 fixed · 39 same");
        assert_eq!(counts_line(&BTreeMap::new()), "");
        let one = BTreeMap::from([(Verdict::StillFailing, 3)]);
        assert_eq!(counts_line(&one), "3 still failing");
    }

    #[test]
    fn verdicts_are_snake_case_on_the_wire() {
        assert_eq!(
            serde_json::to_string(&Verdict::StillFailing).unwrap(),
            "\"still_failing\""
        );
        for v in Verdict::ALL {
            let json = serde_json::to_string(&v).unwrap();
            assert_eq!(json, format!("\"{}\"", v.as_str()));
        }
    }
}
