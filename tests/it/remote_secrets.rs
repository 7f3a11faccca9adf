//! Issue 29: what a remote command prints can grant access. Its output reaches the person who
//! ran it (stdout) and never a file: reports, the journal, `result.json`, the step summary.

use tb_simulator::ssh::secret;

use crate::support::Test;

/// Every file under `dir`, as text.
fn files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.map(|e| e.unwrap().path()) {
        if entry.is_dir() {
            out.extend(files(&entry));
        } else {
            out.push((entry.clone(), String::from_utf8_lossy(&std::fs::read(&entry).unwrap()).into_owned()));
        }
    }
    out
}

#[test]
fn login_links_and_passwords_reach_stdout_and_no_file() {
    crate::support::tools::needs!(Ssh);
    // (operation, target, command, the secret it prints)
    let cases = [
        (
            "remote:drush",
            "acme-shop.dev",
            "command=[uli]",
            format!("/user/reset/1/1767225600/{}", secret("acme-shop", "uli")),
        ),
        ("remote:drush", "acme-shop.dev", "command=[sql-connect]", secret("acme-shop", "db")),
        ("remote:wp", "acme-web.dev", "command=[config, get, DB_PASSWORD]", secret("acme-web", "db")),
        ("remote:wp", "acme-web.dev", "command=[user, reset-password, admin]", secret("acme-web", "wp")),
    ];
    for (operation, target, command, printed) in &cases {
        for keep in ["output=digest", "output=report"] {
            let t = Test::new();
            let summary = t.path().join("step-summary.md");
            let out = Test::new()
                .in_dir(t.path())
                .env("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())
                .args(&["run", operation, "--on", target, "--with", command, "--with", keep, "--simulate", "--yes"])
                .args(&["--report", "json=r.json", "--report", "junit=r.xml", "--report", "markdown=r.md"])
                .args(&["--report", "html=r.html"])
                .run();
            assert_eq!(out.code, 0, "{command}: {}", out.stderr);
            assert!(out.stdout.contains(printed.as_str()), "{command}: the person who ran it sees it: {}", out.stdout);
            assert!(!out.stderr.contains(printed.as_str()), "{command} {keep}: {}", out.stderr);
            let written = files(t.path());
            assert!(written.len() >= 7, "reports, summary, journal, result.json: {written:?}");
            for (path, text) in &written {
                assert!(!text.contains(printed.as_str()), "{command} {keep}: {} holds it:\n{text}", path.display());
            }
            let report: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(t.path().join("r.json")).unwrap()).unwrap();
            let data = &report["tasks"][0]["data"];
            assert!(data["stdout_sha256"].is_string() && data["stdout_bytes"].as_u64() > Some(0), "{data}");
            assert!(data["output"].as_str().is_some_and(|o| o.starts_with("never kept")), "{command}: {data}");
        }
    }
}

#[test]
fn output_report_keeps_an_ordinary_commands_output_and_digest_keeps_none() {
    crate::support::tools::needs!(Ssh);
    let run = |keep: &str| {
        let t = Test::new();
        let out = Test::new()
            .in_dir(t.path())
            .args(&["run", "remote:drush", "--on", "acme-shop.dev", "--with", "command=[status]", "--with", keep])
            .args(&["--simulate", "--yes", "--report", "json=r.json"])
            .run();
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(out.stdout.contains("Drupal version"), "stdout shows it: {}", out.stdout);
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(t.path().join("r.json")).unwrap()).unwrap();
        report["tasks"][0].clone()
    };
    let kept = run("output=report");
    assert!(kept["data"]["stdout"].as_str().is_some_and(|s| s.contains("Drupal version")), "{kept}");
    assert!(kept["message"].as_str().unwrap().contains("Drush version"), "{kept}");
    let digest = run("output=digest");
    assert!(digest["data"]["stdout"].is_null(), "{digest}");
    assert!(!digest["message"].as_str().unwrap().contains("Drush version"), "{digest}");
    assert!(digest["data"]["output"].as_str().unwrap().contains("output: report"), "{digest}");
}

