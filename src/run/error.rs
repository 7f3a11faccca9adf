//! [`RunError`]: why a run did not start, or could not go on. Each variant is a class the
//! command line maps to one exit status; the message names the input at fault.

use crate::plan::{PlanError, PlanSource};

/// Why a plan could not be taken to a run, or a run could not begin.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The plan (or a world file) has errors, each with its span.
    #[error("{} has {} problem(s)", file.path, errors.len())]
    Plan { file: PlanSource, errors: Vec<PlanError> },
    /// Bad arguments, or a refusal before any API call that changes anything.
    #[error("{0}")]
    Refused(String),
    /// Authentication failed or the API could not be reached before any task started.
    #[error("{0}")]
    Unreachable(String),
    /// A bug, or the operating system refusing what a run needs (threads, a socket).
    #[error("{0}")]
    Internal(String),
    /// The state directory could not be used (its lock or journal could not be written):
    /// a full or read-only disk, not a bad plan.
    #[error("{0}")]
    State(#[source] StateError),
}

/// What the state directory refused, with the operating system's error as its source.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Lock(crate::journal::lock::LockError),
    #[error("{0}; a run that cannot be journalled does not start (see --state-dir)")]
    Journal(#[source] crate::journal::JournalError),
}

impl RunError {
    pub(crate) fn refused(message: impl Into<String>) -> Self {
        Self::Refused(message.into())
    }
}
