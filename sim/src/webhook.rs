//! A simulated CI behind conjunction's generic webhook trigger: it takes trigger
//! deliveries, checks their signature, answers as each project's [`Behaviour`] says,
//! and reports back through the report URL with the build-scoped token the trigger
//! carried, the way a pipeline would.
//!
//! The end-to-end tests read what it saw ([`WebhookCi::deliveries`], [`WebhookCi::log`]);
//! the demo starts it [`WebhookCi::quiet`], keeping nothing but counts, and gives it a
//! [`WebhookCi::decide`] rule that picks each build's fate from its catalog; the
//! benchmarks start it [`WebhookCi::bare`], which also answers and reports with no
//! more than the protocol requires, so that it costs little however many builds go
//! through it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use conjunction_protocol::trigger::{TriggerPayload, SIGNATURE_HEADER};
use conjunction_protocol::{BuildId, ReportState};
use tokio::net::TcpListener;

use crate::native::github_signature;

/// What a triggered build does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Build {
    /// How long it waits for a runner before it starts.
    pub queued: Duration,
    /// Whether it reports `running` when it starts.
    pub running: bool,
    /// How long it runs.
    pub took: Duration,
    pub outcome: ReportState,
    pub summary: Option<String>,
    /// The version it publishes when it passes, unless the trigger pins one.
    pub version: Option<String>,
}

/// How the simulated CI treats the triggers of one project.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Behaviour {
    Build(Build),
    /// Fail attempt 1 with a summary; pass every later attempt.
    FailFirstAttempt,
    /// Answer with `status` and `body`; build nothing.
    Refuse {
        status: u16,
        body: String,
    },
    /// Answer 503 to the first `times` deliveries, then pass after a short build.
    UnavailableTimes {
        times: u32,
    },
    /// Accept and never report back.
    Silent,
    /// Take the first delivery but answer it only after `delay` (after the daemon
    /// has given up waiting), building nothing; pass every later one.
    AnswerLateOnce {
        delay: Duration,
    },
}

impl Behaviour {
    /// Report `running`, then pass 5 ms later.
    pub fn pass() -> Self {
        Self::pass_after(Duration::from_millis(5))
    }

    /// Report `running`, then pass `took` later.
    pub fn pass_after(took: Duration) -> Self {
        Self::ends(ReportState::Passed, took, None)
    }

    /// Report `running`, then fail 5 ms later with `summary` as the log excerpt.
    pub fn fail(summary: &str) -> Self {
        Self::ends(
            ReportState::Failed,
            Duration::from_millis(5),
            Some(summary.into()),
        )
    }

    /// Report `running` at once, then `outcome` `took` later.
    pub fn ends(outcome: ReportState, took: Duration, summary: Option<String>) -> Self {
        Behaviour::Build(Build {
            queued: Duration::ZERO,
            running: true,
            took,
            outcome,
            summary,
            version: None,
        })
    }
}

/// One trigger the simulated CI received.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub payload: TriggerPayload,
    /// The signature header was present and matched the shared secret (or neither
    /// the CI nor the delivery has a secret).
    pub signature_ok: bool,
    pub bearer: Option<String>,
    /// Every `Authorization` header of the request, in order.
    pub authorization: Vec<String>,
    /// The `X-Conjunction-Delivery` header, by which a CI drops a repeated delivery.
    pub delivery_key: Option<String>,
    /// What the CI answered.
    pub answered: u16,
}

/// Everything the simulated CI saw and did, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Triggered {
        project: String,
        build: BuildId,
        attempt: u32,
    },
    /// A report the CI is about to send. Whatever the daemon does because of it
    /// comes after this in the log; the answer may come after that.
    Reporting {
        project: String,
        build: BuildId,
        state: ReportState,
    },
    /// A report the CI sent and the daemon accepted.
    Reported {
        project: String,
        build: BuildId,
        state: ReportState,
    },
    /// A report the daemon refused, with its status (0: it did not answer).
    ReportRefused {
        project: String,
        build: BuildId,
        status: u16,
    },
}

/// A rule that picks a build's fate from its trigger and its pipeline number, for
/// projects without a behaviour of their own.
pub type Decide = Arc<dyn Fn(&TriggerPayload, u64) -> Behaviour + Send + Sync>;

#[derive(Default)]
struct Script {
    default: Option<Behaviour>,
    decide: Option<Decide>,
    behaviours: HashMap<String, Behaviour>,
    publishes: HashMap<String, String>,
    /// Deliveries per project, for behaviours that change after the first few.
    seen: HashMap<String, u32>,
}

