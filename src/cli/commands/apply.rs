//! `apply PLAN|SAVED`: maps the flags to [`crate::run::apply`], asks for confirmation, shows
//! progress while the run goes, then renders its outcome: report files, the final table
//! (on stdout, or on stderr when a report takes stdout), and the exit status from the
//! outcome's verdict.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::Path;

use crate::cli::diagnostics::write_error;
use crate::cli::error::{CommandError, CommandResult};
use crate::cli::exit::ExitStatus;
use crate::cli::{ApplyArgs, Io, RunArgs, TargetArgs};
use crate::events::Status;
use crate::plan::model::OnFailure;
use crate::report::live::{Live, Mode};
use crate::report::{Format, RunReport, render};
use crate::run::apply::{ApplyOptions, Resume};
use crate::run::{PlanInput, Prepared, RunOutcome, Verdict, prepare};
use crate::settings::Layer;

pub(super) fn run(args: &ApplyArgs, io: &mut Io<'_>) -> CommandResult {
    let input = match crate::run::saved::read(&args.plan)? {
        Some(loaded) => PlanInput::Saved(loaded),
        None => PlanInput::File(args.plan.clone()),
    };
    execute_plan(input, &args.targets, &args.run, io)
}

/// Applies a plan from a file, a saved plan, or one built in memory (`run`).
pub(super) fn execute_plan(input: PlanInput, targets: &TargetArgs, run: &RunArgs, io: &mut Io<'_>) -> CommandResult {
    let reports = parse_reports(&run.reports).map_err(CommandError::invalid)?;
    // Before any API call: a report that cannot be written would be lost at the end.
    for (format, path) in &reports {
        probe_writable(path)
            .map_err(|e| CommandError::invalid(format!("cannot write the {format} report to {path}: {e}")))?;
    }
    let options = ApplyOptions {
        allow_destructive: run.allow_destructive,
        abort_in_flight: run.abort_in_flight,
        downloads: run.downloads,
        resume: run.resume.as_ref().map(|r| if r.is_empty() { Resume::Newest } else { Resume::Run(r.clone()) }),
        state_dir: run.state_dir.clone(),
        watch_signals: true,
    };
    let earlier = crate::run::apply::find_earlier(&input.key(), &options)?;
    let prepared = prepare(input, &super::target_options(targets), flag_layer(run), io.vars)?;
    let checked = crate::run::apply::check(&prepared, &options, earlier, io.vars)?;
    if !targets.simulate && !run.yes && !confirm(&prepared, io)? {
        writeln!(io.stderr, "not applied")?;
        return Ok(ExitStatus::Declined);
    }
    let begun = crate::run::apply::begin(prepared, checked, options, io.vars)?;
    if let Some(earlier) = begun.resumed_from() {
        if !io.quiet {
            writeln!(io.stderr, "resuming run {earlier} as run {}", begun.id())?;
        }
    }
    let mode = if io.quiet {
        Mode::Quiet
    } else if io.style.color && io::stderr().is_terminal() {
        Mode::Bars
    } else {
        Mode::Lines
    };
    let outcome = {
        let mut live = Live::new(mode, io.stderr);
        begun.execute(&mut live)
    };
    Ok(finish(&outcome, &reports, io))
}

