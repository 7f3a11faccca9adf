//! Live progress while a run goes, on stderr only.
//!
//! On a terminal ([`Mode::Bars`]): one summary line (done/total, failures, an ETA, the
//! rollout wave, the other counts: what matters first), then a line per task in flight up to
//! the rows that fit, then "+N more"; failures and retries are printed above as they happen,
//! and log lines with the block set aside (`telemetry::draw_logs_around`). Off a terminal
//! ([`Mode::Lines`]): timestamped lines chosen by a [`StatusLevel`] (failures by default) and
//! a progress line at most every [`LiveOptions::progress_every_ms`] of run time, so a run of
//! 1,000 tasks in CI prints tens of lines, not thousands. [`Mode::Quiet`] prints only the
//! answer to Ctrl-C.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::paint::Paint;
use tb_core::events::{Event, EventSink, Millis, Outcome, Status, TaskHeader};
use tb_core::timefmt::{clock, duration_ms};
use tb_core::words::counted;

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Bars,
    Lines,
    Quiet,
}

/// Which task events are printed as lines, each level including the ones before it (as
/// nextest's `--status-level`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StatusLevel {
    /// Nothing per task (the summary and progress lines only).
    None,
    /// Failed tasks.
    Fail,
    /// And retries.
    Retry,
    /// And skipped or cancelled tasks.
    Skip,
    /// And every task's end.
    Pass,
    /// And every start and workflow.
    All,
}

impl StatusLevel {
    /// Every level, from the fewest lines to the most.
    pub const ALL: [Self; 6] = [Self::None, Self::Fail, Self::Retry, Self::Skip, Self::Pass, Self::All];

    /// Its name on the command line (`--status-level fail`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Fail => "fail",
            Self::Retry => "retry",
            Self::Skip => "skip",
            Self::Pass => "pass",
            Self::All => "all",
        }
    }

    /// Whether a task that ended with `status` is printed at this level.
    #[must_use]
    pub fn shows(self, status: Status) -> bool {
        self >= match status {
            Status::Failed => Self::Fail,
            Status::Skipped | Status::Cancelled => Self::Skip,
            Status::Succeeded | Status::Unchanged => Self::Pass,
        }
    }
}

/// How the live reporter draws.
#[derive(Clone)]
pub struct LiveOptions {
    pub mode: Mode,
    pub paint: Paint,
    /// `None`: the mode's default (bars: failures and retries; lines: failures).
    pub status_level: Option<StatusLevel>,
    /// The plan's estimate of the whole run in platform seconds, as `plan` gives it; on this
    /// run's clock (see `time_scale`) it is refined by the run times learned as it goes.
    pub estimate_secs: Option<u64>,
    /// Real seconds per platform second: the simulator's time scale, 1 against the API. The
    /// tasks' own estimates are in platform seconds, their run times in real ones.
    pub time_scale: f64,
    /// Task lines shown under the summary on a terminal before "+N more".
    pub rows: usize,
    /// Off a terminal: the least run time between two progress lines.
    pub progress_every_ms: u64,
    /// On a terminal: its width; lines printed above the bars are cut to it (a wrapped line
    /// would leave the bars drawn twice), whole in the table and reports.
    pub columns: usize,
    /// The run's forecast, asked what is left for the ETA (without one, the plan's estimate
    /// scaled by what tasks took so far).
    pub remaining: Option<std::sync::Arc<dyn Remaining>>,
    /// The run's forecast on its clock, milliseconds: (p10, p50, p90), said as the run starts.
    pub forecast: Option<(u64, u64, u64)>,
}

impl std::fmt::Debug for LiveOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveOptions")
            .field("mode", &self.mode)
            .field("estimate_secs", &self.estimate_secs)
            .field("time_scale", &self.time_scale)
            .field("remaining", &self.remaining.is_some())
            .finish_non_exhaustive()
    }
}

impl LiveOptions {
    #[must_use]
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            paint: Paint::default(),
            status_level: None,
            estimate_secs: None,
            time_scale: 1.0,
            rows: 10,
            progress_every_ms: 15_000,
            columns: 100,
            remaining: None,
            forecast: None,
        }
    }

    /// The plan's estimate on this run's clock: the platform's seconds times the time scale.
    fn scaled_estimate(&self) -> Option<u64> {
        #[expect(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "an estimate"
        )]
        self.estimate_secs.map(|platform| (platform as f64 * self.time_scale).ceil() as u64)
    }

    /// ", estimated D" (empty without an estimate): on a simulator whose clock runs faster,
    /// said to be on its clock, with the platform's time (what `plan` says) beside it.
    pub(crate) fn estimate(&self) -> String {
        if let Some((p10, p50, p90)) = self.forecast {
            let clock = if (self.time_scale - 1.0).abs() > f64::EPSILON { " on the simulator's clock" } else { "" };
            return format!(", estimated {} ({}–{}){clock}", duration_ms(p50), duration_ms(p10), duration_ms(p90));
        }
        let (Some(platform), Some(secs)) = (self.estimate_secs, self.scaled_estimate()) else { return String::new() };
        if (self.time_scale - 1.0).abs() > f64::EPSILON {
            format!(
                ", estimated {} on the simulator's clock ({} of platform time)",
                duration_ms(secs * 1000),
                duration_ms(platform * 1000)
            )
        } else {
            format!(", estimated {}", duration_ms(secs * 1000))
        }
    }

    fn level(&self) -> StatusLevel {
        self.status_level.unwrap_or(match self.mode {
            Mode::Bars => StatusLevel::Retry,
            Mode::Lines => StatusLevel::Fail,
            Mode::Quiet => StatusLevel::None,
        })
    }
}

