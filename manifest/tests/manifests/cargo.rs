//! Cargo's `Cargo.toml` of public projects (`../shared/fixtures/manifests/cargo/`,
//! their origins in SOURCES.md there), each read into the dependencies it must
//! yield, workspace members with and without their root.

use conjunction_manifest::{cargo, Declared, Manifest, Section, Spec};

fn dir() -> std::path::PathBuf {
    crate::dir("cargo")
}

fn text(name: &str) -> String {
    std::fs::read_to_string(dir().join(name)).unwrap()
}

fn read(name: &str, root: Option<&str>) -> Manifest {
    let root = root.map(text);
    cargo::read(name, &text(name), root.as_deref()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn find<'a>(m: &'a Manifest, local: &str, section: Section) -> &'a Declared {
    m.dependencies
        .iter()
        .find(|d| d.local.as_deref().unwrap_or(&d.name) == local && d.section == section)
        .unwrap_or_else(|| panic!("{local} in {section:?}"))
}

fn range(r: &str) -> Spec {
    Spec::Range(r.into())
}

const FILES: [&str; 7] = [
    "Stebalien-tempfile.Cargo.toml",
    "bytecodealliance-rustix.Cargo.toml",
    "helix-editor-helix.Cargo.toml",
    "helix-editor-helix.helix-term.Cargo.toml",
    "lapce-lapce.Cargo.toml",
    "lapce-lapce.lapce-app.Cargo.toml",
    "sfackler-rust-openssl.openssl-sys.Cargo.toml",
];

#[test]
fn every_cargo_manifest_is_read() {
    for entry in std::fs::read_dir(dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            FILES.contains(&name.as_str()),
            "cargo/{name} is read by a test here"
        );
        read(&name, None);
    }
}

#[test]
fn tempfile_declares_target_dependencies_with_comma_ranges() {
    let m = read("Stebalien-tempfile.Cargo.toml", None);
    assert_eq!(m.name.as_deref(), Some("tempfile"));
    assert_eq!(find(&m, "fastrand", Section::Normal).spec, range("^2.1.1"));
    assert_eq!(
        find(&m, "windows-sys", Section::Normal).spec,
        range(">=0.52, <0.62")
    );
    let getrandom = find(&m, "getrandom", Section::Normal);
    assert_eq!(getrandom.spec, range(">=0.3.0, <0.5"));
    assert!(getrandom.optional);
    assert_eq!(find(&m, "doc-comment", Section::Dev).spec, range("^0.3"));
    let normal = m
        .dependencies
        .iter()
        .filter(|d| d.section == Section::Normal)
        .count();
    assert_eq!(normal, 5, "two of its own, three in target tables");
}

#[test]
fn rustix_renames_name_the_registry_crate() {
    let m = read("bytecodealliance-rustix.Cargo.toml", None);
    let core = find(&m, "core", Section::Normal);
    assert_eq!(core.name, "rustc-std-workspace-core");
    assert!(core.optional);
    let errno = find(&m, "libc_errno", Section::Dev);
    assert_eq!(
        (errno.name.as_str(), &errno.spec),
        ("errno", &range("^0.3.10"))
    );
}

#[test]
fn a_virtual_root_lists_members_and_declares_nothing_itself() {
    let m = read("helix-editor-helix.Cargo.toml", None);
    assert_eq!(m.name, None);
    assert_eq!(m.workspaces.len(), 14);
    assert!(m.dependencies.is_empty(), "{:?}", m.dependencies);
}

#[test]
fn a_member_inherits_from_its_root_and_says_so_without_it() {
    let term = read(
        "helix-editor-helix.helix-term.Cargo.toml",
        Some("helix-editor-helix.Cargo.toml"),
    );
    assert_eq!(find(&term, "tempfile", Section::Dev).spec, range("^3.27.0"));
    let tui = find(&term, "tui", Section::Normal);
    assert_eq!(
        (tui.name.as_str(), &tui.spec),
        ("helix-tui", &Spec::Path("../helix-tui".into()))
    );
    assert_eq!(
        find(&term, "helix-loader", Section::Build).spec,
        Spec::Path("../helix-loader".into())
    );
    assert_eq!(find(&term, "libc", Section::Normal).spec, range("^0.2.186"));
    let alone = read("helix-editor-helix.helix-term.Cargo.toml", None);
    assert_eq!(
        find(&alone, "tempfile", Section::Dev).spec,
        Spec::Workspace("workspace = true".into()),
        "unresolved without the root, never guessed"
    );

    let app = read(
        "lapce-lapce.lapce-app.Cargo.toml",
        Some("lapce-lapce.Cargo.toml"),
    );
    assert_eq!(find(&app, "anyhow", Section::Normal).spec, range("^1.0"));
    assert_eq!(find(&app, "config", Section::Normal).spec, range("=0.13.4"));
    assert_eq!(
        find(&app, "tracing", Section::Normal).spec,
        Spec::Git(
            "https://github.com/tokio-rs/tracing#908cc432a5994f6e17c8f36e13c217dc40085704".into()
        )
    );
    assert_eq!(
        find(&app, "fs_extra", Section::Normal).spec,
        range("^1.2.0")
    );
    assert!(
        app.dependencies
            .iter()
            .all(|d| d.spec != Spec::Workspace("workspace = true".into())),
        "every inherited entry is found in the root"
    );
}

#[test]
fn a_root_that_is_a_package_inherits_from_itself_and_build_dependencies_are_read() {
    let lapce = read("lapce-lapce.Cargo.toml", None);
    assert_eq!(lapce.name.as_deref(), Some("lapce"));
    assert_eq!(lapce.workspaces.len(), 4);
    assert_eq!(
        find(&lapce, "lapce-app", Section::Normal).spec,
        Spec::Path("./lapce-app".into())
    );
    let ssl = read("sfackler-rust-openssl.openssl-sys.Cargo.toml", None);
    let build: Vec<&str> = ssl
        .dependencies
        .iter()
        .filter(|d| d.section == Section::Build)
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(
        build,
        ["bindgen", "cc", "openssl-src", "pkg-config", "vcpkg"]
    );
    assert!(find(&ssl, "bindgen", Section::Build).optional);
    assert_eq!(find(&ssl, "libc", Section::Normal).spec, range("^0.2"));
}

#[test]
fn a_cargo_toml_that_does_not_parse_is_refused_with_the_file_named() {
    let err = cargo::read("crates/a/Cargo.toml", "[package\nname = 1", None).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("crates/a/Cargo.toml is not valid Cargo.toml"),
        "{err}"
    );
    let err = cargo::read(
        "Cargo.toml",
        "[dependencies]\nserde = \"not a version\"\n",
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("Cargo.toml"), "{err}");
}
