//! Release lines and promotion: the order of the environments, whether a version may
//! go to an environment, and which dependents a promotion takes along at which
//! version.
//!
//! A root report without an environment, or naming the first one, is a release: the
//! trigger rule ([`super::rule`]) picks the dependents, and those that pass put the
//! version their CI reports on the upstream's release line for that version. A root
//! report naming a later environment promotes that line: only the version's
//! dependents that passed in the environment before it go along, each pinned to its
//! version on the line. Promoting a version older than the environment has is a
//! rollback, and the line pins the dependents back to their older versions.

use std::collections::HashMap;

use conjunction_protocol::project::check_environment;
use conjunction_protocol::releases::{LineCell, LineDependent, ReleaseLine};
use conjunction_protocol::{ProjectId, StateKind};
use serde::Deserialize;

use super::refusal::Refusal;
use super::versions::{Ecosystem, Version};

/// Release lines (`[releases]` in the config file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReleasesConfig {
    /// The environments a release is promoted through, in order; a root report
    /// without `environment` is a release into the first.
    pub environments: Environments,
}

/// The environments a release goes through, in order (`[releases] environments` in
/// the config file).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<String>")]
pub struct Environments(Vec<String>);

impl Default for Environments {
    fn default() -> Self {
        Self(vec!["dev".into(), "test".into(), "prod".into()])
    }
}

impl TryFrom<Vec<String>> for Environments {
    type Error = String;

    fn try_from(names: Vec<String>) -> Result<Self, String> {
        if names.is_empty() {
            return Err("environments must name at least one environment".into());
        }
        for (i, name) in names.iter().enumerate() {
            check_environment("environment", name).map_err(|e| e.message)?;
            if names[..i].contains(name) {
                return Err(format!("environment {name:?} is listed twice"));
            }
        }
        Ok(Self(names))
    }
}

/// What a root report's environment makes of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage<'a> {
    /// A release into the first environment.
    Release { environment: &'a str },
    /// A promotion of a release line to `environment`, from the one before it.
    Promotion {
        environment: &'a str,
        previous: &'a str,
    },
}

impl Stage<'_> {
    pub fn environment(&self) -> &str {
        match self {
            Stage::Release { environment } | Stage::Promotion { environment, .. } => environment,
        }
    }
}

impl Environments {
    pub fn names(&self) -> &[String] {
        &self.0
    }

    pub fn first(&self) -> &str {
        &self.0[0]
    }

    /// The stage of a root report naming `environment` (or none).
    pub fn stage(&self, environment: Option<&str>) -> Result<Stage<'_>, Refusal> {
        let Some(named) = environment else {
            return Ok(Stage::Release {
                environment: self.first(),
            });
        };
        match self.0.iter().position(|e| e == named) {
            Some(0) => Ok(Stage::Release {
                environment: self.first(),
            }),
            Some(i) => Ok(Stage::Promotion {
                environment: &self.0[i],
                previous: &self.0[i - 1],
            }),
            None => Err(Refusal::UnknownEnvironment {
                named: named.to_owned(),
                known: self.0.join(", "),
            }),
        }
    }
}

/// Whether `version` of `project` may be promoted to `environment`: the project
/// itself must have passed with it in `previous`, in its latest run there.
pub fn judge_promotion(
    project: &ProjectId,
    version: Option<&str>,
    environment: &str,
    previous: &str,
    line: Option<&ReleaseLine>,
) -> Result<(), Refusal> {
    let Some(version) = version else {
        return Err(Refusal::PromotionWithoutVersion {
            environment: environment.to_owned(),
        });
    };
    let state = line
        .and_then(|l| l.environments.get(previous))
        .map(|run| run.state);
    if state == Some(StateKind::Passed) {
        return Ok(());
    }
    Err(Refusal::NotPassedBefore {
        project: project.clone(),
        version: version.to_owned(),
        environment: environment.to_owned(),
        previous: previous.to_owned(),
        state,
    })
}

