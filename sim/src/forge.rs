//! A simulated forge: one HTTP server that answers the APIs an upstream's results are
//! written to, as each forge documents them (`../shared/reference/next-round.md` §1):
//! GitHub's commit statuses and check runs with a GitHub App's JWT (verified with
//! the App's public key) and expiring installation tokens, GitLab's and Forgejo's
//! commit statuses, Buildkite's build annotations and Jenkins's build description.
//! It refuses what the real one refuses (a missing field, an unknown state, a
//! description over the limit, an expired token) and keeps what it was told, so
//! tests and the demo read back what an upstream's maintainers would see. It can be
//! told to rate-limit the next calls.

// The checks answer a refusal as the HTTP answer itself; boxing each would only add
// noise to a simulator's handlers.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// The token the simulated forge takes as a personal access token (GitHub, GitLab,
/// Forgejo, Buildkite) or a Jenkins API token.
pub const TOKEN: &str = "forge-token-0123456789";
/// The Jenkins user the simulated forge knows.
pub const JENKINS_USER: &str = "conjunction";
/// The installation id of the simulated GitHub App on every repository.
pub const INSTALLATION: u64 = 77;

/// A commit status as a forge keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// `github`, `gitlab` or `forgejo`.
    pub forge: &'static str,
    pub repo: String,
    pub sha: String,
    pub context: String,
    pub state: String,
    pub description: String,
    pub target_url: Option<String>,
}

/// A comment on a pull request (GitHub) or a note on a merge request (GitLab).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    /// `github` or `gitlab`.
    pub forge: &'static str,
    pub repo: String,
    pub number: u64,
    pub body: String,
    /// Its author's user id: [`TOKEN_USER`] for [`TOKEN`], [`APP_USER`] for the App.
    pub user: u64,
    /// Set when an App made it.
    pub app: Option<String>,
    /// How many times it was edited.
    pub edits: u32,
}

/// The user [`TOKEN`] belongs to.
pub const TOKEN_USER: u64 = 4242;
/// The bot user a GitHub App's comments are made by.
pub const APP_USER: u64 = 9000;

/// One call the forge answered (or refused), in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub status: u16,
}

/// A GitHub App the forge knows: its id and its public key (PKCS#1 DER).
#[derive(Clone)]
struct App {
    id: String,
    public_key: Vec<u8>,
}

#[derive(Default)]
struct Book {
    /// Keep only this many of the last calls and statuses (the demo runs all day).
    keep: Option<usize>,
    /// Statuses written since the start, kept or not.
    status_total: u64,
    calls: Vec<Call>,
    statuses: Vec<Status>,
    check_runs: BTreeMap<u64, Value>,
    annotations: BTreeMap<(String, String), Value>,
    descriptions: BTreeMap<String, String>,
    /// Installation tokens handed out, with when each expires.
    tokens: BTreeMap<String, SystemTime>,
    /// The installation tokens that may write pull requests' comments.
    comment_tokens: std::collections::BTreeSet<String>,
    /// Comments on GitHub pull requests and notes on GitLab merge requests, by id.
    comments: BTreeMap<u64, Comment>,
    app: Option<App>,
    token_ttl: Option<Duration>,
    /// Calls still to answer with a rate limit.
    limited: u32,
    next_id: u64,
}

impl Book {
    /// Keeps a new comment or note under the next id; answers the id.
    fn comment(&mut self, comment: Comment) -> u64 {
        self.next_id += 1;
        self.comments.insert(self.next_id, comment);
        self.next_id
    }
}

type Shared = Arc<Mutex<Book>>;

/// The simulated forge, serving on loopback until dropped.
pub struct MockForge {
    address: SocketAddr,
    book: Shared,
    _server: tokio::task::JoinHandle<()>,
}

