//! [`RunOutcome`]: how a run ended, as data: the report (per-task outcomes and totals), the
//! run's identity and journal, whether it was interrupted or timed out, and any internal
//! errors. The exit status comes from these fields, never from message text.

use tb_report::RunReport;

/// How a run ended.
#[derive(Debug)]
pub struct RunOutcome {
    pub report: RunReport,
    pub run_id: String,
    pub resumed_from: Option<String>,
    /// Where the journal is (a file's path, or the run's URL in an object store).
    pub journal: String,
    /// Ctrl-C (or SIGTERM) stopped the run.
    pub interrupted: bool,
    pub timed_out: bool,
    /// Bugs met during the run (a panic in a task or the poller), each already recorded on
    /// the task it hit.
    pub internal_errors: Vec<String>,
    /// The journal or `result.json` could not be written in full.
    pub journal_errors: Vec<String>,
    /// Where the JSON report of the run was written: `result.json` beside the journal, or,
    /// when that could not be written, a file in the system's temporary directory; `None`
    /// when neither could be.
    pub result_json: Option<String>,
    /// The API stopped answering mid-run, and the run started nothing more: why.
    pub unreachable: Option<String>,
    /// The run lost its plan lock or a lease to another run (or could not prove it still
    /// held one), and started nothing more: what was lost and to whom.
    pub fenced: Option<String>,
}

/// The run's verdict, in order of precedence: the first that holds is the verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The run's record (its journal or `result.json`) could not be written: it started
    /// nothing more, and a resume may have to look for what it did (the state directory
    /// needs attention before anything else).
    RecordLost,
    /// Another run took over the run's lock or a lease (it took this one for gone), or the
    /// run could not prove it still held one: it started nothing more (after a lost record,
    /// before every other verdict: two runs may have acted on one target).
    Fenced,
    /// Interrupted by a signal (over every verdict but a lost record and a fenced run).
    Interrupted,
    /// A bug: a panic was caught.
    Internal,
    /// The API stopped answering, and the run started nothing more.
    Unreachable,
    /// Some task failed, was skipped or was cancelled.
    TasksFailed,
    /// Every task succeeded or was unchanged.
    Succeeded,
}

impl RunOutcome {
    #[must_use]
    pub fn verdict(&self) -> Verdict {
        if !self.journal_errors.is_empty() {
            Verdict::RecordLost
        } else if self.fenced.is_some() {
            Verdict::Fenced
        } else if self.interrupted {
            Verdict::Interrupted
        } else if !self.internal_errors.is_empty() {
            Verdict::Internal
        } else if self.unreachable.is_some() {
            Verdict::Unreachable
        } else if self.report.all_ok() {
            Verdict::Succeeded
        } else {
            Verdict::TasksFailed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tb_core::events::{Event, Outcome, Status, TaskHeader};
    use tb_core::ids::RunId;
    use tb_report::summary::PlanInfo;

    fn outcome(status: Status, interrupted: bool, internal: bool) -> RunOutcome {
        let settings = crate::apply::settings_info(
            &tb_settings::Settings::resolve(&[], None).unwrap(),
            "simulator world test",
            true,
        );
        let mut report = RunReport::new(PlanInfo { path: "p.yml".into(), sha256: "x".into(), name: None }, settings);
        let header = TaskHeader::new("a", None, None, "x");
        report.apply(&Event::RunStarted { run_id: RunId::from_parts("r", 1), at: 0, tasks: vec![header] });
        let message = if internal { "internal error: the task panicked: boom" } else { "done" };
        report.apply(&Event::TaskFinished { task: 0, outcome: Outcome::new(status, message), at: 1 });
        RunOutcome {
            report,
            run_id: "r".into(),
            resumed_from: None,
            journal: "runs/r/events.jsonl".to_owned(),
            interrupted,
            timed_out: false,
            internal_errors: if internal { vec!["a: boom".into()] } else { Vec::new() },
            journal_errors: Vec::new(),
            result_json: None,
            unreachable: None,
            fenced: None,
        }
    }

    #[test]
    fn the_verdict_comes_from_typed_fields_in_order_of_precedence() {
        assert_eq!(outcome(Status::Succeeded, false, false).verdict(), Verdict::Succeeded);
        assert_eq!(outcome(Status::Unchanged, false, false).verdict(), Verdict::Succeeded);
        assert_eq!(outcome(Status::Skipped, false, false).verdict(), Verdict::TasksFailed);
        assert_eq!(outcome(Status::Failed, false, true).verdict(), Verdict::Internal);
        assert_eq!(outcome(Status::Failed, true, true).verdict(), Verdict::Interrupted);
        // A message that merely reads like an internal error decides nothing.
        let mut looks_internal = outcome(Status::Failed, false, false);
        looks_internal.report.tasks[0].message = "internal error: from the platform".into();
        assert_eq!(looks_internal.verdict(), Verdict::TasksFailed);
        // An API that stopped answering is said, under a bug and an interruption.
        let mut silent = outcome(Status::Failed, false, false);
        silent.unreachable = Some("the API at https://x/api/ has not answered for 30s".into());
        assert_eq!(silent.verdict(), Verdict::Unreachable);
        // A record that could not be written wins over all.
        let mut unrecorded = outcome(Status::Succeeded, true, true);
        unrecorded.journal_errors.push("the journal cannot be written: No space left on device".into());
        assert_eq!(unrecorded.verdict(), Verdict::RecordLost);
    }
}
