//! The live feed: `GET /v1/ws`, a websocket that sends a snapshot and then every
//! committed event in sequence order, and takes rebuild requests.

use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use conjunction_protocol::ws::{ClientMessage, ServerMessage};
use conjunction_protocol::{Timestamp, PROTOCOL_VERSION};
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use super::error::ApiError;
use super::state::AppState;
use crate::auth::Caller;
use crate::store::Snapshot;

/// Limits of the live feed.
#[derive(Debug, Clone, Copy)]
pub struct FeedConfig {
    /// Root events in a snapshot.
    pub snapshot_roots: usize,
    /// Nodes in a snapshot: the nodes of the newest root events are included, whole
    /// events only, until this many; the others are summaries.
    pub snapshot_nodes: usize,
    /// The most missed events a resuming client is sent one by one; further behind,
    /// it gets a fresh snapshot.
    pub max_replay: u64,
    /// How long one send to a client may take before the client is dropped.
    pub send_timeout: std::time::Duration,
    /// Events kept for subscribers that are behind; one further behind catches up
    /// from the event log.
    pub buffer: usize,
}

impl Default for FeedConfig {
    fn default() -> Self {
        Self {
            snapshot_roots: 50,
            snapshot_nodes: 5_000,
            max_replay: 10_000,
            send_timeout: std::time::Duration::from_secs(10),
            buffer: 4096,
        }
    }
}

/// Events read from the log at a time when a client catches up.
const CATCH_UP_CHUNK: usize = 1_000;
/// The largest frame and message a client may send; a rebuild request is ~60 bytes.
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// Snapshots built or sent at once.
const SNAPSHOTS_AT_ONCE: usize = 4;
/// A snapshot goes out as one websocket message in frames of this size. A connection
/// keeps its write buffer at the size of the largest frame it sent, so a snapshot sent
/// whole would stay in memory for as long as its client is connected.
const SNAPSHOT_FRAME: usize = 16 * 1024;

/// What feed connections share: room for clients, and the snapshot last built, which
/// every client connecting before the next commit is sent without building it again.
pub struct FeedRoom {
    clients: Arc<Semaphore>,
    snapshots: Semaphore,
    /// The last snapshot for clients that see email addresses, and for those that
    /// do not.
    last: std::sync::Mutex<[Option<(u64, Bytes)>; 2]>,
}

impl FeedRoom {
    /// How many clients are connected, of a room for `limit`.
    pub fn connected(&self, limit: usize) -> usize {
        limit.saturating_sub(self.clients.available_permits())
    }

    pub fn new(clients: usize) -> Self {
        Self {
            clients: Arc::new(Semaphore::new(clients)),
            snapshots: Semaphore::new(SNAPSHOTS_AT_ONCE),
            last: std::sync::Mutex::new([None, None]),
        }
    }
}

#[derive(Deserialize)]
pub struct FeedQuery {
    since: Option<u64>,
}

pub async fn upgrade(
    caller: Caller,
    State(state): State<AppState>,
    query: Result<Query<FeedQuery>, axum::extract::rejection::QueryRejection>,
    mut request: Request,
) -> Result<Response, ApiError> {
    let Query(q) = query
        .map_err(|e| ApiError::bad_request("invalid_query", format!("{e}; use ?since=<seq>")))?;
    let accept = websocket_accept(request.headers())?;
    let Ok(seat) = state.feed_room.clients.clone().try_acquire_owned() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_feed_clients",
            "the live feed has as many clients as it takes ([limits] feed_clients); try again later",
        ));
    };
    let upgrading = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let upgraded = match upgrading.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(error = %e, "feed upgrade failed");
                return;
            }
        };
        let config = WebSocketConfig::default()
            // Checked against each frame's header, before its payload is read.
            .max_frame_size(Some(MAX_CLIENT_MESSAGE))
            .max_message_size(Some(MAX_CLIENT_MESSAGE))
            // Clients send a few short messages at most.
            .read_buffer_size(4 * 1024)
            // Each frame is written as it is sent, so the write buffer holds at most one.
            .write_buffer_size(0);
        let socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        let metrics = state.metrics.clone();
        if let Err(reason) = run(socket, state, caller, q.since).await {
            if reason.contains("timed out") {
                metrics.feed_drops.inc();
            }
            tracing::debug!(%reason, "feed client left");
        }
        drop(seat);
    });
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    Ok(response)
}