impl MockForge {
    /// A forge that keeps only the last `keep` calls and statuses, for one that runs
    /// as long as the demo does.
    pub async fn start_keeping(keep: usize) -> std::io::Result<Self> {
        let forge = Self::start().await?;
        forge.lock().keep = Some(keep);
        Ok(forge)
    }

    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let book: Shared = Arc::default();
        let app = Router::new()
            .route("/repos/{owner}/{repo}/installation", get(installation))
            .route("/app/installations/{id}/access_tokens", post(access_token))
            .route("/repos/{owner}/{repo}/statuses/{sha}", post(github_status))
            .route("/repos/{owner}/{repo}/check-runs", post(create_check_run))
            .route(
                "/repos/{owner}/{repo}/check-runs/{id}",
                patch(update_check_run),
            )
            .route(
                "/repos/{owner}/{repo}/commits/{sha}/check-runs",
                get(list_check_runs),
            )
            .route(
                "/repos/{owner}/{repo}/issues/{number}/comments",
                get(list_comments).post(create_comment),
            )
            .route(
                "/repos/{owner}/{repo}/issues/comments/{id}",
                patch(edit_comment),
            )
            .route("/user", get(github_user))
            .route("/api/v4/user", get(gitlab_user))
            .route(
                "/api/v4/projects/{project}/merge_requests/{iid}/notes",
                get(list_notes).post(create_note),
            )
            .route(
                "/api/v4/projects/{project}/merge_requests/{iid}/notes/{id}",
                axum::routing::put(edit_note),
            )
            .route(
                "/api/v4/projects/{project}/statuses/{sha}",
                post(gitlab_status),
            )
            .route(
                "/api/v1/repos/{owner}/{repo}/statuses/{sha}",
                post(forgejo_status),
            )
            .route(
                "/v2/organizations/{org}/pipelines/{pipeline}/builds/{number}/annotations",
                post(annotation),
            )
            .fallback(jenkins)
            .layer(axum::middleware::from_fn_with_state(book.clone(), record))
            .with_state(book.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            address,
            book,
            _server: server,
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Knows a GitHub App `id` with `public_key` (PKCS#1 DER), whose installation
    /// tokens expire after `ttl` (GitHub's is an hour).
    pub fn add_app(&self, id: &str, public_key: Vec<u8>, ttl: Duration) {
        let mut book = self.lock();
        book.app = Some(App {
            id: id.into(),
            public_key,
        });
        book.token_ttl = Some(ttl);
    }

    /// Expires every installation token handed out so far, as a revoked or rotated
    /// App's are.
    pub fn expire_tokens(&self) {
        let now = SystemTime::now();
        for expiry in self.lock().tokens.values_mut() {
            *expiry = now;
        }
    }

    /// The statuses written after the first `seen` of them (as far as they are
    /// kept), and how many have been written in all: the next call's `seen`.
    pub fn statuses_since(&self, seen: u64) -> (Vec<Status>, u64) {
        let book = self.lock();
        let first_kept = book.status_total - book.statuses.len() as u64;
        let skip = seen.saturating_sub(first_kept) as usize;
        (
            book.statuses.iter().skip(skip).cloned().collect(),
            book.status_total,
        )
    }

    /// Every comment and note, oldest first.
    pub fn comments(&self) -> Vec<Comment> {
        self.lock().comments.values().cloned().collect()
    }

    /// Adds a comment by someone else (`user`), as a person who quotes
    /// conjunction's marker would.
    pub fn add_comment(&self, forge: &'static str, repo: &str, number: u64, body: &str, user: u64) {
        self.lock().comment(Comment {
            forge,
            repo: repo.into(),
            number,
            body: body.into(),
            user,
            app: None,
            edits: 0,
        });
    }

    /// Answers the next `n` calls with GitHub's rate-limit answer (403,
    /// `x-ratelimit-remaining: 0`, a reset one second on).
    pub fn rate_limit_next(&self, n: u32) {
        self.lock().limited = n;
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    pub fn statuses(&self) -> Vec<Status> {
        self.lock().statuses.clone()
    }

    /// The latest status of each context on `sha` on `forge` (`github`, `gitlab`,
    /// `forgejo`), as a pull request shows them.
    pub fn latest_statuses(&self, forge: &str, sha: &str) -> BTreeMap<String, Status> {
        let mut out = BTreeMap::new();
        for s in self
            .statuses()
            .into_iter()
            .filter(|s| s.sha == sha && s.forge == forge)
        {
            out.insert(s.context.to_lowercase(), s);
        }
        out
    }

    pub fn check_runs(&self) -> Vec<Value> {
        self.lock().check_runs.values().cloned().collect()
    }

    /// Annotations by (build path, context).
    pub fn annotations(&self) -> BTreeMap<(String, String), Value> {
        self.lock().annotations.clone()
    }

    /// Jenkins build descriptions by build path.
    pub fn descriptions(&self) -> BTreeMap<String, String> {
        self.lock().descriptions.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn lock(book: &Shared) -> std::sync::MutexGuard<'_, Book> {
    book.lock().unwrap_or_else(|p| p.into_inner())
}

/// Records every call and answers the rate-limited ones.
async fn record(
    State(book): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (method, path) = (
        request.method().to_string(),
        request.uri().path().to_owned(),
    );
    let limited = {
        let mut b = lock(&book);
        let limited = b.limited > 0;
        if limited {
            b.limited -= 1;
        }
        limited
    };
    let response = if limited {
        let reset = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            + 1;
        (
            StatusCode::FORBIDDEN,
            [
                ("x-ratelimit-remaining", "0".to_string()),
                ("x-ratelimit-reset", reset.to_string()),
            ],
            Json(json!({"message": "API rate limit exceeded"})),
        )
            .into_response()
    } else {
        next.run(request).await
    };
    let mut book = lock(&book);
    book.calls.push(Call {
        method,
        path,
        status: response.status().as_u16(),
    });
    if let Some(keep) = book.keep {
        let calls = book.calls.len().saturating_sub(keep);
        book.calls.drain(..calls);
        let statuses = book.statuses.len().saturating_sub(keep);
        book.statuses.drain(..statuses);
    }
    drop(book);
    response
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"message": message}))).into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// GitHub's media type and API version, which every call must send.
fn github_headers(headers: &HeaderMap) -> Result<(), Response> {
    let accept = headers.get("accept").and_then(|v| v.to_str().ok());
    if accept != Some("application/vnd.github+json") {
        return Err(refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send Accept: application/vnd.github+json",
        ));
    }
    if headers.get("user-agent").is_none() {
        return Err(refuse(StatusCode::FORBIDDEN, "Request forbidden by administrative rules. Please make sure your request has a User-Agent header"));
    }
    Ok(())
}