/// What is left of a run, forecast from where it stands (`tb_run::forecast`): asked again as
/// the run goes, for the ETA.
pub trait Remaining: Send + Sync {
    /// Seconds left on the run's clock, with each task ended (its status, and the seconds it
    /// took when it ran in this run), running (no status; the seconds it has run) or waiting
    /// (neither).
    fn left_secs(&self, now: &[(Option<Status>, Option<f64>)]) -> f64;
}

/// Where the run stands, folded from its events; the summary line renders it.
#[derive(Debug, Default)]
struct Tally {
    tasks: Vec<TaskHeader>,
    starts: HashMap<usize, u64>,
    counts: BTreeMap<Status, usize>,
    done: usize,
    /// The run is draining (interrupted, halted): nothing more starts.
    draining: bool,
    /// Tasks in flight, oldest first: (start time, task).
    running: BTreeSet<(u64, usize)>,
    /// The highest wave a task of a rolled-out job has started in (`None` before one has),
    /// and the highest of the plan.
    wave: Option<u32>,
    last_wave: u32,
    /// The jobs with rollout waves: a task of another job (a backup before the rollout)
    /// says nothing of waves.
    waved: std::collections::HashSet<String>,
    /// Estimated seconds of the tasks not yet finished, and of all of them.
    left_estimate: u64,
    total_estimate: u64,
    /// Run times learned: the actual milliseconds and the estimated seconds of the tasks
    /// that ran to an end in this run.
    learned_ms: u64,
    learned_estimate: u64,
    /// How each task ended, once it has, and what it took when it ran in this run.
    ended: Vec<Option<Status>>,
    took: Vec<Option<f64>>,
}

impl Tally {
    fn start(&mut self, tasks: &[TaskHeader]) {
        self.tasks = tasks.to_vec();
        self.last_wave = tasks.iter().map(|t| t.wave).max().unwrap_or(0);
        self.waved = tasks.iter().filter(|t| t.wave > 0).map(|t| t.job.clone()).collect();
        self.total_estimate = tasks.iter().map(|t| t.estimate_secs).sum();
        self.left_estimate = self.total_estimate;
        self.ended = vec![None; tasks.len()];
        self.took = vec![None; tasks.len()];
    }

    fn task_started(&mut self, task: usize, at: u64) {
        self.starts.insert(task, at);
        self.running.insert((at, task));
        if let Some(header) = self.tasks.get(task).filter(|h| self.waved.contains(&h.job)) {
            self.wave = Some(self.wave.map_or(header.wave, |w| w.max(header.wave)));
        }
    }

    fn task_finished(&mut self, task: usize, outcome: &Outcome, at: u64) -> Option<u64> {
        if let Some(started) = self.starts.get(&task) {
            self.running.remove(&(*started, task));
        }
        self.done += 1;
        if let Some(ended) = self.ended.get_mut(task) {
            *ended = Some(outcome.status);
        }
        *self.counts.entry(outcome.status).or_default() += 1;
        let estimate = self.tasks.get(task).map_or(0, |t| t.estimate_secs);
        self.left_estimate = self.left_estimate.saturating_sub(estimate);
        let took = self.starts.get(&task).map(|s| at.saturating_sub(*s));
        // Only work done in this run teaches how long work takes.
        if let Some(ms) = took.filter(|_| outcome.run.is_none() && outcome.status != Status::Skipped) {
            if let Some(slot) = self.took.get_mut(task) {
                #[expect(clippy::cast_precision_loss, reason = "milliseconds a task took")]
                let secs = ms as f64 / 1000.0;
                *slot = Some(secs);
            }
            self.learned_ms += ms;
            self.learned_estimate += estimate;
        }
        took
    }

    fn name(&self, task: usize) -> String {
        self.tasks.get(task).map_or_else(|| format!("#{task}"), |t| t.id.to_string())
    }

    /// Seconds left: the plan's estimate, scaled by how long tasks have really taken so far
    /// against their estimates (`time_scale` real seconds to a platform second), times the
    /// share of estimated work not yet done.
    /// Seconds left by the run's forecast at `now` (ms): never nothing while a task runs.
    fn forecast_left(&self, model: &dyn Remaining, now: u64) -> u64 {
        let mut states: Vec<(Option<Status>, Option<f64>)> =
            self.ended.iter().zip(&self.took).map(|(e, t)| (*e, e.and(*t))).collect();
        for &(started, task) in &self.running {
            if let Some(state) = states.get_mut(task) {
                #[expect(clippy::cast_precision_loss, reason = "milliseconds run")]
                let ran = now.saturating_sub(started) as f64 / 1000.0;
                state.1 = Some(ran);
            }
        }
        let left = model.left_secs(&states);
        let floor = if self.running.is_empty() { 0.0 } else { 1.0 };
        #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a non-negative estimate")]
        let secs = left.max(floor).ceil() as u64;
        secs
    }

