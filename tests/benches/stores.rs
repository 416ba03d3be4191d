//! Stores benchmark (a bench binary; run with `cargo bench -p conjunction-tests --bench
//! stores`): the same service on redb, on PostgreSQL with one daemon, and on
//! PostgreSQL with three daemons, in one run on one machine.
//!
//! Each daemon is the release `conjunctiond` in its own process, logging into its
//! data directory. PostgreSQL is a
//! throwaway cluster started here, durable as a production server is (`fsync`, full
//! page writes, `synchronous_commit = on`), on the same disk as redb's file. For
//! each store:
//!
//! 1. durable reports per second from 64 clients (spread over the daemons, so two
//!    thirds of them reach a follower that forwards to the writer), in rounds, the
//!    median; with the distribution of a report's acknowledgement latency, which is
//!    answered after its commit, under that load and from one client alone;
//! 2. a wide cascade of 10,000 dependents: the root report's acknowledgement and
//!    the time until every build passed, with a loopback CI that reports `passed`
//!    to the daemon that triggered it;
//! 3. with three daemons, the takeover: the writer SIGKILLed, and the time until
//!    another daemon commits a report (`lease_ms = 1000`), five times.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use conjunction_protocol::{ProjectId, Report, ReportState};
use conjunction_sim::webhook::WebhookCi;
use conjunction_tests::bench::{graph_file, graph_name, load_across, median, quantiles};
use conjunction_tests::daemon::{free_address, DaemonProcess};
use conjunction_tests::postgres::Cluster;
use tempfile::TempDir;

const ROOT_TOKEN: &str = "stores-root-report-token";
const REPORTER_TOKEN: &str = "stores-reporter-report-token";
const CLIENTS: usize = 64;
const ROUND: Duration = Duration::from_secs(3);
const ROUNDS: usize = 3;
const WIDE: usize = 10_000;
const TAKEOVERS: usize = 5;
const LEASE_MS: u64 = 1_000;

fn main() {
    conjunction_tests::bench::main("stores", |_| run());
}

/// The daemons of one service and their data directories.
struct Service {
    name: &'static str,
    config: String,
    addrs: Vec<SocketAddr>,
    dirs: Vec<TempDir>,
    daemons: Vec<Option<DaemonProcess>>,
}

impl Service {
    /// `count` daemons on `url` (redb when none), the first started first so that
    /// it takes the writer's role, the others sharing its build-token key.
    async fn start(name: &'static str, url: Option<String>, count: usize) -> Self {
        let config = match url {
            Some(url) => format!("[store]\nurl = \"{url}\"\nlease_ms = {LEASE_MS}\n"),
            None => String::new(),
        };
        let mut service = Self {
            name,
            config,
            addrs: (0..count).map(|_| free_address()).collect(),
            dirs: Vec::new(),
            daemons: Vec::new(),
        };
        for i in 0..count {
            let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a data directory");
            if i > 0 {
                std::fs::copy(
                    service.dirs[0].path().join("build-token.key"),
                    dir.path().join("build-token.key"),
                )
                .expect("the shared build-token key");
            }
            let log = dir.path().join("daemon.log");
            let daemon = DaemonProcess::start_on_logging(
                service.addrs[i],
                dir.path(),
                &service.config,
                &log,
            )
            .await;
            service.dirs.push(dir);
            service.daemons.push(Some(daemon));
        }
        service
    }

    fn urls(&self, path: &str) -> Vec<String> {
        self.addrs
            .iter()
            .map(|a| format!("http://{a}{path}"))
            .collect()
    }

    fn first(&self) -> &DaemonProcess {
        self.daemons
            .iter()
            .flatten()
            .next()
            .expect("a running daemon")
    }

    async fn stop(self) {
        for d in self.daemons.into_iter().flatten() {
            d.kill().await;
        }
    }
}

