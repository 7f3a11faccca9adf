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
    if shell == clap_complete::Shell::Bash {
        io.stdout.write_all(bash(&name, &this).as_bytes())?;
        return Ok(ExitStatus::Success);
    }
    let mut script = Vec::new();
    completer.write_registration(tb_core::env::COMPLETE, &name, &name, &this, &mut script)?;
    io.stdout.write_all(&script)?;
    Ok(ExitStatus::Success)
}

/// Bash's script. It speaks `clap_complete`'s protocol (the words, the index of the one being
/// completed, `COMPLETE=bash`), with one difference from clap's own: bash splits words at
/// each `COMP_WORDBREAKS` character, so `env:dep` reaches a completer as `env`, `:`, `dep`
/// and `--resume=R` as `--resume`, `=`, `R`. The script joins them back before asking, and
/// gives bash each candidate without what precedes the break, which bash keeps (it replaces
/// only the part after it): `run env:dep<Tab>` becomes `run env:deploy`, not `env:--`.
fn bash(name: &str, this: &str) -> String {
    let function = format!("_{}_complete", name.replace('-', "_"));
    let binary = this.replace('\'', r"'\''");
    format!(
        r#"
{function}() {{
    local words=() i index=0
    for (( i = 0; i < ${{#COMP_WORDS[@]}}; i++ )); do
        local word="${{COMP_WORDS[i]}}"
        if (( i > 0 )) && [[ "$word" == [:=] || "${{COMP_WORDS[i-1]}}" == [:=] ]]; then
            words[${{#words[@]}}-1]+="$word"
        else
            words+=("$word")
        fi
        if (( i == COMP_CWORD )); then index=$(( ${{#words[@]}} - 1 )); fi
    done
    local current="${{words[index]}}"
    # Readline replaces only what follows the word's last `:` or `=`: that is dropped from
    # each candidate.
    local prefix="${{current%"${{current##*[:=]}}"}}"
    local IFS=$'\013'
    local space=true
    if compopt +o nospace 2> /dev/null; then space=false; fi
    COMPREPLY=( $( \
        _CLAP_IFS="$IFS" \
        _CLAP_COMPLETE_INDEX="$index" \
        _CLAP_COMPLETE_COMP_TYPE="${{COMP_TYPE}}" \
        _CLAP_COMPLETE_SPACE="$space" \
        {var}="bash" \
        '{binary}' -- "${{words[@]}}" \
    ) )
    if [[ $? != 0 ]]; then
        unset COMPREPLY
        return
    fi
    if [[ -n "$prefix" ]]; then
        local kept=() candidate
        for candidate in "${{COMPREPLY[@]}}"; do
            [[ "$candidate" == "$prefix"* ]] && kept+=("${{candidate#"$prefix"}}")
        done
        COMPREPLY=("${{kept[@]}}")
    fi
    if [[ $space == false ]] && [[ "${{COMPREPLY-}}" =~ [=/:]$ ]]; then
        compopt -o nospace
    fi
}}
complete -o nospace -o bashdefault -F {function} {name}
"#,
        var = tb_core::env::COMPLETE,
    )
}
