//! Printing a root event as an indented tree, for `conjunction tree`.

use std::fmt::Write;

use std::collections::BTreeMap;

use conjunction_protocol::impact::Impact;
use conjunction_protocol::notify::NoticeState;
use conjunction_protocol::releases::{LineCell, ReleaseLine};
use conjunction_protocol::tree::assemble;
use conjunction_protocol::verdict::counts_line;
use conjunction_protocol::{NodeState, RootEvent, Timestamp};

/// Renders `event` as text: one line per node, children indented under parents.
pub fn render(event: &RootEvent) -> String {
    let mut out = String::new();
    let s = &event.summary;
    let _ = writeln!(
        out,
        "{}{}{}{} (root {}, {})",
        s.project,
        s.version
            .as_deref()
            .map(|v| format!("@{v}"))
            .unwrap_or_default(),
        s.candidate
            .as_ref()
            .map(|c| format!(" {}", c.label()))
            .unwrap_or_default(),
        promotion_title(s.environment.as_deref(), s.rollback_from.as_deref()),
        s.id,
        s.created_at
    );
    if let Some(c) = &s.candidate {
        let mut line = format!(
            "candidate: change {} tested before it merges, on {}",
            c.change,
            s.commit.as_deref().unwrap_or("an unnamed commit")
        );
        match &c.base {
            Some(base) => {
                let _ = write!(line, ", made on {base}");
            }
            None => line.push_str(", made on the latest release"),
        }
        if let Some(by) = s.superseded_by {
            let _ = write!(line, "; superseded by {by}");
        }
        let _ = writeln!(out, "{line}");
    }
    if !s.verdicts.is_empty() {
        let _ = writeln!(out, "verdicts: {}", counts_line(&s.verdicts));
    }
    for note in &s.notes {
        let _ = writeln!(out, "note: {note}");
    }
    for report in &s.forge {
        let _ = writeln!(out, "forge: {}", report.describe());
    }
    for n in &s.not_promoted {
        let _ = writeln!(out, "not promoted: {} - {}", n.project, n.why);
    }
    for line in assemble(&event.nodes) {
        let node = &event.nodes[line.node];
        let mut text = format!(
            "{}{} {}",
            "  ".repeat(line.depth),
            node.project,
            node.state.kind()
        );
        if let Some(v) = &node.target_version {
            let _ = write!(text, " {v}");
        }
        if let Some(r) = &node.target_ref {
            let _ = write!(text, " on {r}");
        }
        match node.rerun {
            Some(n) => {
                let _ = write!(text, " (attempt {}, rerun {n})", node.attempt);
            }
            None if node.attempt > 1 => {
                let _ = write!(text, " (attempt {})", node.attempt);
            }
            None => {}
        }
        if let Some(v) = node.verdict {
            let _ = write!(text, " [{}]", v.words());
        }
        if let Some(d) = duration(node.started_at.or(node.triggered_at), node.finished_at) {
            let _ = write!(text, " {d}");
        }
        if line.shared {
            text.push_str(if line.elsewhere {
                " [shared, shown above]"
            } else {
                " [shared]"
            });
        }
        if !line.elsewhere {
            if let Some(reason) = node.state.reason() {
                let _ = write!(text, " - {reason}");
            } else if matches!(node.state, NodeState::Failed | NodeState::Errored) {
                if let Some(summary) = node.summary.as_deref().and_then(|s| s.lines().next()) {
                    let _ = write!(text, " - {summary}");
                }
            }
            if let Some(run) = &node.run {
                let _ = write!(text, " [{}]", run.describe());
                if let Some(learnt) = &run.learnt {
                    let _ = write!(text, " ({learnt})");
                }
            }
            if let Some(url) = &node.url {
                let _ = write!(text, " <{url}>");
            }
        }
        let _ = writeln!(out, "{text}");
        if !line.elsewhere {
            for n in &node.notices {
                let _ = writeln!(
                    out,
                    "{}  told {} about {}: {}{}",
                    "  ".repeat(line.depth),
                    n.channel,
                    n.kind,
                    match n.state {
                        NoticeState::Sent => "sent",
                        NoticeState::Queued => "sending",
                        NoticeState::GaveUp => "gave up",
                    },
                    n.error
                        .as_deref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                );
            }
        }
    }
    out
}

fn duration(from: Option<Timestamp>, to: Option<Timestamp>) -> Option<String> {
    let d = to?.since(from?);
    let secs = d.as_secs();
    Some(if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    })
}

/// " to test", " to prod (rollback from 2.0.0)", or nothing for a release.
pub fn promotion_title(environment: Option<&str>, rollback_from: Option<&str>) -> String {
    match (environment, rollback_from) {
        (None, _) => String::new(),
        (Some(e), None) => format!(" to {e}"),
        (Some(e), Some(from)) => format!(" to {e} (rollback from {from})"),
    }
}

