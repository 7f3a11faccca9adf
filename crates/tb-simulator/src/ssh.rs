//! The simulator's SSH endpoint, as Pantheon's app servers answer `terminus remote:drush` and
//! `remote:wp`: a real SSH server (russh) on 127.0.0.1 that accepts the one key it made for
//! this simulator, as the user `<env>.<site id>` of an environment the world has, and runs
//! the common drush and wp commands against the world (output, exit code). The client under
//! `--simulate` is the system's OpenSSH, pointed here with that key.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::keys::{Algorithm, PrivateKey, PublicKey};
use russh::server::{Auth, Msg, Session};
use russh::{Channel, ChannelId};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What a client needs to reach the endpoint: its port, the private key it accepts (a file
/// readable by its owner only), and an OpenSSH client configuration sending every app server
/// hostname (`*.drush.in`) here with that key and a known-hosts file of its own; all removed
/// when the simulator stops.
#[derive(Clone, Debug)]
pub struct SshAccess {
    pub port: u16,
    pub identity: PathBuf,
    /// `ssh -F` this: where app servers are, for a rehearsal.
    pub config: PathBuf,
    /// Where the client records the app servers' host keys: a directory holding a
    /// known-hosts file per app server hostname, so that each is checked as its own host
    /// although all of them are this one endpoint.
    pub known_hosts: PathBuf,
}

/// Who may log in: the key, and the environments (`<env>.<site id>`) that exist.
pub(crate) trait Accounts: Send + Sync + 'static {
    fn exists(&self, user: &str) -> bool;
    /// The output, error output and exit code of `command` run as `user`.
    fn exec(&self, user: &str, command: &str) -> (String, String, u32);
}

/// The running endpoint; stops with the token.
pub(crate) struct SshEndpoint {
    pub access: SshAccess,
    dir: PathBuf,
}

impl Drop for SshEndpoint {
    fn drop(&mut self) {
        let _gone = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the endpoint does wrong, as the world's knobs say.
#[derive(Clone, Debug, Default)]
pub(crate) struct Faults {
    /// The first this many connections are closed before the greeting.
    pub(crate) drops: u32,
    /// Every key is refused until this file exists: authentication fails.
    pub(crate) refuse_keys_until: Option<std::path::PathBuf>,
    /// The first this many sessions end after the output, with no exit status.
    pub(crate) cut_after_output: u32,
}

/// Starts the endpoint on 127.0.0.1 (a free port) until `cancel`, failing as `faults` say.
pub(crate) async fn start(
    accounts: Arc<dyn Accounts>,
    faults: Faults,
    cancel: CancellationToken,
) -> std::io::Result<SshEndpoint> {
    let mut rng = rand::rng();
    let host = PrivateKey::random(&mut rng, Algorithm::Ed25519).map_err(std::io::Error::other)?;
    let client = PrivateKey::random(&mut rng, Algorithm::Ed25519).map_err(std::io::Error::other)?;
    let dir = std::env::temp_dir().join(format!("terminus-batch-sim-ssh-{}-{}", std::process::id(), fastrand::u64(..)));
    std::fs::create_dir_all(&dir)?;
    let identity = dir.join("id_ed25519");
    write_private(&identity, &client)?;
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let port = listener.local_addr()?.port();
    let config = Arc::new(russh::server::Config {
        keys: vec![host],
        auth_rejection_time: std::time::Duration::from_millis(10),
        auth_rejection_time_initial: Some(std::time::Duration::ZERO),
        inactivity_timeout: Some(std::time::Duration::from_secs(600)),
        ..Default::default()
    });
    let server = Endpoint {
        accounts,
        key: client.public_key().clone(),
        user: None,
        refuse_until: faults.refuse_keys_until.clone(),
        cuts: Arc::new(std::sync::atomic::AtomicU32::new(faults.cut_after_output)),
    };
    tokio::spawn(async move {
        let mut drops = faults.drops;
        let mut sessions = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _peer)) = accepted else { continue };
                    if drops > 0 {
                        drops -= 1;
                        drop(stream);
                        continue;
                    }
                    let (config, handler) = (Arc::clone(&config), server.clone());
                    sessions.spawn(async move {
                        if let Ok(session) = russh::server::run_stream(config, stream, handler).await {
                            let _ended = session.await;
                        }
                    });
                }
                () = cancel.cancelled() => break,
            }
        }
        sessions.abort_all();
    });
    let known_hosts = dir.join("known_hosts.d");
    std::fs::create_dir_all(&known_hosts)?;
    let config = dir.join("ssh_config");
    // Only where it connects differs from a real run: the same host names, the same host key
    // checks, recorded in a file of the simulator's own.
    let text = format!(
        "Host *.drush.in\n  HostName 127.0.0.1\n  Port {port}\n  IdentityFile {}\n  IdentitiesOnly yes\n  \
         UserKnownHostsFile {}/%n\n  LogLevel ERROR\n",
        identity.display(),
        known_hosts.display()
    );
    std::fs::write(&config, text)?;
    Ok(SshEndpoint { access: SshAccess { port, identity, config, known_hosts }, dir })
}

