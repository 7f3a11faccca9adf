//! Issue 16: exactly what terminus would do, operation by operation, where the tool had
//! drifted from it.

use crate::support::Test;

/// Applies `plan` quietly against the simulator holding `world`, expects it to end with some
/// task failed (exit 1), and returns the directory and the JSON report.
fn apply_failing(world: &str, plan: &str) -> (Test, serde_json::Value) {
    let t = Test::new().file("world.yml", world).file("plan.yml", plan);
    let out = Test::new()
        .in_dir(t.path())
        .args(&["apply", "plan.yml", "--simulate", "--world", "world.yml", "--report", "json=out.json", "-q"])
        .run();
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = crate::support::report(&t, "out.json");
    (t, report)
}

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
fn a_frozen_site_refuses_terminus_s_twelve_operations_before_any_request() {
    let world = "simulator: { time_scale: 0.001 }\nuser: { email: a@b.example }\nsites:\n  - { name: cold, frozen: true, envs: { test: { deployable: 1 } } }\n";
    // One job per operation: (job, operation, environment, options).
    let jobs = [
        ("deploy", "env:deploy", "test", ""),
        ("clear", "env:clear-cache", "dev", ""),
        ("info", "env:info", "dev", ""),
        ("seed", "env:rotate-random-seed", "dev", ""),
        ("rebuild", "env:code-rebuild", "dev", ""),
        ("domain", "domain:add", "dev", "{ domain: shop.example }"),
        ("status", "remote:drush", "dev", "{ command: [status] }"),
    ];
    let mut plan = "version: 1\njobs:\n".to_owned();
    for (job, operation, env, with) in jobs {
        plan.push_str(&format!("  {job}:\n    run: {operation}\n    on: {{ sites: [cold], env: {env} }}\n"));
        if !with.is_empty() {
            plan.push_str(&format!("    with: {with}\n"));
        }
    }
    let (t, report) = apply_failing(world, &plan);
    let frozen = "This site is frozen. Its test and live environments and many commands will be unavailable while it remains frozen.";
    for task in report["tasks"].as_array().unwrap() {
        let refused = task["job"] != "domain";
        if task["job"] == "status" {
            // terminus does not check; the run says so before ssh (issue 37, item 7).
            assert_eq!(task["status"], "failed", "{task}");
            assert_eq!(task["message"], tb_plan::plan::ops::FROZEN_REMOTE_MESSAGE, "{task}");
            assert!(task["data"].is_null(), "ssh never ran: {task}");
        } else if refused {
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
    assert_eq!(refresh.stdout.matches("would fail: This site is frozen.").count(), 5, "{}", refresh.stdout);
    assert_eq!(
        refresh.stdout.matches("would fail: the site is frozen: its environments serve no SSH").count(),
        1,
        "{}",
        refresh.stdout
    );
    assert!(tb_plan::plan::ops::OperationKind::EnvWipe.refused_when_frozen());
}

/// `backup:automatic:enable` sends terminus's schedule (daily backups kept 8 days, the
/// weekly one kept `keep-for` days on the day asked), a schedule already in place is
/// `unchanged`, and `backup:automatic:disable` deletes each day, Sunday to Saturday.
#[test]
fn automatic_backups_are_scheduled_as_terminus_schedules_them_and_only_once() {
    use crate::support::sim::Served;
    let served = Served::new(tb_simulator::Knobs { time_scale: 0.001, ..Default::default() });
    let run = |args: &[&str]| {
        let out = served
            .test()
            .env("TERMINUS_MACHINE_TOKEN", "simulated-machine-token")
            .args(args)
            .args(&["--yes", "--report", "json=-", "-q"])
            .run();
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        report["tasks"][0].clone()
    };
    let enable =
        ["run", "backup:automatic:enable", "--on", "acme-web.live", "--with", "day=mon", "--with", "keep-for=30"];
    let first = run(&enable);
    assert_eq!(first["status"], "succeeded", "{first}");
    assert!(first["message"].as_str().unwrap().contains("weekly on monday"), "{first}");
    let again = run(&enable);
    assert_eq!(again["status"], "unchanged", "already in place: {again}");
    let disable = ["run", "backup:automatic:disable", "--on", "acme-web.live"];
    assert_eq!(run(&disable)["status"], "succeeded");
    assert_eq!(run(&disable)["status"], "unchanged", "nothing left to cancel");
    let requests = served.requests();
    let post = requests
        .iter()
        .find(|r| r.method == "POST" && r.body.as_ref().is_some_and(|b| b["type"] == "change_backup_schedule"))
        .expect("a change_backup_schedule workflow");
    let schedule = &post.body.as_ref().unwrap()["params"]["backup_schedule"];
    for day in 0..7 {
        let ttl = if day == 1 { 30 * 86_400 } else { 8 * 86_400 };
        assert_eq!(schedule[day.to_string()], serde_json::json!({ "hour": null, "ttl": ttl }), "day {day}");
    }
    let deletes: Vec<&str> = requests.iter().filter(|r| r.method == "DELETE").map(|r| r.path.as_str()).collect();
    assert_eq!(deletes.len(), 7, "{deletes:?}");
    for (day, path) in deletes.iter().enumerate() {
        assert!(path.ends_with(&format!("/environments/live/backups/schedule/{day}")), "{path}");
    }
}

/// `site:upstream:set` finds the upstream among the user's by machine name (or id, product
/// id, label), starts `switch_upstream` with its id, and is `unchanged` once the site is on
/// it; an unknown upstream fails with terminus's message before any workflow.
#[test]
fn a_site_switches_upstream_once_by_any_name_terminus_accepts() {
    use crate::support::sim::Served;
    let served = Served::new(tb_simulator::Knobs { time_scale: 0.001, ..Default::default() });
    let run = |upstream: &str| {
        let out = served
            .test()
            .env("TERMINUS_MACHINE_TOKEN", "simulated-machine-token")
            .args(&["run", "site:upstream:set", "--on", "acme-web", "--with", &format!("upstream={upstream}")])
            .args(&["--yes", "--report", "json=-", "-q"])
            .run();
        let report: serde_json::Value =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stderr));
        report["tasks"][0].clone()
    };
    let switched = run("drupal-10-composer-managed");
    assert_eq!(switched["status"], "succeeded", "{switched}");
    assert_eq!(switched["message"], "Set upstream for acme-web to Drupal 10 Composer Managed");
    assert_eq!(run("Drupal 10 Composer Managed")["status"], "unchanged", "by its label, already on it");
    let unknown = run("drupal-11-nope");
    assert_eq!(unknown["status"], "failed");
    assert_eq!(unknown["message"], "Could not find an upstream identified by drupal-11-nope.");
    let posts: Vec<serde_json::Value> = served
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/workflows"))
        .filter_map(|r| r.body)
        .collect();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0]["type"], "switch_upstream");
    let id = posts[0]["params"]["upstream_id"].as_str().unwrap();
    assert_eq!(id.len(), 36, "the upstream's id, never its name: {id}");
}

