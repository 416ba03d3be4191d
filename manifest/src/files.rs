//! A project's manifests as a build or a checkout hands them over: files by their
//! path in the tree, the project's own first. Which ecosystem they are is told from
//! the first file's name; the workspace root, the parent POMs and the included
//! requirements files are looked up among the others, by the paths the manifests
//! give, and what is not among them is left unresolved by the readers.

use std::collections::HashMap;

use conjunction_protocol::project::Ecosystem;
use conjunction_protocol::ManifestFile;

use crate::{cargo, go, maven, npm, python, Manifest, ManifestError};

/// The most parents a POM's chain is followed through: deeper is a circle.
const MAX_PARENTS: usize = 16;

/// The ecosystem a manifest file is, by its name: `package.json`, `Cargo.toml`,
/// `pyproject.toml` and requirements files (`requirements.txt`,
/// `requirements-dev.txt`, `requirements/base.txt`), `pom.xml`, `go.mod`.
pub fn ecosystem_of(path: &str) -> Option<Ecosystem> {
    let path = normalize(path);
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", &path));
    match name {
        "package.json" => Some(Ecosystem::Npm),
        "Cargo.toml" => Some(Ecosystem::Cargo),
        "pyproject.toml" => Some(Ecosystem::Pypi),
        "pom.xml" => Some(Ecosystem::Maven),
        "go.mod" => Some(Ecosystem::Go),
        _ if name.ends_with(".txt")
            && (name.starts_with("requirements")
                || dir == "requirements"
                || dir.ends_with("/requirements")) =>
        {
            Some(Ecosystem::Pypi)
        }
        _ => None,
    }
}

/// A path as the tree names it: `/`-separated, without `.` and with `..` taken
/// back, never above the tree's top.
pub fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// The directory part of a normalised path; empty at the top.
fn dir_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

fn join(dir: &str, relative: &str) -> String {
    if dir.is_empty() {
        normalize(relative)
    } else {
        normalize(&format!("{dir}/{relative}"))
    }
}

/// Reads `files[0]`, the project's own manifest, with the rest as what it refers
/// to; returns its ecosystem and what it declares.
pub fn read(files: &[ManifestFile]) -> Result<(Ecosystem, Manifest), ManifestError> {
    let Some(own) = files.first() else {
        return Err(ManifestError::Shape {
            file: "the report".into(),
            what: "no manifest was given".into(),
        });
    };
    let ecosystem = ecosystem_of(&own.path).ok_or_else(|| ManifestError::Shape {
        file: own.path.clone(),
        what: "is not a manifest conjunction reads: name package.json, Cargo.toml, \
               pyproject.toml, a requirements file, pom.xml or go.mod first"
            .into(),
    })?;
    let by_path: HashMap<String, &str> = files
        .iter()
        .map(|f| (normalize(&f.path), f.content.as_str()))
        .collect();
    let path = normalize(&own.path);
    let text = own.content.as_str();
    let manifest = match ecosystem {
        Ecosystem::Npm => npm::read(&path, text)?,
        Ecosystem::Go => go::read(&path, text)?,
        Ecosystem::Cargo => cargo::read(&path, text, workspace_root(&path, text, &by_path))?,
        Ecosystem::Maven => {
            let parents = parent_chain(&path, text, files, &by_path)?;
            maven::read(&path, text, &parents)?
        }
        Ecosystem::Pypi if path.ends_with(".toml") => python::pyproject(&path, text)?,
        Ecosystem::Pypi => python::requirements(&path, &|p: &str| {
            by_path.get(&normalize(p)).map(|t| (*t).to_owned())
        })?,
    };
    Ok((ecosystem, manifest))
}

/// The text of the workspace root a member's `Cargo.toml` inherits from: the
/// nearest `Cargo.toml` at or above it with a `[workspace]` table.
fn workspace_root<'a>(
    path: &str,
    text: &'a str,
    by_path: &HashMap<String, &'a str>,
) -> Option<&'a str> {
    let has_workspace = |t: &str| {
        t.parse::<toml::Table>()
            .is_ok_and(|t| t.contains_key("workspace"))
    };
    if has_workspace(text) {
        return Some(text);
    }
    let mut dir = dir_of(path);
    while !dir.is_empty() {
        dir = dir_of(dir);
        let candidate = join(dir, "Cargo.toml");
        if let Some(t) = by_path.get(&candidate).filter(|t| has_workspace(t)) {
            return Some(t);
        }
    }
    None
}

