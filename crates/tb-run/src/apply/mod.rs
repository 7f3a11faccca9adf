//! `apply` as a library: [`check`] a prepared plan (login, saved-plan and resume targets,
//! refusals), [`begin`] the run (lock and journal), then [`Run::run_to_end`] it with the
//! executor, the operations and the event sinks wired together, into a [`RunOutcome`].
//! Nothing here prints: progress goes to the sinks the caller passes, and the outcome is data.
//!
//! Its parts: `resume` (what `--resume` continues), `lock` (the plan lock, claimed before any
//! request), `runner` (the adapter between the executor and the operations, with the leases
//! and the proof before each act) and `watch` (the watchdogs that halt or drain the run).
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use tb_state::Store;

use futures::FutureExt as _;
use tokio_util::sync::CancellationToken;

use super::error::StateError;
use super::outcome::RunOutcome;
use super::{Prepared, Refusal, RunError, Unreachable};
use tb_core::events::{EventSink, FanOut};
use tb_core::ids::RunId;
use tb_core::timefmt::compact;
use tb_executor::scheduler::{GroupPolicy, Limits};
use tb_executor::{Controls, Halt, Setup, SystemClock};
use tb_operations::api::workflows::Poller;
use tb_operations::{Ops, is_supported};
use tb_plan::expand::JobInfo;
use tb_plan::plan::model::OnFailure;
use tb_plan::plan::ops::OperationKind;
use tb_report::RunReport;
use tb_report::summary::{PlanInfo, SettingsInfo};
use tb_settings::{EnvVars, Settings};
use tb_state::fence::{Clock, Fence};
use tb_state::journal::{Header, JournalWriter, Prior};
use tb_state::lease::Leases;
use tb_state::lock::Lock;

mod lock;
mod resume;
mod runner;
mod watch;

pub use lock::{Claim, claim};
use lock::{Keeper, renew_state};
use resume::same_target;
pub use resume::{Earlier, find_earlier};
use runner::OpRunner;
pub(crate) use runner::task_meta;
use watch::{watch_api, watch_fence, watch_signals};

/// Which earlier run `--resume` continues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resume {
    /// The newest run of the same plan in the state directory.
    Newest,
    /// The run with this id.
    Run(String),
    /// The newest run of the same plan if there is one; else none (`--resume=auto`).
    IfAny,
}

/// How a run executes, beyond the settings.
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    pub allow_destructive: bool,
    /// When the run drains, stop waiting for tasks in flight too.
    pub abort_in_flight: bool,
    /// Backup downloads at once.
    pub downloads: usize,
    pub resume: Option<Resume>,
    /// Where runs keep their journal, lock and leases.
    pub state: Store,
    /// Watch Ctrl-C and SIGTERM (the command line does; a test driving the library does not).
    pub watch_signals: bool,
    /// How long to wait for the plan's lock when another run holds it (none: refuse at once).
    pub lock_timeout: Option<std::time::Duration>,
    /// The run group (a CI pipeline's shards) the run is a part of.
    pub run_group: Option<String>,
    /// The plan's shard the run applies (`I/N`): its lock, and the runs its resume continues.
    pub shard: Option<String>,
    /// Webhooks given on the command line (`--notify`): under `--simulate`, the only ones.
    pub notify: Vec<tb_plan::plan::model::Webhook>,
    /// The command that started the run, without `--resume`: a notification's resume command.
    pub command: Option<String>,
}

/// A plan checked for a run: who runs it, and what an earlier run left.
pub struct Checked {
    user_id: String,
    earlier: Option<Earlier>,
    /// The webhooks told of the run.
    hooks: Vec<crate::notify::Hook>,
}

/// Everything refused before any API call that changes anything: no connection (exit 3), a
/// failed login (exit 3), a saved plan or earlier run made against another target or user,
/// a drifted saved plan, operations this build cannot execute, unset environment variables,
/// destructive tasks without `allow_destructive` (exit 2).
pub fn check(
    prepared: &Prepared,
    options: &ApplyOptions,
    earlier: Option<Earlier>,
    vars: &EnvVars,
) -> Result<Checked, RunError> {
    let Some(connection) = &prepared.connection else {
        return Err(Unreachable::NoLogin.into());
    };
    refuse(prepared, options, vars)?;
    // A rehearsal tells only the webhooks its command line names: a plan's are the team's,
    // told of real runs.
    let in_force: Vec<_> = if simulated(connection) {
        options.notify.clone()
    } else {
        prepared.plan.settings.notify.iter().chain(&options.notify).cloned().collect()
    };
    let hooks = crate::notify::hooks(&in_force, |name| vars.get(name).map(str::to_owned))
        .map_err(|bad| RunError::from(Refusal::Webhook { index: bad.index, why: bad.why }))?;
    let user_id = connection.user_id()?;
    if let Some(earlier) = &earlier {
        same_target(&earlier.newest, &connection.endpoint, &user_id)?;
    }
    if let Some(loaded) = &prepared.saved {
        super::saved::check(prepared, loaded, &user_id)?;
    }
    Ok(Checked { user_id, earlier, hooks })
}

