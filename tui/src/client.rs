//! The HTTP client for the daemon's API, used by the command line, the terminal UI
//! and the end-to-end tests.

use std::time::Duration;

use conjunction_protocol::impact::Impact;
use conjunction_protocol::limits::ROOT_PAGE_MAX;
use conjunction_protocol::project::{Dependent, ProjectUpserted, ProjectsApplied};
use conjunction_protocol::releases::{ReleaseLine, Releases};
use conjunction_protocol::{
    ApiError, BuildId, Node, Project, ProjectEntry, ProjectId, ProjectSpec, Report, ReportAck,
    RootEvent, RootSummary,
};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the daemon at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The daemon refused the request; its message says why.
    #[error("{} ({})", .error.message, .error.error)]
    Refused { status: u16, error: ApiError },
    #[error("the daemon answered {status} with a body that is not understood: {body}")]
    Unexpected { status: u16, body: String },
}

impl ClientError {
    /// The daemon's stable error code, when it refused.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Refused { error, .. } => Some(&error.error),
            _ => None,
        }
    }
}

/// A raw answer: status and body bytes.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

#[derive(Deserialize)]
struct DependentsAnswer {
    dependents: Vec<Dependent>,
}

impl Client {
    /// A client for the daemon at `base` (such as `http://127.0.0.1:7431`) using the
    /// operator `token` for management calls.
    pub fn new(base: &str, token: Option<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build()
            .unwrap_or_default();
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The websocket URL of the live feed, resuming after `since` when given.
    pub fn feed_url(&self, since: Option<u64>) -> String {
        let ws = if let Some(rest) = self.base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = self.base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            self.base.clone()
        };
        match since {
            Some(s) => format!("{ws}/v1/ws?since={s}"),
            None => format!("{ws}/v1/ws"),
        }
    }

