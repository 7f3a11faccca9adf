//! `remote:drush` and `remote:wp`: a command on the environment's app server over SSH, as
//! terminus runs it (`ssh -T <env>.<site id>@appserver.<env>.<site id>.drush.in -p 2222
//! 'drush …'`), with the system's OpenSSH client, so the user's keys, agent and
//! `~/.ssh/config` apply. The remote exit code decides; output is kept (the tail of each
//! stream) for the reports; a connection that failed before the command ran is transient.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::AsyncReadExt;

use super::{OpError, OpOutput, Ops, Target, env_of};
use tb_core::cause::{Cause, ErrorClass};

/// The port Pantheon's app servers answer SSH on.
const PORT: u16 = 2222;
/// The most of each stream kept (its tail).
const KEPT: usize = 64 << 10;

/// Where the SSH client connects in a simulated run: the simulator's client configuration
/// (its endpoint and key for every app server hostname) and the directory of known-hosts
/// files it names (one per app server hostname).
#[derive(Clone, Debug)]
pub struct SshRoute {
    pub config: std::path::PathBuf,
    pub known_hosts: std::path::PathBuf,
}

/// `words` as one POSIX shell word each (`'updb' '-y'`): the remote shell runs exactly the
/// words the plan gave.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The arguments of `ssh` for `remote` on the target, as terminus runs it (`-T`, port 2222,
/// IPv4, the trace id sent as `TRACE_ID`), with the host key of an app server never seen
/// before accepted and recorded (`accept-new`: a changed one still fails) and no prompt
/// (`BatchMode`). A rehearsal differs only in where it connects: the simulator's client
/// configuration (`-F`), which sends `*.drush.in` to its endpoint.
fn ssh_args(target_user: &str, host: &str, remote: &str, trace_id: &str, route: Option<&SshRoute>) -> Vec<String> {
    let mut args: Vec<String> =
        ["-T", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new"].map(String::from).into();
    args.extend([
        "-o".to_owned(),
        "AddressFamily=inet".to_owned(),
        "-o".to_owned(),
        format!("SetEnv=TRACE_ID={trace_id}"),
    ]);
    args.extend(["-o".to_owned(), "ConnectTimeout=30".to_owned()]);
    match route {
        Some(route) => args.extend(["-F".to_owned(), route.config.display().to_string()]),
        None => args.extend(["-p".to_owned(), PORT.to_string()]),
    }
    args.push(format!("{target_user}@{host}"));
    args.push(format!("TRACE_ID={trace_id} {remote}"));
    args
}

/// Said of a command run on dev or a multidev in git mode, as terminus warns: its app
/// server's code is read-only.
const GIT_MODE_NOTE: &str =
    " (note: the environment is in git mode, so changes the command made to code will not stick; set it to sftp first)";

/// An app server's host key that differs from the one recorded: OpenSSH's words for it.
fn host_key_refused(stderr: &str) -> bool {
    stderr.contains("Host key verification failed") || stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
}

/// OpenSSH exits 255 for its own errors; these say the command never ran: no connection was
/// made, or it ended before the handshake (`kex_exchange_identification: Connection reset`).
/// A reset or close later may come after the command ran, and is not one of them.
fn never_ran(stdout: &str, stderr: &str) -> bool {
    let before = [
        "Connection refused",
        "Connection timed out",
        "Could not resolve hostname",
        "No route to host",
        "Network is unreachable",
        "kex_exchange_identification",
    ];
    stdout.is_empty() && before.iter().any(|needle| stderr.contains(needle))
}

/// The known-hosts file OpenSSH names for a changed host key (`Offending ED25519 key in
/// /home/me/.ssh/known_hosts:3`).
fn offending_file(stderr: &str) -> Option<&str> {
    stderr.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("Offending ")?;
        let (_, path) = rest.split_once(" key in ")?;
        Some(path.rsplit_once(':').map_or(path, |(file, _line)| file).trim())
    })
}

/// OpenSSH's words when every key was refused (exit 255, nothing printed by a session): no
/// command runs before authentication succeeds.
fn refused_authentication(stdout: &str, stderr: &str) -> bool {
    stdout.is_empty() && stderr.lines().any(|l| l.contains("Permission denied (") && l.trim_end().ends_with(")."))
}

