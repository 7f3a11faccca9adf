//! `apply` end to end: the real binary, the in-process simulator over loopback, the reports.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::{Test, repo, report, simulated};

fn tasks_where<'a>(report: &'a Value, pred: impl Fn(&Value) -> bool + 'a) -> Vec<&'a Value> {
    report["tasks"].as_array().unwrap().iter().filter(|t| pred(t)).collect()
}

#[test]
fn the_weekly_release_applies_within_its_bounds() {
    let plan = repo().join("examples/weekly-release.yml");
    // The default world, its workflows held until the file `gate` exists.
    let world = std::fs::read_to_string(repo().join("examples/world.yml")).unwrap();
    let world = world.replacen("simulator:\n", "simulator:\n  hold: { until: gate }\n", 1);
    let t = Test::new().file("world.yml", &world).args(&[
        "apply",
        plan.to_str().unwrap(),
        "--simulate",
        "--world",
        "world.yml",
        // The journal in this test's directory, not beside the repository's example.
        "--state-dir",
        "state",
        "--message-format",
        "json",
        "--report",
        "json=out.json",
        "--report",
        "html=out.html",
        "--report",
        "junit=junit.xml",
        "--report",
        "markdown=summary.md",
    ]);
    let mut child = t.command().stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // No workflow ends while held: once ten have started, ten tasks hold the ten slots, and
    // the gate opens. (A reader thread, so that a run that never gets there fails the test
    // instead of hanging it.)
    let events = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in events.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut started = 0;
    while started < 10 {
        let line = rx.recv_timeout(std::time::Duration::from_secs(120)).expect("ten workflows start");
        started += usize::from(line.contains("\"event\":\"workflow_started\""));
    }
    std::fs::write(t.path().join("gate"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("total           88"), "{stderr}");
    let json = report(&t, "out.json");
    assert_eq!(json["kind"], "terminus-batch/batch-result");
    assert_eq!(json["totals"]["tasks"], 88);
    assert!(json["tasks"].as_array().unwrap().iter().all(|t| t["status"] == "succeeded" || t["status"] == "unchanged"));
    // The simulator saw exactly the bound: ten tasks in flight, each waiting on a workflow,
    // and no more once the gate opened.
    assert_eq!(json["simulator"]["peak_in_flight_workflows"], 10, "{}", json["simulator"]);
    // Every workflow-starting task started exactly one workflow; none twice.
    let started: u64 =
        json["simulator"]["workflows_started"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    let with_workflow = tasks_where(&json, |t| t["status"] == "succeeded").len() as u64;
    assert_eq!(started, with_workflow);
    let html = std::fs::read_to_string(t.path().join("out.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<svg") && html.contains("acme-web"));
    let junit = std::fs::read_to_string(t.path().join("junit.xml")).unwrap();
    assert!(junit.contains("<testsuite name=\"deploy-live\"") && junit.contains("tests=\"88\""), "{junit}");
    let md = std::fs::read_to_string(t.path().join("summary.md")).unwrap();
    assert!(md.contains("| 88 |"), "{md}");
}

/// A small world: three sites with work to deploy, the simulator 1000× faster.
fn world(extra: &str) -> String {
    let sites = ["site-a", "site-b", "site-c"].map(str::to_owned);
    let envs = "{ test: { deployable: 1 }, live: { deployable: 1 } }";
    crate::support::org_world(&format!("simulator:\n  time_scale: 0.001\n{extra}"), "t@example.com", sites, envs)
}

const PIPELINE: &str = "version: 1
jobs:
  backup:
    run: backup:create
    on: { sites: { org: o }, env: live }
  deploy:
    run: env:deploy
    needs: [backup]
    on: { sites: { org: o }, env: live }
  clear:
    run: env:clear-cache
    needs: [deploy]
    on: { sites: { org: o }, env: live }
";

#[test]
fn a_failing_site_skips_its_own_later_tasks_only() {
    let faults =
        "  faults:\n    - { site: site-b, type: do_export, fail_workflow: \"Simulated: disk full\", times: 9 }\n";
    let t = simulated(&world(faults), PIPELINE, &["--report", "json=out.json"]);
    let out = t.run();
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let json = report(&t, "out.json");
    let status = |id: &str| tasks_where(&json, |t| t["id"] == id)[0]["status"].as_str().unwrap().to_owned();
    let message = |id: &str| tasks_where(&json, |t| t["id"] == id)[0]["message"].as_str().unwrap().to_owned();
    assert_eq!(status("backup[site-b.live]"), "failed");
    assert!(message("backup[site-b.live]").contains("Simulated: disk full"), "{}", message("backup[site-b.live]"));
    assert_eq!(status("deploy[site-b.live]"), "skipped");
    assert_eq!(message("deploy[site-b.live]"), "`backup[site-b.live]` failed");
    assert_eq!(status("clear[site-b.live]"), "skipped");
    for site in ["site-a", "site-c"] {
        for job in ["backup", "deploy", "clear"] {
            assert_eq!(status(&format!("{job}[{site}.live]")), "succeeded", "{job} on {site}");
        }
    }
    assert!(out.stdout.contains("failed     backup[site-b.live]"), "{}", out.stdout);
}

#[test]
fn a_failing_canary_halts_the_later_waves() {
    let plan = "version: 1
jobs:
  deploy:
    run: env:deploy
    on: { sites: { org: o }, env: live }
    rollout: { first: 1, then: 1 }
";
    let faults = "  faults:\n    - { site: site-a, type: deploy, fail_workflow: \"Simulated: canary broke\" }\n";
    let t = simulated(&world(faults), plan, &["--report", "json=out.json"]);
    let out = t.run();
    assert_eq!(out.code, 1, "{}", out.stderr);
    let json = report(&t, "out.json");
    let by_id = |id: &str| tasks_where(&json, |t| t["id"] == id)[0].clone();
    assert_eq!(by_id("deploy[site-a.live]")["status"], "failed");
    for later in ["deploy[site-b.live]", "deploy[site-c.live]"] {
        assert_eq!(by_id(later)["status"], "skipped");
        assert_eq!(by_id(later)["message"], "rollout halted at wave 1: 1 failed or skipped of max 0");
    }
    assert_eq!(json["simulator"]["workflows_total"], 1, "nothing after the canary started");
}

#[test]
fn nothing_to_deploy_ends_unchanged_without_a_workflow() {
    let world = "simulator: { time_scale: 0.001 }\nuser: { email: t@example.com }\nsites:\n  - { name: calm }\n";
    let plan = "version: 1\njobs:\n  d:\n    run: env:deploy\n    on: { sites: [calm], env: test }\n";
    let t = simulated(world, plan, &["--report", "json=-", "-q"]);
    let out = t.run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["tasks"][0]["status"], "unchanged");
    assert_eq!(json["tasks"][0]["message"], "There is nothing to deploy.");
    assert_eq!(json["simulator"]["workflows_total"], 0);
}

#[test]
fn refusals_come_before_any_api_call() {
    // No terminal and no --yes.
    let plan = "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: [a], env: live }\n";
    let out = Test::new()
        .env("TERMINUS_MACHINE_TOKEN", "x")
        .api_at("127.0.0.1", "1")
        .env("TERMINUS_BATCH_REQUEST_ATTEMPTS", "1")
        .file("p.yml", plan)
        .args(&["apply", "p.yml"])
        .run();
    assert_eq!(out.code, 3, "names resolve through the API first: {}", out.stderr);
    // Destructive tasks without --allow-destructive.
    let plan = "version: 1\njobs:\n  d:\n    run: env:deploy\n    on: { sites: [acme-web], env: test }\n    with: { sync-content: true }\n";
    let out = Test::new().file("p.yml", plan).args(&["apply", "p.yml", "--simulate"]).run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--allow-destructive"), "{}", out.stderr);
    // A lock password from an environment variable that is not set.
    let plan = "version: 1\njobs:\n  l:\n    run: lock:enable\n    on: { sites: [acme-web], env: dev }\n    with: { username: ops, password: \"${{ env.LOCK_PW }}\" }\n";
    let out = Test::new().file("p.yml", plan).args(&["apply", "p.yml", "--simulate"]).run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("LOCK_PW"), "{}", out.stderr);
    let plan = "version: 1\njobs:\n  w:\n    run: env:wake\n    on: { sites: [acme-web], env: dev }\n";
    // A bad --report.
    let out = Test::new().file("p.yml", plan).args(&["apply", "p.yml", "--simulate", "--report", "pdf=x"]).run();
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("unknown report format `pdf`"), "{}", out.stderr);
}

