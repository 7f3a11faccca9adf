//! The workloads of README "Performance" (issue 8), shared by the `simulate` benchmark
//! (`cargo bench --bench simulate`) and the tests that check its counts. The release and
//! cache-clear workloads run the real binary, `apply PLAN --simulate --world WORLD`, in a
//! child process, so the figures are those of a user's run: its wall time (as the simulated
//! platform saw it) against the workload's lower bound, requests per workflow and per task,
//! the speedup over a terminus-like sequential run, and the child's peak memory; they read
//! the child's JSON report through the report's own type. The listing workload times the
//! client's site listing in-process, with and without concurrent collections, against the
//! largest single collection.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use tb_core::events::Status;
use tb_operations::api::ApiClient;
use tb_plan::plan::PlanSource;
use tb_report::RunReport;
use tb_simulator::{Simulator, Stats, World};

use super::model;

/// A benchmark workload (README, "Performance").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Workload {
    /// (a) backup, deploy to test, deploy to live, clear cache on 100 sites.
    Release,
    /// (b) clear the live cache on 1,000 sites.
    CacheClear,
    /// (c) list 5 organizations of 800 sites each, with and without concurrent collections.
    Listing,
    /// (d) clear the live cache on 1,000 sites named one by one in the plan, 100 at a time, at
    /// the default request rate.
    Fleet,
    /// (e) `plan` of 5,000 sites named one by one: resolution only.
    FleetPlan,
    /// (f) the tool's own peak memory applying 10,000 tasks, against a simulator served
    /// apart from it.
    Memory,
    /// (h) a cold platform, with no workflow history to learn run times from: 40 sites x
    /// (deploy test -> deploy live -> clear cache) at 50 ms, then 80 sites at 300 ms with
    /// longer workflows, concurrency 20 at the default rate (issue 26's shapes).
    Cold,
    /// (i) the forecast against what happened: a release over 90 sites planned and applied
    /// cold, then again with the first run's history.
    Forecast,
    /// (j) the shared store at real latency: a directory against S3 behind a proxy adding
    /// 40 ms and 100 ms to every store request.
    StoreLatency,
    /// (g) the fleet workload with its state in a directory and in S3 (moto's server on
    /// 127.0.0.1, from `PATH`), alternately: what shared state costs.
    State,
}

impl Workload {
    /// By name (`release`, `cache-clear`, `listing`) or letter (`a`, `b`, `c`).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        match text {
            "release" | "a" => Ok(Self::Release),
            "cache-clear" | "b" => Ok(Self::CacheClear),
            "listing" | "c" => Ok(Self::Listing),
            "fleet" | "d" => Ok(Self::Fleet),
            "fleet-plan" | "e" => Ok(Self::FleetPlan),
            "state" | "g" => Ok(Self::State),
            "cold" | "h" => Ok(Self::Cold),
            "memory" | "f" => Ok(Self::Memory),
            "forecast" | "i" => Ok(Self::Forecast),
            "store-latency" | "j" => Ok(Self::StoreLatency),
            other => Err(format!(
                "unknown workload `{other}` (release, cache-clear, listing, fleet, fleet-plan, memory, state, cold, forecast, store-latency)"
            )),
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub(crate) struct Args {
    /// Workloads to run (empty: all).
    pub(crate) workloads: Vec<Workload>,
    /// Sites in the release and cache-clear workloads (default: 100 and 1,000), per
    /// organization in the listing workload (default: 800).
    pub(crate) sites: Option<usize>,
    /// Simulated time per real second, for workflows, latency and request rates alike
    /// (default: [`APPLY_SCALE`], [`FLEET_SCALE`] for the fleet workload).
    pub(crate) time_scale: Option<f64>,
    /// Skip the sequential terminus-like runs (they take concurrency times longer).
    pub(crate) no_sequential: bool,
}

/// The binary the apply workloads run.
const BINARY: &str = env!("CARGO_BIN_EXE_terminus-batch");

// Text is built with `writeln!` into Strings, which cannot fail: `let _ =` drops those
// `fmt::Result`s.

/// Request latency, before scaling (seconds).
const LATENCY: (f64, f64) = (0.05, 0.15);
/// Requests per second of the apply workloads, before scaling.
const APPLY_RATE: f64 = 10.0;
/// Requests per second of the listing workload, before scaling.
const LISTING_RATE: f64 = 100.0;
/// Tasks in flight in the apply workloads.
const CONCURRENCY: usize = 20;
/// Tasks in flight in the fleet workload.
const FLEET_CONCURRENCY: usize = 100;
/// The default request rate (what a plan without settings gets).
const DEFAULT_RATE: f64 = 10.0;
/// terminus's poll interval (pantheon-api.md §4.5).
const TERMINUS_POLL: &str = "5s";
/// The apply workloads' time scale: a hundred times faster than real time.
const APPLY_SCALE: f64 = 0.01;
/// The fleet workload's: ten times faster. There every request waits for the rate (1,000
/// requests/s of real time at 0.01), and the tool's timers, like tokio's, round up to the
/// millisecond: a tenth of a platform second per sleep at 0.01, which is the clock rather
/// than the tool (measured: 252.9 s at 0.01 against 237.7 s at 0.1, the same code).
const FLEET_SCALE: f64 = 0.1;
/// The default `burst` of the rate limit (what a plan without settings gets).
const DEFAULT_BURST: f64 = 20.0;
/// The listing workload's time scale: pages are large, so a faster clock would time JSON
/// handling rather than the API's latency.
const LISTING_SCALE: f64 = 1.0;

/// Runs the workloads one after another; `progress` is told each one's name as it starts.
pub(crate) fn run(args: &Args, mut progress: impl FnMut(&str)) -> Result<Vec<Figures>, String> {
    if let Some(scale) = args.time_scale.filter(|s| !(s.is_finite() && *s > 0.0 && *s <= 1.0)) {
        return Err(format!("--time-scale must be in (0, 1], not {scale}"));
    }
    if args.sites == Some(0) {
        return Err("--sites must be at least 1".to_owned());
    }
    let workloads = if args.workloads.is_empty() {
        vec![
            Workload::Release,
            Workload::CacheClear,
            Workload::Listing,
            Workload::Fleet,
            Workload::FleetPlan,
            Workload::Memory,
        ]
    } else {
        args.workloads.clone()
    };
    let mut figures = Vec::new();
    for workload in workloads {
        progress(name(workload));
        let result = match workload {
            Workload::Release | Workload::CacheClear | Workload::Fleet => {
                apply_workload(workload, args).map(|f| Figures::Apply(Box::new(f)))
            }
            Workload::Cold => cold_workloads(args).map(Figures::Cold),
            Workload::FleetPlan => plan_workload(args.sites.unwrap_or(5000)).map(Figures::Plan),
            Workload::Memory => memory_workload(args.sites.unwrap_or(10_000)).map(Figures::Memory),
            Workload::Listing => listing_workload(args.sites.unwrap_or(800)).map(Figures::Listing),
            Workload::State => state_workload(args).map(Figures::State),
            Workload::Forecast => super::forecast::run(args.sites, args.time_scale).map(Figures::Forecast),
            Workload::StoreLatency => super::latency::run().map(Figures::StoreLatency),
        };
        figures.push(result.map_err(|message| format!("the {} workload: {message}", name(workload)))?);
    }
    Ok(figures)
}

fn name(workload: Workload) -> &'static str {
    match workload {
        Workload::Release => "release",
        Workload::CacheClear => "cache-clear",
        Workload::Listing => "listing",
        Workload::Fleet => "fleet",
        Workload::FleetPlan => "fleet-plan",
        Workload::Memory => "memory",
        Workload::State => "state",
        Workload::Cold => "cold",
        Workload::Forecast => "forecast",
        Workload::StoreLatency => "store-latency",
    }
}

