//! Issue 25: remote commands meet app servers as a real run does. A first connection to an
//! app server records its host key (`accept-new`); a changed key fails, naming host keys and
//! the file; the rehearsal takes the same path, only connecting elsewhere.

use std::collections::BTreeMap;

use tb_operations::api::workflows::Poller;
use tb_operations::remote::SshRoute;
use tb_operations::{Ops, Target};
use tb_plan::plan::ops::OperationSpec;

use crate::support::sim::{builtin, fast, start};

use crate::support::Quiet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_app_servers_key_is_recorded_and_a_changed_one_refuses_the_command() {
    crate::support::tools::needs!(Ssh);
    let (sim, client) = start(&builtin(), fast(0.001)).await;
    let route = SshRoute { config: sim.ssh().config.clone(), known_hosts: sim.ssh().known_hosts.clone() };
    let site_id = client.site_id("acme-shop").await.unwrap().unwrap();
    let (poller, driver) = Poller::new(client.clone());
    let ops = Ops::new(client, poller, "r1".into(), BTreeMap::new()).with_ssh_route(Some(route.clone()));
    let target = Target { site: "acme-shop".into(), site_id: site_id.clone(), env: Some("live".into()) };
    let op = OperationSpec::RemoteDrush {
        command: vec!["cr".into()],
        timeout_secs: 60,
        keep_output: false,
        idempotent: false,
    };
    let work = async {
        let host = format!("appserver.live.{site_id}.drush.in");
        let file = route.known_hosts.join(&host);
        assert!(!file.exists(), "no key recorded yet");
        let first = ops.perform(&op, &target, "cr[acme-shop.live]", &Quiet).await;
        assert!(first.is_ok(), "a new app server's key is accepted: {first:?}");
        let recorded = std::fs::read_to_string(&file).unwrap();
        assert!(recorded.contains("ssh-ed25519"), "recorded for the app server's name: {recorded}");
        // The same host with another key, as if the platform's key changed.
        let other = russh::keys::PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519).unwrap();
        let other = other.public_key().to_openssh().unwrap();
        let name = recorded.split_whitespace().next().unwrap().to_owned();
        std::fs::write(&file, format!("{name} {other}\n")).unwrap();
        let second = ops.perform(&op, &target, "cr[acme-shop.live]", &Quiet).await.unwrap_err();
        assert!(second.message.contains("host key") && second.message.contains(&host), "{second:?}");
        assert!(second.message.contains(&file.display().to_string()), "names the file: {second:?}");
        assert_eq!(second.class, tb_core::cause::ErrorClass::Permanent, "not tried again: {second:?}");
        drop(ops);
    };
    let ((), ()) = tokio::join!(work, driver.drive());
    let stats = sim.stop().await;
    let _ = stats;
}

#[test]
fn a_missing_environment_fails_before_ssh_and_git_mode_is_said() {
    crate::support::tools::needs!(Ssh);
    let world = "user: { email: ops@example.com }\norgs: [{ name: o }]\nsites:\n  - { name: s1, org: o, framework: drupal10, envs: { dev: { connection: git }, live: {} } }\n";
    let t = crate::support::Test::new().file("world.yml", world);
    let run = |target: &str| {
        crate::support::Test::new()
            .in_dir(t.path())
            .args(&[
                "run",
                "remote:drush",
                "--on",
                target,
                "--with",
                "command=[cr]",
                "--simulate",
                "--world",
                "world.yml",
            ])
            .args(&["--yes", "--report", "json=-", "-q"])
            .run()
    };
    let missing = run("s1.nope");
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    let report: serde_json::Value = serde_json::from_str(&missing.stdout).unwrap();
    assert_eq!(report["tasks"][0]["message"], "s1.nope does not exist; nothing ran", "{report}");
    let git = run("s1.dev");
    assert_eq!(git.code, 0, "{}", git.stderr);
    let report: serde_json::Value = serde_json::from_str(&git.stdout).unwrap();
    let message = report["tasks"][0]["message"].as_str().unwrap();
    assert!(message.contains("the environment is in git mode"), "{message}");
}

