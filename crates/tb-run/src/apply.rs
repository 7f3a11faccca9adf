//! `apply` as a library: [`check`] a prepared plan (login, saved-plan and resume targets,
//! refusals), [`begin`] the run (lock and journal), then [`Run::execute`] it with the
//! executor, the operations and the event sinks wired together, into a [`RunOutcome`].
//!
//! The adapter `OpRunner` implementing the executor's `Runner` over the operations lives
//! here, the only place that sees both. Nothing here prints: progress goes to the sinks the
//! caller passes, and the outcome is data.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use tb_state::Store;

use futures::FutureExt as _;
use tokio_util::sync::CancellationToken;

use super::error::StateError;
use super::outcome::RunOutcome;
use super::{Prepared, Refusal, RunError, Unreachable};
use tb_core::cause::{Cause, ErrorClass};
use tb_core::endpoint::Endpoint;
use tb_core::events::{EventSink, FanOut, Status};
use tb_core::ids::RunId;
use tb_core::timefmt::compact;
use tb_executor::scheduler::{GroupPolicy, Limits};
use tb_executor::{Controls, Done, Halt, RetryPolicy, Runner, SystemClock, TaskContext, TaskError, TaskMeta};
use tb_operations::api::workflows::Poller;
use tb_operations::{OpContext, OpError, Ops, Target, is_supported};
use tb_plan::expand::{JobInfo, Task};
use tb_plan::plan::model::OnFailure;
use tb_plan::plan::ops::{Effect, OperationKind, OperationSpec};
use tb_report::RunReport;
use tb_report::summary::{PlanInfo, SettingsInfo};
use tb_settings::{EnvVars, Settings};
use tb_state::fence::{Clock, Fence};
use tb_state::journal::{self, Header, JournalWriter, Prior, RunJournal};
use tb_state::lease::{LeaseError, Leases};
use tb_state::lock::{Holder, Lock, LockError};

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
}

/// A plan checked for a run: who runs it, and what an earlier run left.
pub struct Checked {
    user_id: String,
    earlier: Option<Earlier>,
}

/// The run a resume continues, and what its whole chain left.
pub struct Earlier {
    newest: RunJournal,
    priors: BTreeMap<String, Prior>,
    /// The run `--resume=RUN` named, when a later run had resumed it since: the resume
    /// continues from that later run instead.
    named: Option<String>,
    /// The run's journal records nothing past its header (cut, or the process died right
    /// after writing it): what it started is unknown, so every task it may have started
    /// first looks for such a workflow (from this time on, in unix seconds).
    unknown_since: Option<f64>,
    /// Every workflow the chain recorded: never adopted as what a lost POST started.
    known_workflows: BTreeSet<String>,
}

impl Earlier {
    /// The run this resume continues.
    #[must_use]
    pub fn run_id(&self) -> &str {
        &self.newest.header.run_id
    }

    /// The run `--resume=RUN` named, when a later run resumed it since and the resume
    /// continues from that one.
    #[must_use]
    pub fn passed_over(&self) -> Option<&str> {
        self.named.as_deref()
    }
}

