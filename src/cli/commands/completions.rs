//! `completions SHELL`: shell completion scripts, generated from the clap definition.

use clap::CommandFactory;

use crate::cli::error::CommandResult;
use crate::cli::exit::ExitStatus;
use crate::cli::{Cli, Io};

pub(super) fn execute(shell: clap_complete::Shell, io: &mut Io<'_>) -> CommandResult {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "terminus-batch", &mut script);
    if shell == clap_complete::Shell::Bash {
        // clap_complete names the per-command cases `terminus__subcmd__batch__…` for a binary
        // with a `-` in its name, while it sets `cmd` to `terminus__batch__…`: no case ever
        // matched, so only the top-level command completed. Name them alike.
        let text = String::from_utf8_lossy(&script).replace("terminus__subcmd__batch", "terminus__batch");
        script = text.into_bytes();
    }
    io.stdout.write_all(&script)?;
    Ok(ExitStatus::Success)
}
