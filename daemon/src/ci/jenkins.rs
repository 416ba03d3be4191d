//! Jenkins: the Notification plugin's JSON, posted for each phase of a build. Jenkins
//! signs nothing; the endpoint is protected by a secret the operator puts into the
//! notification URL, checked with [`super::verify_clear_token`].

use conjunction_protocol::ReportState;
use serde::Deserialize;

use super::{HookError, RunNews, RunState, BUILD_VARIABLE};

#[derive(Deserialize)]
struct Scm {
    branch: Option<String>,
    commit: Option<String>,
}

#[derive(Deserialize)]
struct Build {
    full_url: Option<String>,
    number: u64,
    queue_id: Option<u64>,
    phase: String,
    status: Option<String>,
    scm: Option<Scm>,
    #[serde(default)]
    parameters: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct Notification {
    name: String,
    build: Build,
}

/// Reads a notification. The run id is the queue id when the plugin sends it (what
/// the trigger learns from `buildWithParameters`), else the build's URL.
pub fn parse(body: &[u8]) -> Result<RunNews, HookError> {
    let n: Notification = serde_json::from_slice(body).map_err(|e| HookError::Unreadable {
        ci: "Jenkins",
        reason: e.to_string(),
    })?;
    let build = n.build;
    let (branch, commit) = match build.scm {
        Some(scm) => (scm.branch, scm.commit),
        None => (None, None),
    };
    let run_id = match (build.queue_id, &build.full_url) {
        (Some(q), _) => Some(q.to_string()),
        (None, Some(url)) => Some(url.clone()),
        (None, None) => None,
    };
    Ok(RunNews {
        source: n.name,
        run_id,
        workflow: None,
        attempt: None,
        state: state(&build.phase, build.status.as_deref()),
        commit,
        git_ref: branch,
        url: build.full_url,
        title: Some(format!("#{}", build.number)),
        conjunction_build: build
            .parameters
            .as_ref()
            .and_then(|p| p.get(BUILD_VARIABLE))
            .and_then(|v| v.as_str())
            .map(str::to_owned),
    })
}

/// A build's phase and result as conjunction sees them (reference §4.2). The result is
/// known from COMPLETED on; FINALIZED repeats it once post-build steps are done.
fn state(phase: &str, status: Option<&str>) -> RunState {
    match (phase, status) {
        ("QUEUED" | "STARTED", _) | (_, None) => RunState::Running,
        (_, Some("SUCCESS")) => RunState::Finished(ReportState::Passed),
        // Tests failed but the build ran.
        (_, Some("UNSTABLE" | "FAILURE")) => RunState::Finished(ReportState::Failed),
        (_, Some("ABORTED" | "NOT_BUILT")) => RunState::Finished(ReportState::Cancelled),
        _ => RunState::Ignored("a build result conjunction does not know"),
    }
}
