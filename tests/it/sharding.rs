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
