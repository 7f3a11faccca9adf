//! The final table printed after a run: counts per job and status, then the tasks that did
//! not succeed, grouped by cause: one line for a cause one task met, a count and the task ids
//! for a cause many met (a fleet-wide failure is one group, not a thousand lines).

use super::RunReport;
use super::live::StatusLevel;
use super::paint::Paint;
use super::summary::TaskReport;
use tb_core::events::Status;
use tb_core::timefmt::duration_ms;

/// How the table is drawn.
#[derive(Clone, Copy, Debug)]
pub struct TableOptions {
    pub paint: Paint,
    /// Which tasks are listed after the counts (as nextest's `--final-status-level`):
    /// failures, skipped and cancelled tasks by default.
    pub level: StatusLevel,
    /// Task ids shown per group before "+N more".
    pub ids_per_group: usize,
    /// The width the lists of ids wrap at: the terminal's, at most 100.
    pub columns: usize,
}

impl Default for TableOptions {
    fn default() -> Self {
        Self { paint: Paint::default(), level: StatusLevel::Skip, ids_per_group: 10, columns: 100 }
    }
}

/// Plain text, for a terminal or a log.
#[must_use]
pub fn render(report: &RunReport) -> String {
    render_with(report, &TableOptions::default())
}

/// The table as `options` say.
#[must_use]
pub fn render_with(report: &RunReport, options: &TableOptions) -> String {
    let paint = options.paint;
    let jobs = report.jobs();
    // Wide enough for the header, every job and the total row.
    let width = jobs.iter().map(|j| j.chars().count()).max().unwrap_or(0).max("total".len());
    let mut out = format!(
        "{:<width$}  {:>5}  {:>9}  {:>9}  {:>6}  {:>7}  {:>9}\n",
        "job", "tasks", "succeeded", "unchanged", "failed", "skipped", "cancelled"
    );
    let mut row = |name: &str, tasks: Vec<&TaskReport>| {
        let n = |s: Status| {
            let count = tasks.iter().filter(|t| t.status == Some(s)).count();
            let cell = format!("{count:>width$}", width = s.as_str().len().max(6));
            if count > 0 && !s.is_ok() { paint.status(s, &cell) } else { cell }
        };
        out.push_str(&format!(
            "{:<width$}  {:>5}  {}  {}  {}  {}  {}\n",
            name,
            tasks.len(),
            n(Status::Succeeded),
            n(Status::Unchanged),
            n(Status::Failed),
            n(Status::Skipped),
            n(Status::Cancelled)
        ));
    };
    for job in &jobs {
        row(job, report.tasks.iter().filter(|t| t.job == *job).collect());
    }
    row("total", report.tasks.iter().collect());
    let groups = groups(report, options.level);
    if !groups.is_empty() {
        out.push('\n');
    }
    for group in groups {
        let word = format!("{:<9}", group.word());
        let word = group.tasks[0].status.map_or_else(|| word.clone(), |s| paint.status(s, &word));
        if let [task] = group.tasks.as_slice() {
            // The task on its line, its message after it while it fits, else on the lines
            // below, wrapped at the terminal's width.
            let width = options.columns.saturating_sub(1).clamp(40, 100);
            let head = format!("{word}  {}", task.id);
            let one_line = head.chars().count() + 2 + task.message.chars().count() <= width;
            if one_line || task.message.is_empty() {
                out.push_str(format!("{head}  {}", task.message).trim_end());
                out.push('\n');
            } else {
                out.push_str(&format!("{head}\n"));
                out.push_str(&wrap_text(&task.message, 11, width));
            }
            continue;
        }
        out.push_str(&format!("{word}  {} tasks: {}\n", group.tasks.len(), group.cause));
        let (shown, more) = group.first_ids(options.ids_per_group);
        let mut words: Vec<String> = shown.iter().map(|id| (*id).to_owned()).collect();
        if more > 0 {
            words.push(format!("… +{more} more ({})", every_task(report)));
        }
        out.push_str(&wrap(&words, 11, options.columns.saturating_sub(1).clamp(40, 100)));
    }
    if let Some(line) = slow_line(report, options.ids_per_group) {
        out.push_str(&format!("\n{line}\n"));
    }
    let mut earlier: Vec<&str> = Vec::new();
    let carried = report.tasks.iter().filter(|t| t.run_id != report.run_id && !report.run_id.is_empty()).inspect(|t| {
        if !earlier.contains(&t.run_id.as_str()) {
            earlier.push(&t.run_id);
        }
    });
    let carried = carried.count();
    if carried > 0 {
        let tasks = if carried == 1 { "task was" } else { "tasks were" };
        out.push_str(&format!(
            "\n{carried} {tasks} done by an earlier run ({}) and not run again\n",
            earlier.join(", ")
        ));
    }
    match report.duration_ms {
        Some(ms) => out.push_str(&format!("\nrun {} took {}", report.run_id, duration_ms(ms))),
        None => out.push_str(&format!(
            "\nrun {} has no end on record: it stopped without finishing (killed, or its machine went down), or it is still running",
            report.run_id
        )),
    }
    if report.interrupted {
        out.push_str(" (interrupted)");
    }
    if report.timed_out {
        out.push_str(" (timed out)");
    }
    out.push('\n');
    out
}

