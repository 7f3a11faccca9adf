//! (j) The shared store at real latency: 120 cache clears of 3 s at the platform's own pace
//! (time scale 1), concurrency 50, the client's 10 requests/s, with the run's state in a
//! directory, then in S3 (moto's server on 127.0.0.1) behind a proxy that holds each store
//! request 40 ms, then 100 ms: a store in another region. Prints each run's wall time, the
//! store's overhead over the directory, and the store requests per task by kind. Of those a
//! task waits for two round trips: its lease's creation before its first request, and the
//! segment holding its attempt's record before its POST; the rest (the lease given back,
//! renewals, the other events' segments, the lock) go beside the work.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::workloads::{Scratch, apply_once, fault_proxy, s3, write};

const SITES: usize = 120;
const LATENCIES_MS: [u64; 2] = [40, 100];
/// The holders' stale period in the S3 runs: renewals every fifth of it.
const STALE_AFTER_SECS: &str = "20s";

/// One run with its state at a latency.
#[derive(Debug, Serialize)]
pub(crate) struct StoreRun {
    /// `None`: a directory.
    pub(crate) latency_ms: Option<u64>,
    /// The run's wall time, as the platform saw it (seconds).
    pub(crate) wall: f64,
    /// Store requests per task, by method.
    pub(crate) puts: f64,
    pub(crate) gets: f64,
    pub(crate) heads: f64,
    pub(crate) deletes: f64,
    pub(crate) lists: f64,
    /// A task's mean run time, and the mean time from the run's start to a task's (seconds).
    pub(crate) task_secs: f64,
    pub(crate) start_secs: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct LatencyFigures {
    pub(crate) tasks: usize,
    pub(crate) runs: Vec<StoreRun>,
}

impl LatencyFigures {
    pub(crate) fn render(&self) -> String {
        let mut out = format!(
            "(j) store latency: {} cache clears of 3 s, concurrency 50, 10 requests/s, time scale 1; state in a directory, then in S3 behind a proxy adding latency (renewing every 5 s)\n",
            self.tasks
        );
        let base = self.runs.iter().find(|r| r.latency_ms.is_none()).map_or(f64::NAN, |r| r.wall);
        for run in &self.runs {
            match run.latency_ms {
                None => {
                    let _ = writeln!(
                        out,
                        "  directory        {:>6.1} s                                                          a task {:.2} s, started {:.2} s in",
                        run.wall, run.task_secs, run.start_secs
                    );
                }
                Some(ms) => {
                    let _ = writeln!(
                        out,
                        "  s3 at {ms:>3} ms     {:>6.1} s  {:+5.1} %   per task: {:.2} PUT, {:.2} GET, {:.2} HEAD, {:.2} DELETE, {:.2} LIST; a task {:.2} s, started {:.2} s in",
                        run.wall,
                        (run.wall / base - 1.0) * 100.0,
                        run.puts,
                        run.gets,
                        run.heads,
                        run.deletes,
                        run.lists,
                        run.task_secs,
                        run.start_secs
                    );
                }
            }
        }
        if let Some(far) = self.runs.iter().find(|r| r.latency_ms == Some(100)) {
            let over = far.wall / base - 1.0;
            let _ = writeln!(
                out,
                "  goal: at most +3 % at 100 ms: {} ({:+.1} %)",
                if over <= 0.03 { "met" } else { "NOT met" },
                over * 100.0
            );
        }
        out
    }
}

fn world() -> String {
    let mut text =
        super::workloads::world_head(1.0, "  duration_jitter: 0.1\n  workflow_durations: { clear_cache: 3 }\n");
    text.push_str("orgs:\n  - { name: bench, label: Bench, role: admin }\nsites:\n");
    for n in 0..SITES {
        let _ = writeln!(text, "  - {{ name: site-{n:04}, org: bench }}");
    }
    text
}

const PLAN: &str = "version: 1\nname: store-latency\nsettings:\n  concurrency: 50\njobs:\n  clear:\n    run: env:clear-cache\n    on: { sites: [\"site-*\"], env: live }\n";

pub(crate) fn run() -> Result<LatencyFigures, String> {
    let dir = Scratch::new("latency")?;
    write(&dir.0.join("plan.yml"), PLAN)?;
    write(&dir.0.join("world.yml"), &world())?;
    let moto = s3::Moto::start().ok_or("moto's S3 server could not be provisioned (see the SKIPPED line above)")?;
    let mut runs = Vec::new();
    let local = apply_once(&dir.0, "directory", None, &[], &[])?;
    let (task_secs, start_secs) = timings(&dir.0, "directory")?;
    runs.push(StoreRun {
        latency_ms: None,
        wall: local.wall,
        puts: 0.0,
        gets: 0.0,
        heads: 0.0,
        deletes: 0.0,
        lists: 0.0,
        task_secs,
        start_secs,
    });
    for ms in LATENCIES_MS {
        let proxy = fault_proxy::FaultProxy::start(
            &moto.endpoint(),
            fault_proxy::Faults { latency: Duration::from_millis(ms), ..fault_proxy::Faults::default() },
        );
        let mut vars = moto.env();
        for (key, value) in &mut vars {
            if key == "AWS_ENDPOINT_URL" {
                *value = proxy.endpoint();
            }
        }
        // Renewals every 5 s instead of every 30 s (a stale period of 20 s): a run of this
        // length renews its lock and leases several times, as a long run does.
        vars.push((tb_core::env::STALE_AFTER.to_owned(), STALE_AFTER_SECS.to_owned()));
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let url = format!("{}/{ms}", moto.bucket("bench-latency"));
        let run = apply_once(&dir.0, &format!("s3-{ms}"), Some(&url), &[], &vars)?;
        let stats = proxy.stats();
        let (task_secs, start_secs) = timings(&dir.0, &format!("s3-{ms}"))?;
        #[expect(clippy::cast_precision_loss, reason = "counts")]
        let per = |n: usize| n as f64 / run.tasks.max(1) as f64;
        runs.push(StoreRun {
            latency_ms: Some(ms),
            wall: run.wall,
            puts: per(stats.puts),
            gets: per(stats.gets),
            heads: per(stats.heads),
            deletes: per(stats.deletes),
            lists: per(stats.lists),
            task_secs,
            start_secs,
        });
    }
    Ok(LatencyFigures { tasks: SITES, runs })
}

/// A task's mean run time and mean start after the run's, from the run's report (seconds).
fn timings(dir: &std::path::Path, label: &str) -> Result<(f64, f64), String> {
    let text = std::fs::read_to_string(dir.join(format!("{label}.json"))).map_err(|e| format!("{label}: {e}"))?;
    let report: tb_report::RunReport = serde_json::from_str(&text).map_err(|e| format!("{label}: {e}"))?;
    let n = report.tasks.len().max(1);
    #[expect(clippy::cast_precision_loss, reason = "milliseconds")]
    let mean = |f: &dyn Fn(&tb_report::summary::TaskReport) -> u64| {
        report.tasks.iter().map(|t| f(t) as f64).sum::<f64>() / n as f64 / 1000.0
    };
    Ok((
        mean(&|t| t.duration_ms.unwrap_or(0)),
        mean(&|t| t.started_at.unwrap_or(report.started_at).saturating_sub(report.started_at)),
    ))
}
