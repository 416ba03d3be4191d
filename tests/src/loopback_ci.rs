//! A CI for benchmarks: it takes every trigger at once and reports `passed` a fixed
//! build time later through the real report API, with the build token it was given,
//! as a pipeline would. Unlike [`crate::mock_ci`] it records nothing, so it costs
//! little however many builds go through it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use conjunction_protocol::trigger::TriggerPayload;
use tokio::net::TcpListener;

/// How long a build takes.
pub const BUILD_TIME: Duration = Duration::from_millis(1);

pub struct LoopbackCi {
    addr: std::net::SocketAddr,
    reported: Arc<AtomicU64>,
}

#[derive(Clone)]
struct Ci {
    http: reqwest::Client,
    reported: Arc<AtomicU64>,
    /// Builds waiting out their build time, in the order they started.
    building: std::sync::mpsc::Sender<(Instant, TriggerPayload)>,
}

impl LoopbackCi {
    /// Starts the CI on a free loopback port.
    ///
    /// The build time is kept by a thread of its own: a tokio timer rounds up to the
    /// next tick of its wheel, which made a 1 ms build take over 2 ms.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (building, finished) = std::sync::mpsc::channel::<(Instant, TriggerPayload)>();
        let ci = Ci {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .build()
                .expect("client"),
            reported: Arc::new(AtomicU64::new(0)),
            building,
        };
        let (runtime, reporter) = (tokio::runtime::Handle::current(), ci.clone());
        std::thread::spawn(move || {
            // Every build takes as long, so they finish in the order they started.
            while let Ok((done, payload)) = finished.recv() {
                std::thread::sleep(done.saturating_duration_since(Instant::now()));
                runtime.spawn(reporter.clone().report(payload));
            }
        });
        let reported = ci.reported.clone();
        let app = Router::new().route("/hook", post(hook)).with_state(ci);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, reported }
    }

    /// The URL to put in projects' webhook triggers.
    pub fn hook_url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// How many builds reported so far.
    pub fn reported(&self) -> u64 {
        self.reported.load(Ordering::SeqCst)
    }
}

async fn hook(State(ci): State<Ci>, body: Bytes) -> StatusCode {
    let Ok(payload) = serde_json::from_slice::<TriggerPayload>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    ci.building
        .send((Instant::now() + BUILD_TIME, payload))
        .expect("the build thread runs");
    StatusCode::ACCEPTED
}

impl Ci {
    async fn report(self, payload: TriggerPayload) {
        let body = serde_json::json!({
            "project": payload.project,
            "build": payload.build,
            "attempt": payload.attempt,
            "state": "passed",
        });
        let answer = self
            .http
            .post(&payload.report.url)
            .bearer_auth(&payload.report.token)
            .json(&body)
            .send()
            .await
            .expect("the report reaches the daemon");
        assert!(
            answer.status().is_success(),
            "report answered {}",
            answer.status()
        );
        self.reported.fetch_add(1, Ordering::SeqCst);
    }
}
