//! Candidates: an upstream's change (a pull or merge request) tested against its
//! dependents before it merges. A candidate event is built like a release, and is
//! never one: no release line, no promotion, no baseline for later verdicts.

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::text::{check_text, Layout};

/// The longest change id: forges number their pull requests, but a fork's run without
/// one is named by its repository and branch.
pub const MAX_CHANGE: usize = 200;

/// The change a candidate report is about: `"candidate": {"change": "123", "base": "1.4.0"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Candidate {
    /// The pull or merge request, as the forge numbers it (`123`), or any id the
    /// upstream's CI gives the change. A newer candidate with the same change
    /// supersedes the older.
    pub change: String,
    /// The version or commit the change is made on. Ranges are judged against a
    /// version; a commit (or nothing) triggers every dependent, as the impact preview
    /// of an unknown version would. Verdicts compare with each dependent's latest
    /// result with this version, else with the upstream's latest release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
}

impl Candidate {
    pub fn new(change: impl Into<String>, base: Option<String>) -> Self {
        Self {
            change: change.into(),
            base,
        }
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        check_text(
            "candidate.change",
            &self.change,
            MAX_CHANGE,
            true,
            Layout::Line,
        )?;
        if self.change.chars().any(char::is_whitespace) {
            return Err(ValidationError::new(
                "candidate.change",
                "the change id must not contain spaces: give the pull request's number",
            ));
        }
        if let Some(base) = &self.base {
            check_text(
                "candidate.base",
                base,
                crate::limits::MAX_SHORT_TEXT,
                true,
                Layout::Line,
            )?;
            if base.chars().any(char::is_whitespace) {
                return Err(ValidationError::new(
                    "candidate.base",
                    "the base must be one version or commit, without spaces",
                ));
            }
        }
        Ok(())
    }

    /// How people name it: `candidate #123`.
    pub fn label(&self) -> String {
        let change = self.change.trim_start_matches(['#', '!']);
        if change.chars().all(|c| c.is_ascii_digit()) {
            format!("candidate #{change}")
        } else {
            format!("candidate {}", self.change)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_candidate_is_named_by_its_change() {
        assert_eq!(Candidate::new("123", None).label(), "candidate #123");
        assert_eq!(Candidate::new("#7", None).label(), "candidate #7");
        assert_eq!(
            Candidate::new("fork/lib:topic", None).label(),
            "candidate fork/lib:topic"
        );
    }

    #[test]
    fn a_change_with_spaces_or_none_is_refused() {
        for bad in ["", "12 13", "a\nb"] {
            let err = Candidate::new(bad, None).validate().unwrap_err();
            assert_eq!(err.field, "candidate.change", "{bad:?}");
        }
        let err = Candidate::new("12", Some("1.0 2.0".into()))
            .validate()
            .unwrap_err();
        assert_eq!(err.field, "candidate.base");
        Candidate::new("12", Some("9f1c2e0".into()))
            .validate()
            .unwrap();
    }
}
