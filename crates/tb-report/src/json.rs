//! The JSON report: [`RunReport`] as is; its schema is `schemas/batch-result.schema.json`.

use super::RunReport;

/// Pretty JSON with a final newline.
#[must_use]
pub fn render(report: &RunReport) -> String {
    let mut text = serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

/// The JSON Schema of the report.
#[must_use]
pub fn schema() -> String {
    let schema = schemars::schema_for!(RunReport);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