#[derive(Default)]
struct Seen {
    deliveries: Vec<Delivery>,
    log: Vec<Record>,
}

struct Shared {
    secret: Option<String>,
    /// Whether deliveries and the log are kept; counts always are.
    record: bool,
    /// Whether answers and reports carry only what the protocol requires: an empty
    /// 202, and reports without a link to the run.
    bare: bool,
    script: Mutex<Script>,
    seen: Mutex<Seen>,
    http: reqwest::Client,
    /// Final reports the daemon accepted.
    finished: AtomicU64,
    /// Pipeline numbers, as a CI numbers its runs.
    pipelines: AtomicU64,
    timer: mpsc::Sender<Step>,
}

/// A simulated webhook CI serving on loopback until the runtime ends.
#[derive(Clone)]
pub struct WebhookCi {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl WebhookCi {
    /// Starts the CI on a free loopback port, keeping every delivery and report;
    /// `secret` is the webhook secret it checks signatures with.
    pub async fn start(secret: Option<&str>) -> std::io::Result<Self> {
        Self::serve(secret, true, false).await
    }

    /// Starts the CI keeping only counts, each build passing 1 ms after it was
    /// triggered without reporting `running` unless told otherwise: for the demo,
    /// which runs for hours.
    pub async fn quiet() -> std::io::Result<Self> {
        Self::counting(false).await
    }

    /// Starts the CI as [`WebhookCi::quiet`] does, answering each trigger with an
    /// empty 202 and reporting only project, build, attempt and state: for
    /// benchmarks, where the CI must cost next to nothing and stay the same from one
    /// version of the daemon to the next.
    pub async fn bare() -> std::io::Result<Self> {
        Self::counting(true).await
    }

    async fn counting(bare: bool) -> std::io::Result<Self> {
        let ci = Self::serve(None, false, bare).await?;
        ci.set_default(Behaviour::Build(Build {
            queued: Duration::ZERO,
            running: false,
            took: Duration::from_millis(1),
            outcome: ReportState::Passed,
            summary: None,
            version: None,
        }));
        Ok(ci)
    }

    async fn serve(secret: Option<&str>, record: bool, bare: bool) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .map_err(std::io::Error::other)?;
        let (timer, due) = mpsc::channel();
        let ci = Self {
            addr,
            shared: Arc::new(Shared {
                secret: secret.map(str::to_owned),
                record,
                bare,
                script: Mutex::default(),
                seen: Mutex::default(),
                http,
                finished: AtomicU64::new(0),
                pipelines: AtomicU64::new(1000),
                timer,
            }),
        };
        let runtime = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name("sim-webhook-ci-timer".into())
            .spawn(move || keep_time(due, runtime))?;
        let app = Router::new()
            .route("/hook", post(hook))
            .route("/hook/{*project}", post(hook))
            .with_state(ci.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(ci)
    }

    /// The URL to put in projects' webhook triggers.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// How the CI treats `project`'s triggers from now on.
    pub fn set(&self, project: &str, behaviour: Behaviour) {
        self.script()
            .behaviours
            .insert(project.to_owned(), behaviour);
    }

    /// How the CI treats the triggers of projects without a behaviour of their own
    /// (before: every build passes).
    pub fn set_default(&self, behaviour: Behaviour) {
        self.script().default = Some(behaviour);
    }

    /// Decide each build of projects without a behaviour of their own by `rule`.
    pub fn decide(&self, rule: impl Fn(&TriggerPayload, u64) -> Behaviour + Send + Sync + 'static) {
        self.script().decide = Some(Arc::new(rule));
    }

    /// The version `project`'s builds publish in a release, and report when they pass.
    /// In a promotion the build reports the version the trigger pins, as a deploy
    /// job would.
    pub fn publishes(&self, project: &str, version: &str) {
        self.script()
            .publishes
            .insert(project.to_owned(), version.to_owned());
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.seen().deliveries.clone()
    }

    pub fn log(&self) -> Vec<Record> {
        self.seen().log.clone()
    }

    /// Deliveries the CI accepted for `project`.
    pub fn triggers_of(&self, project: &str) -> Vec<Delivery> {
        self.seen()
            .deliveries
            .iter()
            .filter(|d| d.payload.project.as_str() == project && (200..300).contains(&d.answered))
            .cloned()
            .collect()
    }

    /// Every delivery attempt for `project`, accepted or not.
    pub fn attempts_of(&self, project: &str) -> usize {
        self.seen()
            .deliveries
            .iter()
            .filter(|d| d.payload.project.as_str() == project)
            .count()
    }

