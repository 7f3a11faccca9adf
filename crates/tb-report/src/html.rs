//! The HTML report: one self-contained file (no scripts, no external assets) that a release
//! manager forwards as it is: the verdict and counts, the failures first (grouped by cause),
//! a table per job, a timeline (a lane per site, a bar per task coloured and labelled by job,
//! its outcome marked; rollout waves drawn where they started; skipped tasks shown where they
//! were skipped), and every task with its workflows linked to the site's dashboard.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::live::StatusLevel;
use super::summary::{TaskReport, Totals};
use super::{RunReport, escape};
use tb_core::events::Status;
use tb_core::timefmt::{duration_ms, rfc3339_ms};

const LANE: u64 = 20;
/// Lanes drawn at full height; past this many the timeline keeps its height (see
/// [`lane_height`]).
const FULL_LANES: u64 = 100;
const LABEL: u64 = 190;
const WIDTH: u64 = 1100;
/// Height of a row of rollout-wave labels above the lanes.
const WAVE_ROW: u64 = 13;
/// Height of the failures strip above the lanes: a red mark where each failed task ended.
const STRIP: u64 = 14;

/// Job colours, cycled: distinct hues that stay readable under white text.
const PALETTE: [&str; 8] = ["#1c7ed6", "#7048e8", "#0c8599", "#d6336c", "#5c940d", "#e8590c", "#862e9c", "#364fc7"];

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

/// The Pantheon dashboard of a task's environment, where its workflows are listed; none for
/// a simulated run (its site ids exist only in the world file).
fn dashboard(report: &RunReport, task: &TaskReport) -> Option<String> {
    if report.settings.simulated {
        return None;
    }
    let site = task.site_id.as_deref()?;
    let env = task.env.as_deref().map(|e| format!("#{e}")).unwrap_or_default();
    Some(format!("https://dashboard.pantheon.io/sites/{site}{env}"))
}

/// A lane's height: [`LANE`] up to [`FULL_LANES`] lanes; past that the timeline keeps about
/// the height of that many, each lane no thinner than 3 px (a fleet of 1,000 sites is 3,000
/// px tall, not 20,000). Thin lanes drop their site labels; each bar's tooltip names its task.
fn lane_height(lanes: u64) -> u64 {
    if lanes <= FULL_LANES { LANE } else { (LANE * FULL_LANES / lanes).max(3) }
}

/// The jobs in plan order with their colours.
fn jobs(report: &RunReport) -> Vec<(&str, &'static str)> {
    let jobs = report.jobs();
    jobs.into_iter().enumerate().map(|(i, j)| (j, PALETTE[i % PALETTE.len()])).collect()
}

/// Where times fall on the timeline: `start` at the left of the plot, `start + span` at its
/// right.
#[derive(Clone, Copy)]
struct Scale {
    start: u64,
    span: u64,
    plot: u64,
}

impl Scale {
    fn x(self, ms: u64) -> u64 {
        LABEL + (ms.saturating_sub(self.start).min(self.span) * self.plot) / self.span
    }
}

/// A wave's label: its line's x, its row, whether it reads leftward, its job and wave.
type WaveLabel<'a> = (u64, usize, bool, &'a str, u32);

