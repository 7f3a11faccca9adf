//! Events: the facts the executor reports about a run, in the order they happened. The
//! executor loop is their only sender; reporters and the journal only consume them, and the
//! report is a pure fold of them.
//!
//! Owned, `Clone`, serializable (the journal writes them as JSON lines). Depends only on
//! [`crate::ids`].

use serde::{Deserialize, Serialize};

use crate::cause::Cause;
use crate::ids::{RunId, TaskId};

/// Unix time in milliseconds, from the executor's injected clock.
pub type Millis = u64;

/// What the reports need to know about a task before it runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TaskHeader {
    pub id: TaskId,
    pub job: String,
    pub site: Option<String>,
    /// The site's UUID, for links to its dashboard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_id: Option<String>,
    pub env: Option<String>,
    /// The operation's name, e.g. `env:deploy`.
    pub operation: String,
    /// Rollout wave within its job (0 without a rollout).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub wave: u32,
    /// The plan's expected duration of the task, in seconds (for the live ETA).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub estimate_secs: u64,
    /// A digest of the task's definition (operation and options): `--resume` carries a
    /// result over only to a task defined as it was.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest: String,
}

impl TaskHeader {
    /// A task of `job` running `operation` on `site` and `env` when given (its id is
    /// `job[site.env]`, or `job` for an account task), with no site UUID, wave, estimate or
    /// digest: set those fields where they matter.
    #[must_use]
    pub fn new(job: &str, site: Option<&str>, env: Option<&str>, operation: &str) -> Self {
        let target = match (site, env) {
            (Some(site), Some(env)) => format!("{site}.{env}"),
            (Some(site), None) => site.to_owned(),
            (None, _) => String::new(),
        };
        Self {
            id: TaskId::new(&crate::ids::JobId::new(job), &target, &[]),
            job: job.to_owned(),
            site: site.map(str::to_owned),
            site_id: None,
            env: env.map(str::to_owned),
            operation: operation.to_owned(),
            wave: 0,
            estimate_secs: 0,
            digest: String::new(),
        }
    }
}

/// For `skip_serializing_if`: the type's default (0, empty).
pub fn is_zero<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// How a task ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Succeeded,
    Unchanged,
    Failed,
    Skipped,
    Cancelled,
}

impl Status {
    /// Met a dependent's need.
    #[must_use]
    pub fn is_ok(self) -> bool {
        matches!(self, Self::Succeeded | Self::Unchanged)
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Unchanged => "unchanged",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Cancelled => "cancelled",
        }
    }

    pub const ALL: [Self; 5] = [Self::Succeeded, Self::Unchanged, Self::Failed, Self::Skipped, Self::Cancelled];
}

/// A task's end: its status, a message for people, and the data of read-only operations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub status: Status,
    pub message: String,
    /// Why a task did not succeed, as data (absent on success, and in journals written
    /// before causes were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// The earlier run that did this task, when `--resume` carried its result over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// What that earlier run recorded of the task (its times, workflows, attempts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<Record>,
}

impl Outcome {
    /// An outcome of this run.
    #[must_use]
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), cause: None, data: None, run: None, record: None }
    }

    /// An end for `cause`, with `message` saying more of it.
    #[must_use]
    pub fn because(status: Status, cause: Cause, message: impl Into<String>) -> Self {
        Self { cause: Some(cause), ..Self::new(status, message) }
    }

    /// An end for `cause`, said as the cause says it.
    #[must_use]
    pub fn from_cause(status: Status, cause: Cause) -> Self {
        let message = cause.to_string();
        Self::because(status, cause, message)
    }
}

/// What a run recorded of a task, carried over by `--resume` so the report keeps the work
/// the earlier run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workflow_ids: Vec<String>,
    #[serde(default)]
    pub attempts: u32,
}

