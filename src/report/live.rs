//! Live progress while a run goes: on a terminal, an overall bar and a line per task in
//! flight (indicatif); otherwise plain timestamped lines, one per start and end; nothing
//! with `--quiet`. Writes to stderr only.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::events::{Event, EventSink, Status, TaskHeader};
use crate::timefmt::{clock, duration_ms};

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Bars,
    Lines,
    Quiet,
}

/// The live reporter.
pub struct Live<'a> {
    mode: Mode,
    out: &'a mut dyn Write,
    tasks: Vec<TaskHeader>,
    started: HashMap<usize, u64>,
    multi: Option<MultiProgress>,
    overall: Option<ProgressBar>,
    bars: HashMap<usize, ProgressBar>,
    done: u64,
}

impl<'a> Live<'a> {
    /// Progress to `out` (stderr) in `mode`.
    pub fn new(mode: Mode, out: &'a mut dyn Write) -> Self {
        Self {
            mode,
            out,
            tasks: Vec::new(),
            started: HashMap::new(),
            multi: None,
            overall: None,
            bars: HashMap::new(),
            done: 0,
        }
    }

    fn name(&self, task: usize) -> String {
        self.tasks.get(task).map_or_else(|| format!("#{task}"), |t| t.id.to_string())
    }

    fn line(&mut self, at: u64, text: &str) {
        // Progress is best effort: a closed stderr must not stop the run.
        let _ = writeln!(self.out, "{} {text}", clock(at));
    }
}

