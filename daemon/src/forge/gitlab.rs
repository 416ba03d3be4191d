//! GitLab: a commit status on the upstream's project (`POST
//! /projects/:id/statuses/:sha`, `PRIVATE-TOKEN` with the `api` scope), named
//! `conjunction/downstream`, so it shows in the merge request widget and the
//! pipeline list; description within GitLab's 255 characters.

use conjunction_protocol::forge::{Outlook, CONTEXT};

use super::{cut, Shown};
use crate::call::{self, Failure};

/// GitLab refuses a longer description or ref.
const MAX_FIELD: usize = 255;

pub async fn report(
    client: &reqwest::Client,
    url: &str,
    project: &str,
    token: &str,
    shown: &Shown,
) -> Result<(), Failure> {
    let sha = shown.commit()?;
    let state = match (shown.told.outlook, shown.told.finished) {
        (Outlook::Pending, _) => "running",
        (Outlook::Success, _) => "success",
        (Outlook::Failure, _) => "failed",
    };
    let mut body = serde_json::json!({
        "state": state,
        "name": CONTEXT,
        "description": cut(&shown.told.line, MAX_FIELD),
    });
    if let Some(r) = shown.git_ref.as_deref().filter(|r| r.len() <= MAX_FIELD) {
        // GitLab's ref is a branch or tag name, not a full ref.
        let name = r
            .strip_prefix("refs/heads/")
            .or_else(|| r.strip_prefix("refs/tags/"))
            .unwrap_or(r);
        body["ref"] = name.into();
    }
    if let Some(link) = shown.build_url.as_deref().filter(|u| u.len() <= MAX_FIELD) {
        body["target_url"] = link.into();
    }
    let api = format!(
        "{}/api/v4/projects/{}/statuses/{sha}",
        url.trim_end_matches('/'),
        urlencoding::encode(project)
    );
    call::send(
        client,
        authed(client.post(api).json(&body), token),
        "GitLab",
        &format!("commit {sha} in project {project}"),
        |_, _, _| async { Ok(()) },
    )
    .await
}

/// `request` with GitLab's `PRIVATE-TOKEN`, the value marked sensitive.
pub(super) fn authed(request: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
    match call::secret_header(token) {
        Some(value) => request.header("private-token", value),
        None => request,
    }
}
