//! `apply PLAN`: resolve, expand, build the graph, confirm, then run it with the executor,
//! the operations and the reporters wired together, and write the reports on every path.
//!
//! The adapter [`OpRunner`] implementing the executor's `Runner` over the operations lives
//! here, the only place that sees both.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, IsTerminal, Write};
use std::path::Path;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{PlanInput, Prepared, prepare_with};
use crate::cli::diagnostics::write_error;
use crate::cli::exit::ExitStatus;
use crate::cli::{ApplyArgs, Io, RunArgs, TargetArgs};
use crate::events::{EventSink, FanOut, Status};
use crate::executor::scheduler::{GroupPolicy, Limits};
use crate::executor::{Controls, Done, ErrorClass, RetryPolicy, Runner, SystemClock, TaskContext, TaskError, TaskMeta};
use crate::expand::{JobInfo, Task};
use crate::ids::RunId;
use crate::journal::lock::{Holder, Lock};
use crate::journal::{self, Header, JournalWriter, Prior};
use crate::operations::api::workflows::Poller;
use crate::operations::{OpContext, Ops, Target, is_supported};
use crate::plan::model::OnFailure;
use crate::plan::ops::{Effect, OperationKind, OperationSpec};
use crate::report::live::{Live, Mode};
use crate::report::summary::{PlanInfo, SettingsInfo};
use crate::report::{Format, RunReport, render};
use crate::settings::{Layer, Settings};
use crate::timefmt::compact;

pub(super) fn run(args: &ApplyArgs, io: &mut Io<'_>) -> io::Result<ExitStatus> {
    match read_saved(&args.plan) {
        Ok(Some((source, resolved, preconditions))) => {
            execute_plan(PlanInput::Saved { source, resolved, preconditions }, &args.targets, &args.run, io)
        }
        Ok(None) => execute_plan(PlanInput::File(&args.plan), &args.targets, &args.run, io),
        Err(message) => {
            write_error(io.stderr, &message)?;
            Ok(ExitStatus::Invalid)
        }
    }
}

#[derive(serde::Deserialize)]
struct SavedSource {
    path: String,
    sha256: String,
}

#[derive(serde::Deserialize)]
struct SavedTask {
    id: String,
    #[serde(default)]
    refresh: Option<super::plan::Refresh>,
}

/// The parts of a saved plan `apply` reads.
#[derive(serde::Deserialize)]
pub struct SavedPlan {
    kind: String,
    source: SavedSource,
    resolved: crate::resolve::Resolved,
    #[serde(default)]
    tasks: Vec<SavedTask>,
}

/// Parses a saved plan's text; `Ok(None)` when it is not one (a YAML plan).
pub fn parse_saved(text: &str) -> Result<Option<SavedPlan>, String> {
    if !text.trim_start().starts_with('{') || !text.contains(super::plan::SAVED_PLAN_KIND) {
        return Ok(None);
    }
    let saved: SavedPlan = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok((saved.kind == super::plan::SAVED_PLAN_KIND).then_some(saved))
}

/// A saved plan (`plan -o`), recognised by content: its source plan, checked against the
/// recorded sha256, and its resolved targets. `None` when the file is a plan, not a saved one.
type Saved = (crate::plan::PlanSource, crate::resolve::Resolved, Vec<(String, super::plan::Refresh)>);

fn read_saved(path: &Path) -> Result<Option<Saved>, String> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(None) };
    let shown = path.display();
    let Some(saved) = parse_saved(&text).map_err(|e| format!("{shown} is not a readable saved plan: {e}"))? else {
        return Ok(None);
    };
    let plan_text = std::fs::read_to_string(&saved.source.path)
        .map_err(|e| format!("{shown} was saved from {}, which cannot be read now: {e}", saved.source.path))?;
    let source = crate::plan::PlanSource::new(saved.source.path.clone(), plan_text);
    let now = source.sha256();
    if now != saved.source.sha256 {
        return Err(format!(
            "{} changed since {shown} was saved (sha256 {} then, {} now); run `plan -o` again and review it",
            saved.source.path,
            &saved.source.sha256.get(..12).unwrap_or_default(),
            &now[..12]
        ));
    }
    let preconditions = saved.tasks.into_iter().filter_map(|t| t.refresh.map(|r| (t.id, r))).collect();
    Ok(Some((source, saved.resolved, preconditions)))
}

