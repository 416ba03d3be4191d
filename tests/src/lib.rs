//! Helpers for conjunction's end-to-end tests and benchmarks: a real daemon on
//! loopback (in-process or as the `conjunctiond` binary), a mock CI server that takes
//! triggers and reports back, a lean loopback CI for benchmarks, and small clients.

pub mod bench;
pub mod chat;
pub mod daemon;
pub mod feed;
pub mod loopback_ci;
pub mod mock_ci;
pub mod tmux;

use std::future::Future;
use std::time::Duration;

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
