//! The redb store: the table layout, the records, the reads, and the one write
//! transaction through which the writer changes anything.
//!
//! Layout 2 (this one) keeps each root event's record small: its nodes are rows of
//! their own in `members` (the planner's view: state, parents, children) keyed by root
//! and position, and in `nodes` (what clients see) keyed by build id, so a report
//! reads and writes a few rows however large its event is. Layout 1 kept every
//! member inside the root's record; [`migrate`] turns such a database into this one
//! on first open.

mod migrate;
mod read;
mod records;
mod write;

use std::path::Path;
use std::sync::Arc;

use redb::{Database, TableDefinition};

pub use read::{RootPage, Snapshot};
pub use records::OutboxEntry;
pub(crate) use records::{RootRecord, StoredProject};
pub use write::WriteTx;

pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(crate) const PROJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("projects");
/// Build id -> the node as clients see it.
pub(crate) const NODES: TableDefinition<u128, &[u8]> = TableDefinition::new("nodes");
/// Root id -> its [`RootRecord`].
pub(crate) const ROOTS: TableDefinition<u128, &[u8]> = TableDefinition::new("roots");
/// (root id, position) -> the planner's [`crate::planner::Member`].
pub(crate) const MEMBERS: TableDefinition<(u128, u32), &[u8]> = TableDefinition::new("members");
/// Build id -> its position in its root event.
pub(crate) const POSITIONS: TableDefinition<u128, u32> = TableDefinition::new("positions");
/// (root id, position) of a node the planner has yet to decide: the cascade executor
/// decides a bounded number per transaction and carries on with these in the next.
pub(crate) const READY: TableDefinition<(u128, u32), ()> = TableDefinition::new("ready");
/// Sequence number -> the `ServerMessage::Event` JSON sent to websocket clients.
pub(crate) const EVENTS: TableDefinition<u64, &str> = TableDefinition::new("events");
pub(crate) const OUTBOX: TableDefinition<u128, &[u8]> = TableDefinition::new("outbox");
/// SHA-256 of a token -> whom it speaks for.
pub(crate) const TOKENS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("tokens");

pub(crate) const SEQ_KEY: &str = "seq";
pub(crate) const LAYOUT_KEY: &str = "layout";
/// The table layout this daemon writes.
pub(crate) const LAYOUT: u64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] redb::Error),
    #[error("a stored record could not be read: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("the database contradicts itself: {0}")]
    Inconsistent(String),
    #[error("the database was written in layout {0}, newer than this daemon understands (layout {LAYOUT}); run the newer daemon")]
    NewerLayout(u64),
    #[error("a database read was cancelled during shutdown")]
    ReadCancelled,
    #[error(
        "the database file {} is empty (0 bytes): it was truncated or never written, and \
         serving it would look like a new daemon that knows no project or token. Restore \
         it from a backup, or remove it to start with a new, empty database",
        .0.display()
    )]
    Empty(std::path::PathBuf),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// The database, opened once and shared by the writer and every reader.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
}

impl Store {
    /// Opens (or creates) the database at `path`, makes sure every table exists, and
    /// brings a database of an older layout up to this one.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // redb would make a zero-length file into a new database; an emptied file is a
        // lost one, and starting silently on it hides that.
        if std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
            return Err(StoreError::Empty(path.to_owned()));
        }
        let db = Database::create(path)?;
        if let Some(done) = migrate::to_current(&db)? {
            tracing::info!(
                from = done.from,
                to = LAYOUT,
                roots = done.roots,
                builds = done.builds,
                "migrated the database to the current layout"
            );
        }
        Ok(Self { db: Arc::new(db) })
    }

    /// Runs a larger query on the blocking pool, so reading many nodes never holds up
    /// the async workers that serve requests.
    pub async fn read<T, F>(&self, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || query(&store))
            .await
            .map_err(|_| StoreError::ReadCancelled)?
    }

    pub(crate) fn database(&self) -> &Database {
        &self.db
    }
}