/// The earlier run `--resume` continues, found before any API call (resolution included):
/// without one there is nothing to resume. `plan_keys` are [`PlanInput::keys`](super::PlanInput::keys).
pub fn find_earlier(plan_keys: &[String], options: &ApplyOptions) -> Result<Option<Earlier>, RunError> {
    let Some(which) = &options.resume else { return Ok(None) };
    let named = match which {
        Resume::Newest | Resume::IfAny => None,
        Resume::Run(id) => Some(id.as_str()),
    };
    let whose = journal::Whose { plan_keys, shard: options.shard.as_deref(), group: options.run_group.as_deref() };
    let mut newest = match journal::find(&options.state, &whose, named) {
        Ok(found) => found,
        Err(journal::JournalError::NoRun { .. }) if matches!(which, Resume::IfAny) => return Ok(None),
        Err(e) => return Err(Refusal::Journal(e).into()),
    };
    // A run named by id that a later run resumed since: what that run did is not in the
    // named one's journal, so the resume starts from the newest run of its chain.
    let mut passed_over = None;
    if let Some(run) = named
        && let Some(later) = journal::newest_resume_of(&options.state, run)
    {
        passed_over = Some(run.to_owned());
        newest = later;
    }
    // Every run of the chain, not only the newest: a resume killed before it re-recorded
    // what it adopted still leaves the older runs' records.
    let older = journal::chain(&options.state, &newest);
    let priors = journal::chain_priors(older.iter().chain(std::iter::once(&newest)));
    let known_workflows = journal::chain_workflows(older.iter().chain(std::iter::once(&newest)));
    let unknown_since = journal::records_nothing(&newest).then(|| {
        let started = tb_core::timefmt::parse_compact(&newest.header.run_id).unwrap_or(0);
        #[expect(clippy::cast_precision_loss, reason = "unix seconds")]
        let started = started as f64;
        started
    });
    Ok(Some(Earlier { newest, priors, named: passed_over, unknown_since, known_workflows }))
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
    let user_id = connection.user_id()?;
    if let Some(earlier) = &earlier {
        same_target(&earlier.newest, &connection.endpoint, &user_id)?;
    }
    if let Some(loaded) = &prepared.saved {
        super::saved::check(prepared, loaded, &user_id)?;
    }
    Ok(Checked { user_id, earlier })
}

/// A resume continues what an earlier run did only against the same target, as the same
/// user: anything else would mark tasks done that were never done there.
fn same_target(journal: &RunJournal, endpoint: &Endpoint, user_id: &str) -> Result<(), RunError> {
    let run = &journal.header.run_id;
    match &journal.header.target {
        Some(then) if then.same_as(endpoint) => {}
        Some(then) => {
            let (then, now) = (then.to_string(), endpoint.to_string());
            return Err(Refusal::ResumeOtherTarget { run: run.clone(), then, now }.into());
        }
        None => {
            return Err(Refusal::ResumeTargetUnknown { run: run.clone() }.into());
        }
    }
    match &journal.header.user_id {
        Some(then) if then == user_id => Ok(()),
        Some(then) => {
            Err(Refusal::ResumeOtherUser { run: run.clone(), then: then.clone(), now: user_id.to_owned() }.into())
        }
        None => Err(Refusal::ResumeUserUnknown { run: run.clone() }.into()),
    }
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
}

/// The plan's lock, taken before any request to the platform (a run that could not keep
/// its state, or that another run of the plan holds off, asks the platform nothing), with
/// the run's id and the fence its lock and leases share. Renewed in the background until the
/// run starts, so a long confirmation prompt does not let it go stale.
pub struct Claim {
    run_id: RunId,
    holder: Holder,
    lock: Arc<Lock>,
    file_lock: Option<Lock>,
    fence: Fence,
    keeper: Option<Keeper>,
}

/// Takes the plan's lock for a new run of `input` (and, for a plan file with hard links, the
/// lock on the file itself); waits for it up to `--lock-timeout`.
pub fn claim(input: &super::PlanInput, options: &ApplyOptions, vars: &EnvVars) -> Result<Claim, RunError> {
    let run_id = new_run_id();
    // Each shard of a plan is locked on its own: a CI matrix runs them side by side.
    let locked = match &options.shard {
        Some(shard) => format!("{} (shard {shard})", input.key()),
        None => input.key(),
    };
    let mut holder = Holder::this_process(run_id.to_string(), locked).in_ci_job(ci_job(vars));
    if let Some(stale_after) = stale_after(vars)? {
        holder = holder.renewing_within(stale_after);
    }
    let fence = Fence::default();
    let lock = Arc::new(take_lock(options, &holder)?.watched_by(fence.clone()));
    // A plan with hard links elsewhere: the same file under another path, perhaps with a
    // state directory of its own, is the same plan.
    let real = input.path().and_then(|path| std::fs::canonicalize(path).ok());
    let file_lock = match real {
        Some(real) => Lock::acquire_file(&real, &holder)?,
        None => None,
    };
    let keeper = Some(Keeper::start(Arc::clone(&lock)));
    Ok(Claim { run_id, holder, lock, file_lock, fence, keeper })
}

