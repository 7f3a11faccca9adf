//! `apply PLAN|SAVED`: maps the flags to [`tb_run::apply`], asks for confirmation, shows
//! progress while the run goes, then renders its outcome: report files, the final table
//! (on stdout, or on stderr when a report takes stdout), and the exit status from the
//! outcome's verdict.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::Path;

use super::report_files::{reports_to_write, write_reports};
use crate::cli::diagnostics::write_error;
use crate::cli::error::{CommandError, CommandResult};
use crate::cli::exit::ExitStatus;
use crate::cli::{ApplyArgs, ExecArgs, Io, TargetingArgs};
use crate::cli::{DataFormat, MessageFormat};
use tb_core::events::Status;
use tb_core::events::{Event, EventSink};
use tb_plan::plan::model::OnFailure;
use tb_report::live::{Live, LiveOptions, Mode, StatusLevel};
use tb_report::paint::Paint;
use tb_report::table::TableOptions;
use tb_report::{Format, RunReport};
use tb_run::apply::{ApplyOptions, Resume};
use tb_run::{PlanInput, Prepared, RunOutcome, Verdict, prepare};
use tb_settings::Layer;

pub(super) fn handle(args: &ApplyArgs, io: &mut Io<'_>) -> CommandResult {
    let input = match tb_run::saved::read(&args.plan)? {
        Some(loaded) => PlanInput::Saved(loaded),
        None => PlanInput::File(args.plan.clone()),
    };
    // The state directory is the real file's: a symlink elsewhere to the plan is the same
    // plan, with the same runs and lock.
    // (The path as given is kept when it names the real directory, so paths print as typed.)
    let given = args.plan.parent().unwrap_or(Path::new("."));
    let given = if given.as_os_str().is_empty() { Path::new(".") } else { given };
    let real = std::fs::canonicalize(&args.plan).ok();
    let real_dir = real.as_deref().and_then(Path::parent);
    let start = match real_dir {
        Some(dir) if std::fs::canonicalize(given).ok().as_deref() != Some(dir) => dir,
        _ => given,
    };
    apply_plan(input, start, &args.targeting, &args.exec, io)
}

