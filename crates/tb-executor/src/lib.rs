//! The executor: runs a [`TaskGraph`] concurrently within bounds, with the failure policy
//! the user chose, and reports every fact as an [`Event`].
//!
//! Two actors, as nextest does it: attempt futures (one per task in flight, owned by a
//! `JoinSet` and joined before returning) report through their [`TaskContext`] to the one
//! loop in [`execute`], which owns the [`Scheduler`] and is the only sender of events. Generic
//! over the task payload: it never looks inside, never does HTTP, never prints.
//!
//! Depends on `tb-core` alone (the graph, events, ids, [`tb_core::cause`],
//! [`tb_core::backoff`] and [`tb_core::panics`]), so it cannot see a plan or an operation.

pub mod forecast;
pub mod scheduler;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::scheduler::{GroupPolicy, Limits, Scheduler, Slot};
use tb_core::cause::{Cause, ErrorClass};
use tb_core::events::EventSink;
use tb_core::events::{Event, Millis, Outcome, RecordError, Status, TaskHeader};
use tb_core::graph::TaskGraph;
use tb_core::ids::RunId;

/// What the executor needs to know of one task, from the runner.
#[derive(Clone, Debug)]
pub struct TaskMeta {
    pub header: TaskHeader,
    pub group: usize,
    pub wave: u32,
    /// The group whose rollout waves gate the task, when not its own (a check).
    pub waves_of: Option<usize>,
    /// Counted against `per_site` (workflow-starting tasks only).
    pub site_key: Option<String>,
    /// Held exclusively while running (one code change per environment).
    pub exclusive: Vec<String>,
    /// Expected duration, for the critical-path dispatch order.
    pub estimate_secs: u64,
    /// All attempts together.
    pub timeout: Option<Duration>,
    pub retries: RetryPolicy,
}

/// Task-level retries: total tries and the first delay (doubling, with jitter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub backoff: Duration,
}

/// A successful attempt.
#[derive(Clone, Debug, PartialEq)]
pub struct Done {
    /// `Succeeded` or `Unchanged`.
    pub status: Status,
    pub message: String,
    pub data: Option<serde_json::Value>,
    /// The earlier run that did it (`--resume` carrying a result over).
    pub run: Option<String>,
    /// What that run recorded of it.
    pub record: Option<tb_core::events::Record>,
}

impl Done {
    fn outcome(self) -> Outcome {
        Outcome {
            status: self.status,
            message: self.message,
            cause: None,
            data: self.data,
            run: self.run,
            record: self.record,
        }
    }
}

/// A failed attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskError {
    pub message: String,
    /// Why, as data: what the reports group by.
    pub cause: Cause,
    pub class: ErrorClass,
}

/// Runs tasks of payload `P`: the adapter between the executor and the operations.
pub trait Runner<P>: Send + Sync + 'static {
    fn meta(&self, payload: &P) -> TaskMeta;
    /// One attempt. The future must end when `ctx.cancelled()` fires, or be dropped.
    fn attempt(&self, payload: &P, ctx: TaskContext) -> impl Future<Output = Result<Done, TaskError>> + Send + 'static;
    /// A result an earlier run already reached (`--resume`): the task ends with it when it
    /// would start, without starting, taking a slot or reporting a start.
    fn carried(&self, _payload: &P) -> Option<Done> {
        None
    }
}

/// Wall-clock time for events; injected so tests can fix it.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> Millis;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// How a run is stopped from outside: `drain` starts nothing new (first Ctrl-C); `abort`
/// stops waiting for tasks in flight (second Ctrl-C, `--abort-in-flight`).
#[derive(Clone, Debug, Default)]
pub struct Controls {
    pub drain: CancellationToken,
    pub abort: CancellationToken,
    pub run_timeout: Option<Duration>,
    /// When draining for any reason, also abort tasks in flight.
    pub abort_in_flight: bool,
    /// Starts nothing more for a reason found outside the run (the API stopped answering):
    /// the run drains, waiting for the tasks in flight, and says why.
    pub halt: Halt,
    /// Marks tasks slow ([`Event::TaskSlow`]); the number is the real seconds a second of
    /// the plan's estimates takes (1 against the API, a simulator's time scale). `None`: no
    /// task is marked.
    pub slow_scale: Option<f64>,
}

/// A task running this many times its expectation is slow.
const SLOW_FACTOR: u32 = 2;

/// What the executor learns of how long tasks take, to mark the slow ones.
struct Pace {
    scale: f64,
    started: Vec<Option<Instant>>,
    /// Started and not yet marked slow nor seen to end: what the timer looks at (at most the
    /// run's concurrency, however many tasks the run has).
    watched: std::collections::BTreeSet<usize>,
    /// Recent run times of this run's finished tasks, per job...
    learned: HashMap<String, std::collections::VecDeque<Duration>>,
    /// ...and their median, kept as they come.
    medians: HashMap<String, Duration>,
}

/// The least time a task runs before it is called slow.
const SLOW_FLOOR: Duration = Duration::from_secs(1);

/// Run times kept per job for its median.
const SLOW_SAMPLES: usize = 64;

impl Pace {
    fn new(tasks: usize, scale: f64) -> Self {
        Self {
            scale,
            started: vec![None; tasks],
            watched: std::collections::BTreeSet::new(),
            learned: HashMap::new(),
            medians: HashMap::new(),
        }
    }

    fn started(&mut self, task: usize, at: Instant) {
        self.started[task] = Some(at);
        self.watched.insert(task);
    }

    /// What `meta`'s task is expected to take: the median of its job's finished tasks in
    /// this run, else the plan's estimate on the platform's clock.
    fn expected(&self, meta: &TaskMeta) -> Duration {
        match self.medians.get(&meta.header.job) {
            Some(median) => *median,
            None => Duration::from_secs(meta.estimate_secs).mul_f64(self.scale.max(0.0)),
        }
    }

