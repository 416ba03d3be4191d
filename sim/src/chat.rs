//! A simulated chat on loopback: an HTTP sink that takes what Slack's incoming
//! webhooks, Discord's Execute Webhook, Matrix's send API and plain webhooks would,
//! refusing what each refuses by its documented limits (and can be told to be down).
//! The tests read what it was sent ([`Sink::posted`]); the demo has each Slack message
//! handed on as it comes ([`Sink::forwarding`]), keeping nothing, so its notification
//! rules have somewhere real to post without reaching the internet.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Where the demo's messages go: `(#channel, text)` for each Slack message posted to
/// `/chat/{channel}`.
pub type Said = mpsc::UnboundedSender<(String, String)>;

/// One request the sink took.
#[derive(Clone, Debug)]
pub struct Posted {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
    /// The body as sent, for checking a signature.
    pub raw: Vec<u8>,
}

#[derive(Default)]
struct SinkState {
    /// Whether requests are kept for [`Sink::posted`].
    record: bool,
    posted: Vec<Posted>,
    /// Where Slack messages are handed on as they come.
    said: Option<Said>,
    /// Answer this instead of 200 (a channel that is down).
    status: Option<u16>,
    /// Matrix room aliases the directory knows, and the room ids they name.
    aliases: HashMap<String, String>,
}

/// The simulated chat, serving on loopback until the runtime ends.
#[derive(Clone)]
pub struct Sink {
    pub addr: SocketAddr,
    state: Arc<Mutex<SinkState>>,
}

impl Sink {
    /// Starts a sink that keeps every request it takes.
    pub async fn start() -> std::io::Result<Self> {
        Self::serve(SinkState {
            record: true,
            ..SinkState::default()
        })
        .await
    }

    /// Starts a sink that keeps nothing and hands each Slack message posted to
    /// `/chat/{channel}` on to `said`.
    pub async fn forwarding(said: Said) -> std::io::Result<Self> {
        Self::serve(SinkState {
            said: Some(said),
            ..SinkState::default()
        })
        .await
    }

    async fn serve(state: SinkState) -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(state));
        let app = Router::new().fallback(take).with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { addr, state })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn state(&self) -> MutexGuard<'_, SinkState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers every later request with `status`.
    pub fn answer(&self, status: u16) {
        self.state().status = Some(status);
    }

    /// The Matrix room directory maps `alias` to `room_id` from now on.
    pub fn alias(&self, alias: &str, room_id: &str) {
        self.state().aliases.insert(alias.into(), room_id.into());
    }

    pub fn posted(&self) -> Vec<Posted> {
        self.state().posted.clone()
    }

    /// What was posted to `path`.
    pub fn posted_to(&self, path: &str) -> Vec<Posted> {
        self.posted()
            .into_iter()
            .filter(|p| p.path == path)
            .collect()
    }
}

async fn take(
    State(state): State<Arc<Mutex<SinkState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    if s.record {
        s.posted.push(Posted {
            method: method.clone(),
            path: uri.path().to_owned(),
            headers: headers.clone(),
            body: json.clone(),
            raw: body.to_vec(),
        });
    }
    if let Some(status) = s.status {
        return (
            StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT),
            String::new(),
        );
    }
    let path = uri.path();
    let refused = if let Some(alias) = path.strip_prefix("/_matrix/client/v3/directory/room/") {
        let alias = decode(alias);
        return match s.aliases.get(&alias) {
            Some(id) => (
                StatusCode::OK,
                serde_json::json!({"room_id": id, "servers": ["conjunction.test"]}).to_string(),
            ),
            None => (
                StatusCode::NOT_FOUND,
                serde_json::json!({"errcode": "M_NOT_FOUND", "error": format!("Room alias {alias} not found")})
                    .to_string(),
            ),
        };
    } else if let Some(rest) = path.strip_prefix("/_matrix/client/v3/rooms/") {
        matrix_send(&method, &headers, rest, body.len())
    } else if path.starts_with("/api/webhooks/") {
        discord(&json)
    } else if json.get("blocks").is_some() {
        slack(&json)
    } else {
        None
    };
    if let Some(refused) = refused {
        return refused;
    }
    if let (Some(said), Some(channel)) = (&s.said, path.strip_prefix("/chat/")) {
        // Slack's own escaping of &, < and > undone, for the terminal.
        let text = json["text"]
            .as_str()
            .unwrap_or_default()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        let _ = said.send((format!("#{}", decode(channel)), text));
    }
    (StatusCode::OK, "ok".into())
}

fn decode(segment: &str) -> String {
    urlencoding::decode(segment).map_or_else(|_| segment.to_owned(), |s| s.into_owned())
}

