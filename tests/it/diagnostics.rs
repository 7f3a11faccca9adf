//! The rendered diagnostic of every error code, from small bad plans, snapshotted character
//! for character: each shows the code, `file:line:column`, the snippet and the help line.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use tb_plan::plan::ErrorCode;

use crate::support::Test;

const JOB: &str = "jobs:\n  c:\n    run: env:clear-cache\n    on: { sites: [acme-web], env: live }\n";

fn cases() -> Vec<(ErrorCode, String)> {
    let mut bomb = String::from(
        "version: 1\njobs:\n  a:\n    run: env:wake\n    with:\n      x0: &a0 [l, l, l, l, l, l, l, l, l]\n",
    );
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 9].join(", ");
        let _ = writeln!(bomb, "      x{i}: &a{i} [{refs}]");
    }
    let values = |prefix: &str| (0..400).map(|i| format!("{prefix}{i}")).collect::<Vec<_>>().join(", ");
    let huge = format!(
        "version: 1\njobs:\n  add:\n    run: domain:add\n    on: {{ sites: [acme-web], env: live }}\n    matrix:\n      a: [{}]\n      b: [{}]\n    with: {{ domain: \"${{{{ matrix.a }}}}.${{{{ matrix.b }}}}.example\" }}\n",
        values("a"),
        values("b")
    );
    vec![
        (ErrorCode::Syntax, "version: 1\njobs: {a: [}\n".to_owned()),
        (ErrorCode::WrongType, format!("version: 1\nsettings:\n  concurrency: ten\n{JOB}")),
        (ErrorCode::UnknownKey, format!("version: 1\n{JOB}    neds: [x]\n")),
        (ErrorCode::DuplicateKey, format!("version: 1\n{JOB}  c:\n    run: env:wake\n")),
        (ErrorCode::MissingKey, "version: 1\njobs:\n  c:\n    on: { sites: [acme-web], env: live }\n".to_owned()),
        (ErrorCode::TooLarge, bomb),
        (ErrorCode::BadVersion, format!("version: 2\n{JOB}")),
        (ErrorCode::BadValue, format!("version: 1\nsettings:\n  on_failure: fail-fats\n{JOB}")),
        (ErrorCode::UnknownOperation, "version: 1\njobs:\n  d:\n    run: env:deplyo\n    on: { sites: [acme-web], env: live }\n".to_owned()),
        (ErrorCode::BadOption, "version: 1\njobs:\n  b:\n    run: backup:create\n    on: { sites: [acme-web], env: live }\n    with: { element: everything, keepfor: 3 }\n".to_owned()),
        (ErrorCode::MissingOption, "version: 1\njobs:\n  d:\n    run: domain:add\n    on: { sites: [acme-web], env: live }\n".to_owned()),
        (ErrorCode::UnknownVariable, "version: 1\njobs:\n  d:\n    run: env:deploy\n    on: { sites: [acme-web], env: live }\n    with: { note: \"Release ${{ stie }}\" }\n".to_owned()),
        (ErrorCode::BadTemplate, "version: 1\njobs:\n  d:\n    run: env:deploy\n    on: { sites: [acme-web], env: live }\n    with: { note: \"Release ${{ site\" }\n".to_owned()),
        (ErrorCode::ScopeMismatch, "version: 1\njobs:\n  o:\n    run: org:list\n    on: { sites: [acme-web] }\n".to_owned()),
        (ErrorCode::EnvNotAllowed, "version: 1\njobs:\n  d:\n    run: env:deploy\n    on: { sites: [acme-web], env: dev }\n".to_owned()),
        (ErrorCode::BadEnvId, "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: [acme-web], env: Feature_1 }\n".to_owned()),
        (ErrorCode::UnknownTarget, "version: 1\ntargets:\n  pilot: [acme-web]\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: pilto, env: live }\n".to_owned()),
        (ErrorCode::UnknownSite, "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: [acme-wbe], env: live }\n".to_owned()),
        (ErrorCode::NoTargets, "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: { tag: nonexistent }, env: live }\n".to_owned()),
        (ErrorCode::UnknownNeed, format!("version: 1\n{JOB}    needs: [backpu]\n  backup:\n    run: backup:create\n    on: {{ sites: [acme-web], env: live }}\n")),
        (ErrorCode::UnmatchedNeed, "version: 1\njobs:\n  a:\n    run: backup:create\n    on: { sites: [acme-web], env: live }\n  b:\n    run: env:clear-cache\n    needs: [a]\n    on: { sites: [acme-web, acme-blog], env: live }\n".to_owned()),
        (ErrorCode::Cycle, "version: 1\njobs:\n  a:\n    run: env:wake\n    needs: [c]\n    on: { sites: [acme-web], env: live }\n  b:\n    run: env:wake\n    needs: [a]\n    on: { sites: [acme-web], env: live }\n  c:\n    run: env:wake\n    needs: [b]\n    on: { sites: [acme-web], env: live }\n".to_owned()),
        (ErrorCode::BadMatrix, "version: 1\njobs:\n  d:\n    run: domain:add\n    on: { sites: [acme-web], env: live }\n    matrix: { domain: a.example }\n    with: { domain: \"${{ matrix.domain }}\" }\n".to_owned()),
        (ErrorCode::LoosenedLimit, format!("version: 1\nsettings:\n  max_failures: 2\n{JOB}    max_failures: 5\n")),
        (ErrorCode::TooManyTasks, huge),
    ]
}