    fn eta_secs(&self, plan_estimate: Option<u64>, time_scale: f64) -> Option<u64> {
        let plan = plan_estimate.filter(|_| self.total_estimate > 0)?;
        #[expect(clippy::cast_precision_loss, reason = "an estimate")]
        let ratio = if self.learned_estimate > 0 {
            let expected_ms = self.learned_estimate as f64 * 1000.0 * time_scale;
            (self.learned_ms as f64 / expected_ms).clamp(0.05, 20.0)
        } else {
            1.0
        };
        #[expect(clippy::cast_precision_loss, reason = "an estimate")]
        let left = plan as f64 * ratio * self.left_estimate as f64 / self.total_estimate as f64;
        #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a non-negative estimate")]
        Some(left.round() as u64)
    }

    /// `412/1000 done · 2 failed · ETA 2m10s · wave 3/10 · 30 running · 380 succeeded`. Done
    /// counts every task that ended, skipped ones too, so a finished run reads `1000/1000`;
    /// how it ended is in the counts after. While the run drains nothing more starts, so no
    /// ETA is given.
    fn summary(&self, paint: Paint, options: &LiveOptions, now: u64) -> String {
        let (plan_estimate, time_scale) = (options.scaled_estimate(), options.time_scale);
        // What matters first, so that a narrow terminal cuts the least of it: how far, what
        // failed, how long to go, then the rest.
        let count = |status: Status| {
            let n = self.counts.get(&status).copied().unwrap_or(0);
            (n > 0).then(|| paint.status(status, &format!("{n} {}", status.as_str())))
        };
        let mut parts = vec![format!("{}/{} done", self.done, self.tasks.len())];
        parts.extend(count(Status::Failed));
        let going = self.done < self.tasks.len() && !self.draining;
        let eta = match &options.remaining {
            Some(model) if !self.ended.is_empty() => Some(self.forecast_left(model.as_ref(), now)),
            _ => self.eta_secs(plan_estimate, time_scale),
        };
        if let Some(eta) = eta.filter(|_| going) {
            parts.push(format!("ETA {}", duration_ms(eta * 1000)));
        }
        if let Some(wave) = self.wave.filter(|_| self.last_wave > 0) {
            parts.push(format!("wave {}/{}", wave + 1, self.last_wave + 1));
        }
        parts.push(format!("{} running", self.running.len()));
        for status in [Status::Succeeded, Status::Unchanged, Status::Skipped, Status::Cancelled] {
            parts.extend(count(status));
        }
        parts.join(" · ")
    }
}

/// The live reporter.
pub struct Live<'a> {
    options: LiveOptions,
    out: &'a mut dyn Write,
    tally: Tally,
    last_progress: u64,
    /// The time of the latest event: how long a task in flight has run is measured to it.
    now: u64,
    /// While the bar is drawn, the terminal does not echo `^C` (see [`QuietInterrupts`]).
    quiet: Option<QuietInterrupts>,
    /// Draws the block again every second between events (see [`Ticker`]).
    ticker: Option<Ticker>,
    finished: bool,
    /// On a terminal: one bar whose message is the whole display (indicatif counts the
    /// lines of a message, so the block redraws in place however many tasks come and go).
    bar: Option<ProgressBar>,
    target: Option<ProgressDrawTarget>,
    /// What each task in flight is doing (its workflow, its transfer), for its line.
    doing: HashMap<usize, String>,
    /// Tasks marked slow, shown so on their lines.
    slow: BTreeSet<usize>,
}

impl<'a> Live<'a> {
    /// Progress to `out` (stderr) as `options` say.
    pub fn new(options: LiveOptions, out: &'a mut dyn Write) -> Self {
        Self {
            options,
            out,
            tally: Tally::default(),
            last_progress: 0,
            now: 0,
            quiet: None,
            ticker: None,
            finished: false,
            bar: None,
            target: Some(ProgressDrawTarget::stderr()),
            doing: HashMap::new(),
            slow: BTreeSet::new(),
        }
    }

    /// Draws on `target` instead of stderr (tests draw nowhere and read [`Self::block`]).
    #[must_use]
    pub fn with_draw_target(mut self, target: ProgressDrawTarget) -> Self {
        self.target = Some(target);
        self
    }

    fn level(&self) -> StatusLevel {
        self.options.level()
    }

    /// A line above the display, or a timestamped line.
    fn say(&mut self, at: u64, text: &str) {
        // Progress is best effort: a closed stderr must not stop the run.
        if let Some(bar) = &self.bar {
            bar.println(cut(text, self.options.columns.saturating_sub(1)));
        } else {
            let _shown = writeln!(self.out, "{} {text}", clock(at));
        }
    }

    /// A line above the display that must be read whole (what Ctrl-C did, and what a second
    /// one does): wrapped at the terminal's width, where other lines are cut.
    fn say_whole(&mut self, at: u64, text: &str) {
        if let Some(bar) = &self.bar {
            bar.println(
                super::table::wrap_lines(text.split_whitespace(), " ", self.options.columns.saturating_sub(1))
                    .join("\n"),
            );
        } else {
            self.say(at, text);
        }
    }

    fn summary(&self) -> String {
        self.tally.summary(self.options.paint, &self.options, self.now)
    }

