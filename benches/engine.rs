//! Engine benchmark: parse + validate + resolve + expand + graph for a large plan, printing
//! the time of each stage and the process's peak memory. Not a timed test: run it by hand.
//!
//!     cargo bench --bench engine            # 10,000 tasks (2,500 sites × 4 jobs)
//!     cargo bench --bench engine -- 25000   # sites; tasks = 4 × sites

#![expect(clippy::print_stdout, reason = "a benchmark prints its figures")]
#![expect(clippy::expect_used, reason = "a benchmark of fixed, known-good inputs stops loudly on a bug")]
#![expect(clippy::cast_precision_loss, reason = "memory in MiB for display")]

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use terminus_batch::expand::{Filter, expand};
use terminus_batch::graph::TaskGraph;
use terminus_batch::plan::{self, PlanSource};
use terminus_batch::resolve::resolve;
use terminus_batch::simulator::world::World;

fn main() {
    let sites: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(2_500);
    let mut world = String::from("user: { email: bench@example.com }\norgs: [{ name: big }]\nsites:\n");
    for i in 0..sites {
        let _ = writeln!(world, "  - {{ name: site-{i:06}, org: big, tags: [weekly] }}");
    }
    let plan_text = "version: 1
name: bench
targets:
  all: { org: big, tag: weekly }
jobs:
  backup:
    run: backup:create
    on: { sites: all, env: live }
  deploy-test:
    run: env:deploy
    on: { sites: all, env: test }
  deploy-live:
    run: env:deploy
    needs: [backup, deploy-test]
    on: { sites: all, env: live }
    rollout: { first: 1, then: 25% }
  clear-cache:
    run: env:clear-cache
    needs: [deploy-live]
    on: { sites: all, env: live }
";
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");

    let started = Instant::now();
    let world = World::parse(&PlanSource::new("world.yml", world)).expect("world");
    let t_world = started.elapsed();

    let started = Instant::now();
    let source = PlanSource::new("bench.yml", plan_text);
    let plan = plan::load(&source).expect("plan");
    let t_parse = started.elapsed();

    let started = Instant::now();
    let resolved = runtime.block_on(resolve(&plan, &world)).expect("resolve");
    let t_resolve = started.elapsed();

    let started = Instant::now();
    let expansion = expand(&plan, &resolved, &Filter::default()).expect("expand");
    let t_expand = started.elapsed();

    let started = Instant::now();
    let edges: Vec<(usize, usize)> =
        expansion.tasks.iter().enumerate().flat_map(|(i, t)| t.needs.iter().map(move |&n| (n, i))).collect();
    let edge_count = edges.len();
    let graph = TaskGraph::build(expansion.tasks, edges, |t| t.id.to_string()).expect("graph");
    let critical = graph.critical_path(|t| t.payload.kind().estimate_secs());
    let t_graph = started.elapsed();

    let total = t_parse + t_resolve + t_expand + t_graph;
    println!("engine benchmark: {sites} sites, {} tasks, {edge_count} edges", graph.len());
    println!("  world parse (not in total): {}", ms(t_world));
    println!("  parse + validate:           {}", ms(t_parse));
    println!("  resolve selectors:          {}", ms(t_resolve));
    println!("  expand:                     {}", ms(t_expand));
    println!("  graph + critical path:      {}  (critical path {critical} s)", ms(t_graph));
    println!("  total plan → graph:         {}", ms(total));
    match peak_memory_kib() {
        Some(kib) => println!("  peak resident memory:       {:.1} MiB", kib as f64 / 1024.0),
        None => println!("  peak resident memory:       unavailable (no /proc)"),
    }
}

fn ms(d: Duration) -> String {
    format!("{:>9.2} ms", d.as_secs_f64() * 1000.0)
}

/// `VmHWM` from `/proc`: the peak resident set of this process.
fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