/// `workflow:wait` follows a workflow the platform (a teammate, a git push) started on the
/// environment, and succeeds when it does; with none to be found within `max` it fails,
/// where terminus only warns and exits 0.
#[test]
fn workflow_wait_follows_a_workflow_someone_else_started() {
    use crate::support::sim::{Served, world};
    let text = "simulator: { workflow_durations: { deploy: 30 } }
user: { email: a@b.example }
sites:
  - { name: site-000, envs: { test: { deployable: 1 } } }
";
    // The first cache clear fails; a newer one succeeds.
    let fail_first = tb_simulator::FaultRule {
        workflow_type: Some("clear_cache".into()),
        fail_workflow: Some("Simulated: the cache is locked".into()),
        times: 1,
        ..Default::default()
    };
    let knobs = tb_simulator::Knobs { time_scale: 0.001, faults: vec![fail_first], ..Default::default() };
    let served = Served::with_world(&world(text), knobs);
    let started = served.start_deploy_like_a_lost_post("Deploy by a teammate");
    let clear = tb_operations::api::workflows::WorkflowType::ClearCache;
    let _failed = served.start_like_a_lost_post(clear, serde_json::json!({ "framework_cache": true }));
    let newer = served.start_like_a_lost_post(clear, serde_json::json!({ "framework_cache": true }));
    let wait = |with: &[&str]| {
        let mut args = vec!["run", "workflow:wait", "--on", "site-000.test"];
        for w in with {
            args.extend(["--with", w]);
        }
        args.extend(["--yes", "--report", "json=-", "-q"]);
        let out = served.test().env("TERMINUS_MACHINE_TOKEN", "simulated-machine-token").args(&args).run();
        let report: serde_json::Value =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stderr));
        (out.code, report["tasks"][0].clone())
    };
    let (code, task) = wait(&["type=deploy"]);
    assert_eq!(code, 0, "{task}");
    assert_eq!(task["status"], "unchanged", "a wait changes nothing: {task}");
    assert!(task["message"].as_str().unwrap().starts_with(&format!("workflow {started} ")), "{task}");
    assert_eq!(task["data"]["result"], "succeeded", "{task}");
    assert_eq!(task["workflow_ids"], serde_json::json!([started]), "{task}");
    // The newest match decides, as terminus takes it: the later clear succeeded.
    let (code, task) = wait(&["type=clear_cache"]);
    assert_eq!(code, 0, "{task}");
    assert_eq!(task["workflow_ids"], serde_json::json!([newer]), "{task}");
    let (code, task) = wait(&["type=sync_code", "max=1"]);
    assert_eq!(code, 1, "{task}");
    assert_eq!(task["status"], "failed");
    assert_eq!(task["message"], "no workflow of type sync_code on site-000.test finished within 1s");
    // Nothing was started by the waits.
    let posts = served.requests().into_iter().filter(|r| r.method == "POST" && r.path.ends_with("/workflows")).count();
    assert_eq!(posts, 3, "only the teammate's deploy and cache clears");
}