fn refuse(prepared: &Prepared, options: &ApplyOptions, vars: &EnvVars) -> Result<(), RunError> {
    let tasks = &prepared.expansion.tasks;
    let unsupported: BTreeSet<&str> =
        tasks.iter().map(|t| t.payload.kind()).filter(|k| !is_supported(*k)).map(OperationKind::name).collect();
    if !unsupported.is_empty() {
        return Err(Refusal::Unsupported(unsupported.into_iter().map(str::to_owned).collect()).into());
    }
    let missing: BTreeSet<&str> =
        tasks.iter().flat_map(|t| t.payload.env_vars()).filter(|name| vars.get(name).is_none()).collect();
    if !missing.is_empty() {
        return Err(Refusal::MissingVariables(missing.into_iter().map(str::to_owned).collect()).into());
    }
    let destructive: Vec<String> =
        tasks.iter().filter(|t| t.payload.is_destructive()).map(|t| t.id.to_string()).collect();
    if !destructive.is_empty() && !options.allow_destructive {
        let count = destructive.len();
        let shown: Vec<String> = destructive.into_iter().take(5).collect();
        return Err(Refusal::Destructive { count, more: count - shown.len(), shown }.into());
    }
    Ok(())
}

/// A run about to start: the lock held, the journal open.
pub struct Run {
    prepared: Prepared,
    connection: super::Connection,
    options: ApplyOptions,
    context: RunContext,
    writer: JournalWriter,
    vars: BTreeMap<String, String>,
    lock: Arc<Lock>,
    _file_lock: Option<Lock>,
    leases: Leases,
    /// Told when the lock or a lease is found lost: the run then starts nothing more.
    fence: Fence,
    /// Renews the lock until the run's own renewal starts.
    keeper: Option<Keeper>,
    /// The webhooks told of the run.
    hooks: Vec<crate::notify::Hook>,
}

/// Opens the journal of the run `claim` locked for. A run that cannot be journalled does not
/// start.
pub fn begin(
    mut prepared: Prepared,
    checked: Checked,
    options: ApplyOptions,
    vars: &EnvVars,
    claim: Claim,
) -> Result<Run, RunError> {
    let Checked { user_id, earlier, hooks } = checked;
    let connection =
        prepared.connection.take().ok_or_else(|| RunError::bug("internal error: a checked plan has no connection"))?;
    let endpoint = Some(connection.endpoint.clone());
    let Claim { run_id, holder, lock, file_lock, fence, keeper } = claim;
    if let Some(earlier) = &earlier {
        connection.client.claim_known(earlier.known_workflows.iter().cloned());
    }
    let unknown = earlier.as_ref().and_then(|e| {
        let run = e.run_id();
        let since = e.unknown_since?;
        tracing::warn!(
            "run {run}'s journal records nothing past its header: each task first looks for a workflow it may have started"
        );
        Some(Prior::Attempted { since_unix: since, run: run.to_owned() })
    });
    let (newest, priors) = match earlier {
        Some(Earlier { newest, priors, .. }) => (Some(newest), priors),
        None => (None, BTreeMap::new()),
    };
    let header = Header {
        journal: 1,
        run_id: run_id.to_string(),
        resumed_from: newest.as_ref().map(|j| j.header.run_id.clone()),
        first_run: newest.as_ref().map_or_else(|| run_id.to_string(), |j| j.header.first_run.clone()),
        plan_path: prepared.plan_key.clone(),
        plan_sha256: prepared.source.sha256(),
        endpoint,
        user_id: Some(user_id),
        // On disk before this run acts: what the earlier runs started is never forgotten.
        carried: priors.clone(),
        settings: serde_json::to_value(settings_info(
            &prepared.settings,
            &prepared.resolved_by,
            simulated(&connection),
        ))
        .unwrap_or_default(),
        group: options.run_group.clone(),
        shard: options.shard.clone(),
    };
    let writer = JournalWriter::create(&options.state, &header)
        .map_err(|e| RunError::State(Box::new(StateError::Journal(e))))?;
    if let Some(j) = &newest
        && j.header.plan_sha256 != header.plan_sha256
    {
        tracing::warn!("the plan changed since run {}; tasks are matched by id", j.header.run_id);
    }
    let context = RunContext {
        run_id,
        first_run: header.first_run.clone(),
        resumed_from: header.resumed_from.clone(),
        priors: priors.into_iter().collect(),
        unknown,
    };
    let vars = prepared
        .expansion
        .tasks
        .iter()
        .flat_map(|t| t.payload.env_vars())
        .filter_map(|name| vars.get(name).map(|v| (name.to_owned(), v.to_owned())))
        .collect();
    let leases =
        Leases::new(&options.state, holder, &connection.client.config().base).watched_by(fence.clone(), Clock::boot());
    Ok(Run {
        prepared,
        connection,
        options,
        context,
        writer,
        vars,
        lock,
        _file_lock: file_lock,
        leases,
        fence,
        keeper,
        hooks,
    })
}