    /// When task `i`, started, becomes slow, with what it is expected to take.
    fn slow_at(&self, i: usize, metas: &[TaskMeta]) -> Option<(Instant, Duration)> {
        let expected = self.expected(&metas[i]);
        // Never before a second of real time: a simulator's faster clock shrinks the
        // platform's work, not this machine's (a TLS handshake, a busy core).
        Some((self.started[i]? + expected.saturating_mul(SLOW_FACTOR).max(SLOW_FLOOR), expected))
    }

    /// When the next task running unmarked becomes slow.
    fn next(&self, metas: &[TaskMeta], statuses: &[Option<Status>]) -> Option<Instant> {
        self.watched
            .iter()
            .filter(|&&i| statuses[i].is_none())
            .filter_map(|&i| self.slow_at(i, metas).map(|(at, _)| at))
            .min()
    }

    /// The tasks slow by `now`, marked (no longer watched), each with its expectation.
    fn due(&mut self, metas: &[TaskMeta], statuses: &[Option<Status>], now: Instant) -> Vec<(usize, Duration)> {
        let mut due = Vec::new();
        let mut ended = Vec::new();
        for &i in &self.watched {
            if statuses[i].is_some() {
                ended.push(i);
                continue;
            }
            if let Some((_, expected)) = self.slow_at(i, metas).filter(|(at, _)| *at <= now) {
                due.push((i, expected));
            }
        }
        for i in ended.into_iter().chain(due.iter().map(|(i, _)| *i)) {
            self.watched.remove(&i);
        }
        due
    }

    fn finished(&mut self, meta: &TaskMeta, task: usize, status: Status) {
        self.watched.remove(&task);
        let Some(start) = self.started[task].filter(|_| status == Status::Succeeded) else { return };
        let job = &meta.header.job;
        let recent = self.learned.entry(job.clone()).or_default();
        if recent.len() == SLOW_SAMPLES {
            recent.pop_front();
        }
        recent.push_back(start.elapsed());
        let mut sorted: Vec<Duration> = recent.iter().copied().collect();
        sorted.sort_unstable();
        self.medians.insert(job.clone(), sorted[sorted.len() / 2]);
    }
}

/// A reason to start nothing more, given from outside the executor.
#[derive(Clone, Debug, Default)]
pub struct Halt {
    token: CancellationToken,
    reason: Arc<std::sync::Mutex<Option<String>>>,
}

impl Halt {
    /// Halts the run for `reason` (the first reason given is kept).
    pub fn halt(&self, reason: String) {
        let mut kept = self.reason.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        kept.get_or_insert(reason);
        self.token.cancel();
    }

    fn reason(&self) -> String {
        let kept = self.reason.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        kept.clone().unwrap_or_default()
    }
}

/// How the run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSummary {
    pub statuses: Vec<Status>,
    pub interrupted: bool,
    pub timed_out: bool,
    /// Bugs met: a task whose attempt panicked ended `failed` with this message (exit 101).
    pub internal_errors: Vec<String>,
    /// The run's record could not be kept (the journal could not be written): from then on
    /// nothing started, and no attempt was sent without its record.
    pub record_error: Option<String>,
    /// Why [`Controls::halt`] stopped the run from starting tasks, when it did.
    pub halted: Option<String>,
}

/// An attempt that could not be put on record, and so must not act.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not started: the attempt could not be recorded ({0})")]
pub struct NotRecorded(pub String);

#[derive(Debug)]
enum Message {
    /// Answered with whether the record is written.
    AttemptStarting {
        task: usize,
        attempt: u32,
        ack: oneshot::Sender<Result<(), NotRecorded>>,
    },
    AttemptEnded {
        task: usize,
        attempt: u32,
        ran: bool,
    },
    WorkflowStarted {
        task: usize,
        id: String,
    },
    WorkflowEnded {
        task: usize,
        id: String,
        succeeded: bool,
    },
    Progress {
        task: usize,
        message: String,
        bytes: Option<[u64; 2]>,
    },
    LeaseWaiting {
        task: usize,
        holder: String,
    },
    Output {
        task: usize,
        output: serde_json::Value,
    },
    AttemptFailed {
        task: usize,
        attempt: u32,
        error: String,
        transient: bool,
    },
    Retrying {
        task: usize,
        next_attempt: u32,
        delay: Duration,
    },
}

/// An attempt's line back to the executor loop.
#[derive(Clone, Debug)]
pub struct TaskContext {
    task: usize,
    attempt: u32,
    tx: mpsc::UnboundedSender<Message>,
    workflow_started: Arc<AtomicBool>,
    cancel: CancellationToken,
}

impl TaskContext {
    #[must_use]
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Records that the attempt is about to act (before a workflow POST) and waits until
    /// the record is written, so a crash after this point leaves a trace.
    ///
    /// # Errors
    /// The record could not be written, or the run is gone: the attempt must not act.
    pub async fn attempt_starting(&self) -> Result<(), NotRecorded> {
        let (ack, done) = oneshot::channel();
        let gone = || NotRecorded("the run is ending".to_owned());
        self.tx.send(Message::AttemptStarting { task: self.task, attempt: self.attempt, ack }).map_err(|_| gone())?;
        done.await.map_err(|_| gone())?
    }

    /// Records a workflow this attempt started: the task is never started again.
    pub fn workflow_started(&self, id: &str) {
        self.workflow_started.store(true, Ordering::SeqCst);
        let _gone = self.tx.send(Message::WorkflowStarted { task: self.task, id: id.to_owned() });
    }

    /// Records that this attempt, on record as starting, ended as seen without a workflow:
    /// its command never started (`ran: false`) or ran to a known end (`ran: true`).
    pub fn attempt_ended(&self, ran: bool) {
        let _gone = self.tx.send(Message::AttemptEnded { task: self.task, attempt: self.attempt, ran });
    }

