//! Cargo, Maven and Go ranges: tests of our own (no upstream table is in the fixtures).

use conjunction_daemon::planner::versions::{Ecosystem, Fit, Range, Version};

/// Checks every `(range, version, fit)` row in ecosystem `e`.
fn check(e: Ecosystem, rows: &[(&str, &str, Fit)]) {
    for &(range, version, expected) in rows {
        let r = Range::parse(e, range).unwrap_or_else(|err| panic!("{err}"));
        let v = Version::parse(e, version).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(r.fit(&v), expected, "{e}: {range} vs {version}");
    }
}

#[test]
fn cargo_ranges_are_cargos_with_caret_by_default() {
    use Fit::*;
    let rows = [
        ("1.2", "1.9.0", Takes),
        ("1.2", "2.0.0", TooNew),
        ("^0.2", "0.3.0", TooNew),
        ("^0.2", "0.2.7", Takes),
        ("0.0.3", "0.0.4", TooNew),
        ("~1.2.3", "1.3.0", TooNew),
        ("~1", "1.9.9", Takes),
        ("~1", "2.0.0", TooNew),
        (">=1.2, <1.5", "1.5.0", TooNew),
        (">=1.2, <1.5", "1.1.0", Outside),
        ("=1.2.3", "1.2.4", TooNew),
        ("=1.2", "1.2.9", Takes),
        ("=1.2", "1.3.0", TooNew),
        ("<=1.2", "1.2.5", Takes),
        ("<=1.2", "1.3.0", TooNew),
        ("1.*", "2.0.0", TooNew),
        ("1.2.*", "1.3.0", TooNew),
        ("*", "99.0.0", Takes),
        (">=1", "99.0.0", Takes),
        ("^1.2", "2.0.0-rc.1", Outside),
        ("^1.2", "1.3.0-beta", Outside),
        ("^1.3.0-beta", "1.3.0-rc.1", Takes),
        ("^1.2", "v1.4.0", Takes),
    ];
    check(Ecosystem::Cargo, &rows);
}

#[test]
fn maven_ranges_take_their_bracketed_intervals_and_soft_requirements_take_all() {
    use Fit::*;
    let rows = [
        ("[1.0,2.0)", "1.5", Takes),
        ("[1.0,2.0)", "2.0", TooNew),
        ("[1.0,2.0)", "0.9", Outside),
        ("[1.0,2.0)", "2.0-SNAPSHOT", Takes),
        ("(,1.5]", "1.5", Takes),
        ("(,1.5]", "1.5.1", TooNew),
        ("(,1.5]", "1.6-rc1", Outside),
        ("1.2", "7.0", Takes),
        ("[1.0]", "1.0.0", Takes),
        ("[1.0]", "1.1", TooNew),
        ("[1.0,2.0),[3.0,4.0)", "2.5", Outside),
        ("[1.0,2.0),[3.0,4.0)", "4.0", TooNew),
        ("[1.0,)", "40.0", Takes),
    ];
    check(Ecosystem::Maven, &rows);
}

#[test]
fn go_requirements_are_minimums_on_their_module_paths_major() {
    use Fit::*;
    let rows = [
        ("v1.2.3", "v1.2.3", Takes),
        ("v1.2.3", "v1.9.0", Takes),
        ("v1.2.3", "v1.2.2", Outside),
        ("v1.2.3", "v2.0.0", TooNew),
        ("v0.4.0", "v1.0.0", Takes),
        ("v2.1.0", "v2.3.0", Takes),
        ("v2.1.0", "v3.0.0", TooNew),
        ("v2.1.0", "v1.9.0", Outside),
        ("v1.2.3", "v2.0.0+incompatible", Takes),
        ("v1.2.3", "v1.3.0-0.20191109021931-daa7c04131f5", Takes),
        ("v1.2.3", "v2.0.0-rc.1", Outside),
    ];
    check(Ecosystem::Go, &rows);
}

#[test]
fn bad_ranges_name_the_ecosystem_and_the_bad_part() {
    for (e, range, words) in [
        (Ecosystem::Cargo, "^1.2 || ^2", "is not a Cargo range"),
        (Ecosystem::Cargo, ">=1.2.3.4", "is not a Cargo range"),
        (Ecosystem::Npm, "^1.2,<2", "is not an npm range"),
        (Ecosystem::Pypi, "2.0", "is not a PyPI range"),
        (Ecosystem::Pypi, ">=1.0,<<2", "is not a PyPI range"),
        (Ecosystem::Maven, "[1.0,2.0", "never closed"),
        (Ecosystem::Go, "^1.2", "one minimum version"),
        (Ecosystem::Go, "v1.2", "is not a Go range"),
    ] {
        let err = Range::parse(e, range).unwrap_err().to_string();
        assert!(err.contains(words), "{range}: {err}");
        assert!(err.contains(&format!("{range:?}")), "{err}");
    }
}
