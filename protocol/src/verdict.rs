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

#[cfg(test)]
mod tests {
    use super::*;
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
