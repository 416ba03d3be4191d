//! A mock CI server: it receives trigger webhooks, checks their signature and token,
//! answers as each project's behaviour says, and reports back through the report URL
//! with the build-scoped token, the way a real pipeline would.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use conjunction_protocol::trigger::{TriggerPayload, SIGNATURE_HEADER};
use conjunction_protocol::{BuildId, ReportState};
use tokio::net::TcpListener;

/// How the mock CI treats triggers for one project.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Accept, report `running`, then `outcome` after `delay`.
    Build {
        outcome: ReportState,
        delay: Duration,
        summary: Option<String>,
    },
    /// Fail attempt 1 with a summary; pass every later attempt.
    FailFirstAttempt,
    /// Answer with `status` and `body`; build nothing.
    Refuse { status: u16, body: String },
    /// Answer 503 to the first `times` deliveries, then pass after a short build.
    UnavailableTimes { times: u32 },
    /// Accept and never report back.
    Silent,
    /// Take the first delivery but answer it only after `delay` (after the daemon
    /// has given up waiting), building nothing; pass every later one.
    AnswerLateOnce { delay: Duration },
}

impl Behaviour {
    pub fn pass() -> Self {
        Behaviour::Build {
            outcome: ReportState::Passed,
            delay: Duration::from_millis(5),
            summary: None,
        }
    }

    pub fn pass_after(delay: Duration) -> Self {
        Behaviour::Build {
            outcome: ReportState::Passed,
            delay,
            summary: None,
        }
    }

    pub fn fail(summary: &str) -> Self {
        Behaviour::Build {
            outcome: ReportState::Failed,
            delay: Duration::from_millis(5),
            summary: Some(summary.into()),
        }
    }
}

/// One trigger the mock received.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub payload: TriggerPayload,
    /// The signature header was present and matched the shared secret.
    pub signature_ok: bool,
    pub bearer: Option<String>,
    /// Every `Authorization` header of the request, in order.
    pub authorization: Vec<String>,
    /// The `X-Conjunction-Delivery` header, by which a CI drops a repeated delivery.
    pub delivery_key: Option<String>,
    /// What the mock answered.
    pub answered: u16,
}

/// Everything the mock saw and did, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Triggered {
        project: String,
        build: BuildId,
        attempt: u32,
    },
    /// A report the mock is about to send. Whatever the daemon does because of it
    /// comes after this in the log; the answer may come after that.
    Reporting {
        project: String,
        build: BuildId,
        state: ReportState,
    },
    /// A report the mock sent and the daemon accepted.
    Reported {
        project: String,
        build: BuildId,
        state: ReportState,
    },
    /// A report the daemon refused, with its status.
    ReportRefused {
        project: String,
        build: BuildId,
        status: u16,
    },
}

#[derive(Default)]
struct MockState {
    secret: Option<String>,
    default: Option<Behaviour>,
    behaviours: HashMap<String, Behaviour>,
    deliveries: Vec<Delivery>,
    log: Vec<Record>,
    seen: HashMap<String, u32>,
    publishes: HashMap<String, String>,
}

#[derive(Clone)]
pub struct MockCi {
    pub addr: SocketAddr,
    state: Arc<Mutex<MockState>>,
    http: reqwest::Client,
}

