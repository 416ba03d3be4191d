//! What a notice says, as facts written into the outbox with it (so a retry after a
//! restart says the same), and the words every channel builds on.

use std::collections::BTreeMap;
use std::fmt::Write;

use conjunction_protocol::notify::NoticeKind;
use conjunction_protocol::{BuildId, Contact, ProjectId, StateKind, Verdict};
use serde::{Deserialize, Serialize};

/// The most lines of a build's summary a notice quotes.
const EXCERPT_LINES: usize = 12;
/// The most characters of it, and of one of its lines.
const EXCERPT_CHARS: usize = 1200;
const EXCERPT_LINE: usize = 500;
/// The most projects a digest names per verdict.
pub const DIGEST_NAMES: usize = 10;

/// The facts of one notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub kind: NoticeKind,
    /// The upstream whose event this is, and the version it released.
    pub upstream: ProjectId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The change, when the event tests one before it merges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<conjunction_protocol::Candidate>,
    pub root: BuildId,
    /// The build the notice is about: a dependent's, or the root for a digest.
    pub project: ProjectId,
    pub build: BuildId,
    pub attempt: u32,
    pub state: StateKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// Where the CI shows the build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The start of the build's failure summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excerpt: Option<String>,
    /// Why: the range that needs a bump, or why the trigger failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who is on each side.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub downstream_contacts: Vec<Contact>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstream_contacts: Vec<Contact>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// The mail this notice answers: for a fix, the mail that told of the break it
    /// fixes, which may be of an earlier event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replies_to: Option<MailRef>,
}

/// A notice sent by mail, by which a later one threads under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailRef {
    /// The notice's id, its mail's `Message-ID`.
    pub notice: BuildId,
    /// The root event it was about, its thread's first `References` entry.
    pub root: BuildId,
}

/// A finished event in numbers, and the projects worth naming.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    pub counts: BTreeMap<StateKind, u32>,
    pub verdicts: BTreeMap<Verdict, u32>,
    /// Up to [`DIGEST_NAMES`] projects per verdict (broke, fixed) and of those that
    /// need a bump.
    #[serde(default)]
    pub named: BTreeMap<String, Vec<ProjectId>>,
}

