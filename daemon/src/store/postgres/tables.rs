//! One transaction of the store on PostgreSQL and the tables it opens: what the
//! store's seam ([`crate::store::engine`]) runs on when `[store] url` is set.
//!
//! A reader's transaction is a `REPEATABLE READ` snapshot, as a redb read
//! transaction is. The writer's transaction reads what is committed (only the
//! writer commits, so that is what it last wrote) and keeps its own changes in
//! memory, where its later reads and ranges see them; its commit sends them all at
//! once in one transaction that first locks and checks the writer's lease (the
//! fence) and last announces the new sequence number. A writer that lost its lease
//! therefore commits nothing, and a report costs one round trip per row it reads,
//! not per row it writes.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::marker::PhantomData;
use std::ops::Bound;
use std::sync::Arc;

use super::pool::{Pool, Pooled};
use super::rows::{self, Order, TABLES};
use super::{feed, lease, PgError};
use crate::store::keys::Sorted;

/// Rows a range reads from the server at a time.
const PAGE: i64 = 256;
/// Rows a point read takes from the server: the key's and those after it, kept for
/// the reads that follow. The writer reads an event's members one position after
/// another and its nodes by ids that an event's builds share the front of, so one
/// round trip serves many reads.
const AHEAD: i64 = 32;
/// Rows one statement of a commit sends.
const FLUSH: usize = 4_096;

/// A row as `store_rows` holds it: sortable key bytes, value bytes.
type Row = (Vec<u8>, Vec<u8>);

/// What the transaction knows of one row.
#[derive(Debug, Clone)]
enum Slot {
    /// As committed (read once, kept for the next read).
    Read(Option<Vec<u8>>),
    /// Written by this transaction.
    Put(Vec<u8>),
    /// Removed by this transaction.
    Gone,
}

impl Slot {
    fn value(&self) -> Option<Vec<u8>> {
        match self {
            Slot::Read(v) => v.clone(),
            Slot::Put(v) => Some(v.clone()),
            Slot::Gone => None,
        }
    }

