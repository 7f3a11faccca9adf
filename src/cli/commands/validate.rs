//! `validate PLAN`: parse and check offline. Never starts a runtime, never calls the API.

use std::path::Path;

use crate::cli::Io;
use crate::cli::error::CommandResult;
use crate::cli::exit::ExitStatus;
use crate::run::prepare::{load, read_source};

pub(super) fn run(path: &Path, io: &mut Io<'_>) -> CommandResult {
    let (source, plan) = load(read_source(path)?)?;
    if !io.quiet {
        let jobs = plan.jobs.len();
        writeln!(io.stdout, "{}: valid ({jobs} job{})", source.path, if jobs == 1 { "" } else { "s" })?;
    }
    Ok(ExitStatus::Success)
}
