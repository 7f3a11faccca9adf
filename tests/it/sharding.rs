//! `--shard I/N` and `plan --format github-matrix`: shards partition the tasks along the
//! graph's connected components, and each runs end to end against the simulator.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::{Test, repo};

fn plan_json(args: &[&str]) -> Value {
    let out = Test::new().args(args).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap()
}

#[test]
fn shards_partition_the_tasks_and_no_need_crosses_a_shard() {
    let plan = repo().join("examples/weekly-release.yml");
    let plan = plan.to_str().unwrap();
    let whole = plan_json(&["plan", plan, "--simulate", "--format", "json"]);
    let all: BTreeSet<String> =
        whole["tasks"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_owned()).collect();
    let matrix = Test::new().args(&["plan", plan, "--simulate", "--format", "github-matrix", "--shards", "3"]).run();
    assert_eq!(matrix.stdout, "{\"shard\":[\"1/3\",\"2/3\",\"3/3\"]}\n");
    let mut seen = BTreeSet::new();
    let mut sizes = Vec::new();
    for i in 1..=3 {
        let shard = format!("{i}/3");
        let doc = plan_json(&["plan", plan, "--simulate", "--format", "json", "--shard", &shard]);
        let ids: BTreeSet<String> =
            doc["tasks"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_owned()).collect();
        for task in doc["tasks"].as_array().unwrap() {
            for need in task["needs"].as_array().unwrap() {
                assert!(
                    ids.contains(need.as_str().unwrap()),
                    "{shard}: {} needs {need} from another shard",
                    task["id"]
                );
            }
        }
        assert!(seen.is_disjoint(&ids), "{shard} overlaps");
        sizes.push(ids.len());
        seen.extend(ids);
    }
    assert_eq!(seen, all, "the shards together hold every task");
    assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 8, "balanced: {sizes:?}");
}

#[test]
fn a_shard_applies_end_to_end() {
    let plan = repo().join("examples/weekly-release.yml");
    let t = Test::new().args(&[
        "apply",
        plan.to_str().unwrap(),
        "--simulate",
        // The journal in this test's directory, not beside the repository's example.
        "--state-dir",
        "state",
        "--shard",
        "2/4",
        "--report",
        "json=out.json",
        "-q",
    ]);
    let out = t.run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: Value = crate::support::report(&t, "out.json");
    let tasks = report["totals"]["tasks"].as_u64().unwrap();
    assert!(tasks > 0 && tasks < 88, "{tasks}");
    assert!(
        report["tasks"].as_array().unwrap().iter().all(|t| t["status"] == "succeeded" || t["status"] == "unchanged")
    );
    assert!((report["settings"]["requests_per_second"].as_f64().unwrap() - 2.5).abs() < 1e-9, "a quarter of the rate");
}

#[test]
fn a_barrier_refuses_sharding_naming_the_job() {
    let plan = "version: 1\njobs:\n  a:\n    run: env:clear-cache\n    on: { sites: [acme-web, acme-blog], env: live }\n  b:\n    run: env:clear-cache\n    needs: [{ job: a, scope: all }]\n    on: { sites: [acme-web], env: dev }\n";
    let out = Test::new().file("p.yml", plan).args(&["plan", "p.yml", "--simulate", "--shard", "1/2"]).run();
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("job `b`") && out.stderr.contains("scope: all"), "{}", out.stderr);
    let out = Test::new().file("p.yml", plan).args(&["plan", "p.yml", "--simulate", "--shard", "3/2"]).run();
    assert_eq!(out.code, 2, "{}", out.stderr);
}

