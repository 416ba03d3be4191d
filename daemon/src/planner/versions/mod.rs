//! Versions and ranges as each package ecosystem reads them, and how a range meets a
//! version: it takes it, the version is a release above everything it takes (adopting
//! it needs a bump), or neither.
//!
//! Each ecosystem is read by the implementation its users get: npm ranges by
//! `js-semver` (node-semver's strict mode), Cargo's by `semver` (Cargo's own crate),
//! PEP 440 specifiers by `uv-pep440`, Maven's by [`maven`] (no maintained crate has
//! them), and Go's minimum versions by `semver` with the major version of the module
//! path. What a range takes is theirs; what is "above" a range is worked out here,
//! from the upper ends of its comparators.
//!
//! Pre-releases are taken only where the ecosystem's own rule takes them (npm and
//! Cargo: when a comparator names a pre-release of the same version; PyPI: when a
//! specifier names one; Maven and Go have no such rule). A pre-release that is not
//! taken is never "above": nobody is asked to bump a range for a release candidate.

mod go;
pub mod maven;
mod npm;
mod pypi;

use std::cmp::Ordering;
use std::str::FromStr;

pub use conjunction_protocol::project::Ecosystem;

/// How a version stands to a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// The range takes the version.
    Takes,
    /// A release above everything the range takes: adopting it needs a bump.
    TooNew,
    /// Below the range, in a gap of it, or a pre-release it does not name.
    Outside,
}

/// A range on a project, read in its ecosystem.
#[derive(Debug, Clone)]
pub struct Range {
    kind: RangeKind,
}

#[derive(Debug, Clone)]
enum RangeKind {
    Npm(js_semver::Range),
    Cargo(semver::VersionReq),
    Pypi(uv_pep440::VersionSpecifiers),
    Maven(maven::Range),
    Go(go::Minimum),
}

/// A version of a project, read in its ecosystem.
#[derive(Debug, Clone)]
pub struct Version {
    kind: VersionKind,
}

#[derive(Debug, Clone)]
enum VersionKind {
    Npm(js_semver::Version),
    Cargo(semver::Version),
    Pypi(uv_pep440::Version),
    Maven(maven::Version),
    Go(semver::Version),
}

/// Text that is not a range in an ecosystem, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not {} {ecosystem} range: {why}", article(*ecosystem))]
pub struct BadRange {
    pub ecosystem: Ecosystem,
    pub text: String,
    pub why: String,
}

/// Text that is not a version in an ecosystem, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not {} {ecosystem} version: {why}", article(*ecosystem))]
pub struct BadVersion {
    pub ecosystem: Ecosystem,
    pub text: String,
    pub why: String,
}

fn article(e: Ecosystem) -> &'static str {
    match e {
        Ecosystem::Npm => "an",
        _ => "a",
    }
}

