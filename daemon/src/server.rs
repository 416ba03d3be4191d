//! The HTTP server: accepts connections, serves each with hyper's HTTP/1.1 under the
//! daemon's limits, and sheds what it cannot take.
//!
//! - A client gets [`Limits::header_timeout`] to send a request's headers, also for the
//!   next request on a kept-alive connection: slow or idle connections are closed.
//! - At most [`Limits::max_connections`] connections are served. Beyond that a small
//!   reserve of [`RESERVE`] connections answers only `GET /healthz` and requests with
//!   an operator token, so monitoring and operators get through while an attack holds
//!   the rest; everything else there gets 503 `too_many_connections`. Beyond the
//!   reserve, connections are closed as soon as they are accepted, so the process
//!   never runs out of file descriptors and `accept` keeps working.
//! - What was shed is logged, at most once every [`SHED_LOG_EVERY`].
//! - It serves from the moment the daemon listens: while the daemon opens its database
//!   ([`Gate`]), `/healthz` and `/readyz` answer that it is starting, and every other
//!   request waits until the API serves it, as it would in the listen backlog.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::api::ApiError;
use crate::auth::{bearer, OperatorTokens};
use crate::health::Health;
use serde::Deserialize;

/// What one client may take (`[limits]` in the config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Connections served at once; a few more are kept for `/healthz` and operators.
    /// Lowered at start when the open file limit has no room for them.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, and how long a kept-alive
    /// connection may stay idle, in milliseconds.
    pub header_timeout_ms: u64,
    /// How long a client may take to send a request's body, in milliseconds.
    pub body_timeout_ms: u64,
    /// Live feed (websocket) clients at once.
    pub feed_clients: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            feed_clients: 256,
        }
    }
}

/// Connections served beyond the limit for health checks and operators.
pub const RESERVE: usize = 32;
/// Files the process keeps open besides connections (the database, the log, the
/// runtime, outgoing deliveries come on top).
const OTHER_FILES: u64 = 64;
/// How often shedding is logged at most.
const SHED_LOG_EVERY: Duration = Duration::from_secs(10);
/// How long a connection served from the reserve may take to send its request.
const RESERVE_HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long shutdown waits for requests in progress.
const DRAIN: Duration = Duration::from_secs(5);

/// The limits the server runs under, after fitting them to the file descriptor limit.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

impl Limits {
    /// Raises the soft limit on open files to the hard one (as systemd's `LimitNOFILE`
    /// sets both) and fits the connection limit under it, saying so when it must
    /// lower it.
    pub fn fit(config: &LimitsConfig, deliveries_in_flight: usize) -> Self {
        let files = raise_open_file_limit();
        let room = files
            .saturating_sub(OTHER_FILES + deliveries_in_flight as u64 + RESERVE as u64)
            .max(16) as usize;
        let max_connections = if config.max_connections > room {
            tracing::warn!(
                configured = config.max_connections,
                serving = room,
                open_file_limit = files,
                "the open file limit leaves room for fewer connections than configured; raise LimitNOFILE"
            );
            room
        } else {
            config.max_connections
        };
        Self {
            max_connections,
            header_timeout: Duration::from_millis(config.header_timeout_ms),
        }
    }
}

/// The soft limit on open files after raising it as far as allowed.
fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

/// Counts what was shed and logs it now and then.
#[derive(Default)]
struct Shed {
    refused: AtomicU64,
    closed: AtomicU64,
}

impl Shed {
    fn log(&self, limit: usize) {
        let refused = self.refused.swap(0, Ordering::Relaxed);
        let closed = self.closed.swap(0, Ordering::Relaxed);
        if refused + closed > 0 {
            tracing::warn!(
                limit,
                answered_503 = refused,
                closed_unanswered = closed,
                "shedding connections: the connection limit is reached"
            );
        }
    }
}

/// Where the daemon's API stands for the server: not yet there, open, or gone (the
/// daemon could not start, or it stopped).
#[derive(Clone)]
enum Opening {
    Starting,
    Open { app: Router, reserve: Router },
    Closed,
}

/// Hands the API to the server once the daemon has opened its database, loaded its
/// outboxes and started its workers.
#[derive(Clone)]
pub struct Gate {
    tx: Arc<watch::Sender<Opening>>,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            tx: Arc::new(watch::channel(Opening::Starting).0),
        }
    }
}

