//! The conjunction daemon.
//!
//! [`serve`] runs the whole daemon on a listener until a shutdown future resolves:
//! the HTTP API and the live feed (`api`, fed by the `hub`), the one database writer
//! (`writer`, over the `store`), the cascade [`planner`], and the outboxes that send
//! triggers and notices (`outbox`). It reads one [`Settings`]; each worker stops
//! through a `Shutdown` that carries its grace. Tests start it on `127.0.0.1:0`;
//! `conjunctiond` starts it from its settings.
//!
//! The rooms are private (docs/rooms.md lists them); what is used from outside is
//! re-exported here: the settings and their sections, the names `conjunctiond`'s
//! commands need, the pure [`planner`] and the CI systems' face ([`ci`]), which the
//! tests check against real payloads and the acceptance tables.

mod api;
mod auth;
mod badges;
mod call;
mod channels;
pub mod ci;
mod forge;
mod health;
mod hub;
mod metrics;
mod notify;
mod oidc;
mod outbox;
pub mod planner;
mod reconcile;
mod retention;
mod server;
mod settings;
mod shutdown;
mod store;
mod systemd;
mod writer;

/// PostgreSQL as a store, being built (its connection and schema steps): reached by
/// the tests until the store's seam takes it.
pub use store::postgres;

use std::future::Future;
use std::sync::{Arc, RwLock};

use tokio::net::TcpListener;
use tokio::sync::mpsc;

pub use api::BACKUP_SEQ_HEADER;
pub use auth::OPERATOR_TOKEN_FILE;
pub use channels::{IrcConfig, NotifyConfig, SmtpConfig, SmtpSecurity};
pub use health::Fault;
pub use outbox::forges::ForgeConfig;
pub use outbox::triggers::DispatchConfig;
pub use retention::RetentionConfig;
pub use server::RESERVE;
pub use settings::{Flags, Settings, SettingsError};
pub use store::DATABASE_FILE;
pub use systemd::{passed_socket, stderr_is_journal, Passed};
pub use writer::Clock;

use crate::auth::OperatorTokens;
use crate::shutdown::{Shutdown, Stopper};
pub use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    // The sources are not repeated in the messages: `anyhow` prints them as causes.
    #[error("cannot use data directory {}", path.display())]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    TokenFile(#[from] auth::TokenFileError),
    #[error("cannot open the database")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("cannot build the HTTP client")]
    Client(#[from] reqwest::Error),
    #[error(transparent)]
    WriterFailed(#[from] health::Fault),
    #[error("the settings cannot be used: {0}")]
    Settings(String),
}

/// What takes reports with CI id tokens: issuers' keys fetched over HTTPS (trusting
/// `[oidc] ca_file` too), tokens for `[oidc] audience` or the public URL.
fn id_tokens(settings: &Settings, public_url: &str) -> Result<oidc::IdTokens, ServeError> {
    let mut client = reqwest::Client::builder().https_only(true);
    if let Some(path) = &settings.oidc.ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| ServeError::Settings(format!("[oidc] ca_file {}: {e}", path.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| ServeError::Settings(format!("[oidc] ca_file {}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(ServeError::Settings(format!(
                "[oidc] ca_file {} holds no PEM certificate",
                path.display()
            )));
        }
        for cert in certs {
            client = client.add_root_certificate(cert);
        }
    }
    let audience = settings
        .oidc
        .audience
        .clone()
        .unwrap_or_else(|| public_url.trim_end_matches('/').to_owned());
    Ok(oidc::IdTokens::new(
        oidc::Issuers::https(
            client.build()?,
            std::time::Duration::from_secs(settings.oidc.refresh_cooldown_secs),
        ),
        audience,
    ))
}

