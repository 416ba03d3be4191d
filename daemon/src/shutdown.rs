//! Shutdown: how every worker learns that the daemon is stopping, and how long what it
//! has in flight may take to finish (as mini-redis's `Shutdown` does).

use std::time::Duration;

use tokio::sync::watch;

/// How long a worker lets what it has in flight finish once the daemon stops;
/// deliveries still running after it stay in their outbox for the next start.
pub const GRACE: Duration = Duration::from_secs(2);

/// Says once, to every [`Shutdown`] made from it, that the daemon is stopping.
pub struct Stopper {
    flag: watch::Sender<bool>,
    grace: Duration,
}

impl Default for Stopper {
    fn default() -> Self {
        Self {
            flag: watch::channel(false).0,
            grace: GRACE,
        }
    }
}

impl Stopper {
    /// What a worker holds to hear it.
    pub fn shutdown(&self) -> Shutdown {
        Shutdown {
            flag: self.flag.subscribe(),
            grace: self.grace,
        }
    }

    /// The daemon is stopping.
    pub fn stop(&self) {
        self.flag.send_replace(true);
    }
}

/// A worker's view of the daemon's shutdown.
#[derive(Clone)]
pub struct Shutdown {
    flag: watch::Receiver<bool>,
    grace: Duration,
}

impl Shutdown {
    /// Resolves once the daemon is stopping (or whatever could stop it is gone).
    pub async fn requested(&mut self) {
        let _ = self.flag.wait_for(|stop| *stop).await;
    }

    /// Whether the daemon is stopping, without waiting.
    pub fn is_requested(&self) -> bool {
        *self.flag.borrow()
    }

    /// How long what is in flight may take to finish once the daemon stops.
    pub fn grace(&self) -> Duration {
        self.grace
    }
}