/// One workload's figures.
pub(crate) enum Figures {
    Apply(Box<ApplyFigures>),
    Listing(ListingFigures),
    Plan(PlanFigures),
    Memory(MemoryFigures),
    State(StateFigures),
    Cold(Vec<ApplyFigures>),
    Forecast(super::forecast::ForecastFigures),
    StoreLatency(super::latency::LatencyFigures),
}

impl Serialize for Figures {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Apply(f) => f.serialize(serializer),
            Self::Listing(f) => f.serialize(serializer),
            Self::Plan(f) => f.serialize(serializer),
            Self::Memory(f) => f.serialize(serializer),
            Self::State(f) => f.serialize(serializer),
            Self::Cold(f) => f.serialize(serializer),
            Self::Forecast(f) => f.serialize(serializer),
            Self::StoreLatency(f) => f.serialize(serializer),
        }
    }
}

impl Figures {
    /// The figures as text.
    pub(crate) fn render(&self) -> String {
        match self {
            Self::Apply(f) => f.render(),
            Self::Listing(f) => f.render(),
            Self::Plan(f) => f.render(),
            Self::Memory(f) => f.render(),
            Self::State(f) => f.render(),
            Self::Cold(f) => f.iter().map(ApplyFigures::render).collect(),
            Self::Forecast(f) => f.render(),
            Self::StoreLatency(f) => f.render(),
        }
    }
}

// ---- the apply workloads ----------------------------------------------------------------

/// One `apply` run, as its JSON report and the simulator's counters tell it.
#[derive(Serialize)]
pub(crate) struct Run {
    /// Seconds from the simulator's start to its stop, as the platform saw them.
    pub(crate) wall: f64,
    real_seconds: f64,
    pub(crate) tasks: usize,
    tasks_ok: usize,
    workflows: u64,
    /// POSTs starting workflows and every read of workflows (polls, lists).
    workflow_requests: u64,
    requests: u64,
    /// Logins and site listings (what resolution needs whatever the work).
    resolution_requests: u64,
    requests_by_route: BTreeMap<String, u64>,
    workflow_seconds: f64,
    longest_site_seconds: f64,
    shortest_workflow_seconds: f64,
    /// Waiting past workflows' finishes: from each finish to the first read that showed it.
    unseen_seconds: f64,
    peak_in_flight_workflows: u64,
    peak_rss_bytes: Option<u64>,
}

/// The shortest the workload can take, whatever the schedule: the largest of three lower
/// bounds, each shown (see the fields).
#[derive(Serialize)]
struct Bound {
    /// The plain bound: no site runs two workflows at once, no more than `concurrency` run at
    /// once, no faster than the request rate: the largest of the three below.
    plain: f64,
    longest_site_chain: f64,
    workflow_seconds_per_slot: f64,
    /// The fewest requests the work needs: a login, the resolution's listing pages, and per
    /// workflow its start and one read that sees it finished.
    fewest_requests: u64,
    /// `(fewest_requests - burst) / rate`: the burst is there at the start.
    requests_at_rate: f64,
    /// Slot-seconds no schedule can use while the slots fill (see [`Bound::fill_drain`]).
    ramp_slot_seconds: f64,
    /// Slot-seconds no schedule can use while they drain.
    drain_slot_seconds: f64,
    /// The slots and the rate taken together: `(workflow time + ramp + drain) / slots`.
    /// Whatever the schedule, by `t` seconds after the first request at most
    /// `burst + rate * t` requests were sent, the resolution's first: no more workflows than
    /// that less the resolution can be running, so slots stand idle while they fill.
    /// Symmetrically each workflow running `t` seconds before the end still needs the read
    /// that sees it finished, and at most `burst + rate * t` requests fit there: no more can
    /// be running. (Valid while the two stretches do not overlap, which is checked; else 0.)
    fill_drain: f64,
    /// The shortest run time of a workflow.
    shortest_workflow: f64,
    /// The rate with its dead ends: `2 * shortest + (2 * workflows - 2 * slots - burst -
    /// tasks without a workflow) / rate`. For a run time after the first start no workflow
    /// can have finished, so what is sent then is the resolution and at most one start per
    /// slot (and one more per task that ends without a workflow, freeing its slot); for a
    /// run time before the end no start is of use (its workflow would end later), so what is
    /// sent then is at most one finishing read per slot. Every other start and read goes
    /// between the two, at most `burst + rate * t` of them. (Only with more workflows than
    /// slots, which also keeps the two ends apart; else 0.)
    rate_ends: f64,
    /// The largest of `plain`, `fill_drain` and `rate_ends`: what the targets are judged by.
    value: f64,
}

impl Bound {
    fn of(run: &Run, concurrency: usize, rate: f64) -> Self {
        #[expect(clippy::cast_precision_loss, reason = "small counts")]
        let slots = concurrency as f64;
        let longest_site_chain = run.longest_site_seconds;
        let workflow_seconds_per_slot = run.workflow_seconds / slots;
        let fewest_requests = run.resolution_requests + 2 * run.workflows;
        #[expect(clippy::cast_precision_loss, reason = "small counts")]
        let requests_at_rate = (fewest_requests as f64 - DEFAULT_BURST).max(0.0) / rate;
        let plain = longest_site_chain.max(workflow_seconds_per_slot).max(requests_at_rate);
        #[expect(clippy::cast_precision_loss, reason = "small counts")]
        let first = DEFAULT_BURST - run.resolution_requests as f64;
        // Idle slot-seconds while at most `first + rate * t` of `slots` can be busy, and how
        // long that lasts (`first` may be negative: the resolution spent the burst).
        let forced = |first: f64| -> (f64, f64) {
            if first >= slots {
                return (0.0, 0.0);
            }
            let empty = (-first).max(0.0) / rate;
            let filling = (slots - first.max(0.0)) / rate;
            (slots * empty + (slots - first.max(0.0)) * filling / 2.0, empty + filling)
        };
        let (ramp_slot_seconds, ramp_secs) = forced(first);
        let (drain_slot_seconds, drain_secs) = forced(DEFAULT_BURST);
        let fill_drain = if ramp_secs + drain_secs <= workflow_seconds_per_slot {
            (run.workflow_seconds + ramp_slot_seconds + drain_slot_seconds) / slots
        } else {
            0.0
        };
        let shortest_workflow = run.shortest_workflow_seconds;
        #[expect(clippy::cast_precision_loss, reason = "small counts")]
        let workflows = run.workflows as f64;
        #[expect(clippy::cast_precision_loss, reason = "small counts")]
        let without_workflow = (run.tasks as f64 - workflows).max(0.0);
        let rate_ends = if workflows > slots {
            let between = 2.0 * (workflows - slots) - DEFAULT_BURST - without_workflow;
            2.0 * shortest_workflow + between.max(0.0) / rate
        } else {
            0.0
        };
        Self {
            plain,
            longest_site_chain,
            workflow_seconds_per_slot,
            fewest_requests,
            requests_at_rate,
            ramp_slot_seconds,
            drain_slot_seconds,
            fill_drain,
            shortest_workflow,
            rate_ends,
            value: plain.max(fill_drain).max(rate_ends),
        }
    }
}

