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
//! 4. reads memory again after the restart and after reading the 1,000 newest events,
//! 5. sends reports for 10 s to measure their rate, then takes a backup with
//!    `conjunctiond backup` while the same load goes on, and reports how long it took
//!    and the rate during it,
//! 6. restores the backup into a new data directory and times a daemon's start on it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use conjunction_protocol::{ProjectEntry, ProjectId, ProjectSpec, Report, ReportState};
use conjunction_tests::daemon::{run_conjunctiond, DaemonProcess};

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

        let baseline = load_while(&daemon, &tokens, reports, async {
            tokio::time::sleep(Duration::from_secs(10)).await;
        })
        .await;
        let backup = dir.path().join("backup.redb");
        let url = format!("http://{addr}");
        let backing_up = load_while(&daemon, &tokens, reports + baseline.0, async {
            let args = ["backup", "--to", path(&backup), "--url", &url];
            let said = conjunctiond(&args).await;
            println!("backup: {said}");
        })
        .await;
        let backup_size = std::fs::metadata(&backup).expect("the backup").len();
        println!(
            "reports/s: {:.0} for 10 s before the backup, {:.0} during it; backup: {:.1} s for {} MB",
            baseline.0 as f64 / baseline.1.as_secs_f64(),
            backing_up.0 as f64 / backing_up.1.as_secs_f64(),
            backing_up.1.as_secs_f64(),
            backup_size >> 20,
        );
        assert!(daemon.terminate().await.success());
        print_repairs(&log);

        let restored = dir.path().join("restored");
        println!(
            "restore: {}",
            conjunctiond(&[
                "restore",
                "--from",
                path(&backup),
                "--data-dir",
                path(&restored)
            ])
            .await
        );
        let starting = Instant::now();
        let daemon = DaemonProcess::start(&restored, &config).await;
        println!(
            "start on the restored copy: {:.2} s until /healthz answers; {} root events listed",
            starting.elapsed().as_secs_f64(),
            daemon.api.roots(1_000).await.expect("roots").len()
        );
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
    let never = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    senders(daemon, tokens, 0..reports, never, done)
        .join_all()
        .await;
}

/// Sends root reports, 256 in flight and numbered from `first`, for as long as `work`
/// takes; returns how many were acknowledged and how long that was.
async fn load_while(
    daemon: &DaemonProcess,
    tokens: &[(ProjectId, String)],
    first: u64,
    work: impl std::future::Future<Output = ()>,
) -> (u64, Duration) {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let senders = senders(daemon, tokens, first..u64::MAX, stop.clone(), done.clone());
    let started = Instant::now();
    work.await;
    let took = started.elapsed();
    let acknowledged = done.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    senders.join_all().await;
    (acknowledged, took)
}

/// 256 tasks sending the root reports numbered `numbers`, spread over the projects,
/// until they are all sent or `stop` is set; each acknowledged one counts in `done`.
fn senders(
    daemon: &DaemonProcess,
    tokens: &[(ProjectId, String)],
    numbers: std::ops::Range<u64>,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) -> tokio::task::JoinSet<()> {
    let next = Arc::new(AtomicU64::new(numbers.start));
    let tokens = Arc::new(tokens.to_vec());
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let (api, next, done, stop, tokens) = (
            daemon.api.clone(),
            next.clone(),
            done.clone(),
            stop.clone(),
            tokens.clone(),
        );
        let end = numbers.end;
        senders.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= end {
                    break;
                }
                let (project, token) = &tokens[n as usize % tokens.len()];
                let mut report = Report::new(project.clone(), ReportState::Passed);
                report.version = Some(format!("1.0.{n}"));
                report.commit = Some(format!("{n:040x}"));
                api.report(token, &report)
                    .await
                    .expect("report acknowledged");
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    senders
}

/// Runs the `conjunctiond` command with `args`, and returns what it printed.
async fn conjunctiond(args: &[&str]) -> String {
    let (ok, said) = run_conjunctiond(args).await;
    assert!(ok, "conjunctiond {args:?}: {said}");
    said.trim().to_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
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