#[test]
fn no_terminal_and_no_yes_refuses() {
    use crate::support::sim::Served;
    let served = Served::new(tb_simulator::Knobs::default());
    let plan = "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: [acme-web], env: live }\n";
    let out = served
        .test()
        .env("TERMINUS_MACHINE_TOKEN", "simulated-machine-token")
        .file("p.yml", plan)
        .args(&["apply", "p.yml"])
        .run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("pass --yes to apply without a terminal"), "{}", out.stderr);
    assert_eq!(served.stop().workflows_total, 0);
}

/// Starts `apply` on a slow world and returns it once a workflow is in flight.
fn start_slow(t: &Test) -> (std::process::Child, BufReader<std::process::ChildStderr>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_terminus-batch"))
        .args([
            "apply",
            "plan.yml",
            "--simulate",
            "--world",
            "world.yml",
            "--report",
            "json=out.json",
            "--concurrency",
            "2",
            "--status-level",
            "all",
        ])
        .current_dir(t.path())
        .env_clear()
        .env("HOME", t.path())
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        if line.contains(" workflow ") {
            return (child, stderr);
        }
        line.clear();
    }
    let status = child.wait();
    panic!("no workflow started ({status:?})");
}

fn interrupt(child: &std::process::Child) {
    let status = Command::new("sh").args(["-c", &format!("kill -INT {}", child.id())]).status().unwrap();
    assert!(status.success());
}

