//! The seams of a run that could mislead a user (issue 13): a run never crosses targets, the
//! identity the user names wins, the exit status is the run's, quiet still tells, a filter
//! that keeps nothing is an error, and declining is not "invalid".

use std::io::Read as _;
use std::process::Stdio;

use serde_json::Value;
use tb_simulator::Knobs;

use crate::support::sim::{Served, world};
use crate::support::{Test, simulated};

const TOKEN: &str = "simulated-machine-token";
const DEPLOY: &str = "version: 1\njobs:\n  deploy:\n    run: env:deploy\n    on: { sites: [acme-web], env: test }\n";
const FAILING_WORLD: &str = "simulator: { time_scale: 0.001, fail_workflow_rate: 1.0 }\nuser: { email: a@b.example }\nsites:\n  - { name: s1, envs: { test: { deployable: 1 } } }\n";
const FAILING_PLAN: &str = "version: 1\njobs:\n  d:\n    run: env:deploy\n    on: { sites: [s1], env: test }\n";

fn fast() -> Knobs {
    Knobs { time_scale: 0.001, ..Knobs::default() }
}

#[test]
fn a_resume_never_crosses_from_the_simulator_to_the_api() {
    let t = Test::new().file("plan.yml", DEPLOY);
    let simulated = Test::new().in_dir(t.path()).args(&["apply", "plan.yml", "--simulate", "-q"]).run();
    assert_eq!(simulated.code, 0, "{}", simulated.stderr);
    // The same plan and state directory, now against "the API" (a simulator served as one).
    let served = Served::new(fast());
    let out = served
        .test_in(t.path())
        .env("TERMINUS_MACHINE_TOKEN", TOKEN)
        .args(&["apply", "plan.yml", "--resume", "--yes", "--report", "json=out.json"])
        .run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("ran against the simulator of <built-in world>"), "{}", out.stderr);
    assert!(out.stderr.contains("would talk to the Pantheon API at http://127.0.0.1:"), "{}", out.stderr);
    let stats = served.stop();
    assert!(stats.workflows_started.is_empty(), "nothing ran: {stats:?}");
    assert!(!t.path().join("out.json").exists(), "refused before the run");
}

#[test]
fn a_saved_plan_never_crosses_targets() {
    let t = Test::new().file("plan.yml", DEPLOY);
    let saved = Test::new().in_dir(t.path()).args(&["plan", "plan.yml", "--simulate", "-o", "saved.json", "-q"]).run();
    assert_eq!(saved.code, 0, "{}", saved.stderr);
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(t.path().join("saved.json")).unwrap()).unwrap();
    assert_eq!(doc["ran_against"]["simulator"]["world"], "<built-in world>");
    assert!(doc["user_id"].as_str().is_some_and(|u| !u.is_empty()), "{doc}");
    let served = Served::new(fast());
    let out =
        served.test_in(t.path()).env("TERMINUS_MACHINE_TOKEN", TOKEN).args(&["apply", "saved.json", "--yes"]).run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("saved.json was resolved against the simulator"), "{}", out.stderr);
    assert!(served.stop().workflows_started.is_empty());
}

#[test]
fn an_explicit_token_wins_over_a_saved_session() {
    let served = Served::new(fast());
    let t = Test::new().file("plan.yml", DEPLOY);
    // Someone is logged in with terminus's files.
    let login = served.test_in(t.path()).args(&["auth", "login", "--machine-token", TOKEN]).run();
    assert_eq!(login.code, 0, "{}", login.stderr);
    let session = std::fs::read(t.path().join(".terminus/cache/session")).unwrap();
    // A run that names another (bad) token acts as that token or not at all.
    let out = served
        .test_in(t.path())
        .env("TERMINUS_MACHINE_TOKEN", "not-the-saved-users-token")
        .args(&["apply", "plan.yml", "--yes", "-q"])
        .run();
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(served.stop().workflows_started.is_empty(), "nothing ran as the saved user");
    assert_eq!(std::fs::read(t.path().join(".terminus/cache/session")).unwrap(), session, "left as it was");
}