/// Applies a plan from a file, a saved plan, or one built in memory (`run`); the state
/// directory is looked for from `start` (the plan file's directory) up.
pub(super) fn apply_plan(
    input: PlanInput,
    start: &Path,
    targeting: &TargetingArgs,
    exec: &ExecArgs,
    io: &mut Io<'_>,
) -> CommandResult {
    let reports = reports_to_write(&exec.reports)?;
    // stdout holds one stream: a report, the event stream, or data as JSON.
    let on_stdout = reports.iter().filter(|(_, path)| path == "-").count()
        + usize::from(exec.message_format == MessageFormat::Json)
        + usize::from(exec.format == DataFormat::Json);
    if on_stdout > 1 {
        return Err(CommandError::invalid(
            "stdout can take one of --report FORMAT=-, --message-format json and --format json; write the others to files",
        ));
    }
    let location =
        tb_run::history::locate_state(exec.state_dir.as_deref(), input.state_setting().as_deref(), start, io.vars)?;
    let state = tb_run::history::open_state(&location, io.vars)?;
    // Before any request to the platform: a run whose state cannot be kept does not start.
    tb_run::history::check_state(&state)?;
    let options = ApplyOptions {
        allow_destructive: exec.allow_destructive,
        abort_in_flight: exec.abort_in_flight,
        downloads: exec.downloads,
        resume: exec.resume.as_ref().map(|r| match r.as_str() {
            "" => Resume::Newest,
            "auto" => Resume::IfAny,
            id => Resume::Run(id.to_owned()),
        }),
        state,
        watch_signals: true,
        lock_timeout: exec.lock_timeout,
        run_group: exec.run_group.clone().or_else(|| default_run_group(io.vars)),
        shard: targeting.shard.map(|s| s.to_string()),
        notify: tb_run::notify::from_flags(&exec.notify),
        command: Some(command_line(std::env::args())),
    };
    let earlier = tb_run::apply::find_earlier(&input.keys(), &options)?;
    // Said even under -q: the run named is not the one continued.
    if let Some(e) = &earlier
        && let Some(named) = e.passed_over()
    {
        writeln!(
            io.stderr,
            "run {named} was resumed since; continuing from the newest run of its chain, {}",
            e.run_id()
        )?;
    }
    // The lock before any request to the platform: a run another run of the plan holds off
    // asks the platform nothing.
    let claim = tb_run::apply::claim(&input, &options, io.vars)?;
    let prepared = prepare(input, &super::targeting(targeting, io.vars), flag_layer(exec), io.vars)?;
    let checked = tb_run::apply::check(&prepared, &options, earlier, io.vars)?;
    // A rehearsal does not ask: its platform is the in-process simulator, so nothing real
    // would be touched, and `apply … --simulate` is how a plan is tried (README, `apply`). The
    // run itself takes the same path either way (ARCHITECTURE.md, "The rehearsal takes the
    // real path").
    // The forecast from the team's history in the run's own store: the prompt's range, then
    // the live ETA, the same model run again on what is left.
    let model = std::sync::Arc::new(tb_run::forecast::model(&prepared, Some(&options.state)));
    let forecast = model.forecast();
    if !targeting.simulate && !exec.yes && !confirm(&prepared, &forecast, io)? {
        writeln!(io.stderr, "not applied")?;
        return Ok(ExitStatus::Declined);
    }
    // The plan's estimate is the platform's time; a simulator's clock runs faster.
    let scale =
        prepared.connection.as_ref().and_then(|c| c.simulator.as_ref()).map_or(1.0, |sim| sim.knobs().time_scale);
    let estimate_secs = tb_run::document::estimate(&prepared).estimate;
    let begun = tb_run::apply::begin(prepared, checked, options, io.vars, claim)?;
    if let Some(earlier) = begun.resumed_from()
        && !io.quiet
    {
        writeln!(io.stderr, "resuming run {earlier} as run {}", begun.id())?;
    }
    let mode = if io.quiet {
        Mode::Quiet
    } else if io.style.terminal && io.vars.get(tb_core::env::TERM).is_none_or(|t| t != "dumb") {
        Mode::Bars
    } else {
        Mode::Lines
    };
    let (rows, columns) = console_size().unwrap_or((16, 100));
    let ms = super::plan::forecast_ms;
    let live_options = LiveOptions {
        paint: Paint::new(io.style.color),
        status_level: exec.status_level,
        estimate_secs: Some(estimate_secs),
        time_scale: scale,
        rows: rows.saturating_sub(6).clamp(3, 20),
        columns,
        remaining: Some(model),
        forecast: Some((ms(forecast.p10_secs), ms(forecast.p50_secs), ms(forecast.p90_secs))),
        ..LiveOptions::new(mode)
    };
    let json_events = exec.message_format == MessageFormat::Json;
    let outcome = {
        let mut live = Live::new(live_options, io.stderr);
        if json_events {
            let mut sink = JsonLines { live: &mut live, out: io.stdout };
            begun.run_to_end(&mut sink)
        } else {
            begun.run_to_end(&mut live)
        }
    };
    let view = View {
        table: TableOptions {
            level: exec.final_status_level,
            columns: console_size().map_or(100, |(_, columns)| columns),
            ..TableOptions::default()
        },
        stdout_taken: json_events || exec.format == DataFormat::Json || reports.iter().any(|(_, path)| path == "-"),
        data: exec.format,
    };
    Ok(finish(&outcome, &reports, &view, io))
}

/// The CI pipeline the run is part of, as its run group: every shard of one pipeline (and its
/// re-runs) shares it.
fn default_run_group(vars: &tb_settings::EnvVars) -> Option<String> {
    use tb_core::env;
    vars.get(env::GITHUB_RUN_ID)
        .map(|id| format!("github-{id}"))
        .or_else(|| vars.get(env::CI_PIPELINE_ID).map(|id| format!("gitlab-{id}")))
}

