//! Telling an upstream's forge how its dependents fared, on the forge's own objects:
//! what is shown ([`Shown`], made from an event as stored), and one file per forge
//! that shows it there within that forge's documented limits: a GitHub check run
//! (with its App's tokens, [`app`]) or commit statuses, a GitLab or Forgejo commit
//! status, a Buildkite annotation, a Jenkins build description. Every call is one
//! [`crate::call`]; what follows a failure is the forge outbox's.

pub mod app;
mod buildkite;
pub mod comment;
mod forgejo;
mod github;
mod gitlab;
mod jenkins;
mod table;

use std::collections::BTreeMap;

use conjunction_protocol::forge::{tell, Forge, Outlook, ReportTarget, Told};
use conjunction_protocol::{BuildId, Node, ProjectId, StateKind, Timestamp, Verdict};

use crate::call::Failure;
use crate::store::ForgeView;

pub use app::Apps;

/// What a forge is shown about one event.
#[derive(Debug, Clone)]
pub struct Shown {
    pub event: BuildId,
    pub upstream: ProjectId,
    pub version: Option<String>,
    pub commit: Option<String>,
    pub git_ref: Option<String>,
    /// The upstream's own build: its CI link and run number.
    pub build_url: Option<String>,
    pub build_number: Option<u64>,
    pub told: Told,
    pub started_at: Timestamp,
    /// Set once every build is final.
    pub finished_at: Option<Timestamp>,
    /// The dependents, as far as they were read.
    pub rows: Vec<Row>,
    /// How many dependents the event has in all.
    pub dependents: u32,
    /// The change, when the event is a candidate.
    pub candidate: Option<conjunction_protocol::Candidate>,
    /// The newer candidate that took this one's place.
    pub superseded_by: Option<BuildId>,
}

/// One dependent in a forge's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub project: ProjectId,
    pub state: StateKind,
    pub verdict: Option<Verdict>,
    pub url: Option<String>,
}

impl Row {
    /// What a per-dependent status says, and what is remembered of it: `passed` or
    /// `failed · broke`.
    pub fn said(&self) -> String {
        match self.verdict {
            Some(v) => format!("{} · {}", self.state.as_str(), v.as_str().replace('_', " ")),
            None => self.state.as_str().replace('_', " "),
        }
    }

    /// This dependent's own outlook: failure only for a break (or a needed bump
    /// that counts as one).
    pub fn outlook(&self, needs_bump_fails: bool) -> Outlook {
        if !self.state.is_final() {
            Outlook::Pending
        } else if self.verdict == Some(Verdict::Broke)
            || (needs_bump_fails && self.state == StateKind::NeedsBump)
        {
            Outlook::Failure
        } else {
            Outlook::Success
        }
    }
}

impl Shown {
    /// What `target` is shown of the event in `view`: the counts of its dependents
    /// (the root's own build and verdict taken out), and a row for each dependent read.
    pub fn of(view: &ForgeView, target: &ReportTarget) -> Self {
        let record = &view.record;
        let mut counts = record.counts.clone();
        let mut verdicts = record.verdicts.clone();
        let root_state = view.root.state.kind();
        take(&mut counts, root_state);
        if let Some(v) = view.root.verdict {
            take(&mut verdicts, v);
        }
        let mut told = tell(root_state, &counts, &verdicts, target.needs_bump_fails);
        // A candidate ended early says why first: its cancelled builds are not news.
        if let Some(why) = &record.ended {
            told.line = format!("{why} · {}", told.line);
        }
        let rows = view.dependents.iter().map(row).collect();
        let finished_at = told.finished.then(|| {
            view.dependents
                .iter()
                .chain([&view.root])
                .filter_map(|n| n.finished_at)
                .max()
                .unwrap_or(record.created_at)
        });
        Shown {
            event: record.id,
            upstream: record.project.clone(),
            version: record.version.clone(),
            commit: record.commit.clone(),
            git_ref: record.git_ref.clone(),
            build_url: view.root.url.clone(),
            build_number: view.root.run.as_ref().and_then(|r| r.number),
            told,
            started_at: record.created_at,
            finished_at,
            rows,
            dependents: record.size.saturating_sub(1),
            candidate: record.candidate.clone(),
            superseded_by: record.superseded_by,
        }
    }

    /// The commit, which every forge that shows results on a commit needs.
    fn commit(&self) -> Result<&str, Failure> {
        self.commit.as_deref().ok_or_else(|| {
            Failure::Refused("the upstream's report named no commit to show results on".into())
        })
    }

    /// What the event is, in a title: `acme/lib 2.1.0`, `acme/lib candidate #12`.
    pub fn title(&self) -> String {
        match (&self.candidate, &self.version) {
            (Some(c), _) => format!("{} {}", self.upstream, c.label()),
            (None, Some(v)) => format!("{} {v}", self.upstream),
            (None, None) => self.upstream.to_string(),
        }
    }
}

fn take<K: Ord>(counts: &mut BTreeMap<K, u32>, key: K) {
    if let Some(n) = counts.get_mut(&key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            counts.remove(&key);
        }
    }
}

fn row(node: &Node) -> Row {
    Row {
        project: node.project.clone(),
        state: node.state.kind(),
        verdict: node.verdict,
        url: node.url.clone(),
    }
}

/// What a forge keeps for the next update: the id of what was made there, and the
/// per-dependent states told.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kept {
    pub remote: Option<String>,
    pub posted: BTreeMap<ProjectId, String>,
    pub comment: Option<String>,
}

/// Tells `target` what `shown` says, once; `kept` is what the last telling left.
pub async fn report(
    client: &reqwest::Client,
    apps: &Apps,
    target: &ReportTarget,
    shown: &Shown,
    kept: Kept,
) -> Result<Kept, Failure> {
    let mut kept = match &target.forge {
        Forge::Github { .. } => github::report(client, apps, target, shown, kept).await?,
        Forge::Gitlab {
            url,
            project,
            token,
        } => gitlab::report(client, url, project, token, shown)
            .await
            .map(|()| kept)?,
        Forge::Forgejo { url, repo, token } => forgejo::report(client, url, repo, token, shown)
            .await
            .map(|()| kept)?,
        Forge::Buildkite {
            org,
            pipeline,
            token,
            api_url,
        } => buildkite::report(client, api_url.as_deref(), org, pipeline, token, shown)
            .await
            .map(|()| kept)?,
        Forge::Jenkins { url, user, token } => jenkins::report(client, url, user, token, shown)
            .await
            .map(|()| kept)?,
    };
    kept.comment = comment::tell(client, apps, target, shown, kept.comment.take()).await?;
    Ok(kept)
}

/// A forge's JSON answer read as `T`; one that does not read is worth another try.
pub(crate) fn json<T: serde::de::DeserializeOwned>(far: &str, body: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(body).map_err(|e| Failure::Transient {
        error: format!("{far}'s answer did not read as expected ({e})"),
        retry_after: None,
    })
}

/// `text` cut to at most `max` characters, with an ellipsis when cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}
