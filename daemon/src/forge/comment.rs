//! The one comment a candidate gets on its pull request (GitHub) or merge request
//! (GitLab), in crater's spirit: what regressed, what got fixed, what still fails,
//! what needs a bump, with links. It is found by its marker and its author (so
//! nobody else's comment that quotes the marker is edited), made once, and edited in
//! place as the event goes and by every newer candidate of the same change.

use conjunction_protocol::forge::{github_api, Forge, ReportTarget};
use conjunction_protocol::{StateKind, Verdict};
use serde::Deserialize;

use super::app::github_request;
use super::{cut, json, Apps, Row, Shown};
use crate::call::{self, Failure};

/// GitHub refuses a longer comment body.
const GITHUB_MAX_BODY: usize = 65_536;
/// GitLab's limit on a note's body.
const GITLAB_MAX_BODY: usize = 1_000_000;
/// Comments read per page while looking for ours, and the most pages read: a pull
/// request with more than 3,000 comments gets a new one rather than a long search.
const PER_PAGE: usize = 100;
const MAX_PAGES: usize = 30;

/// Makes or edits the candidate's comment on its request, when `target` asks for one
/// and the event is a candidate with a numbered request that no newer candidate has
/// taken over; answers the comment's id, `kept` (the last one's) when nothing is
/// to do.
pub async fn tell(
    client: &reqwest::Client,
    apps: &Apps,
    target: &ReportTarget,
    shown: &Shown,
    kept: Option<String>,
) -> Result<Option<String>, Failure> {
    // A superseded candidate leaves the comment to the newer one, which edits it.
    let change = shown
        .candidate
        .as_ref()
        .filter(|_| target.comment && shown.superseded_by.is_none())
        .map(|c| c.change.as_str());
    let Some((change, number)) = change.and_then(|c| request_number(c).map(|n| (c, n))) else {
        return Ok(kept);
    };
    let made = match &target.forge {
        Forge::Github {
            repo,
            token,
            app,
            api_url,
            ..
        } => {
            let api = github_api(api_url.as_deref()).trim_end_matches('/');
            let (token, author) = match (app, token) {
                (Some(app), _) => (
                    apps.token(client, api, app, repo, true).await?,
                    Author::App(&app.id),
                ),
                (None, Some(token)) => (token.clone(), Author::Token),
                (None, None) => return Ok(kept),
            };
            let at = Request {
                api,
                repo,
                number,
                token: &token,
            };
            github(client, &at, author, shown, change, kept).await?
        }
        Forge::Gitlab {
            url,
            project,
            token,
        } => {
            let at = Request {
                api: url,
                repo: project,
                number,
                token,
            };
            gitlab(client, &at, shown, change, kept).await?
        }
        _ => return Ok(kept),
    };
    Ok(Some(made))
}

/// Where a comment goes: the forge's API (GitLab's instance), the repository or
/// project, the request's number, and the token that writes it.
struct Request<'a> {
    api: &'a str,
    repo: &'a str,
    number: u64,
    token: &'a str,
}

/// What marks conjunction's comment on a change: invisible in the rendered comment.
fn marker(shown: &Shown, change: &str) -> String {
    format!("<!-- conjunction:change={}#{change} -->", shown.upstream)
}

/// The pull or merge request's number, when the candidate's change is one: a fork's
/// change known only by its branch has no request to comment on.
fn request_number(change: &str) -> Option<u64> {
    change.trim_start_matches(['#', '!']).parse().ok()
}

