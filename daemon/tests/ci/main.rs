//! The native CIs' webhooks and API answers as those systems send them: every file of
//! `../shared/fixtures/ci/` (real payloads; their origins are in that directory's
//! README), read at run time.

mod buildkite_jenkins;
mod forge_events;
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

/// The run a delivery is about; it must be about one.
fn run(hook: conjunction_daemon::ci::Hook) -> conjunction_daemon::ci::RunNews {
    match hook {
        conjunction_daemon::ci::Hook::Run(news) => news,
        conjunction_daemon::ci::Hook::Unused(note) => panic!("about no run: {note}"),
        conjunction_daemon::ci::Hook::Change(change) => panic!("about a request: {change:?}"),
    }
}

/// A file of `../shared/fixtures/acceptance/<dir>/`; a `{"headers", "body"}` capture
/// gives its body, serialised.
fn read_acceptance(dir: &str, name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/acceptance")
        .join(dir)
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(capture) if capture.get("headers").is_some() && capture.get("body").is_some() => {
            serde_json::to_vec(&capture["body"]).unwrap()
        }
        _ => bytes,
    }
}
