//! The generic webhook trigger: the trigger payload as JSON, signed with the
//! project's secret and authorised with its token when they are set.

use std::time::Duration;

use conjunction_protocol::trigger::{TriggerPayload, SIGNATURE_HEADER};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::outcome::{Accepted, Outcome};
use crate::call::{self, Failure};

/// `sha256=<hex HMAC-SHA256 of body>`, the value of the signature header.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub struct Webhook<'a> {
    pub url: &'a str,
    pub token: Option<&'a str>,
    pub secret: Option<&'a str>,
}

/// POSTs `payload` (with its report URL and build token filled in) to the webhook.
/// `delivery` goes in `X-Conjunction-Delivery`, the same for every try of one
/// attempt, so that a receiver can drop duplicates.
pub async fn trigger(
    client: &reqwest::Client,
    timeout: Duration,
    w: &Webhook<'_>,
    payload: &TriggerPayload,
    delivery: &str,
) -> Outcome {
    let body = serde_json::to_string(payload).expect("trigger payloads serialize");
    let target = conjunction_protocol::http_url::redact_str(w.url);
    let mut request = client
        .post(w.url)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Conjunction-Delivery", delivery)
        .body(body.clone());
    if let Some(secret) = w.secret {
        request = request.header(SIGNATURE_HEADER, signature(secret, body.as_bytes()));
    }
    let mut request = match request.build() {
        Ok(request) => request,
        Err(e) => {
            return Err(Failure::Transient {
                error: call::describe_send_error(&target, &e),
                retry_after: None,
            })
        }
    };
    if let Some(token) = w.token {
        // Replaces the Basic header reqwest makes from user info in the URL
        // (registration refuses both, but a project stored before may have them): a
        // request carries one Authorization header.
        if let Some(value) = call::secret_header(&format!("Bearer {token}")) {
            request
                .headers_mut()
                .insert(reqwest::header::AUTHORIZATION, value);
        }
    }
    match client.execute(request).await {
        Ok(response) => {
            let status = response.status();
            if status.is_success() {
                return Ok(Accepted::default());
            }
            let headers = response.headers().clone();
            let body = call::read_body(response, 4096).await;
            // A generic receiver is no CI with a documented limit: a 429 is a try
            // like any other, retried after its Retry-After.
            let said = call::one_line(&String::from_utf8_lossy(&body), 300);
            let error = if said.is_empty() {
                format!("{target} answered {status}")
            } else {
                format!("{target} answered {status}: {said}")
            };
            let retry_after = headers
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let transient = status.is_server_error()
                || status == reqwest::StatusCode::REQUEST_TIMEOUT
                || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
            if transient {
                Err(Failure::Transient { error, retry_after })
            } else {
                Err(Failure::Refused(error))
            }
        }
        Err(e) => Err(Failure::Transient {
            error: call::describe_send_error(&target, &e),
            retry_after: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
