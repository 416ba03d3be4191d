//! README badges: what a project's latest cascade and its own latest build say, drawn
//! as flat SVG with the `shields` crate (the same bytes as shields.io) or written as a
//! shields.io endpoint JSON. Pure: the API reads the facts and serves the bytes.

use conjunction_protocol::verdict::counts_line;
use conjunction_protocol::{StateKind, Verdict};
use serde::Serialize;

use crate::store::BadgeFacts;

/// How long a badge may be cached, in seconds (the least shields.io accepts).
pub const CACHE_SECONDS: u32 = 300;

/// Which badge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// How many of the latest finished cascade's dependents pass.
    Downstream,
    /// The latest finished cascade's verdicts, against the one before.
    Changes,
    /// The project's own latest build.
    Status,
}

/// Which form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Svg,
    /// shields.io's endpoint badge JSON.
    Json,
}

impl Kind {
    /// Reads a badge file name such as `downstream.svg`.
    pub fn parse_file(file: &str) -> Option<(Kind, Format)> {
        let (name, ext) = file.rsplit_once('.')?;
        let kind = match name {
            "downstream" => Kind::Downstream,
            "changes" => Kind::Changes,
            "status" => Kind::Status,
            _ => return None,
        };
        let format = match ext {
            "svg" => Format::Svg,
            "json" => Format::Json,
            _ => return None,
        };
        Some((kind, format))
    }
}

/// A badge's words and colour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Badge {
    pub label: String,
    pub message: String,
    pub color: &'static str,
    /// Nothing to show yet.
    pub no_data: bool,
}

impl Badge {
    fn new(label: impl Into<String>, message: impl Into<String>, color: &'static str) -> Self {
        Self {
            label: label.into(),
            message: message.into(),
            color,
            no_data: false,
        }
    }

    fn no_data(label: impl Into<String>) -> Self {
        Self {
            no_data: true,
            ..Self::new(label, "no data", "lightgrey")
        }
    }

    /// The badge of `kind` for a project whose facts are `facts`.
    pub fn of(kind: Kind, facts: &BadgeFacts) -> Badge {
        match kind {
            Kind::Downstream => downstream(facts),
            Kind::Changes => changes(facts),
            Kind::Status => status(facts),
        }
    }

    pub fn svg(&self) -> String {
        shields::render_badge_svg(&shields::BadgeParams {
            message_color: Some(self.color),
            ..shields::BadgeParams::new(&self.label, &self.message)
        })
    }

    /// The shields.io endpoint JSON (schema version 1).
    pub fn endpoint_json(&self) -> String {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Endpoint<'a> {
            schema_version: u8,
            label: &'a str,
            message: &'a str,
            color: &'a str,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            is_error: bool,
            cache_seconds: u32,
        }
        serde_json::to_string(&Endpoint {
            schema_version: 1,
            label: &self.label,
            message: &self.message,
            color: self.color,
            is_error: self.no_data,
            cache_seconds: CACHE_SECONDS,
        })
        .expect("strings and numbers serialize")
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Svg => self.svg(),
            Format::Json => self.endpoint_json(),
        }
    }
}

/// "downstream | 42/45 passing": the dependents of the latest finished cascade that
/// passed, of those it built or held back (a project that needs a bump was not meant
/// to build, and is not counted).
fn downstream(facts: &BadgeFacts) -> Badge {
    let Some(event) = &facts.finished else {
        return Badge::no_data("downstream");
    };
    let count = |k: StateKind| event.counts.get(&k).copied().unwrap_or(0);
    let all: u32 = event.counts.values().sum();
    // The root is one of the passed nodes: its cascade started.
    let total = all.saturating_sub(1 + count(StateKind::NeedsBump));
    let passed = count(StateKind::Passed).saturating_sub(1);
    if total == 0 {
        return Badge::new("downstream", "none built", "lightgrey");
    }
    let color = match passed * 100 / total {
        100 => "brightgreen",
        90..=99 => "yellowgreen",
        75..=89 => "yellow",
        50..=74 => "orange",
        _ => "red",
    };
    Badge::new("downstream", format!("{passed}/{total} passing"), color)
}

/// "vs 1.4.0 | 1 broke · 2 fixed · 39 same": the latest finished cascade's verdicts,
/// labelled with the upstream version of the finished cascade before it.
fn changes(facts: &BadgeFacts) -> Badge {
    let label = match &facts.previous {
        Some(p) => match &p.version {
            Some(v) => format!("vs {v}"),
            None => "vs previous".to_owned(),
        },
        None => "changes".to_owned(),
    };
    let Some(event) = &facts.finished else {
        return Badge::no_data(label);
    };
    let has = |v: Verdict| event.verdicts.get(&v).is_some_and(|n| *n > 0);
    let message = counts_line(&event.verdicts);
    if message.is_empty() {
        return Badge::new(label, "no builds", "lightgrey");
    }
    let color = if has(Verdict::Broke) {
        "red"
    } else if has(Verdict::Fixed) {
        "brightgreen"
    } else if has(Verdict::StillFailing) {
        "orange"
    } else if has(Verdict::Flaky) || has(Verdict::Infra) {
        "yellow"
    } else {
        "blue"
    };
    Badge::new(label, message, color)
}

