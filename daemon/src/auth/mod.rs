//! Tokens: generating them, hashing them for storage, checking them in constant time,
//! and who a person's token says is asking.

mod caller;
mod files;

use axum::http::HeaderMap;
use conjunction_protocol::BuildId;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use caller::{AccessConfig, Caller, LastUsed};
pub use files::{build_token_key, operator_tokens, TokenFileError, OPERATOR_TOKEN_FILE};

/// The SHA-256 of a token. Tokens are long random strings, so a fast hash is enough:
/// what matters is that the database never holds a usable token.
pub type TokenHash = [u8; 32];

pub fn hash_token(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// The prefix of people's tokens (whatever their scope), so that a secret scanner
/// and a person reading a leaked string can tell what it opens.
pub const PERSON_TOKEN_PREFIX: &str = "cjp";

/// A new random token: a readable prefix saying what it is for, then 256 random bits.
pub fn generate_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}_{}", hex::encode(bytes))
}

/// The key build tokens are derived from. A build token is the HMAC of its build and
/// attempt under this key, so the database holds none of them, not even for triggers
/// still queued: the dispatcher derives each one as it sends, and the store keeps only
/// its hash, to know whom a report speaks for.
#[derive(Clone)]
pub struct BuildTokens {
    key: [u8; 32],
}

impl BuildTokens {
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    /// The token of `attempt` of `build`.
    pub fn token(&self, build: BuildId, attempt: u32) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(format!("conjunction build token {build} {attempt}").as_bytes());
        format!("cjb_{}", hex::encode(mac.finalize().into_bytes()))
    }
}

impl std::fmt::Debug for BuildTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BuildTokens(<key>)")
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The operator tokens the daemon accepts, as hashes.
#[derive(Clone, Default)]
pub struct OperatorTokens(Vec<TokenHash>);

impl OperatorTokens {
    pub fn new(tokens: impl IntoIterator<Item = String>) -> Self {
        Self(tokens.into_iter().map(|t| hash_token(&t)).collect())
    }

    /// Compares against every configured token without stopping early, so the time
    /// taken says nothing about which one (if any) was close.
    pub fn verify(&self, token: &str) -> bool {
        let candidate = hash_token(token);
        self.0
            .iter()
            .fold(subtle::Choice::from(0), |found, known| {
                found | known.ct_eq(&candidate)
            })
            .into()
    }
}

impl std::fmt::Debug for OperatorTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OperatorTokens({} configured)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_unique_and_verify_only_themselves() {
        let a = generate_token("cjo");
        let b = generate_token("cjo");
        assert_ne!(a, b);
        assert!(a.starts_with("cjo_") && a.len() == 4 + 64);
        let ops = OperatorTokens::new([a.clone()]);
        assert!(ops.verify(&a));
        assert!(!ops.verify(&b));
        assert!(!OperatorTokens::default().verify(&a));
    }

    #[test]
    fn bearer_reads_the_authorization_header() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