/// Backups held running until the test creates the file `release`: the signals come while
/// they run, on no clock.
fn slow_world() -> String {
    world("  hold: { until: release, types: [do_export] }\n")
}

#[test]
fn a_second_ctrl_c_stops_waiting_and_records_the_workflows_in_flight() {
    let t = Test::new().file("world.yml", &slow_world()).file("plan.yml", PIPELINE);
    let (mut child, mut stderr) = start_slow(&t);
    interrupt(&child);
    // Signals sent back to back may arrive as one; send the second once the first drained.
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 && !line.contains("the run was interrupted") {
        line.clear();
    }
    interrupt(&child);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest}");
    let json = report(&t, "out.json");
    assert_eq!(json["interrupted"], true);
    let cancelled = tasks_where(&json, |t| t["status"] == "cancelled");
    assert!(!cancelled.is_empty(), "{json}");
    // A task whose workflow had started says its state is unknown, with the id; one caught
    // between its request and the answer says it may have taken effect. Which tasks are
    // where when the second signal comes is the machine's timing: both are true accounts.
    for task in &cancelled {
        let message = task["message"].as_str().unwrap();
        if task["workflow_ids"].as_array().unwrap().is_empty() {
            assert!(
                message.contains("may have taken effect") || message.contains("before any workflow started"),
                "{task}"
            );
        } else {
            assert!(message.contains("remote state unknown"), "{task}");
        }
    }
    assert!(
        cancelled.iter().any(|t| !t["workflow_ids"].as_array().unwrap().is_empty()),
        "the workflows in flight are recorded: {json}"
    );
    let skipped = tasks_where(&json, |t| t["status"] == "skipped");
    assert!(!skipped.is_empty());
    assert_eq!(cancelled.len() + skipped.len(), 9, "every task accounted for: {json}");
    // The journal has the same ends, the workflow ids in flight, and the result.
    let runs = t.path().join(".terminus-batch/runs");
    let run = std::fs::read_dir(&runs).unwrap().next().unwrap().unwrap().path();
    let journal = std::fs::read_to_string(run.join("events.jsonl")).unwrap();
    let finished = journal.lines().filter(|l| l.contains("\"event\":\"task_finished\"")).count();
    assert_eq!(finished, 9);
    for task in &cancelled {
        for id in task["workflow_ids"].as_array().unwrap() {
            assert!(journal.contains(&format!("\"workflow_id\":{id}")), "{id} in the journal");
        }
    }
    assert!(run.join("result.json").is_file());
}