    fn start_bar(&mut self) {
        let Some(target) = self.target.take() else { return };
        let bar = ProgressBar::with_draw_target(Some(self.tally.tasks.len() as u64), target);
        let template =
            format!("{{spinner:.green}} [{{bar:{}.green/white}}] {{elapsed_precise}} · {{msg}}", self.bar_width());
        bar.set_style(
            ProgressStyle::with_template(&template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        self.quiet = Some(QuietInterrupts::on_stderr());
        self.ticker = Some(Ticker::start(bar.clone()));
        crate::telemetry::draw_logs_around(Some(bar.clone()));
        self.bar = Some(bar);
    }

    /// The bar's columns: fewer on a narrow terminal, so the counts keep their room.
    fn bar_width(&self) -> usize {
        if self.options.columns >= 120 { 20 } else { 10 }
    }

    /// The display under the bar: the summary, then the oldest tasks in flight up to
    /// `rows` and how long each has run (to the latest event), then how many more there are;
    /// every line cut to the terminal's width.
    #[must_use]
    pub fn block(&self) -> String {
        self.frame().render(self.now)
    }

    /// The block's lines, with the start of each task in flight: a ticker renders it again
    /// between events, so how long a task has run keeps counting while nothing happens.
    fn frame(&self) -> Frame {
        let width = self.options.columns.saturating_sub(1);
        // The spinner, the bar and the elapsed time (`00:01:08`) come before the summary.
        let before = 1 + 2 + self.bar_width() + 2 + 8 + 3;
        let head = cut(&self.summary(), width.saturating_sub(before));
        let rows = self.options.rows.max(1);
        let mut tasks = Vec::new();
        for (started, task) in self.tally.running.iter().take(rows) {
            let doing = self.doing.get(task).map(String::as_str).unwrap_or_default();
            let doing = if doing.is_empty() { String::new() } else { format!(" {}", self.options.paint.dim(doing)) };
            let slow = if self.slow.contains(task) {
                format!(" {}", self.options.paint.yellow("SLOW"))
            } else {
                String::new()
            };
            tasks.push((format!("  {}{slow}{doing}  running ", self.tally.name(*task)), *started));
        }
        let hidden = self.tally.running.len().saturating_sub(rows);
        let tail = (hidden > 0).then(|| self.options.paint.dim(&format!("  +{hidden} more running")));
        Frame { head, tasks, tail, width }
    }

    fn redraw(&self) {
        if let Some(bar) = &self.bar {
            bar.set_position(self.tally.done as u64);
            let frame = self.frame();
            bar.set_message(frame.render(wall_ms().max(self.now)));
            if let Some(ticker) = &self.ticker {
                *ticker.frame.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = frame;
            }
        }
    }

    /// Off a terminal: the summary as a line, when it is due.
    fn progress_line(&mut self, at: u64, force: bool) {
        if self.options.mode != Mode::Lines || self.finished {
            return;
        }
        if force || at.saturating_sub(self.last_progress) >= self.options.progress_every_ms {
            self.last_progress = at;
            let text = format!("progress {}", self.summary());
            self.say(at, &text);
        }
    }
}

impl Drop for Live<'_> {
    fn drop(&mut self) {
        self.ticker = None;
        if self.bar.take().is_some() {
            crate::telemetry::draw_logs_around(None);
        }
    }
}

impl EventSink for Live<'_> {
    fn emit(&mut self, event: &Event) -> Result<(), tb_core::events::RecordError> {
        self.show(event);
        Ok(())
    }
}

