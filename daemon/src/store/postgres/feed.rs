//! How every daemon hears that events were committed: the writer's transaction
//! notifies `conjunction_events` with the last sequence number it wrote, which the
//! server delivers only once that transaction commits; a follower listens on a
//! connection of its own and keeps the newest number it heard. A notification is
//! a hint, never the event (the server replays none to a listener that was away,
//! and a payload is short): after each connection the follower reads the last
//! sequence number from the events table itself, and clients are served events by
//! number from there.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, GenericClient};

use super::rows::{table, SortKey};
use super::{connection, PgConfig, PgError};

/// The channel committed events are announced on.
pub const CHANNEL: &str = "conjunction_events";

/// Inside the writer's transaction: announces `seq` as the last event written,
/// heard by the followers once (and only if) the transaction commits.
pub async fn announce(tx: &impl GenericClient, seq: u64) -> Result<(), PgError> {
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &seq.to_string()])
        .await?;
    Ok(())
}

/// The last sequence number in the events table; 0 when there is none.
pub async fn last_seq(c: &impl GenericClient) -> Result<u64, PgError> {
    let events =
        table("events").ok_or_else(|| PgError::Db("store_rows numbers no events table".into()))?;
    // The primary key's index read backwards: one row, however many events.
    let row = c
        .query_opt(
            "SELECT key FROM store_rows WHERE tbl = $1 ORDER BY key DESC LIMIT 1",
            &[&events],
        )
        .await?;
    let key: Option<Vec<u8>> = row.map(|r| r.get(0));
    Ok(key.and_then(|k| u64::from_bytes(&k)).unwrap_or(0))
}

/// Follows the events committed to the database at `config`: the receiver holds the
/// newest sequence number heard, and moves whenever a newer one is. The follower
/// reconnects (every `retry`) when its connection ends, and stops when every
/// receiver is gone.
pub fn follow(config: PgConfig, retry: Duration) -> watch::Receiver<u64> {
    let (tx, rx) = watch::channel(0u64);
    tokio::spawn(async move {
        while !tx.is_closed() {
            if let Err(e) = listen(&config, &tx).await {
                tracing::warn!(error = %e, "following the database's events; trying again");
            }
            tokio::select! {
                _ = tokio::time::sleep(retry) => {}
                _ = tx.closed() => {}
            }
        }
    });
    rx
}

/// One connection's worth of following: until it ends or nobody follows.
async fn listen(config: &PgConfig, seen: &watch::Sender<u64>) -> Result<(), PgError> {
    let (client, mut connection) = connection(config).await?;
    let (heard, mut hearing) = tokio::sync::mpsc::unbounded_channel();
    // The connection is driven here, so its notifications come out of it.
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) if n.channel() == CHANNEL => {
                    if let Ok(seq) = n.payload().parse::<u64>() {
                        let _ = heard.send(seq);
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(PgError::from(e)),
            }
        }
        Ok(())
    });
    let newer = |seq: u64| {
        seen.send_if_modified(|at| {
            let moved = seq > *at;
            if moved {
                *at = seq;
            }
            moved
        });
    };
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    // What was committed while nobody listened.
    newer(last_seq(&client).await?);
    loop {
        tokio::select! {
            seq = hearing.recv() => match seq {
                Some(seq) => newer(seq),
                None => break,
            },
            _ = seen.closed() => break,
        }
    }
    drop(client);
    match driver.await {
        Ok(result) => result,
        Err(e) => Err(PgError::Db(format!("the follower's connection task: {e}"))),
    }
}
