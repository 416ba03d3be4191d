//! PEP 440 specifiers, matched by `uv-pep440`, with the pre-release rule PEP 440 sets
//! and `uv-pep440` leaves to its caller: a pre-release (or development release) is
//! taken only when a specifier names one.

use std::cmp::Ordering;
use std::str::FromStr;

use uv_pep440::{Operator, Version, VersionSpecifiers};

pub(super) fn parse_range(text: &str) -> Result<VersionSpecifiers, String> {
    if text.trim().is_empty() {
        return Err("an empty specifier takes every version; leave the range out instead".into());
    }
    VersionSpecifiers::from_str(text).map_err(super::one_line)
}

pub(super) fn takes(specifiers: &VersionSpecifiers, v: &Version) -> bool {
    if v.any_prerelease() && !specifiers.iter().any(|s| s.any_prerelease()) {
        return false;
    }
    specifiers.contains(v)
}

/// Whether `v` is past the upper end of some specifier: all must hold, so then
/// nothing at or above `v` is taken.
pub(super) fn is_below(specifiers: &VersionSpecifiers, v: &Version) -> bool {
    specifiers.iter().any(|s| {
        let bound = s.version();
        // (bound, whether the bound itself is taken)
        let upper: Option<(Version, bool)> = match s.operator() {
            Operator::LessThan => Some((bound.clone(), false)),
            Operator::LessThanEqual | Operator::Equal | Operator::ExactEqual => {
                Some((bound.clone().without_local(), true))
            }
            // `==1.2.*` ends before 1.3.dev0; `~=1.4.2` before 1.5.dev0.
            Operator::EqualStar => Some((next_prefix(bound, bound.release().len()), false)),
            Operator::TildeEqual => Some((next_prefix(bound, bound.release().len() - 1), false)),
            _ => None,
        };
        upper.is_some_and(
            |(bound, inclusive)| match v.clone().without_local().cmp(&bound) {
                Ordering::Greater => true,
                Ordering::Equal => !inclusive,
                Ordering::Less => false,
            },
        )
    })
}

/// The first version after every version that starts with the first `len` release
/// numbers of `v`: `1.2` and 2 give `1.3.dev0`.
fn next_prefix(v: &Version, len: usize) -> Version {
    let len = len.max(1);
    let mut release: Vec<u64> = v.release().iter().take(len).copied().collect();
    if let Some(last) = release.last_mut() {
        *last += 1;
    }
    let release: Vec<String> = release.iter().map(u64::to_string).collect();
    // uv-pep440 builds epochs and dev numbers only from text.
    Version::from_str(&format!("{}!{}.dev0", v.epoch(), release.join(".")))
        .expect("a version made of numbers reads back")
}
