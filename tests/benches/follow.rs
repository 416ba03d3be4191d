//! The terminal UI following a 10,000-node cascade live (a bench binary; run with
//! `cargo bench -p conjunction-tests --bench follow`).
//!
//! The release `conjunctiond` runs in its own process with 10,000 projects that
//! depend on one root, built by the loopback CI (it reports `passed` 1 ms after each
//! trigger). The terminal UI's own loop (`conjunction_tui::terminal::event_loop`: the
//! websocket feed with resume, batching, frame pacing, fetching pages, drawing) runs
//! on a thread of its own with a single-threaded runtime, drawing on ratatui's
//! `TestBackend` at 160x48, following the newest root event as it does at start.
//! The root is reported once the UI is live; the run ends when the UI shows all
//! 10,001 builds passed. The thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`) is
//! everything the UI spent: reading and parsing the feed, applying it, laying out and
//! drawing frames.

use std::cell::{Cell as StdCell, RefCell};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use conjunction_protocol::{ProjectEntry, ProjectId, ProjectSpec, Report, ReportState, StateKind};
use conjunction_sim::webhook::WebhookCi;
use conjunction_tests::daemon::{DaemonProcess, OPERATOR_TOKEN};
use conjunction_tui::client::Client;
use conjunction_tui::model::Held;
use ratatui::backend::{Backend, ClearType, TestBackend, WindowSize};
use ratatui::buffer::Cell;
use ratatui::layout::{Position, Size};
use ratatui::Terminal;

const NODES: usize = 10_000;
const ROOT_TOKEN: &str = "follow-root-report-token";

fn main() {
    conjunction_tests::bench::main("follow", |_| run());
}

/// CPU time this thread has run, to the nanosecond (`CLOCK_THREAD_CPUTIME_ID`; the
/// scheduler statistics in /proc advance only at a scheduler tick).
fn thread_cpu() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the call to fill in.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "the thread's CPU clock is readable");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

fn entry(id: &str, deps: &[&str], hook: Option<&str>, token: Option<&str>) -> ProjectEntry {
    let spec: ProjectSpec = serde_json::from_value(serde_json::json!({
        "name": id,
        "depends_on": deps.iter().map(|d| serde_json::json!({"project": d})).collect::<Vec<_>>(),
    }))
    .expect("a valid spec");
    let mut spec = spec;
    spec.trigger = hook.map(|url| conjunction_protocol::TriggerSpec::Webhook {
        url: url.into(),
        token: None,
        secret: None,
    });
    spec.report_token = token.map(str::to_owned);
    ProjectEntry {
        id: ProjectId::parse(id).expect("a valid id"),
        spec,
    }
}

/// A test backend that clocks the CPU time of each frame: ratatui asks the backend
/// for its size as a draw begins and flushes it as the draw ends. Unlike wall time,
/// it leaves out the time the thread waited for a core, which on two cores shared
/// with the daemon and the CI is most of a slow frame's.
struct CpuClocked {
    inner: TestBackend,
    began: StdCell<Duration>,
    frames: Rc<RefCell<Vec<Duration>>>,
}

impl Backend for CpuClocked {
    type Error = <TestBackend as Backend>::Error;

    fn draw<'a, I>(&mut self, content: I) -> Result<(), Self::Error>
    where
        I: Iterator<Item = (u16, u16, &'a Cell)>,
    {
        self.inner.draw(content)
    }
    fn hide_cursor(&mut self) -> Result<(), Self::Error> {
        self.inner.hide_cursor()
    }
    fn show_cursor(&mut self) -> Result<(), Self::Error> {
        self.inner.show_cursor()
    }
    fn get_cursor_position(&mut self) -> Result<Position, Self::Error> {
        self.inner.get_cursor_position()
    }
    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> Result<(), Self::Error> {
        self.inner.set_cursor_position(position)
    }
    fn clear(&mut self) -> Result<(), Self::Error> {
        self.inner.clear()
    }
    fn clear_region(&mut self, clear_type: ClearType) -> Result<(), Self::Error> {
        self.inner.clear_region(clear_type)
    }
    fn size(&self) -> Result<Size, Self::Error> {
        self.began.set(thread_cpu());
        self.inner.size()
    }
    fn window_size(&mut self) -> Result<WindowSize, Self::Error> {
        self.inner.window_size()
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        self.frames
            .borrow_mut()
            .push(thread_cpu() - self.began.get());
        self.inner.flush()
    }
}

/// What the UI thread measured.
struct Followed {
    cpu: Duration,
    /// Each frame's wall time and CPU time, from the root report on.
    frames: Vec<Duration>,
    frames_cpu: Vec<Duration>,
    /// From the root report to the frame that first showed every build passed.
    wall: Duration,
}

async fn run() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a data directory");
    let ci = WebhookCi::bare().await.expect("start the webhook CI");
    let daemon = DaemonProcess::start(dir.path(), "").await;
    let hook = ci.url();
    let mut list = vec![entry("follow/root", &[], None, Some(ROOT_TOKEN))];
    list.extend((1..=NODES).map(|i| {
        entry(
            &format!("follow/p{i:05}"),
            &["follow/root"],
            Some(&hook),
            None,
        )
    }));
    daemon.api.apply_projects(&list).await.expect("registered");

