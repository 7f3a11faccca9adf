//! Issue 16: exactly what terminus would do, operation by operation, where the tool had
//! drifted from it.

use crate::support::Test;

#[test]
fn options_that_do_nothing_together_or_that_terminus_refuses_together_are_plan_errors() {
    let plan = "version: 1
jobs:
  c:
    run: env:clone-content
    on: { sites: [a], env: test }
    with: { from-env: live, db-only: true, files-only: true }
  r:
    run: backup:restore
    on: { sites: [a], env: test }
    with: { file: a_database.sql.gz, element: database }
  ok:
    run: backup:restore
    on: { sites: [a], env: dev }
    with: { file: a_database.sql.gz }
";
    let out = Test::new().file("plan.yml", plan).args(&["validate", "plan.yml"]).run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("`db-only` and `files-only` together would clone nothing"), "{}", out.stderr);
    assert!(out.stderr.contains("plan.yml:6:38"), "located at the options: {}", out.stderr);
    assert!(out.stderr.contains("`file` and `element` cannot be given together"), "{}", out.stderr);
    assert!(out.stderr.contains("has 2 problems"), "a file alone is fine: {}", out.stderr);
}

#[test]
fn a_frozen_site_refuses_terminus_s_nine_operations_before_any_request() {
    let world = "simulator: { time_scale: 0.001 }\nuser: { email: a@b.example }\nsites:\n  - { name: cold, frozen: true, envs: { test: { deployable: 1 } } }\n";
    let plan = "version: 1
jobs:
  deploy:
    run: env:deploy
    on: { sites: [cold], env: test }
  clear:
    run: env:clear-cache
    on: { sites: [cold], env: dev }
  info:
    run: env:info
    on: { sites: [cold], env: dev }
  domain:
    run: domain:add
    on: { sites: [cold], env: dev }
    with: { domain: shop.example }
";
    let t = Test::new().file("world.yml", world).file("plan.yml", plan);
    let out = Test::new()
        .in_dir(t.path())
        .args(&["apply", "plan.yml", "--simulate", "--world", "world.yml", "--report", "json=out.json", "-q"])
        .run();
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = crate::support::report(&t, "out.json");
    let frozen = "This site is frozen. Its test and live environments and many commands will be unavailable while it remains frozen.";
    for task in report["tasks"].as_array().unwrap() {
        let refused = task["job"] != "domain";
        if refused {
            assert_eq!(task["status"], "failed", "{task}");
            assert_eq!(task["message"], frozen, "{task}");
        } else {
            assert_eq!(task["status"], "succeeded", "terminus does not refuse domain:add: {task}");
        }
    }
    let requests = report["simulator"]["requests"].as_object().unwrap();
    assert!(!requests.keys().any(|r| r.contains("workflows") || r.contains("code-log")), "{requests:?}");
    // plan --refresh says the same, before anything runs.
    let refresh = Test::new()
        .in_dir(t.path())
        .args(&["plan", "plan.yml", "--simulate", "--world", "world.yml", "--refresh"])
        .run();
    assert_eq!(refresh.code, 0, "{}", refresh.stderr);
    assert_eq!(refresh.stdout.matches("would fail: This site is frozen.").count(), 3, "{}", refresh.stdout);
}
