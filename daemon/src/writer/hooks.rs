//! News of native CI runs, from their webhooks or from asking their APIs: a run
//! conjunction triggered moves its build on; a run of the project's own configured
//! workflow or branch is a root report; anything else is noted and changes nothing.
//!
//! A run is tied to its build by the run id the CI answered the trigger with, or
//! else by the build key (`<build>/<attempt>`) the run carries in a field of its own
//! (a run title, a pipeline variable, meta-data, a job parameter).

use std::time::Duration;

use conjunction_protocol::ci::{parse_build_key, version_from_ref};
use conjunction_protocol::{BuildId, CiKind, Node, ProjectId, Report, ReportAck, Run, SourceSpec};

use super::reports;
use super::work::Work;
use crate::ci::{RunNews, RunState};
use crate::planner::{Principal, Refusal};
use crate::store::{RunRecord, StoreError};

/// How long a webhook delivery id is remembered: GitHub redelivers for three days.
pub const DELIVERY_MEMORY: Duration = Duration::from_secs(7 * 24 * 3600);

/// Where news came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// The CI's webhook, with its delivery id (or, for a CI that sends none, a key
    /// made of what the news says), which is taken once.
    Webhook { delivery: String },
    /// The daemon asked the CI's API about `build`, which had no news for `quiet`.
    Check {
        build: BuildId,
        attempt: u32,
        quiet: Duration,
    },
    /// The daemon followed a Jenkins queue item of `build` until it became a build.
    Queue { build: BuildId, attempt: u32 },
}

/// News of one run of `project`'s CI.
#[derive(Debug, Clone)]
pub struct News {
    pub project: ProjectId,
    pub ci: CiKind,
    pub run: RunNews,
    pub via: Via,
}

/// What the news came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// It moved a build conjunction triggered (or the root of an earlier report).
    Build(ReportAck),
    /// It was a root report and started a root event.
    Root(ReportAck),
    /// This delivery was taken before.
    Duplicate,
    /// Nothing changed, and why.
    Noted(String),
}

pub(super) fn hear(
    work: &mut Work<'_, '_>,
    news: News,
) -> Result<Result<Heard, Refusal>, StoreError> {
    let Some(project) = work.tx.project(&news.project)? else {
        return Ok(Err(Refusal::UnknownProject(news.project)));
    };
    if let Via::Webhook { delivery } = &news.via {
        let key = format!("{}\n{}\n{delivery}", news.project, news.ci);
        if work.tx.hook_seen(&key)? {
            return Ok(Ok(Heard::Duplicate));
        }
        let now = work.now.0;
        let memory = DELIVERY_MEMORY.as_millis() as u64;
        work.tx.put_hook(&key, now, now.saturating_sub(memory))?;
    }
    let run = &news.run;
    if let RunState::Ignored(why) = run.state {
        return Ok(Ok(Heard::Noted(format!("{why}; nothing changed"))));
    }
    let found = match find_build(work, &news)? {
        Ok(found) => found,
        Err(note) => return Ok(Ok(Heard::Noted(note))),
    };
    if let Some((record, node)) = found {
        let new_run_of_root = node.is_root()
            && (run.attempt > record.ci_attempt
                || (node.state.kind().is_final() && run.state == RunState::Running));
        if !new_run_of_root {
            return build_news(work, news, record, node);
        }
    }
    let source = project.source.as_ref();
    if let Some(note) = not_counted(source, news.ci, run) {
        return Ok(Ok(Heard::Noted(note)));
    }
    root_news(work, news)
}

/// The build the news is about, with the run as recorded; `None` when the news is
/// about no build conjunction knows; a note when it names one it cannot be about.
#[allow(clippy::type_complexity)]
fn find_build(
    work: &mut Work<'_, '_>,
    news: &News,
) -> Result<Result<Option<(RunRecord, Node)>, String>, StoreError> {
    let run = &news.run;
    let record = match (&news.via, &run.run_id) {
        (Via::Check { build, attempt, .. } | Via::Queue { build, attempt }, _) => Some(RunRecord {
            build: *build,
            attempt: *attempt,
            ci_attempt: None,
        }),
        (Via::Webhook { .. }, Some(id)) => work.tx.run(&news.project, news.ci, id)?,
        (Via::Webhook { .. }, None) => None,
    };
    let record = match record {
        Some(r) => r,
        None => match run.conjunction_build.as_deref().map(parse_build_key) {
            None => return Ok(Ok(None)),
            Some(None) => {
                return Ok(Err(format!(
                    "the run names conjunction build {:?}, which is not a build key \
                     (<build id>/<attempt>); nothing changed",
                    run.conjunction_build.as_deref().unwrap_or_default()
                )))
            }
            Some(Some((build, attempt))) => RunRecord {
                build,
                attempt,
                ci_attempt: None,
            },
        },
    };
    let Some(node) = work.tx.node(record.build)? else {
        return Ok(Err(format!(
            "the run names conjunction build {}, which does not exist; nothing changed",
            record.build
        )));
    };
    if node.project != news.project {
        return Ok(Err(format!(
            "the run names conjunction build {}, which is a build of {}, not {}; nothing changed",
            record.build, node.project, news.project
        )));
    }
    Ok(Ok(Some((record, node))))
}

