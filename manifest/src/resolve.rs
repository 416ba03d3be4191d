//! Which registered projects a manifest's dependencies are: each declared name is
//! looked up by its package identity (ecosystem and name, spelled as the ecosystem
//! compares names), one dependency per upstream, and whatever names no registered
//! package is listed as unregistered rather than dropped.

use std::collections::HashMap;

use conjunction_protocol::project::Ecosystem;
use conjunction_protocol::{Dependency, Package, ProjectId};

use crate::{Declared, Manifest, Section};

/// What a manifest says its project depends on, among the registered projects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// One per registered upstream, in the order the manifest first names them.
    pub depends_on: Vec<Dependency>,
    /// Declarations of packages no registered project is.
    pub unregistered: Vec<Declared>,
    /// What was chosen where a manifest says two things, and what has no range.
    pub notes: Vec<String>,
}

/// Which declarations count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Development dependencies too (tests, docs); by default only what the project
    /// needs to build and run, as its dependents' users see it.
    pub dev: bool,
}

/// A name as `ecosystem` compares names: PyPI's normalised form (PEP 503), Cargo's
/// case-insensitive name in which `-` and `_` are one, npm's, Maven's and Go's as
/// written.
pub fn identity(ecosystem: Ecosystem, name: &str) -> String {
    match ecosystem {
        Ecosystem::Pypi => {
            let mut out = String::with_capacity(name.len());
            let mut separator = false;
            for c in name.trim().chars() {
                if matches!(c, '-' | '_' | '.') {
                    separator = true;
                    continue;
                }
                if separator && !out.is_empty() {
                    out.push('-');
                }
                separator = false;
                out.push(c.to_ascii_lowercase());
            }
            out
        }
        Ecosystem::Cargo => name.trim().to_ascii_lowercase().replace('_', "-"),
        Ecosystem::Npm | Ecosystem::Maven | Ecosystem::Go => name.trim().to_owned(),
    }
}

/// Which of two declarations of one upstream is taken: what the project runs
/// with before what it builds with, before what it is offered, before its tests.
fn rank(section: Section) -> u8 {
    match section {
        Section::Normal => 0,
        Section::Build => 1,
        Section::Peer => 2,
        Section::Optional => 3,
        Section::Dev => 4,
    }
}

/// The registered packages of one ecosystem, by name as it compares names.
pub struct Packages<'a> {
    ecosystem: Ecosystem,
    by_name: HashMap<String, &'a ProjectId>,
}

impl<'a> Packages<'a> {
    /// Those of `registered` that are `ecosystem`'s.
    pub fn new(ecosystem: Ecosystem, registered: &'a [(Package, ProjectId)]) -> Self {
        let by_name = registered
            .iter()
            .filter(|(p, _)| p.ecosystem == ecosystem)
            .map(|(p, id)| (identity(ecosystem, &p.name), id))
            .collect();
        Self { ecosystem, by_name }
    }

    /// The project whose package is `name`.
    pub fn get(&self, name: &str) -> Option<&'a ProjectId> {
        self.by_name.get(&identity(self.ecosystem, name)).copied()
    }
}

/// Resolves `manifest`, whose packages are `ecosystem`'s, against the `registered`
/// packages; `own` is the project the manifest is, which it never depends on.
pub fn resolve(
    manifest: &Manifest,
    ecosystem: Ecosystem,
    registered: &[(Package, ProjectId)],
    own: Option<&ProjectId>,
    options: Options,
) -> Resolution {
    let packages = Packages::new(ecosystem, registered);
    resolve_with(manifest, &|name| packages.get(name).cloned(), own, options)
}

/// Resolves `manifest` with `project_of`, which names the registered project a
/// package (by its registry name) is: a lookup in an index the caller keeps, so
/// resolving costs what the manifest holds, not what is registered.
pub fn resolve_with(
    manifest: &Manifest,
    project_of: &dyn Fn(&str) -> Option<ProjectId>,
    own: Option<&ProjectId>,
    options: Options,
) -> Resolution {
    let mut out = Resolution::default();
    // Per upstream: the declaration taken so far, by its place in depends_on.
    let mut taken: HashMap<ProjectId, (usize, &Declared)> = HashMap::new();
    for d in &manifest.dependencies {
        if d.section == Section::Dev && !options.dev {
            continue;
        }
        let Some(project) = project_of(&d.name) else {
            out.unregistered.push(d.clone());
            continue;
        };
        let project = &project;
        if Some(project) == own {
            continue;
        }
        let range = d.spec.range().map(str::to_owned);
        match taken.get(project).copied() {
            None => {
                if let Some(why) = d.spec.not_a_range() {
                    out.notes.push(format!(
                        "{project} is declared as {why} ({}): every release of it builds this project",
                        d.name
                    ));
                }
                taken.insert(project.clone(), (out.depends_on.len(), d));
                out.depends_on.push(Dependency {
                    project: project.clone(),
                    range: range.filter(|r| r != "*"),
                    lines: Vec::new(),
                });
            }
            Some((at, before)) => {
                if before.spec != d.spec {
                    let better = rank(d.section) < rank(before.section);
                    let (kept, other) = if better { (d, before) } else { (before, d) };
                    out.notes.push(format!(
                        "{project} is declared more than once ({} and {}); {} is taken",
                        kept.spec, other.spec, kept.spec
                    ));
                    if better {
                        out.depends_on[at].range = range.filter(|r| r != "*");
                        taken.insert(project.clone(), (at, d));
                    }
                }
            }
        }
    }
    out
}
