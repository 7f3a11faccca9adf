//! Issue 23: the tool's own faults (its disk, its poller, its resumes, its reports). Each
//! test reproduces a way a run lost a record or said something untrue, then checks the fix.

use tb_simulator::Knobs;

use crate::support::Test;
use crate::support::sim::Served;

const TOKEN: &str = "simulated-machine-token";

/// A test against `served` in `dir`, logged in, its request rate no bound.
fn fast_test(served: &Served, dir: &std::path::Path) -> Test {
    served
        .test_in(dir)
        .env("TERMINUS_MACHINE_TOKEN", TOKEN)
        .env("TERMINUS_BATCH_REQUESTS_PER_SECOND", "1000")
        .env("TERMINUS_BATCH_BURST", "1000")
}

fn deploy_world(sites: usize) -> tb_simulator::World {
    crate::support::sim::deployable_sites(sites)
}

const DEPLOY_ALL: &str = "version: 1\njobs:\n  deploy:\n    run: env:deploy\n    on: { sites: ['site-*'], env: test }\n    with: { note: Release }\n";

/// `test`'s command run with every file it writes limited to `bytes` (`RLIMIT_FSIZE`, with
/// SIGXFSZ ignored so a write past it fails as on a full disk, with EFBIG, instead of
/// killing the process): the journal fills up at a byte count the test chooses.
fn with_file_limit(test: &Test, bytes: u64) -> crate::support::Output {
    let inner = test.command();
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg("trap '' XFSZ; exec prlimit --fsize=\"$0\" -- \"$@\"")
        .arg(bytes.to_string())
        .arg(inner.get_program())
        .args(inner.get_args())
        .current_dir(test.path())
        .env_clear();
    for (key, value) in inner.get_envs() {
        if let Some(value) = value {
            command.env(key, value);
        }
    }
    let out = command.output().expect("run terminus-batch under prlimit");
    crate::support::Output {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code().unwrap_or(-1),
    }
}

