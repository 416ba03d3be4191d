//! The dispatcher: delivers queued triggers from the outbox to CI systems.
//!
//! Entries come from the writer after each commit, and from the outbox table at
//! start-up, so a trigger queued before a crash is still delivered. Every delivery
//! attempt's outcome goes back through the writer before the next one is scheduled,
//! so retries and their back-off survive a restart too. Delivery is at least once:
//! the `X-Conjunction-Delivery` header lets a receiver drop duplicates.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use conjunction_protocol::trigger::SIGNATURE_HEADER;
use conjunction_protocol::{BuildId, Timestamp, TriggerSpec};
use hmac::{Hmac, Mac};
use rand::Rng;
use reqwest::StatusCode;
use sha2::Sha256;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::auth::BuildTokens;
use crate::store::{OutboxEntry, Store, StoreError};
use crate::writer::{Delivery, WriterHandle};

/// How hard the dispatcher tries.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DispatchConfig {
    /// How long one delivery attempt may take, in milliseconds.
    pub timeout_ms: u64,
    /// Delivery attempts before giving up (the first included).
    pub max_attempts: u32,
    /// Delay before the first retry, in milliseconds; it doubles with each retry.
    pub backoff_base_ms: u64,
    /// Longest delay between two attempts, in milliseconds.
    pub backoff_max_ms: u64,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Deliveries in flight to one host (and port) at once, so that a CI that does
    /// not answer holds this many of the `concurrency` slots and no more.
    pub per_host: usize,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            timeout_ms: 10_000,
            max_attempts: 8,
            backoff_base_ms: 1_000,
            backoff_max_ms: 300_000,
            concurrency: 64,
            per_host: 16,
        }
    }
}

impl DispatchConfig {
    /// The delay before attempt `tries + 1`: exponential, capped, with jitter in the
    /// upper half so that triggers failing together do not retry together.
    pub fn backoff(&self, tries: u32) -> Duration {
        let exp = self
            .backoff_base_ms
            .saturating_mul(1u64 << tries.saturating_sub(1).min(32))
            .min(self.backoff_max_ms);
        let jittered = rand::rng().random_range(exp / 2..=exp.max(1));
        Duration::from_millis(jittered)
    }
}

/// What one HTTP attempt came to.
#[derive(Debug)]
enum AttemptResult {
    Accepted,
    /// The CI said no in a way retrying will not change.
    Refused(String),
    /// Worth another try; the CI may have said how long to wait.
    Transient {
        error: String,
        retry_after: Option<Duration>,
    },
}

type HmacSha256 = Hmac<Sha256>;

/// `sha256=<hex HMAC-SHA256 of body>`, the value of the signature header.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub struct Dispatcher {
    pub store: Store,
    pub writer: WriterHandle,
    pub client: reqwest::Client,
    pub config: DispatchConfig,
    /// The report URL put into every payload.
    pub report_url: String,
    /// Derives the build token put into every payload.
    pub build_tokens: BuildTokens,
}

