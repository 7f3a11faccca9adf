//! `runs list` and `runs show [RUN] [--report FORMAT=PATH]`: the runs the state directory
//! keeps, and any one of them again, from its records (no API call).

use std::io::Write;
use std::path::Path;

use super::report_files::{reports_to_write, write_reports};
use crate::cli::error::{CommandError, CommandResult};
use crate::cli::exit::ExitStatus;
use crate::cli::{Io, RunsCommand};
use tb_core::events::Status;
use tb_core::timefmt::{duration_ms, human};
use tb_core::words::counted;
use tb_report::paint::Paint;
use tb_report::table::TableOptions;
use tb_run::history::{self, RunEntry, RunState};

pub(super) fn handle(action: &RunsCommand, io: &mut Io<'_>) -> CommandResult {
    match action {
        RunsCommand::List { state_dir, all } => {
            let dir = open(state_dir.as_deref(), io)?;
            let mut runs = dir.list()?;
            if runs.is_empty() {
                writeln!(io.stderr, "no runs in {}", dir.describe())?;
                return Ok(ExitStatus::Success);
            }
            let before = runs.len();
            if !all {
                runs.retain(|run| !run.read_only_ad_hoc);
            }
            let hidden = before - runs.len();
            // The plan's column takes what the others leave of the terminal's width, when the
            // width is known (`COLUMNS`, else the terminal stdout is); else 22 characters, so a
            // row fits 80 columns. A shell does not export `COLUMNS` unless asked.
            let columns: Option<usize> = io
                .vars
                .get(tb_core::env::COLUMNS)
                .and_then(|c| c.parse().ok())
                .or_else(|| console::Term::stdout().size_checked().map(|(_, columns)| usize::from(columns)));
            let room = columns.map_or(22, |c| c.saturating_sub(58).max(22));
            let mut text = list_table(&runs, Paint::new(io.style.color_out), room);
            if hidden > 0 {
                let runs = counted(hidden, "read-only `run` run");
                text.push_str(&format!("({runs} not listed: --all lists them)\n"));
            }
            // A reader that closed the pipe (`| head`) saw what it wanted.
            let _shown = io.stdout.write_all(text.as_bytes()).and_then(|()| io.stdout.flush());
            Ok(ExitStatus::Success)
        }
        RunsCommand::Show { run, state_dir, reports } => {
            let reports = reports_to_write(reports)?;
            let dir = open(state_dir.as_deref(), io)?;
            let id = match run {
                Some(id) => id.clone(),
                None => dir.newest()?,
            };
            // A run group (a CI pipeline's shards): one report of all their runs.
            if let Some((report, runs)) = dir.load_group(&id)? {
                return Ok(show_group(&id, &report, &runs, &dir, &reports, io));
            }
            let (report, resumed_from) = dir.load(&id)?;
            let wrote = write_reports(&report, &reports, io);
            let stdout_taken = reports.iter().any(|(_, path)| path == "-");
            let state = RunState::of(&report);
            let mut text = format!("run {id} of {}", report.plan.path);
            if let Some(earlier) = resumed_from {
                text.push_str(&format!(" (resumed {earlier})"));
            }
            text.push_str(&format!(
                "\nstarted {} · {} · {}\n{}\n\n",
                human(i64::try_from(report.started_at / 1000).unwrap_or(0)),
                report
                    .duration_ms
                    .map_or_else(|| "no end recorded".to_owned(), |ms| format!("took {}", duration_ms(ms))),
                state.as_str(),
                report.settings.resolved_by,
            ));
            let color = if stdout_taken { io.style.color } else { io.style.color_out };
            let options = TableOptions { paint: Paint::new(color), ..TableOptions::default() };
            text.push_str(&tb_report::table::render_with(&report, &options));
            text.push_str(&format!("journal  {}\n", dir.location(&id)));
            let out: &mut dyn Write = if stdout_taken { io.stderr } else { io.stdout };
            let _shown = out.write_all(text.as_bytes()).and_then(|()| out.flush());
            Ok(if wrote { ExitStatus::Success } else { ExitStatus::ReportFailed })
        }
    }
}

