//! Go modules: a `require` names a minimum version, minimal version selection takes
//! any version at or above it, and a new major version (v2 and up) is a new module
//! path (`example.com/lib/v2`), so it is never taken by a requirement on another.
//! v0 and v1 share the path without a suffix, and so do `+incompatible` versions,
//! which predate modules.

use std::cmp::Ordering;

/// A Go requirement: the minimum version, `v1.4.2`.
#[derive(Debug, Clone)]
pub struct Minimum {
    version: semver::Version,
}

pub(super) fn parse_version(text: &str) -> Result<semver::Version, String> {
    let bare = text.strip_prefix('v').unwrap_or(text);
    semver::Version::parse(bare)
        .map_err(|e| format!("{e}; Go versions are full semantic versions such as v1.4.2"))
}

/// The major version of the module path a version is published under.
fn path_major(v: &semver::Version) -> u64 {
    if v.major <= 1 || v.build.as_str() == "incompatible" {
        1
    } else {
        v.major
    }
}

impl Minimum {
    pub fn parse(text: &str) -> Result<Minimum, String> {
        if text.contains([' ', ',', '<', '>', '=', '^', '~', '*']) {
            return Err(
                "a Go requirement is one minimum version such as v1.4.2, not a range".into(),
            );
        }
        Ok(Minimum {
            version: parse_version(text)?,
        })
    }

    pub fn takes(&self, v: &semver::Version) -> bool {
        path_major(v) == path_major(&self.version)
            && v.cmp_precedence(&self.version) != Ordering::Less
    }

    /// A version on a later module path: taking it means changing the import path.
    pub fn is_below(&self, v: &semver::Version) -> bool {
        path_major(v) > path_major(&self.version)
    }
}