#[derive(Serialize)]
struct Sequential {
    run: Run,
    /// Its wall time over its own lower bound (one task at a time).
    ratio: f64,
    speedup: f64,
}

#[derive(Serialize)]
pub(crate) struct ApplyFigures {
    workload: &'static str,
    description: String,
    sites: usize,
    concurrency: usize,
    requests_per_second: f64,
    time_scale: f64,
    /// Request latency, seconds (before scaling).
    latency: (f64, f64),
    run: Run,
    bound: Bound,
    ratio: f64,
    /// Wall time over [`Bound::plain`].
    plain_ratio: f64,
    workflow_requests_per_workflow: f64,
    requests_per_task: BTreeMap<String, f64>,
    sequential: Option<Sequential>,
    /// The cold workload's judge of what is possible (see [`model`]).
    model: Option<ModelClient>,
}

/// What the model client could do on the same work (see [`model`]), and the requests the work
/// needs once its decisions' reads are counted.
#[derive(Serialize)]
struct ModelClient {
    /// The fewest requests with the reads the operations decide by (a deploy's code log),
    /// which terminus makes too: issue 26's count.
    fewest_with_reads: u64,
    /// Requests sent over `fewest_with_reads`.
    requests_ratio: f64,
    /// Reads of workflows per workflow this run made (its POST and list reads left out).
    polls_per_workflow: f64,
    /// The model client's wall time over the plain bound, at the run's request rate and with
    /// none: seeing every end at once, spending 1.5 polls per workflow (2.5 workflow requests
    /// per workflow), and spending as many as this run did. Each is the mean, lowest and
    /// highest over the model's draws.
    instant: [(f64, f64, f64); 2],
    at_target_polls: [(f64, f64, f64); 2],
    at_measured_polls: [(f64, f64, f64); 2],
    /// Over poll budgets from 1 to 3 per workflow in tenths, at the run's rate: the budget
    /// with the least mean wall time and that mean, and the least budget whose mean is
    /// within 1.15 x the bound (none: no budget is).
    fastest: (f64, f64),
    within_target: Option<f64>,
}

fn apply_workload(workload: Workload, args: &Args) -> Result<ApplyFigures, String> {
    let (sites, plan, description, concurrency, rate) = match workload {
        Workload::Release => {
            let sites = args.sites.unwrap_or(100);
            let text = release_plan();
            (
                sites,
                text,
                format!("{sites} sites x backup -> deploy test -> deploy live -> clear cache"),
                CONCURRENCY,
                APPLY_RATE,
            )
        }
        Workload::Fleet => {
            let sites = args.sites.unwrap_or(1000);
            let text = fleet_plan(sites);
            (sites, text, format!("{sites} sites named in the plan x clear cache"), FLEET_CONCURRENCY, DEFAULT_RATE)
        }
        _ => {
            let sites = args.sites.unwrap_or(1000);
            (sites, cache_plan(), format!("{sites} sites x clear cache"), CONCURRENCY, APPLY_RATE)
        }
    };
    let time_scale = args.time_scale.unwrap_or(if workload == Workload::Fleet { FLEET_SCALE } else { APPLY_SCALE });
    let dir = Scratch::new(name(workload))?;
    write(&dir.0.join("plan.yml"), &plan)?;
    write(&dir.0.join("world.yml"), &world(sites, time_scale))?;
    let run = apply_once(&dir.0, "parallel", None, &[], &[])?;
    let bound = Bound::of(&run, concurrency, rate);
    // The fleet workload compares with its bound only: a sequential run of it takes hours.
    let sequential = if args.no_sequential || workload == Workload::Fleet {
        None
    } else {
        let seq = apply_once(
            &dir.0,
            "sequential",
            None,
            &["--concurrency", "1"],
            &[("TERMINUS_BATCH_POLL_INTERVAL", TERMINUS_POLL)],
        )?;
        let own = Bound::of(&seq, 1, rate);
        Some(Sequential { ratio: seq.wall / own.value, speedup: seq.wall / run.wall, run: seq })
    };
    let tasks = u64::try_from(run.tasks).unwrap_or(u64::MAX);
    let requests_per_task = run.requests_by_route.iter().map(|(route, n)| (route.clone(), per(*n, tasks))).collect();
    let workflow_requests_per_workflow = per(run.workflow_requests, run.workflows);
    Ok(ApplyFigures {
        workload: name(workload),
        description,
        sites,
        concurrency,
        requests_per_second: rate,
        time_scale,
        latency: LATENCY,
        ratio: run.wall / bound.value,
        plain_ratio: run.wall / bound.plain,
        workflow_requests_per_workflow,
        requests_per_task,
        bound,
        run,
        sequential,
        model: None,
    })
}

fn release_plan() -> String {
    plan(
        "bench-release",
        "  backup:\n    run: backup:create\n    on: { sites: all, env: live }\n    with: { element: all }\n\
         \x20 deploy-test:\n    run: env:deploy\n    needs: [backup]\n    on: { sites: all, env: test }\n    with: { note: Bench release }\n\
         \x20 deploy-live:\n    run: env:deploy\n    needs: [deploy-test]\n    on: { sites: all, env: live }\n    with: { note: Bench release }\n\
         \x20 clear-cache:\n    run: env:clear-cache\n    needs: [deploy-live]\n    on: { sites: all, env: live }\n",
    )
}

/// Clear cache on `sites` sites, each named in the plan, 100 at a time at the default rate.
fn fleet_plan(sites: usize) -> String {
    let names: Vec<String> = (0..sites).map(|n| format!("site-{n:04}")).collect();
    format!(
        "version: 1\nname: bench-fleet\nsettings: {{ concurrency: {FLEET_CONCURRENCY}, on_failure: continue }}\n\
         targets:\n  fleet: [{}]\njobs:\n  clear-cache:\n    run: env:clear-cache\n    on: {{ sites: fleet, env: live }}\n",
        names.join(", ")
    )
}

fn cache_plan() -> String {
    plan("bench-cache-clear", "  clear-cache:\n    run: env:clear-cache\n    on: { sites: all, env: live }\n")
}

/// A plan over every site of the `bench` organization with the workload's settings.
fn plan(name: &str, jobs: &str) -> String {
    plan_at(name, jobs, CONCURRENCY)
}

/// [`plan`] at another concurrency.
fn plan_at(name: &str, jobs: &str, concurrency: usize) -> String {
    format!(
        "version: 1\nname: {name}\n\
         settings: {{ concurrency: {concurrency}, per_site: 1, requests_per_second: {APPLY_RATE}, on_failure: continue }}\n\
         targets:\n  all: {{ org: bench }}\njobs:\n{jobs}"
    )
}

/// The start of a world file: the simulator's knobs (`extra` lines after the latency) and
/// the user.
pub(crate) fn world_head(scale: f64, extra: &str) -> String {
    format!(
        "simulator:\n  seed: 1\n  time_scale: {scale}\n  latency: {{ min: {}, max: {} }}\n{extra}\
         user: {{ email: bench@example.com, machine_token: bench-token }}\n",
        LATENCY.0, LATENCY.1
    )
}

