//! `auth login|whoami|logout`: machine-token login through terminus's own cache files
//! (pantheon-api.md §1.4), so a terminus login works here and back. Only `auth login` writes
//! those files; a run with a token from the environment keeps its session in memory.

use crate::cli::error::{CommandError, CommandResult};
use crate::cli::exit::ExitStatus;
use crate::cli::{AuthCommand, Io};
use crate::operations::api::{ApiClient, ApiError, SessionStore, unix_now};
use crate::run::connect::{api_config, resolve_settings, runtime};
use crate::secret::Secret;
use crate::settings::{Layer, Settings};

pub(super) fn run(action: &AuthCommand, io: &mut Io<'_>) -> CommandResult {
    let settings =
        resolve_settings(io.vars, Layer::default(), None, false).map_err(|e| CommandError::invalid(e.to_string()))?;
    let store = SessionStore::Files { cache_dir: settings.cache_dir.clone(), tokens_dir: settings.tokens_dir.clone() };
    let runtime = runtime()?;
    match action {
        AuthCommand::Login { machine_token } => {
            let token = machine_token.clone().map(Secret::new).or_else(|| settings.machine_token.clone());
            let Some(token) = token else {
                return Err(CommandError::invalid(
                    "no machine token: pass --machine-token or set TERMINUS_MACHINE_TOKEN",
                ));
            };
            let client = client(&settings, Some(token.clone()))?;
            // Asks who logged in with the session just saved, not with a second login.
            let saved_session = self::client(&settings, None)?;
            let (email, saved) = runtime
                .block_on(async {
                    let session = client.login_with(&token).await?;
                    store.write_session(&session).await.map_err(|e| save_error("session", &e))?;
                    let user = saved_session.me().await?;
                    #[expect(clippy::cast_possible_truncation, reason = "unix seconds")]
                    let saved = store
                        .write_token(&token, &user.email, unix_now() as i64)
                        .await
                        .map_err(|e| save_error("token", &e))?;
                    Ok::<_, ApiError>((user.email, saved))
                })
                .map_err(|e| failed(&e))?;
            if !io.quiet {
                writeln!(io.stdout, "Logged in as {email}.")?;
                if let Some(path) = saved {
                    tracing::info!(path = %path.display(), "machine token saved");
                }
            }
            Ok(ExitStatus::Success)
        }
        AuthCommand::Whoami => {
            let client = client(&settings, settings.machine_token.clone())?;
            let user = runtime.block_on(client.me()).map_err(|e| failed(&e))?;
            writeln!(io.stdout, "{}", user.email)?;
            Ok(ExitStatus::Success)
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

fn client(settings: &Settings, token: Option<Secret>) -> Result<ApiClient, CommandError> {
    let config = crate::operations::api::ApiConfig { machine_token: token, ..api_config(settings) };
    ApiClient::new(config).map_err(|e| CommandError::invalid(e.to_string()))
}

fn save_error(what: &str, e: &std::io::Error) -> ApiError {
    ApiError {
        request: format!("saving the {what}"),
        kind: crate::operations::api::ApiErrorKind::Config { message: e.to_string() },
    }
}

/// An authentication failure or an unreachable API is exit 3.
fn failed(e: &ApiError) -> CommandError {
    CommandError::unreachable(e.to_string())
}
