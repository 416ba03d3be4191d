//! Throughput benchmark (a bench binary; run with `cargo bench -p conjunction-tests`).
//!
//! 1. Durable reports per second from 64 concurrent HTTP clients against the real
//!    daemon, side by side with a bare axum endpoint that does no work, in
//!    alternating rounds of the same run so both see the same machine load.
//! 2. The time from one root report with 1,000 direct dependents to the last of its
//!    1,000 triggers arriving at a local receiver.
//!
//! Everything runs on loopback in this process; the daemon's database lives in a
//! temporary directory on the same disk as the build, and every report is fsynced
//! (group commit) before it is answered.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;
use conjunction_protocol::{NodeState, ProjectId, ProjectSpec, Report, ReportState, TriggerSpec};
use conjunction_tests::bench::median;
use conjunction_tests::daemon::TestDaemon;

use tokio::net::TcpListener;
use tokio::sync::Notify;

const CLIENTS: usize = 64;
const ROUND: Duration = Duration::from_secs(3);
const ROUNDS: usize = 3;
const FANOUT: usize = 1000;
const FANOUT_RUNS: usize = 5;

fn main() {
    conjunction_tests::bench::main("throughput", |_| run());
}

async fn run() {
    println!(
        "machine: {} cores; {CLIENTS} clients; {ROUNDS} rounds of {ROUND:?} per target",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let bare = start_bare().await;
    let daemon = TestDaemon::start().await;
    let lib = ProjectId::parse("bench/lib").unwrap();
    let (_, created) = daemon
        .api
        .put_project(&lib, &spec("Bench Lib", &[], None))
        .await
        .unwrap();
    let token = created.report_token.unwrap();
    let body = serde_json::to_vec(&Report {
        version: Some("1.0.0".into()),
        commit: Some("9f1c2e0".into()),
        git_ref: Some("main".into()),
        url: Some("https://ci.example/runs/1".into()),
        summary: Some("1 test failed".into()),
        ..Report::new(lib.clone(), ReportState::Failed)
    })
    .unwrap();

    let mut bare_rates = Vec::new();
    let mut daemon_rates = Vec::new();
    for _ in 0..ROUNDS {
        bare_rates.push(load(&format!("{bare}/bare"), &token, &body, 201).await);
        daemon_rates.push(load(&format!("{}/v1/reports", daemon.url()), &token, &body, 201).await);
    }
    let (b, d) = (median(bare_rates.clone()), median(daemon_rates.clone()));
    println!(
        "bare axum endpoint:      median {b:>9.0} req/s  (rounds: {})",
        fmt(&bare_rates)
    );
    println!(
        "durable reports:         median {d:>9.0} req/s  (rounds: {})",
        fmt(&daemon_rates)
    );
    println!("ratio durable/bare:      {:.2}", d / b);
    daemon.stop().await;

    let mut fanout = Vec::new();
    let daemon = TestDaemon::start().await;
    let (receiver, hits, done) = start_receiver().await;
    let root = ProjectId::parse("bench/root").unwrap();
    let (_, created) = daemon
        .api
        .put_project(&root, &spec("Bench Root", &[], None))
        .await
        .unwrap();
    let root_token = created.report_token.unwrap();
    for i in 0..FANOUT {
        let id = ProjectId::parse(&format!("bench/dep-{i:04}")).unwrap();
        daemon
            .api
            .put_project(
                &id,
                &spec(&format!("Dep {i}"), &["bench/root"], Some(&receiver)),
            )
            .await
            .unwrap();
    }
    for run in 0..FANOUT_RUNS {
        hits.store(0, Ordering::SeqCst);
        let waiter = done.notified();
        let start = Instant::now();
        let report = Report {
            version: Some(format!("2.0.{run}")),
            ..Report::new(root.clone(), ReportState::Passed)
        };
        let ack = daemon.api.report(&root_token, &report).await.unwrap();
        tokio::time::timeout(Duration::from_secs(60), waiter)
            .await
            .expect("all triggers arrive");
        fanout.push(start.elapsed().as_secs_f64() * 1000.0);
        // Let the daemon record every delivery before the next run, so runs do not overlap.
        loop {
            let event = daemon.api.root(ack.root).await.unwrap();
            if event.nodes.iter().all(|n| n.state != NodeState::Queued) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    println!(
        "1 root -> {FANOUT} triggers: median {:>7.1} ms  (runs: {})",
        median(fanout.clone()),
        fanout
            .iter()
            .map(|v| format!("{v:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    daemon.stop().await;
}

fn fmt(v: &[f64]) -> String {
    v.iter()
        .map(|r| format!("{r:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn spec(name: &str, deps: &[&str], trigger: Option<&str>) -> ProjectSpec {
    ProjectSpec {
        name: name.into(),
        contacts: vec![],
        depends_on: deps
            .iter()
            .map(|d| conjunction_protocol::Dependency {
                project: ProjectId::parse(d).unwrap(),
                range: None,
                lines: Vec::new(),
            })
            .collect(),
        trigger: trigger.map(|url| TriggerSpec::Webhook {
            url: url.into(),
            token: None,
            secret: Some("bench-secret".into()),
        }),
        report_token: None,
        ..ProjectSpec::default()
    }
}

/// `CLIENTS` clients POST `body` to `url` for one round; answers per second.
async fn load(url: &str, token: &str, body: &[u8], expect: u16) -> f64 {
    conjunction_tests::bench::load(url, token, body, expect, CLIENTS, ROUND).await
}

/// An axum endpoint that answers 201 with a small JSON body and does nothing else.
async fn start_bare() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route(
        "/bare",
        post(|| async {
            (
                axum::http::StatusCode::CREATED,
                [("content-type", "application/json")],
                r#"{"build":"01ARZ3NDEKTSV4RRFFQ69G5FAV","root":"01ARZ3NDEKTSV4RRFFQ69G5FAV","attempt":1,"state":"failed","seq":1}"#,
            )
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// Counts trigger deliveries and signals when `FANOUT` have arrived.
async fn start_receiver() -> (String, Arc<AtomicU64>, Arc<Notify>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Notify::new());
    let (h, n) = (hits.clone(), done.clone());
    let app = Router::new().route(
        "/hook",
        post(move || {
            let (h, n) = (h.clone(), n.clone());
            async move {
                if h.fetch_add(1, Ordering::SeqCst) + 1 == FANOUT as u64 {
                    n.notify_one();
                }
                axum::http::StatusCode::ACCEPTED
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), hits, done)
}
