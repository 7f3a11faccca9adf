//! Nothing lost: chaos, crashes, resume, interrupted POSTs, session expiry, slow and
//! unreachable APIs, unwritable state. Each asserted from the report, the journal and the
//! simulator's counters. Chaos and session expiry drive the run as a library in this
//! process with paused time (`apply_in_process`); kill -9 needs, and keeps, a real process.

use std::collections::BTreeMap;

use serde_json::Value;
use tb_simulator::{FaultRule, Knobs};

use crate::support::Test;
use crate::support::sim::{Served, world};

const TOKEN: &str = "simulated-machine-token";

fn sites_world(n: usize, knobs: &str) -> String {
    crate::support::org_world(
        knobs,
        "ops@example.com",
        (0..n).map(|i| format!("site-{i:03}")),
        "{ test: { deployable: 1 } }",
    )
}

const PIPELINE: &str = "version: 1
jobs:
  backup:
    run: backup:create
    on: { sites: { org: o }, env: live }
    retries: { attempts: 3, backoff: 10ms }
  deploy:
    run: env:deploy
    on: { sites: { org: o }, env: test }
    retries: { attempts: 3, backoff: 10ms }
  clear:
    run: env:clear-cache
    needs: [deploy]
    on: { sites: { org: o }, env: test }
    retries: { attempts: 3, backoff: 10ms }
";

/// Applies `plan` to the simulator of `world` in this process, through the library, on a
/// current-thread runtime with paused time: simulated waits (latency, workflows, sessions,
/// retries) pass at once, and nothing here needs a real process.
fn apply_in_process(
    dir: &std::path::Path,
    plan: &str,
    world: &str,
    vars: &[(&str, &str)],
    concurrency: usize,
) -> tb_run::RunOutcome {
    use tb_run::apply::{ApplyOptions, begin, check, claim};
    use tb_run::{PlanInput, Targeting, prepare_on};
    std::fs::write(dir.join("plan.yml"), plan).unwrap();
    std::fs::write(dir.join("world.yml"), world).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
    let vars = tb_settings::EnvVars::from_pairs(vars.iter().copied());
    let targets =
        Targeting { platform: tb_run::Platform::Simulator, world: Some(dir.join("world.yml")), ..Targeting::default() };
    let flags = tb_settings::Layer { concurrency: Some(concurrency), ..Default::default() };
    let input = PlanInput::File(dir.join("plan.yml"));
    let options = ApplyOptions {
        allow_destructive: false,
        abort_in_flight: false,
        downloads: 1,
        resume: None,
        state: tb_state::Store::dir(dir.join(".terminus-batch")),
        watch_signals: false,
        lock_timeout: None,
        run_group: None,
        shard: None,
        notify: Vec::new(),
        command: None,
    };
    let claim = claim(&input, &options, &vars).unwrap();
    let prepared = prepare_on(runtime, input, &targets, flags, &vars).unwrap();
    let checked = check(&prepared, &options, None, &vars).unwrap();
    let run = begin(prepared, checked, options, &vars, claim).unwrap();
    run.run_to_end(&mut Discard)
}

struct Discard;

impl tb_core::events::EventSink for Discard {
    fn emit(&mut self, _event: &tb_core::events::Event) -> Result<(), tb_core::events::RecordError> {
        Ok(())
    }
}

/// Every task's terminal events in a journal, by task id.
fn journal_endings(state: &std::path::Path) -> BTreeMap<String, Vec<String>> {
    let runs = state.join("runs");
    let mut dirs: Vec<_> = std::fs::read_dir(&runs).unwrap().map(|e| e.unwrap().path()).collect();
    dirs.sort();
    let text = std::fs::read_to_string(dirs.last().unwrap().join("events.jsonl")).unwrap();
    let mut ids = Vec::new();
    let mut endings: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines().skip(1) {
        let event: Value = serde_json::from_str(line).unwrap();
        match event["event"].as_str().unwrap() {
            "run_started" => {
                ids = event["tasks"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_owned()).collect();
            }
            "task_finished" => {
                let id = ids[usize::try_from(event["task"].as_u64().unwrap()).unwrap()].clone();
                endings.entry(id).or_default().push(event["outcome"]["status"].as_str().unwrap().to_owned());
            }
            _ => {}
        }
    }
    endings
}

fn workflow_type(op: &str) -> &'static str {
    match op {
        "backup:create" => "do_export",
        "env:deploy" => "deploy",
        _ => "clear_cache",
    }
}