    /// Sends a request with the given bearer token (none when `None`) and body, and
    /// returns whatever came back.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<RawResponse, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        if let Some(b) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b);
        }
        let response = request.send().await.map_err(|e| ClientError::Unreachable {
            url: self.base.clone(),
            reason: match std::error::Error::source(&e) {
                Some(cause) => cause.to_string(),
                None => e.to_string(),
            },
        })?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: self.base.clone(),
                reason: e.to_string(),
            })?;
        Ok(RawResponse {
            status,
            body: body.to_vec(),
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&impl Serialize>,
    ) -> Result<(u16, T), ClientError> {
        let body = body.map(|b| serde_json::to_vec(b).expect("requests serialize"));
        let raw = self.raw(method, path, token, body).await?;
        decode(raw)
    }

    fn operator(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub async fn health(&self) -> Result<serde_json::Value, ClientError> {
        Ok(self
            .call(Method::GET, "/healthz", None, None::<&()>)
            .await?
            .1)
    }

    /// Creates or updates every project of a list in one transaction, or none.
    pub async fn apply_projects(
        &self,
        projects: &[ProjectEntry],
    ) -> Result<ProjectsApplied, ClientError> {
        #[derive(Serialize)]
        struct List<'a> {
            projects: &'a [ProjectEntry],
        }
        Ok(self
            .call(
                Method::PUT,
                "/v1/projects",
                self.operator(),
                Some(&List { projects }),
            )
            .await?
            .1)
    }

    /// Creates or updates a project; the status says which (201 or 200).
    pub async fn put_project(
        &self,
        id: &ProjectId,
        spec: &ProjectSpec,
    ) -> Result<(u16, ProjectUpserted), ClientError> {
        self.call(Method::PUT, &project_path(id), self.operator(), Some(spec))
            .await
    }

    pub async fn project(&self, id: &ProjectId) -> Result<Project, ClientError> {
        Ok(self
            .call(Method::GET, &project_path(id), self.operator(), None::<&()>)
            .await?
            .1)
    }

    pub async fn projects(&self) -> Result<Vec<Project>, ClientError> {
        Ok(self
            .call(Method::GET, "/v1/projects", self.operator(), None::<&()>)
            .await?
            .1)
    }

    pub async fn delete_project(&self, id: &ProjectId) -> Result<(), ClientError> {
        let raw = self
            .raw(Method::DELETE, &project_path(id), self.operator(), None)
            .await?;
        if raw.status == 204 {
            Ok(())
        } else {
            decode::<serde_json::Value>(raw).map(|_| ())
        }
    }

    pub async fn dependents(&self, id: &ProjectId) -> Result<Vec<Dependent>, ClientError> {
        let path = format!("{}/dependents", project_path(id));
        let (_, answer): (u16, DependentsAnswer) = self
            .call(Method::GET, &path, self.operator(), None::<&()>)
            .await?;
        Ok(answer.dependents)
    }

    /// Sends a test notice on every channel `id`'s notices go to, now, and says how
    /// each went.
    pub async fn notify_test(
        &self,
        id: &ProjectId,
    ) -> Result<conjunction_protocol::notify::NotifyTest, ClientError> {
        let path = format!("{}/notify/test", project_path(id));
        Ok(self
            .call(Method::POST, &path, self.operator(), None::<&()>)
            .await?
            .1)
    }

    /// What releasing `version` of `id` (or promoting it to `environment`) would do.
    pub async fn impact(
        &self,
        id: &ProjectId,
        version: &str,
        environment: Option<&str>,
    ) -> Result<Impact, ClientError> {
        let mut path = format!(
            "{}/impact?version={}",
            project_path(id),
            urlencoding::encode(version)
        );
        if let Some(e) = environment {
            path.push_str(&format!("&environment={}", urlencoding::encode(e)));
        }
        Ok(self
            .call(Method::GET, &path, self.operator(), None::<&()>)
            .await?
            .1)
    }

    /// The newest release lines of `id`.
    pub async fn releases(&self, id: &ProjectId) -> Result<Releases, ClientError> {
        let path = format!("{}/releases", project_path(id));
        Ok(self
            .call(Method::GET, &path, self.operator(), None::<&()>)
            .await?
            .1)
    }

    /// The release line of `version` of `id`.
    pub async fn release_line(
        &self,
        id: &ProjectId,
        version: &str,
    ) -> Result<ReleaseLine, ClientError> {
        let path = format!(
            "{}/releases/{}",
            project_path(id),
            urlencoding::encode(version)
        );
        Ok(self
            .call(Method::GET, &path, self.operator(), None::<&()>)
            .await?
            .1)
    }

    /// Sends a report with a report token or a build token.
    pub async fn report(&self, token: &str, report: &Report) -> Result<ReportAck, ClientError> {
        Ok(self
            .call(Method::POST, "/v1/reports", Some(token), Some(report))
            .await?
            .1)
    }

    pub async fn build(&self, id: BuildId) -> Result<Node, ClientError> {
        Ok(self
            .call(
                Method::GET,
                &format!("/v1/builds/{id}"),
                self.operator(),
                None::<&()>,
            )
            .await?
            .1)
    }

    pub async fn rebuild(&self, id: BuildId) -> Result<Node, ClientError> {
        Ok(self
            .call(
                Method::POST,
                &format!("/v1/builds/{id}/rebuild"),
                self.operator(),
                None::<&()>,
            )
            .await?
            .1)
    }

    /// Replaces `id`'s report token with a generated one: the new token, shown this
    /// once.
    pub async fn rotate_report_token(&self, id: &ProjectId) -> Result<String, ClientError> {
        #[derive(Deserialize)]
        struct Rotated {
            report_token: String,
        }
        let path = format!("{}/report-token", project_path(id));
        let (_, answer): (u16, Rotated) = self
            .call(Method::POST, &path, self.operator(), None::<&()>)
            .await?;
        Ok(answer.report_token)
    }

    /// Issues a person's token; the answer holds the token, shown this once.
    pub async fn create_token(
        &self,
        request: &conjunction_protocol::access::TokenRequest,
    ) -> Result<conjunction_protocol::access::TokenIssued, ClientError> {
        Ok(self
            .call(Method::POST, "/v1/tokens", self.operator(), Some(request))
            .await?
            .1)
    }

    /// The people's tokens this client's token may revoke (a viewer: its own).
    pub async fn tokens(
        &self,
    ) -> Result<Vec<conjunction_protocol::access::TokenInfo>, ClientError> {
        #[derive(Deserialize)]
        struct Tokens {
            tokens: Vec<conjunction_protocol::access::TokenInfo>,
        }
        let (_, answer): (u16, Tokens) = self
            .call(Method::GET, "/v1/tokens", self.operator(), None::<&()>)
            .await?;
        Ok(answer.tokens)
    }

    pub async fn revoke_token(
        &self,
        id: &str,
    ) -> Result<conjunction_protocol::access::TokenInfo, ClientError> {
        Ok(self
            .call(
                Method::DELETE,
                &format!("/v1/tokens/{id}"),
                self.operator(),
                None::<&()>,
            )
            .await?
            .1)
    }

    /// The newest page of the audit trail, of one project or of everything.
    pub async fn audit(
        &self,
        project: Option<&ProjectId>,
    ) -> Result<conjunction_protocol::audit::AuditPage, ClientError> {
        let path = match project {
            Some(p) => format!("/v1/audit?project={}", urlencoding::encode(p.as_str())),
            None => "/v1/audit".to_owned(),
        };
        Ok(self
            .call(Method::GET, &path, self.operator(), None::<&()>)
            .await?
            .1)
    }

    pub async fn roots(&self, limit: usize) -> Result<Vec<RootSummary>, ClientError> {
        Ok(self
            .call(
                Method::GET,
                &format!("/v1/roots?limit={limit}"),
                self.operator(),
                None::<&()>,
            )
            .await?
            .1)
    }

    /// A root event with every node, read a page at a time.
    pub async fn root(&self, id: BuildId) -> Result<RootEvent, ClientError> {
        let mut event = self.root_page(id, None, ROOT_PAGE_MAX).await?;
        while let Some(after) = event.next_after {
            let mut page = self.root_page(id, Some(after), ROOT_PAGE_MAX).await?;
            event.nodes.append(&mut page.nodes);
            event.summary = page.summary;
            event.next_after = page.next_after;
        }
        Ok(event)
    }

    /// A root event with up to `limit` of its nodes, after the build `after`.
    pub async fn root_page(
        &self,
        id: BuildId,
        after: Option<BuildId>,
        limit: usize,
    ) -> Result<RootEvent, ClientError> {
        let path = match after {
            Some(after) => format!("/v1/roots/{id}?after={after}&limit={limit}"),
            None => format!("/v1/roots/{id}?limit={limit}"),
        };
        Ok(self
            .call(Method::GET, &path, self.operator(), None::<&()>)
            .await?
            .1)
    }
}

/// The API path of a project, its id percent-encoded as one segment.
pub fn project_path(id: &ProjectId) -> String {
    format!("/v1/projects/{}", urlencoding::encode(id.as_str()))
}

fn decode<T: DeserializeOwned>(raw: RawResponse) -> Result<(u16, T), ClientError> {
    if (200..300).contains(&raw.status) {
        return serde_json::from_slice(&raw.body)
            .map(|v| (raw.status, v))
            .map_err(|_| ClientError::Unexpected {
                status: raw.status,
                body: String::from_utf8_lossy(&raw.body)
                    .chars()
                    .take(300)
                    .collect(),
            });
    }
    match serde_json::from_slice::<ApiError>(&raw.body) {
        Ok(error) => Err(ClientError::Refused {
            status: raw.status,
            error,
        }),
        Err(_) => Err(ClientError::Unexpected {
            status: raw.status,
            body: String::from_utf8_lossy(&raw.body)
                .chars()
                .take(300)
                .collect(),
        }),
    }
}