/// Applies a plan from a file or built in memory (`run`).
pub(super) fn execute_plan(
    mut input: PlanInput<'_>,
    targets: &TargetArgs,
    run_args: &RunArgs,
    io: &mut Io<'_>,
) -> io::Result<ExitStatus> {
    let args = Args { targets, run: run_args };
    let preconditions = match &mut input {
        PlanInput::Saved { preconditions, .. } => std::mem::take(preconditions),
        _ => Vec::new(),
    };
    let reports = match parse_reports(&args.run.reports) {
        Ok(r) => r,
        Err(message) => {
            write_error(io.stderr, &message)?;
            return Ok(ExitStatus::Invalid);
        }
    };
    let flags = flag_layer(args.run);
    let mut prepared = match prepare_with(input, args.targets, flags, io)? {
        Ok(p) => p,
        Err(status) => return Ok(status),
    };
    let Some(connection) = prepared.connection.take() else {
        write_error(
            io.stderr,
            "apply needs the Pantheon API and no login is at hand: set TERMINUS_MACHINE_TOKEN or run \
             `terminus-batch auth login` (or pass --simulate)",
        )?;
        return Ok(ExitStatus::Unreachable);
    };
    if let Some(status) = drifted(&prepared, &connection, &preconditions, io)? {
        connection.close();
        return Ok(status);
    }
    if let Some(status) = refuse(&prepared, args.run, io)? {
        connection.close();
        return Ok(status);
    }
    if !args.targets.simulate && !args.run.yes {
        if let Some(status) = confirm(&prepared, io)? {
            connection.close();
            return Ok(status);
        }
    }
    let state_dir = &args.run.state_dir;
    let run_id = new_run_id();
    let earlier = match &args.run.resume {
        Some(named) => {
            match journal::find(state_dir, &prepared.source.path, (!named.is_empty()).then_some(named.as_str())) {
                Ok(j) => Some(j),
                Err(e) => {
                    write_error(io.stderr, &e.to_string())?;
                    connection.close();
                    return Ok(ExitStatus::Invalid);
                }
            }
        }
        None => None,
    };
    let holder = Holder {
        pid: std::process::id(),
        started_at: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        run_id: run_id.to_string(),
        plan_path: prepared.source.path.clone(),
    };
    let _lock = match Lock::acquire(state_dir, &holder) {
        Ok(lock) => lock,
        Err(e) => {
            write_error(io.stderr, &e.to_string())?;
            connection.close();
            return Ok(ExitStatus::Invalid);
        }
    };
    let header = Header {
        journal: 1,
        run_id: run_id.to_string(),
        resumed_from: earlier.as_ref().map(|j| j.header.run_id.clone()),
        first_run: earlier.as_ref().map_or_else(|| run_id.to_string(), |j| j.header.first_run.clone()),
        plan_path: prepared.source.path.clone(),
        plan_sha256: prepared.source.sha256(),
        settings: serde_json::to_value(settings_info(&prepared.settings, &prepared.resolved_by)).unwrap_or_default(),
    };
    let mut writer = match JournalWriter::create(state_dir, &header) {
        Ok(w) => w,
        Err(e) => {
            write_error(io.stderr, &format!("{e}; a run that cannot be journalled does not start (see --state-dir)"))?;
            connection.close();
            return Ok(ExitStatus::Invalid);
        }
    };
    if let Some(j) = &earlier {
        if j.header.plan_sha256 != header.plan_sha256 {
            tracing::warn!("the plan changed since run {}; tasks are matched by id", j.header.run_id);
        }
        if !io.quiet {
            writeln!(io.stderr, "resuming run {} as run {run_id}", j.header.run_id)?;
        }
    }
    let priors = earlier.as_ref().map(journal::prior_states).unwrap_or_default();
    let run = RunContext { run_id, first_run: header.first_run.clone(), priors };
    let mut report = execute(&prepared, &connection, args.run, run, &mut writer, io);
    if let Some(stats) = connection.close() {
        tracing::info!(requests = stats.requests_total, workflows = stats.workflows_total, "simulator counters");
        report.simulator = serde_json::to_value(&stats).ok();
    }
    if let Err(e) = writer.write_result(&crate::report::json::render(&report)) {
        write_error(io.stderr, &format!("cannot write {}/result.json: {e}", writer.dir().display()))?;
    }
    if let Some(e) = writer.error() {
        write_error(io.stderr, &format!("the journal in {} is incomplete: {e}", writer.dir().display()))?;
    }
    write_reports(&report, &reports, io)?;
    if !io.quiet {
        io.stdout.write_all(crate::report::table::render(&report).as_bytes())?;
    }
    if let Some(path) = io.vars.get("GITHUB_STEP_SUMMARY") {
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(crate::report::markdown::render(&report).as_bytes()));
        if let Err(e) = appended {
            write_error(io.stderr, &format!("cannot append to $GITHUB_STEP_SUMMARY ({path}): {e}"))?;
        }
    }
    Ok(if report.interrupted {
        ExitStatus::Interrupted
    } else if report.tasks.iter().any(|t| t.message.starts_with("internal error")) {
        ExitStatus::Internal
    } else if report.all_ok() {
        ExitStatus::Success
    } else {
        ExitStatus::TasksFailed
    })
}

