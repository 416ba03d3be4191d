//! What follows from a change in a running event: which nodes to queue, block, unblock
//! or fail for want of a trigger.
//!
//! The planner keeps, for every node of an event, a [`Member`]: its state, its parents
//! and children by position, and how many of its parents have not passed. When a node
//! changes (a report, a delivery outcome, a rebuild), [`settle`] looks only at what the
//! change reaches: the node's children, their parents when a failure appears or goes,
//! and on down as far as a block or an unblock spreads. A parent passing costs one
//! counter per child, so a node with ten thousand parents is not re-read ten thousand
//! times. Nodes are decided in position order (parents before children), so each is
//! decided once, after everything above it.
//!
//! The rules are the ones of DESIGN.md: a node is queued once every parent passed, is
//! blocked by the first parent (in position order) that ended without passing, and
//! waits again when that parent is rebuilt. The answers are the same as re-deriving
//! every pending and blocked node of the event from scratch; the property tests below
//! hold the two against each other.

use std::collections::BTreeMap;

use conjunction_protocol::{BuildId, ProjectId, StateKind};
use serde::{Deserialize, Serialize};

use super::graph::Untriggerable;
use super::plan::CascadePlan;

/// One node of an event as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: BuildId,
    pub project: ProjectId,
    pub state: StateKind,
    /// The parent a `blocked` node names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_by: Option<u32>,
    /// Positions of the in-event parents, ascending.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<u32>,
    /// Positions of the in-event children, ascending.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<u32>,
    /// How many parents are not `passed`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub waiting: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Where the planner reads an event's members from: the store, or memory in tests.
pub trait EventMembers {
    type Error;
    fn member(&mut self, position: u32) -> Result<&Member, Self::Error>;
}

/// Members held in memory, by position.
impl EventMembers for Vec<Member> {
    type Error = std::convert::Infallible;
    fn member(&mut self, position: u32) -> Result<&Member, Self::Error> {
        Ok(&self[position as usize])
    }
}

/// What should happen to a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Every parent passed: put its trigger in the outbox.
    Queue,
    /// Every parent passed, but it cannot be triggered: it ends here.
    FailTrigger(Untriggerable),
    /// A parent ended without passing: it is blocked, naming that parent.
    Block { by: u32 },
    /// It was blocked, but no parent holds it back any more: it waits again.
    Unblock,
}

/// What [`settle`] decided: the members it changed, with their new values, the
/// steps to carry out, in position order, and the nodes it had no budget left to
/// decide.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settled {
    pub members: BTreeMap<u32, Member>,
    pub steps: Vec<(u32, Step)>,
    /// Nodes still to decide, by position: hand them back as `ready` to a later call.
    /// Until then they stay as they are; deciding later is deciding from their
    /// parents as they are then, so nothing is lost by waiting.
    pub deferred: Vec<u32>,
}

/// Applies outside changes to an event (node `position` is now in `state`), decides
/// the nodes in `ready` (deferred by an earlier call), and works out what follows,
/// taking at most `max_steps` steps. `triggerable` says whether a project can be
/// triggered.
pub fn settle<M: EventMembers>(
    members: &mut M,
    changes: &[(u32, StateKind)],
    ready: &[u32],
    max_steps: usize,
    triggerable: &dyn Fn(&ProjectId) -> Result<(), Untriggerable>,
) -> Result<Settled, M::Error> {
    let mut run = Run {
        members,
        overlay: BTreeMap::new(),
        work: ready.iter().map(|&p| (p, true)).collect(),
        steps: Vec::new(),
        max_steps,
        triggerable,
    };
    for &(position, state) in changes {
        run.set_state(position, state, None)?;
    }
    run.drain()?;
    Ok(Settled {
        deferred: run.work.into_keys().collect(),
        members: run.overlay,
        steps: run.steps,
    })
}

/// A new event: its members, the first steps (the root's ready dependents queued,
/// the descendants of cycles blocked) and the nodes left to decide later.
#[derive(Debug, PartialEq, Eq)]
pub struct StartedEvent {
    pub members: Vec<Member>,
    pub steps: Vec<(u32, Step)>,
    pub deferred: Vec<u32>,
}

