//! The terminal UI's loop: one channel of messages (key presses, feed events, fetched
//! pages, clock ticks) into [`App::update_all`], a frame drawn after each burst of
//! messages (at most one per [`FRAME`] for the daemon's updates, at once for a key),
//! and the terminal restored however the loop ends, a panic included.

use std::time::{Duration, Instant, SystemTime};

use conjunction_protocol::{BuildId, Timestamp};
use crossterm::event::{Event, EventStream};
use futures_util::{Stream, StreamExt};
use ratatui::backend::Backend;
use ratatui::Terminal;
use tokio::sync::mpsc;

use crate::app::{App, Effect, Fetched, Loaded, Msg};
use crate::client::Client;
use crate::connection::{self, Backoff};
use crate::keys;

/// How often the clock ticks: ages, durations and the reconnect countdown.
const TICK: Duration = Duration::from_millis(250);
/// The shortest time between two frames drawn for the daemon's updates.
const FRAME: Duration = Duration::from_millis(33);
/// Nodes asked for in one page when fetching a root event.
const FETCH_PAGE: usize = 5_000;

fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

/// Runs the terminal UI against the daemon `client` points at until the user quits.
pub async fn run(client: Client) -> std::io::Result<()> {
    // `try_init` installs a panic hook that restores the terminal before the panic
    // message is printed.
    let mut terminal = ratatui::try_init()?;
    let result = event_loop(&mut terminal, client, EventStream::new(), |_, _| true).await;
    ratatui::restore();
    result
}

/// The loop itself, on any terminal backend and stream of terminal events, so it can
/// run without a terminal too. `after_frame` sees the app and how long the frame took
/// to draw after every frame; the loop ends when it answers `false`, or on quit.
pub async fn event_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    client: Client,
    mut keys_in: impl Stream<Item = std::io::Result<Event>> + Unpin,
    mut after_frame: impl FnMut(&App, Duration) -> bool,
) -> std::io::Result<()> {
    let mut app = App::new(client.base(), now());
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let outgoing = connection::spawn(client.clone(), Backoff::default(), tx.clone(), Msg::Feed);
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // What the daemon sends is drawn at most once a frame; a key is drawn at once.
    let mut drawn_at = Instant::now() - FRAME;
    let mut dirty = true;
    loop {
        if dirty && drawn_at.elapsed() >= FRAME {
            let started = Instant::now();
            terminal
                .draw(|frame| crate::ui::draw(frame, &app))
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            drawn_at = Instant::now();
            dirty = false;
            if !after_frame(&app, drawn_at - started) {
                return Ok(());
            }
        }
        let next_frame = drawn_at + FRAME;
        let first = tokio::select! {
            msg = rx.recv() => msg,
            key = keys_in.next() => match key {
                Some(Ok(Event::Key(key))) => {
                    drawn_at = Instant::now() - FRAME;
                    keys::action(app.key_mode(), key).map(Msg::Action)
                }
                // Redraw at once at the new size.
                Some(Ok(Event::Resize(..))) => {
                    drawn_at = Instant::now() - FRAME;
                    Some(Msg::Tick(now()))
                }
                Some(Ok(_)) => None,
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
            _ = ticks.tick() => Some(Msg::Tick(now())),
            () = tokio::time::sleep_until(next_frame.into()), if dirty => None,
        };
        let mut batch: Vec<Msg> = first.into_iter().collect();
        // Apply everything already waiting before drawing again, so a burst of
        // events costs one frame.
        while let Ok(msg) = rx.try_recv() {
            batch.push(msg);
        }
        if batch.is_empty() {
            continue;
        }
        for effect in app.update_all(batch) {
            match effect {
                Effect::Send(message) => {
                    // The connection task is gone only when the loop is ending.
                    let _ = outgoing.send(message);
                }
                Effect::Fetch(root) => fetch(client.clone(), root, tx.clone()),
                Effect::LoadReleases(project) => {
                    let (client, tx) = (client.clone(), tx.clone());
                    tokio::spawn(async move {
                        let answer = client.releases(&project).await;
                        let answer = answer.map(Box::new).map_err(|e| e.to_string());
                        let _ = tx.send(Msg::Loaded(Loaded::Releases(project, answer)));
                    });
                }
                Effect::LoadImpact {
                    asked,
                    project,
                    version,
                    environment,
                } => {
                    let (client, tx) = (client.clone(), tx.clone());
                    tokio::spawn(async move {
                        let answer = client
                            .impact(&project, &version, environment.as_deref())
                            .await;
                        let answer = answer.map(Box::new).map_err(|e| e.to_string());
                        let _ = tx.send(Msg::Loaded(Loaded::Impact(asked, answer)));
                    });
                }
            }
        }
        dirty = true;
        if app.quit {
            return Ok(());
        }
    }
}

/// Reads every node of a root event, a page at a time, and hands each page to the app.
pub fn fetch(client: Client, root: BuildId, tx: mpsc::UnboundedSender<Msg>) {
    tokio::spawn(async move {
        let mut after = None;
        loop {
            let msg = match client.root_page(root, after, FETCH_PAGE).await {
                Ok(page) => {
                    after = page.next_after;
                    Msg::Fetched(Fetched::Page(Box::new(page)))
                }
                Err(e) => Msg::Fetched(Fetched::Failed {
                    root,
                    reason: e.to_string(),
                }),
            };
            let failed = matches!(msg, Msg::Fetched(Fetched::Failed { .. }));
            if tx.send(msg).is_err() || failed || after.is_none() {
                return;
            }
        }
    });
}
