//! The conjunction daemon.
//!
//! [`serve`] runs the whole daemon on a listener until a shutdown future resolves:
//! the HTTP API and the live feed ([`api`], fed by the [`hub`]), the one database
//! writer ([`writer`], over the [`store`]), the cascade [`planner`] and the trigger
//! [`dispatch`]er. Tests start it on `127.0.0.1:0`; `conjunctiond` starts it from
//! its configuration.

pub mod api;
pub mod auth;
pub mod badges;
pub mod ci;
pub mod config;
pub mod dispatch;
pub mod health;
pub mod hub;
pub mod metrics;
pub mod notify;
pub mod outbox;
pub mod planner;
pub mod reconcile;
pub mod server;
pub mod store;
pub mod systemd;
pub mod writer;

use std::future::Future;
use std::sync::{Arc, RwLock};

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

pub use config::Config;

use crate::auth::OperatorTokens;
use crate::dispatch::Dispatcher;
use crate::planner::Graph;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    // The sources are not repeated in the messages: `anyhow` prints them as causes.
    #[error("cannot use data directory {}", path.display())]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("cannot open the database")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("cannot build the HTTP client")]
    Client(#[from] reqwest::Error),
    #[error(transparent)]
    WriterFailed(#[from] writer::Fault),
    #[error("the settings cannot be used: {0}")]
    Settings(String),
}

/// The text of a panic's payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// Resolves once the shutdown flag is raised (or its sender is gone).
pub(crate) async fn stopped(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|stop| *stop).await;
}

/// Runs the daemon on `listener` until `shutdown` resolves, then stops accepting,
/// closes websockets, lets deliveries in flight finish, commits the writer's last
/// batch and closes the database.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServeError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let (tokens, token_file) = config::operator_tokens(&config)?;
    if let Some(path) = token_file {
        tracing::info!(path = %path.display(), "operator token is in this file");
    }
    let (build_tokens, new_key) = config::build_token_key(&config)?;
    let (store, mut startup) =
        Store::open(&config.data_dir.join(config::DATABASE_FILE), &config.store)?;
    let rekeyed = writer::prepare_outbox(&store, &mut startup.outbox, &build_tokens, new_key)?;
    if rekeyed > 0 {
        tracing::info!(
            count = rekeyed,
            "queued triggers get build tokens derived from the current key"
        );
    }
    let mut graph = Graph::new();
    for p in &startup.projects {
        let ecosystem = p.package.as_ref().map(|p| p.ecosystem);
        graph.register(&p.id, &p.depends_on, p.trigger.is_some(), ecosystem);
    }
    let shared_graph = Arc::new(RwLock::new(Arc::new(graph.clone())));
    let address = listener.local_addr()?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{address}"));
    let report_url = format!("{}/v1/reports", public_url.trim_end_matches('/'));

    let hub = hub::Hub::new(config.feed.buffer);
    let health = health::Health::default();
    let (dispatch_tx, dispatch_rx) = mpsc::unbounded_channel();
    let (notify_tx, notify_rx) = mpsc::unbounded_channel();
    let mut notify_config = config.notify.clone();
    notify_config.load_files().map_err(ServeError::Settings)?;
    let mut metrics_config = config.metrics.clone();
    metrics_config.load_files().map_err(ServeError::Settings)?;
    let metrics = Arc::new(metrics::Metrics::new());
    let (writer, writer_thread, mut writer_gone) = writer::spawn(writer::Wiring {
        store: store.clone(),
        graph,
        shared: shared_graph.clone(),
        hub: hub.clone(),
        dispatch: dispatch_tx.clone(),
        notify: notify_tx,
        email_default: notify_config.smtp.is_some(),
        report_url: report_url.clone(),
        build_tokens: build_tokens.clone(),
        environments: config.releases.environments.clone(),
        health: health.clone(),
        backlog: startup.has_ready,
        metrics: metrics.clone(),
    })?;
    let (stop_tx, stop_rx) = watch::channel(false);

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("conjunction/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let client_for_notices = client.clone();
    let (follow, follows) = reconcile::Follows::channel();
    let reconciler = reconcile::Reconciler {
        store: store.clone(),
        writer: writer.clone(),
        client: client.clone(),
        config: config.reconcile.clone(),
        timeout: std::time::Duration::from_millis(config.dispatch.timeout_ms),
    };
    let reconcile_task = tokio::spawn(reconciler.run(follows, stop_rx.clone()));
    let dispatcher = Dispatcher {
        metrics: metrics.clone(),
        store: store.clone(),
        writer: writer.clone(),
        client,
        config: config.dispatch.clone(),
        report_url,
        build_tokens,
        follow,
    };
    let pending = startup.outbox;
    if !pending.is_empty() {
        tracing::info!(count = pending.len(), "resuming queued triggers");
    }
    let dispatch_task =
        tokio::spawn(dispatcher.run(pending, dispatch_rx, dispatch_tx, stop_rx.clone()));
    let notifier = notify::Notifier {
        metrics: metrics.clone(),
        writer: writer.clone(),
        client: client_for_notices,
        config: notify_config,
    };
    if !startup.notices.is_empty() {
        tracing::info!(count = startup.notices.len(), "resuming queued notices");
    }
    let notify_task = tokio::spawn(notifier.run(startup.notices, notify_rx, stop_rx.clone()));

    let state = api::AppState {
        store,
        writer,
        hub,
        graph: shared_graph,
        operators: OperatorTokens::new(tokens),
        shutdown: stop_rx,
        health,
        feed: config.feed,
        environments: Arc::new(config.releases.environments.clone()),
        body_timeout: std::time::Duration::from_millis(config.limits.body_timeout_ms),
        metrics: metrics.clone(),
        metrics_on: metrics_config.is_on(),
        metrics_token: metrics_config
            .token
            .clone()
            .map(|t| Arc::new(OperatorTokens::new([t]))),
        feed_limit: config.limits.feed_clients,
        database_path: config.data_dir.join(config::DATABASE_FILE),
        feed_room: Arc::new(api::feed::FeedRoom::new(config.limits.feed_clients)),
    };
    let retention = config.retention.enabled.then(|| {
        tokio::spawn(retain(
            state.writer.clone(),
            config.retention,
            config.clock.clone(),
            state.shutdown.clone(),
        ))
    });
    let service = systemd::ServiceManager::new(config.service_manager);
    let pulse = tokio::spawn(supervise(
        service,
        state.clone(),
        address,
        state.shutdown.clone(),
    ));
    let limits = server::Limits::fit(&config.limits, config.dispatch.concurrency);
    tracing::info!(
        %address,
        %public_url,
        max_connections = limits.max_connections,
        "conjunctiond is serving"
    );
    let app = api::router(state.clone());
    let stopping = stop_tx.clone();
    // The database is open, the outboxes are loaded and the socket listens (a
    // connection made now waits in its backlog until the loop below accepts it).
    service.ready(&status_line(&state, address).await);
    server::serve(listener, app, state, limits, async move {
        tokio::select! {
            () = shutdown => tracing::info!("shutting down"),
            _ = &mut writer_gone => tracing::error!("the database writer stopped; shutting down"),
        }
        service.stopping();
        let _ = stopping.send(true);
    })
    .await;
    let _ = stop_tx.send(true);
    let _ = pulse.await;
    if let Some(retention) = retention {
        let _ = retention.await;
    }
    if let Err(e) = dispatch_task.await {
        tracing::error!(error = %e, "the dispatcher ended abnormally");
    }
    if let Err(e) = notify_task.await {
        tracing::error!(error = %e, "the notifier ended abnormally");
    }
    if let Err(e) = reconcile_task.await {
        tracing::error!(error = %e, "the reconciler ended abnormally");
    }
    // Every writer handle is gone now, so the writer finishes its batch and stops.
    let written = tokio::task::spawn_blocking(move || writer_thread.join())
        .await
        .unwrap_or_else(|e| Err(writer::Fault::Panicked(e.to_string())));
    tracing::info!("stopped");
    Ok(written?)
}

