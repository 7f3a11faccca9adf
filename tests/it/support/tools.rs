//! The programs some tests drive that cargo cannot build, and what a test does without one.
//!
//! - **From `PyPI`** (moto's S3 server, xmlschema): provisioned on first use into a virtualenv under
//!   `target/tmp/tools/`, pinned by `tests/tools/requirements.txt` and keyed by its contents, so a
//!   fresh machine with `CPython` and pip needs no manual step. A file lock makes one process (of
//!   the test binary's threads, nextest's processes or the bench) install it while the others wait.
//! - **From the system** (the OpenSSH client, util-linux's `script`, Chromium): looked up on
//!   `PATH`. Installing them needs root and a package manager, which a test must not use.
//!
//! When a tool is missing outside CI, the test that needs it is **skipped loudly**: it writes a
//! `SKIPPED` line straight to the terminal (past the test harness's capture) and records the skip,
//! and the `skipped` test target, which cargo runs last, lists every skip of the run and how to run
//! them. Under `CI=true` nothing is skipped: a missing tool fails the test that needs it.
//!
//! Shared by the integration tests, the `skipped` target and the bench (by `#[path]`), so it uses
//! nothing of theirs (only the library, which each links: its PATH lookup is the product's).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// A program a test drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tool {
    /// The OpenSSH client, which `remote:drush` and `remote:wp` run.
    Ssh,
    /// util-linux's `script`, which gives a command a pseudo-terminal.
    Script,
    /// Debian's Chromium, which lays out the HTML report.
    Chromium,
    /// The provisioned Python with moto's S3 server and xmlschema.
    PythonTools,
    /// GNU bash, whose completion the completion script is tried in.
    Bash,
}

impl Tool {
    #[allow(dead_code, reason = "the `skipped` target reads the records back; the tests only write them")]
    pub(crate) const ALL: [Tool; 5] = [Tool::Ssh, Tool::Script, Tool::Chromium, Tool::PythonTools, Tool::Bash];

    /// The word a skip record names it by.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Tool::Ssh => "ssh",
            Tool::Script => "script",
            Tool::Chromium => "chromium",
            Tool::PythonTools => "python-tools",
            Tool::Bash => "bash",
        }
    }

    #[allow(dead_code, reason = "the `skipped` target reads the records back; the tests only write them")]
    pub(crate) fn from_key(key: &str) -> Option<Tool> {
        Tool::ALL.into_iter().find(|t| t.key() == key)
    }

    /// What it is, for a person.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Tool::Ssh => "the OpenSSH client (`ssh`)",
            Tool::Script => "util-linux's `script`",
            Tool::Chromium => "Chromium (`chromium`)",
            Tool::PythonTools => "moto's S3 server and xmlschema (from PyPI, into target/tmp/tools)",
            Tool::Bash => "GNU bash",
        }
    }

    /// How to get it.
    pub(crate) fn remedy(self) -> &'static str {
        match self {
            Tool::Ssh => "apt-get install openssh-client",
            Tool::Script => "apt-get install bsdutils",
            Tool::Chromium => "apt-get install chromium",
            Tool::PythonTools => "needs python3 with pip and venv, and PyPI reachable; the tests install the rest",
            Tool::Bash => "apt-get install bash",
        }
    }

    fn program(self) -> &'static str {
        match self {
            Tool::Ssh => "ssh",
            Tool::Script => "script",
            Tool::Chromium => "chromium",
            Tool::PythonTools => "python3",
            Tool::Bash => "bash",
        }
    }
}

