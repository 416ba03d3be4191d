//! npm's `package.json`: `dependencies`, `devDependencies`, `peerDependencies`
//! (optional when `peerDependenciesMeta` says so) and `optionalDependencies`, each a
//! map of name to spec, read with serde_json; each spec classified as npm's
//! package-spec documentation describes it: an `npm:` alias names another package, a
//! `workspace:`, `file:`, `link:`, git, GitHub shorthand, URL or `catalog:` spec is no
//! range, and what is left is a range if node-semver (js-semver) reads it, else a
//! dist-tag (`latest`).

use serde_json::{Map, Value};

use crate::{Declared, Manifest, ManifestError, Section, Spec};

/// The sections that declare dependencies, in the order they are read.
const SECTIONS: [(&str, Section); 4] = [
    ("dependencies", Section::Normal),
    ("devDependencies", Section::Dev),
    ("peerDependencies", Section::Peer),
    ("optionalDependencies", Section::Optional),
];

/// Reads `text`, the contents of `file` (a `package.json`).
pub fn read(file: &str, text: &str) -> Result<Manifest, ManifestError> {
    let root: Value = serde_json::from_str(text).map_err(|e| ManifestError::Syntax {
        file: file.to_owned(),
        format: "JSON",
        reason: e.to_string(),
    })?;
    let Value::Object(root) = root else {
        return Err(shape(file, "a package.json is one JSON object"));
    };
    let text_of = |key: &str| root.get(key).and_then(Value::as_str).map(str::to_owned);
    let mut manifest = Manifest {
        name: text_of("name"),
        version: text_of("version"),
        workspaces: workspaces(&root),
        ..Manifest::default()
    };
    let optional_peers = optional_peers(&root);
    for (key, section) in SECTIONS {
        let Some(found) = root.get(key) else {
            continue;
        };
        let Value::Object(deps) = found else {
            return Err(shape(file, &format!("{key} must map names to specs")));
        };
        for (local, spec) in deps {
            let Value::String(spec) = spec else {
                return Err(shape(
                    file,
                    &format!("{key}.{local} must be a string, such as \"^1.2.0\""),
                ));
            };
            let (name, spec) = classify(local, spec);
            let optional = match section {
                Section::Peer => optional_peers.iter().any(|p| p == local),
                Section::Optional => true,
                _ => false,
            };
            manifest.dependencies.push(Declared {
                local: (name != *local).then(|| local.clone()),
                name,
                spec,
                section,
                optional,
                indirect: false,
                condition: None,
            });
        }
    }
    Ok(manifest)
}

fn shape(file: &str, what: &str) -> ManifestError {
    ManifestError::Shape {
        file: file.to_owned(),
        what: what.to_owned(),
    }
}

