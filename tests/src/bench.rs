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