impl Run {
    /// This run's id.
    #[must_use]
    pub fn id(&self) -> String {
        self.context.run_id.to_string()
    }

    /// The run this one resumes, if any.
    #[must_use]
    pub fn resumed_from(&self) -> Option<&str> {
        self.context.resumed_from.as_deref()
    }

    /// Runs every task to its end, feeding events to the journal, the report and `display`;
    /// writes `result.json` beside the journal. Every path ends here with an outcome: a
    /// panic in a task or in the poller is an internal error of that task, not of the run.
    pub fn run_to_end(self, display: &mut dyn EventSink) -> RunOutcome {
        let Self {
            prepared,
            mut connection,
            options,
            context,
            mut writer,
            vars,
            lock,
            _file_lock,
            leases,
            fence,
            keeper,
            hooks,
        } = self;
        // The run renews its lock and leases itself from here.
        drop(keeper);
        let settings = &prepared.settings;
        let run_id = context.run_id;
        let (poller, driver) = Poller::new(connection.client.clone());
        let ops = operations(&connection, poller, context.first_run.clone(), vars, &options);
        let runner = Arc::new(OpRunner {
            ops,
            jobs: prepared.expansion.jobs.clone(),
            priors: Arc::new(context.priors),
            unknown: context.unknown,
            leases: leases.clone(),
            lock: Arc::clone(&lock),
            frozen: Arc::new(
                prepared.resolved.jobs.values().flatten().filter(|t| t.frozen).map(|t| t.site.clone()).collect(),
            ),
        });
        let groups = group_policies(&prepared.expansion.jobs);
        let (limits, controls) = bounds(settings, prepared.expansion.tasks.len(), &runner.ops, &options);
        let mut report = RunReport::new(
            PlanInfo {
                path: prepared.source.path.clone(),
                sha256: prepared.source.sha256(),
                name: prepared.plan.name.clone(),
            },
            settings_info(settings, &prepared.resolved_by, simulated(&connection)),
        );
        let graph = &prepared.graph;
        let drain = controls.drain.clone();
        let abort = controls.abort.clone();
        let halt = controls.halt.clone();
        let api = connection.client.clone();
        let watch = options.watch_signals;
        report.run_id = run_id.to_string();
        // The start is posted beside the run: its work never waits for a webhook.
        let started = crate::notify::start(&connection.runtime, &hooks, &report, prepared.expansion.tasks.len());
        let (summary, poller_panic) = connection.runtime.block_on(async {
            // The journal first: an event is on disk before anyone acts on it.
            let mut sinks = FanOut(vec![&mut writer as &mut dyn EventSink, &mut report, display]);
            let setup = Setup { groups, limits, controls, clock: &SystemClock, run_id: run_id.clone() };
            let exec = async {
                tokio::select! {
                    summary = tb_executor::execute(graph, runner, setup, &mut sinks) => summary,
                    never = watch_signals(drain, abort), if watch => match never {},
                    never = watch_api(&api, &halt) => match never {},
                    never = renew_state(&lock, &leases) => match never {},
                    never = watch_fence(&fence, &halt) => match never {},
                }
            };
            let ran = beside(exec, driver.drive()).await;
            // Every event written, and every lease given back, before the run's outcome is told.
            writer.settle().await;
            leases.settle().await;
            ran
        });
        let mut internal_errors = summary.internal_errors.clone();
        if let Some(message) = poller_panic {
            internal_errors.push(format!("the workflow poller panicked: {message}"));
        }
        if let Some(stats) = connection.simulator.take().map(|sim| connection.runtime.block_on(sim.stop())) {
            tracing::info!(requests = stats.requests_total, workflows = stats.workflows_total, "simulator counters");
            report.simulator = serde_json::to_value(&stats).ok();
        }
        let journal_errors = journal_errors(&summary, &writer);
        let fenced = fence.lost().map(|lost| lost.to_string());
        let mut outcome = RunOutcome {
            report,
            run_id: run_id.to_string(),
            resumed_from: context.resumed_from,
            journal: writer.location().to_owned(),
            interrupted: summary.interrupted,
            timed_out: summary.timed_out,
            internal_errors,
            journal_errors,
            result_json: None,
            // A fenced run's halt is the fence's, said in `fenced`, not an unreachable API.
            unreachable: summary.halted.filter(|_| fenced.is_none()),
            fenced,
        };
        if !hooks.is_empty() {
            // Told before `result.json` is written, so that the report says what became of it.
            let event = crate::notify::end_event(&outcome);
            let resume = options.command.as_ref().map(|c| format!("{c} --resume={run_id}"));
            outcome.report.notifications =
                crate::notify::end(&connection.runtime, &hooks, started, &outcome.report, event, resume);
        }
        drop(connection);
        outcome.result_json = keep_result(&writer, &outcome.run_id, &outcome.report, &mut outcome.journal_errors);
        outcome
    }
}

