//! Extractors: who is asking (a person's token and its scope, or whom a report token
//! speaks for), the checks of a caller's scope, and a JSON body refused with a JSON
//! error when it is too large, malformed or unknown.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::state::AppState;
use conjunction_protocol::{ProjectId, Timestamp};

use crate::auth::{bearer, Caller};
use crate::planner::Principal;

/// Who is asking: a person's token (viewer, maintainer or operator scope) or a token
/// of the operator token files. Every route but reports, webhooks and badges needs one;
/// what the caller may do there is checked with [`must_manage`] and [`must_operate`].
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers).ok_or_else(|| {
            ApiError::unauthorized("this endpoint needs a token in an 'Authorization: Bearer <token>' header: a viewer, maintainer or operator token (see `conjunction token create`)")
        })?;
        caller(state, token).await
    }
}

/// Whom `token` speaks for, if it is an operator token or a person's token that has
/// not expired. A use is written down at most once a minute ([`crate::auth::LastUsed`]),
/// by the writer, after the answer: reading stays a read.
pub(super) async fn caller(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    if state.operators.verify(token) {
        return Ok(Caller::operator());
    }
    let presented = token.to_owned();
    let Some(person) = state.store.quick(move |st| st.person(&presented)).await? else {
        return Err(ApiError::unauthorized(
            "this token is not known: it was revoked, never issued, or is a report token (those only send reports); check CONJUNCTION_TOKEN",
        ));
    };
    let info = person.info;
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    if let Some(at) = info.expires_at.filter(|at| *at <= now) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "token_expired",
            format!(
                "token {:?} expired at {at}; ask whoever issued it ({}) for a new one",
                info.name, info.created_by
            ),
        ));
    }
    if state.last_used.due(&info.id, std::time::Instant::now()) {
        let (writer, id) = (state.writer.clone(), info.id.clone());
        tokio::spawn(async move {
            if let Err(e) = writer.tokens_used(vec![(id, now)]).await {
                tracing::debug!(error = %e, "a token's last use was not written down");
            }
        });
    }
    Ok(Caller {
        name: info.name,
        token: Some(info.id),
        scope: info.scope,
        expires_at: info.expires_at,
    })
}

/// Refuses a caller that does not manage `project`: `doing` says what it asked for,
/// as in "rebuilding a build of acme/app".
pub(super) fn must_manage(
    caller: &Caller,
    project: &ProjectId,
    doing: &str,
) -> Result<(), ApiError> {
    match caller.view().refusal(project, doing) {
        None => Ok(()),
        Some(message) => Err(out_of_scope(caller, message)),
    }
}

/// `value` as the JSON answer for `caller`: without email addresses when the daemon
/// hides them from viewers and the caller is one.
pub(super) fn shown<T: serde::Serialize>(
    caller: &Caller,
    state: &AppState,
    value: &T,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    if caller.sees_addresses(state.access) {
        return Ok(axum::Json(value).into_response());
    }
    let mut json = serde_json::to_value(value).map_err(|e| {
        tracing::error!(error = %e, "an answer did not serialize");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the daemon failed while answering this request (its log says why)",
        )
    })?;
    conjunction_protocol::access::hide_addresses_in(&mut json);
    Ok(axum::Json(json).into_response())
}

/// Refuses a caller that is not an operator.
pub(super) fn must_operate(caller: &Caller, doing: &str) -> Result<(), ApiError> {
    if caller.scope.is_operator() {
        return Ok(());
    }
    Err(out_of_scope(
        caller,
        format!("{doing} needs an operator token; {}", caller.view().reach()),
    ))
}

/// A refusal for lack of permission, logged with the token's name (never the
/// token) and counted by its code like every refusal.
pub(super) fn out_of_scope(caller: &Caller, message: String) -> ApiError {
    log_out_of_scope(caller, &message);
    ApiError::new(StatusCode::FORBIDDEN, "forbidden_scope", message)
}

pub(super) fn log_out_of_scope(caller: &Caller, message: &str) {
    tracing::warn!(token = %caller.name, scope = %caller.scope, %message, "refused: out of the token's scope");
}

/// Who a report's bearer token says is reporting: whom a report or build token
/// speaks for, or a CI's id token, which is checked once the report says for which
/// project.
pub enum Reporter {
    Token(Principal),
    IdToken(String),
}

impl FromRequestParts<AppState> for Reporter {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers).ok_or_else(|| {
            ApiError::unauthorized(
                "reports need 'Authorization: Bearer <token>' with the project's report token, the build token from the trigger, or an id token of a CI identity the project trusts",
            )
        })?;
        let presented = token.to_owned();
        match state.store.quick(move |st| st.principal(&presented)).await? {
            Some(p) => Ok(Reporter::Token(p)),
            None if crate::oidc::IdTokens::looks_like_one(token) => Ok(Reporter::IdToken(token.to_owned())),
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