    /// Records that a workflow was seen to finish.
    pub fn workflow_ended(&self, id: &str, succeeded: bool) {
        let _gone = self.tx.send(Message::WorkflowEnded { task: self.task, id: id.to_owned(), succeeded });
    }

    /// The task waits for its target, which another run (`holder`) is acting on.
    pub fn lease_waiting(&self, holder: &str) {
        let _gone = self.tx.send(Message::LeaseWaiting { task: self.task, holder: holder.to_owned() });
    }

    /// What a remote command printed, for display only (see [`Event::Output`]).
    pub fn output(&self, output: &serde_json::Value) {
        let _gone = self.tx.send(Message::Output { task: self.task, output: output.clone() });
    }

    pub fn progress(&self, message: &str) {
        let _gone = self.tx.send(Message::Progress { task: self.task, message: message.to_owned(), bytes: None });
    }

    /// A transfer's progress: `done` of `total` bytes of `what`.
    pub fn transfer(&self, what: &str, done: u64, total: u64) {
        let _gone =
            self.tx.send(Message::Progress { task: self.task, message: what.to_owned(), bytes: Some([done, total]) });
    }

    /// Fires when the run stops waiting for this task.
    #[must_use]
    pub fn cancelled(&self) -> CancellationToken {
        self.cancel.clone()
    }
}

/// How an attempt future ended.
enum TaskEnd {
    Done(Done),
    Failed(TaskError),
    /// The attempt panicked: a bug, with the panic's message.
    Panicked(String),
    /// A bug met outside the attempt (the shared poller), with its message.
    Internal(String),
    Cancelled,
    TimedOut {
        workflow_started: bool,
    },
}

/// The executor's side of the sinks: every event goes out, and the first failure to record
/// one is kept.
struct Recording<'a> {
    sink: &'a mut dyn EventSink,
    error: Option<RecordError>,
}

impl Recording<'_> {
    /// Emits `event`; `false` when it could not be recorded.
    fn emit(&mut self, event: &Event) -> bool {
        match self.sink.emit(event) {
            Ok(()) => true,
            Err(e) => {
                if self.error.is_none() {
                    self.error = Some(e);
                }
                false
            }
        }
    }
}

/// What a run is made of besides its graph, its runner and its sink: the groups' failure
/// policies, the bounds, the controls that stop it, its clock and its id.
pub struct Setup<'c> {
    pub groups: Vec<GroupPolicy>,
    pub limits: Limits,
    pub controls: Controls,
    pub clock: &'c dyn Clock,
    pub run_id: RunId,
}

/// The scheduler's view of `graph`'s tasks: their needs, groups, waves, keys, and their
/// dispatch priority (the longest remaining path by estimate, critical path first).
pub(crate) fn slots<P>(graph: &TaskGraph<P>, metas: &[TaskMeta]) -> Vec<Slot> {
    let mut priority = vec![0u64; metas.len()];
    for &i in graph.topological_order().iter().rev() {
        let own = metas.get(i).map_or(0, |m| m.estimate_secs);
        let tail = graph.dependents(i).into_iter().map(|d| priority[d]).max().unwrap_or(0);
        priority[i] = own.saturating_add(tail);
    }
    metas
        .iter()
        .enumerate()
        .map(|(i, m)| Slot {
            needs: graph.dependencies(i),
            group: m.group,
            wave: m.wave,
            waves_of: m.waves_of,
            site_key: m.site_key.clone(),
            exclusive: m.exclusive.clone(),
            priority: priority[i],
        })
        .collect()
}

/// Runs the graph to the end: every task finishes in exactly one terminal state, reported as
/// `TaskFinished`, between `RunStarted` and `RunFinished`. When an event cannot be recorded,
/// nothing more starts: the tasks in flight are waited for, the rest end `skipped`, and no
/// attempt acts without its record.
pub async fn execute<P, R>(
    graph: &TaskGraph<P>,
    runner: Arc<R>,
    setup: Setup<'_>,
    sink: &mut dyn EventSink,
) -> RunSummary
where
    P: Clone + Send + Sync + 'static,
    R: Runner<P>,
{
    let Setup { groups, limits, controls, clock, run_id } = setup;
    let metas: Vec<TaskMeta> = graph.nodes().map(|p| runner.meta(p)).collect();
    let slots = slots(graph, &metas);
    let names: Vec<String> = metas.iter().map(|m| m.header.id.to_string()).collect();
    let sched = Scheduler::new(slots, names, groups, limits);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let deadline = controls.run_timeout.map(|t| Instant::now() + t);
    let mut run = Execution {
        graph,
        runner,
        sched,
        sink: Recording { sink, error: None },
        unrecorded: false,
        tx,
        set: JoinSet::new(),
        workflows: vec![Vec::new(); metas.len()],
        acting: vec![false; metas.len()],
        interrupted: false,
        timed_out: false,
        halted: None,
        internal_errors: Vec::new(),
        lost: false,
        statuses: vec![None; metas.len()],
        pace: controls.slow_scale.map(|scale| Pace::new(metas.len(), scale)),
        metas,
        controls,
        clock,
    };
    run.sink.emit(&Event::RunStarted {
        run_id,
        at: run.clock.now_ms(),
        tasks: run.metas.iter().map(|m| m.header.clone()).collect(),
    });
    loop {
        run.stop_if_unrecorded();
        run.start_ready();
        if run.sched.is_done() && run.set.is_empty() {
            break;
        }
        if run.set.is_empty() && run.sched.running() == 0 && rx.is_empty() {
            // Nothing runs and nothing may start: only a bug can get here (expansion never
            // makes a job wait on its own later wave). End the rest rather than hang.
            let at = run.clock.now_ms();
            for skip in run.sched.drain(&Cause::Halted { reason: "internal error: no task can start".to_owned() }) {
                run.finish(skip.task, Outcome::from_cause(Status::Skipped, skip.cause), at);
            }
            continue;
        }
        let next_slow = run.pace.as_ref().and_then(|p| p.next(&run.metas, &run.statuses));
        let (drain, halt) = (run.controls.drain.clone(), run.controls.halt.token.clone());
        tokio::select! {
            biased;
            Some(message) = rx.recv() => run.record(message),
            Some(joined) = run.set.join_next(), if !run.set.is_empty() => run.joined(joined),
            () = drain.cancelled(), if !run.interrupted => run.interrupt(),
            () = halt.cancelled(), if run.halted.is_none() => run.halt(),
            () = sleep_until(next_slow), if next_slow.is_some() => run.mark_slow(),
            () = sleep_until(deadline), if deadline.is_some() && !run.timed_out => run.time_out(),
        }
        if run.lost && run.set.is_empty() {
            break;
        }
    }
    run.end()
}

