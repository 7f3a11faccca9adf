//! The forecast (`plan`'s estimate, `apply`'s prompt, the live ETA): how long a run will
//! take, as a range, and what it is based on.
//!
//! Durations come from the team's history: every run records how long each task took, and
//! the state store makes those records the team's. A task's duration is drawn from what the
//! same operation took on the same site (with enough of them), else on any site, else from
//! the platform's typical figures with a wide spread. Runs are only compared with runs
//! against the same platform (the same API, or the same simulator world, whose clock is the
//! same), so every figure here is on the run's own clock. The schedule those durations make
//! is the executor's own ([`tb_executor::forecast::Schedule`]), played many times with
//! durations drawn anew: the spread of the results is the range. A run that asks more of
//! the API than its request rate allows takes at least that long, whatever the schedule.

use std::collections::{BTreeMap, HashMap};

use tb_core::endpoint::Endpoint;
use tb_core::events::Status;
use tb_executor::TaskMeta;
use tb_executor::forecast::{Now, Schedule};
use tb_executor::scheduler::Limits;
use tb_plan::expand::Task;
use tb_plan::plan::ops::{Effect, OperationSpec};
use tb_state::Store;

use super::Prepared;

/// History older than this is not read (the platform changes).
pub const HISTORY_DAYS: u64 = 30;
/// Durations read at most: a fleet's runs of ten thousand tasks each are not all read.
pub const HISTORY_SAMPLES: usize = 50_000;
/// Runs read at most, newest first.
pub const HISTORY_RUNS: usize = 30;
/// A site's own durations are used from this many on: a site's workflows take about what
/// they took before (its size, its code), more than what other sites' took.
const PER_SITE: usize = 1;
/// Schedules played for a range (fewer for large plans: about 20,000 tasks played in all).
const PLAYS: usize = 200;
const PLAYED_TASKS: usize = 20_000;
/// Without history, an operation's typical duration (the catalogue's, on the cautious side)
/// is taken as from this fraction to this multiple, the same for all its tasks in one play
/// (the platform is faster or slower for all of them at once), each task then within
/// [`TASK_JITTER`] of it.
const COLD_SPREAD: (f64, f64) = (0.15, 1.5);
const TASK_JITTER: f64 = 0.2;
/// With history, the whole platform is this much faster or slower from one run to the next.
const WARM_SPREAD: (f64, f64) = (0.92, 1.08);
/// API requests a task sends, about: a workflow's start, its polls and reads; one read.
const REQUESTS_PER_WORKFLOW: f64 = 4.0;
const REQUESTS_PER_READ: f64 = 1.5;

/// What earlier runs against one platform took, per operation and site (seconds, on their
/// clock).
#[derive(Clone, Debug, Default)]
pub struct History {
    by_site: HashMap<(String, String), Vec<f64>>,
    by_operation: HashMap<String, Vec<f64>>,
    /// Runs read.
    pub runs: usize,
    /// Durations read.
    samples: usize,
}

impl History {
    /// Reads the runs in `store` against `endpoint` of the last [`HISTORY_DAYS`] days (before
    /// `now_ms`), newest first, at most [`HISTORY_RUNS`]: each task that succeeded or had
    /// nothing to do, with how long it took. A run whose records cannot be read is passed
    /// over: a forecast does without it.
    #[must_use]
    pub fn read(store: &Store, endpoint: &Endpoint, now_ms: u64) -> Self {
        let since = now_ms.saturating_sub(HISTORY_DAYS * 86_400_000);
        let mut history = Self::default();
        for id in tb_state::journal::runs_newest_first(store).into_iter().take(HISTORY_RUNS * 3) {
            if history.runs >= HISTORY_RUNS || history.samples >= HISTORY_SAMPLES {
                break;
            }
            // The header first: a run against another platform is not read further.
            let same = |h: &tb_state::journal::Header| h.endpoint.as_ref().is_some_and(|e| e.same_as(endpoint));
            let Ok(Some(report)) = super::history::load_if(store, &id, same) else { continue };
            if report.started_at < since {
                continue;
            }
            history.runs += 1;
            for task in &report.tasks {
                let (Some(status), Some(ms)) = (task.status, task.duration_ms) else { continue };
                // A task carried from an earlier run took no time in this one.
                if !matches!(status, Status::Succeeded | Status::Unchanged) || task.run_id != report.run_id {
                    continue;
                }
                #[expect(clippy::cast_precision_loss, reason = "milliseconds of a task")]
                let secs = ms as f64 / 1000.0;
                history.add(&task.task.operation, task.task.site.as_deref(), secs);
            }
        }
        history
    }

