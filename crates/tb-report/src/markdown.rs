//! The Markdown report, for pull-request comments and `$GITHUB_STEP_SUMMARY`: totals, a table
//! per job, and the tasks that did not succeed with their reasons, a row per cause.

use super::RunReport;
use super::live::StatusLevel;
use tb_core::events::Status;
use tb_core::timefmt::duration_ms;

/// Task ids a row names for a cause many tasks met.
const IDS_PER_CAUSE: usize = 10;

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
    if let Some(line) = super::table::slow_line(report, IDS_PER_CAUSE) {
        out.push_str(&format!("\n{}\n", cell(&line)));
    }
    let groups = super::table::groups(report, StatusLevel::Skip);
    if !groups.is_empty() {
        out.push_str(
            "\n<details><summary>Tasks that did not succeed</summary>\n\n| task | status | reason |\n|---|---|---|\n",
        );
        // A cause one task met: the task and its whole message; a cause many met (a
        // fleet-wide failure): one row with their count and first ids, so that the summary
        // stays readable and well under GitHub's size limit at thousands of tasks.
        for group in groups {
            let status = group.word();
            if let [task] = group.tasks.as_slice() {
                out.push_str(&format!("| `{}` | {status} | {} |\n", task.id, cell(&task.message)));
                continue;
            }
            let (shown, more) = group.first_ids(IDS_PER_CAUSE);
            let mut ids: Vec<String> = shown.iter().map(|id| format!("`{id}`")).collect();
            if more > 0 {
                ids.push(format!("… +{more} more (every task: `{}`)", super::table::every_task(report)));
            }
            out.push_str(&format!(
                "| {} tasks: {} | {status} | {} |\n",
                group.tasks.len(),
                ids.join(", "),
                cell(&group.cause)
            ));
        }
        out.push_str("\n</details>\n");
    }
    out
}