    let url = format!("http://{}", daemon.addr);
    let (live_tx, live_rx) = mpsc::channel::<()>();
    let (start_tx, start_rx) = mpsc::channel::<Instant>();
    let ui = std::thread::Builder::new()
        .name("ui".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the UI's runtime");
            runtime.block_on(async move {
                let client = Client::new(&url, Some(OPERATOR_TOKEN.into()));
                let clocked = Rc::new(RefCell::new(Vec::new()));
                let backend = CpuClocked {
                    inner: TestBackend::new(160, 48),
                    began: StdCell::new(Duration::ZERO),
                    frames: clocked.clone(),
                };
                let mut terminal = Terminal::new(backend).expect("a test terminal");
                let cpu_at_start = thread_cpu();
                let mut frames = Vec::new();
                let mut frames_cpu = Vec::new();
                let mut reported_at: Option<Instant> = None;
                let mut live = Some(live_tx);
                let mut wall = Duration::ZERO;
                conjunction_tui::terminal::event_loop(
                    &mut terminal,
                    client,
                    futures_util::stream::pending(),
                    |app, took| {
                        if app.link == conjunction_tui::app::Link::Live {
                            if let Some(tx) = live.take() {
                                let _ = tx.send(());
                            }
                        }
                        if let Ok(at) = start_rx.try_recv() {
                            reported_at = Some(at);
                        }
                        if reported_at.is_some() {
                            frames.push(took);
                            frames_cpu.extend(clocked.borrow().last().copied());
                        }
                        let done = app.model.roots.first().is_some_and(|r| {
                            r.held() == Held::Nodes
                                && r.nodes.len() == NODES + 1
                                && r.counts().get(&StateKind::Passed) == Some(&(NODES as u32 + 1))
                        });
                        if done {
                            wall = reported_at.map(|t| t.elapsed()).unwrap_or_default();
                        }
                        !done
                    },
                )
                .await
                .expect("the UI loop runs");
                Followed {
                    cpu: thread_cpu() - cpu_at_start,
                    frames,
                    frames_cpu,
                    wall,
                }
            })
        })
        .expect("the UI thread starts");

    live_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the UI connects");
    let report = Report {
        version: Some("1.0.0".into()),
        ..Report::new(
            ProjectId::parse("follow/root").expect("valid"),
            ReportState::Passed,
        )
    };
    let _ = start_tx.send(Instant::now());
    daemon
        .api
        .report(ROOT_TOKEN, &report)
        .await
        .expect("the root report is taken");
    let followed = tokio::task::spawn_blocking(move || ui.join().expect("the UI thread ends"))
        .await
        .expect("joined");
    println!(
        "machine: {} cores; the UI followed a {NODES}-node cascade (plus its root) drawn at 160x48",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "UI CPU time: {:.3} s over {:.2} s of cascade; {} frames drawn",
        followed.cpu.as_secs_f64(),
        followed.wall.as_secs_f64(),
        followed.frames.len(),
    );
    for (what, frames) in [("CPU", followed.frames_cpu), ("wall", followed.frames)] {
        let [median, p99, max] = conjunction_tests::bench::quantiles(frames, [0.5, 0.99, 1.0]);
        println!(
            "frame {what} time: median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            median.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3,
        );
    }
    daemon.kill().await;
}