impl Live<'_> {
    /// Shows one event: a line above the block or in the log, the block redrawn.
    fn show(&mut self, event: &Event) {
        self.now = self.now.max(event.at());
        match event {
            Event::RunStarted { tasks, at, .. } => {
                self.tally.start(tasks);
                self.last_progress = *at;
            }
            Event::TaskStarted { task, at } => self.tally.task_started(*task, *at),
            Event::Draining { .. } => self.tally.draining = true,
            _ => {}
        }
        if self.options.mode == Mode::Quiet {
            match event {
                Event::Draining { .. } => self.say(event.at(), &draining_text(event)),
                Event::LeaseWaiting { task, holder, at } => {
                    let text = format!("waiting  {}: {holder} is acting on its target", self.tally.name(*task));
                    self.say(*at, &text);
                }
                _ => {}
            }
            return;
        }
        self.tell(event);
        if !matches!(event, Event::RunFinished { .. } | Event::Draining { .. }) {
            self.progress_line(event.at(), false);
        }
        self.redraw();
    }

    /// The line (or the block's change) an event makes at the chosen status level.
    fn tell(&mut self, event: &Event) {
        let level = self.level();
        let paint = self.options.paint;
        match event {
            Event::RunStarted { run_id, tasks, at } => {
                if self.options.mode == Mode::Bars {
                    self.start_bar();
                } else {
                    let estimate = self.options.estimate();
                    self.say(*at, &format!("run {run_id}: {}{estimate}", counted(tasks.len(), "task")));
                }
            }
            Event::TaskStarted { task, at } => {
                if self.bar.is_none() && level >= StatusLevel::All {
                    let text = format!("start    {}", self.tally.name(*task));
                    self.say(*at, &text);
                }
            }
            Event::WorkflowStarted { task, workflow_id, at } => {
                if self.bar.is_some() {
                    self.doing.insert(*task, format!("workflow {workflow_id}"));
                } else if level >= StatusLevel::All {
                    let text = format!("workflow {}: {workflow_id}", self.tally.name(*task));
                    self.say(*at, &text);
                }
            }
            Event::Progress { task, message, bytes, .. } => {
                if self.bar.is_some() {
                    self.doing.insert(*task, doing(message, *bytes));
                }
            }
            Event::LeaseWaiting { task, holder, at } => {
                let text = format!("waiting  {}: {holder} is acting on its target", self.tally.name(*task));
                if self.bar.is_some() {
                    self.doing.insert(*task, format!("waiting for {holder}"));
                }
                self.say(*at, &text);
            }
            Event::TaskSlow { task, expected_ms, at } => {
                self.slow.insert(*task);
                if level >= StatusLevel::Fail {
                    let text = format!(
                        "{} {}: running more than twice its expected {}",
                        paint.yellow("slow    "),
                        self.tally.name(*task),
                        duration_ms(*expected_ms)
                    );
                    self.say(*at, &text);
                }
            }
            Event::TaskRetrying { task, next_attempt, delay_ms, at } => {
                if level >= StatusLevel::Retry {
                    let text = format!(
                        "{} {}: attempt {next_attempt} in {}",
                        paint.yellow("retry   "),
                        self.tally.name(*task),
                        duration_ms(*delay_ms)
                    );
                    self.say(*at, &text);
                }
            }
            Event::TaskFinished { task, outcome, at } => self.task_finished(*task, outcome, *at),
            Event::Draining { at, .. } => {
                let text = draining_text(event);
                self.say_whole(*at, &text);
                self.progress_line(*at, true);
            }
            Event::RunFinished { at, interrupted, .. } => self.run_finished(*at, *interrupted),
            // A remote command's output is printed on stdout after the run (`--format`).
            Event::AttemptStarting { .. }
            | Event::AttemptEnded { .. }
            | Event::AttemptFailed { .. }
            | Event::WorkflowEnded { .. }
            | Event::Output { .. } => {}
        }
    }

    /// A task's end: its line, when its status is shown at this level.
    fn task_finished(&mut self, task: usize, outcome: &Outcome, at: Millis) {
        let took = self.tally.task_finished(task, outcome, at);
        self.doing.remove(&task);
        self.slow.remove(&task);
        if self.level().shows(outcome.status) {
            let took = took.map(|ms| format!(" ({})", duration_ms(ms))).unwrap_or_default();
            let status = self.options.paint.status(outcome.status, &format!("{:<8}", outcome.status.as_str()));
            // Why first, then which task, then the rest of its words: a narrow terminal cuts the
            // platform's long words, never the reason.
            let text = match &outcome.cause {
                Some(cause) => {
                    let summary = cause.summary();
                    let rest = outcome.message.replacen(&summary, "", 1);
                    let rest = rest.trim().trim_start_matches([':', ',', ';']).trim();
                    let rest = rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')).unwrap_or(rest);
                    let rest = if rest.is_empty() { String::new() } else { format!(" · {rest}") };
                    format!("{status} {summary}: {}{took}{rest}", self.tally.name(task))
                }
                None => format!("{status} {}{took}: {}", self.tally.name(task), outcome.message),
            };
            self.say(at, &text);
        }
    }

    /// The run's end: the bar cleared, or the summary line.
    fn run_finished(&mut self, at: Millis, interrupted: bool) {
        if let Some(bar) = self.bar.take() {
            crate::telemetry::draw_logs_around(None);
            self.ticker = None;
            bar.finish_and_clear();
            self.quiet = None;
        } else {
            let text = if interrupted { "run interrupted" } else { "run finished" };
            self.say(at, &format!("{text}: {}", self.summary()));
        }
        self.finished = true;
    }
}

/// The block as lines, for rendering at any time: the summary, each task in flight as the
/// text before its run time and its start (ms), and what follows them.
#[derive(Default)]
struct Frame {
    head: String,
    tasks: Vec<(String, u64)>,
    tail: Option<String>,
    width: usize,
}

impl Frame {
    fn render(&self, now: u64) -> String {
        let mut lines = vec![self.head.clone()];
        for (before, started) in &self.tasks {
            lines.push(cut(&format!("{before}{}", running_for(now.saturating_sub(*started))), self.width));
        }
        lines.extend(self.tail.clone());
        lines.join("\n")
    }
}

