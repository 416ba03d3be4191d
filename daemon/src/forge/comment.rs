//! The one comment a candidate gets on its pull request (GitHub) or merge request
//! (GitLab), in crater's spirit: what regressed, what got fixed, what still fails,
//! what needs a bump, with links. It is found by its marker and its author (so
//! nobody else's comment that quotes the marker is edited), made once, and edited in
//! place as the event goes and by every newer candidate of the same change.

use conjunction_protocol::{StateKind, Verdict};
use serde::Deserialize;

use super::app::github_request;
use super::{cut, Row, Shown};
use crate::call::{self, Failure};

/// GitHub refuses a longer comment body.
const GITHUB_MAX_BODY: usize = 65_536;
/// GitLab's limit on a note's body.
const GITLAB_MAX_BODY: usize = 1_000_000;
/// Comments read per page while looking for ours, and the most pages read: a pull
/// request with more than 3,000 comments gets a new one rather than a long search.
const PER_PAGE: usize = 100;
const MAX_PAGES: usize = 30;

/// What marks conjunction's comment on a change: invisible in the rendered comment.
pub fn marker(shown: &Shown, change: &str) -> String {
    format!("<!-- conjunction:change={}#{change} -->", shown.upstream)
}

/// The pull or merge request's number, when the candidate's change is one: a fork's
/// change known only by its branch has no request to comment on.
pub fn request_number(change: &str) -> Option<u64> {
    change.trim_start_matches(['#', '!']).parse().ok()
}

/// The comment's Markdown, within `budget` characters.
pub fn body(shown: &Shown, change: &str, budget: usize) -> String {
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
pub enum Author<'a> {
    App(&'a str),
    Token,
}

fn unreadable(far: &str, e: impl std::fmt::Display) -> Failure {
    Failure::Transient {
        error: format!("{far}'s answer did not read as expected ({e})"),
        retry_after: None,
    }
}

/// Makes or edits the comment on pull request `number` of `repo`; answers its id.
#[allow(clippy::too_many_arguments)]
pub async fn github(
    client: &reqwest::Client,
    api: &str,
    repo: &str,
    number: u64,
    token: &str,
    author: Author<'_>,
    shown: &Shown,
    change: &str,
    kept: Option<String>,
) -> Result<String, Failure> {
    let body = serde_json::json!({ "body": body(shown, change, GITHUB_MAX_BODY) });
    let found = match kept {
        Some(id) => Some(id),
        None => {
            find_github(
                client,
                api,
                repo,
                number,
                token,
                author,
                &marker(shown, change),
            )
            .await?
        }
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
                |_, _, body| async move {
                    serde_json::from_slice(&body).map_err(|e| unreadable("GitHub", e))
                },
            )
            .await?;
            Ok(made.id.to_string())
        }
    }
}

async fn find_github(
    client: &reqwest::Client,
    api: &str,
    repo: &str,
    number: u64,
    token: &str,
    author: Author<'_>,
    marker: &str,
) -> Result<Option<String>, Failure> {
    let me = match author {
        Author::App(id) => Me::App(id.parse().unwrap_or(0)),
        Author::Token => {
            let user: User = call::send(
                client,
                github_request(client.get(format!("{api}/user")), token),
                "GitHub",
                "the token's user",
                |_, _, body| async move {
                    serde_json::from_slice(&body).map_err(|e| unreadable("GitHub", e))
                },
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
            |_, _, body| async move {
                serde_json::from_slice(&body).map_err(|e| unreadable("GitHub", e))
            },
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

/// Makes or edits the note on merge request `iid` of `project`; answers its id.
#[allow(clippy::too_many_arguments)]
pub async fn gitlab(
    client: &reqwest::Client,
    url: &str,
    project: &str,
    iid: u64,
    token: &str,
    shown: &Shown,
    change: &str,
    kept: Option<String>,
) -> Result<String, Failure> {
    let api = format!("{}/api/v4", url.trim_end_matches('/'));
    let notes = format!(
        "{api}/projects/{}/merge_requests/{iid}/notes",
        urlencoding::encode(project)
    );
    let auth = |r: reqwest::RequestBuilder| match call::secret_header(token) {
        Some(value) => r.header("private-token", value),
        None => r,
    };
    let context = format!("merge request !{iid} in project {project}");
    let found = match kept {
        Some(id) => Some(id),
        None => {
            let me: User = call::send(
                client,
                auth(client.get(format!("{api}/user"))),
                "GitLab",
                "the token's user",
                |_, _, body| async move {
                    serde_json::from_slice(&body).map_err(|e| unreadable("GitLab", e))
                },
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
                    |_, _, body| async move {
                        serde_json::from_slice(&body).map_err(|e| unreadable("GitLab", e))
                    },
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
                |_, _, body| async move {
                    serde_json::from_slice(&body).map_err(|e| unreadable("GitLab", e))
                },
            )
            .await?;
            Ok(made.id.to_string())
        }
    }
}
