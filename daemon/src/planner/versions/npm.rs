//! What is above an npm range.
//!
//! `js-semver` keeps its comparators to itself but prints a range in node-semver's
//! canonical form (`>=1.2.3 <2.0.0-0||>=3.0.0`): comparator sets joined by `||`, each a
//! list of `<op><version>` (a bare version is `=`). The upper ends are read from that.

use std::cmp::Ordering;

use js_semver::{Range, Version};

/// Whether `v` is above every version some comparator set of `range` could take,
/// for every set. A set with no upper end (`>=1.2.3`, `*`) is never below anything.
pub(super) fn is_below(range: &Range, v: &Version) -> bool {
    let canonical = range.to_string();
    canonical.split("||").all(|set| set_is_below(set.trim(), v))
}

fn set_is_below(set: &str, v: &Version) -> bool {
    set.split(' ').filter(|c| !c.is_empty()).any(|comparator| {
        // (bound, whether the bound itself is taken)
        let (text, inclusive) = if let Some(rest) = comparator.strip_prefix("<=") {
            (rest, true)
        } else if let Some(rest) = comparator.strip_prefix('<') {
            (rest, false)
        } else if comparator.starts_with(['>', '*']) {
            return false;
        } else {
            (comparator.strip_prefix('=').unwrap_or(comparator), true)
        };
        let Ok(bound) = Version::parse(text) else {
            return false;
        };
        match v.cmp(&bound) {
            Ordering::Greater => true,
            Ordering::Equal => !inclusive,
            Ordering::Less => false,
        }
    })
}
