//! The dependency graph of every registered project, kept in memory.
//!
//! Projects are interned: each id gets a small number once, and edges are lists of
//! numbers, so walking the graph costs no string comparisons or allocations. Numbers
//! depend on registration order, so every answer that is ordered sorts by project id
//! where the order shows; the same graph gives the same answers however it was built.
//!
//! A project that is named as an upstream but not registered (yet, or any more) has a
//! number too: edges to it count as soon as it registers.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use conjunction_manifest::resolve::identity;
use conjunction_protocol::project::{Dependency, Dependent, Ecosystem, Line, Package};
use conjunction_protocol::ProjectId;

/// A project's number in a [`Graph`].
pub(crate) type Ix = u32;

#[derive(Debug, Clone)]
struct Entry {
    id: ProjectId,
    /// Direct upstreams, ascending by number, each once.
    upstreams: Vec<Ix>,
    /// Projects that declare this one as an upstream.
    dependents: BTreeSet<Ix>,
    registered: bool,
    has_trigger: bool,
    /// Its package's ecosystem: how versions of it and ranges on it are read.
    ecosystem: Option<Ecosystem>,
    /// Its package's key in [`Graph::packages`].
    package: Option<(Ecosystem, String)>,
    /// The versions of its upstreams this project takes, for the upstreams it
    /// declares a range or lines on.
    wants: BTreeMap<Ix, Want>,
}

/// The versions of an upstream a dependent takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    Range(String),
    /// Lines, newest first: the first whose range takes a version says which ref of
    /// the dependent builds against it.
    Lines(Vec<Line>),
}

impl Want {
    pub fn of(d: &Dependency) -> Option<Want> {
        match (&d.range, d.lines.is_empty()) {
            (Some(r), _) => Some(Want::Range(r.clone())),
            (None, false) => Some(Want::Lines(d.lines.clone())),
            (None, true) => None,
        }
    }

    /// Every range in it.
    pub fn ranges(&self) -> Vec<&str> {
        match self {
            Want::Range(r) => vec![r.as_str()],
            Want::Lines(lines) => lines.iter().map(|l| l.range.as_str()).collect(),
        }
    }
}

/// The dependency graph, with what the planner needs to know of each project.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    index: HashMap<ProjectId, Ix>,
    entries: Vec<Entry>,
    /// Registered projects by their package, its name spelled as its ecosystem
    /// compares names: how a manifest's dependency finds its project.
    packages: HashMap<(Ecosystem, String), BTreeSet<Ix>>,
}

/// Why a project cannot be triggered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Untriggerable {
    #[error("{0} has no trigger configured")]
    NoTrigger(ProjectId),
    #[error("{0} is no longer registered")]
    Unregistered(ProjectId),
}

impl Graph {
    pub fn new() -> Self {
        Self::default()
    }

    fn intern(&mut self, id: &ProjectId) -> Ix {
        if let Some(&ix) = self.index.get(id) {
            return ix;
        }
        let ix = Ix::try_from(self.entries.len()).expect("fewer than 2^32 projects");
        self.entries.push(Entry {
            id: id.clone(),
            upstreams: Vec::new(),
            dependents: BTreeSet::new(),
            registered: false,
            has_trigger: false,
            ecosystem: None,
            package: None,
            wants: BTreeMap::new(),
        });
        self.index.insert(id.clone(), ix);
        ix
    }

    pub(crate) fn ix(&self, id: &ProjectId) -> Option<Ix> {
        self.index.get(id).copied()
    }

    pub(crate) fn id(&self, ix: Ix) -> &ProjectId {
        &self.entries[ix as usize].id
    }

    pub(crate) fn upstream_ixs(&self, ix: Ix) -> &[Ix] {
        &self.entries[ix as usize].upstreams
    }

