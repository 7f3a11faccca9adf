//! Issue 14: never a duplicate workflow, never a lost record, never a secret sent in clear,
//! under path spellings, a second crash, clock skew, odd answers and timeouts. Each test
//! reproduces a way the run went wrong before.

use tb_simulator::Knobs;

use crate::support::Test;
use crate::support::sim::Served;

const TOKEN: &str = "simulated-machine-token";

#[test]
fn a_secret_is_never_interpolated_into_a_text_the_platform_shows() {
    let plan = "version: 1
jobs:
  d:
    run: env:deploy
    on: { sites: [a], env: test }
    with: { note: \"Release ${{ env.TERMINUS_MACHINE_TOKEN }}\" }
  c:
    run: env:commit
    on: { sites: [a], env: dev }
    with: { message: \"${{ env.DEPLOY_API_KEY }} and ${{ env.BUILD_NUMBER }}\" }
  l:
    run: lock:enable
    on: { sites: [a], env: test }
    with: { username: ops, password: \"${{ env.LOCK_PASSWORD }}\" }
";
    let out = Test::new().file("plan.yml", plan).args(&["validate", "plan.yml"]).run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("`env.TERMINUS_MACHINE_TOKEN` looks like a secret"), "{}", out.stderr);
    assert!(out.stderr.contains("plan.yml:6:19"), "located: {}", out.stderr);
    assert!(out.stderr.contains("`env.DEPLOY_API_KEY` looks like a secret"), "{}", out.stderr);
    assert!(!out.stderr.contains("`env.BUILD_NUMBER` looks like"), "an ordinary variable is fine: {}", out.stderr);
    assert!(
        !out.stderr.contains("`env.LOCK_PASSWORD` looks like"),
        "the lock password is meant for a secret: {}",
        out.stderr
    );
    assert!(out.stderr.contains("has 2 problems"), "{}", out.stderr);
    // The same through `run`: its options are checked by the same validation.
    let run = Test::new()
        .args(&["run", "env:deploy", "--on", "a.test", "--with", "note=${{ env.MY_SECRET }}", "--simulate", "--yes"])
        .run();
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("`env.MY_SECRET` looks like a secret"), "{}", run.stderr);
}

fn slow_world() -> tb_simulator::World {
    crate::support::sim::world(
        "user: { email: ops@example.com }\norgs: [{ name: o }]\nsites:\n  - { name: s1, org: o, envs: { test: { deployable: 1 } } }\n  - { name: s2, org: o, envs: { test: { deployable: 1 } } }\n",
    )
}

#[test]
fn every_spelling_of_a_plan_path_is_one_plan_for_the_lock_and_resume() {
    // Workflows of 30 s at 1/10 speed: 3 s, time enough for the second and third spelling.
    let knobs = crate::support::sim::steady(0.1, 30.0);
    let served = Served::with_world(&slow_world(), knobs);
    let plan = "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: [s1, s2], env: test }\n";
    let t = Test::new().file("plan.yml", plan);
    let mut first = served.start_apply(t.path(), &["apply", "plan.yml", "--yes"], 2);
    let absolute = t.path().join("plan.yml").display().to_string();
    for spelling in ["./plan.yml", absolute.as_str(), "../plan.yml"] {
        let cwd = if spelling.starts_with("..") { t.path().join("sub") } else { t.path().to_owned() };
        std::fs::create_dir_all(&cwd).unwrap();
        let state = t.path().join(".terminus-batch").display().to_string();
        let out = served
            .test_in(&cwd)
            .env("TERMINUS_MACHINE_TOKEN", TOKEN)
            .args(&["apply", spelling, "--yes", "--state-dir", &state])
            .run();
        assert_eq!(out.code, 2, "{spelling}: {}", out.stderr);
        assert!(out.stderr.contains("is already being applied by process"), "{spelling}: {}", out.stderr);
    }
    first.kill().unwrap();
    first.wait().unwrap();
    // Resumed under another spelling, the run re-attaches instead of clearing again.
    let out = served
        .test_in(t.path())
        .env("TERMINUS_MACHINE_TOKEN", TOKEN)
        .args(&["apply", &absolute, "--yes", "--resume", "-q"])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let stats = served.stop();
    assert_eq!(stats.workflows_total, 2, "one clear per task: {:?}", stats.workflows_started);
}

#[test]
fn a_resume_without_a_journal_is_refused_before_any_api_call() {
    let served = Served::with_world(&slow_world(), Knobs::default());
    let t = Test::new()
        .file("plan.yml", "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: [s1], env: test }\n");
    let out = served
        .test_in(t.path())
        .env("TERMINUS_MACHINE_TOKEN", TOKEN)
        .args(&["apply", "plan.yml", "--yes", "--resume"])
        .run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("no earlier run of"), "{}", out.stderr);
    let stats = served.stop();
    assert_eq!(stats.logins, 0, "refused before logging in: {stats:?}");
}

