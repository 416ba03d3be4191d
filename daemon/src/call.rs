//! One outbound HTTP call, whatever is called (a CI's API, a chat, a webhook): how it
//! is sent, and how an answer that is not a success is judged: refused, worth another
//! try, or rate limited, with the far side's own words read out of it. The outboxes
//! decide what follows a [`Failure`]; the callers decide what a success means.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use reqwest::StatusCode;

/// A try that did not succeed, whatever was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Trying again will not change it.
    Refused(String),
    /// Worth another try; the far side may have said how long to wait.
    Transient {
        error: String,
        retry_after: Option<Duration>,
    },
    /// The far side's rate limit was hit: wait this long, and it is not a failed try.
    RateLimited { error: String, wait: Duration },
}

/// The longest wait a rate limit is taken at its word for.
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(3600);
/// The wait when a CI says "too many requests" without saying how long.
const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// A header value that is never printed, for credentials.
pub fn secret_header(value: &str) -> Option<reqwest::header::HeaderValue> {
    let mut value = reqwest::header::HeaderValue::from_str(value).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// `request` with `Authorization: Bearer <token>`, the value marked sensitive.
pub fn bearer(request: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
    match secret_header(&format!("Bearer {token}")) {
        Some(auth) => request.header(reqwest::header::AUTHORIZATION, auth),
        None => request,
    }
}

/// Sends `request` and judges the answer: a success goes to `accept`, anything
/// else is classified by [`judge`]. `far` names the far side in messages ("GitHub",
/// "Slack"); `context` says what was asked for, for a 404 ("workflow downstream.yml
/// in acme/app on ref main").
pub async fn send<T, F, Fut>(
    client: &reqwest::Client,
    request: reqwest::RequestBuilder,
    far: &str,
    context: &str,
    accept: F,
) -> Result<T, Failure>
where
    F: FnOnce(StatusCode, HeaderMap, Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = Result<T, Failure>>,
{
    let request = match request.build() {
        Ok(r) => r,
        Err(e) => {
            return Err(Failure::Refused(format!(
                "the request to {far} could not be made: {e}"
            )));
        }
    };
    let target = conjunction_protocol::http_url::redact(request.url());
    match client.execute(request).await {
        Ok(response) => {
            let status = response.status();
            let headers = response.headers().clone();
            let body = read_body(response, ANSWER_BYTES).await;
            if status.is_success() {
                accept(status, headers, body).await
            } else {
                Err(judge(far, context, status, &headers, &body))
            }
        }
        Err(e) => Err(Failure::Transient {
            error: describe_send_error(&target, &e),
            retry_after: None,
        }),
    }
}

/// Sends a read request and hands back the answer's body, or says why there is none.
pub async fn get(
    client: &reqwest::Client,
    request: reqwest::RequestBuilder,
    far: &str,
) -> Result<Vec<u8>, String> {
    let request = request
        .build()
        .map_err(|e| format!("the request to {far} could not be made: {e}"))?;
    let target = conjunction_protocol::http_url::redact(request.url());
    let response = client
        .execute(request)
        .await
        .map_err(|e| describe_send_error(&target, &e))?;
    let status = response.status();
    let body = read_body(response, LOOKUP_BYTES).await;
    if status.is_success() {
        Ok(body)
    } else {
        let said = their_message(&body);
        Err(format!("{far} answered {}: {said}", status.as_u16()))
    }
}

/// What is kept of an answer to a call: enough for any CI's run object.
pub const ANSWER_BYTES: usize = 256 * 1024;
/// What is kept of an answer to a lookup: a page of a hundred GitHub runs.
pub const LOOKUP_BYTES: usize = 8 * 1024 * 1024;

/// Reads at most `keep` bytes of an answer's body.
pub async fn read_body(mut response: reqwest::Response, keep: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    while bytes.len() < keep {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(keep);
    bytes
}

/// Judges an answer that was not a success.
pub fn judge(
    far: &str,
    context: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Failure {
    let message = their_message(body);
    let code = status.as_u16();
    let error = match (message.is_empty(), status) {
        (_, StatusCode::NOT_FOUND) if !context.is_empty() => {
            let said = if message.is_empty() {
                String::new()
            } else {
                format!(" ({message})")
            };
            format!("{far} answered 404: {context} not found{said}")
        }
        (true, _) => format!("{far} answered {code}"),
        (false, _) => format!("{far} answered {code}: {message}"),
    };
    if let Some(wait) = rate_limit_wait(status, headers, SystemTime::now()) {
        return Failure::RateLimited { error, wait };
    }
    let retry_after = header_secs(headers, "retry-after").map(Duration::from_secs);
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        Failure::Transient { error, retry_after }
    } else {
        Failure::Refused(error)
    }
}

/// How long to wait when an answer says a rate limit was hit: a 429, or GitHub's 403
/// with `x-ratelimit-remaining: 0` or a `retry-after` (its secondary limits). The wait
/// comes from `retry-after`, else from the reset time (`x-ratelimit-reset`, seconds
/// since the epoch; Buildkite's `ratelimit-reset`, seconds from now).
pub fn rate_limit_wait(
    status: StatusCode,
    headers: &HeaderMap,
    now: SystemTime,
) -> Option<Duration> {
    let exhausted = header_secs(headers, "x-ratelimit-remaining") == Some(0);
    let limited = status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN && (exhausted || headers.contains_key("retry-after")));
    if !limited {
        return None;
    }
    let epoch_now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let wait = header_secs(headers, "retry-after")
        .or_else(|| {
            header_secs(headers, "x-ratelimit-reset").map(|at| at.saturating_sub(epoch_now))
        })
        .or_else(|| header_secs(headers, "ratelimit-reset"))
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_RATE_LIMIT_WAIT);
    // A reset already past still needs a moment: the CI counts from its own clock.
    Some(wait.clamp(Duration::from_secs(1), MAX_RATE_LIMIT_WAIT))
}

fn header_secs(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// The far side's own words in an error answer: the JSON `message` (GitHub, GitLab,
/// Buildkite, Discord), with Buildkite's `errors` and GitLab's `error`, or else the
/// start of the body (Slack's `invalid_blocks`), on one line of at most 300
/// characters.
pub fn their_message(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(o)) => {
            let part = |v: &serde_json::Value| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let mut said: Vec<String> = ["message", "error"]
                .iter()
                .filter_map(|k| o.get(*k))
                .map(part)
                .collect();
            if let Some(errors) = o.get("errors").and_then(|e| e.as_array()) {
                said.extend(errors.iter().map(part));
            }
            if said.is_empty() {
                String::from_utf8_lossy(body).into_owned()
            } else {
                said.join("; ")
            }
        }
        _ => html_title(body).unwrap_or_else(|| String::from_utf8_lossy(body).into_owned()),
    };
    one_line(&text, 300)
}

