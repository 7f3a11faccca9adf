//! `schema`: the plan's JSON Schema, generated from `plan::raw`; `--report`: the JSON
//! report's, generated from `report::summary`.

use crate::cli::Io;
use crate::cli::error::CommandResult;
use crate::cli::exit::ExitStatus;
use tb_plan::plan::raw::PlanRaw;

/// The plan schema as pretty JSON with a trailing newline (the committed file's content).
#[must_use]
pub fn plan_schema() -> String {
    let schema = schemars::schema_for!(PlanRaw);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

pub(super) fn handle(report: bool, io: &mut Io<'_>) -> CommandResult {
    let text = if report { tb_report::json::schema() } else { plan_schema() };
    io.stdout.write_all(text.as_bytes())?;
    Ok(ExitStatus::Success)
}