#[test]
fn every_error_code_renders_with_location_snippet_and_help() {
    let cases = cases();
    let covered: BTreeSet<ErrorCode> = cases.iter().map(|(c, _)| *c).collect();
    let all: BTreeSet<ErrorCode> = ErrorCode::ALL.iter().copied().collect();
    assert_eq!(covered, all, "every error code needs a case here");
    for (code, plan) in cases {
        let out = Test::new().file("plan.yml", &plan).args(&["plan", "plan.yml", "--simulate"]).run();
        assert_eq!(out.code, 2, "{code}: exit {}\n{}", out.code, out.stderr);
        assert!(out.stderr.contains(code.as_str()), "{code} not in:\n{}", out.stderr);
        assert!(out.stderr.contains("[plan.yml:"), "{code}: no line:column in:\n{}", out.stderr);
        assert!(out.stderr.contains(" │ "), "{code}: no snippet in:\n{}", out.stderr);
        insta::assert_snapshot!(code.as_str().replace("::", "__"), out.stderr);
    }
}

#[test]
fn three_mistakes_give_three_diagnostics() {
    let plan = "version: 1
targets:
  pilot: [acme-web, acme-blog]
jobs:
  deploy-test:
    run: env:deploy
    on: { sites: pilto, env: test }
  deploy-live:
    run: env:deploy
    needs: [deploy-tset]
    on: { sites: pilot, env: live }
  cache:
    run: env:clear-cache
    on: { sites: pilot, env: live }
    with: { framework-cache: true }
";
    let out = Test::new().file("plan.yml", plan).args(&["validate", "plan.yml"]).run();
    assert_eq!(out.code, 2);
    for (code, at) in [
        ("plan::unknown_target", "[plan.yml:7:18]"),
        ("plan::unknown_need", "[plan.yml:10:13]"),
        ("plan::bad_option", "[plan.yml:15:13]"),
    ] {
        assert!(out.stderr.contains(code), "{code} missing:\n{}", out.stderr);
        assert!(out.stderr.contains(at), "{at} missing:\n{}", out.stderr);
    }
    assert!(out.stderr.contains("plan.yml has 3 problems"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
}

#[test]
fn diagnostics_suggest_the_closest_name() {
    let plan = "version: 1\njobs:\n  d:\n    run: env:deploy\n    on: { sites: [acme-web], env: test }\n    with: { updatedb: true, not: x, sync_content: true }\n";
    let out = Test::new().file("plan.yml", plan).args(&["validate", "plan.yml"]).run();
    assert!(out.stderr.contains("did you mean `note`?"), "{}", out.stderr);
    assert!(out.stderr.contains("kebab-case: `sync-content`"), "{}", out.stderr);
}

#[test]
fn a_glob_written_alone_is_told_to_go_in_a_list() {
    let plan = "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: \"acme-*\", env: live }\n";
    let out = Test::new().file("plan.yml", plan).args(&["validate", "plan.yml"]).run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("unknown target `acme-*`"), "{}", out.stderr);
    assert!(out.stderr.contains("help: a glob goes in a list: `sites: [\"acme-*\"]`"), "{}", out.stderr);
}

#[test]
fn a_cycle_is_reported_with_the_unknown_operation_of_one_of_its_jobs() {
    let plan = "version: 1\njobs:\n  a:\n    run: env:deplyo\n    needs: [b]\n    on: { sites: [x], env: test }\n  b:\n    run: env:clear-cache\n    needs: [a]\n    on: { sites: [x], env: test }\n";
    let out = crate::support::Test::new().file("plan.yml", plan).args(&["validate", "plan.yml"]).run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("unknown operation `env:deplyo`"), "{}", out.stderr);
    assert!(out.stderr.contains("jobs form a cycle: a → b → a"), "every error at once: {}", out.stderr);
    assert!(out.stderr.contains("has 2 problems"), "{}", out.stderr);
}

/// `-vv` logs every setting and where it came from, naming the variable that set it; the
/// settings with no default are on the list too (issue 38, section 3).
#[test]
fn very_verbose_logs_every_setting_with_the_variable_that_set_it() {
    let plan = "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: [acme-web], env: dev }\n";
    let out = crate::support::Test::new()
        .file("plan.yml", plan)
        .env("TERMINUS_BATCH_CONCURRENCY", "3")
        .args(&["plan", "plan.yml", "--simulate", "-vv"])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains(r#"name="concurrency" value=3 from=environment (TERMINUS_BATCH_CONCURRENCY)"#),
        "{}",
        out.stderr
    );
    for name in ["max_failures", "timeout", "poll_interval", "user", "machine_token"] {
        assert!(out.stderr.contains(&format!(r#"name="{name}" value=none from=default"#)), "{name}: {}", out.stderr);
    }
}