/// The lines of the only run's journal in `dir`'s state directory.
fn journal_lines(dir: &std::path::Path) -> Vec<String> {
    let runs: Vec<_> =
        std::fs::read_dir(dir.join(".terminus-batch/runs")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let bytes = std::fs::read(runs[0].join("events.jsonl")).unwrap();
    String::from_utf8_lossy(&bytes).lines().map(str::to_owned).collect()
}

#[test]
fn a_state_directory_that_fills_up_mid_run_stops_the_run_and_no_attempt_acts_unrecorded() {
    let knobs = Knobs { time_scale: 0.001, duration_jitter: 0.0, ..Knobs::default() };
    let served = Served::with_world(&deploy_world(40), knobs);
    let t = Test::new().file("plan.yml", DEPLOY_ALL);
    let test = fast_test(&served, t.path())
        .env("TMPDIR", &t.path().display().to_string())
        .args(&["apply", "plan.yml", "--yes", "-q"]);
    // The header and the run's task list take about 8.6 KB: 12 KB leaves room for a few
    // tasks' events, then the journal is full.
    let out = with_file_limit(&test, 12_288);
    assert_eq!(out.code, 8, "a full state directory has its own exit status: {}", out.stderr);
    assert!(out.stderr.contains("cannot be written") && out.stderr.contains("starting nothing more"), "{}", out.stderr);
    // Neither result.json nor the temporary directory could take the report: stderr did.
    let json_start = out.stderr.find("{\n").expect("the JSON report on stderr");
    let report: serde_json::Value =
        serde_json::Deserializer::from_str(&out.stderr[json_start..]).into_iter().next().unwrap().unwrap();
    assert_eq!(report["kind"], "terminus-batch/batch-result");
    let lines = journal_lines(t.path());
    let recorded = lines.iter().filter(|l| l.contains("\"attempt_starting\"")).count();
    let stats = served_stats_after(&served);
    assert!(recorded < 40, "the journal filled before every task started");
    assert_eq!(
        stats, recorded,
        "every deploy sent has its attempt on record, and none was sent without ({recorded} recorded)"
    );
    let skipped = report["totals"]["skipped"].as_u64().unwrap();
    assert!(skipped >= 40 - 10 - u64::try_from(recorded).unwrap(), "{}", report["totals"]);
    // With room again, the resume finishes the rest: each environment deployed once.
    let out = fast_test(&served, t.path()).args(&["apply", "plan.yml", "--yes", "--resume", "-q"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let stats = served.stop();
    assert_eq!(stats.workflows_total, 40, "{:?}", stats.workflows_started);
    assert!(stats.workflows_started.values().all(|n| *n == 1), "{:?}", stats.workflows_started);
}

/// Deploy workflows the simulator has started so far.
fn served_stats_after(served: &Served) -> usize {
    served.requests().iter().filter(|r| r.method == "POST" && r.path.ends_with("/workflows")).count()
}

#[test]
fn resuming_a_run_that_was_resumed_since_continues_from_the_newest_of_its_chain() {
    let served = Served::with_world(&deploy_world(2), Knobs { time_scale: 0.001, ..Knobs::default() });
    let plan =
        "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: [site-000, site-001], env: test }\n";
    let t = Test::new().file("plan.yml", plan);
    let (a, b) = ("20260101T000000Z-000a", "20260101T000001Z-000b");
    let tasks = serde_json::json!([
        { "id": "c[site-000.test]", "job": "c", "site": "site-000", "env": "test", "operation": "env:clear-cache" },
        { "id": "c[site-001.test]", "job": "c", "site": "site-001", "env": "test", "operation": "env:clear-cache" },
    ]);
    let now = crate::support::now_ms();
    let failed = |task: usize| {
        serde_json::json!({ "event": "task_finished", "task": task, "at": now,
            "outcome": { "status": "failed", "message": "HTTP 503" } })
    };
    // Run A failed both; run B resumed A and cleared both caches.
    let started = serde_json::json!({ "event": "run_started", "run_id": a, "at": now, "tasks": tasks });
    served.write_journal(t.path(), a, (a, None), None, &[started.clone(), failed(0), failed(1)]);
    let mut b_events = vec![serde_json::json!({ "event": "run_started", "run_id": b, "at": now, "tasks": tasks })];
    for task in 0..2 {
        b_events.push(serde_json::json!({ "event": "workflow_started", "task": task, "workflow_id": format!("wf-{task}"), "at": now }));
        b_events.push(serde_json::json!({ "event": "workflow_ended", "task": task, "workflow_id": format!("wf-{task}"), "succeeded": true, "at": now }));
        b_events.push(serde_json::json!({ "event": "task_finished", "task": task, "at": now,
            "outcome": { "status": "succeeded", "message": "cleared" } }));
    }
    served.write_journal(t.path(), b, (a, Some(a)), None, &b_events);
    let out = fast_test(&served, t.path())
        .args(&["apply", "plan.yml", "--yes", &format!("--resume={a}"), "--report", "json=out.json", "-q"])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains(&format!("run {a} was resumed since")) && out.stderr.contains(b), "{}", out.stderr);
    let report = crate::support::report(&t, "out.json");
    assert!(report["tasks"].as_array().unwrap().iter().all(|t| t["run_id"] == b), "carried from B: {report}");
    let stats = served.stop();
    assert_eq!(stats.workflows_total, 0, "nothing B did runs again: {:?}", stats.workflows_started);
}

#[test]
fn a_plan_through_a_symlink_elsewhere_or_a_hard_link_is_the_same_plan() {
    let knobs = crate::support::sim::steady(0.1, 30.0);
    let served = Served::with_world(&deploy_world(2), knobs);
    let plan =
        "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: [site-000, site-001], env: test }\n";
    let t = Test::new().file("real/plan.yml", plan).file("hard/.keep", "").file("other/.keep", "");
    std::os::unix::fs::symlink("../real/plan.yml", t.path().join("other/link.yml")).unwrap();
    std::fs::hard_link(t.path().join("real/plan.yml"), t.path().join("hard/plan.yml")).unwrap();
    // Through the symlink, from its own directory: the clears are in flight.
    let mut first = served.start_apply(&t.path().join("other"), &["apply", "link.yml", "--yes"], 2);
    for (dir, path) in [("real", "plan.yml"), ("hard", "plan.yml"), ("other", "../real/plan.yml")] {
        let out = fast_test(&served, &t.path().join(dir)).args(&["apply", path, "--yes"]).run();
        assert_eq!(out.code, 2, "{dir}/{path}: {}", out.stderr);
        assert!(out.stderr.contains("is already being applied by process"), "{dir}/{path}: {}", out.stderr);
    }
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(!t.path().join("other/.terminus-batch").exists(), "the state is the real file's");
    // The run through the symlink is the real plan's: resumed there, it re-attaches.
    let out = fast_test(&served, &t.path().join("real")).args(&["apply", "plan.yml", "--yes", "--resume", "-q"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let stats = served.stop();
    assert_eq!(stats.workflows_total, 2, "one clear per environment: {:?}", stats.workflows_started);
}

#[test]
fn a_journal_cut_inside_its_second_line_means_attempts_unknown_not_none() {
    let knobs = crate::support::sim::steady(0.05, 30.0);
    let served = Served::with_world(&deploy_world(1), knobs);
    let plan = "version: 1\njobs:\n  deploy:\n    run: env:deploy\n    on: { sites: [site-000], env: test }\n    with: { note: Release }\n";
    let t = Test::new().file("plan.yml", plan);
    let run = crate::support::run_id_now("000a");
    // The run deployed, then its journal lost everything past the header but a cut line.
    let workflow = served.start_deploy_like_a_lost_post(&format!("Release [tb:{run}:deploy[site-000.test]]"));
    served.write_journal(t.path(), &run, (&run, None), None, &[]);
    let journal = t.path().join(".terminus-batch/runs").join(&run).join("events.jsonl");
    let mut text = std::fs::read_to_string(&journal).unwrap();
    text.push_str(&format!("{{\"event\":\"run_started\",\"run_id\":\"{run}\",\"at\":1,\"tasks\":[{{\"id\":\"dep"));
    std::fs::write(&journal, text).unwrap();
    let report = served.resume_in(t.path());
    assert_eq!(report["tasks"][0]["workflow_ids"][0], workflow.as_str(), "adopted: {report}");
    let stats = served.stop();
    assert_eq!(stats.workflows_started.get("site-000.test.deploy"), Some(&1), "{stats:?}");
}

#[test]
fn a_report_goes_through_a_symlink_into_a_pipe_and_never_replaces_a_device() {
    use std::os::unix::fs::FileTypeExt as _;
    let t = Test::new().file("reports/real.json", "stale");
    std::os::unix::fs::symlink("reports/real.json", t.path().join("link.json")).unwrap();
    let fifo = t.path().join("pipe.json");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    // The pipe's reader, as a CI step's `jq` would be.
    let reader = std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap());
    let run = |reports: &[&str]| {
        let mut args = vec!["run", "env:clear-cache", "--on", "acme-web.dev", "--simulate", "--yes", "-q"];
        for r in reports {
            args.extend(["--report", r]);
        }
        Test::new().in_dir(t.path()).args(&args).run()
    };
    let out = run(&["json=link.json", "json=pipe.json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(std::fs::symlink_metadata(t.path().join("link.json")).unwrap().file_type().is_symlink(), "the link stays");
    let through: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.path().join("reports/real.json")).unwrap()).unwrap();
    assert_eq!(through["kind"], "terminus-batch/batch-result", "the target has the report");
    let piped: serde_json::Value = serde_json::from_str(&reader.join().unwrap()).unwrap();
    assert_eq!(piped["kind"], "terminus-batch/batch-result", "the pipe's reader got it");
    // A device that refuses writes: the run says so (exit 7), and the device stays one.
    let out = run(&["json=/dev/full"]);
    assert_eq!(out.code, 7, "{}", out.stderr);
    assert!(out.stderr.contains("cannot write the json report to /dev/full"), "{}", out.stderr);
    assert!(std::fs::metadata("/dev/full").unwrap().file_type().is_char_device());
    // A directory is refused before the run.
    let out = run(&["json=reports"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}

#[test]
fn graph_stays_offline_with_credentials_at_hand() {
    let plan =
        "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: [acme-web, acme-blog], env: live }\n";
    // A login at hand and an API nobody answers: nothing is asked of it.
    let offline = |args: &[&str]| {
        Test::new()
            .file("plan.yml", plan)
            .file("globbed.yml", &plan.replace("[acme-web, acme-blog]", "['acme-*']"))
            .env("TERMINUS_MACHINE_TOKEN", "x")
            .api_at("127.0.0.1", "9")
            .args(args)
            .run()
    };
    let out = offline(&["graph", "plan.yml", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("c[acme-web.live]"), "{}", out.stdout);
    let out = offline(&["graph", "globbed.yml", "--format", "json"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("never calls the API") && out.stderr.contains("--simulate"), "{}", out.stderr);
    let out = offline(&["graph", "globbed.yml", "--format", "json", "--simulate"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn runs_show_of_a_killed_run_says_where_each_task_was_left() {
    let knobs = crate::support::sim::steady(0.1, 30.0);
    let served = Served::with_world(&deploy_world(4), knobs);
    let t = Test::new().file("plan.yml", DEPLOY_ALL);
    let mut killed = served.start_apply(t.path(), &["apply", "plan.yml", "--yes", "--concurrency", "2"], 2);
    killed.kill().unwrap();
    killed.wait().unwrap();
    let out = Test::new().in_dir(t.path()).args(&["runs", "show"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("2 tasks: its workflow was running where the journal ends; --resume re-attaches to it"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("2 tasks: not started where the journal ends"), "{}", out.stdout);
    assert!(!out.stdout.contains("took unfinished") && out.stdout.contains("has no end on record"), "{}", out.stdout);
    assert!(!out.stdout.lines().any(|l| l.trim_end().ends_with("tasks:")), "no empty cause: {}", out.stdout);
    served.stop();
}

#[test]
fn a_fleet_with_three_in_ten_workflow_posts_answered_5xx_succeeds_without_a_duplicate() {
    use tb_simulator::FaultRule;
    // The first 12 of 40 POSTs (30 %) answered 500, 502 or 503 before the platform acted.
    let fault = |status: u16, after: u32| FaultRule {
        method: Some("POST".into()),
        route: Some("sites/{site}/environments/{env}/workflows".into()),
        status: Some(status),
        processed: Some(false),
        after,
        times: 4,
        ..FaultRule::default()
    };
    let knobs =
        Knobs { time_scale: 0.001, faults: vec![fault(500, 0), fault(502, 4), fault(503, 8)], ..Knobs::default() };
    let served = Served::with_world(&deploy_world(40), knobs);
    let plan = "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: ['site-*'], env: test }\n";
    let t = Test::new().file("plan.yml", plan);
    let out = fast_test(&served, t.path())
        .env("TERMINUS_BATCH_RETRY_BACKOFF", "1ms")
        .args(&["apply", "plan.yml", "--yes", "-q", "--report", "json=out.json"])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report = crate::support::report(&t, "out.json");
    assert_eq!(report["totals"]["succeeded"], 40, "{}", report["totals"]);
    let stats = served.stop();
    assert_eq!(stats.faults.values().sum::<u64>(), 12, "{:?}", stats.faults);
    assert_eq!(stats.workflows_total, 40, "{:?}", stats.workflows_started);
    assert!(stats.workflows_started.values().all(|n| *n == 1), "none twice: {:?}", stats.workflows_started);
}

#[test]
fn an_api_that_stops_answering_mid_run_halts_the_run_within_the_request_budget() {
    use std::io::BufRead as _;
    let knobs = crate::support::sim::steady(0.1, 30.0);
    let served = Served::with_world(&deploy_world(12), knobs);
    let plan = "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: ['site-*'], env: test }\n";
    let t = Test::new().file("plan.yml", plan);
    let mut child = fast_test(&served, t.path())
        .env("TERMINUS_BATCH_REQUEST_BUDGET", "2s")
        .env("TERMINUS_BATCH_RETRY_BACKOFF", "100ms")
        .args(&["apply", "plan.yml", "--yes", "--concurrency", "3", "--message-format", "json"])
        .command()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut events = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen: Vec<serde_json::Value> = Vec::new();
    // Three clears in flight, then the API dies.
    while seen.iter().filter(|e| e["event"] == "workflow_started").count() < 3 {
        let line = events.next().expect("the run ended early").unwrap();
        seen.push(serde_json::from_str(&line).unwrap());
    }
    let stats = served.stop();
    assert_eq!(stats.workflows_total, 3);
    for line in events {
        seen.push(serde_json::from_str(&line.unwrap()).unwrap());
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "the API's status: {stderr}");
    assert!(stderr.contains("has not answered for") && stderr.contains("--resume"), "{stderr}");
    let halt = seen
        .iter()
        .position(|e| e["event"] == "draining" && e["reason"].as_str().is_some_and(|r| r.contains("has not answered")))
        .unwrap_or_else(|| panic!("no halt: {seen:?}"));
    assert!(!seen[halt..].iter().any(|e| e["event"] == "task_started"), "nothing starts after the halt");
    let skipped = seen.iter().filter(|e| e["event"] == "task_finished" && e["outcome"]["status"] == "skipped").count();
    assert!(skipped >= 12 - 6, "the rest is skipped ({skipped})");
}

/// A platform whose clock is `offset` seconds behind ours, behind something that stamps the
/// answers' `Date` with the right time (a proxy, a CDN's edge), running deploys of 60 s.
fn skewed_knobs(offset: f64) -> Knobs {
    Knobs {
        time_scale: 0.05,
        default_duration: 60.0,
        workflow_durations: std::collections::BTreeMap::new(),
        duration_jitter: 0.0,
        clock_offset: offset,
        date_offset: Some(0.0),
        ..Knobs::default()
    }
}

#[test]
fn a_deploy_a_killed_run_posted_is_adopted_whatever_the_platform_clock_says() {
    for offset in [-3600.0, -600.0, -300.0, -30.0, 600.0] {
        let served = Served::with_world(&deploy_world(1), skewed_knobs(offset));
        let t = Test::new().file(
            "plan.yml",
            "version: 1\njobs:\n  deploy:\n    run: env:deploy\n    on: { sites: [site-000], env: test }\n    with: { note: Release }\n",
        );
        let run = crate::support::run_id_now("000a");
        served.write_killed_run(t.path(), &run, "deploy", "env:deploy");
        let workflow = served.start_deploy_like_a_lost_post(&format!("Release [tb:{run}:deploy[site-000.test]]"));
        let report = served.resume_in(t.path());
        assert_eq!(report["tasks"][0]["workflow_ids"][0], workflow.as_str(), "offset {offset}: adopted: {report}");
        let stats = served.stop();
        assert_eq!(stats.workflows_started.get("site-000.test.deploy"), Some(&1), "offset {offset}: {stats:?}");
    }
}

#[test]
fn an_html_answer_to_a_deploy_post_on_a_platform_ten_minutes_behind_is_adopted() {
    use tb_simulator::FaultRule;
    let html = FaultRule {
        method: Some("POST".into()),
        route: Some("sites/{site}/environments/{env}/workflows".into()),
        html: true,
        times: 3,
        ..FaultRule::default()
    };
    let served = Served::with_world(&deploy_world(3), Knobs { faults: vec![html], ..skewed_knobs(-600.0) });
    let t = Test::new().file("plan.yml", DEPLOY_ALL);
    let out =
        fast_test(&served, t.path()).args(&["apply", "plan.yml", "--yes", "-q", "--report", "json=out.json"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report = crate::support::report(&t, "out.json");
    assert_eq!(report["totals"]["succeeded"], 3, "{report}");
    let stats = served.stop();
    assert_eq!(stats.workflows_total, 3, "{:?}", stats.workflows_started);
}

#[test]
fn killed_while_a_proxy_holds_the_deploy_answers_on_a_platform_behind_then_resumed_deploys_each_once() {
    use std::io::BufRead as _;
    use tb_simulator::FaultRule;
    // The trial: 10 sites, deploys of 60 s at a twentieth of real time, a proxy that
    // forwards each workflow POST and holds its answer 3 s (60 s before scaling), the
    // platform ten minutes behind and the `Date` stamped by the proxy.
    let hold = FaultRule {
        method: Some("POST".into()),
        route: Some("sites/{site}/environments/{env}/workflows".into()),
        delay: Some(60.0),
        processed: Some(true),
        times: 100,
        ..FaultRule::default()
    };
    let served = Served::with_world(&deploy_world(10), Knobs { faults: vec![hold], ..skewed_knobs(-600.0) });
    let t = Test::new().file("plan.yml", DEPLOY_ALL);
    let mut child = fast_test(&served, t.path())
        .args(&["apply", "plan.yml", "--yes", "--concurrency", "5", "--message-format", "json"])
        .command()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut events = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut attempts = 0;
    while attempts < 5 {
        let line = events.next().expect("the run ended early").unwrap();
        attempts += usize::from(line.contains("\"attempt_starting\""));
    }
    // Five deploys posted, their answers held: killed.
    child.kill().unwrap();
    child.wait().unwrap();
    let out = fast_test(&served, t.path()).args(&["apply", "plan.yml", "--yes", "--resume", "-q"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let stats = served.stop();
    assert_eq!(stats.workflows_total, 10, "one deploy per task: {:?}", stats.workflows_started);
    assert!(stats.workflows_started.values().all(|n| *n == 1), "{:?}", stats.workflows_started);
}
