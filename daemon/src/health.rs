//! How the daemon stands, for `/healthz` and `/readyz`: starting, serving or stopping,
//! and whether its writer can still change anything (it has not stopped on a fault,
//! and it commits its pulse in time).

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use conjunction_protocol::Timestamp;
use serde::Deserialize;

/// Why the writer stopped before it was asked to. After a fault the writer changes
/// nothing more: redb refuses every later write after a failed commit until the file
/// is opened again, and a panic may have left the graph half-changed. So the daemon
/// stops, and its supervisor starts it again on the file as last committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    #[error("the database could not be written: {0}")]
    Storage(String),
    #[error(
        "the database writer panicked ({0}); the database file may be damaged: if this \
         repeats after a restart, restore the file from a backup"
    )]
    Panicked(String),
}

/// The text of a panic's payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// How often the writer is pulsed (and systemd's status refreshed), and how long
/// without a committed pulse makes it stalled (`[health]` in the config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// Milliseconds between two pulses of the writer. Under a systemd watchdog, a pulse
    /// comes at least three times per watchdog interval.
    pub pulse_ms: u64,
    /// Milliseconds without a committed pulse after which the writer is stalled:
    /// `/healthz` and `/readyz` answer 503.
    pub stall_ms: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            pulse_ms: 2_000,
            stall_ms: 30_000,
        }
    }
}

/// Where the daemon is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Opening the database and loading the outboxes; requests wait.
    Starting,
    Serving,
    Stopping,
}

/// How the daemon stands at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Starting,
    Serving,
    /// Serving, but the writer has committed no pulse for `since`.
    Stalled {
        since: Duration,
    },
    /// The writer stopped on a fault; the daemon is exiting.
    Failed,
    Stopping,
}

/// Where a daemon on a shared PostgreSQL store stands among the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// It holds the writer's role.
    Writes,
    /// Another daemon writes (or nobody, for the moment); this one reads and forwards.
    Follows,
    /// It has not learnt its role yet.
    Starting,
    /// The database cannot be reached.
    Unreachable(String),
}

/// Shared between the writer, which records its fault, the pulse, which records each
/// commit of it, and the API, which reports them.
#[derive(Clone)]
pub struct Health {
    fault: Arc<OnceLock<Fault>>,
    phase: Arc<AtomicU8>,
    /// When the writer last committed its pulse (or the daemon began to serve), in
    /// milliseconds since the epoch.
    pulse: Arc<AtomicU64>,
    /// On PostgreSQL: this daemon's standing among those sharing the database.
    standing: Arc<OnceLock<Box<dyn Fn() -> Standing + Send + Sync>>>,
    stall_after: Duration,
}

impl Default for Health {
    fn default() -> Self {
        Self::new(Duration::from_millis(HealthConfig::default().stall_ms))
    }
}

impl Health {
    pub fn new(stall_after: Duration) -> Self {
        Self {
            fault: Arc::default(),
            phase: Arc::new(AtomicU8::new(Phase::Starting as u8)),
            pulse: Arc::default(),
            standing: Arc::default(),
            stall_after,
        }
    }

    /// Records why the writer stopped; the first fault is the one kept.
    pub fn fail(&self, fault: &Fault) {
        let _ = self.fault.set(fault.clone());
    }

    /// Why the writer stopped, once it has.
    pub fn fault(&self) -> Option<&Fault> {
        self.fault.get()
    }

    /// The daemon serves from `now` on: its writer has until `now` plus the bound to
    /// commit a first pulse.
    pub fn serving(&self, now: Timestamp) {
        self.pulsed(now);
        self.phase.store(Phase::Serving as u8, Ordering::SeqCst);
    }

    pub fn stopping(&self) {
        self.phase.store(Phase::Stopping as u8, Ordering::SeqCst);
    }

    /// The writer committed a pulse at `at`.
    pub fn pulsed(&self, at: Timestamp) {
        self.pulse.fetch_max(at.0, Ordering::SeqCst);
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::SeqCst) {
            x if x == Phase::Serving as u8 => Phase::Serving,
            x if x == Phase::Stopping as u8 => Phase::Stopping,
            _ => Phase::Starting,
        }
    }

    /// How the daemon stands at `now`.
    pub fn condition(&self, now: Timestamp) -> Condition {
        if self.fault().is_some() {
            return Condition::Failed;
        }
        match self.phase() {
            Phase::Starting => Condition::Starting,
            Phase::Stopping => Condition::Stopping,
            Phase::Serving => {
                let since = now.since(Timestamp(self.pulse.load(Ordering::SeqCst)));
                if since > self.stall_after {
                    Condition::Stalled { since }
                } else {
                    Condition::Serving
                }
            }
        }
    }

    /// On PostgreSQL: how to learn this daemon's standing, once the store is open.
    pub fn watch_standing(&self, standing: impl Fn() -> Standing + Send + Sync + 'static) {
        let _ = self.standing.set(Box::new(standing));
    }

    /// This daemon's standing now, on PostgreSQL; none on redb.
    pub fn standing(&self) -> Option<Standing> {
        self.standing.get().map(|s| s())
    }

    /// How long without a pulse makes the writer stalled.
    pub fn stall_after(&self) -> Duration {
        self.stall_after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_without_a_pulse_for_longer_than_the_bound_is_stalled() {
        let h = Health::new(Duration::from_secs(10));
        assert_eq!(h.condition(Timestamp(0)), Condition::Starting);
        h.serving(Timestamp(1_000));
        assert_eq!(h.condition(Timestamp(11_000)), Condition::Serving);
        assert_eq!(
            h.condition(Timestamp(11_001)),
            Condition::Stalled {
                since: Duration::from_millis(10_001)
            }
        );
        h.pulsed(Timestamp(11_000));
        // A pulse that answers late does not move the last one back.
        h.pulsed(Timestamp(5_000));
        assert_eq!(h.condition(Timestamp(20_000)), Condition::Serving);
        h.stopping();
        assert_eq!(h.condition(Timestamp(20_000)), Condition::Stopping);
        h.fail(&Fault::Panicked("x".into()));
        assert_eq!(h.condition(Timestamp(20_000)), Condition::Failed);
    }
}
