//! The redb store: the table layout, the records, the reads, and the one write
//! transaction through which the writer changes anything.
//!
//! Layout 2 (this one) keeps each root event's record small: its nodes are rows of
//! their own in `members` (the planner's view: state, parents, children) keyed by root
//! and position, and in `nodes` (what clients see) keyed by build id, so a report
//! reads and writes a few rows however large its event is. Layout 1 kept every
//! member inside the root's record; [`migrate`] turns such a database into this one
//! on first open.

mod backup;
mod engine;
mod keys;
mod migrate;
pub mod postgres;
mod read;
mod records;
mod verify;
mod write;

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use redb::{Database, TableDefinition};

use engine::{ReadTxn, WriteTxn};
use postgres::role::Role;
use postgres::tables::PgTxn;
use postgres::{PgEngine, PgError};

use serde::Deserialize;

pub use read::{BadgeFacts, RootPage, Snapshot};
pub use records::ForgeEntry;
pub use records::OutboxEntry;
pub(crate) use records::{ForgeMark, ForgeView, RootRecord, RunRecord, StoredProject};
pub use records::{NoticeEntry, PersonToken, Watched};
pub use write::WriteTx;

/// The database file inside the data directory.
pub const DATABASE_FILE: &str = "conjunction.redb";

/// The database's settings (`[store]` in the config file).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// A PostgreSQL connection string (no password in it): the store is then that
    /// database, which several daemons may share; without one it is the redb file
    /// in the data directory. See docs/operations.md.
    pub url: Option<String>,
    /// The file whose first line is PostgreSQL's password.
    pub password_file: Option<std::path::PathBuf>,
    /// Certificates that sign the PostgreSQL server's, beside the web's; TLS is then
    /// required.
    pub ca_file: Option<std::path::PathBuf>,
    /// How long the writer's role lasts without renewal on PostgreSQL: how long the
    /// other daemons wait for a writer that died before one of them takes over.
    #[serde(rename = "lease_ms", deserialize_with = "lease")]
    pub lease: std::time::Duration,
    /// Memory for redb's page cache, in bytes (`cache_mib` in the file). The cache
    /// grows to this size as pages are read and then stays; the daemon's resident
    /// memory is about this much plus what it serves. redb's own default is 1 GiB.
    #[serde(rename = "cache_mib", deserialize_with = "mebibytes")]
    pub cache_bytes: usize,
    /// Record redb's allocator state with every commit, so that a start after a crash
    /// takes milliseconds instead of reading the whole file (2.4 s at 1M builds), at
    /// about 10% more per commit. Off by default; see docs/operations.md.
    pub quick_repair: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: None,
            password_file: None,
            ca_file: None,
            lease: std::time::Duration::from_secs(5),
            cache_bytes: 64 << 20,
            quick_repair: false,
        }
    }
}

fn lease<'de, D: serde::Deserializer<'de>>(d: D) -> Result<std::time::Duration, D::Error> {
    let ms = u64::deserialize(d)?;
    if !(300..=600_000).contains(&ms) {
        return Err(serde::de::Error::custom(
            "lease_ms must be between 300 (0.3 s) and 600000 (10 min)",
        ));
    }
    Ok(std::time::Duration::from_millis(ms))
}

impl StoreConfig {
    /// Where the PostgreSQL store is, when one is set.
    pub fn postgres(&self) -> Option<postgres::PgConfig> {
        Some(postgres::PgConfig {
            url: self.url.clone()?,
            password_file: self.password_file.clone(),
            ca_file: self.ca_file.clone(),
        })
    }
}

fn mebibytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let mib = u32::deserialize(d)?;
    if mib == 0 {
        return Err(serde::de::Error::custom("cache_mib must be at least 1"));
    }
    Ok(usize::try_from(mib)
        .unwrap_or(usize::MAX)
        .saturating_mul(1 << 20))
}

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
/// SHA-256 of a person's token -> its [`PersonToken`]: name, scope, expiry, last use.
pub(crate) const PEOPLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("people");
/// Audit sequence number -> an [`conjunction_protocol::audit::AuditEntry`]: who
/// changed what.
pub(crate) const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// (project, audit sequence number): the audit trail of one project.
pub(crate) const AUDIT_BY_PROJECT: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("audit_by_project");

