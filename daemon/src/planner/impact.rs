//! The impact preview: the event a release would start, worked out by the same
//! planner code that starts it when the release is reported, and described.

use std::collections::{BTreeMap, BTreeSet};

use conjunction_protocol::impact::{Impact, ImpactBuild, ImpactBump, NotAffected};
use conjunction_protocol::{BuildId, ProjectId, StateKind};

use super::graph::Graph;
use super::lines::Promotion;
use super::plan::{plan_cascade, Reach};
use super::rule::needs_bump_message;
use super::steps::start_event;

/// Which event the preview is of.
#[derive(Debug, Clone, Copy)]
pub enum Preview<'a> {
    /// A release into the first environment.
    Release,
    /// A promotion of the version's line to `environment`.
    Promotion {
        environment: &'a str,
        promotion: &'a Promotion,
        rollback_from: Option<&'a str>,
    },
}

/// What releasing (or promoting) `version` of `root` would do, as it stands now.
/// Contacts are left for the caller to fill in from the projects' records. Costs
/// O((V + E) log V) in everything that depends on `root`.
pub fn impact(graph: &Graph, root: &ProjectId, version: &str, preview: Preview<'_>) -> Impact {
    let reach = match preview {
        Preview::Release => Reach::Release(Some(version)),
        Preview::Promotion { promotion, .. } => Reach::Promotion(promotion),
    };
    let plan = plan_cascade(graph, root, reach);
    let ids: Vec<BuildId> = (0..plan.nodes.len())
        .map(|i| BuildId(ulid::Ulid::from_parts(0, i as u128)))
        .collect();
    let started = start_event(&plan, &ids, usize::MAX, &|p| graph.triggerable(p));
    let name = |position: u32| plan.nodes[position as usize].project.clone();

    let mut triggered = Vec::new();
    let mut needs_bump = Vec::new();
    let mut blocked = Vec::new();
    let mut cycles: BTreeSet<Vec<ProjectId>> = BTreeSet::new();
    for (node, member) in plan.nodes.iter().zip(&started.members).skip(1) {
        let after = node.parents.iter().map(|&q| name(q)).collect();
        match member.state {
            StateKind::NeedsBump => {
                let range = node.needs_bump.clone().unwrap_or_default();
                needs_bump.push(ImpactBump {
                    project: node.project.clone(),
                    message: needs_bump_message(&node.project, root, &range, version),
                    range,
                    contacts: Vec::new(),
                });
            }
            StateKind::Skipped => {
                if let Some(cycle) = &node.cycle {
                    cycles.insert(rotate_to_least(cycle));
                }
            }
            StateKind::Blocked => blocked.push(NotAffected {
                project: node.project.clone(),
                why: match member.blocked_by {
                    Some(by) if plan.nodes[by as usize].cycle.is_some() => {
                        format!("{} is on a dependency cycle", name(by))
                    }
                    Some(by) => format!("{} would not be built", name(by)),
                    None => "a project above it would not be built".into(),
                },
            }),
            // Queued, waiting, or ending at once because it has no trigger.
            state => triggered.push(ImpactBuild {
                project: node.project.clone(),
                git_ref: node
                    .pin
                    .as_ref()
                    .map_or(node.on_ref.clone(), |pin| pin.on_ref.clone()),
                version: node.pin.as_ref().map(|pin| pin.version.clone()),
                after,
                cannot_trigger: (state == StateKind::TriggerFailed)
                    .then(|| graph.triggerable(&node.project).err())
                    .flatten()
                    .map(|e| e.to_string()),
            }),
        }
    }

    // Everything else that depends on the root: the direct dependents that do not
    // take the version say why; the rest are reached only through those, or through
    // a project that needs a bump.
    let in_event: BTreeMap<&ProjectId, bool> = plan
        .nodes
        .iter()
        .map(|n| (&n.project, n.needs_bump.is_some()))
        .collect();
    let mut not_affected: Vec<NotAffected> = plan
        .not_taken
        .iter()
        .map(|(project, why)| NotAffected {
            project: project.clone(),
            why: why.clone(),
        })
        .collect();
    let direct: BTreeSet<&ProjectId> = plan
        .not_taken
        .iter()
        .map(|(p, _)| p)
        .chain(plan.not_promoted.iter().map(|n| &n.project))
        .collect();
    for d in graph.transitive_dependents(root) {
        if in_event.contains_key(&d.project) || direct.contains(&d.project) {
            continue;
        }
        let through_bump = d.via.iter().find(|u| in_event.get(u) == Some(&true));
        let why = match through_bump {
            Some(u) => format!("it depends on {root} only through {u}, which needs a bump"),
            None => format!(
                "it depends on {root} only through {}, which would not be built",
                d.via
                    .iter()
                    .map(ProjectId::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        not_affected.push(NotAffected {
            project: d.project,
            why,
        });
    }
    not_affected.sort_by(|a, b| a.project.cmp(&b.project));

    let (environment, rollback_from) = match preview {
        Preview::Release => (None, None),
        Preview::Promotion {
            environment,
            rollback_from,
            ..
        } => (
            Some(environment.to_owned()),
            rollback_from.map(str::to_owned),
        ),
    };
    Impact {
        project: root.clone(),
        version: version.to_owned(),
        environment,
        rollback_from,
        ecosystem: graph.ecosystem(root),
        builds: triggered
            .iter()
            .filter(|b| b.cannot_trigger.is_none())
            .count(),
        triggered,
        needs_bump,
        not_affected,
        blocked,
        cycles: cycles.into_iter().collect(),
        not_promoted: plan.not_promoted,
        notes: plan.notes,
    }
}

/// A cycle `[a, b, c, a]` started from its least project, so each is listed once.
fn rotate_to_least(cycle: &[ProjectId]) -> Vec<ProjectId> {
    let ring = &cycle[..cycle.len().saturating_sub(1)];
    let Some(at) = (0..ring.len()).min_by_key(|&i| &ring[i]) else {
        return cycle.to_vec();
    };
    let mut out: Vec<ProjectId> = ring[at..].iter().chain(&ring[..at]).cloned().collect();
    out.push(ring[at].clone());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use conjunction_protocol::project::{Dependency, Ecosystem};

    fn id(s: &str) -> ProjectId {
        ProjectId::parse(&format!("acme/{s}")).unwrap()
    }

    fn on(ups: &[&str]) -> Vec<Dependency> {
        ups.iter()
            .map(|u| Dependency {
                project: id(u),
                range: None,
                lines: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn the_preview_names_what_cannot_be_triggered_what_it_blocks_and_each_cycle_once() {
        let mut g = Graph::new();
        g.register(&id("lib"), &[], true, Some(Ecosystem::Cargo));
        g.register(&id("a"), &on(&["lib"]), true, None);
        g.register(&id("untriggered"), &on(&["lib"]), false, None);
        g.register(&id("below"), &on(&["untriggered"]), true, None);
        g.register(&id("x"), &on(&["lib", "y"]), true, None);
        g.register(&id("y"), &on(&["x"]), true, None);
        let i = impact(&g, &id("lib"), "1.0.0", Preview::Release);

        let built: Vec<(&str, bool)> = i
            .triggered
            .iter()
            .map(|b| (b.project.as_str(), b.cannot_trigger.is_some()))
            .collect();
        assert_eq!(built, [("acme/a", false), ("acme/untriggered", true)]);
        assert_eq!(i.builds, 1);
        assert_eq!(
            i.triggered[1].cannot_trigger.as_deref(),
            Some("acme/untriggered has no trigger configured")
        );
        assert_eq!(i.blocked.len(), 1);
        assert_eq!(i.blocked[0].project.as_str(), "acme/below");
        assert_eq!(i.blocked[0].why, "acme/untriggered would not be built");
        assert_eq!(i.cycles, [vec![id("x"), id("y"), id("x")]]);
    }
}
