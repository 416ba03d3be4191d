//! Assembling a root event's nodes into a tree for display.
//!
//! A node with several parents in the event appears under each of them; it is
//! expanded (its children shown) only under the first, in planning order, and
//! marked as shared everywhere.

use std::collections::{BTreeSet, HashMap};

use crate::id::BuildId;
use crate::node::Node;

/// One line of the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeLine {
    /// Index into the nodes the tree was assembled from.
    pub node: usize,
    pub depth: usize,
    /// The node has more than one parent in the event.
    pub shared: bool,
    /// The node's children are shown under another occurrence, not here.
    pub elsewhere: bool,
}

/// Lays `nodes` out as a depth-first tree. Nodes whose parents are not in `nodes`
/// (the root) start the tree; children follow in the order of `nodes`.
pub fn assemble(nodes: &[Node]) -> Vec<TreeLine> {
    let index: HashMap<BuildId, usize> = nodes.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut tops = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let parents: Vec<usize> = n
            .parents
            .iter()
            .filter_map(|p| index.get(p).copied())
            .collect();
        if parents.is_empty() {
            tops.push(i);
        }
        for p in parents {
            children[p].push(i);
        }
    }
    let mut lines = Vec::with_capacity(nodes.len());
    let mut expanded = BTreeSet::new();
    let mut stack: Vec<(usize, usize)> = tops.into_iter().rev().map(|i| (i, 0)).collect();
    while let Some((i, depth)) = stack.pop() {
        let first = expanded.insert(i);
        lines.push(TreeLine {
            node: i,
            depth,
            shared: nodes[i].parents.len() > 1,
            elsewhere: !first,
        });
        if first {
            stack.extend(children[i].iter().rev().map(|&c| (c, depth + 1)));
        }
    }
    // Nodes only reachable through a cycle among themselves have no top; show them too.
    for (i, node) in nodes.iter().enumerate() {
        if expanded.insert(i) {
            lines.push(TreeLine {
                node: i,
                depth: 0,
                shared: node.parents.len() > 1,
                elsewhere: false,
            });
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NodeState, ProjectId, Timestamp};

    fn node(n: u128, parents: &[u128]) -> Node {
        Node::new(
            BuildId(ulid::Ulid(n)),
            ProjectId::parse(&format!("acme/p{n}")).unwrap(),
            BuildId(ulid::Ulid(1)),
            parents.iter().map(|&p| BuildId(ulid::Ulid(p))).collect(),
            NodeState::Pending,
            Timestamp(0),
        )
    }

    #[test]
    fn a_diamond_join_appears_under_both_parents_and_expands_once() {
        // 1 -> 2, 1 -> 3, {2,3} -> 4, 4 -> 5
        let nodes = vec![
            node(1, &[]),
            node(2, &[1]),
            node(3, &[1]),
            node(4, &[2, 3]),
            node(5, &[4]),
        ];
        let lines = assemble(&nodes);
        let shape: Vec<(usize, usize, bool, bool)> = lines
            .iter()
            .map(|l| (l.node, l.depth, l.shared, l.elsewhere))
            .collect();
        assert_eq!(
            shape,
            vec![
                (0, 0, false, false),
                (1, 1, false, false),
                (3, 2, true, false),
                (4, 3, false, false),
                (2, 1, false, false),
                (3, 2, true, true),
            ]
        );
    }

    #[test]
    fn a_cycle_terminates_and_shows_every_node() {
        let nodes = vec![node(1, &[]), node(2, &[1, 3]), node(3, &[1, 2])];
        let lines = assemble(&nodes);
        assert!(lines.len() >= 3);
        for i in 0..3 {
            assert!(lines.iter().any(|l| l.node == i && !l.elsewhere));
        }
    }
}
