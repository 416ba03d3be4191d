//! CI identity without stored secrets (OIDC): an issuer's published keys, and the
//! verification of the short-lived id tokens its CI jobs are given.
//!
//! Verification uses `ring`, the crypto provider rustls already brings, so the
//! build keeps one. `issuers` fetches and keeps each issuer's keys (discovery, then
//! its JWKS, over HTTPS); `reports` takes a report's token (whose identity it is,
//! one build per token); `keys`, `token` and `identity` are pure.

mod identity;
mod issuers;
mod keys;
mod reports;
mod token;

pub use issuers::Issuers;
pub use reports::{IdTokens, Identified, OidcConfig, Refused};
pub use token::LEEWAY_SECS;

#[cfg(test)]
mod tests;
