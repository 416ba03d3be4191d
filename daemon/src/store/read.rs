//! Read-only queries: what the API and the feed show, each in one read transaction.

use conjunction_protocol::{
    BuildId, Node, Project, ProjectId, RootEvent, RootSummary, TriggerSpec,
};

use std::collections::BTreeMap;

use conjunction_protocol::audit::{AuditEntry, AuditPage};
use conjunction_protocol::releases::{LineDependent, ReleaseLine};

use super::engine::Readable;
use super::records::{
    decode, ForgeEntry, ForgeView, Latest, NoticeEntry, OutboxEntry, PersonToken, RootRecord,
    StoredProject, Watched,
};
use super::{
    Store, StoreError, AUDIT, AUDIT_BY_PROJECT, DEPLOYED, EVENTS, FORGES, LATEST, LINES,
    LINE_DEPENDENTS, MEMBERS, META, NODES, NOTICES, OPEN, OUTBOX, PEOPLE, POSITIONS, PROJECTS,
    READY, ROOTS, SEQ_KEY, TOKENS, WATCH,
};
use crate::auth::hash_token;
use crate::planner::{Member, Principal};

/// The picture a new feed client starts from, read in one transaction so that its
/// sequence number matches what it shows.
#[derive(Debug)]
pub struct Snapshot {
    pub seq: u64,
    pub projects: Vec<Project>,
    /// The newest root events' summaries, newest first.
    pub roots: Vec<RootSummary>,
    /// The newest of those events with their nodes, whole events within the budget.
    pub events: Vec<RootEvent>,
}

/// One page of a project's release lines.
#[derive(Debug)]
pub struct LinesPage {
    pub lines: Vec<ReleaseLine>,
    /// Older lines follow.
    pub more: bool,
    /// The version each environment has now.
    pub current: BTreeMap<String, String>,
}

/// What a project's badges are drawn from, read in one transaction.
#[derive(Debug, Clone)]
pub struct BadgeFacts {
    pub badges: conjunction_protocol::project::Badges,
    /// The project's own latest build that ran.
    pub own: Option<conjunction_protocol::Baseline>,
    /// Its latest finished cascade, and the one before.
    pub finished: Option<RootSummary>,
    pub previous: Option<RootSummary>,
}

/// One page of a root event's nodes, or why there is none.
#[derive(Debug)]
pub enum RootPage {
    Found(Box<RootEvent>),
    /// No root event has this id.
    NoRoot,
    /// The `after` build is not a node of this root event.
    NoSuchAfter,
}

