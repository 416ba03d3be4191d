//! Copying a redb file's tables into PostgreSQL's `store_rows`, verified: every
//! table's rows are read from the file (which no daemon may have open), each key
//! written as its sortable bytes and each value as redb itself encodes it, in
//! batches, and then counted and checksummed on both sides. The core of
//! `migrate-store`, whose command comes with the PostgreSQL store itself.

use std::path::Path;

use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use super::rows::table;
use super::PgError;
use crate::store::keys::Sorted;
use crate::store::{self, StoreError};

/// Rows sent to the server in one statement.
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
    #[error(
        "table {name}: the file has {rows} rows (checksum {file}), the database {copied} \
         (checksum {database})"
    )]
    Differs {
        name: String,
        rows: u64,
        copied: u64,
        file: String,
        database: String,
    },
}

/// A table's rows as `store_rows` holds them: sortable key bytes, value bytes.
type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// The rows of one table of `txn`, as `store_rows` holds them, in key order.
fn rows_of<K: Sorted, V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    def: TableDefinition<K, V>,
) -> Result<Rows, StoreError> {
    let t = match txn.open_table(def) {
        Ok(t) => t,
        // A table the file never made has no rows.
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
    // Each table under the name redb gives it, which is its number's in `store_rows`.
    macro_rules! tables {
        ($($def:ident),* $(,)?) => {
            vec![$((store::$def.name().to_owned(), rows_of(&txn, store::$def)?)),*]
        };
    }
    let tables: Vec<(String, Rows)> = tables![
        META,
        PROJECTS,
        NODES,
        ROOTS,
        MEMBERS,
        POSITIONS,
        READY,
        EVENTS,
        OUTBOX,
        TOKENS,
        PEOPLE,
        AUDIT,
        AUDIT_BY_PROJECT,
        RUNS,
        WATCH,
        HOOKS,
        HOOK_EXPIRY,
        LINES,
        LINE_DEPENDENTS,
        DEPLOYED,
        HISTORY,
        LATEST,
        NOTICES,
        FORGES,
        CHANGES,
        OPEN,
        BY_UPSTREAM,
    ];
    // A table this copy does not know would be left behind without a word.
    for handle in txn.list_tables()? {
        if !tables.iter().any(|(name, _)| name == handle.name()) {
            return Err(StoreError::Inconsistent(format!(
                "the file holds a table {} that this daemon does not copy",
                handle.name()
            )));
        }
    }
    Ok(tables)
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
        let tbl = table(name).ok_or_else(|| {
            StoreError::Inconsistent(format!("table {name} has no number in store_rows"))
        })?;
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
        let copied: Rows = tx
            .query(
                "SELECT key, value FROM store_rows WHERE tbl = $1 ORDER BY key",
                &[&tbl],
            )
            .await
            .map_err(PgError::from)?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let (file, database) = (checksum(rows), checksum(&copied));
        if file != database {
            return Err(CopyError::Differs {
                name: name.clone(),
                rows: rows.len() as u64,
                copied: copied.len() as u64,
                file: hex::encode(file),
                database: hex::encode(database),
            });
        }
        out.push(TableCopy {
            name: name.clone(),
            rows: rows.len() as u64,
            checksum: file,
        });
    }
    tx.commit().await.map_err(PgError::from)?;
    Ok(out)
}
