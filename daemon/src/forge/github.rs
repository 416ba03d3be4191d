//! GitHub: with an App, one check run on the upstream's commit (created once, found
//! again by its `external_id` after a restart, then updated in place) whose output
//! has the summary and the table of dependents; with a token, one aggregated commit
//! status (`conjunction/downstream`), or one per dependent when asked for and the
//! event is small. Within GitHub's limits: a status description of 140 characters,
//! a check run's title, summary and text of 65,535 each.

use conjunction_protocol::forge::{
    github_api, Forge, Outlook, ReportTarget, CONTEXT, MAX_PER_DEPENDENT,
};
use conjunction_protocol::Timestamp;
use serde::Deserialize;

use super::app::{github_request, Apps};
use super::{cut, table, Kept, Shown};
use crate::call::{self, Failure};

/// GitHub refuses a longer status description.
const MAX_DESCRIPTION: usize = 140;
/// GitHub's limit on a check run's output fields, in characters.
const MAX_OUTPUT: usize = 65_535;

pub async fn report(
    client: &reqwest::Client,
    apps: &Apps,
    target: &ReportTarget,
    shown: &Shown,
    kept: Kept,
) -> Result<Kept, Failure> {
    let Forge::Github {
        repo,
        token,
        app,
        per_dependent,
        api_url,
    } = &target.forge
    else {
        return Err(Failure::Refused("not a GitHub target".into()));
    };
    let api = github_api(api_url.as_deref()).trim_end_matches('/');
    let sha = shown.commit()?;
    match (app, token) {
        (Some(app), _) => {
            let token = apps.token(client, api, app, repo, target.comment).await?;
            let made = check_run(client, api, repo, sha, &token, shown, kept.remote.clone()).await;
            if let Err(Failure::Refused(why)) = &made {
                if why.contains(" 401") {
                    // A token GitHub no longer takes (revoked, or the App's key
                    // rotated) is fetched anew on the next try.
                    apps.forget(api, app, repo);
                    return Err(Failure::Transient {
                        error: why.clone(),
                        retry_after: None,
                    });
                }
            }
            Ok(Kept {
                remote: Some(made?),
                ..kept
            })
        }
        (None, Some(token)) if *per_dependent && shown.dependents as usize <= MAX_PER_DEPENDENT => {
            let mut posted = kept.posted;
            for row in &shown.rows {
                let said = row.said();
                if posted.get(&row.project) == Some(&said) {
                    continue;
                }
                let state = status_state(row.outlook(target.needs_bump_fails));
                let context = format!("conjunction/{}", row.project);
                status(
                    client,
                    api,
                    repo,
                    sha,
                    token,
                    state,
                    &said,
                    &context,
                    row.url.as_deref(),
                )
                .await?;
                posted.insert(row.project.clone(), said);
            }
            Ok(Kept { posted, ..kept })
        }
        (None, Some(token)) => {
            let mut line = shown.told.line.clone();
            if *per_dependent {
                line = format!("{line} (too many dependents for one status each)");
            }
            let state = status_state(shown.told.outlook);
            status(client, api, repo, sha, token, state, &line, CONTEXT, None).await?;
            Ok(kept)
        }
        (None, None) => Err(Failure::Refused(
            "the GitHub target has neither a token nor an App".into(),
        )),
    }
}

/// A commit status's state for an outlook.
fn status_state(outlook: Outlook) -> &'static str {
    match outlook {
        Outlook::Pending => "pending",
        Outlook::Success => "success",
        Outlook::Failure => "failure",
    }
}

#[allow(clippy::too_many_arguments)]
async fn status(
    client: &reqwest::Client,
    api: &str,
    repo: &str,
    sha: &str,
    token: &str,
    state: &str,
    description: &str,
    context: &str,
    target_url: Option<&str>,
) -> Result<(), Failure> {
    let mut body = serde_json::json!({
        "state": state,
        "description": cut(description, MAX_DESCRIPTION),
        "context": context,
    });
    if let Some(url) = target_url {
        body["target_url"] = url.into();
    }
    call::send(
        client,
        github_request(
            client.post(format!("{api}/repos/{repo}/statuses/{sha}")),
            token,
        )
        .json(&body),
        "GitHub",
        &format!("commit {sha} in {repo}"),
        |_, _, _| async { Ok(()) },
    )
    .await
}

#[derive(Deserialize)]
struct CheckRun {
    id: u64,
    #[serde(default)]
    external_id: Option<String>,
}

