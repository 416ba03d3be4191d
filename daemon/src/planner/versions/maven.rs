//! Maven versions and version ranges, as Maven reads them.
//!
//! No maintained crate implements Maven's `VersionRange`, so this ports the two parts
//! that matter from maven-artifact: the order of `ComparableVersion` (items split at
//! `.`, `-` and digit-letter changes; `alpha < beta < milestone < rc = cr < snapshot <
//! release = ga = final < sp`, then other qualifiers in text order; `alpha1` is one
//! item, as is `alpha-1`; zeros dropped where Maven drops them, so `1.0.0 == 1`), and
//! the range syntax: `[1.0,2.0)`, `(,1.5]`, `[1.0]` and sets of restrictions
//! `(,1.1),(1.1,)`. A bare version such as `1.2` is Maven's soft requirement: it takes
//! any version. Where Maven's current `VersionRangeTest` reads a range differently from
//! the order alone (exact pins, zero-prefixed qualifiers), this follows the test;
//! docs/versions.md names each case, and `daemon/tests/semver/maven.rs` runs Maven's
//! tables.

use std::cmp::Ordering;

/// One item of a version: a number, a qualifier, a qualifier with a number
/// (`alpha1`), or a sub-list.
#[derive(Debug, Clone)]
enum Item {
    Int(u128),
    Text(String),
    Combination(String, u128),
    List(Vec<Item>),
}

/// A Maven version, ordered as Maven orders it.
#[derive(Debug, Clone)]
pub struct Version {
    items: Vec<Item>,
    text: String,
}

/// The known qualifiers in order; anything else sorts after them, by its text.
const QUALIFIERS: [&str; 7] = ["alpha", "beta", "milestone", "rc", "snapshot", "", "sp"];
const RELEASE_RANK: usize = 5;

fn rank(qualifier: &str) -> (usize, &str) {
    if matches!(qualifier, "ga" | "final" | "release") {
        return (RELEASE_RANK, "");
    }
    match QUALIFIERS.iter().position(|q| *q == qualifier) {
        Some(i) => (i, ""),
        None => (QUALIFIERS.len(), qualifier),
    }
}

/// A qualifier as Maven keeps it: `cr` is `rc`, and before a number `a`, `b` and `m`
/// are `alpha`, `beta` and `milestone`.
fn qualifier(word: &str, followed_by_digit: bool) -> String {
    match word {
        "a" if followed_by_digit => "alpha".into(),
        "b" if followed_by_digit => "beta".into(),
        "m" if followed_by_digit => "milestone".into(),
        "cr" => "rc".into(),
        other => other.to_owned(),
    }
}

fn number(digits: &str) -> u128 {
    digits.parse().unwrap_or(u128::MAX)
}

fn item(combination: bool, digits: bool, token: &str) -> Item {
    if combination {
        let token = token.replace('-', "");
        let at = token
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(token.len());
        let (word, n) = (qualifier(&token[..at], true), number(&token[at..]));
        // A release qualifier numbered zero (`ga0`, `final000`) is the qualifier alone,
        // as `VersionRangeTest` (`testZeroPrefixedReleaseQualifierRange`) reads it.
        if n == 0 && rank(&word).0 == RELEASE_RANK {
            Item::Text(word)
        } else {
            Item::Combination(word, n)
        }
    } else if digits {
        Item::Int(number(token))
    } else {
        Item::Text(qualifier(token, false))
    }
}

impl Version {
    /// Any text is a Maven version; this refuses only the empty one and spaces.
    pub fn parse(text: &str) -> Result<Version, String> {
        if text.is_empty() {
            return Err("a version cannot be empty".into());
        }
        if let Some(c) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("a version has no {c:?}"));
        }
        Ok(Version {
            items: parse_items(&text.to_lowercase()),
            text: text.to_owned(),
        })
    }

    /// Whether a qualifier below a release (alpha, beta, milestone, rc, snapshot)
    /// marks this version as not yet released.
    pub fn is_prerelease(&self) -> bool {
        fn any(items: &[Item]) -> bool {
            items.iter().any(|i| match i {
                Item::Text(t) | Item::Combination(t, _) => rank(t).0 < RELEASE_RANK,
                Item::List(l) => any(l),
                Item::Int(_) => false,
            })
        }
        any(&self.items)
    }
}