impl Store {
    pub(crate) fn stored_project(
        &self,
        id: &ProjectId,
    ) -> Result<Option<StoredProject>, StoreError> {
        let txn = self.begin_read()?;
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
        let txn = self.begin_read()?;
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

    /// What `id`'s badges show; none when no such project is registered.
    pub fn badge_facts(&self, id: &ProjectId) -> Result<Option<BadgeFacts>, StoreError> {
        let txn = self.begin_read()?;
        let projects = txn.open_table(PROJECTS)?;
        let Some(project) = projects.get(id.as_str())? else {
            return Ok(None);
        };
        let project: StoredProject = decode(project.value())?;
        let latest: Latest = match txn.open_table(LATEST)?.get(id.as_str())? {
            Some(g) => decode(g.value())?,
            None => Latest::default(),
        };
        let roots = txn.open_table(ROOTS)?;
        let summary = |root: Option<BuildId>| -> Result<Option<RootSummary>, StoreError> {
            let Some(root) = root else { return Ok(None) };
            let found = roots.get(root.0 .0)?;
            Ok(found
                .map(|g| decode::<RootRecord>(g.value()))
                .transpose()?
                .map(|r| r.summary()))
        };
        Ok(Some(BadgeFacts {
            badges: project.badges,
            own: latest.own,
            finished: summary(latest.finished)?,
            previous: summary(latest.previous)?,
        }))
    }

    pub fn node(&self, id: BuildId) -> Result<Option<Node>, StoreError> {
        let txn = self.begin_read()?;
        let table = txn.open_table(NODES)?;
        let found = table.get(id.0 .0)?;
        found.map(|g| decode::<Node>(g.value())).transpose()
    }

    /// Recent root events, newest first.
    pub fn roots(&self, limit: usize) -> Result<Vec<RootSummary>, StoreError> {
        let txn = self.begin_read()?;
        let table = txn.open_table(ROOTS)?;
        let mut out = Vec::new();
        for row in table.iter()?.rev().take(limit) {
            let (_, v) = row?;
            out.push(decode::<RootRecord>(v.value())?.summary());
        }
        Ok(out)
    }

    /// Up to `limit` nodes of a root event in planning order, starting after the node
    /// `after` (from the first when `None`).
    pub fn root_page(
        &self,
        id: BuildId,
        after: Option<BuildId>,
        limit: usize,
    ) -> Result<RootPage, StoreError> {
        let txn = self.begin_read()?;
        let roots = txn.open_table(ROOTS)?;
        let Some(record) = roots
            .get(id.0 .0)?
            .map(|g| decode::<RootRecord>(g.value()))
            .transpose()?
        else {
            return Ok(RootPage::NoRoot);
        };
        let members = txn.open_table(MEMBERS)?;
        let start = match after {
            None => 0,
            Some(after) => {
                let positions = txn.open_table(POSITIONS)?;
                let Some(at) = positions.get(after.0 .0)?.map(|g| g.value()) else {
                    return Ok(RootPage::NoSuchAfter);
                };
                let owner = members.get((id.0 .0, at))?;
                if owner
                    .map(|g| decode::<Member>(g.value()))
                    .transpose()?
                    .map(|m| m.id)
                    != Some(after)
                {
                    return Ok(RootPage::NoSuchAfter);
                }
                at + 1
            }
        };
        let nodes = txn.open_table(NODES)?;
        let (page, more) = read_nodes(&record, &members, &nodes, start, limit)?;
        let next_after = more.then(|| page.last().map(|n| n.id)).flatten();
        Ok(RootPage::Found(Box::new(RootEvent {
            summary: record.summary(),
            nodes: page,
            next_after,
        })))
    }

    /// The current picture for a new websocket client: every project, the summaries
    /// of the `roots_limit` newest root events, and the nodes of as many of those
    /// (newest first, whole events only) as fit in `node_budget` nodes.
    /// Up to `limit` of the release lines of `project`, newest first (by when each
    /// version was first reported), starting below the line of `before`, each with its
    /// dependents; and the version each environment has now.
    pub fn releases(
        &self,
        project: &ProjectId,
        before: Option<&str>,
        limit: usize,
    ) -> Result<LinesPage, StoreError> {
        let txn = self.begin_read()?;
        let lines = txn.open_table(LINES)?;
        let mut all: Vec<ReleaseLine> = Vec::new();
        for row in lines.range((project.as_str(), "")..)? {
            let (key, value) = row?;
            if key.value().0 != project.as_str() {
                break;
            }
            all.push(decode(value.value())?);
        }
        all.sort_by(|a, b| (b.created_at, &b.version).cmp(&(a.created_at, &a.version)));
        let start = match before {
            None => 0,
            Some(v) => all
                .iter()
                .position(|l| l.version == v)
                .map_or(all.len(), |i| i + 1),
        };
        let more = all.len() > start + limit;
        let dependents = txn.open_table(LINE_DEPENDENTS)?;
        let mut page = Vec::new();
        for mut line in all.into_iter().skip(start).take(limit) {
            line.dependents = line_dependents(&dependents, project, &line.version)?;
            page.push(line);
        }
        let current = deployed(&txn.open_table(DEPLOYED)?, project)?;
        Ok(LinesPage {
            lines: page,
            more,
            current,
        })
    }

    /// The release line of `version` of `project` with its dependents, and the
    /// version each environment has now.
    pub fn release_line(
        &self,
        project: &ProjectId,
        version: &str,
    ) -> Result<(Option<ReleaseLine>, BTreeMap<String, String>), StoreError> {
        let txn = self.begin_read()?;
        let lines = txn.open_table(LINES)?;
        let found = lines.get((project.as_str(), version))?;
        let mut line: Option<ReleaseLine> = found.map(|g| decode(g.value())).transpose()?;
        if let Some(line) = &mut line {
            let dependents = txn.open_table(LINE_DEPENDENTS)?;
            line.dependents = line_dependents(&dependents, project, version)?;
        }
        let current = deployed(&txn.open_table(DEPLOYED)?, project)?;
        Ok((line, current))
    }

    /// The sequence number of the last committed event.
    pub fn seq(&self) -> Result<u64, StoreError> {
        let txn = self.begin_read()?;
        let meta = txn.open_table(META)?;
        let seq = meta.get(SEQ_KEY)?.map_or(0, |g| g.value());
        Ok(seq)
    }

    pub fn snapshot(&self, roots_limit: usize, node_budget: usize) -> Result<Snapshot, StoreError> {
        let txn = self.begin_read()?;
        let seq = txn.open_table(META)?.get(SEQ_KEY)?.map_or(0, |g| g.value());
        let projects_table = txn.open_table(PROJECTS)?;
        let mut projects = Vec::new();
        for row in projects_table.iter()? {
            projects.push(decode::<StoredProject>(row?.1.value())?.view());
        }
        let roots_table = txn.open_table(ROOTS)?;
        let members = txn.open_table(MEMBERS)?;
        let nodes = txn.open_table(NODES)?;
        let mut roots = Vec::new();
        let mut events = Vec::new();
        let mut budget = node_budget;
        for row in roots_table.iter()?.rev().take(roots_limit) {
            let record: RootRecord = decode(row?.1.value())?;
            roots.push(record.summary());
            let size = record.size as usize;
            if size <= budget {
                budget -= size;
                let (all, _) = read_nodes(&record, &members, &nodes, 0, size)?;
                events.push(RootEvent {
                    summary: record.summary(),
                    nodes: all,
                    next_after: None,
                });
            }
        }
        Ok(Snapshot {
            seq,
            projects,
            roots,
            events,
        })
    }

    /// The events after `after`, at most `max` of them, as their JSON messages; `None`
    /// when more than `max` were missed (the client should take a snapshot instead) or
    /// `after` is ahead of the log (the client knew another database).
    pub fn events_after(
        &self,
        after: u64,
        max: u64,
    ) -> Result<Option<Vec<(u64, String)>>, StoreError> {
        let txn = self.begin_read()?;
        let seq = txn.open_table(META)?.get(SEQ_KEY)?.map_or(0, |g| g.value());
        if after > seq || seq - after > max {
            return Ok(None);
        }
        let events = txn.open_table(EVENTS)?;
        // Retention pruned events the client has not seen: it starts from a snapshot.
        let first = events.first()?.map(|(k, _)| k.value());
        if seq > after && first.is_none_or(|first| first > after + 1) {
            return Ok(None);
        }
        let mut out = Vec::with_capacity((seq - after) as usize);
        for row in events.range(after + 1..=seq)? {
            let (k, v) = row?;
            out.push((k.value(), v.value().to_owned()));
        }
        Ok(Some(out))
    }

    /// Up to `limit` events after `after`, as their JSON messages, oldest first.
    pub fn events_chunk(&self, after: u64, limit: usize) -> Result<Vec<(u64, String)>, StoreError> {
        let txn = self.begin_read()?;
        let events = txn.open_table(EVENTS)?;
        let mut out = Vec::with_capacity(limit.min(1024));
        for row in events.range(after + 1..)?.take(limit) {
            let (k, v) = row?;
            out.push((k.value(), v.value().to_owned()));
        }
        Ok(out)
    }

    /// Whom a report token speaks for, if anyone.
    pub fn principal(&self, token: &str) -> Result<Option<Principal>, StoreError> {
        let txn = self.begin_read()?;
        let table = txn.open_table(TOKENS)?;
        let hash = hash_token(token);
        let found = table.get(hash.as_slice())?;
        found.map(|g| decode(g.value())).transpose()
    }

    /// The person `token` belongs to, if it was issued and not revoked.
    pub fn person(&self, token: &str) -> Result<Option<PersonToken>, StoreError> {
        let txn = self.begin_read()?;
        let table = txn.open_table(PEOPLE)?;
        let found = table.get(hash_token(token).as_slice())?;
        found.map(|g| decode(g.value())).transpose()
    }

    /// A page of the audit trail, newest first: of one project, or of everything;
    /// the entries before `before` when it is given.
    pub fn audit(
        &self,
        project: Option<&ProjectId>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<AuditPage, StoreError> {
        let txn = self.begin_read()?;
        let audit = txn.open_table(AUDIT)?;
        let end = before.unwrap_or(u64::MAX);
        let mut seqs = Vec::with_capacity(limit + 1);
        match project {
            Some(p) => {
                let index = txn.open_table(AUDIT_BY_PROJECT)?;
                for row in index.range((p.as_str(), 0)..(p.as_str(), end))?.rev() {
                    seqs.push(row?.0.value().1);
                    if seqs.len() > limit {
                        break;
                    }
                }
            }
            None => {
                for row in audit.range(..end)?.rev() {
                    seqs.push(row?.0.value());
                    if seqs.len() > limit {
                        break;
                    }
                }
            }
        }
        let more = seqs.len() > limit;
        seqs.truncate(limit);
        let mut entries = Vec::with_capacity(seqs.len());
        for seq in &seqs {
            if let Some(found) = audit.get(seq)? {
                entries.push(decode::<AuditEntry>(found.value())?);
            }
        }
        Ok(AuditPage {
            next_before: more.then(|| seqs.last().copied()).flatten(),
            entries,
        })
    }

    /// Every person's token, oldest first.
    pub fn people(&self) -> Result<Vec<PersonToken>, StoreError> {
        let txn = self.begin_read()?;
        let mut out: Vec<PersonToken> = Vec::new();
        for row in txn.open_table(PEOPLE)?.iter()? {
            out.push(decode(row?.1.value())?);
        }
        out.sort_by(|a, b| (a.info.created_at, &a.info.id).cmp(&(b.info.created_at, &b.info.id)));
        Ok(out)
    }

    /// Whether the planner left nodes to decide (before a restart, say).
    pub fn has_ready(&self) -> Result<bool, StoreError> {
        let txn = self.begin_read()?;
        let ready = txn.open_table(READY)?;
        let any = ready.first()?.is_some();
        Ok(any)
    }

    /// Every build of a native CI that is triggered or running, for the reconciler.
    pub fn watched(&self) -> Result<Vec<Watched>, StoreError> {
        let txn = self.begin_read()?;
        let table = txn.open_table(WATCH)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            out.push(decode(row?.1.value())?);
        }
        Ok(out)
    }

    /// Every trigger waiting for delivery, for the dispatcher at start-up.
    /// How many events the event log keeps, and how many cascades are in progress.
    pub fn sizes(&self) -> Result<(u64, u64), StoreError> {
        let txn = self.begin_read()?;
        let events = txn.open_table(EVENTS)?.len()?;
        let open = txn.open_table(OPEN)?.len()?;
        Ok((events, open))
    }

    /// Every notice not yet sent or given up, oldest first.
    pub fn notices(&self) -> Result<Vec<NoticeEntry>, StoreError> {
        let txn = self.begin_read()?;
        let table = txn.open_table(NOTICES)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (_, v) = row?;
            out.push(decode(v.value())?);
        }
        Ok(out)
    }