impl Dispatcher {
    /// Runs until `stop` turns true, then gives the deliveries in flight a short while
    /// ([`SHUTDOWN_GRACE`]) and abandons the rest: they stay in the outbox and go out
    /// again after the next start, with the same `X-Conjunction-Delivery` key.
    pub async fn run(
        self,
        initial: Vec<OutboxEntry>,
        mut incoming: mpsc::UnboundedReceiver<OutboxEntry>,
        retry: mpsc::UnboundedSender<OutboxEntry>,
        mut stop: watch::Receiver<bool>,
    ) {
        let this = Arc::new(self);
        let permits = Arc::new(Semaphore::new(this.config.concurrency.max(1)));
        let mut schedule = Schedule::default();
        for e in initial {
            schedule.insert(e);
        }
        let mut hosts = Hosts::new(this.config.per_host.max(1));
        let mut in_flight = JoinSet::new();
        let mut host_of_task = HashMap::new();
        loop {
            // What is due goes out now, as far as there are permits: a timer, even
            // one of zero length, would wait for the timer wheel's next tick (a
            // millisecond), and each step of a chain of dependents would pay it. What
            // has no permit yet waits in the schedule, not as a task of its own; what
            // is due for a host that has its share in flight waits beside that host.
            let now = Timestamp::from_system_time(SystemTime::now());
            while schedule.next_due().is_some_and(|due| due <= now) {
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    break;
                };
                let Some(entry) = schedule.pop_first() else {
                    break;
                };
                let trigger = this.store.trigger_of(&entry.project);
                let host = host_key(&entry, &trigger);
                let Some(entry) = hosts.take(&host, entry) else {
                    continue;
                };
                let (this, retry) = (this.clone(), retry.clone());
                let task = in_flight
                    .spawn(async move { this.deliver(entry, trigger, permit, retry).await });
                host_of_task.insert(task.id(), host);
            }
            let waiting_for_permit = schedule.next_due().is_some_and(|due| due <= now);
            let next = schedule.next_due().filter(|_| !waiting_for_permit);
            let sleep = async {
                match next {
                    Some(due) => {
                        let wait = due
                            .to_system_time()
                            .duration_since(SystemTime::now())
                            .unwrap_or_default();
                        tokio::time::sleep(wait).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                entry = incoming.recv() => match entry {
                    Some(e) => schedule.insert(e),
                    None => break,
                },
                () = sleep => {}
                // A permit came back: the loop's top sends what is due with it (only
                // this loop takes permits, so it is still free there).
                _ = permits.acquire(), if waiting_for_permit => {}
                Some(done) = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                    let id = match &done {
                        Ok((id, ())) => *id,
                        Err(e) => e.id(),
                    };
                    if let Some(host) = host_of_task.remove(&id) {
                        if let Some(waiting) = hosts.done(&host) {
                            schedule.insert(waiting);
                        }
                    }
                }
                () = crate::stopped(&mut stop) => break,
            }
        }
        let grace = SHUTDOWN_GRACE.min(Duration::from_millis(this.config.timeout_ms));
        let drained = tokio::time::timeout(grace, async {
            while in_flight.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                left = in_flight.len(),
                "deliveries still running at shutdown stay in the outbox and go out after the next start"
            );
            in_flight.abort_all();
        }
    }