/// `workspaces` as an array of globs, or Yarn's `{"packages": [...]}`.
fn workspaces(root: &Map<String, Value>) -> Vec<String> {
    let list = match root.get("workspaces") {
        Some(Value::Array(list)) => list,
        Some(Value::Object(o)) => match o.get("packages") {
            Some(Value::Array(list)) => list,
            _ => return Vec::new(),
        },
        _ => return Vec::new(),
    };
    list.iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// The peers `peerDependenciesMeta` marks `optional`.
fn optional_peers(root: &Map<String, Value>) -> Vec<String> {
    let Some(Value::Object(meta)) = root.get("peerDependenciesMeta") else {
        return Vec::new();
    };
    meta.iter()
        .filter(|(_, m)| m.get("optional").and_then(Value::as_bool) == Some(true))
        .map(|(name, _)| name.clone())
        .collect()
}

/// The package a spec for `local` names, and what it asks of it.
pub fn classify(local: &str, spec: &str) -> (String, Spec) {
    let spec = spec.trim();
    if let Some(aliased) = spec.strip_prefix("npm:") {
        // `npm:name@range`, the name perhaps scoped (`npm:@scope/name@^1`).
        let at = aliased
            .char_indices()
            .skip(1)
            .find(|&(_, c)| c == '@')
            .map(|(i, _)| i);
        return match at {
            Some(i) => (aliased[..i].to_owned(), version_spec(&aliased[i + 1..])),
            None => (aliased.to_owned(), Spec::Tag("latest".into())),
        };
    }
    let local = local.to_owned();
    let prefixed = |p: &str| spec.starts_with(p);
    if let Some(rest) = spec.strip_prefix("workspace:") {
        return (local, Spec::Workspace(rest.to_owned()));
    }
    if prefixed("file:") || prefixed("link:") || is_local_path(spec) {
        return (local, Spec::Path(spec.to_owned()));
    }
    if prefixed("catalog:") {
        return (local, Spec::Tag(spec.to_owned()));
    }
    if [
        "git+",
        "git://",
        "github:",
        "gitlab:",
        "bitbucket:",
        "gist:",
    ]
    .iter()
    .any(|p| prefixed(p))
    {
        return (local, Spec::Git(spec.to_owned()));
    }
    if prefixed("http://") || prefixed("https://") {
        return (local, Spec::Url(spec.to_owned()));
    }
    if is_github_shorthand(spec) {
        return (local, Spec::Git(spec.to_owned()));
    }
    (local, version_spec(spec))
}

/// A range if node-semver reads it (an empty spec is `*`), else a dist-tag.
fn version_spec(spec: &str) -> Spec {
    let spec = spec.trim();
    if spec.is_empty() {
        return Spec::Range("*".into());
    }
    match js_semver::Range::parse(spec) {
        Ok(_) => Spec::Range(spec.to_owned()),
        Err(_) => Spec::Tag(spec.to_owned()),
    }
}

/// `./dir`, `../dir`, `/abs/dir`, `~/dir`: npm takes these as folders.
fn is_local_path(spec: &str) -> bool {
    spec.starts_with("./")
        || spec.starts_with("../")
        || spec.starts_with('/')
        || spec.starts_with("~/")
}

/// `user/repo` or `user/repo#ref`: GitHub's shorthand, which no range or tag looks
/// like (neither holds a `/`).
fn is_github_shorthand(spec: &str) -> bool {
    let repo = spec.split('#').next().unwrap_or(spec);
    match repo.split_once('/') {
        Some((user, name)) => {
            !user.is_empty()
                && !name.is_empty()
                && !name.contains('/')
                && !user.starts_with('@')
                && !repo.contains(char::is_whitespace)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_spec_is_told_apart() {
        let cases = [
            ("a", "^1.2.0", "a", Spec::Range("^1.2.0".into())),
            ("a", "", "a", Spec::Range("*".into())),
            ("a", ">= 1.2.2", "a", Spec::Range(">= 1.2.2".into())),
            ("a", "latest", "a", Spec::Tag("latest".into())),
            (
                "x",
                "npm:string-width@^4.2.0",
                "string-width",
                Spec::Range("^4.2.0".into()),
            ),
            (
                "x",
                "npm:@scope/pkg@~1.0",
                "@scope/pkg",
                Spec::Range("~1.0".into()),
            ),
            ("x", "npm:slash", "slash", Spec::Tag("latest".into())),
            ("a", "workspace:^", "a", Spec::Workspace("^".into())),
            ("a", "file:./dep", "a", Spec::Path("file:./dep".into())),
            ("a", "../dep", "a", Spec::Path("../dep".into())),
            (
                "a",
                "git://github.com/a/b.git",
                "a",
                Spec::Git("git://github.com/a/b.git".into()),
            ),
            (
                "a",
                "expressjs/express#4.x",
                "a",
                Spec::Git("expressjs/express#4.x".into()),
            ),
            (
                "a",
                "https://x.example/a.tgz",
                "a",
                Spec::Url("https://x.example/a.tgz".into()),
            ),
            ("a", "catalog:", "a", Spec::Tag("catalog:".into())),
        ];
        for (local, spec, name, want) in cases {
            assert_eq!(classify(local, spec), (name.to_owned(), want), "{spec:?}");
        }
    }

    #[test]
    fn a_manifest_that_is_not_one_is_refused_with_the_file_named() {
        let err = read("apps/web/package.json", "{\"name\": ").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("apps/web/package.json is not valid JSON"),
            "{err}"
        );
        let err = read("package.json", r#"{"dependencies": {"a": 1}}"#).unwrap_err();
        assert!(
            err.to_string().contains("dependencies.a must be a string"),
            "{err}"
        );
    }
}
