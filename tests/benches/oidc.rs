//! Reports with a CI's id token (OIDC) against reports with a report token (a bench
//! binary; `cargo bench -p conjunction-tests --bench oidc`).
//!
//! One daemon, two projects: one reports with its report token, the other with an
//! RS256 id token of a test issuer on loopback HTTPS (its keys fetched once, then
//! cached). Each starts a root build that stays running; then 64 clients report
//! `running` on that build, in alternating rounds of the two, so both see the same
//! machine. The difference is the token's verification (signature and claims) and
//! the identity's match against the project's trusted one.

use std::time::Duration;

use conjunction_protocol::identity::TrustedCi;
use conjunction_protocol::{ProjectId, ProjectSpec};
use conjunction_tests::bench::{load, median};
use conjunction_tests::daemon::TestDaemon;
use conjunction_tests::issuer::{SigningKey, TestIssuer};
use serde_json::json;

const CLIENTS: usize = 64;
const ROUND: Duration = Duration::from_secs(3);
const ROUNDS: usize = 5;

fn main() {
    conjunction_tests::bench::main("oidc", |_| run());
}

async fn run() {
    println!(
        "machine: {} cores; {CLIENTS} clients; {ROUNDS} rounds of {ROUND:?} per kind of token",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let dir = tempfile::tempdir().expect("a directory");
    let key = SigningKey::rs256("bench-1");
    let issuer = TestIssuer::start(dir.path(), &[&key]).await;
    let ca = issuer.ca_file.clone();
    let daemon = TestDaemon::start_adjusted(move |c| c.oidc.ca_file = Some(ca)).await;
    let url = format!("{}/v1/reports", daemon.url());

    let by_token = ProjectId::parse("bench/token").unwrap();
    let (_, created) = daemon
        .api
        .put_project(
            &by_token,
            &ProjectSpec {
                name: "By token".into(),
                ..ProjectSpec::default()
            },
        )
        .await
        .unwrap();
    let report_token = created.report_token.unwrap();
    let by_identity = ProjectId::parse("bench/oidc").unwrap();
    let trusted: TrustedCi = serde_json::from_value(json!({"kind": "github", "issuer": issuer.url,
        "repository_id": "123456", "repository_owner_id": "42", "workflow": "release.yml"}))
    .unwrap();
    daemon
        .api
        .put_project(
            &by_identity,
            &ProjectSpec {
                name: "By identity".into(),
                trusted_ci: vec![trusted],
                ..ProjectSpec::default()
            },
        )
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let id_token = key.token(&json!({"iss": issuer.url, "aud": daemon.url(), "iat": now,
        "exp": now + 3600, "repository": "acme/lib", "repository_id": "123456",
        "repository_owner_id": "42", "event_name": "push", "ref": "refs/heads/main",
        "job_workflow_ref": "acme/lib/.github/workflows/release.yml@refs/heads/main"}));

    // Each starts its root build, running, and then reports on it.
    let start = |project: &str| json!({"project": project, "state": "running"}).to_string();
    let root = |token: &str, project: &'static str| {
        let (url, token) = (url.clone(), token.to_owned());
        async move {
            let answer: serde_json::Value = reqwest::Client::new()
                .post(&url)
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(start(project))
                .send()
                .await
                .expect("a root report")
                .json()
                .await
                .expect("its answer");
            answer["build"].as_str().expect("a build id").to_owned()
        }
    };
    let token_build = root(&report_token, "bench/token").await;
    let oidc_build = root(&id_token, "bench/oidc").await;
    let body = |project: &str, build: &str| {
        json!({"project": project, "build": build, "state": "running"})
            .to_string()
            .into_bytes()
    };
    let (token_body, oidc_body) = (
        body("bench/token", &token_build),
        body("bench/oidc", &oidc_build),
    );

    let (mut tokens, mut ids) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        tokens.push(load(&url, &report_token, &token_body, 200, CLIENTS, ROUND).await);
        ids.push(load(&url, &id_token, &oidc_body, 200, CLIENTS, ROUND).await);
    }
    let rounds = |v: &[f64]| {
        v.iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (t, i) = (median(tokens.clone()), median(ids.clone()));
    println!(
        "report token reports:  median {t:>8.0} req/s  (rounds: {})",
        rounds(&tokens)
    );
    println!(
        "id token (RS256):      median {i:>8.0} req/s  (rounds: {})",
        rounds(&ids)
    );
    println!("ratio id token/token:  {:.2}", i / t);
    println!("issuer key set fetched {} time(s)", issuer.fetches());
    daemon.stop().await;
}
