//! Which daemon sends which outbox entry: any daemon may deliver triggers, notices and
//! forge reports, and claims the entries it takes for as long as a delivery may
//! last, so that two daemons never send one entry at once. Claiming skips the
//! entries another daemon is claiming that moment (`FOR UPDATE SKIP LOCKED`) and,
//! should two statements still meet on one entry, the claim already made stands. An
//! entry is done when the writer removes its row (its claim goes with it); a failed
//! try gives the claim back, and a daemon that died holding claims loses them when
//! they run out.

use std::time::Duration;

use tokio_postgres::GenericClient;

use super::rows::SortKey;
use super::PgError;

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Claims for `by`, for `hold`, up to `limit` entries of outbox table `tbl` that
/// nobody holds, oldest key first; answers them with their records.
pub async fn claim<K: SortKey>(
    c: &impl GenericClient,
    tbl: i16,
    by: &str,
    hold: Duration,
    limit: i64,
) -> Result<Vec<(K, Vec<u8>)>, PgError> {
    let rows = c
        .query(
            "WITH free AS (
                 SELECT r.tbl, r.key, r.value FROM store_rows r
                 LEFT JOIN outbox_claims c ON c.tbl = r.tbl AND c.key = r.key
                 WHERE r.tbl = $1 AND (c.key IS NULL OR c.claimed_until <= now())
                 ORDER BY r.key
                 LIMIT $4
                 FOR UPDATE OF r SKIP LOCKED
             ), taken AS (
                 INSERT INTO outbox_claims (tbl, key, claimed_by, claimed_until)
                 SELECT tbl, key, $2, now() + $3::bigint * interval '1 millisecond' FROM free
                 ON CONFLICT (tbl, key) DO UPDATE
                     SET claimed_by = EXCLUDED.claimed_by, claimed_until = EXCLUDED.claimed_until
                     WHERE outbox_claims.claimed_until <= now()
                 RETURNING key
             )
             SELECT free.key, free.value FROM free JOIN taken ON taken.key = free.key
             ORDER BY free.key",
            &[&tbl, &by, &millis(hold), &limit],
        )
        .await?;
    super::rows::keyed(tbl, rows)
}

/// What [`claim_one`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// `by` holds it now, until its hold runs out or the entry leaves the outbox.
    Mine,
    /// The entry has left the outbox (sent, given up or taken back).
    Gone,
    /// Another daemon is sending it; its claim runs out this many milliseconds from
    /// now.
    Theirs { ms_left: i64 },
}

/// Claims the entry `key` (its sortable bytes) of outbox table `tbl` for `by`, for
/// `hold`, unless another daemon's claim of it has not run out; `by`'s own claim is
/// renewed. One statement: the row lock the claim takes keeps a second daemon's
/// statement waiting until the first's is done, and then it sees the claim.
pub async fn claim_one(
    c: &impl GenericClient,
    tbl: i16,
    key: &[u8],
    by: &str,
    hold: Duration,
) -> Result<Claim, PgError> {
    let row = c
        .query_one(
            "WITH entry AS (
                 SELECT tbl, key FROM store_rows WHERE tbl = $1 AND key = $2
             ), taken AS (
                 INSERT INTO outbox_claims (tbl, key, claimed_by, claimed_until)
                 SELECT tbl, key, $3, now() + $4::bigint * interval '1 millisecond' FROM entry
                 ON CONFLICT (tbl, key) DO UPDATE
                     SET claimed_by = EXCLUDED.claimed_by, claimed_until = EXCLUDED.claimed_until
                     WHERE outbox_claims.claimed_until <= now()
                        OR outbox_claims.claimed_by = EXCLUDED.claimed_by
                 RETURNING key
             )
             SELECT (SELECT count(*) FROM entry), (SELECT count(*) FROM taken)",
            &[&tbl, &key, &by, &millis(hold)],
        )
        .await?;
    let (present, taken): (i64, i64) = (row.get(0), row.get(1));
    if present == 0 {
        return Ok(Claim::Gone);
    }
    if taken > 0 {
        return Ok(Claim::Mine);
    }
    // The statement's own snapshot may predate the claim it met (one committed while
    // it waited for the row), so the claim is read in a statement of its own.
    let left: Option<i64> = c
        .query_opt(
            "SELECT (extract(epoch FROM claimed_until - now()) * 1000)::bigint
             FROM outbox_claims WHERE tbl = $1 AND key = $2",
            &[&tbl, &key],
        )
        .await?
        .map(|r| r.get(0));
    Ok(Claim::Theirs {
        ms_left: left.unwrap_or(0).max(1),
    })
}

/// Gives `by`'s claim of an entry back, so that it may be tried again at once (by
/// any daemon); false when `by` held no such claim.
pub async fn release(
    c: &impl GenericClient,
    tbl: i16,
    key: &impl SortKey,
    by: &str,
) -> Result<bool, PgError> {
    let released = c
        .execute(
            "DELETE FROM outbox_claims WHERE tbl = $1 AND key = $2 AND claimed_by = $3",
            &[&tbl, &key.to_bytes(), &by],
        )
        .await?;
    Ok(released == 1)
}

/// Gives back `by`'s claims of table `tbl`: of the entry whose sortable key is
/// `key`, or all of them.
pub async fn release_mine(
    c: &impl GenericClient,
    tbl: i16,
    key: Option<&[u8]>,
    by: &str,
) -> Result<u64, PgError> {
    Ok(c.execute(
        "DELETE FROM outbox_claims
             WHERE tbl = $1 AND claimed_by = $3 AND ($2::bytea IS NULL OR key = $2)",
        &[&tbl, &key, &by],
    )
    .await?)
}