fn write_private(path: &Path, key: &PrivateKey) -> std::io::Result<()> {
    let text = key.to_openssh(russh::keys::ssh_key::LineEnding::LF).map_err(std::io::Error::other)?;
    std::fs::write(path, text.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[derive(Clone)]
struct Endpoint {
    accounts: Arc<dyn Accounts>,
    key: PublicKey,
    user: Option<String>,
    /// Refuse every key until this file exists.
    refuse_until: Option<std::path::PathBuf>,
    /// Sessions still to be cut after their output (shared by every connection).
    cuts: Arc<std::sync::atomic::AtomicU32>,
}

impl russh::server::Handler for Endpoint {
    type Error = russh::Error;

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let refused = self.refuse_until.as_ref().is_some_and(|gate| !gate.exists());
        if !refused && key.public_key.key_data() == self.key.key_data() && self.accounts.exists(user) {
            self.user = Some(user.to_owned());
            return Ok(Auth::Accept);
        }
        Ok(Auth::Reject { proceed_with_methods: None, partial_success: false })
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let command = String::from_utf8_lossy(data).into_owned();
        let user = self.user.clone().unwrap_or_default();
        let (out, err, code) = self.accounts.exec(&user, &command);
        session.channel_success(channel)?;
        if !out.is_empty() {
            session.data(channel, out.into_bytes())?;
        }
        if !err.is_empty() {
            session.extended_data(channel, 1, err.into_bytes())?;
        }
        let cut = self
            .cuts
            .fetch_update(std::sync::atomic::Ordering::SeqCst, std::sync::atomic::Ordering::SeqCst, |n| {
                n.checked_sub(1)
            })
            .is_ok();
        if cut {
            // The command ran; its end never reaches the client.
            return Err(russh::Error::Disconnect);
        }
        session.exit_status_request(channel, code)?;
        session.eof(channel)?;
        session.close(channel)?;
        Ok(())
    }
}

/// A command line as the client quoted it (`drush 'updb' '-y'`) back into its words: single
/// quotes, and `'\''` for a quote inside one; nothing else is special.
#[must_use]
pub fn unquote(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let (mut quoted, mut any) = (false, false);
    let mut chars = command.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '\'') => quoted = false,
            (false, '\'') => {
                quoted = true;
                any = true;
            }
            (false, '\\') => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            (false, ' ') => {
                if any || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            (_, c) => word.push(c),
        }
    }
    if any || !word.is_empty() {
        words.push(word);
    }
    words
}

/// A credential of the simulated site, the same on every run: `sim-<what>-<site>-<digest>`.
#[must_use]
pub fn secret(site: &str, what: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{site}/{what}").as_bytes());
    format!("sim-{what}-{site}-{}", tb_core::hex::hex(&digest[..6]))
}

