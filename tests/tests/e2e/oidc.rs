//! Reports with a CI's id token (OIDC), against a test issuer on loopback HTTPS that
//! publishes its keys as GitHub's does: accepted with the trusted identity's claims,
//! refused for each way a token can be wrong, and key rotation picked up.

use conjunction_protocol::identity::TrustedCi;
use conjunction_sim::webhook::Behaviour;
use conjunction_tests::daemon::TestDaemon;
use conjunction_tests::issuer::{hs256_with_public_key, unsigned, SigningKey, TestIssuer};
use reqwest::Method;
use serde_json::{json, Value};

use crate::*;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What GitHub Actions puts in a token of acme/lib's release.yml on main.
fn github_claims(issuer: &str, audience: &str) -> Value {
    let now = now();
    json!({"iss": issuer, "aud": audience, "iat": now, "nbf": now - 5, "exp": now + 300,
        "sub": "repo:acme/lib:ref:refs/heads/main", "repository": "acme/lib",
        "repository_id": "123456", "repository_owner": "acme", "repository_owner_id": "42",
        "ref": "refs/heads/main", "event_name": "push", "workflow": "Release",
        "job_workflow_ref": "acme/lib/.github/workflows/release.yml@refs/heads/main",
        "jti": format!("{now}-{}", unique())})
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Posts a report with `token`; the status and the JSON answer.
async fn post(d: &TestDaemon, token: &str, report: &Value) -> (u16, Value) {
    let raw = d
        .api
        .raw(
            Method::POST,
            "/v1/reports",
            Some(token),
            Some(report.to_string().into_bytes()),
        )
        .await
        .unwrap();
    (raw.status, raw.json())
}

#[tokio::test]
async fn a_trusted_ci_reports_with_its_id_token_and_every_wrong_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (rsa, ec) = (SigningKey::rs256("rsa-1"), SigningKey::es256("ec-1"));
    let issuer = TestIssuer::start(dir.path(), &[&rsa, &ec]).await;
    let ca = issuer.ca_file.clone();
    let d = TestDaemon::start_adjusted(move |c| {
        c.oidc.ca_file = Some(ca);
        c.oidc.refresh_cooldown_secs = 1;
    })
    .await;
    let audience = d.url();
    let ci = super::webhook_ci().await;
    ci.set("acme/app", Behaviour::Silent);
    let mut lib = spec("acme/lib", &[], None);
    lib.trusted_ci = vec![serde_json::from_value::<TrustedCi>(json!({"kind": "github",
        "issuer": issuer.url, "repository_id": "123456", "repository_owner_id": "42",
        "workflow": "release.yml", "ref": "refs/heads/main", "repository": "acme/lib"}))
    .unwrap()];
    d.api.put_project(&pid("acme/lib"), &lib).await.unwrap();
    register(&d.api, "acme/app", &["acme/lib"], Some(&ci)).await;

    // A release reported with the job's id token: running, then passed, with one token.
    let token = rsa.token(&github_claims(&issuer.url, &audience));
    let running = json!({"project": "acme/lib", "state": "running", "version": "1.0.0"});
    let (status, ack) = post(&d, &token, &running).await;
    assert_eq!(status, 201, "{ack}");
    let root = ack["build"].as_str().unwrap().to_owned();
    let (status, answer) = post(
        &d,
        &token,
        &json!({"project": "acme/lib", "build": root, "state": "passed", "version": "1.0.0"}),
    )
    .await;
    assert_eq!(
        status, 200,
        "the same token reports on its build again: {answer}"
    );
    // ... but starts no second root event.
    let (status, answer) = post(&d, &token, &running).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (403, Some("forbidden")),
        "{answer}"
    );
    // ES256 works as well.
    let (status, answer) = post(
        &d,
        &ec.token(&github_claims(&issuer.url, &audience)),
        &running,
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    // The audit trail names the identity.
    let trail = d.api.audit(Some(&pid("acme/lib"))).await.unwrap();
    assert_eq!(
        trail.entries[0].by.to_string(),
        "GitHub acme/lib release.yml"
    );

    let claims = |change: &dyn Fn(&mut Value)| {
        let mut c = github_claims(&issuer.url, &audience);
        change(&mut c);
        c
    };
    let app_build = eventually("acme/app triggered", WAIT, || async {
        let e = d
            .api
            .root(conjunction_protocol::BuildId::parse(&root).ok()?)
            .await
            .ok()?;
        let n = node_of(&e, "acme/app");
        (n.state.kind() == conjunction_protocol::StateKind::Triggered).then_some(n.id)
    })
    .await;
    let cases: Vec<(&str, String, Value, u16, &str)> = vec![
        (
            "a wrong audience",
            rsa.token(&claims(&|c| c["aud"] = json!("https://github.com/acme"))),
            running.clone(),
            401,
            "invalid_id_token",
        ),
        (
            "an expired token",
            rsa.token(&claims(&|c| c["exp"] = json!(now() - 120))),
            running.clone(),
            401,
            "invalid_id_token",
        ),
        (
            "an unknown kid",
            rsa.token_with(&json!({"alg": "RS256", "kid": "nobody"}), &claims(&|_| {})),
            running.clone(),
            401,
            "invalid_id_token",
        ),
        (
            "alg none",
            unsigned("rsa-1", &claims(&|_| {})),
            running.clone(),
            401,
            "invalid_id_token",
        ),
        (
            "HS256 signed with the public key",
            hs256_with_public_key(&rsa, &claims(&|_| {})),
            running.clone(),
            401,
            "invalid_id_token",
        ),
        (
            "another repository id under the same name",
            rsa.token(&claims(&|c| c["repository_id"] = json!("999999"))),
            running.clone(),
            403,
            "untrusted_identity",
        ),
        (
            "another workflow",
            rsa.token(&claims(&|c| {
                c["job_workflow_ref"] = json!("acme/lib/.github/workflows/ci.yml@refs/heads/main")
            })),
            running.clone(),
            403,
            "untrusted_identity",
        ),
        (
            "a build of another project",
            rsa.token(&claims(&|_| {})),
            json!({"project": "acme/app", "build": app_build, "attempt": 1, "state": "passed"}),
            403,
            "untrusted_identity",
        ),
        (
            "another issuer's token",
            rsa.token(&claims(&|c| {
                c["iss"] = json!("https://token.actions.githubusercontent.com")
            })),
            running.clone(),
            403,
            "untrusted_identity",
        ),
    ];
    let before = d.api.roots(100).await.unwrap().len();
    for (what, token, report, status, code) in cases {
        let (got, answer) = post(&d, &token, &report).await;
        assert_eq!(
            (got, answer["error"].as_str()),
            (status, Some(code)),
            "{what}: {answer}"
        );
        assert!(
            !answer["message"]
                .as_str()
                .unwrap_or_default()
                .contains(&token),
            "{what}: the token is echoed"
        );
    }
    assert_eq!(
        d.api.roots(100).await.unwrap().len(),
        before,
        "no refusal started anything"
    );
    // A token for acme/lib naming a build of acme/app under acme/lib's name.
    let (got, answer) = post(
        &d,
        &rsa.token(&claims(&|_| {})),
        &json!({"project": "acme/lib", "build": app_build, "attempt": 1, "state": "passed"}),
    )
    .await;
    assert!(matches!(got, 400 | 403), "{answer}");

    // The issuer rotates its key; after the cooldown the new kid is fetched.
    let rotated = SigningKey::es256("ec-2");
    issuer.rotate(&[&rotated]);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let fetched = issuer.fetches();
    let (status, answer) = post(
        &d,
        &rotated.token(&github_claims(&issuer.url, &audience)),
        &running,
    )
    .await;
    assert_eq!(status, 201, "the rotated key is picked up: {answer}");
    assert_eq!(issuer.fetches(), fetched + 1);
}