/// The tasks marked slow (more than twice as long as expected), counted, with the first
/// `ids` of them; `None` when none was.
pub(crate) fn slow_line(report: &RunReport, ids: usize) -> Option<String> {
    let slow =
        Group { cause: String::new(), tasks: report.tasks.iter().filter(|t| t.slow_after_ms.is_some()).collect() };
    if slow.tasks.is_empty() {
        return None;
    }
    let tasks = if slow.tasks.len() == 1 { "task ran" } else { "tasks ran" };
    let (shown, more) = slow.first_ids(ids);
    let more = if more > 0 { format!(" … +{more} more") } else { String::new() };
    Some(format!("slow: {} {tasks} more than twice as long as expected: {}{more}", slow.tasks.len(), shown.join(", ")))
}

/// `words` `gap` apart, in lines of at most `width` columns (a longer word has a line of
/// its own). The one wrapping of every report and of the live display.
pub(crate) fn wrap_lines<'w>(words: impl IntoIterator<Item = &'w str>, gap: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in words {
        if !line.is_empty() && line.chars().count() + gap.chars().count() + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push_str(gap);
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// `words` two spaces apart, in lines of at most `width` columns, each indented by `indent`.
fn wrap(words: &[String], indent: usize, width: usize) -> String {
    indented(&wrap_lines(words.iter().map(String::as_str), "  ", width.saturating_sub(indent)), indent)
}

/// `text` in lines of at most `width` columns, broken between words, each indented by `indent`.
fn wrap_text(text: &str, indent: usize, width: usize) -> String {
    indented(&wrap_lines(text.split_whitespace(), " ", width.saturating_sub(indent)), indent)
}

/// Each line after `indent` spaces, and a newline.
fn indented(lines: &[String], indent: usize) -> String {
    let mut out = String::new();
    for line in lines {
        out.push_str(&format!("{:indent$}{line}\n", ""));
    }
    out
}

/// Tasks that ended alike for the same cause.
pub struct Group<'a> {
    pub cause: String,
    pub tasks: Vec<&'a TaskReport>,
}

impl Group<'_> {
    /// How its tasks ended: a status, or `unfinished`.
    pub fn word(&self) -> &'static str {
        self.tasks[0].status.map_or("unfinished", Status::as_str)
    }

    /// The ids of its first `n` tasks, and how many it has beyond them. A few more than `n`
    /// are all shown: "+3 more" would hide what fits.
    #[must_use]
    pub fn first_ids(&self, n: usize) -> (Vec<&str>, usize) {
        let n = if self.tasks.len() <= n + n / 2 { self.tasks.len() } else { n };
        let shown: Vec<&str> = self.tasks.iter().take(n).map(|t| t.id.as_str()).collect();
        let more = self.tasks.len() - shown.len();
        (shown, more)
    }
}

/// The command that lists every task of a group: the run's record, or a JSON report.
#[must_use]
pub fn every_task(report: &RunReport) -> String {
    if report.run_id.is_empty() {
        "--report json".to_owned()
    } else {
        format!("terminus-batch runs show {}", report.run_id)
    }
}