    fn changed(&self) -> bool {
        !matches!(self, Slot::Read(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Snapshot,
    Write,
}

/// A transaction of the store on PostgreSQL.
pub struct PgTxn {
    conn: Pooled,
    kind: Kind,
    rows: RefCell<BTreeMap<(i16, Vec<u8>), Slot>>,
}

impl PgTxn {
    /// A reader's snapshot: every read sees the database as it was at the first.
    pub fn snapshot(pool: &Arc<Pool>) -> Result<Self, PgError> {
        let conn = pool.get()?;
        conn.block_on(
            conn.client()
                .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"),
        )?;
        Ok(Self {
            conn,
            kind: Kind::Snapshot,
            rows: RefCell::default(),
        })
    }

    /// The writer's transaction, on its own session (see [`lease::writer_session`]).
    pub fn write(pool: &Arc<Pool>) -> Result<Self, PgError> {
        Ok(Self {
            conn: pool.get()?,
            kind: Kind::Write,
            rows: RefCell::default(),
        })
    }

    pub fn get(&self, tbl: i16, key: Vec<u8>) -> Result<Option<Vec<u8>>, PgError> {
        let at = (tbl, key);
        if let Some(slot) = self.rows.borrow().get(&at) {
            return Ok(slot.value());
        }
        let ahead = self.conn.block_on(self.conn.client().query(
            "SELECT key, value FROM store_rows WHERE tbl = $1 AND key >= $2 ORDER BY key LIMIT $3",
            &[&at.0, &at.1, &AHEAD],
        ))?;
        let mut rows = self.rows.borrow_mut();
        let mut value = None;
        for row in ahead {
            let (key, found): (Vec<u8>, Vec<u8>) = (row.get(0), row.get(1));
            if key == at.1 {
                value = Some(found.clone());
            }
            // What this transaction wrote stays as it wrote it.
            rows.entry((at.0, key)).or_insert(Slot::Read(Some(found)));
        }
        rows.entry(at).or_insert(Slot::Read(value.clone()));
        Ok(value)
    }

    pub fn put(&self, tbl: i16, key: Vec<u8>, value: Vec<u8>) -> Result<(), PgError> {
        self.writable()?;
        self.rows.borrow_mut().insert((tbl, key), Slot::Put(value));
        Ok(())
    }

    /// Removes a row, answering what it held.
    pub fn remove(&self, tbl: i16, key: Vec<u8>) -> Result<Option<Vec<u8>>, PgError> {
        self.writable()?;
        let was = self.get(tbl, key.clone())?;
        if was.is_some() {
            self.rows.borrow_mut().insert((tbl, key), Slot::Gone);
        }
        Ok(was)
    }

    fn writable(&self) -> Result<(), PgError> {
        match self.kind {
            Kind::Write => Ok(()),
            Kind::Snapshot => Err(PgError::Db("a read transaction cannot write".into())),
        }
    }

    /// How many rows `tbl` holds, this transaction's changes counted.
    pub fn count(&self, tbl: i16) -> Result<u64, PgError> {
        let mut n = self.conn.block_on(rows::count(self.conn.client(), tbl))?;
        for ((t, key), slot) in self.rows.borrow().iter() {
            if *t != tbl || !slot.changed() {
                continue;
            }
            // Whether the server holds the row decides what the change does to the count.
            let there = self
                .conn
                .block_on(self.conn.client().query_opt(
                    "SELECT 1 FROM store_rows WHERE tbl = $1 AND key = $2",
                    &[t, key],
                ))?
                .is_some();
            match (slot, there) {
                (Slot::Put(_), false) => n += 1,
                (Slot::Gone, true) => n -= 1,
                _ => {}
            }
        }
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// This transaction's changes to `tbl` within the bounds, in key order.
    fn changes_in(
        &self,
        tbl: i16,
        low: &Bound<Vec<u8>>,
        high: &Bound<Vec<u8>>,
    ) -> VecDeque<(Vec<u8>, Option<Vec<u8>>)> {
        // An empty range (`5..=4`, as a reader asking for what follows the last
        // event asks) is empty, as redb has it, not a range the map refuses.
        let empty = match (low, high) {
            (Bound::Included(l), Bound::Included(h)) => l > h,
            (Bound::Included(l) | Bound::Excluded(l), Bound::Included(h) | Bound::Excluded(h)) => {
                l >= h
            }
            _ => false,
        };
        if empty {
            return VecDeque::new();
        }
        let start = match low {
            Bound::Included(k) => Bound::Included((tbl, k.clone())),
            Bound::Excluded(k) => Bound::Excluded((tbl, k.clone())),
            Bound::Unbounded => Bound::Included((tbl, Vec::new())),
        };
        let end = match high {
            Bound::Included(k) => Bound::Included((tbl, k.clone())),
            Bound::Excluded(k) => Bound::Excluded((tbl, k.clone())),
            Bound::Unbounded => match tbl.checked_add(1) {
                Some(next) => Bound::Excluded((next, Vec::new())),
                None => Bound::Unbounded,
            },
        };
        self.rows
            .borrow()
            .range((start, end))
            .filter(|(_, slot)| slot.changed())
            .map(|((_, key), slot)| (key.clone(), slot.value()))
            .collect()
    }

    fn page(
        &self,
        tbl: i16,
        low: &Bound<Vec<u8>>,
        high: &Bound<Vec<u8>>,
        order: Order,
    ) -> Result<Vec<Row>, PgError> {
        self.conn.block_on(rows::range_bytes(
            self.conn.client(),
            tbl,
            as_ref(low),
            as_ref(high),
            order,
            PAGE,
        ))
    }

    /// Commits the writer's changes if it still holds the lease with `fence`, and
    /// announces the last sequence number (`seq_key`'s row of `meta`) when it moved.
    pub fn commit(mut self, fence: i64) -> Result<(), PgError> {
        self.writable()?;
        let rows = std::mem::take(self.rows.get_mut());
        let mut puts: Vec<(i16, Vec<u8>, Vec<u8>)> = Vec::new();
        let mut gone: Vec<(i16, Vec<u8>)> = Vec::new();
        let meta = rows::table("meta");
        let seq_key = <&str as Sorted>::sortable(&crate::store::SEQ_KEY);
        let mut seq = None;
        for ((tbl, key), slot) in rows {
            match slot {
                Slot::Read(_) => {}
                Slot::Put(value) => {
                    if Some(tbl) == meta && key == seq_key {
                        seq = Some(<u64 as redb::Value>::from_bytes(&value));
                    }
                    puts.push((tbl, key, value));
                }
                Slot::Gone => gone.push((tbl, key)),
            }
        }
        if puts.is_empty() && gone.is_empty() {
            return Ok(());
        }
        let client = self.conn.client();
        let done = self.conn.block_on(async {
            client.batch_execute("BEGIN").await?;
            lease::fence(client, fence).await?;
            for batch in gone.chunks(FLUSH) {
                let tbls: Vec<i16> = batch.iter().map(|(t, _)| *t).collect();
                let keys: Vec<&[u8]> = batch.iter().map(|(_, k)| k.as_slice()).collect();
                client
                    .execute(
                        "DELETE FROM store_rows s USING unnest($1::smallint[], $2::bytea[]) AS d(tbl, key)
                         WHERE s.tbl = d.tbl AND s.key = d.key",
                        &[&tbls, &keys],
                    )
                    .await?;
            }
            for batch in puts.chunks(FLUSH) {
                let tbls: Vec<i16> = batch.iter().map(|(t, _, _)| *t).collect();
                let keys: Vec<&[u8]> = batch.iter().map(|(_, k, _)| k.as_slice()).collect();
                let values: Vec<&[u8]> = batch.iter().map(|(_, _, v)| v.as_slice()).collect();
                client
                    .execute(
                        "INSERT INTO store_rows (tbl, key, value)
                         SELECT * FROM unnest($1::smallint[], $2::bytea[], $3::bytea[])
                         ON CONFLICT (tbl, key) DO UPDATE SET value = EXCLUDED.value",
                        &[&tbls, &keys, &values],
                    )
                    .await?;
            }
            if let Some(seq) = seq {
                feed::announce(client, seq).await?;
            }
            client.batch_execute("COMMIT").await?;
            Ok::<(), PgError>(())
        });
        if done.is_err() {
            // Ended here, or the connection is not reused: a failed transaction is
            // never left open on a session the pool hands out again.
            let ended = self.conn.block_on(client.batch_execute("ROLLBACK"));
            self.conn.broken = ended.is_err();
        }
        done
    }
}

impl Drop for PgTxn {
    fn drop(&mut self) {
        if self.kind == Kind::Snapshot {
            let ended = self
                .conn
                .block_on(self.conn.client().batch_execute("ROLLBACK"));
            self.conn.broken = ended.is_err();
        }
    }
}

fn as_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// The number of redb's table `name` in `store_rows`.
pub fn number(name: &str) -> Result<i16, PgError> {
    rows::table(name).ok_or_else(|| PgError::Db(format!("store_rows numbers no table {name}")))
}

/// One of the store's tables within a transaction.
pub struct PgTable<'t, K, V> {
    txn: &'t PgTxn,
    tbl: i16,
    types: PhantomData<(K, V)>,
}

impl<'t, K: Sorted, V: redb::Value + 'static> PgTable<'t, K, V> {
    pub fn open(txn: &'t PgTxn, name: &str) -> Result<Self, PgError> {
        Ok(Self {
            txn,
            tbl: number(name)?,
            types: PhantomData,
        })
    }

    /// The value of `key`, as redb encodes it.
    pub fn get(&self, key: &K::SelfType<'_>) -> Result<Option<Vec<u8>>, PgError> {
        self.txn.get(self.tbl, K::sortable(key))
    }

    pub fn insert(&self, key: &K::SelfType<'_>, value: &V::SelfType<'_>) -> Result<(), PgError> {
        let value = V::as_bytes(value).as_ref().to_vec();
        self.txn.put(self.tbl, K::sortable(key), value)
    }

    pub fn remove(&self, key: &K::SelfType<'_>) -> Result<Option<Vec<u8>>, PgError> {
        self.txn.remove(self.tbl, K::sortable(key))
    }

    pub fn len(&self) -> Result<u64, PgError> {
        self.txn.count(self.tbl)
    }

    /// The rows within the bounds, in key order (see [`PgRows::rev`]).
    pub fn range(
        &self,
        low: Bound<&K::SelfType<'_>>,
        high: Bound<&K::SelfType<'_>>,
    ) -> PgRows<'t, K, V> {
        let sortable = |b: Bound<&K::SelfType<'_>>| match b {
            Bound::Included(k) => Bound::Included(K::sortable(k)),
            Bound::Excluded(k) => Bound::Excluded(K::sortable(k)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let (low, high) = (sortable(low), sortable(high));
        PgRows {
            txn: self.txn,
            tbl: self.tbl,
            changes: self.txn.changes_in(self.tbl, &low, &high),
            low,
            high,
            order: Order::Ascending,
            page: VecDeque::new(),
            exhausted: false,
            types: PhantomData,
        }
    }
}

/// A range of a table's rows, read from the server a page at a time and merged
/// with the transaction's own changes: (key, value) as redb encodes them.
pub struct PgRows<'t, K, V> {
    txn: &'t PgTxn,
    tbl: i16,
    /// What is left of the range on the server.
    low: Bound<Vec<u8>>,
    high: Bound<Vec<u8>>,
    order: Order,
    page: VecDeque<Row>,
    exhausted: bool,
    /// The transaction's changes within the range, in the order read.
    changes: VecDeque<(Vec<u8>, Option<Vec<u8>>)>,
    types: PhantomData<(K, V)>,
}

impl<K: Sorted, V> PgRows<'_, K, V> {
    /// The same rows, last first (before any is read).
    pub fn rev(mut self) -> Self {
        self.order = match self.order {
            Order::Ascending => Order::Descending,
            Order::Descending => Order::Ascending,
        };
        self.changes = self.changes.into_iter().rev().collect();
        self
    }