/// `remote:drush` and `remote:wp` run through the system's OpenSSH client against the
/// simulator's SSH endpoint: the remote exit code decides, the output goes to the report,
/// a failing command fails its task only, and commands that open a shell or come as a
/// shell string are refused before anything runs.
#[test]
fn remote_commands_run_over_ssh_and_their_exit_code_decides() {
    crate::support::tools::needs!(Ssh);
    let world = "simulator: { time_scale: 0.001 }
user: { email: a@b.example }
sites:
  - { name: good, framework: drupal10, envs: { live: {} } }
  - { name: broken, framework: drupal10, remote_fails: true, envs: { live: {} } }
  - { name: blog, envs: { live: {} } }
";
    let plan = "version: 1
jobs:
  updb:
    run: remote:drush
    on: { sites: [good, broken], env: live }
    with: { command: [updb, -y], output: report }
  cr:
    run: remote:drush
    needs: [updb]
    on: { sites: [good, broken], env: live }
    with: { command: [cr] }
  flush:
    run: remote:wp
    on: { sites: [blog], env: live }
    with: { command: [cache, flush] }
";
    let (t, report) = apply_failing(world, plan);
    let task = |id: &str| report["tasks"].as_array().unwrap().iter().find(|t| t["id"] == id).unwrap().clone();
    let good = task("updb[good.live]");
    assert_eq!(good["status"], "succeeded", "{good}");
    assert_eq!(good["message"], "`drush updb -y`: [success] No pending updates.");
    assert_eq!(good["data"]["exit_code"], 0);
    assert!(good["data"]["stdout"].as_str().unwrap().contains("No pending updates"), "{good}");
    assert_eq!(task("cr[good.live]")["status"], "succeeded");
    let broken = task("updb[broken.live]");
    assert_eq!(broken["status"], "failed", "{broken}");
    assert_eq!(broken["message"], "`drush updb -y` exited with 1: [error] Simulated failure on broken.");
    assert_eq!(task("cr[broken.live]")["status"], "skipped", "its need failed");
    let flush = task("flush[blog.live]");
    // By default the files keep no output: the message says how much there was.
    assert_eq!(flush["message"], "`wp cache flush` succeeded (32 bytes of output)", "{flush}");
    assert!(flush["data"]["stdout"].is_null() && flush["data"]["stdout_bytes"] == 32, "{flush}");
    // The HTML report folds each command's output under its message.
    let html = Test::new().in_dir(t.path()).args(&["runs", "show", "--report", "html=out.html"]).run();
    assert_eq!(html.code, 0, "{}", html.stderr);
    let page = std::fs::read_to_string(t.path().join("out.html")).unwrap();
    assert!(
        page.contains("<details><summary>stdout</summary><pre> [success] No pending updates."),
        "the output is in the page"
    );
    // Refused before any run: a shell, and a shell string.
    let refused = "version: 1
jobs:
  shell:
    run: remote:drush
    on: { sites: [good], env: live }
    with: { command: [sql:cli] }
  string:
    run: remote:wp
    on: { sites: [blog], env: live }
    with: { command: \"cache flush\" }
";
    let bad = Test::new().file("bad.yml", refused).args(&["validate", "bad.yml"]).run();
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("`sql:cli` opens an interactive shell"), "{}", bad.stderr);
    assert!(bad.stderr.contains("expected a list of words, found a string"), "{}", bad.stderr);
    assert!(bad.stderr.contains("never a shell string: `command: [updb, -y]`"), "{}", bad.stderr);
}

