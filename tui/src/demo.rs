//! `conjunction demo`: a daemon, a simulated CI and a publisher of new upstream
//! versions, all in this process on loopback with a temporary database, and the
//! terminal UI opened on them. Nothing else is needed. The upstreams report to a
//! simulated GitHub on loopback, whose commit statuses (and the one pull request's
//! comment) the demo prints, and the runtime has a pull request tested as a
//! candidate, pushed to twice.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use anyhow::Context;
use conjunction_daemon::DispatchConfig;
use conjunction_protocol::forge::{Forge, ReportTarget};
use conjunction_protocol::{BuildId, Candidate, ProjectId, Report, ReportState};
use rand::Rng;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use conjunction_sim::catalog::{self, PROJECTS, UPSTREAMS};
use conjunction_sim::forge::MockForge;
use conjunction_sim::webhook::WebhookCi;
use conjunction_sim::{chat, native};

use crate::client::Client;

/// What `conjunction demo` is asked to do.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Time between two new upstream versions.
    pub interval: Duration,
    /// Print the daemon's address and token and run without the terminal UI, to
    /// point another `conjunction` at it.
    pub headless: bool,
}

/// Runs the demo until the user quits the UI (or, headless, presses Ctrl-C).
pub async fn run(options: DemoOptions) -> anyhow::Result<()> {
    let data = tempfile::Builder::new()
        .prefix("conjunction-demo-")
        .tempdir()
        .context("cannot create a temporary directory for the demo's database")?;
    let token = random_hex(24);
    let mut config = conjunction_daemon::Settings::new(data.path());
    config.operator_tokens = vec![token.clone()];
    config.dispatch = DispatchConfig {
        timeout_ms: 3_000,
        max_attempts: 3,
        backoff_base_ms: 250,
        backoff_max_ms: 2_000,
        concurrency: 32,
        // The demo CI is one host serving every project.
        per_host: 32,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = oneshot::channel::<()>();
    let daemon = tokio::spawn(conjunction_daemon::serve(config, listener, async move {
        let _ = stopped.await;
    }));
    let client = Client::new(&url, Some(token.clone()));

    // The CI of the projects triggered by the generic webhook, keeping nothing of
    // what it did however long the demo runs.
    let ci = WebhookCi::quiet().await?;
    ci.decide(catalog::build);

    // Projects built on GitHub, GitLab, Buildkite and Jenkins: triggered through their
    // APIs and heard from by their webhooks, both simulated.
    let native = native::NativeCi::start(&url).await?;
    let secret = random_hex(16);
    for &(project, ci, name) in catalog::NATIVE {
        let api_token = match ci {
            conjunction_protocol::CiKind::Jenkins => format!("conjunction:{secret}"),
            _ => secret.clone(),
        };
        let mut pipeline =
            native::Pipeline::new(ci, name, ProjectId::parse(project)?, &api_token, &secret);
        let mut rng = rand::rng();
        pipeline.queue = Duration::from_millis(rng.random_range(200..1500));
        pipeline.run = Duration::from_millis(rng.random_range(1000..5000));
        pipeline.queue_polls = 1;
        native.add(pipeline);
    }
    // The chat the projects' notification rules post to, on loopback.
    let (said_tx, mut said) = tokio::sync::mpsc::unbounded_channel();
    let chat = chat::Sink::forwarding(said_tx).await?;
    let chat_base = chat.url("");
    // The upstreams' forge, where their commits are told how their dependents fared.
    let forge = std::sync::Arc::new(MockForge::start_keeping(FORGE_KEPT).await?);
    let places = Places {
        ci: ci.url(),
        native: native.base_url().to_owned(),
        secret: secret.clone(),
        chat: chat_base,
        forge: forge.base_url(),
    };
    let report_tokens = register(&client, &places).await?;
    // The commits of the candidate's pushes, to say so where the forge's are printed.
    let candidates: Shared<std::collections::HashSet<String>> = Default::default();
    let publisher = tokio::spawn(publish(
        client.clone(),
        report_tokens,
        options.interval,
        candidates.clone(),
    ));

    // What the chat was told: printed as it comes when headless, and the last of it
    // once the UI closes (printing under the UI would tear its screen).
    let headless = options.headless;
    let kept = std::sync::Arc::new(std::sync::Mutex::new(VecDeque::new()));
    let keep = {
        let kept = kept.clone();
        move |line: String| {
            if headless {
                println!("{line}");
            }
            let mut kept = kept.lock().unwrap_or_else(|p| p.into_inner());
            kept.push_back(line);
            if kept.len() > CHAT_SHOWN {
                kept.pop_front();
            }
        }
    };
    let chat_log = tokio::spawn({
        let keep = keep.clone();
        async move {
            while let Some((channel, text)) = said.recv().await {
                keep(format!(
                    "  {channel:<8} {}",
                    text.lines().next().unwrap_or_default()
                ));
            }
        }
    });
    // What the forge's commits were told, as it is told.
    let forge_log = tokio::spawn({
        let forge = forge.clone();
        async move {
            let mut seen = 0;
            loop {
                let (statuses, total) = forge.statuses_since(seen);
                seen = total;
                for s in statuses {
                    let sha: String = s.sha.chars().take(7).collect();
                    let pushed = lock(&candidates).contains(&s.sha);
                    let what = if pushed {
                        format!(" (candidate #{CANDIDATE_CHANGE})")
                    } else {
                        String::new()
                    };
                    keep(format!(
                        "  forge    {}@{sha}{what} {} {}: {}",
                        s.repo, s.context, s.state, s.description
                    ));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });
    let ui = if options.headless {
        println!("conjunction demo is running; press Ctrl-C to stop.");
        println!("  daemon:  {url}");
        println!("  token:   {token}");
        println!("  connect: conjunction --url {url} --token {token}");
        println!("What the projects' notify rules told the demo chat, and what the upstreams'");
        println!("forge shows on their commits:");
        tokio::signal::ctrl_c().await.map_err(anyhow::Error::from)
    } else {
        crate::terminal::run(client)
            .await
            .context("the terminal UI failed")
    };

    publisher.abort();
    chat_log.abort();
    forge_log.abort();
    let kept = std::mem::take(&mut *kept.lock().unwrap_or_else(|p| p.into_inner()));
    if !headless && !kept.is_empty() {
        println!("The last of what the demo chat was told and the forge's commits show:");
        for line in kept {
            println!("{line}");
        }
    }
    for comment in forge.comments() {
        println!(
            "The comment on {} pull request #{} (edited {} times):",
            comment.repo, comment.number, comment.edits
        );
        for line in comment
            .body
            .lines()
            .skip(1)
            .filter(|l| !l.is_empty())
            .take(12)
        {
            println!("  {line}");
        }
    }
    let _ = stop.send(());
    match daemon.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e).context("the demo daemon failed"),
        Err(e) => return Err(e).context("the demo daemon ended abnormally"),
    }
    ui
}

/// What the demo's tasks share.
type Shared<T> = std::sync::Arc<std::sync::Mutex<T>>;

fn lock<T>(shared: &Shared<T>) -> std::sync::MutexGuard<'_, T> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

fn random_hex(bytes: usize) -> String {
    let mut rng = rand::rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

/// How many of the chat's and the forge's last lines are printed when the UI closes.
const CHAT_SHOWN: usize = 20;
/// How many calls and statuses the demo's forge keeps, however long it runs.
const FORGE_KEPT: usize = 1_000;

/// Where the demo's simulated systems listen, and the secret they share.
struct Places {
    ci: String,
    native: String,
    secret: String,
    chat: String,
    forge: String,
}

/// Registers every demo project, the upstreams reporting to the demo's forge (a
/// commit status each, and a comment on a candidate's pull request); returns the
/// report tokens of the upstreams, which their (simulated) release pipelines report
/// with.
async fn register(
    client: &Client,
    places: &Places,
) -> anyhow::Result<HashMap<&'static str, String>> {
    let mut tokens = HashMap::new();
    for project in PROJECTS {
        let id = project.project_id()?;
        let mut spec = project.spec(&places.ci, &places.native, &places.secret, &places.chat)?;
        if UPSTREAMS.iter().any(|(u, _, _)| *u == project.id) {
            spec.report_to = vec![ReportTarget {
                forge: Forge::Github {
                    repo: project.id.to_owned(),
                    token: Some(conjunction_sim::forge::TOKEN.to_owned()),
                    app: None,
                    per_dependent: false,
                    api_url: Some(places.forge.clone()),
                },
                needs_bump_fails: false,
                comment: true,
            }];
        }
        let (_, upserted) = client
            .put_project(&id, &spec)
            .await
            .with_context(|| format!("cannot register demo project {id}"))?;
        if let Some(token) = upserted.report_token {
            tokens.insert(project.id, token);
        }
    }
    Ok(tokens)
}

/// How many intervals after a runtime release it is promoted to test, and after that
/// to prod, at the earliest: a release manager waits for the event before to finish.
const PROMOTE_AFTER: u64 = 6;

/// The runtime's pull request the demo tests as a candidate, and the ticks at which
/// its two pushes are reported (the second supersedes the first).
const CANDIDATE_CHANGE: &str = "42";
const CANDIDATE_PUSHES: [u64; 2] = [2, 5];

/// Publishes a new version of one of the upstreams every `interval`: the first one
/// at once, then picked at random by weight. Every third release of an upstream is a
/// minor one (the runtime's 1.5.0 breaks the legacy portal), and the runtime's fourth
/// is a new major, 2.0.0, which core/metrics (declaring ^1) needs a bump for. Each
/// runtime release is promoted to test [`PROMOTE_AFTER`] intervals later, and to prod
/// as long again after that, each time once the event before has finished, pinning
/// its dependents to the versions they built.
async fn publish(
    client: Client,
    tokens: HashMap<&'static str, String>,
    interval: Duration,
    candidates: Shared<std::collections::HashSet<String>>,
) {
    let mut versions: HashMap<&str, (u64, u64, u64)> =
        UPSTREAMS.iter().map(|(p, _, v)| (*p, *v)).collect();
    let mut releases: HashMap<&str, u32> = HashMap::new();
    let total: u32 = UPSTREAMS.iter().map(|(_, w, _)| w).sum();
    let runtime = UPSTREAMS[0].0;
    // (when, the event before, version, environment), in the order they fall due.
    let mut promotions: VecDeque<(u64, BuildId, String, &str)> = VecDeque::new();
    for tick in 0u64.. {
        while promotions.front().is_some_and(|(due, ..)| *due <= tick) {
            let Some((due, before, version, environment)) = promotions.pop_front() else {
                break;
            };
            // In order: a version waits for the one before it, so no environment is
            // rolled back by a promotion that merely came late.
            if !finished(&client, before).await {
                promotions.push_front((due, before, version, environment));
                break;
            }
            let promoted = report(&client, &tokens, runtime, &version, Some(environment)).await;
            if let (Some(root), "test") = (promoted, environment) {
                promotions.push_back((tick + PROMOTE_AFTER, root, version, "prod"));
            }
        }
        if CANDIDATE_PUSHES.contains(&tick) {
            // A pull request on the runtime, made on its latest release.
            let (major, minor, patch) = versions[runtime];
            let base = format!("{major}.{minor}.{patch}");
            let commit = random_hex(20);
            lock(&candidates).insert(commit.clone());
            candidate(&client, &tokens, runtime, &base, commit).await;
        }
        let project = if tick == 0 {
            runtime
        } else {
            let mut roll = rand::rng().random_range(0..total);
            UPSTREAMS
                .iter()
                .find(|(_, w, _)| {
                    let hit = roll < *w;
                    roll = roll.saturating_sub(*w);
                    hit
                })
                .map_or(runtime, |(p, _, _)| *p)
        };
        let n = releases.entry(project).or_default();
        *n += 1;
        let version = versions.entry(project).or_insert((0, 1, 0));
        if project == runtime && *n == 4 {
            *version = (version.0 + 1, 0, 0);
        } else if n.is_multiple_of(3) {
            *version = (version.0, version.1 + 1, 0);
        } else {
            version.2 += 1;
        }
        let (major, minor, patch) = *version;
        let version = format!("{major}.{minor}.{patch}");
        let released = report(&client, &tokens, project, &version, None).await;
        if let (Some(root), true) = (released, project == runtime) {
            promotions.push_back((tick + PROMOTE_AFTER, root, version, "test"));
        }
        tokio::time::sleep(interval).await;
    }
}

/// Reports that `version` of `project` passed its release pipeline (into
/// `environment`, for a promotion). A refused report (the daemon shutting down) is
/// simply skipped; the answer is the root event it started.
async fn report(
    client: &Client,
    tokens: &HashMap<&'static str, String>,
    project: &str,
    version: &str,
    environment: Option<&str>,
) -> Option<BuildId> {
    let (Ok(id), Some(token)) = (ProjectId::parse(project), tokens.get(project)) else {
        return None;
    };
    let report = Report {
        version: Some(version.to_owned()),
        commit: Some(random_hex(20)),
        git_ref: Some("refs/heads/main".into()),
        environment: environment.map(str::to_owned),
        ..Report::new(id, ReportState::Passed)
    };
    client.report(token, &report).await.ok().map(|ack| ack.root)
}

/// Reports that a pull request's pipeline on `project`, made on `base`, passed: a
/// candidate event, tested with the dependents before it merges.
async fn candidate(
    client: &Client,
    tokens: &HashMap<&'static str, String>,
    project: &str,
    base: &str,
    commit: String,
) -> Option<BuildId> {
    let (Ok(id), Some(token)) = (ProjectId::parse(project), tokens.get(project)) else {
        return None;
    };
    let report = Report {
        commit: Some(commit),
        git_ref: Some("faster-io".into()),
        candidate: Some(Candidate::new(CANDIDATE_CHANGE, Some(base.to_owned()))),
        ..Report::new(id, ReportState::Passed)
    };
    client.report(token, &report).await.ok().map(|ack| ack.root)
}

/// Whether every build of root event `root` has finished.
async fn finished(client: &Client, root: BuildId) -> bool {
    client
        .root(root)
        .await
        .is_ok_and(|event| event.summary.counts.keys().all(|state| state.is_final()))
}