/// Runs the daemon on `listener` until `shutdown` resolves, then stops accepting,
/// closes websockets, lets deliveries in flight finish, commits the writer's last
/// batch and closes the database.
///
/// The listener answers from the start: while the database opens and the outboxes
/// load, `/healthz` and `/readyz` say the daemon is starting and other requests wait
/// for the API.
pub async fn serve(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let address = listener.local_addr()?;
    let health = health::Health::new(std::time::Duration::from_millis(settings.health.stall_ms));
    let limits = server::Limits::fit(&settings.limits, settings.dispatch.concurrency);
    let gate = server::Gate::default();
    let shed = server::ServerShed::default();
    let stopper = Stopper::default();
    let server = {
        let mut stop = stopper.shutdown();
        tokio::spawn(server::serve(
            listener,
            gate.clone(),
            health.clone(),
            shed.clone(),
            limits,
            async move { stop.requested().await },
        ))
    };
    // Everything on disk is read off the async threads (opening the database can read
    // the whole file, a repair after a crash), so the server answers meanwhile.
    let read = {
        let settings = settings.clone();
        let runtime = tokio::runtime::Handle::current();
        match tokio::task::spawn_blocking(move || read_disk(&settings, address, runtime)).await {
            Ok(read) => read,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    };
    let opened = match read {
        Ok(disk) => {
            let operators = OperatorTokens::new(disk.operator_tokens.clone());
            start(
                &settings,
                disk,
                Started {
                    address,
                    operators,
                    health: health.clone(),
                    stop: stopper.shutdown(),
                },
            )
            .await
        }
        Err(e) => Err(e),
    };
    let Running {
        state,
        writer_thread,
        mut writer_gone,
        tasks,
    } = match opened {
        Ok(running) => running,
        Err(e) => {
            gate.close();
            stopper.stop();
            let _ = server.await;
            return Err(e);
        }
    };
    let service = systemd::ServiceManager::new(settings.service_manager);
    let pulse = tokio::spawn(supervise(
        service,
        state.clone(),
        address,
        std::time::Duration::from_millis(settings.health.pulse_ms),
        state.shutdown.clone(),
    ));
    let public_url = settings.public_url(address);
    tracing::info!(
        %address,
        %public_url,
        max_connections = limits.max_connections,
        "conjunctiond is serving"
    );
    health.serving(conjunction_protocol::Timestamp::from_system_time(
        std::time::SystemTime::now(),
    ));
    gate.open(api::router(state.clone()), state.operators.clone(), &shed);
    service.ready(&status_line(&state, address).await);
    tokio::select! {
        () = shutdown => tracing::info!("shutting down"),
        _ = &mut writer_gone => tracing::error!("the database writer stopped; shutting down"),
    }
    service.stopping();
    health.stopping();
    stopper.stop();
    let _ = server.await;
    // The gate holds the API, and the API a writer handle.
    gate.close();
    let _ = pulse.await;
    for (name, task) in tasks {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "the {name} ended abnormally");
        }
    }
    // Every writer handle is gone now, so the writer finishes its batch and stops.
    drop(state);
    let written = tokio::task::spawn_blocking(move || writer_thread.join())
        .await
        .unwrap_or_else(|e| Err(health::Fault::Panicked(e.to_string())));
    tracing::info!("stopped");
    Ok(written?)
}

/// What the daemon reads from disk before it serves: its tokens and key, the files
/// its settings name, and the database with what it holds at start.
struct Disk {
    operator_tokens: Vec<String>,
    build_tokens: auth::BuildTokens,
    notify_config: channels::NotifyConfig,
    metrics_config: metrics::MetricsConfig,
    store: Store,
    startup: store::Startup,
}

/// Reads what [`Disk`] holds; blocking.
fn read_disk(
    settings: &Settings,
    address: std::net::SocketAddr,
    runtime: tokio::runtime::Handle,
) -> Result<Disk, ServeError> {
    std::fs::create_dir_all(&settings.data_dir).map_err(|source| ServeError::DataDir {
        path: settings.data_dir.clone(),
        source,
    })?;
    let (operator_tokens, token_file) =
        auth::operator_tokens(&settings.data_dir, &settings.operator_tokens)?;
    if let Some(path) = token_file {
        tracing::info!(path = %path.display(), "operator token is in this file");
    }
    let (build_tokens, new_key) = auth::build_token_key(&settings.data_dir)?;
    let mut named = settings.clone();
    named.read_named_files().map_err(ServeError::Settings)?;
    let (store, mut startup) = match settings.store.postgres() {
        None => Store::open(&settings.database_path(), &settings.store)?,
        Some(pg) => {
            let me = store::postgres::role::Candidate {
                name: daemon_name(address),
                address: settings.public_url(address),
                length: settings.store.lease,
            };
            let engine =
                store::postgres::open(&pg, me, runtime).map_err(store::StoreError::from)?;
            Store::open_pg(engine)?
        }
    };
    let rekeyed = match writer::prepare_outbox(&store, &mut startup.outbox, &build_tokens, new_key)
    {
        // The daemon that writes prepares the outbox it sends from.
        Err(store::StoreError::NotWriter(_)) => 0,
        done => done?,
    };
    if rekeyed > 0 {
        tracing::info!(
            count = rekeyed,
            "queued triggers get build tokens derived from the current key"
        );
    }
    Ok(Disk {
        operator_tokens,
        build_tokens,
        notify_config: named.notify,
        metrics_config: named.metrics,
        store,
        startup,
    })
}

