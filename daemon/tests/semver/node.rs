//! node-semver's fixtures against conjunction's npm ranges (js-semver underneath).

use std::cmp::Ordering;

use conjunction_daemon::planner::versions::{Ecosystem, Fit, Range, Version};
use serde_json::Value;

use super::fixture;

const NPM: Ecosystem = Ecosystem::Npm;

/// The rows of one table that use neither `loose` nor `includePrerelease`, and how
/// many were left out.
fn strict(table: &str) -> (Vec<Value>, usize) {
    let all = fixture("node-semver.derived.json")[table]
        .as_array()
        .unwrap_or_else(|| panic!("table {table}"))
        .clone();
    let total = all.len();
    let strict: Vec<Value> = all
        .into_iter()
        .filter(|r| r["options"]["loose"] == false && r["options"]["includePrerelease"] == false)
        .collect();
    let left = total - strict.len();
    (strict, left)
}

fn fit(range: &str, version: &str) -> Option<Fit> {
    let range = Range::parse(NPM, range).ok()?;
    let version = Version::parse(NPM, version).ok()?;
    Some(range.fit(&version))
}

#[test]
fn every_strict_include_and_exclude_row_agrees_with_satisfies() {
    let mut run = 0;
    for table in ["range_include", "range_exclude"] {
        let (rows, left) = strict(table);
        for r in &rows {
            let expected = r["expected"].as_bool().unwrap();
            let (Some(range), Some(version)) = (r["range"].as_str(), r["version"].as_str()) else {
                // One exclude row passes `false` as the version: nothing takes it.
                assert!(!expected, "{r}");
                continue;
            };
            let taken = fit(range, version) == Some(Fit::Takes);
            assert_eq!(taken, expected, "{table}: {range:?} takes {version:?}");
            run += 1;
        }
        eprintln!(
            "{table}: {} strict rows run, {left} with options left out",
            rows.len()
        );
    }
    assert_eq!(
        run, 177,
        "the strict rows of range-include and range-exclude"
    );
}

#[test]
fn every_strict_range_parse_row_is_valid_exactly_when_node_says_so() {
    let (rows, left) = strict("range_parse");
    for r in &rows {
        let range = r["range"].as_str().unwrap();
        let valid = !r["canonical"].is_null();
        let parsed = Range::parse(NPM, range);
        assert_eq!(parsed.is_ok(), valid, "{range:?}: {parsed:?}");
        if let Err(e) = parsed {
            let message = e.to_string();
            assert!(message.contains("is not an npm range"), "{message}");
        } else {
            // The canonical form is js-semver's own, compared here to keep an
            // upgrade of the crate honest.
            let canonical = js_semver::Range::parse(range).unwrap().to_string();
            assert_eq!(canonical, r["canonical"].as_str().unwrap(), "{range:?}");
        }
    }
    assert_eq!((rows.len(), left), (111, 22));
}

#[test]
fn too_new_is_gtr_for_every_release_row() {
    let (mut run, mut pre) = (0, 0);
    for (table, expected) in [("version_gt_range", true), ("version_not_gt_range", false)] {
        let (rows, _) = strict(table);
        for r in &rows {
            let (range, version) = (r["range"].as_str().unwrap(), r["version"].as_str().unwrap());
            let Ok(v) = Version::parse(NPM, version) else {
                // node's gtr of an invalid version throws; such rows do not exist strictly.
                panic!("{table}: {version:?} does not read");
            };
            if v.is_prerelease() {
                pre += 1;
                continue;
            }
            let got = fit(range, version);
            assert_eq!(
                got == Some(Fit::TooNew),
                expected,
                "{table}: {version} vs {range:?} gave {got:?}"
            );
            run += 1;
        }
    }
    eprintln!("gtr: {run} release rows run, {pre} pre-release rows left out");
    assert!(run >= 90, "{run}");
}

#[test]
fn a_version_below_a_range_is_outside_it_not_too_new() {
    let (rows, _) = strict("version_lt_range");
    let mut run = 0;
    for r in &rows {
        let (range, version) = (r["range"].as_str().unwrap(), r["version"].as_str().unwrap());
        assert_eq!(
            fit(range, version),
            Some(Fit::Outside),
            "{version} vs {range:?}"
        );
        run += 1;
    }
    assert!(run >= 40, "{run}");
}

#[test]
fn versions_read_and_compare_as_node_reads_them() {
    let (rows, _) = strict("comparisons");
    for r in &rows {
        let (g, l) = (
            r["greater"].as_str().unwrap(),
            r["lesser"].as_str().unwrap(),
        );
        let (g, l) = (
            Version::parse(NPM, g).unwrap(),
            Version::parse(NPM, l).unwrap(),
        );
        assert_eq!(g.compare(&l), Some(Ordering::Greater), "{r}");
    }
    let (rows, _) = strict("equality");
    for r in &rows {
        let (a, b) = (r["a"].as_str().unwrap(), r["b"].as_str().unwrap());
        let (a, b) = (
            Version::parse(NPM, a).unwrap(),
            Version::parse(NPM, b).unwrap(),
        );
        assert_eq!(a.compare(&b), Some(Ordering::Equal), "{r}");
    }
    for r in fixture("node-semver.derived.json")["valid_versions"]
        .as_array()
        .unwrap()
    {
        Version::parse(NPM, r["version"].as_str().unwrap()).unwrap();
    }
    for r in fixture("node-semver.derived.json")["invalid_versions"]
        .as_array()
        .unwrap()
    {
        if let Some(text) = r["value"].as_str() {
            assert!(Version::parse(NPM, text).is_err(), "{text:?}");
        }
    }
}

#[test]
fn zero_majors_break_on_minors_and_pre_releases_need_naming() {
    assert_eq!(fit("^0.2", "0.3.0"), Some(Fit::TooNew));
    assert_eq!(fit("^0.2", "0.2.9"), Some(Fit::Takes));
    assert_eq!(fit("^0.0.3", "0.0.4"), Some(Fit::TooNew));
    assert_eq!(fit("^1.2", "1.3.0-beta.1"), Some(Fit::Outside));
    assert_eq!(fit("^1.3.0-beta.0", "1.3.0-beta.1"), Some(Fit::Takes));
    assert_eq!(
        fit("^1.2", "2.0.0-rc.1"),
        Some(Fit::Outside),
        "no bump for a pre-release"
    );
    assert_eq!(
        fit("1.x || 3.x", "2.0.0"),
        Some(Fit::Outside),
        "a gap is not too new"
    );
    assert_eq!(fit("1.x || 3.x", "4.0.0"), Some(Fit::TooNew));
    assert_eq!(fit(">=1.2", "9.0.0"), Some(Fit::Takes));
}
