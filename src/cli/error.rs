//! [`CommandError`]: the one error type at the command edge. It carries its exit status as
//! data and is printed once, by `cli::main`, as just does.

use std::io::{self, Write};

use super::diagnostics::{Style, write_error, write_plan_errors};
use super::exit::ExitStatus;
use tb_core::chain::one_line;
use tb_plan::plan::{PlanError, PlanSource};
use tb_run::RunError;

/// Why a command ended without doing what it was asked. Typed to the edge: the status comes
/// from the variant, and an error is printed once, with each of its sources once after it.
#[derive(Debug)]
pub enum CommandError {
    /// A plan (or world) with errors: every diagnostic, against its source (exit 2).
    Plan { source: PlanSource, errors: Vec<PlanError> },
    /// A run's library refused, could not reach the platform, or failed.
    Run(RunError),
    /// The command line refused its own arguments (exit 2).
    Invalid(String),
    /// A report named on the command line cannot be written (exit 2), found before any run.
    ReportFile { format: String, path: String, source: io::Error },
    /// `simulate serve` could not listen on its port (exit 2).
    Listen { port: u16, source: io::Error },
    /// Writing the command's output failed.
    Output(io::Error),
}

impl CommandError {
    /// Bad arguments, refused by the command line itself (exit 2).
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }

    /// The exit status this error ends the program with.
    #[must_use]
    pub fn status(&self) -> ExitStatus {
        match self {
            Self::Plan { .. } | Self::Invalid(_) | Self::ReportFile { .. } | Self::Listen { .. } => ExitStatus::Invalid,
            Self::Run(error) => match error {
                RunError::Plan { .. } | RunError::Refused(_) => ExitStatus::Invalid,
                RunError::Unreachable(_) => ExitStatus::Unreachable,
                RunError::Internal { .. } => ExitStatus::Internal,
                RunError::State(_) => ExitStatus::StateFailed,
            },
            // A closed pipe (`| head`) is the reader's choice, not a failure of the command.
            Self::Output(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitStatus::Success,
            Self::Output(_) => ExitStatus::Internal,
        }
    }

    /// Prints the error on `out` (stderr).
    pub fn print(&self, out: &mut dyn Write, style: Style) -> io::Result<()> {
        match self {
            Self::Plan { source, errors } => write_plan_errors(out, source, errors, style),
            Self::Run(error) => write_error(out, &one_line(error)),
            Self::Invalid(message) => write_error(out, message),
            Self::ReportFile { format, path, source } => {
                write_error(out, &format!("cannot write the {format} report to {path}: {source}"))
            }
            Self::Listen { port, source } => write_error(out, &format!("cannot listen on 127.0.0.1:{port}: {source}")),
            Self::Output(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            Self::Output(e) => write_error(out, &format!("writing output failed: {e}")),
        }
    }
}

impl From<io::Error> for CommandError {
    fn from(e: io::Error) -> Self {
        Self::Output(e)
    }
}

impl From<RunError> for CommandError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Plan { file, errors } => Self::Plan { source: file, errors },
            other => Self::Run(other),
        }
    }
}

/// What a command returns: the status it ends with, or the error that ended it.
pub type CommandResult = Result<ExitStatus, CommandError>;
