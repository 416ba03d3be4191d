//! Forgejo and Gitea: a commit status (`POST /api/v1/repos/{owner}/{repo}/statuses/{sha}`,
//! `Authorization: token …`), in the four states every version knows.

use conjunction_protocol::forge::{Outlook, CONTEXT};

use super::{cut, Shown};
use crate::call::{self, Failure};

/// Kept as short as GitHub's, which Gitea's status list mirrors.
const MAX_DESCRIPTION: usize = 140;

pub async fn report(
    client: &reqwest::Client,
    url: &str,
    repo: &str,
    token: &str,
    shown: &Shown,
) -> Result<(), Failure> {
    let sha = shown.commit()?;
    let state = match shown.told.outlook {
        Outlook::Pending => "pending",
        Outlook::Success => "success",
        Outlook::Failure => "failure",
    };
    let mut body = serde_json::json!({
        "state": state,
        "context": CONTEXT,
        "description": cut(&shown.told.line, MAX_DESCRIPTION),
    });
    if let Some(link) = &shown.build_url {
        body["target_url"] = link.clone().into();
    }
    let mut request = client
        .post(format!(
            "{}/api/v1/repos/{repo}/statuses/{sha}",
            url.trim_end_matches('/')
        ))
        .json(&body);
    if let Some(value) = call::secret_header(&format!("token {token}")) {
        request = request.header(reqwest::header::AUTHORIZATION, value);
    }
    call::send(
        client,
        request,
        "Forgejo",
        &format!("commit {sha} in {repo}"),
        |_, _, _| async { Ok(()) },
    )
    .await
}
