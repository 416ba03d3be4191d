//! Which runs are the release a source names, by each CI's own naming rules: where
//! a run is (a repository, a project path, a pipeline, a job), which workflow it is,
//! and what a source must name for its runs to start cascades.

use conjunction_protocol::{CiKind, TriggerSpec};

/// What a source of `ci` names to say which runs are its releases, for messages.
pub fn release_fields(ci: CiKind) -> &'static str {
    match ci {
        CiKind::Github => "repo and workflow",
        CiKind::Gitlab => "project",
        CiKind::Buildkite => "pipeline",
        CiKind::Jenkins => "job",
    }
}

/// Where a run that claims one of a project's builds by its title should be and is
/// not: a GitHub run's title is written by whoever runs the workflow, so one of
/// another repository sharing an organisation webhook cannot claim a build that the
/// project's trigger starts in its own repository.
pub fn foreign_claim<'t>(
    ci: CiKind,
    trigger: Option<&'t TriggerSpec>,
    run_place: &str,
) -> Option<&'t str> {
    match (ci, trigger) {
        (CiKind::Github, Some(TriggerSpec::Github { repo, .. }))
            if !run_place.eq_ignore_ascii_case(repo) =>
        {
            Some(repo)
        }
        _ => None,
    }
}

/// Whether a run in `run` (a repository, project path or `org/pipeline`) is in the
/// place a source names. GitHub and GitLab names are case-insensitive; a Buildkite
/// pipeline may be named by its slug alone.
pub fn same_place(ci: CiKind, run: &str, wanted: &str) -> bool {
    match ci {
        CiKind::Buildkite if !wanted.contains('/') => {
            run.rsplit('/').next().is_some_and(|slug| slug == wanted)
        }
        CiKind::Buildkite | CiKind::Jenkins => run == wanted,
        CiKind::Github | CiKind::Gitlab => run.eq_ignore_ascii_case(wanted),
    }
}

/// A GitHub workflow named by its path or its file name
/// (`.github/workflows/release.yml`, `release.yml`); a Jenkins job by its full name.
pub fn same_workflow(ci: CiKind, run: &str, wanted: &str) -> bool {
    match ci {
        CiKind::Github => {
            let last = |s: &str| s.rsplit('/').next().unwrap_or(s).to_owned();
            run == wanted || last(run) == last(wanted)
        }
        _ => run == wanted,
    }
}