/// One chaos trial with `seed`: every task in exactly one state (the same in the report and
/// the journal) and no workflow started more often than tasks asked for it. Returns the
/// workflows started and the faults served.
fn chaos_trial(seed: u64) -> (u64, u64) {
    let knobs = format!(
        "simulator:\n  seed: {seed}\n  time_scale: 0.002\n  error_rate: 0.10\n  throttle_rate: 0.05\n  retry_after: 1\n  \
                 drop_rate: 0.02\n  fail_workflow_rate: 0.05\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let outcome = apply_in_process(
        dir.path(),
        PIPELINE,
        &sites_world(67, &knobs),
        &[("TERMINUS_BATCH_RETRY_BACKOFF", "1ms")],
        20,
    );
    assert_ne!(outcome.verdict(), tb_run::Verdict::Internal, "seed {seed}");
    let report = serde_json::to_value(&outcome.report).unwrap();
    let tasks = report["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 201);
    assert!(tasks.iter().all(|t| t["status"].is_string()), "every task ended");
    let endings = journal_endings(&dir.path().join(".terminus-batch"));
    assert_eq!(endings.len(), 201);
    for task in tasks {
        let id = task["id"].as_str().unwrap();
        assert_eq!(endings[id], [task["status"].as_str().unwrap()], "{id}: one terminal state, the same in both");
    }
    // Workflows started per (site, env, type) never exceed the tasks that asked for them.
    let mut asked: BTreeMap<String, u64> = BTreeMap::new();
    for task in tasks {
        let key = format!(
            "{}.{}.{}",
            task["site"].as_str().unwrap(),
            task["env"].as_str().unwrap(),
            workflow_type(task["operation"].as_str().unwrap())
        );
        *asked.entry(key).or_default() += 1;
    }
    let started = report["simulator"]["workflows_started"].as_object().unwrap();
    for (key, n) in started {
        let limit = asked.get(key).copied().unwrap_or(0);
        assert!(n.as_u64().unwrap() <= limit, "seed {seed}: {key}: {n} workflows for {limit} task(s)");
    }
    let faults = &report["simulator"]["faults"];
    let served: u64 = faults.as_object().unwrap().values().filter_map(Value::as_u64).sum();
    (
        started.values().filter_map(Value::as_u64).sum(),
        served + report["simulator"]["rate_limited"].as_u64().unwrap_or(0),
    )
}

#[test]
fn chaos_leaves_every_task_in_exactly_one_state_and_no_duplicate_workflow() {
    // Three seeds here; CHAOS_TRIALS=N runs N (the closing note's figures come from that).
    let trials: u64 = std::env::var("CHAOS_TRIALS").ok().and_then(|n| n.parse().ok()).unwrap_or(3);
    let (mut workflows, mut faults) = (0, 0);
    for seed in 11..11 + trials {
        let (w, f) = chaos_trial(seed);
        workflows += w;
        faults += f;
    }
    assert!(faults > 0, "the chaos served faults");
    eprintln!("chaos: {trials} trials, {} tasks, {workflows} workflows, {faults} faults, 0 duplicates", trials * 201);
}

#[test]
fn kill_9_then_resume_finishes_without_starting_any_workflow_twice() {
    // Workflows of 2 s at 1/10 speed: 200 ms each, long enough to kill the run among them.
    let knobs = Knobs {
        time_scale: 0.1,
        default_duration: 2.0,
        workflow_durations: BTreeMap::new(),
        duration_jitter: 0.0,
        ..Knobs::default()
    };
    let mut knobs = knobs;
    for kind in ["do_export", "deploy", "clear_cache"] {
        knobs.workflow_durations.insert(kind.to_owned(), 2.0);
    }
    let served = Served::with_world(&world(&sites_world(12, "")), knobs);
    let t = Test::new().file("plan.yml", PIPELINE);
    let args = ["apply", "plan.yml", "--yes", "--concurrency", "6"];
    let mut child = served.start_apply(t.path(), &args, 6);
    child.kill().unwrap();
    child.wait().unwrap();
    let endings = journal_endings(&t.path().join(".terminus-batch"));
    assert!(endings.len() < 36, "killed mid-run: {} tasks ended", endings.len());
    let report = served.resume_in(t.path());
    assert_eq!(report["totals"]["tasks"], 36);
    assert!(
        report["tasks"].as_array().unwrap().iter().all(|t| t["status"] == "succeeded" || t["status"] == "unchanged")
    );
    let stats = served.stop();
    for (key, n) in &stats.workflows_started {
        assert_eq!(*n, 1, "{key} started {n} times");
    }
    assert_eq!(stats.workflows_started.len(), 36, "every task's workflow, once");
}

#[test]
fn a_crash_between_the_attempt_record_and_the_post_answer_is_reconciled() {
    let served = Served::with_world(&world(&sites_world(1, "")), Knobs { time_scale: 0.01, ..Knobs::default() });
    let plan = "version: 1\njobs:\n  deploy:\n    run: env:deploy\n    on: { sites: [site-000], env: test }\n    with: { note: Release }\n";
    let t = Test::new().file("plan.yml", plan);
    // What the crashed run left: its journal ends with the attempt record, and the platform
    // has the workflow its POST created.
    let run = "20260101T000000Z-0001";
    let task = "deploy[site-000.test]";
    served.write_killed_run(t.path(), run, "deploy", "env:deploy");
    served.start_deploy_like_a_lost_post(&format!("Release [tb:{run}:{task}]"));
    let report = served.resume_in(t.path());
    assert_eq!(report["tasks"][0]["status"], "succeeded");
    let stats = served.stop();
    assert_eq!(stats.workflows_started.get("site-000.test.deploy"), Some(&1), "adopted, not started again: {stats:?}");
}

#[test]
fn session_expiry_mid_run_logs_in_again_and_fails_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let knobs = "simulator: { time_scale: 0.01, session_lifetime: 40.0 }\n";
    let outcome = apply_in_process(dir.path(), PIPELINE, &sites_world(8, knobs), &[], 2);
    assert_eq!(outcome.verdict(), tb_run::Verdict::Succeeded, "{:?}", outcome.report.tasks);
    let stats: tb_simulator::Stats = serde_json::from_value(outcome.report.simulator.clone().unwrap()).unwrap();
    assert!(stats.logins >= 2, "the session expired during the run: {stats:?}");
    let refused: u64 = stats.requests.values().filter_map(|by| by.get(&401)).sum();
    assert!(refused >= 1);
}