/// The executor loop's state: the one owner of the scheduler, the sink and every task's
/// status; the attempts in flight report to it through their channel.
#[expect(clippy::struct_excessive_bools, reason = "four independent facts about how the run ends")]
struct Execution<'g, 's, 'c, P, R> {
    graph: &'g TaskGraph<P>,
    runner: Arc<R>,
    metas: Vec<TaskMeta>,
    sched: Scheduler,
    sink: Recording<'s>,
    /// Whether the run drained for a record that could not be written.
    unrecorded: bool,
    tx: mpsc::UnboundedSender<Message>,
    set: JoinSet<(usize, TaskEnd)>,
    workflows: Vec<Vec<String>>,
    /// Tasks whose attempt is on record as about to act and has not failed since: it may have
    /// sent its request even though no workflow id came back.
    acting: Vec<bool>,
    interrupted: bool,
    timed_out: bool,
    halted: Option<String>,
    internal_errors: Vec<String>,
    /// A `JoinError` cannot name its task; with every attempt's panic caught, it only comes
    /// from the runtime shutting down.
    lost: bool,
    statuses: Vec<Option<Status>>,
    pace: Option<Pace>,
    controls: Controls,
    clock: &'c dyn Clock,
}

impl<P, R> Execution<'_, '_, '_, P, R>
where
    P: Clone + Send + Sync + 'static,
    R: Runner<P>,
{
    /// Once an event could not be recorded, nothing more starts: what it did could not be
    /// told to a resume.
    fn stop_if_unrecorded(&mut self) {
        if let Some(error) = self.sink.error.as_ref().filter(|_| !self.unrecorded) {
            self.unrecorded = true;
            let reason = format!("{error}; starting nothing more");
            let skip = Cause::Halted { reason: "the run's record could not be written".to_owned() };
            self.stop_starting(reason, &skip);
        }
    }

    /// Starts every task the scheduler lets start: a result carried from an earlier run ends
    /// at once, any other task's attempts are spawned.
    fn start_ready(&mut self) {
        while let Some(i) = self.sched.start_next() {
            if let Some(done) = self.graph.node(i).and_then(|p| self.runner.carried(p)) {
                let at = self.clock.now_ms();
                let status = done.status;
                self.finish(i, done.outcome(), at);
                for skip in self.sched.finish(i, status) {
                    self.finish(skip.task, Outcome::from_cause(Status::Skipped, skip.cause), at);
                }
                continue;
            }
            self.sink.emit(&Event::TaskStarted { task: i, at: self.clock.now_ms() });
            if let Some(pace) = self.pace.as_mut() {
                pace.started(i, Instant::now());
            }
            let Some(payload) = self.graph.node(i).cloned() else { continue };
            let runner = Arc::clone(&self.runner);
            let tx = self.tx.clone();
            let abort = self.controls.abort.child_token();
            let meta = self.metas[i].clone();
            self.set.spawn(async move {
                // A panic is a bug in this task's code: it ends this task, not the run, and
                // its slot is freed like any other end.
                let attempts = std::panic::AssertUnwindSafe(attempts(runner, payload, i, &meta, tx, abort));
                match futures::FutureExt::catch_unwind(attempts).await {
                    Ok(end) => (i, end),
                    Err(payload) => (i, TaskEnd::Panicked(panic_message(payload.as_ref()))),
                }
            });
        }
    }

    /// Records what an attempt said; an attempt about to act is answered once its record is
    /// written, or refused.
    fn record(&mut self, message: Message) {
        let at = self.clock.now_ms();
        let event = match message {
            Message::AttemptStarting { task, attempt, ack } => {
                // An earlier failure refuses it too: the journal writes nothing after one.
                if !self.sink.emit(&Event::AttemptStarting { task, attempt, at }) {
                    let refused = NotRecorded(self.sink.error.as_ref().map_or_else(String::new, ToString::to_string));
                    let _gone = ack.send(Err(refused));
                    return;
                }
                self.acting[task] = true;
                match self.sink.sink.durable() {
                    None => {
                        let _gone = ack.send(Ok(()));
                    }
                    // A store written in the background (an object store): the attempt acts
                    // once its record is written, while the loop goes on; attempts that start
                    // together share one write. A write that fails refuses the attempt, and
                    // the sink refuses every event after, which stops the run from starting
                    // more.
                    Some(written) => {
                        tokio::spawn(async move {
                            let recorded = written.await.map_err(|e| NotRecorded(e.to_string()));
                            let _gone = ack.send(recorded);
                        });
                    }
                }
                return;
            }
            Message::AttemptEnded { task, attempt, ran } => Event::AttemptEnded { task, attempt, ran, at },
            Message::WorkflowStarted { task, id } => {
                self.workflows[task].push(id.clone());
                Event::WorkflowStarted { task, workflow_id: id, at }
            }
            Message::WorkflowEnded { task, id, succeeded } => {
                Event::WorkflowEnded { task, workflow_id: id, succeeded, at }
            }
            Message::Progress { task, message, bytes } => Event::Progress { task, message, bytes, at },
            Message::LeaseWaiting { task, holder } => Event::LeaseWaiting { task, holder, at },
            Message::Output { task, output } => Event::Output { task, output, at },
            Message::AttemptFailed { task, attempt, error, transient } => {
                self.acting[task] = false;
                Event::AttemptFailed { task, attempt, error, transient, at }
            }
            Message::Retrying { task, next_attempt, delay } => Event::TaskRetrying {
                task,
                next_attempt,
                delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                at,
            },
        };
        self.sink.emit(&event);
    }

    /// A task's attempts ended: its outcome is recorded, and what it frees or skips follows.
    fn joined(&mut self, joined: Result<(usize, TaskEnd), tokio::task::JoinError>) {
        let at = self.clock.now_ms();
        let (task, end) = match joined {
            Ok(x) => x,
            Err(e) => {
                self.lost = true;
                tracing::error!("an attempt was lost: {e}");
                self.internal_errors.push(format!("an attempt was lost: {e}"));
                return;
            }
        };
        let outcome = self.outcome(task, end);
        let status = outcome.status;
        if let Some(pace) = self.pace.as_mut() {
            pace.finished(&self.metas[task], task, status);
        }
        self.finish(task, outcome, at);
        for skip in self.sched.finish(task, status) {
            self.finish(skip.task, Outcome::from_cause(Status::Skipped, skip.cause), at);
        }
        if self.controls.abort_in_flight && self.sched.draining().is_some() {
            self.controls.abort.cancel();
        }
    }

    /// How a task ended, said for people: what it may have done when it was stopped.
    fn outcome(&mut self, task: usize, end: TaskEnd) -> Outcome {
        let ids = &self.workflows[task];
        match end {
            TaskEnd::Done(done) => done.outcome(),
            TaskEnd::Failed(error) => Outcome::because(Status::Failed, error.cause, error.message),
            TaskEnd::Panicked(message) => {
                let message = format!("internal error: the task panicked: {message}");
                self.internal_errors.push(format!("{}: {message}", self.metas[task].header.id));
                Outcome::because(Status::Failed, Cause::Internal, message)
            }
            TaskEnd::Internal(message) => {
                self.internal_errors.push(format!("{}: {message}", self.metas[task].header.id));
                Outcome::because(Status::Failed, Cause::Internal, message)
            }
            TaskEnd::Cancelled => Outcome::because(
                Status::Cancelled,
                Cause::Cancelled { workflow_started: !ids.is_empty() },
                if ids.is_empty() && self.acting[task] {
                    "cancelled after it began to act (a workflow request or a command was out): it may have taken effect, and --resume checks before acting again".to_owned()
                } else if ids.is_empty() {
                    "cancelled before any workflow started".to_owned()
                } else {
                    format!("stopped waiting for workflow {}: remote state unknown", ids.join(", "))
                },
            ),
            TaskEnd::TimedOut { workflow_started } => Outcome::because(
                Status::Failed,
                Cause::TimedOut { workflow_started },
                if workflow_started {
                    format!("timed out; workflow {} may still be running", ids.join(", "))
                } else if self.acting[task] {
                    "timed out after it began to act (a workflow request or a command was out): it may have taken effect, and --resume checks before acting again".to_owned()
                } else {
                    "timed out".to_owned()
                },
            ),
        }
    }

    /// Ctrl-C: nothing more starts; the tasks in flight are waited for, or aborted.
    fn interrupt(&mut self) {
        self.interrupted = true;
        let at = self.clock.now_ms();
        self.sink.emit(&Event::Draining {
            reason: "interrupted".to_owned(),
            in_flight: self.set.len(),
            waiting: !self.controls.abort_in_flight,
            at,
        });
        for skip in self.sched.drain(&Cause::Interrupted) {
            self.finish(skip.task, Outcome::from_cause(Status::Skipped, skip.cause), at);
        }
        if self.controls.abort_in_flight {
            self.controls.abort.cancel();
        }
    }

    /// A halt from outside the tasks (the API went silent, the lock was taken over).
    fn halt(&mut self) {
        let reason = self.controls.halt.reason();
        let said = format!("{reason}; starting nothing more");
        let skip = Cause::Halted { reason: reason.clone() };
        self.stop_starting(said, &skip);
        self.halted = Some(reason);
    }

    /// Marks the tasks running twice as long as expected.
    fn mark_slow(&mut self) {
        let at = self.clock.now_ms();
        if let Some(pace) = self.pace.as_mut() {
            for (task, expected) in pace.due(&self.metas, &self.statuses, Instant::now()) {
                let expected_ms = u64::try_from(expected.as_millis()).unwrap_or(u64::MAX);
                self.sink.emit(&Event::TaskSlow { task, expected_ms, at });
            }
        }
    }

    /// The run's timeout: nothing more starts, and the tasks in flight are aborted.
    fn time_out(&mut self) {
        self.timed_out = true;
        let at = self.clock.now_ms();
        for skip in self.sched.drain(&Cause::RunTimedOut) {
            self.finish(skip.task, Outcome::from_cause(Status::Skipped, skip.cause), at);
        }
        self.controls.abort.cancel();
    }

    /// Ends the run: whatever a panic left unaccounted for is failed, so every task has one
    /// terminal state.
    fn end(mut self) -> RunSummary {
        let at = self.clock.now_ms();
        for task in 0..self.statuses.len() {
            if self.statuses[task].is_none() {
                let outcome = Outcome::because(Status::Failed, Cause::Internal, "internal error: the attempt was lost");
                self.finish(task, outcome, at);
            }
        }
        let (interrupted, timed_out) = (self.interrupted, self.timed_out);
        self.sink.emit(&Event::RunFinished { at: self.clock.now_ms(), interrupted, timed_out });
        RunSummary {
            statuses: self.statuses.into_iter().map(|s| s.unwrap_or(Status::Failed)).collect(),
            interrupted,
            timed_out,
            internal_errors: self.internal_errors,
            record_error: self.sink.error.as_ref().map(ToString::to_string),
            halted: self.halted,
        }
    }

    /// Ends a task: its status kept, its `TaskFinished` emitted.
    fn finish(&mut self, task: usize, outcome: Outcome, at: Millis) {
        self.statuses[task] = Some(outcome.status);
        self.sink.emit(&Event::TaskFinished { task, outcome, at });
    }

    /// Starts nothing more, for a reason found outside the tasks (the record, the API): says
    /// so with the tasks still in flight, which are waited for, and ends every task not
    /// started `skipped` with `skip`.
    fn stop_starting(&mut self, reason: String, skip: &Cause) {
        let at = self.clock.now_ms();
        self.sink.emit(&Event::Draining { reason, in_flight: self.set.len(), waiting: true, at });
        for skipped in self.sched.drain(skip) {
            self.finish(skipped.task, Outcome::from_cause(Status::Skipped, skipped.cause), at);
        }
    }
}

