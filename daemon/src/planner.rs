//! The cascade planner: pure decisions about a root event.
//!
//! Given the dependency graph and a root project, [`plan_cascade`] says which nodes an
//! event has, who their parents are and which sit on a cycle. Given the nodes' states,
//! [`next_steps`] says which to queue, block or unblock. [`accept_report`] and
//! [`may_rebuild`] judge reports and rebuilds. Nothing here touches the store, the
//! network or the clock, and the same inputs always give the same answers.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use conjunction_protocol::project::Dependent;
use conjunction_protocol::{ProjectId, ReportState, StateKind};

// The rebuild rule is shared with clients, which explain a refusal before asking.
pub use conjunction_protocol::node::{may_rebuild, RebuildRefusal};

/// The dependency graph of all registered projects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graph {
    upstreams: BTreeMap<ProjectId, BTreeSet<ProjectId>>,
    dependents: BTreeMap<ProjectId, BTreeSet<ProjectId>>,
}

impl Graph {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces a project's direct upstreams.
    pub fn set_upstreams(
        &mut self,
        project: &ProjectId,
        upstreams: impl IntoIterator<Item = ProjectId>,
    ) {
        self.remove(project);
        let ups: BTreeSet<ProjectId> = upstreams.into_iter().filter(|u| u != project).collect();
        for u in &ups {
            self.dependents
                .entry(u.clone())
                .or_default()
                .insert(project.clone());
        }
        self.upstreams.insert(project.clone(), ups);
    }

    /// Forgets a project's own upstream edges. Edges from its dependents stay: they
    /// still declare the dependency, and it comes back if the project does.
    pub fn remove(&mut self, project: &ProjectId) {
        if let Some(old) = self.upstreams.remove(project) {
            for u in old {
                if let Some(ds) = self.dependents.get_mut(&u) {
                    ds.remove(project);
                    if ds.is_empty() {
                        self.dependents.remove(&u);
                    }
                }
            }
        }
    }

    pub fn upstreams_of(&self, project: &ProjectId) -> impl Iterator<Item = &ProjectId> {
        self.upstreams.get(project).into_iter().flatten()
    }

    pub fn dependents_of(&self, project: &ProjectId) -> impl Iterator<Item = &ProjectId> {
        self.dependents.get(project).into_iter().flatten()
    }

    /// Every direct and transitive dependent of `project` with its shortest depth and
    /// the upstreams it is reached through at that depth. Sorted by depth, then id.
    pub fn transitive_dependents(&self, project: &ProjectId) -> Vec<Dependent> {
        let mut found: BTreeMap<ProjectId, (u32, BTreeSet<ProjectId>)> = BTreeMap::new();
        let mut queue = VecDeque::from([(project.clone(), 0u32)]);
        while let Some((p, depth)) = queue.pop_front() {
            for d in self.dependents_of(&p) {
                if d == project {
                    continue;
                }
                match found.get_mut(d) {
                    Some((dd, via)) if *dd == depth + 1 => {
                        via.insert(p.clone());
                    }
                    Some(_) => {}
                    None => {
                        found.insert(d.clone(), (depth + 1, BTreeSet::from([p.clone()])));
                        queue.push_back((d.clone(), depth + 1));
                    }
                }
            }
        }
        let mut out: Vec<Dependent> = found
            .into_iter()
            .map(|(project, (depth, via))| Dependent {
                project,
                depth,
                via: via.into_iter().collect(),
            })
            .collect();
        out.sort_by(|a, b| {
            a.depth
                .cmp(&b.depth)
                .then_with(|| a.project.cmp(&b.project))
        });
        out
    }

    /// The shortest dependency cycle through `project`, following `depends_on` edges:
    /// `[a, b, a]` means a depends on b and b on a.
    pub fn cycle_through(&self, project: &ProjectId) -> Option<Vec<ProjectId>> {
        shortest_cycle(
            project,
            |p| self.upstreams_of(p).cloned().collect(),
            |_| true,
        )
    }
}

