//! `validate PLAN`: parse and check offline. Never starts a runtime, never calls the API.

use std::path::Path;

use crate::cli::Io;
use crate::cli::error::CommandResult;
use crate::cli::exit::ExitStatus;
use tb_core::words::counted;
use tb_plan::plan::model::{ArgTemplate, Job};
use tb_plan::plan::ops::{ArgValue, OperationKind, prints_credentials};
use tb_run::prepare::{load, read_source};

pub(super) fn handle(path: &Path, io: &mut Io<'_>) -> CommandResult {
    let (source, plan) = load(read_source(path)?)?;
    if !io.quiet {
        let jobs = plan.jobs.len();
        writeln!(io.stdout, "{}: valid ({})", source.path, counted(jobs, "job"))?;
    }
    for job in &plan.jobs {
        if let Some((shown, what)) = credential_command(job) {
            writeln!(
                io.stderr,
                "note: job `{}` runs `{shown}`, which prints {what}: its output is shown on stdout and never kept in \
                 a report, the journal or the step summary",
                job.id
            )?;
        }
    }
    Ok(ExitStatus::Success)
}

/// A remote command job whose command prints credentials: the command as written, and what
/// it prints.
fn credential_command(job: &Job) -> Option<(String, &'static str)> {
    let tool = match job.op {
        OperationKind::RemoteDrush => "drush",
        OperationKind::RemoteWp => "wp",
        _ => return None,
    };
    let words = job.args.iter().find(|a| a.name == "command").and_then(|a| match &a.value {
        ArgTemplate::Fixed(ArgValue::Words(words)) => Some(words),
        _ => None,
    })?;
    let what = prints_credentials(tool, words)?;
    Some((format!("{tool} {}", words.join(" ")), what))
}