/// What `systemctl status` shows: "serving 42 projects on 127.0.0.1:7431; 3 triggers
/// and 1 notice queued; 2 cascades in progress".
async fn status_line(state: &api::AppState, address: std::net::SocketAddr) -> String {
    let projects = state.graph.read().map_or(0, |g| g.project_count());
    let depth = |outbox: &str| {
        state
            .metrics
            .outbox_depth
            .get_or_create(&metrics::OutboxLabel {
                outbox: outbox.to_owned(),
            })
            .get()
    };
    let open = state
        .store
        .read(|store| store.sizes())
        .await
        .map_or(0, |(_, open)| open);
    let plural = |n: i64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    format!(
        "serving {} on {address}; {} and {} queued; {} in progress",
        plural(projects as i64, "project", "projects"),
        plural(depth("triggers"), "trigger", "triggers"),
        plural(depth("notices"), "notice", "notices"),
        plural(open as i64, "cascade", "cascades"),
    )
}

/// Keeps systemd informed while the daemon serves: the status line, and, when systemd
/// watches, a watchdog ping each time the writer has committed a batch that was sent
/// to prove it (a writer that stops committing stops the pings, and systemd restarts
/// the daemon).
async fn supervise(
    service: systemd::ServiceManager,
    state: api::AppState,
    address: std::net::SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let watchdog = service.watchdog_interval();
    let tick = watchdog.map_or(std::time::Duration::from_secs(30), |w| w / 3);
    loop {
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            () = stopped(&mut stop) => return,
        }
        if watchdog.is_some() {
            match tokio::time::timeout(tick, state.writer.ping()).await {
                Ok(Ok(())) => service.watchdog(),
                Ok(Err(e)) => tracing::warn!(error = %e, "the writer did not answer its pulse"),
                Err(_) => tracing::warn!("the writer did not commit its pulse in time"),
            }
        }
        service.status(&status_line(&state, address).await);
    }
}

/// Prunes what retention no longer keeps, every `interval_ms`, a small step at a time
/// so that reports share the writer with it, and says in the log what went.
async fn retain(
    writer: writer::WriterHandle,
    config: config::RetentionConfig,
    clock: config::Clock,
    mut stop: watch::Receiver<bool>,
) {
    let interval = std::time::Duration::from_millis(config.interval_ms);
    let keep = config.keep();
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = stopped(&mut stop) => return,
        }
        let now = clock.now();
        let cutoff = conjunction_protocol::Timestamp(now.0.saturating_sub(keep.as_millis() as u64));
        let mut total = writer::Pruned::default();
        let mut cursor = None;
        loop {
            if *stop.borrow() {
                return;
            }
            match writer.prune(cutoff, config.keep_per_upstream, cursor).await {
                Ok(step) => {
                    total.roots += step.roots;
                    total.builds += step.builds;
                    total.events += step.events;
                    total.lines += step.lines;
                    cursor = step.cursor;
                    if !step.more {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "retention stopped for now; it tries again later");
                    break;
                }
            }
            tokio::task::yield_now().await;
        }
        if total.roots + total.events + total.lines > 0 {
            tracing::info!(
                root_events = total.roots,
                builds = total.builds,
                log_events = total.events,
                release_lines = total.lines,
                older_than = %cutoff,
                keep_days = config.keep_days,
                keep_per_upstream = config.keep_per_upstream,
                "pruned what retention no longer keeps"
            );
        }
    }
}