/// The version an environment rolls back from when `version` goes there and it has
/// `current`: `current`, when it is newer as the ecosystem orders versions.
pub fn rollback_from(ecosystem: Ecosystem, version: &str, current: Option<&str>) -> Option<String> {
    let current = current?;
    let (new, old) = (
        Version::parse(ecosystem, version).ok()?,
        Version::parse(ecosystem, current).ok()?,
    );
    (new.compare(&old)? == std::cmp::Ordering::Less).then(|| current.to_owned())
}

/// The version of a dependent a promotion builds or deploys, and on which ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub version: String,
    pub on_ref: Option<String>,
}

/// Which of a line's dependents a promotion takes along, and why the others stay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    pub version: String,
    pub previous: String,
    /// Every dependent on the line: its pin, or why it is not promoted.
    pub pins: HashMap<ProjectId, Result<Pin, String>>,
}

impl Promotion {
    /// The promotion of `version`'s line (whose dependents are `dependents`) from
    /// `previous`; without a line, nobody goes along.
    pub fn of(
        version: &str,
        line: Option<&ReleaseLine>,
        dependents: &[LineDependent],
        previous: &str,
    ) -> Promotion {
        let previous_root = line
            .and_then(|l| l.environments.get(previous))
            .map(|run| run.root);
        let pins = dependents
            .iter()
            .map(|d| {
                let cell = d
                    .environments
                    .get(previous)
                    .filter(|c| Some(c.root()) == previous_root);
                (d.project.clone(), admit(d, cell, previous))
            })
            .collect();
        Promotion {
            version: version.to_owned(),
            previous: previous.to_owned(),
            pins,
        }
    }

    /// Why a project that depends on the upstream but is not on the line stays.
    pub fn not_on_line(&self, upstream: &ProjectId) -> String {
        format!(
            "it was not built against {upstream} {} in {}",
            self.version, self.previous
        )
    }
}