    /// How many builds reported how they ended and had it accepted.
    pub fn finished(&self) -> u64 {
        self.shared.finished.load(Ordering::SeqCst)
    }

    fn script(&self) -> MutexGuard<'_, Script> {
        self.shared.script.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn seen(&self) -> MutexGuard<'_, Seen> {
        self.shared.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn note(&self, record: Record) {
        if self.shared.record {
            self.seen().log.push(record);
        }
    }

    /// What `payload`'s delivery, numbered `pipeline`, meets.
    fn behaviour(&self, payload: &TriggerPayload, pipeline: u64) -> Behaviour {
        let mut script = self.script();
        let project = payload.project.as_str();
        let seen = script.seen.entry(project.to_owned()).or_insert(0);
        *seen += 1;
        let seen = *seen;
        let behaviour = match (script.behaviours.get(project), &script.decide) {
            (Some(own), _) => own.clone(),
            (None, Some(rule)) => rule(payload, pipeline),
            (None, None) => script.default.clone().unwrap_or_else(Behaviour::pass),
        };
        let behaviour = match behaviour {
            Behaviour::UnavailableTimes { times } if seen <= times => Behaviour::Refuse {
                status: 503,
                body: "maintenance".into(),
            },
            Behaviour::UnavailableTimes { .. } => Behaviour::pass(),
            Behaviour::FailFirstAttempt if payload.attempt == 1 => {
                Behaviour::fail("3 tests failed: parser::tests::utf8")
            }
            Behaviour::FailFirstAttempt => Behaviour::pass(),
            Behaviour::AnswerLateOnce { delay } if seen == 1 => Behaviour::AnswerLateOnce { delay },
            Behaviour::AnswerLateOnce { .. } => Behaviour::pass(),
            other => other,
        };
        match behaviour {
            Behaviour::Build(mut build) => {
                build.version = build
                    .version
                    .or_else(|| script.publishes.get(project).cloned());
                Behaviour::Build(build)
            }
            other => other,
        }
    }

    fn signature_ok(&self, headers: &HeaderMap, body: &[u8]) -> bool {
        let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
        match (&self.shared.secret, signature) {
            // conjunction signs its webhook triggers as GitHub signs its webhooks.
            (Some(secret), Some(signature)) => signature == github_signature(secret, body),
            (None, None) => true,
            _ => false,
        }
    }

    /// Sends one report of `payload`'s build; whether the daemon took it, and if not,
    /// whether it refused it outright (4xx), which ends the build as it would a
    /// real pipeline's (say, after a newer attempt started).
    async fn report(&self, payload: &TriggerPayload, build: &Build, state: ReportState) -> bool {
        let ended = state.is_final();
        let version = (state == ReportState::Passed)
            .then(|| payload.version.clone().or_else(|| build.version.clone()))
            .flatten();
        let summary = ended.then(|| build.summary.clone()).flatten();
        let mut body = serde_json::json!({
            "project": payload.project,
            "build": payload.build,
            "attempt": payload.attempt,
            "state": state,
        });
        if !self.shared.bare {
            body["url"] =
                format!("https://ci.example/{}/{}", payload.project, payload.build).into();
        }
        if let Some(version) = version {
            body["version"] = version.into();
        }
        if let Some(summary) = summary {
            body["summary"] = summary.into();
        }
        let (project, id) = (payload.project.to_string(), payload.build);
        self.note(Record::Reporting {
            project: project.clone(),
            build: id,
            state,
        });
        let answer = self
            .shared
            .http
            .post(&payload.report.url)
            .bearer_auth(&payload.report.token)
            .json(&body)
            .send()
            .await;
        let status = answer.map(|a| a.status().as_u16()).unwrap_or(0);
        if (200..300).contains(&status) {
            if ended {
                self.shared.finished.fetch_add(1, Ordering::SeqCst);
            }
            self.note(Record::Reported {
                project,
                build: id,
                state,
            });
            true
        } else {
            self.note(Record::ReportRefused {
                project,
                build: id,
                status,
            });
            !(400..500).contains(&status)
        }
    }

    /// Starts `build`: it reports `running` when it leaves the queue.
    fn begin(&self, payload: TriggerPayload, build: Build) {
        let step = Step {
            due: Instant::now() + build.queued,
            ci: self.clone(),
            payload: Arc::new(payload),
            build: Arc::new(build),
            stage: Stage::Started,
        };
        if step.build.queued.is_zero() {
            tokio::spawn(step.ci.run(step.payload, step.build, step.stage));
        } else {
            self.later(step);
        }
    }

