//! The HTTP API: routes that parse, authenticate and hand over to the store (reads)
//! or the writer (changes), and the live feed. No business logic lives here; this is
//! where domain refusals become statuses and JSON errors ([`error`]).
//!
//! Imports run one way: the router (this file) uses the handlers ([`feed`] and one
//! file per resource), which use the state, the extractors and the errors, which use
//! nothing of the API.

mod audit;
mod backup;
mod badges;
pub mod error;
mod extract;
pub mod feed;
mod forward;
pub mod health;
mod hooks;
mod metrics;
mod notify;
mod projects;
mod releases;
mod reports;
mod roots;
mod state;
mod tokens;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use conjunction_protocol::limits::{MAX_BODY_BYTES, MAX_BULK_BODY_BYTES, MAX_HOOK_BODY_BYTES};

pub use backup::SEQ_HEADER as BACKUP_SEQ_HEADER;
pub use error::ApiError;
pub use feed::FeedConfig;
pub use state::AppState;

pub fn router(state: AppState) -> Router {
    let health = health::routes(state.health.clone());
    Router::new()
        .route(
            "/v1/projects",
            get(projects::list)
                .put(projects::apply)
                .layer(DefaultBodyLimit::max(MAX_BULK_BODY_BYTES)),
        )
        .route(
            "/v1/projects/{id}",
            get(projects::get)
                .put(projects::put)
                .delete(projects::delete),
        )
        .route("/v1/projects/{id}/dependents", get(projects::dependents))
        .route(
            "/v1/projects/{id}/report-token",
            post(projects::rotate_report_token),
        )
        .route("/v1/projects/{id}/notify/test", post(notify::test))
        .route("/v1/projects/{id}/impact", get(releases::impact))
        .route("/v1/projects/{id}/releases", get(releases::list))
        .route("/v1/projects/{id}/releases/{version}", get(releases::get))
        .route("/v1/reports", post(reports::post))
        .route(
            "/v1/hooks/{kind}/{project}",
            post(hooks::post).layer(DefaultBodyLimit::max(MAX_HOOK_BODY_BYTES)),
        )
        .route("/v1/builds/{id}", get(reports::build))
        .route("/v1/builds/{id}/rebuild", post(reports::rebuild))
        .route("/v1/roots", get(roots::list))
        .route("/v1/roots/{id}", get(roots::get))
        .route("/v1/ws", get(feed::upgrade))
        .route("/v1/badges/{*path}", get(badges::get))
        .route("/metrics", get(metrics::get))
        .route("/v1/backup", post(backup::post))
        .route("/v1/tokens", get(tokens::list).post(tokens::post))
        .route("/v1/audit", get(audit::list))
        .route("/v1/tokens/{id}", axum::routing::delete(tokens::delete))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            declared_too_large,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_refusals,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            forward::forward_writes,
        ))
        .with_state(state)
        .merge(health)
}

/// Counts every answer that refused a request, by its code.
async fn count_refusals(
    State(s): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let response = next.run(request).await;
    if let Some(code) = response.extensions().get::<error::RefusalCode>() {
        s.metrics.refusal(code.0);
    }
    response
}

/// Answers 413 at once to a request whose `Content-Length` is over what its endpoint
/// takes, instead of reading (or waiting for) a body it would refuse anyway. The body
/// is then read and thrown away for a while ([`linger`]), so that a
/// client that writes its whole body before it reads (Python's `http.client` and
/// `requests`) gets the answer instead of a reset.
async fn declared_too_large(
    State(s): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let path = request.uri().path();
    let limit = if request.method() == axum::http::Method::PUT && path == "/v1/projects" {
        MAX_BULK_BODY_BYTES
    } else if path.starts_with("/v1/hooks/") {
        MAX_HOOK_BODY_BYTES
    } else {
        MAX_BODY_BYTES
    };
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        tokio::spawn(linger(request.into_body(), s.body_timeout));
        let mut response = axum::response::IntoResponse::into_response(error::body_too_large());
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
        return response;
    }
    next.run(request).await
}

/// How much of a refused body is read and thrown away at most, and for how long at
/// most (never longer than the body timeout).
const LINGER_BYTES: u64 = 64 << 20;
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads and throws away what a client still sends of a body that was refused, as
/// nginx's lingering close does: closing a socket with unread data makes the kernel
/// send a reset, and a client still writing its body (one that reads only after it
/// has written, as Python's `http.client` does) then gets a broken pipe and loses the
/// answer it was sent. The answer goes out first (with `Connection: close`); this
/// keeps reading until the body ends, [`LINGER_BYTES`] are read, or the body timeout
/// (at most [`LINGER_TIME`]) passes, and then the connection closes.
async fn linger(body: axum::body::Body, body_timeout: std::time::Duration) {
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + body_timeout.min(LINGER_TIME);
    let mut stream = body.into_data_stream();
    let mut read = 0u64;
    while read < LINGER_BYTES {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(chunk))) => read += chunk.len() as u64,
            _ => break,
        }
    }
}

/// A panic while answering (redb panics on some damaged pages) becomes a 500 with a
/// JSON error, and the connection stays usable.
fn panicked(payload: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    let reason = crate::health::panic_message(&*payload);
    tracing::error!(%reason, "a request panicked; the database file may be damaged");
    axum::response::IntoResponse::into_response(ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "the daemon failed while answering this request (its log says why); if the database is damaged, restore it from a backup",
    ))
}

pub(super) async fn no_route() -> ApiError {
    ApiError::not_found(
        "no_such_endpoint",
        "there is no such endpoint; project ids in paths are percent-encoded, as in /v1/projects/acme%2Fapp",
    )
}

async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method; see the API section of the README",
    )
}
