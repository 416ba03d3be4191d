//! On a PostgreSQL store shared by several daemons: a write that reaches a daemon
//! which does not hold the writer's role is sent on to the daemon that does (its
//! address is published with the lease), and its answer comes back as the writer
//! gave it, so a client sees one service whichever daemon it reaches. A 2xx is the
//! writer's, after its commit. Reads are served where they arrive.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::state::AppState;

/// Set on a forwarded request, so that it is never forwarded again (two daemons
/// that each think the other writes would send it back and forth).
const FORWARDED: HeaderName = HeaderName::from_static("x-conjunction-forwarded");

/// The largest body a forwarded request carries (the bulk project list's bound;
/// the routes' own bounds are checked again by the writer).
const MAX_FORWARDED_BYTES: usize = conjunction_protocol::limits::MAX_BULK_BODY_BYTES;

/// Whether a request changes something: what only the writer may do.
fn writes(request: &Request) -> bool {
    !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) && request.uri().path().starts_with("/v1/")
}

pub(super) async fn forward_writes(
    State(s): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if !writes(&request) || request.headers().contains_key(&FORWARDED) {
        return next.run(request).await;
    }
    let Some(writer) = s.store.writer_address() else {
        // This daemon writes, or nobody does for the moment (the handler then
        // answers `not_writer`).
        return next.run(request).await;
    };
    match send_on(&s.forward, &writer, request).await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::warn!(writer = %writer, error = %e, "a write could not be forwarded to the writer");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_writer",
                "the daemon that writes to the shared database could not be reached from this one; nothing was changed: try again in a few seconds",
            )
            .into_response()
        }
    }
}

async fn send_on(
    client: &reqwest::Client,
    writer: &str,
    request: Request,
) -> Result<Response, Box<dyn std::error::Error + Send + Sync>> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{path}", writer.trim_end_matches('/'));
    let body = axum::body::to_bytes(body, MAX_FORWARDED_BYTES).await?;
    let mut sent = client.request(parts.method, url).body(body);
    for (name, value) in &parts.headers {
        // The connection's own headers are hop by hop; the rest (the token, the
        // content type, a webhook's signature) go on as they came.
        if !matches!(
            name.as_str(),
            "host" | "connection" | "content-length" | "transfer-encoding" | "keep-alive"
        ) {
            sent = sent.header(name, value);
        }
    }
    let answer = sent.header(&FORWARDED, "1").send().await?;
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await?;
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if !matches!(
            name.as_str(),
            "connection" | "content-length" | "transfer-encoding" | "keep-alive"
        ) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    Ok(response)
}