#[tokio::test]
async fn conjunction_report_fetches_its_github_actions_id_token_and_reports_with_it() {
    use axum::extract::{Query, State};
    use axum::http::HeaderMap;
    let dir = tempfile::tempdir().unwrap();
    let rsa = SigningKey::rs256("rsa-1");
    let issuer = TestIssuer::start(dir.path(), &[&rsa]).await;
    let ca = issuer.ca_file.clone();
    let d = TestDaemon::start_adjusted(move |c| c.oidc.ca_file = Some(ca)).await;
    let mut lib = spec("acme/lib", &[], None);
    lib.trusted_ci = vec![serde_json::from_value::<TrustedCi>(json!({"kind": "github",
        "issuer": issuer.url, "repository_id": "123456", "repository_owner_id": "42",
        "workflow": "release.yml"}))
    .unwrap()];
    d.api.put_project(&pid("acme/lib"), &lib).await.unwrap();

    // A stand-in for the runner's token endpoint: it hands out a token for the
    // audience asked for, to the request token only, as GitHub documents.
    let signed = std::sync::Arc::new((rsa, issuer.url.clone()));
    let runner = axum::Router::new()
        .route(
            "/token",
            axum::routing::get(
                |State(s): State<std::sync::Arc<(SigningKey, String)>>,
                 Query(q): Query<std::collections::HashMap<String, String>>,
                 headers: HeaderMap| async move {
                    let authorized = headers.get("authorization").and_then(|v| v.to_str().ok())
                        == Some("Bearer runner-request-token");
                    match (authorized, q.get("audience"), q.get("api-version")) {
                        (true, Some(audience), Some(_)) => {
                            let token = s.0.token(&github_claims(&s.1, audience));
                            (
                                axum::http::StatusCode::OK,
                                axum::Json(json!({ "count": 1, "value": token })),
                            )
                        }
                        _ => (axum::http::StatusCode::FORBIDDEN, axum::Json(json!({}))),
                    }
                },
            ),
        )
        .with_state(signed);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let runner_url = format!(
        "http://{}/token?api-version=2.0",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, runner).await });

    let out =
        tokio::process::Command::new(conjunction_tests::daemon::binaries().join("conjunction"))
            .args([
                "report",
                "--project",
                "acme/lib",
                "--state",
                "passed",
                "--version",
                "3.0.0",
            ])
            .env("CONJUNCTION_URL", d.url())
            .env_remove("CONJUNCTION_TOKEN")
            .env("ACTIONS_ID_TOKEN_REQUEST_URL", &runner_url)
            .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "runner-request-token")
            .env("XDG_CONFIG_HOME", dir.path())
            .output()
            .await
            .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    let build =
        conjunction_protocol::BuildId::parse(stdout.trim()).expect("the build id is printed");
    let root = d.api.root(build).await.unwrap();
    assert_eq!(root.summary.version.as_deref(), Some("3.0.0"));
    let trail = d.api.audit(Some(&pid("acme/lib"))).await.unwrap();
    assert_eq!(
        trail.entries[0].by.to_string(),
        "GitHub repository 123456 release.yml"
    );

    // As a GitLab job does: the token in the variable its `id_tokens:` names.
    let asked = format!("{runner_url}&audience={}", urlencoding::encode(&d.url()));
    let answer: Value = reqwest::Client::new()
        .get(&asked)
        .bearer_auth("runner-request-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let out =
        tokio::process::Command::new(conjunction_tests::daemon::binaries().join("conjunction"))
            .args([
                "report",
                "--project",
                "acme/lib",
                "--state",
                "passed",
                "--version",
                "3.1.0",
            ])
            .args(["--id-token-var", "CONJUNCTION_ID_TOKEN"])
            .env("CONJUNCTION_URL", d.url())
            .env_remove("CONJUNCTION_TOKEN")
            .env_remove("ACTIONS_ID_TOKEN_REQUEST_URL")
            .env("CONJUNCTION_ID_TOKEN", answer["value"].as_str().unwrap())
            .env("XDG_CONFIG_HOME", dir.path())
            .output()
            .await
            .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The terminal UI's details of the root say who reported it.
    let ui = conjunction_tests::tmux::Tmux::start(
        &conjunction_tests::daemon::binaries().join("conjunction"),
        &[
            "--url",
            &d.url(),
            "--token",
            conjunction_tests::daemon::OPERATOR_TOKEN,
        ],
        160,
        40,
    );
    ui.wait_for(
        "the root's details",
        std::time::Duration::from_secs(30),
        |s| {
            s.contains("reported by GitHub repository 123456 release.yml")
                .then_some(())
        },
    )
    .await;
}
