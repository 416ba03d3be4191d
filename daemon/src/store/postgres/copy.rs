//! Moving a whole store between redb and PostgreSQL, verified: every table's rows
//! copied as they are (each key as its sortable bytes on PostgreSQL and as redb
//! encodes it in a file, each value as redb encodes it on both), then counted and
//! checksummed on both sides. The core of `conjunctiond migrate-store`; neither side
//! may be in use by a daemon while it runs.

use std::path::Path;

use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use super::rows::table;
use super::PgError;
use crate::store::keys::Sorted;
use crate::store::{self, StoreError};

/// Rows sent to the server in one statement, and read from it in one page.
const BATCH: usize = 2_000;

/// What one table came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopy {
    pub name: String,
    pub rows: u64,
    /// SHA-256 of every (key, value) in key order, as both stores hold them.
    pub checksum: [u8; 32],
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pg(#[from] PgError),
    #[error("the database already holds rows of {0}: copy into an empty one")]
    NotEmpty(String),
    #[error("{0} exists: give a new file to copy into")]
    Exists(std::path::PathBuf),
    #[error(
        "the database is in use: {holder} holds the writer's lease; stop every daemon on it \
         first, so that the copy is all of it"
    )]
    InUse { holder: String },
    #[error(
        "table {name}: the source has {rows} rows (checksum {source_sum}), the copy {copied} \
         (checksum {copy_sum})"
    )]
    Differs {
        name: String,
        rows: u64,
        copied: u64,
        source_sum: String,
        copy_sum: String,
    },
}

/// A table's rows as `store_rows` holds them: sortable key bytes, value bytes.
type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// One of the store's tables, read from and written to a redb file as rows.
trait Copied {
    fn name(&self) -> &str;
    /// Its rows in `txn`, in key order; none when the file never made it.
    fn read(&self, txn: &redb::ReadTransaction) -> Result<Rows, StoreError>;
    /// Makes the table in `txn` (empty tables too) and puts `rows` in it.
    fn write(&self, txn: &redb::WriteTransaction, rows: &Rows) -> Result<(), StoreError>;
}

struct Def<K: Sorted, V: redb::Value + 'static>(TableDefinition<'static, K, V>);

impl<K: Sorted, V: redb::Value + 'static> Copied for Def<K, V> {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn read(&self, txn: &redb::ReadTransaction) -> Result<Rows, StoreError> {
        let t = match txn.open_table(self.0) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            out.push((
                K::sortable(&k.value()),
                V::as_bytes(&v.value()).as_ref().to_vec(),
            ));
        }
        // In the order the server returns them (bytes compared as memcmp does), which
        // `store::keys` checks is redb's own order of the keys.
        out.sort();
        Ok(out)
    }

    fn write(&self, txn: &redb::WriteTransaction, rows: &Rows) -> Result<(), StoreError> {
        let mut t = txn.open_table(self.0)?;
        for (key, value) in rows {
            let key = K::redb_bytes(key).ok_or_else(|| {
                StoreError::Inconsistent(format!(
                    "table {}: a key of {} bytes does not read as this table's keys",
                    self.name(),
                    key.len()
                ))
            })?;
            t.insert(K::from_bytes(&key), V::from_bytes(value))?;
        }
        Ok(())
    }
}

fn def<K: Sorted, V: redb::Value + 'static>(d: TableDefinition<'static, K, V>) -> Box<dyn Copied> {
    Box::new(Def(d))
}

/// Every table of the store, under the name redb gives it, which is its number's in
/// `store_rows`.
fn tables() -> Vec<Box<dyn Copied>> {
    vec![
        def(store::META),
        def(store::PROJECTS),
        def(store::NODES),
        def(store::ROOTS),
        def(store::MEMBERS),
        def(store::POSITIONS),
        def(store::READY),
        def(store::EVENTS),
        def(store::OUTBOX),
        def(store::TOKENS),
        def(store::PEOPLE),
        def(store::AUDIT),
        def(store::AUDIT_BY_PROJECT),
        def(store::RUNS),
        def(store::WATCH),
        def(store::HOOKS),
        def(store::HOOK_EXPIRY),
        def(store::LINES),
        def(store::LINE_DEPENDENTS),
        def(store::DEPLOYED),
        def(store::HISTORY),
        def(store::LATEST),
        def(store::NOTICES),
        def(store::FORGES),
        def(store::CHANGES),
        def(store::OPEN),
        def(store::BY_UPSTREAM),
    ]
}

