//! Dynamic shell completion (`clap_complete`'s `COMPLETE=SHELL terminus-batch`): besides
//! subcommands, flags and their values, the values only this machine knows: the plan's job
//! names for `--only`, the run ids in the state directory for `runs show` and `--resume=`,
//! and the operations for `run OP`.
//!
//! A completer is handed only the word being completed; the plan it completes for is found
//! on the command line being completed (the shell passes it as the process's arguments).
//! Completion never fails: what cannot be read offers nothing.

use std::ffi::OsString;
use std::path::Path;

use clap_complete::CompletionCandidate;

use tb_plan::plan::ops::OperationKind;

/// The job names of the plan on the command line being completed.
pub(crate) fn jobs() -> Vec<CompletionCandidate> {
    let Some(plan) = plan_on_line(std::env::args_os()) else { return Vec::new() };
    let Ok(text) = std::fs::read_to_string(&plan) else { return Vec::new() };
    let source = tb_plan::plan::source::PlanSource::new(plan.display().to_string(), text);
    let Ok((raw, _)) = tb_plan::plan::parse::parse(&source) else { return Vec::new() };
    raw.jobs
        .iter()
        .map(|entry| {
            CompletionCandidate::new(entry.key.value.clone()).help(Some(entry.value.value.run.value.clone().into()))
        })
        .collect()
}

/// The run ids in the state directory this command would use (a directory: an object
/// store is not asked while a shell waits), newest first.
pub(crate) fn runs() -> Vec<CompletionCandidate> {
    local_runs().map(|runs| runs.ids().into_iter().map(CompletionCandidate::new).collect()).unwrap_or_default()
}

/// `--resume=` takes `auto` or a run id of the plan on the line (another plan's run is
/// refused by `apply`, so it is not offered).
pub(crate) fn resumable() -> Vec<CompletionCandidate> {
    let auto = CompletionCandidate::new("auto").help(Some("resume a run if there is one, else start afresh".into()));
    let Some(plan) = plan_on_line(std::env::args_os()) else { return vec![auto] };
    let Some(runs) = local_runs() else { return vec![auto] };
    let ids = runs.ids_of_plan(&plan.display().to_string());
    std::iter::once(auto).chain(ids.into_iter().map(CompletionCandidate::new)).collect()
}

/// The runs in the state directory this command would use, when it is a directory (an
/// object store is not asked while a shell waits).
fn local_runs() -> Option<tb_run::history::Runs> {
    let here = std::env::current_dir().ok()?;
    let vars = tb_settings::EnvVars::capture();
    let location = tb_run::history::locate_state(None, None, &here, &vars).ok()?;
    if !location.is_dir() {
        return None;
    }
    tb_run::history::Runs::open(&location, &vars).ok()
}

/// Every operation `run OP` takes.
pub(crate) fn operations() -> Vec<CompletionCandidate> {
    OperationKind::ALL.iter().map(|op| CompletionCandidate::new(op.name())).collect()
}

/// The plan a command line names: the first word after `apply`, `plan` or `graph` that is a
/// file (`validate` takes no `--only`).
fn plan_on_line(args: impl IntoIterator<Item = OsString>) -> Option<std::path::PathBuf> {
    let args: Vec<OsString> = args.into_iter().collect();
    let command = args.iter().position(|a| a == "apply" || a == "plan" || a == "graph")?;
    args[command + 1..]
        .iter()
        .filter(|a| !a.to_string_lossy().starts_with('-'))
        .map(Path::new)
        .find(|p| p.is_file())
        .map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_is_the_first_file_after_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let plan = dir.path().join("p.yml");
        std::fs::write(&plan, "version: 1\njobs: {}\n").unwrap();
        let line = |words: &[&str]| plan_on_line(words.iter().map(OsString::from));
        let p = plan.to_str().unwrap();
        assert_eq!(line(&["tb", "--", "tb", "apply", "--simulate", p, "--only", ""]), Some(plan.clone()));
        assert_eq!(line(&["tb", "--", "tb", "validate", p]), None);
        assert_eq!(line(&["tb", "--", "tb", "apply", "missing.yml"]), None);
    }
}
