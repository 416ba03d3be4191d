//! CI identity without stored secrets (OIDC): an issuer's published keys, and the
//! verification of the short-lived id tokens its CI jobs are given.
//!
//! Verification uses `ring`, the crypto provider rustls already brings, so the
//! build keeps one. This room is pure: fetching and caching the keys, and matching a
//! token's claims to a project's trusted identities, build on it.

// Verified and tested here; taking id tokens on `POST /v1/reports` (the issuers'
// key cache and the projects' trusted identities) is the next step of issue 22.
#![allow(dead_code, unused_imports)]

mod identity;
mod keys;
mod token;

pub use identity::{matches, Mismatch};
pub use keys::{read_jwks, JwksError, Key};
pub use token::{key_id, verify, Expected, TokenError, LEEWAY_SECS};

#[cfg(test)]
mod tests;
