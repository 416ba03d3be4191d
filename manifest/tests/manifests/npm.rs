//! npm's `package.json` of public projects (`../shared/fixtures/manifests/npm/`, their
//! origins in SOURCES.md there), each read into the dependencies it must yield.

use conjunction_manifest::{npm, Declared, Manifest, Section, Spec};

fn dir() -> std::path::PathBuf {
    crate::dir("npm")
}

fn read(name: &str) -> Manifest {
    let text = std::fs::read_to_string(dir().join(name)).unwrap();
    npm::read(name, &text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn find<'a>(m: &'a Manifest, local: &str, section: Section) -> &'a Declared {
    m.dependencies
        .iter()
        .find(|d| d.local.as_deref().unwrap_or(&d.name) == local && d.section == section)
        .unwrap_or_else(|| panic!("{local} in {section:?}"))
}

fn count(m: &Manifest, section: Section) -> usize {
    m.dependencies
        .iter()
        .filter(|d| d.section == section)
        .count()
}

const FILES: [&str; 7] = [
    "expressjs-express.package.json",
    "hackmdio-codimd.package.json",
    "isaacs-cliui.package.json",
    "jestjs-jest.package.json",
    "mermaid-js-mermaid.packages-mermaid.package.json",
    "vitejs-vite.packages-vite.package.json",
    "vitejs-vite.playground-external.package.json",
];

#[test]
fn every_npm_manifest_is_read() {
    for entry in std::fs::read_dir(dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            FILES.contains(&name.as_str()),
            "npm/{name} is read by a test here"
        );
        read(&name);
    }
}

#[test]
fn express_2011_has_loose_ranges_and_a_git_dependency() {
    let m = read("expressjs-express.package.json");
    assert_eq!(
        (count(&m, Section::Normal), count(&m, Section::Dev)),
        (5, 9)
    );
    assert_eq!(
        find(&m, "connect", Section::Normal).spec,
        Spec::Git("git://github.com/senchalabs/connect.git".into())
    );
    for (name, range) in [
        ("commander", "0.3.2"),
        ("mime", ">= 1.2.2"),
        ("qs", ">= 0.3.2"),
    ] {
        assert_eq!(
            find(&m, name, Section::Normal).spec,
            Spec::Range(range.into())
        );
    }
    assert_eq!(
        find(&m, "jade", Section::Dev).spec,
        Spec::Range("0.17.x".into())
    );
    assert_eq!(
        find(&m, "mocha", Section::Dev).spec,
        Spec::Range("*".into())
    );
}

#[test]
fn codimd_has_git_specs_and_optional_dependencies() {
    let m = read("hackmdio-codimd.package.json");
    assert_eq!(count(&m, Section::Normal), 115);
    assert_eq!(count(&m, Section::Dev), 38);
    let git: Vec<&str> = m
        .dependencies
        .iter()
        .filter(|d| matches!(d.spec, Spec::Git(_)))
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(git.len(), 6, "{git:?}");
    assert!(
        git.contains(&"Idle.Js") && git.contains(&"codemirror"),
        "{git:?}"
    );
    assert_eq!(
        find(&m, "express", Section::Normal).spec,
        Spec::Range(">=4.14".into())
    );
    let optional = find(&m, "bufferutil", Section::Optional);
    assert!(optional.optional);
    assert_eq!(optional.spec, Spec::Range("^4.0.0".into()));
}

#[test]
fn cliui_depends_on_string_width_twice_through_an_alias() {
    let m = read("isaacs-cliui.package.json");
    let widths: Vec<(&Option<String>, &Spec)> = m
        .dependencies
        .iter()
        .filter(|d| d.name == "string-width")
        .map(|d| (&d.local, &d.spec))
        .collect();
    assert_eq!(
        widths,
        vec![
            (&None, &Spec::Range("^5.1.2".into())),
            (
                &Some("string-width-cjs".to_owned()),
                &Spec::Range("^4.2.0".into())
            ),
        ]
    );
}

#[test]
fn workspace_roots_and_members_link_inside_their_workspace() {
    let jest = read("jestjs-jest.package.json");
    assert_eq!(jest.workspaces, vec!["packages/*", "website", "examples/*"]);
    assert_eq!(
        find(&jest, "@jest/globals", Section::Dev).spec,
        Spec::Workspace("*".into())
    );
    let mermaid = read("mermaid-js-mermaid.packages-mermaid.package.json");
    assert_eq!(mermaid.name.as_deref(), Some("mermaid"));
    assert_eq!(
        find(&mermaid, "@mermaid-js/parser", Section::Normal).spec,
        Spec::Workspace("^".into())
    );
}

#[test]
fn vite_peers_are_optional_and_its_playground_has_paths_and_aliases() {
    let vite = read("vitejs-vite.packages-vite.package.json");
    let peers: Vec<&Declared> = vite
        .dependencies
        .iter()
        .filter(|d| d.section == Section::Peer)
        .collect();
    assert_eq!(peers.len(), 12);
    assert!(peers.iter().all(|p| p.optional));
    assert_eq!(
        find(&vite, "@types/node", Section::Peer).spec,
        Spec::Range("^20.19.0 || >=22.12.0".into())
    );
    // The same name in dev and peer is two declarations.
    find(&vite, "esbuild", Section::Dev);
    assert_eq!(
        find(&vite, "fsevents", Section::Optional).spec,
        Spec::Range("~2.3.3".into())
    );

    let play = read("vitejs-vite.playground-external.package.json");
    assert_eq!(
        find(&play, "@vitejs/test-dep-that-imports", Section::Normal).spec,
        Spec::Path("file:./dep-that-imports".into())
    );
    for (local, name, range) in [
        ("slash3", "slash", "^3.0.0"),
        ("slash5", "slash", "^5.1.0"),
        ("vue34", "vue", "~3.4.38"),
    ] {
        let d = find(&play, local, Section::Dev);
        assert_eq!(
            (d.name.as_str(), &d.spec),
            (name, &Spec::Range(range.into()))
        );
    }
    assert_eq!(
        find(&play, "vite", Section::Dev).spec,
        Spec::Workspace("*".into())
    );
}
