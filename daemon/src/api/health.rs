//! `GET /healthz` and `GET /readyz`: how the daemon stands, for monitors, load
//! balancers and orchestrators. They answer from the moment the daemon listens, also
//! while it opens its database.
//!
//! - `/healthz` is the daemon's health: `200` while it serves and its writer commits
//!   (or, on PostgreSQL, while another daemon writes and this one reads and keeps up
//!   with the lease: `"writer":"follower"`);
//!   `503` while it starts, when the writer has stopped on a fault or committed no
//!   pulse within `[health] stall_ms` (`"writer":"stalled"`), and while it stops.
//! - `/readyz` is whether to send it work: `200` only while it serves, `503`
//!   otherwise.

use std::time::SystemTime;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use conjunction_protocol::Timestamp;
use serde_json::{json, Value};

use crate::health::{Condition, Health, Standing};

/// The two routes, on the daemon's health alone: the server answers them before the
/// rest of the API exists.
pub fn routes(health: Health) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(health)
}

fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

const VERSION: &str = env!("CARGO_PKG_VERSION");

async fn healthz(State(health): State<Health>) -> (StatusCode, Json<Value>) {
    let unavailable = StatusCode::SERVICE_UNAVAILABLE;
    let (status, body) = match health.condition(now()) {
        // A follower (PostgreSQL, another daemon writes) serves reads, the feed and
        // badges, and is as healthy as its reads and its lease's round.
        Condition::Serving => match health.standing() {
            None | Some(Standing::Writes) => (
                StatusCode::OK,
                json!({"status": "ok", "writer": "ok", "version": VERSION}),
            ),
            Some(Standing::Follows) => (
                StatusCode::OK,
                json!({"status": "ok", "writer": "follower", "version": VERSION}),
            ),
            Some(Standing::Starting) => (
                unavailable,
                json!({"status": "starting", "writer": "starting", "version": VERSION}),
            ),
            Some(Standing::Unreachable(why)) => (
                unavailable,
                json!({
                    "status": "failing",
                    "writer": "unreachable",
                    "message": format!("the shared database cannot be reached: {why}"),
                    "version": VERSION,
                }),
            ),
        },
        Condition::Starting => (
            unavailable,
            json!({
                "status": "starting",
                "writer": "starting",
                "message": "the daemon is opening its database and loading its outboxes; requests wait until it serves",
                "version": VERSION,
            }),
        ),
        Condition::Stalled { since } => (
            unavailable,
            json!({
                "status": "failing",
                "writer": "stalled",
                "stalled_ms": since.as_millis() as u64,
                "message": format!(
                    "the database writer has committed nothing for {}, longer than [health] stall_ms allows ({}); a stuck disk or a write that does not end holds it",
                    humantime::format_duration(std::time::Duration::from_secs(since.as_secs())),
                    humantime::format_duration(health.stall_after()),
                ),
                "version": VERSION,
            }),
        ),
        Condition::Failed => (
            unavailable,
            json!({
                "status": "failing",
                "writer": "stopped",
                "message": "the database writer stopped on a fault and the daemon is exiting; its log says why",
                "version": VERSION,
            }),
        ),
        Condition::Stopping => (
            unavailable,
            json!({"status": "stopping", "writer": "ok", "version": VERSION}),
        ),
    };
    (status, Json(body))
}

async fn readyz(State(health): State<Health>) -> (StatusCode, Json<Value>) {
    let status = match health.condition(now()) {
        Condition::Serving => return (StatusCode::OK, Json(json!({"status": "ready"}))),
        Condition::Starting => "starting",
        Condition::Stalled { .. } => "stalled",
        Condition::Failed => "failing",
        Condition::Stopping => "stopping",
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"status": status})),
    )
}
