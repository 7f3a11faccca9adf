//! Issue 17: the operator's experience. Mistakes reported in the words of what the user
//! typed.

use crate::support::Test;

#[test]
fn run_speaks_of_the_command_line_not_of_a_plan_the_user_never_wrote() {
    let out = Test::new()
        .args(&["run", "env:deploy", "--on", "site1.test,acme-wb.test", "--with", "note=Release", "--simulate"])
        .run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.starts_with(
            "error: `run env:deploy --on site1.test,acme-wb.test --with note=Release`: site `site1` was not found"
        ),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("did you mean `acme-web`?"), "{}", out.stderr);
    assert!(!out.stderr.contains("did you mean `site1`"), "never the name itself: {}", out.stderr);
    assert!(!out.stderr.contains("<run env:deploy>:"), "no line and column of a generated text: {}", out.stderr);
    // The README's example runs as shown.
    let ok = Test::new()
        .args(&["run", "env:deploy", "--on", "acme-web.test,acme-blog.test", "--with", "note=Release", "--simulate"])
        .run();
    assert_eq!(ok.code, 0, "{}", ok.stderr);
}

#[test]
fn case_only_and_near_misses_of_enumerated_values_get_a_did_you_mean() {
    let plan = "version: 1
jobs:
  d:
    run: env:deploy
    on: { sites: [a], env: Live }
  b:
    run: backup:create
    on: { sites: [a], env: live }
    with: { element: Database }
  c:
    run: connection:set
    on: { sites: [a], env: dev }
    with: { mode: sfpt }
";
    let out = Test::new().file("plan.yml", plan).args(&["validate", "plan.yml"]).run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    for hint in [
        "did you mean `live`? environment ids are lowercase",
        "did you mean `database`? values are lowercase",
        "did you mean `sftp`?",
    ] {
        assert!(out.stderr.contains(hint), "no {hint:?} in\n{}", out.stderr);
    }
}

#[test]
fn bash_completes_the_flags_of_a_subcommand() {
    let script = Test::new().args(&["completions", "bash"]).run();
    assert_eq!(script.code, 0, "{}", script.stderr);
    let t = Test::new().file("tb.bash", &script.stdout);
    let complete = |words: &str, cur: &str, prev: &str| {
        let program = format!(
            "source tb.bash; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); _terminus__batch terminus-batch '{cur}' '{prev}'; echo \"${{COMPREPLY[@]}}\""
        );
        let out =
            std::process::Command::new("bash").arg("-c").arg(program).current_dir(t.path()).output().expect("bash");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(complete("terminus-batch apply --re", "--re", "apply"), "--report --resume");
    assert!(complete("terminus-batch simulate serve --la", "--la", "serve").contains("--latency"));
    assert!(complete("terminus-batch pl", "pl", "terminus-batch").contains("plan"));
}

#[test]
fn an_unclosed_bracket_points_at_itself_and_where_the_parser_gave_up() {
    let plan = "version: 1\njobs:\n  d:\n    run: env:deploy\n    on: { sites: [a], env: live\n    with: { note: x }\n";
    let out = Test::new().file("plan.yml", plan).args(&["validate", "plan.yml"]).run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("plan.yml:5:9"), "not 1:1: {}", out.stderr);
    assert!(out.stderr.contains("this `{` is never closed"), "{}", out.stderr);
    assert!(out.stderr.contains("the parser gave up here"), "{}", out.stderr);
    assert!(out.stderr.contains("close it with `}`"), "{}", out.stderr);
}

#[test]
fn every_mistake_in_one_run_unknown_keys_included() {
    let plan = "version: 1
nmae: weekly
settings: { concurency: 3 }
jobs:
  d:
    run: env:deploy
    on: { sites: [a], env: Live }
    setings: 1
    with: { nte: x }
  c:
    run: env:clear-cach
    on: { sites: [a], env: live }
";
    let out = Test::new().file("plan.yml", plan).args(&["validate", "plan.yml"]).run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    for needle in [
        "unknown key `nmae`",
        "did you mean `name`?",
        "unknown key `concurency`",
        "unknown key `setings`",
        "`Live` is not a valid environment id",
        "`env:deploy` has no option `nte`",
        "env:clear-cach",
        "has 6 problems",
    ] {
        assert!(out.stderr.contains(needle), "no {needle:?} in\n{}", out.stderr);
    }
    assert!(out.stderr.contains("plan.yml:8:5"), "each located: {}", out.stderr);
}