/// Whether `setpriv` (util-linux) was found missing: started through it with a parent-death
/// signal, ssh dies with this process, even when this process is killed outright.
static NO_SETPRIV: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Starts `ssh args`, through `setpriv --pdeathsig KILL` where it is installed, in its own
/// process group (a terminal's Ctrl-C is this process's to handle: it drains the run rather
/// than killing every session in flight), killed when dropped.
fn spawn_ssh(args: &[String]) -> std::io::Result<tokio::process::Child> {
    // Found first: through setpriv, a missing ssh would be setpriv's exit 127, which reads as
    // the remote command's own.
    let ssh = tb_core::env::find_program("ssh").ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "`ssh` is not on PATH: nothing ran (install openssh-client)")
    })?;
    let ssh = ssh.to_string_lossy();
    let command = |program: &str, prefix: &[&str]| {
        let mut c = tokio::process::Command::new(program);
        c.args(prefix).args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        #[cfg(unix)]
        c.process_group(0);
        c
    };
    if !NO_SETPRIV.load(std::sync::atomic::Ordering::Relaxed) {
        match command("setpriv", &["--pdeathsig", "KILL", "--", &ssh]).spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                NO_SETPRIV.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            spawned => return spawned,
        }
    }
    command(&ssh, &[]).spawn()
}

/// The last `KEPT` bytes of `bytes` as text.
fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(KEPT);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

fn last_line(text: &str) -> &str {
    text.lines().rev().find(|l| !l.trim().is_empty()).map_or("", str::trim)
}

/// Connections tried before a command that never ran is given up (the job's `retries` may
/// try the task again after that).
const CONNECTS: u32 = 3;

/// A remote command to run.
pub(super) struct Call<'a> {
    /// `drush` or `wp`.
    pub(super) tool: &'static str,
    pub(super) words: &'a [String],
    /// `output: report`: the output goes into the reports, redacted.
    pub(super) keep_output: bool,
    /// Running it twice does no harm: one that may have run is tried again.
    pub(super) idempotent: bool,
}

/// Runs `tool words…` on the target environment's app server; a connection that failed
/// before the command ran is tried again (the command itself never runs twice).
pub(super) async fn perform(
    ops: &Ops,
    target: &Target,
    call: &Call<'_>,
    timeout: Duration,
    ctx: &impl super::OpContext,
) -> Result<OpOutput, OpError> {
    let env = env_of(target)?;
    // As terminus: an environment that does not exist fails before any connection (ssh would
    // only say "Permission denied"), and one in git mode is said to be.
    let envs = ops.client.environments(&target.site_id).await?;
    let Some(environment) = envs.get(env) else {
        let message = format!("{}.{env} does not exist; nothing ran", target.site);
        return Err(OpError::failed("the environment does not exist; nothing ran", message));
    };
    let git_mode = env != "test" && env != "live" && environment.on_server_development == Some(false);
    // On record before the command can run: a crash from here on leaves "may have run". One
    // record serves the connections below: only one that never ran is tried again.
    ctx.attempt_starting().await?;
    let mut attempt = 1;
    loop {
        // Set by `once` from ssh's own evidence: the command never started (`Some(false)`),
        // or ran to an end that was seen (`Some(true)`); unknown otherwise.
        let mut ended: Option<bool> = None;
        match once(ops, target, call, timeout, git_mode, ctx, &mut ended).await {
            // Only a connection that provably ran nothing is tried again here: running the
            // command again (an idempotent one whose end was not seen) is a new attempt, the
            // executor's to count, journal and bound by `retries`.
            Err(e) if e.class == ErrorClass::Transient && ended == Some(false) && attempt < CONNECTS => {
                let base = ops.platform_time(Duration::from_secs(2));
                tokio::time::sleep(tb_core::backoff::delay(base, attempt, base * 8)).await;
                attempt += 1;
            }
            Err(e) => {
                // On record, so that a resume runs it again rather than fearing it ran unseen.
                if let Some(ran) = ended {
                    ctx.attempt_ended(ran);
                }
                return Err(e);
            }
            done => return done,
        }
    }
}

/// A hex sha256 of `bytes`.
fn digest(bytes: &[u8]) -> String {
    use sha2::{Digest as _, Sha256};
    tb_core::hex::hex(&Sha256::digest(bytes))
}

/// Reads ssh's stdout and stderr to their ends, then waits for it.
async fn read_all(mut child: tokio::process::Child) -> (Vec<u8>, Vec<u8>, std::io::Result<std::process::ExitStatus>) {
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let (mut o, mut e) = (Vec::new(), Vec::new());
    let reading = async {
        if let Some(out) = out.as_mut() {
            let _partial = out.read_to_end(&mut o).await;
        }
    };
    let erring = async {
        if let Some(err) = err.as_mut() {
            let _partial = err.read_to_end(&mut e).await;
        }
    };
    tokio::join!(reading, erring);
    let status = child.wait().await;
    (o, e, status)
}

