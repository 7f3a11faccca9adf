//! `completions SHELL`: shell completion scripts, generated from the clap definition.

use clap::CommandFactory;

use crate::cli::error::CommandResult;
use crate::cli::exit::ExitStatus;
use crate::cli::{Cli, Io};

#[expect(clippy::unnecessary_wraps, reason = "every command has the same signature")]
pub(super) fn run(shell: clap_complete::Shell, io: &mut Io<'_>) -> CommandResult {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "terminus-batch", io.stdout);
    Ok(ExitStatus::Success)
}