/// This daemon among those sharing a database: its host and the port it serves on,
/// which no other running daemon has both of, and which it has again when restarted.
fn daemon_name(address: std::net::SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}", address.port())
}

/// What the daemon has before it starts its workers.
struct Started {
    address: std::net::SocketAddr,
    operators: OperatorTokens,
    health: health::Health,
    stop: Shutdown,
}

/// The daemon once it serves: what the API reaches, the writer, and the workers to
/// wait for at shutdown.
struct Running {
    state: api::AppState,
    writer_thread: writer::WriterThread,
    writer_gone: tokio::sync::oneshot::Receiver<()>,
    tasks: Vec<(&'static str, tokio::task::JoinHandle<()>)>,
}

/// Builds the graph from what the database holds, and starts the writer and the
/// workers.
async fn start(settings: &Settings, disk: Disk, s: Started) -> Result<Running, ServeError> {
    let Disk {
        build_tokens,
        notify_config,
        metrics_config,
        store,
        startup,
        ..
    } = disk;
    let graph = writer::graph_of(&startup.projects);
    let shared_graph = Arc::new(RwLock::new(Arc::new(graph.clone())));
    let address = s.address;
    let public_url = settings.public_url(address);
    let report_url = format!("{}/v1/reports", public_url.trim_end_matches('/'));

    let hub = hub::Hub::new(settings.feed.buffer, !settings.access.viewers_see_email);
    let health = s.health;
    let (dispatch_tx, dispatch_rx) = mpsc::unbounded_channel();
    let (notify_tx, notify_rx) = mpsc::unbounded_channel();
    let (forge_tx, forge_rx) = mpsc::unbounded_channel();
    let metrics = Arc::new(metrics::Metrics::new());
    let (writer, writer_thread, writer_gone) = writer::spawn(writer::Wiring {
        store: store.clone(),
        graph,
        shared: shared_graph.clone(),
        hub: hub.clone(),
        dispatch: dispatch_tx,
        notify: notify_tx,
        forge: forge_tx,
        email_default: notify_config.smtp.is_some(),
        report_url: report_url.clone(),
        build_tokens: build_tokens.clone(),
        environments: settings.releases.environments.clone(),
        health: health.clone(),
        backlog: startup.has_ready,
        metrics: metrics.clone(),
    })?;
    let stop_rx = s.stop;

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("conjunction/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let client_for_notices = client.clone();
    let client_for_forges = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("conjunction/", env!("CARGO_PKG_VERSION")))
        .timeout(std::time::Duration::from_millis(settings.forge.timeout_ms))
        .build()?;
    let (follow, follows) = reconcile::Follows::channel();
    let reconciler = reconcile::Reconciler {
        store: store.clone(),
        writer: writer.clone(),
        client: client.clone(),
        config: settings.reconcile.clone(),
        timeout: std::time::Duration::from_millis(settings.dispatch.timeout_ms),
    };
    let mut tasks = vec![(
        "reconciler",
        tokio::spawn(reconciler.run(follows, stop_rx.clone())),
    )];
    let triggers = outbox::triggers::Triggers {
        metrics: metrics.clone(),
        store: store.clone(),
        writer: writer.clone(),
        client,
        config: settings.dispatch.clone(),
        report_url,
        build_tokens,
        follow,
    };
    let pending = startup.outbox;
    if !pending.is_empty() {
        tracing::info!(count = pending.len(), "resuming queued triggers");
    }
    tasks.push((
        "dispatcher",
        tokio::spawn(outbox::worker::run(
            triggers,
            settings.dispatch.limits(),
            metrics.clone(),
            store.clone(),
            pending,
            dispatch_rx,
            stop_rx.clone(),
        )),
    ));
    let channels = Arc::new(channels::Channels::new(
        client_for_notices,
        notify_config.clone(),
    ));
    let notice_limits = outbox::notices::Notices::limits(&notify_config);
    let notices = outbox::notices::Notices {
        metrics: metrics.clone(),
        writer: writer.clone(),
        channels: channels.clone(),
        config: notify_config,
    };
    if !startup.notices.is_empty() {
        tracing::info!(count = startup.notices.len(), "resuming queued notices");
    }
    tasks.push((
        "notifier",
        tokio::spawn(outbox::worker::run(
            notices,
            notice_limits,
            metrics.clone(),
            store.clone(),
            startup.notices,
            notify_rx,
            stop_rx.clone(),
        )),
    ));

    let forges = outbox::forges::Forges {
        metrics: metrics.clone(),
        writer: writer.clone(),
        store: store.clone(),
        client: client_for_forges,
        apps: forge::Apps::default(),
        config: settings.forge.clone(),
    };
    if !startup.forges.is_empty() {
        tracing::info!(
            count = startup.forges.len(),
            "resuming queued forge reports"
        );
    }
    tasks.push((
        "forge reporter",
        tokio::spawn(outbox::worker::run(
            forges,
            outbox::forges::Forges::limits(&settings.forge),
            metrics.clone(),
            store.clone(),
            startup.forges,
            forge_rx,
            stop_rx.clone(),
        )),
    ));

    let state = api::AppState {
        store,
        writer,
        hub,
        graph: shared_graph,
        operators: s.operators,
        shutdown: stop_rx,
        health,
        feed: settings.feed,
        environments: Arc::new(settings.releases.environments.clone()),
        body_timeout: std::time::Duration::from_millis(settings.limits.body_timeout_ms),
        metrics: metrics.clone(),
        metrics_on: metrics_config.is_on(),
        metrics_token: metrics_config
            .token
            .clone()
            .map(|t| Arc::new(OperatorTokens::new([t]))),
        feed_limit: settings.limits.feed_clients,
        database_path: settings.database_path(),
        feed_room: Arc::new(api::feed::FeedRoom::new(settings.limits.feed_clients)),
        last_used: Arc::new(crate::auth::LastUsed::default()),
        access: settings.access,
        id_tokens: Arc::new(id_tokens(settings, &public_url)?),
        revoked: tokio::sync::broadcast::channel(64).0,
        channels,
        forward: client_for_forwarding()?,
    };
    if settings.retention.enabled {
        tasks.push((
            "retention",
            tokio::spawn(retention::retain(
                state.writer.clone(),
                settings.retention,
                settings.clock.clone(),
                state.shutdown.clone(),
            )),
        ));
    }
    if let Some(pg) = settings.store.postgres() {
        tasks.push((
            "feed relay",
            tokio::spawn(relay_committed(
                state.store.clone(),
                state.hub.clone(),
                pg,
                state.shutdown.clone(),
            )),
        ));
    }
    if let Some(role) = state.store.role() {
        let kept = role.clone();
        state.health.watch_standing(move || {
            use store::postgres::role::Role;
            match &*kept.borrow() {
                Role::Writer { .. } => health::Standing::Writes,
                Role::Follower { .. } => health::Standing::Follows,
                Role::Starting => health::Standing::Starting,
                Role::Unreachable { why } => health::Standing::Unreachable(why.clone()),
            }
        });
        tasks.push((
            "writer's role",
            tokio::spawn(take_up_the_role(
                role,
                state.writer.clone(),
                state.shutdown.clone(),
            )),
        ));
    }
    Ok(Running {
        state,
        writer_thread,
        writer_gone,
        tasks,
    })
}

/// On PostgreSQL: the events another daemon commits reach this daemon's feed
/// clients. Every commit is announced with its sequence number; what this daemon's
/// hub has not published by then (its own writer publishes its own commits) is read
/// from the database, in order, and published. Whatever the role was when: an event
/// published twice is sent once, since a feed client is sent only what is newer
/// than what it has.
async fn relay_committed(
    store: Store,
    hub: hub::Hub,
    pg: store::postgres::PgConfig,
    mut stop: Shutdown,
) {
    const CHUNK: usize = 512;
    let mut heard = store::postgres::feed::follow(pg, std::time::Duration::from_secs(1));
    let mut relayed = match store.quick(|s| s.seq()).await {
        Ok(seq) => seq,
        Err(e) => {
            tracing::warn!(error = %e, "the feed relay cannot read where the event log stands");
            0
        }
    };
    // `follow` reads the log's last number again on each new connection, so what
    // was committed while it was away is not missed.
    loop {
        tokio::select! {
            changed = heard.changed() => if changed.is_err() { return },
            () = stop.requested() => return,
        }
        let newest = *heard.borrow_and_update();
        relayed = relayed.max(hub.newest());
        while relayed < newest {
            let after = relayed;
            let chunk = match store.read(move |s| s.events_chunk(after, CHUNK)).await {
                Ok(chunk) => chunk,
                Err(e) => {
                    tracing::warn!(error = %e, "the feed relay cannot read the events");
                    break;
                }
            };
            let Some(&(last, _)) = chunk.last() else {
                break;
            };
            relayed = last;
            hub.publish(
                chunk
                    .into_iter()
                    .map(|(seq, json)| (seq, Arc::new(json)))
                    .collect(),
            );
        }
    }
}

/// The client a follower forwards writes with: the writer is another daemon of the
/// same service, so the request's own time bounds are the writer's to keep; this
/// only stops waiting for a writer that went away.
fn client_for_forwarding() -> Result<reqwest::Client, ServeError> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(ServeError::Client)
}