/// A connection that fails before the remote command ran is tried again; the command runs
/// once. With more failures than tries, the task fails saying it could not connect.
#[test]
fn a_dropped_ssh_connection_is_tried_again_and_the_command_runs_once() {
    crate::support::tools::needs!(Ssh);
    let world = |drops: u32| {
        format!(
            "simulator: {{ time_scale: 0.001, ssh_drops: {drops} }}\nuser: {{ email: a@b.example }}\nsites:\n  - {{ name: s1, envs: {{ live: {{}} }} }}\n"
        )
    };
    let run = |drops: u32| {
        let t = Test::new().file("world.yml", &world(drops));
        let out = Test::new()
            .in_dir(t.path())
            .args(&[
                "run",
                "remote:drush",
                "--on",
                "s1.live",
                "--with",
                "command=[cr]",
                "--with",
                "output=report",
                "--simulate",
                "--world",
                "world.yml",
            ])
            .args(&["--report", "json=-", "-q"])
            .run();
        let report: serde_json::Value =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stderr));
        (out.code, report["tasks"][0].clone())
    };
    let (code, task) = run(2);
    assert_eq!(code, 0, "two drops, three tries: {task}");
    assert_eq!(task["message"], "`drush cr`: [success] Cache rebuild complete.");
    let (code, task) = run(3);
    assert_eq!(code, 1, "{task}");
    assert!(task["message"].as_str().unwrap().starts_with("cannot reach appserver.live."), "{task}");
}

/// `https:remove` reads the environment's settings first, as terminus does: HTTPS off is
/// nothing to remove (`unchanged`, no workflow), and a removal is not repeated.
#[test]
fn https_remove_reads_the_settings_and_removes_only_what_is_there() {
    use crate::support::sim::{Served, world};
    let text = "user: { email: a@b.example }\nsites:\n  - { name: s1, envs: { live: {}, test: { https: false } } }\n";
    let served = Served::with_world(&world(text), tb_simulator::Knobs { time_scale: 0.001, ..Default::default() });
    let remove = |target: &str| {
        let out = served
            .test()
            .env("TERMINUS_MACHINE_TOKEN", "simulated-machine-token")
            .args(&["run", "https:remove", "--on", target, "--yes", "--allow-destructive", "--report", "json=-", "-q"])
            .run();
        let report: serde_json::Value =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stderr));
        (out.code, report["tasks"][0].clone())
    };
    let (code, task) = remove("s1.test");
    assert_eq!((code, task["status"].as_str()), (0, Some("unchanged")), "{task}");
    assert_eq!(task["message"], "HTTPS is not enabled on s1.test: nothing to remove");
    let (code, task) = remove("s1.live");
    assert_eq!((code, task["status"].as_str()), (0, Some("succeeded")), "{task}");
    let (code, task) = remove("s1.live");
    assert_eq!((code, task["status"].as_str()), (0, Some("unchanged")), "removed already: {task}");
    let stats = served.stop();
    assert_eq!(stats.workflows_total, 1, "{:?}", stats.workflows_started);
    assert!(stats.requests.contains_key("GET sites/{site}/environments/{env}/settings"), "{:?}", stats.requests.keys());
}

/// Issue 37, item 5: every execution of a remote command is an attempt. With sessions cut
/// after the command printed (it ran; its end never arrived), an `idempotent: true` job with
/// `retries: { attempts: 2 }` runs the command exactly twice, each time on record first, and
/// the report says 2 attempts; the connection-level retry runs nothing again (it is only for
/// connections that provably ran nothing).
#[test]
fn an_idempotent_command_run_again_counts_each_run_as_an_attempt_within_retries() {
    crate::support::tools::needs!(Ssh);
    let world = "simulator: { time_scale: 0.001, ssh_cut_after_output: 100 }\nuser: { email: a@b.example }\nsites:\n  - { name: s1, envs: { live: {} } }\n";
    let plan = "version: 1\njobs:\n  cr:\n    run: remote:drush\n    on: { sites: [s1], env: live }\n    with: { command: [cr], idempotent: true }\n    retries: { attempts: 2, backoff: 1s }\n";
    let t = Test::new().file("world.yml", world).file("plan.yml", plan);
    let out = Test::new()
        .in_dir(t.path())
        .args(&["apply", "plan.yml", "--simulate", "--world", "world.yml", "--yes", "--report", "json=-", "-q"])
        .run();
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stderr));
    let task = &report["tasks"][0];
    assert_eq!(out.code, 1, "{task}");
    assert!(task["message"].as_str().unwrap().contains("may have run"), "{task}");
    assert_eq!(task["attempts"], 2, "{task}");
    assert_eq!(report["simulator"]["remote_commands"], 2, "ran exactly as many times as attempted: {task}");
    let runs = t.path().join(".terminus-batch/runs");
    let run = std::fs::read_dir(&runs).unwrap().next().unwrap().unwrap().path();
    let journal = std::fs::read_to_string(run.join("events.jsonl")).unwrap();
    assert_eq!(journal.matches("\"attempt_starting\"").count(), 2, "each run on record first: {journal}");
}