/// `sites` sites with a release waiting on test and live; workflows of 20 to 120 s.
fn world(sites: usize, scale: f64) -> String {
    release_world(sites, scale, "do_export: 120, deploy: 45, clear_cache: 20")
}

/// `sites` sites of the organization `bench` with a release waiting on test and live, whose
/// workflows take `durations` (a flow map's entries, seconds, ±10 %).
pub(crate) fn release_world(sites: usize, scale: f64, durations: &str) -> String {
    let mut text = world_head(scale, &format!("  duration_jitter: 0.1\n  workflow_durations: {{ {durations} }}\n"));
    text.push_str("orgs:\n  - { name: bench, label: Bench, role: admin }\nsites:\n");
    for n in 0..sites {
        let _ = writeln!(
            text,
            "  - {{ name: site-{n:04}, org: bench, envs: {{ test: {{ deployable: 1 }}, live: {{ deployable: 1 }} }} }}"
        );
    }
    text
}

/// Runs `apply` on the workload in `dir` in a child process.
/// One `apply` of `dir`'s plan; its state in `state` (default: a directory of its own).
pub(crate) fn apply_once(
    dir: &Path,
    label: &str,
    state: Option<&str>,
    flags: &[&str],
    vars: &[(&str, &str)],
) -> Result<Run, String> {
    let report = dir.join(format!("{label}.json"));
    let errors = dir.join(format!("{label}.stderr"));
    let stderr = std::fs::File::create(&errors).map_err(|e| format!("cannot create {}: {e}", errors.display()))?;
    let mut command = Command::new(BINARY);
    command
        .arg("apply")
        .arg(dir.join("plan.yml"))
        .args(["--simulate", "--yes", "-q", "--world"])
        .arg(dir.join("world.yml"))
        .arg("--report")
        .arg(format!("json={}", report.display()))
        .arg("--state-dir")
        .arg(state.map_or_else(|| dir.join(format!("{label}-state")).display().to_string(), str::to_owned))
        .args(flags)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    without_callers_settings(&mut command);
    command.envs(vars.iter().copied());
    let mut child = command.spawn().map_err(|e| format!("cannot start apply: {e}"))?;
    let (status, real_seconds, peak) = measure(&mut child)?;
    if !status.success() {
        let said = std::fs::read_to_string(&errors).unwrap_or_default();
        return Err(format!("the {label} run ended with {status}: {}", said.trim()));
    }
    let text = std::fs::read_to_string(&report).map_err(|e| format!("cannot read {}: {e}", report.display()))?;
    let report: RunReport = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", report.display()))?;
    let sim: Stats = report
        .simulator
        .clone()
        .ok_or_else(|| "the report has no simulator counters".to_owned())
        .and_then(|value| serde_json::from_value(value).map_err(|e| format!("the simulator counters: {e}")))?;
    let requests_by_route: BTreeMap<String, u64> =
        sim.requests.iter().map(|(route, by)| (route.clone(), by.values().sum())).collect();
    let workflow_requests =
        requests_by_route.iter().filter(|(route, _)| route.contains("/workflows")).map(|(_, n)| n).sum();
    let resolution_requests = requests_by_route
        .iter()
        .filter(|(route, _)| {
            route.contains("/memberships/") || route.contains("authorize") || route.ends_with("/users/{user}")
        })
        .map(|(_, n)| n)
        .sum();
    let totals = &report.totals;
    Ok(Run {
        wall: sim.elapsed,
        resolution_requests,
        real_seconds,
        tasks: totals.tasks,
        tasks_ok: totals.get(Status::Succeeded) + totals.get(Status::Unchanged),
        workflows: sim.workflows_total,
        workflow_requests,
        requests: sim.requests_total,
        requests_by_route,
        workflow_seconds: sim.workflow_seconds,
        longest_site_seconds: sim.longest_site_seconds,
        shortest_workflow_seconds: sim.shortest_workflow_seconds,
        unseen_seconds: sim.unseen_seconds,
        peak_in_flight_workflows: sim.peak_in_flight_workflows,
        peak_rss_bytes: peak,
    })
}

/// The workload's settings are its own: none of the caller's `TERMINUS_*` variables.
fn without_callers_settings(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TERMINUS_") {
            command.env_remove(key);
        }
    }
}

