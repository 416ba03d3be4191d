//! Drawing: reads the [`App`] and paints one frame. Only the rows that fit are
//! built, so a frame costs the same for a 50-node tree and a 5,000-node one.

mod views;

use std::time::Duration;

use conjunction_protocol::node::may_rebuild;
use conjunction_protocol::notify::{Notice, NoticeState};
use conjunction_protocol::project::DependencyOrigin;
use conjunction_protocol::verdict::explain;
use conjunction_protocol::{
    BuildId, Contact, Node, NodeState, Project, ProjectId, StateKind, Timestamp, Verdict,
};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph, Wrap};
use ratatui::Frame;

use crate::app::{root_title, App, Confirm, Focus, Link, Mode, Row};
use crate::keys::HELP;
use crate::model::{Held, RootView};

/// Wider than this, the details pane gets its own column.
const WIDE: u16 = 140;

/// A state's glyph and colour.
pub fn glyph(kind: StateKind) -> (&'static str, Color) {
    match kind {
        StateKind::Pending => ("·", Color::DarkGray),
        StateKind::Queued => ("◦", Color::Gray),
        StateKind::Triggered => ("◔", Color::Cyan),
        StateKind::Running => ("◑", Color::Yellow),
        StateKind::Passed => ("✓", Color::Green),
        StateKind::Failed => ("✗", Color::Red),
        StateKind::Errored => ("!", Color::Magenta),
        StateKind::Cancelled => ("⊖", Color::Gray),
        StateKind::Blocked => ("⊘", Color::LightRed),
        StateKind::Skipped => ("↻", Color::Blue),
        StateKind::TriggerFailed => ("⚠", Color::Red),
        StateKind::NeedsBump => ("⇡", Color::Blue),
    }
}

fn state_span(kind: StateKind) -> Span<'static> {
    let (g, c) = glyph(kind);
    Span::styled(g, Style::new().fg(c).add_modifier(Modifier::BOLD))
}

