//! Issue 24: one state for a team. Runs that share a state store (a directory, or a bucket
//! on a real S3 server on 127.0.0.1) never act on one environment at once, whatever plan
//! they come from, and any checkout finds the runs of any other.

use crate::support::Test;
use crate::support::s3::Moto;
use crate::support::sim::Served;

const TOKEN: &str = "simulated-machine-token";

fn world(sites: usize) -> tb_simulator::World {
    crate::support::sim::deployable_sites(sites)
}

/// Where the runs of a test keep their state.
enum Shared {
    Dir(std::path::PathBuf),
    Bucket { moto: Moto, url: String },
}

impl Shared {
    fn dir(t: &Test) -> Self {
        Self::Dir(t.path().join("shared-state"))
    }

    /// A bucket on a new S3 server; `None` when the server could not be provisioned (outside
    /// CI: the test is skipped, see `support::tools`).
    fn bucket(name: &str) -> Option<Self> {
        let moto = Moto::start()?;
        let url = moto.bucket(name);
        Some(Self::Bucket { moto, url })
    }

    /// Where, as `--state-dir` takes it.
    fn location(&self) -> String {
        match self {
            Self::Dir(dir) => dir.display().to_string(),
            Self::Bucket { url, .. } => url.clone(),
        }
    }

    /// The variables every command of the test gets: the store, and a bucket's credentials.
    fn vars(&self) -> Vec<(String, String)> {
        let mut vars = vec![("TERMINUS_BATCH_STATE_DIR".to_owned(), self.location())];
        if let Self::Bucket { moto, .. } = self {
            vars.extend(moto.env());
        }
        vars
    }

