//! The redb store: table layout, stored records, and read-only queries.
//!
//! Writes happen only in [`crate::writer`]; this module gives the tables, the record
//! types they hold and the queries the API and the feed run in read transactions.
//! Records are JSON, so a newer daemon can read what an older one wrote.

use std::path::Path;
use std::sync::Arc;

use conjunction_protocol::project::redact_url;
use conjunction_protocol::trigger::TriggerPayload;
use conjunction_protocol::{
    BuildId, Contact, Dependency, Node, Package, Project, ProjectId, RootEvent, RootSummary,
    StateKind, Timestamp, TriggerSpec,
};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::auth::hash_token;

pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(crate) const PROJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("projects");
pub(crate) const NODES: TableDefinition<u128, &[u8]> = TableDefinition::new("nodes");
pub(crate) const ROOTS: TableDefinition<u128, &[u8]> = TableDefinition::new("roots");
/// Sequence number -> the `ServerMessage::Event` JSON sent to websocket clients.
pub(crate) const EVENTS: TableDefinition<u64, &str> = TableDefinition::new("events");
pub(crate) const OUTBOX: TableDefinition<u128, &[u8]> = TableDefinition::new("outbox");
/// SHA-256 of a token -> who it belongs to.
pub(crate) const TOKENS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("tokens");

pub(crate) const SEQ_KEY: &str = "seq";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] redb::Error),
    #[error("a stored record could not be read: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("the database contradicts itself: {0}")]
    Inconsistent(String),
    #[error("a database read was cancelled during shutdown")]
    ReadCancelled,
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

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    Ok(serde_json::from_slice(bytes)?)
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value)
        .expect("records serialize: they hold only strings, numbers and maps with string keys")
}

/// A project as stored: its public fields, its trigger with secrets, and the hash of
/// its report token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredProject {
    pub id: ProjectId,
    pub name: String,
    pub contacts: Vec<Contact>,
    pub depends_on: Vec<Dependency>,
    pub trigger: Option<TriggerSpec>,
    pub package: Option<Package>,
    pub report_token_sha256: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl StoredProject {
    pub fn view(&self) -> Project {
        Project {
            id: self.id.clone(),
            name: self.name.clone(),
            contacts: self.contacts.clone(),
            depends_on: self.depends_on.clone(),
            trigger: self.trigger.as_ref().map(TriggerSpec::view),
            package: self.package.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    /// Equal in everything a user sets: the timestamps aside.
    pub fn same_settings(&self, other: &StoredProject) -> bool {
        let strip = |p: &StoredProject| StoredProject {
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
            ..p.clone()
        };
        strip(self) == strip(other)
    }
}

/// One node of an event as the root record indexes it: enough to plan the event
/// without reading every node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Member {
    pub id: BuildId,
    pub project: ProjectId,
    pub parents: Vec<u32>,
    pub state: StateKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_by: Option<u32>,
}

/// A root event as stored: what started it and the index of its nodes in planning
/// order (the root first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredRoot {
    pub id: BuildId,
    pub project: ProjectId,
    pub version: Option<String>,
    pub commit: Option<String>,
    pub git_ref: Option<String>,
    pub created_at: Timestamp,
    pub notes: Vec<String>,
    /// Set once the root passed and its dependents were planned.
    pub cascade_started: bool,
    pub members: Vec<Member>,
}

impl StoredRoot {
    pub fn summary(&self) -> RootSummary {
        let mut counts = std::collections::BTreeMap::new();
        for m in &self.members {
            *counts.entry(m.state).or_insert(0) += 1;
        }
        RootSummary {
            id: self.id,
            project: self.project.clone(),
            version: self.version.clone(),
            commit: self.commit.clone(),
            git_ref: self.git_ref.clone(),
            created_at: self.created_at,
            counts,
            notes: self.notes.clone(),
        }
    }

    pub fn index_of(&self, id: BuildId) -> Option<usize> {
        self.members.iter().position(|m| m.id == id)
    }
}

/// A trigger waiting to be delivered.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub build: BuildId,
    pub attempt: u32,
    pub project: ProjectId,
    /// The body to send; it holds the build-scoped token. Its report URL is set
    /// from the daemon's public URL when it is sent, so a changed URL applies.
    pub payload: TriggerPayload,
    /// Delivery attempts made so far.
    pub tries: u32,
    pub due: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl std::fmt::Debug for OutboxEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxEntry")
            .field("build", &self.build)
            .field("attempt", &self.attempt)
            .field("project", &self.project)
            .field("tries", &self.tries)
            .field("due", &self.due)
            .finish_non_exhaustive()
    }
}

/// Whom a report token speaks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Principal {
    /// A project's report token.
    Project { project: ProjectId },
    /// A build-scoped token, valid for one node and attempt.
    Build { build: BuildId, attempt: u32 },
}

/// The database, opened once and shared by the writer and every reader.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
}

