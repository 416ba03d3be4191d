//! A test OIDC issuer on loopback: HTTPS with a CA the test makes, its discovery
//! document and JWKS where OpenID Connect Discovery puts them, and RS256 and ES256
//! keys the test makes (openssl for RSA, which ring does not generate; ring for
//! P-256), which sign id tokens as a CI's issuer does. The key set can be rotated.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::{json, Value};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs a message with a test key.
type Sign = Box<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

/// A signing key with its id.
pub struct SigningKey {
    pub kid: String,
    pub alg: &'static str,
    sign: Sign,
    pub jwk: Value,
    /// For the HS256 confusion: the bytes of its public key.
    pub public: Vec<u8>,
}

impl SigningKey {
    /// A 2048-bit RSA key (RS256), made by openssl as ring's documentation makes them.
    pub fn rs256(kid: &str) -> Self {
        let out = std::process::Command::new("sh")
            .args([
                "-c",
                "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 | openssl pkcs8 -topk8 -nocrypt -outform der",
            ])
            .output()
            .expect("openssl runs (Debian's openssl package; .ci/run installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pair = RsaKeyPair::from_pkcs8(&out.stdout).expect("an RSA key in PKCS#8");
        let public: ring::rsa::PublicKeyComponents<Vec<u8>> = pair.public().into();
        let jwk = json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
            "n": b64(&public.n), "e": b64(&public.e)});
        Self {
            kid: kid.into(),
            alg: "RS256",
            public: public.n.clone(),
            sign: Box::new(move |m| {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    m,
                    &mut sig,
                )
                .expect("RSA signs");
                sig
            }),
            jwk,
        }
    }

    /// A P-256 key (ES256).
    pub fn es256(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("a P-256 key");
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("a P-256 key");
        let point = pair.public_key().as_ref().to_vec();
        let jwk = json!({"kty": "EC", "crv": "P-256", "use": "sig", "kid": kid,
            "x": b64(&point[1..33]), "y": b64(&point[33..])});
        Self {
            kid: kid.into(),
            alg: "ES256",
            public: point,
            sign: Box::new(move |m| {
                pair.sign(&SystemRandom::new(), m)
                    .expect("ECDSA signs")
                    .as_ref()
                    .to_vec()
            }),
            jwk,
        }
    }

    /// A token with `claims`, its header naming this key and its algorithm.
    pub fn token(&self, claims: &Value) -> String {
        self.token_with(
            &json!({"alg": self.alg, "kid": self.kid, "typ": "JWT"}),
            claims,
        )
    }

    /// A token with this key's signature under any header.
    pub fn token_with(&self, header: &Value, claims: &Value) -> String {
        let signed = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = (self.sign)(signed.as_bytes());
        format!("{signed}.{}", b64(&sig))
    }
}

/// An HS256 token keyed with `key`'s public key, naming `key`'s id: the classic
/// confusion a verifier must refuse.
pub fn hs256_with_public_key(key: &SigningKey, claims: &Value) -> String {
    let signed = format!(
        "{}.{}",
        b64(json!({"alg": "HS256", "kid": key.kid})
            .to_string()
            .as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mac = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key.public),
        signed.as_bytes(),
    );
    format!("{signed}.{}", b64(mac.as_ref()))
}

/// An unsigned token (`alg: none`).
pub fn unsigned(kid: &str, claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64(json!({"alg": "none", "kid": kid}).to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

#[derive(Clone)]
struct Served {
    issuer: String,
    jwks: Arc<Mutex<Value>>,
    fetches: Arc<Mutex<u32>>,
}

pub struct TestIssuer {
    pub url: String,
    /// The CA the daemon must trust (`[oidc] ca_file`).
    pub ca_file: PathBuf,
    served: Served,
}

impl TestIssuer {
    /// Serves on a free loopback port with a certificate made in `dir`, publishing
    /// `keys`.
    pub async fn start(dir: &Path, keys: &[&SigningKey]) -> Self {
        let (cert, key) = crate::chat::certificate(dir);
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
            .expect("the certificate file")
            .collect::<Result<_, _>>()
            .expect("PEM certificates");
        let key = PrivateKeyDer::from_pem_file(&key).expect("the key file");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("a server certificate");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("address");
        let url = format!("https://127.0.0.1:{}", addr.port());
        let served = Served {
            issuer: url.clone(),
            jwks: Arc::new(Mutex::new(jwks(keys))),
            fetches: Arc::default(),
        };
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/keys", get(key_set))
            .with_state(served.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            url,
            ca_file: dir.join("ca.pem"),
            served,
        }
    }

    /// Publishes `keys` from now on, in place of the old ones.
    pub fn rotate(&self, keys: &[&SigningKey]) {
        *self.served.jwks.lock().unwrap_or_else(|p| p.into_inner()) = jwks(keys);
    }

    /// How many times its key set was fetched.
    pub fn fetches(&self) -> u32 {
        *self
            .served
            .fetches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

fn jwks(keys: &[&SigningKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
}

async fn discovery(State(s): State<Served>) -> axum::Json<Value> {
    axum::Json(json!({
        "issuer": s.issuer,
        "jwks_uri": format!("{}/keys", s.issuer),
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
    }))
}

async fn key_set(State(s): State<Served>) -> axum::Json<Value> {
    *s.fetches.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    axum::Json(s.jwks.lock().unwrap_or_else(|p| p.into_inner()).clone())
}
