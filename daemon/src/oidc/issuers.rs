//! Issuers' signing keys, fetched when first needed and kept: a token whose key is
//! not among them makes one fetch of the issuer's key set (it may have rotated), but
//! at most one per [`REFRESH_COOLDOWN`] per issuer, so tokens with made-up key ids
//! cannot make the daemon hammer an issuer. A failed or empty fetch keeps the keys
//! the daemon had.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::keys::{read_jwks, Key};

/// The least time between two fetches of one issuer's keys.
pub const REFRESH_COOLDOWN: Duration = Duration::from_secs(60);

/// The most bytes of a discovery document or key set read.
const MAX_DOCUMENT: usize = 256 * 1024;

/// Fetches an issuer's key set (its JWKS document's bytes), or says why it could not.
pub type Fetch = Arc<
    dyn Fn(String) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send>> + Send + Sync,
>;

#[derive(Default)]
struct Entry {
    keys: Arc<Vec<Key>>,
    /// When the last fetch began, successful or not.
    tried: Option<Instant>,
}

pub struct Issuers {
    fetch: Fetch,
    cooldown: Duration,
    known: Mutex<HashMap<String, Entry>>,
}

/// Why an issuer's keys could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the keys of {issuer} could not be fetched: {reason}")]
pub struct Unavailable {
    pub issuer: String,
    pub reason: String,
}

impl Issuers {
    pub fn with_cooldown(fetch: Fetch, cooldown: Duration) -> Self {
        Self {
            fetch,
            cooldown,
            known: Mutex::default(),
        }
    }

    /// Fetches issuers' keys over HTTPS: the discovery document
    /// (`<issuer>/.well-known/openid-configuration`), then the key set its `jwks_uri`
    /// names. `client` trusts the web's roots and any CA the settings add.
    pub fn https(client: reqwest::Client, cooldown: Duration) -> Self {
        Self::with_cooldown(
            Arc::new(move |issuer| {
                let client = client.clone();
                Box::pin(async move { fetch_jwks(&client, &issuer).await })
            }),
            cooldown,
        )
    }

    /// The keys of `issuer`, fetched again first if none of them is `kid` and the
    /// cooldown allows; the caller verifies with what it gets (and refuses a token
    /// whose key is still unknown).
    pub async fn keys(&self, issuer: &str, kid: &str) -> Result<Arc<Vec<Key>>, Unavailable> {
        let now = Instant::now();
        let (had, due) = {
            let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            let entry = known.entry(issuer.to_owned()).or_default();
            if entry.keys.iter().any(|k| k.kid == kid) {
                return Ok(entry.keys.clone());
            }
            let due = entry
                .tried
                .is_none_or(|t| now.duration_since(t) >= self.cooldown);
            if due {
                // Taken now, so that concurrent misses make one fetch, not many.
                entry.tried = Some(now);
            }
            (entry.keys.clone(), due)
        };
        if !due {
            return Ok(had);
        }
        let fetched = (self.fetch)(issuer.to_owned())
            .await
            .and_then(|bytes| read_jwks(&bytes).map_err(|e| e.to_string()));
        match fetched {
            Ok(keys) => {
                let keys = Arc::new(keys);
                let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
                known.entry(issuer.to_owned()).or_default().keys = keys.clone();
                Ok(keys)
            }
            Err(reason) if had.is_empty() => Err(Unavailable {
                issuer: issuer.to_owned(),
                reason,
            }),
            Err(reason) => {
                tracing::warn!(%issuer, %reason, "an issuer's keys could not be fetched again; keeping those it had");
                Ok(had)
            }
        }
    }
}

async fn fetch_jwks(client: &reqwest::Client, issuer: &str) -> Result<Vec<u8>, String> {
    if !issuer.starts_with("https://") {
        return Err("issuers are fetched over https only".into());
    }
    let discovery = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let document = get(client, &discovery).await?;
    #[derive(serde::Deserialize)]
    struct Discovery {
        issuer: String,
        jwks_uri: String,
    }
    let found: Discovery = serde_json::from_slice(&document)
        .map_err(|e| format!("{discovery} is not a discovery document: {e}"))?;
    // A discovery document speaks for its own issuer only (OpenID Connect Discovery
    // 4.3).
    if found.issuer != issuer {
        return Err(format!(
            "{discovery} names issuer {:?}, not {issuer:?}",
            found.issuer
        ));
    }
    if !found.jwks_uri.starts_with("https://") {
        return Err(format!("{discovery} names a jwks_uri that is not https"));
    }
    get(client, &found.jwks_uri).await
}