#[test]
fn a_run_with_an_environment_token_leaves_terminus_files_alone() {
    let served = Served::new(fast());
    let t = Test::new().file("plan.yml", DEPLOY);
    let out =
        served.test_in(t.path()).env("TERMINUS_MACHINE_TOKEN", TOKEN).args(&["apply", "plan.yml", "--yes", "-q"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!t.path().join(".terminus/cache/session").exists(), "only `auth login` writes terminus's session");
    // With exactly one saved token and no TERMINUS_USER, that token is used, as terminus does.
    let login = served.test_in(t.path()).args(&["auth", "login", "--machine-token", TOKEN]).run();
    assert_eq!(login.code, 0, "{}", login.stderr);
    std::fs::remove_file(t.path().join(".terminus/cache/session")).unwrap();
    let again = served.test_in(t.path()).args(&["apply", "plan.yml", "--yes", "-q"]).run();
    assert_eq!(again.code, 0, "{}", again.stderr);
}

#[test]
fn a_closed_stdout_never_turns_a_failed_run_into_success() {
    let t = simulated(FAILING_WORLD, FAILING_PLAN, &[]);
    let mut child = t.command().stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // The reader goes away before the run writes its table (`apply … | head -0`).
    drop(child.stdout.take());
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
}

#[test]
fn a_report_path_that_cannot_be_written_is_refused_before_the_run() {
    let t = Test::new().file("plan.yml", DEPLOY).file("taken", "a file, not a directory");
    let out = Test::new()
        .in_dir(t.path())
        .args(&["apply", "plan.yml", "--simulate", "--report", "json=taken/out.json"])
        .run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("cannot write the json report to taken/out.json"), "{}", out.stderr);
    assert!(!t.path().join(".terminus-batch/runs").exists(), "no run was started");
}

#[test]
fn a_report_on_stdout_keeps_stdout_to_itself() {
    let t = Test::new().file("plan.yml", DEPLOY);
    let out = Test::new().in_dir(t.path()).args(&["apply", "plan.yml", "--simulate", "--report", "json=-"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    assert_eq!(report["totals"]["succeeded"], 1);
    assert!(out.stderr.contains("total"), "the table went to stderr: {}", out.stderr);
}

#[test]
fn a_report_that_cannot_reach_stdout_fails_a_successful_run() {
    let t = Test::new().file("plan.yml", DEPLOY).args(&["apply", "plan.yml", "--simulate", "--report", "json=-"]);
    let mut child = t.command().stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(7), "{stderr}");
    assert!(stderr.contains("cannot write the json report to stdout"), "{stderr}");
}

#[test]
fn quiet_still_tells_what_failed_and_how_the_run_ended() {
    let out = simulated(FAILING_WORLD, FAILING_PLAN, &["-q"]).run();
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(out.stderr.contains("failed d[s1.test]: "), "{}", out.stderr);
    assert!(out.stderr.contains(" failed: 1 task, 0 succeeded, 0 unchanged, 1 failed"), "{}", out.stderr);
    assert!(out.stderr.contains("\nresume terminus-batch apply plan.yml "), "{}", out.stderr);
    // Many tasks failing alike are one line: the count, the cause and the first ids.
    let sites: Vec<String> =
        (0..6).map(|n| format!("  - {{ name: s{n}, envs: {{ test: {{ deployable: 1 }} }} }}")).collect();
    let world = format!(
        "simulator: {{ time_scale: 0.001, fail_workflow_rate: 1.0 }}\nuser: {{ email: a@b.example }}\nsites:\n{}\n",
        sites.join("\n")
    );
    let plan = "version: 1\njobs:\n  d:\n    run: env:deploy\n    on: { sites: [s0, s1, s2, s3, s4, s5], env: test }\n";
    let many = simulated(&world, plan, &["-q"]).run();
    assert_eq!(many.code, 1, "{}", many.stderr);
    let lines: Vec<&str> = many.stderr.lines().collect();
    assert_eq!(lines.len(), 3, "a line for the cause, the status, the resume command:\n{}", many.stderr);
    assert!(lines[0].starts_with("failed 6 tasks: workflow deploy failed"), "{}", many.stderr);
    assert!(lines[0].ends_with(", … +3 more)"), "{}", many.stderr);
}

#[test]
fn a_filter_that_keeps_nothing_is_an_error() {
    let plan =
        "version: 1\njobs:\n  deploy:\n    run: env:deploy\n    on: { sites: [acme-web, acme-blog], env: test }\n";
    let out =
        Test::new().file("plan.yml", plan).args(&["apply", "plan.yml", "--simulate", "--sites", "acme-wbe"]).run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("--sites acme-wbe matches no task of this plan; did you mean `acme-web`?"),
        "{}",
        out.stderr
    );
    let plan_out =
        Test::new().file("plan.yml", plan).args(&["plan", "plan.yml", "--simulate", "--sites", "zzz-*"]).run();
    assert_eq!(plan_out.code, 2, "{}", plan_out.stderr);
    let selector =
        "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: { tag: no-such-tag }, env: live }\n";
    let none = Test::new().file("plan.yml", selector).args(&["plan", "plan.yml", "--simulate"]).run();
    assert_eq!(none.code, 2, "{}", none.stderr);
    assert!(none.stderr.contains("job `c` matches no site"), "{}", none.stderr);
}