/// `45s`, `3m05s`, `2h10m`: short, for tree rows.
pub fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// `12s ago`, `3m ago`, `2h ago`, `4d ago`.
pub fn age(now: Timestamp, then: Timestamp) -> String {
    let s = now.since(then).as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// How long a node has run, or ran; nothing for a node that never started.
fn duration(node: &Node, now: Timestamp) -> Option<Duration> {
    let running = !node.state.kind().is_final();
    let start = node.started_at.or(node.triggered_at.filter(|_| running))?;
    let end = node.finished_at.or(running.then_some(now))?;
    Some(end.since(start))
}

pub fn draw(frame: &mut Frame, app: &App) {
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    draw_header(frame, header, app);
    draw_footer(frame, footer, app);
    match &app.mode {
        Mode::Drill { root, node }
        | Mode::Confirm(Confirm {
            from_drill: Some((root, node)),
            ..
        }) => draw_drill(frame, body, app, *root, *node),
        Mode::View(view) => views::draw_view(frame, body, app, view),
        _ => draw_browse(frame, body, app),
    }
    if let Mode::Confirm(confirm) = &app.mode {
        draw_confirm(frame, body, &confirm.question);
    }
    if app.help {
        draw_help(frame, body);
    }
}

fn draw_header(frame: &mut Frame, area: Rect, app: &App) {
    let counts = app.model.counts();
    let link = match &app.link {
        Link::Live => Span::styled("● live", Style::new().fg(Color::Green)),
        Link::Connecting => Span::styled("◌ connecting", Style::new().fg(Color::Yellow)),
        Link::Down { retry_at, .. } => {
            let wait = retry_at.since(app.now).as_millis().div_ceil(1000);
            Span::styled(
                format!("○ disconnected, retry in {wait}s"),
                Style::new().fg(Color::Red).bold(),
            )
        }
    };
    let count = |glyph: &str, n: u32, word: &str, colour: Color, long: bool| {
        let text = if long {
            format!("  {glyph} {n} {word}")
        } else {
            format!(" {glyph}{n}")
        };
        Span::styled(text, Style::new().fg(colour))
    };
    let address = app.address.trim_start_matches("http://").to_owned();
    // The widest variant that fits: words, then bare counts, then no badge.
    let variants = [(true, true), (true, false), (false, false)];
    let mut line = Line::default();
    for (badge, long) in variants {
        let mut spans = Vec::new();
        if badge {
            spans.push(Span::styled(
                " conjunction ",
                Style::new().bold().reversed(),
            ));
        }
        spans.extend([
            Span::raw(" "),
            Span::raw(address.clone()),
            Span::raw("  "),
            link.clone(),
            count("◑", counts.running, "running", Color::Yellow, long),
            count("✗", counts.failing, "failing", Color::Red, long),
            count("◦", counts.waiting, "waiting", Color::Gray, long),
        ]);
        if app.follow {
            spans.push(Span::styled("  follow", Style::new().fg(Color::Cyan)));
        }
        if app.failing_only {
            spans.push(Span::styled("  failing only", Style::new().fg(Color::Red)));
        }
        if let Some(kinds) = app.kinds.label() {
            spans.push(Span::styled(
                format!("  {kinds}"),
                Style::new().fg(Color::Magenta),
            ));
        }
        line = Line::from(spans);
        if line.width() <= area.width as usize {
            break;
        }
    }
    frame.render_widget(line, area);
}

fn draw_footer(frame: &mut Frame, area: Rect, app: &App) {
    let line = if app.mode == Mode::Search {
        Line::from(vec![
            Span::styled("/", Style::new().fg(Color::Cyan).bold()),
            Span::raw(app.search.clone()),
            Span::styled("▏", Style::new().fg(Color::Cyan)),
            Span::styled(
                "  Enter keeps · Esc clears",
                Style::new().fg(Color::DarkGray),
            ),
        ])
    } else if app.mode == Mode::Prompt {
        Line::from(vec![
            Span::styled("impact: ", Style::new().fg(Color::Cyan).bold()),
            Span::raw(app.prompt.clone()),
            Span::styled("▏", Style::new().fg(Color::Cyan)),
            Span::styled(
                "  project version [environment] · Enter previews · Esc closes",
                Style::new().fg(Color::DarkGray),
            ),
        ])
    } else if let Some(status) = &app.status {
        let colour = if status.error {
            Color::Red
        } else {
            Color::Cyan
        };
        Line::styled(format!(" {}", status.text), Style::new().fg(colour))
    } else if let Link::Down { reason, .. } = &app.link {
        Line::styled(format!(" {reason}"), Style::new().fg(Color::Red))
    } else {
        // A viewer's token rebuilds nothing: its keys are not offered.
        let reads_only = app
            .model
            .caller
            .as_ref()
            .is_some_and(|c| matches!(c.scope, conjunction_protocol::access::Scope::Viewer));
        let rebuild = if reads_only {
            "(viewer: reads only)"
        } else {
            "r/R:rebuild"
        };
        let mut hints = format!(
            " ?:help j/k:move Tab:pane Enter:drill {rebuild} f:failing /:search v:releases i:impact q:quit",
        );
        if !app.search.is_empty() {
            hints = format!(" search: {}  (Esc clears) {hints}", app.search);
        }
        Line::styled(hints, Style::new().fg(Color::DarkGray))
    };
    frame.render_widget(line, area);
}

pub(crate) fn pane<'a>(title: impl Into<Line<'a>>, focused: bool) -> Block<'a> {
    let colour = if focused {
        Color::Cyan
    } else {
        Color::DarkGray
    };
    Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(Style::new().fg(colour))
        .title(title.into())
}

fn draw_browse(frame: &mut Frame, area: Rect, app: &App) {
    let roots_width = if area.width >= WIDE {
        38
    } else {
        (area.width * 3 / 10).max(28)
    };
    if area.width >= WIDE {
        let [roots, tree, details] = Layout::horizontal([
            Constraint::Length(roots_width),
            Constraint::Fill(1),
            Constraint::Length(58),
        ])
        .areas(area);
        draw_roots(frame, roots, app);
        draw_tree(frame, tree, app);
        draw_details(frame, details, app);
    } else {
        let [roots, right] =
            Layout::horizontal([Constraint::Length(roots_width), Constraint::Fill(1)]).areas(area);
        let details_height = (right.height * 2 / 5).max(8);
        let [tree, details] =
            Layout::vertical([Constraint::Fill(1), Constraint::Length(details_height)])
                .areas(right);
        draw_roots(frame, roots, app);
        draw_tree(frame, tree, app);
        draw_details(frame, details, app);
    }
}

/// The first row to show so that `selected` is in view, keeping the previous
/// offset when it still works so the list does not jump.
fn scroll(previous: usize, selected: usize, height: usize, len: usize) -> usize {
    let mut offset = previous.min(len.saturating_sub(height));
    if selected < offset {
        offset = selected;
    } else if height > 0 && selected >= offset + height {
        offset = selected + 1 - height;
    }
    offset
}

