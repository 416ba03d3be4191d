//! Finding out what webhooks did not say.
//!
//! GitHub never retries a webhook, and GitLab and Buildkite give up after a while: a
//! build of a native CI that is still `triggered` or `running` after its project's
//! quiet time (30 minutes by default) is looked up through its CI's API, and what the
//! CI says goes through the writer like a webhook would, marked as learnt that way.
//!
//! Jenkins says only which queue item a trigger made; the item is followed here until
//! it is a build, so that the build's number and page are known while it runs.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use conjunction_protocol::ci::build_key;
use conjunction_protocol::project::RECONCILE_AFTER_DEFAULT_SECS;
use conjunction_protocol::{BuildId, CiKind, ProjectId, ReportState, TriggerSpec};
use tokio::sync::mpsc;

use crate::ci::jenkins::Queued;
use crate::ci::{RunNews, RunState};
use crate::store::{Store, StoredProject, Watched};
use crate::writer::{News, Via, WriterHandle};

/// How often the reconciler looks for quiet builds (`[reconcile]` in the config file).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconcileConfig {
    /// How often to look for builds that have been quiet too long, in milliseconds.
    pub interval_ms: u64,
    /// How often to ask Jenkins about a queue item it has not started yet, in
    /// milliseconds.
    pub queue_poll_ms: u64,
    /// How long to follow a Jenkins queue item before leaving it to the job's
    /// notification and the quiet-build check, in seconds.
    pub queue_follow_secs: u64,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        Self {
            interval_ms: 60_000,
            queue_poll_ms: 2_000,
            queue_follow_secs: 600,
        }
    }
}

/// A Jenkins queue item to follow until it is a build.
pub struct Follow {
    pub build: BuildId,
    pub attempt: u32,
    pub project: ProjectId,
    pub trigger: TriggerSpec,
    pub queue_item: String,
}

/// Where the dispatcher hands queue items to follow.
#[derive(Clone)]
pub struct Follows(mpsc::UnboundedSender<Follow>);

impl Follows {
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<Follow>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self(tx), rx)
    }

    pub fn send(&self, follow: Follow) {
        // Gone only during shutdown; the quiet-build check finds the build later.
        let _ = self.0.send(follow);
    }
}

pub struct Reconciler {
    pub store: Store,
    pub writer: WriterHandle,
    pub client: reqwest::Client,
    pub config: ReconcileConfig,
    /// How long one call to a CI may take.
    pub timeout: Duration,
}

/// A queue item being followed, and when to stop.
struct Following {
    follow: Follow,
    until: SystemTime,
}

impl Reconciler {
    pub async fn run(
        self,
        mut follows: mpsc::UnboundedReceiver<Follow>,
        mut stop: crate::shutdown::Shutdown,
    ) {
        let mut checked: HashMap<BuildId, SystemTime> = HashMap::new();
        let mut following: Vec<Following> = Vec::new();
        let interval = Duration::from_millis(self.config.interval_ms.max(10));
        let poll = Duration::from_millis(self.config.queue_poll_ms.max(10));
        let mut next_sweep = tokio::time::Instant::now() + interval;
        loop {
            let wake = if following.is_empty() {
                next_sweep
            } else {
                next_sweep.min(tokio::time::Instant::now() + poll)
            };
            tokio::select! {
                () = tokio::time::sleep_until(wake) => {}
                Some(f) = follows.recv() => {
                    let until = SystemTime::now() + Duration::from_secs(self.config.queue_follow_secs);
                    following.push(Following { follow: f, until });
                    continue;
                }
                () = stop.requested() => return,
            }
            if !following.is_empty() {
                following = self.follow_queue(following).await;
            }
            if tokio::time::Instant::now() >= next_sweep {
                self.sweep(&mut checked).await;
                next_sweep = tokio::time::Instant::now() + interval;
            }
        }
    }