use tb_core::panics::message as panic_message;

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A task's attempts: retries of transient failures (never after a workflow started),
/// within the task's timeout, until the run stops waiting.
async fn attempts<P, R: Runner<P>>(
    runner: Arc<R>,
    payload: P,
    task: usize,
    meta: &TaskMeta,
    tx: mpsc::UnboundedSender<Message>,
    abort: CancellationToken,
) -> TaskEnd {
    let deadline = meta.timeout.map(|t| Instant::now() + t);
    let started = Arc::new(AtomicBool::new(false));
    let tries = meta.retries.attempts.max(1);
    for attempt in 1..=tries {
        let ctx = TaskContext {
            task,
            attempt,
            tx: tx.clone(),
            workflow_started: Arc::clone(&started),
            cancel: abort.clone(),
        };
        let future = runner.attempt(&payload, ctx);
        let result = tokio::select! {
            r = future => r,
            () = abort.cancelled() => return TaskEnd::Cancelled,
            () = sleep_until(deadline), if deadline.is_some() => {
                return TaskEnd::TimedOut { workflow_started: started.load(Ordering::SeqCst) };
            }
        };
        let error = match result {
            Ok(done) => return TaskEnd::Done(done),
            Err(e) => e,
        };
        let transient = error.class == ErrorClass::Transient;
        let _gone = tx.send(Message::AttemptFailed { task, attempt, error: error.message.clone(), transient });
        if error.class == ErrorClass::Internal {
            return TaskEnd::Internal(error.message);
        }
        if !transient || started.load(Ordering::SeqCst) || attempt == tries {
            return TaskEnd::Failed(error);
        }
        let delay = backoff(meta.retries.backoff, attempt);
        let _gone = tx.send(Message::Retrying { task, next_attempt: attempt + 1, delay });
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = abort.cancelled() => return TaskEnd::Cancelled,
            () = sleep_until(deadline), if deadline.is_some() => return TaskEnd::TimedOut { workflow_started: false },
        }
    }
    TaskEnd::Internal("no attempt was made".to_owned())
}

