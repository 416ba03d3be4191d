//! The demo's chat: a loopback server that takes what a Slack incoming webhook would,
//! so the demo's notification rules have somewhere real to post without reaching the
//! internet. Each message is handed on as "#channel: text" for the demo to print.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Serves the chat on `listener` until the task is dropped; every message posted to
/// `/chat/{channel}` goes to `said` as `(channel, text)`.
pub async fn serve(
    listener: TcpListener,
    said: mpsc::UnboundedSender<(String, String)>,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/chat/{channel}", post(take))
        .with_state(said);
    axum::serve(listener, app).await
}

async fn take(
    State(said): State<mpsc::UnboundedSender<(String, String)>>,
    Path(channel): Path<String>,
    Json(body): Json<serde_json::Value>,
) -> StatusCode {
    // Slack's own escaping of &, < and > undone, for the terminal.
    let text = body["text"]
        .as_str()
        .unwrap_or_default()
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let _ = said.send((format!("#{channel}"), text));
    StatusCode::OK
}