/// This machine's time in Unix milliseconds, as the executor's clock stamps events.
fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A thread that draws the latest frame again every second, so a task's run time counts up
/// while no event comes (one long workflow); stopped and joined when dropped.
struct Ticker {
    frame: Arc<Mutex<Frame>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ticker {
    fn start(bar: ProgressBar) -> Self {
        let frame = Arc::new(Mutex::new(Frame::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (shown, stopped) = (Arc::clone(&frame), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name("live-ticker".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    // Short naps, so that dropping it never waits long.
                    for _ in 0..10 {
                        std::thread::sleep(Duration::from_millis(100));
                        if stopped.load(Ordering::Relaxed) {
                            return;
                        }
                    }
                    let text = shown.lock().unwrap_or_else(std::sync::PoisonError::into_inner).render(wall_ms());
                    if !text.is_empty() {
                        bar.set_message(text);
                    }
                }
            })
            .ok();
        Self { frame, stop, thread }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The terminal's echo of control characters (`ECHOCTL`), off while the display draws, and
/// back as it was when dropped. Ctrl-C makes a terminal echo `^C` at the cursor, which the
/// display leaves at the end of its last line, padded to the terminal's width: the echo wraps
/// onto a row of its own, the display then clears one row too few, and a frame of it stays on
/// the screen. The interrupt is said by the display itself.
struct QuietInterrupts {
    saved: Option<rustix::termios::Termios>,
}

impl QuietInterrupts {
    fn on_stderr() -> Self {
        use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
        let stderr = std::io::stderr();
        let Ok(saved) = tcgetattr(&stderr) else { return Self { saved: None } };
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHOCTL);
        let changed = tcsetattr(&stderr, OptionalActions::Now, &quiet).is_ok();
        Self { saved: changed.then_some(saved) }
    }
}

impl Drop for QuietInterrupts {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _restored = rustix::termios::tcsetattr(std::io::stderr(), rustix::termios::OptionalActions::Now, saved);
        }
    }
}

/// How long a task in flight has run, in whole seconds: `7s`, `1m12s`.
fn running_for(ms: u64) -> String {
    let secs = ms / 1000;
    if secs < 60 { format!("{secs}s") } else { duration_ms(secs * 1000) }
}

/// What the first (or second) Ctrl-C does, said even under `-q`: the user pressed a key and
/// expects an answer.
fn draining_text(event: &Event) -> String {
    let Event::Draining { in_flight, waiting, reason, .. } = event else { return String::new() };
    let tasks = counted(*in_flight, "task");
    if reason != "interrupted" {
        return format!("{reason}; waiting for the {tasks} in flight");
    }
    if *waiting {
        format!(
            "interrupted: starting nothing new; waiting for the {tasks} in flight \
             (Ctrl-C again stops waiting: their workflows keep running, and --resume re-attaches; \
             their remote commands are stopped)"
        )
    } else {
        format!("interrupted: starting nothing new; {tasks} in flight are no longer waited for")
    }
}

/// `text` cut to `width` characters (ANSI colour codes take none), with `…` where it was cut.
fn cut(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut shown = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            out.push(c);
            for c in chars.by_ref() {
                out.push(c);
                if c == 'm' {
                    break;
                }
            }
            continue;
        }
        if shown + 1 >= width && chars.peek().is_some() {
            out.push('…');
            if text.contains('\x1b') {
                out.push_str("\x1b[0m");
            }
            return out;
        }
        out.push(c);
        shown += 1;
    }
    out
}

