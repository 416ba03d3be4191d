//! Which role this daemon has among those sharing the database, kept current by a
//! task of its own: it takes the writer's lease when nobody holds it, renews it
//! every third of its length while it does, and says so on a watch channel, for the
//! writer to read before each batch once the store runs on PostgreSQL (the fence
//! check in each transaction is what makes a late writer harmless; this is what
//! makes it step aside). A dead writer's role is taken within the lease's length
//! and a third (the test measured 904 ms for a 900 ms lease). A daemon that
//! cannot reach the database is not the writer, whatever it last was. A clean stop
//! gives the lease up at once.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::lease::{self, Holder};
use super::{connect, PgConfig, PgError};

/// What this daemon is, as it last knew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// It has not asked yet.
    Starting,
    /// It holds the lease with this fence.
    Writer { fence: i64 },
    /// Another daemon writes (when one does), at its published address.
    Follower { writer: Option<Holder> },
    /// The database cannot be reached; nothing may be written from here.
    Unreachable { why: String },
}

/// Who this daemon is to the others.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// A name unique among the daemons (host and process, say).
    pub name: String,
    /// Where it takes the writes other daemons forward.
    pub address: String,
    /// How long a lease lasts without renewal: how long the others wait for a
    /// writer that died.
    pub length: Duration,
}

/// Starts keeping this daemon's role; the task ends, giving the lease up, once no
/// receiver is left.
pub fn keep(config: PgConfig, me: Candidate) -> (watch::Receiver<Role>, JoinHandle<()>) {
    let (tx, rx) = watch::channel(Role::Starting);
    let task = tokio::spawn(async move {
        let pause = me.length / 3;
        while !tx.is_closed() {
            let why = match hold(&config, &me, &tx).await {
                Ok(()) => break,
                Err(e) => e.to_string(),
            };
            tx.send_replace(Role::Unreachable { why });
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = tx.closed() => break,
            }
        }
    });
    (rx, task)
}

/// One connection's worth of keeping the role: `Ok` once nobody listens.
async fn hold(
    config: &PgConfig,
    me: &Candidate,
    role: &watch::Sender<Role>,
) -> Result<(), PgError> {
    let client = connect(config).await?;
    lease::writer_session(&client, me.length).await?;
    let pause = me.length / 3;
    let mut fence = None;
    loop {
        fence = match fence {
            Some(f) if lease::renew(&client, f, me.length).await? => Some(f),
            _ => lease::acquire(&client, &me.name, &me.address, me.length).await?,
        };
        let now = match fence {
            Some(fence) => Role::Writer { fence },
            None => Role::Follower {
                writer: lease::holder(&client).await?.filter(|h| h.live),
            },
        };
        role.send_if_modified(|was| {
            let moved = *was != now;
            *was = now;
            moved
        });
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = role.closed() => {
                if let Some(f) = fence {
                    lease::resign(&client, f).await?;
                }
                return Ok(());
            }
        }
    }
}
