//! No secret anywhere: every command at `-vvv`, with a known machine token, session and lock
//! password, against the simulator, with every report format; stdout, stderr, the reports and
//! the journal are searched for each secret.

use crate::support::Test;
use crate::support::sim::Served;

const TOKEN: &str = "simulated-machine-token";
const LOCK_PASSWORD: &str = "hunter2-lock-secret";

const PLAN: &str = "version: 1
jobs:
  lock:
    run: lock:enable
    on: { sites: [acme-web], env: test }
    with: { username: ops, password: \"${{ env.LOCK_PW }}\" }
  info:
    run: env:info
    needs: [lock]
    on: { sites: [acme-web], env: test }
  get:
    run: backup:get
    on: { sites: [acme-web], env: live }
    with: { to: dl }
  deploy:
    run: env:deploy
    on: { sites: [acme-web], env: test }
";

#[test]
fn no_secret_in_output_logs_reports_or_journal() {
    let served = Served::new(tb_simulator::Knobs { time_scale: 0.001, ..Default::default() });
    let t = Test::new().file("plan.yml", PLAN);
    let dir = t.path().to_owned();
    let run = |args: &[&str]| {
        served.test_in(&dir).env("TERMINUS_MACHINE_TOKEN", TOKEN).env("LOCK_PW", LOCK_PASSWORD).args(args).run()
    };
    let mut outputs = Vec::new();
    for args in [
        &["auth", "login", "-vvv"][..],
        &["auth", "whoami", "-vvv"],
        &["plan", "plan.yml", "--refresh", "-vvv", "--format", "json"],
        &["graph", "plan.yml", "-vvv"],
        &[
            "apply",
            "plan.yml",
            "--yes",
            "-vvv",
            "--report",
            "json=r.json",
            "--report",
            "junit=r.xml",
            "--report",
            "markdown=r.md",
            "--report",
            "html=r.html",
            "--report",
            "json=-",
        ],
        &["run", "env:info", "--on", "acme-web.test", "--yes", "-vvv", "--report", "json=-"],
    ] {
        let out = run(args);
        assert!(out.code == 0, "{args:?}: {}", out.stderr);
        outputs.push((format!("{args:?}"), out.stdout, out.stderr));
    }
    let session: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(".terminus/cache/session")).unwrap()).unwrap();
    let session = session["session"].as_str().unwrap().to_owned();
    let mut files = vec!["r.json", "r.xml", "r.md", "r.html"].into_iter().map(|f| dir.join(f)).collect::<Vec<_>>();
    for entry in walk(&dir.join(".terminus-batch")) {
        files.push(entry);
    }
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        outputs.push((file.display().to_string(), text, String::new()));
    }
    served.stop();
    for (name, stdout, stderr) in &outputs {
        for secret in [TOKEN, session.as_str(), LOCK_PASSWORD, "Signature="] {
            assert!(!stdout.contains(secret) && !stderr.contains(secret), "{secret} appears in {name}");
        }
    }
    assert!(outputs.iter().any(|(_, _, e)| e.contains("TRACE")), "-vvv logs at trace level");
}

#[test]
fn a_secret_typed_on_the_command_line_is_refused_without_being_echoed() {
    // A literal password is refused (it must come from the environment); the error names the
    // command but not the value, also when the operation itself is misspelt.
    for op in ["lock:enable", "lock:add"] {
        let with = format!("password={LOCK_PASSWORD}");
        let out = Test::new()
            .args(&[
                "run",
                op,
                "--on",
                "acme-web.test",
                "--with",
                "username=ops",
                "--with",
                &with,
                "--simulate",
                "--yes",
            ])
            .run();
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(!out.stderr.contains(LOCK_PASSWORD) && !out.stdout.contains(LOCK_PASSWORD), "{}", out.stderr);
        assert!(out.stderr.contains("--with password=<redacted>"), "{}", out.stderr);
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