impl Gate {
    /// The API serves from now on, also the requests that waited for it.
    pub fn open(&self, app: Router, operators: OperatorTokens, shed: &ServerShed) {
        let reserve = app.clone().layer(axum::middleware::from_fn_with_state(
            (operators, shed.0.clone()),
            reserve_gate,
        ));
        self.tx.send_replace(Opening::Open { app, reserve });
    }

    /// The daemon does not serve (any more): requests that waited are answered 503,
    /// and the API is let go.
    pub fn close(&self) {
        self.tx.send_replace(Opening::Closed);
    }
}

/// What was shed, shared by the server and the reserve's gate.
#[derive(Clone, Default)]
pub struct ServerShed(Arc<Shed>);

/// The API while the daemon starts: the health routes answer at once; everything else
/// waits for the API and is then served by it.
fn starting(health: Health, gate: &Gate) -> Router {
    Router::<watch::Receiver<Opening>>::new()
        .fallback(waiting)
        .with_state(gate.tx.subscribe())
        .merge(crate::api::health::routes(health))
}

async fn waiting(
    State(mut opening): State<watch::Receiver<Opening>>,
    request: Request,
) -> Response {
    use tower::ServiceExt;
    let app = opening
        .wait_for(|o| !matches!(o, Opening::Starting))
        .await
        .ok()
        .and_then(|o| match &*o {
            Opening::Open { app, .. } => Some(app.clone()),
            _ => None,
        });
    match app {
        Some(app) => app.oneshot(request).await.into_response(),
        None => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_started",
            "the daemon is not serving: it could not start, or it is stopping; its log says why",
        )
        .into_response(),
    }
}

/// Serves on `listener` until `shutdown` resolves: the API `gate` opens, and until
/// then the health routes and requests that wait for it. Then stops accepting, lets
/// requests in progress finish (up to a few seconds) and returns.
pub async fn serve(
    listener: TcpListener,
    gate: Gate,
    health: Health,
    shed: ServerShed,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let shed = shed.0;
    let opening = gate.tx.subscribe();
    let starting = starting(health, &gate);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let reserve = Arc::new(Semaphore::new(RESERVE));
    let closing = crate::shutdown::Stopper::default();
    let mut log_tick = tokio::time::interval(SHED_LOG_EVERY);
    let mut accept_errors = 0u64;
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            () = &mut shutdown => break,
            _ = log_tick.tick() => {
                shed.log(limits.max_connections);
                if accept_errors > 0 {
                    tracing::warn!(count = accept_errors, "connections could not be accepted");
                    accept_errors = 0;
                }
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors or similar: wait a moment rather than spin.
                    accept_errors += 1;
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (app, reserve_app) = match &*opening.borrow() {
            Opening::Open { app, reserve } => (app.clone(), reserve.clone()),
            Opening::Starting | Opening::Closed => (starting.clone(), starting.clone()),
        };
        let (permit, service, header_timeout, keep_alive) =
            if let Ok(permit) = slots.clone().try_acquire_owned() {
                (permit, app, limits.header_timeout, true)
            } else if let Ok(permit) = reserve.clone().try_acquire_owned() {
                (permit, reserve_app, RESERVE_HEADER_TIMEOUT, false)
            } else {
                shed.closed.fetch_add(1, Ordering::Relaxed);
                drop(stream);
                continue;
            };
        let mut closing = closing.shutdown();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(keep_alive);
            let connection = builder
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = closing.requested() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    closing.stop();
    // Every connection gives its slot back when it ends.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("requests still in progress after {DRAIN:?} are cut off");
    }
}

/// Lets through, on a connection from the reserve, only health checks and requests
/// with an operator token; answers the rest 503.
async fn reserve_gate(
    State((operators, shed)): State<(OperatorTokens, Arc<Shed>)>,
    request: Request,
    next: Next,
) -> Response {
    let health = matches!(request.uri().path(), "/healthz" | "/readyz");
    let operator = bearer(request.headers()).is_some_and(|t| operators.verify(t));
    if health || operator {
        return next.run(request).await;
    }
    shed.refused.fetch_add(1, Ordering::Relaxed);
    let mut response = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "too_many_connections",
        "the daemon is serving as many connections as it takes; try again in a few seconds",
    )
    .into_response();
    response
        .headers_mut()
        .insert(axum::http::header::RETRY_AFTER, 5.into());
    response
}
