//! Frame benchmark (a bench binary; run with `cargo bench -p conjunction-tui`).
//!
//! Draws whole frames of the terminal UI on ratatui's `TestBackend` with one root
//! event of 5,000 nodes selected, the selection in the middle of the tree, at
//! 80x24 and 160x48. Beside it, for scale, the same frame for the 10-node sample
//! cascade: drawing only the visible rows should make the two cost about the same.
//! A frame here is everything the UI does per redraw: laying out the visible rows
//! (collapse and filter), the header counts, and rendering every pane.

use std::time::{Duration, Instant};

use conjunction_protocol::ws::ServerMessage;
use conjunction_sim::sample::{self, NOW};
use conjunction_tui::app::{App, FeedEvent, Msg};
use conjunction_tui::keys::Action;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

const NODES: usize = 5_000;
const FRAMES: usize = 300;
const BUDGET: Duration = Duration::from_millis(5);

fn main() {
    // `cargo test --benches` runs bench binaries with no arguments; `cargo bench`
    // passes `--bench`. Only the latter measures.
    if !std::env::args().any(|a| a == "--bench") {
        println!("frame: run with `cargo bench -p conjunction-tui` to measure");
        return;
    }
    println!(
        "machine: {} cores; {FRAMES} frames per case after 20 warm-up frames",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let event = sample::large_event(NODES);
    let large = app(ServerMessage::Snapshot {
        seq: 1,
        projects: Vec::new(),
        roots: vec![event.summary.clone()],
        events: vec![event],
    });
    let small = app(sample::snapshot());
    let mut worst = Duration::ZERO;
    for size in [(80, 24), (160, 48)] {
        let big = measure(&large, size);
        let little = measure(&small, size);
        println!(
            "{}x{}: {NODES}-node tree median {:?} p95 {:?} | 10-node tree median {:?} | ratio {:.2}",
            size.0,
            size.1,
            big.median,
            big.p95,
            little.median,
            big.median.as_secs_f64() / little.median.as_secs_f64()
        );
        worst = worst.max(big.median);
    }
    let verdict = if worst < BUDGET { "within" } else { "OVER" };
    println!("slowest median {worst:?}: {verdict} the {BUDGET:?} budget");
}

fn app(snapshot: ServerMessage) -> App {
    let mut app = App::new("http://127.0.0.1:7431", NOW);
    app.update(Msg::Feed(FeedEvent::Connected));
    app.update(Msg::Feed(FeedEvent::Message(snapshot)));
    // Move the selection to the middle of the tree, so the rows above the window
    // are walked too.
    let half = app.rows().len() / 2;
    for _ in 0..half {
        app.update(Msg::Action(Action::Down));
    }
    app
}

struct Timing {
    median: Duration,
    p95: Duration,
}

fn measure(app: &App, (width, height): (u16, u16)) -> Timing {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("a test terminal");
    let mut times = Vec::with_capacity(FRAMES);
    for i in 0..FRAMES + 20 {
        // A fresh buffer each time, so every frame is drawn in full rather than
        // diffed against an identical previous one.
        terminal.clear().expect("clearing a test terminal");
        let start = Instant::now();
        terminal
            .draw(|f| conjunction_tui::ui::draw(f, app))
            .expect("drawing succeeds");
        if i >= 20 {
            times.push(start.elapsed());
        }
    }
    times.sort();
    Timing {
        median: times[times.len() / 2],
        p95: times[times.len() * 95 / 100],
    }
}