/// The store `runs` reads: `--state-dir`, else as `apply` finds it from here (no plan is
/// named, so no plan's `settings.state`).
fn open(flag: Option<&str>, io: &Io<'_>) -> Result<history::Runs, CommandError> {
    let location = history::locate_state(flag, None, Path::new("."), io.vars)?;
    Ok(history::Runs::open(&location, io.vars)?)
}

/// `runs show GROUP`: the merged report of the group's runs, and which runs made it.
fn show_group(
    group: &str,
    report: &tb_report::RunReport,
    runs: &[String],
    dir: &history::Runs,
    reports: &[(tb_report::Format, String)],
    io: &mut Io<'_>,
) -> ExitStatus {
    let wrote = write_reports(report, reports, io);
    let stdout_taken = reports.iter().any(|(_, path)| path == "-");
    let mut text = format!(
        "run group {group} of {}: {} runs
",
        report.plan.path,
        runs.len()
    );
    for run in runs {
        text.push_str(&format!(
            "  {}
",
            dir.location(run)
        ));
    }
    text.push('\n');
    let color = if stdout_taken { io.style.color } else { io.style.color_out };
    let options = TableOptions { paint: Paint::new(color), ..TableOptions::default() };
    text.push_str(&tb_report::table::render_with(report, &options));
    let out: &mut dyn Write = if stdout_taken { io.stderr } else { io.stdout };
    let _shown = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    if wrote { ExitStatus::Success } else { ExitStatus::ReportFailed }
}

/// `run  plan  took  ok  status`: one row per run within 80 columns while the plan's name is
/// short. The id begins with the start (UTC), so the start is not repeated; `ok` is the
/// tasks that succeeded or were unchanged of all, and the status names the others.
fn list_table(runs: &[RunEntry], paint: Paint, room: usize) -> String {
    let plan_width = runs.iter().map(|r| r.plan.chars().count()).max().unwrap_or(4).clamp(4, room);
    let id_width = runs.iter().map(|r| r.id.len()).max().unwrap_or(3).max(3);
    let ok = |run: &RunEntry| {
        let t = &run.totals;
        format!("{}/{}", t.get(Status::Succeeded) + t.get(Status::Unchanged), t.tasks)
    };
    let ok_width = runs.iter().map(|r| ok(r).len()).max().unwrap_or(2).max(2);
    let mut out =
        format!("{:<id_width$}  {:<plan_width$}  {:>7}  {:>ok_width$}  status\n", "run", "plan", "took", "ok");
    for run in runs {
        let t = &run.totals;
        let plan = shorten(&run.plan, plan_width);
        let took = run.duration_ms.map_or_else(|| "-".to_owned(), duration_ms);
        let status = match run.state {
            RunState::Succeeded => paint.green(run.state.as_str()),
            RunState::Failed => paint.red(run.state.as_str()),
            RunState::Interrupted | RunState::TimedOut | RunState::Unfinished => paint.yellow(run.state.as_str()),
            RunState::Running => run.state.as_str().to_owned(),
        };
        let others: Vec<String> = [Status::Failed, Status::Skipped, Status::Cancelled]
            .into_iter()
            .filter(|s| t.get(*s) > 0)
            .map(|s| format!("{} {}", t.get(s), s.as_str()))
            .collect();
        let others = if others.is_empty() { String::new() } else { format!(": {}", others.join(", ")) };
        let resumed = run.resumed_from.as_ref().map(|r| format!(" (resumed {r})")).unwrap_or_default();
        out.push_str(&format!(
            "{:<id_width$}  {plan:<plan_width$}  {took:>7}  {:>ok_width$}  {status}{others}{resumed}\n",
            run.id,
            ok(run),
        ));
    }
    out
}

/// The end of `text` within `width` characters (a path's file name matters most).
fn shorten(text: &str, width: usize) -> String {
    let count = text.chars().count();
    if count <= width {
        return text.to_owned();
    }
    let tail: String = text.chars().skip(count + 1 - width).collect();
    format!("…{tail}")
}