    /// Makes one delivery attempt, holding `permit` only until the request is done,
    /// and records its outcome through the writer.
    async fn deliver(
        &self,
        mut entry: OutboxEntry,
        trigger: Result<Option<TriggerSpec>, StoreError>,
        permit: OwnedSemaphorePermit,
        retry: mpsc::UnboundedSender<OutboxEntry>,
    ) {
        let trigger = match trigger {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, build = %entry.build, "cannot read the trigger; retrying later");
                entry.due = later(Duration::from_secs(5));
                let _ = retry.send(entry);
                return;
            }
        };
        let result = match &trigger {
            None => AttemptResult::Refused(format!("{} has no trigger configured", entry.project)),
            Some(t) => self.attempt(t, &entry).await,
        };
        drop(permit);
        let tries = entry.tries + 1;
        let delivery = match result {
            AttemptResult::Accepted => {
                tracing::info!(build = %entry.build, attempt = entry.attempt, project = %entry.project, "trigger delivered");
                Delivery::Delivered
            }
            AttemptResult::Refused(reason) => {
                tracing::warn!(build = %entry.build, project = %entry.project, %reason, "trigger refused");
                Delivery::Failed { reason }
            }
            AttemptResult::Transient { error, .. } if tries >= self.config.max_attempts => {
                tracing::warn!(build = %entry.build, project = %entry.project, %error, tries, "trigger given up");
                Delivery::Failed {
                    reason: format!("gave up after {tries} attempts; last: {error}"),
                }
            }
            AttemptResult::Transient { error, retry_after } => {
                let wait = self
                    .config
                    .backoff(tries)
                    .max(retry_after.unwrap_or_default())
                    .min(Duration::from_millis(self.config.backoff_max_ms.max(1)));
                tracing::info!(build = %entry.build, project = %entry.project, %error, tries, ?wait, "trigger will be retried");
                Delivery::RetryAt {
                    due: later(wait),
                    tries,
                    error,
                }
            }
        };
        let requeue = match &delivery {
            Delivery::RetryAt { due, tries, error } => {
                entry.due = *due;
                entry.tries = *tries;
                entry.last_error = Some(error.clone());
                Some(entry.clone())
            }
            _ => None,
        };
        match self
            .writer
            .delivery(entry.build, entry.attempt, delivery)
            .await
        {
            Ok(()) => {
                if let Some(e) = requeue {
                    let _ = retry.send(e);
                }
            }
            Err(e) => {
                tracing::warn!(build = %entry.build, error = %e, "delivery outcome not recorded; it is retried after a restart")
            }
        }
    }

    async fn attempt(&self, trigger: &TriggerSpec, entry: &OutboxEntry) -> AttemptResult {
        match trigger {
            TriggerSpec::Webhook { url, token, secret } => {
                let mut payload = entry.payload.clone();
                payload.report.url.clone_from(&self.report_url);
                payload.report.token = self.build_tokens.token(entry.build, entry.attempt);
                let body = serde_json::to_string(&payload).expect("trigger payloads serialize");
                let mut request = self
                    .client
                    .post(url)
                    .timeout(Duration::from_millis(self.config.timeout_ms))
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(
                        "X-Conjunction-Delivery",
                        format!("{}-{}", entry.build, entry.attempt),
                    )
                    .body(body.clone());
                if let Some(secret) = secret {
                    request = request.header(SIGNATURE_HEADER, signature(secret, body.as_bytes()));
                }
                let target = loggable_url(trigger);
                let mut request = match request.build() {
                    Ok(request) => request,
                    Err(e) => {
                        return AttemptResult::Transient {
                            error: describe_send_error(&target, &e),
                            retry_after: None,
                        }
                    }
                };
                if let Some(token) = token {
                    // Replaces the Basic header reqwest makes from user info in the URL
                    // (registration refuses both, but a project stored before may have
                    // them): a request carries one Authorization header.
                    let mut value =
                        reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                            .expect("tokens are printable ASCII");
                    value.set_sensitive(true);
                    request
                        .headers_mut()
                        .insert(reqwest::header::AUTHORIZATION, value);
                }
                match self.client.execute(request).await {
                    Ok(response) => classify(&target, response).await,
                    Err(e) => AttemptResult::Transient {
                        error: describe_send_error(&target, &e),
                        retry_after: None,
                    },
                }
            }
        }
    }
}