/// Checks the App's JWT as GitHub does: RS256 signed by the App's key, issued by
/// the App, not expired, and expiring within ten minutes.
fn check_jwt(book: &Book, headers: &HeaderMap) -> Result<(), Response> {
    let unauthorized = |why: &str| refuse(StatusCode::UNAUTHORIZED, why);
    let app = book
        .app
        .as_ref()
        .ok_or_else(|| unauthorized("no GitHub App is installed"))?;
    let jwt =
        bearer(headers).ok_or_else(|| unauthorized("A JSON web token could not be decoded"))?;
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, payload, signature] = parts.as_slice() else {
        return Err(unauthorized("A JSON web token could not be decoded"));
    };
    let decode = |p: &str| URL_SAFE_NO_PAD.decode(p).ok();
    let header: Value = decode(header)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| unauthorized("A JSON web token could not be decoded"))?;
    if header["alg"] != "RS256" {
        return Err(unauthorized(
            "'Expiration time' claim ('exp') must be RS256 signed",
        ));
    }
    let signature = decode(signature).ok_or_else(|| unauthorized("bad signature"))?;
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        &app.public_key,
    );
    let signed = format!("{}.{}", parts[0], parts[1]);
    key.verify(signed.as_bytes(), &signature)
        .map_err(|_| unauthorized("A JSON web token could not be decoded"))?;
    let claims: Value = decode(payload)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| unauthorized("A JSON web token could not be decoded"))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let (Some(iat), Some(exp)) = (claims["iat"].as_u64(), claims["exp"].as_u64()) else {
        return Err(unauthorized(
            "'Issued at' and 'Expiration time' claims are required",
        ));
    };
    let iss = match &claims["iss"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    if iss != app.id {
        return Err(unauthorized("'Issuer' claim ('iss') must be the App's id"));
    }
    if exp <= now {
        return Err(unauthorized("'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires"));
    }
    if exp > now + 600 || iat > now + 60 {
        return Err(unauthorized(
            "'Expiration time' claim ('exp') is too far in the future",
        ));
    }
    Ok(())
}