/// Renews a lock on a thread of its own until dropped (the run's own renewal then takes over).
struct Keeper {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Keeper {
    fn start(lock: Arc<Lock>) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("lock-keeper".to_owned())
            .spawn(move || {
                let every = lock.holder().renew_every();
                loop {
                    std::thread::park_timeout(every);
                    if stopping.load(std::sync::atomic::Ordering::Acquire) {
                        return;
                    }
                    lock.renew();
                }
            })
            .ok();
        Self { stop, thread }
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _joined = thread.join();
        }
    }
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
    let Checked { user_id, earlier } = checked;
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
        target: endpoint,
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
    Ok(Run { prepared, connection, options, context, writer, vars, lock, _file_lock: file_lock, leases, fence, keeper })
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
    pub fn execute(self, display: &mut dyn EventSink) -> RunOutcome {
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
        } = self;
        // The run renews its lock and leases itself from here.
        drop(keeper);
        let settings = &prepared.settings;
        let run_id = context.run_id;
        let (poller, driver) = Poller::new(connection.client.clone());
        let platform =
            connection.simulator.as_ref().map(|sim| (Some(format!("http://{}", sim.addr())), sim.knobs().time_scale));
        let (health_base, scale) = platform.unwrap_or((None, 1.0));
        let ops = Ops::new(connection.client.clone(), poller, context.first_run.clone(), vars)
            .with_platform(health_base, scale)
            .with_downloads(options.downloads)
            .with_ssh_route(connection.simulator.as_ref().map(|sim| tb_operations::remote::SshRoute {
                config: sim.ssh().config.clone(),
                known_hosts: sim.ssh().known_hosts.clone(),
            }));
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
        let total = prepared.expansion.tasks.len();
        let groups = group_policies(&prepared.expansion.jobs);
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
            run_timeout: settings.timeout.map(|t| runner.ops.platform_time(t)),
            abort_in_flight: options.abort_in_flight,
            halt: Halt::default(),
            // The plan's estimates are the platform's seconds, as its timeouts are.
            slow_scale: Some(runner.ops.platform_time(std::time::Duration::from_secs(1)).as_secs_f64()),
        };
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
        let (summary, poller_panic) = connection.runtime.block_on(async {
            // The journal first: an event is on disk before anyone acts on it.
            let mut sinks = FanOut(vec![&mut writer as &mut dyn EventSink, &mut report, display]);
            let exec = async {
                tokio::select! {
                    summary = tb_executor::execute(graph, runner, groups, limits, controls, &SystemClock, run_id.clone(), &mut sinks) => summary,
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
        drop(connection);
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
        let result_json = keep_result(&writer, &run_id.to_string(), &report, &mut journal_errors);
        let fenced = fence.lost().map(|lost| lost.to_string());
        RunOutcome {
            report,
            run_id: run_id.to_string(),
            resumed_from: context.resumed_from,
            journal: writer.location().to_owned(),
            interrupted: summary.interrupted,
            timed_out: summary.timed_out,
            internal_errors,
            journal_errors,
            result_json,
            // A fenced run's halt is the fence's, said in `fenced`, not an unreachable API.
            unreachable: summary.halted.filter(|_| fenced.is_none()),
            fenced,
        }
    }
}

/// The CI job this process runs in, from its CI's variables: GitHub Actions' run URL, or
/// GitLab's job URL.
fn ci_job(vars: &EnvVars) -> Option<String> {
    use tb_core::env;
    let github = (vars.get(env::GITHUB_SERVER_URL), vars.get(env::GITHUB_REPOSITORY), vars.get(env::GITHUB_RUN_ID));
    match github {
        (Some(server), Some(repo), Some(run)) => Some(format!("{server}/{repo}/actions/runs/{run}")),
        _ => vars.get(env::CI_JOB_URL).map(str::to_owned),
    }
}

/// The stale period this run promises (`TERMINUS_BATCH_STALE_AFTER`), when one is set.
fn stale_after(vars: &EnvVars) -> Result<Option<std::time::Duration>, RunError> {
    let var = tb_core::env::STALE_AFTER;
    let Some(text) = vars.get(var) else { return Ok(None) };
    let least = tb_state::lock::MIN_STALE_AFTER;
    match humantime::parse_duration(text) {
        Ok(period) if period >= least => Ok(Some(period)),
        Ok(_) => Err(Refusal::StaleTooShort {
            var,
            value: text.to_owned(),
            least: humantime::format_duration(least).to_string(),
        }
        .into()),
        Err(source) => Err(Refusal::NotADuration { var, value: text.to_owned(), example: "2m", source }.into()),
    }
}

/// Takes the plan's lock; while another live run holds it, refuses at once, or waits up to
/// `--lock-timeout` for it.
fn take_lock(options: &ApplyOptions, holder: &Holder) -> Result<Lock, RunError> {
    let deadline = options.lock_timeout.map(|t| std::time::Instant::now() + t);
    let mut told = false;
    loop {
        match Lock::acquire(&options.state, holder) {
            Ok(lock) => return Ok(lock),
            Err(held @ LockError::Held { .. }) => {
                let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
                match left {
                    Some(left) if !left.is_zero() => {
                        if !told {
                            tracing::warn!("waiting for the lock: {held}");
                            told = true;
                        }
                        // This process has nothing else to do yet: a plain wait, outside any runtime.
                        std::thread::sleep(left.min(LOCK_POLL));
                    }
                    Some(_) => {
                        let waited = options.lock_timeout.map(humantime::format_duration).map(|t| t.to_string());
                        return Err(Refusal::LockWaited { held, waited: waited.unwrap_or_default() }.into());
                    }
                    None => return Err(held.into()),
                }
            }
            Err(io @ LockError::Store { .. }) => return Err(io.into()),
        }
    }
}

/// How often a run waiting for the lock looks again.
const LOCK_POLL: std::time::Duration = std::time::Duration::from_millis(500);

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

fn group_policies(jobs: &[JobInfo]) -> Vec<GroupPolicy> {
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
        target: resolved_by.to_owned(),
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

/// Halts the run once no request has had any answer from the API for its silence limit
/// (see [`tb_operations::api::ApiClient::silence_limit`]): each new task would only wait
/// out its own budget against it. The tasks in flight end as their requests do.
async fn watch_api(client: &tb_operations::api::ApiClient, halt: &Halt) -> std::convert::Infallible {
    let limit = client.silence_limit();
    loop {
        let next = match client.silent_for() {
            Some(silent) if silent >= limit => {
                halt.halt(format!(
                    "the API at {} has not answered for {}",
                    client.config().base,
                    humantime::format_duration(std::time::Duration::from_secs(silent.as_secs().max(1)))
                ));
                return std::future::pending().await;
            }
            Some(silent) => limit.saturating_sub(silent),
            None => limit,
        };
        // Looked at again by when the silence could reach the limit.
        tokio::time::sleep(next.max(std::time::Duration::from_millis(100))).await;
    }
}

/// First Ctrl-C (or SIGTERM) drains the run; the second stops waiting for tasks in flight.
async fn watch_signals(drain: CancellationToken, abort: CancellationToken) -> std::convert::Infallible {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    for token in [drain, abort] {
        #[cfg(unix)]
        {
            let terminate = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                () = terminate => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        token.cancel();
    }
    std::future::pending().await
}

/// The executor's view of operations.
struct OpRunner {
    ops: Ops,
    jobs: Vec<JobInfo>,
    /// What an earlier run left, by task id (`--resume`).
    priors: Arc<HashMap<String, Prior>>,
    /// What a task with no prior of its own may have done (see [`RunContext::unknown`]).
    unknown: Option<Prior>,
    /// The run's leases on the targets its tasks act on.
    leases: Leases,
    /// The plan's lock, proven held before each act.
    lock: Arc<Lock>,
    /// Sites the resolution found frozen.
    frozen: Arc<BTreeSet<String>>,
}

/// The environment whose code a code-moving operation changes.
fn code_env(task: &Task<OperationSpec>) -> Option<String> {
    match task.payload.kind() {
        OperationKind::MultidevMergeToDev => Some("dev".to_owned()),
        _ => task.env.clone(),
    }
}

impl Runner<Task<OperationSpec>> for OpRunner {
    fn meta(&self, task: &Task<OperationSpec>) -> TaskMeta {
        let kind = task.payload.kind();
        let job = self.jobs.get(task.job_index);
        let starts_workflow = matches!(kind.effect(), Effect::Workflow | Effect::CodeMoving);
        let exclusive = match (kind.effect(), &task.site, code_env(task)) {
            (Effect::CodeMoving, Some(site), Some(env)) => vec![format!("code:{site}.{env}")],
            _ => Vec::new(),
        };
        TaskMeta {
            header: task.header(),
            group: task.job_index,
            wave: task.wave,
            site_key: if starts_workflow { task.site.clone() } else { None },
            exclusive,
            estimate_secs: kind.estimate_secs(),
            // On the platform's clock, as the run's timeout (see `execute`).
            timeout: job.and_then(|j| j.timeout).map(|t| self.ops.platform_time(t)),
            retries: job.map_or(RetryPolicy { attempts: 1, backoff: std::time::Duration::ZERO }, |j| RetryPolicy {
                attempts: j.retries.attempts,
                backoff: self.ops.platform_time(j.retries.backoff),
            }),
        }
    }

    fn carried(&self, task: &Task<OperationSpec>) -> Option<Done> {
        match self.priors.get(task.id.as_str())? {
            // A journal older than digests cannot tell: its result stands.
            Prior::Done { status, message, run, digest, record } if digest.is_empty() || *digest == task.digest() => {
                Some(Done {
                    status: *status,
                    message: message.clone(),
                    data: None,
                    run: Some(run.clone()),
                    record: Some(record.clone()),
                })
            }
            _ => None,
        }
    }

    fn attempt(
        &self,
        task: &Task<OperationSpec>,
        ctx: TaskContext,
    ) -> impl Future<Output = Result<Done, TaskError>> + Send + 'static {
        let ops = self.ops.clone();
        let task = task.clone();
        let prior = self.priors.get(task.id.as_str()).cloned().or_else(|| self.unknown.clone());
        // terminus refuses these on a frozen site before any request; so does the run, and it
        // refuses remote commands there too, before ssh (see `FROZEN_REMOTE_MESSAGE`).
        let on_frozen = task.site.as_ref().is_some_and(|s| self.frozen.contains(s));
        let frozen = on_frozen
            .then(|| {
                if task.payload.kind().refused_when_frozen() {
                    Some(tb_plan::plan::ops::FROZEN_MESSAGE)
                } else if task.payload.remote().is_some() {
                    Some(tb_plan::plan::ops::FROZEN_REMOTE_MESSAGE)
                } else {
                    None
                }
            })
            .flatten();
        let lease = lease_target(&task).map(|key| (self.leases.clone(), key));
        let proof = Proof { lock: Arc::clone(&self.lock), lease: lease.clone() };
        async move {
            if let Some(reason) = frozen {
                let reason = reason.to_owned();
                return Err(TaskError {
                    message: reason.clone(),
                    cause: Cause::Failed { reason },
                    class: ErrorClass::Permanent,
                });
            }
            // Before the first request, the "nothing to do" check included: it then sees what
            // another run did to the target.
            let lease = match lease {
                Some((leases, key)) => Some(take_lease(&leases, &key, &ops, &ctx).await?),
                None => None,
            };
            let target = Target {
                site: task.site.clone().unwrap_or_default(),
                site_id: task.site_id.clone().unwrap_or_default(),
                env: task.env.clone(),
            };
            // Taken over from another run that stopped or slept: what it left running on the
            // target ends first, and what it started of this task's kind is adopted, not
            // started again (as a resume adopts what a crashed run started).
            let took_over = lease.as_ref().and_then(|l| l.took_over()).map(|h| (h.describe(), h.started_at));
            if let Some((whose, since)) = &took_over {
                ctx.progress(&format!("taken over from {whose}: waiting for what it left running"));
                #[expect(clippy::cast_precision_loss, reason = "unix seconds fit an f64 exactly")]
                let since = *since as f64;
                ops.settle_after(&target, since).await.map_err(|e| TaskError {
                    message: format!("not started: cannot see what {whose} left running: {}", e.message),
                    cause: e.cause,
                    class: e.class,
                })?;
            }
            // A result `carried` did not take: the task's definition changed since.
            let redone = match &prior {
                Some(Prior::Done { run, .. }) => Some(format!("run again, its options changed since run {run}: ")),
                _ => None,
            };
            // A remote command an earlier run started and did not see end may have run: it is
            // not run again unless its job says running it twice does no harm.
            if let (Some(Prior::Attempted { run, .. }), Some((tool, words, false))) = (&prior, task.payload.remote()) {
                return Err(TaskError {
                    message: format!(
                        "`{tool} {}` may have run in run {run} (no end of it was seen); not run again (its job \
                         may say `idempotent: true`)",
                        words.join(" ")
                    ),
                    cause: Cause::Failed {
                        reason: "the remote command may have run in an earlier run (no end of it was seen); not run \
                                 again"
                            .to_owned(),
                    },
                    class: ErrorClass::Permanent,
                });
            }
            #[expect(clippy::cast_precision_loss, reason = "unix seconds fit an f64 exactly")]
            let adopt_since = match &prior {
                Some(Prior::Attempted { since_unix, .. }) => Some(*since_unix),
                _ => took_over.as_ref().map(|(_, since)| *since as f64),
            };
            let ctx = Ctx { inner: ctx, adopt_since, proof };
            let result = match &prior {
                Some(Prior::InFlight { workflow_id, .. }) => ops.reattach(&target, workflow_id, &ctx).await,
                _ => ops.execute(&task.payload, &target, task.id.as_str(), &ctx).await,
            };
            let said = |message: String| match &redone {
                Some(why) => format!("{why}{message}"),
                None => message,
            };
            match result {
                Ok(out) => Ok(Done {
                    status: if out.changed { Status::Succeeded } else { Status::Unchanged },
                    message: said(out.message),
                    data: out.data,
                    run: None,
                    record: None,
                }),
                Err(e) => Err(TaskError { message: said(e.message), cause: e.cause, class: e.class }),
            }
        }
    }
}

/// What a task's lease is taken on: its environment (`<site id>.<env>`), or its site for a
/// site operation; `None` for what acts on nothing (reads, account operations).
fn lease_target(task: &Task<OperationSpec>) -> Option<String> {
    let kind = task.payload.kind();
    if kind.is_read_only() {
        return None;
    }
    // The site's id where known: two plans may spell a site alike and mean it alike, but an
    // id never changes hands.
    let site = task.site_id.clone().filter(|id| !id.is_empty()).or_else(|| task.site.clone())?;
    Some(match &task.env {
        Some(env) => format!("{site}.{env}"),
        None => site,
    })
}

/// Takes the task's lease on `key`, waiting while another run holds it (saying which, once
/// per holder). The wait ends with the task (its timeout, the run's abort).
async fn take_lease(
    leases: &Leases,
    key: &str,
    ops: &Ops,
    ctx: &TaskContext,
) -> Result<tb_state::lease::LeaseGuard, TaskError> {
    // Another run's task takes platform time: look again at the platform's pace.
    let every = ops.platform_time(LEASE_POLL).max(std::time::Duration::from_millis(20));
    let mut told: Option<String> = None;
    loop {
        // A store request blocks (an object store's is a round trip): off the runtime's
        // workers, so the tasks beside this one go on meanwhile.
        let (taking, target) = (leases.clone(), key.to_owned());
        let taken = tokio::task::spawn_blocking(move || taking.try_take(&target)).await.map_err(|e| TaskError {
            message: format!("internal error: taking a lease: {e}"),
            cause: Cause::Internal,
            class: ErrorClass::Internal,
        })?;
        match taken {
            Ok(guard) => return Ok(guard),
            Err(LeaseError::Held { holder, .. }) => {
                let who = holder.describe();
                if told.as_deref() != Some(who.as_str()) {
                    ctx.lease_waiting(&who);
                    told = Some(who);
                }
                tokio::time::sleep(every).await;
            }
            Err(e @ LeaseError::Store { .. }) => {
                return Err(TaskError {
                    message: format!("not started: {}", tb_core::chain::one_line(&e)),
                    cause: Cause::Halted { reason: "its environment's lease could not be taken".to_owned() },
                    class: ErrorClass::Permanent,
                });
            }
        }
    }
}

/// How often a task waiting for a lease looks again (on the platform's clock).
const LEASE_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Halts the run once its fence is told the lock or a lease was lost.
async fn watch_fence(fence: &Fence, halt: &Halt) -> std::convert::Infallible {
    let lost = fence.wait().await;
    // What was lost and to whom is the run's to say (`RunOutcome::fenced`); the tasks not
    // started share one cause.
    halt.halt(fenced_reason(&lost).to_owned());
    std::future::pending().await
}

/// Why a fenced run started nothing more, in words that name no target.
fn fenced_reason(lost: &tb_state::fence::Lost) -> &'static str {
    match lost {
        tb_state::fence::Lost::TakenOver { .. } => "another run took over this run's lock or a lease",
        tb_state::fence::Lost::Unproven { .. } => "this run could not prove it still held its lock or a lease",
    }
}

/// What a task acts under: the plan's lock and its target's lease, proven held before each
/// act (see `state::fence`).
#[derive(Clone)]
struct Proof {
    lock: Arc<Lock>,
    lease: Option<(Leases, String)>,
}

impl Proof {
    /// Proves the lock and the lease held; a store request only when a confirmation is old.
    fn prove(&self) -> Result<(), tb_state::fence::Lost> {
        self.lock.prove()?;
        match &self.lease {
            Some((leases, target)) => leases.prove(target),
            None => Ok(()),
        }
    }
}

/// Renews the run's lock and leases while it lives, so that a run on another machine
/// sharing the store does not take them for abandoned.
async fn renew_state(lock: &Lock, leases: &Leases) -> std::convert::Infallible {
    loop {
        tokio::time::sleep(lock.holder().renew_every()).await;
        // Store requests block: off the runtime's workers.
        tokio::task::block_in_place(|| {
            lock.renew();
            leases.renew();
        });
    }
}

/// The operations' context, forwarded to the executor's.
struct Ctx {
    inner: TaskContext,
    adopt_since: Option<f64>,
    proof: Proof,
}

impl OpContext for Ctx {
    /// On record first (the journal before the act), then proven held: the proof is the last
    /// thing before the request, so that it is as fresh as it can be when the request goes.
    fn attempt_starting(&self) -> impl Future<Output = Result<(), OpError>> + Send {
        let recorded = self.inner.attempt_starting();
        let proof = self.proof.clone();
        async move {
            recorded.await.map_err(|e| OpError::permanent(e.to_string()))?;
            // A proof may renew (a store request, which blocks): off the runtime's workers.
            let proven = tokio::task::spawn_blocking(move || proof.prove())
                .await
                .map_err(|e| OpError::permanent(format!("internal error: proving the lease held: {e}")))?;
            proven.map_err(|lost| OpError {
                message: format!("not started: {lost}"),
                cause: Cause::Halted { reason: fenced_reason(&lost).to_owned() },
                class: ErrorClass::Permanent,
            })
        }
    }

    fn workflow_started(&self, id: &str) {
        self.inner.workflow_started(id);
    }

    fn workflow_ended(&self, id: &str, succeeded: bool) {
        self.inner.workflow_ended(id, succeeded);
    }

    fn attempt_ended(&self, ran: bool) {
        self.inner.attempt_ended(ran);
    }

    fn progress(&self, message: &str) {
        self.inner.progress(message);
    }

    fn output(&self, output: &serde_json::Value) {
        self.inner.output(output);
    }

    fn transfer(&self, file: &str, done: u64, total: u64) {
        self.inner.transfer(file, done, total);
    }

    fn adopt_since(&self) -> Option<f64> {
        // Only the first attempt of a resumed task looks for what the crashed run started.
        self.adopt_since.filter(|_| self.inner.attempt() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_names_its_ci_job() {
        let github = EnvVars::from_pairs([
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "acme/ops"),
            ("GITHUB_RUN_ID", "42"),
        ]);
        assert_eq!(ci_job(&github).as_deref(), Some("https://github.com/acme/ops/actions/runs/42"));
        let gitlab = EnvVars::from_pairs([("CI_JOB_URL", "https://gitlab.example/acme/ops/-/jobs/7")]);
        assert_eq!(ci_job(&gitlab).as_deref(), Some("https://gitlab.example/acme/ops/-/jobs/7"));
        assert_eq!(ci_job(&EnvVars::from_pairs(Vec::<(String, String)>::new())), None);
        let holder = Holder::this_process("r".into(), "ops/plan.yml".into()).in_ci_job(ci_job(&gitlab));
        assert!(holder.describe().contains("CI job https://gitlab.example/acme/ops/-/jobs/7"), "{}", holder.describe());
    }

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
