//! pypa/packaging's specifier tables against conjunction's PyPI ranges (uv-pep440
//! underneath, with PEP 440's default pre-release rule on top).

use conjunction_daemon::planner::versions::{Ecosystem, Fit, Range, Version};
use serde_json::Value;

use super::fixture;

const PYPI: Ecosystem = Ecosystem::Pypi;

fn table(test: &str) -> Vec<Vec<Value>> {
    let all = fixture("pypa-packaging/specifiers.derived.json");
    let entry = all["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["test"] == test)
        .unwrap_or_else(|| panic!("table {test}"));
    entry["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_array().unwrap().clone())
        .collect()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

/// Whether a specifier set names a pre-release, so that pre-releases may be taken.
fn names_prerelease(spec: &str) -> bool {
    spec.split(',').any(|one| {
        let version = one
            .trim()
            .trim_start_matches(['<', '>', '=', '!', '~'])
            .trim_end_matches(".*");
        Version::parse(PYPI, version).is_ok_and(|v| v.is_prerelease())
    })
}

/// Runs `(version, spec, expected)` rows, where `expected` is pure PEP 440 matching
/// (packaging's `prereleases=True`). A release is taken exactly as expected; a
/// pre-release only when it matches and the specifier names a pre-release.
fn run_matching(rows: &[(String, String, bool)]) -> (usize, usize) {
    let (mut run, mut refused) = (0, 0);
    for (version, spec, expected) in rows {
        let (Ok(range), Ok(v)) = (Range::parse(PYPI, spec), Version::parse(PYPI, version)) else {
            refused += 1;
            continue;
        };
        let want = *expected && (!v.is_prerelease() || names_prerelease(spec));
        assert_eq!(
            range.fit(&v) == Fit::Takes,
            want,
            "{spec:?} takes {version:?} (matches: {expected})"
        );
        run += 1;
    }
    (run, refused)
}

#[test]
fn every_test_specifiers_row_matches() {
    let rows: Vec<(String, String, bool)> = table("TestSpecifier.test_specifiers")
        .iter()
        .map(|r| (s(&r[0]).into(), s(&r[1]).into(), r[2].as_bool().unwrap()))
        .collect();
    assert_eq!(run_matching(&rows), (188, 0));
}

#[test]
fn arbitrary_equality_matches_for_every_pep_440_version() {
    let rows: Vec<(String, String, bool)> = table("TestSpecifier.test_arbitrary_equality")
        .iter()
        .map(|r| (s(&r[0]).into(), s(&r[1]).into(), r[2].as_bool().unwrap()))
        .collect();
    // Six rows use "versions" such as `foobar`, which are not PEP 440 versions.
    assert_eq!(run_matching(&rows), (41, 6));
}

#[test]
fn invalid_specifiers_are_refused_and_valid_ones_read() {
    let invalid = table("TestSpecifier.test_specifiers_invalid");
    assert_eq!(invalid.len(), 31);
    for r in &invalid {
        let err = Range::parse(PYPI, s(&r[0])).unwrap_err().to_string();
        assert!(err.contains("is not a PyPI range"), "{err}");
    }
    for r in table("TestSpecifier.test_specifiers_valid") {
        Range::parse(PYPI, s(&r[0])).unwrap();
    }
    // A version that is not PEP 440 is never taken: conjunction refuses it as a
    // version. Upstream's `===invalid` row takes the string "invalid" by identity,
    // which is the one row of eleven this leaves out.
    let rows = table("TestSpecifier.test_invalid_version");
    let mut run = 0;
    for r in &rows {
        assert!(Version::parse(PYPI, s(&r[1])).is_err());
        if r[2] == false {
            run += 1;
        }
    }
    assert_eq!((run, rows.len()), (10, 11));
}

#[test]
fn upper_ends_follow_each_operator() {
    let fit = |spec: &str, v: &str| {
        Range::parse(PYPI, spec)
            .unwrap()
            .fit(&Version::parse(PYPI, v).unwrap())
    };
    assert_eq!(fit("~=1.4", "2.0"), Fit::TooNew);
    assert_eq!(fit("~=1.4", "1.9"), Fit::Takes);
    assert_eq!(fit("~=1.4.2", "1.5.0"), Fit::TooNew);
    assert_eq!(fit("==1.2.*", "1.3"), Fit::TooNew);
    assert_eq!(fit(">=1.4,<2", "2.0"), Fit::TooNew);
    assert_eq!(fit(">=1.4,<2", "1.3"), Fit::Outside);
    assert_eq!(fit(">=1.4,!=1.5.*", "1.5.2"), Fit::Outside, "a gap");
    assert_eq!(fit("<=2.0", "2.0.post1"), Fit::TooNew);
    assert_eq!(
        fit(">=1.4,<2", "2.0rc1"),
        Fit::Outside,
        "no bump for a pre-release"
    );
    assert_eq!(
        fit(">=1.4", "2.0rc1"),
        Fit::Outside,
        "a pre-release needs naming"
    );
    assert_eq!(fit(">=2.0rc1", "2.0rc2"), Fit::Takes);
    assert_eq!(fit("==1.0", "1!0.5"), Fit::TooNew, "epochs come first");
}
