//! The HTML report: one self-contained file (no scripts, no external assets) with the
//! summary and a timeline: a lane per site, a bar per task, coloured by outcome. A person
//! reads a 500-task run faster as a picture than as a table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::summary::TaskReport;
use super::{RunReport, escape};
use crate::events::Status;
use crate::timefmt::{duration_ms, rfc3339_ms};

const LANE: u64 = 18;
const LABEL: u64 = 190;
const WIDTH: u64 = 1100;

fn colour(status: Option<Status>) -> &'static str {
    match status {
        Some(Status::Succeeded) => "#2f9e44",
        Some(Status::Unchanged) => "#74b816",
        Some(Status::Failed) => "#e03131",
        Some(Status::Skipped) => "#adb5bd",
        Some(Status::Cancelled) => "#f08c00",
        None => "#7048e8",
    }
}

fn label(status: Option<Status>) -> &'static str {
    status.map_or("unfinished", Status::as_str)
}

/// The HTML document.
#[must_use]
pub fn render(report: &RunReport) -> String {
    let totals = &report.totals;
    let start = report.started_at;
    let end = report
        .finished_at
        .or_else(|| report.tasks.iter().filter_map(|t| t.finished_at.or(t.started_at)).max())
        .unwrap_or(start)
        .max(start + 1);
    let span = end - start;
    let mut lanes: BTreeMap<String, Vec<&TaskReport>> = BTreeMap::new();
    for task in &report.tasks {
        lanes.entry(task.site.clone().unwrap_or_else(|| "(account)".to_owned())).or_default().push(task);
    }
    let plot = WIDTH - LABEL - 10;
    let x_of = |ms: u64| LABEL + (ms.saturating_sub(start) * plot) / span;
    let height = LANE * (lanes.len() as u64) + 40;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="timeline">"#
    );
    // Time grid: five ticks.
    for k in 0..=4u64 {
        let at = start + span * k / 4;
        let gx = x_of(at);
        let _ = write!(
            svg,
            r##"<line x1="{gx}" y1="0" x2="{gx}" y2="{}" stroke="#e9ecef"/><text x="{gx}" y="{}" class="tick">{}</text>"##,
            height - 24,
            height - 8,
            duration_ms(span * k / 4)
        );
    }
    for (row, (site, tasks)) in lanes.iter().enumerate() {
        let y = row as u64 * LANE;
        let _ = write!(svg, r#"<text x="{}" y="{}" class="lane">{}</text>"#, LABEL - 8, y + LANE - 5, escape(site));
        for task in tasks {
            let (from, to) = match (task.started_at, task.finished_at) {
                (Some(s), Some(f)) => (s, f),
                (Some(s), None) => (s, end),
                (None, Some(f)) => (f, f),
                (None, None) => continue,
            };
            let bx = x_of(from);
            let bw = (x_of(to).saturating_sub(bx)).max(3);
            let title = format!(
                "{} — {}{}{}",
                task.id,
                label(task.status),
                task.duration_ms.map(|d| format!(", {}", duration_ms(d))).unwrap_or_default(),
                if task.message.is_empty() { String::new() } else { format!(": {}", task.message) }
            );
            let _ = write!(
                svg,
                r#"<rect x="{bx}" y="{}" width="{bw}" height="{}" rx="3" fill="{}"><title>{}</title></rect>"#,
                y + 3,
                LANE - 6,
                colour(task.status),
                escape(&title)
            );
        }
    }
    svg.push_str("</svg>");

    let verdict = if report.interrupted {
        ("interrupted", "#f08c00")
    } else if report.all_ok() {
        ("every task succeeded or was unchanged", "#2f9e44")
    } else {
        ("some tasks did not succeed", "#e03131")
    };
    let mut cards = String::new();
    for (name, n, status) in [
        ("succeeded", totals.succeeded, Some(Status::Succeeded)),
        ("unchanged", totals.unchanged, Some(Status::Unchanged)),
        ("failed", totals.failed, Some(Status::Failed)),
        ("skipped", totals.skipped, Some(Status::Skipped)),
        ("cancelled", totals.cancelled, Some(Status::Cancelled)),
    ] {
        let _ = write!(
            cards,
            r#"<div class="card" style="border-color:{}"><b>{n}</b><span>{name}</span></div>"#,
            colour(status)
        );
    }
    let mut rows = String::new();
    let mut ordered: Vec<&TaskReport> = report.tasks.iter().collect();
    ordered.sort_by_key(|t| (t.status.is_some_and(Status::is_ok), t.id.clone()));
    for task in ordered {
        let _ = write!(
            rows,
            r#"<tr><td><code>{}</code></td><td><span class="dot" style="background:{}"></span>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            escape(&task.id),
            colour(task.status),
            label(task.status),
            task.attempts,
            task.duration_ms.map(duration_ms).unwrap_or_default(),
            escape(&task.workflow_ids.join(", ")),
            escape(&task.message)
        );
    }
    let settings = &report.settings;
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>terminus-batch run {run}</title>
<style>
body{{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1180px;color:#212529;padding:0 16px}}
h1{{font-size:20px;margin:0 0 4px}} h2{{font-size:16px;margin:28px 0 8px}}
.meta{{color:#495057}} .verdict{{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;font-weight:600}}
.cards{{display:flex;gap:12px;margin:16px 0}} .card{{border-left:5px solid;padding:6px 14px;background:#f8f9fa;border-radius:4px;min-width:90px}}
.card b{{display:block;font-size:22px}} .card span{{color:#495057}}
.timeline{{overflow:auto;border:1px solid #dee2e6;border-radius:6px;padding:8px;background:#fff}}
.lane{{font-size:11px;text-anchor:end;fill:#495057}} .tick{{font-size:10px;fill:#868e96;text-anchor:middle}}
table{{border-collapse:collapse;width:100%}} td,th{{border-bottom:1px solid #e9ecef;padding:5px 8px;text-align:left;vertical-align:top}}
th{{background:#f1f3f5;font-weight:600}} code{{font-size:12px}}
.dot{{display:inline-block;width:9px;height:9px;border-radius:50%;margin-right:6px}}
.legend span{{margin-right:14px}}
</style></head><body>
<h1>terminus-batch run <code>{run}</code></h1>
<p class="meta"><span class="verdict" style="background:{vcolour}">{verdict}</span>
&nbsp;plan <code>{path}</code> (sha256 <code>{sha}</code>) · {tasks} tasks · {elapsed} · started {started}</p>
<p class="meta">{target} · concurrency {concurrency}, per site {per_site}, {rps} requests/s (burst {burst}), on failure {on_failure}, max failures {max_failures}, timeout {timeout}</p>
<div class="cards">{cards}</div>
<h2>Timeline</h2>
<p class="legend meta"><span><span class="dot" style="background:#2f9e44"></span>succeeded</span><span><span class="dot" style="background:#74b816"></span>unchanged</span><span><span class="dot" style="background:#e03131"></span>failed</span><span><span class="dot" style="background:#adb5bd"></span>skipped</span><span><span class="dot" style="background:#f08c00"></span>cancelled</span> — one lane per site; hover a bar for details</p>
<div class="timeline">{svg}</div>
<h2>Tasks</h2>
<table><thead><tr><th>task</th><th>status</th><th>attempts</th><th>duration</th><th>workflows</th><th>message</th></tr></thead><tbody>{rows}</tbody></table>
</body></html>
"#,
        run = escape(&report.run_id),
        vcolour = verdict.1,
        verdict = verdict.0,
        path = escape(&report.plan.path),
        sha = escape(report.plan.sha256.get(..12).unwrap_or(&report.plan.sha256)),
        tasks = totals.tasks,
        elapsed = report.duration_ms.map_or_else(|| "unfinished".to_owned(), duration_ms),
        started = rfc3339_ms(report.started_at),
        target = escape(&settings.target),
        concurrency = settings.concurrency,
        per_site = settings.per_site,
        rps = settings.requests_per_second,
        burst = settings.burst,
        on_failure = escape(&settings.on_failure),
        max_failures = escape(&settings.max_failures),
        timeout = escape(&settings.timeout),
    )
}
