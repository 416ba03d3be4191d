//! Badge routes: `GET /v1/badges/{project}/{downstream,changes,status}.{svg,json}`.
//!
//! A project that sets `"badges": "public"` serves them to anyone; any other answers
//! only an operator token, and everyone else gets the very 404 a project that does
//! not exist gets, so a badge URL does not tell whether a private project exists.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use conjunction_protocol::project::Badges;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::projects::project_id;
use super::state::AppState;
use crate::auth::bearer;
use crate::badges::{Badge, Format, Kind, CACHE_SECONDS};
use crate::planner::Refusal;

pub(super) async fn get(
    State(s): State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (id, file) = path.rsplit_once('/').ok_or_else(unknown_badge)?;
    let (kind, format) = Kind::parse_file(file).ok_or_else(unknown_badge)?;
    let id = project_id(id)?;
    // A private project's badges are for anyone with a person's token, as its page is.
    let reader = match bearer(&headers) {
        Some(t) => super::extract::caller(&s, t).await.is_ok(),
        None => false,
    };
    let project = id.clone();
    let facts = s
        .store
        .read(move |store| store.badge_facts(&project))
        .await?
        .filter(|f| reader || f.badges == Badges::Public)
        .ok_or_else(|| ApiError::from(Refusal::UnknownProject(id)))?;
    let body = Badge::of(kind, &facts).render(format);
    let etag = format!(
        "\"{}\"",
        &hex::encode(Sha256::digest(body.as_bytes()))[..32]
    );
    let cache = if facts.badges == Badges::Public {
        format!("public, max-age={CACHE_SECONDS}")
    } else {
        format!("private, max-age={CACHE_SECONDS}")
    };
    let asked = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let mut response = if none_match(asked, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let content_type = match format {
            Format::Svg => "image/svg+xml;charset=utf-8",
            Format::Json => "application/json",
        };
        ([(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("hex in quotes is a valid header"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&cache).expect("ascii"),
    );
    Ok(response)
}

/// Whether `If-None-Match` (every value of it) names `etag`, by the weak comparison
/// RFC 9110 13.1.2 prescribes for it: `W/"x"` matches `"x"`, as a proxy that
/// compresses the answer (nginx's gzip) turns a strong tag into a weak one.
fn none_match<'a>(values: impl Iterator<Item = &'a str>, etag: &str) -> bool {
    fn opaque(tag: &str) -> &str {
        let tag = tag.trim();
        tag.strip_prefix("W/").unwrap_or(tag)
    }
    values
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim() == "*" || opaque(tag) == opaque(etag))
}

fn unknown_badge() -> ApiError {
    ApiError::not_found(
        "unknown_badge",
        "there is no such badge: use /v1/badges/<project>/downstream.svg, changes.svg or \
         status.svg, or .json instead of .svg for shields.io's endpoint badge",
    )
}

#[cfg(test)]
mod tests {
    use super::none_match;

    #[test]
    fn if_none_match_compares_weakly_across_every_value() {
        let etag = "\"abc\"";
        for asked in [
            &["\"abc\""][..],
            &["W/\"abc\""],
            &[" W/\"x\", W/\"abc\" "],
            &["\"x\"", "W/\"abc\""],
            &["*"],
        ] {
            assert!(none_match(asked.iter().copied(), etag), "{asked:?}");
        }
        for asked in [&["\"abd\""][..], &["W/abc"], &["w/\"abc\""], &[]] {
            assert!(!none_match(asked.iter().copied(), etag), "{asked:?}");
        }
    }
}
