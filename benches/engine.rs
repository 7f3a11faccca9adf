//! Engine benchmark: parse + validate + resolve + expand + graph, then the executor running
//! every task as a no-op, for plans of 1,000, 10,000 and 100,000 tasks; the time of each
//! stage and the peak memory of each size (the high-water mark is reset between sizes where
//! `/proc/self/clear_refs` allows). Not a timed test: run it by hand.
//!
//!     cargo bench --bench engine              # 250, 2,500 and 25,000 sites × 4 jobs
//!     cargo bench --bench engine -- 5000      # one size: sites; tasks = 4 × sites

#![expect(clippy::print_stdout, reason = "a benchmark prints its figures")]
#![expect(clippy::expect_used, reason = "a benchmark of fixed, known-good inputs stops loudly on a bug")]
#![expect(clippy::cast_precision_loss, reason = "memory in MiB and ratios for display")]

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tb_core::events::{Event, EventSink, Status};
use tb_core::graph::TaskGraph;
use tb_core::ids::RunId;
use tb_executor::{
    Controls, Done, RetryPolicy, Runner, Setup, SystemClock, TaskContext, TaskError, TaskMeta,
    scheduler::{GroupPolicy, Limits},
};
use tb_plan::expand::{Filter, Task, expand};
use tb_plan::plan::ops::OperationSpec;
use tb_plan::plan::{self, PlanSource};
use tb_plan::resolve::resolve;
use tb_simulator::world::World;

fn main() {
    let sizes: Vec<usize> = match std::env::args().skip(1).find_map(|a| a.parse().ok()) {
        Some(sites) => vec![sites],
        None => vec![250, 2_500, 25_000],
    };
    let mut rows = Vec::new();
    for sites in sizes {
        let reset = reset_peak_memory();
        let row = one_size(sites);
        let peak = peak_memory_kib();
        println!(
            "  peak resident memory:       {}{}",
            peak.map_or_else(|| "unavailable (no /proc)".to_owned(), |kib| format!("{:.1} MiB", kib as f64 / 1024.0)),
            if reset { "" } else { " (high-water mark of the whole process)" }
        );
        rows.push((row, peak));
    }
    if rows.len() > 1 {
        println!("\nscaling (per 1,000 tasks):");
        for ((tasks, total), peak) in &rows {
            let per = 1000.0 / *tasks as f64;
            println!(
                "  {tasks:>7} tasks: {:>8.2} ms, {:>6.1} MiB per 1,000 tasks",
                total.as_secs_f64() * 1000.0 * per,
                peak.unwrap_or(0) as f64 / 1024.0 * per
            );
        }
    }
}

/// Runs every stage for `sites` sites; returns (tasks, total time).
fn one_size(sites: usize) -> (usize, Duration) {
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

    let started = Instant::now();
    let summary = runtime.block_on(execute(&graph));
    let t_execute = started.elapsed();
    assert!(summary.statuses.iter().all(|s| *s == Status::Succeeded), "every no-op task succeeds");

    let total = t_parse + t_resolve + t_expand + t_graph + t_execute;
    println!("\nengine benchmark: {sites} sites, {} tasks, {edge_count} edges", graph.len());
    println!("  world parse (not in total): {}", ms(t_world));
    println!("  parse + validate:           {}", ms(t_parse));
    println!("  resolve selectors:          {}", ms(t_resolve));
    println!("  expand:                     {}", ms(t_expand));
    println!("  graph + critical path:      {}  (critical path {critical} s)", ms(t_graph));
    println!("  execute (no-op tasks, 20):  {}", ms(t_execute));
    println!("  total:                      {}", ms(total));
    (graph.len(), total)
}

/// Runs every task as a no-op through the real executor: 20 in flight, one per site.
async fn execute(graph: &TaskGraph<Task<OperationSpec>>) -> tb_executor::RunSummary {
    let limits = Limits { concurrency: 20, per_site: 1, fail_fast: false, max_failures: None };
    let groups = vec![GroupPolicy::default(); 4];
    let run_id = RunId::from_parts("20260101T000000Z", 1);
    let setup = Setup { groups, limits, controls: Controls::default(), clock: &SystemClock, run_id };
    tb_executor::execute(graph, Arc::new(Noop), setup, &mut Discard).await
}

struct Noop;

impl Runner<Task<OperationSpec>> for Noop {
    fn meta(&self, task: &Task<OperationSpec>) -> TaskMeta {
        let kind = task.payload.kind();
        TaskMeta {
            header: task.header(),
            group: task.job_index,
            wave: task.wave,
            waves_of: task.waves_of,
            site_key: task.site.clone(),
            exclusive: Vec::new(),
            estimate_secs: kind.estimate_secs(),
            timeout: None,
            retries: RetryPolicy { attempts: 1, backoff: Duration::ZERO },
        }
    }

    fn attempt(
        &self,
        _task: &Task<OperationSpec>,
        _ctx: TaskContext,
    ) -> impl Future<Output = Result<Done, TaskError>> + Send + 'static {
        std::future::ready(Ok(Done {
            status: Status::Succeeded,
            message: String::new(),
            data: None,
            run: None,
            record: None,
        }))
    }
}

/// Events go nowhere: the benchmark times the engine, not a report.
struct Discard;

impl EventSink for Discard {
    fn emit(&mut self, _event: &Event) -> Result<(), tb_core::events::RecordError> {
        Ok(())
    }
}

/// Resets this process's resident high-water mark (Linux 4.0+); false where it cannot.
fn reset_peak_memory() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
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
