//! Dependencies from a build's manifests: a project whose dependencies come
//! `from_manifest` has its `depends_on` replaced by what the manifests its build
//! reported declare, in the report's own transaction, as one audited change by
//! whoever reported. A manifest that cannot be used changes nothing and is said to
//! be so on the build; the report is taken either way.

use std::collections::BTreeMap;

use conjunction_manifest::resolve::{resolve_with, Options};
use conjunction_manifest::{files, Declared};
use conjunction_protocol::audit::{Action, Actor, Changed};
use conjunction_protocol::project::{
    DependencyOrigin, ManifestSource, UnregisteredDependency, MAX_UNREGISTERED_SHOWN,
};
use conjunction_protocol::{BuildId, Dependency, ManifestFile, ProjectId, Report};

use super::work::{GraphChange, Work};
use crate::planner::versions::Range;
use crate::store::{StoreError, StoredProject};

/// What a report's manifests come to, worked out before the report is written.
pub(super) enum Reading {
    /// The report carries none.
    Nothing,
    /// They are not for the graph (the project declares its dependencies, or the
    /// build tests a candidate); said in the answer only.
    Ignored(String),
    /// They cannot be used; said in the answer and on the build.
    Refused(String),
    Read(Box<Read>),
}

pub(super) struct Read {
    /// The project as read for this report: the report itself changes no
    /// project, so [`take`] writes on it without reading it again.
    stored: StoredProject,
    depends_on: Vec<Dependency>,
    files: Vec<String>,
    unregistered: Vec<Declared>,
    notes: Vec<String>,
}

/// Reads `report`'s manifests for its project; `candidate` says whether the build
/// belongs to a candidate event.
pub(super) fn read(
    work: &mut Work<'_, '_>,
    report: &Report,
    candidate: bool,
) -> Result<Reading, StoreError> {
    if report.manifests.is_empty() {
        return Ok(Reading::Nothing);
    }
    let project = &report.project;
    let Some(stored) = work.tx.project(project)? else {
        return Ok(Reading::Nothing);
    };
    if stored.dependencies != DependencyOrigin::FromManifest {
        return Ok(Reading::Ignored(format!(
            "{project} declares its dependencies, so the manifests sent were not read: \
             set dependencies = \"from_manifest\" on it to keep them from its builds"
        )));
    }
    if candidate {
        return Ok(Reading::Ignored(
            "a candidate's builds never change the graph: the manifests sent were not read".into(),
        ));
    }
    Ok(match resolve(work, stored, &report.manifests) {
        Ok(read) => Reading::Read(Box::new(read)),
        Err(why) => Reading::Refused(format!(
            "{}; {project}'s dependencies stay as they were",
            one_line(&why)
        )),
    })
}

/// A parser's message on one line: the source excerpt and carets a TOML or XML
/// error draws are left out (the build's page shows one line per warning).
fn one_line(text: &str) -> String {
    let drawn = |line: &str| {
        line.starts_with('|')
            || line.chars().all(|c| matches!(c, '^' | '~' | '-' | ' '))
            || line
                .split_once(" |")
                .is_some_and(|(n, _)| n.chars().all(|c| c.is_ascii_digit()))
    };
    let kept: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !drawn(l))
        .collect();
    kept.join(": ")
}

fn resolve(
    work: &Work<'_, '_>,
    stored: StoredProject,
    manifests: &[ManifestFile],
) -> Result<Read, String> {
    let (ecosystem, manifest) = files::read(manifests).map_err(|e| e.to_string())?;
    if let Some(package) = stored.package.as_ref().filter(|p| p.ecosystem != ecosystem) {
        return Err(format!(
            "{} publishes a {} package, but its first manifest, {}, is {}'s",
            stored.id, package.ecosystem, manifests[0].path, ecosystem
        ));
    }
    let graph = &*work.graph;
    let project_of = |name: &str| graph.package_owner(ecosystem, name).cloned();
    let options = Options {
        dev: stored.dev_dependencies,
    };
    let resolution = resolve_with(&manifest, &project_of, Some(&stored.id), options);
    if resolution.depends_on.len() > conjunction_protocol::limits::MAX_DEPENDENCIES {
        return Err(format!(
            "the manifests name {} registered projects; a project may depend on at most {}",
            resolution.depends_on.len(),
            conjunction_protocol::limits::MAX_DEPENDENCIES
        ));
    }
    for d in &resolution.depends_on {
        if let Some(range) = &d.range {
            if let Err(bad) = Range::parse(graph.ecosystem(&d.project), range) {
                return Err(format!("the range on {} does not read: {bad}", d.project));
            }
        }
    }
    let mut notes = resolution.notes;
    notes.extend(
        manifest
            .missing
            .iter()
            .map(|m| format!("{m} was not sent, so what it declares is not read")),
    );
    Ok(Read {
        stored,
        depends_on: resolution.depends_on,
        files: manifests
            .iter()
            .map(|m| files::normalize(&m.path))
            .collect(),
        unregistered: resolution.unregistered,
        notes,
    })
}