/// The terminal's rows and columns, for how many task lines the live display shows and how
/// wide they are.
fn console_size() -> Option<(usize, usize)> {
    console::Term::stderr().size_checked().map(|(rows, columns)| (usize::from(rows), usize::from(columns)))
}

/// `--message-format json`: each event as a JSON line on stdout, besides the live display.
struct JsonLines<'a, 'b> {
    live: &'a mut Live<'b>,
    out: &'a mut dyn Write,
}

impl EventSink for JsonLines<'_, '_> {
    fn emit(&mut self, event: &Event) -> Result<(), tb_core::events::RecordError> {
        self.live.emit(event)?;
        // A reader that went away does not stop the run; its exit status is the run's.
        if let Ok(line) = serde_json::to_string(event) {
            let _shown = writeln!(self.out, "{line}").and_then(|()| self.out.flush());
        }
        Ok(())
    }
}

/// How the outcome is shown.
struct View {
    table: TableOptions,
    /// A report, the event stream or data as JSON writes on stdout: the table goes to stderr.
    stdout_taken: bool,
    /// How read-only tasks' data is printed.
    data: DataFormat,
}

/// Renders the outcome and returns the exit status. The status is the run's: output that
/// cannot be shown (a closed stdout) never changes it; a report that cannot be written
/// makes an otherwise successful run exit 7, and says which.
fn finish(outcome: &RunOutcome, reports: &[(Format, String)], view: &View, io: &mut Io<'_>) -> ExitStatus {
    let report = &outcome.report;
    for message in outcome.internal_errors.iter().chain(&outcome.journal_errors) {
        let _shown = write_error(io.stderr, message);
    }
    if let Some(why) = &outcome.unreachable {
        let _shown = write_error(
            io.stderr,
            &format!("{why}: the run started nothing more; --resume continues it once the API answers"),
        );
    }
    if let Some(lost) = &outcome.fenced {
        let _shown = write_error(
            io.stderr,
            &format!(
                "{lost}: this run started nothing more once it knew; the other run goes on with what this one left"
            ),
        );
    }
    for told in outcome.report.notifications.iter().filter(|n| !n.delivered) {
        // Said, and in the report; the run's exit code is its tasks', not a webhook's.
        let _shown = write_error(
            io.stderr,
            &format!(
                "the {} notification to webhook #{} ({}) was not delivered after {} {}: {}",
                told.event,
                told.webhook,
                told.host,
                told.tries,
                if told.tries == 1 { "try" } else { "tries" },
                told.error.as_deref().unwrap_or("no answer")
            ),
        );
    }
    if outcome.result_json.is_none() {
        // Neither the state directory nor the temporary one took the JSON report: it goes
        // to stderr, the last place left, so the record of what ran is not lost.
        let _shown = writeln!(io.stderr, "{}", tb_report::json::render(report));
    }
    let mut report_failed = !write_reports(report, reports, io);
    // What read-only tasks read is the output the user asked for: on stdout, even under -q.
    let data = match view.data {
        DataFormat::Table => tb_report::data::tables(report, reads),
        DataFormat::Json => tb_report::data::json(report, reads),
    };
    let aside = view.stdout_taken && view.data == DataFormat::Table;
    let hidden = data.is_empty() || aside && io.quiet;
    if !hidden {
        // Beside a report or the event stream on stdout, the tables go with the final table.
        let out: &mut dyn Write = if aside { io.stderr } else { io.stdout };
        let _shown = out.write_all(data.as_bytes()).and_then(|()| out.flush());
    }
    if io.quiet {
        let _shown =
            io.stderr.write_all(quiet_summary(report, outcome.verdict(), resume(outcome).as_deref()).as_bytes());
    } else {
        // stdout belongs to a report or the event stream written there; the table then goes
        // to stderr.
        let color = if view.stdout_taken { io.style.color } else { io.style.color_out };
        let options = TableOptions { paint: Paint::new(color), ..view.table };
        let mut table = tb_report::table::render_with(report, &options);
        table.push_str(&footer(outcome, reports));
        let out: &mut dyn Write = if view.stdout_taken { io.stderr } else { io.stdout };
        // A reader that closed the pipe (`| head -1`) does not change how the run ended.
        let _shown = out.write_all(table.as_bytes()).and_then(|()| out.flush());
    }
    if let Some(path) = io.vars.get(tb_core::env::GITHUB_STEP_SUMMARY) {
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(tb_report::markdown::render(report).as_bytes()));
        if let Err(e) = appended {
            report_failed = true;
            let _shown = write_error(io.stderr, &format!("cannot append to $GITHUB_STEP_SUMMARY ({path}): {e}"));
        }
    }
    match outcome.verdict() {
        Verdict::RecordLost => ExitStatus::StateFailed,
        Verdict::Fenced => ExitStatus::Fenced,
        Verdict::Unreachable => ExitStatus::Unreachable,
        Verdict::Interrupted => ExitStatus::Interrupted,
        Verdict::Internal => ExitStatus::Internal,
        Verdict::TasksFailed => ExitStatus::TasksFailed,
        Verdict::Succeeded if report_failed => ExitStatus::ReportFailed,
        Verdict::Succeeded => ExitStatus::Success,
    }
}