    /// Runs `build`'s `stage`; the end is due when the build has run its time.
    async fn run(self, payload: Arc<TriggerPayload>, build: Arc<Build>, stage: Stage) {
        match stage {
            Stage::Started => {
                if build.running && !self.report(&payload, &build, ReportState::Running).await {
                    return;
                }
                self.later(Step {
                    due: Instant::now() + build.took,
                    ci: self.clone(),
                    payload,
                    build,
                    stage: Stage::Ended,
                });
            }
            Stage::Ended => {
                self.report(&payload, &build, build.outcome).await;
            }
        }
    }

    fn later(&self, step: Step) {
        // The timer thread lives as long as any sender; if it is gone, so is the
        // runtime this build would report on.
        let _ = self.shared.timer.send(step);
    }
}

/// Where a build is in its run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// It left the queue and starts running.
    Started,
    /// It has run its time and reports how it ended.
    Ended,
}

/// A build stage waiting for its time.
struct Step {
    due: Instant,
    ci: WebhookCi,
    payload: Arc<TriggerPayload>,
    build: Arc<Build>,
    stage: Stage,
}

/// Starts each step on `runtime` when it falls due, earliest first.
///
/// Build times are kept by a thread of their own: a tokio timer rounds up to the
/// next tick of its wheel, which made a 1 ms build take over 2 ms.
fn keep_time(incoming: mpsc::Receiver<Step>, runtime: tokio::runtime::Handle) {
    let mut waiting: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut steps: HashMap<u64, Step> = HashMap::new();
    let mut numbered = 0u64;
    loop {
        let next = waiting.peek().map(|Reverse((due, _))| *due);
        let received = match next {
            None => incoming.recv().map_err(|_| true),
            Some(due) => incoming
                .recv_timeout(due.saturating_duration_since(Instant::now()))
                .map_err(|e| e == mpsc::RecvTimeoutError::Disconnected),
        };
        match received {
            Ok(step) => {
                numbered += 1;
                waiting.push(Reverse((step.due, numbered)));
                steps.insert(numbered, step);
            }
            // Every sender is gone: nothing new will come.
            Err(true) => match next {
                None => return,
                Some(due) => std::thread::sleep(due.saturating_duration_since(Instant::now())),
            },
            Err(false) => {}
        }
        let now = Instant::now();
        while let Some(&Reverse((due, number))) = waiting.peek() {
            if due > now {
                break;
            }
            waiting.pop();
            if let Some(step) = steps.remove(&number) {
                runtime.spawn(step.ci.run(step.payload, step.build, step.stage));
            }
        }
    }
}

async fn hook(
    State(ci): State<WebhookCi>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let Ok(payload) = serde_json::from_slice::<TriggerPayload>(&body) else {
        return (StatusCode::BAD_REQUEST, "unreadable payload".into());
    };
    let signature_ok = ci.signature_ok(&headers, &body);
    let pipeline = ci.shared.pipelines.fetch_add(1, Ordering::Relaxed);
    let behaviour = ci.behaviour(&payload, pipeline);
    let answered = match &behaviour {
        Behaviour::Refuse { status, .. } => *status,
        _ => 201,
    };
    if ci.shared.record {
        let authorization: Vec<String> = headers
            .get_all("authorization")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect();
        let mut seen = ci.seen();
        seen.deliveries.push(Delivery {
            payload: payload.clone(),
            signature_ok,
            bearer: authorization
                .first()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_owned),
            authorization,
            delivery_key: headers
                .get("x-conjunction-delivery")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            answered,
        });
        if (200..300).contains(&answered) {
            seen.log.push(Record::Triggered {
                project: payload.project.to_string(),
                build: payload.build,
                attempt: payload.attempt,
            });
        }
    }
    match behaviour {
        Behaviour::Refuse { status, body } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT),
            body,
        ),
        Behaviour::Silent => (StatusCode::CREATED, "queued".into()),
        Behaviour::AnswerLateOnce { delay } => {
            tokio::time::sleep(delay).await;
            (StatusCode::CREATED, "queued".into())
        }
        Behaviour::Build(build) => {
            ci.begin(payload, build);
            if ci.shared.bare {
                (StatusCode::ACCEPTED, String::new())
            } else {
                (
                    StatusCode::CREATED,
                    serde_json::json!({ "pipeline": pipeline }).to_string(),
                )
            }
        }
        Behaviour::FailFirstAttempt | Behaviour::UnavailableTimes { .. } => {
            unreachable!("resolved to a concrete behaviour above")
        }
    }
}
