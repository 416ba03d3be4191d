//! An issuer's signing keys, as its JWKS document (RFC 7517) publishes them: each key
//! with its id and the one algorithm it verifies.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

/// The algorithms conjunction verifies: what GitHub, GitLab and Buildkite sign with
/// (RS256) and the one elliptic curve that is common besides (ES256).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Rs256,
    Es256,
}

impl Algorithm {
    /// The name a JWS header gives it.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Es256 => "ES256",
        }
    }
}

/// One public key and the algorithm it is for. The algorithm is the key's, never
/// the token's: a token that names another one is refused, so an RSA public key can
/// never be used as an HMAC secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub kid: String,
    pub algorithm: Algorithm,
    material: Material,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Material {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// An uncompressed P-256 point: `0x04 || x || y`.
    P256 {
        point: Vec<u8>,
    },
}

impl Key {
    /// Whether `signature` signs `message` under this key.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        use ring::signature;
        match &self.material {
            Material::Rsa { n, e } => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
            // JWS carries ECDSA signatures as r || s, fixed width (RFC 7518 3.4).
            Material::P256 { point } => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, signature)
                    .is_ok()
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("the key set is not a JWKS document: {0}")]
    NotJwks(String),
    #[error("the key set holds no key conjunction can verify with (RS256 or ES256 signing keys with a kid)")]
    NoUsableKey,
}

#[derive(Deserialize)]
struct Document {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// The keys of a JWKS document that sign and that conjunction can verify with. Keys
/// for encryption, without a `kid`, of other types or curves, or with an `alg` their
/// type does not fit are left out, as issuers publish such keys beside their signing
/// ones.
pub fn read_jwks(json: &[u8]) -> Result<Vec<Key>, JwksError> {
    let document: Document =
        serde_json::from_slice(json).map_err(|e| JwksError::NotJwks(e.to_string()))?;
    let keys: Vec<Key> = document.keys.into_iter().filter_map(key).collect();
    if keys.is_empty() {
        return Err(JwksError::NoUsableKey);
    }
    Ok(keys)
}

fn key(jwk: Jwk) -> Option<Key> {
    if jwk.usage.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    let kid = jwk.kid.filter(|k| !k.is_empty())?;
    let decode = |field: Option<String>| URL_SAFE_NO_PAD.decode(field?.trim_end_matches('=')).ok();
    let (algorithm, material) = match jwk.kty.as_str() {
        "RSA" => {
            let n = decode(jwk.n)?;
            let e = decode(jwk.e)?;
            // RS256 needs a modulus of 2048 bits at least (RFC 7518 3.3); ring
            // refuses smaller ones too, but a key that cannot verify is not a key.
            if n.iter().skip_while(|b| **b == 0).count() < 256 {
                return None;
            }
            (Algorithm::Rs256, Material::Rsa { n, e })
        }
        "EC" if jwk.crv.as_deref() == Some("P-256") => {
            let (x, y) = (decode(jwk.x)?, decode(jwk.y)?);
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (Algorithm::Es256, Material::P256 { point })
        }
        _ => return None,
    };
    if jwk.alg.as_deref().is_some_and(|a| a != algorithm.name()) {
        return None;
    }
    Some(Key {
        kid,
        algorithm,
        material,
    })
}