/// On PostgreSQL: when this daemon takes the writer's role, wakes the writer, which
/// then reads what the last writer left and carries on with it, before any request
/// comes.
async fn take_up_the_role(
    mut role: tokio::sync::watch::Receiver<store::postgres::role::Role>,
    writer: writer::WriterHandle,
    mut stop: Shutdown,
) {
    loop {
        if matches!(
            *role.borrow_and_update(),
            store::postgres::role::Role::Writer { .. }
        ) {
            if let Err(e) = writer.ping().await {
                tracing::warn!(error = %e, "the writer did not take up its role");
            }
        }
        tokio::select! {
            changed = role.changed() => if changed.is_err() { return },
            () = stop.requested() => return,
        }
    }
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

/// How often systemd's status line is sent again when nothing in it changed.
const STATUS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The writer's pulse while the daemon serves: every `pulse` (or three times per
/// watchdog interval, when systemd watches), a command the writer answers once a
/// batch holding it has committed. Each commit is recorded for `/healthz`, which calls
/// a writer stalled when none came in time, and pings systemd's watchdog, so a writer
/// that stops committing stops the pings and systemd restarts the daemon. The status
/// line goes to systemd when it changes, and every [`STATUS_EVERY`] whatever the
/// watchdog.
async fn supervise(
    service: systemd::ServiceManager,
    state: api::AppState,
    address: std::net::SocketAddr,
    pulse: std::time::Duration,
    mut stop: Shutdown,
) {
    let watchdog = service.watchdog_interval();
    let tick = watchdog
        .map_or(pulse, |w| pulse.min(w / 3))
        .max(std::time::Duration::from_millis(10));
    let mut said = String::new();
    let mut said_at = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            () = stop.requested() => return,
        }
        // A stuck writer answers nothing; the pulse waits only until the next tick so
        // the status line and the health check carry on.
        // On PostgreSQL a daemon another writes for is as alive as its reads and its
        // lease's round: the keeper of its role last read the lease.
        let following = state.store.following();
        let alive = match tokio::time::timeout(tick, state.writer.ping()).await {
            Ok(Ok(())) => true,
            Ok(Err(writer::WriteError::NotWriter)) if following => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the writer did not answer its pulse");
                false
            }
            Err(_) => {
                tracing::debug!("the writer did not commit its pulse within a tick");
                false
            }
        };
        if alive {
            state
                .health
                .pulsed(conjunction_protocol::Timestamp::from_system_time(
                    std::time::SystemTime::now(),
                ));
            if watchdog.is_some() {
                service.watchdog();
            }
        }
        let line = status_line(&state, address).await;
        if line != said || said_at.elapsed() >= STATUS_EVERY {
            service.status(&line);
            said = line;
            said_at = tokio::time::Instant::now();
        }
    }
}