/// The `Sec-WebSocket-Accept` answer to a websocket upgrade request (RFC 6455 4.2.1),
/// or why the request is not one.
fn websocket_accept(headers: &HeaderMap) -> Result<HeaderValue, ApiError> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    let key = headers.get(header::SEC_WEBSOCKET_KEY);
    let version_13 = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    match key {
        Some(key)
            if version_13
                && has_token(header::CONNECTION, "upgrade")
                && has_token(header::UPGRADE, "websocket") =>
        {
            HeaderValue::from_str(&derive_accept_key(key.as_bytes())).map_err(|_| {
                ApiError::bad_request("not_a_websocket", "the websocket key is not valid")
            })
        }
        _ => Err(ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "not_a_websocket",
            "/v1/ws is a websocket (version 13): connect with a websocket client",
        )),
    }
}

/// Why a feed connection ended.
type Ended = String;

async fn run(
    socket: WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>,
    state: AppState,
    caller: Caller,
    since: Option<u64>,
) -> Result<(), Ended> {
    let (mut sink, mut stream) = socket.split();
    let timeout = state.feed.send_timeout;
    let config = state.feed;
    // Subscribe before reading the store: an event committed in between is then both
    // in what we read and in the channel, and the sequence check drops the copy.
    let mut events = state.hub.subscribe();
    let mut shutdown = state.shutdown.clone();
    let sees = caller.sees_addresses(state.access);
    // What this client is sent of an event read back from the log.
    let shown = |json: String| crate::hub::for_reader(json, sees);
    // The feed of a person's token ends when the token is revoked or expires.
    let mut revoked = state.revoked.subscribe();
    let expires = caller.expires_at.map(|at| {
        let left = at.since(Timestamp::from_system_time(std::time::SystemTime::now()));
        tokio::time::Instant::now() + left
    });
    let expiry = async move {
        match expires {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expiry);

    macro_rules! send {
        ($text:expr) => {
            match tokio::time::timeout(timeout, sink.send(Message::Text(Utf8Bytes::from($text))))
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(format!("send failed: {e}")),
                Err(_) => return Err("send timed out".into()),
            }
        };
    }

    // What the event log holds after `$last`, a chunk at a time, until `$last` is at
    // least `$upto` (or the log's end).
    macro_rules! catch_up {
        ($last:ident, $upto:expr) => {
            loop {
                let after = $last;
                let chunk = state
                    .store
                    .read(move |store| store.events_chunk(after, CATCH_UP_CHUNK))
                    .await
                    .map_err(|e| e.to_string())?;
                let complete = chunk.len() < CATCH_UP_CHUNK;
                for (seq, json) in chunk {
                    send!(shown(json));
                    $last = seq;
                }
                if complete || $last >= $upto {
                    break;
                }
            }
        };
    }

    send!(to_json(&ServerMessage::Hello {
        protocol: PROTOCOL_VERSION,
        daemon: env!("CARGO_PKG_VERSION").into(),
        caller: Some(caller.view()),
    }));

    let backlog = match since {
        Some(s) => state
            .store
            .read(move |store| store.events_after(s, config.max_replay))
            .await
            .map_err(|e| e.to_string())?,
        None => None,
    };
    let mut last = match (since, backlog) {
        (Some(s), Some(missed)) => {
            let mut last = s;
            for (seq, json) in missed {
                send!(shown(json));
                last = seq;
            }
            last
        }
        _ => {
            // One at a time per few clients: see SNAPSHOTS_AT_ONCE.
            let _turn = state
                .feed_room
                .snapshots
                .acquire()
                .await
                .map_err(|e| e.to_string())?;
            let (seq, text) = snapshot(&state, sees).await.map_err(|e| e.to_string())?;
            match tokio::time::timeout(timeout, send_in_frames(&mut sink, text)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(format!("send failed: {e}")),
                Err(_) => return Err("send timed out".into()),
            }
            seq
        }
    };

    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => {
                    // A gap before it: events the ring never carried (on PostgreSQL,
                    // another daemon's commits while this one changed roles) are
                    // in the event log.
                    if event.seq > last + 1 {
                        catch_up!(last, event.seq - 1);
                    }
                    if event.seq > last {
                        send!(event.for_reader(sees).to_string());
                        last = event.seq;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    // The live ring moved on without this client: a single commit can
                    // hold more events than the ring. What it missed is in the event
                    // log; send it from there, a chunk at a time, then go back to the
                    // ring (whose older events the sequence check skips). A client
                    // that cannot take them is dropped by the send timeout.
                    catch_up!(last, u64::MAX);
                }
                Err(RecvError::Closed) => return Ok(()),
            },
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let answer = match serde_json::from_str::<ClientMessage>(&text) {
                        Ok(ClientMessage::Rebuild { build }) => match super::reports::rebuild_as(&state, &caller, build).await {
                            Ok(node) => ServerMessage::RebuildStarted { build, attempt: node.attempt, seq: node.seq },
                            Err(e) => ServerMessage::Error { error: e.code.into(), message: e.message },
                        },
                        Err(e) => ServerMessage::Error {
                            error: "invalid_message".into(),
                            message: format!("the message was not understood: {e}; send {{\"type\":\"rebuild\",\"build\":\"<id>\"}}"),
                        },
                    };
                    send!(to_json(&answer));
                }
                Some(Ok(Message::Binary(_))) => send!(to_json(&ServerMessage::Error {
                    error: "invalid_message".into(),
                    message: "binary messages are not understood; send JSON text".into(),
                })),
                Some(Ok(Message::Close(_))) | None => return Ok(()),
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    if let tokio_tungstenite::tungstenite::Error::Capacity(too_big) = &e {
                        let close = CloseFrame {
                            code: CloseCode::Size,
                            reason: Utf8Bytes::from_static("a message over 64 KiB; send rebuild requests only"),
                        };
                        let _ = tokio::time::timeout(timeout, sink.send(Message::Close(Some(close)))).await;
                        return Err(format!("closed with 1009: {too_big}"));
                    }
                    return Err(format!("receive failed: {e}"));
                }
            },
            id = revoked.recv(), if caller.token.is_some() => match id {
                Ok(id) if Some(&id) == caller.token.as_ref() => {
                    close(&mut sink, timeout, "the token was revoked").await;
                    return Ok(());
                }
                // Missed revocations: look the token up again.
                Err(RecvError::Lagged(_)) => {
                    let id = caller.token.clone();
                    let known = state.store.read(move |store| Ok(store.people()?.iter().any(|p| Some(&p.info.id) == id.as_ref()))).await;
                    if matches!(known, Ok(false)) {
                        close(&mut sink, timeout, "the token was revoked").await;
                        return Ok(());
                    }
                }
                _ => {}
            },
            () = &mut expiry => {
                close(&mut sink, timeout, "the token expired").await;
                return Ok(());
            }
            () = shutdown.requested() => {
                let _ = sink.send(Message::Close(Some(CloseFrame { code: CloseCode::Away, reason: Utf8Bytes::from_static("the daemon is shutting down") }))).await;
                return Ok(());
            }
        }
    }
}