/// One fact about a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        run_id: RunId,
        at: Millis,
        /// Every task of the run, by index.
        tasks: Vec<TaskHeader>,
    },
    TaskStarted {
        task: usize,
        at: Millis,
    },
    /// Written before an attempt acts (before a workflow POST), so a crash leaves a trace.
    AttemptStarting {
        task: usize,
        attempt: u32,
        at: Millis,
    },
    /// An attempt on record as starting ended, and its end was seen though it started no
    /// workflow: its remote command provably never started (`ran: false`: `ssh` refused before
    /// any session, for a connection, a host key, a key) or ran to an exit code that was seen
    /// (`ran: true`). Either way a resume need not fear it acted unseen, and runs it again.
    AttemptEnded {
        task: usize,
        attempt: u32,
        ran: bool,
        at: Millis,
    },
    WorkflowStarted {
        task: usize,
        workflow_id: String,
        at: Millis,
    },
    /// A workflow was seen to finish. One started and never seen to end may still run: a
    /// resume re-attaches to it, whatever its task's outcome.
    WorkflowEnded {
        task: usize,
        workflow_id: String,
        succeeded: bool,
        at: Millis,
    },
    Progress {
        task: usize,
        message: String,
        /// A transfer's bytes done and expected, for a progress bar (not journalled).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bytes: Option<[u64; 2]>,
        at: Millis,
    },
    /// What a remote command printed, in full, for the person who ran it (the live display,
    /// `--format` on stdout): never written to the journal or a report.
    Output {
        task: usize,
        output: serde_json::Value,
        at: Millis,
    },
    /// The task has run more than twice as long as expected (what this run's finished tasks
    /// of its job took, else the plan's estimate): it is marked slow, as nextest marks SLOW.
    TaskSlow {
        task: usize,
        /// What it was expected to take, in milliseconds.
        expected_ms: u64,
        at: Millis,
    },
    /// The task waits for its target's lease, which another run holds (named in `holder`).
    LeaseWaiting {
        task: usize,
        holder: String,
        at: Millis,
    },
    AttemptFailed {
        task: usize,
        attempt: u32,
        error: String,
        transient: bool,
        at: Millis,
    },
    TaskRetrying {
        task: usize,
        next_attempt: u32,
        delay_ms: u64,
        at: Millis,
    },
    TaskFinished {
        task: usize,
        outcome: Outcome,
        at: Millis,
    },
    /// The run stops starting tasks (Ctrl-C, fail-fast, the failure budget) and waits for the
    /// ones in flight.
    Draining {
        reason: String,
        in_flight: usize,
        /// A second Ctrl-C stops waiting for them (`false` when already not waiting).
        waiting: bool,
        at: Millis,
    },
    RunFinished {
        at: Millis,
        /// Ctrl-C stopped the run.
        interrupted: bool,
        /// The run's timeout stopped it.
        timed_out: bool,
    },
}

impl Event {
    /// The task an event is about.
    #[must_use]
    pub fn task(&self) -> Option<usize> {
        match self {
            Self::TaskStarted { task, .. }
            | Self::AttemptStarting { task, .. }
            | Self::AttemptEnded { task, .. }
            | Self::WorkflowStarted { task, .. }
            | Self::WorkflowEnded { task, .. }
            | Self::Progress { task, .. }
            | Self::LeaseWaiting { task, .. }
            | Self::TaskSlow { task, .. }
            | Self::Output { task, .. }
            | Self::AttemptFailed { task, .. }
            | Self::TaskRetrying { task, .. }
            | Self::TaskFinished { task, .. } => Some(*task),
            Self::RunStarted { .. } | Self::RunFinished { .. } | Self::Draining { .. } => None,
        }
    }

    #[must_use]
    pub fn at(&self) -> Millis {
        match self {
            Self::RunStarted { at, .. }
            | Self::TaskStarted { at, .. }
            | Self::AttemptStarting { at, .. }
            | Self::AttemptEnded { at, .. }
            | Self::WorkflowStarted { at, .. }
            | Self::WorkflowEnded { at, .. }
            | Self::Progress { at, .. }
            | Self::LeaseWaiting { at, .. }
            | Self::TaskSlow { at, .. }
            | Self::Output { at, .. }
            | Self::AttemptFailed { at, .. }
            | Self::TaskRetrying { at, .. }
            | Self::TaskFinished { at, .. }
            | Self::Draining { at, .. }
            | Self::RunFinished { at, .. } => *at,
        }
    }
}

/// Where run events go: reporters, the journal, the report fold. Called from the executor
/// loop only, in order.
pub trait EventSink {
    /// Takes one event. A sink that keeps the run's record (the journal) says when it could
    /// not: the executor then starts nothing more, since an attempt it cannot record must not
    /// be sent (DESIGN.md §8). Displays and reports in memory never fail.
    fn emit(&mut self, event: &Event) -> Result<(), RecordError>;

    /// A wait until every event emitted so far is kept where a resume reads it; `None` when
    /// `emit` already made it so (a file, a display). A journal in an object store writes
    /// in the background, many events per write, and says here when they are written.
    fn durable(&mut self) -> Option<Durable> {
        None
    }
}

/// A wait for a sink's events to be kept (see [`EventSink::durable`]).
pub type Durable = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), RecordError>> + Send>>;

/// The run's record could not be kept: an event could not be written where a resume reads it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RecordError {
    pub message: String,
    #[source]
    pub source: Option<std::io::Error>,
}

/// Sends every event to every sink, in order, even after one fails (a display still shows
/// what happens); the first failure is returned.
pub struct FanOut<'a>(pub Vec<&'a mut dyn EventSink>);

impl EventSink for FanOut<'_> {
    fn emit(&mut self, event: &Event) -> Result<(), RecordError> {
        let mut first = Ok(());
        for sink in &mut self.0 {
            let emitted = sink.emit(event);
            if first.is_ok() {
                first = emitted;
            }
        }
        first
    }

    fn durable(&mut self) -> Option<Durable> {
        let waits: Vec<Durable> = self.0.iter_mut().filter_map(|sink| sink.durable()).collect();
        match waits.len() {
            0 => None,
            1 => waits.into_iter().next(),
            _ => Some(Box::pin(async move { futures::future::try_join_all(waits).await.map(drop) })),
        }
    }
}
