//! [`Decision`]: what a mutating operation would do, decided from read-only calls. Each
//! operation has one `decide_*` function, used both by `plan --refresh` (which shows the
//! decision) and by the run (which acts on it), so the two can never disagree.

use super::preview::Preview;
use super::{OpError, OpOutput};

/// What an operation would do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decision<T> {
    /// Act, with what the action needs, and why (as `plan --refresh` shows it).
    Act { with: T, reason: String },
    /// Nothing to do: the message the task ends `unchanged` with.
    Nothing(String),
    /// It would fail: a preflight finding.
    Refuse(String),
}

impl<T> Decision<T> {
    pub(crate) fn act(with: T, reason: impl Into<String>) -> Self {
        Self::Act { with, reason: reason.into() }
    }

    pub(crate) fn nothing(message: impl Into<String>) -> Self {
        Self::Nothing(message.into())
    }

    pub(crate) fn refuse(message: impl Into<String>) -> Self {
        Self::Refuse(message.into())
    }

    /// For the run: what to act with, or how the task ends without acting (`unchanged`, or
    /// failed with the finding).
    pub(crate) fn settle(self) -> Result<Result<T, OpOutput>, OpError> {
        match self {
            Self::Act { with, .. } => Ok(Ok(with)),
            Self::Nothing(message) => Ok(Err(OpOutput { changed: false, message, data: None })),
            Self::Refuse(message) => Err(OpError::permanent(message)),
        }
    }

    /// For `plan --refresh`.
    pub(crate) fn preview(self) -> Preview {
        match self {
            Self::Act { reason, .. } => Preview::Change(reason),
            Self::Nothing(message) => Preview::Unchanged(message),
            Self::Refuse(message) => Preview::Finding(message),
        }
    }
}

/// Acts on a decision: `act` runs only when there is something to do.
macro_rules! settle {
    ($decision:expr) => {
        match $decision.settle()? {
            Ok(with) => with,
            Err(unchanged) => return Ok(unchanged),
        }
    };
}
pub(crate) use settle;