    /// One task's duration.
    pub fn add(&mut self, operation: &str, site: Option<&str>, secs: f64) {
        self.samples += 1;
        self.by_operation.entry(operation.to_owned()).or_default().push(secs);
        if let Some(site) = site {
            self.by_site.entry((operation.to_owned(), site.to_owned())).or_default().push(secs);
        }
    }

    /// Durations seen per operation, for the basis.
    #[must_use]
    pub fn seen(&self) -> BTreeMap<String, usize> {
        self.by_operation.iter().map(|(op, d)| (op.clone(), d.len())).collect()
    }

    fn samples(&self, operation: &str, site: Option<&str>) -> Option<&[f64]> {
        let own = site.and_then(|s| self.by_site.get(&(operation.to_owned(), s.to_owned())));
        own.filter(|d| d.len() >= PER_SITE)
            .or_else(|| self.by_operation.get(operation))
            .filter(|d| !d.is_empty())
            .map(Vec::as_slice)
    }
}

/// Where a task's durations come from.
#[derive(Clone, Debug, PartialEq)]
enum Draw {
    /// What it took before.
    Seen(Vec<f64>),
    /// The typical figure on the run's clock, spread wide.
    Typical(f64),
}

impl Draw {
    /// One task's duration in a play whose platform runs at `pace` (a factor per operation).
    fn sample(&self, rng: &mut fastrand::Rng, pace: f64) -> f64 {
        match self {
            Self::Seen(d) => d[rng.usize(..d.len())] * pace,
            Self::Typical(t) => t * pace * (1.0 + TASK_JITTER * (2.0 * rng.f64() - 1.0)),
        }
    }

    fn median(&self) -> f64 {
        match self {
            Self::Seen(d) => {
                let mut d = d.clone();
                d.sort_by(f64::total_cmp);
                d[d.len() / 2]
            }
            // The middle of the cold spread: the catalogue's figures are cautious.
            Self::Typical(t) => t * (COLD_SPREAD.0 * COLD_SPREAD.1).sqrt(),
        }
    }
}

/// Log-uniform between the two: as likely twice as long as half as long.
fn log_uniform(rng: &mut fastrand::Rng, (low, high): (f64, f64)) -> f64 {
    (low.ln() + rng.f64() * (high / low).ln()).exp()
}

/// A forecast: seconds on the run's clock.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Forecast {
    pub p10_secs: f64,
    pub p50_secs: f64,
    pub p90_secs: f64,
    /// Tasks whose durations came from history, and all of them.
    pub from_history: usize,
    pub tasks: usize,
    /// Durations seen per operation, in the runs read.
    pub seen: BTreeMap<String, usize>,
    pub runs: usize,
    /// On a simulator's clock.
    pub simulated: bool,
}

impl Forecast {
    /// What it is based on, in words: "from 212 env:deploy and 90 env:clear-cache in 3 runs
    /// of the last 30 days", or that there is no history.
    #[must_use]
    pub fn basis(&self) -> String {
        if self.from_history == 0 {
            return "no history of these operations on this platform: from typical durations, a wide range".to_owned();
        }
        let mut seen: Vec<(&String, &usize)> = self.seen.iter().collect();
        seen.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let words: Vec<String> = seen.iter().take(3).map(|(op, n)| format!("{n} {op}")).collect();
        let part = if self.from_history < self.tasks {
            format!("; {} of {} tasks from typical durations", self.tasks - self.from_history, self.tasks)
        } else {
            String::new()
        };
        format!(
            "from {} in {} of the last {HISTORY_DAYS} days{part}",
            join_and(&words),
            tb_core::words::counted(self.runs, "run")
        )
    }
}