/// Delay before retry `attempt + 1`: the shared backoff, doubling from the job's base.
fn backoff(base: Duration, attempt: u32) -> Duration {
    tb_core::backoff::delay(base, attempt, Duration::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn a_task_is_slow_past_twice_its_jobs_median_once_one_finished_else_the_estimate() {
        let meta = |job: &str| TaskMeta {
            header: TaskHeader::new(job, None, None, "fake"),
            group: 0,
            wave: 0,
            waves_of: None,
            site_key: None,
            exclusive: Vec::new(),
            estimate_secs: 30,
            timeout: None,
            retries: RetryPolicy { attempts: 1, backoff: Duration::ZERO },
        };
        let metas = vec![meta("a"), meta("a"), meta("a"), meta("b")];
        let mut pace = Pace::new(4, 0.1);
        assert_eq!(pace.expected(&metas[0]), Duration::from_secs(3), "the estimate, on the simulator's clock");
        let start = Instant::now();
        for (t, d) in [(0, 1000), (1, 1200), (2, 9000)] {
            pace.started(t, start.checked_sub(Duration::from_millis(d)).unwrap());
            pace.finished(&metas[t], t, Status::Succeeded);
        }
        let medians = pace.medians.get("a").copied().unwrap();
        assert!(medians >= Duration::from_millis(1200) && medians < Duration::from_secs(9), "{medians:?}");
        pace.medians.insert("a".into(), Duration::from_millis(1200));
        assert_eq!(pace.expected(&metas[0]), Duration::from_millis(1200), "the median of what this run saw");
        assert_eq!(pace.expected(&metas[3]), Duration::from_secs(3), "another job keeps its estimate");
        pace.started(0, start);
        pace.started(1, start);
        pace.started(3, start);
        let statuses = vec![None, Some(Status::Succeeded), None, None];
        assert_eq!(pace.next(&metas, &statuses), Some(start + Duration::from_millis(2400)));
        let due = pace.due(&metas, &statuses, start + Duration::from_millis(2500));
        assert_eq!(due, [(0, Duration::from_millis(1200))], "only the unfinished task of job a");
        assert!(pace.due(&metas, &statuses, start + Duration::from_secs(90)).iter().all(|(t, _)| *t == 3), "once each");
        // A simulator's clock shrinks estimates below what this machine takes: never slow
        // before a second.
        let mut fast = Pace::new(1, 0.001);
        fast.started(0, start);
        assert_eq!(fast.next(&metas[..1], &[None]), Some(start + SLOW_FLOOR));
    }

    /// A task for the fake runner: how each attempt goes.
    #[derive(Clone, Debug)]
    struct Fake {
        name: &'static str,
        /// Per attempt: `Ok(ms)` succeeds after ms, `Err((transient, start_workflow))` fails.
        script: Vec<Result<u64, (bool, bool)>>,
        timeout: Option<Duration>,
        attempts: u32,
    }

    struct FakeRunner {
        calls: Arc<Mutex<Vec<(&'static str, u32)>>>,
    }

    impl Runner<Fake> for FakeRunner {
        fn meta(&self, p: &Fake) -> TaskMeta {
            TaskMeta {
                header: TaskHeader::new(p.name, None, None, "fake"),
                group: 0,
                wave: 0,
                waves_of: None,
                site_key: None,
                exclusive: Vec::new(),
                estimate_secs: 1,
                timeout: p.timeout,
                retries: RetryPolicy { attempts: p.attempts, backoff: Duration::from_secs(10) },
            }
        }

        fn attempt(
            &self,
            p: &Fake,
            ctx: TaskContext,
        ) -> impl Future<Output = Result<Done, TaskError>> + Send + 'static {
            let attempt = ctx.attempt();
            self.calls.lock().unwrap().push((p.name, attempt));
            let step = p.script.get(attempt as usize - 1).copied().unwrap_or(Ok(1));
            let panics = p.name.starts_with("panic");
            // Its request goes out and no answer comes back.
            let unanswered = p.name.starts_with("unanswered");
            async move {
                if let Err(e) = ctx.attempt_starting().await {
                    return Err(TaskError {
                        message: e.to_string(),
                        cause: Cause::Internal,
                        class: ErrorClass::Permanent,
                    });
                }
                if unanswered {
                    std::future::pending::<()>().await;
                }
                assert!(!panics, "a bug in the runner");
                match step {
                    Ok(ms) => {
                        ctx.workflow_started("wf");
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        Ok(Done {
                            status: Status::Succeeded,
                            message: "ok".into(),
                            data: None,
                            run: None,
                            record: None,
                        })
                    }
                    Err((transient, started)) => {
                        if started {
                            ctx.workflow_started("wf");
                        }
                        let class = if transient { ErrorClass::Transient } else { ErrorClass::Permanent };
                        Err(TaskError { message: "boom".into(), cause: Cause::Failed { reason: "boom".into() }, class })
                    }
                }
            }
        }
    }

    struct Recorder(Vec<Event>);

    impl EventSink for Recorder {
        fn emit(&mut self, event: &Event) -> Result<(), RecordError> {
            self.0.push(event.clone());
            Ok(())
        }
    }

    struct FixedClock;

    impl Clock for FixedClock {
        fn now_ms(&self) -> Millis {
            0
        }
    }

    async fn run_fakes(tasks: Vec<Fake>, controls: Controls) -> (RunSummary, Vec<Event>, Vec<(&'static str, u32)>) {
        run_fakes_in(tasks, controls, 4).await
    }

    /// One group that goes on after a failure, `concurrency` slots, one per site.
    fn test_setup(concurrency: usize, controls: Controls) -> Setup<'static> {
        Setup {
            groups: vec![GroupPolicy::default()],
            limits: Limits { concurrency, per_site: 1, fail_fast: false, max_failures: None },
            controls,
            clock: &FixedClock,
            run_id: RunId::from_parts("t", 0),
        }
    }

    /// [`run_fakes`] with `concurrency` slots.
    async fn run_fakes_in(
        tasks: Vec<Fake>,
        controls: Controls,
        concurrency: usize,
    ) -> (RunSummary, Vec<Event>, Vec<(&'static str, u32)>) {
        let graph = TaskGraph::build(tasks, Vec::new(), |t: &Fake| t.name.to_owned()).unwrap();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let runner = Arc::new(FakeRunner { calls: Arc::clone(&calls) });
        let mut sink = Recorder(Vec::new());
        let summary = execute(&graph, runner, test_setup(concurrency, controls), &mut sink).await;
        let calls = calls.lock().unwrap().clone();
        (summary, sink.0, calls)
    }

    fn fake(name: &'static str, script: Vec<Result<u64, (bool, bool)>>, attempts: u32) -> Fake {
        Fake { name, script, timeout: None, attempts }
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_task_fails_alone_and_frees_its_slot() {
        // One slot: the tasks after the panicking one can only run if its slot is freed.
        let tasks = vec![fake("panic", vec![Ok(5)], 1), fake("b", vec![Ok(5)], 1), fake("c", vec![Ok(5)], 1)];
        let (summary, events, _) = run_fakes_in(tasks, Controls::default(), 1).await;
        assert_eq!(summary.statuses, [Status::Failed, Status::Succeeded, Status::Succeeded]);
        assert_eq!(summary.internal_errors.len(), 1, "{:?}", summary.internal_errors);
        assert!(summary.internal_errors[0].contains("a bug in the runner"), "{:?}", summary.internal_errors);
        let message = events.iter().find_map(|e| match e {
            Event::TaskFinished { task: 0, outcome, .. } => Some(outcome.message.clone()),
            _ => None,
        });
        assert_eq!(message.as_deref(), Some("internal error: the task panicked: a bug in the runner"));
        assert!(matches!(events.last(), Some(Event::RunFinished { .. })));
    }

    /// Keeps every event it is given; refuses (as a full disk would) from the `limit`-th on,
    /// and remembers which it refused.
    struct FullDisk {
        limit: usize,
        events: Vec<(Event, bool)>,
    }

    impl EventSink for FullDisk {
        fn emit(&mut self, event: &Event) -> Result<(), RecordError> {
            let kept = self.events.len() < self.limit;
            self.events.push((event.clone(), kept));
            if kept { Ok(()) } else { Err(RecordError { message: "no space left on device".into(), source: None }) }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_cannot_be_recorded_never_acts_and_nothing_more_starts() {
        let tasks: Vec<Fake> =
            ["a", "b", "c", "d", "e", "f", "g", "h"].into_iter().map(|n| fake(n, vec![Ok(1_000)], 1)).collect();
        let graph = TaskGraph::build(tasks, Vec::new(), |t: &Fake| t.name.to_owned()).unwrap();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let runner = Arc::new(FakeRunner { calls: Arc::clone(&calls) });
        // RunStarted, then two tasks' start and attempt records; the third's is refused.
        let mut sink = FullDisk { limit: 6, events: Vec::new() };
        let summary = execute(&graph, runner, test_setup(2, Controls::default()), &mut sink).await;
        assert!(summary.record_error.as_deref().is_some_and(|e| e.contains("no space")), "{summary:?}");
        // Every workflow started comes after its attempt's record was written.
        let recorded: Vec<usize> = sink
            .events
            .iter()
            .filter_map(|(e, kept)| match e {
                Event::AttemptStarting { task, .. } if *kept => Some(*task),
                _ => None,
            })
            .collect();
        let acted: Vec<usize> = sink
            .events
            .iter()
            .filter_map(|(e, _)| match e {
                Event::WorkflowStarted { task, .. } => Some(*task),
                _ => None,
            })
            .collect();
        assert!(!acted.is_empty());
        assert!(acted.iter().all(|t| recorded.contains(t)), "acted {acted:?}, recorded {recorded:?}");
        // The run drained: the tasks in flight ended, nothing else started.
        let started = sink.events.iter().filter(|(e, _)| matches!(e, Event::TaskStarted { .. })).count();
        assert!(started <= 3, "{started} tasks started after the record failed");
        let skipped = summary.statuses.iter().filter(|s| **s == Status::Skipped).count();
        assert_eq!(skipped, 8 - started, "{:?}", summary.statuses);
        let drained = sink.events.iter().find_map(|(e, _)| match e {
            Event::Draining { reason, .. } => Some(reason.clone()),
            _ => None,
        });
        assert!(drained.is_some_and(|r| r.contains("no space left on device")));
        assert!(matches!(sink.events.last(), Some((Event::RunFinished { .. }, _))));
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_retry_but_never_after_a_workflow_started() {
        let tasks = vec![
            fake("flaky", vec![Err((true, false)), Err((true, false)), Ok(5)], 3),
            fake("started", vec![Err((true, true)), Ok(5)], 3),
            fake("permanent", vec![Err((false, false)), Ok(5)], 3),
        ];
        let (summary, events, calls) = run_fakes(tasks, Controls::default()).await;
        assert_eq!(summary.statuses, [Status::Succeeded, Status::Failed, Status::Failed]);
        assert_eq!(calls.iter().filter(|c| c.0 == "flaky").count(), 3);
        assert_eq!(calls.iter().filter(|c| c.0 == "started").count(), 1, "a started workflow is never started again");
        assert_eq!(calls.iter().filter(|c| c.0 == "permanent").count(), 1);
        let retries = events.iter().filter(|e| matches!(e, Event::TaskRetrying { task: 0, .. })).count();
        assert_eq!(retries, 2);
        assert!(matches!(events.first(), Some(Event::RunStarted { .. })));
        assert!(matches!(events.last(), Some(Event::RunFinished { interrupted: false, .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_after_the_workflow_started_says_it_may_still_run() {
        let mut slow = fake("slow", vec![Ok(60_000)], 3);
        slow.timeout = Some(Duration::from_secs(5));
        let (summary, events, calls) = run_fakes(vec![slow], Controls::default()).await;
        assert_eq!(summary.statuses, [Status::Failed]);
        assert_eq!(calls.len(), 1);
        let message = events.iter().find_map(|e| match e {
            Event::TaskFinished { outcome, .. } => Some(outcome.message.clone()),
            _ => None,
        });
        assert_eq!(message.as_deref(), Some("timed out; workflow wf may still be running"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_cancelled_or_timed_out_with_its_request_out_may_have_started() {
        let controls = Controls { run_timeout: Some(Duration::from_secs(100)), ..Controls::default() };
        let mut timed = fake("unanswered-timed", vec![Ok(1)], 1);
        timed.timeout = Some(Duration::from_secs(5));
        // Failing at once, then waiting 5 to 10 s, 10 to 20 s...: waiting to retry at 100 s.
        let waiting = fake("waiting", vec![Err((true, false)); 10], 10);
        let tasks = vec![fake("unanswered", vec![Ok(1)], 1), timed, waiting];
        let (_, events, _) = run_fakes(tasks, controls).await;
        let message = |i: usize| {
            events.iter().find_map(|e| match e {
                Event::TaskFinished { task, outcome, .. } if *task == i => Some(outcome.message.clone()),
                _ => None,
            })
        };
        assert_eq!(
            message(0).as_deref(),
            Some(
                "cancelled after it began to act (a workflow request or a command was out): it may have taken effect, and --resume checks before acting again"
            )
        );
        assert_eq!(
            message(1).as_deref(),
            Some(
                "timed out after it began to act (a workflow request or a command was out): it may have taken effect, and --resume checks before acting again"
            )
        );
        // Its attempt failed and nothing was out while it waited to retry.
        assert_eq!(message(2).as_deref(), Some("cancelled before any workflow started"));
    }

    #[tokio::test(start_paused = true)]
    async fn abort_cancels_tasks_in_flight_and_the_run_timeout_aborts() {
        let controls = Controls { run_timeout: Some(Duration::from_secs(30)), ..Controls::default() };
        let tasks = vec![fake("long", vec![Ok(3_600_000)], 1), fake("short", vec![Ok(10)], 1)];
        let (summary, events, _) = run_fakes(tasks, controls).await;
        assert!(summary.timed_out);
        assert_eq!(summary.statuses, [Status::Cancelled, Status::Succeeded]);
        let cancelled = events.iter().find_map(|e| match e {
            Event::TaskFinished { task: 0, outcome, .. } => Some(outcome.message.clone()),
            _ => None,
        });
        assert_eq!(cancelled.as_deref(), Some("stopped waiting for workflow wf: remote state unknown"));
    }
}