/// Ends the feed with 1008 (policy violation), as RFC 6455 has it for a client that
/// may no longer receive.
async fn close<S>(sink: &mut S, timeout: std::time::Duration, reason: &'static str)
where
    S: futures_util::Sink<Message> + Unpin,
{
    let frame = CloseFrame {
        code: CloseCode::Policy,
        reason: Utf8Bytes::from_static(reason),
    };
    let _ = tokio::time::timeout(timeout, sink.send(Message::Close(Some(frame)))).await;
}

/// The snapshot as of the last commit, built once for every client that asks for it
/// before the next commit: once for those who see email addresses, and once for those
/// who do not.
async fn snapshot(state: &AppState, sees: bool) -> Result<(u64, Bytes), crate::store::StoreError> {
    let class = usize::from(!sees);
    let current = state.store.read(|store| store.seq()).await?;
    let last = state
        .feed_room
        .last
        .lock()
        .unwrap_or_else(|p| p.into_inner())[class]
        .clone();
    if let Some((seq, text)) = last.filter(|(seq, _)| *seq == current) {
        return Ok((seq, text));
    }
    let config = state.feed;
    let Snapshot {
        seq,
        projects,
        roots,
        events,
    } = state
        .store
        .read(move |store| store.snapshot(config.snapshot_roots, config.snapshot_nodes))
        .await?;
    let json = to_json(&ServerMessage::Snapshot {
        seq,
        projects,
        roots,
        events,
    });
    let text = Bytes::from(crate::hub::for_reader(json, sees));
    state
        .feed_room
        .last
        .lock()
        .unwrap_or_else(|p| p.into_inner())[class] = Some((seq, text.clone()));
    Ok((seq, text))
}

/// Sends `text` (UTF-8) as one text message in frames of [`SNAPSHOT_FRAME`]; a frame
/// may end inside a character, as RFC 6455 allows.
async fn send_in_frames<S>(
    sink: &mut S,
    text: Bytes,
) -> Result<(), tokio_tungstenite::tungstenite::Error>
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    let parts = text.len().div_ceil(SNAPSHOT_FRAME).max(1);
    for i in 0..parts {
        let piece = text.slice(i * SNAPSHOT_FRAME..((i + 1) * SNAPSHOT_FRAME).min(text.len()));
        let opcode = if i == 0 {
            OpCode::Data(Data::Text)
        } else {
            OpCode::Data(Data::Continue)
        };
        sink.feed(Message::Frame(Frame::message(
            piece,
            opcode,
            i + 1 == parts,
        )))
        .await?;
    }
    sink.flush().await
}

fn to_json(message: &ServerMessage) -> String {
    serde_json::to_string(message).expect("server messages serialize")
}
