//! Helpers for conjunction's end-to-end tests and benchmarks: a real daemon on
//! loopback (in-process or as the `conjunctiond` binary), chat and mail servers, and
//! small clients. The simulated CI systems are in `conjunction-sim`.

pub mod bench;
pub mod chat;
pub mod daemon;
pub mod feed;
pub mod issuer;
pub mod postgres;
pub mod tmux;

use std::future::Future;
use std::time::Duration;

/// Whether to skip a test about the redb file itself (`what` it checks: damaged
/// pages, say), because the harness runs the daemons on PostgreSQL; says so.
pub fn redb_only(what: &str) -> bool {
    let skip = postgres::daemons_on_postgres();
    if skip {
        eprintln!("skipped on PostgreSQL: this test is about the redb file itself ({what})");
    }
    skip
}

/// Polls `check` until it gives a value or `within` passes; the panic names `what`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The bytes of `../shared/fixtures/<path>` (the shared folder beside the repository,
/// where third-party payloads, logs and tables are kept; they are never copied here).
pub fn fixture(path: &str) -> Vec<u8> {
    let full = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures")
        .join(path);
    std::fs::read(&full).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the fixtures are read from ../shared beside the repository)",
            full.display()
        )
    })
}

/// A JSON fixture; a captured request (`{"headers": …, "body": …}`) gives its body.
pub fn fixture_json(path: &str) -> serde_json::Value {
    let value: serde_json::Value = serde_json::from_slice(&fixture(path))
        .unwrap_or_else(|e| panic!("{path} is not JSON: {e}"));
    match value {
        serde_json::Value::Object(mut o) if o.contains_key("headers") && o.contains_key("body") => {
            o.remove("body").unwrap_or_default()
        }
        other => other,
    }
}
