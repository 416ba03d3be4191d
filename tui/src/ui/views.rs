//! Drawing the views that take the whole body: a project's release lines, and the
//! impact preview typed at the prompt.

use conjunction_protocol::impact::Impact;
use conjunction_protocol::releases::{LineCell, Releases};
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::{glyph, heading, pane};
use crate::app::{App, Loading, View};

/// Width of a dependent's column in the release lines.
const VERSION_WIDTH: usize = 12;
const CELL_WIDTH: usize = 16;

pub fn draw_view(frame: &mut Frame, area: Rect, app: &App, view: &View) {
    let (title, lines) = match view {
        View::Releases { project, loaded } => (
            format!(" release lines of {project} · Esc: back · j/k: scroll "),
            loading(loaded, |r| release_lines(r)),
        ),
        View::Impact { asked, loaded } => (
            format!(" impact of {asked} · Esc: back · j/k: scroll "),
            loading(loaded, |i| impact_lines(i)),
        ),
    };
    frame.render_widget(
        Paragraph::new(lines)
            .block(pane(title, true))
            .wrap(Wrap { trim: false })
            .scroll((app.view_scroll, 0)),
        area,
    );
}

fn loading<T>(loaded: &Loading<T>, lines: impl Fn(&T) -> Vec<Line<'static>>) -> Vec<Line<'static>> {
    match loaded {
        Loading::Waiting => vec![Line::styled(
            "asking the daemon…",
            Style::new().fg(Color::DarkGray),
        )],
        Loading::Failed(why) => vec![Line::styled(why.clone(), Style::new().fg(Color::Red))],
        Loading::Ready(value) => lines(value),
    }
}

/// Per version: the upstream's runs per environment, then a row per dependent with
/// the version on the line and its state in each environment.
fn release_lines(r: &Releases) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    let now = crate::tree::current_versions(&r.environments, &r.current);
    out.push(Line::from(vec![
        Span::styled("now  ", Style::new().fg(Color::DarkGray)),
        Span::raw(if now.is_empty() {
            "no environment has passed a release yet".to_owned()
        } else {
            now.join(" · ")
        }),
    ]));
    if r.lines.is_empty() {
        out.push(Line::styled(
            "no release lines yet: a root report with a version starts one",
            Style::new().fg(Color::DarkGray),
        ));
    }
    let width = r
        .lines
        .iter()
        .flat_map(|l| &l.dependents)
        .map(|d| d.project.as_str().len())
        .max()
        .unwrap_or(0)
        .clamp("dependent".len(), 40);
    for line in &r.lines {
        out.push(Line::default());
        let mut spans = vec![Span::styled(
            format!("{} {}", line.project, line.version),
            Style::new().bold(),
        )];
        for e in &r.environments {
            let Some(run) = line.environments.get(e) else {
                continue;
            };
            let (g, colour) = glyph(run.state);
            spans.push(Span::raw(format!("   {e} ")));
            spans.push(Span::styled(
                format!("{g} {}", run.state),
                Style::new().fg(colour),
            ));
            if let Some(from) = &run.rollback_from {
                spans.push(Span::styled(
                    format!(" (rollback from {from})"),
                    Style::new().fg(Color::Yellow),
                ));
            }
        }
        out.push(Line::from(spans));
        if line.dependents.is_empty() {
            continue;
        }
        let mut head = format!("  {:<width$} {:<VERSION_WIDTH$}", "dependent", "version");
        for e in &r.environments {
            head.push_str(&format!(" {e:<CELL_WIDTH$}"));
        }
        out.push(Line::styled(head, Style::new().fg(Color::DarkGray)));
        for d in &line.dependents {
            let mut spans = vec![Span::raw(format!(
                "  {:<width$} {:<VERSION_WIDTH$}",
                d.project.as_str(),
                d.version.as_deref().unwrap_or("-")
            ))];
            let mut why = None;
            for e in &r.environments {
                let (text, colour) = match d.environments.get(e) {
                    None => ("·".to_owned(), Color::DarkGray),
                    Some(LineCell::Built { state, .. }) => {
                        let (g, colour) = glyph(*state);
                        (format!("{g} {state}"), colour)
                    }
                    Some(LineCell::NotPromoted { not_promoted, .. }) => {
                        why = Some(format!("not promoted to {e}: {not_promoted}"));
                        ("⊘ not promoted".to_owned(), Color::LightRed)
                    }
                };
                spans.push(Span::styled(
                    format!(" {text:<CELL_WIDTH$}"),
                    Style::new().fg(colour),
                ));
            }
            if let Some(why) = why {
                spans.push(Span::styled(
                    format!(" {why}"),
                    Style::new().fg(Color::DarkGray),
                ));
            }
            out.push(Line::from(spans));
        }
    }
    out
}

/// The preview as `conjunction impact` prints it, its sections as headings.
fn impact_lines(i: &Impact) -> Vec<Line<'static>> {
    crate::tree::render_impact(i)
        .lines()
        .enumerate()
        .map(|(n, text)| {
            if n == 0 {
                Line::styled(text.to_owned(), Style::new().bold())
            } else if !text.starts_with(' ') && text.ends_with(':') {
                heading(text.to_owned())
            } else if text.starts_with("    contact:") {
                Line::styled(text.to_owned(), Style::new().fg(Color::Cyan))
            } else {
                Line::raw(text.to_owned())
            }
        })
        .collect()
}
