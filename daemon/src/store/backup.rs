//! Online backup: a consistent copy of the whole database as of one moment, written
//! while the daemon serves. A read transaction is a snapshot (redb's MVCC), so the
//! copy holds exactly what was committed when it began, and the writer goes on
//! committing meanwhile. The copy is itself a database the daemon opens as it is.

use std::path::Path;

use redb::{ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, TableError};

use super::{
    Store, StoreError, AUDIT, AUDIT_BY_PROJECT, BY_UPSTREAM, CHANGES, DEPLOYED, EVENTS, FORGES,
    HISTORY, HOOKS, HOOK_EXPIRY, LATEST, LINES, LINE_DEPENDENTS, MEMBERS, META, NODES, NOTICES,
    OPEN, OUTBOX, PEOPLE, POSITIONS, PROJECTS, READY, ROOTS, RUNS, SEQ_KEY, TOKENS, WATCH,
};

/// What a backup holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backup {
    /// The sequence number of the last event in the copy: every change acknowledged
    /// before the backup began is at or below it.
    pub seq: u64,
    /// Rows copied, over every table.
    pub rows: u64,
}

impl Store {
    /// Writes a copy of the database as it is now to `to`, which must not exist.
    pub fn backup(&self, to: &Path) -> Result<Backup, StoreError> {
        let read = self.database("backup")?.begin_read()?;
        let seq = match read.open_table(META) {
            Ok(meta) => meta.get(SEQ_KEY)?.map_or(0, |g| g.value()),
            Err(TableError::TableDoesNotExist(_)) => 0,
            Err(e) => return Err(e.into()),
        };
        let copy = redb::Builder::new().create(to)?;
        let write = copy.begin_write()?;
        let mut rows = 0;
        rows += copy_table(&read, &write, META)?;
        rows += copy_table(&read, &write, PROJECTS)?;
        rows += copy_table(&read, &write, NODES)?;
        rows += copy_table(&read, &write, ROOTS)?;
        rows += copy_table(&read, &write, MEMBERS)?;
        rows += copy_table(&read, &write, POSITIONS)?;
        rows += copy_table(&read, &write, READY)?;
        rows += copy_table(&read, &write, EVENTS)?;
        rows += copy_table(&read, &write, OUTBOX)?;
        rows += copy_table(&read, &write, TOKENS)?;
        rows += copy_table(&read, &write, PEOPLE)?;
        rows += copy_table(&read, &write, AUDIT)?;
        rows += copy_table(&read, &write, AUDIT_BY_PROJECT)?;
        rows += copy_table(&read, &write, RUNS)?;
        rows += copy_table(&read, &write, WATCH)?;
        rows += copy_table(&read, &write, HOOKS)?;
        rows += copy_table(&read, &write, HOOK_EXPIRY)?;
        rows += copy_table(&read, &write, LINES)?;
        rows += copy_table(&read, &write, LINE_DEPENDENTS)?;
        rows += copy_table(&read, &write, DEPLOYED)?;
        rows += copy_table(&read, &write, HISTORY)?;
        rows += copy_table(&read, &write, LATEST)?;
        rows += copy_table(&read, &write, NOTICES)?;
        rows += copy_table(&read, &write, FORGES)?;
        rows += copy_table(&read, &write, CHANGES)?;
        rows += copy_table(&read, &write, OPEN)?;
        rows += copy_table(&read, &write, BY_UPSTREAM)?;
        write.commit()?;
        Ok(Backup { seq, rows })
    }
}

/// Copies every row of one table; a table the source does not have yet is skipped.
fn copy_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    read: &ReadTransaction,
    write: &redb::WriteTransaction,
    table: TableDefinition<K, V>,
) -> Result<u64, StoreError> {
    let from = match read.open_table(table) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let mut to = write.open_table(table)?;
    let mut n = 0;
    for row in from.iter()? {
        let (k, v) = row?;
        to.insert(k.value(), v.value())?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;
    use redb::TableHandle;

    #[test]
    fn a_backup_has_every_table_and_row_of_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(&dir.path().join("db.redb"), &StoreConfig::default()).unwrap();
        {
            let txn = store.database("test").unwrap().begin_write().unwrap();
            txn.open_table(PROJECTS)
                .unwrap()
                .insert("acme/lib", b"{}".as_slice())
                .unwrap();
            txn.open_table(META).unwrap().insert(SEQ_KEY, 42).unwrap();
            txn.commit().unwrap();
        }
        let to = dir.path().join("backup.redb");
        let backup = store.backup(&to).unwrap();
        assert_eq!(backup.seq, 42);
        let copy = redb::Database::open(&to).unwrap();
        let names = |db: &redb::Database| {
            let mut n: Vec<String> = db
                .begin_read()
                .unwrap()
                .list_tables()
                .unwrap()
                .map(|t| t.name().to_owned())
                .collect();
            n.sort();
            n
        };
        assert_eq!(
            names(&copy),
            names(store.database("test").unwrap()),
            "every table is copied"
        );
        let read = copy.begin_read().unwrap();
        assert!(read
            .open_table(PROJECTS)
            .unwrap()
            .get("acme/lib")
            .unwrap()
            .is_some());
        assert!(
            store.backup(&to).is_err(),
            "an existing file is not overwritten"
        );
    }
}