#[test]
fn one_ctrl_c_drains_waits_for_the_workflows_in_flight_and_exits_130() {
    let t = Test::new().file("world.yml", &slow_world()).file("plan.yml", PIPELINE);
    let (mut child, mut stderr) = start_slow(&t);
    interrupt(&child);
    // Once the run has drained, the backups in flight may end.
    let mut rest = String::new();
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        rest.push_str(&line);
        if line.contains("interrupted: starting nothing new") {
            break;
        }
        line.clear();
    }
    std::fs::write(t.path().join("release"), "").unwrap();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest}");
    assert!(
        rest.contains(
            "interrupted: starting nothing new; waiting for the 2 tasks in flight (Ctrl-C again stops waiting"
        ),
        "the first Ctrl-C says what happens now: {rest}"
    );
    let json = report(&t, "out.json");
    let succeeded = tasks_where(&json, |t| t["status"] == "succeeded");
    assert_eq!(succeeded.len(), 2, "the two backups in flight finished: {json}");
    let skipped = tasks_where(&json, |t| t["status"] == "skipped");
    assert_eq!(skipped.len(), 7);
    assert!(skipped.iter().all(|t| t["message"] == "the run was interrupted"), "{json}");
}

#[test]
fn the_committed_report_schema_is_current() {
    let committed = std::fs::read_to_string(repo().join("schemas/batch-result.schema.json")).unwrap();
    let out = Test::new().args(&["schema", "--report"]).run();
    assert_eq!(out.code, 0);
    assert!(
        committed == out.stdout,
        "schemas/batch-result.schema.json is stale: run `cargo run -- schema --report > schemas/batch-result.schema.json`"
    );
}

#[test]
fn a_saved_plan_applies_exactly_its_targets_and_refuses_when_the_plan_changed() {
    let plan = "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: { org: acme-agency, tag: weekly }, env: live }\n";
    let t = Test::new().file("plan.yml", plan).args(&["plan", "plan.yml", "--simulate", "-o", "saved.json", "-q"]);
    assert_eq!(t.run().code, 0);
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(t.path().join("saved.json")).unwrap()).unwrap();
    let planned = saved["tasks"].as_array().unwrap().len();
    let out = Test::new()
        .in_dir(t.path())
        .args(&["apply", "saved.json", "--simulate", "--report", "json=out.json", "-q"])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json = report(&Test::new().in_dir(t.path()), "out.json");
    assert_eq!(json["totals"]["tasks"], planned);
    assert!(json["settings"]["resolved_by"].as_str().unwrap().starts_with("the saved plan's targets"));
    std::fs::write(t.path().join("plan.yml"), format!("{plan}# edited\n")).unwrap();
    let out = Test::new().in_dir(t.path()).args(&["apply", "saved.json", "--simulate"]).run();
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("plan.yml changed since saved.json was saved"), "{}", out.stderr);
}

#[test]
fn a_simulated_run_keeps_the_plans_timeouts_on_the_platforms_clock() {
    // Clear-cache workflows of 120 platform seconds, a thousand times faster: 0.12 s real.
    let world = "simulator: { time_scale: 0.001, duration_jitter: 0, workflow_durations: { clear_cache: 120 } }\n\
                 user: { email: t@example.com }\nsites:\n  - { name: calm }\n";
    let plan = |timeout: &str| {
        format!(
            "version: 1\nsettings: {{ timeout: {timeout} }}\njobs:\n  c:\n    run: env:clear-cache\n    on: {{ sites: [calm], env: live }}\n"
        )
    };
    let run = |timeout: &str| simulated(world, &plan(timeout), &["--yes", "--report", "json=-", "-q"]).run();
    // A minute is shorter than the workflow on the platform, so the rehearsal times out too
    // (60 ms real) rather than waiting a real minute that the workflow fits in.
    let short = run("1m");
    assert_eq!(short.code, 1, "{}", short.stderr);
    let json: Value = serde_json::from_str(&short.stdout).unwrap();
    assert_eq!(json["timed_out"], true, "{json}");
    assert!(short.stderr.contains(" timed out: 1 task,"), "{}", short.stderr);
    // Half an hour is plenty (1.8 s real for a 0.12 s workflow).
    let long = run("30m");
    assert_eq!(long.code, 0, "{}", long.stderr);
}
