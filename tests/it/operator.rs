//! Issue 17: the operator's experience. Mistakes reported in the words of what the user
//! typed.

use crate::support::{Test, simulated};

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

/// In real bash, as a user's shell runs the script: subcommands, flags, and the values only
/// this machine knows (the plan's jobs, the runs on record, the operations).
#[test]
fn bash_completes_subcommands_flags_jobs_runs_and_operations() {
    let plan = "version: 1\njobs:\n  deploy-test:\n    run: env:deploy\n    on: { sites: [a], env: test }\n  deploy-live:\n    run: env:deploy\n    on: { sites: [a], env: live }\n    needs: [deploy-test]\n  clear:\n    run: env:clear-cache\n    on: { sites: [a], env: live }\n";
    let t = Test::new().file("plan.yml", plan).file(".terminus-batch/runs/20261201T080000Z-00aa/events.jsonl", "");
    let script = Test::new().in_dir(t.path()).args(&["completions", "bash"]).run();
    assert_eq!(script.code, 0, "{}", script.stderr);
    std::fs::write(t.path().join("tb.bash"), &script.stdout).unwrap();
    let complete = |words: &[&str]| {
        let words: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let program = format!(
            "source tb.bash; COMP_WORDS=({}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); _terminus_batch_complete terminus-batch \"${{COMP_WORDS[-1]}}\" ''; echo \"${{COMPREPLY[@]}}\"",
            words.join(" ")
        );
        let out =
            std::process::Command::new("bash").arg("-c").arg(program).current_dir(t.path()).output().expect("bash");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(complete(&["terminus-batch", "apply", "--re"]), "--report --resume");
    assert!(complete(&["terminus-batch", "simulate", "serve", "--la"]).contains("--latency"));
    assert!(complete(&["terminus-batch", "pl"]).contains("plan"));
    assert_eq!(complete(&["terminus-batch", "apply", "plan.yml", "--only", "deploy"]), "deploy-test deploy-live");
    assert_eq!(complete(&["terminus-batch", "plan", "--simulate", "plan.yml", "--only", "c"]), "clear");
    assert_eq!(complete(&["terminus-batch", "runs", "show", "2026"]), "20261201T080000Z-00aa");
    // Bash splits `--resume=` at the `=` and replaces only what follows it: the candidates
    // come without the flag. A run on record with no header is no run of this plan.
    assert_eq!(complete(&["terminus-batch", "apply", "plan.yml", "--resume="]), "auto");
    // Likewise after a colon: readline keeps `env:` and completes what follows it.
    assert_eq!(complete(&["terminus-batch", "run", "env:clear"]), "clear-cache");
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

/// Ten sites whose cache clears all fail, and two that succeed.
const FLEET_WORLD: &str = "simulator: { time_scale: 0.001 }
user: { email: a@b.example }
sites:
  - { name: ok-1, envs: { live: {} } }
  - { name: ok-2, envs: { live: {} } }
";
const FLEET_PLAN: &str = "version: 1
jobs:
  clear:
    run: env:clear-cache
    on: { sites: ['*'], env: live }
";

fn failing_fleet() -> String {
    let mut world = FLEET_WORLD.replace("time_scale: 0.001", "time_scale: 0.001, fail_workflow_rate: 1.0");
    world = world.replace("  - { name: ok-1, envs: { live: {} } }\n  - { name: ok-2, envs: { live: {} } }\n", "");
    for i in 0..10 {
        world.push_str(&format!("  - {{ name: bad-{i}, envs: {{ live: {{}} }} }}\n"));
    }
    world
}

#[test]
fn off_a_terminal_a_failing_fleet_prints_its_failures_once_grouped_and_how_to_resume() {
    let out = simulated(&failing_fleet(), FLEET_PLAN, &[]).run();
    assert_eq!(out.code, 1, "{}", out.stderr);
    // Live: the start line, a line per failure, the end; no start or success lines.
    assert!(out.stderr.contains(": 10 tasks, estimated "), "{}", out.stderr);
    // Why first, so a narrow terminal keeps it; then the task; then its workflow.
    let why = "failed   workflow clear_cache failed: Simulated failure of clear_cache: clear[bad-";
    assert_eq!(out.stderr.matches(why).count(), 10, "{}", out.stderr);
    assert!(!out.stderr.contains("start "), "{}", out.stderr);
    assert!(out.stderr.contains("run finished: 10/10 done · 10 failed · 0 running"), "{}", out.stderr);
    // After: one group for one cause, where the journal is, and the command that resumes.
    assert!(
        out.stdout.contains("failed     10 tasks: workflow clear_cache failed: Simulated failure of clear_cache"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("journal  .terminus-batch/"), "{}", out.stdout);
    let resume = out.stdout.lines().find_map(|l| l.strip_prefix("resume   ")).expect(&out.stdout);
    assert!(resume.starts_with("terminus-batch apply plan.yml --simulate --world world.yml --resume="), "{resume}");
    assert!(!out.stdout.contains('\x1b'), "no colour off a terminal: {}", out.stdout);
}

#[test]
fn a_successful_run_says_where_its_journal_and_reports_are_and_nothing_of_resuming() {
    let out = simulated(FLEET_WORLD, FLEET_PLAN, &["--report", "json=out.json"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("reports  out.json\n"), "{}", out.stdout);
    assert!(!out.stdout.contains("resume"), "{}", out.stdout);
    assert!(!out.stderr.contains("succeeded clear"), "successes are not listed at the default level: {}", out.stderr);
    // Every task's end at `--status-level pass`, each start at `all`.
    let all = simulated(FLEET_WORLD, FLEET_PLAN, &["--status-level", "all"]).run();
    assert_eq!(all.stderr.matches("succeeded clear[ok-").count(), 2, "{}", all.stderr);
    assert_eq!(all.stderr.matches("start    clear[ok-").count(), 2, "{}", all.stderr);
}

#[test]
fn colour_follows_the_flag_then_no_color_then_the_terminal() {
    let run = |extra: &[&str], no_color: Option<&str>| {
        let mut args = vec!["apply", "plan.yml", "--simulate", "--world", "world.yml"];
        args.extend_from_slice(extra);
        let mut test = Test::new().file("world.yml", &failing_fleet()).file("plan.yml", FLEET_PLAN).args(&args);
        if let Some(value) = no_color {
            test = test.env("NO_COLOR", value);
        }
        let mut command = test.command();
        if no_color.is_none() {
            command.env_remove("NO_COLOR");
        }
        let out = command.output().unwrap();
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let red = "\x1b[31m";
    let (stdout, stderr) = run(&["--color", "always"], Some("1"));
    assert!(stdout.contains(red) && stderr.contains(red), "--color always wins over NO_COLOR:\n{stdout}\n{stderr}");
    let (stdout, stderr) = run(&["--color", "never"], None);
    assert!(!stdout.contains('\x1b') && !stderr.contains('\x1b'), "{stdout}\n{stderr}");
    let (stdout, stderr) = run(&[], None);
    assert!(!stdout.contains('\x1b') && !stderr.contains('\x1b'), "auto: pipes are not terminals:\n{stdout}\n{stderr}");
}

#[test]
fn message_format_json_streams_every_event_on_stdout_and_the_table_on_stderr() {
    let out = simulated(FLEET_WORLD, FLEET_PLAN, &["--message-format", "json"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let events: Vec<serde_json::Value> =
        out.stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    assert_eq!(events.first().unwrap()["event"], "run_started");
    assert_eq!(events.last().unwrap()["event"], "run_finished");
    let finished: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "task_finished").collect();
    assert_eq!(finished.len(), 2);
    assert!(finished.iter().all(|e| e["outcome"]["status"] == "succeeded"), "{}", out.stdout);
    assert!(out.stderr.contains("total"), "the table went to stderr: {}", out.stderr);
}

#[test]
fn runs_are_kept_beside_the_plan_found_from_elsewhere_and_listed_and_shown_again() {
    let t = Test::new().file("ops/world.yml", &failing_fleet()).file("ops/plan.yml", FLEET_PLAN).args(&[
        "apply",
        "ops/plan.yml",
        "--simulate",
        "--world",
        "ops/world.yml",
        "-q",
    ]);
    assert_eq!(t.run().code, 1);
    assert!(t.path().join("ops/.terminus-batch/runs").is_dir(), "the state directory is beside the plan");
    assert!(!t.path().join(".terminus-batch").exists());
    // From another directory, --resume finds that run.
    std::fs::create_dir_all(t.path().join("elsewhere")).unwrap();
    let resumed = Test::new()
        .in_dir(&t.path().join("elsewhere"))
        .args(&["apply", "../ops/plan.yml", "--simulate", "--world", "../ops/world.yml", "--resume"])
        .run();
    assert_eq!(resumed.code, 1, "{}", resumed.stderr);
    assert!(resumed.stderr.contains("resuming run "), "{}", resumed.stderr);
    // Inside a repository, the state directory is the root's, found from anywhere in it.
    std::fs::create_dir_all(t.path().join(".git")).unwrap();
    std::fs::rename(t.path().join("ops/.terminus-batch"), t.path().join(".terminus-batch")).unwrap();
    std::fs::create_dir_all(t.path().join("ops/sub")).unwrap();
    let list = Test::new().in_dir(&t.path().join("ops/sub")).env("COLUMNS", "80").args(&["runs", "list"]).run();
    assert_eq!(list.code, 0, "{}", list.stderr);
    let rows: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(rows.len(), 3, "a header and two runs:\n{}", list.stdout);
    assert!(rows[0].starts_with("run ") && rows[0].ends_with("status"), "{}", list.stdout);
    let first = rows[2].split_whitespace().next().unwrap();
    assert!(rows[1].ends_with(&format!("failed: 10 failed (resumed {first})")), "newest first:\n{}", list.stdout);
    assert!(rows[2].contains("plan.yml") && rows[2].ends_with(" 0/10  failed: 10 failed"), "{}", list.stdout);
    let width = |row: &str| row.chars().count();
    assert!(width(rows[0]) <= 80 && width(rows[2]) <= 80, "80 columns:\n{}", list.stdout);
    // `runs show` renders any report again, from the records alone.
    let show = Test::new()
        .in_dir(t.path())
        .args(&["runs", "show", first, "--state-dir", ".terminus-batch", "--report", "json=again.json"])
        .run();
    assert_eq!(show.code, 0, "{}", show.stderr);
    assert!(show.stdout.starts_with(&format!("run {first} of ")), "{}", show.stdout);
    assert!(show.stdout.contains("failed     10 tasks: workflow clear_cache failed"), "{}", show.stdout);
    let again: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.path().join("again.json")).unwrap()).unwrap();
    assert_eq!(again["run_id"], first);
    assert_eq!(again["totals"]["failed"], 10);
    // A run that died: no result.json, a journal cut short. Shown as far as it got.
    let runs = t.path().join(".terminus-batch/runs");
    let dead = runs.join("20200101T000000Z-dead");
    std::fs::create_dir_all(&dead).unwrap();
    let journal = std::fs::read_to_string(runs.join(first).join("events.jsonl")).unwrap();
    let kept: Vec<&str> = journal.lines().take(6).collect();
    std::fs::write(dead.join("events.jsonl"), kept.join("\n") + "\n").unwrap();
    let show = Test::new()
        .in_dir(t.path())
        .args(&["runs", "show", "20200101T000000Z-dead", "--state-dir", ".terminus-batch"])
        .run();
    assert_eq!(show.code, 0, "{}", show.stderr);
    assert!(show.stdout.contains("no end recorded · unfinished"), "{}", show.stdout);
    let typo = Test::new().in_dir(t.path()).args(&["runs", "show", "nope", "--state-dir", ".terminus-batch"]).run();
    assert_eq!(typo.code, 2, "{}", typo.stderr);
    assert!(typo.stderr.contains("no run `nope` in .terminus-batch"), "{}", typo.stderr);
}

#[test]
fn a_resume_keeps_what_earlier_runs_did_and_runs_again_what_was_redefined() {
    let plan = |days: u32| {
        format!(
            "version: 1
jobs:
  backup:
    run: backup:create
    on: {{ sites: [ok-1, ok-2], env: live }}
    with: {{ keep-for: {days} }}
  clear:
    run: env:clear-cache
    needs: [backup]
    on: {{ sites: [ok-1, ok-2], env: live }}
"
        )
    };
    let t = Test::new().file("world.yml", FLEET_WORLD).file("plan.yml", &plan(30));
    let first = Test::new()
        .in_dir(t.path())
        .args(&["apply", "plan.yml", "--simulate", "--world", "world.yml", "--report", "json=1.json"])
        .run();
    assert_eq!(first.code, 0, "{}", first.stderr);
    let before = crate::support::report(&t, "1.json");
    std::fs::write(t.path().join("plan.yml"), plan(60)).unwrap();
    let second = Test::new()
        .in_dir(t.path())
        .args(&[
            "apply",
            "plan.yml",
            "--simulate",
            "--world",
            "world.yml",
            "--resume",
            "--report",
            "json=2.json",
            "--status-level",
            "all",
        ])
        .run();
    assert_eq!(second.code, 0, "{}", second.stderr);
    let after = crate::support::report(&t, "2.json");
    let task = |report: &serde_json::Value, id: &str| {
        report["tasks"].as_array().unwrap().iter().find(|t| t["id"] == id).unwrap().clone()
    };
    for site in ["ok-1", "ok-2"] {
        // Unchanged: carried over with the first run's record, and never started again.
        let id = format!("clear[{site}.live]");
        let (then, now) = (task(&before, &id), task(&after, &id));
        assert_eq!(now["run_id"], before["run_id"], "{now}");
        for field in ["started_at", "finished_at", "duration_ms", "workflow_ids", "attempts", "message"] {
            assert_eq!(now[field], then[field], "{field} of {id}");
        }
        assert!(!now["workflow_ids"].as_array().unwrap().is_empty());
        assert!(!second.stderr.contains(&format!("start    {id}")), "{}", second.stderr);
        // Redefined (keep-for changed): run again by this run, saying why.
        let id = format!("backup[{site}.live]");
        let now = task(&after, &id);
        assert_eq!(now["run_id"], after["run_id"], "{now}");
        let why = format!("run again, its options changed since run {}: ", before["run_id"].as_str().unwrap());
        assert!(now["message"].as_str().unwrap().starts_with(&why), "{now}");
        assert!(second.stderr.contains(&format!("start    {id}")), "{}", second.stderr);
    }
    let carried =
        format!("2 tasks were done by an earlier run ({}) and not run again", before["run_id"].as_str().unwrap());
    assert!(second.stdout.contains(&carried), "{}", second.stdout);
}

#[test]
fn plan_shows_options_and_counts_like_terraform_with_refresh() {
    let plan = "version: 1
jobs:
  backup:
    run: backup:create
    on: { sites: [s1, s2], env: live }
    with: { keep-for: 30, element: database }
  deploy:
    run: env:deploy
    on: { sites: [s1, s2], env: test }
    with: { note: 'Release ${{ run.id }}: fixes, \"quoted\"' }
  wipe:
    run: env:wipe
    on: { sites: [s1], env: dev }
";
    let world = "user: { email: a@b.example }
sites:
  - { name: s1, envs: { test: { deployable: 1 }, dev: {}, live: {} } }
  - { name: s2, envs: { test: { deployable: 0 }, dev: {}, live: {} } }
";
    let t = Test::new().file("plan.yml", plan).file("world.yml", world);
    let out = Test::new().in_dir(t.path()).args(&["plan", "plan.yml", "--simulate", "--world", "world.yml"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("backup · backup:create · 2 tasks\n  with { element: database, keep-for: 30 }\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(r#"  with { note: "Release ${{ run.id }}: fixes, \"quoted\"" }"#),
        "texts are quoted, references kept: {}",
        out.stdout
    );
    assert!(out.stdout.contains("  ! wipe[s1.dev]"), "{}", out.stdout);
    assert!(!out.stdout.contains("Plan: "), "counts need previews: {}", out.stdout);
    let refreshed = Test::new()
        .in_dir(t.path())
        .args(&["plan", "plan.yml", "--simulate", "--world", "world.yml", "--refresh"])
        .run();
    assert_eq!(refreshed.code, 0, "{}", refreshed.stderr);
    let text = &refreshed.stdout;
    insta::assert_snapshot!("plan_with_refresh", text);
    // s2's test environment has nothing to deploy.
    assert!(text.contains("  = deploy[s2.test]  — unchanged: "), "{text}");
    assert!(text.contains("Plan: 4 to change, 1 unchanged, 1 destructive."), "{text}");
    assert!(text.contains("; 4 workflows would start;"), "unchanged tasks start no workflow: {text}");
    // JSON speaks the plan's language.
    let json = Test::new()
        .in_dir(t.path())
        .args(&["plan", "plan.yml", "--simulate", "--world", "world.yml", "--format", "json"])
        .run();
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let task = &doc["tasks"][0];
    assert_eq!(task["operation"], "backup:create");
    assert_eq!(task["with"], serde_json::json!({ "element": "database", "keep-for": "30" }));
    assert!(task.get("spec").is_none(), "{task}");
}

#[test]
fn the_job_level_graph_reads_at_fleet_size() {
    let path = crate::support::repo().join("examples/weekly-release.yml");
    let out = Test::new()
        .args(&["graph", path.to_str().unwrap(), "--simulate", "--level", "jobs", "--format", "mermaid"])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Four job nodes and three job edges stand for 88 tasks and 66 task edges.
    assert_eq!(out.stdout.lines().filter(|l| l.contains("[\"")).count(), 4, "{}", out.stdout);
    assert!(out.stdout.contains("j1[\"deploy-test<br/>env:deploy · 22 tasks\"]"), "{}", out.stdout);
    assert!(out.stdout.contains("j1 -->|22| j2"), "{}", out.stdout);
    assert_eq!(out.stdout.matches("-->").count(), 3, "{}", out.stdout);
}

/// Issue 39, item 9: a reviewer without credentials draws the jobs and their needs; the task
/// counts wait for a run that resolves the targets.
#[test]
fn the_job_level_graph_needs_no_login() {
    let path = crate::support::repo().join("examples/weekly-release.yml");
    let out = Test::new().args(&["graph", path.to_str().unwrap(), "--level", "jobs", "--format", "mermaid"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("the targets are not resolved"), "{}", out.stderr);
    assert!(out.stdout.contains("j1[\"deploy-test<br/>env:deploy · tasks once resolved\"]"), "{}", out.stdout);
    assert_eq!(out.stdout.matches("-->").count(), 3, "{}", out.stdout);
    let json = Test::new().args(&["graph", path.to_str().unwrap(), "--level", "jobs", "--format", "json"]).run();
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(doc["jobs"][0]["tasks"].is_null() && doc["edges"][0]["task_edges"].is_null(), "{doc}");
    // The task-level graph still needs the targets, and says so.
    let tasks = Test::new().args(&["graph", path.to_str().unwrap()]).run();
    assert_eq!(tasks.code, 2, "{}", tasks.stderr);
    assert!(tasks.stderr.contains("cannot resolve the plan's targets"), "{}", tasks.stderr);
}

/// Issue 39, item 7: several reports in one `--report`, and never a file named after a typo.
#[test]
fn several_reports_in_one_flag_and_never_a_file_named_after_a_typo() {
    let t = Test::new();
    let out = Test::new()
        .in_dir(t.path())
        .args(&["run", "env:clear-cache", "--on", "acme-web.dev", "--simulate", "-q"])
        .args(&["--report", "html=a.html,md=b.md"])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(t.path().join("a.html").is_file() && t.path().join("b.md").is_file());
    let typo = Test::new()
        .in_dir(t.path())
        .args(&["run", "env:clear-cache", "--on", "acme-web.dev", "--simulate", "-q"])
        .args(&["--report", "html=c.html,mdd=d.md"])
        .run();
    assert_eq!(typo.code, 2, "{}", typo.stderr);
    assert!(typo.stderr.contains("pass one --report per file"), "{}", typo.stderr);
    let names: Vec<String> =
        std::fs::read_dir(t.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!names.iter().any(|n| n.contains("mdd=") || n.starts_with("c.html")), "{names:?}");
}

/// Issue 39, item 10: a fleet to rehearse on without writing a script.
#[test]
fn simulate_world_makes_a_fleet_to_rehearse_a_release_on() {
    let made = Test::new().args(&["simulate", "world", "--sites", "300", "--fail-workflow-rate", "0.12"]).run();
    assert_eq!(made.code, 0, "{}", made.stderr);
    assert_eq!(made.stdout.lines().filter(|l| l.starts_with("  - { name: fleet-")).count(), 300);
    let plan = "version: 1\nsettings: { concurrency: 50 }\njobs:\n  deploy:\n    run: env:deploy\n    on: { sites: { org: fleet }, env: test }\n";
    let t = Test::new().file("world.yml", &made.stdout).file("plan.yml", plan);
    let out = Test::new()
        .in_dir(t.path())
        .args(&["apply", "plan.yml", "--simulate", "--world", "world.yml", "-q", "--report", "json=r.json"])
        .run();
    let report = crate::support::report(&t, "r.json");
    assert_eq!(report["totals"]["tasks"], 300, "{}", out.stderr);
    let failed = report["totals"]["failed"].as_u64().unwrap();
    assert!(failed > 0 && failed < 100, "about 12 % of 300 fail: {failed}");
    assert_eq!(out.code, 1, "{}", out.stderr);
    let bad = Test::new().args(&["simulate", "world", "--org", "Fleet: x"]).run();
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("machine name"), "{}", bad.stderr);
}

/// `runs list` on a wide terminal that does not export `COLUMNS` (a shell's default) gives
/// the plan its full width: the terminal's own size is asked.
#[test]
fn runs_list_takes_a_wide_terminals_width_without_columns() {
    let script = crate::support::tools::needs!(Script);
    let name = "a-plan-whose-name-is-longer-than-twenty-two-characters.yml";
    let t = Test::new()
        .file(name, "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: [acme-web], env: dev }\n");
    let out = Test::new().in_dir(t.path()).args(&["apply", name, "--simulate", "-q"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let bin = env!("CARGO_BIN_EXE_terminus-batch");
    let listed = std::process::Command::new(script)
        .args(["-qec", &format!("stty rows 40 cols 200; exec {bin} runs list"), "/dev/null"])
        .current_dir(t.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", t.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(text.contains(name) && !text.contains('…'), "uncut at 200 columns: {text}");
}

#[test]
fn read_only_operations_print_what_they_read() {
    let out = Test::new().args(&["run", "org:list", "--simulate"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "org-list");
    assert!(lines[1].split_whitespace().eq(["id", "label", "name", "role"]), "{}", out.stdout);
    assert!(out.stdout.contains("Acme Agency"), "{}", out.stdout);
    assert!(out.stdout.contains("total "), "the table follows: {}", out.stdout);
    // For scripts: one JSON object by task id on stdout; the table goes to stderr.
    let json =
        Test::new().args(&["run", "domain:list", "--on", "acme-web.live", "--simulate", "--format", "json"]).run();
    assert_eq!(json.code, 0, "{}", json.stderr);
    let data: serde_json::Value = serde_json::from_str(&json.stdout).unwrap_or_else(|e| panic!("{e}: {}", json.stdout));
    let domains = data["domain-list[acme-web.live]"].as_array().unwrap();
    assert!(domains.iter().any(|d| d["domain"] == "www.acme-web.example"), "{data}");
    assert!(json.stderr.contains("total "), "{}", json.stderr);
}

#[test]
fn stdout_takes_one_stream() {
    let out = Test::new().args(&["run", "org:list", "--simulate", "--format", "json", "--report", "json=-"]).run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("stdout can take one of"), "{}", out.stderr);
    assert!(!out.stderr.contains("run "), "refused before any run: {}", out.stderr);
}

/// Every workflow POST answered 503 on a 40-site cache clear, with a second job that needs
/// the first: one cause per line under `-q`, one row per cause in Markdown, one message in
/// `JUnit`, and the cause as data in the JSON report (issue: causes are text).
#[test]
fn a_fleet_wide_refusal_is_one_cause_everywhere() {
    let mut world = "simulator:\n  time_scale: 0.001\n  faults:\n    - { method: POST, route: \"sites/{site}/environments/{env}/workflows\", status: 503, times: 100000 }\nuser: { email: t@example.com }\norgs: [{ name: o }]\nsites:\n".to_owned();
    for i in 0..40 {
        world.push_str(&format!("  - {{ name: site-{i:02}, org: o }}\n"));
    }
    let plan = "version: 1\njobs:\n  clear:\n    run: env:clear-cache\n    on: { sites: { org: o }, env: live }\n  after:\n    run: env:clear-cache\n    needs: [clear]\n    on: { sites: { org: o }, env: test }\n";
    let t = simulated(
        &world,
        plan,
        &["-q", "--report", "json=r.json", "--report", "markdown=r.md", "--report", "junit=r.xml"],
    );
    let out = t.run();
    assert_eq!(out.code, 1, "{}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 4, "a line per cause, the status, the resume command:\n{}", out.stderr);
    assert!(
        lines[0].starts_with(
            "failed 40 tasks: HTTP 503 Service Unavailable on POST /api/sites/{site}/environments/{env}/workflows"
        ),
        "{}",
        out.stderr
    );
    assert!(lines[1].starts_with("skipped 40 tasks: a task it needs failed ("), "{}", out.stderr);
    let md = std::fs::read_to_string(t.path().join("r.md")).unwrap();
    for text in [&out.stderr, &md] {
        let paths = text.matches("/api/sites/").count();
        assert_eq!(paths, text.matches("/api/sites/{site}").count(), "no site's UUID: {text}");
    }
    let rows = md.lines().filter(|l| l.starts_with("| 40 tasks: ")).count();
    assert_eq!(rows, 2, "{md}");
    let junit = std::fs::read_to_string(t.path().join("r.xml")).unwrap();
    let messages: std::collections::BTreeSet<&str> =
        junit.lines().filter_map(|l| l.trim().strip_prefix("<failure message=\"")).collect();
    assert_eq!(messages.len(), 1, "{junit}");
    assert!(junit.contains("type=\"http\""), "{junit}");
    let json = crate::support::report(&t, "r.json");
    let tasks = json["tasks"].as_array().unwrap();
    let first = &tasks[0]["cause"];
    assert_eq!(first["kind"], "http");
    assert_eq!(first["status"], 503);
    assert_eq!(first["request"], "POST /api/sites/{site}/environments/{env}/workflows");
    assert!(tasks.iter().filter(|t| t["job"] == "clear").all(|t| t["cause"] == *first));
    let need = tasks.iter().find(|t| t["job"] == "after").unwrap();
    assert_eq!(need["cause"]["kind"], "need");
    assert_eq!(need["cause"]["ended"], "failed");
}

/// A task held past twice its expectation is marked slow as it runs (a line, as nextest's
/// SLOW) and counted in the report; the workflow is held until the test has seen the mark.
#[test]
fn a_task_running_past_twice_its_expectation_is_marked_slow_and_counted() {
    let world = "simulator:\n  time_scale: 0.001\n  hold: { until: release, types: [clear_cache] }\nuser: { email: t@example.com }\norgs: [{ name: o }]\nsites:\n  - { name: s1, org: o }\n";
    let plan = "version: 1\njobs:\n  clear:\n    run: env:clear-cache\n    on: { sites: [s1], env: live }\n";
    let t = simulated(world, plan, &["--report", "json=out.json", "--report", "markdown=out.md"]);
    let mut child =
        t.command().stderr(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let mut line = String::new();
    while std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() > 0 {
        seen.push_str(&line);
        if line.contains("slow") {
            break;
        }
        line.clear();
    }
    assert!(
        line.contains("slow     clear[s1.live]: running more than twice its expected 30ms"),
        "the plan's 30 s estimate on the simulator's clock:\n{seen}"
    );
    std::fs::write(t.path().join("release"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{seen}{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("slow: 1 task ran more than twice as long as expected: clear[s1.live]"), "{stdout}");
    let json = crate::support::report(&t, "out.json");
    assert_eq!(json["totals"]["slow"], 1, "{json}");
    assert_eq!(json["tasks"][0]["slow_after_ms"], 30);
    assert_eq!(json["tasks"][0]["status"], "succeeded");
    let md = std::fs::read_to_string(t.path().join("out.md")).unwrap();
    assert!(md.contains("slow: 1 task ran more than twice as long as expected"), "{md}");
}

#[test]
fn plan_forecasts_a_range_and_says_its_basis_cold_then_from_the_teams_history() {
    let plan =
        "version: 1\njobs:\n  clear:\n    run: env:clear-cache\n    on: { sites: [acme-web, acme-blog], env: live }\n";
    let t = Test::new().file("plan.yml", plan);
    let plan_line = || {
        let out = Test::new().in_dir(t.path()).args(&["plan", "plan.yml", "--simulate"]).run();
        assert_eq!(out.code, 0, "{}", out.stderr);
        out.stdout.lines().last().unwrap_or_default().to_owned()
    };
    let cold = plan_line();
    assert!(
        cold.contains(" on the simulator's clock at concurrency 10, no history of these operations on this platform"),
        "{cold}"
    );
    assert!(cold.contains("Estimated ") && cold.contains('–'), "a range: {cold}");
    let applied = Test::new().in_dir(t.path()).args(&["apply", "plan.yml", "--simulate", "--yes", "-q"]).run();
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    let warm = plan_line();
    assert!(warm.ends_with("from 2 env:clear-cache in 1 run of the last 30 days."), "{warm}");
    // Another world is another platform: its history is not this one's.
    let world = "user: { email: a@example.com }\norgs: [{ name: o }]\nsites:\n  - { name: acme-web, org: o }\n  - { name: acme-blog, org: o }\n";
    std::fs::write(t.path().join("world.yml"), world).unwrap();
    let other = Test::new().in_dir(t.path()).args(&["plan", "plan.yml", "--simulate", "--world", "world.yml"]).run();
    assert!(other.stdout.contains("no history of these operations"), "{}", other.stdout);
}