/// Renders an impact preview as text, for `conjunction impact`.
pub fn render_impact(i: &Impact) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}@{}{} ({} versions): {} build{} would be triggered, {} need{} a bump, {} not affected",
        i.project,
        i.version,
        promotion_title(i.environment.as_deref(), i.rollback_from.as_deref()),
        i.ecosystem,
        i.builds,
        if i.builds == 1 { "" } else { "s" },
        i.needs_bump.len(),
        if i.needs_bump.len() == 1 { "s" } else { "" },
        i.not_affected.len(),
    );
    for note in &i.notes {
        let _ = writeln!(out, "note: {note}");
    }
    if !i.triggered.is_empty() {
        let _ = writeln!(out, "\ntriggered:");
    }
    for b in &i.triggered {
        let mut line = format!("  {}", b.project);
        if let Some(v) = &b.version {
            let _ = write!(line, " {v}");
        }
        if let Some(r) = &b.git_ref {
            let _ = write!(line, " on {r}");
        }
        let after: Vec<&str> = b.after.iter().map(|p| p.as_str()).collect();
        let _ = write!(line, " after {}", after.join(", "));
        if let Some(why) = &b.cannot_trigger {
            let _ = write!(line, " - cannot be triggered: {why}");
        }
        let _ = writeln!(out, "{line}");
    }
    if !i.needs_bump.is_empty() {
        let _ = writeln!(out, "\nneeds a bump:");
    }
    for b in &i.needs_bump {
        let _ = writeln!(out, "  {} - {}", b.project, b.message);
        for c in &b.contacts {
            let mut who = format!("    contact: {}", c.name);
            for part in [&c.role, &c.email, &c.chat].into_iter().flatten() {
                let _ = write!(who, ", {part}");
            }
            let _ = writeln!(out, "{who}");
        }
    }
    for (title, list) in [
        ("not promoted", &i.not_promoted),
        ("blocked", &i.blocked),
        ("not affected", &i.not_affected),
    ] {
        if !list.is_empty() {
            let _ = writeln!(out, "\n{title}:");
        }
        for n in list {
            let _ = writeln!(out, "  {} - {}", n.project, n.why);
        }
    }
    if !i.cycles.is_empty() {
        let _ = writeln!(out, "\ncycles (skipped):");
    }
    for c in &i.cycles {
        let path: Vec<&str> = c.iter().map(|p| p.as_str()).collect();
        let _ = writeln!(out, "  {}", path.join(" -> "));
    }
    out
}

/// Renders release lines as text, for `conjunction releases`: per version, the
/// upstream's own runs, then a row per dependent with its version and its state in
/// each environment.
pub fn render_releases(
    environments: &[String],
    current: &BTreeMap<String, String>,
    lines: &[ReleaseLine],
) -> String {
    let mut out = String::new();
    let now = current_versions(environments, current);
    if !now.is_empty() {
        let _ = writeln!(out, "now: {}", now.join(", "));
    }
    if lines.is_empty() {
        let _ = writeln!(
            out,
            "no release lines yet: a root report with a version starts one"
        );
    }
    for line in lines {
        let runs: Vec<String> = environments
            .iter()
            .filter_map(|e| {
                let run = line.environments.get(e)?;
                let rollback = run
                    .rollback_from
                    .as_deref()
                    .map(|v| format!(" (rollback from {v})"))
                    .unwrap_or_default();
                Some(format!("{e} {}{rollback}", run.state))
            })
            .collect();
        let _ = writeln!(
            out,
            "\n{}@{}: {}",
            line.project,
            line.version,
            runs.join(", ")
        );
        for d in &line.dependents {
            let mut row = format!(
                "  {} {}",
                d.project,
                d.version.as_deref().unwrap_or("(no version)")
            );
            for e in environments {
                let _ = write!(row, "  {e}: {}", cell_text(d.environments.get(e)));
            }
            let _ = writeln!(out, "{row}");
        }
    }
    out
}

/// "dev 2.1.0", "test 2.0.3", …: the version each environment has, in their order.
pub fn current_versions(
    environments: &[String],
    current: &BTreeMap<String, String>,
) -> Vec<String> {
    environments
        .iter()
        .filter_map(|e| current.get(e).map(|v| format!("{e} {v}")))
        .collect()
}

/// A dependent's state in one environment, in a few words.
pub fn cell_text(cell: Option<&LineCell>) -> String {
    match cell {
        None => "-".into(),
        Some(LineCell::Built { state, .. }) => state.to_string(),
        Some(LineCell::NotPromoted { not_promoted, .. }) => {
            format!("not promoted ({not_promoted})")
        }
    }
}

#[cfg(test)]
mod tests {
    use conjunction_protocol::NodeState;

    use conjunction_sim::sample::{ids, runtime_event};

    #[test]
    fn a_native_run_is_named_beside_its_link() {
        let event = runtime_event(NodeState::Failed, 120, "1.5.0", &ids());
        let text = super::render(&event);
        let line = text
            .lines()
            .find(|l| l.contains("net/http"))
            .expect("net/http is in the tree");
        assert!(
            line.contains(
                "[GitHub run 30433642] <https://github.com/acme/http/actions/runs/30433642>"
            ),
            "{line}"
        );
    }
}