/// Lays out the members of a planned event whose root passed, with `ids` for its
/// nodes by position, and decides its nodes from scratch, at most `max_steps` of
/// them: O(V + E).
pub fn start_event(
    plan: &CascadePlan,
    ids: &[BuildId],
    max_steps: usize,
    triggerable: &dyn Fn(&ProjectId) -> Result<(), Untriggerable>,
) -> StartedEvent {
    let mut members: Vec<Member> = plan
        .nodes
        .iter()
        .zip(ids)
        .enumerate()
        .map(|(i, (n, &id))| Member {
            id,
            project: n.project.clone(),
            state: if i == 0 {
                StateKind::Passed
            } else if n.cycle.is_some() {
                StateKind::Skipped
            } else if n.needs_bump.is_some() {
                StateKind::NeedsBump
            } else {
                StateKind::Pending
            },
            blocked_by: None,
            parents: n.parents.clone(),
            children: Vec::new(),
            waiting: 0,
        })
        .collect();
    for i in 0..members.len() {
        for k in 0..members[i].parents.len() {
            let p = members[i].parents[k] as usize;
            members[p].children.push(i as u32);
            if members[p].state != StateKind::Passed {
                members[i].waiting += 1;
            }
        }
    }
    let mut run = Run {
        members: &mut members,
        overlay: BTreeMap::new(),
        // Every waiting node is decided, its parents read: that is the O(E) part.
        work: (1..plan.nodes.len() as u32).map(|p| (p, true)).collect(),
        steps: Vec::new(),
        max_steps,
        triggerable,
    };
    let Ok(()) = run.drain();
    let (overlay, steps) = (run.overlay, run.steps);
    let deferred = run.work.into_keys().collect();
    for (p, m) in overlay {
        members[p as usize] = m;
    }
    StartedEvent {
        members,
        steps,
        deferred,
    }
}

struct Run<'a, M: EventMembers> {
    members: &'a mut M,
    /// Members changed so far, by position.
    overlay: BTreeMap<u32, Member>,
    /// Nodes to decide, by position; `true` when a parent's failure appeared or went,
    /// so the node's parents must be read.
    work: BTreeMap<u32, bool>,
    steps: Vec<(u32, Step)>,
    /// The most steps this run may take; what is left on `work` is deferred.
    max_steps: usize,
    triggerable: &'a dyn Fn(&ProjectId) -> Result<(), Untriggerable>,
}

