//! `auth login|whoami|logout` and connection failures, through the real binary against the
//! simulator on 127.0.0.1: terminus's files, exit codes, clear errors, no secret in output.

use tb_simulator::Knobs;

use crate::support::Test;
use crate::support::sim::Served;

const TOKEN: &str = "simulated-machine-token";

#[test]
fn login_whoami_logout_share_terminus_files() {
    let served = Served::new(Knobs::default());
    let t = served.test().args(&["auth", "login", "--machine-token", TOKEN]);
    let out = t.run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "Logged in as ops@acme.example.\n");
    let cache = t.path().join(".terminus/cache");
    let token: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cache.join("tokens/ops@acme.example")).unwrap()).unwrap();
    assert_eq!(token["token"], TOKEN);
    assert_eq!(token["email"], "ops@acme.example");
    assert!(token["date"].is_i64());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in ["session", "tokens/ops@acme.example"] {
            let mode = std::fs::metadata(cache.join(file)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{file}");
        }
    }
    // whoami in the same home reuses the saved session: no new login.
    let out = served.test().args(&["auth", "whoami"]);
    let out = copy_home(&t, out).run();
    assert_eq!((out.code, out.stdout.as_str()), (0, "ops@acme.example\n"), "{}", out.stderr);
    let logout = copy_home(&t, served.test().args(&["auth", "logout"]));
    let out = logout.run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("Logged out (2 files removed"), "{}", out.stdout);
    assert!(!logout.path().join(".terminus/cache/session").exists());
    let stats = served.stop();
    assert_eq!(stats.logins, 1, "{stats:?}");
}

/// Copies `from`'s `.terminus` into `to`'s home, so consecutive commands share the files.
fn copy_home(from: &Test, to: Test) -> Test {
    fn copy(src: &std::path::Path, dst: &std::path::Path) {
        std::fs::create_dir_all(dst).unwrap();
        for entry in std::fs::read_dir(src).unwrap() {
            let entry = entry.unwrap();
            let target = dst.join(entry.file_name());
            if entry.path().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }
    copy(&from.path().join(".terminus"), &to.path().join(".terminus"));
    to
}

#[test]
fn a_bad_machine_token_exits_3_with_the_platform_message() {
    let served = Served::new(Knobs::default());
    let out = served.test().env("TERMINUS_MACHINE_TOKEN", "not-the-token").args(&["auth", "whoami"]).run();
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("Authorization failed. Please check that your machine token is valid."),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("not-the-token"), "{}", out.stderr);
    let stats = served.stop();
    assert_eq!(stats.count("POST authorize/machine-token"), 1, "a refused login is not retried");
}

#[test]
fn not_logged_in_says_how_to_log_in() {
    let served = Served::new(Knobs::default());
    let out = served.test().args(&["auth", "whoami"]).run();
    assert_eq!(out.code, 3);
    assert!(out.stderr.contains("TERMINUS_MACHINE_TOKEN"), "{}", out.stderr);
    served.stop();
}

#[test]
fn unreachable_hosts_and_tls_failures_are_clear() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    drop(listener);
    let out = Test::new()
        .api_at("127.0.0.1", &port)
        .env("TERMINUS_MACHINE_TOKEN", TOKEN)
        .env("TERMINUS_BATCH_REQUEST_ATTEMPTS", "2")
        .env("TERMINUS_BATCH_RETRY_BACKOFF", "0s")
        .args(&["auth", "whoami"])
        .run();
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("cannot connect"), "{}", out.stderr);
    assert!(out.stderr.contains("/api/authorize/machine-token"), "names the request: {}", out.stderr);

    // https to a server that speaks plain http: the TLS handshake fails.
    let served = Served::new(Knobs::default());
    let out = served
        .test()
        .env("TERMINUS_PROTOCOL", "https")
        .env("TERMINUS_MACHINE_TOKEN", TOKEN)
        .env("TERMINUS_BATCH_REQUEST_ATTEMPTS", "1")
        .args(&["auth", "whoami"])
        .run();
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("TLS handshake failed"), "{}", out.stderr);
    served.stop();

    // Plain http to anything but loopback is refused before any request.
    let out =
        Test::new().api_at("example.com", "80").env("TERMINUS_MACHINE_TOKEN", TOKEN).args(&["auth", "whoami"]).run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("refusing plain http"), "{}", out.stderr);
}

#[test]
fn nothing_secret_is_printed_at_the_highest_verbosity() {
    let served = Served::new(Knobs::default());
    let l = served.test().args(&["auth", "login", "--machine-token", TOKEN, "-vvv"]);
    let login = l.run();
    assert_eq!(login.code, 0, "{}", login.stderr);
    assert!(!login.stdout.contains(TOKEN) && !login.stderr.contains(TOKEN), "{}", login.stderr);
    // whoami with the saved session, at trace level.
    let t = copy_home(&l, served.test().args(&["auth", "whoami", "-vvv"]));
    let out = t.run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("sending"), "trace logging is on: {}", out.stderr);
    let session: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.path().join(".terminus/cache/session")).unwrap()).unwrap();
    let session = session["session"].as_str().unwrap().to_owned();
    for secret in [TOKEN, session.as_str()] {
        assert!(!out.stdout.contains(secret) && !out.stderr.contains(secret), "{secret} leaked:\n{}", out.stderr);
    }
    served.stop();
}

#[test]
fn plan_resolves_selectors_through_the_api_when_logged_in() {
    let served = Served::new(Knobs::default());
    let plan = "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: { org: acme-agency, tag: weekly }, env: live }\n";
    let out = served
        .test()
        .env("TERMINUS_MACHINE_TOKEN", TOKEN)
        .file("p.yml", plan)
        .args(&["plan", "p.yml", "--format", "json"])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(doc["resolved_by"].as_str().unwrap().starts_with("Pantheon API at http://127.0.0.1:"));
    let with_sim = Test::new().file("p.yml", plan).args(&["plan", "p.yml", "--format", "json", "--simulate"]).run();
    let sim_doc: serde_json::Value = serde_json::from_str(&with_sim.stdout).unwrap();
    assert_eq!(doc["tasks"], sim_doc["tasks"], "the API and --simulate resolve the same world alike");
    let stats = served.stop();
    assert!(stats.count("GET organizations/{org}/memberships/sites") >= 1);
}

#[test]
fn simulate_serve_answers_and_prints_its_counters() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_terminus-batch"))
        .args(["simulate", "serve", "--port", "0", "--seed", "7", "--latency", "0.001,0.002"])
        .current_dir(dir.path())
        .env_clear()
        .env("HOME", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let base = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let stats: serde_json::Value = runtime.block_on(async {
        let http = crate::support::http_client();
        let site = http.get(format!("{base}site-names/acme-web")).send().await.unwrap();
        assert_eq!(site.status(), 401, "the API needs a session");
        let stats_url = base.replace("/api/", "/__sim/stats");
        http.get(stats_url).send().await.unwrap().json().await.unwrap()
    });
    assert_eq!(stats["requests"]["GET site-names/{name}"]["401"], 1);
    let status = Command::new("sh").args(["-c", &format!("kill -INT {}", child.id())]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["requests_total"], 1);
}

#[test]
fn simulate_serve_refuses_a_latency_it_cannot_read() {
    for bad in ["0.2,0.1", "0.1", "fast,slow"] {
        let out = Test::new().args(&["simulate", "serve", "--port", "0", "--latency", bad]).run();
        assert_eq!(out.code, 2, "{bad}: {}", out.stderr);
        assert!(out.stderr.contains("--latency"), "{bad}: {}", out.stderr);
    }
}
