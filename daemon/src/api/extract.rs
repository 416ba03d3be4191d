//! Extractors: who is asking (an operator, or whom a report token speaks for) and a
//! JSON body refused with a JSON error when it is too large, malformed or unknown.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::state::AppState;
use crate::auth::bearer;
use crate::planner::Principal;

/// A request made with a valid operator token.
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers).ok_or_else(|| {
            ApiError::unauthorized("this endpoint needs an operator token in an 'Authorization: Bearer <token>' header")
        })?;
        if state.operators.verify(token) {
            Ok(Operator)
        } else {
            Err(ApiError::unauthorized("the operator token is not valid; check CONJUNCTION_TOKEN or the daemon's operator.token file"))
        }
    }
}

/// Whom the bearer token of a report speaks for.
pub struct Reporter(pub Principal);

impl FromRequestParts<AppState> for Reporter {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers).ok_or_else(|| {
            ApiError::unauthorized(
                "reports need 'Authorization: Bearer <token>' with the project's report token or the build token from the trigger",
            )
        })?;
        match state.store.principal(token)? {
            Some(p) => Ok(Reporter(p)),
            None => Err(ApiError::unauthorized(
                "this report token is not known; use the project's report token or the build token from the trigger payload",
            )),
        }
    }
}

/// A JSON body, refused with a JSON error when it is too large, malformed or has
/// fields the protocol does not know.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let read = Bytes::from_request(req, state);
        let bytes = tokio::time::timeout(state.body_timeout, read)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    format!(
                        "the request body did not arrive within {} s; send the whole body at once",
                        state.body_timeout.as_secs()
                    ),
                )
            })?
            .map_err(|e: BytesRejection| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    super::error::body_too_large()
                } else {
                    ApiError::bad_request(
                        "unreadable_body",
                        format!("the request body could not be read: {e}"),
                    )
                }
            })?;
        serde_json::from_slice(&bytes).map(ApiJson).map_err(|e| {
            let code = if e.is_data() {
                "invalid_body"
            } else {
                "invalid_json"
            };
            let e = without_strings(&e.to_string());
            ApiError::bad_request(code, format!("the request body is not valid: {e}"))
        })
    }
}

/// A serde message with the strings it quotes from the body left out: a token sent in
/// the wrong field must not come back in the refusal (`invalid type: string "…"`).
fn without_strings(message: &str) -> String {
    const QUOTED: &str = "string \"";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(QUOTED) {
        out.push_str(&rest[..at]);
        out.push_str("a string");
        // Serde quotes with `{:?}`, so an inner quote is escaped.
        let body = &rest[at + QUOTED.len()..];
        let mut escaped = false;
        let end = body
            .char_indices()
            .find(|&(_, c)| {
                let closes = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                closes
            })
            .map_or(body.len(), |(i, _)| i + 1);
        rest = &body[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_quoted_from_the_body_are_left_out_of_refusals() {
        let e = serde_json::from_str::<u32>(r#""cjr_s3cr\"et""#).unwrap_err();
        assert!(e.to_string().contains("s3cr"), "serde quotes it: {e}");
        let shown = without_strings(&e.to_string());
        assert!(!shown.contains("s3cr") && !shown.contains("et"), "{shown}");
        assert!(
            shown.starts_with("invalid type: a string, expected u32"),
            "{shown}"
        );
        assert_eq!(
            without_strings("missing field `name`"),
            "missing field `name`"
        );
    }
}
