//! Every report format, snapshot-tested from a report folded from events built in code (fixed
//! clock, fixed run id), so a change to any format shows up in review.

use tb_core::cause::Cause;
use tb_core::events::{Event, Outcome, Status, TaskHeader};
use tb_core::ids::RunId;
use tb_report::summary::{PlanInfo, SettingsInfo};
use tb_report::{Format, RunReport, render, table};

const T0: u64 = 1_800_000_000_000;

fn header(job: &str, site: &str, env: &str, op: &str) -> TaskHeader {
    TaskHeader::new(job, Some(site), Some(env), op)
}

fn finished(task: usize, status: Status, message: &str, at: u64) -> Event {
    Event::TaskFinished { task, outcome: Outcome::new(status, message), at: T0 + at }
}

/// A small run: a backup and a deploy on two sites; one deploy fails, its clear-cache is
/// skipped, one task was cancelled by a second Ctrl-C.
fn sample() -> RunReport {
    let mut report = RunReport::new(
        PlanInfo { path: "release.yml".into(), sha256: "ab".repeat(32), name: Some("release".into()) },
        SettingsInfo {
            concurrency: 10,
            per_site: 1,
            max_requests: 10,
            requests_per_second: 10.0,
            burst: 20,
            on_failure: "continue".into(),
            max_failures: "none".into(),
            timeout: "45m".into(),
            resolved_by: "simulator world <built-in world>".into(),
            simulated: true,
        },
    );
    let tasks = vec![
        header("backup", "acme-blog", "live", "backup:create"),
        header("backup", "acme-web", "live", "backup:create"),
        header("deploy", "acme-blog", "live", "env:deploy"),
        header("deploy", "acme-web", "live", "env:deploy"),
        header("clear", "acme-blog", "live", "env:clear-cache"),
        header("clear", "acme-web", "live", "env:clear-cache"),
    ];
    let events = vec![
        Event::RunStarted { run_id: RunId::from_parts("20270115T080000Z", 0xbeef), at: T0, tasks },
        Event::TaskStarted { task: 0, at: T0 + 10 },
        Event::TaskStarted { task: 1, at: T0 + 12 },
        Event::AttemptStarting { task: 0, attempt: 1, at: T0 + 20 },
        Event::WorkflowStarted { task: 0, workflow_id: "wf-backup-blog".into(), at: T0 + 90 },
        Event::AttemptStarting { task: 1, attempt: 1, at: T0 + 21 },
        Event::WorkflowStarted { task: 1, workflow_id: "wf-backup-web".into(), at: T0 + 95 },
        finished(0, Status::Succeeded, "backup created", 61_000),
        Event::TaskStarted { task: 2, at: T0 + 61_010 },
        finished(1, Status::Succeeded, "backup created", 64_500),
        Event::TaskStarted { task: 3, at: T0 + 64_510 },
        Event::AttemptStarting { task: 2, attempt: 1, at: T0 + 61_020 },
        Event::AttemptFailed { task: 2, attempt: 1, error: "HTTP 503".into(), transient: true, at: T0 + 61_500 },
        Event::TaskRetrying { task: 2, next_attempt: 2, delay_ms: 30_000, at: T0 + 61_500 },
        Event::AttemptStarting { task: 2, attempt: 2, at: T0 + 91_500 },
        Event::WorkflowStarted { task: 2, workflow_id: "wf-deploy-blog".into(), at: T0 + 91_600 },
        finished(
            2,
            Status::Failed,
            "workflow wf-deploy-blog failed: Merge conflict in <wp-config.php> & \"friends\"",
            140_000,
        ),
        finished(4, Status::Skipped, "`deploy[acme-blog.live]` failed", 140_000),
        Event::WorkflowStarted { task: 3, workflow_id: "wf-deploy-web".into(), at: T0 + 64_600 },
        finished(3, Status::Unchanged, "There is nothing to deploy.", 65_000),
        Event::TaskStarted { task: 5, at: T0 + 65_010 },
        Event::WorkflowStarted { task: 5, workflow_id: "wf-clear-web".into(), at: T0 + 65_100 },
        finished(5, Status::Cancelled, "stopped waiting for workflow wf-clear-web: remote state unknown", 70_000),
        Event::RunFinished { at: T0 + 140_100, interrupted: false, timed_out: false },
    ];
    for event in &events {
        report.apply(event);
    }
    report
}

