//! Taking a report with a CI's id token: whose identity it is, and that one token
//! reports on one build only (a job's token may report on its build several times,
//! as GitLab gives a job one token for its whole run).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use conjunction_protocol::identity::TrustedCi;
use conjunction_protocol::BuildId;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::issuers::{Issuers, Unavailable};
use super::token::{self, Expected, TokenError};

/// Id tokens for reports (`[oidc]` in the config file).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OidcConfig {
    /// The audience tokens must be for, exactly; the daemon's public URL when left
    /// out.
    pub audience: Option<String>,
    /// A PEM file of CAs to trust besides the web's, for a private issuer (a
    /// self-managed GitLab, GitHub Enterprise Server).
    pub ca_file: Option<PathBuf>,
    /// The least time between two fetches of one issuer's keys for tokens whose key
    /// is unknown.
    pub refresh_cooldown_secs: u64,
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self {
            audience: None,
            ca_file: None,
            refresh_cooldown_secs: super::issuers::REFRESH_COOLDOWN.as_secs(),
        }
    }
}

/// Why a report's id token was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Issuer(#[from] Unavailable),
    #[error("{project} trusts no CI identity of issuer {issuer:?}; add one to its trusted_ci, or report with its report token")]
    NotTrusted { project: String, issuer: String },
    #[error("the id token is not one {project} trusts: {why}")]
    Mismatch { project: String, why: String },
    #[error("this id token reported on build {bound} already; a token reports on one build: request a new one for another")]
    OtherBuild { bound: BuildId },
    #[error("this id token started a root event already; report on its build (the build in that answer), or request a new token for another")]
    SecondRoot,
}

/// What a token was first used for.
#[derive(Debug, Clone, Copy)]
struct Use {
    /// The build it reports on: `None` while its first (root) report is in flight.
    build: Option<BuildId>,
    /// Its expiry, seconds since the epoch: then it is forgotten.
    expires: u64,
}

/// The tokens used so far, by their SHA-256, and when the expired ones were last
/// forgotten.
#[derive(Default)]
struct Used {
    tokens: HashMap<[u8; 32], Use>,
    swept: u64,
}

/// How often expired tokens are forgotten, in seconds: a sweep reads every token
/// remembered, so it is not done on every report.
const SWEEP_EVERY_SECS: u64 = 60;

pub struct IdTokens {
    issuers: Issuers,
    audience: String,
    used: Mutex<Used>,
}

/// Whose a verified token is.
#[derive(Debug, Clone)]
pub struct Identified {
    /// The identity that matched, as the audit trail names it.
    pub identity: String,
    key: [u8; 32],
    expires: u64,
}

impl IdTokens {
    pub fn new(issuers: Issuers, audience: String) -> Self {
        Self {
            issuers,
            audience,
            used: Mutex::default(),
        }
    }

    /// Whether `bearer` is an id token rather than a report or build token.
    pub fn looks_like_one(bearer: &str) -> bool {
        bearer.starts_with("eyJ") && bearer.split('.').count() == 3
    }

    /// Verifies `token` for a report of `project`, which trusts `trusted`, on `build`
    /// (none for a root report), at `now` (seconds since the epoch).
    pub async fn identify(
        &self,
        token: &str,
        project: &str,
        trusted: &[TrustedCi],
        build: Option<BuildId>,
        now: u64,
    ) -> Result<Identified, Refused> {
        let issuer = token::issuer(token)?;
        let candidates: Vec<&TrustedCi> = trusted.iter().filter(|t| t.issuer() == issuer).collect();
        if candidates.is_empty() {
            return Err(Refused::NotTrusted {
                project: project.to_owned(),
                issuer,
            });
        }
        let kid = token::key_id(token)?;
        let keys = self.issuers.keys(&issuer, &kid).await?;
        let expected = Expected {
            issuer: &issuer,
            audience: &self.audience,
            now,
        };
        let claims = token::verify(token, &keys, expected)?;
        let mut why = String::new();
        let Some(identity) =
            candidates
                .into_iter()
                .find(|t| match super::identity::matches(t, &claims) {
                    Ok(()) => true,
                    Err(m) => {
                        why = m.0;
                        false
                    }
                })
        else {
            return Err(Refused::Mismatch {
                project: project.to_owned(),
                why,
            });
        };
        let expires = claims
            .get("exp")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(now);
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if now >= used.swept + SWEEP_EVERY_SECS {
            used.tokens
                .retain(|_, u| u.expires + super::LEEWAY_SECS > now);
            used.swept = now;
        }
        match used.tokens.get(&key).copied() {
            None => {
                used.tokens.insert(key, Use { build, expires });
            }
            Some(Use {
                build: Some(bound), ..
            }) if build != Some(bound) => return Err(Refused::OtherBuild { bound }),
            // A second root report while the first is in flight, or after it: the
            // token already started one root event.
            Some(Use { build: None, .. }) => return Err(Refused::SecondRoot),
            Some(_) => {}
        }
        Ok(Identified {
            identity: identity.to_string(),
            key,
            expires,
        })
    }

    /// Binds a token whose first report was a root report to the root build it
    /// started: its later reports must be on that build.
    pub fn started(&self, identified: &Identified, root: BuildId) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        used.tokens.insert(
            identified.key,
            Use {
                build: Some(root),
                expires: identified.expires,
            },
        );
    }

    /// Forgets a token's first use that was refused, so that the job may try again.
    pub fn refused(&self, identified: &Identified) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if used
            .tokens
            .get(&identified.key)
            .is_some_and(|u| u.build.is_none())
        {
            used.tokens.remove(&identified.key);
        }
    }
}
