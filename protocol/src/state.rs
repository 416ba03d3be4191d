//! The states a build can be in, without their reasons: for counting, filtering,
//! comparing and short answers.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A node state without its reason: for counting, filtering and short answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateKind {
    Pending,
    Queued,
    Triggered,
    Running,
    Passed,
    Failed,
    Errored,
    Cancelled,
    Blocked,
    Skipped,
    TriggerFailed,
    NeedsBump,
}

impl StateKind {
    /// A final state never changes again within an attempt.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            StateKind::Pending | StateKind::Queued | StateKind::Triggered | StateKind::Running
        )
    }

    /// Final and not passed: the node holds its descendants back.
    pub fn is_failure(self) -> bool {
        self.is_final() && self != StateKind::Passed
    }

    /// The build itself did not pass: it failed, errored, or its CI refused the
    /// trigger, as opposed to being held back by another build.
    pub fn is_own_failure(self) -> bool {
        matches!(
            self,
            StateKind::Failed | StateKind::Errored | StateKind::TriggerFailed
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StateKind::Pending => "pending",
            StateKind::Queued => "queued",
            StateKind::Triggered => "triggered",
            StateKind::Running => "running",
            StateKind::Passed => "passed",
            StateKind::Failed => "failed",
            StateKind::Errored => "errored",
            StateKind::Cancelled => "cancelled",
            StateKind::Blocked => "blocked",
            StateKind::Skipped => "skipped",
            StateKind::TriggerFailed => "trigger_failed",
            StateKind::NeedsBump => "needs_bump",
        }
    }
}

impl fmt::Display for StateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