/// Whether an operation's data is what it read (a remote command's is a record of its
/// output, and a check's of each site's answer: for the reports).
fn reads(operation: &str) -> bool {
    use tb_plan::plan::ops::OperationKind;
    OperationKind::from_name(operation).is_none_or(|kind| kind.is_read_only() && kind != OperationKind::HttpCheck)
}

/// Where the journal and reports are and, when something failed or was interrupted, the
/// command that resumes the run.
fn footer(outcome: &RunOutcome, reports: &[(Format, String)]) -> String {
    let mut out = format!("journal  {}\n", outcome.journal);
    let files: Vec<&str> = reports.iter().map(|(_, path)| path.as_str()).filter(|p| *p != "-").collect();
    if !files.is_empty() {
        out.push_str(&format!("reports  {}\n", files.join(", ")));
    }
    if let Some(resume) = resume(outcome) {
        out.push_str(&format!("resume   {resume}\n"));
    }
    out
}

/// The command that runs again what did not succeed, when something did not.
fn resume(outcome: &RunOutcome) -> Option<String> {
    (outcome.verdict() != Verdict::Succeeded).then(|| resume_command(std::env::args(), &outcome.run_id))
}

/// The command as it was typed, without any `--resume`, with `--resume=RUN`: what failed,
/// was skipped or never started runs again; what succeeded does not.
fn resume_command(args: impl Iterator<Item = String>, run_id: &str) -> String {
    format!("{} --resume={run_id}", command_line(args))
}

/// The command as it was typed, without `--resume` and without `--notify` and its URL (a
/// secret, never printed): what a resume command is made of.
fn command_line(args: impl Iterator<Item = String>) -> String {
    let mut words = Vec::new();
    let mut skip_value = false;
    for (i, arg) in args.enumerate() {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        if i == 0 {
            let name = Path::new(&arg).file_name().map_or_else(|| arg.clone(), |n| n.to_string_lossy().into_owned());
            words.push(name);
        } else if arg == "--notify" {
            skip_value = true;
        } else if arg != "--resume" && !arg.starts_with("--resume=") && !arg.starts_with("--notify=") {
            words.push(shell_quote(&arg));
        }
    }
    words.join(" ")
}

/// `arg` as a POSIX shell word.
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "_-./:=,@%+".contains(c));
    if plain { arg.to_owned() } else { format!("'{}'", arg.replace('\'', "'\\''")) }
}

/// Task ids a `-q` line names for a cause many tasks met.
const QUIET_IDS: usize = 3;

