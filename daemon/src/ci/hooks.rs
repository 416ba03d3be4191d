//! The one face of the CI systems' webhooks: checking a request against a project's
//! source, and reading its body as that CI's. The API authenticates the project and
//! hands the request here; each CI's own format and signature rule is in its file.

use conjunction_protocol::{CiKind, SourceSpec};
use reqwest::header::HeaderMap;

use super::{buildkite, github, gitlab, jenkins, Hook, HookError};

/// Checks a webhook request against the project's source: its secret, signature and
/// timestamp, before anything in the body is believed. `query_token` is Jenkins's
/// secret sent as `?token=`, for a Notification endpoint that cannot send user info.
pub fn verify(
    source: &SourceSpec,
    headers: &HeaderMap,
    query_token: Option<&str>,
    body: &[u8],
    now: u64,
) -> Result<(), HookError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match source {
        SourceSpec::Github { secret, .. } => {
            github::verify(secret.as_bytes(), body, header(github::SIGNATURE_HEADER))
        }
        SourceSpec::Gitlab {
            token,
            signing_token,
            ..
        } => {
            gitlab::verify(token.as_bytes(), header(gitlab::TOKEN_HEADER))?;
            match signing_token {
                Some(signing) => gitlab::verify_signed(
                    signing,
                    body,
                    header(gitlab::WEBHOOK_ID_HEADER),
                    header(gitlab::WEBHOOK_TIMESTAMP_HEADER),
                    header(gitlab::SIGNATURE_HEADER),
                    now,
                ),
                None => Ok(()),
            }
        }
        SourceSpec::Buildkite {
            token,
            allow_plain_token,
            ..
        } => match header(buildkite::SIGNATURE_HEADER) {
            Some(signature) => {
                buildkite::verify_signature(token.as_bytes(), body, Some(signature), now)
            }
            None if *allow_plain_token => {
                buildkite::verify_token(token.as_bytes(), header(buildkite::TOKEN_HEADER))
            }
            None => Err(HookError::Unsigned("X-Buildkite-Signature")),
        },
        SourceSpec::Jenkins { secret, .. } => {
            let basic = basic_password(header("authorization"));
            let sent = basic.as_deref().or(query_token);
            super::verify_clear_token("Authorization", secret.as_bytes(), sent)
        }
    }
}

/// The password of an HTTP Basic `Authorization` header.
fn basic_password(value: Option<&str>) -> Option<String> {
    use base64::Engine;
    let encoded = value?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (_, password) = text.split_once(':')?;
    Some(password.to_owned())
}

/// Reads a webhook body as `ci`'s, with its delivery id where the CI sends one.
pub fn read_hook(
    ci: CiKind,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Hook, Option<String>), HookError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let delivery = |name: &str| header(name).map(str::to_owned);
    Ok(match ci {
        CiKind::Github => {
            let event = header(github::EVENT_HEADER).ok_or(HookError::Unreadable {
                ci: "GitHub",
                reason: "the request has no X-GitHub-Event header".into(),
            })?;
            let json = github::json_body(header("content-type"), body)?;
            (
                github::parse(event, &json)?,
                delivery(github::DELIVERY_HEADER),
            )
        }
        CiKind::Gitlab => (
            gitlab::parse(header(gitlab::EVENT_HEADER), body)?,
            delivery(gitlab::DELIVERY_HEADER),
        ),
        CiKind::Buildkite => (
            buildkite::parse_webhook(header(buildkite::EVENT_HEADER), body)?,
            delivery(buildkite::DELIVERY_HEADER),
        ),
        CiKind::Jenkins => (jenkins::parse(body)?, None),
    })
}
