//! The write transaction: every change the writer makes goes through these methods,
//! which speak in records and domain types. Nothing outside this room names a table,
//! so another storage engine could stand behind the same methods.

use std::sync::Arc;

use super::engine::{Readable, Table, WriteTxn};
use conjunction_protocol::audit::{Action, Actor, AuditEntry};
use conjunction_protocol::releases::{LineDependent, ReleaseLine};
use conjunction_protocol::ws::{Change, Event, ServerMessage};
use conjunction_protocol::{BuildId, CiKind, Node, ProjectId, Timestamp};

use super::records::{
    decode, encode, run_key, ForgeEntry, Latest, NoticeEntry, OutboxEntry, PersonToken, RootRecord,
    RunRecord, StoredProject, Watched,
};
use super::{
    StoreError, AUDIT, AUDIT_BY_PROJECT, AUDIT_SEQ_KEY, BY_UPSTREAM, CHANGES, DEPLOYED, EVENTS,
    FORGES, HISTORY, HOOKS, HOOK_EXPIRY, LATEST, LINES, LINE_DEPENDENTS, MEMBERS, META, NODES,
    NOTICES, OPEN, OUTBOX, PEOPLE, POSITIONS, PROJECTS, READY, ROOTS, RUNS, SEQ_KEY, TOKENS, WATCH,
};
use crate::auth::TokenHash;
use crate::hub::Published;
use crate::planner::verdicts::History;
use crate::planner::{Member, Principal};

/// The open tables of one write transaction, and the events it appended.
pub struct WriteTx<'t> {
    meta: Table<'t, &'static str, u64>,
    projects: Table<'t, &'static str, &'static [u8]>,
    nodes: Table<'t, u128, &'static [u8]>,
    roots: Table<'t, u128, &'static [u8]>,
    members: Table<'t, (u128, u32), &'static [u8]>,
    positions: Table<'t, u128, u32>,
    ready: Table<'t, (u128, u32), ()>,
    events: Table<'t, u64, &'static str>,
    outbox: Table<'t, u128, &'static [u8]>,
    tokens: Table<'t, &'static [u8], &'static [u8]>,
    people: Table<'t, &'static [u8], &'static [u8]>,
    audit: Table<'t, u64, &'static [u8]>,
    audit_by_project: Table<'t, (&'static str, u64), ()>,
    runs: Table<'t, &'static str, &'static [u8]>,
    watch: Table<'t, u128, &'static [u8]>,
    hooks: Table<'t, &'static str, u64>,
    hook_expiry: Table<'t, (u64, &'static str), ()>,
    lines: Table<'t, (&'static str, &'static str), &'static [u8]>,
    line_dependents: Table<'t, (&'static str, &'static str, &'static str), &'static [u8]>,
    deployed: Table<'t, (&'static str, &'static str), &'static str>,
    history: Table<'t, (&'static str, &'static str, &'static str), &'static [u8]>,
    latest: Table<'t, &'static str, &'static [u8]>,
    notices: Table<'t, u128, &'static [u8]>,
    forges: Table<'t, u128, &'static [u8]>,
    changes: Table<'t, (&'static str, &'static str), u128>,
    open: Table<'t, u128, ()>,
    by_upstream: Table<'t, (&'static str, u128), ()>,
    seq: u64,
    published: Vec<Published>,
    /// The JSON of the last timestamp an event was written at: a batch writes many
    /// events at the same moment.
    at_json: Option<(Timestamp, String)>,
}

