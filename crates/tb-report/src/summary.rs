//! [`RunReport`], the `BatchResult` (DESIGN.md §8): a pure fold of a run's events over the
//! run's static context (plan, settings). The single input of every report format.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use tb_core::cause::{Cause, Left};
use tb_core::events::{Event, EventSink, Millis, Status, TaskHeader};

/// The kind tag of a JSON report.
pub const REPORT_KIND: &str = "terminus-batch/batch-result";

/// The plan a run executed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlanInfo {
    pub path: String,
    pub sha256: String,
    pub name: Option<String>,
}

/// The settings in force.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SettingsInfo {
    pub concurrency: usize,
    pub per_site: usize,
    pub max_requests: usize,
    pub requests_per_second: f64,
    pub burst: u32,
    pub on_failure: String,
    /// `none` when unlimited.
    pub max_failures: String,
    /// `none` without a run timeout.
    pub timeout: String,
    /// Where the run's targets were resolved, for people: `Pantheon API at …`, `simulator
    /// world …`, or a saved plan's. (Earlier reports named it `target`, and are still read.)
    #[serde(alias = "target")]
    pub resolved_by: String,
    /// Whether the run was against the simulator (its site ids exist only in its world): from
    /// the typed endpoint, not from `resolved_by`'s words.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub simulated: bool,
}

/// Counts per status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Totals {
    pub tasks: usize,
    pub succeeded: usize,
    pub unchanged: usize,
    pub failed: usize,
    pub skipped: usize,
    pub cancelled: usize,
    /// Tasks that ran more than twice as long as expected (whatever their end).
    #[serde(default, skip_serializing_if = "tb_core::events::is_zero")]
    pub slow: usize,
}

impl Totals {
    #[must_use]
    pub fn get(&self, status: Status) -> usize {
        match status {
            Status::Succeeded => self.succeeded,
            Status::Unchanged => self.unchanged,
            Status::Failed => self.failed,
            Status::Skipped => self.skipped,
            Status::Cancelled => self.cancelled,
        }
    }
}

/// One task's record: what was known of it before it ran (its header, whose fields
/// it reads as its own), then how it went.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskReport {
    #[serde(flatten)]
    pub task: TaskHeader,
    /// `None` only in a report of a run that never finished (a crash).
    pub status: Option<Status>,
    /// Attempts made (0 for a task that never started).
    pub attempts: u32,
    /// Unix milliseconds.
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    pub duration_ms: Option<u64>,
    pub workflow_ids: Vec<String>,
    pub message: String,
    /// Why it did not succeed, as data: what the reports group tasks by (absent on success,
    /// and for runs recorded before causes were).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
    /// What a read-only operation read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// The run that did this task: the report's own, or after `--resume` the earlier run
    /// whose result was carried over (its times, attempts and workflow ids are that run's).
    pub run_id: String,
    /// Another run that was acting on the task's target when it was to start, and that it
    /// waited for (README, "Environment leases").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waited_for: Option<String>,
    /// Marked slow: it ran more than twice what it was expected to take, this many
    /// milliseconds (what this run's finished tasks of its job took, else the plan's
    /// estimate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_after_ms: Option<u64>,
    /// What a remote command printed, in full, for stdout (`--format`) only: never
    /// serialized, so no report or `result.json` holds it.
    #[serde(skip)]
    #[schemars(skip)]
    pub shown: Option<serde_json::Value>,
}

impl TaskReport {
    /// A task not yet started, of run `run_id`.
    #[must_use]
    pub fn new(task: TaskHeader, run_id: String) -> Self {
        Self {
            task,
            status: None,
            attempts: 0,
            started_at: None,
            finished_at: None,
            duration_ms: None,
            workflow_ids: Vec::new(),
            message: String::new(),
            cause: None,
            data: None,
            run_id,
            waited_for: None,
            slow_after_ms: None,
            shown: None,
        }
    }
}

impl std::ops::Deref for TaskReport {
    type Target = TaskHeader;

    fn deref(&self) -> &TaskHeader {
        &self.task
    }
}