#[derive(Deserialize)]
struct CheckRuns {
    check_runs: Vec<CheckRun>,
}

fn iso(t: Timestamp) -> String {
    humantime::format_rfc3339_seconds(t.to_system_time()).to_string()
}

/// Creates or updates the event's check run; answers its id.
async fn check_run(
    client: &reqwest::Client,
    api: &str,
    repo: &str,
    sha: &str,
    token: &str,
    shown: &Shown,
    remote: Option<String>,
) -> Result<String, Failure> {
    let external_id = shown.event.to_string();
    let remote = match remote {
        Some(id) => Some(id),
        // Made before a restart, before its id was recorded: found by its own id
        // rather than made twice.
        None => find_check_run(client, api, repo, sha, token, &external_id).await?,
    };
    let title = cut(&format!("{}: {}", shown.title(), shown.told.line), 255);
    let summary = cut(&summary(shown), MAX_OUTPUT);
    let text = table::markdown(shown, MAX_OUTPUT);
    let mut body = serde_json::json!({
        "name": CONTEXT,
        "external_id": external_id,
        "started_at": iso(shown.started_at),
        "output": {"title": title, "summary": summary, "text": text},
    });
    if let Some(url) = &shown.build_url {
        body["details_url"] = url.clone().into();
    }
    match (shown.told.finished, shown.finished_at) {
        (true, Some(at)) => {
            body["status"] = "completed".into();
            body["completed_at"] = iso(at).into();
            body["conclusion"] = match shown.told.outlook {
                Outlook::Failure => "failure",
                _ => "success",
            }
            .into();
        }
        _ => body["status"] = "in_progress".into(),
    }
    let context = format!("commit {sha} in {repo}");
    match remote {
        Some(id) => {
            call::send(
                client,
                github_request(
                    client.patch(format!("{api}/repos/{repo}/check-runs/{id}")),
                    token,
                )
                .json(&body),
                "GitHub",
                &format!("check run {id} in {repo}"),
                |_, _, _| async { Ok(()) },
            )
            .await?;
            Ok(id)
        }
        None => {
            body["head_sha"] = sha.into();
            let made: CheckRun = call::send(
                client,
                github_request(client.post(format!("{api}/repos/{repo}/check-runs")), token)
                    .json(&body),
                "GitHub",
                &context,
                |_, _, body| async move {
                    serde_json::from_slice(&body).map_err(|e| Failure::Transient {
                        error: format!("GitHub's check run did not read as expected ({e})"),
                        retry_after: None,
                    })
                },
            )
            .await?;
            Ok(made.id.to_string())
        }
    }
}

/// The check run conjunction made on `sha` for this event, if any.
async fn find_check_run(
    client: &reqwest::Client,
    api: &str,
    repo: &str,
    sha: &str,
    token: &str,
    external_id: &str,
) -> Result<Option<String>, Failure> {
    let runs: CheckRuns = call::send(
        client,
        github_request(
            client.get(format!("{api}/repos/{repo}/commits/{sha}/check-runs")),
            token,
        )
        .query(&[
            ("check_name", CONTEXT),
            ("filter", "all"),
            ("per_page", "100"),
        ]),
        "GitHub",
        &format!("commit {sha} in {repo}"),
        |_, _, body| async move {
            serde_json::from_slice(&body).map_err(|e| Failure::Transient {
                error: format!("GitHub's list of check runs did not read as expected ({e})"),
                retry_after: None,
            })
        },
    )
    .await?;
    Ok(runs
        .check_runs
        .into_iter()
        .find(|r| r.external_id.as_deref() == Some(external_id))
        .map(|r| r.id.to_string()))
}

/// The check run's summary: the line, and what the outlook means.
fn summary(shown: &Shown) -> String {
    let mut out = format!("**{}**\n\n", shown.told.line);
    out.push_str(match (shown.told.finished, shown.told.outlook) {
        (false, _) => "Dependents are still building; this updates as they finish.",
        (true, Outlook::Failure) => {
            "At least one dependent that built with the previous release fails with this one."
        }
        (true, _) => {
            "No dependent broke because of this change. Dependents that were failing already, failed on infrastructure or turned out flaky do not count against it."
        }
    });
    out.push_str(&format!(
        "\n\n{} dependent{} in all (conjunction event `{}`).",
        shown.dependents,
        if shown.dependents == 1 { "" } else { "s" },
        shown.event
    ));
    out
}