impl Version {
    /// Whether `other` is this version, not only a version Maven orders with it: the
    /// number of a release qualifier (`ga2`, `final1`) counts, which Maven's order
    /// leaves out (`1.2.3-ga2` sorts with `1.2.3`), so that an exact pin `[1.2.3]` takes
    /// only 1.2.3, as `VersionRangeTest` asks. A zero is no number: `1-ga0` is `1-ga`.
    pub fn is_exactly(&self, other: &Version) -> bool {
        fn release_numbers(items: &[Item], out: &mut Vec<u128>) {
            for item in items {
                match item {
                    Item::Combination(q, n) if rank(q).0 == RELEASE_RANK && *n != 0 => out.push(*n),
                    Item::List(l) => release_numbers(l, out),
                    _ => {}
                }
            }
        }
        let numbers = |v: &Version| {
            let mut out = Vec::new();
            release_numbers(&v.items, &mut out);
            out
        };
        self == other && numbers(self) == numbers(other)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// The lists being filled, outermost first: each new list is the last item of the
/// one before it, so they close from the innermost out.
struct Lists(Vec<Vec<Item>>);

impl Lists {
    fn current(&mut self) -> &mut Vec<Item> {
        self.0.last_mut().expect("a list is open")
    }
    fn open(&mut self) {
        self.0.push(Vec::new());
    }
    fn close_all(mut self) -> Vec<Item> {
        while self.0.len() > 1 {
            let mut inner = self.0.pop().expect("more than one list");
            normalize(&mut inner);
            self.current().push(Item::List(inner));
        }
        let mut items = self.0.pop().expect("the outermost list");
        normalize(&mut items);
        items
    }
}

/// Splits lowercased text into items as `ComparableVersion.parseVersion` does.
fn parse_items(text: &str) -> Vec<Item> {
    let chars: Vec<char> = text.chars().collect();
    let token = |from: usize, to: usize| -> String { chars[from..to].iter().collect() };
    let mut lists = Lists(vec![Vec::new()]);
    let (mut start, mut digits, mut combination) = (0, false, false);
    for (i, &c) in chars.iter().enumerate() {
        if c == '.' {
            let it = if i == start {
                Item::Int(0)
            } else {
                item(combination, digits, &token(start, i))
            };
            lists.current().push(it);
            combination = false;
            start = i + 1;
        } else if c == '-' {
            if i == start {
                lists.current().push(Item::Int(0));
            } else {
                // `alpha-1` is read as `alpha1`.
                if !digits && chars.get(i + 1).is_some_and(char::is_ascii_digit) {
                    combination = true;
                    continue;
                }
                let it = item(combination, digits, &token(start, i));
                lists.current().push(it);
            }
            start = i + 1;
            if !lists.current().is_empty() {
                lists.open();
            }
            combination = false;
        } else if c.is_ascii_digit() {
            if !digits && i > start {
                combination = true;
                if !lists.current().is_empty() {
                    lists.open();
                }
            }
            digits = true;
        } else {
            if digits && i > start {
                let it = item(combination, true, &token(start, i));
                lists.current().push(it);
                start = i;
                lists.open();
                combination = false;
            }
            digits = false;
        }
    }
    if chars.len() > start {
        // `1.0.0.X1` sorts as `1.0.0-X1`.
        if !digits && !lists.current().is_empty() {
            lists.open();
        }
        let it = item(combination, digits, &token(start, chars.len()));
        lists.current().push(it);
    }
    lists.close_all()
}

fn is_null(item: &Item) -> bool {
    match item {
        Item::Int(n) => *n == 0,
        Item::Text(t) => t.is_empty(),
        Item::Combination(..) => false,
        Item::List(l) => l.is_empty(),
    }
}

/// Drops a null item that ends the list or comes before a qualifier (or a sub-list
/// that begins with one): `1.0.0` is `1`, and `1.0-rc` is `1-rc`. A list left
/// beginning with a sub-list (only zeros stood before it) is that sub-list's items: a
/// qualifier prefixed with zeros is the qualifier, so `0-alpha` and `0-0-alpha` are
/// `alpha`, as Maven's `VersionRangeTest` (`testZeroPrefixedQualifierRange`) reads
/// them. Without it `0-alpha` would sort above `x`, and `[0-alpha,x]` would take
/// nothing.
fn normalize(items: &mut Vec<Item>) {
    drop_nulls(items);
    if let Some(Item::List(_)) = items.first() {
        if let Item::List(inner) = items.remove(0) {
            items.splice(0..0, inner);
        }
    }
}

fn drop_nulls(items: &mut Vec<Item>) {
    for i in (0..items.len()).rev() {
        if !is_null(&items[i]) {
            continue;
        }
        let drop = match items.get(i + 1) {
            None | Some(Item::Text(_)) => true,
            Some(Item::List(next)) => {
                matches!(next.first(), Some(Item::Combination(..) | Item::Text(_)))
            }
            Some(_) => false,
        };
        if drop {
            items.remove(i);
        }
    }
}

/// How an item compares with the end of a list (Maven's `compareTo(null)`).
fn against_nothing(item: &Item) -> Ordering {
    match item {
        Item::Int(n) => n.cmp(&0),
        Item::Text(t) | Item::Combination(t, _) => rank(t).cmp(&rank("")),
        Item::List(l) => l
            .iter()
            .map(against_nothing)
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal),
    }
}

fn compare_item(a: &Item, b: &Item) -> Ordering {
    use Item::*;
    match (a, b) {
        (Int(x), Int(y)) => x.cmp(y),
        (Int(_), _) => Ordering::Greater,
        (_, Int(_)) => Ordering::Less,
        (Text(x), Text(y)) => rank(x).cmp(&rank(y)),
        (Text(x), Combination(y, _)) => rank(x).cmp(&rank(y)).then(Ordering::Less),
        (Combination(x, _), Text(y)) => rank(x).cmp(&rank(y)).then(Ordering::Greater),
        (Combination(x, m), Combination(y, n)) => rank(x).cmp(&rank(y)).then(m.cmp(n)),
        (Text(_) | Combination(..), List(_)) => Ordering::Less,
        (List(_), Text(_) | Combination(..)) => Ordering::Greater,
        (List(x), List(y)) => compare_lists(x, y),
    }
}

fn compare_lists(a: &[Item], b: &[Item]) -> Ordering {
    for i in 0..a.len().max(b.len()) {
        let o = match (a.get(i), b.get(i)) {
            (Some(x), Some(y)) => compare_item(x, y),
            (Some(x), None) => against_nothing(x),
            (None, Some(y)) => against_nothing(y).reverse(),
            (None, None) => Ordering::Equal,
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_lists(&self.items, &other.items)
    }
}
impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Version {}

/// One end of a restriction: the version, and whether it is included.
#[derive(Debug, Clone)]
struct Bound {
    version: Version,
    inclusive: bool,
}

#[derive(Debug, Clone)]
pub struct Restriction {
    lower: Option<Bound>,
    upper: Option<Bound>,
}

impl Restriction {
    fn contains(&self, v: &Version) -> bool {
        if let (Some(l), Some(u)) = (&self.lower, &self.upper) {
            if l.inclusive && u.inclusive && l.version == u.version {
                return l.version.is_exactly(v);
            }
        }
        let above_lower = self.lower.as_ref().is_none_or(|b| match v.cmp(&b.version) {
            Ordering::Greater => true,
            Ordering::Equal => b.inclusive,
            Ordering::Less => false,
        });
        above_lower && !self.below(v)
    }

    /// Whether `v` is past this restriction's upper end.
    fn below(&self, v: &Version) -> bool {
        self.upper
            .as_ref()
            .is_some_and(|b| match v.cmp(&b.version) {
                Ordering::Greater => true,
                Ordering::Equal => !b.inclusive,
                Ordering::Less => false,
            })
    }
}

/// A Maven version range.
#[derive(Debug, Clone)]
pub enum Range {
    /// A bare version: Maven's soft requirement, which any version meets.
    Soft(Version),
    /// One or more restrictions; a version in any of them is taken.
    Restrictions(Vec<Restriction>),
}

impl Range {
    pub fn parse(text: &str) -> Result<Range, String> {
        let text = text.trim();
        if !text.starts_with(['[', '(']) {
            if text.contains([']', ')', ',']) {
                return Err(format!(
                    "{text:?} is neither a version nor a range in brackets such as [1.0,2.0)"
                ));
            }
            return Version::parse(text).map(Range::Soft);
        }
        let mut restrictions: Vec<Restriction> = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let close = rest.find([']', ')']).ok_or_else(|| {
                format!("{rest:?} opens a restriction that is never closed with ] or )")
            })?;
            let part = &rest[..=close];
            restrictions.push(parse_restriction(part)?);
            rest = rest[close + 1..].trim_start();
            if let Some(after) = rest.strip_prefix(',') {
                rest = after.trim_start();
                if rest.is_empty() {
                    return Err(format!("{text:?} ends with a comma"));
                }
            } else if !rest.is_empty() {
                return Err(format!(
                    "{rest:?} follows {part:?}: restrictions are separated by commas"
                ));
            }
            if !rest.is_empty() && !rest.starts_with(['[', '(']) {
                return Err(format!("{rest:?} must begin with [ or ("));
            }
        }
        for pair in restrictions.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            let (Some(upper), Some(lower)) = (&a.upper, &b.lower) else {
                return Err(format!(
                    "restrictions overlap in {text:?}: an unbounded end must come last"
                ));
            };
            // Maven refuses a lower end below the upper end before it; restrictions
            // that touch are a set as it reads them.
            if upper.version > lower.version {
                return Err(format!(
                    "restrictions overlap or are out of order at {} in {text:?}",
                    lower.version
                ));
            }
        }
        Ok(Range::Restrictions(restrictions))
    }