impl Store {
    /// Opens (or creates) the database at `path` and makes sure every table exists.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        {
            txn.open_table(META)?;
            txn.open_table(PROJECTS)?;
            txn.open_table(NODES)?;
            txn.open_table(ROOTS)?;
            txn.open_table(EVENTS)?;
            txn.open_table(OUTBOX)?;
            txn.open_table(TOKENS)?;
        }
        txn.commit()?;
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

    pub(crate) fn stored_project(
        &self,
        id: &ProjectId,
    ) -> Result<Option<StoredProject>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PROJECTS)?;
        let found = table.get(id.as_str())?;
        found.map(|g| decode(g.value())).transpose()
    }

    pub fn project(&self, id: &ProjectId) -> Result<Option<Project>, StoreError> {
        Ok(self.stored_project(id)?.map(|p| p.view()))
    }

    pub fn projects(&self) -> Result<Vec<Project>, StoreError> {
        Ok(self
            .stored_projects()?
            .iter()
            .map(StoredProject::view)
            .collect())
    }

    pub(crate) fn stored_projects(&self) -> Result<Vec<StoredProject>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PROJECTS)?;
        let mut out = Vec::with_capacity(table.len()? as usize);
        for row in table.iter()? {
            let (_, v) = row?;
            out.push(decode(v.value())?);
        }
        Ok(out)
    }

    /// The trigger of a project, secrets included, for the dispatcher.
    pub fn trigger_of(&self, id: &ProjectId) -> Result<Option<TriggerSpec>, StoreError> {
        Ok(self.stored_project(id)?.and_then(|p| p.trigger))
    }

    pub fn node(&self, id: BuildId) -> Result<Option<Node>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(NODES)?;
        let found = table.get(id.0 .0)?;
        found.map(|g| decode::<Node>(g.value())).transpose()
    }

    /// Recent root events, newest first.
    pub fn roots(&self, limit: usize) -> Result<Vec<RootSummary>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ROOTS)?;
        let mut out = Vec::new();
        for row in table.iter()?.rev().take(limit) {
            let (_, v) = row?;
            out.push(decode::<StoredRoot>(v.value())?.summary());
        }
        Ok(out)
    }

    /// A root event with all its nodes.
    pub fn root(&self, id: BuildId) -> Result<Option<RootEvent>, StoreError> {
        let txn = self.db.begin_read()?;
        let roots = txn.open_table(ROOTS)?;
        let nodes = txn.open_table(NODES)?;
        let Some(stored) = roots
            .get(id.0 .0)?
            .map(|g| decode::<StoredRoot>(g.value()))
            .transpose()?
        else {
            return Ok(None);
        };
        read_root_event(&stored, &nodes).map(Some)
    }

    /// The current picture for a new websocket client, read in one transaction so the
    /// sequence number matches what it shows.
    pub fn snapshot(
        &self,
        roots_limit: usize,
    ) -> Result<(u64, Vec<Project>, Vec<RootEvent>), StoreError> {
        let txn = self.db.begin_read()?;
        let seq = txn.open_table(META)?.get(SEQ_KEY)?.map_or(0, |g| g.value());
        let projects_table = txn.open_table(PROJECTS)?;
        let mut projects = Vec::new();
        for row in projects_table.iter()? {
            projects.push(decode::<StoredProject>(row?.1.value())?.view());
        }
        let roots_table = txn.open_table(ROOTS)?;
        let nodes = txn.open_table(NODES)?;
        let mut roots = Vec::new();
        for row in roots_table.iter()?.rev().take(roots_limit) {
            let stored: StoredRoot = decode(row?.1.value())?;
            roots.push(read_root_event(&stored, &nodes)?);
        }
        Ok((seq, projects, roots))
    }

    /// The events after `after`, at most `max` of them, as their JSON messages; `None`
    /// when more than `max` were missed (the client should take a snapshot instead) or
    /// `after` is ahead of the log (the client knew another database).
    pub fn events_after(
        &self,
        after: u64,
        max: u64,
    ) -> Result<Option<Vec<(u64, String)>>, StoreError> {
        let txn = self.db.begin_read()?;
        let seq = txn.open_table(META)?.get(SEQ_KEY)?.map_or(0, |g| g.value());
        if after > seq || seq - after > max {
            return Ok(None);
        }
        let events = txn.open_table(EVENTS)?;
        let mut out = Vec::with_capacity((seq - after) as usize);
        for row in events.range(after + 1..=seq)? {
            let (k, v) = row?;
            out.push((k.value(), v.value().to_owned()));
        }
        Ok(Some(out))
    }

    /// Whom a report token speaks for, if anyone.
    pub fn principal(&self, token: &str) -> Result<Option<Principal>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TOKENS)?;
        let hash = hash_token(token);
        let found = table.get(hash.as_slice())?;
        found.map(|g| decode(g.value())).transpose()
    }

    /// Every trigger waiting for delivery, for the dispatcher at start-up.
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(OUTBOX)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            out.push(decode(row?.1.value())?);
        }
        Ok(out)
    }
}

fn read_root_event(
    stored: &StoredRoot,
    nodes: &impl ReadableTable<u128, &'static [u8]>,
) -> Result<RootEvent, StoreError> {
    let mut out = Vec::with_capacity(stored.members.len());
    for m in &stored.members {
        let Some(g) = nodes.get(m.id.0 .0)? else {
            return Err(StoreError::Inconsistent(format!(
                "root {} lists missing build {}",
                stored.id, m.id
            )));
        };
        out.push(decode::<Node>(g.value())?);
    }
    Ok(RootEvent {
        summary: stored.summary(),
        nodes: out,
    })
}

/// Shown in logs instead of a trigger's URL, which may carry credentials.
pub fn loggable_url(trigger: &TriggerSpec) -> String {
    match trigger {
        TriggerSpec::Webhook { url, .. } => redact_url(url),
    }
}