/// Under `-q`, for stderr: the tasks that did not succeed, a line per cause (a task alone with
/// its message; many as a count, the cause and the first ids: a fleet-wide failure is one
/// line), the final status, and the command that resumes a run that did not succeed.
fn quiet_summary(report: &RunReport, verdict: Verdict, resume: Option<&str>) -> String {
    let mut out = String::new();
    for group in tb_report::table::groups(report, StatusLevel::Skip) {
        let word = group.word();
        if let [task] = group.tasks.as_slice() {
            out.push_str(&format!("{word} {}: {}\n", task.id, task.message));
            continue;
        }
        let (ids, more) = group.first_ids(QUIET_IDS);
        let mut ids: Vec<String> = ids.into_iter().map(str::to_owned).collect();
        if more > 0 {
            ids.push(format!("… +{more} more"));
        }
        out.push_str(&format!("{word} {} tasks: {} ({})\n", group.tasks.len(), group.cause, ids.join(", ")));
    }
    let t = &report.totals;
    let verdict = match verdict {
        Verdict::RecordLost => "stopped: its record could not be written",
        Verdict::Fenced => "stopped: another run took over its lock or a lease",
        Verdict::Interrupted => "interrupted",
        Verdict::Unreachable => "stopped: the API stopped answering",
        Verdict::Succeeded => "succeeded",
        Verdict::TasksFailed if report.timed_out => "timed out",
        Verdict::TasksFailed | Verdict::Internal => "failed",
    };
    out.push_str(&format!(
        "run {} {verdict}: {} {}, {} succeeded, {} unchanged, {} failed, {} skipped, {} cancelled\n",
        report.run_id,
        t.tasks,
        if t.tasks == 1 { "task" } else { "tasks" },
        t.get(Status::Succeeded),
        t.get(Status::Unchanged),
        t.get(Status::Failed),
        t.get(Status::Skipped),
        t.get(Status::Cancelled)
    ));
    if let Some(resume) = resume {
        out.push_str(&format!("resume {resume}\n"));
    }
    out
}

fn flag_layer(exec: &ExecArgs) -> Layer {
    let on_failure = if exec.fail_fast {
        Some(OnFailure::FailFast)
    } else if exec.continue_on_error {
        Some(OnFailure::Continue)
    } else {
        None
    };
    Layer { concurrency: exec.concurrency, on_failure, ..Layer::default() }
}

/// Asks on a terminal, showing what would run; refuses without one (exit 2), as `terraform
/// apply` does. `Ok(false)` when the answer is no.
fn confirm(prepared: &Prepared, forecast: &tb_run::forecast::Forecast, io: &mut Io<'_>) -> Result<bool, CommandError> {
    let stdin = io::stdin();
    if !stdin.is_terminal() {
        return Err(CommandError::invalid("pass --yes to apply without a terminal"));
    }
    let acting_as = match &prepared.connection {
        Some(connection) => connection.user_email()?,
        None => "nobody (no login)".to_owned(),
    };
    let mut doc = tb_run::document::document(prepared, false);
    doc.summary.forecast = Some(forecast.into());
    let shown = super::plan::prompt(&doc, &acting_as);
    write!(io.stderr, "{shown}Apply? [y/N] ")?;
    io.stderr.flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resume_command_is_the_command_typed_with_resume() {
        let args = ["/usr/local/bin/terminus-batch", "apply", "my plan.yml", "--resume", "--sites", "acme-*", "-y"];
        assert_eq!(
            resume_command(args.iter().map(|a| (*a).to_owned()), "R1"),
            "terminus-batch apply 'my plan.yml' --sites 'acme-*' -y --resume=R1"
        );
        let args = [
            "terminus-batch",
            "apply",
            "p.yml",
            "--notify",
            "https://hooks.slack.com/services/T/B/x",
            "--notify=json=https://h.example/x",
            "-y",
        ];
        assert_eq!(
            resume_command(args.iter().map(|a| (*a).to_owned()), "R1"),
            "terminus-batch apply p.yml -y --resume=R1",
            "a webhook's URL is a secret: never in a command printed"
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
