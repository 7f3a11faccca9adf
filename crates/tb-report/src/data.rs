//! What read-only tasks read (`org:list`, `site:info`, `backup:list`, `env:code-log`, …),
//! rendered for people: a table per task for a list of records, aligned `key  value` lines
//! for one record; or, for scripts, one JSON object of every task's data by task id.

use std::fmt::Write as _;

use serde_json::Value;

use super::RunReport;
use tb_core::timefmt::iso;

/// The widest a cell is shown before it is cut (`…`).
const CELL: usize = 60;

/// Every task's data as tables, in task order, for the operations `read` says read
/// something (a remote command's output is a record of what it did, kept for the reports);
/// empty when none read anything.
#[must_use]
pub fn tables(report: &RunReport, read: impl Fn(&str) -> bool) -> String {
    let mut out = String::new();
    for task in &report.tasks {
        let Some(data) = shown(task, &read) else { continue };
        if let Some(text) = printed(data) {
            let _ = writeln!(out, "{}", task.id);
            out.push_str(&text);
            out.push('\n');
            continue;
        }
        let _ = writeln!(out, "{}", task.id);
        match data {
            Value::Array(rows) if rows.is_empty() => out.push_str("  (none)\n"),
            Value::Array(rows) if rows.iter().all(Value::is_object) => out.push_str(&records(rows)),
            Value::Array(items) => {
                for item in items {
                    let _ = writeln!(out, "  {}", cell("", item));
                }
            }
            Value::Object(fields) => {
                let width = fields.keys().map(String::len).max().unwrap_or(0);
                for (key, value) in fields {
                    let _ = writeln!(out, "  {key:<width$}  {}", cell(key, value));
                }
            }
            other => {
                let _ = writeln!(out, "  {}", cell("", other));
            }
        }
        out.push('\n');
    }
    out
}

/// What stdout shows of a task: what a remote command printed (held in memory only), or the
/// data of an operation `read` says read something.
fn shown<'a>(task: &'a super::summary::TaskReport, read: &impl Fn(&str) -> bool) -> Option<&'a Value> {
    task.shown.as_ref().or_else(|| task.data.as_ref().filter(|_| read(&task.operation)))
}

/// A remote command's output as it printed it (`stdout`, then `stderr`), uncut.
fn printed(data: &Value) -> Option<String> {
    let stdout = data.get("stdout")?.as_str()?;
    data.get("command")?;
    let stderr = data.get("stderr").and_then(Value::as_str).unwrap_or_default();
    let mut text = format!("{stdout}{stderr}");
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    Some(text)
}

/// `{ "<task id>": data, … }` for the tasks of the operations `read` says read something.
#[must_use]
pub fn json(report: &RunReport, read: impl Fn(&str) -> bool) -> String {
    let map: serde_json::Map<String, Value> =
        report.tasks.iter().filter_map(|t| shown(t, &read).map(|d| (t.id.to_string(), d.clone()))).collect();
    let mut text = serde_json::to_string_pretty(&Value::Object(map)).unwrap_or_default();
    text.push('\n');
    text
}

/// A list of records as a table: a column per key, in the order keys first appear (each
/// record's own keys are in name order).
fn records(rows: &[Value]) -> String {
    let mut columns: Vec<&str> = Vec::new();
    for row in rows {
        for key in row.as_object().into_iter().flat_map(|o| o.keys()) {
            if !columns.contains(&key.as_str()) {
                columns.push(key);
            }
        }
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| columns.iter().map(|c| row.get(*c).map_or_else(String::new, |v| cell(c, v))).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| cells.iter().map(|r| r[i].chars().count()).max().unwrap_or(0).max(c.len()))
        .collect();
    let line = |values: Vec<&str>| {
        let padded: Vec<String> = values.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect();
        format!("  {}\n", padded.join("  ").trim_end())
    };
    let mut out = line(columns.clone());
    for row in &cells {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// One value for a cell: text as it is, numbers and booleans, lists joined by commas, a
/// Unix time under a date key as a date, anything else as compact JSON; cut to [`CELL`].
fn cell(key: &str, value: &Value) -> String {
    let text = match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Number(n) if matches!(key, "date" | "created" | "timestamp") =>
        {
            #[expect(clippy::cast_possible_truncation, reason = "a Unix time in seconds")]
            n.as_f64().map_or_else(|| n.to_string(), |secs| iso(secs as i64))
        }
        Value::Bool(_) | Value::Number(_) => value.to_string(),
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
            items.iter().map(|i| cell("", i)).collect::<Vec<_>>().join(",")
        }
        other => other.to_string(),
    };
    let text = text.replace(['\n', '\r', '\t'], " ");
    if text.chars().count() > CELL {
        let cut: String = text.chars().take(CELL - 1).collect();
        format!("{cut}…")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::{PlanInfo, SettingsInfo, TaskReport};

    fn report(data: Vec<(&str, Value)>) -> RunReport {
        let settings: SettingsInfo = serde_json::from_value(serde_json::json!({
            "concurrency": 1, "per_site": 1, "max_requests": 1, "requests_per_second": 1.0, "burst": 1,
            "on_failure": "continue", "max_failures": "none", "timeout": "none", "resolved_by": "t"
        }))
        .unwrap();
        let mut report = RunReport::new(PlanInfo { path: "p".into(), sha256: "s".into(), name: None }, settings);
        report.tasks = data
            .into_iter()
            .map(|(id, data)| TaskReport {
                data: Some(data),
                ..TaskReport::new(tb_core::events::TaskHeader::new(id, None, None, "x"), "r".into())
            })
            .collect();
        report
    }

    #[test]
    fn records_become_a_table_and_a_record_aligned_lines() {
        let r = report(vec![
            (
                "backups[a.live]",
                serde_json::json!([
                    { "file": "a_db.sql.gz", "element": "database", "date": 1_761_696_000.0, "size": 98_792 },
                    { "file": "a_code.tar.gz", "element": "code", "date": 1_761_696_000.0, "size": 51_179, "note": null }
                ]),
            ),
            ("info[a]", serde_json::json!({ "name": "a", "frozen": false, "tags": ["x", "y"] })),
            ("domains[b.live]", serde_json::json!([])),
        ]);
        let text = tables(&r, |_| true);
        assert_eq!(
            text,
            "backups[a.live]
  date                 element   file           size   note
  2025-10-29T00:00:00  database  a_db.sql.gz    98792
  2025-10-29T00:00:00  code      a_code.tar.gz  51179  -

info[a]
  frozen  false
  name    a
  tags    x,y

domains[b.live]
  (none)

"
        );
        let json: Value = serde_json::from_str(&json(&r, |_| true)).unwrap();
        assert_eq!(tables(&r, |_| false), "", "only the operations that read");
        assert_eq!(json["info[a]"]["name"], "a");
        assert_eq!(json["domains[b.live]"], serde_json::json!([]));
    }

    #[test]
    fn long_and_multiline_cells_are_cut_to_one_line() {
        let long = "x".repeat(100);
        assert_eq!(cell("message", &Value::from(format!("a\nb{long}"))).chars().count(), CELL);
        assert!(cell("message", &Value::from("a\nb")).eq("a b"));
    }
}