/// The flags `apply` and `run` share.
struct Args<'a> {
    targets: &'a TargetArgs,
    run: &'a RunArgs,
}

fn flag_layer(run: &RunArgs) -> Layer {
    let on_failure = if run.fail_fast {
        Some(OnFailure::FailFast)
    } else if run.continue_on_error {
        Some(OnFailure::Continue)
    } else {
        None
    };
    Layer { concurrency: run.concurrency, on_failure, ..Layer::default() }
}

/// `FORMAT=PATH` pairs.
fn parse_reports(specs: &[String]) -> Result<Vec<(Format, String)>, String> {
    specs
        .iter()
        .map(|spec| {
            let (format, path) = spec
                .split_once('=')
                .ok_or_else(|| format!("--report {spec}: write FORMAT=PATH, e.g. json=report.json"))?;
            let format = format.parse::<Format>().map_err(|e| format!("--report {spec}: {e}"))?;
            if path.is_empty() {
                return Err(format!("--report {spec}: the path is empty (use - for stdout)"));
            }
            Ok((format, path.to_owned()))
        })
        .collect()
}

/// A saved plan made with `--refresh` recorded what each task would do; if that changed
/// since, the review no longer holds: refuse (exit 2), naming each change.
fn drifted(
    prepared: &Prepared,
    connection: &super::Connection,
    preconditions: &[(String, super::plan::Refresh)],
    io: &mut Io<'_>,
) -> io::Result<Option<ExitStatus>> {
    if preconditions.is_empty() {
        return Ok(None);
    }
    let now = super::plan::refresh_previews(prepared, connection);
    let mut changes = Vec::new();
    for (id, then) in preconditions {
        let index = prepared.expansion.tasks.iter().position(|t| t.id.as_str() == id);
        match index.map(|i| &now[i]) {
            Some(current) if current == then => {}
            Some(current) => changes.push(format!("{id}: was \"{}\", now \"{}\"", then.label(), current.label())),
            None => changes.push(format!("{id}: no longer in the plan")),
        }
    }
    if changes.is_empty() {
        return Ok(None);
    }
    write_error(
        io.stderr,
        &format!(
            "the platform changed since the plan was saved; run `plan --refresh -o` again and review it:\n  {}",
            changes.join("\n  ")
        ),
    )?;
    Ok(Some(ExitStatus::Invalid))
}

