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
    load_across(&[url.to_owned()], token, body, expect, clients, round)
        .await
        .rate
}

/// What [`load_across`] measured.
pub struct Load {
    /// Answers per second.
    pub rate: f64,
    /// Each answer's time from sending to its last byte.
    pub latencies: Vec<std::time::Duration>,
}

/// As [`load`], client `i` sending to `urls[i % urls.len()]`, with every answer's
/// latency.
pub async fn load_across(
    urls: &[String],
    token: &str,
    body: &[u8],
    expect: u16,
    clients: usize,
    round: std::time::Duration,
) -> Load {
    use std::time::Instant;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .expect("an HTTP client");
    let deadline = Instant::now() + round;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..clients {
        let (http, url, token, body) = (
            http.clone(),
            urls[i % urls.len()].clone(),
            token.to_owned(),
            body.to_vec(),
        );
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
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
                latencies.push(sent.elapsed());
            }
            latencies
        });
    }
    let start = Instant::now();
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done.expect("a client task"));
    }
    Load {
        rate: latencies.len() as f64 / start.elapsed().as_secs_f64(),
        latencies,
    }
}

/// The median of `v` (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The given quantiles of `values` (nearest rank below).
pub fn quantiles<const N: usize>(
    mut values: Vec<std::time::Duration>,
    qs: [f64; N],
) -> [std::time::Duration; N] {
    values.sort();
    qs.map(|q| values[((values.len() - 1) as f64 * q) as usize])
}

/// The id of project `i` of a benchmark's graph (the root is 0).
pub fn graph_name(i: usize) -> String {
    format!("scale/p{i:06}")
}

/// Project i's upstreams in a shape (the root is project 0).
fn upstreams(shape: &str, i: usize) -> Vec<usize> {
    let mut ups = match shape {
        "wide" => vec![0],
        "dag" => vec![i / 2, i - 1],
        "chain" => vec![i - 1],
        other => panic!("unknown shape {other}; use wide, dag or chain"),
    };
    ups.dedup();
    ups
}

/// The projects file `conjunction apply` reads for a graph of `nodes` projects below
/// a root (project 0, reporting with `root_token`), each triggered at `hook`.
pub fn graph_file(shape: &str, nodes: usize, hook: &str, root_token: &str) -> String {
    let mut out = format!(
        "[[project]]\nid = \"{}\"\nname = \"root\"\nreport_token = \"{root_token}\"\n\n",
        graph_name(0)
    );
    for i in 1..=nodes {
        let deps: Vec<String> = upstreams(shape, i)
            .iter()
            .map(|&u| format!("{{ project = \"{}\" }}", graph_name(u)))
            .collect();
        out.push_str(&format!(
            "[[project]]\nid = \"{}\"\nname = \"p{i}\"\ndepends_on = [{}]\ntrigger = {{ kind = \"webhook\", url = \"{hook}\" }}\n\n",
            graph_name(i),
            deps.join(", ")
        ));
    }
    out
}

/// Waits until every one of the `builds` of the root event `root` (the newest) has
/// passed; panics when one fails.
pub async fn all_passed(
    api: &conjunction_tui::client::Client,
    root: conjunction_protocol::BuildId,
    builds: usize,
) {
    use conjunction_protocol::StateKind;
    loop {
        let roots = api.roots(1).await.expect("roots");
        let summary = roots.first().filter(|r| r.id == root).expect("our root");
        let passed = summary.counts.get(&StateKind::Passed).copied().unwrap_or(0) as usize;
        if passed == builds {
            return;
        }
        let not_passing = summary
            .counts
            .iter()
            .any(|(k, n)| k.is_failure() && *k != StateKind::Passed && *n > 0);
        assert!(!not_passing, "a build did not pass: {:?}", summary.counts);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
