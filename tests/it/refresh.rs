//! `plan --refresh` and `--detailed-exitcode`: read-only previews with every preflight
//! finding of DESIGN.md §3.6, through the binary and the simulator.

use serde_json::Value;

use tb_simulator::Knobs;

use crate::support::Test;
use crate::support::sim::Served;

const WORLD: &str = "
simulator: { time_scale: 0.001 }
user: { email: ops@example.com }
orgs: [{ name: org }]
sites:
  - name: cold
    org: org
    frozen: true
    envs: { test: { deployable: 1 } }
  - name: fresh
    org: org
    multidev_quota: 1
    upstream_updates: 3
    envs:
      dev: { connection: sftp }
      test: { initialized: false }
      live: { initialized: false, domains: [shop.example] }
      md-1: {}
  - name: calm
    org: org
";

const PLAN: &str = "version: 1
jobs:
  frozen:
    run: env:clear-cache
    on: { sites: [cold], env: live }
  deploy-live:
    run: env:deploy
    on: { sites: [fresh], env: live }
  upstream:
    run: upstream:updates:apply
    on: { sites: [fresh], env: dev }
  quota:
    run: multidev:create
    on: { sites: [fresh], env: md-2 }
  domain:
    run: domain:add
    on: { sites: [fresh], env: test }
    with: { domain: shop.example }
  restore:
    run: backup:restore
    on: { sites: [calm], env: live }
  deploy-test:
    run: env:deploy
    on: { sites: [fresh], env: test }
  after:
    run: env:clear-cache
    needs: [deploy-test]
    on: { sites: [fresh], env: test }
  nothing:
    run: env:deploy
    on: { sites: [calm], env: test }
";