/// The nodes of one root event, parents before children (except around cycles).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CascadePlan {
    /// Index 0 is the root.
    pub nodes: Vec<PlannedNode>,
    /// What the planner noticed and ignored, such as edges back into the root.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedNode {
    pub project: ProjectId,
    /// Indexes of this node's in-event parents, ascending.
    pub parents: Vec<usize>,
    /// Set when the node is on a dependency cycle among the dependents: the cycle's
    /// path starting and ending with this project. Such a node is skipped.
    pub cycle: Option<Vec<ProjectId>>,
}

/// Works out the nodes of a root event started by `root`: one per project reached from
/// it through `depends_on` edges.
pub fn plan_cascade(graph: &Graph, root: &ProjectId) -> CascadePlan {
    // Every project reached from the root, in breadth-first order.
    let mut reached: BTreeSet<ProjectId> = BTreeSet::new();
    let mut queue = VecDeque::from([root.clone()]);
    while let Some(p) = queue.pop_front() {
        for d in graph.dependents_of(&p) {
            if d != root && reached.insert(d.clone()) {
                queue.push_back(d.clone());
            }
        }
    }

    let mut notes = Vec::new();
    for u in graph.upstreams_of(root) {
        if reached.contains(u) {
            notes.push(format!(
                "{root} depends on {u}, which depends on {root}: that edge back into the root was ignored"
            ));
        }
    }

    let in_event_upstreams = |p: &ProjectId| -> Vec<ProjectId> {
        graph
            .upstreams_of(p)
            .filter(|u| *u == root || reached.contains(*u))
            .cloned()
            .collect()
    };

    // Strongly connected components among the dependents; a component of more than one
    // project is a cycle.
    let components = strongly_connected(&reached, |p| {
        graph
            .dependents_of(p)
            .filter(|d| reached.contains(*d))
            .cloned()
            .collect()
    });
    let component_of: BTreeMap<&ProjectId, usize> = components
        .iter()
        .enumerate()
        .flat_map(|(i, c)| c.iter().map(move |p| (p, i)))
        .collect();

    // Kahn's algorithm on the components, smallest project id first among the ready ones.
    let mut waiting_on: Vec<BTreeSet<usize>> = components
        .iter()
        .enumerate()
        .map(|(i, c)| {
            c.iter()
                .flat_map(&in_event_upstreams)
                .filter_map(|u| component_of.get(&u).copied())
                .filter(|&j| j != i)
                .collect()
        })
        .collect();
    let mut ready: BTreeSet<(ProjectId, usize)> = waiting_on
        .iter()
        .enumerate()
        .filter(|(_, w)| w.is_empty())
        .map(|(i, _)| (components[i][0].clone(), i))
        .collect();
    let mut order: Vec<ProjectId> = vec![root.clone()];
    while let Some(first) = ready.iter().next().cloned() {
        ready.remove(&first);
        let done = first.1;
        order.extend(components[done].iter().cloned());
        for (i, w) in waiting_on.iter_mut().enumerate() {
            if w.remove(&done) && w.is_empty() {
                ready.insert((components[i][0].clone(), i));
            }
        }
    }

    let index: BTreeMap<&ProjectId, usize> =
        order.iter().enumerate().map(|(i, p)| (p, i)).collect();
    let nodes = order
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut parents: Vec<usize> = if i == 0 {
                Vec::new()
            } else {
                in_event_upstreams(p).iter().map(|u| index[u]).collect()
            };
            parents.sort_unstable();
            let cycle = component_of
                .get(p)
                .filter(|&&c| components[c].len() > 1)
                .and_then(|&c| {
                    let members: BTreeSet<&ProjectId> = components[c].iter().collect();
                    shortest_cycle(
                        p,
                        |q| graph.upstreams_of(q).cloned().collect(),
                        |q| members.contains(q),
                    )
                });
            PlannedNode {
                project: p.clone(),
                parents,
                cycle,
            }
        })
        .collect();
    CascadePlan { nodes, notes }
}

