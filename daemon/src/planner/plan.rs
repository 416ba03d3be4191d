//! Planning a new root event: which projects it reaches, in which order, who waits for
//! whom, and which sit on a cycle.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use conjunction_protocol::impact::NotAffected;
use conjunction_protocol::ProjectId;

use super::graph::{shortest_cycle_within, Graph, Ix};
use super::lines::{Pin, Promotion};
use super::rule::{judge, EdgeRule};
use super::versions::Version;

/// What a root event does with the root's dependents.
#[derive(Debug, Clone, Copy)]
pub enum Reach<'a> {
    /// A release of a version (or of none): the trigger rule picks the dependents.
    Release(Option<&'a str>),
    /// A promotion of a release line: only its dependents that may go along, pinned.
    Promotion(&'a Promotion),
}

/// The nodes of one root event, parents before children (except around cycles).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CascadePlan {
    /// Position 0 is the root.
    pub nodes: Vec<PlannedNode>,
    /// What the planner noticed and ignored, such as edges back into the root.
    pub notes: Vec<String>,
    /// The root's direct dependents whose declared range does not take the release,
    /// with why, sorted by project; they are not in the event unless another path
    /// reaches them.
    pub not_taken: Vec<(ProjectId, String)>,
    /// In a promotion: the dependents on the line, or reached from the projects
    /// promoted, that stay where they are, with why, sorted by project.
    pub not_promoted: Vec<NotAffected>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedNode {
    pub project: ProjectId,
    /// Positions of this node's in-event parents, ascending.
    pub parents: Vec<u32>,
    /// Set when the node is on a dependency cycle among the dependents: the cycle's
    /// path starting and ending with this project. Such a node is skipped.
    pub cycle: Option<Vec<ProjectId>>,
    /// The ref of the line this project declares for the release, to build on.
    pub on_ref: Option<String>,
    /// The range this project declares on the root, when the release is above it:
    /// the node needs a bump, and nothing is reached through it.
    pub needs_bump: Option<String>,
    /// In a promotion: the version to build or deploy.
    pub pin: Option<Pin>,
}

/// What the release of the root means for its direct dependents that declare which
/// versions of it they take.
#[derive(Default)]
struct Release {
    on_ref: HashMap<Ix, String>,
    needs_bump: HashMap<Ix, String>,
    /// Direct dependents the root's release does not reach.
    cut: HashSet<Ix>,
    not_taken: Vec<(ProjectId, String)>,
    notes: Vec<String>,
}

impl Release {
    /// Applies the trigger rule to every edge out of the root. A root without a
    /// version, or with one its ecosystem cannot read, follows every edge.
    fn judge(graph: &Graph, root: Ix, version: Option<&str>) -> Release {
        let mut out = Release::default();
        let Some(shown) = version else {
            return out;
        };
        let root_id = graph.id(root);
        let version = match Version::parse(graph.ecosystem_of(root), shown) {
            Ok(v) => v,
            Err(e) => {
                out.notes.push(format!(
                    "{root_id} reported {e}, so every dependent is built whatever range it declares"
                ));
                return out;
            }
        };
        for d in graph.dependent_ixs(root) {
            let Some(want) = graph.want(d, root) else {
                continue;
            };
            let dependent = graph.id(d);
            match judge(dependent, root_id, want, &version, shown) {
                Ok(EdgeRule::Follow { on_ref: None }) => {}
                Ok(EdgeRule::Follow { on_ref: Some(r) }) => {
                    out.on_ref.insert(d, r);
                }
                Ok(EdgeRule::NeedsBump { range }) => {
                    out.needs_bump.insert(d, range);
                }
                Ok(EdgeRule::NotTaken { why }) => {
                    out.cut.insert(d);
                    out.not_taken.push((dependent.clone(), why));
                }
                Err(e) => out.notes.push(format!(
                    "the range {dependent} declares on {root_id} could not be read ({e}), so it is built"
                )),
            }
        }
        out.not_taken.sort();
        out.notes.sort();
        out
    }
}

/// Works out the nodes of a root event started by `root`: one per project reached
/// from it through `depends_on` edges that the trigger rule follows
/// ([`super::rule`]) in a release, or through projects that go along in a promotion
/// ([`super::lines`]). Costs O((V + E) log V) in the projects and edges it reaches,
/// nothing for the rest of the graph.
pub fn plan_cascade(graph: &Graph, root: &ProjectId, reach: Reach<'_>) -> CascadePlan {
    let Some(root_ix) = graph.ix(root) else {
        return CascadePlan {
            nodes: vec![PlannedNode {
                project: root.clone(),
                parents: Vec::new(),
                cycle: None,
                on_ref: None,
                needs_bump: None,
                pin: None,
            }],
            notes: Vec::new(),
            not_taken: Vec::new(),
            not_promoted: Vec::new(),
        };
    };
    let (release, promoted) = match reach {
        Reach::Release(version) => (Release::judge(graph, root_ix, version), None),
        Reach::Promotion(promotion) => {
            let pins: HashMap<Ix, &Pin> = promotion
                .pins
                .iter()
                .filter_map(|(p, pin)| Some((graph.ix(p)?, pin.as_ref().ok()?)))
                .collect();
            (Release::default(), Some(pins))
        }
    };
    let (release, promoted) = (&release, &promoted);
    // Whether the event goes on from `u` to its dependent `d`: never from a project
    // that needs a bump, from the root not to one that does not take its release,
    // and in a promotion only to a project that goes along.
    let follows = move |u: Ix, d: Ix| {
        d != root_ix
            && !release.needs_bump.contains_key(&u)
            && !(u == root_ix && release.cut.contains(&d))
            && promoted.as_ref().is_none_or(|pins| pins.contains_key(&d))
    };
    let onward = move |p: Ix| graph.dependent_ixs(p).filter(move |&d| follows(p, d));

    // Every project reached from the root, in breadth-first order; `local[p]` is its
    // place in `reached`.
    let mut reached: Vec<Ix> = Vec::new();
    let mut local: HashMap<Ix, usize> = HashMap::new();
    let mut next_to_visit = None;
    loop {
        let p = match next_to_visit {
            None => root_ix,
            Some(i) => match reached.get(i) {
                Some(&p) => p,
                None => break,
            },
        };
        for d in onward(p) {
            if let std::collections::hash_map::Entry::Vacant(e) = local.entry(d) {
                e.insert(reached.len());
                reached.push(d);
            }
        }
        next_to_visit = Some(next_to_visit.map_or(0, |i| i + 1));
    }

    let mut notes: Vec<String> = graph
        .upstream_ixs(root_ix)
        .iter()
        .filter(|u| local.contains_key(u))
        .map(|&u| graph.id(u))
        .map(|u| format!("{root} depends on {u}, which depends on {root}: that edge back into the root was ignored"))
        .collect();
    notes.sort();
    notes.extend(release.notes.iter().cloned());

    // Strongly connected components among the dependents; one of more than one
    // project is a cycle.
    let next: Vec<Vec<usize>> = reached
        .iter()
        .map(|&p| onward(p).filter_map(|d| local.get(&d).copied()).collect())
        .collect();
    let components = strongly_connected(&next);
    let mut component_of = vec![0; reached.len()];
    for (c, members) in components.iter().enumerate() {
        for &m in members {
            component_of[m] = c;
        }
    }
    // Each component's members by project id; the first names the component.
    let sorted: Vec<Vec<usize>> = components
        .iter()
        .map(|c| {
            let mut c = c.clone();
            c.sort_by(|a, b| graph.id(reached[*a]).cmp(graph.id(reached[*b])));
            c
        })
        .collect();

    // Kahn's algorithm on the components, smallest project id first among the ready.
    let mut waiting = vec![0usize; components.len()];
    let mut after: Vec<Vec<usize>> = vec![Vec::new(); components.len()];
    for (from, targets) in next.iter().enumerate() {
        for &to in targets {
            let (cf, ct) = (component_of[from], component_of[to]);
            if cf != ct {
                waiting[ct] += 1;
                after[cf].push(ct);
            }
        }
    }
    let mut ready: BinaryHeap<Reverse<(&ProjectId, usize)>> = waiting
        .iter()
        .enumerate()
        .filter(|(_, w)| **w == 0)
        .map(|(c, _)| Reverse((graph.id(reached[sorted[c][0]]), c)))
        .collect();
    let mut order: Vec<Ix> = Vec::with_capacity(reached.len() + 1);
    order.push(root_ix);
    while let Some(Reverse((_, c))) = ready.pop() {
        order.extend(sorted[c].iter().map(|&m| reached[m]));
        for &t in &after[c] {
            waiting[t] -= 1;
            if waiting[t] == 0 {
                ready.push(Reverse((graph.id(reached[sorted[t][0]]), t)));
            }
        }
    }

    let position: HashMap<Ix, u32> = order
        .iter()
        .enumerate()
        .map(|(i, &p)| (p, i as u32))
        .collect();
    let nodes = order
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            // A parent is an upstream the event goes on from to this project.
            let mut parents: Vec<u32> = if i == 0 {
                Vec::new()
            } else {
                graph
                    .upstream_ixs(p)
                    .iter()
                    .filter(|&&u| follows(u, p))
                    .filter_map(|u| position.get(u).copied())
                    .collect()
            };
            parents.sort_unstable();
            let cycle = (i > 0)
                .then(|| component_of[local[&p]])
                .filter(|&c| components[c].len() > 1)
                .and_then(|c| {
                    shortest_cycle_within(graph, p, |q| {
                        local.get(&q).is_some_and(|&l| component_of[l] == c)
                    })
                });
            PlannedNode {
                project: graph.id(p).clone(),
                parents,
                cycle,
                on_ref: release.on_ref.get(&p).cloned(),
                needs_bump: release.needs_bump.get(&p).cloned(),
                pin: promoted
                    .as_ref()
                    .and_then(|pins| pins.get(&p))
                    .map(|&pin| pin.clone()),
            }
        })
        .collect();
    let not_promoted = match reach {
        Reach::Release(_) => Vec::new(),
        Reach::Promotion(promotion) => {
            let left = |ix: &Ix| !local.contains_key(ix);
            not_promoted(graph, root_ix, &reached, promotion, left)
        }
    };
    CascadePlan {
        nodes,
        notes,
        not_taken: release.not_taken.clone(),
        not_promoted,
    }
}

