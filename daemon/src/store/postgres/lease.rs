//! The writer's role among daemons sharing one database: one row (`writer_lease`)
//! names the daemon that writes, where to reach it, a fence number and when the
//! lease ends. The holder renews it before then; another daemon takes it only once it
//! has ended, with the next fence number. Every write transaction of the holder
//! starts by locking the row and checking its own fence is still the row's, so a
//! writer that lost the role (paused, cut off, slow) commits nothing after another
//! took it, and a taker waits for a holder's open transaction to end; the holder's
//! session ends an idle open transaction after the lease's length, so a paused
//! holder cannot keep the row locked for ever.
//!
//! A lease row, as River and Oban elect their leader, rather than a session advisory
//! lock: the reference measured such a lock outliving a killed client whose backend
//! was busy.

use std::time::Duration;

use tokio_postgres::{Client, GenericClient};

use super::PgError;

/// Who holds the writer's role, as the row says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub holder: String,
    /// Where the holder takes the writes other daemons forward.
    pub address: String,
    pub fence: i64,
    /// The lease has not ended.
    pub live: bool,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Takes the role for `holder` (reached at `address`) for `length`, if nobody has
/// it, its lease has ended, or `holder` had it: a daemon restarted where it ran (the
/// same host and port, which no other running daemon can have) need not wait out
/// the lease its killed self held, and the new fence still shuts that self out.
/// Answers the fence number of this holding. Waits while the holder's write
/// transaction is open.
pub async fn acquire(
    client: &Client,
    holder: &str,
    address: &str,
    length: Duration,
) -> Result<Option<i64>, PgError> {
    let row = client
        .query_opt(
            "INSERT INTO writer_lease (id, holder, address, fence, expires_at)
             VALUES (1, $1, $2, 1, now() + $3::bigint * interval '1 millisecond')
             ON CONFLICT (id) DO UPDATE
                 SET holder = EXCLUDED.holder, address = EXCLUDED.address,
                     fence = writer_lease.fence + 1, expires_at = EXCLUDED.expires_at
                 WHERE writer_lease.expires_at <= now() OR writer_lease.holder = EXCLUDED.holder
             RETURNING fence",
            &[&holder, &address, &millis(length)],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Extends the holding with `fence` to `length` from now; false when the lease has
/// ended or is another's (the role must then be acquired again).
pub async fn renew(
    client: &impl GenericClient,
    fence: i64,
    length: Duration,
) -> Result<bool, PgError> {
    let renewed = client
        .execute(
            "UPDATE writer_lease SET expires_at = now() + $2::bigint * interval '1 millisecond'
             WHERE id = 1 AND fence = $1 AND expires_at > now()",
            &[&fence, &millis(length)],
        )
        .await?;
    Ok(renewed == 1)
}

/// Gives the role up at once, so that another daemon need not wait for the lease to
/// end (a clean stop).
pub async fn resign(client: &Client, fence: i64) -> Result<(), PgError> {
    client
        .execute(
            "UPDATE writer_lease SET expires_at = now() WHERE id = 1 AND fence = $1",
            &[&fence],
        )
        .await?;
    Ok(())
}

/// Who holds the role, if anyone ever did.
pub async fn holder(client: &Client) -> Result<Option<Holder>, PgError> {
    let row = client
        .query_opt(
            "SELECT holder, address, fence, expires_at > now() FROM writer_lease WHERE id = 1",
            &[],
        )
        .await?;
    Ok(row.map(|r| Holder {
        holder: r.get(0),
        address: r.get(1),
        fence: r.get(2),
        live: r.get(3),
    }))
}

/// Makes `client` a writer's session: an open transaction idle for longer than the
/// lease is ended by the server, so a paused writer's lock on the lease row goes
/// when its lease would have.
pub async fn writer_session(client: &Client, length: Duration) -> Result<(), PgError> {
    client.batch_execute(&writer_session_sql(length)).await?;
    Ok(())
}

/// What [`writer_session`] runs.
pub fn writer_session_sql(length: Duration) -> String {
    format!(
        "SET idle_in_transaction_session_timeout = {}",
        millis(length).max(1)
    )
}

/// The first statement of every write transaction: locks the lease row until the
/// transaction ends and checks that it is still the holding `fence`'s and has not
/// ended. Refused, the transaction must not commit.
pub async fn fence(tx: &impl GenericClient, fence: i64) -> Result<(), PgError> {
    let held = tx
        .query_opt(
            "SELECT 1 FROM writer_lease WHERE id = 1 AND fence = $1 AND expires_at > now()
             FOR UPDATE",
            &[&fence],
        )
        .await?;
    match held {
        Some(_) => Ok(()),
        None => Err(PgError::LeaseLost { fence }),
    }
}