struct Measured {
    rate: f64,
    loaded: [Duration; 4],
    alone: [Duration; 4],
    ack: Duration,
    cascade: Duration,
    takeovers: Vec<Duration>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn run() {
    println!(
        "machine: {} cores; daemons: release conjunctiond, one process each; PostgreSQL {}: durable (fsync, full_page_writes, synchronous_commit on), same disk",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        conjunction_tests::postgres::server_version().unwrap_or_else(|| "(not found)".into()),
    );
    let Some(pg) = Cluster::start_durable() else {
        println!("PostgreSQL is not installed (apt-get install -y postgresql): nothing to compare");
        return;
    };
    let mut results = Vec::new();
    for (name, store, count) in [
        ("redb", None, 1),
        ("postgres x1", Some("one"), 1),
        ("postgres x3", Some("three"), 3),
    ] {
        let url = store.map(|db| pg.database(db));
        let service = Service::start(name, url, count).await;
        let measured = measure(service).await;
        results.push((name, count, measured));
    }
    println!();
    println!(
        "{:<12} {:>9}  {:>28}  {:>28}  {:>9} {:>9}",
        "store",
        "reports/s",
        "ack ms under load p50/90/99/max",
        "ack ms alone p50/90/99/max",
        "wide ack",
        "cascade"
    );
    for (name, _, m) in &results {
        let q = |v: &[Duration; 4]| {
            format!(
                "{:.1}/{:.1}/{:.1}/{:.1}",
                ms(v[0]),
                ms(v[1]),
                ms(v[2]),
                ms(v[3])
            )
        };
        println!(
            "{name:<12} {:>9.0}  {:>28}  {:>28}  {:>6.0} ms {:>7.2} s",
            m.rate,
            q(&m.loaded),
            q(&m.alone),
            ms(m.ack),
            m.cascade.as_secs_f64()
        );
    }
    let redb = results[0].2.rate;
    for (name, _, m) in &results[1..] {
        println!(
            "{name}: {:.2} of redb's reports/s, cascade {:.2}x redb's",
            m.rate / redb,
            m.cascade.as_secs_f64() / results[0].2.cascade.as_secs_f64()
        );
    }
    for (name, _, m) in &results {
        if !m.takeovers.is_empty() {
            let secs: Vec<String> = m
                .takeovers
                .iter()
                .map(|d| format!("{:.2}", d.as_secs_f64()))
                .collect();
            println!(
                "{name}: takeover after SIGKILL of the writer (lease_ms = {LEASE_MS}): median {:.2} s; each: {} s",
                median(m.takeovers.iter().map(Duration::as_secs_f64).collect()),
                secs.join(", ")
            );
        }
    }
}

fn report(project: &str, state: ReportState, version: &str) -> Report {
    Report {
        version: Some(version.into()),
        ..Report::new(ProjectId::parse(project).expect("valid id"), state)
    }
}

async fn measure(mut service: Service) -> Measured {
    let ci = WebhookCi::bare().await.expect("start the webhook CI");
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a directory");
    let file = dir.path().join("projects.toml");
    let graph = graph_file("wide", WIDE, &ci.url(), ROOT_TOKEN)
        + &format!(
            "[[project]]\nid = \"stores/reporter\"\nname = \"reporter\"\nreport_token = \"{REPORTER_TOKEN}\"\n"
        );
    std::fs::write(&file, graph).expect("projects file");
    service.first().apply(&file).await;

    // 1. Reports: failed ones of a project nothing depends on, so that each is one
    // root event and its commit, and nothing else.
    let body = serde_json::to_vec(&Report {
        commit: Some("9f1c2e0".into()),
        summary: Some("1 test failed".into()),
        ..report("stores/reporter", ReportState::Failed, "1.0.0")
    })
    .expect("a report");
    let urls = service.urls("/v1/reports");
    let mut rates = Vec::new();
    let mut loaded = Vec::new();
    for _ in 0..ROUNDS {
        let round = load_across(&urls, REPORTER_TOKEN, &body, 201, CLIENTS, ROUND).await;
        println!("{}: {:.0} reports/s", service.name, round.rate);
        rates.push(round.rate);
        loaded.extend(round.latencies);
    }
    let alone = load_across(&urls[..1], REPORTER_TOKEN, &body, 201, 1, ROUND).await;

    // 2. The wide cascade, reported to the writer (the first daemon).
    let start = Instant::now();
    let ack = service
        .first()
        .api
        .report(
            ROOT_TOKEN,
            &report(&graph_name(0), ReportState::Passed, "1.0.0"),
        )
        .await
        .expect("the root report is taken");
    let acked = start.elapsed();
    conjunction_tests::bench::all_passed(&service.first().api, ack.root, WIDE + 1).await;
    let cascade = start.elapsed();
    println!(
        "{}: wide {WIDE} acknowledged in {:.0} ms, passed in {:.2} s",
        service.name,
        ms(acked),
        cascade.as_secs_f64()
    );

    // 3. Takeovers, with three daemons.
    let mut takeovers = Vec::new();
    if service.daemons.len() > 1 {
        let body = serde_json::to_vec(&report("stores/reporter", ReportState::Passed, "2.0.0"))
            .expect("a report");
        let http = reqwest::Client::new();
        for _ in 0..TAKEOVERS {
            let writer = writer_of(&service).await;
            let others: Vec<usize> = (0..service.daemons.len())
                .filter(|&i| i != writer)
                .collect();
            let killed = service.daemons[writer].take().expect("the writer runs");
            killed.kill().await;
            let start = Instant::now();
            'taken: loop {
                for &i in &others {
                    let url = format!("http://{}/v1/reports", service.addrs[i]);
                    let answer = http
                        .post(&url)
                        .bearer_auth(REPORTER_TOKEN)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    if answer.is_ok_and(|a| a.status().as_u16() == 201) {
                        break 'taken;
                    }
                }
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "no takeover in 30 s"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let took = start.elapsed();
            println!("{}: takeover in {:.2} s", service.name, took.as_secs_f64());
            takeovers.push(took);
            let dir = service.dirs[writer].path();
            service.daemons[writer] = Some(
                DaemonProcess::start_on_logging(
                    service.addrs[writer],
                    dir,
                    &service.config,
                    &dir.join("daemon.log"),
                )
                .await,
            );
        }
    }
    service.stop().await;
    Measured {
        rate: median(rates),
        loaded: quantiles(loaded, [0.5, 0.9, 0.99, 1.0]),
        alone: quantiles(alone.latencies, [0.5, 0.9, 0.99, 1.0]),
        ack: acked,
        cascade,
        takeovers,
    }
}

/// Which daemon of `service` holds the writer's role, as its `/healthz` says.
async fn writer_of(service: &Service) -> usize {
    let start = Instant::now();
    loop {
        for (i, d) in service.daemons.iter().enumerate() {
            let Some(d) = d else { continue };
            let health = d.api.health().await.ok();
            if health.is_some_and(|h| h["writer"] == "ok") {
                return i;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no writer in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