fn draw_roots(frame: &mut Frame, area: Rect, app: &App) {
    let visible = app.visible_roots();
    let title = format!(" roots {} ", visible.len());
    let block = pane(title, app.focus == Focus::Roots);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if visible.is_empty() {
        let text = if app.model.roots.is_empty() && app.model.daemon.is_none() {
            "Waiting for the daemon…"
        } else if app.model.roots.is_empty() {
            "No root events yet. They appear when an upstream reports a build."
        } else {
            "No root event matches the filter."
        };
        frame.render_widget(
            Paragraph::new(text)
                .wrap(Wrap { trim: true })
                .fg(Color::DarkGray),
            inner,
        );
        return;
    }
    let per_root = 2usize;
    let fits = (inner.height as usize / per_root).max(1);
    let selected = visible
        .iter()
        .position(|&i| Some(app.model.roots[i].id()) == app.selected_root)
        .unwrap_or(0);
    let offset = scroll(app.roots_offset.get(), selected, fits, visible.len());
    app.roots_offset.set(offset);
    let mut lines = Vec::with_capacity(fits * per_root);
    for (n, &i) in visible.iter().enumerate().skip(offset).take(fits) {
        let root = &app.model.roots[i];
        let is_selected = n == selected;
        let outcome = root_outcome(root);
        let when = age(app.now, root.summary.created_at);
        let title = root_title(root);
        let room = (inner.width as usize).saturating_sub(when.len() + 3);
        // A candidate stands apart from releases: it may never merge.
        let style = if root.summary.candidate.is_some() {
            Style::new().bold().fg(Color::Magenta)
        } else {
            Style::new().bold()
        };
        let mut first = Line::from(vec![
            state_span(outcome),
            Span::raw(" "),
            Span::styled(clip(&title, room), style),
        ]);
        let used = first.width();
        first.push_span(Span::raw(
            " ".repeat((inner.width as usize).saturating_sub(used + when.len())),
        ));
        first.push_span(Span::styled(when, Style::new().fg(Color::DarkGray)));
        let mut second = vec![Span::raw("  ")];
        for (kind, count) in root.counts() {
            let (g, c) = glyph(*kind);
            second.push(Span::styled(format!("{g}{count} "), Style::new().fg(c)));
        }
        // Notable verdicts follow while they fit whole.
        let mut used: usize = second.iter().map(Span::width).sum();
        for (verdict, count) in root.summary.verdicts.iter() {
            let text = format!(" {count} {}", verdict.words());
            if notable(*verdict) && used + text.chars().count() <= inner.width as usize {
                used += text.chars().count();
                second.push(Span::styled(
                    text,
                    Style::new().fg(verdict_colour(*verdict)),
                ));
            }
        }
        let mut second = Line::from(second);
        if is_selected {
            let style = if app.focus == Focus::Roots {
                Style::new().bg(Color::DarkGray)
            } else {
                Style::new().add_modifier(Modifier::UNDERLINED)
            };
            first = first.patch_style(style);
            second = second.patch_style(if app.focus == Focus::Roots {
                style
            } else {
                Style::new()
            });
        }
        lines.push(first);
        lines.push(second);
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

/// One state that sums up a root event: failed if a build failed on its own,
/// running while anything runs, then whatever else kept a build from passing
/// (blocked, skipped on a cycle, ...), and passed when everything passed.
fn root_outcome(root: &RootView) -> StateKind {
    let counts = root.counts();
    let present = |test: fn(StateKind) -> bool| counts.keys().copied().find(|k| test(*k));
    present(StateKind::is_own_failure)
        .map(|_| StateKind::Failed)
        .or_else(|| present(|k| !k.is_final()).map(|_| StateKind::Running))
        .or_else(|| present(StateKind::is_failure))
        .unwrap_or(StateKind::Passed)
}

fn clip(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn draw_tree(frame: &mut Frame, area: Rect, app: &App) {
    let Some(root) = app.root() else {
        let block = pane(" tree ", app.focus == Focus::Tree);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        frame.render_widget(
            Paragraph::new("Select a root event to see its cascade.").fg(Color::DarkGray),
            inner,
        );
        return;
    };
    let rows = app.rows();
    let title = format!(" {} · {} builds ", root_title(root), root.size());
    let block = pane(title, app.focus == Focus::Tree);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let height = inner.height as usize;
    let selected = app
        .selected
        .and_then(|key| rows.iter().position(|r| r.key == key));
    let offset = scroll(
        app.tree_offset.get(),
        selected.unwrap_or(0),
        height,
        rows.len(),
    );
    app.tree_offset.set(offset);
    // Which ancestors are the last of their siblings decides the guides; walk the
    // rows above the window once to know them.
    let mut last_at_depth: Vec<bool> = Vec::new();
    let mut lines = Vec::with_capacity(height);
    for (i, row) in rows.iter().enumerate().take(offset + height) {
        let depth = row.line.depth;
        last_at_depth.truncate(depth);
        if i >= offset {
            let focused = app.focus == Focus::Tree;
            lines.push(tree_row(
                app,
                root,
                row,
                &last_at_depth,
                selected == Some(i),
                focused,
            ));
        }
        last_at_depth.push(row.last);
    }
    if rows.is_empty() {
        let text = match root.held() {
            Held::Loading => format!("Reading its {} builds from the daemon…", root.size()),
            Held::Summary if app.unreadable == Some(root.id()) => {
                "Its builds could not be read; select it again to retry.".to_owned()
            }
            Held::Summary => "Its builds are not loaded yet.".to_owned(),
            Held::Nodes if root.nodes.is_empty() => {
                "Waiting for the cascade to be planned…".to_owned()
            }
            Held::Nodes => "No build matches the filter.".to_owned(),
        };
        lines.push(Line::styled(text, Style::new().fg(Color::DarkGray)));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn tree_row<'a>(
    app: &App,
    root: &'a RootView,
    row: &Row,
    ancestors_last: &[bool],
    selected: bool,
    focused: bool,
) -> Line<'a> {
    let node = &root.nodes[row.line.node];
    let mut guides = String::new();
    for &last in ancestors_last.iter().skip(1) {
        guides.push_str(if last { "   " } else { "│  " });
    }
    if row.line.depth > 0 {
        guides.push_str(if row.last { "└─ " } else { "├─ " });
    }
    let mut spans = vec![
        Span::styled(guides, Style::new().fg(Color::DarkGray)),
        state_span(node.state.kind()),
        Span::raw(" "),
        Span::styled(node.project.as_str(), Style::new().bold()),
    ];
    // The root's version is the event's, when its build did not report one.
    let version = node.version.as_ref().or_else(|| {
        node.is_root()
            .then_some(root.summary.version.as_ref())
            .flatten()
    });
    if let Some(v) = version {
        spans.push(Span::styled(format!(" {v}"), Style::new().fg(Color::Gray)));
    }
    if let Some(d) = duration(node, app.now) {
        spans.push(Span::styled(
            format!("  {}", short_duration(d)),
            Style::new().fg(Color::DarkGray),
        ));
    }
    if node.attempt > 1 {
        let rerun = if node.rerun.is_some() { " rerun" } else { "" };
        spans.push(Span::styled(
            format!("  #{}{rerun}", node.attempt),
            Style::new().fg(Color::Yellow),
        ));
    }
    if let Some(v) = node.verdict.filter(|v| notable(*v)) {
        spans.push(Span::styled(
            format!("  {}", v.words()),
            Style::new().fg(verdict_colour(v)).bold(),
        ));
    }
    if row.line.shared {
        let text = if row.line.elsewhere {
            "  ⑂ shared, shown above"
        } else {
            "  ⑂ shared"
        };
        spans.push(Span::styled(text, Style::new().fg(Color::Magenta)));
    }
    if row.collapsed {
        spans.push(Span::styled("  ▸ collapsed", Style::new().fg(Color::Cyan)));
    }
    let line = Line::from(spans);
    if selected {
        let style = if focused {
            Style::new().bg(Color::DarkGray)
        } else {
            Style::new().add_modifier(Modifier::UNDERLINED)
        };
        line.patch_style(style)
    } else {
        line
    }
}

fn label(text: &'static str) -> Span<'static> {
    Span::styled(format!("{text:<9}"), Style::new().fg(Color::DarkGray))
}

fn state_words(node: &Node) -> Line<'static> {
    let kind = node.state.kind();
    let (_, colour) = glyph(kind);
    let mut spans = vec![
        label("state"),
        state_span(kind),
        Span::styled(format!(" {kind}"), Style::new().fg(colour).bold()),
    ];
    spans.push(Span::raw(format!("  attempt {}", node.attempt)));
    if let Some(n) = node.rerun {
        spans.push(Span::styled(
            format!(" · rerun {n} to confirm a failure"),
            Style::new().fg(Color::Yellow),
        ));
    }
    Line::from(spans)
}

/// The colour a verdict is shown in.
pub fn verdict_colour(verdict: Verdict) -> Color {
    match verdict {
        Verdict::Broke => Color::Red,
        Verdict::Fixed => Color::Green,
        Verdict::StillFailing => Color::Yellow,
        Verdict::Flaky => Color::Magenta,
        Verdict::Infra => Color::Blue,
        Verdict::New => Color::Cyan,
        Verdict::Same => Color::Gray,
    }
}

/// The verdicts worth a glance in a list: everything but `same` and `new`.
fn notable(verdict: Verdict) -> bool {
    !matches!(verdict, Verdict::Same | Verdict::New)
}

/// "verdict  broke: it passed with acme/lib 1.0.0 and fails now".
fn verdict_line(root: &RootView, node: &Node) -> Option<Line<'static>> {
    let verdict = node.verdict?;
    let text = explain(verdict, node.baseline.as_ref(), &root.summary.project);
    let style = Style::new().fg(verdict_colour(verdict));
    Some(Line::from(vec![
        label("verdict"),
        Span::styled(
            text,
            if verdict == Verdict::Broke {
                style.bold()
            } else {
                style
            },
        ),
    ]))
}

fn contact_lines(app: &App, heading: String, project: &ProjectId) -> Vec<Line<'static>> {
    let mut lines = vec![Line::styled(heading, Style::new().fg(Color::Cyan))];
    let contacts: &[Contact] = app
        .model
        .projects
        .get(project)
        .map(|p| p.contacts.as_slice())
        .unwrap_or_default();
    if contacts.is_empty() {
        lines.push(Line::styled(
            "  nobody listed",
            Style::new().fg(Color::DarkGray),
        ));
    }
    for c in contacts {
        let mut spans = vec![
            Span::raw("  "),
            Span::styled(c.name.clone(), Style::new().bold()),
        ];
        if let Some(role) = &c.role {
            spans.push(Span::styled(
                format!(" ({role})"),
                Style::new().fg(Color::Gray),
            ));
        }
        if let Some(email) = &c.email {
            spans.push(Span::raw(format!("  {email}")));
        }
        if let Some(chat) = &c.chat {
            spans.push(Span::styled(
                format!("  {chat}"),
                Style::new().fg(Color::Cyan),
            ));
        }
        lines.push(Line::from(spans));
    }
    lines
}

/// The projects whose builds triggered `node` in this event.
fn upstreams<'a>(root: &'a RootView, node: &Node) -> Vec<&'a ProjectId> {
    node.parents
        .iter()
        .filter_map(|p| root.node(*p))
        .map(|n| &n.project)
        .collect()
}