    /// Each restriction's ends as Maven's `VersionRange` gives them: (lower, its
    /// inclusiveness, upper, its inclusiveness). A soft requirement has one restriction
    /// open at both ends.
    pub fn bounds(&self) -> Vec<(Option<String>, bool, Option<String>, bool)> {
        let end = |b: &Option<Bound>| match b {
            Some(b) => (Some(b.version.to_string()), b.inclusive),
            None => (None, false),
        };
        match self {
            Range::Soft(_) => vec![(None, false, None, false)],
            Range::Restrictions(rs) => rs
                .iter()
                .map(|r| {
                    let (lower, lower_inclusive) = end(&r.lower);
                    let (upper, upper_inclusive) = end(&r.upper);
                    (lower, lower_inclusive, upper, upper_inclusive)
                })
                .collect(),
        }
    }

    /// The version a soft requirement recommends; ranges in brackets recommend none.
    pub fn recommended(&self) -> Option<&Version> {
        match self {
            Range::Soft(v) => Some(v),
            Range::Restrictions(_) => None,
        }
    }

    pub fn takes(&self, v: &Version) -> bool {
        match self {
            Range::Soft(_) => true,
            Range::Restrictions(rs) => rs.iter().any(|r| r.contains(v)),
        }
    }

    /// Whether `v` is above every version this range takes.
    pub fn is_below(&self, v: &Version) -> bool {
        match self {
            Range::Soft(_) => false,
            Range::Restrictions(rs) => rs.iter().all(|r| r.below(v)),
        }
    }
}