/// Refusals before any API call that changes anything (exit 2).
fn refuse(prepared: &Prepared, run: &RunArgs, io: &mut Io<'_>) -> io::Result<Option<ExitStatus>> {
    let mut unsupported: Vec<&str> = prepared
        .expansion
        .tasks
        .iter()
        .map(|t| t.payload.kind())
        .filter(|k| !is_supported(*k))
        .map(OperationKind::name)
        .collect();
    unsupported.sort_unstable();
    unsupported.dedup();
    if !unsupported.is_empty() {
        write_error(
            io.stderr,
            &format!("this build cannot execute {}; `plan` shows what the run would do", unsupported.join(", ")),
        )?;
        return Ok(Some(ExitStatus::Invalid));
    }
    let mut missing: Vec<String> = prepared
        .expansion
        .tasks
        .iter()
        .flat_map(|t| env_names(&t.payload))
        .filter(|name| io.vars.get(name).is_none())
        .collect();
    missing.sort();
    missing.dedup();
    if !missing.is_empty() {
        write_error(
            io.stderr,
            &format!("the plan reads environment variable(s) that are not set: {}", missing.join(", ")),
        )?;
        return Ok(Some(ExitStatus::Invalid));
    }
    let destructive: Vec<String> =
        prepared.expansion.tasks.iter().filter(|t| t.payload.is_destructive()).map(|t| t.id.to_string()).collect();
    if !destructive.is_empty() && !run.allow_destructive {
        let shown: Vec<&str> = destructive.iter().take(5).map(String::as_str).collect();
        let more = if destructive.len() > 5 { format!(" and {} more", destructive.len() - 5) } else { String::new() };
        write_error(
            io.stderr,
            &format!(
                "{} destructive task(s) ({}{more}); pass --allow-destructive to run them",
                destructive.len(),
                shown.join(", ")
            ),
        )?;
        return Ok(Some(ExitStatus::Invalid));
    }
    Ok(None)
}

/// Asks on a terminal; refuses without one (exit 2), as `terraform apply` does.
fn confirm(prepared: &Prepared, io: &mut Io<'_>) -> io::Result<Option<ExitStatus>> {
    let stdin = io::stdin();
    if !stdin.is_terminal() {
        write_error(io.stderr, "pass --yes to apply without a terminal")?;
        return Ok(Some(ExitStatus::Invalid));
    }
    let sites: std::collections::BTreeSet<&str> =
        prepared.expansion.tasks.iter().filter_map(|t| t.site.as_deref()).collect();
    write!(
        io.stderr,
        "Apply {} tasks on {} sites ({})? [y/N] ",
        prepared.expansion.tasks.len(),
        sites.len(),
        prepared.resolved_by
    )?;
    io.stderr.flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(None)
    } else {
        writeln!(io.stderr, "not applied")?;
        Ok(Some(ExitStatus::Invalid))
    }
}

fn new_run_id() -> RunId {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    RunId::from_parts(&compact(i64::try_from(now).unwrap_or(i64::MAX)), fastrand::u16(..))
}

fn settings_info(settings: &Settings, resolved_by: &str) -> SettingsInfo {
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
                crate::plan::model::Limit::Count(n) => n.to_string(),
                crate::plan::model::Limit::Percent(p) => format!("{p}%"),
            },
        ),
        timeout: settings.timeout.map_or_else(|| "none".to_owned(), |t| humantime::format_duration(t).to_string()),
        target: resolved_by.to_owned(),
    }
}