fn timing(node: &Node, now: Timestamp) -> Line<'static> {
    let mut parts = vec![format!("created {} ago", age(now, node.created_at))];
    if let Some(t) = node.triggered_at {
        parts.push(format!("triggered {} ago", age(now, t)));
    }
    if let Some(d) = duration(node, now) {
        let verb = if node.finished_at.is_some() {
            "took"
        } else {
            "running"
        };
        parts.push(format!("{verb} {}", short_duration(d)));
    }
    Line::from(vec![label("timing"), Span::raw(parts.join(" · "))])
}

fn cause_line(root: &RootView, node: &Node) -> Line<'static> {
    let chain: Vec<String> = root
        .causes(node.id)
        .iter()
        .map(|n| match &n.version {
            Some(v) if n.is_root() => format!("{}@{v}", n.project),
            _ => n.project.to_string(),
        })
        .collect();
    Line::from(vec![label("cause"), Span::raw(chain.join(" → "))])
}

/// State and attempt, timings, CI link and the chain of causes of `node`.
fn facts(app: &App, root: &RootView, node: &Node) -> Vec<Line<'static>> {
    let mut lines = vec![state_words(node)];
    lines.extend(verdict_line(root, node));
    lines.push(timing(node, app.now));
    if let Some(run) = &node.run {
        let mut text = run.describe();
        if let Some(learnt) = &run.learnt {
            text.push_str(&format!(" ({learnt})"));
        }
        lines.push(Line::from(vec![label("run"), Span::raw(text)]));
    }
    if let Some(v) = &node.target_version {
        let to = root
            .summary
            .environment
            .as_deref()
            .map(|e| format!(" to {e}"))
            .unwrap_or_default();
        lines.push(Line::from(vec![
            label("pinned"),
            Span::raw(format!(
                "{v}: its version on the release line, promoted{to}"
            )),
        ]));
    }
    if let Some(url) = &node.url {
        lines.push(Line::from(vec![
            label("ci"),
            Span::styled(url.clone(), Style::new().underlined()),
        ]));
    }
    lines.push(cause_line(root, node));
    lines.extend(node.notices.iter().map(|n| told_line(app.now, n)));
    if let Some(changed) = app
        .model
        .projects
        .get(&node.project)
        .and_then(|p| p.changed.as_ref())
    {
        // Who set the project up as it is: whom to ask about its trigger and rules.
        lines.push(Line::from(vec![
            label("project"),
            Span::styled(
                format!(
                    "{} by {} {} ago",
                    changed.action.verb(),
                    changed.by,
                    age(app.now, changed.at)
                ),
                Style::new().fg(Color::DarkGray),
            ),
        ]));
    }
    if let Some(project) = app.model.projects.get(&node.project) {
        lines.extend(dependency_lines(app, project));
    }
    lines.extend(node.warnings.iter().map(|w| {
        Line::from(vec![
            label("warning"),
            Span::styled(w.clone(), Style::new().fg(Color::Yellow)),
        ])
    }));
    lines
}

