//! Retention: what is kept and for how long, and the worker that prunes the rest a
//! small step at a time.

use serde::Deserialize;

use crate::shutdown::Shutdown;
use crate::writer::{self, Clock};

/// What is kept, and for how long (`[retention]` in the config file).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Prune at all. With it off, everything is kept forever.
    pub enabled: bool,
    /// Finished root events (with their builds) and events of the log are kept this
    /// many days (a fraction, such as 0.5, keeps hours).
    #[serde(deserialize_with = "positive_days")]
    pub keep_days: f64,
    /// The last this many root events of every upstream are kept however old, so
    /// verdicts and badges always have something to compare with.
    #[serde(deserialize_with = "at_least_one_usize")]
    pub keep_per_upstream: usize,
    /// How often retention looks for what to prune, in milliseconds.
    #[serde(deserialize_with = "at_least_one")]
    pub interval_ms: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            keep_days: 90.0,
            keep_per_upstream: 20,
            interval_ms: 10 * 60 * 1000,
        }
    }
}

fn positive_days<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let days = f64::deserialize(d)?;
    if !(days.is_finite() && days > 0.0) {
        return Err(serde::de::Error::custom("must be a number of days above 0"));
    }
    Ok(days)
}

impl RetentionConfig {
    /// How long finished root events and the log are kept.
    pub fn keep(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.keep_days * 24.0 * 3600.0)
    }
}

fn at_least_one<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = u64::deserialize(d)?;
    if n == 0 {
        return Err(serde::de::Error::custom("must be at least 1"));
    }
    Ok(n)
}

fn at_least_one_usize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    at_least_one(d).map(|n| n as usize)
}

/// Prunes what retention no longer keeps, every `interval_ms`, a small step at a time
/// so that reports share the writer with it, and says in the log what went.
pub async fn retain(
    writer: writer::WriterHandle,
    config: RetentionConfig,
    clock: Clock,
    mut stop: Shutdown,
) {
    let interval = std::time::Duration::from_millis(config.interval_ms);
    let keep = config.keep();
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = stop.requested() => return,
        }
        let now = clock.now();
        let cutoff = conjunction_protocol::Timestamp(now.0.saturating_sub(keep.as_millis() as u64));
        let mut total = writer::Pruned::default();
        let mut cursor = None;
        loop {
            if stop.is_requested() {
                return;
            }
            match writer.prune(cutoff, config.keep_per_upstream, cursor).await {
                Ok(step) => {
                    total.roots += step.roots;
                    total.builds += step.builds;
                    total.events += step.events;
                    total.lines += step.lines;
                    cursor = step.cursor;
                    if !step.more {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "retention stopped for now; it tries again later");
                    break;
                }
            }
            tokio::task::yield_now().await;
        }
        if total.roots + total.events + total.lines > 0 {
            tracing::info!(
                root_events = total.roots,
                builds = total.builds,
                log_events = total.events,
                release_lines = total.lines,
                older_than = %cutoff,
                keep_days = config.keep_days,
                keep_per_upstream = config.keep_per_upstream,
                "pruned what retention no longer keeps"
            );
        }
    }
}
