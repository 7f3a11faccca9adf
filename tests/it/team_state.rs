//! Issue 24: one state for a team. Runs that share a state directory never act on one
//! environment at once, whatever plan they come from.

use crate::support::Test;
use crate::support::sim::Served;

const TOKEN: &str = "simulated-machine-token";

fn world(sites: usize) -> terminus_batch::simulator::World {
    crate::support::sim::deployable_sites(sites)
}

#[test]
fn two_plans_deploying_the_same_environments_at_once_act_on_each_once() {
    let knobs = crate::support::sim::steady(0.1, 30.0);
    let served = Served::with_world(&world(4), knobs);
    let plan = |job: &str| {
        format!(
            "version: 1\njobs:\n  {job}:\n    run: env:deploy\n    on: {{ sites: ['site-*'], env: test }}\n    with: {{ note: {job} }}\n"
        )
    };
    let t = Test::new().file("release.yml", &plan("release")).file("hotfix.yml", &plan("hotfix"));
    // The release deploys two environments at a time; the hotfix starts meanwhile.
    let mut release = served.start_apply(t.path(), &["apply", "release.yml", "--yes", "--concurrency", "2"], 2);
    let hotfix = served
        .test_in(t.path())
        .env("TERMINUS_MACHINE_TOKEN", TOKEN)
        .args(&["apply", "hotfix.yml", "--yes", "--report", "json=hotfix.json"])
        .run();
    assert_eq!(hotfix.code, 0, "{}", hotfix.stderr);
    assert!(hotfix.stderr.contains("is acting on its target"), "said while waiting: {}", hotfix.stderr);
    let status = release.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let report = crate::support::report(&t, "hotfix.json");
    let tasks = report["tasks"].as_array().unwrap();
    let waited: Vec<&serde_json::Value> = tasks.iter().filter(|t| t["waited_for"].is_string()).collect();
    assert!(!waited.is_empty(), "{report}");
    for task in &waited {
        assert!(task["waited_for"].as_str().unwrap().contains("release.yml"), "names the run and plan: {task}");
        assert_eq!(task["status"], "unchanged", "the release deployed it meanwhile: {task}");
    }
    let stats = served.stop();
    assert_eq!(stats.workflows_total, 4, "each environment deployed once: {:?}", stats.workflows_started);
    assert!(stats.workflows_started.values().all(|n| *n == 1), "{:?}", stats.workflows_started);
}

#[test]
fn a_run_killed_in_one_clone_is_resumed_from_another_clone_at_another_path() {
    let knobs = crate::support::sim::steady(0.1, 30.0);
    let served = Served::with_world(&world(4), knobs);
    let plan = "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: ['site-*'], env: test }\n";
    // Two clones of one repository, at different paths.
    let t = Test::new().file("a/.git/HEAD", "ref: refs/heads/main\n").file("a/ops/plan.yml", plan);
    let t = t.file("b/.git/HEAD", "ref: refs/heads/main\n").file("b/ops/plan.yml", plan);
    let mut killed =
        served.start_apply(&t.path().join("a"), &["apply", "ops/plan.yml", "--yes", "--concurrency", "2"], 2);
    killed.kill().unwrap();
    killed.wait().unwrap();
    // One store per repository, at its root; runs named by the plan's path in it.
    let store = t.path().join("a/.terminus-batch");
    assert!(store.join("runs").is_dir(), "the repository root's state directory");
    assert!(!t.path().join("a/ops/.terminus-batch").exists());
    let store = store.display().to_string();
    // The other clone shares the store (as it would a bucket): its resume finds the run.
    let out = served
        .test_in(&t.path().join("b"))
        .env("TERMINUS_MACHINE_TOKEN", TOKEN)
        .env("TERMINUS_BATCH_STATE_DIR", &store)
        .args(&["apply", "ops/plan.yml", "--yes", "--resume", "-q"])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list =
        Test::new().in_dir(&t.path().join("b")).env("TERMINUS_BATCH_STATE_DIR", &store).args(&["runs", "list"]).run();
    let rows: Vec<&str> = list.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "both runs: {}", list.stdout);
    assert!(
        rows.iter().all(|r| r.contains("ops/plan.yml") && !r.contains(t.path().to_str().unwrap())),
        "{}",
        list.stdout
    );
    let stats = served.stop();
    assert_eq!(stats.workflows_total, 4, "one clear per environment: {:?}", stats.workflows_started);
}