fn refreshed(out: &str) -> Vec<(String, String, String)> {
    let doc: Value = serde_json::from_str(out).unwrap();
    doc["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().to_owned(),
                t["refresh"]["status"].as_str().unwrap_or_default().to_owned(),
                t["refresh"]["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn refresh_shows_each_preflight_finding() {
    let out = Test::new()
        .file("world.yml", WORLD)
        .file("plan.yml", PLAN)
        .args(&["plan", "plan.yml", "--simulate", "--world", "world.yml", "--refresh", "--format", "json"])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows = refreshed(&out.stdout);
    let get = |id: &str| rows.iter().find(|r| r.0 == id).unwrap_or_else(|| panic!("{id}: {rows:?}")).clone();
    let finding = |id: &str, needle: &str| {
        let (_, status, reason) = get(id);
        assert_eq!(status, "finding", "{id}: {reason}");
        assert!(reason.contains(needle), "{id}: {reason}");
    };
    finding("frozen[cold.live]", "frozen");
    finding("deploy-live[fresh.live]", "test is not initialized");
    finding("upstream[fresh.dev]", "SFTP mode");
    finding("quota[fresh.md-2]", "quota");
    finding("domain[fresh.test]", "already on fresh.live");
    finding("restore[calm.live]", "No backups available. Create one with `terminus backup:create calm.live`");
    assert_eq!(get("deploy-test[fresh.test]").1, "change", "initializing test is a change");
    assert_eq!(
        get("after[fresh.test]"),
        ("after[fresh.test]".into(), "change_after".into(), "deploy-test[fresh.test]".into())
    );
    assert_eq!(get("nothing[calm.test]").1, "unchanged");
}

#[test]
fn refresh_makes_read_only_calls_only() {
    let world = crate::support::sim::world(WORLD);
    let served = Served::with_world(&world, Knobs { time_scale: 0.001, ..Knobs::default() });
    let out = served
        .test()
        .env("TERMINUS_MACHINE_TOKEN", "simulated-machine-token")
        .file("plan.yml", PLAN)
        .args(&["plan", "plan.yml", "--refresh", "--format", "json"])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(refreshed(&out.stdout).len(), 9);
    let stats = served.stop();
    let writes: Vec<&String> = stats
        .requests
        .keys()
        .filter(|route| !route.starts_with("GET ") && route.as_str() != "POST authorize/machine-token")
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
    assert_eq!(stats.workflows_total, 0);
}

#[test]
fn detailed_exit_codes() {
    let calm = "version: 1\njobs:\n  d:\n    run: env:deploy\n    on: { sites: [calm], env: test }\n";
    let run = |plan: &str| {
        Test::new()
            .file("world.yml", WORLD)
            .file("plan.yml", plan)
            .args(&["plan", "plan.yml", "--simulate", "--world", "world.yml", "--detailed-exitcode", "-q"])
            .run()
            .code
    };
    assert_eq!(run(calm), 0, "nothing would change");
    let changes = "version: 1\njobs:\n  d:\n    run: env:deploy\n    on: { sites: [fresh], env: test }\n";
    assert_eq!(run(changes), 4);
    let destroys = "version: 1\njobs:\n  r:\n    run: lock:disable\n    on: { sites: [fresh], env: live }\n  m:\n    run: multidev:delete\n    on: { sites: [fresh], env: md-1 }\n";
    assert_eq!(run(destroys), 5);
}

#[test]
fn a_saved_plan_refuses_when_a_recorded_precondition_drifted() {
    let world = "simulator: { time_scale: 0.001 }\nuser: { email: a@b.example }\nsites:\n  - { name: s1, envs: { test: { deployable: 1 } } }\n";
    let plan = "version: 1\njobs:\n  d:\n    run: env:deploy\n    on: { sites: [s1], env: test }\n";
    let served =
        Served::with_world(&crate::support::sim::world(world), Knobs { time_scale: 0.001, ..Knobs::default() });
    let t = Test::new().file("plan.yml", plan);
    let api = |args: &[&str]| {
        served.test_in(t.path()).env("TERMINUS_MACHINE_TOKEN", "simulated-machine-token").args(args).run()
    };
    assert_eq!(api(&["plan", "plan.yml", "--refresh", "-o", "saved.json", "-q"]).code, 0);
    // Someone deploys meanwhile: the preview recorded in the saved plan no longer holds.
    assert_eq!(api(&["apply", "plan.yml", "--yes", "-q"]).code, 0);
    let out = api(&["apply", "saved.json", "--yes", "-q"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("d[s1.test]: was \"will change: 1 commit to deploy from dev: ")
            && out.stderr.contains(" Development change 1\", now \"unchanged: There is nothing to deploy.\""),
        "{}",
        out.stderr
    );
}

/// A task after others that change its site "will change after" the one whose result it
/// reads: a deploy to live after the deploy to test (which moves the code it carries), not
/// after the backup that happens to come first among its needs.
#[test]
fn a_change_after_names_the_task_whose_result_it_reads() {
    let plan = crate::support::repo().join("examples/weekly-release.yml");
    let out = crate::support::Test::new().args(&["plan", plan.to_str().unwrap(), "--simulate", "--refresh"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lives: Vec<&str> =
        out.stdout.lines().filter(|l| l.contains("+ deploy-live[") && l.contains("will change after")).collect();
    assert!(!lives.is_empty(), "{}", out.stdout);
    for line in lives {
        let site = line.split("deploy-live[").nth(1).unwrap().split('.').next().unwrap();
        assert!(line.ends_with(&format!("will change after deploy-test[{site}.test]")), "{line}");
    }
}

/// A deploy's preview shows what it would carry, as a reviewer of a release wants to see:
/// each commit's short hash and subject, the first three, then how many more; in the text
/// and the JSON alike.
#[test]
fn a_deploy_preview_lists_the_commits_it_would_carry() {
    let world = "simulator: { time_scale: 0.001 }\nuser: { email: a@b.example }\nsites:\n  - { name: many, envs: { test: { deployable: 5 } } }\n  - { name: one, envs: { test: { deployable: 1 } } }\n";
    let plan = "version: 1\njobs:\n  d:\n    run: env:deploy\n    on: { sites: [many, one], env: test }\n";
    let t = crate::support::Test::new().file("world.yml", world).file("plan.yml", plan);
    let json = crate::support::Test::new()
        .in_dir(t.path())
        .args(&["plan", "plan.yml", "--simulate", "--world", "world.yml", "--refresh", "--format", "json"])
        .run();
    assert_eq!(json.code, 0, "{}", json.stderr);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let reason = |site: &str| {
        let task = doc["tasks"].as_array().unwrap().iter().find(|t| t["site"] == site).unwrap();
        task["refresh"]["reason"].as_str().unwrap().to_owned()
    };
    let many = reason("many");
    assert!(many.starts_with("5 commits to deploy from dev: "), "{many}");
    let listed: Vec<&str> = many.split(": ").nth(1).unwrap().split(" · ").collect();
    assert_eq!(listed.len(), 4, "three commits, then the rest counted: {many}");
    assert_eq!(listed[3], "+2 more");
    for commit in &listed[..3] {
        let (hash, subject) = commit.split_once(' ').unwrap();
        assert!(hash.len() == 7 && hash.chars().all(|c| c.is_ascii_hexdigit()), "{commit}");
        assert!(!subject.is_empty(), "{commit}");
    }
    assert_eq!(reason("one").split(" · ").count(), 1, "{}", reason("one"));
    let text = crate::support::Test::new()
        .in_dir(t.path())
        .args(&["plan", "plan.yml", "--simulate", "--world", "world.yml", "--refresh"])
        .run();
    assert!(text.stdout.contains(&many), "the text says the same: {}", text.stdout);
    let markdown = crate::support::Test::new()
        .in_dir(t.path())
        .args(&["plan", "plan.yml", "--simulate", "--world", "world.yml", "--refresh", "--format", "markdown"])
        .run();
    assert!(markdown.stdout.contains("| task | wave | after | would |"), "{}", markdown.stdout);
    assert!(markdown.stdout.contains(&format!("| will change: {many} |")), "and the Markdown: {}", markdown.stdout);
}
