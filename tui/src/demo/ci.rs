//! The demo's simulated CI: an HTTP server that takes the daemon's webhook
//! triggers, "runs" each build for a while, and reports back like a real pipeline
//! would, with the build token from the trigger.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use conjunction_protocol::trigger::TriggerPayload;
use conjunction_protocol::{Report, ReportState};
use rand::Rng;
use tokio::net::TcpListener;

use super::catalog::{behaviour, Behaviour};
use crate::client::Client;

struct Ci {
    /// Where the daemon takes reports; the trigger names the same address.
    daemon: Client,
    base: String,
    builds: AtomicU64,
}

/// Serves the simulated CI on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, daemon: Client) -> std::io::Result<()> {
    let base = format!("http://{}", listener.local_addr()?);
    let ci = Arc::new(Ci {
        daemon,
        base,
        builds: AtomicU64::new(1000),
    });
    let app = Router::new()
        .route("/trigger/{owner}/{name}", post(trigger))
        .with_state(ci);
    axum::serve(listener, app).await
}

async fn trigger(State(ci): State<Arc<Ci>>, Json(payload): Json<TriggerPayload>) -> Response {
    if behaviour(&payload.project) == Behaviour::RefusesTriggers {
        let message = format!(
            "pipeline triggers are disabled for {}; a maintainer can enable them under Settings > CI/CD",
            payload.project
        );
        return (StatusCode::FORBIDDEN, message).into_response();
    }
    let number = ci.builds.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(run_build(ci.clone(), payload, number));
    (
        StatusCode::CREATED,
        Json(serde_json::json!({ "pipeline": number })),
    )
        .into_response()
}

/// How a build ends and what its log says.
fn outcome(payload: &TriggerPayload) -> (ReportState, Option<String>) {
    let mut rng = rand::rng();
    let roll: u32 = rng.random_range(0..100);
    match behaviour(&payload.project) {
        Behaviour::BreaksOnRuntime15 if runtime_at_least_1_5(payload) => (
            ReportState::Failed,
            Some(
                "error[E0599]: no method named `spawn_legacy` found for struct `runtime::Handle`\n  \
                 --> src/jobs/scheduler.rs:88:14\n   \
                 = note: `spawn_legacy` was removed in core/runtime 1.5.0; use `spawn_blocking`\n\
                 error: could not compile `legacy-portal` (lib) due to 1 previous error"
                    .into(),
            ),
        ),
        Behaviour::Flaky if payload.attempt == 1 && roll < 40 => (
            ReportState::Failed,
            Some(
                "test sessions::reconnect_after_idle ... FAILED\n\
                 thread 'sessions::reconnect_after_idle' panicked at tests/sessions.rs:141:9:\n\
                 timed out after 5s waiting for pong\n\
                 test result: FAILED. 311 passed; 1 failed; 0 ignored"
                    .into(),
            ),
        ),
        _ if roll < 2 => (
            ReportState::Failed,
            Some(
                "test integration::roundtrip_large_payload ... FAILED\n\
                 assertion `left == right` failed: body length\n  left: 1048576\n right: 1048575\n\
                 test result: FAILED. 212 passed; 1 failed; 3 ignored"
                    .into(),
            ),
        ),
        _ if roll < 3 => (
            ReportState::Errored,
            Some("runner lost: the machine running the job stopped responding".into()),
        ),
        _ => (ReportState::Passed, None),
    }
}

fn runtime_at_least_1_5(payload: &TriggerPayload) -> bool {
    payload.root.project.as_str() == "core/runtime"
        && payload
            .root
            .version
            .as_deref()
            .and_then(|v| semver::Version::parse(v).ok())
            .is_some_and(|v| v >= semver::Version::new(1, 5, 0))
}

async fn run_build(ci: Arc<Ci>, payload: TriggerPayload, number: u64) {
    let (queue_ms, run_ms) = {
        let mut rng = rand::rng();
        (rng.random_range(200..1500), rng.random_range(1000..5000))
    };
    let url = format!("{}/{}/pipelines/{number}", ci.base, payload.project);
    // A release publishes a new version of the project; a promotion deploys the one
    // it pins.
    let version = payload
        .version
        .clone()
        .unwrap_or_else(|| format!("1.0.{number}"));
    let report = |state, summary| Report {
        project: payload.project.clone(),
        build: Some(payload.build),
        attempt: Some(payload.attempt),
        state,
        version: (state == ReportState::Passed).then(|| version.clone()),
        commit: None,
        git_ref: None,
        environment: None,
        url: Some(url.clone()),
        summary,
        metadata: Default::default(),
    };
    tokio::time::sleep(Duration::from_millis(queue_ms)).await;
    // A report the daemon refuses (say, after a newer attempt started) ends the
    // build, as it would for a real pipeline.
    if ci
        .daemon
        .report(&payload.report.token, &report(ReportState::Running, None))
        .await
        .is_err()
    {
        return;
    }
    tokio::time::sleep(Duration::from_millis(run_ms)).await;
    let (state, summary) = outcome(&payload);
    let _ = ci
        .daemon
        .report(&payload.report.token, &report(state, summary))
        .await;
}