/// What the files keep of a remote command: the exit code, sizes and digests; the output
/// itself, redacted, only when the job asks for it (`keep`) and the command prints no
/// credential (`sensitive` names the one it prints).
fn kept(
    shown: &str,
    code: Option<i32>,
    (stdout_bytes, stderr_bytes): (&[u8], &[u8]),
    (stdout, stderr): (&str, &str),
    keep: bool,
    sensitive: Option<&str>,
) -> serde_json::Value {
    let mut data = json!({
        "command": shown,
        "exit_code": code,
        "stdout_bytes": stdout_bytes.len(),
        "stderr_bytes": stderr_bytes.len(),
        "stdout_sha256": digest(stdout_bytes),
        "stderr_sha256": digest(stderr_bytes),
    });
    if keep {
        data["stdout"] = json!(tb_core::redact::redact(stdout));
        data["stderr"] = json!(tb_core::redact::redact(stderr));
    } else {
        let why = sensitive.map_or_else(
            || "not kept (`output: report` keeps it, redacted)".to_owned(),
            |what| format!("never kept: the command prints {what}"),
        );
        data["output"] = json!(why);
    }
    data
}

/// ssh refused the app server's host key: nothing ran; the error names the file ssh named
/// (else the one it would have used) and the command that removes the old key from it.
fn host_key_changed(ops: &Ops, host: &str, stderr: &str) -> OpError {
    let named = offending_file(stderr);
    let file = named.map_or_else(
        || {
            ops.ssh_route.as_ref().map_or_else(
                || "~/.ssh/known_hosts (or your ssh_config's UserKnownHostsFile)".to_owned(),
                |route| route.known_hosts.join(host).display().to_string(),
            )
        },
        str::to_owned,
    );
    let option = named.map(|f| format!("-f '{f}' ")).unwrap_or_default();
    OpError::failed(
        "the app server's host key is not the one recorded; nothing ran",
        format!(
            "the host key of {host} is not the one recorded in {file}: if the platform changed it, remove the old \
             one (`ssh-keygen {option}-R '[{host}]:{PORT}'`) and run again; nothing ran"
        ),
    )
}