/// A process's peak resident memory (`VmHWM`), where `/proc` tells it.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl ApplyFigures {
    fn render(&self) -> String {
        let run = &self.run;
        let b = &self.bound;
        let mut out = String::new();
        let _ = writeln!(out, "\n{} workload: {}", self.workload, self.description);
        let _ = writeln!(
            out,
            "  {} tasks ({} ok), {} workflows; concurrency {}, per_site 1, {} requests/s; latency {}-{} ms; \
             time scale {} (seconds below are the platform's)",
            run.tasks,
            run.tasks_ok,
            run.workflows,
            self.concurrency,
            self.requests_per_second,
            self.latency.0 * 1000.0,
            self.latency.1 * 1000.0,
            self.time_scale
        );
        let _ = writeln!(out, "  wall time            {:>9.1} s  ({:.2} s real)", run.wall, run.real_seconds);
        let _ =
            writeln!(out, "  lower bound          {:>9.1} s  the largest of three, whatever the schedule:", b.value);
        let _ = writeln!(
            out,
            "    plain              {:>9.1} s  = max(longest site chain {:.1} s, workflow time / {} = {:.1} s, \
             (fewest {} requests - burst {DEFAULT_BURST}) / {} per s = {:.1} s); {} requests sent",
            b.plain,
            b.longest_site_chain,
            self.concurrency,
            b.workflow_seconds_per_slot,
            b.fewest_requests,
            self.requests_per_second,
            b.requests_at_rate,
            run.requests
        );
        let _ = writeln!(
            out,
            "    fill and drain     {:>9.1} s  (the slots fill and drain no faster than the rate: {:.0} + {:.0} \
             slot-seconds idle)",
            b.fill_drain, b.ramp_slot_seconds, b.drain_slot_seconds
        );
        let _ = writeln!(
            out,
            "    rate's dead ends   {:>9.1} s  (no read sees a workflow end in the first {:.1} s after the first \
             start, no start helps in the last {:.1} s: 2 x {:.1} s + the other starts and reads at the rate)",
            b.rate_ends, b.shortest_workflow, b.shortest_workflow, b.shortest_workflow
        );
        // The wall-time target is the release and fleet workloads'; the others show the ratio.
        let target = match self.workload {
            "release" | "fleet" | "cold" => verdict(self.ratio <= 1.15, "<= 1.15"),
            _ => String::new(),
        };
        let _ = writeln!(out, "  wall / lower bound   {:>9.3}    {target}", self.ratio);
        let _ = writeln!(out, "  wall / plain bound   {:>9.3}", self.plain_ratio);
        let _ = writeln!(
            out,
            "  workflow requests    {:>9.2}    per workflow ({} POST and reads of workflows for {} workflows) {}",
            self.workflow_requests_per_workflow,
            run.workflow_requests,
            run.workflows,
            verdict(self.workflow_requests_per_workflow <= 2.5, "<= 2.5")
        );
        #[expect(clippy::cast_precision_loss, reason = "small counts")]
        let slot_seconds = run.wall * self.concurrency as f64;
        let _ = writeln!(
            out,
            "  slot use             {:>9.3}    (workflow time / (wall x {}); {:.2} s per workflow waited past its \
             finish before a read saw it)",
            run.workflow_seconds / slot_seconds,
            self.concurrency,
            per_f(run.unseen_seconds, run.workflows)
        );
        self.model_lines(&mut out);
        let _ = writeln!(out, "  peak in-flight workflows {}", run.peak_in_flight_workflows);
        let _ = writeln!(out, "  peak RSS             {}", mib(run.peak_rss_bytes));
        let _ = writeln!(out, "  requests per task, by route:");
        let mut routes: Vec<(&String, &f64)> = self.requests_per_task.iter().collect();
        routes.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
        for (route, per) in routes {
            let _ = writeln!(out, "    {per:>8.3}  {route}");
        }
        self.sequential_lines(&mut out);
        out
    }

    /// What the model client would have done, beside this run.
    fn model_lines(&self, out: &mut String) {
        let run = &self.run;
        let Some(best) = &self.model else { return };
        let _ = writeln!(
            out,
            "  requests             {:>9.3}    x the fewest with the deploys' code-log reads ({} sent, {} needed) {}",
            best.requests_ratio,
            run.requests,
            best.fewest_with_reads,
            verdict(best.requests_ratio <= 1.1, "<= 1.1")
        );
        let _ = writeln!(
            out,
            "  the model client (knows the run-time spread, polls when it loses least; x the plain bound, \
             mean [lowest, highest] over draws):"
        );
        let _ =
            writeln!(out, "    {:<36}{:<26}no rate limit", "", format!("at {} requests/s", self.requests_per_second));
        let range = |(mean, low, high): (f64, f64, f64)| format!("{mean:.3} [{low:.3}, {high:.3}]");
        let row = |label: String, [rated, free]: [(f64, f64, f64); 2]| {
            format!("    {label:<36}{:<26}{}", range(rated), range(free))
        };
        let _ = writeln!(out, "{}", row("sees every end at once".to_owned(), best.instant));
        let _ = writeln!(out, "{}", row("1.5 polls per workflow (2.5)".to_owned(), best.at_target_polls));
        let _ = writeln!(
            out,
            "{}",
            row(format!("{:.2} polls per workflow (this run)", best.polls_per_workflow), best.at_measured_polls)
        );
        let within = best.within_target.map_or_else(
            || "no budget from 1 to 3 polls per workflow reaches 1.15".to_owned(),
            |budget| {
                format!(
                    "1.15 needs {budget:.1} polls per workflow ({:.1} workflow requests per workflow)",
                    budget + 1.0
                )
            },
        );
        let _ = writeln!(
            out,
            "    at {} requests/s the fastest is {:.1} polls per workflow ({:.3}); {within}",
            self.requests_per_second, best.fastest.0, best.fastest.1
        );
    }

    /// The sequential run (terminus's way) and the speedup over it.
    fn sequential_lines(&self, out: &mut String) {
        let Some(seq) = &self.sequential else { return };
        let target = 0.9 * f64::from(u32::try_from(self.concurrency).unwrap_or(u32::MAX));
        let _ = writeln!(
            out,
            "  sequential (terminus-like: concurrency 1, a poll every {TERMINUS_POLL}): {:.1} s ({:.2} s real), \
             {:.3} x its lower bound, {:.2} workflow requests per workflow, peak RSS {}",
            seq.run.wall,
            seq.run.real_seconds,
            seq.ratio,
            per(seq.run.workflow_requests, seq.run.workflows),
            mib(seq.run.peak_rss_bytes)
        );
        let _ = writeln!(
            out,
            "  speedup              {:>9.2} x  {}",
            seq.speedup,
            verdict(seq.speedup >= target, &format!(">= {target:.1} (0.9 x concurrency)"))
        );
    }
}

/// `seconds / of` (0 when `of` is 0).
#[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
fn per_f(seconds: f64, of: u64) -> f64 {
    if of == 0 { 0.0 } else { seconds / of as f64 }
}

/// `count / of` (0 when `of` is 0).
#[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
fn per(count: u64, of: u64) -> f64 {
    if of == 0 { 0.0 } else { count as f64 / of as f64 }
}

fn verdict(met: bool, target: &str) -> String {
    format!("(target {target}: {})", if met { "met" } else { "MISSED" })
}

fn mib(bytes: Option<u64>) -> String {
    #[expect(clippy::cast_precision_loss, reason = "a memory size")]
    bytes.map_or_else(|| "n/a".to_owned(), |b| format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)))
}

// ---- the listing workload ---------------------------------------------------------------

#[derive(Serialize)]
struct Listing {
    /// Platform seconds.
    seconds: f64,
    requests: u64,
    sites: usize,
}

#[derive(Serialize)]
pub(crate) struct ListingFigures {
    workload: &'static str,
    description: String,
    requests_per_second: f64,
    time_scale: f64,
    largest_collection: Listing,
    concurrent: Listing,
    sequential: Listing,
    /// `concurrent` over the largest single collection.
    ratio: f64,
    sequential_ratio: f64,
}

const ORGS: usize = 5;

fn listing_workload(per_org: usize) -> Result<ListingFigures, String> {
    let mut text = world_head(LISTING_SCALE, "  history: 0\n");
    text.push_str("orgs:\n");
    for o in 0..ORGS {
        let _ = writeln!(text, "  - {{ name: org-{o}, label: Org {o}, role: admin }}");
    }
    text.push_str("sites:\n");
    for o in 0..ORGS {
        for s in 0..per_org {
            let _ = writeln!(text, "  - {{ name: o{o}-site-{s:04}, org: org-{o} }}");
        }
    }
    let world = World::parse(&PlanSource::new("listing world", text))
        .map_err(|errors| format!("the generated world is invalid ({} errors)", errors.len()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let sim = Simulator::start(&world, world.knobs.clone(), 0).await.map_err(|e| e.to_string())?;
        let largest = time_listing(&sim, true, |client| async move {
            let orgs = client.user_orgs().await?;
            let org = orgs.first().map(|m| m.organization.id.clone()).unwrap_or_default();
            Ok(client.org_sites(&org).await?.len())
        })
        .await?;
        let listing = |client: ApiClient| async move {
            let listing = client.site_listing().await?;
            Ok(listing.org_sites.iter().map(|(_, sites)| sites.len()).sum::<usize>() + listing.team_sites.len())
        };
        let concurrent = time_listing(&sim, true, listing).await?;
        let sequential = time_listing(&sim, false, listing).await?;
        sim.stop().await;
        Ok(ListingFigures {
            workload: "listing",
            description: format!("{ORGS} organizations x {per_org} sites"),
            requests_per_second: LISTING_RATE,
            time_scale: LISTING_SCALE,
            ratio: concurrent.seconds / largest.seconds,
            sequential_ratio: sequential.seconds / largest.seconds,
            largest_collection: largest,
            concurrent,
            sequential,
        })
    })
}