    pub(crate) fn dependent_ixs(&self, ix: Ix) -> impl Iterator<Item = Ix> + '_ {
        self.entries[ix as usize].dependents.iter().copied()
    }

    /// Registers `project` (or updates it): its direct upstreams replace the old ones.
    /// Costs what the project's own edges cost, whatever the size of the graph.
    pub fn set_project<'a>(
        &mut self,
        project: &ProjectId,
        upstreams: impl IntoIterator<Item = &'a ProjectId>,
        has_trigger: bool,
    ) {
        let ix = self.intern(project);
        let mut ups: Vec<Ix> = upstreams
            .into_iter()
            .filter(|u| *u != project)
            .map(|u| self.intern(u))
            .collect();
        ups.sort_unstable();
        ups.dedup();
        self.replace_upstreams(ix, ups);
        let entry = &mut self.entries[ix as usize];
        entry.registered = true;
        entry.has_trigger = has_trigger;
    }

    /// Registers `project` with what it declares: its upstreams and the versions of
    /// them it takes, whether it can be triggered, and its package's ecosystem.
    pub fn register(
        &mut self,
        project: &ProjectId,
        depends_on: &[Dependency],
        has_trigger: bool,
        ecosystem: Option<Ecosystem>,
    ) {
        self.set_project(project, depends_on.iter().map(|d| &d.project), has_trigger);
        let wants = depends_on
            .iter()
            .filter(|d| &d.project != project)
            .filter_map(|d| Some((self.intern(&d.project), Want::of(d)?)))
            .collect();
        let ix = self.intern(project);
        let entry = &mut self.entries[ix as usize];
        entry.ecosystem = ecosystem;
        entry.wants = wants;
    }

    /// Records the package `project` publishes (none forgets it).
    pub fn set_package(&mut self, project: &ProjectId, package: Option<&Package>) {
        let ix = self.intern(project);
        let key = package.map(|p| (p.ecosystem, identity(p.ecosystem, &p.name)));
        let old = std::mem::replace(&mut self.entries[ix as usize].package, key.clone());
        if old == key {
            return;
        }
        if let Some(old) = old {
            if let Some(owners) = self.packages.get_mut(&old) {
                owners.remove(&ix);
                if owners.is_empty() {
                    self.packages.remove(&old);
                }
            }
        }
        if let Some(key) = key {
            self.packages.entry(key).or_default().insert(ix);
        }
    }

    /// The registered project whose package is `name` in `ecosystem`; the first
    /// registered when several claim it.
    pub fn package_owner(&self, ecosystem: Ecosystem, name: &str) -> Option<&ProjectId> {
        let owners = self.packages.get(&(ecosystem, identity(ecosystem, name)))?;
        owners.iter().next().map(|&ix| self.id(ix))
    }

    /// The ecosystem ranges on `project` are read in: its package's, or Cargo's.
    pub fn ecosystem(&self, project: &ProjectId) -> Ecosystem {
        self.package_ecosystem(project).unwrap_or_default()
    }

    /// The ecosystem of the package `project` declares, if it declares one.
    pub fn package_ecosystem(&self, project: &ProjectId) -> Option<Ecosystem> {
        self.ix(project)
            .and_then(|ix| self.entries[ix as usize].ecosystem)
    }

    pub(crate) fn ecosystem_of(&self, ix: Ix) -> Ecosystem {
        self.entries[ix as usize].ecosystem.unwrap_or_default()
    }

    /// What `dependent` takes of `upstream`, when it declares a range or lines.
    pub(crate) fn want(&self, dependent: Ix, upstream: Ix) -> Option<&Want> {
        self.entries[dependent as usize].wants.get(&upstream)
    }

    /// The ranges each direct dependent declares on `project`, by dependent.
    pub fn wants_on(&self, project: &ProjectId) -> Vec<(&ProjectId, &Want)> {
        let Some(ix) = self.ix(project) else {
            return Vec::new();
        };
        self.dependent_ixs(ix)
            .filter_map(|d| Some((self.id(d), self.want(d, ix)?)))
            .collect()
    }

    /// Forgets a project's registration and its own upstream edges. Edges its
    /// dependents declare stay: they come back into force if it registers again.
    pub fn remove_project(&mut self, project: &ProjectId) {
        if let Some(ix) = self.ix(project) {
            self.replace_upstreams(ix, Vec::new());
            let entry = &mut self.entries[ix as usize];
            entry.registered = false;
            entry.has_trigger = false;
            entry.ecosystem = None;
            entry.wants.clear();
            self.set_package(project, None);
        }
    }

    fn replace_upstreams(&mut self, ix: Ix, new: Vec<Ix>) {
        let old = std::mem::replace(&mut self.entries[ix as usize].upstreams, new);
        for u in old {
            self.entries[u as usize].dependents.remove(&ix);
        }
        for i in 0..self.entries[ix as usize].upstreams.len() {
            let u = self.entries[ix as usize].upstreams[i];
            self.entries[u as usize].dependents.insert(ix);
        }
    }

    /// How many projects are registered.
    pub fn project_count(&self) -> usize {
        self.entries.iter().filter(|e| e.registered).count()
    }

    pub fn is_registered(&self, project: &ProjectId) -> bool {
        self.ix(project)
            .is_some_and(|ix| self.entries[ix as usize].registered)
    }

    /// Whether a build of `project` can be triggered, and if not, why.
    pub fn triggerable(&self, project: &ProjectId) -> Result<(), Untriggerable> {
        match self.ix(project).map(|ix| &self.entries[ix as usize]) {
            Some(e) if e.registered && e.has_trigger => Ok(()),
            Some(e) if e.registered => Err(Untriggerable::NoTrigger(project.clone())),
            _ => Err(Untriggerable::Unregistered(project.clone())),
        }
    }

    /// The direct upstreams of `project`, sorted by id.
    pub fn upstreams_of(&self, project: &ProjectId) -> Vec<&ProjectId> {
        let mut out: Vec<&ProjectId> = self
            .ix(project)
            .map(|ix| self.upstream_ixs(ix).iter().map(|&u| self.id(u)).collect())
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Every direct and transitive dependent of `project` with its shortest depth and
    /// the upstreams it is reached through at that depth. Sorted by depth, then id.
    pub fn transitive_dependents(&self, project: &ProjectId) -> Vec<Dependent> {
        let Some(start) = self.ix(project) else {
            return Vec::new();
        };
        let mut found: HashMap<Ix, (u32, BTreeSet<&ProjectId>)> = HashMap::new();
        let mut queue = VecDeque::from([(start, 0u32)]);
        while let Some((p, depth)) = queue.pop_front() {
            for d in self.dependent_ixs(p) {
                if d == start {
                    continue;
                }
                match found.get_mut(&d) {
                    Some((dd, via)) if *dd == depth + 1 => {
                        via.insert(self.id(p));
                    }
                    Some(_) => {}
                    None => {
                        found.insert(d, (depth + 1, BTreeSet::from([self.id(p)])));
                        queue.push_back((d, depth + 1));
                    }
                }
            }
        }
        let mut out: Vec<Dependent> = found
            .into_iter()
            .map(|(d, (depth, via))| Dependent {
                project: self.id(d).clone(),
                depth,
                via: via.into_iter().cloned().collect(),
            })
            .collect();
        out.sort_by(|a, b| {
            a.depth
                .cmp(&b.depth)
                .then_with(|| a.project.cmp(&b.project))
        });
        out
    }

    /// The shortest cycle through `project` if one of the upstream edges `added` to it
    /// closed one. An added edge to `u` closes a cycle exactly when `u` already
    /// depends, directly or not, on `project`; that is all this looks at, from both
    /// ends at once, so a project registered after its upstreams costs nothing
    /// however large the graph.
    pub fn cycle_closed_by(
        &self,
        project: &ProjectId,
        added: &[ProjectId],
    ) -> Option<Vec<ProjectId>> {
        let p = self.ix(project)?;
        let closes = added
            .iter()
            .filter_map(|u| self.ix(u))
            .any(|u| self.reaches(u, p).0);
        closes.then(|| self.cycle_through(project)).flatten()
    }

    /// Whether `to` is reached from `from` by following `depends_on` edges, searching
    /// from both ends and always widening the smaller side; and how many projects
    /// the search saw.
    pub(crate) fn reaches(&self, from: Ix, to: Ix) -> (bool, usize) {
        let mut seen = [HashSet::from([from]), HashSet::from([to])];
        let mut frontier = [vec![from], vec![to]];
        while !frontier[0].is_empty() && !frontier[1].is_empty() {
            let side = smaller(&frontier, [seen[0].len(), seen[1].len()]);
            let mut next = Vec::new();
            for v in std::mem::take(&mut frontier[side]) {
                let neighbours: Vec<Ix> = if side == 0 {
                    self.upstream_ixs(v).to_vec()
                } else {
                    self.dependent_ixs(v).collect()
                };
                for w in neighbours {
                    if seen[1 - side].contains(&w) {
                        return (true, seen[0].len() + seen[1].len());
                    }
                    if seen[side].insert(w) {
                        next.push(w);
                    }
                }
            }
            frontier[side] = next;
        }
        (false, seen[0].len() + seen[1].len())
    }

    /// The shortest dependency cycle through `project`, following `depends_on` edges:
    /// `[a, b, a]` means a depends on b and b on a.
    ///
    /// Searches from both ends at once, upstream from the project and downstream to
    /// it, always widening the smaller side, and stops at once for a project with no
    /// upstreams or no dependents.
    pub fn cycle_through(&self, project: &ProjectId) -> Option<Vec<ProjectId>> {
        let start = self.ix(project)?;
        let by_id = |ixs: &mut Vec<Ix>| ixs.sort_by(|a, b| self.id(*a).cmp(self.id(*b)));
        // Side 0 follows depends_on edges from the start (came_from[0][w] = v: v
        // depends on w); side 1 follows them backwards, to the start (came_from[1][w]
        // = v: w depends on v). Neither ever records the start itself.
        let mut came_from: [HashMap<Ix, Ix>; 2] = [HashMap::new(), HashMap::new()];
        let mut frontier: [Vec<Ix>; 2] = [vec![start], vec![start]];
        loop {
            if frontier[0].is_empty() || frontier[1].is_empty() {
                return None;
            }
            let side = smaller(&frontier, [came_from[0].len(), came_from[1].len()]);
            let other = 1 - side;
            let mut level = std::mem::take(&mut frontier[side]);
            by_id(&mut level);
            let mut next = Vec::new();
            // The best way found to close the cycle in this level: the other side's
            // distance from the meeting node, its id, the meeting node, and where this
            // side came from. Every node of the level has the same distance on this
            // side, so the shortest cycle is the one with the nearest meeting node.
            let mut best: Option<(usize, &ProjectId, Ix, Ix)> = None;
            for v in level {
                let mut neighbours: Vec<Ix> = if side == 0 {
                    self.upstream_ixs(v).to_vec()
                } else {
                    self.dependent_ixs(v).collect()
                };
                by_id(&mut neighbours);
                for w in neighbours {
                    let rest = if w == start {
                        Some(0)
                    } else if came_from[other].contains_key(&w) {
                        Some(trail(&came_from[other], w, start).len() - 1)
                    } else {
                        None
                    };
                    match rest {
                        Some(rest) => {
                            if best.is_none_or(|(r, id, ..)| (rest, self.id(w)) < (r, id)) {
                                best = Some((rest, self.id(w), w, v));
                            }
                        }
                        None => {
                            if let std::collections::hash_map::Entry::Vacant(e) =
                                came_from[side].entry(w)
                            {
                                e.insert(v);
                                next.push(w);
                            }
                        }
                    }
                }
            }
            if let Some((_, _, w, v)) = best {
                // trail(0, x): start ..= x along depends_on; back(x): x ..= start.
                let forward = |x: Ix| trail(&came_from[0], x, start);
                let back = |x: Ix| {
                    let mut t = trail(&came_from[1], x, start);
                    t.reverse();
                    t
                };
                let path = match (side, w == start) {
                    (0, true) => [forward(v), vec![start]].concat(),
                    (0, false) => [forward(v), back(w)].concat(),
                    (_, true) => [vec![start], back(v)].concat(),
                    (_, false) => [forward(w), back(v)].concat(),
                };
                return Some(path.into_iter().map(|ix| self.id(ix).clone()).collect());
            }
            frontier[side] = next;
        }
    }
}