/// Whether this is CI, where every tool must be there (`CI` set to anything but `false` or `0`).
pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Where `tool` is (for [`Tool::PythonTools`], the virtualenv's `bin` directory), provisioning it
/// first where it can be. When it is missing: under CI, panics (the test fails, saying what is
/// missing); elsewhere, records the skip, says so on the terminal and gives `None`, and the test
/// returns.
pub(crate) fn find(tool: Tool) -> Option<PathBuf> {
    let found = match tool {
        Tool::PythonTools => python_tools().clone(),
        _ => tb_core::env::find_program(tool.program()).ok_or_else(|| format!("`{}` is not on PATH", tool.program())),
    };
    match found {
        Ok(path) => Some(path),
        Err(why) if in_ci() => panic!("{} is required under CI=true: {why} ({})", tool.describe(), tool.remedy()),
        Err(why) => {
            skip(tool, &why);
            None
        }
    }
}

/// `find`, returning from the test when the tool is missing (outside CI).
macro_rules! needs {
    ($tool:ident) => {
        match $crate::support::tools::find($crate::support::tools::Tool::$tool) {
            Some(path) => path,
            None => return,
        }
    };
}
pub(crate) use needs;

/// The directory of this run's skip records: one file per cargo (or nextest) process, named by
/// its pid, which is every test binary's parent.
pub(crate) fn records_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("skipped")
}

/// This run's record file.
pub(crate) fn record_file(parent: u32) -> PathBuf {
    records_dir().join(format!("{parent}.tsv"))
}

fn skip(tool: Tool, why: &str) {
    let current = std::thread::current();
    let test = current.name().filter(|n| *n != "main").unwrap_or("a test");
    // Past the harness's capture of `eprintln!`: a skip is seen even when the test passes.
    let line = format!("SKIPPED {test}: {} is missing ({why}); {}\n", tool.describe(), tool.remedy());
    let _shown = std::io::stderr().write_all(line.as_bytes());
    let record = format!("{}\t{test}\t{}\n", tool.key(), why.replace(['\t', '\n'], " "));
    let _made = std::fs::create_dir_all(records_dir());
    // One short append per skip: whole lines even when tests skip at once.
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(record_file(std::os::unix::process::parent_id()))
        .and_then(|mut file| file.write_all(record.as_bytes()));
    if let Err(e) = appended {
        let _shown = writeln!(std::io::stderr(), "(the skip could not be recorded: {e})");
    }
}

/// The pinned Python packages the tests need.
const REQUIREMENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/requirements.txt");

/// The virtualenv's `bin` directory, provisioned once per process (and once per machine: a
/// finished one is marked and reused).
fn python_tools() -> &'static Result<PathBuf, String> {
    static TOOLS: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    TOOLS.get_or_init(provision_python)
}

fn provision_python() -> Result<PathBuf, String> {
    let requirements = std::fs::read(REQUIREMENTS).map_err(|e| format!("{REQUIREMENTS}: {e}"))?;
    let python = tb_core::env::find_program("python3").ok_or("`python3` is not on PATH")?;
    let version =
        Command::new(&python).arg("--version").output().map_err(|e| format!("{}: {e}", python.display()))?.stdout;
    // Keyed by what it is made of: a new pin or another interpreter makes a new one.
    let key = fnv1a(&[requirements.as_slice(), python.as_os_str().as_encoded_bytes(), &version].concat());
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tools");
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let venv = root.join(format!("python-{key:016x}"));
    let ready = venv.join("ready");
    let bin = venv.join("bin");
    if ready.exists() {
        return Ok(bin);
    }
    let lock_path = root.join("python.lock");
    let lock = std::fs::File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    lock.lock().map_err(|e| format!("locking {}: {e}", lock_path.display()))?;
    // Another process may have made it while this one waited.
    if ready.exists() {
        return Ok(bin);
    }
    let _shown = writeln!(
        std::io::stderr(),
        "provisioning moto's server and xmlschema from PyPI into {} (once per machine)",
        venv.display()
    );
    if venv.exists() {
        std::fs::remove_dir_all(&venv).map_err(|e| format!("{}: {e}", venv.display()))?;
    }
    run(Command::new(&python).args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(bin.join("python"))
        .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--quiet", "-r"])
        .arg(REQUIREMENTS))?;
    std::fs::write(&ready, b"").map_err(|e| format!("{}: {e}", ready.display()))?;
    Ok(bin)
}

/// Runs `command` to its end; an error carries its last lines.
fn run(command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    let out = command.output().map_err(|e| format!("{shown}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(format!("{shown} failed ({}): {}", out.status, tail.join(" / ")))
}

/// A stable 64-bit hash (FNV-1a), for the cache key.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}