/// The texts of a POM's parent, its parent's, and so on, as far as the files go:
/// each found by the path the child gives (`../pom.xml` by default), or else by
/// its coordinates among the POMs given.
fn parent_chain<'a>(
    path: &str,
    text: &'a str,
    files: &'a [ManifestFile],
    by_path: &HashMap<String, &'a str>,
) -> Result<Vec<&'a str>, ManifestError> {
    let mut chain = Vec::new();
    let (mut path, mut text) = (path.to_owned(), text);
    while chain.len() < MAX_PARENTS {
        let Some(parent) = maven::parent(&path, text)? else {
            break;
        };
        let mut found = None;
        if !parent.relative_path.is_empty() {
            let mut at = join(dir_of(&path), &parent.relative_path);
            if !at.ends_with(".xml") {
                at = join(&at, "pom.xml");
            }
            found = by_path.get(&at).map(|t| (at, *t));
        }
        if found.is_none() {
            if let Some(wanted) = &parent.coordinates {
                for f in files.iter().filter(|f| f.path.ends_with("pom.xml")) {
                    if maven::coordinates_of(&f.path, &f.content)?.as_ref() == Some(wanted) {
                        found = Some((normalize(&f.path), f.content.as_str()));
                        break;
                    }
                }
            }
        }
        let Some((at, parent_text)) = found else {
            break;
        };
        if at == path || chain.contains(&parent_text) {
            break;
        }
        chain.push(parent_text);
        (path, text) = (at, parent_text);
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, content: &str) -> ManifestFile {
        ManifestFile {
            path: path.into(),
            content: content.into(),
        }
    }

    #[test]
    fn ecosystems_are_told_from_file_names() {
        assert_eq!(ecosystem_of("./package.json"), Some(Ecosystem::Npm));
        assert_eq!(ecosystem_of("crates/a/Cargo.toml"), Some(Ecosystem::Cargo));
        assert_eq!(ecosystem_of("requirements-dev.txt"), Some(Ecosystem::Pypi));
        assert_eq!(ecosystem_of("requirements/base.txt"), Some(Ecosystem::Pypi));
        assert_eq!(ecosystem_of("notes.txt"), None);
        assert_eq!(ecosystem_of("README.md"), None);
        assert_eq!(normalize("./a/b/../c//d"), "a/c/d");
        assert_eq!(normalize("../../x"), "x");
    }

    #[test]
    fn a_member_inherits_from_the_workspace_root_among_the_files() {
        let root = "[workspace]\nmembers = [\"crates/*\"]\n[workspace.dependencies]\nserde = \"1.0.200\"\n";
        let member =
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\n[dependencies]\nserde.workspace = true\n";
        let files = [
            file("crates/app/Cargo.toml", member),
            file("Cargo.toml", root),
        ];
        let (ecosystem, m) = read(&files).unwrap();
        assert_eq!(ecosystem, Ecosystem::Cargo);
        assert_eq!(
            m.dependencies[0].spec,
            crate::Spec::Range("^1.0.200".into())
        );
        let (_, alone) = read(&files[..1]).unwrap();
        assert_eq!(
            alone.dependencies[0].spec,
            crate::Spec::Workspace("workspace = true".into())
        );
    }

    #[test]
    fn a_pom_finds_its_parent_by_path_or_by_coordinates() {
        let parent =
            "<project><groupId>acme</groupId><artifactId>parent</artifactId><version>3</version>\
            <properties><lib.version>[2.1,3)</lib.version></properties></project>";
        let child = "<project><parent><groupId>acme</groupId><artifactId>parent</artifactId><version>3</version>\
            <relativePath>../build/parent.xml</relativePath></parent><artifactId>app</artifactId>\
            <dependencies><dependency><groupId>acme</groupId><artifactId>lib</artifactId>\
            <version>${lib.version}</version></dependency></dependencies></project>";
        for parent_path in ["build/parent.xml", "elsewhere/pom.xml"] {
            let files = [file("app/pom.xml", child), file(parent_path, parent)];
            let (_, m) = read(&files).unwrap();
            assert_eq!(m.name.as_deref(), Some("acme:app"));
            assert_eq!(
                m.dependencies[0].spec,
                crate::Spec::Range("[2.1,3)".into()),
                "parent at {parent_path}"
            );
        }
    }

    #[test]
    fn a_requirements_file_follows_its_includes_among_the_files() {
        let files = [
            file(
                "requirements/dev.txt",
                "-r ../requirements.txt\npytest>=8\n",
            ),
            file("requirements.txt", "acme-lib>=2.1,<3\n-r missing.txt\n"),
        ];
        let (ecosystem, m) = read(&files).unwrap();
        assert_eq!(ecosystem, Ecosystem::Pypi);
        let names: Vec<&str> = m.dependencies.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["acme-lib", "pytest"]);
        assert_eq!(m.missing, ["missing.txt"]);
    }

    #[test]
    fn an_unknown_first_file_is_refused_by_name() {
        let err = read(&[file("setup.cfg", "[metadata]\n")]).unwrap_err();
        assert!(err.to_string().contains("setup.cfg"), "{err}");
    }
}