/// Moves build `node` on by the news.
fn build_news(
    work: &mut Work<'_, '_>,
    news: News,
    record: RunRecord,
    node: Node,
) -> Result<Result<Heard, Refusal>, StoreError> {
    let state = news.run.state.report_state();
    if record.attempt < node.attempt {
        return Ok(Ok(Heard::Noted(format!(
            "the run is about attempt {} of build {}, which is at attempt {} now; nothing changed",
            record.attempt, node.id, node.attempt
        ))));
    }
    let run_id = news.run.run_id.clone();
    if let Some(id) = &run_id {
        if work.tx.run(&news.project, news.ci, id)?.is_none() {
            work.tx.put_run(&news.project, news.ci, id, &record)?;
        }
    }
    let learnt = match &news.via {
        Via::Check { quiet, .. } => Some(format!(
            "learnt from the {} API after {} without a webhook",
            news.ci.name(),
            humantime::format_duration(Duration::from_secs(quiet.as_secs()))
        )),
        _ => None,
    };
    let run = Run {
        ci: news.ci,
        id: run_id,
        number: news.run.number,
        learnt,
    };
    let url = news.run.url.clone();
    let report = Report {
        project: news.project,
        build: Some(node.id),
        attempt: Some(record.attempt),
        state,
        version: None,
        commit: news.run.commit,
        git_ref: news.run.git_ref,
        environment: None,
        url: news.run.url,
        summary: news.run.summary,
        metadata: Default::default(),
    };
    let principal = Principal::Build {
        build: node.id,
        attempt: record.attempt,
    };
    let mut amend = |n: &mut Node| {
        amend_run(n, &run);
        if n.url.is_none() {
            n.url.clone_from(&url);
        }
    };
    Ok(
        match reports::node_report(work, node.id, report, principal, &mut amend)? {
            Ok(ack) => Ok(Heard::Build(ack)),
            // A webhook is no place to argue: the sender would only disable the hook.
            Err(refusal @ Refusal::Report(_)) => {
                Ok(Heard::Noted(format!("{refusal}; nothing changed")))
            }
            Err(other) => Err(other),
        },
    )
}

/// Records what the news says about the run, keeping what is known and the news
/// does not say.
fn amend_run(node: &mut Node, run: &Run) {
    match &mut node.run {
        Some(known) if known.ci == run.ci => {
            if run.id.is_some() {
                known.id.clone_from(&run.id);
            }
            known.number = run.number.or(known.number);
            known.learnt.clone_from(&run.learnt);
        }
        _ => node.run = Some(run.clone()),
    }
}

/// Why a run is not one of the project's own root reports, or `None` when it is.
fn not_counted(source: Option<&SourceSpec>, ci: CiKind, run: &RunNews) -> Option<String> {
    let Some(source) = source else {
        return Some("the project has no source configured; nothing changed".into());
    };
    if source.kind() != ci {
        return Some(format!(
            "the project's source is {}, not {}; nothing changed",
            source.kind(),
            ci
        ));
    }
    let (workflow, branch) = source.filters();
    let described = || {
        let mut d = String::from("a run");
        if let Some(w) = &run.workflow {
            d.push_str(&format!(" of {w}"));
        }
        if let Some(r) = &run.git_ref {
            d.push_str(&format!(" on {r}"));
        }
        d
    };
    if let Some(wanted) = workflow {
        let matches = run
            .workflow
            .as_deref()
            .is_some_and(|w| same_workflow(w, wanted));
        if !matches {
            return Some(format!(
                "{} that conjunction did not trigger, and not of {wanted}, which the source \
                 counts; nothing changed",
                described()
            ));
        }
    }
    if let Some(wanted) = branch {
        let on_ref = run.git_ref.as_deref();
        let matches = on_ref.is_some_and(|r| r == wanted || version_from_ref(r).is_some());
        if !matches {
            return Some(format!(
                "{} that conjunction did not trigger, and not on {wanted} or a version tag, \
                 which the source counts; nothing changed",
                described()
            ));
        }
    }
    None
}

