//! `schema`: the plan's JSON Schema, generated from `plan::raw`.

use std::io;

use crate::cli::Io;
use crate::cli::exit::ExitStatus;
use crate::plan::raw::PlanRaw;

/// The plan schema as pretty JSON with a trailing newline (the committed file's content).
#[must_use]
pub fn plan_schema() -> String {
    let schema = schemars::schema_for!(PlanRaw);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

pub(super) fn run(io: &mut Io<'_>) -> io::Result<ExitStatus> {
    io.stdout.write_all(plan_schema().as_bytes())?;
    Ok(ExitStatus::Success)
}
