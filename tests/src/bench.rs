//! What every bench binary of this crate does before measuring.

use std::future::Future;

/// Runs `measure` on a multi-threaded runtime with the bench's own arguments (those
/// not starting with `--`), when the binary was started by `cargo bench`. `cargo test
/// --benches` runs bench binaries too, without `--bench`: then it only says how to
/// measure.
pub fn main<F: Future<Output = ()>>(name: &str, measure: impl FnOnce(Vec<String>) -> F) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("{name}: run with `cargo bench -p conjunction-tests --bench {name}` to measure");
        return;
    }
    let own = args.into_iter().filter(|a| !a.starts_with("--")).collect();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(measure(own));
}

/// `clients` concurrent clients POST `body` to `url` with `token` for `round`, each
/// answer checked to be `expect`; answers per second.
pub async fn load(
    url: &str,
    token: &str,
    body: &[u8],
    expect: u16,
    clients: usize,
    round: std::time::Duration,
) -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Instant;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .expect("an HTTP client");
    let count = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + round;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (http, url, token, body, count) = (
            http.clone(),
            url.to_owned(),
            token.to_owned(),
            body.to_vec(),
            count.clone(),
        );
        tasks.spawn(async move {
            while Instant::now() < deadline {
                let r = http
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .expect("request");
                assert_eq!(r.status().as_u16(), expect, "{url}");
                let _ = r.bytes().await;
                count.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let start = Instant::now();
    while tasks.join_next().await.is_some() {}
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// The median of `v` (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