#[test]
fn a_command_a_killed_run_may_have_run_is_not_run_again_unless_idempotent() {
    crate::support::tools::needs!(Ssh);
    let plan = |idempotent: bool| {
        format!(
            "version: 1\njobs:\n  updb:\n    run: remote:drush\n    on: {{ sites: [acme-shop], env: live }}\n    with: {{ command: [updb, -y], idempotent: {idempotent} }}\n"
        )
    };
    for idempotent in [false, true] {
        let t = crate::support::Test::new().file("plan.yml", &plan(idempotent));
        let first = crate::support::Test::new()
            .in_dir(t.path())
            .args(&["apply", "plan.yml", "--simulate", "--yes", "-q"])
            .run();
        assert_eq!(first.code, 0, "{}", first.stderr);
        // As if killed while the command ran: the journal ends with the attempt's record.
        let runs = t.path().join(".terminus-batch/runs");
        let run = std::fs::read_dir(&runs).unwrap().next().unwrap().unwrap().path();
        std::fs::remove_file(run.join("result.json")).unwrap();
        let journal = std::fs::read_to_string(run.join("events.jsonl")).unwrap();
        let cut: Vec<&str> = journal.lines().take_while(|l| !l.contains("\"task_finished\"")).collect();
        assert!(cut.last().unwrap().contains("attempt_starting"), "{journal}");
        std::fs::write(run.join("events.jsonl"), cut.join("\n") + "\n").unwrap();
        let resumed = crate::support::Test::new()
            .in_dir(t.path())
            .args(&["apply", "plan.yml", "--simulate", "--yes", "--resume", "--report", "json=-", "-q"])
            .run();
        let report: serde_json::Value =
            serde_json::from_str(&resumed.stdout).unwrap_or_else(|e| panic!("{e}: {}", resumed.stderr));
        let task = &report["tasks"][0];
        if idempotent {
            assert_eq!(resumed.code, 0, "run again: {task}");
        } else {
            assert_eq!(resumed.code, 1, "{task}");
            let message = task["message"].as_str().unwrap();
            assert!(
                message.starts_with("`drush updb -y` may have run in run ") && message.contains("not run again"),
                "{message}"
            );
            assert!(task["data"].is_null(), "it did not run: {task}");
        }
    }
}

/// Without the OpenSSH client on the PATH the task says so and that nothing ran, rather than
/// reporting `setpriv`'s exit 127 as the remote command's.
#[test]
fn without_ssh_on_the_path_a_remote_command_says_so_and_that_nothing_ran() {
    let t = crate::support::Test::new();
    let empty = t.path().join("no-programs");
    std::fs::create_dir_all(&empty).unwrap();
    let out = t
        .env("PATH", empty.to_str().unwrap())
        .args(&["run", "remote:drush", "--on", "acme-shop.live", "--with", "command=[cr]", "--simulate"])
        .run();
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("cannot run ssh: `ssh` is not on PATH: nothing ran"), "{}", out.stderr);
    assert!(!out.stderr.contains("exited with 127"), "{}", out.stderr);
}

/// A real run's path, not the rehearsal's: against the API (a served simulator, not
/// `--simulate`), `ssh` on the PATH is a stand-in that records its arguments, as the issue's
/// wrapper did. It gets terminus's options and host key checks, and no simulator config.
#[test]
fn a_real_run_calls_ssh_with_terminus_s_options_and_host_key_checks() {
    use std::os::unix::fs::PermissionsExt as _;
    let served = crate::support::sim::Served::new(crate::support::sim::fast(0.001));
    let t = crate::support::Test::new();
    let bin = t.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = t.path().join("ssh-args");
    let fake = bin.join("ssh");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\necho ' [success] Cache rebuild complete.'\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = served
        .test_in(t.path())
        .env("TERMINUS_MACHINE_TOKEN", "simulated-machine-token")
        .env("PATH", &path)
        .args(&["run", "remote:drush", "--on", "acme-shop.live", "--with", "command=[cr]", "--yes", "-q"])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let args: Vec<String> = std::fs::read_to_string(&log).unwrap().lines().map(str::to_owned).collect();
    for option in ["BatchMode=yes", "StrictHostKeyChecking=accept-new", "AddressFamily=inet", "ConnectTimeout=30"] {
        assert!(args.iter().any(|a| a == option), "{option}: {args:?}");
    }
    assert!(args.iter().any(|a| a.starts_with("SetEnv=TRACE_ID=")), "{args:?}");
    assert!(args.windows(2).any(|w| w[0] == "-p" && w[1] == "2222"), "{args:?}");
    assert!(
        !args.iter().any(|a| a == "-F" || a.contains("StrictHostKeyChecking=no")),
        "no rehearsal options: {args:?}"
    );
    let (host, command) = (&args[args.len() - 2], &args[args.len() - 1]);
    assert!(host.starts_with("live.") && host.contains("@appserver.live.") && host.ends_with(".drush.in"), "{host}");
    assert!(command.starts_with("TRACE_ID=") && command.ends_with(" drush 'cr'"), "{command}");
    served.stop();
}

