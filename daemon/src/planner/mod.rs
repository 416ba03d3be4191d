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
pub mod impact;
pub mod lines;
mod plan;
pub mod refusal;
pub mod reports;
pub mod rule;
mod steps;
pub mod verdicts;
pub mod versions;

pub use graph::{Graph, Untriggerable, Want};
pub use lines::{Environments, Promotion, ReleasesConfig, Stage};
pub use plan::{plan_cascade, CascadePlan, PlannedNode, Reach};
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

    fn ids(n: usize) -> Vec<conjunction_protocol::BuildId> {
        (0..n)
            .map(|i| conjunction_protocol::BuildId(ulid::Ulid::from_parts(1, i as u128)))
            .collect()
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
        let plan = plan_cascade(
            &graph(&[("b", &["a"]), ("c", &["b"])]),
            &id("a"),
            Reach::Release(None),
        );
        assert_eq!(names(&plan), ["a", "b", "c"]);
        assert_eq!(plan.nodes[2].parents, [1]);
    }

    #[test]
    fn a_diamond_join_has_both_parents() {
        let g = graph(&[("b", &["a"]), ("c", &["a"]), ("d", &["b", "c"])]);
        let plan = plan_cascade(&g, &id("a"), Reach::Release(None));
        assert_eq!(names(&plan), ["a", "b", "c", "d"]);
        assert_eq!(plan.nodes[3].parents, [1, 2]);
    }

    #[test]
    fn cycles_among_dependents_carry_their_path() {
        // a -> b, b <-> c, c -> d
        let g = graph(&[("b", &["a", "c"]), ("c", &["b"]), ("d", &["c"])]);
        let plan = plan_cascade(&g, &id("a"), Reach::Release(None));
        assert_eq!(names(&plan), ["a", "b", "c", "d"]);
        assert_eq!(path(plan.nodes[1].cycle.clone()), ["b", "c", "b"]);
        assert_eq!(path(plan.nodes[2].cycle.clone()), ["c", "b", "c"]);
        assert!(plan.nodes[3].cycle.is_none());
    }

    #[test]
    fn edges_back_into_the_root_are_ignored_and_noted() {
        let g = graph(&[("a", &["b"]), ("b", &["a"])]);
        let plan = plan_cascade(&g, &id("a"), Reach::Release(None));
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
        assert_eq!(
            plan_cascade(&g, &id("a"), Reach::Release(None)).nodes.len(),
            2
        );
    }

    /// A graph where the dependents of `acme/lib` declare `wants` on it (a range, or
    /// `ref=range` lines joined by `;`), and `rest` are plain edges.
    fn versioned(wants: &[(&str, &str)], rest: &[(&str, &[&str])]) -> Graph {
        use conjunction_protocol::project::{Dependency, Ecosystem, Line};
        let mut g = graph(rest);
        g.register(&id("lib"), &[], true, Some(Ecosystem::Cargo));
        for (p, want) in wants {
            let mut d = Dependency {
                project: id("lib"),
                range: None,
                lines: Vec::new(),
            };
            if want.contains('=') {
                d.lines = want
                    .split(';')
                    .map(|l| {
                        let (r, range) = l.split_once('=').unwrap();
                        Line {
                            git_ref: r.into(),
                            range: range.into(),
                        }
                    })
                    .collect();
            } else if !want.is_empty() {
                d.range = Some((*want).into());
            }
            let mut deps = vec![d];
            for (q, ups) in rest {
                if q == p {
                    deps.extend(ups.iter().map(|u| Dependency {
                        project: id(u),
                        range: None,
                        lines: Vec::new(),
                    }));
                }
            }
            g.register(&id(p), &deps, true, Some(Ecosystem::Cargo));
        }
        g
    }

    /// Per node: its name, the range it needs bumped, the ref it builds, its parents.
    type Shape<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Vec<&'a str>);

    fn shape(plan: &CascadePlan) -> Vec<Shape<'_>> {
        plan.nodes
            .iter()
            .map(|n| {
                (
                    &n.project.as_str()[5..],
                    n.needs_bump.as_deref(),
                    n.on_ref.as_deref(),
                    n.parents
                        .iter()
                        .map(|&q| &plan.nodes[q as usize].project.as_str()[5..])
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn a_new_major_builds_who_takes_it_and_stops_at_who_needs_a_bump() {
        // a takes ^2, b and c stay on 1.x, d declares no range; e sits below b only,
        // f below both b and a.
        let g = versioned(
            &[("a", "^2"), ("b", "^1.2"), ("c", "1"), ("d", "")],
            &[("e", &["b"]), ("f", &["a", "b"])],
        );
        let plan = plan_cascade(&g, &id("lib"), Reach::Release(Some("2.0.0")));
        assert_eq!(
            shape(&plan),
            [
                ("lib", None, None, vec![]),
                ("a", None, None, vec!["lib"]),
                ("b", Some("^1.2"), None, vec!["lib"]),
                ("c", Some("1"), None, vec!["lib"]),
                ("d", None, None, vec!["lib"]),
                ("f", None, None, vec!["a"]),
            ]
        );
        assert!(plan.not_taken.is_empty());
        let started = start_event(&plan, &ids(plan.nodes.len()), usize::MAX, &|_| Ok(()));
        let kinds: Vec<_> = started.members.iter().map(|m| m.state).collect();
        use conjunction_protocol::StateKind::*;
        assert_eq!(
            kinds,
            [Passed, Queued, NeedsBump, NeedsBump, Queued, Pending]
        );
    }

    #[test]
    fn a_maintenance_release_reaches_only_the_line_that_takes_it_on_its_ref() {
        let g = versioned(
            &[("a", "^2"), ("b", "main=^2;release-1.x=^1.4"), ("c", "")],
            &[("x", &["a"]), ("y", &["b"])],
        );
        let plan = plan_cascade(&g, &id("lib"), Reach::Release(Some("1.5.0")));
        assert_eq!(
            shape(&plan),
            [
                ("lib", None, None, vec![]),
                ("b", None, Some("release-1.x"), vec!["lib"]),
                ("c", None, None, vec!["lib"]),
                ("y", None, None, vec!["b"]),
            ]
        );
        assert_eq!(
            plan.not_taken,
            [(
                id("a"),
                "acme/a declares ^2 on acme/lib, which does not take 1.5.0".to_owned()
            )]
        );
    }

    #[test]
    fn a_root_without_a_version_or_with_an_unreadable_one_follows_every_edge() {
        let g = versioned(&[("a", "^2"), ("b", "^1")], &[]);
        for version in [None, Some("two point oh")] {
            let plan = plan_cascade(&g, &id("lib"), Reach::Release(version));
            assert_eq!(names(&plan), ["lib", "a", "b"]);
            assert!(plan.nodes.iter().all(|n| n.needs_bump.is_none()));
            assert_eq!(plan.notes.len(), usize::from(version.is_some()));
        }
        let plan = plan_cascade(&g, &id("lib"), Reach::Release(Some("two point oh")));
        assert!(
            plan.notes[0].contains("\"two point oh\" is not a Cargo version"),
            "{:?}",
            plan.notes
        );
    }

    #[test]
    fn a_project_reached_another_way_is_built_even_when_its_own_range_skips_the_release() {
        // b declares ^2 on lib (so 1.5.0 is below it) but also depends on a, which
        // takes 1.5.0: b is built after a, and lib is not its parent.
        let g = versioned(&[("a", "^1"), ("b", "^2")], &[("b", &["a"])]);
        let plan = plan_cascade(&g, &id("lib"), Reach::Release(Some("1.5.0")));
        assert_eq!(
            shape(&plan),
            [
                ("lib", None, None, vec![]),
                ("a", None, None, vec!["lib"]),
                ("b", None, None, vec!["a"]),
            ]
        );
    }

    fn promotion(pins: &[(&str, Result<&str, &str>)]) -> Promotion {
        Promotion {
            version: "2.0.0".into(),
            previous: "test".into(),
            pins: pins
                .iter()
                .map(|(p, pin)| {
                    let pin = pin
                        .map(|v| lines::Pin {
                            version: v.to_owned(),
                            on_ref: None,
                        })
                        .map_err(str::to_owned);
                    (id(p), pin)
                })
                .collect(),
        }
    }

    #[test]
    fn a_promotion_builds_only_the_line_pinned_and_says_why_the_rest_stay() {
        // a and b passed in test; c failed there, and d sits below c only; e below a
        // and c; n subscribed to lib after the release, so it is not on the line.
        let g = versioned(
            &[("a", ""), ("b", ""), ("c", ""), ("n", "")],
            &[("d", &["c"]), ("e", &["a", "c"])],
        );
        let p = promotion(&[
            ("a", Ok("3.1.0")),
            ("b", Ok("0.9.2")),
            ("c", Err("it ended failed in test")),
            ("d", Err("it was not built in test")),
            ("e", Ok("1.0.0")),
        ]);
        let plan = plan_cascade(&g, &id("lib"), Reach::Promotion(&p));
        assert_eq!(names(&plan), ["lib", "a", "b", "e"]);
        let pins: Vec<_> = plan
            .nodes
            .iter()
            .map(|n| n.pin.as_ref().map(|p| p.version.as_str()))
            .collect();
        assert_eq!(pins, [None, Some("3.1.0"), Some("0.9.2"), Some("1.0.0")]);
        // e waits for a only: c is not in the event.
        assert_eq!(plan.nodes[3].parents, [1]);
        let not_promoted: Vec<_> = plan
            .not_promoted
            .iter()
            .map(|n| (n.project.clone(), n.why.clone()))
            .collect();
        assert_eq!(
            not_promoted,
            [
                (id("c"), "it ended failed in test".to_owned()),
                (id("d"), "it was not built in test".to_owned()),
                (
                    id("n"),
                    "it was not built against acme/lib 2.0.0 in test".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn a_promotion_names_every_dependent_it_leaves_transitive_ones_too_as_its_preview_does() {
        // c failed in test; d below c was not built; f below d was never on the line,
        // and g below f neither: they stay, and the event says so.
        let g = versioned(
            &[("a", ""), ("c", "")],
            &[("d", &["c"]), ("f", &["d"]), ("g", &["f"])],
        );
        let p = promotion(&[
            ("a", Ok("3.1.0")),
            ("c", Err("it ended failed in test")),
            ("d", Err("it was not built in test")),
        ]);
        let plan = plan_cascade(&g, &id("lib"), Reach::Promotion(&p));
        assert_eq!(names(&plan), ["lib", "a"]);
        let said: Vec<(&str, &str)> = plan
            .not_promoted
            .iter()
            .map(|n| (n.project.as_str(), n.why.as_str()))
            .collect();
        let through = "it depends on acme/lib only through projects that are not promoted";
        assert_eq!(
            said,
            [
                ("acme/c", "it ended failed in test"),
                ("acme/d", "it was not built in test"),
                ("acme/f", through),
                ("acme/g", through),
            ]
        );
        let preview = impact::impact(
            &g,
            &id("lib"),
            "2.0.0",
            impact::Preview::Promotion {
                environment: "prod",
                promotion: &p,
                rollback_from: None,
            },
        );
        assert_eq!(preview.not_promoted, plan.not_promoted);
        assert!(
            preview.not_affected.is_empty(),
            "{:?}",
            preview.not_affected
        );
    }

    #[test]
    fn a_promoted_project_no_longer_reached_stays_and_says_so() {
        // x was on the line below a, but no longer depends on anything in the event.
        let g = versioned(&[("a", "")], &[("x", &[])]);
        let p = promotion(&[("a", Ok("1.0.0")), ("x", Ok("2.0.0"))]);
        let plan = plan_cascade(&g, &id("lib"), Reach::Promotion(&p));
        assert_eq!(names(&plan), ["lib", "a"]);
        assert_eq!(plan.not_promoted.len(), 1);
        assert!(plan.not_promoted[0]
            .why
            .contains("only through projects that are not promoted"));
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
            let plan = plan_cascade(&g, &p(root), Reach::Release(None));
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
        fn the_release_reaches_exactly_what_followed_edges_reach(
            (root, edges) in arb_graph(),
            ranges in proptest::collection::vec(0usize..5, 14),
            release in 0usize..4,
        ) {
            use conjunction_protocol::project::{Dependency, Ecosystem};
            use super::versions::{Fit, Range, Version};
            const RANGES: [Option<&str>; 5] = [None, Some("^1"), Some("^2"), Some(">=1, <1.5"), Some("~2.1")];
            const RELEASES: [&str; 4] = ["1.2.0", "1.7.0", "2.1.3", "3.0.0"];
            let mut g = Graph::new();
            for (i, ups) in edges.iter().enumerate() {
                let deps: Vec<Dependency> = ups.iter().map(|&u| Dependency {
                    project: p(u),
                    range: (u == root).then(|| RANGES[ranges[i]]).flatten().map(str::to_owned),
                    lines: Vec::new(),
                }).collect();
                g.register(&p(i), &deps, true, Some(Ecosystem::Cargo));
            }
            let v = RELEASES[release];
            let plan = plan_cascade(&g, &p(root), Reach::Release(Some(v)));

            // The reference: breadth-first from the root, classifying each edge out of
            // the root by how its range fits the release.
            let version = Version::parse(Ecosystem::Cargo, v).unwrap();
            let fit = |i: usize| -> Fit {
                let declared = edges[i].contains(&root).then(|| RANGES[ranges[i]]).flatten();
                declared.map_or(Fit::Takes, |r| Range::parse(Ecosystem::Cargo, r).unwrap().fit(&version))
            };
            let mut bump = BTreeSet::new();
            let mut seen = BTreeSet::new();
            let mut queue = VecDeque::new();
            for (i, ups) in edges.iter().enumerate() {
                if i != root && ups.contains(&root) {
                    match fit(i) {
                        Fit::Takes => { seen.insert(i); queue.push_back(i); }
                        Fit::TooNew => { bump.insert(i); seen.insert(i); }
                        Fit::Outside => {}
                    }
                }
            }
            while let Some(u) = queue.pop_front() {
                for (d, ups) in edges.iter().enumerate() {
                    if d != root && ups.contains(&u) && seen.insert(d) && !bump.contains(&d) {
                        queue.push_back(d);
                    }
                }
            }
            let planned: BTreeSet<usize> = plan.nodes[1..].iter()
                .map(|n| n.project.as_str()[6..].parse().unwrap()).collect();
            prop_assert_eq!(&planned, &seen);
            for n in &plan.nodes[1..] {
                let i: usize = n.project.as_str()[6..].parse().unwrap();
                prop_assert_eq!(n.needs_bump.is_some(), bump.contains(&i));
                for &q in &n.parents {
                    prop_assert!(plan.nodes[q as usize].needs_bump.is_none(), "a parent that needs a bump");
                }
                if n.needs_bump.is_some() {
                    prop_assert_eq!(n.parents.first(), Some(&0), "a bump is always on the root's edge");
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
            prop_assert_eq!(plan_cascade(&build(&edges), &p(root), Reach::Release(None)), plan_cascade(&reversed, &p(root), Reach::Release(None)));
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
