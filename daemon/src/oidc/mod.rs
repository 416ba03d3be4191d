//! CI identity without stored secrets (OIDC): an issuer's published keys, and the
//! verification of the short-lived id tokens its CI jobs are given.
//!
//! Verification uses `ring`, the crypto provider rustls already brings, so the
//! build keeps one. `issuers` fetches and keeps each issuer's keys (discovery, then
//! its JWKS, over HTTPS); the rest is pure.

// Built and tested here; `POST /v1/reports` taking id tokens (a project's trusted
// identities in its settings, the `[oidc]` audience and CA file) is the next step of
// issue 22, which removes this allowance.
#![allow(dead_code, unused_imports)]

mod identity;
mod issuers;
mod keys;
mod token;

pub use identity::{matches, Mismatch};
pub use issuers::{Issuers, Unavailable, REFRESH_COOLDOWN};
pub use keys::{read_jwks, JwksError, Key};
pub use token::{key_id, verify, Expected, TokenError, LEEWAY_SECS};

#[cfg(test)]
mod tests;
