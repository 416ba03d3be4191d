//! Verifying a CI's id token: a compact JWS (RFC 7515) signed by one of its issuer's
//! keys, whose registered claims (RFC 7519) say it is for conjunction and valid now.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::keys::Key;

/// How far clocks may disagree, in seconds: PyPI's choice for the same tokens.
pub const LEEWAY_SECS: u64 = 30;

/// The most bytes an id token may have; GitHub's are about 1.2 KiB, GitLab's 1.5 KiB.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// What a token must say to be taken.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    /// Seconds since the Unix epoch.
    pub now: u64,
}

/// Why a token was not taken. The messages say what to fix without repeating the
/// token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error(
        "the id token is not a signed JWT (three base64url parts with a JSON header and claims)"
    )]
    Malformed,
    #[error("the id token names no signing key (kid)")]
    NoKeyId,
    /// The issuer's key set may have been rotated: fetch it again (with a cooldown)
    /// and retry once.
    #[error("the id token is signed with key {0:?}, which the issuer does not publish")]
    UnknownKey(String),
    #[error("the id token says it is signed with {named:?}, but its issuer's key {kid:?} signs with {key}")]
    WrongAlgorithm {
        named: String,
        kid: String,
        key: &'static str,
    },
    #[error("the id token's signature does not verify with its issuer's key")]
    BadSignature,
    #[error("the id token was issued by {0:?}, not the issuer this identity trusts")]
    WrongIssuer(String),
    #[error("the id token's audience must be exactly {expected:?}; request the token with that audience")]
    WrongAudience { expected: String },
    #[error("the id token expired; request a new one in the job, just before reporting")]
    Expired,
    #[error("the id token is not valid yet (nbf); check the clocks")]
    NotYetValid,
    #[error("the id token has no {0:?} claim")]
    MissingClaim(&'static str),
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    /// Extensions the verifier must understand (RFC 7515 4.1.11); conjunction knows
    /// none, so a token that lists any is refused.
    crit: Option<Value>,
}

/// The `iss` of a token's claims, read without verifying anything: to find which of
/// a project's identities (and whose keys) it is to be checked against.
pub fn issuer(token: &str) -> Result<String, TokenError> {
    let (_, [_, c, _]) = parts(token)?;
    #[derive(Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    let claims: Iss = URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::Malformed)?;
    claims.iss.ok_or(TokenError::MissingClaim("iss"))
}

/// The `kid` of a token's header, read without verifying anything: to find its key.
pub fn key_id(token: &str) -> Result<String, TokenError> {
    let (header, _) = parts(token)?;
    header
        .kid
        .filter(|k| !k.is_empty())
        .ok_or(TokenError::NoKeyId)
}

fn parts(token: &str) -> Result<(Header, [&str; 3]), TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed);
    }
    let mut split = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (split.next(), split.next(), split.next(), split.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice::<Header>(&b).ok())
        .ok_or(TokenError::Malformed)?;
    if header.crit.is_some() {
        return Err(TokenError::Malformed);
    }
    Ok((header, [h, c, s]))
}

/// Verifies `token` against the issuer's `keys` and what is `expected` of it, and
/// gives back its claims for the identity to be matched on.
pub fn verify(
    token: &str,
    keys: &[Key],
    expected: Expected<'_>,
) -> Result<Map<String, Value>, TokenError> {
    let (header, [h, c, s]) = parts(token)?;
    let kid = header
        .kid
        .filter(|k| !k.is_empty())
        .ok_or(TokenError::NoKeyId)?;
    let key = keys
        .iter()
        .find(|k| k.kid == kid)
        .ok_or_else(|| TokenError::UnknownKey(kid.clone()))?;
    // The key says how it verifies; the header must agree (so `none` and `HS256`
    // never get this far).
    if header.alg != key.algorithm.name() {
        return Err(TokenError::WrongAlgorithm {
            named: header.alg,
            kid,
            key: key.algorithm.name(),
        });
    }
    let signature = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| TokenError::Malformed)?;
    let signed = &token[..h.len() + 1 + c.len()];
    if !key.verifies(signed.as_bytes(), &signature) {
        return Err(TokenError::BadSignature);
    }
    let claims: Map<String, Value> = URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::Malformed)?;
    check(&claims, expected)?;
    Ok(claims)
}

/// The registered claims: issuer, a single audience, expiry and not-before.
fn check(claims: &Map<String, Value>, expected: Expected<'_>) -> Result<(), TokenError> {
    let issuer = claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or(TokenError::MissingClaim("iss"))?;
    if issuer != expected.issuer {
        return Err(TokenError::WrongIssuer(issuer.to_owned()));
    }
    // One audience, exactly ours: a token minted for several services is not ours
    // alone (PyPI's strict audience).
    let audience = match claims.get("aud") {
        Some(Value::String(a)) => Some(a.as_str()),
        Some(Value::Array(list)) if list.len() == 1 => list[0].as_str(),
        Some(_) => None,
        None => return Err(TokenError::MissingClaim("aud")),
    };
    if audience != Some(expected.audience) {
        return Err(TokenError::WrongAudience {
            expected: expected.audience.to_owned(),
        });
    }
    let time = |name: &'static str| claims.get(name).and_then(Value::as_u64);
    let expires = time("exp").ok_or(TokenError::MissingClaim("exp"))?;
    if expected.now >= expires.saturating_add(LEEWAY_SECS) {
        return Err(TokenError::Expired);
    }
    if time("nbf").is_some_and(|nbf| expected.now.saturating_add(LEEWAY_SECS) < nbf) {
        return Err(TokenError::NotYetValid);
    }
    if claims.contains_key("nbf") && time("nbf").is_none() {
        return Err(TokenError::Malformed);
    }
    Ok(())
}