fn checksum(rows: &Rows) -> [u8; 32] {
    let mut h = Sha256::new();
    for (k, v) in rows {
        h.update((k.len() as u64).to_be_bytes());
        h.update(k);
        h.update((v.len() as u64).to_be_bytes());
        h.update(v);
    }
    h.finalize().into()
}

/// Every table of the file at `path`, as rows.
fn read_file(path: &Path) -> Result<Vec<(String, Rows)>, StoreError> {
    let db = match redb::ReadOnlyDatabase::open(path) {
        Ok(db) => db,
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
            return Err(StoreError::InUse(path.to_owned()))
        }
        Err(e) => return Err(e.into()),
    };
    let txn = db.begin_read()?;
    let mut out = Vec::new();
    for t in tables() {
        out.push((t.name().to_owned(), t.read(&txn)?));
    }
    // A table this copy does not know would be left behind without a word.
    for handle in txn.list_tables()? {
        if !out.iter().any(|(name, _)| name == handle.name()) {
            return Err(StoreError::Inconsistent(format!(
                "the file holds a table {} that this daemon does not copy",
                handle.name()
            )));
        }
    }
    Ok(out)
}

/// `Differs` unless `copy` is `source`, row for row.
fn compare(name: &str, source: &Rows, copy: &Rows) -> Result<TableCopy, CopyError> {
    let (source_sum, copy_sum) = (checksum(source), checksum(copy));
    if source_sum != copy_sum || source.len() != copy.len() {
        return Err(CopyError::Differs {
            name: name.to_owned(),
            rows: source.len() as u64,
            copied: copy.len() as u64,
            source_sum: hex::encode(source_sum),
            copy_sum: hex::encode(copy_sum),
        });
    }
    Ok(TableCopy {
        name: name.to_owned(),
        rows: source.len() as u64,
        checksum: source_sum,
    })
}

/// A table's rows in `tx`, in the server's key order, read a page at a time.
async fn rows_in(tx: &tokio_postgres::Transaction<'_>, tbl: i16) -> Result<Rows, PgError> {
    let mut out: Rows = Vec::new();
    loop {
        let page = match out.last() {
            None => {
                tx.query(
                    "SELECT key, value FROM store_rows WHERE tbl = $1 ORDER BY key LIMIT $2",
                    &[&tbl, &(BATCH as i64)],
                )
                .await?
            }
            Some((after, _)) => {
                tx.query(
                    "SELECT key, value FROM store_rows WHERE tbl = $1 AND key > $2
                     ORDER BY key LIMIT $3",
                    &[&tbl, after, &(BATCH as i64)],
                )
                .await?
            }
        };
        let full = page.len() == BATCH;
        out.extend(page.into_iter().map(|r| (r.get(0), r.get(1))));
        if !full {
            return Ok(out);
        }
    }
}

fn number(name: &str) -> Result<i16, StoreError> {
    table(name).ok_or_else(|| {
        StoreError::Inconsistent(format!("table {name} has no number in store_rows"))
    })
}