#[test]
fn validate_notes_a_job_whose_command_prints_credentials() {
    let plan = "version: 1\njobs:\n  login:\n    run: remote:drush\n    on: { sites: [acme-shop], env: live }\n    with: { command: [uli], output: report }\n  cr:\n    run: remote:drush\n    on: { sites: [acme-shop], env: live }\n    with: { command: [cr] }\n";
    let out = Test::new().file("plan.yml", plan).args(&["validate", "plan.yml"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("job `login` runs `drush uli`, which prints a one-time login link"), "{}", out.stderr);
    assert!(!out.stderr.contains("job `cr`"), "{}", out.stderr);
}

/// Issue 37, item 4: `run --with 'command=[…]'` is YAML: quoted words keep their commas and
/// spaces and lose their quotes, a one-word list stays a list, and the app server receives
/// exactly those words.
#[test]
fn a_with_list_is_yaml_and_the_app_server_receives_its_words_exactly() {
    crate::support::tools::needs!(Ssh);
    let run = |command: &str| {
        let out = crate::support::Test::new()
            .args(&["run", "remote:drush", "--on", "acme-shop.live", "--with", command, "--with", "output=report"])
            .args(&["--simulate", "--report", "json=-", "-q"])
            .run();
        assert_eq!(out.code, 0, "{command}: {}", out.stderr);
        let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        report["tasks"][0]["data"]["stdout"].as_str().unwrap().trim().to_owned()
    };
    assert_eq!(
        run(r#"command=[cset, system.site, name, "My Site, Inc"]"#),
        r#"[success] config:set ["system.site","name","My Site, Inc"]"#
    );
    assert_eq!(run(r#"command=[cset, x, "25", 'a b', "it's"]"#), r#"[success] config:set ["x","25","a b","it's"]"#);
    assert_eq!(run(r#"command=["cr"]"#), "[success] Cache rebuild complete.");
    // Not YAML: said, naming the option.
    let bad = crate::support::Test::new()
        .args(&["run", "remote:drush", "--on", "acme-shop.live", "--with", "command=[cr, \"open", "--simulate"])
        .run();
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("--with command=[cr, \"open: not YAML"), "{}", bad.stderr);
}

/// Issue 37, item 3: what is known to print credentials is wider (a secret named in an
/// option's value, application passwords, queries of the users' table), and a failing
/// command's stderr that quotes a PHP `define()` of a password keeps no password: not in the
/// report, the journal, nor the step summary.
#[test]
fn passwords_in_a_failing_commands_stderr_and_wider_credential_commands_stay_out_of_files() {
    let plan = "version: 1\njobs:\n  constant:\n    run: remote:wp\n    on: { sites: [acme-blog], env: live }\n    with: { command: [config, get, --constant=DB_PASSWORD], output: report }\n  apppass:\n    run: remote:wp\n    on: { sites: [acme-blog], env: live }\n    with: { command: [user, application-password, create, admin, ci, --porcelain], output: report }\n  hashes:\n    run: remote:drush\n    on: { sites: [acme-shop], env: live }\n    with: { command: [sql-query, select pass from users], output: report }\n";
    let out = Test::new().file("plan.yml", plan).args(&["validate", "plan.yml"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    for job in ["constant", "apppass", "hashes"] {
        assert!(out.stderr.contains(&format!("job `{job}` runs")), "{job}: {}", out.stderr);
    }
    crate::support::tools::needs!(Ssh);
    let t = Test::new().file(
        "plan.yml",
        "version: 1\njobs:\n  debug:\n    run: remote:wp\n    on: { sites: [acme-blog], env: live }\n    with: { command: [config, set, WP_DEBUG, 'true'], output: report }\n",
    );
    let summary = t.path().join("summary.md");
    let out = Test::new()
        .in_dir(t.path())
        .env("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())
        .args(&[
            "apply",
            "plan.yml",
            "--simulate",
            "--yes",
            "--report",
            "json=report.json",
            "--report",
            "junit=report.xml",
            "--report",
            "markdown=report.md",
            "--report",
            "html=report.html",
        ])
        .run();
    assert_eq!(out.code, 1, "{}", out.stderr);
    let password = secret("acme-blog", "db");
    let report = std::fs::read_to_string(t.path().join("report.json")).unwrap();
    assert!(report.contains("define( 'DB_PASSWORD', '[redacted]' )"), "the error is kept, redacted: {report}");
    for (path, text) in files(t.path()) {
        assert!(!text.contains(&password), "{} keeps the password", path.display());
    }
}
