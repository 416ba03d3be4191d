//! The store's tables on PostgreSQL: every redb table is a `tbl` number of
//! `store_rows`, its keys the sortable bytes of [`SortKey`], so a point read, a write
//! and a range of keys mean on PostgreSQL what they mean in the redb file.

use std::ops::Bound;

use tokio_postgres::types::ToSql;
use tokio_postgres::GenericClient;

pub use crate::store::keys::SortKey;

use super::PgError;

/// The redb tables, by their number in `store_rows`. Numbers are never reused or
/// moved: a new table is added at the end.
pub const TABLES: &[&str] = &[
    "meta",
    "projects",
    "nodes",
    "roots",
    "members",
    "positions",
    "ready",
    "events",
    "outbox",
    "tokens",
    "people",
    "audit",
    "audit_by_project",
    "runs",
    "watch",
    "hooks",
    "hook_expiry",
    "lines",
    "line_dependents",
    "deployed",
    "history",
    "latest",
    "notices",
    "forges",
    "changes",
    "open",
    "by_upstream",
];

/// The number of the table redb calls `name`.
pub fn table(name: &str) -> Option<i16> {
    TABLES
        .iter()
        .position(|t| *t == name)
        .and_then(|i| i16::try_from(i).ok())
}

pub async fn get(
    c: &impl GenericClient,
    tbl: i16,
    key: &impl SortKey,
) -> Result<Option<Vec<u8>>, PgError> {
    let row = c
        .query_opt(
            "SELECT value FROM store_rows WHERE tbl = $1 AND key = $2",
            &[&tbl, &key.to_bytes()],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

pub async fn put(
    c: &impl GenericClient,
    tbl: i16,
    key: &impl SortKey,
    value: &[u8],
) -> Result<(), PgError> {
    c.execute(
        "INSERT INTO store_rows (tbl, key, value) VALUES ($1, $2, $3)
         ON CONFLICT (tbl, key) DO UPDATE SET value = EXCLUDED.value",
        &[&tbl, &key.to_bytes(), &value],
    )
    .await?;
    Ok(())
}

/// Whether there was such a row.
pub async fn remove(c: &impl GenericClient, tbl: i16, key: &impl SortKey) -> Result<bool, PgError> {
    let removed = c
        .execute(
            "DELETE FROM store_rows WHERE tbl = $1 AND key = $2",
            &[&tbl, &key.to_bytes()],
        )
        .await?;
    Ok(removed == 1)
}

/// Which way a range is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Ascending,
    Descending,
}

/// At most `limit` rows of `tbl` whose keys are within `from` and `to`, in `order`.
pub async fn range<K: SortKey>(
    c: &impl GenericClient,
    tbl: i16,
    from: Bound<&K>,
    to: Bound<&K>,
    order: Order,
    limit: i64,
) -> Result<Vec<(K, Vec<u8>)>, PgError> {
    let bytes = |b: Bound<&K>| b.map(SortKey::to_bytes);
    let (low, high) = (bytes(from), bytes(to));
    let rows = range_bytes(
        c,
        tbl,
        low.as_ref().map(Vec::as_slice),
        high.as_ref().map(Vec::as_slice),
        order,
        limit,
    )
    .await?;
    rows.into_iter()
        .map(|(key, value)| Ok((read_key(tbl, &key)?, value)))
        .collect()
}

/// [`range`] of keys as their sortable bytes.
pub async fn range_bytes(
    c: &impl GenericClient,
    tbl: i16,
    from: Bound<&[u8]>,
    to: Bound<&[u8]>,
    order: Order,
    limit: i64,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>, PgError> {
    let mut sql = String::from("SELECT key, value FROM store_rows WHERE tbl = $1");
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&tbl];
    let (low, high) = (bound_key(&from), bound_key(&to));
    if let Some(low) = &low {
        params.push(low);
        let op = if matches!(from, Bound::Included(_)) {
            ">="
        } else {
            ">"
        };
        sql.push_str(&format!(" AND key {op} ${}", params.len()));
    }
    if let Some(high) = &high {
        params.push(high);
        let op = if matches!(to, Bound::Included(_)) {
            "<="
        } else {
            "<"
        };
        sql.push_str(&format!(" AND key {op} ${}", params.len()));
    }
    params.push(&limit);
    sql.push_str(match order {
        Order::Ascending => " ORDER BY key ASC",
        Order::Descending => " ORDER BY key DESC",
    });
    sql.push_str(&format!(" LIMIT ${}", params.len()));
    let rows = c.query(sql.as_str(), &params).await?;
    Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
}

fn bound_key<'a>(b: &Bound<&'a [u8]>) -> Option<&'a [u8]> {
    match b {
        Bound::Included(k) | Bound::Excluded(k) => Some(k),
        Bound::Unbounded => None,
    }
}

fn read_key<K: SortKey>(tbl: i16, key: &[u8]) -> Result<K, PgError> {
    K::from_bytes(key).ok_or_else(|| {
        PgError::Db(format!(
            "a key of table {} does not read as its table's keys",
            TABLES.get(tbl as usize).copied().unwrap_or("?")
        ))
    })
}

/// Rows of (key, value) columns of `tbl`, their keys read as its keys.
pub(super) fn keyed<K: SortKey>(
    tbl: i16,
    rows: Vec<tokio_postgres::Row>,
) -> Result<Vec<(K, Vec<u8>)>, PgError> {
    rows.into_iter()
        .map(|r| {
            let key: Vec<u8> = r.get(0);
            Ok((read_key(tbl, &key)?, r.get(1)))
        })
        .collect()
}

/// How many rows `tbl` holds.
pub async fn count(c: &impl GenericClient, tbl: i16) -> Result<i64, PgError> {
    Ok(
        c.query_one("SELECT count(*) FROM store_rows WHERE tbl = $1", &[&tbl])
            .await?
            .get(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{ReadableDatabase, TableHandle};

    #[test]
    fn every_table_of_the_redb_file_has_a_number() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = crate::store::Store::open(
            &dir.path().join("conjunction.redb"),
            &crate::store::StoreConfig::default(),
        )
        .unwrap();
        let read = store.database("test").unwrap().begin_read().unwrap();
        let mut names: Vec<String> = read
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_owned())
            .collect();
        names.sort();
        let mut numbered: Vec<String> = TABLES.iter().map(|t| (*t).to_owned()).collect();
        numbered.sort();
        assert_eq!(names, numbered);
        assert_eq!(table("projects"), Some(1));
        assert_eq!(table("by_upstream"), Some(26));
    }
}