impl<'t> WriteTx<'t> {
    pub(crate) fn open(txn: &'t WriteTxn) -> Result<Self, StoreError> {
        let meta = txn.open_table(META)?;
        let seq = meta.get(SEQ_KEY)?.map_or(0, |g| g.value());
        Ok(Self {
            meta,
            projects: txn.open_table(PROJECTS)?,
            nodes: txn.open_table(NODES)?,
            roots: txn.open_table(ROOTS)?,
            members: txn.open_table(MEMBERS)?,
            positions: txn.open_table(POSITIONS)?,
            ready: txn.open_table(READY)?,
            events: txn.open_table(EVENTS)?,
            outbox: txn.open_table(OUTBOX)?,
            tokens: txn.open_table(TOKENS)?,
            people: txn.open_table(PEOPLE)?,
            audit: txn.open_table(AUDIT)?,
            audit_by_project: txn.open_table(AUDIT_BY_PROJECT)?,
            runs: txn.open_table(RUNS)?,
            watch: txn.open_table(WATCH)?,
            hooks: txn.open_table(HOOKS)?,
            hook_expiry: txn.open_table(HOOK_EXPIRY)?,
            lines: txn.open_table(LINES)?,
            line_dependents: txn.open_table(LINE_DEPENDENTS)?,
            deployed: txn.open_table(DEPLOYED)?,
            history: txn.open_table(HISTORY)?,
            latest: txn.open_table(LATEST)?,
            notices: txn.open_table(NOTICES)?,
            forges: txn.open_table(FORGES)?,
            changes: txn.open_table(CHANGES)?,
            open: txn.open_table(OPEN)?,
            by_upstream: txn.open_table(BY_UPSTREAM)?,
            seq,
            published: Vec::new(),
            at_json: None,
        })
    }

    /// Records the last sequence number and hands back the events to publish once
    /// the transaction has committed.
    pub fn finish(mut self) -> Result<Vec<Published>, StoreError> {
        self.meta.insert(SEQ_KEY, self.seq)?;
        Ok(self.published)
    }

    // ---- projects and tokens ----

    pub(crate) fn project(&self, id: &ProjectId) -> Result<Option<StoredProject>, StoreError> {
        let found = self.projects.get(id.as_str())?;
        found.map(|g| decode(g.value())).transpose()
    }

    pub(crate) fn put_project(&mut self, project: &StoredProject) -> Result<(), StoreError> {
        self.projects
            .insert(project.id.as_str(), encode(project).as_slice())?;
        Ok(())
    }

    pub fn remove_project(&mut self, id: &ProjectId) -> Result<(), StoreError> {
        self.projects.remove(id.as_str())?;
        Ok(())
    }

    pub fn token_owner(&self, hash: &TokenHash) -> Result<Option<Principal>, StoreError> {
        let found = self.tokens.get(hash.as_slice())?;
        found.map(|g| decode(g.value())).transpose()
    }

    pub fn put_token(&mut self, hash: &TokenHash, owner: &Principal) -> Result<(), StoreError> {
        self.tokens
            .insert(hash.as_slice(), encode(owner).as_slice())?;
        Ok(())
    }

    pub fn remove_token(&mut self, hash: &TokenHash) -> Result<(), StoreError> {
        self.tokens.remove(hash.as_slice())?;
        Ok(())
    }

    /// Every person's token with the hash it is stored under.
    pub fn people(&self) -> Result<Vec<(TokenHash, PersonToken)>, StoreError> {
        let mut out = Vec::new();
        for row in self.people.iter()? {
            let (key, value) = row?;
            let mut hash = [0u8; 32];
            if key.value().len() == hash.len() {
                hash.copy_from_slice(key.value());
                out.push((hash, decode(value.value())?));
            }
        }
        Ok(out)
    }

    pub fn put_person(&mut self, hash: &TokenHash, person: &PersonToken) -> Result<(), StoreError> {
        self.people
            .insert(hash.as_slice(), encode(person).as_slice())?;
        Ok(())
    }

    pub fn remove_person(&mut self, hash: &TokenHash) -> Result<(), StoreError> {
        self.people.remove(hash.as_slice())?;
        Ok(())
    }

