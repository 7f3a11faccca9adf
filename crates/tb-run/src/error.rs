//! [`RunError`]: why a run did not start, or could not go on. Each variant is a class the
//! command line maps to one exit status; the message names the input at fault.

use tb_operations::api::ApiError;
use tb_plan::plan::{PlanError, PlanSource};

/// Why a plan could not be taken to a run, or a run could not begin.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The plan (or a world file) has errors, each with its span.
    #[error("{} has {} problem(s)", file.path, errors.len())]
    Plan { file: PlanSource, errors: Vec<PlanError> },
    /// Bad arguments, or a refusal before any API call that changes anything.
    #[error("{0}")]
    Refused(String),
    /// Authentication failed or the API could not be reached before any task started; the
    /// client's error when there was a request.
    #[error("{message}")]
    Unreachable {
        message: String,
        #[source]
        source: Option<ApiError>,
    },
    /// A bug, or the operating system refusing what a run needs (threads, a socket), with
    /// what refused it.
    #[error("{message}")]
    Internal {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The state directory could not be used (its lock or journal could not be written):
    /// a full or read-only disk, not a bad plan.
    #[error("{0}")]
    State(#[source] Box<StateError>),
}

impl From<tb_state::lock::LockError> for RunError {
    /// A lock another live run holds is a refusal, as any other reason not to start; one that
    /// cannot be taken is the state directory's failure.
    fn from(e: tb_state::lock::LockError) -> Self {
        use tb_state::lock::LockError;
        match e {
            held @ LockError::Held { .. } => Self::Refused(held.to_string()),
            io @ LockError::Store { .. } => Self::State(Box::new(StateError::Lock(io))),
        }
    }
}

/// What the state directory refused, with the operating system's error as its source.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Lock(tb_state::lock::LockError),
    #[error("{0}; a run that cannot be journalled does not start (see --state-dir)")]
    Journal(#[source] tb_state::journal::JournalError),
    /// The store did not answer as a store (checked before any request to the platform).
    #[error("{0}; a run that cannot be journalled does not start (see --state-dir)")]
    Store(#[source] tb_state::StoreError),
}

impl RunError {
    pub(crate) fn refused(message: impl Into<String>) -> Self {
        Self::Refused(message.into())
    }

    /// The API refused or could not be reached: `context`, then the client's error.
    pub(crate) fn unreachable(context: &str, source: ApiError) -> Self {
        Self::Unreachable { message: format!("{context}: {source}"), source: Some(source) }
    }

    /// What the operating system (or a bug) refused: `context`, then `source`.
    pub(crate) fn internal(context: &str, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal { message: format!("{context}: {source}"), source: Some(Box::new(source)) }
    }

    /// A bug found by a check, with no error beneath it.
    pub(crate) fn bug(message: impl Into<String>) -> Self {
        Self::Internal { message: message.into(), source: None }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use tb_operations::api::ApiErrorKind;

    #[test]
    fn run_errors_keep_their_sources() {
        let api = ApiError::new("GET /api/users/u", ApiErrorKind::Status { code: 503, message: String::new() });
        let e = RunError::unreachable("cannot log in", api);
        assert_eq!(e.to_string(), "cannot log in: HTTP 503 Service Unavailable on GET /api/users/{user}");
        let source = e.source().and_then(|s| s.downcast_ref::<ApiError>()).expect("the client's error");
        assert_eq!(source.status(), Some(503));
        // A full disk under the journal: the operating system's error is at the end of the chain.
        let full = std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device");
        let journal = tb_state::journal::JournalError::Write { dir: "state/runs/r".into(), source: full };
        let e = RunError::State(Box::new(StateError::Journal(journal)));
        let mut deepest: &dyn std::error::Error = &e;
        while let Some(next) = deepest.source() {
            deepest = next;
        }
        let io = deepest.downcast_ref::<std::io::Error>().expect("the io error");
        assert_eq!(io.kind(), std::io::ErrorKind::StorageFull);
        let e = RunError::internal("cannot start the async runtime", std::io::Error::other("no threads"));
        assert!(e.source().is_some());
    }
}
