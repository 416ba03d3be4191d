//! Simulated native CI systems: one HTTP server that answers GitHub Actions', GitLab
//! CI's, Buildkite's and Jenkins's own trigger and run APIs (their paths, auth, bodies,
//! answers and run ids, as `../shared/reference/ci-native.md` records them), "runs"
//! what it is asked to, and tells conjunction how each run went through that CI's own
//! webhook, signed as that CI signs it.
//!
//! The demo uses it so that its projects of each native kind show real run links; the
//! end-to-end tests use it so that the daemon's real HTTP client talks to something
//! that checks what it sends. Each pipeline can be told to misbehave the ways real
//! ones do: refuse `return_run_details` like an older GitHub Enterprise, hit a rate
//! limit, lose a webhook, keep a Jenkins build in the queue for a while.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use conjunction_protocol::{CiKind, ProjectId, ReportState, SourceSpec, TriggerSpec};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::net::TcpListener;

/// The workflow whose runs are a GitHub project's releases.
pub const RELEASE_WORKFLOW: &str = ".github/workflows/release.yml";

/// The trigger of a project built as `name` on the simulated `ci` served at `base`,
/// with `secret` as its API credential (for GitLab, also its read token).
pub fn trigger(ci: CiKind, name: &str, base: &str, secret: &str) -> TriggerSpec {
    let (first, rest) = name.split_once('/').unwrap_or((name, name));
    match ci {
        CiKind::Github => TriggerSpec::Github {
            repo: name.into(),
            workflow: "downstream.yml".into(),
            git_ref: "main".into(),
            token: secret.into(),
            api_url: Some(base.into()),
        },
        CiKind::Gitlab => TriggerSpec::Gitlab {
            url: base.into(),
            project: name.into(),
            git_ref: "main".into(),
            token: secret.into(),
            api_token: Some(secret.into()),
        },
        CiKind::Buildkite => TriggerSpec::Buildkite {
            org: first.into(),
            pipeline: rest.into(),
            branch: "main".into(),
            commit: "HEAD".into(),
            token: secret.into(),
            api_url: Some(base.into()),
        },
        CiKind::Jenkins => TriggerSpec::Jenkins {
            url: base.into(),
            job: name.into(),
            user: "conjunction".into(),
            token: secret.into(),
        },
    }
}

/// The source of a project built as `name` on the simulated `ci`: its webhook, signed
/// with `secret`; its own root reports are runs in `name` (of [`RELEASE_WORKFLOW`] on
/// GitHub, of the job `name` on Jenkins) on `main` or a version tag.
pub fn source(ci: CiKind, name: &str, secret: &str) -> SourceSpec {
    match ci {
        CiKind::Github => SourceSpec::Github {
            secret: secret.into(),
            repo: Some(name.into()),
            workflow: Some(RELEASE_WORKFLOW.into()),
            branch: Some("main".into()),
            candidates: false,
            candidates_from_forks: false,
        },
        CiKind::Gitlab => SourceSpec::Gitlab {
            token: secret.into(),
            signing_token: None,
            project: Some(name.into()),
            git_ref: Some("main".into()),
            candidates: false,
            candidates_from_forks: false,
        },
        CiKind::Buildkite => SourceSpec::Buildkite {
            token: secret.into(),
            allow_plain_token: false,
            pipeline: Some(name.into()),
            branch: Some("main".into()),
            candidates: false,
            candidates_from_forks: false,
        },
        CiKind::Jenkins => SourceSpec::Jenkins {
            secret: secret.into(),
            job: Some(name.into()),
            branch: Some("main".into()),
        },
    }
}

/// How one simulated pipeline behaves.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub ci: CiKind,
    /// Its name on the CI's side: GitHub's `owner/repo`, GitLab's project path,
    /// Buildkite's `org/pipeline`, Jenkins's job (`team/app`).
    pub name: String,
    /// The conjunction project its webhook reports on.
    pub project: ProjectId,
    /// The credential the trigger must carry: GitHub's and Buildkite's API token,
    /// GitLab's trigger token, Jenkins's `user:token`.
    pub api_token: String,
    /// The webhook's secret (GitHub, Jenkins) or token (GitLab, Buildkite).
    pub hook_secret: String,
    /// How its runs end, with the failure summary.
    pub outcome: ReportState,
    pub summary: Option<String>,
    /// How long a run waits, and then runs.
    pub queue: Duration,
    pub run: Duration,
    /// GitHub: refuse `return_run_details`, as GitHub Enterprise Server before it does.
    pub no_run_details: bool,
    /// Answer the first trigger with the CI's rate-limit answer, asking to wait this long.
    pub rate_limit_first: Option<Duration>,
    /// Send no webhook when a run finishes (the CI's API still knows how it ended).
    pub lose_finish_webhook: bool,
    /// Send no webhooks at all.
    pub silent: bool,
    /// Jenkins: how many times a queue item is reported still waiting.
    pub queue_polls: u32,
}