    /// Every forge report waiting to be sent.
    pub fn forges(&self) -> Result<Vec<ForgeEntry>, StoreError> {
        let txn = self.begin_read()?;
        let table = txn.open_table(FORGES)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            out.push(decode(row?.1.value())?);
        }
        Ok(out)
    }

    /// What a forge report about event `root` shows: the event's record, its root
    /// build and the upstream as stored (with its `report_to` credentials), and the
    /// event's first `rows` dependents (for a table of them); `None` when the event
    /// is gone (pruned by retention).
    pub(crate) fn forge_view(
        &self,
        root: BuildId,
        rows: usize,
    ) -> Result<Option<ForgeView>, StoreError> {
        let txn = self.begin_read()?;
        let roots = txn.open_table(ROOTS)?;
        let Some(record) = roots
            .get(root.0 .0)?
            .map(|g| decode::<RootRecord>(g.value()))
            .transpose()?
        else {
            return Ok(None);
        };
        let nodes = txn.open_table(NODES)?;
        let Some(root_node) = nodes
            .get(root.0 .0)?
            .map(|g| decode::<Node>(g.value()))
            .transpose()?
        else {
            return Ok(None);
        };
        let projects = txn.open_table(PROJECTS)?;
        let Some(upstream) = projects
            .get(record.project.as_str())?
            .map(|g| decode::<StoredProject>(g.value()))
            .transpose()?
        else {
            return Ok(None);
        };
        let dependents = if rows > 0 && record.size > 1 {
            let members = txn.open_table(MEMBERS)?;
            let (mut read, _) = read_nodes(&record, &members, &nodes, 1, rows)?;
            read.retain(|n| !n.is_root());
            read
        } else {
            Vec::new()
        };
        Ok(Some(ForgeView {
            record,
            root: root_node,
            upstream,
            dependents,
        }))
    }

    pub fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        let txn = self.begin_read()?;
        let table = txn.open_table(OUTBOX)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            out.push(decode(row?.1.value())?);
        }
        Ok(out)
    }
}

