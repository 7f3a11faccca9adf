//! A builder that runs the real binary in a temporary directory, in the style of just's
//! `Test`: files, arguments and environment in; stdout, stderr and the exit code out.

pub(crate) mod cassettes;
pub(crate) mod fault_proxy;
pub(crate) mod s3;
pub(crate) mod sim;
pub(crate) mod tools;

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// An operations context that records nothing and lets every attempt act.
pub(crate) struct Quiet;

impl tb_operations::OpContext for Quiet {
    #[expect(clippy::manual_async_fn, reason = "the trait asks for a Send future")]
    fn attempt_starting(&self) -> impl std::future::Future<Output = Result<(), tb_operations::OpError>> + Send {
        async { Ok(()) }
    }
    fn workflow_started(&self, _id: &str) {}
    fn progress(&self, _message: &str) {}
}

pub(crate) struct Test {
    dir: TempDir,
    /// Run in this directory instead of the test's own (a second command on the same files).
    cwd: Option<PathBuf>,
    args: Vec<String>,
    envs: Vec<(String, String)>,
}

#[derive(Debug)]
pub(crate) struct Output {
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) code: i32,
}

impl Test {
    pub(crate) fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("tempdir"), cwd: None, args: Vec::new(), envs: Vec::new() }
    }

    /// Writes a file relative to the test's directory.
    pub(crate) fn file(self, name: &str, contents: &str) -> Self {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, contents).expect("write file");
        self
    }

    pub(crate) fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// Sets an environment variable for the run (the rest is cleared).
    pub(crate) fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Sets each of `vars` (see [`Self::env`]).
    pub(crate) fn envs(mut self, vars: &[(String, String)]) -> Self {
        self.envs.extend(vars.iter().cloned());
        self
    }

    /// Points the binary at an API over plain http on `host:port` (a loopback server, a
    /// closed port, or a host plain http is refused for).
    pub(crate) fn api_at(self, host: &str, port: &str) -> Self {
        self.env("TERMINUS_HOST", host).env("TERMINUS_PORT", port).env("TERMINUS_PROTOCOL", "http")
    }

    pub(crate) fn path(&self) -> &Path {
        self.cwd.as_deref().unwrap_or(self.dir.path())
    }

    /// Runs in `dir` (with `HOME` there) instead of the test's own directory.
    pub(crate) fn in_dir(mut self, dir: &Path) -> Self {
        self.cwd = Some(dir.to_owned());
        self
    }

    /// The command `run` runs, for tests that need the process itself (pipes, signals).
    pub(crate) fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_terminus-batch"));
        command
            .args(&self.args)
            .current_dir(self.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path())
            .env("XDG_CONFIG_HOME", self.path().join(".config"))
            .env("NO_COLOR", "1")
            .env("COLUMNS", "100")
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command
    }

    pub(crate) fn run(&self) -> Output {
        let out = self.command().output().expect("run terminus-batch");
        Output {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            code: out.status.code().unwrap_or(-1),
        }
    }
}

/// The common set-up of a simulated run: `world` and `plan` written to `world.yml` and
/// `plan.yml`, then `apply plan.yml --simulate --world world.yml` and `extra`.
pub(crate) fn simulated(world: &str, plan: &str, extra: &[&str]) -> Test {
    let mut args = vec!["apply", "plan.yml", "--simulate", "--world", "world.yml"];
    args.extend_from_slice(extra);
    Test::new().file("world.yml", world).file("plan.yml", plan).args(&args)
}

/// A plain HTTP client for the tests' own requests: reqwest's rustls takes the process's
/// A world of `sites` in the organization `o`, each with the environments `envs` (a YAML
/// flow map), after `head` (a `simulator:` block, or nothing).
pub(crate) fn org_world(head: &str, email: &str, sites: impl IntoIterator<Item = String>, envs: &str) -> String {
    let mut text = format!("{head}user: {{ email: {email} }}\norgs: [{{ name: o }}]\nsites:\n");
    for site in sites {
        text.push_str(&format!("  - {{ name: {site}, org: o, envs: {envs} }}\n"));
    }
    text
}

/// crypto provider, ring, as the product installs it.
pub(crate) fn http_client() -> reqwest::Client {
    let _already = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().build().expect("an HTTP client")
}

/// The repository root, where `examples/` and `schemas/` live.
pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every example plan (not the world file), sorted.
pub(crate) fn example_plans() -> Vec<PathBuf> {
    let mut plans: Vec<PathBuf> = std::fs::read_dir(repo().join("examples"))
        .expect("examples dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yml")
                && p.file_name().is_some_and(|n| {
                    !["world.yml", "canary-world.yml", "github-actions.yml", "gitlab-ci.yml"]
                        .contains(&n.to_str().unwrap_or_default())
                })
        })
        .collect();
    plans.sort();
    plans
}

/// Lowercase hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// A JSON file the test's run wrote (a report), parsed.
pub(crate) fn report(t: &Test, name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(t.path().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A run id of now (`YYYYMMDDTHHMMSSZ-suffix`), as a run started now would have.
pub(crate) fn run_id_now(suffix: &str) -> String {
    let secs = i64::try_from(now_ms() / 1000).unwrap();
    format!("{}-{suffix}", tb_core::timefmt::compact(secs))
}

/// Now, in unix milliseconds, as the journal records times.
pub(crate) fn now_ms() -> u64 {
    u64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// The events a run killed during the workflow POST of `job` on `site-000.test` leaves: the
/// run started, then the attempt record, and nothing after.
pub(crate) fn killed_during_the_post(run: &str, job: &str, operation: &str) -> Vec<serde_json::Value> {
    let now = now_ms();
    vec![
        serde_json::json!({ "event": "run_started", "run_id": run, "at": now,
            "tasks": [{ "id": format!("{job}[site-000.test]"), "job": job, "site": "site-000", "env": "test", "operation": operation }] }),
        serde_json::json!({ "event": "attempt_starting", "task": 0, "attempt": 1, "at": now }),
    ]
}