#[test]
fn the_github_actions_example_uses_commands_that_exist() {
    let text = std::fs::read_to_string(repo().join("examples/github-actions.yml")).unwrap();
    let workflow: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    assert!(workflow["jobs"]["apply"]["strategy"]["matrix"].is_string());
    // Each shard keeps its records (cache, artifact); a last job merges them into one report.
    assert!(workflow["jobs"]["report"]["steps"].to_string().contains("runs show"), "{workflow}");
    for needle in ["--resume=auto", "TERMINUS_BATCH_STATE_DIR: s3://", "id-token: write", "--report html=release.html"]
    {
        assert!(text.contains(needle), "{needle}");
    }
    // Two pushes never apply side by side, and an apply is never cancelled half-way.
    assert!(workflow["concurrency"]["group"].as_str().is_some_and(|g| g.contains("'apply'")), "{workflow}");
    assert_eq!(workflow["concurrency"]["cancel-in-progress"], false);
    for needle in [
        "--format github-matrix --shards 4",
        "--shard \"${{ matrix.shard }}\"",
        "--refresh --format markdown",
        "--report junit=",
    ] {
        assert!(text.contains(needle), "{needle}");
    }
    // The flags it uses parse: a dry run with the same shape succeeds here.
    let plan = repo().join("examples/weekly-release.yml");
    let out = Test::new()
        .args(&["plan", plan.to_str().unwrap(), "--simulate", "--refresh", "--format", "markdown", "--shard", "1/4"])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn the_gitlab_example_parses_and_uses_what_exists() {
    let text = std::fs::read_to_string(repo().join("examples/gitlab-ci.yml")).unwrap();
    let pipeline: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(pipeline["apply"]["resource_group"], "pantheon-release", "one apply at a time");
    assert_eq!(pipeline["apply"]["parallel"]["matrix"][0]["SHARD"], serde_json::json!(["1/2", "2/2"]));
    for needle in ["--shard \"$SHARD\"", "--resume=auto", "runs show \"gitlab-$CI_PIPELINE_ID\"", "SIGTERM"] {
        assert!(text.contains(needle), "{needle}");
    }
}

/// The GitHub Actions example's own scripts, as its jobs run them: each shard on a runner of
/// its own (a fresh directory) against the simulator served on 127.0.0.1, with the state in a
/// bucket on a real S3 server; "Re-run failed jobs" of shard 2 on another fresh runner resumes
/// its run from the bucket; the report job renders one report of the release.
#[test]
fn the_github_actions_example_runs_its_shards_and_report_with_state_in_s3() {
    let text = std::fs::read_to_string(repo().join("examples/github-actions.yml")).unwrap();
    let workflow: Value = serde_saphyr::from_str(&text).unwrap();
    let script = |job: &str, name: &str| -> String {
        let steps = workflow["jobs"][job]["steps"].as_array().unwrap();
        let step = steps.iter().find(|s| s["name"].as_str().is_some_and(|n| n.starts_with(name))).unwrap();
        step["run"].as_str().unwrap().to_owned()
    };
    let (apply, report) = (script("apply", "Apply shard"), script("report", "One report"));
    let state =
        workflow["env"]["TERMINUS_BATCH_STATE_DIR"].as_str().unwrap().replace("${{ vars.STATE_BUCKET }}", "release");
    let Some(moto) = crate::support::s3::Moto::start() else { return };
    moto.bucket("release");
    // The built-in world, on its own clock, as `--simulate` runs it.
    let world = crate::support::sim::builtin();
    let served = crate::support::sim::Served::with_world(&world, world.knobs.clone());
    let t = Test::new();
    let plan = std::fs::read_to_string(repo().join("examples/weekly-release.yml")).unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_terminus-batch")).parent().unwrap().to_owned();
    let job = |runner: &str, script: &str, shard: &str| {
        let dir = t.path().join(runner);
        // A checkout of the repository: the plan is named by its path in it.
        std::fs::create_dir_all(dir.join("plans")).unwrap();
        std::fs::create_dir_all(dir.join(".git")).unwrap();
        std::fs::write(dir.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(dir.join("plans/weekly-release.yml"), &plan).unwrap();
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        let out = std::process::Command::new("bash")
            .args(["-e", "-c", &script.replace("${{ matrix.shard }}", shard)])
            .current_dir(&dir)
            .env_clear()
            .env("PATH", path)
            .env("HOME", &dir)
            .env("NO_COLOR", "1")
            .env("TERMINUS_HOST", "127.0.0.1")
            .env("TERMINUS_PORT", served.port())
            .env("TERMINUS_PROTOCOL", "http")
            .env("TERMINUS_MACHINE_TOKEN", "simulated-machine-token")
            .env("TERMINUS_BATCH_STATE_DIR", &state)
            .env("GITHUB_RUN_ID", "77")
            .env("GITHUB_STEP_SUMMARY", dir.join("summary.md"))
            .envs(moto.env())
            .output()
            .unwrap();
        assert!(out.status.success(), "{runner}: {}", String::from_utf8_lossy(&out.stderr));
        dir
    };
    job("runner-1", &apply, "1/2");
    job("runner-2", &apply, "2/2");
    // "Re-run failed jobs": shard 2 again, on a new runner with nothing on disk.
    job("runner-3", &apply, "2/2");
    let reporter = job("runner-4", &report, "");
    let summary = std::fs::read_to_string(reporter.join("summary.md")).unwrap();
    assert!(summary.contains("github-77"), "{summary}");
    assert!(reporter.join("release.html").is_file());
    // The re-run resumed shard 2's run, found in the bucket.
    let vars = moto.env();
    let list = Test::new().envs(&vars).args(&["runs", "list", "--state-dir", &state]).run();
    assert_eq!(list.code, 0, "{}", list.stderr);
    let rows: Vec<&str> = list.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{}", list.stdout);
    assert!(rows[0].contains("(resumed "), "{}", list.stdout);
    // One report of the release: the newest run of each shard, every task once.
    let show = Test::new()
        .in_dir(t.path())
        .envs(&vars)
        .args(&["runs", "show", "github-77", "--state-dir", &state, "--report", "json=release.json"])
        .run();
    assert_eq!(show.code, 0, "{}", show.stderr);
    let merged = crate::support::report(&t, "release.json");
    let ids: std::collections::BTreeSet<&str> =
        merged["tasks"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(merged["tasks"].as_array().unwrap().len(), 88, "{}", merged["totals"]);
    assert_eq!(ids.len(), 88, "every task once");
    assert!(moto.keys("release").iter().all(|k| k.starts_with("pantheon-release/")), "all under the prefix");
}
