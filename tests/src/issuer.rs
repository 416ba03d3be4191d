//! A test OIDC issuer on loopback: HTTPS with a CA the test makes, its discovery
//! document and JWKS where OpenID Connect Discovery puts them, publishing the
//! simulator's signing keys ([`SigningKey`]). The key set can be rotated.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::get;
use axum::Router;
pub use conjunction_sim::oidc::{hs256_with_public_key, jwks, unsigned, SigningKey};
use serde_json::{json, Value};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

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