async fn classify(target: &str, response: reqwest::Response) -> AttemptResult {
    let status = response.status();
    if status.is_success() {
        return AttemptResult::Accepted;
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = body_start(response).await;
    let error = if body.is_empty() {
        format!("{target} answered {status}")
    } else {
        format!("{target} answered {status}: {body}")
    };
    let transient = status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS;
    if transient {
        AttemptResult::Transient { error, retry_after }
    } else {
        AttemptResult::Refused(error)
    }
}

/// The first 300 characters of an answer's body, on one line.
async fn body_start(mut response: reqwest::Response) -> String {
    const KEEP: usize = 300;
    let mut bytes = Vec::new();
    while bytes.len() < KEEP * 4 {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(KEEP) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

fn describe_send_error(target: &str, e: &reqwest::Error) -> String {
    if e.is_timeout() {
        format!("{target} did not answer in time")
    } else if e.is_connect() {
        format!("could not connect to {target}")
    } else {
        match std::error::Error::source(e) {
            Some(cause) => format!("request to {target} failed: {cause}"),
            None => format!("request to {target} failed"),
        }
    }
}

/// Shown in logs instead of a trigger's URL, which may carry credentials.
fn loggable_url(trigger: &TriggerSpec) -> String {
    match trigger {
        TriggerSpec::Webhook { url, .. } => conjunction_protocol::http_url::redact_str(url),
    }
}

/// How long shutdown waits for deliveries in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Where a trigger goes, for the per-host limit: the URL's host and port. A project
/// whose trigger cannot be read is a host of its own.
fn host_key(entry: &OutboxEntry, trigger: &Result<Option<TriggerSpec>, StoreError>) -> String {
    let url = match trigger {
        Ok(Some(TriggerSpec::Webhook { url, .. })) => reqwest::Url::parse(url).ok(),
        _ => None,
    };
    match url {
        Some(u) => format!(
            "{}:{}",
            u.host_str().unwrap_or_default(),
            u.port_or_known_default().unwrap_or_default()
        ),
        None => format!("project {}", entry.project),
    }
}

/// Deliveries in flight per host, and the entries that wait for their host.
struct Hosts {
    per_host: usize,
    busy: HashMap<String, usize>,
    waiting: HashMap<String, std::collections::VecDeque<OutboxEntry>>,
}

impl Hosts {
    fn new(per_host: usize) -> Self {
        Self {
            per_host,
            busy: HashMap::new(),
            waiting: HashMap::new(),
        }
    }

    /// The entry back to send now, counted against its host; `None` when the host
    /// has its share in flight, and the entry waits for it.
    fn take(&mut self, host: &str, entry: OutboxEntry) -> Option<OutboxEntry> {
        let busy = self.busy.entry(host.to_owned()).or_insert(0);
        if *busy >= self.per_host {
            self.waiting
                .entry(host.to_owned())
                .or_default()
                .push_back(entry);
            return None;
        }
        *busy += 1;
        Some(entry)
    }

    /// A delivery to `host` ended: the entry that waited longest for it, if any.
    fn done(&mut self, host: &str) -> Option<OutboxEntry> {
        if let Some(busy) = self.busy.get_mut(host) {
            *busy = busy.saturating_sub(1);
            if *busy == 0 {
                self.busy.remove(host);
            }
        }
        let queue = self.waiting.get_mut(host)?;
        let next = queue.pop_front();
        if queue.is_empty() {
            self.waiting.remove(host);
        }
        next
    }
}

fn later(wait: Duration) -> Timestamp {
    Timestamp::from_system_time(SystemTime::now() + wait)
}

/// Outbox entries ordered by due time, at most one per build.
#[derive(Default)]
struct Schedule {
    by_due: BTreeSet<(Timestamp, BuildId)>,
    entries: HashMap<BuildId, OutboxEntry>,
}

impl Schedule {
    fn insert(&mut self, entry: OutboxEntry) {
        if let Some(old) = self.entries.remove(&entry.build) {
            self.by_due.remove(&(old.due, old.build));
        }
        self.by_due.insert((entry.due, entry.build));
        self.entries.insert(entry.build, entry);
    }

    fn next_due(&self) -> Option<Timestamp> {
        self.by_due.first().map(|(due, _)| *due)
    }

    /// Takes the entry due first.
    fn pop_first(&mut self) -> Option<OutboxEntry> {
        let (_, build) = self.by_due.pop_first()?;
        self.entries.remove(&build)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_within_jitter_and_stays_capped() {
        let c = DispatchConfig {
            backoff_base_ms: 100,
            backoff_max_ms: 1_000,
            ..DispatchConfig::default()
        };
        for _ in 0..50 {
            let first = c.backoff(1).as_millis();
            assert!((50..=100).contains(&first), "{first}");
            let third = c.backoff(3).as_millis();
            assert!((200..=400).contains(&third), "{third}");
            assert!(c.backoff(30).as_millis() <= 1_000);
        }
    }
}