/// Where a project's dependencies come from when its manifests say them ("from
/// package.json of build 01K…, 3m ago"; a declared project's are the projects
/// file's, which is said by nothing), and those on what no registered project is.
fn dependency_lines(app: &App, project: &Project) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    if project.dependencies == DependencyOrigin::FromManifest {
        let from = match &project.manifest {
            Some(m) => format!(
                "from {} of build {}, {} ago",
                m.files.join(" + "),
                m.build,
                age(app.now, m.at)
            ),
            None => project.dependencies_from(),
        };
        lines.push(Line::from(vec![
            label("deps"),
            Span::styled(from, Style::new().fg(Color::DarkGray)),
        ]));
    }
    let unregistered = project.unregistered(|id| app.model.projects.contains_key(id));
    if !unregistered.is_empty() {
        lines.push(Line::from(vec![
            label("unknown"),
            Span::styled(
                format!("not registered: {}", unregistered.join(", ")),
                Style::new().fg(Color::DarkGray),
            ),
        ]));
    }
    lines
}

/// "told    #design on Slack: broke, 2m ago", or why it was not.
fn told_line(now: Timestamp, n: &Notice) -> Line<'static> {
    let when = age(now, n.at);
    let (text, colour) = match n.state {
        NoticeState::Sent => (
            format!("{}: {}, {when} ago", n.channel, n.kind),
            Color::Green,
        ),
        NoticeState::Queued => (
            match &n.error {
                Some(e) => format!("{}: {} (try {} failed: {e})", n.channel, n.kind, n.tries),
                None => format!("{}: {} (sending)", n.channel, n.kind),
            },
            Color::Yellow,
        ),
        NoticeState::GaveUp => (
            format!(
                "not {}: {}, gave up {when} ago: {}",
                n.channel,
                n.kind,
                n.error.as_deref().unwrap_or("no reason given")
            ),
            Color::Red,
        ),
    };
    Line::from(vec![
        label("told"),
        Span::styled(text, Style::new().fg(colour)),
    ])
}

