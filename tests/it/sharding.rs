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
    for needle in ["actions/cache@v4", "restore-keys", "--resume", "merge-multiple: true", "--report html=release.html"]
    {
        assert!(text.contains(needle), "{needle}");
    }
    // Two pushes never apply side by side, and an apply is never cancelled half-way.
    assert!(workflow["concurrency"]["group"].as_str().is_some_and(|g| g.contains("'apply'")), "{workflow}");
    assert_eq!(workflow["concurrency"]["cancel-in-progress"], false);
    for needle in [
        "--format github-matrix --shards 4",
        "--shard ${{ matrix.shard }}",
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
    for needle in ["--shard \"$SHARD\"", "--resume", "runs show \"gitlab-$CI_PIPELINE_ID\"", "SIGTERM"] {
        assert!(text.contains(needle), "{needle}");
    }
}

/// The CI examples' sequence, on runners that share nothing: each shard applies with a state
/// directory of its own (its cache), a re-run resumes its shard from it, and the last job
/// merges the shards' runs into one directory and renders one report of the release.
#[test]
fn shards_on_separate_runners_merge_into_one_report() {
    let plan = repo().join("examples/weekly-release.yml");
    let plan = plan.to_str().unwrap();
    let t = Test::new();
    let shard = |which: &str, runner: &str, extra: &[&str]| {
        let state = t.path().join(runner).join(".terminus-batch").display().to_string();
        Test::new()
            .in_dir(t.path())
            .env("GITHUB_RUN_ID", "77")
            .args(&["apply", plan, "--simulate", "--yes", "-q", "--shard", which, "--state-dir", &state])
            .args(extra)
            .run()
    };
    assert_eq!(shard("1/2", "runner-1", &[]).code, 0);
    assert_eq!(shard("2/2", "runner-2", &[]).code, 0);
    // "Re-run failed jobs": shard 2 on a new runner with its restored cache resumes itself.
    let rerun = shard("2/2", "runner-2", &["--resume"]);
    assert_eq!(rerun.code, 0, "{}", rerun.stderr);
    // The report job: every runner's runs in one directory.
    let merged = t.path().join("report/.terminus-batch/runs");
    std::fs::create_dir_all(&merged).unwrap();
    for runner in ["runner-1", "runner-2"] {
        for run in std::fs::read_dir(t.path().join(runner).join(".terminus-batch/runs")).unwrap() {
            let run = run.unwrap().path();
            let to = merged.join(run.file_name().unwrap());
            std::fs::create_dir_all(&to).unwrap();
            for file in std::fs::read_dir(&run).unwrap() {
                let file = file.unwrap().path();
                std::fs::copy(&file, to.join(file.file_name().unwrap())).unwrap();
            }
        }
    }
    let out = Test::new()
        .in_dir(&t.path().join("report"))
        .args(&["runs", "show", "github-77", "--state-dir", ".terminus-batch"])
        .args(&["--report", "markdown=release.md", "--report", "html=release.html", "--report", "json=release.json"])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.path().join("report/release.json")).unwrap()).unwrap();
    let ids: std::collections::BTreeSet<&str> =
        report["tasks"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(report["tasks"].as_array().unwrap().len(), 88, "the newest run of each shard: {}", report["totals"]);
    assert_eq!(ids.len(), 88, "every task once");
    assert!(t.path().join("report/release.html").is_file() && t.path().join("report/release.md").is_file());
}
