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

/// A committed event as subscribers get it: its JSON, and when the daemon hides email
/// addresses from viewers and the event holds one, its JSON without them. Each is
/// serialised once, whatever the number of subscribers.
#[derive(Debug, Clone)]
pub struct Broadcast {
    pub seq: u64,
    pub json: Arc<String>,
    pub hidden: Option<Arc<String>>,
}

impl Broadcast {
    /// The JSON a subscriber that sees addresses (or not) is sent.
    pub fn for_reader(&self, sees_addresses: bool) -> &Arc<String> {
        match &self.hidden {
            Some(hidden) if !sees_addresses => hidden,
            _ => &self.json,
        }
    }
}

#[derive(Clone)]
pub struct Hub {
    tx: broadcast::Sender<Broadcast>,
    /// Viewers are not shown email addresses.
    hide: bool,
    /// The newest sequence number published.
    newest: Arc<std::sync::atomic::AtomicU64>,
}

impl Hub {
    /// A hub that keeps at most `capacity` events for subscribers that are behind;
    /// with `hide`, it also makes each event's copy without email addresses.
    pub fn new(capacity: usize, hide: bool) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self {
            tx,
            hide,
            newest: Arc::default(),
        }
    }

    /// The newest sequence number this hub has published.
    pub fn newest(&self) -> u64 {
        self.newest.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn publish(&self, events: Vec<Published>) {
        for (seq, json) in events {
            self.newest
                .fetch_max(seq, std::sync::atomic::Ordering::SeqCst);
            let hidden = if self.hide {
                without_addresses(&json).map(Arc::new)
            } else {
                None
            };
            // An error only means nobody is listening right now.
            let _ = self.tx.send(Broadcast { seq, json, hidden });
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Broadcast> {
        self.tx.subscribe()
    }
}

/// `json` (a server message) as a reader is sent it: whole for one who sees email
/// addresses, without them for one who does not.
pub fn for_reader(json: String, sees_addresses: bool) -> String {
    if sees_addresses {
        return json;
    }
    without_addresses(&json).unwrap_or(json)
}

/// `json` (a server message) without email addresses, or `None` when it holds none.
pub fn without_addresses(json: &str) -> Option<String> {
    // Most events hold no '@' at all: no need to read them.
    if !json.contains('@') {
        return None;
    }
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(mut value) => {
            conjunction_protocol::access::hide_addresses_in(&mut value).then(|| value.to_string())
        }
        // Never the case for what the writer serialised; if it were, the addresses
        // still go, replaced in the text.
        Err(_) => conjunction_protocol::access::hide_addresses(json),
    }
}