    /// Asks Jenkins about each followed queue item once; returns those still waiting.
    async fn follow_queue(&self, following: Vec<Following>) -> Vec<Following> {
        let mut still = Vec::new();
        for f in following {
            let Follow {
                build,
                attempt,
                trigger,
                queue_item,
                project,
            } = &f.follow;
            let asked =
                crate::ci::jenkins_queue(&self.client, self.timeout, trigger, queue_item).await;
            let (state, number, url) = match asked {
                Ok(Queued::Waiting) if SystemTime::now() < f.until => {
                    still.push(f);
                    continue;
                }
                Ok(Queued::Started { number, url }) => (RunState::Running, Some(number), Some(url)),
                Ok(Queued::Cancelled) => (RunState::Finished(ReportState::Cancelled), None, None),
                Ok(Queued::Waiting | Queued::Gone) => continue,
                Err(error) if SystemTime::now() < f.until => {
                    tracing::debug!(%project, %error, "cannot ask Jenkins about a queue item yet");
                    still.push(f);
                    continue;
                }
                Err(error) => {
                    tracing::info!(%project, %error, "stopped following a Jenkins queue item");
                    continue;
                }
            };
            let TriggerSpec::Jenkins { job, .. } = trigger else {
                continue;
            };
            let news = crate::ci::jenkins::queued_news(job, queue_item, state, number, url);
            self.tell(
                project,
                CiKind::Jenkins,
                news,
                Via::Queue {
                    build: *build,
                    attempt: *attempt,
                },
            )
            .await;
        }
        still
    }

    /// Looks up every build that has been quiet for its project's time.
    async fn sweep(&self, checked: &mut HashMap<BuildId, SystemTime>) {
        let watched = match self.store.quick(|st| st.watched()).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the builds to reconcile");
                return;
            }
        };
        let now = SystemTime::now();
        let live: HashSet<BuildId> = watched.iter().map(|w| w.build).collect();
        checked.retain(|build, _| live.contains(build));
        // Many quiet builds share a project: each project is read once per sweep.
        let mut projects = HashMap::new();
        for w in watched {
            if let Err(why) = self.reconcile(&w, now, checked, &mut projects).await {
                tracing::info!(build = %w.build, project = %w.project, %why, "could not check a quiet build");
            }
        }
    }

    async fn reconcile(
        &self,
        w: &Watched,
        now: SystemTime,
        checked: &mut HashMap<BuildId, SystemTime>,
        projects: &mut HashMap<ProjectId, Option<StoredProject>>,
    ) -> Result<(), String> {
        if !projects.contains_key(&w.project) {
            let wanted = w.project.clone();
            let read = self
                .store
                .quick(move |st| st.stored_project(&wanted))
                .await
                .map_err(|e| e.to_string())?;
            projects.insert(w.project.clone(), read);
        }
        let project = projects[&w.project]
            .as_ref()
            .ok_or("the project is no longer registered")?;
        let quiet_time = Duration::from_secs(
            project
                .reconcile_after_secs
                .unwrap_or(RECONCILE_AFTER_DEFAULT_SECS),
        );
        let since = w.since.to_system_time();
        let last_check = checked.get(&w.build).copied().unwrap_or(since).max(since);
        if now.duration_since(last_check).unwrap_or_default() < quiet_time {
            return Ok(());
        }
        checked.insert(w.build, now);
        let trigger = project
            .trigger
            .as_ref()
            .ok_or("the project has no trigger any more")?;
        let build = w.build;
        let node = self
            .store
            .quick(move |st| st.node(build))
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the build is gone")?;
        let Some(run) = node.run.as_ref().filter(|_| node.attempt == w.attempt) else {
            return Ok(());
        };
        let key = build_key(node.id, node.attempt);
        let news = crate::ci::check(&self.client, self.timeout, trigger, run, &key).await?;
        let Some(news) = news else {
            tracing::info!(build = %w.build, "the CI does not show the run yet");
            return Ok(());
        };
        let quiet = now.duration_since(since).unwrap_or_default();
        tracing::info!(build = %w.build, project = %w.project, ?quiet, "checked a quiet build through its CI's API");
        self.tell(
            &w.project,
            run.ci,
            news,
            Via::Check {
                build: w.build,
                attempt: w.attempt,
                quiet,
            },
        )
        .await;
        Ok(())
    }

    async fn tell(&self, project: &ProjectId, ci: CiKind, run: RunNews, via: Via) {
        let news = News {
            project: project.clone(),
            ci,
            run,
            via,
        };
        match self.writer.news(news).await {
            Ok(heard) => tracing::debug!(%project, ?heard, "news of a run recorded"),
            Err(e) => tracing::warn!(%project, error = %e, "news of a run not recorded"),
        }
    }
}