/// Error messages of the crates, on one line.
fn one_line(why: impl ToString) -> String {
    why.to_string()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A leading `v`, as tags carry it, which Cargo's and Go's parsers do not take.
fn without_v(text: &str) -> &str {
    text.strip_prefix('v').unwrap_or(text)
}

impl Range {
    pub fn parse(ecosystem: Ecosystem, text: &str) -> Result<Range, BadRange> {
        let bad = |why: String| BadRange {
            ecosystem,
            text: text.to_owned(),
            why,
        };
        let kind = match ecosystem {
            Ecosystem::Npm => {
                RangeKind::Npm(js_semver::Range::parse(text).map_err(|e| bad(one_line(e)))?)
            }
            Ecosystem::Cargo => {
                RangeKind::Cargo(semver::VersionReq::parse(text).map_err(|e| bad(one_line(e)))?)
            }
            Ecosystem::Pypi => RangeKind::Pypi(pypi::parse_range(text).map_err(bad)?),
            Ecosystem::Maven => RangeKind::Maven(maven::Range::parse(text).map_err(bad)?),
            Ecosystem::Go => RangeKind::Go(go::Minimum::parse(text).map_err(bad)?),
        };
        Ok(Range { kind })
    }

    /// Whether the range takes `version`. A version of another ecosystem is never
    /// taken.
    pub fn takes(&self, version: &Version) -> bool {
        match (&self.kind, &version.kind) {
            (RangeKind::Npm(r), VersionKind::Npm(v)) => r.satisfies(v),
            (RangeKind::Cargo(r), VersionKind::Cargo(v)) => r.matches(v),
            (RangeKind::Pypi(r), VersionKind::Pypi(v)) => pypi::takes(r, v),
            (RangeKind::Maven(r), VersionKind::Maven(v)) => r.takes(v),
            (RangeKind::Go(r), VersionKind::Go(v)) => r.takes(v),
            _ => false,
        }
    }

    /// Whether `version` is above every version the range takes.
    fn is_below(&self, version: &Version) -> bool {
        match (&self.kind, &version.kind) {
            (RangeKind::Npm(r), VersionKind::Npm(v)) => npm::is_below(r, v),
            (RangeKind::Cargo(r), VersionKind::Cargo(v)) => cargo_is_below(r, v),
            (RangeKind::Pypi(r), VersionKind::Pypi(v)) => pypi::is_below(r, v),
            (RangeKind::Maven(r), VersionKind::Maven(v)) => r.is_below(v),
            (RangeKind::Go(r), VersionKind::Go(v)) => r.is_below(v),
            _ => false,
        }
    }

    pub fn fit(&self, version: &Version) -> Fit {
        if self.takes(version) {
            Fit::Takes
        } else if !version.is_prerelease() && self.is_below(version) {
            Fit::TooNew
        } else {
            Fit::Outside
        }
    }
}

impl Version {
    pub fn parse(ecosystem: Ecosystem, text: &str) -> Result<Version, BadVersion> {
        let bad = |why: String| BadVersion {
            ecosystem,
            text: text.to_owned(),
            why,
        };
        let kind = match ecosystem {
            Ecosystem::Npm => {
                VersionKind::Npm(js_semver::Version::parse(text).map_err(|e| bad(one_line(e)))?)
            }
            Ecosystem::Cargo => VersionKind::Cargo(
                semver::Version::parse(without_v(text)).map_err(|e| bad(one_line(e)))?,
            ),
            Ecosystem::Pypi => {
                VersionKind::Pypi(uv_pep440::Version::from_str(text).map_err(|e| bad(one_line(e)))?)
            }
            Ecosystem::Maven => VersionKind::Maven(maven::Version::parse(text).map_err(bad)?),
            Ecosystem::Go => VersionKind::Go(go::parse_version(text).map_err(bad)?),
        };
        Ok(Version { kind })
    }

    pub fn ecosystem(&self) -> Ecosystem {
        match self.kind {
            VersionKind::Npm(_) => Ecosystem::Npm,
            VersionKind::Cargo(_) => Ecosystem::Cargo,
            VersionKind::Pypi(_) => Ecosystem::Pypi,
            VersionKind::Maven(_) => Ecosystem::Maven,
            VersionKind::Go(_) => Ecosystem::Go,
        }
    }

    pub fn is_prerelease(&self) -> bool {
        match &self.kind {
            VersionKind::Npm(v) => !v.pre_release.is_empty(),
            VersionKind::Cargo(v) | VersionKind::Go(v) => !v.pre.is_empty(),
            VersionKind::Pypi(v) => v.any_prerelease(),
            VersionKind::Maven(v) => v.is_prerelease(),
        }
    }

    /// Precedence within one ecosystem; None across ecosystems.
    pub fn compare(&self, other: &Version) -> Option<Ordering> {
        match (&self.kind, &other.kind) {
            (VersionKind::Npm(a), VersionKind::Npm(b)) => Some(a.cmp(b)),
            (VersionKind::Cargo(a), VersionKind::Cargo(b))
            | (VersionKind::Go(a), VersionKind::Go(b)) => Some(a.cmp_precedence(b)),
            (VersionKind::Pypi(a), VersionKind::Pypi(b)) => Some(a.cmp(b)),
            (VersionKind::Maven(a), VersionKind::Maven(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

/// Whether `v` is past the upper end of some comparator of a Cargo requirement:
/// every comparator must hold, so then nothing at or above `v` is taken.
fn cargo_is_below(req: &semver::VersionReq, v: &semver::Version) -> bool {
    use semver::Op;
    let version = |major: u64, minor: u64, patch: u64, pre: &semver::Prerelease| semver::Version {
        major,
        minor,
        patch,
        pre: pre.clone(),
        build: semver::BuildMetadata::EMPTY,
    };
    let none = semver::Prerelease::EMPTY;
    req.comparators.iter().any(|c| {
        let (major, minor, patch) = (c.major, c.minor, c.patch);
        // (bound, whether the bound itself is taken)
        let upper: Option<(semver::Version, bool)> = match (c.op, minor, patch) {
            (Op::Exact, Some(mi), Some(pa)) | (Op::LessEq, Some(mi), Some(pa)) => {
                Some((version(major, mi, pa, &c.pre), true))
            }
            (Op::Exact | Op::LessEq | Op::Tilde | Op::Wildcard, Some(mi), None)
            | (Op::Tilde, Some(mi), Some(_)) => Some((version(major, mi + 1, 0, &none), false)),
            (Op::Exact | Op::LessEq | Op::Tilde | Op::Wildcard | Op::Caret, None, _) => {
                Some((version(major + 1, 0, 0, &none), false))
            }
            (Op::Less, mi, pa) => Some((
                version(major, mi.unwrap_or(0), pa.unwrap_or(0), &c.pre),
                false,
            )),
            (Op::Caret, Some(mi), pa) => Some(match (major, mi, pa) {
                (0, 0, Some(pa)) => (version(0, 0, pa + 1, &none), false),
                (0, mi, _) => (version(0, mi + 1, 0, &none), false),
                (major, _, _) => (version(major + 1, 0, 0, &none), false),
            }),
            (Op::Greater | Op::GreaterEq, ..) => None,
            // `Op` is non-exhaustive: a comparator this does not know bounds nothing.
            _ => None,
        };
        upper.is_some_and(|(bound, inclusive)| match v.cmp_precedence(&bound) {
            Ordering::Greater => true,
            Ordering::Equal => !inclusive,
            Ordering::Less => false,
        })
    })
}