async fn get(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let mut response = client
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("{url}: {e}"))? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_DOCUMENT {
            return Err(format!("{url} sent more than {MAX_DOCUMENT} bytes"));
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A fake issuer whose key set the test changes, counting fetches.
    fn issuer(set: Arc<Mutex<Result<String, String>>>, fetches: Arc<AtomicUsize>) -> Fetch {
        Arc::new(move |_| {
            let (set, fetches) = (set.clone(), fetches.clone());
            Box::pin(async move {
                fetches.fetch_add(1, Ordering::SeqCst);
                set.lock().unwrap().clone().map(String::into_bytes)
            })
        })
    }

    /// A key set with P-256 keys of these ids (the same point: only the ids matter
    /// here).
    fn jwks(kids: &[&str]) -> String {
        let keys: Vec<serde_json::Value> = kids
            .iter()
            .map(|kid| {
                serde_json::json!({"kty": "EC", "crv": "P-256", "kid": kid,
                    "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                    "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"})
            })
            .collect();
        serde_json::json!({ "keys": keys }).to_string()
    }

    const ISSUER: &str = "https://gitlab.example";

    #[tokio::test]
    async fn keys_are_fetched_once_and_again_on_an_unknown_kid_after_the_cooldown() {
        let set = Arc::new(Mutex::new(Ok(jwks(&["k1"]))));
        let fetches = Arc::new(AtomicUsize::new(0));
        let cooldown = Duration::from_millis(200);
        let issuers = Issuers::with_cooldown(issuer(set.clone(), fetches.clone()), cooldown);
        let kids = |keys: &[Key]| keys.iter().map(|k| k.kid.clone()).collect::<Vec<_>>();

        assert_eq!(kids(&issuers.keys(ISSUER, "k1").await.unwrap()), ["k1"]);
        assert_eq!(kids(&issuers.keys(ISSUER, "k1").await.unwrap()), ["k1"]);
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            1,
            "a known key is not fetched again"
        );

        // The issuer rotates; a token with the new kid comes within the cooldown of
        // the last fetch: no fetch, the old keys (the token will be refused).
        *set.lock().unwrap() = Ok(jwks(&["k2"]));
        issuers.keys(ISSUER, "k2").await.unwrap();
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            1,
            "no fetch within the cooldown"
        );
        tokio::time::sleep(cooldown).await;
        assert_eq!(
            kids(&issuers.keys(ISSUER, "k2").await.unwrap()),
            ["k2"],
            "rotation picked up"
        );
        assert_eq!(fetches.load(Ordering::SeqCst), 2);

        // Made-up kids cost one fetch per cooldown, however many tokens carry them.
        tokio::time::sleep(cooldown).await;
        for i in 0..20 {
            issuers.keys(ISSUER, &format!("forged-{i}")).await.unwrap();
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 3);

        // A failed or empty fetch keeps what the daemon had.
        tokio::time::sleep(cooldown).await;
        *set.lock().unwrap() = Err("503".into());
        assert_eq!(kids(&issuers.keys(ISSUER, "k3").await.unwrap()), ["k2"]);
        tokio::time::sleep(cooldown).await;
        *set.lock().unwrap() = Ok(r#"{"keys":[]}"#.into());
        assert_eq!(kids(&issuers.keys(ISSUER, "k3").await.unwrap()), ["k2"]);
    }

    #[tokio::test]
    async fn an_issuer_never_fetched_is_unavailable_until_its_keys_come() {
        let set = Arc::new(Mutex::new(Err("connection refused".to_owned())));
        let fetches = Arc::new(AtomicUsize::new(0));
        let issuers = Issuers::with_cooldown(issuer(set, fetches), Duration::ZERO);
        let e = issuers.keys(ISSUER, "k1").await.unwrap_err();
        assert_eq!(e.reason, "connection refused");
        assert!(e.to_string().contains(ISSUER));
    }

    #[tokio::test]
    async fn only_https_issuers_are_fetched() {
        let issuers = Issuers::https(reqwest::Client::new(), REFRESH_COOLDOWN);
        let e = issuers
            .keys("http://gitlab.example", "k1")
            .await
            .unwrap_err();
        assert!(e.reason.contains("https only"), "{e}");
    }
}
