//! The connection to the daemon's live feed: connects, forwards every message to
//! the app, sends rebuild requests, and when the connection is lost waits and
//! reconnects, resuming after the last sequence number it saw so nothing is missed.

use std::time::{Duration, SystemTime};

use conjunction_protocol::ws::{ClientMessage, ServerMessage};
use conjunction_protocol::Timestamp;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::app::FeedEvent;
use crate::client::Client;

/// How long to wait before reconnecting: doubles from `first` up to `most`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub most: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(1),
            most: Duration::from_secs(8),
        }
    }
}

impl Backoff {
    /// The wait after `failures` failed tries in a row (1 for the first).
    pub fn wait(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(16);
        self.first.saturating_mul(factor).min(self.most)
    }
}

/// Starts the connection task. Events go to `events`, mapped by `wrap`; rebuild
/// requests sent to the returned channel go to the daemon while connected.
pub fn spawn<M: Send + 'static>(
    client: Client,
    backoff: Backoff,
    events: mpsc::UnboundedSender<M>,
    wrap: fn(FeedEvent) -> M,
) -> mpsc::UnboundedSender<ClientMessage> {
    let (outgoing, requests) = mpsc::unbounded_channel();
    tokio::spawn(run(client, backoff, events, wrap, requests));
    outgoing
}

async fn run<M>(
    client: Client,
    backoff: Backoff,
    events: mpsc::UnboundedSender<M>,
    wrap: fn(FeedEvent) -> M,
    mut requests: mpsc::UnboundedReceiver<ClientMessage>,
) {
    let emit = |e: FeedEvent| events.send(wrap(e)).is_ok();
    let mut seq: Option<u64> = None;
    let mut failures = 0u32;
    loop {
        if !emit(FeedEvent::Connecting) {
            return;
        }
        let reason = match session(&client, &mut seq, &emit, &mut requests, &mut failures).await {
            Ok(()) => return,
            Err(reason) => reason,
        };
        failures += 1;
        let wait = backoff.wait(failures);
        let retry_at = Timestamp::from_system_time(SystemTime::now() + wait);
        if !emit(FeedEvent::Disconnected { reason, retry_at }) {
            return;
        }
        // Rebuild requests made while disconnected are refused by the app; drop any
        // that raced with the disconnect rather than send them late.
        tokio::time::sleep(wait).await;
        while requests.try_recv().is_ok() {}
    }
}

/// One connection, from handshake to loss. `Ok` means the app has gone away.
async fn session(
    client: &Client,
    seq: &mut Option<u64>,
    emit: &impl Fn(FeedEvent) -> bool,
    requests: &mut mpsc::UnboundedReceiver<ClientMessage>,
    failures: &mut u32,
) -> Result<(), String> {
    let mut request = client
        .feed_url(*seq)
        .into_client_request()
        .map_err(|e| format!("the daemon URL {} is not usable: {e}", client.base()))?;
    if let Some(token) = client.token() {
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| "the token contains characters a header cannot carry".to_owned())?;
        request.headers_mut().insert("authorization", value);
    }
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|e| describe(&e, client.base()))?;
    *failures = 0;
    if !emit(FeedEvent::Connected) {
        return Ok(());
    }
    let (mut sink, mut stream) = socket.split();
    loop {
        tokio::select! {
            incoming = stream.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(frame))) => {
                        return Err(match frame {
                            Some(f) if !f.reason.is_empty() => format!("the daemon closed the feed: {}", f.reason),
                            _ => "the daemon closed the feed".to_owned(),
                        });
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(describe(&e, client.base())),
                    None => return Err("the connection to the daemon was lost".to_owned()),
                };
                let event = match serde_json::from_str::<ServerMessage>(&text) {
                    Ok(message) => {
                        match &message {
                            ServerMessage::Snapshot { seq: s, .. } => *seq = Some(*s),
                            ServerMessage::Event(e) => *seq = Some(e.seq.max(seq.unwrap_or(0))),
                            _ => {}
                        }
                        FeedEvent::Message(message)
                    }
                    Err(e) => FeedEvent::Unreadable(e.to_string()),
                };
                if !emit(event) {
                    return Ok(());
                }
            }
            request = requests.recv() => {
                let Some(request) = request else { return Ok(()) };
                let text = serde_json::to_string(&request).map_err(|e| e.to_string())?;
                sink.send(Message::Text(text.into()))
                    .await
                    .map_err(|e| describe(&e, client.base()))?;
            }
        }
    }
}

/// A sentence for the footer about why the feed is down.
fn describe(error: &WsError, base: &str) -> String {
    match error {
        WsError::Http(response) => match response.status().as_u16() {
            401 | 403 => format!(
                "{base} refused the token ({}); set CONJUNCTION_TOKEN or --token to an operator token",
                response.status()
            ),
            status => format!("{base} answered {status} instead of opening the feed"),
        },
        WsError::Io(e) => format!("cannot reach {base}: {e}"),
        other => format!("lost the feed from {base}: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let b = Backoff::default();
        let secs: Vec<u64> = (1..=6).map(|n| b.wait(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 8, 8]);
    }
}
