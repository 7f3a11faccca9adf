//! `auth login|whoami|logout` as a library: machine-token login through terminus's own cache
//! files (pantheon-api.md §1.4), so a terminus login works here and back. Only [`login`]
//! writes those files; a run with a token from the environment keeps its session in memory.

use std::path::PathBuf;

use super::connect::{api_config, runtime};
use super::{Refusal, RunError};
use tb_core::secret::Secret;
use tb_operations::api::{ApiClient, ApiConfig, ApiError, ApiErrorKind, SessionStore, unix_now};
use tb_settings::{EnvVars, Layer, Settings};

/// Who logged in, and where the token was saved.
#[derive(Debug)]
pub struct LoggedIn {
    pub email: String,
    pub token_file: Option<PathBuf>,
}

fn settings(vars: &EnvVars) -> Result<Settings, RunError> {
    tb_settings::resolve(vars, Layer::default(), None, false, None).map_err(|e| Refusal::Settings(e).into())
}

fn store(settings: &Settings) -> SessionStore {
    SessionStore::Files { cache_dir: settings.cache_dir.clone(), tokens_dir: settings.tokens_dir.clone() }
}

fn client(settings: &Settings, token: Option<Secret>) -> Result<ApiClient, RunError> {
    ApiClient::new(ApiConfig { machine_token: token, ..api_config(settings) }).map_err(|e| Refusal::Client(e).into())
}

/// An authentication failure or an unreachable API, while doing `context`.
fn failed(context: &'static str) -> impl Fn(ApiError) -> RunError {
    move |source| RunError::unreachable(context, source)
}

fn save_error(what: &str, e: &std::io::Error) -> ApiError {
    ApiError { request: format!("saving the {what}"), kind: ApiErrorKind::Config { message: e.to_string() } }
}

/// Exchanges `token` (else `TERMINUS_MACHINE_TOKEN`) for a session and saves both, as
/// `terminus auth:login` does.
pub fn login(vars: &EnvVars, token: Option<Secret>) -> Result<LoggedIn, RunError> {
    let settings = settings(vars)?;
    let Some(token) = token.or_else(|| settings.machine_token.clone()) else {
        return Err(Refusal::NoMachineToken.into());
    };
    let store = store(&settings);
    let logging_in = client(&settings, Some(token.clone()))?;
    // Asks who logged in with the session just saved, not with a second login.
    let saved_session = client(&settings, None)?;
    runtime()?
        .block_on(async {
            let session = logging_in.login_with(&token).await?;
            store.write_session(&session).await.map_err(|e| save_error("session", &e))?;
            let user = saved_session.me().await?;
            #[expect(clippy::cast_possible_truncation, reason = "unix seconds")]
            let token_file =
                store.write_token(&token, &user.email, unix_now() as i64).await.map_err(|e| save_error("token", &e))?;
            Ok::<_, ApiError>(LoggedIn { email: user.email, token_file })
        })
        .map_err(failed("cannot log in"))
}

/// The logged-in user's email.
pub fn whoami(vars: &EnvVars) -> Result<String, RunError> {
    let settings = settings(vars)?;
    let client = client(&settings, settings.machine_token.clone())?;
    runtime()?.block_on(client.me()).map(|user| user.email).map_err(failed("cannot tell who is logged in"))
}

/// Deletes the saved session and machine tokens, as `terminus auth:logout` does: how many
/// files were removed, and the cache directory.
pub fn logout(vars: &EnvVars) -> Result<(usize, PathBuf), RunError> {
    let settings = settings(vars)?;
    let removed = runtime()?
        .block_on(store(&settings).logout())
        .map_err(|e| RunError::internal("cannot remove the saved login", e))?;
    Ok((removed, settings.cache_dir))
}
