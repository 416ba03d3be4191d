//! News of native CI runs, from their webhooks or from asking their APIs: a run
//! conjunction triggered moves its build on; a run of the release the project's source
//! names, on its branch or a version tag, is a root report; anything else is noted and
//! changes nothing.
//!
//! A run is tied to its build by the run id the CI answered the trigger with, or
//! else by the build key (`<build>/<attempt>`) the run carries in a field of its own
//! (a run title, a pipeline variable, meta-data, a job parameter).

use std::time::Duration;

use conjunction_protocol::ci::{parse_build_key, version_from_ref};
use conjunction_protocol::{
    BuildId, Candidate, CiKind, Node, ProjectId, Report, ReportAck, Run, SourceSpec, TriggerSpec,
};

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
    let found = match find_build(work, &news, project.trigger.as_ref())? {
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
    if let Some(note) = not_counted(source, project.trigger.as_ref(), news.ci, run) {
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
    trigger: Option<&TriggerSpec>,
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
            Some(Some((build, attempt))) => {
                // A title is written by whoever runs a workflow: one of another
                // repository that shares an organisation webhook cannot claim a build.
                if let Some(place) = crate::ci::foreign_claim(news.ci, trigger, &run.source) {
                    return Ok(Err(format!(
                        "the run names conjunction build {build}, but it is in {}, not in \
                         {place}, where {}'s trigger starts its runs; nothing changed",
                        run.source, news.project
                    )));
                }
                RunRecord {
                    build,
                    attempt,
                    ci_attempt: None,
                }
            }
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
    let mut report = Report {
        project: news.project,
        build: Some(node.id),
        attempt: Some(record.attempt),
        state,
        version: None,
        commit: news.run.commit,
        git_ref: news.run.git_ref,
        environment: None,
        candidate: None,
        url: news.run.url,
        summary: news.run.summary,
        metadata: Default::default(),
        manifests: Vec::new(),
    };
    // Job and test names come from the CI as its users wrote them.
    report.clean();
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

/// Why a run is not one of the project's own root reports, or `None` when it is: a
/// run is a root report only when the source names the release it is (its
/// repository and workflow, project, pipeline or job), on the branch the source names
/// or on a version tag, and it releases rather than tests a change.
fn not_counted(
    source: Option<&SourceSpec>,
    trigger: Option<&TriggerSpec>,
    ci: CiKind,
    run: &RunNews,
) -> Option<String> {
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
    let described = || {
        let mut d = format!("a run in {}", run.source);
        if let Some(w) = &run.workflow {
            d.push_str(&format!(" of {w}"));
        }
        if let Some(r) = &run.git_ref {
            d.push_str(&format!(" on {r}"));
        }
        d
    };
    if !source.names_release(trigger) {
        let needs = crate::ci::release_fields(ci);
        return Some(format!(
            "{} that conjunction did not trigger; the source names no release (its {needs}), \
             so its webhook only updates builds conjunction triggered; nothing changed",
            described()
        ));
    }
    let release = source.release(trigger);
    if let Some(wanted) = release.place {
        if !crate::ci::same_place(ci, &run.source, wanted) {
            return Some(format!(
                "{} that conjunction did not trigger, and not in {wanted}, whose runs the \
                 source counts; nothing changed",
                described()
            ));
        }
    }
    if let Some(wanted) = release.workflow {
        let matches = run
            .workflow
            .as_deref()
            .is_some_and(|w| crate::ci::same_workflow(ci, w, wanted));
        if !matches {
            return Some(format!(
                "{} that conjunction did not trigger, and not of {wanted}, which the source \
                 counts; nothing changed",
                described()
            ));
        }
    }
    if let Some(change) = &run.candidate {
        let takes = source.candidates();
        let what = &change.what;
        if !takes.enabled {
            return Some(format!(
                "{}: {what}, which tests a change and is never a release (the source takes \
                 such runs as candidates with `candidates = true`); nothing changed",
                described()
            ));
        }
        if let (Some(fork), false) = (&change.fork, takes.from_forks) {
            return Some(format!(
                "{}: {what}, whose code comes from {fork}; a fork's change is a candidate only \
                 when the source says `candidates_from_forks = true`; nothing changed",
                described()
            ));
        }
        // A candidate is on its own branch, whichever it is.
        return None;
    }
    let on_ref = run.git_ref.as_deref();
    let version_tag =
        on_ref.is_some_and(|r| run.tag != Some(false) && version_from_ref(r).is_some());
    let on_branch = match (on_ref, release.branch) {
        (Some(r), Some(wanted)) => branch_name(r) == branch_name(wanted),
        _ => false,
    };
    if !(version_tag || on_branch) {
        let counted = match release.branch {
            Some(wanted) => format!("not on {wanted} or a version tag, which the source counts"),
            None => {
                "not on a version tag, which is all the source counts without a branch".to_owned()
            }
        };
        return Some(format!(
            "{} that conjunction did not trigger, and {counted}; nothing changed",
            described()
        ));
    }
    None
}

/// A branch without the `refs/heads/` of its full name.
fn branch_name(r: &str) -> &str {
    r.strip_prefix("refs/heads/").unwrap_or(r)
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
    report.candidate = news.run.candidate.as_ref().map(|change| {
        let id = change.change(news.run.git_ref.as_deref());
        Candidate::new(id, change.base.clone())
    });
    // A candidate's branch names no version of the project.
    if report.candidate.is_none() {
        report.version = news.run.git_ref.as_deref().and_then(version_from_ref);
    }
    report.commit = news.run.commit;
    report.git_ref = news.run.git_ref;
    report.url = news.run.url;
    report.summary = news.run.summary;
    report.clean();
    let principal = Principal::Project {
        project: news.project.clone(),
    };
    let mut amend = |n: &mut Node| n.run = Some(run.clone());
    let version = report.version.clone().unwrap_or_default();
    let ack = match reports::root_report(work, report, principal, &mut amend)? {
        Ok(ack) => ack,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let by = conjunction_protocol::audit::Actor::CiRun {
        ci: news.ci,
        project: news.project.clone(),
    };
    work.tx.audit(
        work.now,
        &by,
        conjunction_protocol::audit::Action::RootReported,
        Some(&news.project),
        version,
    )?;
    work.record_mut(ack.root)?.reported_by = Some(by);
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

    fn news(source: &str, workflow: Option<&str>, git_ref: Option<&str>) -> RunNews {
        RunNews {
            source: source.into(),
            run_id: Some("1".into()),
            workflow: workflow.map(str::to_owned),
            attempt: Some(1),
            number: None,
            state: RunState::Finished(ReportState::Passed),
            commit: None,
            git_ref: git_ref.map(str::to_owned),
            tag: None,
            candidate: None,
            url: None,
            title: None,
            conjunction_build: None,
            summary: None,
            semantic_key: String::new(),
        }
    }

    fn github(repo: Option<&str>, workflow: Option<&str>, branch: Option<&str>) -> SourceSpec {
        SourceSpec::Github {
            secret: "s".into(),
            repo: repo.map(str::to_owned),
            workflow: workflow.map(str::to_owned),
            branch: branch.map(str::to_owned),
            candidates: false,
            candidates_from_forks: false,
        }
    }

    const RELEASE: Option<&str> = Some(".github/workflows/release.yml");

    fn counted(source: &SourceSpec, ci: CiKind, run: &RunNews) -> Result<(), String> {
        match not_counted(Some(source), None, ci, run) {
            None => Ok(()),
            Some(note) => Err(note),
        }
    }

    #[test]
    fn the_named_workflow_of_the_named_repository_on_its_branch_or_a_version_tag_counts() {
        let source = github(Some("acme/lib"), RELEASE, Some("main"));
        let gh = CiKind::Github;
        counted(&source, gh, &news("acme/lib", RELEASE, Some("main"))).unwrap();
        counted(&source, gh, &news("acme/lib", RELEASE, Some("v1.4.0"))).unwrap();
        // GitHub's names are case-insensitive; a workflow may be named by file name.
        counted(&source, gh, &news("Acme/Lib", RELEASE, Some("main"))).unwrap();
        let by_name = github(Some("acme/lib"), Some("release.yml"), Some("main"));
        counted(&by_name, gh, &news("acme/lib", RELEASE, Some("main"))).unwrap();
    }

    #[test]
    fn without_a_branch_only_version_tags_count() {
        let source = github(Some("acme/lib"), RELEASE, None);
        let gh = CiKind::Github;
        counted(&source, gh, &news("acme/lib", RELEASE, Some("v2.0.0"))).unwrap();
        let note = counted(&source, gh, &news("acme/lib", RELEASE, Some("fix-1"))).unwrap_err();
        assert!(
            note.contains("fix-1") && note.contains("version tag"),
            "{note}"
        );
    }

    #[test]
    fn a_source_that_names_no_release_never_starts_a_cascade() {
        let run = news("acme/lib", RELEASE, Some("v1.0.0"));
        for (source, ci) in [
            (github(Some("acme/lib"), None, None), CiKind::Github),
            (github(None, RELEASE, Some("main")), CiKind::Github),
            (
                SourceSpec::Gitlab {
                    token: "t".into(),
                    signing_token: None,
                    project: None,
                    git_ref: Some("main".into()),
                    candidates: false,
                    candidates_from_forks: false,
                },
                CiKind::Gitlab,
            ),
            (
                SourceSpec::Buildkite {
                    token: "t".into(),
                    allow_plain_token: false,
                    pipeline: None,
                    branch: Some("main".into()),
                    candidates: false,
                    candidates_from_forks: false,
                },
                CiKind::Buildkite,
            ),
            (
                SourceSpec::Jenkins {
                    secret: "t".into(),
                    job: None,
                    branch: None,
                },
                CiKind::Jenkins,
            ),
        ] {
            let note = counted(&source, ci, &run).unwrap_err();
            assert!(
                note.contains("only updates builds conjunction triggered"),
                "{ci}: {note}"
            );
        }
    }

    #[test]
    fn a_github_source_without_a_repo_is_about_the_repository_its_trigger_dispatches_to() {
        let source = github(None, RELEASE, Some("main"));
        let trigger = TriggerSpec::Github {
            repo: "acme/lib".into(),
            workflow: "downstream.yml".into(),
            git_ref: "main".into(),
            token: "t".into(),
            api_url: None,
        };
        let mine = news("acme/lib", RELEASE, Some("main"));
        assert_eq!(
            not_counted(Some(&source), Some(&trigger), CiKind::Github, &mine),
            None
        );
        let theirs = news("acme/other", RELEASE, Some("main"));
        assert!(not_counted(Some(&source), Some(&trigger), CiKind::Github, &theirs).is_some());
    }

    #[test]
    fn forks_pull_requests_and_other_repositories_are_never_roots() {
        let source = github(Some("acme/lib"), RELEASE, Some("main"));
        let gh = CiKind::Github;
        let mut fork = news("acme/lib", RELEASE, Some("main"));
        fork.candidate = Some(crate::ci::ChangeNews {
            number: None,
            base: None,
            fork: Some("evil/lib".into()),
            what: "a run of a commit from the fork evil/lib".into(),
        });
        let note = counted(&source, gh, &fork).unwrap_err();
        assert!(
            note.contains("evil/lib") && note.contains("never a release"),
            "{note}"
        );
        // A source that takes candidates still refuses a fork's, unless it says so.
        let takes = |forks: bool| SourceSpec::Github {
            secret: "s".into(),
            repo: Some("acme/lib".into()),
            workflow: RELEASE.map(str::to_owned),
            branch: Some("main".into()),
            candidates: true,
            candidates_from_forks: forks,
        };
        let note = counted(&takes(false), gh, &fork).unwrap_err();
        assert!(note.contains("candidates_from_forks"), "{note}");
        counted(&takes(true), gh, &fork).unwrap();
        // The project's own pull request, on its own branch, is a candidate.
        let mut own = news("acme/lib", RELEASE, Some("topic"));
        own.candidate = Some(crate::ci::ChangeNews {
            number: Some("12".into()),
            base: None,
            fork: None,
            what: "a run of pull request #12".into(),
        });
        counted(&takes(false), gh, &own).unwrap();
        // Of the release workflow only.
        own.workflow = Some(".github/workflows/lint.yml".into());
        assert!(counted(&takes(false), gh, &own).is_err());
        // An organisation webhook pointed at acme/lib's URL sends acme/other's runs.
        let note = counted(&source, gh, &news("acme/other", RELEASE, Some("v1.0.0"))).unwrap_err();
        assert!(
            note.contains("acme/other") && note.contains("not in acme/lib"),
            "{note}"
        );
    }

    #[test]
    fn other_workflows_branches_and_kinds_are_noted() {
        let source = github(Some("acme/lib"), RELEASE, Some("main"));
        let other = news("acme/lib", Some(".github/workflows/test.yml"), Some("main"));
        let note = counted(&source, CiKind::Github, &other).unwrap_err();
        assert!(
            note.contains("test.yml") && note.contains("release.yml"),
            "{note}"
        );
        let feature = news("acme/lib", RELEASE, Some("feature"));
        let note = counted(&source, CiKind::Github, &feature).unwrap_err();
        assert!(note.contains("feature") && note.contains("main"), "{note}");
        let note = counted(&source, CiKind::Gitlab, &feature).unwrap_err();
        assert!(note.contains("source is github"), "{note}");
        assert!(not_counted(None, None, CiKind::Github, &feature).is_some());
    }

    #[test]
    fn gitlab_buildkite_and_jenkins_name_their_release_by_project_pipeline_and_full_job_name() {
        let gitlab = SourceSpec::Gitlab {
            token: "t".into(),
            signing_token: None,
            project: Some("acme/sub/lib".into()),
            git_ref: Some("main".into()),
            candidates: false,
            candidates_from_forks: false,
        };
        counted(
            &gitlab,
            CiKind::Gitlab,
            &news("acme/sub/lib", None, Some("main")),
        )
        .unwrap();
        assert!(counted(
            &gitlab,
            CiKind::Gitlab,
            &news("acme/other", None, Some("main"))
        )
        .is_err());
        // GitLab says whether a ref is a tag: a branch named like a version is not one.
        let mut branch = news("acme/sub/lib", None, Some("v9.9.9"));
        branch.tag = Some(false);
        assert!(counted(&gitlab, CiKind::Gitlab, &branch).is_err());
        branch.tag = Some(true);
        counted(&gitlab, CiKind::Gitlab, &branch).unwrap();

        let buildkite = |pipeline: &str| SourceSpec::Buildkite {
            token: "t".into(),
            allow_plain_token: false,
            pipeline: Some(pipeline.into()),
            branch: Some("main".into()),
            candidates: false,
            candidates_from_forks: false,
        };
        let run = news("acme/lib", None, Some("main"));
        counted(&buildkite("lib"), CiKind::Buildkite, &run).unwrap();
        counted(&buildkite("acme/lib"), CiKind::Buildkite, &run).unwrap();
        assert!(counted(&buildkite("other/lib"), CiKind::Buildkite, &run).is_err());
        assert!(counted(&buildkite("app"), CiKind::Buildkite, &run).is_err());

        let jenkins = SourceSpec::Jenkins {
            secret: "t".into(),
            job: Some("team/lib".into()),
            branch: Some("main".into()),
        };
        let run = |job: &str| news(job, Some(job), Some("main"));
        counted(&jenkins, CiKind::Jenkins, &run("team/lib")).unwrap();
        let note = counted(&jenkins, CiKind::Jenkins, &run("other/lib")).unwrap_err();
        assert!(
            note.contains("other/lib") && note.contains("team/lib"),
            "{note}"
        );
    }
}