/// The projects a promotion leaves where they are: those on the line that may not go
/// along, those that may but are no longer reached, the dependents of the root and of
/// promoted projects that are not on the line, and every other dependent of the root,
/// which depends on it only through those.
fn not_promoted(
    graph: &Graph,
    root: Ix,
    reached: &[Ix],
    promotion: &Promotion,
    left: impl Fn(&Ix) -> bool,
) -> Vec<NotAffected> {
    let root_id = graph.id(root);
    let mut out: std::collections::BTreeMap<ProjectId, String> = promotion
        .pins
        .iter()
        .filter_map(|(project, pin)| match pin {
            Err(why) => Some((project.clone(), why.clone())),
            Ok(_) if graph.ix(project).is_none_or(|ix| left(&ix)) => Some((
                project.clone(),
                format!("it depends on {root_id} only through projects that are not promoted, if at all"),
            )),
            Ok(_) => None,
        })
        .collect();
    for &p in std::iter::once(&root).chain(reached) {
        for d in graph.dependent_ixs(p) {
            let project = graph.id(d);
            if d != root && !promotion.pins.contains_key(project) {
                out.entry(project.clone())
                    .or_insert_with(|| promotion.not_on_line(root_id));
            }
        }
    }
    // Below those: everything else that depends on the root stays where it is too,
    // and the event says so, as its preview does.
    for d in graph.transitive_dependents(root_id) {
        let outside = graph.ix(&d.project).is_some_and(|ix| left(&ix));
        if outside {
            out.entry(d.project).or_insert_with(|| {
                format!("it depends on {root_id} only through projects that are not promoted")
            });
        }
    }
    out.into_iter()
        .map(|(project, why)| NotAffected { project, why })
        .collect()
}

/// Tarjan's algorithm, iterative, over nodes `0..next.len()`.
fn strongly_connected(next: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = next.len();
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
            if let Some(&w) = next[v].get(*edge) {
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
                        component.push(w);
                        if w == v {
                            break;
                        }
                    }
                    out.push(component);
                }
            }
        }
    }
    out
}