/// Breadth-first search for the shortest path from `start` back to itself, following
/// `next` and staying on projects `allowed` accepts. Neighbours are visited in
/// ascending order so the answer is deterministic.
fn shortest_cycle(
    start: &ProjectId,
    next: impl Fn(&ProjectId) -> Vec<ProjectId>,
    allowed: impl Fn(&ProjectId) -> bool,
) -> Option<Vec<ProjectId>> {
    let mut came_from: BTreeMap<ProjectId, ProjectId> = BTreeMap::new();
    let mut queue = VecDeque::from([start.clone()]);
    while let Some(p) = queue.pop_front() {
        let mut neighbours = next(&p);
        neighbours.sort();
        for n in neighbours {
            if !allowed(&n) {
                continue;
            }
            if &n == start {
                let mut back = Vec::new();
                let mut at = p.clone();
                while &at != start {
                    back.push(at.clone());
                    at = came_from[&at].clone();
                }
                back.reverse();
                let mut path = Vec::with_capacity(back.len() + 2);
                path.push(start.clone());
                path.extend(back);
                path.push(start.clone());
                return Some(path);
            }
            if !came_from.contains_key(&n) {
                came_from.insert(n.clone(), p.clone());
                queue.push_back(n);
            }
        }
    }
    None
}

/// Tarjan's algorithm, iterative; components come out with their members sorted.
fn strongly_connected(
    vertices: &BTreeSet<ProjectId>,
    next: impl Fn(&ProjectId) -> Vec<ProjectId>,
) -> Vec<Vec<ProjectId>> {
    let ids: Vec<&ProjectId> = vertices.iter().collect();
    let pos: BTreeMap<&ProjectId, usize> = ids.iter().enumerate().map(|(i, p)| (*p, i)).collect();
    let edges: Vec<Vec<usize>> = ids
        .iter()
        .map(|p| {
            let mut e: Vec<usize> = next(p).iter().filter_map(|q| pos.get(q).copied()).collect();
            e.sort_unstable();
            e
        })
        .collect();
    let n = ids.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut counter = 0;
    let mut out = Vec::new();
    for start in 0..n {
        if index[start] != usize::MAX {
            continue;
        }
        let mut call: Vec<(usize, usize)> = vec![(start, 0)];
        index[start] = counter;
        low[start] = counter;
        counter += 1;
        stack.push(start);
        on_stack[start] = true;
        while let Some(&mut (v, ref mut edge)) = call.last_mut() {
            if let Some(&w) = edges[v].get(*edge) {
                *edge += 1;
                if index[w] == usize::MAX {
                    index[w] = counter;
                    low[w] = counter;
                    counter += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    call.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                call.pop();
                if let Some(&(parent, _)) = call.last() {
                    low[parent] = low[parent].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut component = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        component.push(ids[w].clone());
                        if w == v {
                            break;
                        }
                    }
                    component.sort();
                    out.push(component);
                }
            }
        }
    }
    out
}

/// A node of a running event, as [`next_steps`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventNode {
    pub state: StateKind,
    /// The parent named by a `blocked` state.
    pub blocked_by: Option<usize>,
    pub parents: Vec<usize>,
}

/// What should happen to a node next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Every parent passed: trigger it.
    Queue,
    /// A parent ended without passing: block it, naming that parent.
    Block { by: usize },
    /// It was blocked, but no parent holds it back any more (a blocker is being
    /// rebuilt): it waits again.
    Unblock,
}

