//! Resolving real manifests' dependencies to registered projects by package
//! identity, with what is unregistered listed.

use conjunction_manifest::resolve::{identity, resolve, Options};
use conjunction_manifest::{cargo, npm, python};
use conjunction_protocol::project::Ecosystem;
use conjunction_protocol::{Package, ProjectId};

fn fixture(path: &str) -> String {
    let (ecosystem, name) = path.split_once('/').unwrap();
    let path = crate::dir(ecosystem).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn registered(ecosystem: Ecosystem, pairs: &[(&str, &str)]) -> Vec<(Package, ProjectId)> {
    pairs
        .iter()
        .map(|(name, id)| {
            (
                Package {
                    ecosystem,
                    name: (*name).into(),
                },
                ProjectId::parse(id).unwrap(),
            )
        })
        .collect()
}

#[test]
fn names_are_compared_as_each_ecosystem_compares_them() {
    assert_eq!(
        identity(Ecosystem::Pypi, "Typing_Extensions"),
        "typing-extensions"
    );
    assert_eq!(
        identity(Ecosystem::Pypi, "zope..interface"),
        "zope-interface"
    );
    assert_eq!(identity(Ecosystem::Cargo, "Serde_JSON"), "serde-json");
    assert_eq!(identity(Ecosystem::Npm, "Idle.Js"), "Idle.Js");
}

#[test]
fn an_npm_alias_of_a_registered_package_is_the_same_upstream_and_the_rest_is_unregistered() {
    let m = npm::read("package.json", &fixture("npm/isaacs-cliui.package.json")).unwrap();
    let known = registered(
        Ecosystem::Npm,
        &[
            ("string-width", "acme/string-width"),
            ("cliui", "acme/cliui"),
        ],
    );
    let own = ProjectId::parse("acme/cliui").unwrap();
    let r = resolve(&m, Ecosystem::Npm, &known, Some(&own), Options::default());
    assert_eq!(r.depends_on.len(), 1);
    assert_eq!(r.depends_on[0].project.as_str(), "acme/string-width");
    assert_eq!(
        r.depends_on[0].range.as_deref(),
        Some("^5.1.2"),
        "the first runtime declaration"
    );
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("declared more than once (^5.1.2 and ^4.2.0)")),
        "{:?}",
        r.notes
    );
    let unregistered: Vec<&str> = r.unregistered.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        unregistered,
        ["strip-ansi", "strip-ansi", "wrap-ansi", "wrap-ansi"],
        "dev ones skipped"
    );
    let with_dev = resolve(
        &m,
        Ecosystem::Npm,
        &known,
        Some(&own),
        Options { dev: true },
    );
    assert_eq!(with_dev.unregistered.len(), 4 + 17);
}

#[test]
fn a_path_dependency_on_a_registered_crate_builds_with_every_release_and_says_so() {
    let m = cargo::read(
        "helix-term/Cargo.toml",
        &fixture("cargo/helix-editor-helix.helix-term.Cargo.toml"),
        Some(&fixture("cargo/helix-editor-helix.Cargo.toml")),
    )
    .unwrap();
    let known = registered(
        Ecosystem::Cargo,
        &[("helix_tui", "helix/tui"), ("libc", "rust/libc")],
    );
    let r = resolve(&m, Ecosystem::Cargo, &known, None, Options::default());
    let got: Vec<(&str, Option<&str>)> = r
        .depends_on
        .iter()
        .map(|d| (d.project.as_str(), d.range.as_deref()))
        .collect();
    assert_eq!(got, [("helix/tui", None), ("rust/libc", Some("^0.2.186"))]);
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("helix/tui is declared as a path on disk")),
        "{:?}",
        r.notes
    );
}

#[test]
fn python_names_match_whatever_their_spelling() {
    let m = python::pyproject(
        "pyproject.toml",
        &fixture("python/encode-uvicorn.pyproject.toml"),
    )
    .unwrap();
    let known = registered(
        Ecosystem::Pypi,
        &[
            ("Typing_Extensions", "py/typing-extensions"),
            ("PyYAML", "py/yaml"),
        ],
    );
    let r = resolve(&m, Ecosystem::Pypi, &known, None, Options::default());
    let got: Vec<(&str, Option<&str>)> = r
        .depends_on
        .iter()
        .map(|d| (d.project.as_str(), d.range.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("py/typing-extensions", Some(">=4.0")),
            ("py/yaml", Some(">=5.1"))
        ]
    );
}