impl EventSink for Live<'_> {
    fn emit(&mut self, event: &Event) {
        if self.mode == Mode::Quiet && !matches!(event, Event::Draining { .. }) {
            return;
        }
        match event {
            Event::RunStarted { run_id, tasks, at } => {
                self.tasks.clone_from(tasks);
                if self.mode == Mode::Bars {
                    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
                    let overall = multi.add(ProgressBar::new(tasks.len() as u64));
                    overall.set_style(
                        ProgressStyle::with_template(
                            "{prefix:.bold} [{bar:40.green/white}] {pos}/{len} tasks · {elapsed} {msg}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    overall.set_prefix(format!("run {run_id}"));
                    overall.enable_steady_tick(Duration::from_millis(200));
                    self.overall = Some(overall);
                    self.multi = Some(multi);
                } else {
                    let text = format!("run {run_id}: {} tasks", tasks.len());
                    self.line(*at, &text);
                }
            }
            Event::TaskStarted { task, at } => {
                self.started.insert(*task, *at);
                let name = self.name(*task);
                match (&self.multi, self.mode) {
                    (Some(multi), Mode::Bars) => {
                        let bar = multi.add(ProgressBar::new_spinner());
                        bar.set_style(
                            ProgressStyle::with_template("  {spinner} {prefix} {wide_msg:.dim} {elapsed}")
                                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                        );
                        bar.set_prefix(name);
                        bar.enable_steady_tick(Duration::from_millis(120));
                        self.bars.insert(*task, bar);
                    }
                    _ => self.line(*at, &format!("start    {name}")),
                }
            }
            Event::WorkflowStarted { task, workflow_id, at } => {
                if let Some(bar) = self.bars.get(task) {
                    bar.set_message(format!("workflow {workflow_id}"));
                } else if self.mode == Mode::Lines {
                    let name = self.name(*task);
                    self.line(*at, &format!("workflow {name}: {workflow_id}"));
                }
            }
            Event::Progress { task, message, bytes, .. } => {
                if let Some(bar) = self.bars.get(task) {
                    if let Some([done, total]) = bytes {
                        // A transfer turns the task's spinner into a byte bar (per file).
                        if bar.length() != Some(*total) {
                            bar.set_style(
                                ProgressStyle::with_template(
                                    "  {spinner} {prefix} [{bar:20.cyan/white}] {bytes}/{total_bytes} \
                                     {binary_bytes_per_sec} {wide_msg:.dim}",
                                )
                                .unwrap_or_else(|_| ProgressStyle::default_bar())
                                .progress_chars("=> "),
                            );
                            bar.set_length(*total);
                        }
                        bar.set_position(*done);
                    }
                    bar.set_message(message.clone());
                }
            }
            Event::TaskRetrying { task, next_attempt, delay_ms, at } => {
                let name = self.name(*task);
                let text = format!("retry    {name}: attempt {next_attempt} in {}", duration_ms(*delay_ms));
                match &self.multi {
                    Some(multi) => {
                        let _ = multi.println(text);
                    }
                    None => self.line(*at, &text),
                }
            }
            Event::TaskFinished { task, outcome, at } => {
                self.done += 1;
                let name = self.name(*task);
                let took = self
                    .started
                    .get(task)
                    .map(|s| format!(" ({})", duration_ms(at.saturating_sub(*s))))
                    .unwrap_or_default();
                let text = format!("{:<8} {name}{took}: {}", outcome.status.as_str(), outcome.message);
                if let Some(bar) = self.bars.remove(task) {
                    bar.finish_and_clear();
                }
                match (&self.multi, &self.overall) {
                    (Some(multi), Some(overall)) => {
                        overall.inc(1);
                        if !matches!(outcome.status, Status::Succeeded | Status::Unchanged) {
                            let _ = multi.println(text);
                        }
                    }
                    _ => self.line(*at, &text),
                }
            }
            Event::Draining { in_flight, waiting, at, .. } => {
                let tasks = if *in_flight == 1 { "task" } else { "tasks" };
                let text = if *waiting {
                    format!(
                        "interrupted: starting nothing new; waiting for the {in_flight} {tasks} in flight \
                         (Ctrl-C again stops waiting: their workflows keep running, and --resume re-attaches)"
                    )
                } else {
                    format!("interrupted: starting nothing new; {in_flight} {tasks} in flight are no longer waited for")
                };
                // Said even under -q: the user pressed a key and expects an answer.
                if let Some(multi) = &self.multi {
                    let _shown = multi.println(&text);
                } else {
                    let _shown = writeln!(self.out, "{} {text}", clock(*at));
                }
            }
            Event::RunFinished { at, interrupted, .. } => {
                if let Some(overall) = self.overall.take() {
                    overall.finish_and_clear();
                }
                for (_, bar) in self.bars.drain() {
                    bar.finish_and_clear();
                }
                if self.mode == Mode::Lines {
                    let text = if *interrupted { "run interrupted" } else { "run finished" };
                    self.line(*at, text);
                }
            }
            // The task's own end says how it went.
            Event::AttemptStarting { .. } | Event::AttemptFailed { .. } | Event::WorkflowEnded { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{JobId, RunId, TaskId};

    #[test]
    fn a_transfer_turns_the_spinner_into_a_byte_bar() {
        let mut out = Vec::new();
        let mut live = Live::new(Mode::Bars, &mut out);
        let header = TaskHeader {
            id: TaskId::new(&JobId::new("get"), "a.live", &[]),
            job: "get".into(),
            site: Some("a".into()),
            env: Some("live".into()),
            operation: "backup:get".into(),
        };
        live.emit(&Event::RunStarted { run_id: RunId::from_parts("20260101T000000Z", 1), tasks: vec![header], at: 0 });
        live.emit(&Event::TaskStarted { task: 0, at: 0 });
        assert_eq!(live.bars[&0].length(), None, "a spinner");
        let progress =
            |done| Event::Progress { task: 0, message: "db.sql.gz".into(), bytes: Some([done, 4096]), at: 1 };
        live.emit(&progress(1024));
        live.emit(&progress(2048));
        assert_eq!((live.bars[&0].length(), live.bars[&0].position()), (Some(4096), 2048));
        live.emit(&Event::Progress { task: 0, message: "verifying".into(), bytes: None, at: 2 });
        assert_eq!(live.bars[&0].position(), 2048, "a plain message leaves the bar");
    }
}