/// Up to `limit` nodes of an event from position `start` on, and whether more follow.
fn read_nodes(
    record: &RootRecord,
    members: &impl Readable<(u128, u32), &'static [u8]>,
    nodes: &impl Readable<u128, &'static [u8]>,
    start: u32,
    limit: usize,
) -> Result<(Vec<Node>, bool), StoreError> {
    let root = record.id.0 .0;
    let mut out = Vec::with_capacity(limit.min(record.size as usize));
    let mut rows = members.range((root, start)..=(root, u32::MAX))?;
    for row in rows.by_ref().take(limit) {
        let member: Member = decode(row?.1.value())?;
        let Some(g) = nodes.get(member.id.0 .0)? else {
            return Err(StoreError::Inconsistent(format!(
                "root {} lists missing build {}",
                record.id, member.id
            )));
        };
        out.push(decode::<Node>(g.value())?);
    }
    Ok((out, rows.next().is_some()))
}

/// Every dependent on the line of `version` of `upstream`, by project.
pub(super) fn line_dependents(
    table: &impl Readable<(&'static str, &'static str, &'static str), &'static [u8]>,
    upstream: &ProjectId,
    version: &str,
) -> Result<Vec<LineDependent>, StoreError> {
    let mut out = Vec::new();
    for row in table.range((upstream.as_str(), version, "")..)? {
        let (key, value) = row?;
        let (u, v, _) = key.value();
        if (u, v) != (upstream.as_str(), version) {
            break;
        }
        out.push(decode(value.value())?);
    }
    Ok(out)
}

/// The version each environment has now.
fn deployed(
    table: &impl Readable<(&'static str, &'static str), &'static str>,
    upstream: &ProjectId,
) -> Result<BTreeMap<String, String>, StoreError> {
    let mut out = BTreeMap::new();
    for row in table.range((upstream.as_str(), "")..)? {
        let (key, value) = row?;
        let (u, environment) = key.value();
        if u != upstream.as_str() {
            break;
        }
        out.insert(environment.to_owned(), value.value().to_owned());
    }
    Ok(out)
}
