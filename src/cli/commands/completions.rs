//! `completions SHELL`: the shell's completion script. The script asks this binary for each
//! completion (`COMPLETE=SHELL terminus-batch -- <the line>`, answered in `cli::main`), so it
//! completes subcommands, flags and their values, and also job names (`--only`), run ids
//! (`runs show`, `--resume=`) and operations (`run OP`).

use clap::CommandFactory;
use clap_complete::env::{Bash, Elvish, EnvCompleter, Fish, Powershell, Zsh};

use crate::cli::error::CommandResult;
use crate::cli::exit::ExitStatus;
use crate::cli::{Cli, Io};

pub(super) fn handle(shell: clap_complete::Shell, io: &mut Io<'_>) -> CommandResult {
    let completer: &dyn EnvCompleter = match shell {
        clap_complete::Shell::Bash => &Bash,
        clap_complete::Shell::Elvish => &Elvish,
        clap_complete::Shell::Fish => &Fish,
        clap_complete::Shell::PowerShell => &Powershell,
        // Zsh, and any shell clap adds later, as zsh.
        _ => &Zsh,
    };
    let name = Cli::command().get_name().to_owned();
    // The script calls this very binary back: by its full path, so that it completes where
    // the binary is not on PATH (a build's target directory), and no other version answers.
    let this = std::env::current_exe().map_or_else(|_| name.clone(), |p| p.display().to_string());
    let mut script = Vec::new();
    completer.write_registration(tb_core::env::COMPLETE, &name, &name, &this, &mut script)?;
    io.stdout.write_all(&script)?;
    Ok(ExitStatus::Success)
}
