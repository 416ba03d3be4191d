//! The hub: fans committed events out to websocket subscribers.
//!
//! Each event is serialised once, by the writer, and shared by every subscriber. The
//! channel is bounded: a subscriber that falls too far behind is told it lagged and
//! drops its connection (the client resumes with `since`), so a slow client never
//! slows the writer down or makes the daemon hold unbounded memory.

use std::sync::Arc;

use tokio::sync::broadcast;

/// A committed event: its sequence number and its `ServerMessage` JSON.
pub type Published = (u64, Arc<String>);

#[derive(Clone)]
pub struct Hub {
    tx: broadcast::Sender<Published>,
}

impl Hub {
    /// A hub that keeps at most `capacity` events for subscribers that are behind.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self { tx }
    }

    pub fn publish(&self, events: Vec<Published>) {
        for e in events {
            // An error only means nobody is listening right now.
            let _ = self.tx.send(e);
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Published> {
        self.tx.subscribe()
    }
}