#[test]
fn a_second_apply_of_a_plan_waits_for_the_lock_with_lock_timeout_then_finds_the_work_done() {
    let knobs = crate::support::sim::steady(0.1, 20.0);
    let served = Served::with_world(&world(2), knobs);
    let plan = "version: 1\njobs:\n  d:\n    run: env:deploy\n    on: { sites: ['site-*'], env: test }\n";
    let t = Test::new().file("plan.yml", plan);
    let mut first = served.start_apply(t.path(), &["apply", "plan.yml", "--yes"], 2);
    let second = |extra: &[&str]| {
        served
            .test_in(t.path())
            .env("TERMINUS_MACHINE_TOKEN", TOKEN)
            .env("GITHUB_SERVER_URL", "https://github.example")
            .env("GITHUB_REPOSITORY", "acme/ops")
            .env("GITHUB_RUN_ID", "42")
            .args(&["apply", "plan.yml", "--yes", "--report", "json=second.json"])
            .args(extra)
            .run()
    };
    let refused = second(&[]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("is already being applied by process"), "{}", refused.stderr);
    let waited = second(&["--lock-timeout", "60s"]);
    assert_eq!(waited.code, 0, "{}", waited.stderr);
    assert!(waited.stderr.contains("waiting for the lock"), "{}", waited.stderr);
    assert!(first.wait().unwrap().success());
    let report = crate::support::report(&t, "second.json");
    assert_eq!(report["totals"]["unchanged"], 2, "the first run deployed them: {report}");
    let stats = served.stop();
    assert_eq!(stats.workflows_total, 2, "{:?}", stats.workflows_started);
}

#[test]
fn the_shards_of_one_pipeline_make_one_report_and_each_resumes_itself() {
    let plan = crate::support::repo().join("examples/weekly-release.yml");
    let plan = plan.to_str().unwrap();
    let t = Test::new();
    let state = t.path().join("state").display().to_string();
    let shard = |which: &str, extra: &[&str]| {
        Test::new()
            .in_dir(t.path())
            .env("GITHUB_RUN_ID", "4242")
            .args(&["apply", plan, "--simulate", "--yes", "-q", "--shard", which, "--state-dir", &state])
            .args(extra)
            .run()
    };
    let first = shard("1/2", &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let second = shard("2/2", &[]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    // One report of the pipeline (its group comes from GITHUB_RUN_ID).
    let show = Test::new()
        .in_dir(t.path())
        .args(&["runs", "show", "github-4242", "--state-dir", &state, "--report", "json=merged.json"])
        .run();
    assert_eq!(show.code, 0, "{}", show.stderr);
    assert!(
        show.stdout.starts_with("run group github-4242 of ") && show.stdout.contains(": 2 runs"),
        "{}",
        show.stdout
    );
    let merged = crate::support::report(&t, "merged.json");
    let ids: Vec<&str> = merged["tasks"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    let unique: std::collections::BTreeSet<&&str> = ids.iter().collect();
    assert_eq!(ids.len(), 88, "every task of the plan: {}", merged["totals"]);
    assert_eq!(unique.len(), ids.len(), "each once");
    assert_eq!(merged["totals"]["tasks"], 88);
    assert_eq!(merged["run_id"], "github-4242");
    // A resume of shard 1 continues shard 1's run, not the newer run of shard 2.
    let runs = Test::new().in_dir(t.path()).args(&["runs", "list", "--state-dir", &state]).run();
    let shard_one = runs.stdout.lines().nth(2).unwrap().split_whitespace().next().unwrap().to_owned();
    let resumed = shard("1/2", &["--resume"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let runs = Test::new().in_dir(t.path()).args(&["runs", "list", "--state-dir", &state]).run();
    let newest = runs.stdout.lines().nth(1).unwrap();
    assert!(newest.ends_with(&format!("(resumed {shard_one})")), "{}", runs.stdout);
}
