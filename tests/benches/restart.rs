//! Memory and restart time at size (a bench binary; run with `cargo bench -p
//! conjunction-tests --bench restart`, optionally followed by `-- <reports>
//! <cache_mib>`; the defaults are 1,000,000 reports and the default cache).
//!
//! Starts the release `conjunctiond` in its own process on a fresh data directory,
//! sends `reports` root reports (256 in flight, spread over 1,000 projects), then:
//!
//! 1. reads the daemon's resident memory (`VmRSS`, and the peak, `VmHWM`) and the
//!    database's size per report,
//! 2. kills it with SIGKILL and times a restart until `/healthz` answers (redb then
//!    verifies and repairs the whole file),
//! 3. stops it with SIGTERM and times a clean restart,
//! 4. reads memory again after the restart and after reading the 1,000 newest events.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use conjunction_protocol::{ProjectEntry, ProjectId, ProjectSpec, Report, ReportState};
use conjunction_tests::daemon::DaemonProcess;

const PROJECTS: usize = 1_000;
const IN_FLIGHT: usize = 256;

fn main() {
    conjunction_tests::bench::main("restart", |args| async move {
        let reports: u64 = args
            .first()
            .map_or(1_000_000, |n| n.parse().expect("a report count"));
        let cache_mib: Option<u64> = args.get(1).map(|n| n.parse().expect("a cache size in MiB"));
        let config = match cache_mib {
            Some(mib) => format!("[store]\ncache_mib = {mib}\n"),
            None => String::new(),
        };
        println!(
            "machine: {} cores; daemon: release conjunctiond in its own process; {reports} root reports; cache: {}",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            cache_mib.map_or("default (64 MiB)".into(), |m| format!("{m} MiB")),
        );
        let dir = tempfile::tempdir().expect("data directory");
        let log = dir.path().join("conjunctiond.log");
        let daemon = DaemonProcess::start_logging(dir.path(), &config, &log).await;
        let tokens = register(&daemon).await;

        let started = Instant::now();
        send_reports(&daemon, &tokens, reports).await;
        let load = started.elapsed();
        let db = dir.path().join("conjunction.redb");
        let size = std::fs::metadata(&db).expect("database").len();
        println!(
            "load: {:.1} s ({:.0} reports/s); file: {} MB, {} bytes per report",
            load.as_secs_f64(),
            reports as f64 / load.as_secs_f64(),
            size >> 20,
            size / reports.max(1)
        );
        println!("after load: {}", memory(&daemon));

        let addr = daemon.addr;
        daemon.kill().await;
        let restarting = Instant::now();
        let daemon = DaemonProcess::start_on_logging(addr, dir.path(), &config, &log).await;
        println!(
            "restart after SIGKILL: {:.2} s until /healthz answers",
            restarting.elapsed().as_secs_f64()
        );
        assert!(daemon.terminate().await.success());
        let restarting = Instant::now();
        let daemon = DaemonProcess::start_on_logging(addr, dir.path(), &config, &log).await;
        println!(
            "restart after SIGTERM: {:.2} s until /healthz answers",
            restarting.elapsed().as_secs_f64()
        );
        println!("after restart: {}", memory(&daemon));
        for root in daemon.api.roots(1_000).await.expect("roots") {
            daemon.api.root(root.id).await.expect("root");
        }
        println!("after reading 1,000 events: {}", memory(&daemon));
        assert!(daemon.terminate().await.success());
        print_repairs(&log);
    });
}

async fn register(daemon: &DaemonProcess) -> Vec<(ProjectId, String)> {
    let entries: Vec<ProjectEntry> = (0..PROJECTS)
        .map(|i| ProjectEntry {
            id: ProjectId::parse(&format!("bench/p{i}")).expect("id"),
            spec: ProjectSpec {
                name: format!("project {i}"),
                contacts: Vec::new(),
                depends_on: Vec::new(),
                trigger: None,
                report_token: Some(format!("restart-bench-token-{i:04}")),
                package: None,
                ..Default::default()
            },
        })
        .collect();
    daemon.api.apply_projects(&entries).await.expect("projects");
    entries
        .into_iter()
        .map(|e| (e.id, e.spec.report_token.expect("set above")))
        .collect()
}

async fn send_reports(daemon: &DaemonProcess, tokens: &[(ProjectId, String)], reports: u64) {
    let next = Arc::new(AtomicU64::new(0));
    let tokens = Arc::new(tokens.to_vec());
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let (api, next, tokens) = (daemon.api.clone(), next.clone(), tokens.clone());
        senders.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= reports {
                    break;
                }
                let (project, token) = &tokens[n as usize % tokens.len()];
                let mut report = Report::new(project.clone(), ReportState::Passed);
                report.version = Some(format!("1.0.{n}"));
                report.commit = Some(format!("{n:040x}"));
                api.report(token, &report)
                    .await
                    .expect("report acknowledged");
            }
        });
    }
    senders.join_all().await;
}

/// `VmRSS` and `VmHWM` of the daemon, in MB.
fn memory(daemon: &DaemonProcess) -> String {
    format!(
        "RSS {} MB (peak {} MB)",
        daemon.memory_kib("VmRSS") >> 10,
        daemon.memory_kib("VmHWM") >> 10
    )
}

/// The daemon's own words about repairs, from its log.
fn print_repairs(log: &Path) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    for line in text.lines().filter(|l| l.contains("repair")) {
        println!(
            "log: {}",
            line.split_once(' ').map_or(line, |(_, rest)| rest)
        );
    }
}