/// Who to contact about `node`: its project's people and those of the upstreams
/// that triggered it.
fn contacts(app: &App, root: &RootView, node: &Node) -> Vec<Line<'static>> {
    let mut lines = contact_lines(app, format!("Contacts of {}", node.project), &node.project);
    for up in upstreams(root, node) {
        lines.extend(contact_lines(app, format!("Upstream {up}"), up));
    }
    lines
}

fn draw_details(frame: &mut Frame, area: Rect, app: &App) {
    let (Some(root), Some(node)) = (app.root(), app.selected_node()) else {
        let block = pane(" details ", app.focus == Focus::Details);
        frame.render_widget(block, area);
        return;
    };
    let block = pane(format!(" {} ", node.project), app.focus == Focus::Details);
    let mut lines = facts(app, root, node);
    // The reason in one line; the drill-down has the whole story.
    if let Some(reason) = node.state.reason() {
        lines.insert(1, Line::from(vec![label("why"), Span::raw(reason)]));
    }
    if node.state.kind().is_failure() {
        let hint = match (
            may_rebuild(node.state.kind()),
            app.rebuild_refusal(&node.project),
        ) {
            (Ok(()), None) => "Enter: drill down · r: rebuild".to_owned(),
            // The pane's title names the project; `r` says the whole sentence.
            (Ok(()), Some(_)) => "Enter: drill down · rebuilding needs a maintainer".to_owned(),
            (Err(_), _) => "Enter: drill down".to_owned(),
        };
        lines.push(Line::styled(hint, Style::new().fg(Color::DarkGray)));
    }
    if node.is_root() {
        lines.extend(event_notes(root));
    }
    lines.extend(contacts(app, root, node));
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false })
            .scroll((app.details_scroll, 0)),
        area,
    );
}