/// A dependent goes along when it passed in the previous environment's latest run and
/// its CI reported the version to pin.
fn admit(
    dependent: &LineDependent,
    cell: Option<&LineCell>,
    previous: &str,
) -> Result<Pin, String> {
    match cell {
        None => Err(format!("it was not built in {previous}")),
        Some(LineCell::NotPromoted { not_promoted, .. }) => {
            Err(format!("it was not promoted to {previous}: {not_promoted}"))
        }
        Some(LineCell::Built { state, .. }) if !state.is_final() => {
            Err(format!("it had not finished in {previous} ({state})"))
        }
        Some(LineCell::Built { state, .. }) if *state != StateKind::Passed => {
            Err(format!("it ended {state} in {previous}"))
        }
        Some(LineCell::Built { .. }) => match &dependent.version {
            Some(version) => Ok(Pin {
                version: version.clone(),
                on_ref: dependent.git_ref.clone(),
            }),
            None => Err(
                "its CI passed without reporting a version, so there is none to pin; have it report `version`"
                    .into(),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use conjunction_protocol::releases::LineRun;
    use conjunction_protocol::{BuildId, Timestamp};

    use super::*;

    fn id(s: &str) -> ProjectId {
        ProjectId::parse(s).unwrap()
    }

    fn build(n: u128) -> BuildId {
        BuildId(ulid::Ulid::from_parts(1, n))
    }

    fn run(root: u128, state: StateKind) -> LineRun {
        LineRun {
            root: build(root),
            state,
            at: Timestamp(0),
            rollback_from: None,
        }
    }

    fn built(root: u128, state: StateKind) -> LineCell {
        LineCell::Built {
            root: build(root),
            build: build(root + 100),
            attempt: 1,
            state,
            version: None,
        }
    }

    fn dependent(name: &str, version: Option<&str>, cells: &[(&str, LineCell)]) -> LineDependent {
        LineDependent {
            project: id(name),
            version: version.map(str::to_owned),
            git_ref: None,
            environments: cells
                .iter()
                .map(|(e, c)| (e.to_string(), c.clone()))
                .collect(),
        }
    }

    #[test]
    fn environments_are_checked_and_a_report_finds_its_stage() {
        let envs = Environments::default();
        assert_eq!(
            envs.stage(None).unwrap(),
            Stage::Release { environment: "dev" }
        );
        assert_eq!(
            envs.stage(Some("dev")).unwrap(),
            Stage::Release { environment: "dev" }
        );
        assert_eq!(
            envs.stage(Some("prod")).unwrap(),
            Stage::Promotion {
                environment: "prod",
                previous: "test"
            }
        );
        let refused = envs.stage(Some("staging")).unwrap_err().to_string();
        assert!(refused.contains("dev, test, prod"), "{refused}");
        assert!(Environments::try_from(vec![]).is_err());
        assert!(Environments::try_from(vec!["dev".into(), "dev".into()]).is_err());
        assert!(Environments::try_from(vec!["Prod".into()]).is_err());
    }

    #[test]
    fn a_promotion_needs_the_version_to_have_passed_in_the_environment_before() {
        let lib = id("acme/lib");
        let mut line = ReleaseLine {
            project: lib.clone(),
            version: "2.0.0".into(),
            created_at: Timestamp(0),
            environments: BTreeMap::from([("dev".into(), run(1, StateKind::Passed))]),
            dependents: Vec::new(),
        };
        judge_promotion(&lib, Some("2.0.0"), "test", "dev", Some(&line)).unwrap();
        let skipped = judge_promotion(&lib, Some("2.0.0"), "prod", "test", Some(&line))
            .unwrap_err()
            .to_string();
        assert!(skipped.contains("has not passed in test"), "{skipped}");
        line.environments
            .insert("test".into(), run(2, StateKind::Failed));
        let failed = judge_promotion(&lib, Some("2.0.0"), "prod", "test", Some(&line))
            .unwrap_err()
            .to_string();
        assert!(failed.contains("failed in test"), "{failed}");
        assert!(matches!(
            judge_promotion(&lib, None, "test", "dev", Some(&line)),
            Err(Refusal::PromotionWithoutVersion { .. })
        ));
        assert!(judge_promotion(&lib, Some("9.9.9"), "test", "dev", None).is_err());
    }

    #[test]
    fn only_dependents_that_passed_in_the_latest_run_before_go_along_pinned() {
        let line = ReleaseLine {
            project: id("acme/lib"),
            version: "2.0.0".into(),
            created_at: Timestamp(0),
            environments: BTreeMap::from([("dev".into(), run(7, StateKind::Passed))]),
            dependents: Vec::new(),
        };
        let dependents = [
            dependent(
                "acme/ok",
                Some("3.1.0"),
                &[("dev", built(7, StateKind::Passed))],
            ),
            dependent(
                "acme/red",
                Some("1.0.0"),
                &[("dev", built(7, StateKind::Failed))],
            ),
            dependent(
                "acme/old",
                Some("1.0.0"),
                &[("dev", built(5, StateKind::Passed))],
            ),
            dependent("acme/mute", None, &[("dev", built(7, StateKind::Passed))]),
        ];
        let p = Promotion::of("2.0.0", Some(&line), &dependents, "dev");
        assert_eq!(
            p.pins[&id("acme/ok")],
            Ok(Pin {
                version: "3.1.0".into(),
                on_ref: None
            })
        );
        assert_eq!(
            p.pins[&id("acme/red")],
            Err("it ended failed in dev".into())
        );
        assert_eq!(
            p.pins[&id("acme/old")],
            Err("it was not built in dev".into())
        );
        assert!(p.pins[&id("acme/mute")]
            .as_ref()
            .unwrap_err()
            .contains("report `version`"));
    }

    #[test]
    fn an_older_version_rolls_back_by_the_ecosystems_order() {
        assert_eq!(
            rollback_from(Ecosystem::Cargo, "1.5.0", Some("2.0.0")),
            Some("2.0.0".into())
        );
        assert_eq!(
            rollback_from(Ecosystem::Cargo, "2.0.0", Some("1.5.0")),
            None
        );
        assert_eq!(rollback_from(Ecosystem::Cargo, "2.0.0", None), None);
        // Maven orders 1.10 above 1.9; comparing text would not.
        assert_eq!(
            rollback_from(Ecosystem::Maven, "1.9", Some("1.10")),
            Some("1.10".into())
        );
    }
}
