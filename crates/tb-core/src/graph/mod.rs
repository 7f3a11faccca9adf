//! [`TaskGraph`]: the task DAG. Owns a private petgraph graph; builds it from nodes and
//! dependency edges, refuses cycles (naming the whole loop), and answers the questions the
//! executor and renderers ask: dependencies, dependents, a topological order, and the longest
//! remaining path from each task (critical path first).
//!
//! Generic over the node type: knows nothing of operations or Pantheon.

pub mod render;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use petgraph::Direction;
use petgraph::algo::{has_path_connecting, toposort};
use petgraph::graph::{DiGraph, NodeIndex};

/// Why a graph cannot be built or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("tasks form a cycle: {}", .0.join(" → "))]
    Cycle(Vec<String>),
    #[error("edge {from} → {to} refers to a task that does not exist")]
    UnknownNode { from: usize, to: usize },
}

/// A DAG of tasks; an edge `a → b` means b waits for a. Node indices are the positions of
/// the nodes given to [`TaskGraph::build`].
#[derive(Debug, Clone)]
pub struct TaskGraph<T> {
    graph: DiGraph<T, ()>,
    order: Vec<usize>,
}

impl<T> TaskGraph<T> {
    /// Builds the graph. `edges` are `(needed, dependent)` pairs of node positions; `name`
    /// names nodes in a cycle error.
    ///
    /// # Errors
    /// A cycle (with the loop, by name) or an edge to a missing node.
    pub fn build(
        nodes: Vec<T>,
        edges: impl IntoIterator<Item = (usize, usize)>,
        name: impl Fn(&T) -> String,
    ) -> Result<Self, GraphError> {
        let mut graph = DiGraph::with_capacity(nodes.len(), nodes.len());
        for node in nodes {
            graph.add_node(node);
        }
        let count = graph.node_count();
        for (from, to) in edges {
            if from >= count || to >= count {
                return Err(GraphError::UnknownNode { from, to });
            }
            graph.update_edge(NodeIndex::new(from), NodeIndex::new(to), ());
        }
        match toposort(&graph, None) {
            Ok(order) => Ok(Self { order: order.into_iter().map(NodeIndex::index).collect(), graph }),
            Err(cycle) => {
                let start = cycle.node_id();
                let members = component_of(&graph, start);
                let mut names: Vec<String> =
                    shortest_loop(&graph, start, &members).into_iter().map(|n| name(&graph[n])).collect();
                if let Some(first) = names.first().cloned() {
                    names.push(first);
                }
                Err(GraphError::Cycle(names))
            }
        }
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// The node at a position.
    #[must_use]
    pub fn node(&self, index: usize) -> Option<&T> {
        self.graph.node_weight(NodeIndex::new(index))
    }

    /// Every node, by position.
    pub fn nodes(&self) -> impl Iterator<Item = &T> {
        self.graph.node_weights()
    }

    /// Positions of the nodes `index` waits for, ascending.
    #[must_use]
    pub fn dependencies(&self, index: usize) -> Vec<usize> {
        self.neighbors(index, Direction::Incoming)
    }

    /// Positions of the nodes waiting for `index`, ascending.
    #[must_use]
    pub fn dependents(&self, index: usize) -> Vec<usize> {
        self.neighbors(index, Direction::Outgoing)
    }

    fn neighbors(&self, index: usize, dir: Direction) -> Vec<usize> {
        let mut out: Vec<usize> =
            self.graph.neighbors_directed(NodeIndex::new(index), dir).map(NodeIndex::index).collect();
        out.sort_unstable();
        out
    }

    /// Every edge as `(needed, dependent)`, sorted.
    #[must_use]
    pub fn edges(&self) -> Vec<(usize, usize)> {
        let mut out: Vec<(usize, usize)> = self
            .graph
            .edge_indices()
            .filter_map(|e| self.graph.edge_endpoints(e))
            .map(|(a, b)| (a.index(), b.index()))
            .collect();
        out.sort_unstable();
        out
    }

    /// A topological order: every node after the nodes it waits for.
    #[must_use]
    pub fn topological_order(&self) -> &[usize] {
        &self.order
    }

    /// Adds `needed → dependent`, refusing an edge that would close a cycle.
    ///
    /// # Errors
    /// [`GraphError::Cycle`] naming the loop the edge would close, or an unknown node.
    pub fn add_edge(&mut self, needed: usize, dependent: usize, name: impl Fn(&T) -> String) -> Result<(), GraphError> {
        let count = self.graph.node_count();
        if needed >= count || dependent >= count {
            return Err(GraphError::UnknownNode { from: needed, to: dependent });
        }
        let (a, b) = (NodeIndex::new(needed), NodeIndex::new(dependent));
        if a == b || has_path_connecting(&self.graph, b, a, None) {
            let mut names = vec![name(&self.graph[a])];
            if a != b {
                names.push(name(&self.graph[b]));
            }
            names.push(name(&self.graph[a]));
            return Err(GraphError::Cycle(names));
        }
        self.graph.update_edge(a, b, ());
        // Recompute the order: edges are added rarely (tests, tooling), never on a hot path.
        self.order =
            toposort(&self.graph, None).map(|o| o.into_iter().map(NodeIndex::index).collect()).unwrap_or_default();
        Ok(())
    }

    /// For each node, the largest total weight of a path from it to the end of the graph,
    /// itself included: the dispatch key "longest remaining path first".
    #[must_use]
    pub fn remaining_path(&self, weight: impl Fn(&T) -> u64) -> Vec<u64> {
        let mut out = vec![0u64; self.len()];
        for &i in self.order.iter().rev() {
            let own = self.node(i).map_or(0, &weight);
            let tail = self.dependents(i).into_iter().map(|d| out[d]).max().unwrap_or(0);
            out[i] = own.saturating_add(tail);
        }
        out
    }

    /// The longest weighted path through the whole graph (a lower bound on wall time).
    #[must_use]
    pub fn critical_path(&self, weight: impl Fn(&T) -> u64) -> u64 {
        self.remaining_path(weight).into_iter().max().unwrap_or(0)
    }
}

/// The nodes on a cycle through `start`: its strongly connected component.
fn component_of<N, E>(graph: &DiGraph<N, E>, start: NodeIndex) -> BTreeSet<NodeIndex> {
    let reach = |dir: Direction| {
        let mut seen = BTreeSet::from([start]);
        let mut queue = VecDeque::from([start]);
        while let Some(n) = queue.pop_front() {
            for m in graph.neighbors_directed(n, dir) {
                if seen.insert(m) {
                    queue.push_back(m);
                }
            }
        }
        seen
    };
    let forward = reach(Direction::Outgoing);
    let backward = reach(Direction::Incoming);
    forward.intersection(&backward).copied().collect()
}

/// A shortest loop from `start` back to itself through `members` (one strongly connected
/// component), as the list of nodes visited, `start` first.
#[must_use]
pub fn shortest_loop<N, E>(graph: &DiGraph<N, E>, start: NodeIndex, members: &BTreeSet<NodeIndex>) -> Vec<NodeIndex> {
    if graph.contains_edge(start, start) {
        return vec![start];
    }
    let mut parent: BTreeMap<NodeIndex, NodeIndex> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        let mut next: Vec<NodeIndex> = graph.neighbors(node).filter(|n| members.contains(n)).collect();
        next.sort();
        for n in next {
            if n == start {
                let mut path = vec![node];
                let mut cur = node;
                while cur != start {
                    match parent.get(&cur) {
                        Some(&p) => cur = p,
                        None => break,
                    }
                    path.push(cur);
                }
                path.reverse();
                return path;
            }
            if let std::collections::btree_map::Entry::Vacant(e) = parent.entry(n) {
                e.insert(node);
                queue.push_back(n);
            }
        }
    }
    vec![start]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &&str) -> String {
        (*s).to_owned()
    }

    #[test]
    fn builds_orders_and_measures() {
        let g = TaskGraph::build(vec!["a", "b", "c", "d"], [(0, 1), (1, 2), (0, 3)], name).unwrap();
        let pos: Vec<usize> = (0..4).map(|i| g.topological_order().iter().position(|&x| x == i).unwrap()).collect();
        assert!(pos[0] < pos[1] && pos[1] < pos[2] && pos[0] < pos[3]);
        assert_eq!(g.dependencies(2), [1]);
        assert_eq!(g.dependents(0), [1, 3]);
        assert_eq!(g.remaining_path(|_| 1), [3, 2, 1, 1]);
        assert_eq!(g.critical_path(|_| 10), 30);
    }

    #[test]
    fn cycles_are_named_in_full() {
        let e = TaskGraph::build(vec!["a", "b", "c", "d"], [(0, 1), (1, 2), (2, 0), (2, 3)], name).unwrap_err();
        let GraphError::Cycle(names) = e else { panic!("not a cycle: {e:?}") };
        // The loop may start anywhere on it, but names all of it, closing where it began.
        assert_eq!(names.len(), 4);
        assert_eq!(names.first(), names.last());
        let mut members = names[..3].to_vec();
        members.sort();
        assert_eq!(members, ["a", "b", "c"]);
        let mut g = TaskGraph::build(vec!["a", "b"], [(0, 1)], name).unwrap();
        assert!(matches!(g.add_edge(1, 0, name), Err(GraphError::Cycle(_))));
        assert!(matches!(g.add_edge(1, 1, name), Err(GraphError::Cycle(_))));
        assert!(g.add_edge(0, 1, name).is_ok());
    }
}
