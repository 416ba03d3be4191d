//! Telling systemd how the daemon is doing, when systemd runs it (`Type=notify`):
//! ready once it serves, what it is doing (`systemctl status` shows it), that its
//! writer still commits (the watchdog), and that it is stopping. Without
//! `NOTIFY_SOCKET`, or for a daemon inside a test, every call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;

#[derive(Debug, Clone, Copy)]
pub struct ServiceManager {
    on: bool,
}

impl ServiceManager {
    /// Talks to systemd when `wanted` and systemd gave a notify socket.
    pub fn new(wanted: bool) -> Self {
        Self {
            on: wanted && std::env::var_os("NOTIFY_SOCKET").is_some(),
        }
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if !self.on {
            return;
        }
        if let Err(e) = sd_notify::notify(states) {
            tracing::warn!(error = %e, "cannot tell systemd how the daemon is doing");
        }
    }

    /// The database is open, the outboxes are loaded and the socket listens.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// The writer just committed: the daemon is alive.
    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    /// How often systemd wants to hear from the watchdog, when it watches.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        if self.on {
            sd_notify::watchdog_enabled()
        } else {
            None
        }
    }
}