/// This run's identity and what an earlier run left (`--resume`).
struct RunContext {
    run_id: RunId,
    /// The first run of a resume chain: workflow annotations carry it.
    first_run: String,
    priors: HashMap<String, Prior>,
}

/// Runs the graph; returns the report (also on Ctrl-C).
fn execute(
    prepared: &Prepared,
    connection: &super::Connection,
    run: &RunArgs,
    context: RunContext,
    journal: &mut JournalWriter,
    io: &mut Io<'_>,
) -> RunReport {
    let settings = &prepared.settings;
    let RunContext { run_id, first_run, priors } = context;
    let (poller, driver) = Poller::new(connection.client.clone());
    let vars: BTreeMap<String, String> = prepared
        .expansion
        .tasks
        .iter()
        .flat_map(|t| env_names(&t.payload))
        .filter_map(|name| io.vars.get(&name).map(|v| (name, v.to_owned())))
        .collect();
    let platform = connection.simulator.as_ref().map(|sim| {
        (Some(format!("http://{}", sim.addr())), std::time::Duration::from_secs(5).mul_f64(sim.knobs().time_scale))
    });
    let (health_base, pause) = platform.unwrap_or((None, std::time::Duration::from_secs(5)));
    let ops = Ops::new(connection.client.clone(), poller, first_run, vars)
        .with_platform(health_base, pause)
        .with_downloads(run.downloads);
    let runner = Arc::new(OpRunner { ops, jobs: prepared.expansion.jobs.clone(), priors: Arc::new(priors) });
    let total = prepared.expansion.tasks.len();
    let groups: Vec<GroupPolicy> = prepared
        .expansion
        .jobs
        .iter()
        .map(|job| GroupPolicy {
            fail_fast: job.on_failure == Some(OnFailure::FailFast),
            max_failures: job.max_failures.map(|l| l.floor_of(job.tasks.len())),
            wave_max_failures: job.rollout.as_ref().map_or(0, |r| {
                let per_wave = job.tasks.len().div_ceil(job.waves.max(1) as usize);
                r.max_failures.floor_of(per_wave)
            }),
        })
        .collect();
    let limits = Limits {
        concurrency: settings.concurrency,
        per_site: settings.per_site,
        fail_fast: settings.on_failure == OnFailure::FailFast,
        max_failures: settings.max_failures.map(|l| l.floor_of(total)),
    };
    let controls = Controls {
        drain: CancellationToken::new(),
        abort: CancellationToken::new(),
        run_timeout: settings.timeout,
        abort_in_flight: run.abort_in_flight,
    };
    let mut report = RunReport::new(
        PlanInfo {
            path: prepared.source.path.clone(),
            sha256: prepared.source.sha256(),
            name: prepared.plan.name.clone(),
        },
        settings_info(settings, &prepared.resolved_by),
    );
    let mode = if io.quiet {
        Mode::Quiet
    } else if io.style.color && io::stderr().is_terminal() {
        Mode::Bars
    } else {
        Mode::Lines
    };
    let mut live = Live::new(mode, io.stderr);
    let graph = &prepared.graph;
    let drain = controls.drain.clone();
    let abort = controls.abort.clone();
    connection.runtime.block_on(async {
        // The journal first: an event is on disk before anyone acts on it.
        let mut sinks = FanOut(vec![journal as &mut dyn EventSink, &mut report, &mut live]);
        let exec = async {
            tokio::select! {
                summary = crate::executor::run(graph, runner, groups, limits, controls, &SystemClock, run_id, &mut sinks) => summary,
                never = watch_signals(drain, abort) => match never {},
            }
        };
        let (_summary, ()) = tokio::join!(exec, driver.run());
    });
    report
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

/// Environment variables an operation reads: `${{ env.NAME }}` in its texts and a lock
/// password's variable.
fn env_names(op: &OperationSpec) -> Vec<String> {
    fn walk(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, v) in map {
                    match (key.as_str(), v) {
                        ("env" | "password_env", serde_json::Value::String(name)) if !name.is_empty() => {
                            out.push(name.clone());
                        }
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut names = Vec::new();
    if let Ok(value) = serde_json::to_value(op) {
        walk(&value, &mut names);
    }
    names
}

fn write_reports(report: &RunReport, reports: &[(Format, String)], io: &mut Io<'_>) -> io::Result<()> {
    for (format, path) in reports {
        let text = render(report, *format);
        if path == "-" {
            io.stdout.write_all(text.as_bytes())?;
            continue;
        }
        if let Err(e) = write_atomically(Path::new(path), text.as_bytes()) {
            write_error(io.stderr, &format!("cannot write the {format} report to {path}: {e}"))?;
        }
    }
    Ok(())
}

/// Writes to a temporary file beside `path`, then renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("{}.tmp", path.extension().and_then(|e| e.to_str()).unwrap_or("report")));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// The executor's view of operations.
struct OpRunner {
    ops: Ops,
    jobs: Vec<JobInfo>,
    /// What an earlier run left, by task id (`--resume`).
    priors: Arc<HashMap<String, Prior>>,
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
            timeout: job.and_then(|j| j.timeout),
            retries: job.map_or(RetryPolicy { attempts: 1, backoff: std::time::Duration::ZERO }, |j| RetryPolicy {
                attempts: j.retries.attempts,
                backoff: j.retries.backoff,
            }),
        }
    }

    fn run(
        &self,
        task: &Task<OperationSpec>,
        ctx: TaskContext,
    ) -> impl Future<Output = Result<Done, TaskError>> + Send + 'static {
        let ops = self.ops.clone();
        let task = task.clone();
        let prior = self.priors.get(task.id.as_str()).cloned();
        async move {
            let target = Target {
                site: task.site.clone().unwrap_or_default(),
                site_id: task.site_id.clone().unwrap_or_default(),
                env: task.env.clone(),
            };
            let adopt_since = match &prior {
                Some(Prior::Done { status, message, run }) => {
                    return Ok(Done { status: *status, message: message.clone(), data: None, run: Some(run.clone()) });
                }
                Some(Prior::Attempted { since_unix, .. }) => Some(*since_unix),
                _ => None,
            };
            let ctx = Ctx { inner: ctx, adopt_since };
            let result = match &prior {
                Some(Prior::InFlight { workflow_id, .. }) => ops.reattach(&target, workflow_id, &ctx).await,
                _ => ops.execute(&task.payload, &target, task.id.as_str(), &ctx).await,
            };
            match result {
                Ok(out) => Ok(Done {
                    status: if out.changed { Status::Succeeded } else { Status::Unchanged },
                    message: out.message,
                    data: out.data,
                    run: None,
                }),
                Err(e) => Err(TaskError {
                    message: e.message,
                    class: if e.transient { ErrorClass::Transient } else { ErrorClass::Permanent },
                }),
            }
        }
    }
}

/// The operations' context, forwarded to the executor's.
struct Ctx {
    inner: TaskContext,
    adopt_since: Option<f64>,
}

impl OpContext for Ctx {
    fn attempt_starting(&self) -> impl Future<Output = ()> + Send {
        self.inner.attempt_starting()
    }

    fn workflow_started(&self, id: &str) {
        self.inner.workflow_started(id);
    }

    fn progress(&self, message: &str) {
        self.inner.progress(message);
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
    fn report_specs_parse_or_name_the_problem() {
        let ok = parse_reports(&["json=out.json".into(), "html=-".into()]).unwrap();
        assert_eq!(ok, [(Format::Json, "out.json".to_owned()), (Format::Html, "-".to_owned())]);
        assert!(parse_reports(&["xml=a".into()]).unwrap_err().contains("unknown report format `xml`"));
        assert!(parse_reports(&["json".into()]).unwrap_err().contains("FORMAT=PATH"));
    }
}