/// The tasks `level` lists, grouped by status and cause: failed first, then cancelled,
/// skipped, unfinished and the rest; within a status, the biggest group first.
#[must_use]
pub fn groups(report: &RunReport, level: StatusLevel) -> Vec<Group<'_>> {
    let listed = |t: &TaskReport| match t.status {
        None => level > StatusLevel::None,
        Some(s) => level.shows(s),
    };
    let rank = |s: Option<Status>| match s {
        Some(Status::Failed) => 0,
        Some(Status::Cancelled) => 1,
        Some(Status::Skipped) => 2,
        None => 3,
        Some(Status::Unchanged) => 4,
        Some(Status::Succeeded) => 5,
    };
    // By (status, cause), in first-seen order: one look-up per task, however many causes.
    let mut by_cause: indexmap::IndexMap<(Option<Status>, String), Vec<&TaskReport>> = indexmap::IndexMap::new();
    for task in report.tasks.iter().filter(|t| listed(t)) {
        by_cause.entry((task.status, cause(task))).or_default().push(task);
    }
    let mut groups: Vec<Group<'_>> = by_cause
        .into_iter()
        .map(|((_, cause), tasks)| {
            // Tasks that all say the same (the platform's same words) are shown saying it.
            let alike = tasks.iter().all(|t| t.message == tasks[0].message) && !tasks[0].message.is_empty();
            Group { cause: if alike { tasks[0].message.clone() } else { cause }, tasks }
        })
        .collect();
    groups.sort_by_key(|g| (rank(g.tasks[0].status), std::cmp::Reverse(g.tasks.len())));
    groups
}

/// What a task shares with the others that ended alike: its [`Cause`]'s summary, which
/// names none of the task's own ids; its message for a run recorded before causes were.
///
/// [`Cause`]: tb_core::cause::Cause
#[must_use]
pub fn cause(task: &TaskReport) -> String {
    task.cause.as_ref().map_or_else(|| task.message.clone(), tb_core::cause::Cause::summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, site: &str, message: &str, workflow: &str) -> TaskReport {
        let header = tb_core::events::TaskHeader::new("deploy", Some(site), Some("live"), "env:deploy");
        let header =
            tb_core::events::TaskHeader { id: serde_json::from_value(serde_json::json!(id)).unwrap(), ..header };
        TaskReport {
            status: Some(Status::Failed),
            attempts: 1,
            workflow_ids: vec![workflow.into()],
            message: message.into(),
            ..TaskReport::new(header, "r".into())
        }
    }

    fn job(name: &str, mut task: TaskReport) -> TaskReport {
        task.task.job = name.into();
        task
    }

    #[test]
    fn the_total_row_lines_up_with_short_job_names() {
        let settings: crate::summary::SettingsInfo = serde_json::from_value(serde_json::json!({
            "concurrency": 1, "per_site": 1, "max_requests": 1, "requests_per_second": 1.0, "burst": 1,
            "on_failure": "continue", "max_failures": "none", "timeout": "none", "resolved_by": "t"
        }))
        .unwrap();
        let plan = crate::summary::PlanInfo { path: "p".into(), sha256: "s".into(), name: None };
        let mut report = RunReport::new(plan, settings);
        report.tasks = vec![job("a", task("a[s.live]", "s", "m", "w")), job("bb", task("bb[s.live]", "s", "m", "w"))];
        let text = render(&report);
        let rows: Vec<&str> = text.lines().take(4).collect();
        let column = |row: &str| row.find(|c: char| c.is_ascii_digit()).unwrap_or(usize::MAX);
        assert!(rows[0].starts_with("job    tasks"), "{text}");
        assert!(rows[3].starts_with("total"), "{text}");
        assert!(rows[1..].iter().all(|row| column(row) == column(rows[3])), "{text}");
    }

    #[test]
    fn the_same_failure_on_many_sites_is_one_cause() {
        use tb_core::cause::{Cause, Ended};
        let workflow = Cause::Workflow { workflow: "deploy".into(), reason: "Simulated failure of deploy".into() };
        let a = TaskReport {
            cause: Some(workflow.clone()),
            ..task("deploy[a.live]", "a", "workflow deploy (wf-1) failed", "wf-1")
        };
        let b = TaskReport {
            cause: Some(workflow),
            ..task("deploy[b.live]", "b", "workflow deploy (wf-2) failed", "wf-2")
        };
        assert_eq!(cause(&a), "workflow deploy failed: Simulated failure of deploy");
        assert_eq!(cause(&a), cause(&b));
        let need = |of: &str| Some(Cause::Need { task: of.into(), ended: Ended::Failed });
        let skip =
            TaskReport { cause: need("deploy[a.live]"), ..task("clear[a.live]", "a", "`deploy[a.live]` failed", "") };
        assert_eq!(cause(&skip), "a task it needs failed");
        // A run recorded before causes were groups by message.
        let old = task("x", "a", "rollout halted at wave 4: 3 failed or skipped of max 1", "");
        assert_eq!(cause(&old), old.message);
    }
}