fn parse_restriction(part: &str) -> Result<Restriction, String> {
    let lower_inclusive = part.starts_with('[');
    let upper_inclusive = part.ends_with(']');
    let inner = &part[1..part.len() - 1];
    let bound = |text: &str, inclusive: bool| -> Result<Option<Bound>, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        if text.contains(['[', '(']) {
            return Err(format!("{part:?} has a bracket inside it"));
        }
        Ok(Some(Bound {
            version: Version::parse(text)?,
            inclusive,
        }))
    };
    match inner.split_once(',') {
        None => {
            // `[1.0]` pins one version; `(1.0)` takes nothing and Maven refuses it.
            if !(lower_inclusive && upper_inclusive) {
                return Err(format!(
                    "{part:?} pins one version, which needs square brackets: [{}]",
                    inner.trim()
                ));
            }
            let Some(b) = bound(inner, true)? else {
                return Err(format!("{part:?} names no version"));
            };
            Ok(Restriction {
                lower: Some(b.clone()),
                upper: Some(b),
            })
        }
        Some((low, high)) => {
            if high.contains(',') {
                return Err(format!(
                    "{part:?} has more than two ends; write a set as [1.0,2.0),[3.0,4.0)"
                ));
            }
            let lower = bound(low, lower_inclusive)?;
            let upper = bound(high, upper_inclusive)?;
            if let (Some(l), Some(u)) = (&lower, &upper) {
                if l.version > u.version
                    || (l.version == u.version && !(l.inclusive && u.inclusive))
                {
                    return Err(format!(
                        "{part:?} takes nothing: its lower end is above its upper end"
                    ));
                }
            }
            Ok(Restriction { lower, upper })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn assert_increasing(list: &[&str]) {
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                assert!(v(a) < v(b), "{a} < {b}");
                assert!(v(b) > v(a), "{b} > {a}");
            }
        }
    }

    // The orders Maven's own ComparableVersionTest checks (VERSIONS_QUALIFIER and
    // VERSIONS_NUMBER), written from its documented rules.
    #[test]
    fn qualifiers_sort_as_maven_sorts_them() {
        assert_increasing(&[
            "1-alpha2snapshot",
            "1-alpha2",
            "1-alpha-123",
            "1-beta-2",
            "1-beta123",
            "1-m2",
            "1-m11",
            "1-rc",
            "1-cr2",
            "1-rc123",
            "1-SNAPSHOT",
            "1",
            "1-sp",
            "1-sp2",
            "1-sp123",
            "1-abc",
            "1-def",
            "1-pom-1",
            "1-1-snapshot",
            "1-1",
            "1-2",
            "1-123",
        ]);
    }

    #[test]
    fn numbers_sort_as_maven_sorts_them() {
        assert_increasing(&[
            "2.0", "2.0.a", "2-1", "2.0.2", "2.0.123", "2.1.0", "2.1-a", "2.1b", "2.1-c", "2.1-1",
            "2.1.0.1", "2.2", "2.123", "11.a2", "11.a11", "11.b2", "11.b11", "11.m2", "11.m11",
            "11", "11.a", "11b", "11c", "11m",
        ]);
    }

    #[test]
    fn equal_spellings_are_equal() {
        for (a, b) in [
            ("1", "1.0.0"),
            ("1", "1-0"),
            ("1.0", "1-ga"),
            ("1", "1.final"),
            ("1", "1-release"),
            ("1a1", "1-alpha-1"),
            ("1b2", "1-beta-2"),
            ("1m3", "1-milestone-3"),
            ("1-cr1", "1-rc-1"),
            ("1X", "1x"),
            ("1.0-SNAPSHOT", "1-snapshot"),
        ] {
            assert_eq!(v(a), v(b), "{a} == {b}");
        }
        assert!(v("1.0-SNAPSHOT").is_prerelease() && v("2.0-rc1").is_prerelease());
        assert!(!v("1.0").is_prerelease() && !v("1.0-sp1").is_prerelease());
    }

    fn takes(range: &str, version: &str) -> bool {
        Range::parse(range).unwrap().takes(&v(version))
    }

    #[test]
    fn ranges_take_what_maven_documents() {
        // https://maven.apache.org/enforcer/enforcer-rules/versionRanges.html
        let rows = [
            ("1.0", "0.1", true),
            ("1.0", "9.9", true),
            ("(,1.0]", "1.0", true),
            ("(,1.0]", "1.0.1", false),
            ("(,1.0)", "1.0", false),
            ("(,1.0)", "1.0-SNAPSHOT", true),
            ("[1.0]", "1.0", true),
            ("[1.0]", "1.0.0", true),
            ("[1.0]", "1.0.1", false),
            ("[1.0,)", "1.0", true),
            ("[1.0,)", "0.9", false),
            ("(1.0,)", "1.0", false),
            ("(1.0,)", "1.0.1", true),
            ("(1.0,2.0)", "1.5", true),
            ("(1.0,2.0)", "2.0", false),
            ("[1.0,2.0]", "2.0", true),
            ("[1.0,2.0)", "2.0-alpha-1", true),
            ("(,1.0],[1.2,)", "1.1", false),
            ("(,1.0],[1.2,)", "1.2", true),
            ("(,1.0],[1.2,)", "0.5", true),
            ("(,1.1),(1.1,)", "1.1", false),
            ("(,1.1),(1.1,)", "1.1.1", true),
        ];
        for (range, version, expected) in rows {
            assert_eq!(takes(range, version), expected, "{range} takes {version}");
        }
    }

    #[test]
    fn zero_prefixed_qualifiers_and_exact_pins_read_as_version_range_test_asks() {
        // testZeroPrefixedQualifierRange: a qualifier after zeros is the qualifier.
        assert_eq!(v("0-alpha"), v("alpha"));
        assert_eq!(v("0-0-alpha"), v("alpha"));
        assert!(v("0-alpha") < v("x") && v("alpha-snapshot") < v("alpha"));
        // testZeroPrefixedReleaseQualifierRange: a release qualifier's zero is no number.
        for release in ["ga", "final", "release"] {
            let range = format!("[1,1-0-{release}.1]");
            assert!(takes(&range, &format!("1-{release}0")), "{range}");
            assert!(
                takes(&range, &format!("1-{release}{}", "0".repeat(19))),
                "{range}"
            );
            assert!(!takes(&range, &format!("1-{release}1")), "{range}");
            assert!(takes(&format!("[1-{release}]"), &format!("1-{release}0")));
        }
        // testExactRangeMatchesOnlyTheExactVersion.
        assert!(takes("[1.2.3]", "1.2.3") && takes("[1.2.3]", "1.2.3.0"));
        assert!(!takes("[1.2.3]", "1.2.3-ga2") && !takes("[1.2.3]", "1.2.3-final1"));
        assert_eq!(
            v("1.2.3-ga2"),
            v("1.2.3"),
            "they sort together all the same"
        );
    }

    #[test]
    fn above_means_past_every_restriction() {
        let r = Range::parse("[1.0,2.0),[3.0,4.0)").unwrap();
        assert!(r.is_below(&v("4.0")));
        assert!(!r.is_below(&v("2.5")), "in the gap, not above");
        assert!(!Range::parse("[1.0,)").unwrap().is_below(&v("99")));
        assert!(!Range::parse("1.0").unwrap().is_below(&v("99")));
        assert!(Range::parse("[1.0]").unwrap().is_below(&v("1.0.1")));
    }

    #[test]
    fn bad_ranges_name_the_bad_part() {
        for (range, part) in [
            ("[1.0,2.0", "never closed"),
            ("(1.0)", "square brackets"),
            ("[2.0,1.0]", "takes nothing"),
            ("[1.0,2.0,3.0]", "more than two ends"),
            ("[1.0,2.0)x", "separated by commas"),
            ("[1.0,),[2.0,3.0)", "overlap"),
            ("[1.0,2.0),[1.5,3.0)", "overlap"),
            ("1.0,2.0", "brackets"),
            ("[1.0,2.0),", "ends with a comma"),
        ] {
            let err = Range::parse(range).unwrap_err();
            assert!(err.contains(part), "{range}: {err}");
        }
    }
}