/// Renders the outcome and returns the exit status. The status is the run's: output that
/// cannot be shown (a closed stdout) never changes it; a report that cannot be written
/// makes an otherwise successful run exit 7, and says which.
fn finish(outcome: &RunOutcome, reports: &[(Format, String)], io: &mut Io<'_>) -> ExitStatus {
    let report = &outcome.report;
    let mut report_failed = false;
    for message in outcome.internal_errors.iter().chain(&outcome.journal_errors) {
        let _shown = write_error(io.stderr, message);
    }
    for (format, path) in reports {
        let text = render(report, *format);
        let written = if path == "-" {
            io.stdout.write_all(text.as_bytes()).and_then(|()| io.stdout.flush())
        } else {
            write_atomically(Path::new(path), text.as_bytes())
        };
        if let Err(e) = written {
            report_failed = true;
            let shown = if path == "-" { "stdout" } else { path.as_str() };
            let _shown = write_error(io.stderr, &format!("cannot write the {format} report to {shown}: {e}"));
        }
    }
    // stdout belongs to a report written there; the table then goes to stderr.
    let stdout_taken = reports.iter().any(|(_, path)| path == "-");
    if io.quiet {
        let _shown = io.stderr.write_all(quiet_summary(report, outcome.verdict()).as_bytes());
    } else {
        let table = crate::report::table::render(report);
        let out: &mut dyn Write = if stdout_taken { io.stderr } else { io.stdout };
        // A reader that closed the pipe (`| head -1`) does not change how the run ended.
        let _shown = out.write_all(table.as_bytes()).and_then(|()| out.flush());
    }
    if let Some(path) = io.vars.get("GITHUB_STEP_SUMMARY") {
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(crate::report::markdown::render(report).as_bytes()));
        if let Err(e) = appended {
            report_failed = true;
            let _shown = write_error(io.stderr, &format!("cannot append to $GITHUB_STEP_SUMMARY ({path}): {e}"));
        }
    }
    match outcome.verdict() {
        Verdict::Interrupted => ExitStatus::Interrupted,
        Verdict::Internal => ExitStatus::Internal,
        Verdict::TasksFailed => ExitStatus::TasksFailed,
        Verdict::Succeeded if report_failed => ExitStatus::ReportFailed,
        Verdict::Succeeded => ExitStatus::Success,
    }
}

/// Under `-q`: every task that did not succeed, then the final status, on stderr.
fn quiet_summary(report: &RunReport, verdict: Verdict) -> String {
    let mut out = String::new();
    for task in &report.tasks {
        let Some(status) = task.status.filter(|s| !s.is_ok()) else { continue };
        out.push_str(&format!("{} {}: {}\n", status.as_str(), task.id, task.message));
    }
    let t = &report.totals;
    let verdict = match verdict {
        Verdict::Interrupted => "interrupted",
        Verdict::Succeeded => "succeeded",
        Verdict::TasksFailed | Verdict::Internal => "failed",
    };
    out.push_str(&format!(
        "run {} {verdict}: {} tasks, {} succeeded, {} unchanged, {} failed, {} skipped, {} cancelled\n",
        report.run_id,
        t.tasks,
        t.get(Status::Succeeded),
        t.get(Status::Unchanged),
        t.get(Status::Failed),
        t.get(Status::Skipped),
        t.get(Status::Cancelled)
    ));
    out
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

/// Asks on a terminal, showing what would run; refuses without one (exit 2), as `terraform
/// apply` does. `Ok(false)` when the answer is no.
fn confirm(prepared: &Prepared, io: &mut Io<'_>) -> Result<bool, CommandError> {
    let stdin = io::stdin();
    if !stdin.is_terminal() {
        return Err(CommandError::invalid("pass --yes to apply without a terminal"));
    }
    let summary = super::plan::headline(&crate::run::document::document(prepared, false));
    write!(io.stderr, "{summary}\nTargets: {}\nApply? [y/N] ", prepared.resolved_by)?;
    io.stderr.flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

/// Creates `path`'s directory and a file beside it, then removes that file: a report path
/// that cannot be written is found before the run, not after.
fn probe_writable(path: &str) -> io::Result<()> {
    if path == "-" {
        return Ok(());
    }
    let path = Path::new(path);
    if path.is_dir() {
        return Err(io::Error::other("it is a directory"));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let probe = temp_beside(path);
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

fn temp_beside(path: &Path) -> std::path::PathBuf {
    path.with_extension(format!("{}.tmp", path.extension().and_then(|e| e.to_str()).unwrap_or("report")))
}

/// Writes to a temporary file beside `path`, then renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = temp_beside(path);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
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