/// Times `list` with a fresh, logged-in client; the organization list it needs first is
/// fetched beforehand for the single collection, so each timing holds only what it names.
async fn time_listing<F, Fut>(sim: &Simulator, parallel: bool, list: F) -> Result<Listing, String>
where
    F: FnOnce(ApiClient) -> Fut,
    Fut: std::future::Future<Output = Result<usize, tb_operations::api::ApiError>>,
{
    let settings = tb_settings::Settings::resolve(&[], None).map_err(|e| e.to_string())?;
    let mut config = tb_run::connect::simulator_config(&settings, sim);
    config.requests_per_second = LISTING_RATE / LISTING_SCALE;
    config.burst = u32::try_from(CONCURRENCY).unwrap_or(u32::MAX);
    config.parallel_pagination = parallel;
    let client = ApiClient::new(config).map_err(|e| e.to_string())?;
    client.user_id().await.map_err(|e| e.to_string())?;
    let before = sim.stats().requests_total;
    let started = Instant::now();
    let sites = list(client).await.map_err(|e| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64() / LISTING_SCALE;
    Ok(Listing { seconds, requests: sim.stats().requests_total - before, sites })
}

impl ListingFigures {
    fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\nlisting workload: {} ({} requests/s, latency {}-{} ms, time scale {})",
            self.description,
            self.requests_per_second,
            LATENCY.0 * 1000.0,
            LATENCY.1 * 1000.0,
            self.time_scale
        );
        for (label, l) in [
            ("largest single collection", &self.largest_collection),
            ("all, collections at once", &self.concurrent),
            ("all, one after another", &self.sequential),
        ] {
            let _ =
                writeln!(out, "  {label:<26} {:>7.2} s  {:>3} requests  {:>5} sites", l.seconds, l.requests, l.sites);
        }
        let _ = writeln!(
            out,
            "  at once / largest     {:>7.2} x  (one after another: {:.2} x)",
            self.ratio, self.sequential_ratio
        );
        out
    }
}

// ---- the fleet plan workload --------------------------------------------------------------

#[derive(Serialize)]
pub(crate) struct PlanFigures {
    workload: &'static str,
    description: String,
    time_scale: f64,
    /// Platform seconds from the first request to the last answer.
    seconds: f64,
    requests: u64,
    requests_by_route: BTreeMap<String, u64>,
    real_seconds: f64,
    peak_rss_bytes: Option<u64>,
}

/// A child process of the binary pointed at a simulator served by this process, with a
/// scratch home and none of the caller's `TERMINUS_*` settings.
fn served_command(dir: &Path, sim: &Simulator, args: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    command.args(args).current_dir(dir).stdin(Stdio::null()).stdout(Stdio::null());
    without_callers_settings(&mut command);
    command
        .env("HOME", dir)
        .env("TERMINUS_HOST", "127.0.0.1")
        .env("TERMINUS_PORT", sim.addr().port().to_string())
        .env("TERMINUS_PROTOCOL", "http")
        .env("TERMINUS_MACHINE_TOKEN", "bench-token");
    command
}

/// Waits for `child`: how it ended, the real seconds it took, and its peak memory.
fn measure(child: &mut std::process::Child) -> Result<(std::process::ExitStatus, f64, Option<u64>), String> {
    let started = Instant::now();
    let mut peak = None;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("waiting for the child: {e}"))? {
            break status;
        }
        // The high-water mark only grows; the last reading before exit is the run's peak.
        if let Some(hwm) = peak_rss(child.id()) {
            peak = Some(peak.map_or(hwm, |p: u64| p.max(hwm)));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Ok((status, started.elapsed().as_secs_f64(), peak))
}

/// Waits for `child` (see [`measure`]); its stderr on failure.
fn watch(mut child: std::process::Child, what: &str) -> Result<(f64, Option<u64>), String> {
    let (status, seconds, peak) = measure(&mut child)?;
    if !status.success() {
        let mut said = String::new();
        if let Some(mut err) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut err, &mut said);
        }
        return Err(format!("{what} ended with {status}: {}", said.trim()));
    }
    Ok((seconds, peak))
}

#[derive(Serialize)]
pub(crate) struct MemoryFigures {
    workload: &'static str,
    description: String,
    tasks: usize,
    real_seconds: f64,
    peak_rss_bytes: Option<u64>,
}