/// What the planner noted about a root event, and whom a promotion left where they
/// were.
fn event_notes(root: &RootView) -> Vec<Line<'static>> {
    let s = &root.summary;
    let mut lines: Vec<Line<'static>> = s
        .reported_by
        .iter()
        .map(|by| {
            Line::from(vec![
                label("reported"),
                Span::styled(format!("by {by}"), Style::new().fg(Color::DarkGray)),
            ])
        })
        .collect();
    lines.extend(
        s.notes
            .iter()
            .map(|n| Line::from(vec![label("note"), Span::raw(n.clone())])),
    );
    if !s.not_promoted.is_empty() {
        lines.push(Line::styled(
            format!("Not promoted ({})", s.not_promoted.len()),
            Style::new().fg(Color::Cyan),
        ));
    }
    for n in &s.not_promoted {
        lines.push(Line::from(vec![
            Span::raw(format!("  {} ", n.project)),
            Span::styled(n.why.clone(), Style::new().fg(Color::DarkGray)),
        ]));
    }
    lines
}

pub(crate) fn heading(text: String) -> Line<'static> {
    Line::styled(text, Style::new().fg(Color::Cyan).bold())
}

fn draw_drill(frame: &mut Frame, area: Rect, app: &App, root_id: BuildId, node_id: BuildId) {
    let Some((root, node)) = app
        .model
        .root(root_id)
        .and_then(|r| Some((r, r.node(node_id)?)))
    else {
        frame.render_widget(
            Paragraph::new("This build is no longer in view. Esc goes back.")
                .block(pane(" drill-down ", true)),
            area,
        );
        return;
    };
    let title = format!(" {} in {} · Esc back ", node.project, root_title(root));
    let mut lines = facts(app, root, node);
    lines.push(Line::raw(""));

    lines.push(heading("Why".into()));
    lines.extend(
        why(root, node)
            .into_iter()
            .map(|l| Line::raw(format!("  {l}"))),
    );
    if let Some(summary) = &node.summary {
        lines.push(Line::raw(""));
        lines.push(heading("Report summary".into()));
        for l in summary.lines() {
            lines.push(Line::styled(format!("  {l}"), Style::new().fg(Color::Gray)));
        }
    }

    lines.push(Line::raw(""));
    lines.push(heading(format!("Earlier {} events", root.summary.project)));
    let history = app.model.history(root.id(), &node.project);
    if history.is_empty() {
        lines.push(Line::styled(
            format!(
                "  {} has no earlier result from {}",
                node.project, root.summary.project
            ),
            Style::new().fg(Color::DarkGray),
        ));
    }
    for past in history.iter().take(5) {
        let version = past.root.version.as_deref().unwrap_or("-");
        lines.push(Line::from(vec![
            Span::raw("  "),
            state_span(past.node.state.kind()),
            Span::raw(format!(
                " {:<10} {}@{version}  {} ago",
                past.node.state.kind().as_str(),
                past.root.project,
                age(app.now, past.root.created_at)
            )),
        ]));
    }

    let held: Vec<&Node> = root.descendants(node.id);
    lines.push(Line::raw(""));
    lines.push(heading(format!(
        "Holds back {} build{}",
        held.len(),
        if held.len() == 1 { "" } else { "s" }
    )));
    for d in &held {
        lines.push(Line::from(vec![
            Span::raw("  "),
            state_span(d.state.kind()),
            Span::raw(format!(" {}  {}", d.project, d.state.kind())),
        ]));
    }
    lines.push(Line::raw(""));
    lines.extend(contacts(app, root, node));
    frame.render_widget(
        Paragraph::new(Text::from(lines))
            .block(pane(title, true))
            .wrap(Wrap { trim: false })
            .scroll((app.drill_scroll, 0)),
        area,
    );
}