/// Copies the redb file at `path` into the empty, migrated database of `client`, in
/// one transaction, and verifies every table by count and checksum.
pub async fn copy_into(path: &Path, client: &mut Client) -> Result<Vec<TableCopy>, CopyError> {
    let path = path.to_owned();
    let tables = tokio::task::spawn_blocking(move || read_file(&path))
        .await
        .map_err(|e| StoreError::ReadPanicked(e.to_string()))??;
    let tx = client.transaction().await.map_err(PgError::from)?;
    let mut out = Vec::with_capacity(tables.len());
    for (name, rows) in &tables {
        let tbl = number(name)?;
        let present: i64 = tx
            .query_one("SELECT count(*) FROM store_rows WHERE tbl = $1", &[&tbl])
            .await
            .map_err(PgError::from)?
            .get(0);
        if present > 0 {
            return Err(CopyError::NotEmpty(name.clone()));
        }
        for batch in rows.chunks(BATCH) {
            let keys: Vec<&[u8]> = batch.iter().map(|(k, _)| k.as_slice()).collect();
            let values: Vec<&[u8]> = batch.iter().map(|(_, v)| v.as_slice()).collect();
            tx.execute(
                "INSERT INTO store_rows (tbl, key, value)
                 SELECT $1, k, v FROM unnest($2::bytea[], $3::bytea[]) AS r(k, v)",
                &[&tbl, &keys, &values],
            )
            .await
            .map_err(PgError::from)?;
        }
        // Read back in the server's own order, which must be the file's.
        let copied = rows_in(&tx, tbl).await?;
        out.push(compare(name, rows, &copied)?);
    }
    tx.commit().await.map_err(PgError::from)?;
    Ok(out)
}

/// Copies the database of `client` into a new redb file at `path`, from one
/// snapshot, and verifies every table of the file by count and checksum against
/// it. Refused while a daemon holds the writer's lease, whose later writes the file
/// would miss. The file is written beside `path` and renamed into place once
/// verified, so `path` is either all of it or absent.
pub async fn copy_out(client: &mut Client, path: &Path) -> Result<Vec<TableCopy>, CopyError> {
    if path.exists() {
        return Err(CopyError::Exists(path.to_owned()));
    }
    if let Some(holder) = super::lease::holder(client).await? {
        if holder.live {
            return Err(CopyError::InUse {
                holder: holder.holder,
            });
        }
    }
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(PgError::from)?;
    let known: Vec<String> = tables().iter().map(|t| t.name().to_owned()).collect();
    // A table this daemon does not know would be left behind without a word.
    let held: Vec<i16> = tx
        .query("SELECT DISTINCT tbl FROM store_rows ORDER BY tbl", &[])
        .await
        .map_err(PgError::from)?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    for tbl in held {
        if !known.iter().any(|name| table(name) == Some(tbl)) {
            return Err(StoreError::Inconsistent(format!(
                "the database holds rows of table number {tbl}, which this daemon does not copy"
            ))
            .into());
        }
    }
    let mut source = Vec::with_capacity(known.len());
    for name in known {
        let rows = rows_in(&tx, number(&name)?).await?;
        source.push((name, rows));
    }
    tx.commit().await.map_err(PgError::from)?;

    let path = path.to_owned();
    tokio::task::spawn_blocking(move || write_file(&path, &source))
        .await
        .map_err(|e| StoreError::ReadPanicked(e.to_string()))?
}

/// Writes `source` as a new redb file at `path` (by way of a file beside it) and
/// verifies it.
fn write_file(path: &Path, source: &[(String, Rows)]) -> Result<Vec<TableCopy>, CopyError> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let result = (|| {
        let db = redb::Builder::new()
            .create(&partial)
            .map_err(StoreError::from)?;
        let txn = db.begin_write().map_err(StoreError::from)?;
        for (t, (_, rows)) in tables().iter().zip(source) {
            t.write(&txn, rows)?;
        }
        txn.commit().map_err(StoreError::from)?;
        drop(db);
        let copied = read_file(&partial)?;
        let mut out = Vec::with_capacity(source.len());
        for ((name, rows), (_, copy)) in source.iter().zip(&copied) {
            out.push(compare(name, rows, copy)?);
        }
        // redb's commit made the file durable; the rename makes it the copy.
        std::fs::rename(&partial, path).map_err(|e| StoreError::Db(redb::Error::Io(e)))?;
        Ok(out)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}