/// The tool's own peak memory applying `sites` cache clears (one task each), 100 at a time
/// as the fleet workload, against a simulator served by this process with short workflows
/// and no latency: memory is the measure here, not time (about 100 s, the API client's
/// one-second poll floor per site).
fn memory_workload(sites: usize) -> Result<MemoryFigures, String> {
    let dir = Scratch::new("memory")?;
    write(&dir.0.join("plan.yml"), &fleet_plan(sites))?;
    let mut text = "simulator:\n  seed: 1\n  workflow_durations: { clear_cache: 0.05 }\n\
                    user: { email: bench@example.com, machine_token: bench-token }\n\
                    orgs:\n  - { name: bench, label: Bench, role: admin }\nsites:\n"
        .to_owned();
    for n in 0..sites {
        let _ = writeln!(text, "  - {{ name: site-{n:04}, org: bench, envs: {{ live: {{}} }} }}");
    }
    let world = World::parse(&PlanSource::new("memory world", text))
        .map_err(|errors| format!("the generated world is invalid ({} errors)", errors.len()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    let sim = runtime.block_on(Simulator::start(&world, world.knobs.clone(), 0)).map_err(|e| e.to_string())?;
    let mut command = served_command(&dir.0, &sim, &["apply", "plan.yml", "--yes", "-q"]);
    command.env("TERMINUS_BATCH_REQUESTS_PER_SECOND", "5000").env("TERMINUS_BATCH_BURST", "1000");
    let child = command.stderr(Stdio::piped()).spawn().map_err(|e| format!("cannot start apply: {e}"))?;
    let watched = watch(child, "apply");
    runtime.block_on(sim.stop());
    let (real_seconds, peak_rss_bytes) = watched?;
    Ok(MemoryFigures {
        workload: "memory",
        description: format!(
            "apply of {sites} tasks (clear cache on {sites} named sites, 100 at a time), the tool alone"
        ),
        tasks: sites,
        real_seconds,
        peak_rss_bytes,
    })
}

impl MemoryFigures {
    fn render(&self) -> String {
        let target = self.peak_rss_bytes.is_some_and(|b| b < 150 << 20);
        format!(
            "\nmemory workload: {}\n  peak RSS             {}  {}\n  real time            {:>9.2} s\n",
            self.description,
            mib(self.peak_rss_bytes),
            verdict(target, "< 150 MiB"),
            self.real_seconds
        )
    }
}

/// `plan` of `sites` sites named in the plan, against a simulator served in this process at
/// the default request rate, in real time (as the listing workload: pages are large, and a
/// faster clock would time JSON handling rather than the API): what resolving a fleet costs.
fn plan_workload(sites: usize) -> Result<PlanFigures, String> {
    let scale = LISTING_SCALE;
    let dir = Scratch::new("fleet-plan")?;
    write(&dir.0.join("plan.yml"), &fleet_plan(sites))?;
    let world = World::parse(&PlanSource::new("fleet world", world(sites, scale)))
        .map_err(|errors| format!("the generated world is invalid ({} errors)", errors.len()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    let sim = runtime.block_on(Simulator::start(&world, world.knobs.clone(), 0)).map_err(|e| e.to_string())?;
    let mut command = served_command(&dir.0, &sim, &["plan", "plan.yml", "-q"]);
    // The platform's default rate (the simulator runs in real time here).
    command.env("TERMINUS_BATCH_REQUESTS_PER_SECOND", (DEFAULT_RATE / scale).to_string());
    let child = command.stderr(Stdio::piped()).spawn().map_err(|e| format!("cannot start plan: {e}"))?;
    let watched = watch(child, "plan");
    let stats = runtime.block_on(sim.stop());
    let (real_seconds, peak) = watched?;
    Ok(PlanFigures {
        workload: "fleet-plan",
        description: format!("plan of {sites} sites named in the plan"),
        time_scale: scale,
        seconds: stats.elapsed,
        requests: stats.requests_total,
        requests_by_route: stats.requests.iter().map(|(route, by)| (route.clone(), by.values().sum())).collect(),
        real_seconds,
        peak_rss_bytes: peak,
    })
}

impl PlanFigures {
    fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\nfleet-plan workload: {} ({} requests/s, latency {}-{} ms, time scale {})",
            self.description,
            DEFAULT_RATE,
            LATENCY.0 * 1000.0,
            LATENCY.1 * 1000.0,
            self.time_scale
        );
        let _ =
            writeln!(out, "  resolution           {:>9.2} s  {}", self.seconds, verdict(self.seconds < 10.0, "< 10 s"));
        let _ =
            writeln!(out, "  requests             {:>9}    {}", self.requests, verdict(self.requests < 100, "< 100"));
        for (route, n) in &self.requests_by_route {
            let _ = writeln!(out, "    {n:>8}  {route}");
        }
        let _ =
            writeln!(out, "  real time            {:>9.2} s; peak RSS {}", self.real_seconds, mib(self.peak_rss_bytes));
        out
    }
}

// ---- scratch space ----------------------------------------------------------------------

/// A temporary directory removed when dropped.
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    pub(crate) fn new(label: &str) -> Result<Self, String> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("terminus-batch-bench-{label}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ignored = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(dead_code, reason = "the bench target (no test harness) compiles the test without running it")]
    fn run(workflow_seconds: f64, resolution_requests: u64) -> Run {
        Run {
            wall: 0.0,
            real_seconds: 0.0,
            tasks: 1000,
            tasks_ok: 1000,
            workflows: 1000,
            workflow_requests: 2000,
            requests: 2000 + resolution_requests,
            resolution_requests,
            requests_by_route: BTreeMap::new(),
            workflow_seconds,
            longest_site_seconds: 22.0,
            shortest_workflow_seconds: 18.0,
            unseen_seconds: 0.0,
            peak_in_flight_workflows: 100,
            peak_rss_bytes: None,
        }
    }

    #[test]
    fn the_fill_and_drain_bound_counts_the_slots_filling_and_draining_at_the_rate() {
        // The fleet's shape: 100 slots, 10 requests/s, a burst of 20 of which the
        // resolution took 14. Filling: 6 at once, then 10 more a second for 9.4 s.
        let bound = Bound::of(&run(19_990.0, 14), 100, 10.0);
        assert!((bound.plain - 199.9).abs() < 1e-9, "the slots bind: {}", bound.plain);
        assert!((bound.requests_at_rate - (2014.0 - 20.0) / 10.0).abs() < 1e-9, "the burst is there at once");
        assert!((bound.ramp_slot_seconds - 94.0 * 94.0 / 20.0).abs() < 1e-9);
        assert!((bound.drain_slot_seconds - 80.0 * 80.0 / 20.0).abs() < 1e-9);
        assert!((bound.fill_drain - (19_990.0 + 441.8 + 320.0) / 100.0).abs() < 1e-9, "{}", bound.fill_drain);
        // A resolution longer than the burst leaves every slot empty until it is paid.
        let slow = Bound::of(&run(19_990.0, 30), 100, 10.0);
        assert!((slow.ramp_slot_seconds - (100.0 * 1.0 + 100.0 * 100.0 / 20.0)).abs() < 1e-9);
        // Slots no more than the burst: no forced idling.
        let few = Bound::of(&run(2_000.0, 2), 10, 10.0);
        assert!(few.ramp_slot_seconds.abs() < 1e-12 && few.drain_slot_seconds.abs() < 1e-12);
        assert!((few.fill_drain - few.workflow_seconds_per_slot).abs() < 1e-12);
        // Too short a run for the two stretches to be apart: that bound says nothing.
        let short = Bound::of(&run(100.0, 14), 100, 10.0);
        assert!(short.fill_drain.abs() < 1e-12, "{}", short.fill_drain);
    }

    #[test]
    fn the_rate_ends_bound_leaves_out_what_the_first_and_last_run_times_cannot_use() {
        // 1,000 workflows of 18 s or more, 100 slots: in the first 18 s at most 100 starts
        // count, in the last 18 s at most 100 finishing reads; the other 1,800 requests
        // need 178 s at 10 a second after the burst of 20.
        let bound = Bound::of(&run(19_990.0, 14), 100, 10.0);
        assert!((bound.rate_ends - (2.0 * 18.0 + 178.0)).abs() < 1e-9, "{}", bound.rate_ends);
        assert!((bound.value - bound.rate_ends).abs() < 1e-12, "the largest is the bound");
        // No more workflows than slots: every start may go in the first run time.
        let mut few = run(2_000.0, 2);
        few.workflows = 100;
        assert!(Bound::of(&few, 100, 10.0).rate_ends.abs() < 1e-12);
        // Short workflows: the ends are short, the rate rules.
        let mut quick = run(1_000.0, 14);
        quick.shortest_workflow_seconds = 0.5;
        let quick = Bound::of(&quick, 100, 10.0);
        assert!((quick.rate_ends - (1.0 + 178.0)).abs() < 1e-9, "{}", quick.rate_ends);
        // Tasks that end without a workflow free their slots early: one more start each.
        let mut unchanged = run(19_990.0, 14);
        unchanged.tasks = 1050;
        assert!((Bound::of(&unchanged, 100, 10.0).rate_ends - (36.0 + 173.0)).abs() < 1e-9);
    }
}

// ---- shared state ------------------------------------------------------------------------

/// What keeping the state in S3 costs the fleet workload, against a local directory.
#[derive(Serialize)]
pub(crate) struct StateFigures {
    workload: &'static str,
    description: String,
    /// Each round's platform seconds, directory then S3.
    directory_walls: Vec<f64>,
    s3_walls: Vec<f64>,
    /// Best of the rounds, S3 over directory.
    ratio: f64,
}

impl StateFigures {
    fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}: {}", self.workload, self.description);
        let best = |walls: &[f64]| walls.iter().copied().fold(f64::INFINITY, f64::min);
        let _ =
            writeln!(out, "  directory   {:>7.1} s  (rounds: {:?})", best(&self.directory_walls), self.directory_walls);
        let _ = writeln!(out, "  s3 (moto)   {:>7.1} s  (rounds: {:?})", best(&self.s3_walls), self.s3_walls);
        let _ = writeln!(out, "  ratio       {:>7.3}    s3 over directory, best of each", self.ratio);
        out
    }
}

#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    dead_code,
    reason = "the tests' store proxy, shared with them; the bench uses its latency"
)]
#[path = "../../tests/it/support/fault_proxy.rs"]
pub(crate) mod fault_proxy;
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    dead_code,
    reason = "the tests' S3 server, shared with them; the bench uses part of it"
)]
#[path = "../../tests/it/support/s3.rs"]
pub(crate) mod s3;