#[test]
fn declining_at_the_prompt_has_its_own_exit_code_and_shows_what_would_run() {
    // A terminal for the prompt: `script` gives the command a pty and forwards our "n".
    let script = crate::support::tools::needs!(Script);
    let served = Served::new(fast());
    let t = Test::new().file("plan.yml", DEPLOY);
    let binary = env!("CARGO_BIN_EXE_terminus-batch");
    let declined = |args: &str| {
        let mut running = std::process::Command::new(&script)
            .args(["-qec", &format!("'{binary}' apply {args}"), "/dev/null"])
            .current_dir(t.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", t.path())
            .env("NO_COLOR", "1")
            .env("TERMINUS_HOST", "127.0.0.1")
            .env("TERMINUS_PORT", served.port())
            .env("TERMINUS_PROTOCOL", "http")
            .env("TERMINUS_MACHINE_TOKEN", TOKEN)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("`script` (util-linux) runs the prompt in a pty");
        std::io::Write::write_all(running.stdin.as_mut().unwrap(), b"n\n").unwrap();
        let out = running.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(6), "{}", String::from_utf8_lossy(&out.stdout));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = declined("plan.yml");
    // What would change, as `plan` shows it, and who the run acts as, before the question.
    assert!(text.contains("1 task in 1 job; 1 workflow would start"), "the plan's summary line: {text}");
    assert!(text.contains("  deploy · env:deploy · 1 task on test"), "each job: {text}");
    assert!(text.contains("    sites acme-web"), "its sites: {text}");
    assert!(text.contains("acting as ops@acme.example"), "who the run acts as: {text}");
    assert!(text.contains("Apply? [y/N]"), "{text}");
    assert!(text.contains("not applied"), "{text}");
    // A fleet: the first sites and how many more; a destructive job called out.
    let fleet = "version: 1\njobs:\n  backup:\n    run: backup:create\n    on: { sites: { org: acme-agency }, env: live }\n  \
                 sync:\n    run: env:deploy\n    needs: [backup]\n    on: { sites: { org: acme-agency }, env: test }\n    \
                 with: { sync-content: true }\n";
    std::fs::write(t.path().join("fleet.yml"), fleet).unwrap();
    let text = declined("fleet.yml --allow-destructive");
    let sites = text.lines().find(|l| l.starts_with("    sites ")).unwrap_or_default();
    assert!(sites.ends_with(" more") && sites.matches(", ").count() == 4, "five sites, then a count: {text}");
    assert!(text.contains("  sync · env:deploy · ") && text.contains(" · needs backup · DESTRUCTIVE ("), "{text}");
    assert!(text.contains("    with { sync-content: true }"), "{text}");
    assert!(served.stop().workflows_started.is_empty());
}

#[test]
fn a_world_with_another_user_is_another_target_for_a_resume() {
    // The journal records the user: the same API as another user refuses to resume.
    let served = Served::with_world(
        &world("user: { email: a@b.example }\nsites:\n  - { name: s1, envs: { test: { deployable: 1 } } }\n"),
        fast(),
    );
    let t = Test::new().file("plan.yml", FAILING_PLAN);
    let run = "20260101T000000Z-0001";
    served.write_journal(t.path(), run, (run, None), Some("someone-else"), &[]);
    let out = served
        .test_in(t.path())
        .env("TERMINUS_MACHINE_TOKEN", TOKEN)
        .args(&["apply", "plan.yml", "--resume", "--yes"])
        .run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("ran as user someone-else"), "{}", out.stderr);
    assert!(served.stop().workflows_started.is_empty());
}

#[test]
#[cfg(unix)]
fn an_endless_plan_file_is_refused_without_reading_it_whole() {
    let out = Test::new().args(&["validate", "/dev/zero"]).run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("/dev/zero is over the limit of"), "{}", out.stderr);
    let world =
        Test::new().file("plan.yml", DEPLOY).args(&["plan", "plan.yml", "--simulate", "--world", "/dev/zero"]).run();
    assert_eq!(world.code, 2, "{}", world.stderr);
    assert!(world.stderr.contains("/dev/zero is over the limit of"), "{}", world.stderr);
}

/// `TERMINUS_BATCH_WORLD` is read with every other variable (not by the argument parser): it
/// names the world under `--simulate`, and means nothing to a command that does not simulate.
#[test]
fn the_world_variable_names_the_world_under_simulate_only() {
    let world = "simulator: { time_scale: 0.001 }\nuser: { email: a@b.example }\nsites:\n  - { name: only-here, envs: { test: { deployable: 1 } } }\n";
    let plan = "version: 1\njobs:\n  d:\n    run: env:clear-cache\n    on: { sites: [only-here], env: test }\n";
    let t = Test::new().file("w.yml", world).file("p.yml", plan);
    let simulated =
        Test::new().in_dir(t.path()).env("TERMINUS_BATCH_WORLD", "w.yml").args(&["plan", "p.yml", "--simulate"]).run();
    assert_eq!(simulated.code, 0, "{}", simulated.stderr);
    assert!(simulated.stdout.contains("simulator world w.yml"), "{}", simulated.stdout);
    let validated =
        Test::new().in_dir(t.path()).env("TERMINUS_BATCH_WORLD", "w.yml").args(&["validate", "p.yml"]).run();
    assert_eq!(validated.code, 0, "{}", validated.stderr);
}
