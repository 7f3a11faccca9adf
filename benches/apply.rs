//! `apply` benchmark: the real binary against the in-process simulator, 100 sites × 3 jobs
//! (backup, deploy to test, clear the test cache after the deploy), every workflow 2 s of
//! simulated time at a time scale of 1/100, run at `--concurrency 1` and `--concurrency 20`.
//! Prints both wall times and their ratio. Not a timed test: run it by hand.
//!
//!     cargo bench --bench apply
//!     cargo bench --bench apply -- 200      # sites

#![expect(clippy::print_stdout, reason = "a benchmark prints its figures")]
#![expect(clippy::expect_used, reason = "a benchmark of fixed, known-good inputs stops loudly on a bug")]

use std::fmt::Write as _;
use std::process::Command;
use std::time::Instant;

fn main() {
    let sites: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(100);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut world = String::from(
        "simulator:\n  seed: 1\n  time_scale: 0.01\n  latency: { min: 0.05, max: 0.15 }\n  duration_jitter: 0\n  \
         default_duration: 2\n  workflow_durations: { do_export: 2, deploy: 2, clear_cache: 2 }\n\
         user: { email: bench@example.com }\norgs: [{ name: big }]\nsites:\n",
    );
    for i in 0..sites {
        let _ = writeln!(world, "  - {{ name: site-{i:04}, org: big, envs: {{ test: {{ deployable: 1 }} }} }}");
    }
    let plan = "version: 1
name: bench
jobs:
  backup:
    run: backup:create
    on: { sites: { org: big }, env: live }
  deploy:
    run: env:deploy
    on: { sites: { org: big }, env: test }
  clear:
    run: env:clear-cache
    needs: [deploy]
    on: { sites: { org: big }, env: test }
";
    std::fs::write(dir.path().join("world.yml"), world).expect("world");
    std::fs::write(dir.path().join("plan.yml"), plan).expect("plan");
    let run = |concurrency: usize| {
        let start = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_terminus-batch"))
            .args(["apply", "plan.yml", "--simulate", "--world", "world.yml", "-q", "--report", "json=out.json"])
            .args(["--concurrency", &concurrency.to_string()])
            .current_dir(dir.path())
            .env("TERMINUS_BATCH_REQUESTS_PER_SECOND", "100")
            .env("TERMINUS_BATCH_BURST", "100")
            .output()
            .expect("run terminus-batch");
        let wall = start.elapsed();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("out.json")).expect("report")).expect("json");
        let sim = &report["simulator"];
        (wall, sim["requests_total"].as_u64().unwrap_or(0), sim["workflows_total"].as_u64().unwrap_or(0))
    };
    println!("apply: {sites} sites × 3 jobs = {} tasks; workflows of 2 s scaled by 1/100 (20 ms)", sites * 3);
    let (serial, serial_requests, workflows) = run(1);
    println!("  --concurrency 1 : {serial:>8.2?}  ({serial_requests} requests, {workflows} workflows)");
    let (parallel, parallel_requests, _) = run(20);
    println!("  --concurrency 20: {parallel:>8.2?}  ({parallel_requests} requests)");
    println!("  speedup: {:.1}×", serial.as_secs_f64() / parallel.as_secs_f64());
}