#[test]
fn a_slow_api_and_an_unreachable_one_end_clearly_within_the_timeouts() {
    // Workflow POSTs answer after 5 s; the read timeout is 300 ms.
    let slow = FaultRule {
        method: Some("POST".into()),
        route: Some("sites/{site}/environments/{env}/workflows".into()),
        delay: Some(5.0),
        times: 99,
        ..FaultRule::default()
    };
    let served = Served::with_world(&world(&sites_world(2, "")), Knobs { faults: vec![slow], ..Knobs::default() });
    let plan = "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: { org: o }, env: live }\n";
    let t = Test::new().file("plan.yml", plan);
    let out = served
        .test_in(t.path())
        .env("TERMINUS_MACHINE_TOKEN", TOKEN)
        .env("TERMINUS_BATCH_READ_TIMEOUT", "300ms")
        .args(&["apply", "plan.yml", "--yes", "--report", "json=out.json"])
        .run();
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report: Value = crate::support::report(&t, "out.json");
    for task in report["tasks"].as_array().unwrap() {
        assert_eq!(task["status"], "failed");
        assert!(task["message"].as_str().unwrap().contains("none within 300ms"), "{task}");
    }
    // Every task failed on its own timeout: none waited for the answers the server held back
    // (which would have come, and succeeded). No wall-clock bound: the messages say it.
    served.stop();

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    drop(listener);
    let out = Test::new()
        .file("plan.yml", plan)
        .api_at("127.0.0.1", &port)
        .env("TERMINUS_MACHINE_TOKEN", TOKEN)
        .env("TERMINUS_BATCH_RETRY_BACKOFF", "1ms")
        .args(&["apply", "plan.yml", "--yes"])
        .run();
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("cannot connect"), "{}", out.stderr);
}

