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