fn join_and(words: &[String]) -> String {
    match words {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The model of `prepared`'s run with the history in `store` (none without one), on the
/// run's clock: a simulator's scale, else the platform's.
#[must_use]
pub fn model(prepared: &Prepared, store: Option<&Store>) -> Model {
    let simulator = prepared.connection.as_ref().and_then(|c| c.simulator.as_ref());
    let scale = simulator.map_or(1.0, |sim| sim.knobs().time_scale);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let history = match (store, prepared.endpoint()) {
        (Some(store), Some(endpoint)) => History::read(store, endpoint, now_ms),
        _ => History::default(),
    };
    let mut model = Model::new(prepared, &history, scale);
    model.simulated = simulator.is_some();
    model
}

/// [`model`] with the history of the state store `apply` would use for `prepared` (looked
/// for from `start`, the plan's directory); without history when there is none to read.
#[must_use]
pub fn for_plan(prepared: &Prepared, start: &std::path::Path, vars: &tb_settings::EnvVars) -> Model {
    let store = super::history::locate_state(None, prepared.plan.settings.state.as_deref(), start, vars)
        .ok()
        .and_then(|location| super::history::open_state(&location, vars).ok());
    model(prepared, store.as_ref())
}

/// The model of one plan's run: its schedule and each task's durations.
#[derive(Clone, Debug)]
pub struct Model {
    schedule: Schedule,
    draws: Vec<Draw>,
    /// Each task's median duration, once: the live ETA asks for them at every redraw.
    medians: Vec<f64>,
    /// Each task's operation.
    operations: Vec<&'static str>,
    /// The fewest seconds the run's API requests take at its request rate.
    request_floor: f64,
    from_history: usize,
    seen: BTreeMap<String, usize>,
    runs: usize,
    seed: u64,
    /// On a simulator's clock.
    pub simulated: bool,
}

impl tb_report::live::Remaining for Model {
    fn left_secs(&self, now: &[(Option<Status>, Option<f64>)]) -> f64 {
        self.left(now)
    }
}

impl Model {
    /// The model of `prepared`'s run, with `history` from the same platform; `scale` is the
    /// run's real seconds per platform second (a simulator's), for the typical figures.
    #[must_use]
    pub fn new(prepared: &Prepared, history: &History, scale: f64) -> Self {
        let tasks = &prepared.expansion.tasks;
        let metas: Vec<TaskMeta> =
            tasks.iter().map(|t| super::apply::task_meta(t, &prepared.expansion.jobs, |d| d)).collect();
        let settings = &prepared.settings;
        let limits = Limits {
            concurrency: settings.concurrency,
            per_site: settings.per_site,
            // A forecast assumes the tasks succeed: no failure stops it.
            fail_fast: false,
            max_failures: None,
        };
        let schedule =
            Schedule::new(&prepared.graph, &metas, super::apply::group_policies(&prepared.expansion.jobs), limits);
        let mut from_history = 0;
        let draws: Vec<Draw> = tasks
            .iter()
            .map(|t| match history.samples(t.payload.kind().name(), t.site.as_deref()) {
                Some(seen) => {
                    from_history += 1;
                    Draw::Seen(seen.to_vec())
                }
                #[expect(clippy::cast_precision_loss, reason = "seconds")]
                None => Draw::Typical(t.payload.kind().estimate_secs() as f64 * scale),
            })
            .collect();
        let requests: f64 = tasks.iter().map(requests_of).sum();
        let request_floor = requests * scale / settings.requests_per_second.max(0.001);
        let seed = u64::from_str_radix(&prepared.source.sha256()[..16], 16).unwrap_or(7);
        Self {
            schedule,
            medians: draws.iter().map(Draw::median).collect(),
            draws,
            operations: tasks.iter().map(|t| t.payload.kind().name()).collect(),
            request_floor,
            from_history,
            seen: history.seen(),
            runs: history.runs,
            seed,
            simulated: false,
        }
    }

    /// The range of the whole run.
    #[must_use]
    pub fn forecast(&self) -> Forecast {
        let n = self.draws.len();
        if n == 0 {
            return Forecast {
                p10_secs: 0.0,
                p50_secs: 0.0,
                p90_secs: 0.0,
                from_history: 0,
                tasks: 0,
                seen: self.seen.clone(),
                runs: self.runs,
                simulated: self.simulated,
            };
        }
        let plays = (PLAYED_TASKS / n.max(1)).clamp(20, PLAYS);
        let mut rng = fastrand::Rng::with_seed(self.seed);
        let now = vec![Now::Waiting; n];
        let mut spans: Vec<f64> = (0..plays)
            .map(|_| {
                let warm = log_uniform(&mut rng, WARM_SPREAD);
                let mut cold: HashMap<&str, f64> = HashMap::new();
                let durations: Vec<f64> = self
                    .draws
                    .iter()
                    .zip(&self.operations)
                    .map(|(d, op)| {
                        let pace = match d {
                            Draw::Seen(_) => warm,
                            Draw::Typical(_) => *cold.entry(op).or_insert_with(|| log_uniform(&mut rng, COLD_SPREAD)),
                        };
                        d.sample(&mut rng, pace)
                    })
                    .collect();
                self.schedule.play(&durations, &now).max(self.request_floor)
            })
            .collect();
        spans.sort_by(f64::total_cmp);
        let at = |q: f64| {
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss,
                reason = "an index"
            )]
            let i = ((spans.len() - 1) as f64 * q).round() as usize;
            spans[i]
        };
        Forecast {
            p10_secs: at(0.1),
            p50_secs: at(0.5),
            p90_secs: at(0.9),
            from_history: self.from_history,
            tasks: n,
            seen: self.seen.clone(),
            runs: self.runs,
            simulated: self.simulated,
        }
    }

    /// Seconds left when the run stands at `now`: per task its end (its status, and the
    /// seconds it took when it ran in this run), or the seconds a running task has run, or
    /// neither for one waiting. The schedule is played on what is left with each task's
    /// median duration; once this run has seen [`LEARNED`] tasks of an operation end, what
    /// they took is the median for the rest of them (the freshest figure, history or not),
    /// and an operation with neither history nor tasks ended yet goes at the pace the learned
    /// ones went against their typical figures.
    /// A running task takes what its median leaves, at least a tenth of it: it has not ended.
    #[must_use]
    pub fn left(&self, now: &[(Option<Status>, Option<f64>)]) -> f64 {
        let mut seen: HashMap<&str, Vec<f64>> = HashMap::new();
        for ((status, took), op) in now.iter().zip(&self.operations) {
            if let (Some(Status::Succeeded | Status::Unchanged), Some(took)) = (status, took) {
                seen.entry(op).or_default().push(*took);
            }
        }
        let learned: HashMap<&str, f64> = seen
            .into_iter()
            .filter(|(_, d)| d.len() >= LEARNED)
            .map(|(op, mut d)| {
                d.sort_by(f64::total_cmp);
                (op, d[d.len() / 2])
            })
            .collect();
        // The platform's pace, as this run saw it: what learned operations took against their
        // typical figures. An operation not yet learned, with no history, goes at that pace.
        let mut paces: Vec<f64> = self
            .draws
            .iter()
            .zip(&self.medians)
            .zip(&self.operations)
            .filter(|((draw, _), _)| matches!(draw, Draw::Typical(_)))
            .filter_map(|((_, median), op)| learned.get(op).map(|took| took / median))
            .collect();
        paces.sort_by(f64::total_cmp);
        let pace = paces.get(paces.len() / 2).copied().unwrap_or(1.0);
        let durations: Vec<f64> = self
            .draws
            .iter()
            .zip(&self.medians)
            .zip(&self.operations)
            .map(|((draw, median), op)| match (learned.get(op), draw) {
                (Some(took), _) => *took,
                (None, Draw::Typical(_)) => median * pace,
                (None, Draw::Seen(_)) => *median,
            })
            .collect();
        let states: Vec<Now> = now
            .iter()
            .zip(&durations)
            .map(|((status, ran), median)| match (status, ran) {
                (Some(status), _) => Now::Ended(*status),
                (None, Some(ran)) => Now::Running { left: (median - ran).max(median / 10.0).max(0.05) },
                (None, None) => Now::Waiting,
            })
            .collect();
        self.schedule.play(&durations, &states)
    }
}

