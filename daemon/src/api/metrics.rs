//! `GET /metrics`: the daemon's numbers in the OpenMetrics text format, for
//! Prometheus. Off unless `[metrics]` turns it on (then it answers 404 like any path
//! the daemon does not serve); it takes an operator's token or the metrics token.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::state::AppState;
use crate::auth::bearer;

pub(super) async fn get(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !s.metrics_on {
        return Err(super::no_route().await);
    }
    let token = bearer(&headers).ok_or_else(|| {
        ApiError::unauthorized(
            "/metrics needs an operator token or the metrics token ([metrics] token_file) in an 'Authorization: Bearer <token>' header",
        )
    })?;
    if !s.metrics_token.as_ref().is_some_and(|m| m.verify(token)) {
        let caller = super::extract::caller(&s, token).await?;
        super::extract::must_operate(&caller, "reading /metrics")?;
    }
    let m = &s.metrics;
    let file = s.database_path.clone();
    let (events, open, bytes) = s
        .store
        .read(move |store| {
            let (events, open) = store.sizes()?;
            Ok((events, open, store.bytes(&file)?))
        })
        .await?;
    m.event_log_events.set(events as i64);
    m.cascades_in_progress.set(open as i64);
    m.database_bytes.set(bytes as i64);
    m.feed_clients
        .set(s.feed_room.connected(s.feed_limit) as i64);
    let projects = s.graph.read().map_or(0, |g| g.project_count());
    m.projects.set(projects as i64);
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode_at(conjunction_protocol::Timestamp::from_system_time(
            std::time::SystemTime::now(),
        )),
    )
        .into_response())
}