/// Says which nodes to queue, block or unblock, given every node's state.
///
/// `nodes` must list parents before children, as [`plan_cascade`] does; only skipped
/// nodes (on a cycle) may have parents after them, and they are never re-planned.
/// Pending and blocked nodes are re-derived from their parents, so a node is queued
/// only once all its parents have passed, is blocked by the first parent that ended
/// without passing, and waits again when that parent is rebuilt.
pub fn next_steps(nodes: &[EventNode]) -> Vec<(usize, Step)> {
    let mut effective: Vec<StateKind> = nodes.iter().map(|n| n.state).collect();
    let mut steps = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        if !matches!(node.state, StateKind::Pending | StateKind::Blocked) {
            continue;
        }
        let failed_parent = node
            .parents
            .iter()
            .copied()
            .find(|&p| effective[p].is_failure());
        match failed_parent {
            Some(p) => {
                effective[i] = StateKind::Blocked;
                if !(node.state == StateKind::Blocked && node.blocked_by == Some(p)) {
                    steps.push((i, Step::Block { by: p }));
                }
            }
            None if node
                .parents
                .iter()
                .all(|&p| effective[p] == StateKind::Passed) =>
            {
                effective[i] = StateKind::Queued;
                steps.push((i, Step::Queue));
            }
            None => {
                effective[i] = StateKind::Pending;
                if node.state == StateKind::Blocked {
                    steps.push((i, Step::Unblock));
                }
            }
        }
    }
    steps
}

/// How a report relates to the node it is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportVerdict {
    /// Record the report.
    Apply,
    /// The node already has this final state: answer as before and change nothing.
    Duplicate,
}

/// Why a report about an existing node is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportRefusal {
    #[error("attempt {reported} is older than the current attempt {current}; reports for earlier attempts are refused")]
    StaleAttempt { reported: u32, current: u32 },
    #[error("attempt {reported} has not started; the build is at attempt {current}")]
    FutureAttempt { reported: u32, current: u32 },
    #[error("the build is {current} and was never triggered, so it cannot be reported on")]
    NotTriggered { current: StateKind },
    #[error("the build already ended as {current}; it cannot become {reported} without a rebuild")]
    AlreadyFinal {
        current: StateKind,
        reported: StateKind,
    },
}