impl<M: EventMembers> Run<'_, M> {
    fn get(&mut self, p: u32) -> Result<&Member, M::Error> {
        match self.overlay.get(&p) {
            Some(m) => Ok(m),
            None => self.members.member(p),
        }
    }

    fn touch(&mut self, p: u32) -> Result<&mut Member, M::Error> {
        if !self.overlay.contains_key(&p) {
            let m = self.members.member(p)?.clone();
            self.overlay.insert(p, m);
        }
        Ok(self.overlay.get_mut(&p).expect("inserted above"))
    }

    /// Records that node `p` is now in state `to`, and what that means for its
    /// children: their count of parents not passed, and whether they must be decided.
    fn set_state(
        &mut self,
        p: u32,
        to: StateKind,
        blocked_by: Option<u32>,
    ) -> Result<(), M::Error> {
        let m = self.touch(p)?;
        let from = m.state;
        m.state = to;
        m.blocked_by = blocked_by;
        let passed_changed = (from == StateKind::Passed) != (to == StateKind::Passed);
        let failure_changed = from.is_failure() != to.is_failure();
        if !passed_changed && !failure_changed {
            return Ok(());
        }
        for k in 0..self.overlay[&p].children.len() {
            let c = self.overlay[&p].children[k];
            if passed_changed {
                let child = self.touch(c)?;
                child.waiting = if to == StateKind::Passed {
                    child.waiting.saturating_sub(1)
                } else {
                    child.waiting + 1
                };
            }
            *self.work.entry(c).or_insert(false) |= failure_changed;
        }
        Ok(())
    }

    fn drain(&mut self) -> Result<(), M::Error> {
        while self.steps.len() < self.max_steps {
            let Some((p, read_parents)) = self.work.pop_first() else {
                break;
            };
            self.decide(p, read_parents)?;
        }
        Ok(())
    }

    /// Decides a node from its parents. Only pending and blocked nodes are decided:
    /// anything else has been triggered, has ended, or sits on a cycle.
    fn decide(&mut self, p: u32, read_parents: bool) -> Result<(), M::Error> {
        let m = self.get(p)?;
        let (state, blocked_by, waiting) = (m.state, m.blocked_by, m.waiting);
        let first_failed = match state {
            StateKind::Pending if !read_parents => None,
            StateKind::Blocked if !read_parents => return Ok(()),
            StateKind::Pending | StateKind::Blocked => self.first_failed_parent(p)?,
            _ => return Ok(()),
        };
        match first_failed {
            Some(q) if state == StateKind::Blocked && blocked_by == Some(q) => {}
            Some(q) => {
                self.set_state(p, StateKind::Blocked, Some(q))?;
                self.steps.push((p, Step::Block { by: q }));
            }
            None if waiting == 0 => {
                let project = self.get(p)?.project.clone();
                match (self.triggerable)(&project) {
                    Ok(()) => {
                        self.set_state(p, StateKind::Queued, None)?;
                        self.steps.push((p, Step::Queue));
                    }
                    Err(why) => {
                        self.set_state(p, StateKind::TriggerFailed, None)?;
                        self.steps.push((p, Step::FailTrigger(why)));
                    }
                }
            }
            None if state == StateKind::Blocked => {
                self.set_state(p, StateKind::Pending, None)?;
                self.steps.push((p, Step::Unblock));
            }
            None => {}
        }
        Ok(())
    }

    fn first_failed_parent(&mut self, p: u32) -> Result<Option<u32>, M::Error> {
        let count = self.get(p)?.parents.len();
        for k in 0..count {
            let q = self.get(p)?.parents[k];
            if self.get(q)?.state.is_failure() {
                return Ok(Some(q));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::{plan_cascade, Graph, Reach};
    use proptest::prelude::*;

    fn id(s: &str) -> ProjectId {
        ProjectId::parse(&format!("acme/{s}")).unwrap()
    }

    fn ids(n: usize) -> Vec<BuildId> {
        (0..n)
            .map(|i| BuildId(ulid::Ulid::from_parts(1, i as u128)))
            .collect()
    }

    fn graph(edges: &[(&str, &[&str])]) -> Graph {
        let mut g = Graph::new();
        for (p, ups) in edges {
            let ups: Vec<ProjectId> = ups.iter().map(|u| id(u)).collect();
            g.set_project(&id(p), &ups, true);
        }
        g
    }

    fn always(_: &ProjectId) -> Result<(), Untriggerable> {
        Ok(())
    }

    fn start(g: &Graph, root: &str) -> StartedEvent {
        let plan = plan_cascade(g, &id(root), Reach::Release(None));
        start_event(&plan, &ids(plan.nodes.len()), usize::MAX, &always)
    }

    /// Applies a change and what follows to the members, as the writer does.
    fn change(members: &mut Vec<Member>, p: u32, to: StateKind) -> Vec<(u32, Step)> {
        let Ok(settled) = settle(members, &[(p, to)], &[], usize::MAX, &always);
        for (q, m) in settled.members {
            members[q as usize] = m;
        }
        settled.steps
    }

    fn states(members: &[Member]) -> Vec<StateKind> {
        members.iter().map(|m| m.state).collect()
    }

    use StateKind::*;

    #[test]
    fn a_chain_is_queued_one_at_a_time() {
        let mut e = start(&graph(&[("b", &["a"]), ("c", &["b"])]), "a");
        assert_eq!(e.steps, [(1, Step::Queue)]);
        assert_eq!(states(&e.members), [Passed, Queued, Pending]);
        assert!(change(&mut e.members, 1, Triggered).is_empty());
        assert_eq!(change(&mut e.members, 1, Passed), [(2, Step::Queue)]);
    }

    #[test]
    fn diamond_join_is_queued_once_after_both_parents() {
        let mut e = start(
            &graph(&[("b", &["a"]), ("c", &["a"]), ("d", &["b", "c"])]),
            "a",
        );
        assert_eq!(e.steps, [(1, Step::Queue), (2, Step::Queue)]);
        assert_eq!(e.members[3].waiting, 2);
        assert!(
            change(&mut e.members, 1, Passed).is_empty(),
            "d waits for c"
        );
        assert_eq!(e.members[3].waiting, 1);
        assert_eq!(change(&mut e.members, 2, Passed), [(3, Step::Queue)]);
    }

    #[test]
    fn a_failure_blocks_descendants_and_a_rebuild_unblocks_them() {
        let mut e = start(&graph(&[("b", &["a"]), ("c", &["b"]), ("d", &["c"])]), "a");
        assert_eq!(
            change(&mut e.members, 1, Failed),
            [(2, Step::Block { by: 1 }), (3, Step::Block { by: 2 })]
        );
        assert_eq!(
            change(&mut e.members, 1, Queued),
            [(2, Step::Unblock), (3, Step::Unblock)]
        );
        assert_eq!(change(&mut e.members, 1, Passed), [(2, Step::Queue)]);
    }

    #[test]
    fn a_node_with_two_failed_parents_stays_blocked_by_the_other_when_one_is_rebuilt() {
        let mut e = start(
            &graph(&[("b", &["a"]), ("c", &["a"]), ("d", &["b", "c"])]),
            "a",
        );
        change(&mut e.members, 2, Failed);
        assert_eq!(e.members[3].blocked_by, Some(2));
        assert_eq!(
            change(&mut e.members, 1, Failed),
            [(3, Step::Block { by: 1 })]
        );
        assert_eq!(
            change(&mut e.members, 1, Queued),
            [(3, Step::Block { by: 2 })]
        );
    }

    #[test]
    fn steps_beyond_the_budget_are_deferred_and_taken_up_later() {
        let names: Vec<String> = (0..10).map(|i| format!("w{i}")).collect();
        let a: &[&str] = &["a"];
        let edges: Vec<(&str, &[&str])> = names.iter().map(|n| (n.as_str(), a)).collect();
        let g = graph(&edges);
        let plan = plan_cascade(&g, &id("a"), Reach::Release(None));
        let mut e = start_event(&plan, &ids(plan.nodes.len()), 4, &always);
        assert_eq!(e.steps.len(), 4);
        assert_eq!(e.deferred, (5..=10).collect::<Vec<u32>>());
        assert!(e.members[5..].iter().all(|m| m.state == Pending));
        let Ok(next) = settle(&mut e.members, &[], &e.deferred, 4, &always);
        assert_eq!(next.steps.len(), 4);
        assert_eq!(next.deferred, [9, 10]);
    }

    #[test]
    fn cycles_are_skipped_and_their_descendants_blocked_at_the_start() {
        // a -> b, b <-> c, c -> d
        let e = start(
            &graph(&[("b", &["a", "c"]), ("c", &["b"]), ("d", &["c"])]),
            "a",
        );
        assert_eq!(states(&e.members), [Passed, Skipped, Skipped, Blocked]);
        assert_eq!(e.steps, [(3, Step::Block { by: 2 })]);
    }

    #[test]
    fn a_dependent_without_a_trigger_fails_and_blocks_its_own_in_the_same_call() {
        let mut g = graph(&[("c", &["b"])]);
        g.set_project(&id("b"), &[id("a")], false);
        let plan = plan_cascade(&g, &id("a"), Reach::Release(None));
        let e = start_event(&plan, &ids(3), usize::MAX, &|p| g.triggerable(p));
        assert_eq!(
            e.steps,
            [
                (1, Step::FailTrigger(Untriggerable::NoTrigger(id("b")))),
                (2, Step::Block { by: 1 })
            ]
        );
    }

    #[test]
    fn a_passing_parent_of_a_wide_join_costs_one_counter_not_a_scan() {
        // 200 projects depend on a; z depends on all of them.
        let names: Vec<String> = (0..200).map(|i| format!("w{i:03}")).collect();
        let mut edges: Vec<(&str, &[&str])> = Vec::new();
        let a: &[&str] = &["a"];
        for n in &names {
            edges.push((n.as_str(), a));
        }
        let all: Vec<&str> = names.iter().map(String::as_str).collect();
        edges.push(("z", &all));
        let mut e = start(&graph(&edges), "a");
        let z = e.members.len() as u32 - 1;

        /// Counts the members the planner reads.
        struct Counting<'a>(&'a mut Vec<Member>, usize);
        impl EventMembers for Counting<'_> {
            type Error = std::convert::Infallible;
            fn member(&mut self, p: u32) -> Result<&Member, Self::Error> {
                self.1 += 1;
                Ok(&self.0[p as usize])
            }
        }
        for p in 1..z {
            let mut view = Counting(&mut e.members, 0);
            let Ok(settled) = settle(&mut view, &[(p, Passed)], &[], usize::MAX, &always);
            assert!(view.1 <= 3, "passing one parent read {} members", view.1);
            for (q, m) in settled.members {
                e.members[q as usize] = m;
            }
        }
        assert_eq!(e.members[z as usize].state, Queued);
    }

    // ---- the reference: deciding every pending and blocked node from scratch ----

    /// A node as the from-scratch rules see it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Plain {
        state: StateKind,
        blocked_by: Option<u32>,
        parents: Vec<u32>,
        triggerable: bool,
    }

    /// One pass over the whole event, parents before children: each pending or blocked
    /// node is blocked by its first failed parent, queued once all parents passed, or
    /// waits. These are the rules the daemon applied before planning was incremental.
    fn next_steps(nodes: &[Plain]) -> Vec<(u32, Step)> {
        let mut effective: Vec<StateKind> = nodes.iter().map(|n| n.state).collect();
        let mut steps = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            if !matches!(node.state, Pending | Blocked) {
                continue;
            }
            let failed = node
                .parents
                .iter()
                .copied()
                .find(|&p| effective[p as usize].is_failure());
            match failed {
                Some(p) => {
                    effective[i] = Blocked;
                    if !(node.state == Blocked && node.blocked_by == Some(p)) {
                        steps.push((i as u32, Step::Block { by: p }));
                    }
                }
                None if node
                    .parents
                    .iter()
                    .all(|&p| effective[p as usize] == Passed) =>
                {
                    effective[i] = Queued;
                    steps.push((i as u32, Step::Queue));
                }
                None => {
                    effective[i] = Pending;
                    if node.state == Blocked {
                        steps.push((i as u32, Step::Unblock));
                    }
                }
            }
        }
        steps
    }

    /// Runs the from-scratch rules until nothing changes, failing queued nodes that
    /// cannot be triggered as the daemon did (which then blocks their children on the
    /// next pass).
    fn from_scratch(nodes: &mut [Plain]) {
        for _ in 0..=nodes.len() + 1 {
            let steps = next_steps(nodes);
            if steps.is_empty() {
                return;
            }
            for (i, step) in steps {
                let n = &mut nodes[i as usize];
                match step {
                    Step::Queue if n.triggerable => (n.state, n.blocked_by) = (Queued, None),
                    Step::Queue => (n.state, n.blocked_by) = (TriggerFailed, None),
                    Step::Block { by } => (n.state, n.blocked_by) = (Blocked, Some(by)),
                    Step::Unblock => (n.state, n.blocked_by) = (Pending, None),
                    Step::FailTrigger(_) => unreachable!("next_steps never fails a trigger"),
                }
            }
        }
        panic!("the from-scratch rules did not settle");
    }

    fn plain(members: &[Member], can: &[bool]) -> Vec<Plain> {
        members
            .iter()
            .enumerate()
            .map(|(i, m)| Plain {
                state: m.state,
                blocked_by: m.blocked_by,
                parents: m.parents.clone(),
                triggerable: can[i],
            })
            .collect()
    }

    /// Random graphs: `edges[i]` lists upstream indexes of project i; `can[i]` says
    /// whether project i has a trigger.
    fn arb_graph() -> impl Strategy<Value = (usize, Vec<Vec<usize>>, Vec<bool>)> {
        (2usize..16).prop_flat_map(|n| {
            (
                0..n,
                proptest::collection::vec(proptest::collection::vec(0..n, 0..4), n),
                proptest::collection::vec(proptest::bool::weighted(0.85), n),
            )
        })
    }

    fn name(i: usize) -> ProjectId {
        id(&format!("p{i:02}"))
    }

    fn build(edges: &[Vec<usize>], can: &[bool]) -> Graph {
        let mut g = Graph::new();
        for (i, ups) in edges.iter().enumerate() {
            let ups: Vec<ProjectId> = ups.iter().map(|&u| name(u)).collect();
            g.set_project(&name(i), &ups, can[i]);
        }
        g
    }

    /// An outside change a test may make to node `i`, if its state allows it.
    fn outside_change(state: StateKind, pick: u8) -> Option<StateKind> {
        let reported = [Running, Passed, Failed, Errored, Cancelled][pick as usize % 5];
        match state {
            // The CI took the trigger, refused it, or the build already reports.
            Queued => Some([Triggered, TriggerFailed, reported][pick as usize % 3]),
            Triggered | Running => Some(reported),
            // A report after a trigger that looked lost is believed.
            TriggerFailed if pick.is_multiple_of(4) => Some(reported),
            // A rebuild of a final, unblocked build starts its next attempt.
            Passed | Failed | Errored | Cancelled | TriggerFailed | NeedsBump => Some(Queued),
            Pending | Blocked | Skipped => None,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn incremental_planning_gives_the_states_of_planning_from_scratch(
            (root, edges, can) in arb_graph(),
            ops in proptest::collection::vec((0usize..64, 0u8..60), 0..40),
            budget in prop_oneof![Just(usize::MAX), 1usize..6],
        ) {
            let g = build(&edges, &can);
            let plan = plan_cascade(&g, &name(root), Reach::Release(None));
            let triggerable = |p: &ProjectId| g.triggerable(p);
            let can_at: Vec<bool> = plan.nodes.iter().map(|n| triggerable(&n.project).is_ok()).collect();
            // Takes up deferred decisions, a budget at a time, until none are left.
            let finish = |members: &mut Vec<Member>, mut deferred: Vec<u32>| {
                for _ in 0..=members.len() * 2 + 2 {
                    if deferred.is_empty() {
                        return Ok(());
                    }
                    let Ok(settled) = settle(members, &[], &deferred, budget, &triggerable);
                    for (q, m) in settled.members {
                        members[q as usize] = m;
                    }
                    deferred = settled.deferred;
                }
                Err(TestCaseError::fail("deferred decisions never ran out"))
            };
            let mut e = start_event(&plan, &ids(plan.nodes.len()), budget, &triggerable);
            prop_assert!(e.steps.len() <= budget);
            finish(&mut e.members, e.deferred.clone())?;

            // The start matches the from-scratch rules applied to the new event.
            let mut reference: Vec<Plain> = e.members.iter().zip(&can_at).map(|(m, &can)| Plain {
                state: match m.state { Passed | Skipped => m.state, _ => Pending },
                blocked_by: None,
                parents: m.parents.clone(),
                triggerable: can,
            }).collect();
            from_scratch(&mut reference);
            prop_assert_eq!(plain(&e.members, &can_at), reference);

            for (at, pick) in ops {
                let p = (at % e.members.len()) as u32;
                if p == 0 { continue; }
                let Some(to) = outside_change(e.members[p as usize].state, pick) else { continue };
                let mut reference = plain(&e.members, &can_at);
                reference[p as usize].state = to;
                reference[p as usize].blocked_by = None;
                from_scratch(&mut reference);

                let Ok(settled) = settle(&mut e.members, &[(p, to)], &[], budget, &triggerable);
                prop_assert!(settled.steps.len() <= budget);
                let mut decided = std::collections::BTreeSet::new();
                for (q, _) in &settled.steps {
                    prop_assert!(decided.insert(*q), "node {} was decided twice", q);
                }
                for (q, m) in settled.members {
                    e.members[q as usize] = m;
                }
                finish(&mut e.members, settled.deferred)?;
                prop_assert_eq!(plain(&e.members, &can_at), reference);
                for m in &e.members {
                    let waiting = m.parents.iter().filter(|&&q| e.members[q as usize].state != Passed).count();
                    prop_assert_eq!(m.waiting as usize, waiting, "waiting of {}", m.project);
                }
            }
        }
    }
}