    /// The run ids the store holds.
    fn runs(&self) -> std::collections::BTreeSet<String> {
        match self {
            Self::Dir(dir) => std::fs::read_dir(dir.join("runs"))
                .map(|e| e.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
                .unwrap_or_default(),
            Self::Bucket { moto, url } => {
                let keys = moto.keys(url.trim_start_matches("s3://").split('/').next().unwrap());
                keys.iter().filter_map(|k| k.strip_prefix("team/runs/")?.split('/').next().map(str::to_owned)).collect()
            }
        }
    }
}

#[test]
fn two_plans_deploying_the_same_environments_at_once_act_on_each_once() {
    let t = Test::new();
    two_plans_at_once(&Shared::dir(&t), t);
}

#[test]
fn two_plans_deploying_the_same_environments_at_once_act_on_each_once_with_state_in_s3() {
    let Some(shared) = Shared::bucket("two-plans") else { return };
    two_plans_at_once(&shared, Test::new());
}

fn two_plans_at_once(shared: &Shared, t: Test) {
    let knobs = crate::support::sim::steady(0.1, 30.0);
    let served = Served::with_world(&world(4), knobs);
    let plan = |job: &str| {
        format!(
            "version: 1\njobs:\n  {job}:\n    run: env:deploy\n    on: {{ sites: ['site-*'], env: test }}\n    with: {{ note: {job} }}\n"
        )
    };
    let t = t.file("release.yml", &plan("release")).file("hotfix.yml", &plan("hotfix"));
    // The release deploys two environments at a time; the hotfix starts meanwhile.
    let vars = shared.vars();
    let mut release =
        served.start_apply_with(t.path(), &["apply", "release.yml", "--yes", "--concurrency", "2"], &vars, 2);
    let hotfix = served
        .test_in(t.path())
        .env("TERMINUS_MACHINE_TOKEN", TOKEN)
        .envs(&vars)
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
    assert_eq!(shared.runs().len(), 2, "both runs are in the store");
}

#[test]
fn a_run_killed_in_one_clone_is_resumed_from_another_clone_at_another_path() {
    killed_here_resumed_there(None);
}

#[test]
fn a_run_killed_in_one_clone_is_resumed_from_another_clone_at_another_path_with_state_in_s3() {
    let Some(shared) = Shared::bucket("kill-and-resume") else { return };
    killed_here_resumed_there(Some(shared));
}

/// With no store named, the first clone keeps its runs in its repository's root, and the
/// other clone is pointed there (as it would be to a bucket).
fn killed_here_resumed_there(shared: Option<Shared>) {
    let knobs = crate::support::sim::steady(0.1, 30.0);
    let served = Served::with_world(&world(4), knobs);
    let plan = "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: ['site-*'], env: test }\n";
    // Two clones of one repository, at different paths.
    let t = Test::new().file("a/.git/HEAD", "ref: refs/heads/main\n").file("a/ops/plan.yml", plan);
    let t = t.file("b/.git/HEAD", "ref: refs/heads/main\n").file("b/ops/plan.yml", plan);
    let first_vars = shared.as_ref().map(Shared::vars).unwrap_or_default();
    let mut killed = served.start_apply_with(
        &t.path().join("a"),
        &["apply", "ops/plan.yml", "--yes", "--concurrency", "2"],
        &first_vars,
        2,
    );
    killed.kill().unwrap();
    killed.wait().unwrap();
    let shared = shared.unwrap_or_else(|| {
        // One store per repository, at its root; runs named by the plan's path in it.
        let store = t.path().join("a/.terminus-batch");
        assert!(store.join("runs").is_dir(), "the repository root's state directory");
        assert!(!t.path().join("a/ops/.terminus-batch").exists());
        Shared::Dir(store)
    });
    assert_eq!(shared.runs().len(), 1, "the killed run is on record");
    // The other clone shares the store: its resume finds the run.
    let vars = shared.vars();
    let out = served
        .test_in(&t.path().join("b"))
        .env("TERMINUS_MACHINE_TOKEN", TOKEN)
        .envs(&vars)
        .args(&["apply", "ops/plan.yml", "--yes", "--resume", "-q"])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list = Test::new().in_dir(&t.path().join("b")).envs(&vars).args(&["runs", "list"]).run();
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

/// Issue 39, item 6: `runs list` tells a run still going (its process holds its lock) from
/// one that died, spells every run's plan one way, gives the plan the terminal's width, and
/// leaves the read-only `run OP` runs out unless asked.
#[test]
fn runs_list_tells_running_from_dead_and_spells_plans_one_way() {
    let served = Served::with_world(&world(4), crate::support::sim::steady(0.1, 30.0));
    let plan = "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: ['site-*'], env: test }\n";
    let t =
        Test::new().file(".git/HEAD", "ref: refs/heads/main\n").file("ops/a-plan-with-a-rather-long-name.yml", plan);
    let list = |columns: &str, extra: &[&str]| {
        let out = Test::new().in_dir(t.path()).env("COLUMNS", columns).args(&["runs", "list"]).args(extra).run();
        assert_eq!(out.code, 0, "{}", out.stderr);
        out.stdout
    };
    let mut going = served.start_apply(t.path(), &["apply", "ops/a-plan-with-a-rather-long-name.yml", "--yes"], 2);
    let rows = list("200", &[]);
    assert!(rows.lines().nth(1).is_some_and(|r| r.contains(" running")), "its process holds its lock: {rows}");
    going.kill().unwrap();
    going.wait().unwrap();
    let rows = list("200", &[]);
    assert!(rows.lines().nth(1).is_some_and(|r| r.contains(" unfinished")), "its process is gone: {rows}");
    // Typed from elsewhere in the repository, and by an absolute path: one spelling.
    let absolute = t.path().join("ops/a-plan-with-a-rather-long-name.yml");
    let out = served
        .test_in(&t.path().join("ops"))
        .env("TERMINUS_MACHINE_TOKEN", TOKEN)
        .args(&["apply", absolute.to_str().unwrap(), "--yes", "-q"])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let read = served
        .test_in(t.path())
        .env("TERMINUS_MACHINE_TOKEN", TOKEN)
        .args(&["run", "site:info", "--on", "site-000", "--yes", "-q"])
        .run();
    assert_eq!(read.code, 0, "{}", read.stderr);
    let rows = list("200", &[]);
    let plans: Vec<&str> = rows.lines().skip(1).filter(|l| !l.starts_with('(')).collect();
    assert_eq!(plans.len(), 2, "{rows}");
    assert!(
        plans.iter().all(|r| r.contains(" ops/a-plan-with-a-rather-long-name.yml ")),
        "uncut, one spelling: {rows}"
    );
    assert!(rows.contains("1 read-only `run` run not listed: --all lists them"), "{rows}");
    assert!(list("200", &["--all"]).contains("<run site:info>"), "--all lists it");
    // A narrow terminal cuts the plan from the left, keeping its file name.
    assert!(list("80", &[]).contains("…"), "cut at 80 columns");
    served.stop();
}

#[test]
fn two_clones_applying_one_plan_at_once_the_second_is_refused_or_waits_with_lock_timeout() {
    let t = Test::new();
    two_clones_one_lock(&Shared::dir(&t), t);
}

#[test]
fn two_clones_applying_one_plan_at_once_with_state_in_s3_the_second_is_refused_or_waits() {
    let Some(shared) = Shared::bucket("one-lock") else { return };
    two_clones_one_lock(&shared, Test::new());
}

fn two_clones_one_lock(shared: &Shared, t: Test) {
    let knobs = crate::support::sim::steady(0.1, 20.0);
    let served = Served::with_world(&world(2), knobs);
    let plan = "version: 1\njobs:\n  d:\n    run: env:deploy\n    on: { sites: ['site-*'], env: test }\n";
    // Two clones of one repository, at different paths, sharing one store.
    let t = t.file("a/.git/HEAD", "ref: refs/heads/main\n").file("a/plan.yml", plan);
    let t = t.file("b/.git/HEAD", "ref: refs/heads/main\n").file("b/plan.yml", plan);
    let vars = shared.vars();
    let mut first = served.start_apply_with(&t.path().join("a"), &["apply", "plan.yml", "--yes"], &vars, 2);
    let second = |extra: &[&str]| {
        served
            .test_in(&t.path().join("b"))
            .env("TERMINUS_MACHINE_TOKEN", TOKEN)
            .envs(&vars)
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
    let text = std::fs::read_to_string(t.path().join("b/second.json")).unwrap();
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["totals"]["unchanged"], 2, "the first run deployed them: {report}");
    let stats = served.stop();
    assert_eq!(stats.workflows_total, 2, "{:?}", stats.workflows_started);
    assert_eq!(shared.runs().len(), 2, "both runs are in the store");
}

#[test]
fn the_shards_of_one_pipeline_make_one_report_and_each_resumes_itself() {
    let t = Test::new();
    shards_make_one_report(&Shared::dir(&t), &t);
}

#[test]
fn the_shards_of_one_pipeline_make_one_report_and_each_resumes_itself_with_state_in_s3() {
    let Some(shared) = Shared::bucket("shards") else { return };
    let t = Test::new();
    shards_make_one_report(&shared, &t);
}

fn shards_make_one_report(shared: &Shared, t: &Test) {
    let plan = crate::support::repo().join("examples/weekly-release.yml");
    let plan = plan.to_str().unwrap();
    let state = shared.location();
    // Credentials only: the store is named by the flag.
    let vars: Vec<(String, String)> = shared.vars().into_iter().filter(|(k, _)| k.starts_with("AWS_")).collect();
    let shard = |which: &str, extra: &[&str]| {
        Test::new()
            .in_dir(t.path())
            .envs(&vars)
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
        .envs(&vars)
        .args(&["runs", "show", "github-4242", "--state-dir", &state, "--report", "json=merged.json"])
        .run();
    assert_eq!(show.code, 0, "{}", show.stderr);
    assert!(
        show.stdout.starts_with("run group github-4242 of ") && show.stdout.contains(": 2 runs"),
        "{}",
        show.stdout
    );
    let merged = crate::support::report(t, "merged.json");
    let ids: Vec<&str> = merged["tasks"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    let unique: std::collections::BTreeSet<&&str> = ids.iter().collect();
    assert_eq!(ids.len(), 88, "every task of the plan: {}", merged["totals"]);
    assert_eq!(unique.len(), ids.len(), "each once");
    assert_eq!(merged["totals"]["tasks"], 88);
    assert_eq!(merged["run_id"], "github-4242");
    // A resume of shard 1 continues shard 1's run, not the newer run of shard 2.
    let runs = Test::new().in_dir(t.path()).envs(&vars).args(&["runs", "list", "--state-dir", &state]).run();
    let shard_one = runs.stdout.lines().nth(2).unwrap().split_whitespace().next().unwrap().to_owned();
    let resumed = shard("1/2", &["--resume"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let runs = Test::new().in_dir(t.path()).envs(&vars).args(&["runs", "list", "--state-dir", &state]).run();
    let newest = runs.stdout.lines().nth(1).unwrap();
    assert!(newest.ends_with(&format!("(resumed {shard_one})")), "{}", runs.stdout);
    assert_eq!(shared.runs().len(), 3, "every run is in the store");
}

#[test]
fn a_state_store_that_stops_answering_stops_the_run_from_starting_work() {
    let knobs = crate::support::sim::steady(0.1, 30.0);
    let served = Served::with_world(&world(12), knobs);
    let plan = "version: 1\njobs:\n  d:\n    run: env:deploy\n    on: { sites: ['site-*'], env: test }\n";
    let t = Test::new().file("plan.yml", plan);
    let Some(shared) = Shared::bucket("goes-away") else { return };
    let mut vars = shared.vars();
    // A store that is gone for good: given up after 2 s of trying, not the default minute.
    vars.push(("TERMINUS_BATCH_STORE_BUDGET".to_owned(), "2s".to_owned()));
    let args = ["apply", "plan.yml", "--yes", "--concurrency", "2", "--report", "json=report.json"];
    let mut run = served.start_apply_with(t.path(), &args, &vars, 2);
    // The bucket's server stops while two deploys are in flight.
    drop(shared);
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(8), "the run's record was lost: exit 8");
    let report = crate::support::report(&t, "report.json");
    let started = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["workflow_ids"].as_array().is_some_and(|w| !w.is_empty()))
        .count();
    let stats = served.stop();
    assert!(
        stats.workflows_total <= 4,
        "nothing more started once attempts could not be recorded: {:?}",
        stats.workflows_started
    );
    assert!(started >= 2, "the two in flight when the store went: {}", report["tasks"]);
    assert_eq!(stats.workflows_total, started as u64, "every workflow started is in the report");
    assert!(report["totals"]["skipped"].as_u64().unwrap() >= 8, "{}", report["totals"]);
}

#[test]
fn the_plans_state_setting_names_the_store_below_the_flag_and_the_variable() {
    let Some(shared) = Shared::bucket("from-the-plan") else { return };
    let url = shared.location();
    let plan = format!(
        "version: 1\nsettings: {{ state: '{url}' }}\njobs:\n  c:\n    run: env:clear-cache\n    on: {{ sites: [acme-web], env: dev }}\n"
    );
    let t = Test::new().file("plan.yml", &plan);
    let Shared::Bucket { moto, .. } = &shared else { unreachable!() };
    let vars = moto.env();
    let out = Test::new().in_dir(t.path()).envs(&vars).args(&["apply", "plan.yml", "--simulate", "--yes", "-q"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(shared.runs().len(), 1, "the run is in the plan's bucket");
    assert!(!t.path().join(".terminus-batch").exists(), "not in a directory beside the plan");
    // The variable (and the flag) come first.
    let elsewhere = t.path().join("elsewhere").display().to_string();
    let out = Test::new()
        .in_dir(t.path())
        .envs(&vars)
        .env("TERMINUS_BATCH_STATE_DIR", &elsewhere)
        .args(&["apply", "plan.yml", "--simulate", "--yes", "-q"])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(shared.runs().len(), 1);
    assert!(t.path().join("elsewhere/runs").is_dir());
    // A location that is neither a directory nor a known store is an error at its place.
    let bad = Test::new()
        .file("bad.yml", "version: 1\nsettings:\n  state: ftp://files/x\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: [acme-web], env: dev }\n")
        .args(&["validate", "bad.yml"])
        .run();
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("ftp") && bad.stderr.contains("bad.yml:3:"), "{}", bad.stderr);
}

#[test]
fn a_holder_stopped_past_the_stale_period_starts_nothing_once_it_wakes_and_exits_9() {
    let t = Test::new();
    a_sleeping_holder_is_fenced(&Shared::dir(&t), t);
}

#[test]
fn a_holder_stopped_past_the_stale_period_starts_nothing_once_it_wakes_and_exits_9_with_state_in_s3() {
    let Some(shared) = Shared::bucket("sleeper") else { return };
    a_sleeping_holder_is_fenced(&shared, Test::new());
}

/// Issue 36, item 1: a run stopped (SIGSTOP, as a closed laptop or a paused CI runner) past
/// the stale period, while a second run of the plan takes its lock and leases over. Once it
/// wakes, the first starts nothing more: its renewal, or the proof before its next act,
/// finds the records taken; it says so and exits 9. Workflows are held open by the
/// simulator's gate, so the order of events is the test's, not the clock's.
fn a_sleeping_holder_is_fenced(shared: &Shared, t: Test) {
    let gate = t.path().join("gate");
    let mut knobs = crate::support::sim::steady(0.05, 20.0);
    knobs.hold = Some(tb_simulator::knobs::Hold { until: gate.clone(), types: None });
    let served = Served::with_world(&world(8), knobs);
    let plan = "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: ['site-*'], env: test }\n";
    let t = t.file("a/.git/HEAD", "ref: refs/heads/main\n").file("a/plan.yml", plan);
    let t = t.file("b/.git/HEAD", "ref: refs/heads/main\n").file("b/plan.yml", plan);
    let mut vars = shared.vars();
    // A short stale period, so the test does not wait two minutes; the records carry it.
    vars.push(("TERMINUS_BATCH_STALE_AFTER".to_owned(), "4s".to_owned()));
    let apply = ["apply", "plan.yml", "--yes", "--concurrency", "2", "--report", "json=report.json"];
    let mut sleeper = served.start_apply_with(&t.path().join("a"), &apply, &vars, 2);
    let signal = |which: &str, pid: u32| {
        let sent = std::process::Command::new("kill").args([which, &pid.to_string()]).status().unwrap();
        assert!(sent.success(), "kill {which}");
    };
    signal("-STOP", sleeper.id());
    // The second run waits for the lock, then takes it and the sleeper's two stale leases
    // over; it waits for what the sleeper left running there (held by the gate).
    let mut args = apply.to_vec();
    args.extend(["--lock-timeout", "60s"]);
    let mut taker = served.start_apply_until(&t.path().join("b"), &args, &vars, "taking over a lease", 2);
    signal("-CONT", sleeper.id());
    std::fs::write(&gate, "").unwrap();
    let (slept, took) = (sleeper.wait().unwrap(), taker.wait().unwrap());
    assert_eq!(slept.code(), Some(9), "the sleeper was fenced");
    assert_eq!(took.code(), Some(0), "the run that took over ends well");
    let first = crate::support::report(&Test::new().in_dir(&t.path().join("a")), "report.json");
    let second = crate::support::report(&Test::new().in_dir(&t.path().join("b")), "report.json");
    let started = |report: &serde_json::Value| {
        report["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["workflow_ids"].as_array().is_some_and(|w| !w.is_empty()))
            .count()
    };
    assert_eq!(started(&first), 2, "the sleeper started nothing after it woke: {}", first["tasks"]);
    let fenced = first["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| {
            t["message"].as_str().is_some_and(|m| m.contains("another run took over this run's lock or a lease"))
        })
        .count();
    assert!(fenced >= 1, "its report says why the rest did not run: {}", first["tasks"]);
    assert_eq!(second["totals"]["succeeded"], 8, "{}", second["totals"]);
    // The two clears the sleeper started before it stopped were adopted by the run that took
    // their leases over, not sent again: each environment cleared once.
    let stats = served.stop();
    assert_eq!(stats.workflows_total, 8, "{:?}", stats.workflows_started);
    let adopted = second["tasks"].as_array().unwrap().iter().flat_map(|t| t["workflow_ids"].as_array().unwrap().iter());
    let theirs: Vec<&serde_json::Value> =
        first["tasks"].as_array().unwrap().iter().flat_map(|t| t["workflow_ids"].as_array().unwrap().iter()).collect();
    assert_eq!(adopted.filter(|id| theirs.contains(id)).count(), 2, "{}", second["tasks"]);
}

/// Issue 36, items 5 and 6: a bucket that does not exist is said to be missing, by name, and
/// before any request to the platform (the API sees none), exit 8.
#[test]
fn a_missing_bucket_is_named_before_any_request_to_the_platform() {
    let Some(moto) = crate::support::s3::Moto::start() else { return };
    let served = Served::with_world(&world(2), crate::support::sim::steady(0.1, 10.0));
    let plan = "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: ['site-*'], env: test }\n";
    let t = Test::new().file("plan.yml", plan);
    let out = served
        .test_in(t.path())
        .env("TERMINUS_MACHINE_TOKEN", TOKEN)
        .envs(&moto.env())
        .env("TERMINUS_BATCH_STATE_DIR", "s3://no-such-bucket/team")
        .args(&["apply", "plan.yml", "--yes"])
        .run();
    assert_eq!(out.code, 8, "{}", out.stderr);
    assert!(out.stderr.contains("the bucket `no-such-bucket` does not exist"), "{}", out.stderr);
    assert!(served.requests().is_empty(), "no request reached the API: {:?}", served.requests());
}

/// Issue 36, items 3 and 4: a store that answers one request in ten 503 (not forwarded) and a
/// quarter of conditional writes 500 after applying them (journal segments, the lock, leases:
/// create and renew) does not end the release: every write whose answer was lost is read
/// back and known for its own, and every workflow started is on record.
#[test]
fn the_weekly_release_runs_whole_through_a_store_that_loses_answers() {
    use crate::support::fault_proxy::{FaultProxy, Faults};
    let Some(moto) = crate::support::s3::Moto::start() else { return };
    let url = moto.bucket("blips");
    let proxy = FaultProxy::start(&moto.endpoint(), Faults { refuse_every: 10, lose_every: 4, ..Faults::default() });
    let mut vars = moto.env();
    vars.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
    vars.push(("AWS_ENDPOINT_URL".to_owned(), proxy.endpoint()));
    vars.push(("TERMINUS_BATCH_STATE_DIR".to_owned(), url));
    // Renewals too, within the run's few seconds.
    vars.push(("TERMINUS_BATCH_STALE_AFTER".to_owned(), "4s".to_owned()));
    let plan = std::fs::read_to_string(crate::support::repo().join("examples/weekly-release.yml")).unwrap();
    let t = Test::new().file("plan.yml", &plan);
    let out = Test::new()
        .in_dir(t.path())
        .envs(&vars)
        .args(&["apply", "plan.yml", "--simulate", "--yes", "-q", "--report", "json=report.json"])
        .run();
    let stats = proxy.stats();
    assert_eq!(out.code, 0, "{stats:?}\n{}", out.stderr);
    assert!(stats.refused >= 5 && stats.lost >= 5, "the faults happened: {stats:?}");
    let report = crate::support::report(&t, "report.json");
    let totals = &report["totals"];
    assert_eq!(totals["tasks"], 88, "{totals}");
    assert_eq!(totals["failed"], 0, "{totals}");
    let recorded: usize =
        report["tasks"].as_array().unwrap().iter().map(|t| t["workflow_ids"].as_array().map_or(0, Vec::len)).sum();
    assert_eq!(report["simulator"]["workflows_total"], recorded, "every workflow started is on record");
    // The journal in the bucket is whole: `runs show` reads the run back from it.
    let shown = Test::new()
        .in_dir(t.path())
        .envs(&moto.env())
        .env("TERMINUS_BATCH_STATE_DIR", "s3://blips/team")
        .args(&["runs", "list"])
        .run();
    assert!(shown.stdout.contains("88/88"), "{}\n{}", shown.stdout, shown.stderr);
}

/// Issue 36, item 2: a lock renewed a moment ago by a run on another machine whose clock is
/// ten minutes behind this one's (its `renewed_at` ten minutes old by this clock) is held:
/// the store saw it change just now, and staleness is the store's to measure.
#[test]
fn a_lock_renewed_just_now_by_a_machine_whose_clock_is_behind_is_held() {
    use sha2::Digest as _;
    let plan = "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: [site-000], env: test }\n";
    let t = Test::new().file(".git/HEAD", "ref: refs/heads/main\n").file("plan.yml", plan);
    let name = crate::support::hex(&sha2::Sha256::digest(b"plan.yml")[..8]);
    let behind = crate::support::now_ms() / 1000 - 600;
    let record = serde_json::json!({
        "pid": 1, "started_at": behind, "run_id": "20260101T000000Z-far0", "plan_path": "plan.yml",
        "host": "a-runner-elsewhere", "renewed_at": behind,
    });
    let t = t.file(&format!("state/locks/{name}.lock"), &record.to_string());
    let served = Served::with_world(&world(1), crate::support::sim::steady(0.1, 10.0));
    let out = served
        .test_in(t.path())
        .env("TERMINUS_MACHINE_TOKEN", TOKEN)
        .args(&["apply", "plan.yml", "--yes", "--state-dir", "state"])
        .run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("already being applied by process 1 on a-runner-elsewhere"), "{}", out.stderr);
    // Item 6: the lock is taken before any request to the platform.
    assert!(served.requests().is_empty(), "refused before asking the API anything: {:?}", served.requests());
}