/// An installation token, a personal token, or an error answer.
fn check_token(book: &Book, headers: &HeaderMap, installation_only: bool) -> Result<(), Response> {
    let token = bearer(headers)
        .ok_or_else(|| refuse(StatusCode::UNAUTHORIZED, "Requires authentication"))?;
    if let Some(expires) = book.tokens.get(token) {
        if *expires <= SystemTime::now() {
            return Err(refuse(StatusCode::UNAUTHORIZED, "Bad credentials"));
        }
        return Ok(());
    }
    if token == TOKEN && !installation_only {
        return Ok(());
    }
    if token == TOKEN {
        // Only GitHub Apps may write check runs.
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "You must authenticate via a GitHub App.",
        ));
    }
    Err(refuse(StatusCode::UNAUTHORIZED, "Bad credentials"))
}

async fn installation(
    State(book): State<Shared>,
    Path((_owner, _repo)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let book = lock(&book);
    if let Err(e) = github_headers(&headers).and_then(|()| check_jwt(&book, &headers)) {
        return e;
    }
    Json(json!({"id": INSTALLATION, "app_id": book.app.as_ref().map(|a| a.id.clone())}))
        .into_response()
}

async fn access_token(
    State(book): State<Shared>,
    Path(id): Path<u64>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut book = lock(&book);
    if let Err(e) = github_headers(&headers).and_then(|()| check_jwt(&book, &headers)) {
        return e;
    }
    if id != INSTALLATION {
        return refuse(StatusCode::NOT_FOUND, "Not Found");
    }
    let asked = body_json(&body).unwrap_or_default();
    let permissions = asked
        .get("permissions")
        .cloned()
        .unwrap_or_else(|| json!({"checks": "write", "pull_requests": "write"}));
    book.next_id += 1;
    let token = format!("ghs_{}_{:032}", book.next_id, book.next_id);
    let expires = SystemTime::now() + book.token_ttl.unwrap_or(Duration::from_secs(3600));
    book.tokens.insert(token.clone(), expires);
    if permissions["pull_requests"] == "write" {
        book.comment_tokens.insert(token.clone());
    }
    let expires_at = humantime_seconds(expires);
    (
        StatusCode::CREATED,
        Json(json!({"token": token, "expires_at": expires_at, "permissions": permissions})),
    )
        .into_response()
}

/// RFC 3339 in UTC with seconds, as GitHub writes times.
fn humantime_seconds(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn body_json(body: &Bytes) -> Result<Value, Response> {
    serde_json::from_slice(body)
        .map_err(|_| refuse(StatusCode::BAD_REQUEST, "Problems parsing JSON"))
}

fn unprocessable(message: &str) -> Response {
    refuse(StatusCode::UNPROCESSABLE_ENTITY, message)
}

async fn github_status(
    State(book): State<Shared>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut book = lock(&book);
    if let Err(e) = github_headers(&headers).and_then(|()| check_token(&book, &headers, false)) {
        return e;
    }
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let state = body["state"].as_str().unwrap_or_default();
    if !["error", "failure", "pending", "success"].contains(&state) {
        return unprocessable("Validation Failed: state is not included in the list");
    }
    let description = body["description"].as_str().unwrap_or_default();
    if description.chars().count() > 140 {
        return unprocessable("description is too long (maximum is 140 characters)");
    }
    let status = Status {
        forge: "github",
        repo: format!("{owner}/{repo}"),
        sha,
        context: body["context"].as_str().unwrap_or("default").into(),
        state: state.into(),
        description: description.into(),
        target_url: body["target_url"].as_str().map(Into::into),
    };
    book.status_total += 1;
    book.statuses.push(status);
    (StatusCode::CREATED, Json(json!({"state": state}))).into_response()
}

/// Checks a check run's fields against GitHub's documented values and limits.
fn check_fields(body: &Value) -> Result<(), Response> {
    if let Some(status) = body.get("status") {
        if !["queued", "in_progress", "completed"].contains(&status.as_str().unwrap_or_default()) {
            return Err(unprocessable("Validation Failed: status"));
        }
    }
    if let Some(conclusion) = body.get("conclusion") {
        let known = [
            "action_required",
            "cancelled",
            "failure",
            "neutral",
            "success",
            "skipped",
            "timed_out",
        ];
        if !known.contains(&conclusion.as_str().unwrap_or_default()) {
            return Err(unprocessable("Validation Failed: conclusion"));
        }
    }
    if body.get("status").and_then(Value::as_str) == Some("completed")
        && body.get("conclusion").is_none()
    {
        return Err(unprocessable(
            "Validation Failed: conclusion is required when status is completed",
        ));
    }
    if let Some(output) = body.get("output") {
        if output.get("title").and_then(Value::as_str).is_none()
            || output.get("summary").and_then(Value::as_str).is_none()
        {
            return Err(unprocessable(
                "Validation Failed: output needs a title and a summary",
            ));
        }
        for field in ["title", "summary", "text"] {
            if output[field]
                .as_str()
                .is_some_and(|s| s.chars().count() > 65_535)
            {
                return Err(unprocessable(&format!(
                    "Validation Failed: output.{field} is too long (maximum is 65535 characters)"
                )));
            }
        }
    }
    Ok(())
}

async fn create_check_run(
    State(book): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut book = lock(&book);
    if let Err(e) = github_headers(&headers).and_then(|()| check_token(&book, &headers, true)) {
        return e;
    }
    let mut body = match body_json(&body) {
        Ok(b) => b,
        Err(e) => return e,
    };
    if body["name"].as_str().is_none() || body["head_sha"].as_str().is_none() {
        return unprocessable("Validation Failed: name and head_sha are required");
    }
    if let Err(e) = check_fields(&body) {
        return e;
    }
    book.next_id += 1;
    let id = book.next_id;
    body["id"] = id.into();
    body["repository"] = format!("{owner}/{repo}").into();
    if body.get("status").is_none() {
        body["status"] = "queued".into();
    }
    book.check_runs.insert(id, body.clone());
    (StatusCode::CREATED, Json(body)).into_response()
}

async fn update_check_run(
    State(book): State<Shared>,
    Path((_owner, _repo, id)): Path<(String, String, u64)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut book = lock(&book);
    if let Err(e) = github_headers(&headers).and_then(|()| check_token(&book, &headers, true)) {
        return e;
    }
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(e) => return e,
    };
    if let Err(e) = check_fields(&body) {
        return e;
    }
    let Some(run) = book.check_runs.get_mut(&id) else {
        return refuse(StatusCode::NOT_FOUND, "Not Found");
    };
    if let (Value::Object(run), Value::Object(update)) = (run, body) {
        for (k, v) in update {
            run.insert(k, v);
        }
    }
    Json(book.check_runs[&id].clone()).into_response()
}

async fn list_check_runs(
    State(book): State<Shared>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let book = lock(&book);
    if let Err(e) = github_headers(&headers).and_then(|()| check_token(&book, &headers, false)) {
        return e;
    }
    let full = format!("{owner}/{repo}");
    let runs: Vec<Value> = book
        .check_runs
        .values()
        .filter(|r| r["repository"] == full.as_str() && r["head_sha"] == sha.as_str())
        .filter(|r| {
            query
                .get("check_name")
                .is_none_or(|n| r["name"] == n.as_str())
        })
        .cloned()
        .collect();
    Json(json!({"total_count": runs.len(), "check_runs": runs})).into_response()
}

async fn gitlab_status(
    State(book): State<Shared>,
    Path((project, sha)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut book = lock(&book);
    if headers.get("private-token").and_then(|v| v.to_str().ok()) != Some(TOKEN) {
        return refuse(StatusCode::UNAUTHORIZED, "401 Unauthorized");
    }
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let state = body["state"].as_str().unwrap_or_default();
    if ![
        "pending", "running", "success", "failed", "canceled", "skipped",
    ]
    .contains(&state)
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "state does not have a valid value"})),
        )
            .into_response();
    }
    for field in ["description", "ref", "target_url", "name"] {
        if body[field]
            .as_str()
            .is_some_and(|s| s.chars().count() > 255)
        {
            return (
                StatusCode::BAD_REQUEST,
                Json(
                    json!({"message": format!("{field} is too long (maximum is 255 characters)")}),
                ),
            )
                .into_response();
        }
    }
    let name = body["name"]
        .as_str()
        .or(body["context"].as_str())
        .unwrap_or("default");
    book.status_total += 1;
    book.statuses.push(Status {
        forge: "gitlab",
        // The project arrives percent-decoded by the router.
        repo: project,
        sha,
        context: name.into(),
        state: state.into(),
        description: body["description"].as_str().unwrap_or_default().into(),
        target_url: body["target_url"].as_str().map(Into::into),
    });
    (
        StatusCode::CREATED,
        Json(json!({"status": state, "name": name})),
    )
        .into_response()
}

