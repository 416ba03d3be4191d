//! What a build's manifest costs a report (a bench binary; run with
//! `cargo bench -p conjunction-tests --bench manifests`).
//!
//! 64 concurrent clients send root reports (`state: failed`, so no cascade) of one
//! project whose dependencies come `from_manifest`, in alternating 3 s rounds: the
//! report alone, and the same report carrying its `package.json` (40 dependencies,
//! 20 of them registered projects), which the daemon reads, resolves and records in
//! the report's transaction. Both with 100 and with 10,000 registered packages, so
//! the ratios say whether the work per report grows with the graph. Every answer is
//! a `201` sent after the commit was fsynced.

use conjunction_protocol::project::{DependencyOrigin, Ecosystem};
use conjunction_protocol::{
    ManifestFile, Package, ProjectEntry, ProjectId, ProjectSpec, Report, ReportState,
};
use conjunction_tests::bench::{load, median};
use conjunction_tests::daemon::TestDaemon;
use std::time::Duration;

const CLIENTS: usize = 64;
const ROUND: Duration = Duration::from_secs(3);
const ROUNDS: usize = 3;
const DECLARED: usize = 40;

fn main() {
    conjunction_tests::bench::main("manifests", |_| run());
}

fn package(name: String) -> Option<Package> {
    Some(Package {
        ecosystem: Ecosystem::Npm,
        name,
    })
}

/// A daemon with `registered` npm packages and the app; answers the app's report
/// token.
async fn daemon(registered: usize) -> (TestDaemon, String) {
    let d = TestDaemon::start().await;
    let entries: Vec<ProjectEntry> = (0..registered)
        .map(|i| ProjectEntry {
            id: ProjectId::parse(&format!("bench/lib-{i:05}")).unwrap(),
            spec: ProjectSpec {
                name: format!("lib {i}"),
                package: package(format!("@bench/lib-{i:05}")),
                ..Default::default()
            },
        })
        .collect();
    d.api.apply_projects(&entries).await.unwrap();
    let app = ProjectSpec {
        name: "app".into(),
        package: package("@bench/app".into()),
        dependencies: DependencyOrigin::FromManifest,
        report_token: Some("bench-app-report-token-0001".into()),
        ..Default::default()
    };
    d.api
        .put_project(&ProjectId::parse("bench/app").unwrap(), &app)
        .await
        .unwrap();
    (d, "bench-app-report-token-0001".into())
}

/// The app's `package.json`: half of its dependencies registered projects, spread
/// over the registered ones, half packages nobody registered.
fn package_json(registered: usize) -> String {
    let deps: Vec<String> = (0..DECLARED)
        .map(|i| {
            if i % 2 == 0 {
                let lib = (i * registered / DECLARED) % registered;
                format!("\"@bench/lib-{lib:05}\": \"^1.{i}.0\"")
            } else {
                format!("\"left-pad-{i}\": \"~2.{i}.1\"")
            }
        })
        .collect();
    format!(
        "{{ \"name\": \"@bench/app\", \"version\": \"1.0.0\", \"dependencies\": {{ {} }} }}",
        deps.join(", ")
    )
}

async fn run() {
    println!(
        "machine: {} cores; {CLIENTS} clients; {ROUNDS} rounds of {ROUND:?} per case",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for registered in [100, 10_000] {
        let (d, token) = daemon(registered).await;
        let app = ProjectId::parse("bench/app").unwrap();
        let plain = Report {
            version: Some("1.0.0".into()),
            ..Report::new(app.clone(), ReportState::Failed)
        };
        let with_manifest = Report {
            manifests: vec![ManifestFile {
                path: "package.json".into(),
                content: package_json(registered),
            }],
            ..plain.clone()
        };
        let url = format!("{}/v1/reports", d.url());
        let (plain, with_manifest) = (
            serde_json::to_vec(&plain).unwrap(),
            serde_json::to_vec(&with_manifest).unwrap(),
        );
        // The first read sets the app's dependencies; every later one confirms them.
        let ack = d
            .api
            .report(&token, &serde_json::from_slice(&with_manifest).unwrap())
            .await
            .unwrap();
        assert!(ack.warnings.is_empty(), "{:?}", ack.warnings);
        let deps = d.api.project(&app).await.unwrap().depends_on.len();
        assert_eq!(deps, DECLARED / 2, "the registered half is depended on");
        let (mut bare, mut read) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            bare.push(load(&url, &token, &plain, 201, CLIENTS, ROUND).await);
            read.push(load(&url, &token, &with_manifest, 201, CLIENTS, ROUND).await);
        }
        let (b, r) = (median(bare.clone()), median(read.clone()));
        println!(
            "{registered:>6} packages: reports {b:>7.0}/s, with the manifest {r:>7.0}/s, ratio {:.2}  (rounds: {} | {})",
            r / b,
            fmt(&bare),
            fmt(&read)
        );
        d.stop().await;
    }
}

fn fmt(v: &[f64]) -> String {
    v.iter()
        .map(|r| format!("{r:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}
