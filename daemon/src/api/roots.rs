//! Root events: the recent ones, and one event's nodes a page at a time.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use conjunction_protocol::limits::{ROOT_PAGE_DEFAULT, ROOT_PAGE_MAX};
use conjunction_protocol::BuildId;
use serde::Deserialize;

use super::error::ApiError;
use super::extract::shown;
use super::state::AppState;
use crate::auth::Caller;
use crate::store::RootPage;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    limit: Option<usize>,
}

pub(super) async fn list(
    caller: Caller,
    State(s): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) =
        query.map_err(|e| ApiError::bad_request("invalid_query", format!("{e}; use ?limit=N")))?;
    let limit = q.limit.unwrap_or(20).clamp(1, 500);
    let roots = s.store.read(move |store| store.roots(limit)).await?;
    shown(&caller, &s, &roots)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PageQuery {
    after: Option<String>,
    limit: Option<usize>,
}

/// One root event with a page of its nodes in planning order: the first
/// `limit` (default 1,000, at most 10,000), or those after the build `after`.
/// `next_after` in the answer says where the next page starts.
pub(super) async fn get(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let id = BuildId::parse(&id)?;
    let usage = "use ?after=<build id>&limit=N";
    let Query(q) =
        query.map_err(|e| ApiError::bad_request("invalid_query", format!("{e}; {usage}")))?;
    let after = q
        .after
        .as_deref()
        .map(BuildId::parse)
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_query", format!("{e}; {usage}")))?;
    let limit = q.limit.unwrap_or(ROOT_PAGE_DEFAULT).clamp(1, ROOT_PAGE_MAX);
    match s.store.read(move |store| store.root_page(id, after, limit)).await? {
        RootPage::Found(page) => shown(&caller, &s, &*page),
        RootPage::NoRoot => Err(ApiError::not_found(
            "unknown_root",
            format!("no root event {id} exists"),
        )),
        RootPage::NoSuchAfter => Err(ApiError::bad_request(
            "invalid_query",
            format!(
                "build {} is not a node of root event {id}; pass the next_after of the previous page",
                after.map(|a| a.to_string()).unwrap_or_default()
            ),
        )),
    }
}