impl Pipeline {
    pub fn new(
        ci: CiKind,
        name: &str,
        project: ProjectId,
        api_token: &str,
        hook_secret: &str,
    ) -> Self {
        Self {
            ci,
            name: name.into(),
            project,
            api_token: api_token.into(),
            hook_secret: hook_secret.into(),
            outcome: ReportState::Passed,
            summary: None,
            queue: Duration::from_millis(20),
            run: Duration::from_millis(50),
            no_run_details: false,
            rate_limit_first: None,
            lose_finish_webhook: false,
            silent: false,
            queue_polls: 0,
        }
    }
}

/// One run the simulated CI made.
#[derive(Debug, Clone)]
pub struct SimRun {
    pub ci: CiKind,
    pub pipeline: String,
    /// The CI's id: GitHub's run id, GitLab's pipeline id, Buildkite's build UUID,
    /// Jenkins's queue item id.
    pub id: String,
    pub number: u64,
    /// The values conjunction sent, by the names the CI took them under.
    pub values: HashMap<String, String>,
    pub state: RunPhase,
    pub web_url: String,
    /// Every `Authorization` header (and GitLab's `token` field) of the trigger.
    pub credentials: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunPhase {
    Queued,
    Running,
    Finished(ReportState),
}

/// What happened to one webhook the simulated CI sent.
#[derive(Debug, Clone)]
pub struct HookSent {
    pub ci: CiKind,
    pub pipeline: String,
    pub run: String,
    pub status: u16,
    pub answer: String,
}

#[derive(Default)]
struct Sim {
    pipelines: HashMap<(CiKind, String), Pipeline>,
    runs: Vec<SimRun>,
    hooks: Vec<HookSent>,
    rate_limited: HashMap<(CiKind, String), bool>,
    queue_polls: HashMap<String, u32>,
    next_id: u64,
    /// Requests the CI refused, with why: for tests to see what conjunction got wrong.
    refused: Vec<String>,
}

/// The simulated CI server.
#[derive(Clone)]
pub struct NativeCi {
    pub addr: SocketAddr,
    base: String,
    /// Where conjunction takes webhooks: its root URL.
    daemon: String,
    sim: Arc<Mutex<Sim>>,
    http: reqwest::Client,
}

impl NativeCi {
    /// Serves on a free loopback port; webhooks go to the daemon at `daemon_url`.
    pub async fn start(daemon_url: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let ci = Self {
            addr,
            base: format!("http://{addr}"),
            daemon: daemon_url.trim_end_matches('/').to_owned(),
            sim: Arc::new(Mutex::new(Sim {
                next_id: 30_433_600,
                ..Sim::default()
            })),
            http: reqwest::Client::new(),
        };
        let app = Router::new()
            .route(
                "/repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches",
                post(github_dispatch),
            )
            .route("/repos/{owner}/{repo}/actions/runs/{id}", get(github_run))
            .route(
                "/repos/{owner}/{repo}/actions/workflows/{workflow}/runs",
                get(github_runs),
            )
            .route(
                "/api/v4/projects/{project}/trigger/pipeline",
                post(gitlab_trigger),
            )
            .route(
                "/api/v4/projects/{project}/pipelines/{id}",
                get(gitlab_pipeline),
            )
            .route(
                "/v2/organizations/{org}/pipelines/{pipeline}/builds",
                post(buildkite_create),
            )
            .route(
                "/v2/organizations/{org}/pipelines/{pipeline}/builds/{number}",
                get(buildkite_build),
            )
            .route("/queue/item/{id}/api/json", get(jenkins_queue_item))
            .route("/job/{*rest}", get(jenkins_job_get).post(jenkins_job_post))
            .with_state(ci.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(ci)
    }

    /// The root URL every CI kind is served at (GitHub's API root, the GitLab and
    /// Jenkins instances, Buildkite's API root).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn add(&self, pipeline: Pipeline) {
        let mut sim = self.sim.lock().expect("sim lock");
        sim.pipelines
            .insert((pipeline.ci, pipeline.name.clone()), pipeline);
    }

    pub fn runs(&self) -> Vec<SimRun> {
        self.sim.lock().expect("sim lock").runs.clone()
    }

    pub fn hooks(&self) -> Vec<HookSent> {
        self.sim.lock().expect("sim lock").hooks.clone()
    }

    pub fn refused(&self) -> Vec<String> {
        self.sim.lock().expect("sim lock").refused.clone()
    }

    fn pipeline(&self, ci: CiKind, name: &str) -> Option<Pipeline> {
        self.sim
            .lock()
            .expect("sim lock")
            .pipelines
            .get(&(ci, name.to_owned()))
            .cloned()
    }

    fn refuse(&self, status: StatusCode, why: String, body: Value) -> Response {
        self.sim.lock().expect("sim lock").refused.push(why);
        (status, Json(body)).into_response()
    }

