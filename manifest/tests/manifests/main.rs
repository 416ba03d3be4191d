//! The readers on the real manifests of public projects in
//! `../shared/fixtures/manifests/<ecosystem>/` (their origins in SOURCES.md there),
//! read at run time: one module per ecosystem, each failing on a file it does not
//! read, and the resolution of what they read to registered projects.

mod cargo;
mod go;
mod maven;
mod npm;
mod python;
mod resolve;

/// The fixtures of one ecosystem (`npm`, `cargo`, `go`, `maven`, `python`).
fn dir(ecosystem: &str) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/manifests")
        .join(ecosystem);
    assert!(
        dir.is_dir(),
        "the manifests are read from {}",
        dir.display()
    );
    dir
}
