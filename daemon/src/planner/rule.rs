//! The trigger rule: what a release of an upstream means for a dependent that says
//! which versions of it it takes.
//!
//! A dependent whose range (or one of whose lines) takes the version is built, on the
//! ref of the first line that takes it. A release above everything it takes needs a
//! bump of its range: it is not built, and nothing is reached through it. Anything
//! else (a maintenance release below the range, a version in a gap, a pre-release the
//! range does not name) leaves it alone.

use conjunction_protocol::ProjectId;

use super::graph::Want;
use super::versions::{BadRange, Fit, Range, Version};

/// What a release means for one dependent that declares what it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeRule {
    /// Build it; on `on_ref` when a line says so.
    Follow { on_ref: Option<String> },
    /// The release is above everything it takes: `range` (its newest line's, when
    /// it lists lines) must be bumped to adopt it.
    NeedsBump { range: String },
    /// It does not take the release, and says why.
    NotTaken { why: String },
}

/// Judges the edge from `upstream` to `dependent`, which wants `want`, for the
/// release `version` (`shown` as the upstream reported it). Ranges are read in the
/// version's ecosystem.
pub fn judge(
    dependent: &ProjectId,
    upstream: &ProjectId,
    want: &Want,
    version: &Version,
    shown: &str,
) -> Result<EdgeRule, BadRange> {
    let ecosystem = version.ecosystem();
    match want {
        Want::Range(text) => {
            let range = Range::parse(ecosystem, text)?;
            Ok(match range.fit(version) {
                Fit::Takes => EdgeRule::Follow { on_ref: None },
                Fit::TooNew => EdgeRule::NeedsBump {
                    range: text.clone(),
                },
                Fit::Outside => EdgeRule::NotTaken {
                    why: format!(
                        "{dependent} declares {text} on {upstream}, which does not take {shown}"
                    ),
                },
            })
        }
        Want::Lines(lines) => {
            let mut all_too_new = true;
            for line in lines {
                match Range::parse(ecosystem, &line.range)?.fit(version) {
                    Fit::Takes => {
                        return Ok(EdgeRule::Follow {
                            on_ref: Some(line.git_ref.clone()),
                        })
                    }
                    Fit::TooNew => {}
                    Fit::Outside => all_too_new = false,
                }
            }
            let listed: Vec<String> = lines
                .iter()
                .map(|l| format!("{} on {}", l.range, l.git_ref))
                .collect();
            Ok(match (all_too_new, lines.first()) {
                (true, Some(newest)) => EdgeRule::NeedsBump {
                    range: newest.range.clone(),
                },
                _ => EdgeRule::NotTaken {
                    why: format!(
                        "none of the lines {dependent} declares on {upstream} ({}) takes {shown}",
                        listed.join(", ")
                    ),
                },
            })
        }
    }
}

/// The sentence a `needs_bump` node carries.
pub fn needs_bump_message(
    dependent: &ProjectId,
    upstream: &ProjectId,
    range: &str,
    version: &str,
) -> String {
    format!("{dependent} declares {range} on {upstream}; {version} is outside it: bump the range to adopt it")
}

#[cfg(test)]
mod tests {
    use super::*;
    use conjunction_protocol::project::{Ecosystem, Line};

    fn id(s: &str) -> ProjectId {
        ProjectId::parse(s).unwrap()
    }

    fn judge_str(e: Ecosystem, want: Want, v: &str) -> EdgeRule {
        let version = Version::parse(e, v).unwrap();
        judge(&id("acme/app"), &id("acme/lib"), &want, &version, v).unwrap()
    }

    fn lines(pairs: &[(&str, &str)]) -> Want {
        Want::Lines(
            pairs
                .iter()
                .map(|(r, range)| Line {
                    git_ref: (*r).into(),
                    range: (*range).into(),
                })
                .collect(),
        )
    }

    #[test]
    fn a_range_follows_what_it_takes_and_needs_a_bump_above_it() {
        let want = || Want::Range("^1.2".into());
        assert_eq!(
            judge_str(Ecosystem::Cargo, want(), "1.5.0"),
            EdgeRule::Follow { on_ref: None }
        );
        assert_eq!(
            judge_str(Ecosystem::Cargo, want(), "2.0.0"),
            EdgeRule::NeedsBump {
                range: "^1.2".into()
            }
        );
        let EdgeRule::NotTaken { why } = judge_str(Ecosystem::Cargo, want(), "1.1.0") else {
            panic!()
        };
        assert_eq!(
            why,
            "acme/app declares ^1.2 on acme/lib, which does not take 1.1.0"
        );
        assert_eq!(
            needs_bump_message(&id("acme/app"), &id("acme/lib"), "^1.2", "2.0.0"),
            "acme/app declares ^1.2 on acme/lib; 2.0.0 is outside it: bump the range to adopt it"
        );
    }

    #[test]
    fn the_first_line_that_takes_a_version_names_the_ref() {
        let want = || lines(&[("main", "^2"), ("release-1.x", "^1.4")]);
        let on = |v| match judge_str(Ecosystem::Npm, want(), v) {
            EdgeRule::Follow { on_ref } => on_ref,
            other => panic!("{v}: {other:?}"),
        };
        assert_eq!(on("2.3.0").as_deref(), Some("main"));
        assert_eq!(on("1.4.7").as_deref(), Some("release-1.x"));
        assert_eq!(
            judge_str(Ecosystem::Npm, want(), "3.0.0"),
            EdgeRule::NeedsBump { range: "^2".into() }
        );
        let EdgeRule::NotTaken { why } = judge_str(Ecosystem::Npm, want(), "1.3.0") else {
            panic!()
        };
        assert!(
            why.contains("(^2 on main, ^1.4 on release-1.x) takes 1.3.0"),
            "{why}"
        );
        // Overlapping lines: the first listed (the newest) wins.
        let both = lines(&[("main", ">=1.4"), ("release-1.x", "^1.4")]);
        assert_eq!(
            judge_str(Ecosystem::Npm, both, "1.5.0"),
            EdgeRule::Follow {
                on_ref: Some("main".into())
            }
        );
    }

    #[test]
    fn a_version_between_lines_is_not_taken_rather_than_needing_a_bump() {
        let want = lines(&[("main", "^3"), ("release-1.x", "^1")]);
        assert!(matches!(
            judge_str(Ecosystem::Cargo, want, "2.1.0"),
            EdgeRule::NotTaken { .. }
        ));
    }
}