    /// Appends one change to the audit trail.
    pub fn audit(
        &mut self,
        at: Timestamp,
        by: &Actor,
        action: Action,
        project: Option<&ProjectId>,
        detail: String,
    ) -> Result<(), StoreError> {
        let seq = self.meta.get(AUDIT_SEQ_KEY)?.map_or(0, |g| g.value()) + 1;
        self.meta.insert(AUDIT_SEQ_KEY, seq)?;
        let entry = AuditEntry {
            seq,
            at,
            by: by.clone(),
            action,
            project: project.cloned(),
            detail,
        };
        self.audit.insert(seq, encode(&entry).as_slice())?;
        if let Some(project) = project {
            self.audit_by_project.insert((project.as_str(), seq), ())?;
        }
        Ok(())
    }

    // ---- root events, their members and their nodes ----

    pub(crate) fn root(&self, id: BuildId) -> Result<Option<RootRecord>, StoreError> {
        let found = self.roots.get(id.0 .0)?;
        found.map(|g| decode(g.value())).transpose()
    }

    pub(crate) fn put_root(&mut self, root: &RootRecord) -> Result<(), StoreError> {
        self.roots.insert(root.id.0 .0, encode(root).as_slice())?;
        Ok(())
    }

    pub fn member(&self, root: BuildId, position: u32) -> Result<Option<Member>, StoreError> {
        let found = self.members.get((root.0 .0, position))?;
        found.map(|g| decode(g.value())).transpose()
    }

    /// Writes a member; a new one also gets its build's position recorded.
    pub fn put_member(
        &mut self,
        root: BuildId,
        position: u32,
        member: &Member,
        new: bool,
    ) -> Result<(), StoreError> {
        self.members
            .insert((root.0 .0, position), encode(member).as_slice())?;
        if new {
            self.positions.insert(member.id.0 .0, position)?;
        }
        Ok(())
    }

    /// Where a build sits in its root event.
    pub fn position(&self, build: BuildId) -> Result<Option<u32>, StoreError> {
        Ok(self.positions.get(build.0 .0)?.map(|g| g.value()))
    }

    pub fn node(&self, id: BuildId) -> Result<Option<Node>, StoreError> {
        let found = self.nodes.get(id.0 .0)?;
        found.map(|g| decode(g.value())).transpose()
    }

    /// Stores a changed node under the next sequence number and appends its
    /// `node_changed` event, encoding the node once: the row is that part of the
    /// event's text.
    pub fn put_node(&mut self, at: Timestamp, node: &mut Node) -> Result<(), StoreError> {
        let at_time = at;
        node.seq = self.next_seq();
        let at = self.at_json(at)?;
        let (message, range) = node_changed_message(node.seq, &at, node)?;
        self.nodes.insert(node.id.0 .0, message[range].as_bytes())?;
        if node.run.is_some() && !node.is_root() {
            // A triggered native build is watched while it runs, from its last change on.
            if node.state.kind().is_final() {
                self.watch.remove(node.id.0 .0)?;
            } else {
                let watched = Watched {
                    build: node.id,
                    project: node.project.clone(),
                    attempt: node.attempt,
                    since: at_time,
                };
                self.watch
                    .insert(node.id.0 .0, encode(&watched).as_slice())?;
            }
        }
        self.append(node.seq, message)
    }

    // ---- native CI runs and webhook deliveries ----

    pub(crate) fn run(
        &self,
        project: &ProjectId,
        ci: CiKind,
        run_id: &str,
    ) -> Result<Option<RunRecord>, StoreError> {
        let found = self.runs.get(run_key(project, ci, run_id).as_str())?;
        found.map(|g| decode(g.value())).transpose()
    }

    pub(crate) fn put_run(
        &mut self,
        project: &ProjectId,
        ci: CiKind,
        run_id: &str,
        record: &RunRecord,
    ) -> Result<(), StoreError> {
        self.runs.insert(
            run_key(project, ci, run_id).as_str(),
            encode(record).as_slice(),
        )?;
        Ok(())
    }