/// `project \n ci \n run id` -> the [`RunRecord`] of a native CI run conjunction knows.
pub(crate) const RUNS: TableDefinition<&str, &[u8]> = TableDefinition::new("runs");
/// Build id -> [`Watched`]: a build of a native CI that is triggered or running, and
/// when it last had news.
pub(crate) const WATCH: TableDefinition<u128, &[u8]> = TableDefinition::new("watch");
/// `project \n ci \n delivery id` -> when the webhook delivery was taken.
pub(crate) const HOOKS: TableDefinition<&str, u64> = TableDefinition::new("hooks");
/// (when, key of [`HOOKS`]): the same deliveries in the order they expire.
pub(crate) const HOOK_EXPIRY: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("hook_expiry");

/// (upstream, version) -> its [`conjunction_protocol::releases::ReleaseLine`]: the
/// upstream's runs of the version per environment (its dependents are rows of their own).
pub(crate) const LINES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("lines");
/// (upstream, version, dependent) -> the dependent's
/// [`conjunction_protocol::releases::LineDependent`] on that line.
pub(crate) const LINE_DEPENDENTS: TableDefinition<(&str, &str, &str), &[u8]> =
    TableDefinition::new("line_dependents");
/// (upstream, environment) -> the version the environment has now.
pub(crate) const DEPLOYED: TableDefinition<(&str, &str), &str> = TableDefinition::new("deployed");

/// (upstream, environment, project) -> the project's [`crate::planner::verdicts::History`]
/// against that upstream: what the next verdict compares with.
pub(crate) const HISTORY: TableDefinition<(&str, &str, &str), &[u8]> =
    TableDefinition::new("history");
/// Project -> its [`Latest`]: its own latest result and its latest finished cascades,
/// which its badges show.
pub(crate) const LATEST: TableDefinition<&str, &[u8]> = TableDefinition::new("latest");

/// Notice id -> its [`NoticeEntry`]: the notice outbox.
pub(crate) const NOTICES: TableDefinition<u128, &[u8]> = TableDefinition::new("notices");

/// Entry id -> its [`ForgeEntry`]: the forge outbox, at most one entry per event and
/// forge at a time.
pub(crate) const FORGES: TableDefinition<u128, &[u8]> = TableDefinition::new("forges");

/// (upstream, change) -> root id: each change's latest candidate event, which a newer
/// candidate of the same change supersedes.
pub(crate) const CHANGES: TableDefinition<(&str, &str), u128> = TableDefinition::new("changes");

/// Root id -> (): root events whose cascade started and has not finished.
pub(crate) const OPEN: TableDefinition<u128, ()> = TableDefinition::new("open");

/// (upstream, root id) -> (): each project's root events in order, so retention can
/// keep the last few of every upstream.
pub(crate) const BY_UPSTREAM: TableDefinition<(&str, u128), ()> =
    TableDefinition::new("by_upstream");
/// The META key set once `BY_UPSTREAM` holds every root event.
pub(crate) const BY_UPSTREAM_KEY: &str = "by_upstream";

pub(crate) const SEQ_KEY: &str = "seq";
/// The last audit sequence number.
pub(crate) const AUDIT_SEQ_KEY: &str = "audit_seq";
pub(crate) const LAYOUT_KEY: &str = "layout";
/// The table layout this daemon writes.
pub(crate) const LAYOUT: u64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    // Not a `source`: the message already says it, and `anyhow` would say it twice.
    #[error("database error: {0}")]
    Db(redb::Error),
    #[error("a stored record could not be read: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("the database contradicts itself: {0}")]
    Inconsistent(String),
    #[error("the database was written in layout {0}, newer than this daemon understands (layout {LAYOUT}); run the newer daemon")]
    NewerLayout(u64),
    #[error("{0}")]
    Pg(#[from] PgError),
    #[error("this daemon does not hold the writer's role ({0}); the write was not made")]
    NotWriter(String),
    #[error(
        "{0} works on a redb store, and this daemon's store is PostgreSQL, whose own tools \
         do it: pg_dump for a copy, pg_basebackup with WAL archiving for any point in time, \
         a synchronous standby to lose nothing when the database's machine fails \
         (docs/operations.md)"
    )]
    RedbOnly(&'static str),
    #[error("a database read was cancelled during shutdown")]
    ReadCancelled,
    #[error("a database read failed: {0}")]
    ReadPanicked(String),
    #[error(
        "the database file {} is damaged ({reason}). Restore it from a backup, or move it \
         aside to start with a new, empty database",
        path.display()
    )]
    Damaged {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error(
        "the database file {} is empty (0 bytes): it was truncated or never written, and \
         serving it would look like a new daemon that knows no project or token. Restore \
         it from a backup, or remove it to start with a new, empty database",
        .0.display()
    )]
    Empty(std::path::PathBuf),
    #[error(
        "the database file {} is open in a running daemon; check a backup of it \
         (conjunctiond backup --to FILE), or stop the daemon first",
        .0.display()
    )]
    InUse(std::path::PathBuf),
}