/// Jenkins answers errors with an HTML page whose title says what went wrong.
fn html_title(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let start = text.find("<title>")? + "<title>".len();
    let end = text[start..].find("</title>")? + start;
    Some(text[start..end].to_owned())
}

/// `text` on one line, cut to `keep` characters.
pub fn one_line(text: &str, keep: usize) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(keep) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

pub fn describe_send_error(target: &str, e: &reqwest::Error) -> String {
    if e.is_timeout() {
        format!("{target} did not answer in time")
    } else if e.is_connect() {
        format!("could not connect to {target}")
    } else {
        match std::error::Error::source(e) {
            Some(cause) => format!("request to {target} failed: {cause}"),
            None => format!("request to {target} failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn githubs_exhausted_403_waits_until_the_reset() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let h = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1090"),
        ]);
        assert_eq!(
            rate_limit_wait(StatusCode::FORBIDDEN, &h, now),
            Some(Duration::from_secs(90))
        );
        // A 403 with requests left is a refusal (a token without the scope).
        let h = headers(&[("x-ratelimit-remaining", "4999")]);
        assert_eq!(rate_limit_wait(StatusCode::FORBIDDEN, &h, now), None);
    }

    #[test]
    fn a_429_waits_for_retry_after_or_buildkites_reset() {
        let now = SystemTime::now();
        let h = headers(&[("retry-after", "7")]);
        assert_eq!(
            rate_limit_wait(StatusCode::TOO_MANY_REQUESTS, &h, now),
            Some(Duration::from_secs(7))
        );
        let h = headers(&[("ratelimit-reset", "12")]);
        assert_eq!(
            rate_limit_wait(StatusCode::TOO_MANY_REQUESTS, &h, now),
            Some(Duration::from_secs(12))
        );
        assert_eq!(
            rate_limit_wait(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), now),
            Some(DEFAULT_RATE_LIMIT_WAIT)
        );
    }

    #[test]
    fn a_404_names_what_was_not_found_and_the_cis_words() {
        let body = br#"{"message":"Not Found","documentation_url":"https://docs.github.com"}"#;
        match judge(
            "GitHub",
            "workflow downstream.yml in acme/app on ref main",
            StatusCode::NOT_FOUND,
            &HeaderMap::new(),
            body,
        ) {
            Failure::Refused(reason) => assert_eq!(
                reason,
                "GitHub answered 404: workflow downstream.yml in acme/app on ref main not found (Not Found)"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn messages_are_read_from_each_cis_error_shape() {
        assert_eq!(
            their_message(br#"{"message":"Validation Failed","errors":["Branch is required"]}"#),
            "Validation Failed; Branch is required"
        );
        assert_eq!(
            their_message(br#"{"message":{"base":["Reference not found"]}}"#),
            r#"{"base":["Reference not found"]}"#
        );
        assert_eq!(
            their_message(b"<html><head><title>Error 404 Not Found</title></head></html>"),
            "Error 404 Not Found"
        );
    }
}