#[test]
fn the_fold_accounts_for_every_task() {
    let report = sample();
    let t = &report.totals;
    assert_eq!((t.tasks, t.succeeded, t.unchanged, t.failed, t.skipped, t.cancelled), (6, 2, 1, 1, 1, 1));
    assert_eq!(report.tasks[2].attempts, 2);
    assert_eq!(report.tasks[2].workflow_ids, ["wf-deploy-blog"]);
    assert_eq!(report.tasks[4].attempts, 0, "a skipped task never started");
    assert_eq!(report.duration_ms, Some(140_100));
    assert!(!report.all_ok());
}

#[test]
fn json_report() {
    insta::assert_snapshot!(render(&sample(), Format::Json));
}

#[test]
fn junit_report() {
    insta::assert_snapshot!(render(&sample(), Format::Junit));
}

/// Jenkins' xunit plugin (its junit-10.xsd, restated in `tests/fixtures/junit/`) and GitLab's
/// `JUnit` reader take the report: the schema validates it (with Python's `xmlschema`, which
/// the tests provision), and each test case reads as GitLab reads it (a name, a class name, a
/// time in seconds; a status from its `failure`, `error` or `skipped` child).
#[test]
fn junit_is_what_jenkins_and_gitlab_accept() {
    let python = crate::support::tools::needs!(PythonTools).join("python");
    let dir = tempfile::tempdir().unwrap();
    let mut fleet = fleet();
    // A task of a run that never ended is written too.
    fleet.tasks[39].status = None;
    for (name, report) in [("sample.xml", sample()), ("fleet.xml", fleet)] {
        std::fs::write(dir.path().join(name), render(&report, Format::Junit)).unwrap();
    }
    let xsd = crate::support::repo().join("tests/fixtures/junit/jenkins-xunit-junit-10.xsd");
    let script = r#"
import sys, xml.etree.ElementTree as ET
import xmlschema
schema = xmlschema.XMLSchema(sys.argv[1])
for path in sys.argv[2:]:
    schema.validate(path)
    root = ET.parse(path).getroot()
    counts = {}
    for case in root.iter("testcase"):
        assert case.get("name") and case.get("classname"), case.attrib
        float(case.get("time", "0"))
        kinds = [c.tag for c in case if c.tag in ("failure", "error", "skipped")]
        assert len(kinds) <= 1, kinds
        status = kinds[0] if kinds else "success"
        if status != "success":
            assert case.find(status).get("message"), ET.tostring(case)
            # The body a CI server shows: what the task said (a skip names what it needed).
            assert (case.find(status).text or "").strip(), ET.tostring(case)
        counts[status] = counts.get(status, 0) + 1
    print(path.split("/")[-1], sorted(counts.items()))
"#;
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(&xsd)
        .arg(dir.path().join("sample.xml"))
        .arg(dir.path().join("fleet.xml"))
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    // sample: 2 succeeded + 1 unchanged, 1 failed, 1 skipped, 1 cancelled (an error).
    assert!(stdout.contains("sample.xml [('error', 1), ('failure', 1), ('skipped', 1), ('success', 3)]"), "{stdout}");
    // fleet: 27 failed, 3 skipped, 9 succeeded and one unfinished (an error).
    assert!(stdout.contains("fleet.xml [('error', 1), ('failure', 27), ('skipped', 3), ('success', 9)]"), "{stdout}");
}

#[test]
fn markdown_report() {
    insta::assert_snapshot!(render(&sample(), Format::Markdown));
}

#[test]
fn html_report() {
    let html = render(&sample(), Format::Html);
    assert!(html.contains("Merge conflict in &lt;wp-config.php&gt; &amp; &quot;friends&quot;"), "escaped");
    assert!(!html.contains("<script"), "self-contained, no scripts");
    insta::assert_snapshot!(html);
}

#[test]
fn final_table() {
    insta::assert_snapshot!(table::render(&sample()));
}