async fn forgejo_status(
    State(book): State<Shared>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut book = lock(&book);
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("token {TOKEN}")) {
        return refuse(StatusCode::UNAUTHORIZED, "token is required");
    }
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let state = body["state"].as_str().unwrap_or_default();
    if !["pending", "success", "error", "failure"].contains(&state) {
        return unprocessable("state: invalid commit status state");
    }
    book.status_total += 1;
    book.statuses.push(Status {
        forge: "forgejo",
        repo: format!("{owner}/{repo}"),
        sha,
        context: body["context"].as_str().unwrap_or_default().into(),
        state: state.into(),
        description: body["description"].as_str().unwrap_or_default().into(),
        target_url: body["target_url"].as_str().map(Into::into),
    });
    (StatusCode::CREATED, Json(json!({"status": state}))).into_response()
}

async fn annotation(
    State(book): State<Shared>,
    Path((org, pipeline, number)): Path<(String, String, u64)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut book = lock(&book);
    if bearer(&headers) != Some(TOKEN) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "Authentication required. Please supply a valid API Access Token",
        );
    }
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let Some(text) = body["body"].as_str() else {
        return unprocessable("Body can't be blank");
    };
    if text.len() > 1024 * 1024 {
        return unprocessable("Body is too large");
    }
    if let Some(style) = body["style"].as_str() {
        if !["success", "info", "warning", "error"].contains(&style) {
            return unprocessable("Style is not included in the list");
        }
    }
    let context = body["context"].as_str().unwrap_or("default").to_owned();
    if context.chars().count() > 100 {
        return unprocessable("Context is too long");
    }
    let build = format!("{org}/{pipeline}/builds/{number}");
    // One annotation per context: the same context replaces it unless `append`.
    let entry = book
        .annotations
        .entry((build, context.clone()))
        .or_insert_with(|| json!({"body_html": ""}));
    let appended = if body["append"].as_bool() == Some(true) {
        format!("{}{text}", entry["body"].as_str().unwrap_or_default())
    } else {
        text.to_owned()
    };
    *entry = json!({"context": context, "style": body["style"], "body": appended});
    (StatusCode::CREATED, Json(entry.clone())).into_response()
}

