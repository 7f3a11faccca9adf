//! What a webhook is told of a run (`settings.notify`): Slack's `{"text": ...}`, or the run's
//! summary as the JSON report has it (its totals and its tasks grouped by cause, never every
//! task). The bodies only: sending them is the run's (`tb_run::notify`).

use std::fmt::Write as _;

use serde_json::{Value, json};
use tb_core::events::Status;

use crate::live::StatusLevel;
use crate::summary::RunReport;
use crate::table::groups;

/// Task ids named per cause (a fleet-wide failure is one line).
const IDS_PER_CAUSE: usize = 5;
/// Causes listed at most.
const CAUSES: usize = 10;

/// What a run's start says: its id, its plan, how many tasks.
#[must_use]
pub fn start_json(report: &RunReport, tasks: usize) -> Value {
    json!({
        "kind": "terminus-batch/notification",
        "event": "start",
        "run_id": report.run_id,
        "plan": report.plan,
        "simulated": report.settings.simulated,
        "tasks": tasks,
    })
}

/// A run's start, in Slack's words.
#[must_use]
pub fn start_slack(report: &RunReport, tasks: usize) -> Value {
    json!({ "text": format!("{} started: {tasks} {}{}", title(report), tasks_word(tasks), rehearsal(report)) })
}

/// What a run's end (`event`: success, failure or halt) says: its totals, its causes and the
/// command that resumes it.
#[must_use]
pub fn end_json(report: &RunReport, event: &str, resume: Option<&str>) -> Value {
    let causes: Vec<Value> = groups(report, StatusLevel::Skip)
        .iter()
        .take(CAUSES)
        .map(|g| {
            let (ids, more) = g.first_ids(IDS_PER_CAUSE);
            json!({ "status": g.word(), "cause": g.cause, "count": g.tasks.len(), "tasks": ids, "more": more })
        })
        .collect();
    json!({
        "kind": "terminus-batch/notification",
        "event": event,
        "run_id": report.run_id,
        "plan": report.plan,
        "simulated": report.settings.simulated,
        "started_at": report.started_at,
        "finished_at": report.finished_at,
        "duration_ms": report.duration_ms,
        "interrupted": report.interrupted,
        "timed_out": report.timed_out,
        "totals": report.totals,
        "causes": causes,
        "resume": resume,
    })
}

/// A run's end, in Slack's words: a line of totals, a line per cause, the resume command.
#[must_use]
pub fn end_slack(report: &RunReport, event: &str, resume: Option<&str>) -> Value {
    let t = &report.totals;
    let said = match event {
        "success" => "succeeded",
        "halt" => "halted",
        _ => "failed",
    };
    let mut text = format!(
        "{} {said}{}: {} {}, {} succeeded, {} unchanged, {} failed, {} skipped, {} cancelled",
        title(report),
        rehearsal(report),
        t.tasks,
        tasks_word(t.tasks),
        t.get(Status::Succeeded),
        t.get(Status::Unchanged),
        t.get(Status::Failed),
        t.get(Status::Skipped),
        t.get(Status::Cancelled),
    );
    for group in groups(report, StatusLevel::Skip).iter().take(CAUSES) {
        let (ids, more) = group.first_ids(IDS_PER_CAUSE);
        let more = if more > 0 { format!(" … +{more} more") } else { String::new() };
        let _ = write!(
            text,
            "\n• {} {} {}: {} ({}{more})",
            group.word(),
            group.tasks.len(),
            tasks_word(group.tasks.len()),
            group.cause,
            ids.join(", ")
        );
    }
    if let Some(resume) = resume {
        let _ = write!(text, "\nResume: `{resume}`");
    }
    json!({ "text": text })
}

fn title(report: &RunReport) -> String {
    match &report.plan.name {
        Some(name) => format!("terminus-batch: {name} ({}), run {}", report.plan.path, report.run_id),
        None => format!("terminus-batch: {}, run {}", report.plan.path, report.run_id),
    }
}

fn rehearsal(report: &RunReport) -> &'static str {
    if report.settings.simulated { " (a rehearsal against the simulator)" } else { "" }
}

fn tasks_word(n: usize) -> &'static str {
    if n == 1 { "task" } else { "tasks" }
}
