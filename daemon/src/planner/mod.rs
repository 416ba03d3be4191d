//! The cascade planner: pure decisions about projects and root events.
//!
//! [`Graph`] holds who depends on whom and whether each project can be triggered.
//! [`plan_cascade`] says which nodes a new root event has, in which order, and which
//! sit on a cycle; [`start_event`] and [`settle`] say which nodes to queue, block,
//! unblock or fail, at the start and after each change, looking only at what the
//! change reaches. [`reports`] says who may report on what and what a report or a
//! rebuild makes of a node; [`Refusal`] names every reason to say no. Nothing here
//! touches the store, the network or the clock, and the same inputs always give the
//! same answers.

mod graph;
mod plan;
pub mod refusal;
pub mod reports;
mod steps;

pub use graph::{Graph, Untriggerable};
pub use plan::{plan_cascade, CascadePlan, PlannedNode};
pub use refusal::{Forbidden, Refusal};
pub use reports::{Principal, ReportRefusal, ReportVerdict};
pub use steps::{settle, start_event, EventMembers, Member, Settled, StartedEvent, Step};

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, VecDeque};

    use super::*;
    use conjunction_protocol::ProjectId;
    use proptest::prelude::*;

    fn id(s: &str) -> ProjectId {
        ProjectId::parse(&format!("acme/{s}")).unwrap()
    }

    /// A graph from `dependent: upstream upstream ...` pairs.
    fn graph(edges: &[(&str, &[&str])]) -> Graph {
        let mut g = Graph::new();
        for (p, ups) in edges {
            let ups: Vec<ProjectId> = ups.iter().map(|u| id(u)).collect();
            g.set_project(&id(p), &ups, true);
        }
        g
    }

    fn names(plan: &CascadePlan) -> Vec<&str> {
        plan.nodes
            .iter()
            .map(|n| &n.project.as_str()[5..])
            .collect()
    }

    fn path(cycle: Option<Vec<ProjectId>>) -> Vec<String> {
        cycle
            .unwrap_or_default()
            .iter()
            .map(|p| p.as_str()[5..].to_owned())
            .collect()
    }

    #[test]
    fn a_chain_is_planned_in_order() {
        let plan = plan_cascade(&graph(&[("b", &["a"]), ("c", &["b"])]), &id("a"));
        assert_eq!(names(&plan), ["a", "b", "c"]);
        assert_eq!(plan.nodes[2].parents, [1]);
    }

    #[test]
    fn a_diamond_join_has_both_parents() {
        let g = graph(&[("b", &["a"]), ("c", &["a"]), ("d", &["b", "c"])]);
        let plan = plan_cascade(&g, &id("a"));
        assert_eq!(names(&plan), ["a", "b", "c", "d"]);
        assert_eq!(plan.nodes[3].parents, [1, 2]);
    }

    #[test]
    fn cycles_among_dependents_carry_their_path() {
        // a -> b, b <-> c, c -> d
        let g = graph(&[("b", &["a", "c"]), ("c", &["b"]), ("d", &["c"])]);
        let plan = plan_cascade(&g, &id("a"));
        assert_eq!(names(&plan), ["a", "b", "c", "d"]);
        assert_eq!(path(plan.nodes[1].cycle.clone()), ["b", "c", "b"]);
        assert_eq!(path(plan.nodes[2].cycle.clone()), ["c", "b", "c"]);
        assert!(plan.nodes[3].cycle.is_none());
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
        for (start, expected) in [
            ("a", ["a", "b", "c", "a"]),
            ("b", ["b", "c", "a", "b"]),
            ("c", ["c", "a", "b", "c"]),
        ] {
            assert_eq!(path(g.cycle_through(&id(start))), expected);
        }
        assert!(graph(&[("b", &["a"])]).cycle_through(&id("a")).is_none());
        assert!(graph(&[("b", &["a"])]).cycle_through(&id("b")).is_none());
    }

    #[test]
    fn only_an_added_edge_that_closes_a_cycle_is_reported() {
        let mut g = graph(&[("b", &["a"]), ("c", &["b"])]);
        assert!(g.cycle_closed_by(&id("c"), &[id("b")]).is_none());
        g.set_project(&id("a"), &[id("c")], true);
        assert_eq!(
            path(g.cycle_closed_by(&id("a"), &[id("c")])),
            ["a", "c", "b", "a"]
        );
        // The cycle is there, but an edge that did not close it says nothing.
        g.set_project(&id("d"), &[], true);
        g.set_project(&id("a"), &[id("c"), id("d")], true);
        assert!(g.cycle_closed_by(&id("a"), &[id("d")]).is_none());
    }

    #[test]
    fn checking_a_new_link_of_a_long_chain_does_not_walk_the_chain() {
        // p0 <- p1 <- ... <- p5000, each registered after its upstream.
        let mut g = Graph::new();
        g.set_project(&p(0), &[], true);
        for i in 1..=5000 {
            g.set_project(&p(i), &[p(i - 1)], true);
        }
        // The newest link has no dependents: nothing can close a cycle through it,
        // and the search must find that out at once rather than walk 5,000 upstreams.
        assert!(g.cycle_closed_by(&p(5000), &[p(4999)]).is_none());
        let (found, seen) = g.reaches(g.ix(&p(4999)).unwrap(), g.ix(&p(5000)).unwrap());
        assert!(!found);
        assert!(seen <= 4, "the search saw {seen} projects");
    }

    #[test]
    fn removing_a_project_keeps_the_edges_its_dependents_declare() {
        let mut g = graph(&[("b", &["a"]), ("a", &[])]);
        g.remove_project(&id("a"));
        assert!(!g.is_registered(&id("a")));
        assert_eq!(
            g.triggerable(&id("a")),
            Err(Untriggerable::Unregistered(id("a")))
        );
        assert_eq!(g.transitive_dependents(&id("a")).len(), 1);
        g.set_project(&id("a"), &[], false);
        assert_eq!(
            g.triggerable(&id("a")),
            Err(Untriggerable::NoTrigger(id("a")))
        );
        assert_eq!(plan_cascade(&g, &id("a")).nodes.len(), 2);
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

    fn p(i: usize) -> ProjectId {
        id(&format!("p{i:02}"))
    }

    fn build(edges: &[Vec<usize>]) -> Graph {
        let mut g = Graph::new();
        for (i, ups) in edges.iter().enumerate() {
            let ups: Vec<ProjectId> = ups.iter().map(|&u| p(u)).collect();
            g.set_project(&p(i), &ups, true);
        }
        g
    }

    /// The length of the shortest cycle through `start`, by plain breadth-first search.
    fn shortest_cycle_len(edges: &[Vec<usize>], start: usize) -> Option<usize> {
        let mut dist: BTreeMap<usize, usize> = BTreeMap::new();
        let mut queue = VecDeque::from([(start, 0)]);
        while let Some((v, d)) = queue.pop_front() {
            for &u in &edges[v] {
                if u == v {
                    continue;
                }
                if u == start {
                    return Some(d + 1);
                }
                if let std::collections::btree_map::Entry::Vacant(e) = dist.entry(u) {
                    e.insert(d + 1);
                    queue.push_back((u, d + 1));
                }
            }
        }
        None
    }

    proptest! {
        #[test]
        fn every_reached_project_gets_exactly_one_node_parents_first((root, edges) in arb_graph()) {
            let g = build(&edges);
            let plan = plan_cascade(&g, &p(root));
            let mut expected: BTreeSet<ProjectId> = g.transitive_dependents(&p(root)).into_iter().map(|d| d.project).collect();
            expected.insert(p(root));
            let planned: Vec<ProjectId> = plan.nodes.iter().map(|n| n.project.clone()).collect();
            let unique: BTreeSet<ProjectId> = planned.iter().cloned().collect();
            prop_assert_eq!(planned.len(), unique.len());
            prop_assert_eq!(unique, expected);
            prop_assert_eq!(&plan.nodes[0].project, &p(root));
            for (i, n) in plan.nodes.iter().enumerate() {
                if n.cycle.is_none() {
                    prop_assert!(n.parents.iter().all(|&q| (q as usize) < i || plan.nodes[q as usize].cycle.is_some()));
                }
            }
        }

        #[test]
        fn planning_is_deterministic((root, edges) in arb_graph()) {
            let mut reversed = Graph::new();
            for (i, ups) in edges.iter().enumerate().rev() {
                let ups: Vec<ProjectId> = ups.iter().rev().map(|&u| p(u)).collect();
                reversed.set_project(&p(i), &ups, true);
            }
            prop_assert_eq!(plan_cascade(&build(&edges), &p(root)), plan_cascade(&reversed, &p(root)));
        }

        #[test]
        fn an_added_edge_closes_a_cycle_exactly_when_the_graph_then_has_one_through_it(
            (start, edges) in arb_graph(),
            extra in 0usize..14,
        ) {
            let mut g = build(&edges);
            let n = edges.len();
            let (p_ix, u_ix) = (start, extra % n);
            prop_assume!(p_ix != u_ix && !edges[p_ix].contains(&u_ix));
            let mut ups: Vec<ProjectId> = edges[p_ix].iter().map(|&u| p(u)).collect();
            ups.push(p(u_ix));
            g.set_project(&p(p_ix), &ups, true);
            let mut after = edges.clone();
            after[p_ix].push(u_ix);
            // The new edge p -> u closes a cycle iff u reaches p.
            let u_reaches_p = {
                let mut seen = BTreeSet::from([u_ix]);
                let mut queue = VecDeque::from([u_ix]);
                while let Some(v) = queue.pop_front() {
                    for &w in &after[v] {
                        if seen.insert(w) { queue.push_back(w); }
                    }
                }
                seen.contains(&p_ix)
            };
            let found = g.cycle_closed_by(&p(p_ix), &[p(u_ix)]);
            prop_assert_eq!(found.is_some(), u_reaches_p);
            if let Some(cycle) = found {
                prop_assert_eq!(Some(cycle.len() - 1), shortest_cycle_len(&after, p_ix));
            }
        }

        #[test]
        fn cycle_through_finds_a_shortest_cycle_that_is_really_one((start, edges) in arb_graph()) {
            let g = build(&edges);
            let found = g.cycle_through(&p(start));
            match (found, shortest_cycle_len(&edges, start)) {
                (None, None) => {}
                (Some(cycle), Some(len)) => {
                    prop_assert_eq!(cycle.len() - 1, len, "{:?}", cycle);
                    prop_assert_eq!(&cycle[0], &p(start));
                    prop_assert_eq!(cycle.last(), Some(&p(start)));
                    for pair in cycle.windows(2) {
                        prop_assert!(g.upstreams_of(&pair[0]).contains(&&pair[1]), "{:?}", cycle);
                    }
                }
                (found, len) => prop_assert!(false, "found {:?}, shortest length {:?}", found, len),
            }
        }
    }
}