/// Workflows of 30 s run at `scale`: long enough to be caught in flight.
fn long_knobs(scale: f64) -> Knobs {
    crate::support::sim::steady(scale, 30.0)
}

fn one_site_world() -> tb_simulator::World {
    crate::support::sim::world(
        "user: { email: ops@example.com }\norgs: [{ name: o }]\nsites:\n  - { name: site-000, org: o, envs: { test: { deployable: 1 } } }\n",
    )
}

const DEPLOY: &str = "version: 1\njobs:\n  deploy:\n    run: env:deploy\n    on: { sites: [site-000], env: test }\n    with: { note: Release }\n";

#[test]
fn a_task_that_timed_out_is_re_attached_on_resume_not_started_again() {
    let served = Served::with_world(&one_site_world(), long_knobs(0.05));
    let plan = format!("{DEPLOY}    timeout: 200ms\n");
    let t = Test::new().file("plan.yml", &plan);
    let first =
        served.test_in(t.path()).env("TERMINUS_MACHINE_TOKEN", TOKEN).args(&["apply", "plan.yml", "--yes", "-q"]).run();
    assert_eq!(first.code, 1, "{}", first.stderr);
    assert!(first.stderr.contains("may still be running"), "{}", first.stderr);
    // The plan without the timeout: the resume waits for the deploy the first run started.
    std::fs::write(t.path().join("plan.yml"), DEPLOY).unwrap();
    let report = served.resume_in(t.path());
    assert!(report["tasks"][0]["message"].as_str().unwrap().contains("re-attached"), "{report}");
    let stats = served.stop();
    assert_eq!(stats.workflows_started.get("site-000.test.deploy"), Some(&1), "{stats:?}");
}

#[test]
fn a_resume_killed_before_it_recorded_anything_loses_nothing_of_the_run_before() {
    let served = Served::with_world(&one_site_world(), long_knobs(0.05));
    let t = Test::new().file("plan.yml", DEPLOY);
    let task = "deploy[site-000.test]";
    // Run A started the deploy and was killed; run B resumed it and was killed before it
    // wrote anything but its header (the probe's 0.05 s window).
    let (a, b) = ("20260101T000000Z-000a", "20260101T000001Z-000b");
    let workflow = served.start_deploy_like_a_lost_post(&format!("Release [tb:{a}:{task}]"));
    let mut events = crate::support::killed_during_the_post(a, "deploy", "env:deploy");
    events.push(serde_json::json!({ "event": "workflow_started", "task": 0, "workflow_id": workflow, "at": crate::support::now_ms() }));
    served.write_journal(t.path(), a, (a, None), None, &events);
    served.write_journal(t.path(), b, (a, Some(a)), None, &[]);
    let runs = t.path().join(".terminus-batch/runs");
    let report = served.resume_in(t.path());
    assert_eq!(report["tasks"][0]["workflow_ids"][0], workflow.as_str(), "{report}");
    let stats = served.stop();
    assert_eq!(stats.workflows_started.get("site-000.test.deploy"), Some(&1), "{stats:?}");
    // The new run's header carries what it adopted before it acted.
    let mut dirs: Vec<_> = std::fs::read_dir(&runs).unwrap().map(|e| e.unwrap().path()).collect();
    dirs.sort();
    let newest = std::fs::read_to_string(dirs.last().unwrap().join("events.jsonl")).unwrap();
    let header: serde_json::Value = serde_json::from_str(newest.lines().next().unwrap()).unwrap();
    assert_eq!(header["carried"][task]["in_flight"]["workflow_id"], workflow.as_str(), "{header}");
}

