//! Conformance of the ranges conjunction reads against the upstream projects' own test
//! tables in `../shared/fixtures/semver/` (node-semver v7.8.5's fixtures and
//! pypa/packaging's `test_specifiers.py` tables; where they came from is in that
//! directory's SOURCES.md), read at run time.
//!
//! Every row the implementation claims to support is run. Rows that are not run are
//! counted by the tests and named here, with why:
//! - node-semver rows with `loose` or `includePrerelease`: conjunction reads npm
//!   ranges in node-semver's strict mode without `includePrerelease`, as the issue
//!   asks; a loose-only range is refused at registration.
//! - node-semver `gtr` rows whose version is a pre-release: conjunction never asks for
//!   a bump because of a pre-release (docs/versions.md), so its "too new" is `gtr`
//!   for releases only.
//! - node-semver `ltr` says a version is below a range; conjunction does not tell
//!   "below" from "in a gap", so only "not taken and not too new" is checked.
//! - pypa tables that set `prereleases=` explicitly, or assert packaging's own default
//!   for single specifiers: conjunction has no per-dependency pre-release switch, and
//!   its default is pip's (a pre-release only when a specifier names one), which the
//!   pre-release rows of `test_specifiers` check.
//! - pypa `test_arbitrary_equality` rows whose version is not a PEP 440 version
//!   (`foobar`): a project's version must be one, so such rows are refused as versions.

mod maven;
mod node;
mod own;
mod pypa;

use std::path::PathBuf;

use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/semver")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the semver tables are read from {} (../shared beside the repository): {e}",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}