/// A workflow named by its path or its file name (`.github/workflows/release.yml`,
/// `release.yml`), or a Jenkins job by its full name or its own name.
fn same_workflow(run: &str, wanted: &str) -> bool {
    let last = |s: &str| s.rsplit('/').next().unwrap_or(s).to_owned();
    run == wanted || last(run) == last(wanted)
}

/// A root report from the project's own run.
fn root_news(work: &mut Work<'_, '_>, news: News) -> Result<Result<Heard, Refusal>, StoreError> {
    let state = news.run.state.report_state();
    let run = Run {
        ci: news.ci,
        id: news.run.run_id.clone(),
        number: news.run.number,
        learnt: None,
    };
    let mut report = Report::new(news.project.clone(), state);
    report.version = news.run.git_ref.as_deref().and_then(version_from_ref);
    report.commit = news.run.commit;
    report.git_ref = news.run.git_ref;
    report.url = news.run.url;
    report.summary = news.run.summary;
    let principal = Principal::Project {
        project: news.project.clone(),
    };
    let mut amend = |n: &mut Node| n.run = Some(run.clone());
    let ack = match reports::root_report(work, report, principal, &mut amend)? {
        Ok(ack) => ack,
        Err(refusal) => return Ok(Err(refusal)),
    };
    if let Some(id) = &run.id {
        let record = RunRecord {
            build: ack.build,
            attempt: 1,
            ci_attempt: Some(news.run.attempt.unwrap_or(1)),
        };
        work.tx.put_run(&news.project, news.ci, id, &record)?;
    }
    Ok(Ok(Heard::Root(ack)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use conjunction_protocol::ReportState;

    fn news(workflow: Option<&str>, git_ref: Option<&str>) -> RunNews {
        RunNews {
            source: "acme/lib".into(),
            run_id: Some("1".into()),
            workflow: workflow.map(str::to_owned),
            attempt: Some(1),
            number: None,
            state: RunState::Finished(ReportState::Passed),
            commit: None,
            git_ref: git_ref.map(str::to_owned),
            url: None,
            title: None,
            conjunction_build: None,
            summary: None,
            semantic_key: String::new(),
        }
    }

    fn github(workflow: Option<&str>, branch: Option<&str>) -> SourceSpec {
        SourceSpec::Github {
            secret: "s".into(),
            workflow: workflow.map(str::to_owned),
            branch: branch.map(str::to_owned),
        }
    }

    #[test]
    fn the_configured_workflow_on_its_branch_or_a_version_tag_counts() {
        let source = github(Some(".github/workflows/release.yml"), Some("main"));
        let release = Some(".github/workflows/release.yml");
        assert_eq!(
            not_counted(Some(&source), CiKind::Github, &news(release, Some("main"))),
            None
        );
        assert_eq!(
            not_counted(
                Some(&source),
                CiKind::Github,
                &news(release, Some("v1.4.0"))
            ),
            None
        );
        let by_name = github(Some("release.yml"), None);
        assert_eq!(
            not_counted(Some(&by_name), CiKind::Github, &news(release, Some("x"))),
            None
        );
    }

    #[test]
    fn other_workflows_branches_and_kinds_are_noted() {
        let source = github(Some(".github/workflows/release.yml"), Some("main"));
        let other = news(Some(".github/workflows/test.yml"), Some("main"));
        let note = not_counted(Some(&source), CiKind::Github, &other).unwrap();
        assert!(
            note.contains("test.yml") && note.contains("release.yml"),
            "{note}"
        );
        let feature = news(Some(".github/workflows/release.yml"), Some("feature"));
        let note = not_counted(Some(&source), CiKind::Github, &feature).unwrap();
        assert!(note.contains("feature") && note.contains("main"), "{note}");
        let note = not_counted(Some(&source), CiKind::Gitlab, &feature).unwrap();
        assert!(note.contains("source is github"), "{note}");
        assert!(not_counted(None, CiKind::Github, &feature).is_some());
    }
}
