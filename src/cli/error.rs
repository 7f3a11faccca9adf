//! [`CommandError`]: the one error type at the command edge. It carries its exit status as
//! data and is printed once, by `cli::main`, as just does.

use std::io::{self, Write};

use super::diagnostics::{Style, write_error, write_plan_errors};
use super::exit::ExitStatus;
use tb_plan::plan::{PlanError, PlanSource};
use tb_run::RunError;

/// Why a command ended without doing what it was asked.
#[derive(Debug)]
pub enum CommandError {
    /// A plan (or world) with errors: every diagnostic, against its source (exit 2).
    Plan { source: PlanSource, errors: Vec<PlanError> },
    /// One message, and the status it ends with.
    Message { status: ExitStatus, message: String },
    /// Writing the command's output failed.
    Output(io::Error),
}

impl CommandError {
    /// Bad arguments or a refusal before any API call (exit 2).
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::Message { status: ExitStatus::Invalid, message: message.into() }
    }

    /// Authentication failed or the API could not be reached (exit 3).
    pub(crate) fn unreachable(message: impl Into<String>) -> Self {
        Self::Message { status: ExitStatus::Unreachable, message: message.into() }
    }

    /// The exit status this error ends the program with.
    #[must_use]
    pub fn status(&self) -> ExitStatus {
        match self {
            Self::Plan { .. } => ExitStatus::Invalid,
            Self::Message { status, .. } => *status,
            // A closed pipe (`| head`) is the reader's choice, not a failure of the command.
            Self::Output(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitStatus::Success,
            Self::Output(_) => ExitStatus::Internal,
        }
    }

    /// Prints the error on `out` (stderr).
    pub fn print(&self, out: &mut dyn Write, style: Style) -> io::Result<()> {
        match self {
            Self::Plan { source, errors } => write_plan_errors(out, source, errors, style),
            Self::Message { message, .. } => write_error(out, message),
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
            RunError::Refused(message) => Self::Message { status: ExitStatus::Invalid, message },
            error @ RunError::Unreachable { .. } => {
                Self::Message { status: ExitStatus::Unreachable, message: chain(&error) }
            }
            error @ RunError::Internal { .. } => Self::Message { status: ExitStatus::Internal, message: chain(&error) },
            RunError::State(error) => Self::Message { status: ExitStatus::StateFailed, message: chain(error.as_ref()) },
        }
    }
}

/// An error and its sources, each said once: `a: b: c`.
fn chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(&format!(": {text}"));
        }
        source = cause.source();
    }
    out
}

/// What a command returns: the status it ends with, or the error that ended it.
pub type CommandResult = Result<ExitStatus, CommandError>;