/// 40 sites cleared: 25 fail for one cause (each with its own workflow id), 2 for another,
/// 3 are skipped by an interrupt; the rest succeed.
fn fleet() -> RunReport {
    let mut report = sample();
    let tasks: Vec<TaskHeader> =
        (0..40).map(|i| header("clear", &format!("site-{i:02}"), "live", "env:clear-cache")).collect();
    let mut events = vec![Event::RunStarted { run_id: RunId::from_parts("20270115T080000Z", 0xf1ee), at: T0, tasks }];
    for i in 0..40 {
        events.push(Event::TaskStarted { task: i, at: T0 + 10 });
        let workflow = format!("{i:08x}-22fd-4d45-95ab-a25531f5eec3");
        events.push(Event::WorkflowStarted { task: i, workflow_id: workflow.clone(), at: T0 + 20 });
        let failed = |cause: Cause, message: String| Outcome::because(Status::Failed, cause, message);
        let request = "POST /api/sites/{site}/environments/{env}/workflows".to_owned();
        let outcome = match i {
            0..25 => failed(
                Cause::Workflow { workflow: "clear_cache".into(), reason: "Simulated failure of clear_cache".into() },
                format!("workflow clear_cache ({workflow}) failed: Simulated failure of clear_cache"),
            ),
            25..27 => failed(
                Cause::Http { status: 403, request: request.clone() },
                format!("HTTP 403 Forbidden on {request}: You do not have permission"),
            ),
            27..30 => Outcome::from_cause(Status::Skipped, Cause::Interrupted),
            _ => Outcome::new(Status::Succeeded, "cache cleared"),
        };
        events.push(Event::TaskFinished { task: i, outcome, at: T0 + 30_000 });
    }
    events.push(Event::RunFinished { at: T0 + 31_000, interrupted: true, timed_out: false });
    for event in &events {
        report.apply(event);
    }
    report
}