/// The `BatchResult` of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunReport {
    /// Always `terminus-batch/batch-result`.
    pub kind: String,
    pub format_version: u32,
    pub run_id: String,
    pub plan: PlanInfo,
    pub settings: SettingsInfo,
    pub started_at: Millis,
    pub finished_at: Option<Millis>,
    pub duration_ms: Option<u64>,
    /// Ctrl-C stopped the run.
    pub interrupted: bool,
    pub timed_out: bool,
    pub totals: Totals,
    pub tasks: Vec<TaskReport>,
    /// Under `--simulate`: the simulator's counters (requests by route and status,
    /// workflows started, peak concurrency), as `GET /__sim/stats` shows them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulator: Option<serde_json::Value>,
    /// Each message to a webhook (`settings.notify`, `--notify`): whether it was delivered.
    /// A webhook is named by its place and host, never its URL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<Notification>,
}

/// One message to a webhook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Notification {
    /// 1-based: the webhook's place among those in force (the plan's, then `--notify`'s).
    pub webhook: usize,
    pub host: String,
    /// `start`, `success`, `failure` or `halt`.
    pub event: String,
    /// `slack` or `json`.
    pub format: String,
    pub delivered: bool,
    pub tries: u32,
    /// Why it was not delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RunReport {
    /// An empty report for a run about to start.
    #[must_use]
    pub fn new(plan: PlanInfo, settings: SettingsInfo) -> Self {
        Self {
            kind: REPORT_KIND.to_owned(),
            format_version: 1,
            run_id: String::new(),
            plan,
            settings,
            started_at: 0,
            finished_at: None,
            duration_ms: None,
            interrupted: false,
            timed_out: false,
            totals: Totals::default(),
            tasks: Vec::new(),
            simulator: None,
            notifications: Vec::new(),
        }
    }

    /// One report of the runs of a group (the shards of one CI pipeline), named `group`:
    /// every run's tasks once, totals summed, from the first start to the last end (no end
    /// while a run has none), interrupted or timed out if one was.
    #[must_use]
    pub fn merge(group: &str, reports: Vec<RunReport>) -> Option<RunReport> {
        let mut reports = reports.into_iter();
        let mut merged = reports.next()?;
        group.clone_into(&mut merged.run_id);
        merged.simulator = None;
        for report in reports {
            merged.started_at = merged.started_at.min(report.started_at);
            merged.finished_at = merged.finished_at.zip(report.finished_at).map(|(a, b)| a.max(b));
            merged.interrupted |= report.interrupted;
            merged.timed_out |= report.timed_out;
            merged.tasks.extend(report.tasks);
        }
        merged.duration_ms = merged.finished_at.map(|end| end.saturating_sub(merged.started_at));
        let mut totals = Totals { tasks: merged.tasks.len(), ..Totals::default() };
        for task in &merged.tasks {
            match task.status {
                Some(Status::Succeeded) => totals.succeeded += 1,
                Some(Status::Unchanged) => totals.unchanged += 1,
                Some(Status::Failed) => totals.failed += 1,
                Some(Status::Skipped) => totals.skipped += 1,
                Some(Status::Cancelled) => totals.cancelled += 1,
                None => {}
            }
        }
        merged.totals = totals;
        Some(merged)
    }

    /// Folds one event in.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::RunStarted { run_id, at, tasks } => {
                self.run_id = run_id.to_string();
                self.started_at = *at;
                self.tasks = tasks.iter().map(|h| TaskReport::new(h.clone(), run_id.to_string())).collect();
                self.totals = Totals { tasks: tasks.len(), ..Totals::default() };
            }
            Event::TaskStarted { task, at } => {
                if let Some(t) = self.tasks.get_mut(*task) {
                    t.started_at = Some(*at);
                }
            }
            Event::AttemptStarting { task, attempt, .. }
            | Event::AttemptEnded { task, attempt, .. }
            | Event::AttemptFailed { task, attempt, .. } => {
                if let Some(t) = self.tasks.get_mut(*task) {
                    t.attempts = t.attempts.max(*attempt);
                }
            }
            Event::WorkflowStarted { task, workflow_id, .. } => {
                if let Some(t) = self.tasks.get_mut(*task) {
                    t.workflow_ids.push(workflow_id.clone());
                }
            }
            Event::Output { task, output, .. } => {
                if let Some(t) = self.tasks.get_mut(*task) {
                    t.shown = Some(output.clone());
                }
            }
            Event::LeaseWaiting { task, holder, .. } => {
                if let Some(t) = self.tasks.get_mut(*task) {
                    t.waited_for = Some(holder.clone());
                }
            }
            Event::TaskSlow { task, expected_ms, .. } => {
                if let Some(t) = self.tasks.get_mut(*task)
                    && t.slow_after_ms.is_none()
                {
                    t.slow_after_ms = Some(*expected_ms);
                    self.totals.slow += 1;
                }
            }
            Event::Progress { .. }
            | Event::TaskRetrying { .. }
            | Event::WorkflowEnded { .. }
            | Event::Draining { .. } => {}
            Event::TaskFinished { task, outcome, at } => {
                if let Some(t) = self.tasks.get_mut(*task) {
                    if t.status.is_none() {
                        match outcome.status {
                            Status::Succeeded => self.totals.succeeded += 1,
                            Status::Unchanged => self.totals.unchanged += 1,
                            Status::Failed => self.totals.failed += 1,
                            Status::Skipped => self.totals.skipped += 1,
                            Status::Cancelled => self.totals.cancelled += 1,
                        }
                    }
                    t.status = Some(outcome.status);
                    if let Some(run) = &outcome.run {
                        t.run_id.clone_from(run);
                    }
                    t.message.clone_from(&outcome.message);
                    t.cause.clone_from(&outcome.cause);
                    t.data.clone_from(&outcome.data);
                    if let Some(record) = &outcome.record {
                        // Carried over: the earlier run's work, not this run's.
                        t.started_at = record.started_at;
                        t.finished_at = record.finished_at;
                        t.workflow_ids.clone_from(&record.workflow_ids);
                        t.attempts = record.attempts;
                    } else {
                        t.finished_at = Some(*at);
                    }
                    t.duration_ms = t.started_at.zip(t.finished_at).map(|(s, f)| f.saturating_sub(s));
                    if t.attempts == 0 && t.started_at.is_some() && outcome.record.is_none() {
                        t.attempts = 1;
                    }
                }
            }
            Event::RunFinished { at, interrupted, timed_out } => {
                self.finished_at = Some(*at);
                self.duration_ms = Some(at.saturating_sub(self.started_at));
                self.interrupted = *interrupted;
                self.timed_out = *timed_out;
            }
        }
    }

    /// For a report folded from the journal of a run that never finished: says of each task
    /// with no end where the journal left it, the state `--resume` starts from.
    pub fn explain_unfinished(&mut self) {
        for task in self.tasks.iter_mut().filter(|t| t.status.is_none() && t.message.is_empty()) {
            let left = if !task.workflow_ids.is_empty() {
                Left::WorkflowRunning
            } else if task.attempts > 0 {
                Left::Acting
            } else if task.started_at.is_some() {
                Left::Started
            } else {
                Left::NotStarted
            };
            let cause = Cause::Unfinished { left };
            task.message = match task.workflow_ids.last() {
                Some(workflow) => {
                    format!("workflow {workflow} was running where the journal ends; --resume re-attaches to it")
                }
                None => cause.to_string(),
            };
            task.cause = Some(cause);
        }
    }

    /// The jobs, in the order their first tasks come (plan order).
    #[must_use]
    pub fn jobs(&self) -> Vec<&str> {
        let mut jobs: Vec<&str> = Vec::new();
        for task in &self.tasks {
            if !jobs.contains(&task.job.as_str()) {
                jobs.push(&task.job);
            }
        }
        jobs
    }

    /// Every task ended `succeeded` or `unchanged`.
    #[must_use]
    pub fn all_ok(&self) -> bool {
        self.tasks.iter().all(|t| t.status.is_some_and(Status::is_ok))
    }
}

impl EventSink for RunReport {
    fn emit(&mut self, event: &Event) -> Result<(), tb_core::events::RecordError> {
        self.apply(event);
        Ok(())
    }
}
