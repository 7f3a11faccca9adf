//! [`RunOutcome`]: how a run ended, as data: the report (per-task outcomes and totals), the
//! run's identity and journal, whether it was interrupted or timed out, and any internal
//! errors. The exit status comes from these fields, never from message text.

use std::path::PathBuf;

use crate::report::RunReport;

/// How a run ended.
#[derive(Debug)]
pub struct RunOutcome {
    pub report: RunReport,
    pub run_id: String,
    pub resumed_from: Option<String>,
    /// Where the journal and `result.json` are.
    pub journal_dir: PathBuf,
    /// Ctrl-C (or SIGTERM) stopped the run.
    pub interrupted: bool,
    pub timed_out: bool,
    /// Bugs met during the run (a panic in a task or the poller), each already recorded on
    /// the task it hit.
    pub internal_errors: Vec<String>,
    /// The journal or `result.json` could not be written in full.
    pub journal_errors: Vec<String>,
}

/// The run's verdict, in order of precedence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every task succeeded or was unchanged.
    Succeeded,
    /// Some task failed, was skipped or was cancelled.
    TasksFailed,
    /// A bug: a panic was caught.
    Internal,
    /// Interrupted by a signal (wins over every other verdict).
    Interrupted,
}

impl RunOutcome {
    #[must_use]
    pub fn verdict(&self) -> Verdict {
        if self.interrupted {
            Verdict::Interrupted
        } else if !self.internal_errors.is_empty() {
            Verdict::Internal
        } else if self.report.all_ok() {
            Verdict::Succeeded
        } else {
            Verdict::TasksFailed
        }
    }
}