/// A task's line: its progress message, with a transfer's bytes.
fn doing(message: &str, bytes: Option<[u64; 2]>) -> String {
    match bytes {
        Some([done, total]) => {
            let percent = done.saturating_mul(100).checked_div(total).unwrap_or(100);
            format!("{message} {}/{} ({percent}%)", HumanBytes(done), HumanBytes(total))
        }
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tb_core::ids::RunId;

    fn header(i: usize, wave: u32) -> TaskHeader {
        let site = format!("s{i}");
        TaskHeader { wave, estimate_secs: 10, ..TaskHeader::new("clear", Some(&site), Some("live"), "env:clear-cache") }
    }

    fn started(n: usize) -> Event {
        Event::RunStarted {
            run_id: RunId::from_parts("20260101T000000Z", 1),
            tasks: (0..n).map(|i| header(i, 0)).collect(),
            at: 0,
        }
    }

    fn finished(task: usize, status: Status, at: u64) -> Event {
        Event::TaskFinished { task, outcome: Outcome::new(status, "m"), at }
    }

    fn bars(rows: usize) -> LiveOptions {
        LiveOptions { rows, estimate_secs: Some(1000), columns: 120, ..LiveOptions::new(Mode::Bars) }
    }

    #[test]
    fn waves_are_shown_once_a_rolled_out_task_runs() {
        let mut out = Vec::new();
        let mut live = Live::new(bars(5), &mut out).with_draw_target(ProgressDrawTarget::hidden());
        // Two backups (no waves), then a deploy rolled out in three waves.
        let backup = |i: usize| TaskHeader {
            estimate_secs: 10,
            ..TaskHeader::new("backup", Some(&format!("s{i}")), Some("live"), "backup:create")
        };
        let deploy = |i: usize, wave| TaskHeader {
            wave,
            ..TaskHeader::new("deploy", Some(&format!("s{i}")), Some("live"), "env:deploy")
        };
        let tasks = vec![backup(0), backup(1), deploy(0, 0), deploy(1, 1), deploy(2, 2)];
        live.show(&Event::RunStarted { run_id: RunId::from_parts("20260101T000000Z", 1), tasks, at: 0 });
        live.show(&Event::TaskStarted { task: 0, at: 0 });
        assert!(!live.block().contains("wave"), "backups have no waves: {}", live.block());
        live.show(&Event::TaskStarted { task: 2, at: 1 });
        assert!(live.block().contains("wave 1/3"), "{}", live.block());
        live.show(&Event::TaskStarted { task: 3, at: 2 });
        assert!(live.block().contains("wave 2/3"), "{}", live.block());
    }

    #[test]
    fn a_transfer_shows_its_bytes_on_its_line() {
        let mut out = Vec::new();
        let mut live = Live::new(bars(5), &mut out).with_draw_target(ProgressDrawTarget::hidden());
        live.show(&started(1));
        live.show(&Event::TaskStarted { task: 0, at: 0 });
        live.show(&Event::Progress { task: 0, message: "db.sql.gz".into(), bytes: Some([1024, 4096]), at: 1 });
        assert!(
            live.block().contains("clear[s0.live] db.sql.gz 1.00 KiB/4.00 KiB (25%)  running 0s"),
            "{}",
            live.block()
        );
        live.show(&Event::Progress { task: 0, message: "verifying".into(), bytes: None, at: 2 });
        assert!(live.block().contains("clear[s0.live] verifying"), "{}", live.block());
    }

    #[test]
    fn a_frame_drawn_again_later_counts_a_running_task_up() {
        let mut out = Vec::new();
        let mut live = Live::new(bars(3), &mut out).with_draw_target(ProgressDrawTarget::hidden());
        live.show(&started(2));
        live.show(&Event::TaskStarted { task: 0, at: 1_000 });
        let frame = live.frame();
        // No event since: the ticker's later renders count on.
        assert!(frame.render(1_500).contains("clear[s0.live]  running 0s"), "{}", frame.render(1_500));
        assert!(frame.render(8_200).contains("clear[s0.live]  running 7s"), "{}", frame.render(8_200));
        assert!(
            frame.render(73_000).ends_with(&format!("running {}", duration_ms(72_000))),
            "{}",
            frame.render(73_000)
        );
    }

    #[test]
    fn a_failure_says_why_before_which_task_and_a_running_task_how_long() {
        let mut out = Vec::new();
        {
            let mut live = Live::new(LiveOptions::new(Mode::Lines), &mut out);
            live.show(&started(2));
            live.show(&Event::TaskStarted { task: 0, at: 0 });
            let cause =
                tb_core::cause::Cause::Workflow { workflow: "do_export".into(), reason: "Simulated failure".into() };
            let message = "workflow do_export failed: Simulated failure (id wf-1)".to_owned();
            let outcome = Outcome::because(Status::Failed, cause, message);
            live.show(&Event::TaskFinished { task: 0, outcome, at: 1_200 });
        }
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("failed   workflow do_export failed: Simulated failure: clear[s0.live] (1.2s) · id wf-1"),
            "{text}"
        );
        assert_eq!(running_for(999), "0s");
        assert_eq!(running_for(72_500), duration_ms(72_000));
    }

    #[test]
    fn a_terminal_shows_at_most_its_rows_of_tasks_then_a_count() {
        let mut out = Vec::new();
        let mut live = Live::new(bars(3), &mut out).with_draw_target(ProgressDrawTarget::hidden());
        live.show(&started(1000));
        for task in 0..50 {
            live.show(&Event::TaskStarted { task, at: 0 });
        }
        live.show(&Event::WorkflowStarted { task: 0, workflow_id: "wf-0".into(), at: 0 });
        let block = live.block();
        let lines: Vec<&str> = block.lines().collect();
        assert_eq!(lines.len(), 5, "{block}");
        assert!(lines[0].starts_with("0/1000 done · ETA "), "{block}");
        assert_eq!(lines[1], "  clear[s0.live] workflow wf-0  running 0s");
        assert_eq!(lines[4], "  +47 more running");
        live.show(&finished(1, Status::Succeeded, 5_000));
        let block = live.block();
        assert!(block.starts_with("1/1000 done · ETA "), "{block}");
        assert!(block.lines().next().unwrap_or_default().ends_with(" · 49 running · 1 succeeded"), "{block}");
        assert!(
            block.contains("clear[s3.live]") && !block.contains("clear[s1.live]"),
            "the next oldest moves up: {block}"
        );
        for task in (0..50).filter(|t| *t != 1) {
            live.show(&finished(task, Status::Failed, 6_000));
        }
        // What matters first: how far, what failed, how long to go.
        assert_eq!(live.block(), "50/1000 done · 49 failed · ETA 9m28s · 0 running · 1 succeeded");
        drop(live);
        let wide = Live::new(LiveOptions { columns: 30, ..bars(3) }, &mut out);
        assert!(wide.block().chars().count() < 30);
    }

    #[test]
    fn off_a_terminal_a_big_run_prints_failures_and_a_line_every_interval() {
        let mut out = Vec::new();
        {
            let options = LiveOptions { estimate_secs: Some(1000), ..LiveOptions::new(Mode::Lines) };
            let mut live = Live::new(options, &mut out);
            live.show(&started(1000));
            for task in 0..1000 {
                let at = task as u64 * 100;
                live.show(&Event::TaskStarted { task, at });
                let status = if task % 250 == 7 { Status::Failed } else { Status::Succeeded };
                live.show(&finished(task, status, at + 50));
            }
            live.show(&Event::RunFinished { at: 100_000, interrupted: false, timed_out: false });
        }
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // The start line, 4 failures, a progress line every 15 s of the 100 s, the end.
        assert_eq!(lines.len(), 1 + 4 + 6 + 1, "{text}");
        assert!(lines[0].ends_with("run 20260101T000000Z-0001: 1000 tasks, estimated 16m40s"), "{text}");
        // On a simulator whose clock runs faster, the estimate says which clock it is on.
        let sim = LiveOptions { estimate_secs: Some(1254), time_scale: 0.01, ..LiveOptions::new(Mode::Lines) };
        assert_eq!(sim.estimate(), ", estimated 13.0s on the simulator's clock (20m54s of platform time)");
        let api = LiveOptions { estimate_secs: Some(1254), ..LiveOptions::new(Mode::Lines) };
        assert_eq!(api.estimate(), ", estimated 20m54s");
        assert_eq!(lines.iter().filter(|l| l.contains("failed   clear[s")).count(), 4, "{text}");
        assert!(
            lines.iter().any(|l| l.contains("progress 150/1000 done · 1 failed · ETA ")
                && l.ends_with(" · 1 running · 149 succeeded")),
            "{text}"
        );
        assert!(lines[11].ends_with("run finished: 1000/1000 done · 4 failed · 0 running · 996 succeeded"), "{text}");
    }

    #[test]
    fn lines_above_the_bars_are_cut_to_the_terminal() {
        assert_eq!(cut("abcdef", 10), "abcdef");
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("\x1b[31mfailed\x1b[0m abc", 5), "\x1b[31mfail…\x1b[0m");
    }

    #[test]
    fn tasks_skipped_by_an_interrupt_are_left_to_the_table() {
        let mut out = Vec::new();
        {
            let mut live = Live::new(LiveOptions::new(Mode::Lines), &mut out);
            live.show(&started(3));
            live.show(&Event::TaskStarted { task: 0, at: 0 });
            live.show(&Event::Draining { reason: "interrupted".into(), in_flight: 1, waiting: true, at: 10 });
            live.show(&finished(1, Status::Skipped, 10));
            live.show(&finished(2, Status::Skipped, 10));
            live.show(&finished(0, Status::Succeeded, 20));
            live.show(&Event::RunFinished { at: 30, interrupted: true, timed_out: false });
        }
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("interrupted: starting nothing new; waiting for the 1 task in flight"), "{text}");
        assert!(!text.contains("skipped  "), "listed once, after the run: {text}");
        assert!(
            text.contains("run interrupted: 3/3 done · 0 running · 1 succeeded · 2 skipped"),
            "every ended task is done; the skipped ones say how: {text}"
        );
    }

    #[test]
    fn status_levels_include_the_levels_below() {
        assert!(StatusLevel::Fail.shows(Status::Failed));
        assert!(!StatusLevel::Fail.shows(Status::Skipped));
        assert!(StatusLevel::Skip.shows(Status::Cancelled));
        assert!(!StatusLevel::Skip.shows(Status::Unchanged));
        assert!(StatusLevel::All.shows(Status::Succeeded));
        assert!(!StatusLevel::None.shows(Status::Failed));
    }

    #[test]
    fn the_eta_learns_from_tasks_that_ran() {
        let mut tally = Tally::default();
        tally.start(&(0..4).map(|i| header(i, 0)).collect::<Vec<_>>());
        assert_eq!(tally.eta_secs(Some(40), 1.0), Some(40), "the plan's estimate before anything ends");
        tally.task_started(0, 0);
        let done = Outcome::new(Status::Succeeded, String::new());
        // Estimated 10 s, took 20 s: the rest will take twice the plan's share too.
        tally.task_finished(0, &done, 20_000);
        assert_eq!(tally.eta_secs(Some(40), 1.0), Some(60));
        assert_eq!(tally.eta_secs(None, 1.0), None);
        // Against a simulator ten times faster than the platform the plan's estimate is
        // scaled (4 s), and a task estimated at 10 s that took 2 real seconds took twice its
        // estimate too.
        let mut scaled = Tally::default();
        scaled.start(&(0..4).map(|i| header(i, 0)).collect::<Vec<_>>());
        scaled.task_started(0, 0);
        scaled.task_finished(0, &done, 2_000);
        assert_eq!(scaled.eta_secs(Some(4), 0.1), Some(6));
    }

    /// A forecast that says what it was asked, and nothing left.
    struct Told(std::sync::Mutex<Vec<(Option<Status>, Option<f64>)>>);

    impl Remaining for Told {
        fn left_secs(&self, now: &[(Option<Status>, Option<f64>)]) -> f64 {
            *self.0.lock().unwrap() = now.to_vec();
            0.0
        }
    }

    #[test]
    fn the_forecast_is_asked_where_the_run_stands_and_never_says_nothing_while_tasks_run() {
        let mut tally = Tally::default();
        tally.start(&(0..3).map(|i| header(i, 0)).collect::<Vec<_>>());
        tally.task_started(0, 0);
        tally.task_finished(0, &Outcome::new(Status::Succeeded, String::new()), 2_000);
        tally.task_started(1, 1_000);
        let told = Told(std::sync::Mutex::new(Vec::new()));
        assert_eq!(tally.forecast_left(&told, 4_500), 1, "a task runs: never 0");
        assert_eq!(
            *told.0.lock().unwrap(),
            [(Some(Status::Succeeded), Some(2.0)), (None, Some(3.5)), (None, None)],
            "what ended and what it took, what runs and how long it has, what waits"
        );
        tally.task_finished(1, &Outcome::new(Status::Succeeded, String::new()), 5_000);
        assert_eq!(tally.forecast_left(&told, 5_000), 0, "nothing runs");
    }
}