/// What the simulated app server answers to a drush or wp command: the common commands
/// agencies run after a deploy succeed with their usual output; anything else is "not
/// defined", exit 1; a site whose world sets `remote_fails` fails every command, exit 1.
#[must_use]
pub fn answer(words: &[String], site: &str, fails: bool) -> (String, String, u32) {
    let args: Vec<&str> = words.iter().map(String::as_str).collect();
    if fails {
        return (String::new(), format!("[error] Simulated failure on {site}.\n"), 1);
    }
    let ok = |out: &str| (format!("{out}\n"), String::new(), 0);
    match args.as_slice() {
        ["drush", "updb" | "updatedb" | "updatedb:status" | "updbst", ..] => ok(" [success] No pending updates."),
        ["drush", "cr" | "cache:rebuild" | "cache-rebuild", ..] => ok(" [success] Cache rebuild complete."),
        ["drush", "cim" | "config:import" | "config-import", ..] => ok(" [notice] There are no changes to import."),
        ["drush", "cex" | "config:export" | "config-export", ..] => {
            ok(" [notice] The active configuration is identical to the configuration in the export directory.")
        }
        ["drush", "status" | "st" | "core:status", ..] => ok(&format!(
            " Drupal version : 10.3.1\n Site URI       : https://{site}.pantheonsite.io\n Drush version  : 12.5.2"
        )),
        ["drush", "cc", "all", ..] => ok(" [success] 'all' cache was cleared."),
        // The words as received, one JSON string each, so a test sees the argv exactly.
        ["drush", "cset" | "config:set" | "config-set", rest @ ..] => {
            ok(&format!(" [success] config:set {}", serde_json::json!(rest)))
        }
        // What prints credentials, as drush and wp print them: a one-time login link, the
        // database's connection line, its password.
        ["drush", "uli" | "user:login" | "user-login", ..] => {
            ok(&format!("https://{site}.pantheonsite.io/user/reset/1/1767225600/{}/login", secret(site, "uli")))
        }
        ["drush", "sql-connect" | "sql:connect" | "sqlc", ..] => ok(&format!(
            "mysql --user=pantheon --password={} --database=pantheon --host=dbserver.{site}.drush.in --port=10123 -A",
            secret(site, "db")
        )),
        ["wp", "config", "get", "DB_PASSWORD", ..] => ok(&secret(site, "db")),
        // A failure that quotes the config file's line, password and all, as PHP does.
        ["wp", "config", "set", ..] => (
            String::new(),
            format!(
                "PHP Parse error: syntax error, unexpected ')' in wp-config.php on line 23: define( 'DB_PASSWORD', '{}' );\n",
                secret(site, "db")
            ),
            1,
        ),
        ["wp", "user", "reset-password", ..] => ok(&format!(
            "Reset password for admin.\nSuccess: Password reset for 1 user. New password: {}",
            secret(site, "wp")
        )),
        ["wp", "core", "update-db", ..] => ok("Success: WordPress database already at latest db version 57155."),
        ["wp", "cache", "flush", ..] => ok("Success: The cache was flushed."),
        ["wp", "core", "version", ..] => ok("6.6.1"),
        ["wp", "plugin", "list", ..] => ok("name\tstatus\tupdate\tversion\nakismet\tactive\tnone\t5.3.3"),
        ["wp", "rewrite", "flush", ..] => ok("Success: Rewrite rules flushed."),
        [tool @ ("drush" | "wp"), rest @ ..] => {
            let name = rest.first().copied().unwrap_or_default();
            (String::new(), format!("Command \"{name}\" is not defined ({tool}).\n"), 1)
        }
        _ => (String::new(), "Only drush and wp commands run here.\n".to_owned(), 127),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_words_come_back_as_sent() {
        assert_eq!(unquote("drush 'updb' '-y'"), ["drush", "updb", "-y"]);
        assert_eq!(
            unquote("wp 'option' 'update' 'blogname' 'It'\\''s'"),
            ["wp", "option", "update", "blogname", "It's"]
        );
        assert_eq!(unquote("drush ''"), ["drush", ""]);
    }

    #[test]
    fn common_commands_answer_and_unknown_ones_fail() {
        let w = |s: &str| unquote(s);
        assert_eq!(answer(&w("drush updb -y"), "a", false).2, 0);
        assert_eq!(answer(&w("wp cache flush"), "a", false).0, "Success: The cache was flushed.\n");
        assert_eq!(answer(&w("drush nope"), "a", false).2, 1);
        assert_eq!(answer(&w("drush cr"), "a", true).2, 1);
    }
}