#[test]
fn an_html_answer_to_a_workflow_post_is_reconciled_and_an_html_read_retried() {
    use tb_simulator::FaultRule;
    let html_post = FaultRule {
        method: Some("POST".into()),
        route: Some("sites/{site}/environments/{env}/workflows".into()),
        html: true,
        times: 1,
        ..FaultRule::default()
    };
    let html_read = FaultRule {
        method: Some("GET".into()),
        route: Some("sites/{site}/environments".into()),
        html: true,
        status: Some(200),
        processed: Some(false),
        times: 1,
        ..FaultRule::default()
    };
    let knobs = Knobs { time_scale: 0.001, faults: vec![html_post, html_read], ..Knobs::default() };
    let served = Served::with_world(&one_site_world(), knobs);
    let plan = "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: [site-000], env: test }\n  s:\n    run: connection:set\n    on: { sites: [site-000], env: dev }\n    with: { mode: sftp }\n";
    let t = Test::new().file("plan.yml", plan);
    let out = served
        .test_in(t.path())
        .env("TERMINUS_MACHINE_TOKEN", TOKEN)
        .env("TERMINUS_BATCH_RETRY_BACKOFF", "1ms")
        .args(&["apply", "plan.yml", "--yes", "--report", "json=out.json", "-q"])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let stats = served.stop();
    assert_eq!(stats.faults.get("html"), Some(&2), "both pages were served: {stats:?}");
    assert_eq!(stats.workflows_total, 2, "adopted, not posted again: {:?}", stats.workflows_started);
    let report = crate::support::report(&t, "out.json");
    assert!(report["tasks"].as_array().unwrap().iter().all(|t| t["status"] == "succeeded"), "{report}");
}

#[test]
fn a_platform_clock_ten_minutes_behind_does_not_hide_the_workflow_a_killed_post_started() {
    use tb_operations::api::workflows::WorkflowType;
    let knobs = Knobs { time_scale: 0.001, clock_offset: -600.0, ..Knobs::default() };
    let served = Served::with_world(&one_site_world(), knobs);
    let t = Test::new().file(
        "plan.yml",
        "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: [site-000], env: test }\n",
    );
    let run = "20260101T000000Z-0001";
    served.write_killed_run(t.path(), run, "c", "env:clear-cache");
    let workflow =
        served.start_like_a_lost_post(WorkflowType::ClearCache, serde_json::json!({ "framework_cache": true }));
    let report = served.resume_in(t.path());
    assert_eq!(report["tasks"][0]["workflow_ids"][0], workflow.as_str(), "adopted: {report}");
    let stats = served.stop();
    assert_eq!(stats.workflows_started.get("site-000.test.clear_cache"), Some(&1), "{stats:?}");
}

#[test]
fn a_deploy_the_killed_run_finished_is_reported_succeeded_with_its_workflow() {
    // Workflows finish in well under a millisecond: done before the resume starts.
    let knobs = Knobs { time_scale: 0.000_01, ..Knobs::default() };
    let served = Served::with_world(&one_site_world(), knobs);
    let t = Test::new().file("plan.yml", DEPLOY);
    let run = "20260101T000000Z-0001";
    served.write_killed_run(t.path(), run, "deploy", "env:deploy");
    let workflow = served.start_deploy_like_a_lost_post("Release [tb:20260101T000000Z-0001:deploy[site-000.test]]");
    let report = served.resume_in(t.path());
    let task = &report["tasks"][0];
    assert_eq!(task["status"], "succeeded", "not `unchanged`: the crashed run deployed: {task}");
    assert_eq!(task["workflow_ids"][0], workflow.as_str(), "{task}");
    assert_eq!(served.stop().workflows_started.get("site-000.test.deploy"), Some(&1));
}