/// A plain HTTP client (the proxy's own, as the tests build it).
fn http_client() -> reqwest::Client {
    let _already = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().build().unwrap_or_default()
}
#[allow(dead_code, unused_imports, unused_macros, reason = "the bench uses the provisioning, not the tests' `needs!`")]
#[path = "../../tests/it/support/tools.rs"]
mod tools;

/// The fleet workload, alternately with a directory and a bucket for its state, two rounds.
fn state_workload(args: &Args) -> Result<StateFigures, String> {
    const ROUNDS: usize = 2;
    let sites = args.sites.unwrap_or(1000);
    let time_scale = args.time_scale.unwrap_or(FLEET_SCALE);
    let dir = Scratch::new("state")?;
    write(&dir.0.join("plan.yml"), &fleet_plan(sites))?;
    write(&dir.0.join("world.yml"), &world(sites, time_scale))?;
    let moto = s3::Moto::start().ok_or("moto's S3 server could not be provisioned (see the SKIPPED line above)")?;
    let url = moto.bucket("bench-state");
    let vars = moto.env();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (mut directory_walls, mut s3_walls) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let local = apply_once(&dir.0, &format!("directory-{round}"), None, &[], &[])?;
        directory_walls.push(local.wall);
        let shared = apply_once(&dir.0, &format!("s3-{round}"), Some(&format!("{url}/{round}")), &[], &vars)?;
        s3_walls.push(shared.wall);
    }
    let best = |walls: &[f64]| walls.iter().copied().fold(f64::INFINITY, f64::min);
    Ok(StateFigures {
        workload: "state",
        description: format!(
            "the fleet workload ({sites} sites x clear cache, concurrency {FLEET_CONCURRENCY}), state in a directory and in S3 (moto on 127.0.0.1), {ROUNDS} rounds"
        ),
        ratio: best(&s3_walls) / best(&directory_walls),
        directory_walls,
        s3_walls,
    })
}

// ---- a cold platform -----------------------------------------------------------------------

/// The cold workload's spread of run times (`duration_jitter`).
const COLD_JITTER: f64 = 0.2;

/// Issue 26's shapes on a platform with no workflow history (`history: 0`): nothing to learn
/// a type's run time from but the run's own workflows. Each is judged by its lower bound and
/// by the requests it sent against the fewest the work needs.
fn cold_workloads(args: &Args) -> Result<Vec<ApplyFigures>, String> {
    // Issue 26's two shapes at concurrency 20, then issue 40's second: 60 sites, 150 ms,
    // 8-12 s workflows, concurrency 30.
    let shapes = [(40, 0.05, 6.0, CONCURRENCY), (80, 0.3, 20.0, CONCURRENCY), (60, 0.15, 10.0, 30)];
    let time_scale = args.time_scale.unwrap_or(FLEET_SCALE);
    let mut out = Vec::new();
    for (sites, latency, duration, concurrency) in shapes {
        let sites = args.sites.unwrap_or(sites);
        let dir = Scratch::new("cold")?;
        let plan = plan_at(
            "bench-cold",
            "  deploy-test:\n    run: env:deploy\n    on: { sites: all, env: test }\n\
             \x20 deploy-live:\n    run: env:deploy\n    needs: [deploy-test]\n    on: { sites: all, env: live }\n\
             \x20 clear-cache:\n    run: env:clear-cache\n    needs: [deploy-live]\n    on: { sites: all, env: live }\n",
            concurrency,
        );
        write(&dir.0.join("plan.yml"), &plan)?;
        let mut world = format!(
            "simulator:\n  seed: 1\n  time_scale: {time_scale}\n  latency: {{ min: {latency}, max: {latency} }}\n  history: 0\n\
             \x20 duration_jitter: {COLD_JITTER}\n  workflow_durations: {{ deploy: {duration}, clear_cache: {duration} }}\n\
             user: {{ email: bench@example.com, machine_token: bench-token }}\n\
             orgs:\n  - {{ name: bench, label: Bench, role: admin }}\nsites:\n"
        );
        for n in 0..sites {
            let _ = writeln!(
                world,
                "  - {{ name: site-{n:04}, org: bench, envs: {{ test: {{ deployable: 1 }}, live: {{ deployable: 1 }} }} }}"
            );
        }
        write(&dir.0.join("world.yml"), &world)?;
        let run = apply_once(&dir.0, "parallel", None, &[], &[])?;
        let bound = Bound::of(&run, concurrency, DEFAULT_RATE);
        let tasks = u64::try_from(run.tasks).unwrap_or(u64::MAX);
        out.push(ApplyFigures {
            workload: "cold",
            description: format!(
                "{sites} sites x deploy test -> deploy live -> clear cache, {duration} s workflows (+-20 %), no history"
            ),
            sites,
            concurrency,
            requests_per_second: DEFAULT_RATE,
            time_scale,
            latency: (latency, latency),
            ratio: run.wall / bound.value,
            plain_ratio: run.wall / bound.plain,
            workflow_requests_per_workflow: per(run.workflow_requests, run.workflows),
            requests_per_task: run.requests_by_route.iter().map(|(route, n)| (route.clone(), per(*n, tasks))).collect(),
            model: Some(model_client(&run, &bound, sites, duration, latency, concurrency)),
            bound,
            run,
            sequential: None,
        });
    }
    Ok(out)
}

/// The cold shape's model client (see [`model`]) at three poll budgets, and its request count
/// with the code-log reads the deploys decide by.
fn model_client(run: &Run, bound: &Bound, sites: usize, duration: f64, latency: f64, slots: usize) -> ModelClient {
    let count = |route: &str| run.requests_by_route.get(route).copied().unwrap_or(0);
    let reads = count("GET sites/{site}/environments/{env}/code-log");
    let fewest_with_reads = bound.fewest_requests + reads;
    let polls = count("GET sites/{site}/workflows/{workflow}") + count("GET sites/{site}/workflows");
    let shape = model::Shape { sites, reads_before_post: vec![1, 1, 0], duration, jitter: COLD_JITTER, latency, slots };
    #[expect(clippy::cast_precision_loss, reason = "a few requests")]
    let rate = model::Rate { per_second: DEFAULT_RATE, burst: DEFAULT_BURST, first: run.resolution_requests as f64 };
    let figures = |polls: Option<f64>| {
        [Some(rate), None].map(|rate| {
            let o = model::model_client(&shape, polls, rate);
            (o.mean, o.low, o.high)
        })
    };
    #[expect(clippy::cast_precision_loss, reason = "small counts")]
    let requests_ratio = run.requests as f64 / fewest_with_reads as f64;
    let polls_per_workflow = per(polls, run.workflows);
    let scan: Vec<(f64, f64)> = (10..=30)
        .map(|tenths| {
            let budget = f64::from(tenths) / 10.0;
            (budget, model::model_client(&shape, Some(budget), Some(rate)).mean)
        })
        .collect();
    let fastest = scan.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1)).unwrap_or((1.0, f64::NAN));
    let within_target = scan.iter().find(|(_, mean)| *mean <= 1.15).map(|(budget, _)| *budget);
    ModelClient {
        fastest,
        within_target,
        fewest_with_reads,
        requests_ratio,
        polls_per_workflow,
        instant: figures(None),
        at_target_polls: figures(Some(1.5)),
        at_measured_polls: figures(Some(polls_per_workflow)),
    }
}
