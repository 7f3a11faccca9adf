//! `validate PLAN`: parse and check offline. Never starts a runtime, never calls the API.

use std::io;
use std::path::Path;

use super::load_plan;
use crate::cli::Io;
use crate::cli::exit::ExitStatus;

pub(super) fn run(path: &Path, io: &mut Io<'_>) -> io::Result<ExitStatus> {
    match load_plan(path, io)? {
        Ok((source, plan)) => {
            if !io.quiet {
                let jobs = plan.jobs.len();
                writeln!(io.stdout, "{}: valid ({jobs} job{})", source.path, if jobs == 1 { "" } else { "s" })?;
            }
            Ok(ExitStatus::Success)
        }
        Err(status) => Ok(status),
    }
}