/// The comment's Markdown, within `budget` characters.
fn body(shown: &Shown, change: &str, budget: usize) -> String {
    let candidate = shown
        .candidate
        .as_ref()
        .map_or_else(|| format!("change {change}"), |c| c.label());
    let mut out = format!(
        "{}\n### conjunction: {} {candidate} against its dependents\n\n**{}**\n\n",
        marker(shown, change),
        shown.upstream,
        shown.told.line
    );
    match &shown.commit {
        Some(commit) => out.push_str(&format!(
            "Event `{}` on commit `{commit}`{}.\n",
            shown.event,
            if shown.told.finished {
                ""
            } else {
                ", still running"
            }
        )),
        None => out.push_str(&format!("Event `{}`.\n", shown.event)),
    }
    type Section = (&'static str, fn(&Row) -> bool);
    let sections: [Section; 5] = [
        ("Regressed", |r| r.verdict == Some(Verdict::Broke)),
        ("Fixed", |r| r.verdict == Some(Verdict::Fixed)),
        ("Still failing", |r| {
            r.verdict == Some(Verdict::StillFailing)
        }),
        ("Needs a bump", |r| r.state == StateKind::NeedsBump),
        (
            "Failed in their CI, or flaky (not caused by this change)",
            |r| matches!(r.verdict, Some(Verdict::Infra | Verdict::Flaky)),
        ),
    ];
    // Room for the last line, whatever it says.
    let budget = budget.saturating_sub(200);
    let mut left_out = 0usize;
    for (title, wanted) in sections {
        let rows: Vec<&Row> = shown.rows.iter().filter(|r| wanted(r)).collect();
        if rows.is_empty() {
            continue;
        }
        out.push_str(&format!("\n#### {title} ({})\n", rows.len()));
        for row in rows {
            let line = match &row.url {
                Some(url) => format!("- `{}`: {} ([run]({url}))\n", row.project, row.said()),
                None => format!("- `{}`: {}\n", row.project, row.said()),
            };
            if out.chars().count() + line.chars().count() > budget {
                left_out += 1;
            } else {
                out.push_str(&line);
            }
        }
    }
    let unread = shown.dependents as usize - shown.rows.len().min(shown.dependents as usize);
    if left_out + unread > 0 {
        out.push_str(&format!(
            "\n…and {} more not listed here; `conjunction tree {}` shows them all.\n",
            left_out + unread,
            shown.event
        ));
    }
    cut(&out, budget + 200)
}

#[derive(Deserialize)]
struct Comment {
    id: u64,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    user: Option<User>,
    /// Set on a comment an App made.
    #[serde(default)]
    performed_via_github_app: Option<AppRef>,
}

#[derive(Deserialize)]
struct User {
    id: u64,
}

#[derive(Deserialize)]
struct AppRef {
    id: u64,
}

#[derive(Deserialize)]
struct Made {
    id: u64,
}

/// Who makes the comment on GitHub: an App (its comments say so), or the user a
/// token belongs to.
enum Author<'a> {
    App(&'a str),
    Token,
}

/// Makes or edits the comment on pull request `at`; answers its id.
async fn github(
    client: &reqwest::Client,
    at: &Request<'_>,
    author: Author<'_>,
    shown: &Shown,
    change: &str,
    kept: Option<String>,
) -> Result<String, Failure> {
    let &Request {
        api,
        repo,
        number,
        token,
    } = at;
    let body = serde_json::json!({ "body": body(shown, change, GITHUB_MAX_BODY) });
    let found = match kept {
        Some(id) => Some(id),
        None => find_github(client, at, author, &marker(shown, change)).await?,
    };
    match found {
        Some(id) => {
            call::send(
                client,
                github_request(
                    client.patch(format!("{api}/repos/{repo}/issues/comments/{id}")),
                    token,
                )
                .json(&body),
                "GitHub",
                &format!("comment {id} in {repo}"),
                |_, _, _| async { Ok(()) },
            )
            .await?;
            Ok(id)
        }
        None => {
            let made: Made = call::send(
                client,
                github_request(
                    client.post(format!("{api}/repos/{repo}/issues/{number}/comments")),
                    token,
                )
                .json(&body),
                "GitHub",
                &format!("pull request #{number} in {repo}"),
                |_, _, body| async move { json("GitHub", &body) },
            )
            .await?;
            Ok(made.id.to_string())
        }
    }
}

async fn find_github(
    client: &reqwest::Client,
    at: &Request<'_>,
    author: Author<'_>,
    marker: &str,
) -> Result<Option<String>, Failure> {
    let &Request {
        api,
        repo,
        number,
        token,
    } = at;
    let me = match author {
        Author::App(id) => Me::App(id.parse().unwrap_or(0)),
        Author::Token => {
            let user: User = call::send(
                client,
                github_request(client.get(format!("{api}/user")), token),
                "GitHub",
                "the token's user",
                |_, _, body| async move { json("GitHub", &body) },
            )
            .await?;
            Me::User(user.id)
        }
    };
    for page in 1..=MAX_PAGES {
        let comments: Vec<Comment> = call::send(
            client,
            github_request(
                client.get(format!("{api}/repos/{repo}/issues/{number}/comments")),
                token,
            )
            .query(&[("per_page", PER_PAGE), ("page", page)]),
            "GitHub",
            &format!("pull request #{number} in {repo}"),
            |_, _, body| async move { json("GitHub", &body) },
        )
        .await?;
        let ours = comments.iter().find(|c| {
            let mine = match me {
                Me::App(app) => c
                    .performed_via_github_app
                    .as_ref()
                    .is_some_and(|a| a.id == app),
                Me::User(user) => c.user.as_ref().is_some_and(|u| u.id == user),
            };
            mine && c.body.as_deref().is_some_and(|b| b.starts_with(marker))
        });
        if let Some(c) = ours {
            return Ok(Some(c.id.to_string()));
        }
        if comments.len() < PER_PAGE {
            break;
        }
    }
    Ok(None)
}

enum Me {
    App(u64),
    User(u64),
}

#[derive(Deserialize)]
struct Note {
    id: u64,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    author: Option<User>,
}

/// Makes or edits the note on merge request `at` (its `api` is the GitLab
/// instance); answers its id.
async fn gitlab(
    client: &reqwest::Client,
    at: &Request<'_>,
    shown: &Shown,
    change: &str,
    kept: Option<String>,
) -> Result<String, Failure> {
    let &Request {
        api: url,
        repo: project,
        number: iid,
        token,
    } = at;
    let api = format!("{}/api/v4", url.trim_end_matches('/'));
    let notes = format!(
        "{api}/projects/{}/merge_requests/{iid}/notes",
        urlencoding::encode(project)
    );
    let auth = |r: reqwest::RequestBuilder| super::gitlab::authed(r, token);
    let context = format!("merge request !{iid} in project {project}");
    let found = match kept {
        Some(id) => Some(id),
        None => {
            let me: User = call::send(
                client,
                auth(client.get(format!("{api}/user"))),
                "GitLab",
                "the token's user",
                |_, _, body| async move { json("GitLab", &body) },
            )
            .await?;
            let marker = marker(shown, change);
            let mut found = None;
            for page in 1..=MAX_PAGES {
                let page: Vec<Note> = call::send(
                    client,
                    auth(client.get(&notes)).query(&[("per_page", PER_PAGE), ("page", page)]),
                    "GitLab",
                    &context,
                    |_, _, body| async move { json("GitLab", &body) },
                )
                .await?;
                found = page
                    .iter()
                    .find(|n| {
                        n.author.as_ref().is_some_and(|a| a.id == me.id)
                            && n.body.as_deref().is_some_and(|b| b.starts_with(&marker))
                    })
                    .map(|n| n.id.to_string());
                if found.is_some() || page.len() < PER_PAGE {
                    break;
                }
            }
            found
        }
    };
    let body = serde_json::json!({ "body": body(shown, change, GITLAB_MAX_BODY) });
    match found {
        Some(id) => {
            call::send(
                client,
                auth(client.put(format!("{notes}/{id}"))).json(&body),
                "GitLab",
                &context,
                |_, _, _| async { Ok(()) },
            )
            .await?;
            Ok(id)
        }
        None => {
            let made: Made = call::send(
                client,
                auth(client.post(&notes)).json(&body),
                "GitLab",
                &context,
                |_, _, body| async move { json("GitLab", &body) },
            )
            .await?;
            Ok(made.id.to_string())
        }
    }
}
