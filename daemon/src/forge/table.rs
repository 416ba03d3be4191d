//! The table of dependents a forge shows in Markdown (a check run's text, a
//! Buildkite annotation): what needs a person first (broke, needs a bump, still
//! failing), then the rest, within the forge's size limit.

use conjunction_protocol::{StateKind, Verdict};

use super::{Row, Shown};

/// Where a row goes: what needs a person first.
fn rank(row: &Row) -> u8 {
    match (row.verdict, row.state) {
        (Some(Verdict::Broke), _) => 0,
        (_, StateKind::NeedsBump) => 1,
        (Some(Verdict::StillFailing), _) => 2,
        (Some(Verdict::Flaky), _) => 3,
        (Some(Verdict::Infra), _) => 4,
        (Some(Verdict::Fixed), _) => 5,
        (_, s) if !s.is_final() => 6,
        (_, StateKind::Blocked) => 7,
        _ => 8,
    }
}

/// A URL as a Markdown link target: the characters that would end it escaped.
fn link_target(url: &str) -> String {
    url.replace('(', "%28")
        .replace(')', "%29")
        .replace(' ', "%20")
}

/// The table of `shown`'s dependents in at most `budget` bytes, with a last line
/// saying how many did not fit (and that the event has more than were read).
pub fn markdown(shown: &Shown, budget: usize) -> String {
    let mut rows: Vec<&Row> = shown.rows.iter().collect();
    rows.sort_by(|a, b| {
        rank(a)
            .cmp(&rank(b))
            .then_with(|| a.project.cmp(&b.project))
    });
    let mut out = String::from("| dependent | state | verdict | CI |\n|---|---|---|---|\n");
    // Room for the last line, whatever it says.
    let reserve = 120;
    let mut shown_rows = 0usize;
    for row in &rows {
        let link = row
            .url
            .as_deref()
            .map(|u| format!("[run]({})", link_target(u)))
            .unwrap_or_default();
        let verdict = row
            .verdict
            .map(|v| v.as_str().replace('_', " "))
            .unwrap_or_default();
        let line = format!(
            "| `{}` | {} | {} | {} |\n",
            row.project,
            row.state.as_str().replace('_', " "),
            verdict,
            link
        );
        if out.len() + line.len() + reserve > budget {
            break;
        }
        out.push_str(&line);
        shown_rows += 1;
    }
    let left = shown.dependents as usize - shown_rows.min(shown.dependents as usize);
    if left > 0 {
        out.push_str(&format!(
            "\n… and {left} more dependent{} not listed here.\n",
            if left == 1 { "" } else { "s" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use conjunction_protocol::forge::{Outlook, Told};
    use conjunction_protocol::{BuildId, ProjectId, Timestamp};

    fn shown(rows: Vec<Row>, dependents: u32) -> Shown {
        Shown {
            event: BuildId(ulid::Ulid(1)),
            upstream: ProjectId::parse("acme/lib").unwrap(),
            version: Some("2.0.0".into()),
            commit: Some("abc".into()),
            git_ref: None,
            build_url: None,
            build_number: None,
            told: Told {
                outlook: Outlook::Failure,
                line: String::new(),
                finished: true,
            },
            started_at: Timestamp(0),
            finished_at: None,
            rows,
            dependents,
            candidate: None,
            superseded_by: None,
        }
    }

    fn row(name: &str, state: StateKind, verdict: Option<Verdict>) -> Row {
        Row {
            project: ProjectId::parse(name).unwrap(),
            state,
            verdict,
            url: Some(format!("https://ci.example/{name}/(1)")),
        }
    }

    #[test]
    fn breaks_come_first_and_what_does_not_fit_is_counted() {
        let rows = vec![
            row("acme/a", StateKind::Passed, Some(Verdict::Same)),
            row("acme/b", StateKind::Failed, Some(Verdict::Broke)),
            row("acme/c", StateKind::NeedsBump, None),
        ];
        let table = markdown(&shown(rows.clone(), 3), 65_535);
        let b = table.find("acme/b").unwrap();
        let c = table.find("acme/c").unwrap();
        let a = table.find("acme/a").unwrap();
        assert!(b < c && c < a, "{table}");
        assert!(
            table.contains("[run](https://ci.example/acme/b/%281%29)"),
            "{table}"
        );
        assert!(!table.contains("more dependent"));
        // A small budget keeps the header and the first row, and counts the rest.
        let small = markdown(&shown(rows, 3), 250);
        assert!(small.len() <= 250, "{}", small.len());
        assert!(small.contains("acme/b"));
        assert!(small.contains("… and 2 more dependents"), "{small}");
    }
}