/// "status | passed": the project's own latest build that ran.
fn status(facts: &BadgeFacts) -> Badge {
    let Some(own) = &facts.own else {
        return Badge::no_data("status");
    };
    let (message, color) = match own.state {
        StateKind::Passed => ("passed", "brightgreen"),
        StateKind::Failed => ("failed", "red"),
        StateKind::Errored => ("errored", "lightgrey"),
        StateKind::TriggerFailed => ("trigger failed", "lightgrey"),
        other => (other.as_str(), "lightgrey"),
    };
    Badge::new("status", message, color)
}

#[cfg(test)]
mod tests {
    use super::*;
    use conjunction_protocol::project::Badges;
    use conjunction_protocol::{BuildId, ProjectId, RootSummary, Timestamp};

    fn summary(
        version: &str,
        counts: &[(StateKind, u32)],
        verdicts: &[(Verdict, u32)],
    ) -> RootSummary {
        RootSummary {
            id: BuildId(ulid::Ulid(1)),
            project: ProjectId::parse("acme/lib").unwrap(),
            version: Some(version.into()),
            commit: None,
            git_ref: None,
            environment: None,
            rollback_from: None,
            created_at: Timestamp(0),
            counts: counts.iter().copied().collect(),
            verdicts: verdicts.iter().copied().collect(),
            notes: Vec::new(),
            not_promoted: Vec::new(),
            reported_by: None,
            forge: Vec::new(),
            candidate: None,
            superseded_by: None,
        }
    }

    fn facts(finished: Option<RootSummary>, previous: Option<RootSummary>) -> BadgeFacts {
        BadgeFacts {
            badges: Badges::Public,
            own: None,
            finished,
            previous,
        }
    }

    #[test]
    fn the_downstream_share_sets_the_colour_and_bumps_are_not_counted() {
        use StateKind::*;
        let cases = [
            (vec![(Passed, 46)], "45/45 passing", "brightgreen"),
            (
                vec![(Passed, 43), (Failed, 2), (Blocked, 1)],
                "42/45 passing",
                "yellowgreen",
            ),
            (
                vec![(Passed, 43), (NeedsBump, 3), (Failed, 3)],
                "42/45 passing",
                "yellowgreen",
            ),
            (vec![(Passed, 4), (Failed, 1)], "3/4 passing", "yellow"),
            (vec![(Passed, 3), (Failed, 2)], "2/4 passing", "orange"),
            (vec![(Passed, 1), (Failed, 4)], "0/4 passing", "red"),
            (vec![(Passed, 1), (NeedsBump, 2)], "none built", "lightgrey"),
        ];
        for (counts, message, color) in cases {
            let b = Badge::of(
                Kind::Downstream,
                &facts(Some(summary("2.0.0", &counts, &[])), None),
            );
            assert_eq!(
                (b.message.as_str(), b.color),
                (message, color),
                "{counts:?}"
            );
        }
        let none = Badge::of(Kind::Downstream, &facts(None, None));
        assert!(none.no_data);
        assert_eq!(none.message, "no data");
    }

    #[test]
    fn the_changes_badge_names_the_version_before_and_is_coloured_by_the_worst_verdict() {
        use Verdict::*;
        let before = summary("1.4.0", &[], &[]);
        type Case<'a> = (&'a [(Verdict, u32)], &'a str, &'a str);
        let cases: [Case; 5] = [
            (
                &[(Fixed, 2), (Broke, 1), (Same, 39)],
                "1 broke · 2 fixed · 39 same",
                "red",
            ),
            (
                &[(Fixed, 2), (Same, 39)],
                "2 fixed · 39 same",
                "brightgreen",
            ),
            (
                &[(StillFailing, 1), (Same, 3)],
                "1 still failing · 3 same",
                "orange",
            ),
            (&[(Flaky, 1), (Same, 3)], "1 flaky · 3 same", "yellow"),
            (&[(Same, 39)], "39 same", "blue"),
        ];
        for (verdicts, message, color) in cases {
            let latest = summary("1.5.0", &[], verdicts);
            let b = Badge::of(Kind::Changes, &facts(Some(latest), Some(before.clone())));
            assert_eq!(b.label, "vs 1.4.0");
            assert_eq!((b.message.as_str(), b.color), (message, color));
        }
        let first = Badge::of(
            Kind::Changes,
            &facts(Some(summary("1.0.0", &[], &[(New, 3)])), None),
        );
        assert_eq!(
            (first.label.as_str(), first.message.as_str()),
            ("changes", "3 new")
        );
    }

    #[test]
    fn endpoint_json_has_exactly_the_schema_keys() {
        let b = Badge::new("downstream", "42/45 passing", "yellowgreen");
        let json: serde_json::Value = serde_json::from_str(&b.endpoint_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"schemaVersion":1,"label":"downstream","message":"42/45 passing","color":"yellowgreen","cacheSeconds":300})
        );
        let none = Badge::no_data("status");
        let json: serde_json::Value = serde_json::from_str(&none.endpoint_json()).unwrap();
        assert_eq!(json["isError"], true);
    }

    #[test]
    fn badge_files_are_read_by_name_and_form() {
        assert_eq!(
            Kind::parse_file("downstream.svg"),
            Some((Kind::Downstream, Format::Svg))
        );
        assert_eq!(
            Kind::parse_file("changes.json"),
            Some((Kind::Changes, Format::Json))
        );
        assert_eq!(Kind::parse_file("status.png"), None);
        assert_eq!(Kind::parse_file("status"), None);
        assert_eq!(Kind::parse_file("build.svg"), None);
    }
}
