//! The final table printed after a run: counts per job and status, then every task that did
//! not succeed with its reason.

use super::RunReport;
use crate::events::Status;
use crate::timefmt::duration_ms;

/// Plain text, for a terminal or a log.
#[must_use]
pub fn render(report: &RunReport) -> String {
    let mut jobs: Vec<&str> = Vec::new();
    for task in &report.tasks {
        if !jobs.contains(&task.job.as_str()) {
            jobs.push(&task.job);
        }
    }
    let width = jobs.iter().map(|j| j.len()).max().unwrap_or(3).max(3);
    let mut out = format!(
        "{:<width$}  {:>5}  {:>9}  {:>9}  {:>6}  {:>7}  {:>9}\n",
        "job", "tasks", "succeeded", "unchanged", "failed", "skipped", "cancelled"
    );
    let mut row = |name: &str, tasks: Vec<&super::summary::TaskReport>| {
        let n = |s: Status| tasks.iter().filter(|t| t.status == Some(s)).count();
        out.push_str(&format!(
            "{:<width$}  {:>5}  {:>9}  {:>9}  {:>6}  {:>7}  {:>9}\n",
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
    let bad: Vec<_> = report.tasks.iter().filter(|t| !t.status.is_some_and(Status::is_ok)).collect();
    if !bad.is_empty() {
        out.push('\n');
        for task in bad {
            out.push_str(&format!(
                "{:<9}  {}  {}\n",
                task.status.map_or("unfinished", Status::as_str),
                task.id,
                task.message
            ));
        }
    }
    let elapsed = report.duration_ms.map_or_else(|| "unfinished".to_owned(), duration_ms);
    out.push_str(&format!("\nrun {} took {elapsed}", report.run_id));
    if report.interrupted {
        out.push_str(" (interrupted)");
    }
    if report.timed_out {
        out.push_str(" (timed out)");
    }
    out.push('\n');
    out
}