/// Jenkins: `POST …/job/<name>/<number>/submitDescription` with the form field
/// `description`, as a user with an API token.
async fn jenkins(
    State(book): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    let Some(build) = path.strip_suffix("/submitDescription") else {
        return refuse(StatusCode::NOT_FOUND, "Not Found");
    };
    if method != Method::POST {
        return refuse(StatusCode::METHOD_NOT_ALLOWED, "This URL requires POST");
    }
    let expected = format!(
        "Basic {}",
        STANDARD.encode(format!("{JENKINS_USER}:{TOKEN}"))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            "<html><head><title>Error 401 Unauthorized</title></head></html>",
        )
            .into_response();
    }
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let Some(description) = form.get("description") else {
        return (
            StatusCode::BAD_REQUEST,
            "<html><head><title>Error 400 description is missing</title></head></html>",
        )
            .into_response();
    };
    lock(&book)
        .descriptions
        .insert(build.to_owned(), description.clone());
    // Jenkins answers the form post with a redirect to the build page.
    (StatusCode::FOUND, [("location", format!("{build}/"))]).into_response()
}

/// A GitHub App's private key as GitHub hands it out (PKCS#1 PEM, made by the
/// openssl command), and its public key (PKCS#1 DER) for [`MockForge::add_app`].
pub fn app_key() -> (String, Vec<u8>) {
    let pem = String::from_utf8(crate::oidc::openssl("openssl genrsa -traditional 2048"))
        .expect("PEM is ASCII");
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(b64).expect("PEM holds base64");
    let pair = ring::signature::RsaKeyPair::from_der(&der).expect("a PKCS#1 RSA key");
    use ring::signature::KeyPair;
    (pem, pair.public_key().as_ref().to_vec())
}