/// The timeline: a lane per site; a bar per task filled with its job's colour and labelled
/// with its job where it fits; failed bars outlined red, cancelled dashed orange, skipped
/// striped, unchanged faded; a dashed line where each later rollout wave started.
fn timeline(report: &RunReport, jobs: &[(&str, &'static str)]) -> String {
    let start = report.started_at;
    let end = report
        .finished_at
        .or_else(|| report.tasks.iter().filter_map(|t| t.finished_at.or(t.started_at)).max())
        .unwrap_or(start)
        .max(start + 1);
    let scale = Scale { start, span: end - start, plot: WIDTH - LABEL - 10 };
    let mut lanes: BTreeMap<String, Vec<&TaskReport>> = BTreeMap::new();
    for task in &report.tasks {
        lanes.entry(task.site.clone().unwrap_or_else(|| "(account)".to_owned())).or_default().push(task);
    }
    let job_colour = |job: &str| jobs.iter().find(|(j, _)| *j == job).map_or(PALETTE[0], |(_, c)| *c);
    let lane = lane_height(lanes.len() as u64);
    let lanes_height = lane * (lanes.len() as u64);
    let (placed, wave_rows) = wave_labels(report, scale);
    let failed: Vec<&TaskReport> = report.tasks.iter().filter(|t| t.status == Some(Status::Failed)).collect();
    let strip = if failed.is_empty() { 0 } else { STRIP };
    let top = 4 + WAVE_ROW * wave_rows as u64 + strip;
    let height = top + lanes_height + 28;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="timeline">"#
    );
    svg.push_str(
        r##"<defs><pattern id="skipped" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#f1f3f5"/><line x1="0" y1="0" x2="0" y2="6" stroke="#868e96" stroke-width="3"/></pattern></defs>"##,
    );
    for k in 0..=4u64 {
        let gx = scale.x(start + scale.span * k / 4);
        // The last label ends at its line, so that it is not cut at the edge.
        let class = if k == 4 { "tick last" } else { "tick" };
        let _ = write!(
            svg,
            r##"<line x1="{gx}" y1="{top}" x2="{gx}" y2="{}" stroke="#e9ecef"/><text x="{gx}" y="{}" class="{class}">{}</text>"##,
            top + lanes_height,
            height - 8,
            duration_ms(scale.span * k / 4)
        );
    }
    for (wx, row, leftward, job, wave) in placed {
        let y = 4 + WAVE_ROW * (row as u64 + 1);
        let (tx, class) = if leftward { (wx.saturating_sub(3), "wave leftward") } else { (wx + 3, "wave") };
        let _ = write!(
            svg,
            r#"<line x1="{wx}" y1="{}" x2="{wx}" y2="{}" stroke="{c}" stroke-dasharray="4 3"/><text x="{tx}" y="{}" class="{class}" fill="{c}">{} wave {}</text>"#,
            y - 9,
            top + lanes_height,
            y - 2,
            escape(job),
            wave + 1,
            c = job_colour(job),
        );
    }
    failure_strip(&mut svg, &failed, top, scale);
    let bars = Bars { lane, pad: lane * 3 / LANE, lettered: lane >= 14, end, scale };
    for (row, (site, tasks)) in lanes.iter().enumerate() {
        let y = top + row as u64 * lane;
        if bars.lettered {
            let _ = write!(svg, r#"<text x="{}" y="{}" class="lane">{}</text>"#, LABEL - 8, y + lane - 6, escape(site));
        }
        for task in tasks {
            bars.draw(&mut svg, task, y, job_colour(&task.job));
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Rollout waves: where each later wave of a job first started, each label in the first row
/// where it overlaps no other (waves of several jobs start close together); and how many
/// rows that takes.
fn wave_labels(report: &RunReport, scale: Scale) -> (Vec<WaveLabel<'_>>, usize) {
    let mut waves: BTreeMap<(&str, u32), u64> = BTreeMap::new();
    for task in report.tasks.iter().filter(|t| t.wave > 0) {
        if let Some(at) = task.started_at {
            let first = waves.entry((task.job.as_str(), task.wave)).or_insert(at);
            *first = (*first).min(at);
        }
    }
    let mut by_x: Vec<(u64, &str, u32)> = waves.iter().map(|((job, wave), at)| (scale.x(*at), *job, *wave)).collect();
    by_x.sort_unstable();
    // Each row's labels as spans of x; a label about 6 px a character, right of its line, or
    // left of it where it would run past the drawing's edge.
    let mut rows: Vec<Vec<(u64, u64)>> = Vec::new();
    let mut placed = Vec::new();
    for (wx, job, wave) in by_x {
        let text_width = (job.chars().count() as u64 + 7) * 6;
        let leftward = wx + 3 + text_width > WIDTH;
        let span = if leftward { (wx.saturating_sub(3 + text_width), wx) } else { (wx, wx + 3 + text_width) };
        let free = |row: &Vec<(u64, u64)>| row.iter().all(|(start, end)| span.1 + 4 <= *start || *end + 4 <= span.0);
        let row = rows.iter().position(free).unwrap_or(rows.len());
        if row == rows.len() {
            rows.push(Vec::new());
        }
        rows[row].push(span);
        placed.push((wx, row, leftward, job, wave));
    }
    (placed, rows.len())
}

/// The failures strip: however thin the lanes, each failure is a mark here.
fn failure_strip(svg: &mut String, failed: &[&TaskReport], top: u64, scale: Scale) {
    if failed.is_empty() {
        return;
    }
    let y = top - STRIP;
    let _ = write!(
        svg,
        r##"<rect x="{LABEL}" y="{}" width="{}" height="{}" fill="#fff5f5"/><text x="{}" y="{}" class="lane strip">failed ({})</text>"##,
        y + 1,
        scale.plot,
        STRIP - 2,
        LABEL - 8,
        y + STRIP - 4,
        failed.len()
    );
    for task in failed {
        let at = task.finished_at.or(task.started_at).unwrap_or(scale.start);
        let _ = write!(
            svg,
            r##"<rect class="failure-mark" x="{}" y="{}" width="3" height="{}" fill="#e03131"><title>{}</title></rect>"##,
            scale.x(at).saturating_sub(1),
            y + 2,
            STRIP - 4,
            escape(&format!("{} — failed: {}", task.id, task.message))
        );
    }
}

/// How a task's bar is drawn in its lane: the lane's height, the bar's margin within it,
/// whether there is room for text (11 px), and where an unfinished bar ends.
struct Bars {
    lane: u64,
    pad: u64,
    lettered: bool,
    end: u64,
    scale: Scale,
}

impl Bars {
    /// One task's bar in the lane at `y`, with its title and, where it fits, its job's name.
    fn draw(&self, svg: &mut String, task: &TaskReport, y: u64, colour: &str) {
        let (lane, pad) = (self.lane, self.pad);
        // A task that never started (skipped) is shown where it was decided.
        let (from, to) = match (task.started_at, task.finished_at) {
            (Some(s), Some(f)) => (s, f),
            (Some(s), None) => (s, self.end),
            (None, Some(f)) => (f, f),
            (None, None) => return,
        };
        let bx = self.scale.x(from);
        let bw = self.scale.x(to).saturating_sub(bx).max(6);
        let title = format!(
            "{} — {}{}{}",
            task.id,
            label(task.status),
            task.duration_ms.map(|d| format!(", {}", duration_ms(d))).unwrap_or_default(),
            if task.message.is_empty() { String::new() } else { format!(": {}", task.message) }
        );
        // On lanes too thin for an outline to show, a failure is filled red.
        let fill = match task.status {
            Some(Status::Skipped) => "url(#skipped)",
            Some(Status::Failed) if !self.lettered => "#e03131",
            _ => colour,
        };
        let (stroke, dash, opacity) = match task.status {
            Some(Status::Failed) => (r##" stroke="#e03131" stroke-width="2.5""##, "", "1"),
            Some(Status::Cancelled) => (r##" stroke="#f08c00" stroke-width="2""##, r#" stroke-dasharray="3 2""#, "1"),
            Some(Status::Unchanged) => ("", "", "0.5"),
            None => (r##" stroke="#7048e8" stroke-width="2""##, r#" stroke-dasharray="1 2""#, "1"),
            _ => ("", "", "1"),
        };
        let _ = write!(
            svg,
            r#"<g class="task {}"><rect x="{bx}" y="{}" width="{bw}" height="{}" rx="3" fill="{fill}" fill-opacity="{opacity}"{stroke}{dash}/><title>{}</title>"#,
            label(task.status),
            y + pad,
            lane - 2 * pad,
            escape(&title)
        );
        // The job's name inside the bar where it fits (about 6 px a character).
        let name = &task.job;
        let fits = (name.chars().count() as u64) * 6 + 8 <= bw;
        if fits && self.lettered && task.status != Some(Status::Skipped) {
            let _ = write!(svg, r#"<text x="{}" y="{}" class="bar">{}</text>"#, bx + 4, y + lane - 7, escape(name));
        }
        svg.push_str("</g>");
    }
}

/// Per job: its operation, waves, counts by status and its span.
fn job_rows(report: &RunReport, jobs: &[(&str, &'static str)]) -> String {
    let mut rows = String::new();
    for (job, colour) in jobs {
        let tasks: Vec<&TaskReport> = report.tasks.iter().filter(|t| t.job == *job).collect();
        let n = |s: Status| tasks.iter().filter(|t| t.status == Some(s)).count();
        let first = tasks.iter().filter_map(|t| t.started_at).min();
        let last = tasks.iter().filter_map(|t| t.finished_at).max();
        let span = first.zip(last).map(|(f, l)| duration_ms(l.saturating_sub(f))).unwrap_or_default();
        let waves = tasks.iter().map(|t| t.wave).max().unwrap_or(0) + 1;
        let bad = |count: usize, status: Status| {
            if count > 0 {
                format!(r#"<b style="color:{}">{count}</b>"#, self::colour(Some(status)))
            } else {
                "0".to_owned()
            }
        };
        let _ = write!(
            rows,
            r#"<tr><td><span class="dot" style="background:{colour}"></span><code>{}</code></td><td><code>{}</code></td><td>{waves}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{span}</td></tr>"#,
            escape(job),
            escape(tasks.first().map_or("", |t| t.operation.as_str())),
            tasks.len(),
            n(Status::Succeeded),
            n(Status::Unchanged),
            bad(n(Status::Failed), Status::Failed),
            bad(n(Status::Skipped), Status::Skipped),
            bad(n(Status::Cancelled), Status::Cancelled),
        );
    }
    rows
}

/// The tasks that did not succeed, grouped by cause, failures first.
fn failures(report: &RunReport) -> String {
    let groups = super::table::groups(report, StatusLevel::Skip);
    if groups.is_empty() {
        return String::new();
    }
    let mut out = String::from("<h2>What did not succeed</h2><ul class=\"failures\">");
    for group in groups {
        let status = group.tasks[0].status;
        let ids: Vec<String> = group.tasks.iter().map(|t| format!("<code>{}</code>", escape(&t.id))).collect();
        let cause = if group.tasks.len() == 1 { &group.tasks[0].message } else { &group.cause };
        let list = if ids.len() > 12 {
            format!("<details><summary>{} tasks</summary>{}</details>", ids.len(), ids.join(" "))
        } else {
            ids.join(" ")
        };
        let _ = write!(
            out,
            r#"<li><span class="dot" style="background:{}"></span><b>{} · {}</b> {}<br>{list}</li>"#,
            colour(status),
            label(status),
            if group.tasks.len() == 1 { "1 task".to_owned() } else { format!("{} tasks", group.tasks.len()) },
            escape(cause),
        );
    }
    out.push_str("</ul>");
    out
}

/// The HTML document.
#[must_use]
pub fn render(report: &RunReport) -> String {
    let totals = &report.totals;
    let jobs = jobs(report);
    let svg = timeline(report, &jobs);
    let verdict = if report.interrupted {
        ("interrupted", "#f08c00")
    } else if report.all_ok() {
        ("every task succeeded or was unchanged", "#2f9e44")
    } else {
        ("some tasks did not succeed", "#e03131")
    };
    let cards = cards(totals);
    let rows = task_rows(report);
    let mut legend = String::new();
    for (job, c) in &jobs {
        let _ = write!(legend, r#"<span><span class="dot" style="background:{c}"></span>{}</span>"#, escape(job));
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
.lane{{font-size:11px;text-anchor:end;fill:#495057}} .tick{{font-size:10px;fill:#868e96;text-anchor:middle}} .tick.last{{text-anchor:end}}
table{{border-collapse:collapse;width:100%}} td,th{{border-bottom:1px solid #e9ecef;padding:5px 8px;text-align:left;vertical-align:top}}
th{{background:#f1f3f5;font-weight:600}} code{{font-size:12px}}
.dot{{display:inline-block;width:9px;height:9px;border-radius:50%;margin-right:6px}}
.legend span{{margin-right:14px}} .bar{{font-size:10px;fill:#fff;pointer-events:none}} .wave{{font-size:10px;font-weight:600}} .wave.leftward{{text-anchor:end}}
td:first-child code{{white-space:nowrap}} pre{{white-space:pre-wrap;font-size:12px;margin:4px 0;max-height:240px;overflow:auto;background:#f8f9fa;padding:6px}} .failures{{padding-left:18px}} .failures li{{margin:4px 0}} .failures code{{margin-right:6px}}
</style></head><body>
<h1>terminus-batch run <code>{run}</code></h1>
<p class="meta"><span class="verdict" style="background:{vcolour}">{verdict}</span>
&nbsp;plan <code>{path}</code> (sha256 <code>{sha}</code>) · {tasks} tasks · {elapsed} · started {started}</p>
<p class="meta">{target} · concurrency {concurrency}, per site {per_site}, {rps} requests/s (burst {burst}), on failure {on_failure}, max failures {max_failures}, timeout {timeout}</p>
<div class="cards">{cards}</div>
{failures}
<h2>Jobs</h2>
<table><thead><tr><th>job</th><th>operation</th><th>waves</th><th>tasks</th><th>succeeded</th><th>unchanged</th><th>failed</th><th>skipped</th><th>cancelled</th><th>span</th></tr></thead><tbody>{job_rows}</tbody></table>
<h2>Timeline</h2>
<p class="legend meta">{legend} — one lane per site, a bar per task in its job's colour; outlined red: failed; dashed orange: cancelled; striped: skipped; faded: unchanged; dashed lines: rollout waves; the strip above the lanes: a red mark where each failed task ended. Hover a bar or a mark for details.</p>
<div class="timeline">{svg}</div>
<h2>Tasks</h2>
<table><thead><tr><th>task</th><th>status</th><th>attempts</th><th>duration</th><th>workflows</th><th>message</th></tr></thead><tbody>{rows}</tbody></table>
</body></html>
"#,
        run = escape(&report.run_id),
        failures = failures(report),
        job_rows = job_rows(report, &jobs),
        vcolour = verdict.1,
        verdict = verdict.0,
        path = escape(&report.plan.path),
        sha = escape(report.plan.sha256.get(..12).unwrap_or(&report.plan.sha256)),
        tasks = totals.tasks,
        elapsed = report.duration_ms.map_or_else(|| "unfinished".to_owned(), duration_ms),
        started = rfc3339_ms(report.started_at),
        target = escape(&settings.resolved_by),
        concurrency = settings.concurrency,
        per_site = settings.per_site,
        rps = settings.requests_per_second,
        burst = settings.burst,
        on_failure = escape(&settings.on_failure),
        max_failures = escape(&settings.max_failures),
        timeout = escape(&settings.timeout),
    )
}

/// A card per status with its count.
fn cards(totals: &Totals) -> String {
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
    cards
}

/// A row per task, failures first, then cancelled, skipped, unfinished, and the tasks that
/// went well.
fn task_rows(report: &RunReport) -> String {
    let mut rows = String::new();
    let mut ordered: Vec<&TaskReport> = report.tasks.iter().collect();
    // Failures first, then cancelled, skipped, unfinished, and the tasks that went well.
    let rank = |s: Option<Status>| match s {
        Some(Status::Failed) => 0,
        Some(Status::Cancelled) => 1,
        Some(Status::Skipped) => 2,
        None => 3,
        Some(Status::Succeeded | Status::Unchanged) => 4,
    };
    ordered.sort_by_key(|t| (rank(t.status), t.id.clone()));
    for task in ordered {
        let workflows: Vec<String> = task
            .workflow_ids
            .iter()
            .map(|id| match dashboard(report, task) {
                Some(url) => format!(r#"<a href="{}"><code>{}</code></a>"#, escape(&url), escape(id)),
                None => format!("<code>{}</code>", escape(id)),
            })
            .collect();
        let by = if task.run_id == report.run_id { String::new() } else { format!(" (run {})", escape(&task.run_id)) };
        // A remote command's output, folded under its message.
        let output = task.data.as_ref().filter(|d| d.get("exit_code").is_some()).map_or_else(String::new, |d| {
            let text = |key: &str| d.get(key).and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
            let (out, err) = (text("stdout"), text("stderr"));
            let mut shown = String::new();
            for (label, body) in [("stdout", out), ("stderr", err)] {
                if !body.trim().is_empty() {
                    let _ = write!(shown, "<details><summary>{label}</summary><pre>{}</pre></details>", escape(&body));
                }
            }
            shown
        });
        let _ = write!(
            rows,
            r#"<tr><td><code>{}</code></td><td><span class="dot" style="background:{}"></span>{}{by}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            escape(&task.id),
            colour(task.status),
            label(task.status),
            task.attempts,
            task.duration_ms.map(duration_ms).unwrap_or_default(),
            workflows.join(" "),
            escape(&task.message) + &output
        );
    }
    rows
}