/// Which side of a two-ended search to widen next: the one with the smaller
/// frontier, and on a tie the one that has seen less. (Always the first on a tie
/// walks a whole chain of upstreams while the other end, with nothing to see, waits.)
fn smaller(frontier: &[Vec<Ix>; 2], seen: [usize; 2]) -> usize {
    usize::from((frontier[1].len(), seen[1]) < (frontier[0].len(), seen[0]))
}

/// The nodes from `start` to `to` inclusive, following `came_from` back from `to`.
fn trail(came_from: &HashMap<Ix, Ix>, to: Ix, start: Ix) -> Vec<Ix> {
    let mut out = vec![to];
    let mut at = to;
    while at != start {
        at = came_from[&at];
        out.push(at);
    }
    out.reverse();
    out
}

/// The shortest cycle through `start` by breadth-first search over `next`, staying on
/// nodes `allowed` accepts; neighbours in ascending id order, so the answer is fixed.
pub(crate) fn shortest_cycle_within(
    graph: &Graph,
    start: Ix,
    allowed: impl Fn(Ix) -> bool,
) -> Option<Vec<ProjectId>> {
    let mut came_from: BTreeMap<Ix, Ix> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(p) = queue.pop_front() {
        let mut neighbours: Vec<Ix> = graph.upstream_ixs(p).to_vec();
        neighbours.sort_by(|a, b| graph.id(*a).cmp(graph.id(*b)));
        for n in neighbours {
            if !allowed(n) {
                continue;
            }
            if n == start {
                let mut back = Vec::new();
                let mut at = p;
                while at != start {
                    back.push(at);
                    at = came_from[&at];
                }
                back.reverse();
                let mut path = vec![graph.id(start).clone()];
                path.extend(back.into_iter().map(|ix| graph.id(ix).clone()));
                path.push(graph.id(start).clone());
                return Some(path);
            }
            if let std::collections::btree_map::Entry::Vacant(e) = came_from.entry(n) {
                e.insert(p);
                queue.push_back(n);
            }
        }
    }
    None
}
