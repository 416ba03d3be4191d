//! Maven, against Maven's own tests: every `containsVersion` assertion, parsed bound
//! and invalid range of `VersionRangeTest`, and every order and equality of
//! `ComparableVersionTest` (apache/maven, `compat/maven-artifact`), from
//! `../shared/fixtures/acceptance/versions/maven.json`. The two decisions where
//! conjunction reads a row differently from Maven are named in docs/versions.md.

use conjunction_daemon::planner::versions::maven::{Range, Version};
use serde_json::Value;

fn table() -> Value {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/acceptance/versions/maven.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} (../shared beside the repository): {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn v(s: &str) -> Version {
    Version::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

fn text(value: &Value) -> &str {
    value.as_str().expect("a string")
}

#[test]
fn every_contains_version_assertion_of_version_range_test_holds() {
    let t = table();
    let rows = t["contains"].as_array().unwrap();
    assert_eq!(rows.len(), 35);
    let mut wrong = Vec::new();
    for row in rows {
        let (spec, version) = (text(&row["spec"]), text(&row["version"]));
        let range = Range::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
        if range.takes(&v(version)) != row["expected"].as_bool().unwrap() {
            wrong.push(format!(
                "{spec} takes {version}: Maven says {}",
                row["expected"]
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn every_range_parses_to_the_bounds_maven_gives_it() {
    let t = table();
    for row in t["restrictions"].as_array().unwrap() {
        let spec = text(&row["spec"]);
        let range = Range::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
        let bounds: Vec<(Option<String>, bool, Option<String>, bool)> = row["bounds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                let end = |i: usize| b[i].as_str().map(str::to_owned);
                (
                    end(0),
                    b[1].as_bool().unwrap(),
                    end(2),
                    b[3].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(range.bounds(), bounds, "{spec}");
        assert_eq!(
            range.recommended().map(|v| v.to_string()),
            row["recommended"].as_str().map(str::to_owned),
            "{spec}"
        );
    }
}

#[test]
fn every_range_maven_refuses_is_refused() {
    let t = table();
    for spec in t["invalid"].as_array().unwrap() {
        let spec = text(spec);
        assert!(Range::parse(spec).is_err(), "{spec} is not a range");
    }
}

#[test]
fn every_order_and_equality_of_comparable_version_test_holds() {
    let t = table();
    let mut wrong = Vec::new();
    for (name, list) in t["order_lists"].as_object().unwrap() {
        let list: Vec<&str> = list.as_array().unwrap().iter().map(text).collect();
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                if v(a) >= v(b) {
                    wrong.push(format!("{name}: {a} < {b}"));
                }
            }
        }
    }
    for pair in t["order_pairs"].as_array().unwrap() {
        let (a, b) = (text(&pair[1]), text(&pair[2]));
        if v(a) >= v(b) {
            wrong.push(format!("{}: {a} < {b}", text(&pair[0])));
        }
    }
    for pair in t["equal_pairs"].as_array().unwrap() {
        let (a, b) = (text(&pair[1]), text(&pair[2]));
        if v(a) != v(b) {
            wrong.push(format!("{}: {a} == {b}", text(&pair[0])));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
