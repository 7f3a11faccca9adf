//! Exit codes: documented constants (README, "Exit codes"), chosen by the command that ends.

use std::process::ExitCode;

/// How the program ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: every task succeeded or was unchanged; or the command did what it was asked.
    Success,
    /// 1: some task failed, was skipped or cancelled.
    TasksFailed,
    /// 2: invalid plan or arguments, or a refusal before any API call.
    Invalid,
    /// 3: authentication failed or the API was unreachable before any task started.
    Unreachable,
    /// 4: `plan --detailed-exitcode`: tasks would change something.
    WouldChange,
    /// 5: `plan --detailed-exitcode`: some of the changes are destructive.
    WouldDestroy,
    /// 6: the user answered no at the confirmation; nothing ran.
    Declined,
    /// 7: every task succeeded, but a report could not be written.
    ReportFailed,
    /// 8: the state directory failed the run: its journal or `result.json` could not be
    /// written (the run started nothing more), or the lock or journal could not be made.
    StateFailed,
    /// 9: another run took over this run's plan lock or an environment's lease (it took this
    /// run for gone: stopped or suspended past the stale period), or the run could not prove
    /// it still held one; it started nothing more.
    Fenced,
    /// 101: an internal error (a bug).
    Internal,
    /// 130: interrupted.
    Interrupted,
}

impl ExitStatus {
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::TasksFailed => 1,
            Self::Invalid => 2,
            Self::Unreachable => 3,
            Self::WouldChange => 4,
            Self::WouldDestroy => 5,
            Self::Declined => 6,
            Self::ReportFailed => 7,
            Self::StateFailed => 8,
            Self::Fenced => 9,
            Self::Internal => 101,
            Self::Interrupted => 130,
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(status.code())
    }
}
