//! `auth login|whoami|logout`: maps the arguments to [`tb_run::auth`] and prints what it
//! returns.

use crate::cli::error::CommandResult;
use crate::cli::exit::ExitStatus;
use crate::cli::{AuthCommand, Io};
use tb_core::secret::Secret;
use tb_run::auth;

pub(super) fn handle(action: &AuthCommand, io: &mut Io<'_>) -> CommandResult {
    match action {
        AuthCommand::Login { machine_token } => {
            let logged_in = auth::login(io.vars, machine_token.clone().map(Secret::new))?;
            if !io.quiet {
                writeln!(io.stdout, "Logged in as {}.", logged_in.email)?;
                if let Some(path) = logged_in.token_file {
                    tracing::info!(path = %path.display(), "machine token saved");
                }
            }
        }
        AuthCommand::Whoami => writeln!(io.stdout, "{}", auth::whoami(io.vars)?)?,
        AuthCommand::Logout => {
            let (removed, dir) = auth::logout(io.vars)?;
            if !io.quiet {
                let what = if removed == 1 { "file" } else { "files" };
                writeln!(io.stdout, "Logged out ({removed} {what} removed from {}).", dir.display())?;
            }
        }
    }
    Ok(ExitStatus::Success)
}
