//! The live feed: `GET /v1/ws`, a websocket that sends a snapshot and then every
//! committed event in sequence order, and takes rebuild requests.

use std::sync::Arc;

use axum::extract::ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use conjunction_protocol::ws::{ClientMessage, ServerMessage};
use conjunction_protocol::PROTOCOL_VERSION;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::Semaphore;

use super::error::ApiError;
use super::extract::Operator;
use super::state::AppState;
use crate::store::Snapshot;

/// Events read from the log at a time when a client catches up.
const CATCH_UP_CHUNK: usize = 1_000;
/// The largest frame and message a client may send; a rebuild request is ~60 bytes.
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// Snapshots built or sent at once. Each one sending is held in full in its
/// connection's write buffer, so this bounds the memory that snapshots take.
const SNAPSHOTS_AT_ONCE: usize = 4;

/// What feed connections share: room for clients, and the snapshot last built, which
/// every client connecting before the next commit is sent without building it again.
pub struct FeedRoom {
    clients: Arc<Semaphore>,
    snapshots: Semaphore,
    last: std::sync::Mutex<Option<(u64, Utf8Bytes)>>,
}

impl FeedRoom {
    pub fn new(clients: usize) -> Self {
        Self {
            clients: Arc::new(Semaphore::new(clients)),
            snapshots: Semaphore::new(SNAPSHOTS_AT_ONCE),
            last: std::sync::Mutex::new(None),
        }
    }
}

#[derive(Deserialize)]
pub struct FeedQuery {
    since: Option<u64>,
}

pub async fn upgrade(
    _: Operator,
    State(state): State<AppState>,
    query: Result<Query<FeedQuery>, axum::extract::rejection::QueryRejection>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let Query(q) = query
        .map_err(|e| ApiError::bad_request("invalid_query", format!("{e}; use ?since=<seq>")))?;
    let Ok(seat) = state.feed_room.clients.clone().try_acquire_owned() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_feed_clients",
            "the live feed has as many clients as it takes ([limits] feed_clients); try again later",
        ));
    };
    Ok(ws
        // Checked against each frame's header, before its payload is read.
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .max_message_size(MAX_CLIENT_MESSAGE)
        // A small read buffer: clients send a few short messages at most.
        .read_buffer_size(4 * 1024)
        .on_upgrade(move |socket| async move {
            if let Err(reason) = run(socket, state, q.since).await {
                tracing::debug!(%reason, "feed client left");
            }
            drop(seat);
        }))
}

/// Why a feed connection ended.
type Ended = String;

async fn run(socket: WebSocket, state: AppState, since: Option<u64>) -> Result<(), Ended> {
    let (mut sink, mut stream) = socket.split();
    let timeout = state.feed.send_timeout;
    let config = state.feed;
    // Subscribe before reading the store: an event committed in between is then both
    // in what we read and in the channel, and the sequence check drops the copy.
    let mut events = state.hub.subscribe();
    let mut shutdown = state.shutdown.clone();

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

    send!(to_json(&ServerMessage::Hello {
        protocol: PROTOCOL_VERSION,
        daemon: env!("CARGO_PKG_VERSION").into(),
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
                send!(json);
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
            let (seq, text) = snapshot(&state).await.map_err(|e| e.to_string())?;
            send!(text);
            seq
        }
    };

    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok((seq, json)) => {
                    if seq > last {
                        send!(json.to_string());
                        last = seq;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    // The live ring moved on without this client: a single commit can
                    // hold more events than the ring. What it missed is in the event
                    // log; send it from there, a chunk at a time, then go back to the
                    // ring (whose older events the sequence check skips). A client
                    // that cannot take them is dropped by the send timeout.
                    loop {
                        let chunk = state
                            .store
                            .read(move |store| store.events_chunk(last, CATCH_UP_CHUNK))
                            .await
                            .map_err(|e| e.to_string())?;
                        let complete = chunk.len() < CATCH_UP_CHUNK;
                        for (seq, json) in chunk {
                            send!(json);
                            last = seq;
                        }
                        if complete {
                            break;
                        }
                    }
                }
                Err(RecvError::Closed) => return Ok(()),
            },
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let answer = match serde_json::from_str::<ClientMessage>(&text) {
                        Ok(ClientMessage::Rebuild { build }) => match state.writer.rebuild(build).await {
                            Ok(node) => ServerMessage::RebuildStarted { build, attempt: node.attempt, seq: node.seq },
                            Err(e) => {
                                let e = ApiError::from(e);
                                ServerMessage::Error { error: e.code.into(), message: e.message }
                            }
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
                    let e = e.into_inner();
                    if let Some(tungstenite::Error::Capacity(too_big)) = e.downcast_ref::<tungstenite::Error>() {
                        let close = CloseFrame {
                            code: close_code::SIZE,
                            reason: Utf8Bytes::from_static("a message over 64 KiB; send rebuild requests only"),
                        };
                        let _ = tokio::time::timeout(timeout, sink.send(Message::Close(Some(close)))).await;
                        return Err(format!("closed with 1009: {too_big}"));
                    }
                    return Err(format!("receive failed: {e}"));
                }
            },
            () = crate::stopped(&mut shutdown) => {
                let _ = sink.send(Message::Close(Some(CloseFrame { code: 1001, reason: Utf8Bytes::from_static("the daemon is shutting down") }))).await;
                return Ok(());
            }
        }
    }
}

/// The snapshot as of the last commit, built once for every client that asks for it
/// before the next commit.
async fn snapshot(state: &AppState) -> Result<(u64, Utf8Bytes), crate::store::StoreError> {
    let current = state.store.read(|store| store.seq()).await?;
    let last = state
        .feed_room
        .last
        .lock()
        .unwrap_or_else(|p| p.into_inner())
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
    let text = Utf8Bytes::from(to_json(&ServerMessage::Snapshot {
        seq,
        projects,
        roots,
        events,
    }));
    *state
        .feed_room
        .last
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = Some((seq, text.clone()));
    Ok((seq, text))
}

fn to_json(message: &ServerMessage) -> String {
    serde_json::to_string(message).expect("server messages serialize")
}
