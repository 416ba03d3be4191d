//! Cargo's `Cargo.toml`, read with the `cargo_toml` crate: `[dependencies]`,
//! `[dev-dependencies]`, `[build-dependencies]` and each `[target.'cfg(…)']` variant
//! of them; a `package = "…"` rename names the registry's crate (the table's key is
//! the local name); `workspace = true` takes the entry of the workspace root's
//! `[workspace.dependencies]` when the root is given, and is said to be unresolved
//! when it is not. A path or git dependency with a version asks for that version
//! (what its dependents get once it is published); without one it is no range.

use cargo_toml::{Dependency, DepsSet};

use crate::{Declared, Manifest, ManifestError, Section, Spec};

/// Reads `text`, the contents of `file`; `root` is the workspace root's
/// `Cargo.toml` when `file` is a member that inherits from it (a root that is also a
/// package inherits from itself).
pub fn read(file: &str, text: &str, root: Option<&str>) -> Result<Manifest, ManifestError> {
    let manifest = parse(file, text)?;
    let root = match root {
        Some(root) => Some(parse("the workspace root's Cargo.toml", root)?),
        None => None,
    };
    let inherited = root
        .as_ref()
        .or(Some(&manifest))
        .and_then(|r| r.workspace.as_ref())
        .map(|w| &w.dependencies);
    let package = manifest.package.as_ref();
    let mut out = Manifest {
        name: package.map(|p| p.name.clone()),
        version: package
            .and_then(|p| p.version.get().ok())
            .map(|v| v.to_string()),
        workspaces: manifest
            .workspace
            .as_ref()
            .map(|w| w.members.clone())
            .unwrap_or_default(),
        ..Manifest::default()
    };
    let mut sections = vec![
        (Section::Normal, &manifest.dependencies, None),
        (Section::Dev, &manifest.dev_dependencies, None),
        (Section::Build, &manifest.build_dependencies, None),
    ];
    for (cfg, target) in &manifest.target {
        sections.push((Section::Normal, &target.dependencies, Some(cfg)));
        sections.push((Section::Dev, &target.dev_dependencies, Some(cfg)));
        sections.push((Section::Build, &target.build_dependencies, Some(cfg)));
    }
    for (section, deps, cfg) in sections {
        for (local, dep) in deps {
            let mut d = declared(local, dep, section, inherited);
            d.condition = cfg.cloned();
            out.dependencies.push(d);
        }
    }
    Ok(out)
}

fn parse(file: &str, text: &str) -> Result<cargo_toml::Manifest, ManifestError> {
    cargo_toml::Manifest::from_str(text).map_err(|e| ManifestError::Syntax {
        file: file.to_owned(),
        format: "Cargo.toml",
        reason: e.to_string(),
    })
}

fn declared(
    local: &str,
    dep: &Dependency,
    section: Section,
    inherited: Option<&DepsSet>,
) -> Declared {
    let (dep, optional) = match dep {
        Dependency::Inherited(detail) => match inherited.and_then(|w| w.get(local)) {
            // The member's `optional` wins; the rest is the workspace's.
            Some(from_workspace) => (from_workspace, detail.optional),
            None => {
                return Declared {
                    name: local.to_owned(),
                    local: None,
                    spec: Spec::Workspace("workspace = true".into()),
                    section,
                    optional: detail.optional,
                    indirect: false,
                    condition: None,
                }
            }
        },
        other => (other, other.optional()),
    };
    let (name, spec) = match dep {
        Dependency::Simple(req) => (local.to_owned(), Spec::Range(req.to_string())),
        Dependency::Detailed(d) => {
            let name = d.package.clone().unwrap_or_else(|| local.to_owned());
            let spec = match (&d.version, &d.git, &d.path) {
                (Some(req), _, _) => Spec::Range(req.to_string()),
                (None, Some(git), _) => {
                    let at = d.rev.as_ref().or(d.tag.as_ref()).or(d.branch.as_ref());
                    Spec::Git(match at {
                        Some(at) => format!("{git}#{at}"),
                        None => git.clone(),
                    })
                }
                (None, None, Some(path)) => Spec::Path(path.clone()),
                // Cargo reads a bare table as any version.
                (None, None, None) => Spec::Range("*".into()),
            };
            (name, spec)
        }
        // Inherited from an inherited entry: the workspace's own table cannot say so.
        Dependency::Inherited(_) => (local.to_owned(), Spec::Workspace("workspace = true".into())),
    };
    Declared {
        local: (name != local).then(|| local.to_owned()),
        name,
        spec,
        section,
        optional,
        indirect: false,
        condition: None,
    }
}