/// A terminal's Ctrl-C goes to its whole foreground process group. The tool's `ssh` sessions
/// run in a group of their own, so the interrupt reaches the tool alone: it starts nothing
/// more and waits for the sessions in flight, which end as they would have, not killed
/// half-way ("ssh was stopped by a signal").
#[test]
fn ctrl_c_to_the_terminals_process_group_drains_the_run_and_leaves_ssh_sessions_to_finish() {
    use std::io::{BufRead as _, BufReader};
    use std::os::unix::fs::PermissionsExt as _;
    use std::os::unix::process::CommandExt as _;
    let served = crate::support::sim::Served::new(crate::support::sim::fast(0.001));
    let plan = "version: 1\njobs:\n  cr:\n    run: remote:drush\n    on: { sites: [acme-web, acme-blog, acme-shop, acme-docs], env: live }\n    with: { command: [cr], idempotent: true }\n";
    let t = crate::support::Test::new().file("plan.yml", plan);
    let bin = t.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    // Each stand-in ssh says it started and in which process group (through a FIFO the test
    // reads), then waits until the test lets it finish.
    let started = t.path().join("started");
    assert!(std::process::Command::new("mkfifo").arg(&started).status().unwrap().success());
    let release = t.path().join("release");
    std::fs::write(
        bin.join("ssh"),
        format!(
            "#!/bin/sh\necho \"$$ $(ps -o pgid= -p $$ | tr -d ' ')\" > '{}'\nwhile [ ! -e '{}' ]; do sleep 0.05; done\necho ' [success] Cache rebuild complete.'\n",
            started.display(),
            release.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(bin.join("ssh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut command = served
        .test_in(t.path())
        .env("TERMINUS_MACHINE_TOKEN", "simulated-machine-token")
        .env("PATH", &path)
        .args(&["apply", "plan.yml", "--yes", "-q", "--concurrency", "2", "--report", "json=report.json"])
        .command();
    // As a shell runs a foreground job: a process group of its own, which Ctrl-C signals whole.
    command.process_group(0).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut tool = command.spawn().unwrap();
    let group = tool.id();
    let mut sessions = Vec::new();
    while sessions.len() < 2 {
        let fifo = BufReader::new(std::fs::File::open(&started).unwrap());
        sessions.extend(fifo.lines().map(Result::unwrap));
    }
    for session in &sessions {
        let (_, pgid) = session.split_once(' ').unwrap();
        assert_ne!(pgid, group.to_string(), "ssh runs outside the terminal's group: {sessions:?}");
    }
    // Ctrl-C: SIGINT to every process of the terminal's foreground group.
    assert!(std::process::Command::new("kill").args(["-INT", "--", &format!("-{group}")]).status().unwrap().success());
    std::fs::write(&release, "").unwrap();
    let status = tool.wait().unwrap();
    assert_eq!(status.code(), Some(130), "interrupted");
    let report = crate::support::report(&t, "report.json");
    let statuses: Vec<&str> =
        report["tasks"].as_array().unwrap().iter().map(|t| t["status"].as_str().unwrap()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == "succeeded").count(), 2, "the two in flight finished: {report}");
    assert_eq!(statuses.iter().filter(|s| **s == "skipped").count(), 2, "nothing started after: {statuses:?}");
    served.stop();
}

/// Issue 37, items 1 and 2: a remote command refused before any session (the app server
/// refused the key; a changed host key; a refused connection) provably did not run. The
/// journal says so, and `--resume` against the mended server runs it, rather than fearing it
/// ran. A refused key is "nothing ran", not "may have run": no command runs before
/// authentication succeeds.
#[test]
fn a_command_refused_before_any_session_says_nothing_ran_and_a_resume_runs_it() {
    crate::support::tools::needs!(Ssh);
    let plan = "version: 1\njobs:\n  updb:\n    run: remote:drush\n    on: { sites: [acme-shop], env: live }\n    with: { command: [updb, -y] }\n";
    let world = "simulator:\n  time_scale: 0.001\n  ssh_refuse_keys_until: key-added\nuser: { email: ops@example.com }\norgs: [{ name: o }]\nsites:\n  - { name: acme-shop, org: o, framework: drupal10, envs: { live: {} } }\n";
    let t = crate::support::Test::new().file("plan.yml", plan).file("world.yml", world);
    let apply = |extra: &[&str]| apply_reporting(t.path(), &[&["--world", "world.yml"], extra].concat());
    let (code, report) = apply(&[]);
    assert_eq!(code, 1, "{report}");
    let message = report["tasks"][0]["message"].as_str().unwrap();
    assert!(message.contains("refused the key") && message.contains("nothing ran"), "{message}");
    assert!(!message.contains("may have run"), "{message}");
    // The journal says the attempt did nothing.
    let runs = t.path().join(".terminus-batch/runs");
    let run = std::fs::read_dir(&runs).unwrap().next().unwrap().unwrap().path();
    let journal = std::fs::read_to_string(run.join("events.jsonl")).unwrap();
    assert!(journal.contains("\"attempt_ended\"") && journal.contains("\"ran\":false"), "{journal}");
    // The key is mended; the resume runs the command.
    std::fs::write(t.path().join("key-added"), "").unwrap();
    let (code, report) = apply(&["--resume"]);
    assert_eq!(code, 0, "run again: {report}");
    let task = &report["tasks"][0];
    assert_eq!(task["status"], "succeeded", "{task}");
    assert!(task["data"]["exit_code"] == 0, "the command ran: {task}");
}

/// A command that ran and exited with an error has a known end: the journal says so, and a
/// resume runs it again (as a failed workflow's task is), rather than "may have run".
#[test]
fn a_command_that_failed_with_a_known_exit_code_is_run_again_by_a_resume() {
    crate::support::tools::needs!(Ssh);
    let plan = "version: 1\njobs:\n  debug:\n    run: remote:wp\n    on: { sites: [acme-blog], env: live }\n    with: { command: [config, set, WP_DEBUG, 'true'] }\n";
    let t = crate::support::Test::new().file("plan.yml", plan);
    let apply = |extra: &[&str]| apply_reporting(t.path(), extra);
    let (code, report) = apply(&[]);
    assert_eq!(code, 1, "{report}");
    assert!(report["tasks"][0]["message"].as_str().unwrap().contains("exited with 1"), "{report}");
    let (code, report) = apply(&["--resume"]);
    assert_eq!(code, 1, "{report}");
    let message = report["tasks"][0]["message"].as_str().unwrap();
    assert!(message.contains("exited with 1") && !message.contains("may have run"), "run again: {message}");
    assert_eq!(report["simulator"]["remote_commands"], 1, "the resumed run ran it: {report}");
}

/// `apply plan.yml --simulate --yes` in `dir` with `extra`, quietly: its exit code and its JSON
/// report (from stdout).
fn apply_reporting(dir: &std::path::Path, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec!["apply", "plan.yml", "--simulate", "--yes", "--report", "json=-", "-q"];
    args.extend_from_slice(extra);
    let out = crate::support::Test::new().in_dir(dir).args(&args).run();
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stderr));
    (out.code, report)
}
