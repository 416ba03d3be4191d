//! A GitHub App's credentials: the App's own JWT (RS256 with its private key, issued
//! a minute in the past and valid for nine minutes, as GitHub's documentation asks),
//! the installation on a repository, and installation tokens, fetched once and kept
//! until five minutes before they expire.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use conjunction_protocol::forge::GithubApp;
use ring::signature::RsaKeyPair;
use serde::Deserialize;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::PrivateKeyDer;

use crate::call::{self, Failure};

/// How long before its expiry a kept installation token is fetched again.
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Installation tokens kept per App and repository.
#[derive(Default)]
pub struct Apps {
    tokens: Mutex<HashMap<TokenKey, Kept>>,
}

#[derive(Clone)]
struct Kept {
    token: String,
    expires: SystemTime,
}

#[derive(Deserialize)]
struct Installation {
    id: u64,
}

/// A kept token's API, App, repository, and whether it may write comments.
type TokenKey = (String, String, String, bool);

#[derive(Deserialize)]
struct AccessToken {
    token: String,
    expires_at: String,
}

impl Apps {
    /// An installation token for `app` on `repo` at `api`: the kept one while it has
    /// more than five minutes left, else a new one. `comments` asks for writing
    /// pull requests' comments too, which a target that comments on candidates needs.
    pub async fn token(
        &self,
        client: &reqwest::Client,
        api: &str,
        app: &GithubApp,
        repo: &str,
        comments: bool,
    ) -> Result<String, Failure> {
        let key = (api.to_owned(), app.id.clone(), repo.to_owned(), comments);
        let now = SystemTime::now();
        if let Some(kept) = self.lock().get(&key) {
            if kept.expires > now + REFRESH_MARGIN {
                return Ok(kept.token.clone());
            }
        }
        let jwt = jwt(app, now)?;
        let api = api.trim_end_matches('/');
        let installation: Installation = call::send(
            client,
            github_request(client.get(format!("{api}/repos/{repo}/installation")), &jwt),
            "GitHub",
            &format!("an installation of GitHub App {} on {repo}", app.id),
            |_, _, body| async move { super::json("GitHub", &body) },
        )
        .await?;
        let name = repo.rsplit('/').next().unwrap_or(repo);
        let body = serde_json::json!({
            "repositories": [name],
            // Only what a check run (and a candidate's comment) needs: asking for a
            // permission the installation lacks is refused outright.
            "permissions": if comments {
                serde_json::json!({"checks": "write", "pull_requests": "write"})
            } else {
                serde_json::json!({"checks": "write"})
            },
        });
        let token: AccessToken = call::send(
            client,
            github_request(
                client.post(format!(
                    "{api}/app/installations/{}/access_tokens",
                    installation.id
                )),
                &jwt,
            )
            .json(&body),
            "GitHub",
            &format!("installation {} of GitHub App {}", installation.id, app.id),
            |_, _, body| async move { super::json("GitHub", &body) },
        )
        .await?;
        let expires = humantime::parse_rfc3339_weak(&token.expires_at)
            .map_err(|e| {
                Failure::Transient {
                    error: format!("GitHub gave an installation token whose expires_at does not read as a time ({e})"),
                    retry_after: None,
                }
            })?;
        self.lock().insert(
            key,
            Kept {
                token: token.token.clone(),
                expires,
            },
        );
        Ok(token.token)
    }

    /// Forgets the kept token, after GitHub refused it.
    pub fn forget(&self, api: &str, app: &GithubApp, repo: &str) {
        self.lock()
            .retain(|(a, id, r, _), _| (a.as_str(), id, r.as_str()) != (api, &app.id, repo));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TokenKey, Kept>> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `request` as GitHub's REST API asks: its media type and API version, and the
/// bearer token.
pub fn github_request(request: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
    call::bearer(
        request
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28"),
        token,
    )
}

/// The App's JWT at `now`: issued 60 s in the past (for clock drift) and expiring
/// 9 minutes later, within GitHub's 10.
pub fn jwt(app: &GithubApp, now: SystemTime) -> Result<String, Failure> {
    let key = key_pair(&app.private_key)?;
    let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let iss: serde_json::Value = match app.id.parse::<u64>() {
        Ok(n) => n.into(),
        Err(_) => app.id.clone().into(),
    };
    let claims = serde_json::json!({"iat": secs - 60, "exp": secs + 540, "iss": iss});
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut signature,
    )
    .map_err(|_| Failure::Refused("the GitHub App's private key could not sign".into()))?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

/// The App's RSA key from its PEM: PKCS#1 (`BEGIN RSA PRIVATE KEY`, as GitHub hands
/// it out) or PKCS#8 (`BEGIN PRIVATE KEY`).
fn key_pair(pem: &str) -> Result<RsaKeyPair, Failure> {
    let refused = |why: &str| {
        Failure::Refused(format!(
            "the GitHub App's private key {why}; download a new one from the App's settings"
        ))
    };
    let der = PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|_| refused("is not a PEM private key"))?;
    match der {
        PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
        PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
        _ => return Err(refused("is not an RSA key")),
    }
    .map_err(|e| refused(&format!("was not accepted ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_that_is_not_rsa_pem_is_refused_with_what_to_do() {
        let app = GithubApp {
            id: "123".into(),
            private_key: "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"
                .into(),
        };
        let Err(Failure::Refused(why)) = jwt(&app, SystemTime::now()) else {
            panic!("a broken key signs nothing");
        };
        assert!(why.contains("download a new one"), "{why}");
    }
}
