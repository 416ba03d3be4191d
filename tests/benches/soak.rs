//! Soak benchmark (a bench binary; `cargo bench -p conjunction-tests --bench soak`,
//! optionally followed by `-- <seconds>` per phase, 120 by default).
//!
//! The release `conjunctiond` runs in its own process under a steady load: a new
//! release of one of four upstreams every 100 ms, each building its 25 dependents on
//! a loopback CI (250 builds a second). The database file's size is sampled every ten
//! seconds. Two phases of the same length, each on a fresh data directory: with
//! retention keeping 30 seconds (`keep_days = 30/86400`, the last 5 events of each
//! upstream) and with retention off. With retention the file should stop growing once
//! the first events age out; without, it grows with the load.

use std::time::{Duration, Instant};

use conjunction_protocol::{ProjectId, Report, ReportState};
use conjunction_sim::webhook::WebhookCi;
use conjunction_tests::daemon::DaemonProcess;

const UPSTREAMS: usize = 4;
const DEPENDENTS: usize = 25;
const EVERY: Duration = Duration::from_millis(100);
const SAMPLE: Duration = Duration::from_secs(10);

fn main() {
    conjunction_tests::bench::main("soak", |args| async move {
        let secs: u64 = args.first().map_or(120, |s| s.parse().expect("seconds"));
        println!(
            "machine: {} cores; daemon: release conjunctiond in its own process; load: a release every {} ms, {} builds each",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            EVERY.as_millis(),
            DEPENDENTS
        );
        let keep = 30.0 / 86_400.0;
        let on =
            format!("[retention]\nkeep_days = {keep}\nkeep_per_upstream = 5\ninterval_ms = 2000\n");
        let with = phase("retention on (30 s, last 5)", &on, secs).await;
        let without = phase("retention off", "[retention]\nenabled = false\n", secs).await;
        let last = |s: &[(u64, u64)]| s.last().map_or(0, |(_, b)| *b);
        let at =
            |s: &[(u64, u64)], t: u64| s.iter().find(|(at, _)| *at >= t).map_or(0, |(_, b)| *b);
        println!(
            "with retention: {:.1} MiB at {}s, {:.1} MiB at the end; without: {:.1} MiB at the end (ratio {:.2})",
            at(&with, secs / 2) as f64 / 1048576.0,
            secs / 2,
            last(&with) as f64 / 1048576.0,
            last(&without) as f64 / 1048576.0,
            last(&with) as f64 / last(&without).max(1) as f64
        );
    });
}

/// Runs the load for `secs` on a fresh daemon with `config`; the (second, file size)
/// samples.
async fn phase(title: &str, config: &str, secs: u64) -> Vec<(u64, u64)> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a data directory");
    let ci = WebhookCi::bare().await.expect("start the webhook CI");
    let daemon = DaemonProcess::start(dir.path(), config).await;
    let mut file = String::new();
    for u in 0..UPSTREAMS {
        file.push_str(&format!(
            "[[project]]\nid = \"soak/up{u}\"\nname = \"up{u}\"\nreport_token = \"soak-report-token-{u:04}\"\n\n"
        ));
        for d in 0..DEPENDENTS {
            file.push_str(&format!(
                "[[project]]\nid = \"soak/up{u}-d{d}\"\nname = \"d{d}\"\ndepends_on = [{{ project = \"soak/up{u}\" }}]\ntrigger = {{ kind = \"webhook\", url = \"{}\" }}\n\n",
                ci.url()
            ));
        }
    }
    let projects = dir.path().join("projects.toml");
    std::fs::write(&projects, file).expect("projects file");
    daemon.apply(&projects).await;

    let db = dir.path().join("conjunction.redb");
    let size = || std::fs::metadata(&db).map_or(0, |m| m.len());
    let started = Instant::now();
    let mut next_sample = SAMPLE;
    let mut samples = Vec::new();
    let mut releases = 0u64;
    print!("{title}: MiB every {}s:", SAMPLE.as_secs());
    while started.elapsed() < Duration::from_secs(secs) {
        let u = releases as usize % UPSTREAMS;
        releases += 1;
        let report = Report {
            version: Some(format!("1.0.{releases}")),
            ..Report::new(
                ProjectId::parse(&format!("soak/up{u}")).expect("id"),
                ReportState::Passed,
            )
        };
        daemon
            .api
            .report(&format!("soak-report-token-{u:04}"), &report)
            .await
            .expect("the release is taken");
        if started.elapsed() >= next_sample {
            let bytes = size();
            samples.push((next_sample.as_secs(), bytes));
            print!(" {:.1}", bytes as f64 / 1048576.0);
            use std::io::Write;
            let _ = std::io::stdout().flush();
            next_sample += SAMPLE;
        }
        tokio::time::sleep(EVERY).await;
    }
    println!();
    println!(
        "{title}: {releases} releases, {} builds reported",
        ci.finished()
    );
    assert!(daemon.terminate().await.success());
    samples
}