async fn once(
    ops: &Ops,
    target: &Target,
    call: &Call<'_>,
    timeout: Duration,
    git_mode: bool,
    ctx: &impl super::OpContext,
    ended: &mut Option<bool>,
) -> Result<OpOutput, OpError> {
    let (tool, words) = (call.tool, call.words);
    let env = env_of(target)?;
    // Until ssh has started, nothing can have run.
    *ended = Some(false);
    let _slot = ops.ssh_slots.acquire().await.map_err(|_| OpError::permanent("the run is stopping"))?;
    let user = format!("{env}.{}", target.site_id);
    let host = format!("appserver.{env}.{}.drush.in", target.site_id);
    let shown = std::iter::once(tool.to_owned()).chain(words.iter().cloned()).collect::<Vec<_>>().join(" ");
    let remote = std::iter::once(tool.to_owned()).chain(words.iter().map(|w| quote(w))).collect::<Vec<_>>().join(" ");
    let args = ssh_args(&user, &host, &remote, ops.client.trace_id(), ops.ssh_route.as_ref());
    let child = spawn_ssh(&args).map_err(|e| OpError::permanent(format!("cannot run ssh: {e}")))?;
    // ssh's own evidence decides from here: what it said before a session, or its end.
    *ended = None;
    let Ok((stdout_bytes, stderr_bytes, status)) = tokio::time::timeout(timeout, read_all(child)).await else {
        return Err(OpError::permanent(format!(
            "`{shown}` on {}.{env} did not end within {}; it was stopped",
            target.site,
            humantime::format_duration(timeout)
        )));
    };
    let status = status.map_err(|e| OpError::permanent(format!("ssh failed: {e}")))?;
    let (stdout, stderr) = (tail(&stdout_bytes), tail(&stderr_bytes));
    let sensitive = tb_plan::plan::ops::prints_credentials(tool, words);
    let keep = call.keep_output && sensitive.is_none();
    let data = kept(&shown, status.code(), (&stdout_bytes, &stderr_bytes), (&stdout, &stderr), keep, sensitive);
    // The person who ran it sees it all, as terminus shows it.
    ctx.output(&json!({ "command": shown, "exit_code": status.code(), "stdout": stdout, "stderr": stderr }));
    match status.code() {
        Some(0) => {
            let said = last_line(&stdout);
            let mut message = if keep && !said.is_empty() {
                format!("`{shown}`: {}", tb_core::redact::redact(said))
            } else {
                format!("`{shown}` succeeded ({} bytes of output)", stdout_bytes.len())
            };
            if git_mode {
                message.push_str(GIT_MODE_NOTE);
            }
            Ok(OpOutput { changed: true, message, data: Some(data) })
        }
        Some(255) if host_key_refused(&stderr) => {
            *ended = Some(false);
            Err(host_key_changed(ops, &host, &stderr))
        }
        Some(255) if refused_authentication(&stdout, &stderr) => {
            *ended = Some(false);
            let message = format!(
                "{host} refused the key ({}); nothing ran: check the key ssh offers for this account",
                tb_core::redact::redact(last_line(&stderr))
            );
            Err(OpError::failed("the app server refused the key; nothing ran", message))
        }
        Some(255) if never_ran(&stdout, &stderr) => {
            *ended = Some(false);
            let message = format!("cannot reach {host}: {}", tb_core::redact::redact(last_line(&stderr)));
            Err(OpError { class: ErrorClass::Transient, ..OpError::failed("cannot reach the app server", message) })
        }
        // The connection ended and the command's own end was not seen: it may have run.
        Some(255) | None => {
            let why = tb_core::redact::redact(last_line(&stderr));
            let ended = if why.is_empty() { "the session ended".to_owned() } else { why };
            let message = format!("`{shown}` may have run: its end was not seen ({ended})");
            let reason = "the remote command may have run: its end was not seen";
            Err(if call.idempotent {
                OpError { class: ErrorClass::Transient, ..OpError::failed(reason, message) }
            } else {
                OpError::failed(reason, format!("{message}; not run again (its job may say `idempotent: true`)"))
            })
        }
        Some(code) => {
            // The command ran to its end, and it is known.
            *ended = Some(true);
            // An operator needs the error to act: stderr's last line, redacted; stdout's only
            // when its output may be kept.
            // A command that prints credentials keeps none of its output, its errors included:
            // what it failed on may be the secret itself.
            let message = if let Some(what) = sensitive {
                format!("`{shown}` exited with {code} (its output is never kept: the command prints {what})")
            } else {
                let why = if keep {
                    [last_line(&stderr), last_line(&stdout)].into_iter().find(|l| !l.is_empty()).unwrap_or("")
                } else {
                    last_line(&stderr)
                };
                format!("`{shown}` exited with {code}: {}", tb_core::redact::redact(why))
            };
            Err(OpError::because(Cause::Command { exit_code: code }, message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_words_are_quoted_and_the_host_is_terminus_s() {
        assert_eq!(quote("it's"), r"'it'\''s'");
        let args = ssh_args("live.abc", "appserver.live.abc.drush.in", "drush 'cr'", "t1", None);
        assert_eq!(
            args,
            [
                "-T",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=accept-new",
                "-o",
                "AddressFamily=inet",
                "-o",
                "SetEnv=TRACE_ID=t1",
                "-o",
                "ConnectTimeout=30",
                "-p",
                "2222",
                "live.abc@appserver.live.abc.drush.in",
                "TRACE_ID=t1 drush 'cr'"
            ]
        );
        // A rehearsal: the same options, but where it connects.
        let route = SshRoute { config: "/sim/ssh_config".into(), known_hosts: "/sim/known_hosts".into() };
        let rehearsed = ssh_args("live.abc", "appserver.live.abc.drush.in", "drush 'cr'", "t1", Some(&route));
        assert_eq!(rehearsed[..11], args[..11]);
        assert_eq!(rehearsed[11..13], ["-F", "/sim/ssh_config"]);
        assert_eq!(rehearsed[13..], args[13..]);
        assert!(never_ran("", "ssh: connect to host x port 2222: Connection refused"));
        assert!(never_ran("", "kex_exchange_identification: read: Connection reset by peer"));
        // A refused key is not a network's failure (not tried again), but nothing ran either.
        assert!(!never_ran("", "Permission denied (publickey)."));
        assert!(refused_authentication("", "live.abc@appserver.live.abc.drush.in: Permission denied (publickey).\n"));
        assert!(!refused_authentication("drush said things\n", "Permission denied (publickey)."));
        assert!(!refused_authentication("", "Connection reset by peer"));
        let changed = "Add correct host key in /home/me/.ssh/known_hosts to get rid of this message.\nOffending ED25519 key in /home/me/.ssh/known_hosts:3\n  remove with:\nHost key verification failed.\n";
        assert_eq!(offending_file(changed), Some("/home/me/.ssh/known_hosts"));
        assert_eq!(offending_file("Host key verification failed."), None);
        // A reset after the command printed, or without a word of the handshake: it may have run.
        assert!(!never_ran("", "Connection reset by peer"));
        assert!(!never_ran("[success] Updated.\n", "ssh: connect to host x port 2222: Connection refused"));
    }
}
