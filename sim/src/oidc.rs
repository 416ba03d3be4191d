//! Signing keys of a simulated OIDC issuer, as a CI's issuer has them: RS256 (made by
//! the openssl command, as ring does not generate RSA keys) and ES256 (made by ring),
//! each with its JWK, and the id tokens they sign, well formed or forged on purpose.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::{json, Value};

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What the shell `command` (an openssl pipeline) writes out: ring does not generate
/// RSA keys, so the simulators' RSA keys come from the openssl command.
pub(crate) fn openssl(command: &str) -> Vec<u8> {
    let out = std::process::Command::new("sh")
        .args(["-c", command])
        .output()
        .expect("openssl runs (Debian's openssl package; .ci/run installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
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
        let der = openssl(
            "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 | openssl pkcs8 -topk8 -nocrypt -outform der",
        );
        let pair = RsaKeyPair::from_pkcs8(&der).expect("an RSA key in PKCS#8");
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

/// A JWKS document publishing `keys`.
pub fn jwks(keys: &[&SigningKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
}
