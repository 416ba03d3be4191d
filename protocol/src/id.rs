//! Identifiers: project ids (`org/name`) and build ids (ULIDs).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::ValidationError;
use crate::limits::MAX_PROJECT_ID;

/// A project id: two or more `/`-separated segments of lowercase `[a-z0-9._-]`,
/// at most 128 characters, such as `acme/app` or `gnome/gtk/gtk4`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ProjectId(String);

impl ProjectId {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let fail = |why: &str| {
            ValidationError::new(
                "project",
                format!("project id {s:?} is not valid: {why} (expected lowercase segments like \"acme/app\")"),
            )
        };
        if s.len() > MAX_PROJECT_ID {
            return Err(fail("it is longer than 128 characters"));
        }
        let segments: Vec<&str> = s.split('/').collect();
        if segments.len() < 2 {
            return Err(fail("it needs an organisation and a name separated by '/'"));
        }
        for segment in segments {
            if segment.is_empty() {
                return Err(fail("a segment is empty"));
            }
            if segment == "." || segment == ".." {
                return Err(fail("a segment is '.' or '..'"));
            }
            if !segment.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            }) {
                return Err(fail("segments may only hold a-z, 0-9, '.', '_' and '-'"));
            }
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ProjectId {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for ProjectId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A build (node) id. Every node of a cascade and every root event has one; a root
/// event's id is the id of its root node. ULIDs sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct BuildId(pub ulid::Ulid);

impl BuildId {
    /// Reads a ULID as this daemon writes it (either case). Text that the ulid crate
    /// would read as some other id is refused: a first character above `7` (over 128
    /// bits, which it wraps around) and Crockford's look-alike letters (`I`, `L`,
    /// `O`), so one id has one spelling.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let refuse = || {
            ValidationError::new(
                "build",
                format!(
                    "build id {s:?} is not valid: it should be a 26-character ULID such as \
                     01JD3Q8Z5K2V7WQ4M6N8P0R2S4"
                ),
            )
        };
        let id = ulid::Ulid::from_string(s).map_err(|_| refuse())?;
        if !id.to_string().eq_ignore_ascii_case(s) {
            return Err(refuse());
        }
        Ok(Self(id))
    }
}

impl<'de> Deserialize<'de> for BuildId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&text).map_err(|e| serde::de::Error::custom(e.message))
    }
}

impl fmt::Display for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for BuildId {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_ids_accept_nested_lowercase_segments() {
        for ok in ["acme/app", "gnome/gtk/gtk4", "a.b/c_d-e", "0/1"] {
            assert!(ProjectId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn project_ids_refuse_bad_shapes() {
        let long = format!("a/{}", "b".repeat(127));
        for bad in [
            "app",
            "Acme/app",
            "acme//app",
            "/app",
            "acme/",
            "acme/../x",
            "acme/a b",
            long.as_str(),
        ] {
            assert!(ProjectId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn build_ids_round_trip_through_text() {
        let id = BuildId(ulid::Ulid::from_parts(1, 2));
        assert_eq!(BuildId::parse(&id.to_string()).unwrap(), id);
        assert!(BuildId::parse("nope").is_err());
        let lower = id.to_string().to_lowercase();
        assert_eq!(BuildId::parse(&lower).unwrap(), id);
    }

    #[test]
    fn build_ids_over_128_bits_or_with_look_alike_letters_are_refused() {
        let id = "01M83ZQ1ZJ7H9X3C5V8W2R4T6Y";
        assert!(BuildId::parse(id).is_ok());
        // The ulid crate reads this as the id above, wrapped past 128 bits.
        let wrapped = "81M83ZQ1ZJ7H9X3C5V8W2R4T6Y";
        assert_eq!(
            ulid::Ulid::from_string(wrapped).map(|u| u.to_string()).ok(),
            Some(id.to_owned())
        );
        for bad in [
            wrapped,
            "ZZZZZZZZZZZZZZZZZZZZZZZZZZ",
            "0IM83ZQ1ZJ7H9X3C5V8W2R4T6Y",
        ] {
            assert!(BuildId::parse(bad).is_err(), "{bad}");
            let json = format!("\"{bad}\"");
            assert!(
                serde_json::from_str::<BuildId>(&json).is_err(),
                "{bad} as JSON"
            );
        }
        let parsed: BuildId = serde_json::from_str(&format!("\"{id}\"")).unwrap();
        assert_eq!(parsed.to_string(), id);
    }
}