/// The start of a summary: its first lines, within a budget of characters.
pub fn excerpt(summary: &str) -> String {
    let mut out = String::new();
    for line in summary.lines().take(EXCERPT_LINES) {
        let line = match line.char_indices().nth(EXCERPT_LINE) {
            Some((cut, _)) => &line[..cut],
            None => line,
        };
        if out.len() + line.len() > EXCERPT_CHARS {
            let room = EXCERPT_CHARS.saturating_sub(out.len());
            let cut = (0..=room.min(line.len()))
                .rev()
                .find(|&i| line.is_char_boundary(i))
                .unwrap_or(0);
            out.push_str(&line[..cut]);
            out.push('…');
            return out;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.truncate(out.trim_end().len());
    out
}

impl Message {
    /// "acme/lib 1.5.0", "acme/lib 1.5.0 in prod", or "acme/lib candidate #12".
    pub fn release(&self) -> String {
        let mut s = self.upstream.to_string();
        if let Some(c) = &self.candidate {
            let _ = write!(s, " {}", c.label());
            return s;
        }
        if let Some(v) = &self.version {
            let _ = write!(s, " {v}");
        }
        if let Some(e) = &self.environment {
            let _ = write!(s, " in {e}");
        }
        s
    }

    /// One line that says it all, also the email's subject.
    pub fn headline(&self) -> String {
        let release = self.release();
        let p = &self.project;
        match self.kind {
            NoticeKind::Broke => format!("{p} broke with {release}"),
            NoticeKind::Fixed => format!("{p} is fixed with {release}"),
            NoticeKind::NeedsBump => format!("{p} needs a bump to take {release}"),
            NoticeKind::TriggerFailed => format!("{p} could not be triggered for {release}"),
            NoticeKind::Infra => format!("{p} errored in its CI with {release}"),
            NoticeKind::Digest => self.digest_line(),
            NoticeKind::Test => format!("A test notice from conjunction for {p}"),
        }
    }

    /// "acme/lib 1.5.0: 40 passed, 2 broke (apps/x, apps/y), 1 fixed, 3 need a bump".
    fn digest_line(&self) -> String {
        let d = self.digest.clone().unwrap_or_default();
        let count = |k: StateKind| d.counts.get(&k).copied().unwrap_or(0);
        let verdict = |v: Verdict| d.verdicts.get(&v).copied().unwrap_or(0);
        let named = |key: &str, n: u32| -> String {
            let names = d.named.get(key).cloned().unwrap_or_default();
            if names.is_empty() {
                return String::new();
            }
            let mut list: Vec<String> = names.iter().map(ToString::to_string).collect();
            if n as usize > names.len() {
                list.push(format!("{} more", n as usize - names.len()));
            }
            format!(" ({})", list.join(", "))
        };
        // The root is one of the passed builds.
        let mut parts = vec![format!(
            "{} passed",
            count(StateKind::Passed).saturating_sub(1)
        )];
        let broke = verdict(Verdict::Broke);
        if broke > 0 {
            parts.push(format!("{broke} broke{}", named("broke", broke)));
        }
        let fixed = verdict(Verdict::Fixed);
        if fixed > 0 {
            parts.push(format!("{fixed} fixed{}", named("fixed", fixed)));
        }
        for (v, words) in [
            (Verdict::StillFailing, "still failing"),
            (Verdict::Flaky, "flaky"),
            (Verdict::Infra, "failed in their CI"),
        ] {
            let n = verdict(v);
            if n > 0 {
                parts.push(format!("{n} {words}"));
            }
        }
        let blocked = count(StateKind::Blocked) + count(StateKind::Skipped);
        if blocked > 0 {
            parts.push(format!("{blocked} held back"));
        }
        let bumps = count(StateKind::NeedsBump);
        if bumps > 0 {
            let need = if bumps == 1 { "needs" } else { "need" };
            parts.push(format!(
                "{bumps} {need} a bump{}",
                named("needs_bump", bumps)
            ));
        }
        format!("{}: {}", self.release(), parts.join(", "))
    }

    /// The facts below the headline, one per line: the build, why, the excerpt and
    /// who is on each side, everyone named.
    pub fn details(&self) -> Vec<String> {
        self.details_within(usize::MAX, &|s: &str| s.len())
    }

    /// [`Message::details`] with each line of people within `budget` as `measure`
    /// counts it (a channel's own limit, after its escaping): as many as fit, then
    /// "and N more".
    pub fn details_within(&self, budget: usize, measure: &dyn Fn(&str) -> usize) -> Vec<String> {
        let mut lines = Vec::new();
        if self.kind == NoticeKind::Test {
            lines.push(format!(
                "A test of {}'s notify rules, sent because it was asked for: this channel gets \
                 the project's notices. Nothing happened to any build.",
                self.project
            ));
        } else if self.kind != NoticeKind::Digest {
            let mut build = format!(
                "build {} (attempt {}) {}",
                self.build, self.attempt, self.state
            );
            if let Some(url) = &self.url {
                let _ = write!(build, ": {url}");
            }
            lines.push(build);
        }
        if let Some(reason) = &self.reason {
            lines.push(reason.clone());
        }
        if let Some(e) = &self.excerpt {
            lines.extend(e.lines().map(|l| format!("> {l}")));
        }
        let (down, up) = super::route::sides(self.kind);
        if down && self.kind != NoticeKind::Digest {
            let prefix = format!("{}: ", self.project);
            lines.push(people_line(
                prefix,
                &self.downstream_contacts,
                budget,
                measure,
            ));
        }
        if up {
            let prefix = format!("{} (upstream): ", self.upstream);
            lines.push(people_line(
                prefix,
                &self.upstream_contacts,
                budget,
                measure,
            ));
        }
        lines
    }

    /// The whole notice as plain text.
    pub fn text(&self) -> String {
        let mut out = self.headline();
        for line in self.details() {
            out.push('\n');
            out.push_str(&line);
        }
        out
    }
}

/// "Ana Lima (maintainer) <ana@x.org> @ana, Lu" or "no contacts listed".
pub fn people(contacts: &[Contact]) -> String {
    if contacts.is_empty() {
        return "no contacts listed".into();
    }
    contacts.iter().map(person).collect::<Vec<_>>().join(", ")
}

/// "Ana Lima (maintainer) <ana@x.org> @ana".
fn person(c: &Contact) -> String {
    let mut s = c.name.clone();
    if let Some(r) = &c.role {
        let _ = write!(s, " ({r})");
    }
    if let Some(e) = &c.email {
        let _ = write!(s, " <{e}>");
    }
    if let Some(h) = &c.chat {
        let _ = write!(s, " {h}");
    }
    s
}

/// `prefix` and the people, as many as fit within `budget` as `measure` counts the
/// whole line, the rest said as "and N more" (32 contacts make 4,000 characters; a
/// Slack text takes 3,000 and an IRC line 512 bytes).
fn people_line(
    prefix: String,
    contacts: &[Contact],
    budget: usize,
    measure: &dyn Fn(&str) -> usize,
) -> String {
    let all = format!("{prefix}{}", people(contacts));
    if measure(&all) <= budget {
        return all;
    }
    let names: Vec<String> = contacts.iter().map(person).collect();
    // Fewer and fewer named; a contact too long alone is named by its name only.
    for keep in (1..names.len()).rev() {
        let line = format!(
            "{prefix}{}, and {} more",
            names[..keep].join(", "),
            names.len() - keep
        );
        if measure(&line) <= budget {
            return line;
        }
    }
    let first = contacts
        .first()
        .map(|c| c.name.as_str())
        .unwrap_or_default();
    let short = match names.len() {
        1 => format!("{prefix}{first}"),
        n => format!("{prefix}{first}, and {} more", n - 1),
    };
    if measure(&short) <= budget {
        short
    } else {
        format!("{prefix}{} people", names.len())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn broke() -> Message {
        Message {
            kind: NoticeKind::Broke,
            upstream: ProjectId::parse("acme/lib").unwrap(),
            version: Some("1.5.0".into()),
            environment: None,
            candidate: None,
            root: BuildId(ulid::Ulid(7)),
            project: ProjectId::parse("apps/x").unwrap(),
            build: BuildId(ulid::Ulid(8)),
            attempt: 1,
            state: StateKind::Failed,
            verdict: Some(Verdict::Broke),
            url: Some("https://ci.example/b/123".into()),
            excerpt: Some("error[E0432]: unresolved import `lib::old`".into()),
            reason: None,
            downstream_contacts: vec![Contact {
                name: "Ana Lima".into(),
                email: Some("ana@acme.example".into()),
                chat: Some("@ana".into()),
                role: Some("maintainer".into()),
            }],
            upstream_contacts: vec![Contact {
                name: "Lu Chen".into(),
                email: None,
                chat: None,
                role: None,
            }],
            digest: None,
            replies_to: None,
        }
    }

    /// 32 people with long names, as many as a project may list.
    pub fn crowd(side: &str) -> Vec<Contact> {
        (0..32)
            .map(|i| Contact {
                name: format!("Przemysław-Bartłomiej Wierzbicki-Szczepański {side}{i}"),
                email: Some(format!(
                    "przemyslaw.wierzbicki.{side}{i}@release-engineering.acme.example"
                )),
                chat: Some(format!("@przemyslaw-wierzbicki-{side}{i}")),
                role: Some("release engineering".into()),
            })
            .collect()
    }

    #[test]
    fn a_crowd_is_named_within_the_budget_and_the_rest_counted() {
        let m = Message {
            downstream_contacts: crowd("d"),
            upstream_contacts: crowd("u"),
            ..broke()
        };
        let full = m.details();
        assert!(
            full.iter().any(|l| l.len() > 3000),
            "everyone named: {full:?}"
        );
        let lines = m.details_within(500, &|s: &str| s.len());
        let people: Vec<&String> = lines.iter().filter(|l| l.contains("more")).collect();
        assert_eq!(people.len(), 2, "{lines:?}");
        for line in people {
            assert!(line.len() <= 500, "{line}");
            let named = line.matches("release engineering").count();
            assert!(
                line.ends_with(&format!(", and {} more", 32 - named)),
                "{line}"
            );
        }
        let tiny = m.details_within(40, &|s: &str| s.len());
        assert!(tiny.iter().any(|l| l == "apps/x: 32 people"), "{tiny:?}");
    }

    #[test]
    fn a_break_names_the_version_the_build_its_link_the_excerpt_and_both_sides() {
        assert_eq!(
            broke().text(),
            "apps/x broke with acme/lib 1.5.0\n\
             build 00000000000000000000000008 (attempt 1) failed: https://ci.example/b/123\n\
             > error[E0432]: unresolved import `lib::old`\n\
             apps/x: Ana Lima (maintainer) <ana@acme.example> @ana\n\
             acme/lib (upstream): Lu Chen"
        );
    }

    #[test]
    fn a_digest_counts_and_names_what_changed() {
        let p = |s: &str| ProjectId::parse(s).unwrap();
        let m = Message {
            kind: NoticeKind::Digest,
            excerpt: None,
            digest: Some(Digest {
                counts: [
                    (StateKind::Passed, 41),
                    (StateKind::Failed, 2),
                    (StateKind::NeedsBump, 3),
                ]
                .into(),
                verdicts: [
                    (Verdict::Same, 39),
                    (Verdict::Broke, 2),
                    (Verdict::Fixed, 1),
                ]
                .into(),
                named: [
                    ("broke".to_owned(), vec![p("apps/x"), p("apps/y")]),
                    ("fixed".to_owned(), vec![p("apps/z")]),
                    ("needs_bump".to_owned(), vec![p("apps/a")]),
                ]
                .into(),
            }),
            ..broke()
        };
        assert_eq!(
            m.headline(),
            "acme/lib 1.5.0: 40 passed, 2 broke (apps/x, apps/y), 1 fixed (apps/z), 3 need a bump (apps/a, 2 more)"
        );
        assert_eq!(m.details(), ["acme/lib (upstream): Lu Chen"]);
    }

    #[test]
    fn an_excerpt_keeps_the_first_lines_within_its_budget() {
        let long: String = (0..40).map(|i| format!("line {i}\n")).collect();
        assert_eq!(excerpt(&long).lines().count(), EXCERPT_LINES);
        let wide = "é".repeat(2000);
        assert_eq!(excerpt(&wide).chars().count(), EXCERPT_LINE);
        let lines = format!("{}\n", "é".repeat(400)).repeat(4);
        let e = excerpt(&lines);
        assert!(
            e.len() <= EXCERPT_CHARS + '…'.len_utf8() && e.ends_with('…'),
            "{e}"
        );
    }
}