impl StoreError {
    /// Whether the error says this daemon may not write now (another daemon holds
    /// the writer's role, or this one just lost it): the client may try again.
    pub fn not_writer(&self) -> bool {
        matches!(
            self,
            StoreError::NotWriter(_) | StoreError::Pg(PgError::LeaseLost { .. })
        )
    }
}

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        StoreError::Db(e)
    }
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
    engine: Engine,
    quick_repair: bool,
}

/// What the store runs on.
#[derive(Clone)]
enum Engine {
    Redb(Arc<Database>),
    Pg(Arc<PgEngine>),
}

/// What the daemon reads from the store before it serves, read while the file is
/// opened so that a damaged page met here is reported as a damaged file.
pub struct Startup {
    pub(crate) projects: Vec<StoredProject>,
    /// Triggers queued and not yet delivered.
    pub outbox: Vec<OutboxEntry>,
    /// Notices queued and not yet sent or given up.
    pub notices: Vec<NoticeEntry>,
    /// Forge reports waiting to be sent.
    pub forges: Vec<ForgeEntry>,
    /// The planner left nodes to decide before the daemon stopped.
    pub has_ready: bool,
}

impl Store {
    /// Opens (or creates) the database at `path` with a page cache of `cache_bytes`,
    /// makes sure every table exists, brings a database of an older layout up to this
    /// one, and reads what the daemon needs to start.
    pub fn open(path: &Path, config: &StoreConfig) -> Result<(Self, Startup), StoreError> {
        // redb would make a zero-length file into a new database; an emptied file is a
        // lost one, and starting silently on it hides that.
        if std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
            return Err(StoreError::Empty(path.to_owned()));
        }
        let repairing = Arc::new(AtomicBool::new(false));
        let started = std::time::Instant::now();
        let mut builder = redb::Builder::new();
        builder.set_cache_size(config.cache_bytes);
        let flag = repairing.clone();
        builder.set_repair_callback(move |_| {
            if !flag.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "the database was not closed cleanly; verifying and repairing it before \
                     serving (this reads the whole file)"
                );
            }
        });
        // redb panics on some damaged pages instead of returning an error; either way
        // the operator is told which file it is and what to do.
        let opened = std::panic::catch_unwind(AssertUnwindSafe(|| -> Result<_, StoreError> {
            let db = builder.create(path)?;
            let migrated = migrate::to_current(&db)?;
            let store = Self {
                engine: Engine::Redb(Arc::new(db)),
                quick_repair: config.quick_repair,
            };
            let startup = store.startup()?;
            Ok((store, startup, migrated))
        }));
        let damaged = |reason: String| StoreError::Damaged {
            path: path.to_owned(),
            reason,
        };
        let (store, startup, migrated) = match opened {
            Ok(Err(StoreError::Db(redb::Error::Corrupted(reason)))) => return Err(damaged(reason)),
            Ok(Err(StoreError::Corrupt(e))) => return Err(damaged(e.to_string())),
            // redb's word for a file it cannot make sense of, such as a bad header.
            Ok(Err(StoreError::Db(redb::Error::Io(e))))
                if e.kind() == std::io::ErrorKind::InvalidData =>
            {
                return Err(damaged(e.to_string()))
            }
            Ok(result) => result?,
            Err(panic) => return Err(damaged(crate::health::panic_message(&*panic))),
        };
        if repairing.load(Ordering::Relaxed) {
            tracing::info!(took = ?started.elapsed(), "the database is repaired");
        }
        if let Some(done) = migrated {
            tracing::info!(
                from = done.from,
                to = LAYOUT,
                roots = done.roots,
                builds = done.builds,
                "migrated the database to the current layout"
            );
        }
        Ok((store, startup))
    }

    /// The store on PostgreSQL, whose schema the caller has migrated; what the daemon
    /// needs to start is read from it. From a thread that may block.
    pub fn open_pg(engine: PgEngine) -> Result<(Self, Startup), StoreError> {
        let store = Self {
            engine: Engine::Pg(Arc::new(engine)),
            quick_repair: false,
        };
        let startup = store.startup()?;
        Ok((store, startup))
    }

    fn startup(&self) -> Result<Startup, StoreError> {
        Ok(Startup {
            projects: self.stored_projects()?,
            outbox: self.outbox()?,
            notices: self.notices()?,
            forges: self.forges()?,
            has_ready: self.has_ready()?,
        })
    }

    /// A snapshot to read from. On PostgreSQL it blocks: call it from a thread that
    /// may (see [`Store::read`]).
    pub(crate) fn begin_read(&self) -> Result<ReadTxn, StoreError> {
        Ok(match &self.engine {
            Engine::Redb(db) => ReadTxn::Redb(redb::ReadableDatabase::begin_read(&**db)?),
            Engine::Pg(pg) => ReadTxn::Pg(PgTxn::snapshot(pg.readers())?),
        })
    }

    /// The writer's transaction; on PostgreSQL only while this daemon holds the
    /// writer's role, whose fence its commit checks.
    pub(crate) fn begin_write(&self) -> Result<WriteTxn, StoreError> {
        Ok(match &self.engine {
            Engine::Redb(db) => WriteTxn::Redb(db.begin_write()?),
            Engine::Pg(pg) => {
                let fence = match &*pg.role().borrow() {
                    Role::Writer { fence } => *fence,
                    Role::Starting => return Err(StoreError::NotWriter("it is starting".into())),
                    Role::Follower { writer } => {
                        return Err(StoreError::NotWriter(match writer {
                            Some(w) => format!("{} at {} holds it", w.holder, w.address),
                            None => "nobody holds it now".into(),
                        }))
                    }
                    Role::Unreachable { why } => {
                        return Err(StoreError::NotWriter(format!(
                            "the database cannot be reached: {why}"
                        )))
                    }
                };
                WriteTxn::Pg(PgTxn::write(pg.writer())?, fence)
            }
        })
    }

    /// How large the database is, in bytes: the redb file at `file`, or the
    /// PostgreSQL database (`pg_database_size`). Blocking on PostgreSQL.
    pub fn bytes(&self, file: &Path) -> Result<u64, StoreError> {
        match &self.engine {
            Engine::Redb(_) => Ok(std::fs::metadata(file).map_or(0, |f| f.len())),
            Engine::Pg(pg) => {
                let conn = pg.readers().get()?;
                let row = conn
                    .block_on(
                        conn.client()
                            .query_one("SELECT pg_database_size(current_database())", &[]),
                    )
                    .map_err(PgError::from)?;
                Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
            }
        }
    }

    /// On PostgreSQL, the fence of the writer's role while this daemon holds it.
    pub fn writer_fence(&self) -> Option<i64> {
        match &self.engine {
            Engine::Redb(_) => None,
            Engine::Pg(pg) => match &*pg.role().borrow() {
                Role::Writer { fence } => Some(*fence),
                _ => None,
            },
        }
    }

    /// Whether this daemon sends what the outboxes hold: always on redb; on
    /// PostgreSQL while it holds the writer's role (the writer hands a new writer's
    /// outboxes what is queued when it takes the role).
    pub fn sends_outboxes(&self) -> bool {
        match &self.engine {
            Engine::Redb(_) => true,
            Engine::Pg(_) => self.writer_fence().is_some(),
        }
    }

    /// Whether this daemon may send the outbox entry `key` of `table` now: always on
    /// redb; on PostgreSQL once it has claimed the entry for `hold`, unless another
    /// daemon's claim of it is running (a writer that was paused and has not yet
    /// seen that another took its role), so that two daemons never send one entry
    /// at once.
    pub async fn claim_to_send(
        &self,
        table: TableDefinition<'static, u128, &'static [u8]>,
        key: u128,
        hold: std::time::Duration,
    ) -> Result<postgres::claims::Claim, StoreError> {
        use redb::TableHandle;
        let Engine::Pg(pg) = &self.engine else {
            return Ok(postgres::claims::Claim::Mine);
        };
        let tbl = postgres::tables::number(table.name())?;
        let pg = pg.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pg.readers().get()?;
            let bytes = keys::SortKey::to_bytes(&key);
            conn.block_on(postgres::claims::claim_one(
                conn.client(),
                tbl,
                &bytes,
                pg.name(),
                hold,
            ))
        })
        .await
        .map_err(|e| StoreError::ReadPanicked(e.to_string()))?
        .map_err(StoreError::from)
    }

    /// Gives this daemon's claims of `table`'s entries back (of entry `key`, or of
    /// all): after a try that failed, so that the entry's next try is anyone's; at a
    /// stop, so that a daemon taking over need not wait for them to run out. Nothing
    /// on redb; a failure is only logged, as the claims run out anyway.
    pub async fn release_claims(
        &self,
        table: TableDefinition<'static, u128, &'static [u8]>,
        key: Option<u128>,
    ) {
        use redb::TableHandle;
        let Engine::Pg(pg) = &self.engine else {
            return;
        };
        let Ok(tbl) = postgres::tables::number(table.name()) else {
            return;
        };
        let pg = pg.clone();
        let released = tokio::task::spawn_blocking(move || {
            let conn = pg.readers().get()?;
            let key = key.map(|k| keys::SortKey::to_bytes(&k));
            conn.block_on(postgres::claims::release_mine(
                conn.client(),
                tbl,
                key.as_deref(),
                pg.name(),
            ))
        })
        .await;
        if let Ok(Err(e)) = released {
            tracing::debug!(error = %e, "could not give outbox claims back; they run out on their own");
        }
    }

    /// On PostgreSQL, whether another daemon holds the writer's role (or nobody, for
    /// the moment) and this one could read the lease on its last round.
    pub fn following(&self) -> bool {
        match &self.engine {
            Engine::Redb(_) => false,
            Engine::Pg(pg) => matches!(&*pg.role().borrow(), Role::Follower { .. }),
        }
    }

    /// On PostgreSQL, where the daemon that writes takes writes, while another one
    /// does (none on redb, while this daemon writes, or while nobody does).
    pub fn writer_address(&self) -> Option<String> {
        match &self.engine {
            Engine::Redb(_) => None,
            Engine::Pg(pg) => match &*pg.role().borrow() {
                Role::Follower { writer: Some(w) } => Some(w.address.clone()),
                _ => None,
            },
        }
    }

    /// This daemon's role among those sharing a PostgreSQL store (none on redb).
    pub fn role(&self) -> Option<tokio::sync::watch::Receiver<Role>> {
        match &self.engine {
            Engine::Redb(_) => None,
            Engine::Pg(pg) => Some(pg.role().clone()),
        }
    }

    /// Whether the store is PostgreSQL (reads then block, and go through
    /// [`Store::read`]).
    pub fn is_postgres(&self) -> bool {
        matches!(self.engine, Engine::Pg(_))
    }

    /// Reads the whole file at `path` and verifies every page's checksum, as redb does
    /// after a crash, without starting anything and without changing the file (it is
    /// opened read-only, and what the check writes stays in memory): for an operator
    /// checking a file (a backup, say) before serving it. Refused while a daemon has
    /// the file open. Returns its size in bytes.
    pub fn check(path: &Path) -> Result<u64, StoreError> {
        let damaged = |reason: String| StoreError::Damaged {
            path: path.to_owned(),
            reason,
        };
        let size = std::fs::metadata(path)
            .map_err(|e| StoreError::Db(redb::Error::Io(e)))?
            .len();
        if size == 0 {
            return Err(StoreError::Empty(path.to_owned()));
        }
        let _held = verify::not_in_use(path)?;
        let view =
            verify::CopyOnWrite::open(path).map_err(|e| StoreError::Db(redb::Error::Io(e)))?;
        let checked = std::panic::catch_unwind(AssertUnwindSafe(|| {
            redb::Builder::new()
                .set_check_integrity_on_open(true)
                .create_with_backend(view)
                .map(drop)
        }));
        match checked {
            Ok(Ok(())) => Ok(size),
            Ok(Err(e)) => match redb::Error::from(e) {
                redb::Error::Corrupted(reason) => Err(damaged(reason)),
                redb::Error::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    Err(damaged(e.to_string()))
                }
                other => Err(StoreError::Db(other)),
            },
            Err(panic) => Err(damaged(crate::health::panic_message(&*panic))),
        }
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
            .map_err(|e| match e.try_into_panic() {
                Ok(panic) => StoreError::ReadPanicked(crate::health::panic_message(&*panic)),
                Err(_) => StoreError::ReadCancelled,
            })?
    }

    /// A small read from async code (a point lookup): at once on redb, whose reads
    /// take microseconds and never wait, and on the blocking pool on PostgreSQL,
    /// whose reads wait for the server.
    pub async fn quick<T, F>(&self, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        match self.engine {
            Engine::Redb(_) => query(self),
            Engine::Pg(_) => self.read(query).await,
        }
    }

    /// Whether the writer's commits record redb's allocator state, so that a start
    /// after a crash need not read the whole file (see `[store] quick_repair`).
    pub(crate) fn quick_repair(&self) -> bool {
        self.quick_repair
    }

    /// The redb file, for what works on it alone (`what`: backup, say).
    pub(crate) fn database(&self, what: &'static str) -> Result<&Database, StoreError> {
        match &self.engine {
            Engine::Redb(db) => Ok(db),
            Engine::Pg(_) => Err(StoreError::RedbOnly(what)),
        }
    }
}
