//! The daemon's numbers for Prometheus, kept in a registry of its own (no global
//! state, so several daemons in one test process keep theirs apart) and served at
//! `GET /metrics` in the OpenMetrics text format.
//!
//! Counters and histograms move where things happen (the API, the writer, the two
//! outboxes, the feed); what is a size (the event log, the database file, cascades in
//! progress, feed clients) is read when the metrics are scraped.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use conjunction_protocol::Timestamp;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use serde::Deserialize;

/// `GET /metrics` (`[metrics]` in the config file): off unless enabled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve `/metrics` to operator tokens (and to `token_file`'s token).
    pub enabled: bool,
    /// A file holding a token that may read `/metrics` and nothing else, for a
    /// scraper. Setting it enables `/metrics`.
    pub token_file: Option<std::path::PathBuf>,
    /// The token read from `token_file` at start.
    #[serde(skip)]
    pub token: Option<String>,
}

impl MetricsConfig {
    pub fn is_on(&self) -> bool {
        self.enabled || self.token_file.is_some() || self.token.is_some()
    }

    /// Reads `token_file`, once, at start.
    pub fn load_files(&mut self) -> Result<(), String> {
        if let Some(path) = &self.token_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read [metrics] token_file {}: {e}", path.display()))?;
            let token = text.trim();
            if token.len() < 16 {
                return Err(format!(
                    "[metrics] token_file {} holds {} characters; a token needs at least 16",
                    path.display(),
                    token.len()
                ));
            }
            self.token = Some(token.to_owned());
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReportLabel {
    /// How the report came: `api` (`POST /v1/reports`) or `webhook` (a CI's own).
    pub via: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabel {
    /// The trigger's kind (`webhook`, `github`, …) or the notice's channel (`slack`, …).
    pub kind: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutboxLabel {
    pub outbox: String,
}

pub struct Metrics {
    registry: Registry,
    /// Reports taken, by how they came and the state they report.
    pub reports: Family<ReportLabel, Counter>,
    /// Requests refused, by the error code they were answered with.
    pub refusals: Family<CodeLabel, Counter>,
    /// Commands per write transaction.
    pub batch_size: Histogram,
    /// The whole of a batch: applying its commands and committing.
    pub batch_seconds: Histogram,
    /// The commit alone, which is the fsync for all but the smallest batches.
    pub fsync_seconds: Histogram,
    /// Tries to deliver a trigger, by the trigger's kind and what came of it.
    pub deliveries: Family<DeliveryLabel, Counter>,
    /// Tries to send a notice, by channel and what came of it.
    pub notices: Family<DeliveryLabel, Counter>,
    /// Tries to tell a forge, by forge and what came of it.
    pub forge_reports: Family<DeliveryLabel, Counter>,
    /// Tries that will be tried again, per outbox.
    pub retries: Family<OutboxLabel, Counter>,
    /// Entries waiting in each outbox (queued or being tried), and the age of the oldest,
    /// computed when scraped from what [`Metrics::outbox`] last heard.
    pub outbox_depth: Family<OutboxLabel, Gauge>,
    pub outbox_oldest_seconds: Family<OutboxLabel, Gauge<f64, AtomicU64>>,
    /// Per outbox: its depth and when its oldest entry came, as its loop last saw them.
    outboxes: Mutex<BTreeMap<&'static str, (usize, Option<Timestamp>)>>,
    /// Feed clients dropped because they could not keep up.
    pub feed_drops: Counter,
    /// Read at each scrape.
    pub feed_clients: Gauge,
    pub event_log_events: Gauge,
    pub database_bytes: Gauge,
    pub cascades_in_progress: Gauge,
    pub projects: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("conjunction");
        let m = Metrics {
            reports: Family::default(),
            refusals: Family::default(),
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            batch_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            fsync_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            deliveries: Family::default(),
            notices: Family::default(),
            forge_reports: Family::default(),
            retries: Family::default(),
            outbox_depth: Family::default(),
            outbox_oldest_seconds: Family::default(),
            outboxes: Mutex::default(),
            feed_drops: Counter::default(),
            feed_clients: Gauge::default(),
            event_log_events: Gauge::default(),
            database_bytes: Gauge::default(),
            cascades_in_progress: Gauge::default(),
            projects: Gauge::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "reports_received",
            "Reports taken, by how they came (api or a CI's webhook) and the state they report",
            m.reports.clone(),
        );
        r.register(
            "refusals",
            "Requests refused, by error code",
            m.refusals.clone(),
        );
        r.register(
            "commit_batch_size",
            "Commands per write transaction",
            m.batch_size.clone(),
        );
        r.register(
            "commit_batch_seconds",
            "Time to apply and commit one batch",
            m.batch_seconds.clone(),
        );
        r.register(
            "commit_fsync_seconds",
            "Time of the commit (the fsync) of one batch",
            m.fsync_seconds.clone(),
        );
        r.register(
            "deliveries",
            "Trigger delivery tries, by trigger kind and outcome",
            m.deliveries.clone(),
        );
        r.register(
            "notices",
            "Notice sending tries, by channel and outcome",
            m.notices.clone(),
        );
        r.register(
            "forge_reports",
            "Tries to tell an upstream's forge, by forge and outcome",
            m.forge_reports.clone(),
        );
        r.register(
            "retries",
            "Tries to be tried again, per outbox",
            m.retries.clone(),
        );
        r.register(
            "outbox_depth",
            "Entries waiting in the outbox",
            m.outbox_depth.clone(),
        );
        r.register(
            "outbox_oldest_seconds",
            "Age of the oldest entry waiting in the outbox",
            m.outbox_oldest_seconds.clone(),
        );
        r.register(
            "feed_drops",
            "Live feed clients dropped for not keeping up",
            m.feed_drops.clone(),
        );
        r.register(
            "feed_clients",
            "Live feed clients connected",
            m.feed_clients.clone(),
        );
        r.register(
            "event_log_events",
            "Events kept in the event log",
            m.event_log_events.clone(),
        );
        r.register(
            "database_bytes",
            "Size of the database file",
            m.database_bytes.clone(),
        );
        r.register(
            "cascades_in_progress",
            "Root events whose cascade has started and not finished",
            m.cascades_in_progress.clone(),
        );
        r.register("projects", "Projects registered", m.projects.clone());
        Metrics { registry, ..m }
    }

    /// Counts a report that came `via` (`api` or `webhook`) saying `state`.
    pub fn report(&self, via: &str, state: &str) {
        self.reports
            .get_or_create(&ReportLabel {
                via: via.to_owned(),
                state: state.to_owned(),
            })
            .inc();
    }

    pub fn refusal(&self, code: &str) {
        self.refusals
            .get_or_create(&CodeLabel {
                code: code.to_owned(),
            })
            .inc();
    }

    pub fn delivery(&self, kind: &str, outcome: &str) {
        self.deliveries
            .get_or_create(&DeliveryLabel {
                kind: kind.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn notice(&self, channel: &str, outcome: &str) {
        self.notices
            .get_or_create(&DeliveryLabel {
                kind: channel.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn forge(&self, forge: &str, outcome: &str) {
        self.forge_reports
            .get_or_create(&DeliveryLabel {
                kind: forge.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn retry(&self, outbox: &str) {
        self.retries
            .get_or_create(&OutboxLabel {
                outbox: outbox.to_owned(),
            })
            .inc();
    }

    /// How many entries wait in `outbox`, and when the oldest of them came. The age
    /// is reckoned at each scrape, so it grows while the outbox's loop sleeps.
    pub fn outbox(&self, outbox: &'static str, depth: usize, oldest: Option<Timestamp>) {
        if let Ok(mut outboxes) = self.outboxes.lock() {
            outboxes.insert(outbox, (depth, oldest));
        }
    }

    /// The OpenMetrics text of every metric, the outboxes' ages as of `now`.
    pub fn encode_at(&self, now: Timestamp) -> String {
        let outboxes = self.outboxes.lock().map(|o| o.clone()).unwrap_or_default();
        for (outbox, (depth, oldest)) in outboxes {
            let label = OutboxLabel {
                outbox: outbox.to_owned(),
            };
            self.outbox_depth.get_or_create(&label).set(depth as i64);
            let age = oldest.map_or(0.0, |t| now.since(t).as_secs_f64());
            self.outbox_oldest_seconds.get_or_create(&label).set(age);
        }
        self.encode()
    }

    /// The OpenMetrics text of every metric as it stands.
    fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String does not fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outboxs_oldest_age_is_reckoned_when_scraped() {
        let m = Metrics::new();
        m.outbox("triggers", 2, Some(Timestamp(1_000)));
        m.outbox("notices", 0, None);
        let text = m.encode_at(Timestamp(61_000));
        assert!(
            text.contains("conjunction_outbox_oldest_seconds{outbox=\"triggers\"} 60.0"),
            "{text}"
        );
        assert!(
            text.contains("conjunction_outbox_depth{outbox=\"triggers\"} 2"),
            "{text}"
        );
        // No loop woke in between: a later scrape sees an older entry.
        let later = m.encode_at(Timestamp(961_000));
        assert!(
            later.contains("conjunction_outbox_oldest_seconds{outbox=\"triggers\"} 960.0"),
            "{later}"
        );
        assert!(
            later.contains("conjunction_outbox_oldest_seconds{outbox=\"notices\"} 0.0"),
            "{later}"
        );
    }
}
