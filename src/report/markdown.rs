//! The Markdown report, for pull-request comments and `$GITHUB_STEP_SUMMARY`: totals, a table
//! per job, and the tasks that did not succeed with their reasons.

use super::RunReport;
use crate::events::Status;
use crate::timefmt::duration_ms;

/// A table cell: pipes escaped, no line breaks, no markup (`<` would open an HTML tag).
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ").replace('<', "&lt;").replace('>', "&gt;")
}

/// Markdown text.
#[must_use]
pub fn render(report: &RunReport) -> String {
    let t = &report.totals;
    let verdict = if report.interrupted {
        "⏹ interrupted"
    } else if report.all_ok() {
        "✅ all tasks succeeded or were unchanged"
    } else {
        "❌ some tasks did not succeed"
    };
    let mut out = format!(
        "## terminus-batch run `{}`\n\n**{}** — plan `{}` (sha256 `{}`), {}\n\n",
        report.run_id,
        verdict,
        report.plan.path,
        &report.plan.sha256.get(..12).unwrap_or(&report.plan.sha256),
        report.duration_ms.map_or_else(|| "unfinished".to_owned(), duration_ms),
    );
    out.push_str("| tasks | succeeded | unchanged | failed | skipped | cancelled |\n|---:|---:|---:|---:|---:|---:|\n");
    out.push_str(&format!(
        "| {} | {} | {} | {} | {} | {} |\n\n",
        t.tasks, t.succeeded, t.unchanged, t.failed, t.skipped, t.cancelled
    ));
    let jobs = report.jobs();
    out.push_str("| job | operation | tasks | ok | not ok |\n|---|---|---:|---:|---:|\n");
    for job in &jobs {
        let tasks: Vec<_> = report.tasks.iter().filter(|t| t.job == *job).collect();
        let ok = tasks.iter().filter(|t| t.status.is_some_and(Status::is_ok)).count();
        out.push_str(&format!(
            "| `{}` | `{}` | {} | {} | {} |\n",
            job,
            tasks.first().map_or("", |t| t.operation.as_str()),
            tasks.len(),
            ok,
            tasks.len() - ok
        ));
    }
    let bad: Vec<_> = report.tasks.iter().filter(|t| !t.status.is_some_and(Status::is_ok)).collect();
    if !bad.is_empty() {
        out.push_str(
            "\n<details><summary>Tasks that did not succeed</summary>\n\n| task | status | reason |\n|---|---|---|\n",
        );
        for task in bad {
            out.push_str(&format!(
                "| `{}` | {} | {} |\n",
                task.id,
                task.status.map_or("unfinished", Status::as_str),
                cell(&task.message)
            ));
        }
        out.push_str("\n</details>\n");
    }
    out
}