/// The run's bounds (from its settings) and the controls that stop it: its timeout and
/// slowness in the platform's time, which a simulator's faster clock shrinks alike.
fn bounds(settings: &Settings, total: usize, ops: &Ops, options: &ApplyOptions) -> (Limits, Controls) {
    let limits = Limits {
        concurrency: settings.concurrency,
        per_site: settings.per_site,
        fail_fast: settings.on_failure == OnFailure::FailFast,
        max_failures: settings.max_failures.map(|l| l.floor_of(total)),
    };
    let controls = Controls {
        drain: CancellationToken::new(),
        abort: CancellationToken::new(),
        // The plan's durations are the platform's: against a simulator whose clock runs
        // faster they shrink alike, so a rehearsal times out where the real run would.
        run_timeout: settings.timeout.map(|t| ops.platform_time(t)),
        abort_in_flight: options.abort_in_flight,
        halt: Halt::default(),
        // The plan's estimates are the platform's seconds, as its timeouts are.
        slow_scale: Some(ops.platform_time(std::time::Duration::from_secs(1)).as_secs_f64()),
    };
    (limits, controls)
}

/// The operations of a run against `connection`: at the simulator's pace and over its SSH
/// endpoint when it is one.
fn operations(
    connection: &super::Connection,
    poller: Poller,
    first_run: String,
    vars: BTreeMap<String, String>,
    options: &ApplyOptions,
) -> Ops {
    let scale = connection.simulator.as_ref().map_or(1.0, |sim| sim.knobs().time_scale);
    // The simulator's sites answer under their own names at its address (only where a name
    // resolves and which authority signs them differ from the platform).
    let sites = connection
        .simulator
        .as_ref()
        .map(|sim| tb_operations::web::SiteRoute { addr: sim.sites().addr, ca_pem: sim.sites().ca_pem.clone() });
    Ops::new(connection.client.clone(), poller, first_run, vars)
        .with_platform_scale(scale)
        .with_site_route(sites.as_ref())
        .with_downloads(options.downloads)
        .with_ssh_route(connection.simulator.as_ref().map(|sim| tb_operations::remote::SshRoute {
            config: sim.ssh().config.clone(),
            known_hosts: sim.ssh().known_hosts.clone(),
        }))
}

/// What the run's record lost: the event that could not be written (nothing started after
/// it), or the end of a journal written in the background.
fn journal_errors(summary: &tb_executor::RunSummary, writer: &JournalWriter) -> Vec<String> {
    let mut journal_errors = Vec::new();
    if let Some(error) = &summary.record_error {
        journal_errors.push(format!(
            "{error}: the run started nothing more after that; what the tasks then in flight did is not all \
             on record, and a resume looks for the workflows they may have started"
        ));
    }
    // A store written in the background may fail after the last event was handed over:
    // the journal is then cut short, which a resume must be told by the exit code too.
    if summary.record_error.is_none()
        && let Some(error) = writer.error()
    {
        journal_errors.push(format!("the journal at {} is cut short: {error}", writer.location()));
    }
    journal_errors
}