/// Sentences saying why `node` is where it is.
fn why(root: &RootView, node: &Node) -> Vec<String> {
    match &node.state {
        NodeState::Blocked { blocked_by } => {
            let mut out = vec![format!(
                "Not triggered: its upstream {} {} in this event.",
                blocked_by.project, blocked_by.state
            )];
            let chain = root.causes(node.id);
            if let Some(first) = chain
                .iter()
                .find(|n| n.state.kind().is_failure() && n.id != node.id)
            {
                if first.id != blocked_by.build {
                    out.push(format!(
                        "The first failure on its path is {} ({}).",
                        first.project,
                        first.state.kind()
                    ));
                }
            }
            out
        }
        NodeState::Skipped { cycle } => vec![
            "Skipped: its project is on a dependency cycle, so no order can build it:".into(),
            cycle
                .iter()
                .map(ProjectId::as_str)
                .collect::<Vec<_>>()
                .join(" → "),
        ],
        NodeState::TriggerFailed { reason } => vec![
            "Not triggered: its CI did not take the trigger. The CI answered:".into(),
            reason.clone(),
        ],
        NodeState::NeedsBump {
            bump:
                conjunction_protocol::Bump {
                    upstream,
                    range,
                    version,
                },
        } => vec![
            format!("Needs a bump: it declares {range} on {upstream}, and {version} is above it."),
            "Not built and not a failure: bump the range to adopt the release, then rebuild."
                .into(),
        ],
        NodeState::Failed => vec!["Its CI reported the build failed.".into()],
        NodeState::Errored => {
            vec!["Its CI's infrastructure failed; the build itself may be fine.".into()]
        }
        NodeState::Cancelled => vec!["The build was cancelled.".into()],
        NodeState::Passed => vec!["It passed.".into()],
        other => vec![format!("It is {} and has no result yet.", other.kind())],
    }
}

/// A rectangle of `width` x `height` in the middle of `area`.
fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

fn draw_confirm(frame: &mut Frame, area: Rect, question: &str) {
    let width = 64.min(area.width.saturating_sub(4));
    let text_rows = (question.chars().count() as u16).div_ceil(width.saturating_sub(4).max(1));
    let box_area = centered(area, width, text_rows + 4);
    frame.render_widget(Clear, box_area);
    let lines = vec![
        Line::raw(question.to_owned()),
        Line::raw(""),
        Line::from(vec![
            Span::styled("y", Style::new().fg(Color::Green).bold()),
            Span::raw(" rebuild   "),
            Span::styled("n", Style::new().fg(Color::Red).bold()),
            Span::raw(" cancel"),
        ]),
    ];
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(pane(" rebuild? ", true).border_style(Style::new().fg(Color::Yellow))),
        box_area,
    );
}

fn draw_help(frame: &mut Frame, area: Rect) {
    let width = 70.min(area.width);
    let box_area = centered(area, width, HELP.len() as u16 + 4);
    frame.render_widget(Clear, box_area);
    let mut lines: Vec<Line> = HELP
        .iter()
        .map(|(keys, what)| {
            Line::from(vec![
                Span::styled(format!(" {keys:<16}"), Style::new().fg(Color::Cyan).bold()),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::styled(
        " ✓ passed ✗ failed ⊘ blocked ↻ cycle ⚠ not triggered ◑ running",
        Style::new().fg(Color::DarkGray),
    ));
    frame.render_widget(
        Paragraph::new(lines).block(pane(" keys · ? or Esc closes ", true)),
        box_area,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use conjunction_sim::sample::{build, node, root_event};

    fn outcome(states: Vec<NodeState>) -> StateKind {
        let root = build(60, 1);
        let mut nodes = vec![node(root, "acme/lib", root, &[], NodeState::Passed, 60, 1)];
        for (i, state) in states.into_iter().enumerate() {
            let id = build(60, i as u128 + 2);
            nodes.push(node(id, &format!("acme/p{i}"), root, &[root], state, 50, 1));
        }
        let event = root_event(root, "acme/lib", "1.0.0", 60, nodes);
        root_outcome(&RootView::new(event.summary, event.nodes))
    }

    #[test]
    fn a_root_is_marked_failed_only_for_a_build_that_failed_on_its_own() {
        let cycle = || NodeState::Skipped { cycle: Vec::new() };
        assert_eq!(outcome(vec![NodeState::Passed]), StateKind::Passed);
        assert_eq!(outcome(vec![cycle()]), StateKind::Skipped);
        assert_eq!(
            outcome(vec![cycle(), NodeState::Running]),
            StateKind::Running
        );
        assert_eq!(
            outcome(vec![cycle(), NodeState::Running, NodeState::Failed]),
            StateKind::Failed
        );
    }

    #[test]
    fn durations_are_short_and_exact_enough() {
        assert_eq!(short_duration(Duration::from_secs(45)), "45s");
        assert_eq!(short_duration(Duration::from_secs(185)), "3m05s");
        assert_eq!(short_duration(Duration::from_secs(7_800)), "2h10m");
    }
}