    /// Whether a webhook delivery was taken before.
    pub fn hook_seen(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.hooks.get(key)?.is_some())
    }

    /// Remembers a webhook delivery taken at `at` (milliseconds since the epoch), and
    /// forgets up to a few deliveries taken before `forget_before`, so that the table
    /// stays as large as the deliveries of the window and no larger.
    pub fn put_hook(&mut self, key: &str, at: u64, forget_before: u64) -> Result<(), StoreError> {
        let mut old = Vec::new();
        for row in self
            .hook_expiry
            .range((0, "")..(forget_before, ""))?
            .take(8)
        {
            let (k, _) = row?;
            let (when, key) = k.value();
            old.push((when, key.to_owned()));
        }
        for (when, key) in old {
            self.hook_expiry.remove((when, key.as_str()))?;
            self.hooks.remove(key.as_str())?;
        }
        self.hooks.insert(key, at)?;
        self.hook_expiry.insert((at, key), ())?;
        Ok(())
    }

    fn at_json(&mut self, at: Timestamp) -> Result<String, StoreError> {
        match &self.at_json {
            Some((t, json)) if *t == at => Ok(json.clone()),
            _ => {
                let json = serde_json::to_string(&at)?;
                self.at_json = Some((at, json.clone()));
                Ok(json)
            }
        }
    }

    // ---- nodes the planner has yet to decide ----

    pub fn put_ready(&mut self, root: BuildId, position: u32) -> Result<(), StoreError> {
        self.ready.insert((root.0 .0, position), ())?;
        Ok(())
    }

    /// Takes up to `max` of the nodes left to decide, oldest root event first and in
    /// position order within one.
    pub fn take_ready(&mut self, max: usize) -> Result<Vec<(BuildId, u32)>, StoreError> {
        let mut taken = Vec::new();
        for row in self.ready.iter()?.take(max) {
            let (key, _) = row?;
            let (root, position) = key.value();
            taken.push((BuildId(ulid::Ulid(root)), position));
        }
        for (root, position) in &taken {
            self.ready.remove((root.0 .0, *position))?;
        }
        Ok(taken)
    }

    pub fn remove_ready(&mut self, root: BuildId, position: u32) -> Result<(), StoreError> {
        self.ready.remove((root.0 .0, position))?;
        Ok(())
    }

    pub fn has_ready(&self) -> Result<bool, StoreError> {
        Ok(self.ready.first()?.is_some())
    }

    // ---- release lines ----

    /// The line of `version` of `upstream`, without its dependents.
    pub fn line(
        &self,
        upstream: &ProjectId,
        version: &str,
    ) -> Result<Option<ReleaseLine>, StoreError> {
        let found = self.lines.get((upstream.as_str(), version))?;
        found.map(|g| decode(g.value())).transpose()
    }

    /// Writes a line's own record; its dependents are kept apart.
    pub fn put_line(&mut self, line: &ReleaseLine) -> Result<(), StoreError> {
        debug_assert!(line.dependents.is_empty());
        self.lines.insert(
            (line.project.as_str(), line.version.as_str()),
            encode(line).as_slice(),
        )?;
        Ok(())
    }

    pub fn line_dependent(
        &self,
        upstream: &ProjectId,
        version: &str,
        dependent: &ProjectId,
    ) -> Result<Option<LineDependent>, StoreError> {
        let found = self
            .line_dependents
            .get((upstream.as_str(), version, dependent.as_str()))?;
        found.map(|g| decode(g.value())).transpose()
    }

    pub fn put_line_dependent(
        &mut self,
        upstream: &ProjectId,
        version: &str,
        dependent: &LineDependent,
    ) -> Result<(), StoreError> {
        self.line_dependents.insert(
            (upstream.as_str(), version, dependent.project.as_str()),
            encode(dependent).as_slice(),
        )?;
        Ok(())
    }

    /// Every dependent on the line of `version` of `upstream`, by project.
    pub fn line_dependents(
        &self,
        upstream: &ProjectId,
        version: &str,
    ) -> Result<Vec<LineDependent>, StoreError> {
        super::read::line_dependents(&self.line_dependents, upstream, version)
    }

    /// The version `environment` has now.
    pub fn deployed(
        &self,
        upstream: &ProjectId,
        environment: &str,
    ) -> Result<Option<String>, StoreError> {
        let found = self.deployed.get((upstream.as_str(), environment))?;
        Ok(found.map(|g| g.value().to_owned()))
    }

    pub fn put_deployed(
        &mut self,
        upstream: &ProjectId,
        environment: &str,
        version: &str,
    ) -> Result<(), StoreError> {
        self.deployed
            .insert((upstream.as_str(), environment), version)?;
        Ok(())
    }

    // ---- verdicts and badges ----

    /// What `project` last built against `upstream` in `environment`.
    pub fn history(
        &self,
        upstream: &ProjectId,
        environment: &str,
        project: &ProjectId,
    ) -> Result<History, StoreError> {
        let found = self
            .history
            .get((upstream.as_str(), environment, project.as_str()))?;
        Ok(found
            .map(|g| decode(g.value()))
            .transpose()?
            .unwrap_or_default())
    }

    pub fn put_history(
        &mut self,
        upstream: &ProjectId,
        environment: &str,
        project: &ProjectId,
        history: &History,
    ) -> Result<(), StoreError> {
        self.history.insert(
            (upstream.as_str(), environment, project.as_str()),
            encode(history).as_slice(),
        )?;
        Ok(())
    }

    pub fn latest(&self, project: &ProjectId) -> Result<Latest, StoreError> {
        let found = self.latest.get(project.as_str())?;
        Ok(found
            .map(|g| decode(g.value()))
            .transpose()?
            .unwrap_or_default())
    }

    pub fn put_latest(&mut self, project: &ProjectId, latest: &Latest) -> Result<(), StoreError> {
        self.latest
            .insert(project.as_str(), encode(latest).as_slice())?;
        Ok(())
    }

    /// Marks root event `root`'s cascade as in progress, or as finished.
    pub fn set_open(&mut self, root: BuildId, open: bool) -> Result<(), StoreError> {
        if open {
            self.open.insert(root.0 .0, ())?;
        } else {
            self.open.remove(root.0 .0)?;
        }
        Ok(())
    }

    // ---- candidates ----

    /// The latest candidate event of `upstream`'s `change`.
    pub fn change(
        &self,
        upstream: &ProjectId,
        change: &str,
    ) -> Result<Option<BuildId>, StoreError> {
        let found = self.changes.get((upstream.as_str(), change))?;
        Ok(found.map(|g| BuildId(ulid::Ulid(g.value()))))
    }

    pub fn put_change(
        &mut self,
        upstream: &ProjectId,
        change: &str,
        root: BuildId,
    ) -> Result<(), StoreError> {
        self.changes
            .insert((upstream.as_str(), change), root.0 .0)?;
        Ok(())
    }

    // ---- retention ----

    /// Lists root event `root` under its upstream.
    pub fn index_root(&mut self, project: &ProjectId, root: BuildId) -> Result<(), StoreError> {
        self.by_upstream.insert((project.as_str(), root.0 .0), ())?;
        Ok(())
    }

    /// Up to `limit` root events created before `before`, oldest first, after `after`.
    pub(crate) fn roots_before(
        &self,
        before: BuildId,
        after: Option<BuildId>,
        limit: usize,
    ) -> Result<Vec<RootRecord>, StoreError> {
        let from = after.map_or(0, |a| a.0 .0 + 1);
        let mut out = Vec::new();
        if from >= before.0 .0 {
            return Ok(out);
        }
        for row in self.roots.range(from..before.0 .0)?.take(limit) {
            let (_, v) = row?;
            out.push(decode(v.value())?);
        }
        Ok(out)
    }

    /// How many root events of `project` are newer than `root`, counting up to `up_to`.
    pub fn newer_roots_of(
        &self,
        project: &ProjectId,
        root: BuildId,
        up_to: usize,
    ) -> Result<usize, StoreError> {
        let range = (project.as_str(), root.0 .0 + 1)..=(project.as_str(), u128::MAX);
        Ok(self.by_upstream.range(range)?.take(up_to).count())
    }

    /// Removes a finished root event and everything of its builds: the nodes, their
    /// places, their build tokens (`token_hash` makes each attempt's) and their runs.
    /// Answers how many builds went.
    pub(crate) fn remove_event(
        &mut self,
        record: &RootRecord,
        token_hash: &dyn Fn(BuildId, u32) -> TokenHash,
    ) -> Result<u64, StoreError> {
        let root = record.id.0 .0;
        for position in 0..record.size {
            let Some(member) = self.members.remove((root, position))? else {
                continue;
            };
            let member: Member = decode(member.value())?;
            let id = member.id;
            self.positions.remove(id.0 .0)?;
            self.ready.remove((root, position))?;
            self.watch.remove(id.0 .0)?;
            if let Some(node) = self.nodes.remove(id.0 .0)? {
                let node: Node = decode(node.value())?;
                for attempt in 1..=node.attempt {
                    self.tokens.remove(token_hash(id, attempt).as_slice())?;
                }
                if let Some(run_id) = node.run.as_ref().and_then(|r| r.id.as_deref()) {
                    let ci = node.run.as_ref().map(|r| r.ci).expect("checked above");
                    self.runs
                        .remove(run_key(&node.project, ci, run_id).as_str())?;
                }
            }
        }
        self.roots.remove(root)?;
        self.open.remove(root)?;
        self.by_upstream.remove((record.project.as_str(), root))?;
        if let Some(candidate) = &record.candidate {
            let key = (record.project.as_str(), candidate.change.as_str());
            if self.changes.get(key)?.is_some_and(|g| g.value() == root) {
                self.changes.remove(key)?;
            }
        }
        Ok(u64::from(record.size))
    }

    /// Whether any environment has `version` of `upstream` now.
    pub fn is_deployed(&self, upstream: &ProjectId, version: &str) -> Result<bool, StoreError> {
        let range = (upstream.as_str(), "")..=(upstream.as_str(), "\u{10ffff}");
        for row in self.deployed.range(range)? {
            if row?.1.value() == version {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Removes the release line of `version` of `upstream` and its dependents' rows.
    pub fn remove_line(&mut self, upstream: &ProjectId, version: &str) -> Result<u64, StoreError> {
        self.lines.remove((upstream.as_str(), version))?;
        let range = (upstream.as_str(), version, "")..=(upstream.as_str(), version, "\u{10ffff}");
        let keys: Vec<String> = self
            .line_dependents
            .range(range)?
            .map(|row| row.map(|(k, _)| k.value().2.to_owned()))
            .collect::<Result<_, _>>()?;
        for dependent in &keys {
            self.line_dependents
                .remove((upstream.as_str(), version, dependent.as_str()))?;
        }
        Ok(keys.len() as u64)
    }

    /// Removes up to `limit` of the oldest events of the log written before `before`;
    /// answers how many went, and whether older ones are left.
    pub fn prune_log(
        &mut self,
        before: Timestamp,
        limit: usize,
    ) -> Result<(u64, bool), StoreError> {
        #[derive(serde::Deserialize)]
        struct At {
            at: Timestamp,
        }
        let mut old = Vec::new();
        let mut more = false;
        for row in self.events.iter()? {
            let (seq, json) = row?;
            let at: At = serde_json::from_str(json.value())?;
            if at.at >= before {
                break;
            }
            if old.len() == limit {
                more = true;
                break;
            }
            old.push(seq.value());
        }
        for seq in &old {
            self.events.remove(seq)?;
        }
        Ok((old.len() as u64, more))
    }

    // ---- the notice outbox ----

    pub fn notice(&self, id: BuildId) -> Result<Option<NoticeEntry>, StoreError> {
        let found = self.notices.get(id.0 .0)?;
        found.map(|g| decode(g.value())).transpose()
    }

    pub fn put_notice(&mut self, entry: &NoticeEntry) -> Result<(), StoreError> {
        self.notices
            .insert(entry.id.0 .0, encode(entry).as_slice())?;
        Ok(())
    }

    pub fn remove_notice(&mut self, id: BuildId) -> Result<(), StoreError> {
        self.notices.remove(id.0 .0)?;
        Ok(())
    }

    // ---- the forge outbox ----

    pub fn forge_entry(&self, id: BuildId) -> Result<Option<ForgeEntry>, StoreError> {
        let found = self.forges.get(id.0 .0)?;
        found.map(|g| decode(g.value())).transpose()
    }

    pub fn put_forge(&mut self, entry: &ForgeEntry) -> Result<(), StoreError> {
        self.forges
            .insert(entry.id.0 .0, encode(entry).as_slice())?;
        Ok(())
    }

    pub fn remove_forge(&mut self, id: BuildId) -> Result<(), StoreError> {
        self.forges.remove(id.0 .0)?;
        Ok(())
    }

    // ---- the outbox ----

    pub fn outbox_entry(&self, build: BuildId) -> Result<Option<OutboxEntry>, StoreError> {
        let found = self.outbox.get(build.0 .0)?;
        found.map(|g| decode(g.value())).transpose()
    }

    pub fn put_outbox(&mut self, entry: &OutboxEntry) -> Result<(), StoreError> {
        self.outbox
            .insert(entry.build.0 .0, encode(entry).as_slice())?;
        Ok(())
    }

    pub fn remove_outbox(&mut self, build: BuildId) -> Result<(), StoreError> {
        self.outbox.remove(build.0 .0)?;
        Ok(())
    }

    // ---- the event log ----

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Appends a change to the event log under the next sequence number.
    pub fn emit(&mut self, at: Timestamp, change: Change) -> Result<u64, StoreError> {
        let seq = self.next_seq();
        let message = ServerMessage::Event(Box::new(Event { seq, at, change }));
        self.append(seq, serde_json::to_string(&message)?)?;
        Ok(seq)
    }

    fn append(&mut self, seq: u64, json: String) -> Result<(), StoreError> {
        self.events.insert(seq, json.as_str())?;
        self.published.push((seq, Arc::new(json)));
        Ok(())
    }
}

/// The JSON of `ServerMessage::Event` for a `node_changed` change of `node`, as
/// `serde_json` would write the whole message, and where in it the node's own JSON is.
fn node_changed_message(
    seq: u64,
    at_json: &str,
    node: &Node,
) -> Result<(String, std::ops::Range<usize>), StoreError> {
    let mut out = format!(
        r#"{{"type":"event","seq":{seq},"at":{at_json},"change":{{"kind":"node_changed","node":"#
    );
    let start = out.len();
    let mut buffer = std::mem::take(&mut out).into_bytes();
    serde_json::to_writer(&mut buffer, node)?;
    let end = buffer.len();
    buffer.extend_from_slice(b"}}");
    // serde_json writes UTF-8, and the rest is ASCII.
    let out = String::from_utf8(buffer)
        .map_err(|e| StoreError::Inconsistent(format!("an encoded node was not UTF-8: {e}")))?;
    Ok((out, start..end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use conjunction_protocol::NodeState;

    #[test]
    fn a_node_changed_message_is_what_serde_writes_for_the_whole_event() {
        let id = BuildId(ulid::Ulid::from_parts(7, 7));
        let mut node = Node::new(
            id,
            ProjectId::parse("acme/app").unwrap(),
            id,
            vec![],
            NodeState::TriggerFailed {
                reason: "ci said \"no\"".into(),
            },
            Timestamp(1_795_338_000_000),
        );
        node.seq = 42;
        node.metadata.insert("k".into(), "v".into());
        let at = Timestamp(1_795_338_000_123);
        let expected = serde_json::to_string(&ServerMessage::Event(Box::new(Event {
            seq: 42,
            at,
            change: Change::NodeChanged { node: node.clone() },
        })))
        .unwrap();
        let at_json = serde_json::to_string(&at).unwrap();
        let (built, range) = node_changed_message(42, &at_json, &node).unwrap();
        assert_eq!(built, expected);
        assert_eq!(&built[range], serde_json::to_string(&node).unwrap());
    }
}
