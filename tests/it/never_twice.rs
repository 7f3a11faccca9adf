//! Issue 14: never a duplicate workflow, never a lost record, never a secret sent in clear,
//! under path spellings, a second crash, clock skew, odd answers and timeouts. Each test
//! reproduces a way the run went wrong before.

use crate::support::Test;

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