/// Judges a report of `reported` for `attempt` about a node that is at `current_attempt`
/// in state `current`.
pub fn accept_report(
    current: StateKind,
    current_attempt: u32,
    attempt: u32,
    reported: ReportState,
) -> Result<ReportVerdict, ReportRefusal> {
    if attempt < current_attempt {
        return Err(ReportRefusal::StaleAttempt {
            reported: attempt,
            current: current_attempt,
        });
    }
    if attempt > current_attempt {
        return Err(ReportRefusal::FutureAttempt {
            reported: attempt,
            current: current_attempt,
        });
    }
    match current {
        StateKind::Pending | StateKind::Blocked | StateKind::Skipped | StateKind::NeedsBump => {
            Err(ReportRefusal::NotTriggered { current })
        }
        StateKind::Queued | StateKind::Triggered | StateKind::Running => Ok(ReportVerdict::Apply),
        // The trigger looked lost (a timeout, say) but the CI ran after all: believe the CI.
        StateKind::TriggerFailed => Ok(ReportVerdict::Apply),
        StateKind::Passed | StateKind::Failed | StateKind::Errored | StateKind::Cancelled => {
            if reported.kind() == current {
                Ok(ReportVerdict::Duplicate)
            } else {
                Err(ReportRefusal::AlreadyFinal {
                    current,
                    reported: reported.kind(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(s: &str) -> ProjectId {
        ProjectId::parse(&format!("acme/{s}")).unwrap()
    }

    /// A graph from `dependent: upstream upstream ...` pairs.
    fn graph(edges: &[(&str, &[&str])]) -> Graph {
        let mut g = Graph::new();
        for (p, ups) in edges {
            g.set_upstreams(&id(p), ups.iter().map(|u| id(u)));
        }
        g
    }

    fn names(plan: &CascadePlan) -> Vec<&str> {
        plan.nodes
            .iter()
            .map(|n| &n.project.as_str()[5..])
            .collect()
    }

    fn start(plan: &CascadePlan) -> Vec<EventNode> {
        plan.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| EventNode {
                state: if i == 0 {
                    StateKind::Passed
                } else if n.cycle.is_some() {
                    StateKind::Skipped
                } else {
                    StateKind::Pending
                },
                blocked_by: None,
                parents: n.parents.clone(),
            })
            .collect()
    }

    fn apply(nodes: &mut [EventNode], steps: &[(usize, Step)]) {
        for &(i, step) in steps {
            match step {
                Step::Queue => nodes[i].state = StateKind::Queued,
                Step::Block { by } => {
                    nodes[i].state = StateKind::Blocked;
                    nodes[i].blocked_by = Some(by);
                }
                Step::Unblock => {
                    nodes[i].state = StateKind::Pending;
                    nodes[i].blocked_by = None;
                }
            }
        }
    }

    #[test]
    fn a_chain_is_planned_in_order_and_triggered_one_at_a_time() {
        let g = graph(&[("b", &["a"]), ("c", &["b"])]);
        let plan = plan_cascade(&g, &id("a"));
        assert_eq!(names(&plan), ["a", "b", "c"]);
        let mut nodes = start(&plan);
        assert_eq!(next_steps(&nodes), [(1, Step::Queue)]);
        apply(&mut nodes, &[(1, Step::Queue)]);
        nodes[1].state = StateKind::Passed;
        assert_eq!(next_steps(&nodes), [(2, Step::Queue)]);
    }

    #[test]
    fn diamond_triggers_join_once_after_both_parents() {
        let g = graph(&[("b", &["a"]), ("c", &["a"]), ("d", &["b", "c"])]);
        let plan = plan_cascade(&g, &id("a"));
        assert_eq!(names(&plan), ["a", "b", "c", "d"]);
        assert_eq!(plan.nodes[3].parents, [1, 2]);
        let mut nodes = start(&plan);
        let steps = next_steps(&nodes);
        assert_eq!(steps, [(1, Step::Queue), (2, Step::Queue)]);
        apply(&mut nodes, &steps);
        nodes[1].state = StateKind::Passed;
        assert!(next_steps(&nodes).is_empty(), "d must wait for c");
        nodes[2].state = StateKind::Passed;
        assert_eq!(next_steps(&nodes), [(3, Step::Queue)]);
    }

    #[test]
    fn a_failure_blocks_descendants_naming_the_parent() {
        let g = graph(&[("b", &["a"]), ("c", &["b"]), ("d", &["c"])]);
        let plan = plan_cascade(&g, &id("a"));
        let mut nodes = start(&plan);
        let steps = next_steps(&nodes);
        apply(&mut nodes, &steps);
        nodes[1].state = StateKind::Failed;
        let steps = next_steps(&nodes);
        assert_eq!(
            steps,
            [(2, Step::Block { by: 1 }), (3, Step::Block { by: 2 })]
        );
        apply(&mut nodes, &steps);
        assert!(next_steps(&nodes).is_empty(), "blocking is stable");

        // b is rebuilt: c and d wait again, and c is queued once b passes.
        nodes[1].state = StateKind::Queued;
        let steps = next_steps(&nodes);
        assert_eq!(steps, [(2, Step::Unblock), (3, Step::Unblock)]);
        apply(&mut nodes, &steps);
        nodes[1].state = StateKind::Passed;
        assert_eq!(next_steps(&nodes), [(2, Step::Queue)]);
    }

    #[test]
    fn a_node_with_two_failed_parents_stays_blocked_when_one_is_rebuilt() {
        let g = graph(&[("b", &["a"]), ("c", &["a"]), ("d", &["b", "c"])]);
        let plan = plan_cascade(&g, &id("a"));
        let mut nodes = start(&plan);
        let steps = next_steps(&nodes);
        apply(&mut nodes, &steps);
        nodes[1].state = StateKind::Failed;
        nodes[2].state = StateKind::Failed;
        let steps = next_steps(&nodes);
        apply(&mut nodes, &steps);
        assert_eq!(nodes[3].blocked_by, Some(1));
        nodes[1].state = StateKind::Queued;
        assert_eq!(next_steps(&nodes), [(3, Step::Block { by: 2 })]);
    }

    #[test]
    fn cycles_among_dependents_are_skipped_with_their_path_and_block_descendants() {
        // a -> b, b <-> c, c -> d
        let g = graph(&[("b", &["a", "c"]), ("c", &["b"]), ("d", &["c"])]);
        let plan = plan_cascade(&g, &id("a"));
        assert_eq!(names(&plan), ["a", "b", "c", "d"]);
        let cycle = |i: usize| -> Vec<String> {
            plan.nodes[i]
                .cycle
                .clone()
                .unwrap()
                .iter()
                .map(|p| p.to_string())
                .collect()
        };
        assert_eq!(cycle(1), ["acme/b", "acme/c", "acme/b"]);
        assert_eq!(cycle(2), ["acme/c", "acme/b", "acme/c"]);
        assert!(plan.nodes[3].cycle.is_none());
        let nodes = start(&plan);
        assert_eq!(next_steps(&nodes), [(3, Step::Block { by: 2 })]);
    }

    #[test]
    fn edges_back_into_the_root_are_ignored_and_noted() {
        let g = graph(&[("a", &["b"]), ("b", &["a"])]);
        let plan = plan_cascade(&g, &id("a"));
        assert_eq!(names(&plan), ["a", "b"]);
        assert!(plan.nodes[1].cycle.is_none());
        assert_eq!(plan.nodes[1].parents, [0]);
        assert_eq!(plan.notes.len(), 1);
        assert!(
            plan.notes[0].contains("acme/a depends on acme/b"),
            "{:?}",
            plan.notes
        );
    }

    #[test]
    fn transitive_dependents_carry_their_shortest_depth() {
        let g = graph(&[("b", &["a"]), ("c", &["b"]), ("d", &["a", "c"])]);
        let deps = g.transitive_dependents(&id("a"));
        let shape: Vec<(&str, u32)> = deps
            .iter()
            .map(|d| (&d.project.as_str()[5..], d.depth))
            .collect();
        assert_eq!(shape, [("b", 1), ("d", 1), ("c", 2)]);
    }

    #[test]
    fn cycle_through_names_the_path_in_dependency_order() {
        let g = graph(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"])]);
        let cycle: Vec<String> = g
            .cycle_through(&id("a"))
            .unwrap()
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(cycle, ["acme/a", "acme/b", "acme/c", "acme/a"]);
        assert!(graph(&[("b", &["a"])]).cycle_through(&id("a")).is_none());
    }

    #[test]
    fn reports_are_judged_by_attempt_and_state() {
        use ReportState::*;
        assert_eq!(
            accept_report(StateKind::Triggered, 1, 1, Running),
            Ok(ReportVerdict::Apply)
        );
        assert_eq!(
            accept_report(StateKind::Passed, 1, 1, Passed),
            Ok(ReportVerdict::Duplicate)
        );
        assert!(matches!(
            accept_report(StateKind::Passed, 1, 1, Failed),
            Err(ReportRefusal::AlreadyFinal { .. })
        ));
        assert!(matches!(
            accept_report(StateKind::Queued, 2, 1, Passed),
            Err(ReportRefusal::StaleAttempt { .. })
        ));
        assert!(matches!(
            accept_report(StateKind::Pending, 1, 1, Passed),
            Err(ReportRefusal::NotTriggered { .. })
        ));
    }

    #[test]
    fn only_finished_unblocked_builds_may_be_rebuilt() {
        assert!(may_rebuild(StateKind::Failed).is_ok());
        assert!(may_rebuild(StateKind::TriggerFailed).is_ok());
        assert_eq!(
            may_rebuild(StateKind::Running),
            Err(RebuildRefusal::InProgress(StateKind::Running))
        );
        assert_eq!(
            may_rebuild(StateKind::Blocked),
            Err(RebuildRefusal::Blocked)
        );
        assert_eq!(
            may_rebuild(StateKind::Skipped),
            Err(RebuildRefusal::Skipped)
        );
    }

    /// Random graphs: `edges[i]` lists upstream indexes of project i.
    fn arb_graph() -> impl Strategy<Value = (usize, Vec<Vec<usize>>)> {
        (2usize..14).prop_flat_map(|n| {
            (
                0..n,
                proptest::collection::vec(proptest::collection::vec(0..n, 0..4), n),
            )
        })
    }

    fn build(edges: &[Vec<usize>]) -> Graph {
        let mut g = Graph::new();
        for (i, ups) in edges.iter().enumerate() {
            g.set_upstreams(
                &id(&format!("p{i:02}")),
                ups.iter().map(|u| id(&format!("p{u:02}"))),
            );
        }
        g
    }

    proptest! {
        #[test]
        fn every_reached_project_gets_exactly_one_node((root, edges) in arb_graph()) {
            let g = build(&edges);
            let root = id(&format!("p{root:02}"));
            let plan = plan_cascade(&g, &root);
            let mut expected: BTreeSet<ProjectId> = g.transitive_dependents(&root).into_iter().map(|d| d.project).collect();
            expected.insert(root.clone());
            let planned: Vec<ProjectId> = plan.nodes.iter().map(|n| n.project.clone()).collect();
            let unique: BTreeSet<ProjectId> = planned.iter().cloned().collect();
            prop_assert_eq!(planned.len(), unique.len());
            prop_assert_eq!(unique, expected);
            prop_assert_eq!(&plan.nodes[0].project, &root);
        }

        #[test]
        fn planning_is_deterministic((root, edges) in arb_graph()) {
            let root = id(&format!("p{root:02}"));
            let mut reversed = Graph::new();
            for (i, ups) in edges.iter().enumerate().rev() {
                reversed.set_upstreams(&id(&format!("p{i:02}")), ups.iter().rev().map(|u| id(&format!("p{u:02}"))));
            }
            prop_assert_eq!(plan_cascade(&build(&edges), &root), plan_cascade(&reversed, &root));
        }

        #[test]
        fn no_node_is_triggered_before_all_its_parents_passed_and_every_event_finishes(
            (root, edges) in arb_graph(),
            outcomes in proptest::collection::vec(0u8..4, 64),
        ) {
            let g = build(&edges);
            let plan = plan_cascade(&g, &id(&format!("p{root:02}")));
            for (i, n) in plan.nodes.iter().enumerate() {
                if n.cycle.is_none() {
                    prop_assert!(n.parents.iter().all(|&p| p < i || plan.nodes[p].cycle.is_some()));
                }
            }
            let mut nodes = start(&plan);
            let mut triggered = vec![0u32; nodes.len()];
            let mut rounds = 0;
            loop {
                rounds += 1;
                prop_assert!(rounds <= nodes.len() * 2 + 2, "planning did not settle");
                let steps = next_steps(&nodes);
                for &(i, step) in &steps {
                    if step == Step::Queue {
                        prop_assert!(nodes[i].parents.iter().all(|&p| nodes[p].state == StateKind::Passed));
                        triggered[i] += 1;
                    }
                }
                apply(&mut nodes, &steps);
                // Every queued build ends, mostly passing.
                let mut progressed = !steps.is_empty();
                for (i, n) in nodes.iter_mut().enumerate() {
                    if n.state == StateKind::Queued {
                        n.state = if outcomes[i % outcomes.len()] == 0 { StateKind::Failed } else { StateKind::Passed };
                        progressed = true;
                    }
                }
                if !progressed {
                    break;
                }
            }
            prop_assert!(triggered.iter().all(|&t| t <= 1), "a node was triggered twice: {:?}", triggered);
            prop_assert!(nodes.iter().all(|n| n.state.is_final()), "unfinished: {:?}", nodes);
        }
    }
}