    /// Answers the first trigger of a pipeline with its CI's rate-limit answer.
    fn rate_limit(&self, p: &Pipeline) -> Option<Response> {
        let wait = p.rate_limit_first?;
        let mut sim = self.sim.lock().expect("sim lock");
        let done = sim
            .rate_limited
            .entry((p.ci, p.name.clone()))
            .or_insert(false);
        if *done {
            return None;
        }
        *done = true;
        let secs = wait.as_secs().max(1);
        let reset = now_secs() + secs;
        Some(match p.ci {
            // GitHub's primary limit: a 403 with no requests left until the reset.
            CiKind::Github => (
                StatusCode::FORBIDDEN,
                [
                    ("x-ratelimit-remaining", "0".to_owned()),
                    ("x-ratelimit-reset", reset.to_string()),
                ],
                Json(json!({"message": "API rate limit exceeded for user ID 1.", "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"})),
            )
                .into_response(),
            CiKind::Buildkite => (
                StatusCode::TOO_MANY_REQUESTS,
                [
                    ("ratelimit-remaining", "0".to_owned()),
                    ("ratelimit-reset", secs.to_string()),
                ],
                Json(json!({"message": "You have exceeded your rate limit"})),
            )
                .into_response(),
            CiKind::Gitlab | CiKind::Jenkins => (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", secs.to_string())],
                Json(json!({"message": "Retry later"})),
            )
                .into_response(),
        })
    }

    /// Records a new run and starts "running" it.
    fn start_run(
        &self,
        p: &Pipeline,
        values: HashMap<String, String>,
        credentials: Vec<String>,
    ) -> SimRun {
        let run = {
            let mut sim = self.sim.lock().expect("sim lock");
            sim.next_id += 1;
            let id = sim.next_id;
            let number = sim.runs.iter().filter(|r| r.pipeline == p.name).count() as u64 + 1;
            let (id, web_url) = match p.ci {
                CiKind::Github => (
                    id.to_string(),
                    format!("{}/{}/actions/runs/{id}", self.base, p.name),
                ),
                CiKind::Gitlab => (
                    id.to_string(),
                    format!("{}/{}/-/pipelines/{id}", self.base, p.name),
                ),
                CiKind::Buildkite => (
                    format!("0190{id:08x}-4f5e-7a2b-9c3d-{:012x}", id * 7919),
                    format!("{}/{}/builds/{number}", self.base, p.name),
                ),
                CiKind::Jenkins => (
                    id.to_string(),
                    format!("{}/{}/{number}/", self.base, jenkins_path(&p.name)),
                ),
            };
            let run = SimRun {
                ci: p.ci,
                pipeline: p.name.clone(),
                id,
                number,
                values,
                state: RunPhase::Queued,
                web_url,
                credentials,
            };
            sim.runs.push(run.clone());
            run
        };
        let (ci, p, id) = (self.clone(), p.clone(), run.id.clone());
        tokio::spawn(async move {
            tokio::time::sleep(p.queue).await;
            ci.advance(&p, &id, RunPhase::Running, !p.silent).await;
            tokio::time::sleep(p.run).await;
            let notify = !p.lose_finish_webhook && !p.silent;
            ci.advance(&p, &id, RunPhase::Finished(p.outcome), notify)
                .await;
        });
        run
    }

    async fn advance(&self, p: &Pipeline, id: &str, phase: RunPhase, notify: bool) {
        let run = {
            let mut sim = self.sim.lock().expect("sim lock");
            let Some(run) = sim.runs.iter_mut().find(|r| r.id == id && r.ci == p.ci) else {
                return;
            };
            run.state = phase;
            run.clone()
        };
        if notify {
            self.send_hook(p, &run).await;
        }
    }

    /// A release of pipeline `name` (a GitHub workflow run on tag `v<version>`)
    /// finishing: its `workflow_run` webhook, as a root report of its project.
    pub async fn release(&self, name: &str, workflow_path: &str, version: &str) -> HookSent {
        let p = self
            .pipeline(CiKind::Github, name)
            .expect("the released pipeline is registered");
        let id = {
            let mut sim = self.sim.lock().expect("sim lock");
            sim.next_id += 1;
            sim.next_id
        };
        let body = json!({
            "action": "completed",
            "workflow_run": {
                "id": id,
                "name": "release",
                "path": workflow_path,
                "display_title": format!("release v{version}"),
                "run_number": id % 1000,
                "run_attempt": 1,
                "event": "push",
                "status": "completed",
                "conclusion": "success",
                "head_branch": format!("v{version}"),
                "head_sha": fake_sha(id),
                "html_url": format!("{}/{name}/actions/runs/{id}", self.base),
            },
            "workflow": {"id": 1, "name": "release", "path": workflow_path},
            "repository": {"id": 1, "full_name": name},
        });
        self.post_hook(&p, &id.to_string(), body).await
    }