fn chars(v: &serde_json::Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

/// Slack's incoming webhook: `400 invalid_blocks` for blocks past Block Kit's limits
/// (docs.slack.dev Block Kit reference: at most 50 blocks; a section's text 1 to
/// 3,000 characters and at most 10 fields of 2,000; a context block 1 to 10
/// elements, each text at most 3,000).
fn slack(body: &serde_json::Value) -> Option<(StatusCode, String)> {
    let invalid = || Some((StatusCode::BAD_REQUEST, "invalid_blocks".to_owned()));
    let blocks = body["blocks"].as_array()?;
    if blocks.len() > 50 {
        return invalid();
    }
    for block in blocks {
        match block["type"].as_str() {
            Some("section") => {
                let text = chars(&block["text"]["text"]);
                if block.get("text").is_some() && !(1..=3000).contains(&text) {
                    return invalid();
                }
                if let Some(fields) = block["fields"].as_array() {
                    if fields.len() > 10 || fields.iter().any(|f| chars(&f["text"]) > 2000) {
                        return invalid();
                    }
                }
            }
            Some("context") => {
                let elements = block["elements"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                if elements.is_empty()
                    || elements.len() > 10
                    || elements.iter().any(|e| {
                        e.get("text").is_some() && !(1..=3000).contains(&chars(&e["text"]))
                    })
                {
                    return invalid();
                }
            }
            Some("header") if chars(&block["text"]["text"]) > 150 => return invalid(),
            Some("divider" | "header" | "image" | "actions") => {}
            _ => return invalid(),
        }
    }
    None
}

/// Discord's Execute Webhook: `400` with code 50035 for a message past its limits
/// (content 2,000 characters; 10 embeds; an embed's title 256, description 4,096, 25
/// fields of 256 and 1,024, footer 2,048, author 256; all embeds together 6,000).
fn discord(body: &serde_json::Value) -> Option<(StatusCode, String)> {
    let invalid = |errors: &str| {
        Some((
            StatusCode::BAD_REQUEST,
            serde_json::json!({"code": 50035, "message": "Invalid Form Body", "errors": errors})
                .to_string(),
        ))
    };
    let embeds = body["embeds"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if chars(&body["content"]) == 0 && embeds.is_empty() {
        return Some((
            StatusCode::BAD_REQUEST,
            serde_json::json!({"code": 50006, "message": "Cannot send an empty message"})
                .to_string(),
        ));
    }
    if chars(&body["content"]) > 2000 {
        return invalid("content: Must be 2000 or fewer in length.");
    }
    if embeds.len() > 10 {
        return invalid("embeds: Must be 10 or fewer in length.");
    }
    let mut total = 0;
    for e in embeds {
        let fields = e["fields"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if chars(&e["title"]) > 256
            || chars(&e["description"]) > 4096
            || fields.len() > 25
            || chars(&e["footer"]["text"]) > 2048
            || chars(&e["author"]["name"]) > 256
            || fields
                .iter()
                .any(|f| chars(&f["name"]) > 256 || chars(&f["value"]) > 1024)
        {
            return invalid("embeds.0: a field is over its limit");
        }
        total += chars(&e["title"])
            + chars(&e["description"])
            + chars(&e["footer"]["text"])
            + chars(&e["author"]["name"])
            + fields
                .iter()
                .map(|f| chars(&f["name"]) + chars(&f["value"]))
                .sum::<usize>();
    }
    if total > 6000 {
        return invalid("embeds: Embed size exceeds maximum size of 6000");
    }
    None
}

/// The Matrix client-server API's send endpoint,
/// `PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}`: it takes a room id,
/// never an alias (Synapse: `400 M_INVALID_PARAM "Expected RoomID string to start with
/// '!'"`), needs an access token, and takes an event of at most 65,536 bytes.
fn matrix_send(
    method: &Method,
    headers: &HeaderMap,
    rest: &str,
    size: usize,
) -> Option<(StatusCode, String)> {
    let error = |status: StatusCode, code: &str, text: &str| {
        Some((
            status,
            serde_json::json!({"errcode": code, "error": text}).to_string(),
        ))
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let [room, "send", _event_type, _txn] = parts.as_slice() else {
        return error(
            StatusCode::NOT_FOUND,
            "M_UNRECOGNIZED",
            "Unrecognized request",
        );
    };
    if method != Method::PUT {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "M_UNRECOGNIZED",
            "Unrecognized request",
        );
    }
    if !headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer "))
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "M_MISSING_TOKEN",
            "Missing access token",
        );
    }
    if !decode(room).starts_with('!') {
        return error(
            StatusCode::BAD_REQUEST,
            "M_INVALID_PARAM",
            "Expected RoomID string to start with '!'",
        );
    }
    if size > 65_536 {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "M_TOO_LARGE",
            "event too large",
        );
    }
    Some((
        StatusCode::OK,
        serde_json::json!({"event_id": "$event:conjunction.test"}).to_string(),
    ))
}
