//! Issue 14: never a duplicate workflow, never a lost record, never a secret sent in clear,
//! under path spellings, a second crash, clock skew, odd answers and timeouts. Each test
//! reproduces a way the run went wrong before.

use terminus_batch::simulator::Knobs;

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

fn slow_world() -> terminus_batch::simulator::World {
    crate::support::sim::world(
        "user: { email: ops@example.com }\norgs: [{ name: o }]\nsites:\n  - { name: s1, org: o, envs: { test: { deployable: 1 } } }\n  - { name: s2, org: o, envs: { test: { deployable: 1 } } }\n",
    )
}

#[test]
fn every_spelling_of_a_plan_path_is_one_plan_for_the_lock_and_resume() {
    // Workflows of 30 s at 1/10 speed: 3 s, time enough for the second and third spelling.
    let knobs = Knobs {
        time_scale: 0.1,
        default_duration: 30.0,
        workflow_durations: std::collections::BTreeMap::new(),
        duration_jitter: 0.0,
        ..Knobs::default()
    };
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