    async fn send_hook(&self, p: &Pipeline, run: &SimRun) -> HookSent {
        let body = match p.ci {
            CiKind::Github => github_hook(run, &p.name),
            CiKind::Gitlab => gitlab_hook(run, p, &self.base),
            CiKind::Buildkite => buildkite_hook(run, p, &self.base),
            CiKind::Jenkins => jenkins_hook(run, p),
        };
        self.post_hook(p, &run.id, body).await
    }

    /// POSTs `body` to conjunction as `p`'s CI would: its headers, its signature.
    async fn post_hook(&self, p: &Pipeline, run: &str, body: Value) -> HookSent {
        let body = serde_json::to_vec(&body).expect("hook bodies serialize");
        let url = format!(
            "{}/v1/hooks/{}/{}",
            self.daemon,
            p.ci,
            urlencoding::encode(p.project.as_str())
        );
        let delivery = uuid_like();
        let mut request = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .timeout(Duration::from_secs(10));
        request = match p.ci {
            CiKind::Github => request
                .header("x-github-event", "workflow_run")
                .header("x-github-delivery", &delivery)
                .header("user-agent", "GitHub-Hookshot/sim")
                .header(
                    "x-hub-signature-256",
                    github_signature(&p.hook_secret, &body),
                ),
            CiKind::Gitlab => request
                .header("x-gitlab-event", "Pipeline Hook")
                .header("x-gitlab-token", &p.hook_secret)
                .header("idempotency-key", &delivery)
                .header("x-gitlab-webhook-uuid", uuid_like()),
            CiKind::Buildkite => {
                let ts = now_secs();
                request
                    .header("x-buildkite-event", "build.finished")
                    .header("x-buildkite-request", &delivery)
                    .header(
                        "x-buildkite-signature",
                        buildkite_signature(&p.hook_secret, ts, &body),
                    )
            }
            CiKind::Jenkins => request.basic_auth("jenkins", Some(&p.hook_secret)),
        };
        let (status, answer) = match request.body(body).send().await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        };
        let sent = HookSent {
            ci: p.ci,
            pipeline: p.name.clone(),
            run: run.to_owned(),
            status,
            answer,
        };
        self.sim.lock().expect("sim lock").hooks.push(sent.clone());
        sent
    }

    fn run_by(&self, ci: CiKind, f: impl Fn(&SimRun) -> bool) -> Option<SimRun> {
        self.sim
            .lock()
            .expect("sim lock")
            .runs
            .iter()
            .find(|r| r.ci == ci && f(r))
            .cloned()
    }
}

// ---- GitHub Actions ----

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

fn authorizations(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("authorization")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect()
}

/// The inputs a downstream workflow declares, as `docs/ci/github.md` shows: the
/// four every trigger sends, and the three a candidate's trigger adds.
const GITHUB_INPUTS: [&str; 7] = [
    "conjunction_build",
    "conjunction_report",
    "conjunction_token",
    "upstream",
    "conjunction_candidate",
    "conjunction_upstream_commit",
    "conjunction_upstream_ref",
];

