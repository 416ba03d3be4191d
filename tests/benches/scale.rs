//! Scale benchmark (a bench binary; run with `cargo bench -p conjunction-tests --bench
//! scale`, optionally followed by `-- <shape> <nodes>` to run one case).
//!
//! Each case starts the release `conjunctiond` in its own process on a fresh data
//! directory and drives it through its public HTTP API only:
//!
//! 1. registers the projects with the real `conjunction apply -f` (one list),
//! 2. sends one `passed` root report and times its acknowledgement,
//! 3. times the whole cascade until every node has passed, with a loopback CI in
//!    this process that accepts every trigger and reports `passed` 1 ms later with
//!    the build token, as a pipeline would,
//! 4. reads the daemon's peak resident memory during the cascade (`VmHWM`, reset
//!    just before the root report).
//!
//! Shapes: `wide` (every project depends on the root), `dag` (project i depends on
//! i/2 and i-1) and `chain` (i depends on i-1). Last, the cost of one
//! `PUT /v1/projects/{id}` is measured beside 10 projects and beside 100,000.

use std::time::{Duration, Instant};

use conjunction_protocol::{ProjectId, ProjectSpec, Report, ReportState};
use conjunction_sim::webhook::WebhookCi;
use conjunction_tests::bench::{graph_file, graph_name};
use conjunction_tests::daemon::DaemonProcess;

const ROOT_TOKEN: &str = "scale-root-report-token";
const CASES: &[(&str, usize)] = &[
    ("wide", 1_000),
    ("wide", 10_000),
    ("dag", 1_000),
    ("dag", 10_000),
    ("chain", 1_000),
    ("chain", 10_000),
    ("wide", 100_000),
];

fn main() {
    conjunction_tests::bench::main("scale", |picked| async move {
        let cases: Vec<(String, usize)> = match picked.as_slice() {
            [shape, nodes] => vec![(shape.clone(), nodes.parse().expect("a node count"))],
            _ => CASES.iter().map(|(s, n)| (s.to_string(), *n)).collect(),
        };
        println!(
            "machine: {} cores; daemon: release conjunctiond in its own process; CI: loopback, reports passed 1 ms after each trigger",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!(
            "{:<6} {:>7} {:>11} {:>10} {:>10} {:>9} {:>9}",
            "shape", "nodes", "register", "root ack", "cascade", "per node", "peak RSS"
        );
        let mut results = Vec::new();
        for (shape, nodes) in &cases {
            let r = run(shape, *nodes).await;
            println!(
                "{shape:<6} {nodes:>7} {:>9.2} s {:>7.1} ms {:>8.2} s {:>6.3} ms {:>6} MB",
                r.register.as_secs_f64(),
                r.ack.as_secs_f64() * 1e3,
                r.cascade.as_secs_f64(),
                r.cascade.as_secs_f64() * 1e3 / *nodes as f64,
                r.peak_rss_kb / 1024,
            );
            results.push((shape.clone(), *nodes, r));
        }
        for shape in ["wide", "dag", "chain"] {
            let per_node = |n: usize| {
                results
                    .iter()
                    .find(|(s, k, _)| s == shape && *k == n)
                    .map(|(_, k, r)| r.cascade.as_secs_f64() / *k as f64)
            };
            if let (Some(small), Some(large)) = (per_node(1_000), per_node(10_000)) {
                println!(
                    "{shape}: per-node cost at 10,000 / at 1,000 = {:.2}",
                    large / small
                );
            }
        }
        if cases.len() > 1 {
            single_puts().await;
        }
    });
}

struct Measured {
    register: Duration,
    ack: Duration,
    cascade: Duration,
    peak_rss_kb: u64,
}

async fn run(shape: &str, nodes: usize) -> Measured {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a data directory");
    let ci = WebhookCi::bare().await.expect("start the webhook CI");
    let daemon = DaemonProcess::start(dir.path(), "").await;
    let file = dir.path().join("projects.toml");
    std::fs::write(&file, graph_file(shape, nodes, &ci.url(), ROOT_TOKEN)).expect("projects file");

    let start = Instant::now();
    daemon.apply(&file).await;
    let register = start.elapsed();

    let pid = daemon.pid();
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset the peak RSS");
    let report = Report {
        version: Some("1.0.0".into()),
        ..Report::new(
            ProjectId::parse(&graph_name(0)).expect("valid id"),
            ReportState::Passed,
        )
    };
    let start = Instant::now();
    let ack = daemon
        .api
        .report(ROOT_TOKEN, &report)
        .await
        .expect("the root report is taken");
    let acked = start.elapsed();
    conjunction_tests::bench::all_passed(&daemon.api, ack.root, nodes + 1).await;
    let cascade = start.elapsed();
    let peak_rss_kb = daemon.memory_kib("VmHWM");
    assert_eq!(ci.finished(), nodes as u64);
    daemon.kill().await;
    Measured {
        register,
        ack: acked,
        cascade,
        peak_rss_kb,
    }
}

/// The time of one `PUT /v1/projects/{id}` beside 10 registered projects and beside
/// 100,000: 300 new projects put one at a time (each depending on the root), median.
async fn single_puts() {
    for registered in [10, 100_000] {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a data directory");
        let daemon = DaemonProcess::start(dir.path(), "").await;
        let file = dir.path().join("projects.toml");
        std::fs::write(
            &file,
            graph_file("wide", registered, "http://127.0.0.1:9/hook", ROOT_TOKEN),
        )
        .expect("projects file");
        let list = conjunction_tui::apply::parse(
            &std::fs::read_to_string(&file).expect("read back"),
            |_| None,
        )
        .expect("valid file");
        daemon.api.apply_projects(&list).await.expect("registered");
        let mut times = Vec::new();
        for i in 0..300 {
            let id = ProjectId::parse(&format!("single/p{i:04}")).expect("valid id");
            let spec: ProjectSpec = serde_json::from_value(serde_json::json!({
                "name": format!("single {i}"),
                "depends_on": [{"project": graph_name(0)}],
                "trigger": {"kind": "webhook", "url": "http://127.0.0.1:9/hook"},
            }))
            .expect("valid spec");
            let start = Instant::now();
            daemon.api.put_project(&id, &spec).await.expect("put");
            times.push(start.elapsed());
        }
        times.sort();
        println!(
            "one PUT /v1/projects/{{id}} beside {registered:>6} projects: median {:.2} ms, p90 {:.2} ms",
            times[times.len() / 2].as_secs_f64() * 1e3,
            times[times.len() * 9 / 10].as_secs_f64() * 1e3
        );
        daemon.kill().await;
    }
}
