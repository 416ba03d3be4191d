//! The native CIs' webhooks and API answers as those systems send them: every file of
//! `../shared/fixtures/ci/` (real payloads; their origins are in that directory's
//! README), read at run time.

mod buildkite_jenkins;
mod github;
mod gitlab;

use std::path::PathBuf;

/// The fixtures of one CI (`github`, `gitlab`, `buildkite`, `jenkins`).
fn fixtures(ci: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/ci")
        .join(ci);
    assert!(
        dir.is_dir(),
        "the CI fixtures are read from {} (../shared beside the repository)",
        dir.display()
    );
    dir
}

fn read(ci: &str, name: &str) -> Vec<u8> {
    std::fs::read(fixtures(ci).join(name)).unwrap_or_else(|e| panic!("{ci}/{name}: {e}"))
}

/// Every file of `ci`'s fixtures is one of `names`: a file added there is read by a
/// test, not passed over.
fn all_named(ci: &str, names: &[&str]) {
    for entry in std::fs::read_dir(fixtures(ci)).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            names.contains(&name.as_str()),
            "{ci}/{name} is read by this test"
        );
    }
}