#[test]
fn an_unwritable_state_dir_or_a_held_lock_refuses_to_start() {
    let plan = "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: [acme-web], env: live }\n";
    let t = Test::new().file("plan.yml", plan).file("state", "a file, not a directory");
    let out = t.args(&["apply", "plan.yml", "--simulate", "--state-dir", "state"]).run();
    // A disk that refuses is not a bad plan: the state directory's own status (issue 23).
    assert_eq!(out.code, 8, "{}", out.stderr);
    assert!(out.stderr.contains("cannot be journalled"), "{}", out.stderr);
    assert!(out.stderr.contains("Not a directory") || out.stderr.contains("File exists"), "the cause: {}", out.stderr);

    // A lock held by a live process (this test).
    let t = Test::new().file("plan.yml", plan);
    let key = std::fs::canonicalize(t.path().join("plan.yml")).unwrap().display().to_string();
    let holder = serde_json::json!({ "pid": std::process::id(), "started_at": 1_800_000_000u64, "run_id": "20270101T000000Z-beef", "plan_path": "plan.yml" });
    let locks = t.path().join(".terminus-batch/locks");
    std::fs::create_dir_all(&locks).unwrap();
    let out = t.args(&["apply", "plan.yml", "--simulate"]);
    // The lock's file name is derived from the plan path; write it where apply will look.
    let probe = out.run();
    assert_eq!(probe.code, 0, "no lock yet: {}", probe.stderr);
    let lock_file = std::fs::read_dir(&locks).map_or(0, Iterator::count);
    assert_eq!(lock_file, 0, "released after the run");
    let name = {
        use sha2::{Digest, Sha256};
        // The lock is keyed on the plan's canonical path, whatever spelling the run was given.
        format!("{}.lock", crate::support::hex(&Sha256::digest(key.as_bytes())[..8]))
    };
    std::fs::write(locks.join(name), holder.to_string()).unwrap();
    let held = out.run();
    assert_eq!(held.code, 2, "{}", held.stderr);
    assert!(held.stderr.contains(&format!("process {}", std::process::id())), "{}", held.stderr);
}

/// SIGTERM (how CI services cancel a job) drains the run like Ctrl-C: nothing more starts,
/// the tasks in flight are waited for, the reports are written, exit 130. With
/// `--abort-in-flight` the run stops waiting for them instead and says their workflows'
/// state is unknown.
#[test]
fn sigterm_drains_the_run_and_abort_in_flight_stops_waiting() {
    for abort in [false, true] {
        let served =
            Served::with_world(&crate::support::sim::deployable_sites(6), crate::support::sim::steady(0.1, 30.0));
        let plan = "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: ['site-*'], env: test }\n";
        let t = Test::new().file("plan.yml", plan);
        let mut args = vec!["apply", "plan.yml", "--yes", "--concurrency", "2", "--report", "json=report.json"];
        if abort {
            args.push("--abort-in-flight");
        }
        let mut run = served.start_apply(t.path(), &args, 2);
        let term = std::process::Command::new("kill").args(["-TERM", &run.id().to_string()]).status().unwrap();
        assert!(term.success());
        assert_eq!(run.wait().unwrap().code(), Some(130), "interrupted (abort: {abort})");
        let report = crate::support::report(&t, "report.json");
        let statuses: Vec<&str> =
            report["tasks"].as_array().unwrap().iter().map(|t| t["status"].as_str().unwrap()).collect();
        let count = |s: &str| statuses.iter().filter(|x| **x == s).count();
        assert_eq!(count("skipped"), 4, "nothing started after the signal: {statuses:?}");
        if abort {
            assert_eq!(count("cancelled"), 2, "{statuses:?}");
            for task in report["tasks"].as_array().unwrap().iter().filter(|t| t["status"] == "cancelled") {
                assert!(task["message"].as_str().unwrap().contains("remote state unknown"), "{task}");
            }
        } else {
            assert_eq!(count("succeeded"), 2, "the two in flight were waited for: {statuses:?}");
        }
        let stats = served.stop();
        assert_eq!(stats.workflows_total, 2, "{:?}", stats.workflows_started);
    }
}

/// In GitHub Actions the run's Markdown report is appended to the job summary; a summary that
/// cannot be written fails a run that succeeded with exit 7, and what was there stays.
#[test]
fn the_github_step_summary_is_appended_to_and_a_failure_to_is_exit_7() {
    let plan = crate::support::repo().join("examples/weekly-release.yml");
    let plan = plan.to_str().unwrap();
    let t = Test::new().file("summary.md", "# Earlier step\n");
    let apply = |summary: &std::path::Path| {
        Test::new()
            .in_dir(t.path())
            .env("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())
            .args(&["apply", plan, "--simulate", "--yes", "-q", "--state-dir", "state"])
            .run()
    };
    let summary = t.path().join("summary.md");
    let out = apply(&summary);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = std::fs::read_to_string(&summary).unwrap();
    assert!(text.starts_with("# Earlier step\n"), "appended, not replaced: {text}");
    assert!(text.contains("88"), "the run's report: {text}");
    let out = apply(&t.path().join("no-such-dir/summary.md"));
    assert_eq!(out.code, 7, "{}", out.stderr);
    assert!(out.stderr.contains("cannot append to $GITHUB_STEP_SUMMARY"), "{}", out.stderr);
}
