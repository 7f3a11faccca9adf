//! Text renderings of a [`TaskGraph`] for the `graph` command: Graphviz DOT, Mermaid and JSON.
//! Nodes describe themselves through [`NodeView`], so this module stays generic.

use std::fmt::Write as _;

use serde::Serialize;

use super::TaskGraph;

/// What a renderer needs to know about a node.
pub trait NodeView {
    /// A unique, human-readable id (`deploy-live[acme-web.live]`).
    fn node_id(&self) -> String;
    /// The group the node is drawn in (its job).
    fn group(&self) -> String;
    /// A short second line (the operation).
    fn detail(&self) -> String;
    /// Extra fields for JSON output.
    fn fields(&self) -> serde_json::Value;
}

/// Graphviz DOT, one cluster per group.
#[must_use]
pub fn dot<T: NodeView>(graph: &TaskGraph<T>) -> String {
    let mut out = String::from("digraph tasks {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n");
    for (g, (group, members)) in groups(graph).into_iter().enumerate() {
        let _ = writeln!(out, "  subgraph cluster_{g} {{\n    label={};", quote(&group));
        for i in members {
            if let Some(node) = graph.node(i) {
                let _ = writeln!(out, "    n{i} [label={}];", quote(&format!("{}\n{}", node.node_id(), node.detail())));
            }
        }
        out.push_str("  }\n");
    }
    for (a, b) in graph.edges() {
        let _ = writeln!(out, "  n{a} -> n{b};");
    }
    out.push_str("}\n");
    out
}

/// A Mermaid flowchart, one subgraph per group.
#[must_use]
pub fn mermaid<T: NodeView>(graph: &TaskGraph<T>) -> String {
    let mut out = String::from("flowchart LR\n");
    for (g, (group, members)) in groups(graph).into_iter().enumerate() {
        let _ = writeln!(out, "  subgraph g{g}[\"{}\"]", mermaid_text(&group));
        for i in members {
            if let Some(node) = graph.node(i) {
                let _ = writeln!(
                    out,
                    "    n{i}[\"{}<br/>{}\"]",
                    mermaid_text(&node.node_id()),
                    mermaid_text(&node.detail())
                );
            }
        }
        out.push_str("  end\n");
    }
    for (a, b) in graph.edges() {
        let _ = writeln!(out, "  n{a} --> n{b}");
    }
    out
}

#[derive(Serialize)]
struct JsonGraph {
    nodes: Vec<serde_json::Value>,
    edges: Vec<JsonEdge>,
}

#[derive(Serialize)]
struct JsonEdge {
    from: String,
    to: String,
}

/// JSON: `{ "nodes": [...], "edges": [{ "from", "to" }] }`, nodes in position order.
#[must_use]
pub fn json<T: NodeView>(graph: &TaskGraph<T>) -> String {
    let nodes = graph.nodes().map(NodeView::fields).collect();
    let name = |i: usize| graph.node(i).map(NodeView::node_id).unwrap_or_default();
    let edges = graph.edges().into_iter().map(|(a, b)| JsonEdge { from: name(a), to: name(b) }).collect();
    let mut text = serde_json::to_string_pretty(&JsonGraph { nodes, edges }).unwrap_or_default();
    text.push('\n');
    text
}

fn groups<T: NodeView>(graph: &TaskGraph<T>) -> Vec<(String, Vec<usize>)> {
    let mut out: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, node) in graph.nodes().enumerate() {
        let group = node.group();
        match out.iter_mut().find(|(g, _)| *g == group) {
            Some((_, members)) => members.push(i),
            None => out.push((group, vec![i])),
        }
    }
    out
}

fn quote(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    format!("\"{escaped}\"")
}

fn mermaid_text(text: &str) -> String {
    text.replace('"', "#quot;").replace('[', "#91;").replace(']', "#93;")
}

#[cfg(test)]
mod tests {
    use super::*;

    struct N(&'static str);
    impl NodeView for N {
        fn node_id(&self) -> String {
            format!("job[{}]", self.0)
        }
        fn group(&self) -> String {
            "job".into()
        }
        fn detail(&self) -> String {
            "op \"x\"".into()
        }
        fn fields(&self) -> serde_json::Value {
            serde_json::json!({ "id": self.node_id() })
        }
    }

    #[test]
    fn renders_every_format() {
        let g = TaskGraph::build(vec![N("a"), N("b")], [(0, 1)], super::NodeView::node_id).unwrap();
        let d = dot(&g);
        assert!(d.contains("n0 -> n1;"), "{d}");
        assert!(d.contains("\\\"x\\\""), "{d}");
        let m = mermaid(&g);
        assert!(m.contains("n0 --> n1"), "{m}");
        assert!(m.contains("job#91;a#93;"), "{m}");
        let j: serde_json::Value = serde_json::from_str(&json(&g)).unwrap();
        assert_eq!(j["edges"][0]["from"], "job[a]");
    }
}