#[test]
fn the_html_timeline_of_a_thousand_sites_keeps_its_height() {
    let mut report = sample();
    let tasks: Vec<TaskHeader> =
        (0..1000).map(|i| header("clear", &format!("site-{i:04}"), "live", "env:clear-cache")).collect();
    let mut events = vec![Event::RunStarted { run_id: RunId::from_parts("20270115T080000Z", 0xf1ee), at: T0, tasks }];
    for i in 0..1000 {
        events.push(Event::TaskStarted { task: i, at: T0 + 10 * i as u64 });
        let status = if i % 100 == 7 { Status::Failed } else { Status::Succeeded };
        events.push(finished(i, status, "done", 20_000 + 10 * i as u64));
    }
    events.push(Event::RunFinished { at: T0 + 31_000, interrupted: false, timed_out: false });
    for event in &events {
        report.apply(event);
    }
    let html = render(&report, Format::Html);
    // 3 px a lane rather than 20, without the site labels there is no room for.
    assert!(html.contains(r#"viewBox="0 0 1100 3046""#), "{}", &html[html.find("<svg").unwrap()..][..120]);
    assert!(!html.contains(r#"class="lane""#), "no site labels");
    assert_eq!(html.matches(r#"<g class="task "#).count(), 1000, "a bar per task");
    assert_eq!(html.matches(r#"<g class="task failed""#).count(), 10);
}

#[test]
fn final_table_groups_a_fleet_failure_by_cause() {
    insta::assert_snapshot!(table::render(&fleet()));
}

#[test]
fn markdown_report_groups_a_fleet_failure_by_cause() {
    insta::assert_snapshot!(render(&fleet(), Format::Markdown));
}

#[test]
fn final_table_colours_statuses_only_when_asked() {
    use tb_report::paint::Paint;
    use tb_report::table::{TableOptions, render_with};
    let plain = render_with(&fleet(), &TableOptions::default());
    assert!(!plain.contains('\x1b'), "{plain}");
    let coloured = render_with(&fleet(), &TableOptions { paint: Paint::new(true), ..TableOptions::default() });
    assert!(coloured.contains("\x1b[31mfailed   \x1b[0m  25 tasks: workflow clear_cache failed"), "{coloured}");
    assert!(coloured.contains("\x1b[33mskipped  \x1b[0m  3 tasks: the run was interrupted"), "{coloured}");
}

#[test]
fn the_html_report_puts_failures_first_marks_waves_and_links_workflows() {
    let mut report = sample();
    report.settings.resolved_by = "Pantheon API at https://terminus.pantheon.io:443/api".into();
    report.settings.simulated = false;
    report.tasks[2].task.site_id = Some("0de04650-8dba-59c7-1435-aa1fadc7acbc".into());
    report.tasks[3].task.wave = 1;
    let html = render(&report, Format::Html);
    let at = |needle: &str| html.find(needle).unwrap_or_else(|| panic!("no {needle:?}"));
    assert!(at("What did not succeed") < at("<h2>Jobs</h2>"), "failures first");
    assert!(at("<h2>Jobs</h2>") < at("<h2>Timeline</h2>"));
    assert!(html.contains("deploy wave 2"), "the later wave is marked");
    assert!(html.contains(r#"class="bar">backup</text>"#), "bars labelled by job");
    assert!(html.contains("url(#skipped)"), "a skipped task is drawn");
    assert!(
        html.contains(r#"<a href="https://dashboard.pantheon.io/sites/0de04650-8dba-59c7-1435-aa1fadc7acbc#live"><code>wf-deploy-blog</code></a>"#),
        "workflows link to the environment's dashboard"
    );
    // A simulated run links nowhere: its site ids exist only in the world file. The typed
    // endpoint says so, whatever the target's words (a saved plan's run against the simulator
    // reads "the saved plan's targets (connected to simulator …)").
    assert!(!render(&sample(), Format::Html).contains("dashboard.pantheon.io"));
    let mut saved = report.clone();
    saved.settings.resolved_by = "the saved plan's targets (connected to simulator world w.yml)".into();
    saved.settings.simulated = true;
    assert!(!render(&saved, Format::Html).contains("dashboard.pantheon.io"));
}

/// A release of 300 sites as a browser draws it: two jobs rolled out in waves that start
/// close together, ten failures. Headless Chromium lays the page out and a script measures
/// it (the page itself has none; the test adds it to a copy): no two wave labels overlap, no
/// axis label runs past the drawing, and every failure has a mark in the failures strip
/// that is large enough to find.
#[test]
fn the_html_timeline_reads_in_a_browser() {
    let chromium = crate::support::tools::needs!(Chromium);
    let mut report = sample();
    let mut tasks = Vec::new();
    // Long job names: the last wave's label would run past the drawing's right edge.
    for job in ["backup", "deploy-to-every-live-site", "clear-every-cache-after"] {
        for i in 0..300 {
            let wave = if job == "backup" { 0 } else { u32::try_from(i / 100).unwrap() };
            tasks.push(TaskHeader { wave, ..header(job, &format!("site-{i:03}"), "live", "env:deploy") });
        }
    }
    let mut events = vec![Event::RunStarted { run_id: RunId::from_parts("20270115T080000Z", 0xf1ee), at: T0, tasks }];
    for (j, job_start) in [0u64, 60_000, 61_000].into_iter().enumerate() {
        for i in 0..300u64 {
            let task = j * 300 + usize::try_from(i).unwrap();
            // Each later wave of the two rolled-out jobs starts a second apart from the other's.
            let at = job_start + (i / 100) * 100_000 + i % 100 * 10;
            events.push(Event::TaskStarted { task, at: T0 + at });
            let status = if j == 1 && i % 30 == 7 { Status::Failed } else { Status::Succeeded };
            events.push(finished(task, status, "done", at + 40_000));
        }
    }
    events.push(Event::RunFinished { at: T0 + 302_000, interrupted: false, timed_out: false });
    for event in &events {
        report.apply(event);
    }
    let html = render(&report, Format::Html);
    let measure = r"<script>
const svg = document.querySelector('svg[aria-label=timeline]');
const width = svg.viewBox.baseVal.width;
const waves = [...svg.querySelectorAll('text.wave')].map(e => e.getBBox());
let overlaps = 0;
for (let i = 0; i < waves.length; i++) for (let j = i + 1; j < waves.length; j++) {
  const a = waves[i], b = waves[j];
  if (a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height) overlaps++;
}
const ticks = [...svg.querySelectorAll('text.tick')].map(e => e.getBBox());
const clipped = ticks.concat(waves).filter(b => b.x < 0 || b.x + b.width > width).length;
const marks = [...svg.querySelectorAll('rect.failure-mark')].map(e => e.getBoundingClientRect().height);
const pre = document.createElement('pre');
pre.id = 'measured';
pre.textContent = JSON.stringify({ waves: waves.length, overlaps, ticks: ticks.length, clipped, marks: marks.length, smallest_mark: Math.min(...marks) });
document.body.appendChild(pre);
</script></body>";
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    std::fs::write(&page, html.replacen("</body>", measure, 1)).unwrap();
    let out = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,1000",
        ])
        .arg(format!("--user-data-dir={}", dir.path().join("profile").display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&out.stdout);
    let measured = dom
        .split("<pre id=\"measured\">")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .unwrap_or_else(|| panic!("no measurement: {}", String::from_utf8_lossy(&out.stderr)));
    let m: serde_json::Value = serde_json::from_str(measured).unwrap();
    assert_eq!(m["waves"], 4, "two later waves of two jobs: {m}");
    assert_eq!(m["overlaps"], 0, "wave labels overlap: {m}");
    assert_eq!(m["ticks"], 5, "{m}");
    assert_eq!(m["clipped"], 0, "an axis or wave label runs past the drawing: {m}");
    assert_eq!(m["marks"], 10, "a mark per failure: {m}");
    assert!(m["smallest_mark"].as_f64().unwrap() >= 8.0, "a failure's mark is large enough to find: {m}");
}