impl MockCi {
    /// Starts the mock on a free loopback port; `secret` is the webhook secret it
    /// checks signatures with.
    pub async fn start(secret: Option<&str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("address");
        let state = Arc::new(Mutex::new(MockState {
            secret: secret.map(str::to_owned),
            ..MockState::default()
        }));
        let mock = Self {
            addr,
            state,
            http: reqwest::Client::new(),
        };
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(mock.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        mock
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MockState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set(&self, project: &str, behaviour: Behaviour) {
        self.lock().behaviours.insert(project.to_owned(), behaviour);
    }

    /// The version `project`'s builds publish in a release, and report when they pass.
    /// In a promotion the build reports the version the trigger pins, as a deploy
    /// job would.
    pub fn publishes(&self, project: &str, version: &str) {
        self.lock()
            .publishes
            .insert(project.to_owned(), version.to_owned());
    }

    pub fn set_default(&self, behaviour: Behaviour) {
        self.lock().default = Some(behaviour);
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.lock().deliveries.clone()
    }

    pub fn log(&self) -> Vec<Record> {
        self.lock().log.clone()
    }

    /// Deliveries the mock accepted for `project`.
    pub fn triggers_of(&self, project: &str) -> Vec<Delivery> {
        self.lock()
            .deliveries
            .iter()
            .filter(|d| d.payload.project.as_str() == project && (200..300).contains(&d.answered))
            .cloned()
            .collect()
    }

    /// Every delivery attempt for `project`, accepted or not.
    pub fn attempts_of(&self, project: &str) -> usize {
        self.lock()
            .deliveries
            .iter()
            .filter(|d| d.payload.project.as_str() == project)
            .count()
    }

    async fn report(&self, payload: &TriggerPayload, state: ReportState, summary: Option<String>) {
        let published = self.lock().publishes.get(payload.project.as_str()).cloned();
        let version = (state == ReportState::Passed)
            .then(|| payload.version.clone().or(published))
            .flatten();
        let body = serde_json::json!({
            "project": payload.project,
            "build": payload.build,
            "attempt": payload.attempt,
            "state": state,
            "version": version,
            "url": format!("https://ci.example/{}/{}", payload.project, payload.build),
            "summary": summary,
        });
        self.lock().log.push(Record::Reporting {
            project: payload.project.to_string(),
            build: payload.build,
            state,
        });
        let result = self
            .http
            .post(&payload.report.url)
            .bearer_auth(&payload.report.token)
            .json(&body)
            .send()
            .await;
        let status = result.map(|r| r.status().as_u16()).unwrap_or(0);
        let record = if (200..300).contains(&status) {
            Record::Reported {
                project: payload.project.to_string(),
                build: payload.build,
                state,
            }
        } else {
            Record::ReportRefused {
                project: payload.project.to_string(),
                build: payload.build,
                status,
            }
        };
        self.lock().log.push(record);
    }
}

async fn hook(State(mock): State<MockCi>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let Ok(payload) = serde_json::from_slice::<TriggerPayload>(&body) else {
        return (StatusCode::BAD_REQUEST, "unreadable payload".into());
    };
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let authorization: Vec<String> = headers
        .get_all("authorization")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect();
    let bearer = authorization
        .first()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let project = payload.project.to_string();
    let (behaviour, signature_ok) = {
        let mut s = mock.lock();
        let signature_ok = match (&s.secret, &signature) {
            (Some(secret), Some(sig)) => {
                *sig == conjunction_daemon::ci::webhook::signature(secret, &body)
            }
            (None, None) => true,
            _ => false,
        };
        let seen = s.seen.entry(project.clone()).or_insert(0);
        *seen += 1;
        let seen = *seen;
        let behaviour = s
            .behaviours
            .get(&project)
            .or(s.default.as_ref())
            .cloned()
            .unwrap_or_else(Behaviour::pass);
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
        (behaviour, signature_ok)
    };
    let answered = match &behaviour {
        Behaviour::Refuse { status, .. } => *status,
        _ => 201,
    };
    {
        let mut s = mock.lock();
        s.deliveries.push(Delivery {
            payload: payload.clone(),
            signature_ok,
            bearer,
            authorization,
            delivery_key: headers
                .get("x-conjunction-delivery")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            answered,
        });
        if (200..300).contains(&answered) {
            s.log.push(Record::Triggered {
                project: project.clone(),
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
        Behaviour::Build {
            outcome,
            delay,
            summary,
        } => {
            let mock = mock.clone();
            tokio::spawn(async move {
                mock.report(&payload, ReportState::Running, None).await;
                tokio::time::sleep(delay).await;
                mock.report(&payload, outcome, summary).await;
            });
            (StatusCode::CREATED, "queued".into())
        }
        Behaviour::FailFirstAttempt | Behaviour::UnavailableTimes { .. } => {
            unreachable!("resolved to a concrete behaviour above")
        }
    }
}
