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

/// The graph one level up: a node per group (job) with its task count, an edge wherever a
/// task of one needs a task of another, labelled with how many task edges it stands for.
/// What a reviewer reads at 88+ tasks. Drawn from a plan alone (`JobGraph::unresolved`), it
/// counts no tasks: the targets that make them are not known without the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobGraph {
    /// (group, the operation of its first task, task count).
    nodes: Vec<(String, String, Option<usize>)>,
    /// (from, to, task edges), in first-seen order.
    edges: Vec<(usize, usize, Option<usize>)>,
}

impl JobGraph {
    /// The job graph of a task graph, with its counts.
    #[must_use]
    pub fn of<T: NodeView>(graph: &TaskGraph<T>) -> Self {
        let groups = groups(graph);
        let mut of = vec![0; graph.len()];
        for (g, (_, members)) in groups.iter().enumerate() {
            for &i in members {
                of[i] = g;
            }
        }
        let mut edges: Vec<(usize, usize, usize)> = Vec::new();
        for (a, b) in graph.edges() {
            let (ga, gb) = (of[a], of[b]);
            match edges.iter_mut().find(|(x, y, _)| (*x, *y) == (ga, gb)) {
                Some(edge) => edge.2 += 1,
                None => edges.push((ga, gb, 1)),
            }
        }
        let nodes = groups
            .into_iter()
            .map(|(group, members)| {
                let detail = members.first().and_then(|&i| graph.node(i)).map(NodeView::detail).unwrap_or_default();
                (group, detail, Some(members.len()))
            })
            .collect();
        Self { nodes, edges: edges.into_iter().map(|(a, b, n)| (a, b, Some(n))).collect() }
    }

    /// The job graph of a plan whose targets are not resolved: `jobs` as (id, operation),
    /// `needs` as (job, the job it needs) by index, each drawn once.
    #[must_use]
    pub fn unresolved(jobs: Vec<(String, String)>, needs: &[(usize, usize)]) -> Self {
        let mut edges: Vec<(usize, usize, Option<usize>)> = Vec::new();
        for &(job, needed) in needs {
            if !edges.iter().any(|(a, b, _)| (*a, *b) == (needed, job)) {
                edges.push((needed, job, None));
            }
        }
        Self { nodes: jobs.into_iter().map(|(id, op)| (id, op, None)).collect(), edges }
    }
}

fn tasks_label(n: Option<usize>) -> String {
    match n {
        Some(n) => crate::words::counted(n, "task"),
        None => "tasks once resolved".to_owned(),
    }
}

/// Graphviz DOT of the job-level graph.
#[must_use]
pub fn dot_jobs(jobs: &JobGraph) -> String {
    let mut out = String::from("digraph jobs {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n");
    for (g, (group, detail, n)) in jobs.nodes.iter().enumerate() {
        let _ = writeln!(out, "  j{g} [label={}];", quote(&format!("{group}\n{detail} · {}", tasks_label(*n))));
    }
    for (a, b, n) in &jobs.edges {
        match n {
            Some(n) => {
                let _ = writeln!(out, "  j{a} -> j{b} [label={}];", quote(&n.to_string()));
            }
            None => {
                let _ = writeln!(out, "  j{a} -> j{b};");
            }
        }
    }
    out.push_str("}\n");
    out
}

/// A Mermaid flowchart of the job-level graph.
#[must_use]
pub fn mermaid_jobs(jobs: &JobGraph) -> String {
    let mut out = String::from("flowchart LR\n");
    for (g, (group, detail, n)) in jobs.nodes.iter().enumerate() {
        let _ = writeln!(out, "  j{g}[\"{}<br/>{} · {}\"]", mermaid_text(group), mermaid_text(detail), tasks_label(*n));
    }
    for (a, b, n) in &jobs.edges {
        match n {
            Some(n) => {
                let _ = writeln!(out, "  j{a} -->|{n}| j{b}");
            }
            None => {
                let _ = writeln!(out, "  j{a} --> j{b}");
            }
        }
    }
    out
}

/// JSON of the job-level graph: `{ "jobs": [{ "id", "operation", "tasks" }], "edges": [{
/// "from", "to", "task_edges" }] }`; the counts are `null` when the targets are not resolved.
#[must_use]
pub fn json_jobs(jobs: &JobGraph) -> String {
    let nodes: Vec<serde_json::Value> = jobs
        .nodes
        .iter()
        .map(|(group, detail, n)| serde_json::json!({ "id": group, "operation": detail, "tasks": n }))
        .collect();
    let edges: Vec<serde_json::Value> = jobs
        .edges
        .iter()
        .map(|(a, b, n)| serde_json::json!({ "from": jobs.nodes[*a].0, "to": jobs.nodes[*b].0, "task_edges": n }))
        .collect();
    let mut text =
        serde_json::to_string_pretty(&serde_json::json!({ "jobs": nodes, "edges": edges })).unwrap_or_default();
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

    struct J(&'static str, &'static str);
    impl NodeView for J {
        fn node_id(&self) -> String {
            format!("{}[{}]", self.0, self.1)
        }
        fn group(&self) -> String {
            self.0.into()
        }
        fn detail(&self) -> String {
            format!("op-{}", self.0)
        }
        fn fields(&self) -> serde_json::Value {
            serde_json::Value::Null
        }
    }

    #[test]
    fn the_job_level_graph_has_a_node_per_job_and_counted_edges() {
        let nodes = vec![J("backup", "a"), J("backup", "b"), J("deploy", "a"), J("deploy", "b"), J("clear", "a")];
        let g = TaskGraph::build(nodes, [(0, 2), (1, 3), (2, 4)], super::NodeView::node_id).unwrap();
        let d = dot_jobs(&JobGraph::of(&g));
        assert!(d.contains("j0 [label=\"backup\\nop-backup · 2 tasks\"];"), "{d}");
        assert!(d.contains("j0 -> j1 [label=\"2\"];") && d.contains("j1 -> j2 [label=\"1\"];"), "{d}");
        assert_eq!(d.matches(" -> ").count(), 2, "{d}");
        let m = mermaid_jobs(&JobGraph::of(&g));
        assert!(m.contains("j0 -->|2| j1"), "{m}");
        let j: serde_json::Value = serde_json::from_str(&json_jobs(&JobGraph::of(&g))).unwrap();
        assert_eq!(j["jobs"][2], serde_json::json!({ "id": "clear", "operation": "op-clear", "tasks": 1 }));
        assert_eq!(j["edges"][0], serde_json::json!({ "from": "backup", "to": "deploy", "task_edges": 2 }));
    }
}
