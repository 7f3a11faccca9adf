//! `auth login|whoami|logout`: machine-token login through terminus's own cache files
//! (pantheon-api.md §1.4), so a terminus login works here and back.

use std::io;

use super::connect::{api_config, resolve_settings};
use super::settings_failed;
use crate::cli::diagnostics::write_error;
use crate::cli::exit::ExitStatus;
use crate::cli::{AuthCommand, Io};
use crate::operations::api::{ApiClient, ApiError, SessionStore, unix_now};
use crate::secret::Secret;
use crate::settings::{Layer, Settings};

pub(super) fn run(action: &AuthCommand, io: &mut Io<'_>) -> io::Result<ExitStatus> {
    let settings = match resolve_settings(io.vars, Layer::default(), None, false) {
        Ok(s) => s,
        Err(e) => return settings_failed(io, &e),
    };
    let store = SessionStore::Files { cache_dir: settings.cache_dir.clone(), tokens_dir: settings.tokens_dir.clone() };
    let runtime = crate::cli::runtime()?;
    match action {
        AuthCommand::Login { machine_token } => {
            let token = machine_token.clone().map(Secret::new).or_else(|| settings.machine_token.clone());
            let Some(token) = token else {
                write_error(io.stderr, "no machine token: pass --machine-token or set TERMINUS_MACHINE_TOKEN")?;
                return Ok(ExitStatus::Invalid);
            };
            let client = match client(&settings, Some(token.clone()), io)? {
                Ok(c) => c,
                Err(status) => return Ok(status),
            };
            let result = runtime.block_on(async {
                let session = client.login_with(&token).await?;
                store.write_session(&session).await.map_err(|e| save_error("session", &e))?;
                let user = client.me().await?;
                #[expect(clippy::cast_possible_truncation, reason = "unix seconds")]
                let saved = store
                    .write_token(&token, &user.email, unix_now() as i64)
                    .await
                    .map_err(|e| save_error("token", &e))?;
                Ok::<_, ApiError>((user.email, saved))
            });
            match result {
                Ok((email, saved)) => {
                    if !io.quiet {
                        writeln!(io.stdout, "Logged in as {email}.")?;
                        if let Some(path) = saved {
                            tracing::info!(path = %path.display(), "machine token saved");
                        }
                    }
                    Ok(ExitStatus::Success)
                }
                Err(e) => failed(io, &e),
            }
        }
        AuthCommand::Whoami => {
            let client = match client(&settings, settings.machine_token.clone(), io)? {
                Ok(c) => c,
                Err(status) => return Ok(status),
            };
            match runtime.block_on(client.me()) {
                Ok(user) => {
                    writeln!(io.stdout, "{}", user.email)?;
                    Ok(ExitStatus::Success)
                }
                Err(e) => failed(io, &e),
            }
        }
        AuthCommand::Logout => {
            let removed = runtime.block_on(store.logout())?;
            if !io.quiet {
                let what = if removed == 1 { "file" } else { "files" };
                writeln!(io.stdout, "Logged out ({removed} {what} removed from {}).", settings.cache_dir.display())?;
            }
            Ok(ExitStatus::Success)
        }
    }
}

fn client(settings: &Settings, token: Option<Secret>, io: &mut Io<'_>) -> io::Result<Result<ApiClient, ExitStatus>> {
    let config = crate::operations::api::ApiConfig { machine_token: token, ..api_config(settings) };
    match ApiClient::new(config) {
        Ok(c) => Ok(Ok(c)),
        Err(e) => {
            write_error(io.stderr, &e.to_string())?;
            Ok(Err(ExitStatus::Invalid))
        }
    }
}

fn save_error(what: &str, e: &io::Error) -> ApiError {
    ApiError {
        request: format!("saving the {what}"),
        kind: crate::operations::api::ApiErrorKind::Config { message: e.to_string() },
    }
}

/// An authentication failure or an unreachable API is exit 3.
fn failed(io: &mut Io<'_>, e: &ApiError) -> io::Result<ExitStatus> {
    write_error(io.stderr, &e.to_string())?;
    Ok(ExitStatus::Unreachable)
}