/// Tasks of an operation this run must have seen end before what they took is its figure.
pub const LEARNED: usize = 3;

fn requests_of(task: &Task<OperationSpec>) -> f64 {
    match task.payload.kind().effect() {
        Effect::Workflow | Effect::CodeMoving => REQUESTS_PER_WORKFLOW,
        Effect::Direct | Effect::ReadOnly => REQUESTS_PER_READ,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sites_own_durations_win_over_every_sites() {
        let mut h = History::default();
        for secs in [10.0, 11.0] {
            h.add("env:deploy", Some("a"), secs);
        }
        h.add("env:deploy", Some("b"), 50.0);
        assert_eq!(h.samples("env:deploy", Some("a")), Some(&[10.0, 11.0][..]), "its own");
        assert_eq!(h.samples("env:deploy", Some("c")).unwrap().len(), 3, "a site never seen: every site's");
        assert!(h.samples("env:clear-cache", Some("a")).is_none());
    }

    #[test]
    fn a_typical_duration_spreads_both_ways() {
        let mut rng = fastrand::Rng::with_seed(1);
        let paces: Vec<f64> = (0..1000).map(|_| log_uniform(&mut rng, COLD_SPREAD)).collect();
        assert!(paces.iter().all(|p| (0.15..=1.5).contains(p)));
        assert!(paces.iter().any(|p| *p < 0.2) && paces.iter().any(|p| *p > 1.2));
        let draws: Vec<f64> = (0..1000).map(|_| Draw::Typical(10.0).sample(&mut rng, 1.0)).collect();
        assert!(draws.iter().all(|d| (8.0..=12.0).contains(d)), "each task near its operation's pace");
    }

    #[test]
    fn the_basis_says_what_it_read() {
        let f = Forecast {
            p10_secs: 1.0,
            p50_secs: 2.0,
            p90_secs: 3.0,
            from_history: 10,
            tasks: 12,
            seen: BTreeMap::from([("env:deploy".to_owned(), 212), ("env:clear-cache".to_owned(), 90)]),
            runs: 3,
            simulated: false,
        };
        assert_eq!(
            f.basis(),
            "from 212 env:deploy and 90 env:clear-cache in 3 runs of the last 30 days; 2 of 12 tasks from typical durations"
        );
        let cold = Forecast { from_history: 0, ..f };
        assert!(cold.basis().starts_with("no history"));
    }
}