// ---- pull request comments (GitHub) and merge request notes (GitLab) ----

/// GitHub's limit on a comment's body.
const GITHUB_MAX_COMMENT: usize = 65_536;
/// GitLab's limit on a note's body.
const GITLAB_MAX_NOTE: usize = 1_000_000;

/// Who a GitHub token speaks for: the App (by id) or [`TOKEN`]'s user.
fn github_author(book: &Book, headers: &HeaderMap) -> Result<Option<String>, Response> {
    check_token(book, headers, false)?;
    let token = bearer(headers).unwrap_or_default();
    if token == TOKEN {
        return Ok(None);
    }
    if !book.comment_tokens.contains(token) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "Resource not accessible by integration",
        ));
    }
    Ok(Some(
        book.app.as_ref().map(|a| a.id.clone()).unwrap_or_default(),
    ))
}

fn github_comment_json(id: u64, c: &Comment) -> Value {
    let login = if c.app.is_some() {
        "conjunction[bot]"
    } else {
        "someone"
    };
    let mut out = json!({"id": id, "body": c.body, "user": {"id": c.user, "login": login}});
    if let Some(app) = &c.app {
        out["performed_via_github_app"] = json!({"id": app.parse::<u64>().unwrap_or(0)});
    }
    out
}

/// `page` and `per_page` as GitHub and GitLab read them (per_page at most 100).
fn page_of<T: Clone>(all: &[T], query: &BTreeMap<String, String>) -> Vec<T> {
    let per_page: usize = query
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page: usize = query
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    all.iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .cloned()
        .collect()
}

async fn github_user(State(book): State<Shared>, headers: HeaderMap) -> Response {
    let book = lock(&book);
    if let Err(e) = github_headers(&headers).and_then(|()| check_token(&book, &headers, false)) {
        return e;
    }
    if bearer(&headers) != Some(TOKEN) {
        // An installation token is no user's.
        return refuse(
            StatusCode::FORBIDDEN,
            "Resource not accessible by integration",
        );
    }
    Json(json!({"id": TOKEN_USER, "login": "conjunction-bot"})).into_response()
}

async fn list_comments(
    State(book): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let book = lock(&book);
    if let Err(e) = github_headers(&headers).and_then(|()| github_author(&book, &headers).map(drop))
    {
        return e;
    }
    let repo = format!("{owner}/{repo}");
    let all: Vec<Value> = book
        .comments
        .iter()
        .filter(|(_, c)| c.forge == "github" && c.repo == repo && c.number == number)
        .map(|(id, c)| github_comment_json(*id, c))
        .collect();
    Json(page_of(&all, &query)).into_response()
}

/// A comment's body as GitHub takes it: present, and within its limit.
fn comment_body(body: &Bytes) -> Result<String, Response> {
    let text = body_json(body)?["body"].as_str().map(str::to_owned);
    match text {
        None => Err(unprocessable("Validation Failed: body is required")),
        Some(t) if t.chars().count() > GITHUB_MAX_COMMENT => Err(unprocessable(
            "Validation Failed: body is too long (maximum is 65536 characters)",
        )),
        Some(t) => Ok(t),
    }
}