    fn fill(&mut self) -> Result<(), PgError> {
        if !self.page.is_empty() || self.exhausted {
            return Ok(());
        }
        let page = self.txn.page(self.tbl, &self.low, &self.high, self.order)?;
        self.exhausted = (page.len() as i64) < PAGE;
        if let Some((last, _)) = page.last() {
            match self.order {
                Order::Ascending => self.low = Bound::Excluded(last.clone()),
                Order::Descending => self.high = Bound::Excluded(last.clone()),
            }
        }
        self.page = page.into();
        Ok(())
    }

    /// The next (sortable key, value), the transaction's changes taking the place
    /// of what the server holds.
    fn next_row(&mut self) -> Result<Option<Row>, PgError> {
        loop {
            self.fill()?;
            let first = |a: &Vec<u8>, b: &Vec<u8>| match self.order {
                Order::Ascending => a.cmp(b),
                Order::Descending => b.cmp(a),
            };
            let pick = match (self.page.front(), self.changes.front()) {
                (None, None) => return Ok(None),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some((stored, _)), Some((changed, _))) => first(stored, changed),
            };
            let row = match pick {
                std::cmp::Ordering::Less => self.page.pop_front().map(|(k, v)| (k, Some(v))),
                std::cmp::Ordering::Greater => self.changes.pop_front(),
                std::cmp::Ordering::Equal => {
                    self.page.pop_front();
                    self.changes.pop_front()
                }
            };
            match row {
                Some((key, Some(value))) => return Ok(Some((key, value))),
                // Removed by this transaction.
                Some((_, None)) => continue,
                None => return Ok(None),
            }
        }
    }
}

impl<K: Sorted, V> Iterator for PgRows<'_, K, V> {
    /// The key and the value as redb encodes them.
    type Item = Result<(Vec<u8>, Vec<u8>), PgError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_row() {
            Ok(Some((key, value))) => Some(match K::redb_bytes(&key) {
                Some(key) => Ok((key, value)),
                None => Err(PgError::Db(format!(
                    "a key of table {} does not read as its table's keys",
                    TABLES.get(self.tbl as usize).copied().unwrap_or("?")
                ))),
            }),
            Ok(None) => None,
            Err(e) => {
                // Nothing more is read after an error.
                self.exhausted = true;
                self.page.clear();
                self.changes.clear();
                Some(Err(e))
            }
        }
    }
}