async fn github_dispatch(
    State(ci): State<NativeCi>,
    Path((owner, repo, _workflow)): Path<(String, String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let name = format!("{owner}/{repo}");
    let Some(p) = ci.pipeline(CiKind::Github, &name) else {
        return ci.refuse(
            StatusCode::NOT_FOUND,
            format!("no repository {name}"),
            json!({"message": "Not Found"}),
        );
    };
    if bearer(&headers) != Some(p.api_token.as_str()) || authorizations(&headers).len() != 1 {
        return ci.refuse(
            StatusCode::UNAUTHORIZED,
            "bad credentials".into(),
            json!({"message": "Bad credentials"}),
        );
    }
    if headers.get("x-github-api-version").is_none() {
        return ci.refuse(
            StatusCode::BAD_REQUEST,
            "no API version".into(),
            json!({"message": "X-GitHub-Api-Version is required"}),
        );
    }
    if let Some(limited) = ci.rate_limit(&p) {
        return limited;
    }
    let details = body.get("return_run_details").and_then(Value::as_bool);
    if p.no_run_details && details.is_some() {
        return ci.refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "return_run_details on an old GitHub".into(),
            json!({"message": "Invalid request.\n\n\"return_run_details\" is not a permitted key."}),
        );
    }
    if body
        .get("ref")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return ci.refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no ref".into(),
            json!({"message": "Invalid request.\n\n\"ref\" wasn't supplied."}),
        );
    }
    let inputs: HashMap<String, String> = match body.get("inputs") {
        Some(Value::Object(o)) => o
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect(),
        _ => HashMap::new(),
    };
    let unexpected: Vec<&String> = inputs
        .keys()
        .filter(|k| !GITHUB_INPUTS.contains(&k.as_str()))
        .collect();
    if !unexpected.is_empty() {
        return ci.refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("unexpected inputs {unexpected:?}"),
            json!({"message": format!("Unexpected inputs provided: {unexpected:?}")}),
        );
    }
    let run = ci.start_run(&p, inputs, authorizations(&headers));
    if details == Some(true) {
        let id: u64 = run.id.parse().unwrap_or_default();
        (
            StatusCode::OK,
            Json(json!({
                "workflow_run_id": id,
                "run_url": format!("{}/repos/{name}/actions/runs/{id}", ci.base),
                "html_url": run.web_url,
            })),
        )
            .into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

/// A run as GitHub's REST API and its `workflow_run` webhook show it.
fn github_run_json(run: &SimRun, repo: &str) -> Value {
    let (status, conclusion) = match run.state {
        RunPhase::Queued => ("queued", Value::Null),
        RunPhase::Running => ("in_progress", Value::Null),
        RunPhase::Finished(s) => (
            "completed",
            Value::from(match s {
                ReportState::Passed => "success",
                ReportState::Failed => "failure",
                ReportState::Errored => "timed_out",
                ReportState::Cancelled => "cancelled",
                ReportState::Running => "neutral",
            }),
        ),
    };
    let id: u64 = run.id.parse().unwrap_or_default();
    let title = match run.values.get("conjunction_build") {
        Some(b) if !b.is_empty() => format!("conjunction {b}"),
        _ => "downstream".to_owned(),
    };
    json!({
        "id": id,
        "name": "downstream",
        "path": ".github/workflows/downstream.yml",
        "display_title": title,
        "run_number": run.number,
        "run_attempt": 1,
        "event": "workflow_dispatch",
        "status": status,
        "conclusion": conclusion,
        "head_branch": "main",
        "head_sha": fake_sha(id),
        "html_url": run.web_url,
        "repository": {"full_name": repo},
    })
}

fn github_hook(run: &SimRun, repo: &str) -> Value {
    let action = match run.state {
        RunPhase::Queued => "requested",
        RunPhase::Running => "in_progress",
        RunPhase::Finished(_) => "completed",
    };
    json!({
        "action": action,
        "workflow_run": github_run_json(run, repo),
        "workflow": {"id": 1, "name": "downstream", "path": ".github/workflows/downstream.yml"},
        "repository": {"id": 1, "full_name": repo},
    })
}

async fn github_run(
    State(ci): State<NativeCi>,
    Path((owner, repo, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let name = format!("{owner}/{repo}");
    match (
        ci.pipeline(CiKind::Github, &name),
        ci.run_by(CiKind::Github, |r| r.id == id),
    ) {
        (Some(p), Some(run)) if bearer(&headers) == Some(p.api_token.as_str()) => {
            Json(github_run_json(&run, &name)).into_response()
        }
        _ => (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response(),
    }
}

async fn github_runs(
    State(ci): State<NativeCi>,
    Path((owner, repo, _workflow)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let name = format!("{owner}/{repo}");
    let Some(p) = ci.pipeline(CiKind::Github, &name) else {
        return (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response();
    };
    if bearer(&headers) != Some(p.api_token.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Bad credentials"})),
        )
            .into_response();
    }
    let runs: Vec<Value> = ci
        .runs()
        .iter()
        .rev()
        .filter(|r| r.ci == CiKind::Github && r.pipeline == name)
        .map(|r| github_run_json(r, &name))
        .collect();
    Json(json!({"total_count": runs.len(), "workflow_runs": runs})).into_response()
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`, as GitHub signs a webhook.
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

// ---- GitLab CI ----

async fn gitlab_trigger(
    State(ci): State<NativeCi>,
    Path(project): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    // The loop guard of lib/api/ci/triggers.rb.
    if headers.get("x-gitlab-event").is_some() {
        return ci.refuse(
            StatusCode::FORBIDDEN,
            "a Pipeline Hook header on a trigger".into(),
            json!({"message": "403 Forbidden"}),
        );
    }
    let Some(p) = ci.pipeline(CiKind::Gitlab, &project) else {
        return ci.refuse(
            StatusCode::NOT_FOUND,
            format!("no project {project}"),
            json!({"message": "404 Project Not Found"}),
        );
    };
    let token = body
        .get("token")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if token != p.api_token {
        return ci.refuse(
            StatusCode::NOT_FOUND,
            "bad trigger token".into(),
            json!({"message": "404 Not Found"}),
        );
    }
    if let Some(limited) = ci.rate_limit(&p) {
        return limited;
    }
    if body
        .get("ref")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return ci.refuse(
            StatusCode::BAD_REQUEST,
            "no ref".into(),
            json!({"error": "ref is missing"}),
        );
    }
    let variables: Option<HashMap<String, String>> = match body.get("variables") {
        None => Some(HashMap::new()),
        Some(Value::Object(o)) => o
            .iter()
            .map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
            .collect(),
        Some(_) => None,
    };
    let Some(variables) = variables else {
        return ci.refuse(
            StatusCode::BAD_REQUEST,
            "variables not a map".into(),
            json!({"error": "variables needs to be a map of key-valued strings"}),
        );
    };
    let mut credentials = authorizations(&headers);
    credentials.push(format!("token={token}"));
    let run = ci.start_run(&p, variables, credentials);
    (StatusCode::CREATED, Json(gitlab_pipeline_json(&run, &p))).into_response()
}

fn gitlab_status(phase: RunPhase) -> &'static str {
    match phase {
        RunPhase::Queued => "pending",
        RunPhase::Running => "running",
        RunPhase::Finished(ReportState::Passed) => "success",
        RunPhase::Finished(ReportState::Failed | ReportState::Errored) => "failed",
        RunPhase::Finished(ReportState::Cancelled | ReportState::Running) => "canceled",
    }
}

fn gitlab_pipeline_json(run: &SimRun, p: &Pipeline) -> Value {
    let id: u64 = run.id.parse().unwrap_or_default();
    json!({
        "id": id,
        "iid": run.number,
        "project_id": 42,
        "sha": fake_sha(id),
        "ref": "main",
        "status": gitlab_status(run.state),
        "source": "trigger",
        "web_url": run.web_url,
        "name": p.name,
    })
}

fn gitlab_hook(run: &SimRun, p: &Pipeline, base: &str) -> Value {
    let id: u64 = run.id.parse().unwrap_or_default();
    let variables: Vec<Value> = run
        .values
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect();
    let failed = matches!(run.state, RunPhase::Finished(ReportState::Failed));
    json!({
        "object_kind": "pipeline",
        "object_attributes": {
            "id": id,
            "iid": run.number,
            "name": null,
            "ref": "main",
            "tag": false,
            "sha": fake_sha(id),
            "status": gitlab_status(run.state),
            "source": "trigger",
            "url": run.web_url,
            "variables": variables,
        },
        "project": {
            "id": 42,
            "path_with_namespace": p.name,
            "web_url": format!("{base}/{}", p.name),
        },
        "builds": [
            {"id": id * 10, "stage": "test", "name": "test", "status": if failed { "failed" } else { "success" },
             "failure_reason": if failed { Value::from("script_failure") } else { Value::Null }, "allow_failure": false},
        ],
    })
}

async fn gitlab_pipeline(
    State(ci): State<NativeCi>,
    Path((project, id)): Path<(String, String)>,
) -> Response {
    match (
        ci.pipeline(CiKind::Gitlab, &project),
        ci.run_by(CiKind::Gitlab, |r| r.id == id),
    ) {
        (Some(p), Some(run)) => Json(gitlab_pipeline_json(&run, &p)).into_response(),
        _ => (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "404 Not found"})),
        )
            .into_response(),
    }
}

// ---- Buildkite ----

async fn buildkite_create(
    State(ci): State<NativeCi>,
    Path((org, pipeline)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let name = format!("{org}/{pipeline}");
    let Some(p) = ci.pipeline(CiKind::Buildkite, &name) else {
        return ci.refuse(
            StatusCode::NOT_FOUND,
            format!("no pipeline {name}"),
            json!({"message": "No pipeline found"}),
        );
    };
    if bearer(&headers) != Some(p.api_token.as_str()) || authorizations(&headers).len() != 1 {
        return ci.refuse(
            StatusCode::UNAUTHORIZED,
            "bad token".into(),
            json!({"message": "Authentication required. Please supply a valid API Access Token"}),
        );
    }
    if let Some(limited) = ci.rate_limit(&p) {
        return limited;
    }
    let missing: Vec<&str> = ["commit", "branch"]
        .into_iter()
        .filter(|k| {
            body.get(k)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        })
        .collect();
    if !missing.is_empty() {
        return ci.refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("missing {missing:?}"),
            json!({"message": "Validation Failed", "errors": missing.iter().map(|m| format!("{m} can't be blank")).collect::<Vec<_>>()}),
        );
    }
    let mut values: HashMap<String, String> = HashMap::new();
    for field in ["env", "meta_data"] {
        if let Some(Value::Object(o)) = body.get(field) {
            for (k, v) in o {
                values.insert(k.clone(), v.as_str().unwrap_or_default().to_owned());
            }
        }
    }
    let run = ci.start_run(&p, values, authorizations(&headers));
    (
        StatusCode::CREATED,
        Json(buildkite_build_json(&run, &p, &ci.base)),
    )
        .into_response()
}

fn buildkite_build_json(run: &SimRun, p: &Pipeline, base: &str) -> Value {
    let (state, blocked) = match run.state {
        RunPhase::Queued => ("scheduled", false),
        RunPhase::Running => ("running", false),
        RunPhase::Finished(ReportState::Passed) => ("passed", false),
        RunPhase::Finished(ReportState::Failed | ReportState::Errored) => ("failed", false),
        RunPhase::Finished(_) => ("canceled", false),
    };
    let meta: serde_json::Map<String, Value> = run
        .values
        .iter()
        .filter(|(k, _)| k.starts_with("conjunction:"))
        .map(|(k, v)| (k.clone(), Value::from(v.clone())))
        .collect();
    let (org, pipeline) = p.name.split_once('/').unwrap_or((&p.name, &p.name));
    json!({
        "id": run.id,
        "number": run.number,
        "url": format!("{base}/v2/organizations/{org}/pipelines/{pipeline}/builds/{}", run.number),
        "web_url": run.web_url,
        "state": state,
        "blocked": blocked,
        "commit": "HEAD",
        "branch": "main",
        "message": "conjunction",
        "source": "api",
        "meta_data": meta,
        "finished_at": if matches!(run.state, RunPhase::Finished(_)) { Value::from("2026-11-23T10:00:00.000Z") } else { Value::Null },
    })
}

fn buildkite_hook(run: &SimRun, p: &Pipeline, base: &str) -> Value {
    let event = match run.state {
        RunPhase::Queued => "build.scheduled",
        RunPhase::Running => "build.running",
        RunPhase::Finished(_) => "build.finished",
    };
    json!({
        "event": event,
        "build": buildkite_build_json(run, p, base),
        "pipeline": {"slug": p.name.split('/').nth(1).unwrap_or(&p.name), "name": p.name},
        "sender": {"name": "conjunction"},
    })
}

async fn buildkite_build(
    State(ci): State<NativeCi>,
    Path((org, pipeline, number)): Path<(String, String, u64)>,
    headers: HeaderMap,
) -> Response {
    let name = format!("{org}/{pipeline}");
    let run = ci.run_by(CiKind::Buildkite, |r| {
        r.pipeline == name && r.number == number
    });
    match (ci.pipeline(CiKind::Buildkite, &name), run) {
        (Some(p), Some(run)) if bearer(&headers) == Some(p.api_token.as_str()) => {
            Json(buildkite_build_json(&run, &p, &ci.base)).into_response()
        }
        _ => (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "No build found"})),
        )
            .into_response(),
    }
}

/// `timestamp=T,signature=<hex HMAC-SHA256(token, "T.body")>`, as Buildkite signs.
pub fn buildkite_signature(token: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(token.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    format!(
        "timestamp={timestamp},signature={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

// ---- Jenkins ----

/// `team/app` as Jenkins's URL path: `job/team/job/app`.
fn jenkins_path(job: &str) -> String {
    job.split('/')
        .map(|part| format!("job/{}", urlencoding::encode(part)))
        .collect::<Vec<_>>()
        .join("/")
}

/// `team/job/app/...` (what follows the first `/job/`) back to the job's full name
/// and what comes after it.
fn jenkins_job(rest: &str) -> (String, Vec<String>) {
    let mut parts = rest.split('/').filter(|s| !s.is_empty());
    let mut job = Vec::new();
    let mut tail = Vec::new();
    if let Some(first) = parts.next() {
        job.push(first.to_owned());
    }
    while let Some(part) = parts.next() {
        if part == "job" {
            if let Some(name) = parts.next() {
                job.push(name.to_owned());
            }
        } else {
            tail.push(part.to_owned());
            tail.extend(parts.by_ref().map(str::to_owned));
        }
    }
    (job.join("/"), tail)
}

fn jenkins_authorized(p: &Pipeline, headers: &HeaderMap) -> bool {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(&p.api_token)
    );
    authorizations(headers) == [expected]
}

fn jenkins_denied() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [("content-type", "text/html")],
        "<html><head><title>Error 401 Unauthorized</title></head><body>Invalid password/token for user</body></html>",
    )
        .into_response()
}

async fn jenkins_job_post(
    State(ci): State<NativeCi>,
    Path(rest): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let (job, tail) = jenkins_job(&rest);
    if tail != ["buildWithParameters"] {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    }
    let Some(p) = ci.pipeline(CiKind::Jenkins, &job) else {
        ci.sim
            .lock()
            .expect("sim lock")
            .refused
            .push(format!("no job {job}"));
        return (
            StatusCode::NOT_FOUND,
            [("content-type", "text/html")],
            "<html><head><title>Error 404 Not Found</title></head></html>",
        )
            .into_response();
    };
    if !jenkins_authorized(&p, &headers) {
        ci.sim
            .lock()
            .expect("sim lock")
            .refused
            .push("bad credentials".into());
        return jenkins_denied();
    }
    if let Some(limited) = ci.rate_limit(&p) {
        return limited;
    }
    let mut values: HashMap<String, String> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    values.extend(query);
    values.remove("delay");
    let run = ci.start_run(&p, values, authorizations(&headers));
    (
        StatusCode::CREATED,
        [("location", format!("{}/queue/item/{}/", ci.base, run.id))],
    )
        .into_response()
}

async fn jenkins_queue_item(
    State(ci): State<NativeCi>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(run) = ci.run_by(CiKind::Jenkins, |r| r.id == id) else {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    };
    let Some(p) = ci.pipeline(CiKind::Jenkins, &run.pipeline) else {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    };
    if !jenkins_authorized(&p, &headers) {
        return jenkins_denied();
    }
    let polls = {
        let mut sim = ci.sim.lock().expect("sim lock");
        let n = sim.queue_polls.entry(id.clone()).or_insert(0);
        *n += 1;
        *n
    };
    let waiting = run.state == RunPhase::Queued || polls <= p.queue_polls;
    let item = if waiting {
        json!({
            "_class": "hudson.model.Queue$WaitingItem",
            "id": id.parse::<u64>().unwrap_or_default(),
            "why": "In the quiet period. Expires in 0 ms",
            "blocked": false, "buildable": false, "stuck": false, "cancelled": false,
            "executable": null,
            "task": {"name": p.name, "url": format!("{}/{}/", ci.base, jenkins_path(&p.name))},
        })
    } else {
        json!({
            "_class": "hudson.model.Queue$LeftItem",
            "id": id.parse::<u64>().unwrap_or_default(),
            "cancelled": false,
            "executable": {"_class": "hudson.model.FreeStyleBuild", "number": run.number, "url": run.web_url},
            "task": {"name": p.name, "url": format!("{}/{}/", ci.base, jenkins_path(&p.name))},
        })
    };
    Json(item).into_response()
}

async fn jenkins_job_get(
    State(ci): State<NativeCi>,
    Path(rest): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (job, tail) = jenkins_job(&rest);
    let number: Option<u64> = match tail.as_slice() {
        [n, api, json] if api == "api" && json == "json" => n.parse().ok(),
        _ => None,
    };
    let (Some(p), Some(number)) = (ci.pipeline(CiKind::Jenkins, &job), number) else {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    };
    if !jenkins_authorized(&p, &headers) {
        return jenkins_denied();
    }
    let Some(run) = ci.run_by(CiKind::Jenkins, |r| r.pipeline == job && r.number == number) else {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    };
    let (building, result) = match run.state {
        RunPhase::Finished(s) => (false, Value::from(jenkins_result(s))),
        _ => (true, Value::Null),
    };
    Json(json!({
        "_class": "hudson.model.FreeStyleBuild",
        "number": run.number,
        "url": run.web_url,
        "building": building,
        "result": result,
    }))
    .into_response()
}

fn jenkins_result(s: ReportState) -> &'static str {
    match s {
        ReportState::Passed => "SUCCESS",
        ReportState::Failed => "FAILURE",
        ReportState::Errored => "FAILURE",
        ReportState::Cancelled | ReportState::Running => "ABORTED",
    }
}

/// The Notification plugin's JSON for a run's phase.
fn jenkins_hook(run: &SimRun, p: &Pipeline) -> Value {
    let (phase, status) = match run.state {
        RunPhase::Queued => ("QUEUED", Value::Null),
        RunPhase::Running => ("STARTED", Value::Null),
        RunPhase::Finished(s) => ("FINALIZED", Value::from(jenkins_result(s))),
    };
    // Password parameters are left out by the plugin.
    let parameters: serde_json::Map<String, Value> = run
        .values
        .iter()
        .filter(|(k, _)| k.as_str() != "CONJUNCTION_TOKEN")
        .map(|(k, v)| (k.clone(), Value::from(v.clone())))
        .collect();
    let failed = matches!(run.state, RunPhase::Finished(ReportState::Failed));
    json!({
        "name": p.name.rsplit('/').next().unwrap_or(&p.name),
        "display_name": p.name,
        "url": format!("{}/", jenkins_path(&p.name)),
        "build": {
            "full_url": run.web_url,
            "number": run.number,
            "queue_id": run.id.parse::<u64>().unwrap_or_default(),
            "timestamp": now_secs() * 1000,
            "phase": phase,
            "status": status,
            "url": format!("{}/{}/", jenkins_path(&p.name), run.number),
            "scm": {"branch": "origin/main", "commit": fake_sha(run.number)},
            "parameters": parameters,
            "log": "",
            "artifacts": {},
            "test_summary": if failed {
                json!({"total": 120, "failed": 1, "skipped": 0, "passed": 119, "failed_tests": [{"name": "test_roundtrip", "full_name": "app.RoundTripTest.test_roundtrip"}]})
            } else {
                json!({"total": 120, "failed": 0, "skipped": 0, "passed": 120, "failed_tests": []})
            },
        },
    })
}

// ---- small things ----

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

fn fake_sha(seed: u64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(b"sha").expect("any key length");
    mac.update(&seed.to_le_bytes());
    hex::encode(&mac.finalize().into_bytes()[..20])
}

fn uuid_like() -> String {
    let r: u128 = rand::random();
    let h = format!("{r:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}