/// A comment request's author (the App, or none for a token's user) and its body,
/// or GitHub's refusal of either.
fn authored(
    book: &Book,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(Option<String>, String), Response> {
    github_headers(headers)?;
    let app = github_author(book, headers)?;
    Ok((app, comment_body(body)?))
}

async fn create_comment(
    State(book): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut book = lock(&book);
    let (app, text) = match authored(&book, &headers, &body) {
        Ok(found) => found,
        Err(e) => return e,
    };
    let comment = Comment {
        forge: "github",
        repo: format!("{owner}/{repo}"),
        number,
        body: text,
        user: if app.is_some() { APP_USER } else { TOKEN_USER },
        app,
        edits: 0,
    };
    let id = book.comment(comment);
    let out = github_comment_json(id, &book.comments[&id]);
    (StatusCode::CREATED, Json(out)).into_response()
}

async fn edit_comment(
    State(book): State<Shared>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut book = lock(&book);
    let (app, text) = match authored(&book, &headers, &body) {
        Ok(found) => found,
        Err(e) => return e,
    };
    let repo = format!("{owner}/{repo}");
    let Some(comment) = book
        .comments
        .get_mut(&id)
        .filter(|c| c.forge == "github" && c.repo == repo)
    else {
        return refuse(StatusCode::NOT_FOUND, "Not Found");
    };
    // Only its author may edit a comment.
    let user = if app.is_some() { APP_USER } else { TOKEN_USER };
    if comment.user != user || comment.app != app {
        return refuse(
            StatusCode::FORBIDDEN,
            "Resource not accessible by integration",
        );
    }
    comment.body = text;
    comment.edits += 1;
    let out = github_comment_json(id, comment);
    Json(out).into_response()
}

fn gitlab_token(headers: &HeaderMap) -> Result<(), Response> {
    if headers.get("private-token").and_then(|v| v.to_str().ok()) != Some(TOKEN) {
        return Err(refuse(StatusCode::UNAUTHORIZED, "401 Unauthorized"));
    }
    Ok(())
}

fn gitlab_note_json(id: u64, c: &Comment) -> Value {
    json!({"id": id, "body": c.body, "author": {"id": c.user, "username": "someone"}, "system": false})
}

async fn gitlab_user(headers: HeaderMap) -> Response {
    if let Err(e) = gitlab_token(&headers) {
        return e;
    }
    Json(json!({"id": TOKEN_USER, "username": "conjunction-bot"})).into_response()
}

async fn list_notes(
    State(book): State<Shared>,
    Path((project, iid)): Path<(String, u64)>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = gitlab_token(&headers) {
        return e;
    }
    let book = lock(&book);
    let all: Vec<Value> = book
        .comments
        .iter()
        .filter(|(_, c)| c.forge == "gitlab" && c.repo == project && c.number == iid)
        .map(|(id, c)| gitlab_note_json(*id, c))
        .collect();
    Json(page_of(&all, &query)).into_response()
}

/// A note's body as GitLab takes it.
fn note_body(body: &Bytes) -> Result<String, Response> {
    let text = body_json(body)?["body"].as_str().map(str::to_owned);
    let bad = |m: &str| (StatusCode::BAD_REQUEST, Json(json!({"message": m}))).into_response();
    match text {
        None => Err(bad("400 Bad request - body is missing")),
        Some(t) if t.chars().count() > GITLAB_MAX_NOTE => {
            Err(bad("Note is too long (maximum is 1000000 characters)"))
        }
        Some(t) => Ok(t),
    }
}

async fn create_note(
    State(book): State<Shared>,
    Path((project, iid)): Path<(String, u64)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = gitlab_token(&headers) {
        return e;
    }
    let text = match note_body(&body) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let mut book = lock(&book);
    let id = book.comment(Comment {
        forge: "gitlab",
        repo: project,
        number: iid,
        body: text,
        user: TOKEN_USER,
        app: None,
        edits: 0,
    });
    let out = gitlab_note_json(id, &book.comments[&id]);
    (StatusCode::CREATED, Json(out)).into_response()
}

async fn edit_note(
    State(book): State<Shared>,
    Path((project, iid, id)): Path<(String, u64, u64)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = gitlab_token(&headers) {
        return e;
    }
    let text = match note_body(&body) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let mut book = lock(&book);
    let Some(note) = book
        .comments
        .get_mut(&id)
        .filter(|c| c.forge == "gitlab" && c.repo == project && c.number == iid)
    else {
        return refuse(StatusCode::NOT_FOUND, "404 Not found");
    };
    if note.user != TOKEN_USER {
        return refuse(StatusCode::FORBIDDEN, "403 Forbidden");
    }
    note.body = text;
    note.edits += 1;
    let out = gitlab_note_json(id, note);
    Json(out).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_github_writes_them() {
        let t = UNIX_EPOCH + Duration::from_secs(1_468_275_250);
        assert_eq!(humantime_seconds(t), "2016-07-11T22:14:10Z");
    }
}
