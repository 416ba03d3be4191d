//! Bringing a database of an older layout up to the current one, on first open.
//!
//! Layout 1 (conjunctiond 0.1.0) kept each root event as one record that listed all
//! its builds (`members`: id, project, parent positions, state, blocker). Layout 2
//! keeps the record small and gives each build a member row keyed by root and
//! position, plus its position by build id. Nodes, the event log, the outbox, tokens
//! and projects are the same in both and are not touched. The whole migration is one
//! write transaction: a crash part-way leaves the database as it was, and the next
//! start migrates again.

use std::collections::BTreeMap;

use conjunction_protocol::{BuildId, ProjectId, StateKind, Timestamp};
use redb::{Database, ReadableTable};
use serde::Deserialize;

use super::records::{decode, encode, RootRecord};
use super::{
    StoreError, AUDIT, AUDIT_BY_PROJECT, BY_UPSTREAM, BY_UPSTREAM_KEY, CHANGES, DEPLOYED, EVENTS,
    FORGES, HISTORY, HOOKS, HOOK_EXPIRY, LATEST, LAYOUT, LAYOUT_KEY, LINES, LINE_DEPENDENTS,
    MEMBERS, META, NODES, NOTICES, OPEN, OUTBOX, PEOPLE, POSITIONS, PROJECTS, READY, ROOTS, RUNS,
    TOKENS, WATCH,
};
use crate::planner::Member;

/// What a migration did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    pub from: u64,
    pub roots: usize,
    pub builds: usize,
}

/// A root event as layout 1 stored it.
#[derive(Deserialize)]
struct RootV1 {
    id: BuildId,
    project: ProjectId,
    version: Option<String>,
    commit: Option<String>,
    git_ref: Option<String>,
    created_at: Timestamp,
    notes: Vec<String>,
    cascade_started: bool,
    members: Vec<MemberV1>,
}

#[derive(Deserialize)]
struct MemberV1 {
    id: BuildId,
    project: ProjectId,
    parents: Vec<u32>,
    state: StateKind,
    #[serde(default)]
    blocked_by: Option<u32>,
}

/// Creates the tables of a new database, or migrates an older one; `Some` when
/// something was migrated.
pub(super) fn to_current(db: &Database) -> Result<Option<Migrated>, StoreError> {
    let txn = db.begin_write()?;
    let migrated = {
        let mut meta = txn.open_table(META)?;
        let layout = meta.get(LAYOUT_KEY)?.map(|g| g.value());
        txn.open_table(PROJECTS)?;
        txn.open_table(NODES)?;
        txn.open_table(ROOTS)?;
        txn.open_table(OUTBOX)?;
        txn.open_table(EVENTS)?;
        txn.open_table(TOKENS)?;
        txn.open_table(PEOPLE)?;
        txn.open_table(AUDIT)?;
        txn.open_table(AUDIT_BY_PROJECT)?;
        txn.open_table(MEMBERS)?;
        txn.open_table(POSITIONS)?;
        txn.open_table(READY)?;
        txn.open_table(RUNS)?;
        txn.open_table(WATCH)?;
        txn.open_table(HOOKS)?;
        txn.open_table(HOOK_EXPIRY)?;
        txn.open_table(LINES)?;
        txn.open_table(LINE_DEPENDENTS)?;
        txn.open_table(DEPLOYED)?;
        txn.open_table(HISTORY)?;
        txn.open_table(LATEST)?;
        txn.open_table(NOTICES)?;
        txn.open_table(FORGES)?;
        txn.open_table(CHANGES)?;
        txn.open_table(OPEN)?;
        if meta.get(BY_UPSTREAM_KEY)?.is_none() {
            index_by_upstream(&txn)?;
            meta.insert(BY_UPSTREAM_KEY, 1)?;
        }
        match layout {
            Some(LAYOUT) => return Ok(None),
            Some(newer) if newer > LAYOUT => return Err(StoreError::NewerLayout(newer)),
            // Layout 1 had no layout key; a brand-new database has no roots to move.
            _ => {
                let moved = from_layout_1(&txn)?;
                meta.insert(LAYOUT_KEY, LAYOUT)?;
                moved
            }
        }
    };
    txn.commit()?;
    Ok((migrated.roots > 0).then_some(migrated))
}

/// Lists every root event under its upstream (databases written before retention).
fn index_by_upstream(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    let roots = txn.open_table(ROOTS)?;
    let mut index = txn.open_table(BY_UPSTREAM)?;
    for row in roots.iter()? {
        let (key, value) = row?;
        // Layout 1 records hold the project too, under the same name.
        #[derive(serde::Deserialize)]
        struct Project {
            project: String,
        }
        let record: Project = decode(value.value())?;
        index.insert((record.project.as_str(), key.value()), ())?;
    }
    Ok(())
}

fn from_layout_1(txn: &redb::WriteTransaction) -> Result<Migrated, StoreError> {
    let mut roots = txn.open_table(ROOTS)?;
    let mut members = txn.open_table(MEMBERS)?;
    let mut positions = txn.open_table(POSITIONS)?;
    let ids: Vec<u128> = roots
        .iter()?
        .map(|row| row.map(|(k, _)| k.value()))
        .collect::<Result<_, _>>()?;
    let mut builds = 0;
    for key in &ids {
        let old: RootV1 = {
            let found = roots.get(*key)?.ok_or_else(|| {
                StoreError::Inconsistent(format!("root {key} vanished while migrating"))
            })?;
            decode(found.value())?
        };
        let mut children: Vec<Vec<u32>> = vec![Vec::new(); old.members.len()];
        for (i, m) in old.members.iter().enumerate() {
            for &p in &m.parents {
                let parent = children.get_mut(p as usize).ok_or_else(|| {
                    StoreError::Inconsistent(format!(
                        "root {} lists build {} with parent position {p}, which it does not have",
                        old.id, m.id
                    ))
                })?;
                parent.push(i as u32);
            }
        }
        let mut counts = BTreeMap::new();
        for (i, m) in old.members.iter().enumerate() {
            let waiting = m
                .parents
                .iter()
                .filter(|&&p| old.members[p as usize].state != StateKind::Passed)
                .count() as u32;
            let member = Member {
                id: m.id,
                project: m.project.clone(),
                state: m.state,
                blocked_by: m.blocked_by,
                parents: m.parents.clone(),
                children: std::mem::take(&mut children[i]),
                waiting,
            };
            members.insert((*key, i as u32), encode(&member).as_slice())?;
            positions.insert(m.id.0 .0, i as u32)?;
            *counts.entry(m.state).or_insert(0u32) += 1;
        }
        builds += old.members.len();
        let record = RootRecord {
            id: old.id,
            project: old.project,
            version: old.version,
            commit: old.commit,
            git_ref: old.git_ref,
            environment: None,
            rollback_from: None,
            created_at: old.created_at,
            notes: old.notes,
            not_promoted: Vec::new(),
            cascade_started: old.cascade_started,
            counts,
            verdicts: Default::default(),
            named: Default::default(),
            digest_queued: false,
            size: old.members.len() as u32,
            reported_by: None,
            forge: Vec::new(),
            candidate: None,
            superseded_by: None,
            ended: None,
        };
        roots.insert(*key, encode(&record).as_slice())?;
    }
    Ok(Migrated {
        from: 1,
        roots: ids.len(),
        builds,
    })
}
