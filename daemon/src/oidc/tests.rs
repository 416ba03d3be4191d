//! Tokens signed with the simulator's keys (RS256 by openssl, ES256 by ring), each
//! published in a JWKS document as issuers publish theirs.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use conjunction_sim::oidc::{hs256_with_public_key, jwks, unsigned, SigningKey};
use serde_json::{json, Value};

use super::keys::{read_jwks, JwksError, Key};
use super::token::{key_id, verify, Expected, TokenError, LEEWAY_SECS};

const ISSUER: &str = "https://token.actions.githubusercontent.com";
const AUDIENCE: &str = "https://conjunction.acme.example";
const NOW: u64 = 1_780_000_000;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn claims() -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "iat": NOW - 10, "nbf": NOW - 600, "exp": NOW + 290,
        "repository": "acme/lib", "repository_id": "123456"})
}

fn token(signer: &SigningKey, header: Value, claims: &Value) -> String {
    signer.token_with(&header, claims)
}

fn header(alg: &str, kid: &str) -> Value {
    json!({"alg": alg, "kid": kid, "typ": "JWT"})
}

fn expected() -> Expected<'static> {
    Expected {
        issuer: ISSUER,
        audience: AUDIENCE,
        now: NOW,
    }
}

fn keys(signers: &[&SigningKey]) -> Vec<Key> {
    read_jwks(jwks(signers).to_string().as_bytes()).unwrap()
}

#[test]
fn tokens_signed_with_rs256_and_es256_keys_verify_and_give_their_claims() {
    let (rsa, ec) = (SigningKey::rs256("rsa-1"), SigningKey::es256("ec-1"));
    let set = keys(&[&rsa, &ec]);
    for (signer, alg) in [(&rsa, "RS256"), (&ec, "ES256")] {
        let t = token(signer, header(alg, &signer.kid), &claims());
        assert_eq!(key_id(&t).unwrap(), signer.kid);
        let got = verify(&t, &set, expected()).unwrap();
        assert_eq!(got["repository_id"], "123456");
    }
}

#[test]
fn a_token_is_refused_for_each_thing_that_is_wrong_with_it() {
    let (rsa, ec) = (SigningKey::rs256("rsa-1"), SigningKey::es256("ec-1"));
    let set = keys(&[&rsa, &ec]);
    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = claims();
        change(&mut c);
        token(&rsa, header("RS256", "rsa-1"), &c)
    };
    let cases: Vec<(&str, String, TokenError)> = vec![
        (
            "wrong audience",
            with(&|c| c["aud"] = json!("https://github.com/acme")),
            TokenError::WrongAudience {
                expected: AUDIENCE.into(),
            },
        ),
        (
            "two audiences",
            with(&|c| c["aud"] = json!([AUDIENCE, "https://other.example"])),
            TokenError::WrongAudience {
                expected: AUDIENCE.into(),
            },
        ),
        (
            "no audience",
            with(&|c| {
                c.as_object_mut().unwrap().remove("aud");
            }),
            TokenError::MissingClaim("aud"),
        ),
        (
            "expired",
            with(&|c| c["exp"] = json!(NOW - LEEWAY_SECS)),
            TokenError::Expired,
        ),
        (
            "no expiry",
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            TokenError::MissingClaim("exp"),
        ),
        (
            "not yet valid",
            with(&|c| c["nbf"] = json!(NOW + LEEWAY_SECS + 1)),
            TokenError::NotYetValid,
        ),
        (
            "another issuer",
            with(&|c| c["iss"] = json!("https://gitlab.com")),
            TokenError::WrongIssuer("https://gitlab.com".into()),
        ),
        (
            "an unknown kid",
            token(&rsa, header("RS256", "rotated-away"), &claims()),
            TokenError::UnknownKey("rotated-away".into()),
        ),
        (
            "no kid",
            token(&rsa, json!({"alg": "RS256"}), &claims()),
            TokenError::NoKeyId,
        ),
        (
            "an EC key named as RSA",
            token(&ec, header("RS256", "ec-1"), &claims()),
            TokenError::WrongAlgorithm {
                named: "RS256".into(),
                kid: "ec-1".into(),
                key: "ES256",
            },
        ),
        (
            "an unknown critical header",
            token(
                &rsa,
                json!({"alg": "RS256", "kid": "rsa-1", "crit": ["exp"]}),
                &claims(),
            ),
            TokenError::Malformed,
        ),
    ];
    for (what, t, error) in cases {
        assert_eq!(verify(&t, &set, expected()), Err(error), "{what}");
    }
    // Signed by another key under a published kid.
    let impostor = SigningKey::rs256("rsa-1");
    let t = token(&impostor, header("RS256", "rsa-1"), &claims());
    assert_eq!(verify(&t, &set, expected()), Err(TokenError::BadSignature));
    // Claims changed after signing.
    let t = token(&rsa, header("RS256", "rsa-1"), &claims());
    let mut parts: Vec<&str> = t.split('.').collect();
    let forged = b64(with(&|c| c["repository_id"] = json!("999"))
        .split('.')
        .nth(1)
        .map(|p| URL_SAFE_NO_PAD.decode(p).unwrap())
        .unwrap()
        .as_slice());
    parts[1] = &forged;
    assert_eq!(
        verify(&parts.join("."), &set, expected()),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn alg_none_and_hs256_with_the_public_key_are_refused() {
    let rsa = SigningKey::rs256("rsa-1");
    let set = keys(&[&rsa]);
    assert!(matches!(
        verify(&unsigned("rsa-1", &claims()), &set, expected()),
        Err(TokenError::WrongAlgorithm { .. })
    ));
    // The classic confusion: HMAC-SHA256 keyed with the RSA public key's bytes.
    let t = hs256_with_public_key(&rsa, &claims());
    assert!(matches!(
        verify(&t, &set, expected()),
        Err(TokenError::WrongAlgorithm { .. })
    ));
    for garbage in ["", "a.b", "a.b.c.d", "!!.??.##"] {
        assert!(verify(garbage, &set, expected()).is_err(), "{garbage:?}");
    }
}

#[test]
fn a_key_set_keeps_only_the_keys_that_sign_with_what_their_type_fits() {
    let (rsa, ec) = (SigningKey::rs256("rsa-1"), SigningKey::es256("ec-1"));
    let mut encryption = ec.jwk.clone();
    encryption["use"] = json!("enc");
    encryption["kid"] = json!("enc-1");
    let mut mislabelled = rsa.jwk.clone();
    mislabelled["alg"] = json!("HS256");
    mislabelled["kid"] = json!("odd-1");
    let mut no_kid = ec.jwk.clone();
    no_kid.as_object_mut().unwrap().remove("kid");
    let mut small = rsa.jwk.clone();
    small["n"] = json!(b64(&[0xc3; 128]));
    small["kid"] = json!("small-1");
    let doc = json!({"keys": [rsa.jwk, encryption, mislabelled, no_kid, small,
        {"kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
        {"kty": "EC", "crv": "P-384", "kid": "p384-1", "x": "AA", "y": "AA"}]});
    let got: Vec<String> = read_jwks(doc.to_string().as_bytes())
        .unwrap()
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(got, ["rsa-1"]);
    assert_eq!(read_jwks(br#"{"keys":[]}"#), Err(JwksError::NoUsableKey));
    assert!(matches!(read_jwks(b"<html>"), Err(JwksError::NotJwks(_))));
}