/// Writes what `read` found for its project, read from `build`'s manifests;
/// returns the warnings for the answer (a cycle the new dependencies close).
pub(super) fn take(
    work: &mut Work<'_, '_>,
    read: Read,
    build: BuildId,
    by: &Actor,
) -> Result<Vec<String>, StoreError> {
    let mut stored = read.stored;
    let project = stored.id.clone();
    let now = work.now;
    let change = change_line(&project, &stored.depends_on, &read.depends_on, build);
    let mut unregistered: Vec<UnregisteredDependency> = Vec::new();
    for d in &read.unregistered {
        if !unregistered.iter().any(|u| u.name == d.name) {
            unregistered.push(UnregisteredDependency {
                name: d.name.clone(),
                spec: d.spec.to_string(),
            });
        }
    }
    let unregistered_count = u32::try_from(unregistered.len()).unwrap_or(u32::MAX);
    unregistered.truncate(MAX_UNREGISTERED_SHOWN);
    // Builds say the same thing again and again: what changes nothing is not
    // written, so a report with its manifests costs a read, not a record and a
    // feed event. The source stays the build that last said something new.
    let same = stored.manifest.as_ref().is_some_and(|m| {
        change.is_none()
            && m.files == read.files
            && m.unregistered == unregistered
            && m.unregistered_count == unregistered_count
            && m.notes == read.notes
    });
    if same {
        return Ok(Vec::new());
    }
    let previous_change = stored.manifest.as_ref().and_then(|m| m.change.clone());
    stored.manifest = Some(ManifestSource {
        build,
        at: now,
        files: read.files,
        unregistered,
        unregistered_count,
        notes: read.notes,
        change: change.clone().or(previous_change),
    });
    let mut warnings = Vec::new();
    if let Some(line) = change {
        let added: Vec<ProjectId> = read
            .depends_on
            .iter()
            .filter(|d| !stored.depends_on.iter().any(|o| o.project == d.project))
            .map(|d| d.project.clone())
            .collect();
        stored.depends_on = read.depends_on;
        stored.updated_at = now;
        stored.changed = Some(Changed {
            by: by.clone(),
            at: now,
            action: Action::DependenciesRead,
        });
        work.tx
            .audit(now, by, Action::DependenciesRead, Some(&project), line)?;
        work.change_graph(GraphChange::of(&stored));
        if let Some(cycle) = work.graph.cycle_closed_by(&project, &added) {
            let names: Vec<&str> = cycle.iter().map(ProjectId::as_str).collect();
            warnings.push(format!("dependency cycle: {}", names.join(" -> ")));
        }
    }
    super::projects::save(work, &stored)?;
    Ok(warnings)
}

/// "acme/app now depends on acme/lib ^2.1 (was ^1.4), from its build 01K…"; none
/// when the manifests declare what `depends_on` already says.
fn change_line(
    project: &ProjectId,
    old: &[Dependency],
    new: &[Dependency],
    build: BuildId,
) -> Option<String> {
    let before: BTreeMap<&ProjectId, &Option<String>> =
        old.iter().map(|d| (&d.project, &d.range)).collect();
    let after: BTreeMap<&ProjectId, &Option<String>> =
        new.iter().map(|d| (&d.project, &d.range)).collect();
    let range = |r: &Option<String>| r.clone().unwrap_or_else(|| "any version".into());
    let mut now_on = Vec::new();
    for d in new {
        match before.get(&d.project) {
            Some(was) if **was == d.range => {}
            Some(was) => now_on.push(format!(
                "{} {} (was {})",
                d.project,
                range(&d.range),
                range(was)
            )),
            None => now_on.push(format!("{} {} (new)", d.project, range(&d.range))),
        }
    }
    let gone: Vec<String> = old
        .iter()
        .filter(|d| !after.contains_key(&d.project))
        .map(|d| d.project.to_string())
        .collect();
    let said = match (now_on.is_empty(), gone.is_empty()) {
        (true, true) => return None,
        (false, true) => format!("now depends on {}", now_on.join(", ")),
        (true, false) => format!("no longer depends on {}", gone.join(", ")),
        (false, false) => format!(
            "now depends on {}, and no longer on {}",
            now_on.join(", "),
            gone.join(", ")
        ),
    };
    Some(format!("{project} {said}, from its build {build}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(project: &str, range: Option<&str>) -> Dependency {
        Dependency {
            project: ProjectId::parse(project).unwrap(),
            range: range.map(str::to_owned),
            lines: Vec::new(),
        }
    }

    #[test]
    fn a_parsers_drawing_is_left_out_of_the_warning() {
        let toml = "Cargo.toml is not valid Cargo.toml: TOML parse error at line 4, column 13\n  |\n4 | acme-core = \"x\"\n  |             ^^^\nnot a semver range\n";
        assert_eq!(
            one_line(toml),
            "Cargo.toml is not valid Cargo.toml: TOML parse error at line 4, column 13: not a semver range"
        );
    }

    #[test]
    fn a_change_is_said_as_the_feed_says_it() {
        let app = ProjectId::parse("acme/app").unwrap();
        let build = BuildId(ulid::Ulid(7));
        let old = [on("acme/lib", Some("^1.4")), on("acme/old", None)];
        let new = [on("acme/lib", Some("^2.1")), on("acme/util", None)];
        assert_eq!(
            change_line(&app, &old, &new, build).unwrap(),
            format!("acme/app now depends on acme/lib ^2.1 (was ^1.4), acme/util any version (new), and no longer on acme/old, from its build {build}")
        );
        assert_eq!(change_line(&app, &old, &old, build), None);
        assert_eq!(
            change_line(&app, &old, &old[..1], build).unwrap(),
            format!("acme/app no longer depends on acme/old, from its build {build}")
        );
    }
}