/// Writes `result.json` beside the journal; when that fails (a full disk), into the system's
/// temporary directory, and says where. `None` when neither could be written.
fn keep_result(writer: &JournalWriter, run_id: &str, report: &RunReport, errors: &mut Vec<String>) -> Option<String> {
    let json = tb_report::json::render(report);
    let e = match writer.write_result(&json) {
        Ok(location) => return Some(location),
        Err(e) => e,
    };
    let elsewhere = std::env::temp_dir().join(format!("terminus-batch-{run_id}-result.json"));
    // A new file only: the temporary directory is shared, and a name someone else made is
    // not written through.
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&elsewhere)
        .and_then(|mut file| std::io::Write::write_all(&mut file, json.as_bytes()));
    match written {
        Ok(()) => {
            errors.push(format!("{e}; the JSON report is in {} instead", elsewhere.display()));
            Some(elsewhere.display().to_string())
        }
        Err(e2) => {
            // A file cut short is no report: it goes, and the report goes to stderr.
            if e2.kind() != std::io::ErrorKind::AlreadyExists {
                let _gone = std::fs::remove_file(&elsewhere);
            }
            errors.push(format!("{e}; nor could {} be written ({e2})", elsewhere.display()));
            None
        }
    }
}

/// Runs `main` and `helper` together (the executor and the poller). A panic in the helper
/// ends its waiters' tasks (they see the poller stop), not the run: it comes back as a
/// message for the outcome's internal errors.
async fn beside<T>(main: impl Future<Output = T>, helper: impl Future<Output = ()>) -> (T, Option<String>) {
    let helper = std::panic::AssertUnwindSafe(helper).catch_unwind();
    let (value, helped) = tokio::join!(main, helper);
    (value, helped.err().map(|p| tb_core::panics::message(p.as_ref())))
}

pub(crate) fn group_policies(jobs: &[JobInfo]) -> Vec<GroupPolicy> {
    jobs.iter()
        .map(|job| GroupPolicy {
            fail_fast: job.on_failure == Some(OnFailure::FailFast),
            max_failures: job.max_failures.map(|l| l.floor_of(job.tasks.len())),
            wave_max_failures: job.rollout.as_ref().map_or(0, |r| {
                let per_wave = job.tasks.len().div_ceil(job.waves.max(1) as usize);
                r.max_failures.floor_of(per_wave)
            }),
        })
        .collect()
}

fn new_run_id() -> RunId {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    RunId::from_parts(&compact(i64::try_from(now).unwrap_or(i64::MAX)), fastrand::u16(..))
}

/// Whether `connection` is to the simulator, by its typed endpoint.
fn simulated(connection: &super::Connection) -> bool {
    matches!(connection.endpoint, tb_core::endpoint::Endpoint::Simulator { .. })
}

/// The settings in force, as reports show them.
#[must_use]
pub fn settings_info(settings: &Settings, resolved_by: &str, simulated: bool) -> SettingsInfo {
    SettingsInfo {
        concurrency: settings.concurrency,
        per_site: settings.per_site,
        max_requests: settings.max_requests,
        requests_per_second: settings.requests_per_second,
        burst: settings.burst,
        on_failure: match settings.on_failure {
            OnFailure::Continue => "continue".to_owned(),
            OnFailure::FailFast => "fail-fast".to_owned(),
        },
        max_failures: settings.max_failures.map_or_else(
            || "none".to_owned(),
            |l| match l {
                tb_plan::plan::model::Limit::Count(n) => n.to_string(),
                tb_plan::plan::model::Limit::Percent(p) => format!("{p}%"),
            },
        ),
        timeout: settings.timeout.map_or_else(|| "none".to_owned(), |t| humantime::format_duration(t).to_string()),
        resolved_by: resolved_by.to_owned(),
        simulated,
    }
}

/// This run's identity and what an earlier run left (`--resume`).
struct RunContext {
    run_id: RunId,
    /// The first run of a resume chain: workflow annotations carry it.
    first_run: String,
    resumed_from: Option<String>,
    priors: HashMap<String, Prior>,
    /// For a task the earlier runs left no record of, when the newest one's journal records
    /// nothing past its header: it may have started anything.
    unknown: Option<Prior>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_panicking_poller_is_an_internal_error_and_the_run_goes_on() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        // The waiter sees its poller stop, as a task waiting on a workflow would.
        let main = async move { rx.await.is_err() };
        let helper = async move {
            let _held = tx;
            panic!("a bug in the poller");
        };
        let (waiter_saw_the_stop, panicked) = beside(main, helper).await;
        assert!(waiter_saw_the_stop);
        assert_eq!(panicked.as_deref(), Some("a bug in the poller"));
        let (value, none) = beside(async { 7 }, async {}).await;
        assert_eq!((value, none), (7, None));
    }
}
