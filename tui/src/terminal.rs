//! The terminal UI's loop: one channel of messages (key presses, feed events, clock
//! ticks) into [`App::update`], a frame drawn after each burst of messages, and
//! the terminal restored however the loop ends, a panic included.

use std::time::{Duration, SystemTime};

use conjunction_protocol::Timestamp;
use crossterm::event::{Event, EventStream};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::app::{App, Effect, Msg};
use crate::client::Client;
use crate::connection::{self, Backoff};
use crate::keys;

/// How often the clock ticks: ages, durations and the reconnect countdown.
const TICK: Duration = Duration::from_millis(250);

fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

/// Runs the terminal UI against the daemon `client` points at until the user quits.
pub async fn run(client: Client) -> std::io::Result<()> {
    // `try_init` installs a panic hook that restores the terminal before the panic
    // message is printed.
    let mut terminal = ratatui::try_init()?;
    let result = event_loop(&mut terminal, client).await;
    ratatui::restore();
    result
}

async fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    client: Client,
) -> std::io::Result<()> {
    let mut app = App::new(client.base(), now());
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let outgoing = connection::spawn(client, Backoff::default(), tx, Msg::Feed);
    let mut keys_in = EventStream::new();
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        terminal.draw(|frame| crate::ui::draw(frame, &app))?;
        let first = tokio::select! {
            msg = rx.recv() => msg,
            key = keys_in.next() => match key {
                Some(Ok(Event::Key(key))) => keys::action(app.key_mode(), key).map(Msg::Action),
                // Redraw at once at the new size.
                Some(Ok(Event::Resize(..))) => Some(Msg::Tick(now())),
                Some(Ok(_)) => None,
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
            _ = ticks.tick() => Some(Msg::Tick(now())),
        };
        let mut batch: Vec<Msg> = first.into_iter().collect();
        // Apply everything already waiting before drawing again, so a burst of
        // events costs one frame.
        while let Ok(msg) = rx.try_recv() {
            batch.push(msg);
        }
        for msg in batch {
            for effect in app.update(msg) {
                match effect {
                    Effect::Send(message) => {
                        // The connection task is gone only when the loop is ending.
                        let _ = outgoing.send(message);
                    }
                }
            }
        }
        if app.quit {
            return Ok(());
        }
    }
}
