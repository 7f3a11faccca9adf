//! Runs to look back on: where the state directory is, the runs it holds (newest first), and
//! any run's report again, from its `result.json` or, for a run that never finished (a
//! crash, a kill), folded from its journal as far as it got.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::RunError;
use crate::journal::{self, MAX_JOURNAL_BYTES};
use crate::report::RunReport;
use crate::report::summary::{PlanInfo, SettingsInfo, Totals};
use crate::settings::EnvVars;

/// The state directory's name, and the variable that names another.
pub const STATE_DIR_NAME: &str = ".terminus-batch";
pub const STATE_DIR_VAR: &str = "TERMINUS_BATCH_STATE_DIR";

/// Where runs keep their journals, highest first: `explicit` (`--state-dir`), then
/// `TERMINUS_BATCH_STATE_DIR`, then, inside a git repository, `.terminus-batch` at the
/// repository's root (one per repository, found as git finds its own directory: every plan
/// of the repository shares its runs and leases, and `runs list` works from anywhere in
/// it); outside one, `.terminus-batch` in `start` (the plan file's directory, or the working
/// directory). Outside a repository nothing above `start` is looked at: a stray directory in
/// a parent (`/tmp`) is not this plan's.
#[must_use]
pub fn locate_state_dir(explicit: Option<&Path>, start: &Path, vars: &EnvVars) -> PathBuf {
    if let Some(dir) = explicit {
        return dir.to_owned();
    }
    if let Some(dir) = vars.get(STATE_DIR_VAR).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let start = if start.as_os_str().is_empty() { Path::new(".") } else { start };
    let beside = if start == Path::new(".") { PathBuf::from(STATE_DIR_NAME) } else { start.join(STATE_DIR_NAME) };
    let absolute = fs::canonicalize(start).unwrap_or_else(|_| start.to_owned());
    match repository_root(&absolute) {
        // The path as given when it is the root already, so it prints as typed.
        Some(root) if fs::canonicalize(start).ok().as_deref() == Some(root) => beside,
        Some(root) => root.join(STATE_DIR_NAME),
        None => beside,
    }
}

/// Refuses a state location this build cannot use: an object-store URL (`s3://`, `gs://`,
/// `az://`, or any `scheme://`), which would otherwise be taken for a directory named `s3:`.
pub fn check_state_location(dir: &Path) -> Result<(), RunError> {
    let text = dir.to_string_lossy();
    match text.split_once("://") {
        Some((scheme, _))
            if !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            Err(RunError::Refused(format!(
                "the state location {text} is an object-store URL, and this build keeps state in a directory only \
                 (shared object-store state is not built yet): pass a directory to --state-dir or TERMINUS_BATCH_STATE_DIR"
            )))
        }
        _ => Ok(()),
    }
}

/// The git repository `path` (absolute) is in: the nearest directory up from it holding a
/// `.git` (a directory, or a file for a worktree).
#[must_use]
pub fn repository_root(path: &Path) -> Option<&Path> {
    path.ancestors().find(|dir| dir.join(".git").exists())
}

/// How a run ended, as `runs list` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    Succeeded,
    Failed,
    Interrupted,
    TimedOut,
    /// No end recorded: the process died (or is still running).
    Unfinished,
}

impl RunState {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
            Self::TimedOut => "timed out",
            Self::Unfinished => "unfinished",
        }
    }

    /// The state a report records.
    #[must_use]
    pub fn of(report: &RunReport) -> Self {
        if report.finished_at.is_none() {
            Self::Unfinished
        } else if report.interrupted {
            Self::Interrupted
        } else if report.timed_out {
            Self::TimedOut
        } else if report.all_ok() {
            Self::Succeeded
        } else {
            Self::Failed
        }
    }
}

/// One run in the state directory.
#[derive(Clone, Debug)]
pub struct RunEntry {
    pub id: String,
    pub plan: String,
    pub resumed_from: Option<String>,
    pub started_at: u64,
    pub duration_ms: Option<u64>,
    pub totals: Totals,
    pub state: RunState,
}

/// Every run in `state_dir`, newest first. A run whose records cannot be read is an error
/// naming it: a damaged record is said, never hidden.
pub fn list(state_dir: &Path) -> Result<Vec<RunEntry>, RunError> {
    let runs = state_dir.join("runs");
    if let Err(e) = fs::read_dir(&runs) {
        if e.kind() == std::io::ErrorKind::NotFound {
            return Ok(Vec::new());
        }
        return Err(RunError::Refused(format!("cannot read {}: {e}", runs.display())));
    }
    journal::runs_newest_first(state_dir)
        .iter()
        .map(|dir| {
            let id = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let (report, resumed_from) = load(state_dir, &id)?;
            Ok(RunEntry {
                id,
                plan: report.plan.path.clone(),
                resumed_from,
                started_at: report.started_at,
                duration_ms: report.duration_ms,
                state: RunState::of(&report),
                totals: report.totals,
            })
        })
        .collect()
}

/// The newest run's id in `state_dir`.
pub fn newest(state_dir: &Path) -> Result<String, RunError> {
    journal::runs_newest_first(state_dir)
        .first()
        .and_then(|dir| dir.file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .ok_or_else(|| RunError::Refused(format!("no run in {}", state_dir.display())))
}

/// A run's report and the run it resumed: its `result.json` when the run finished, else its
/// journal folded as far as it goes (a crashed run's tasks end unfinished).
pub fn load(state_dir: &Path, run: &str) -> Result<(RunReport, Option<String>), RunError> {
    if run.is_empty() || run.contains(['/', '\\']) || run == "." || run == ".." {
        return Err(RunError::Refused(format!("`{run}` is not a run id")));
    }
    let dir = state_dir.join("runs").join(run);
    if !dir.is_dir() {
        let known = list_ids(state_dir);
        let hint = crate::plan::error::did_you_mean(run, known.iter().map(String::as_str))
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        return Err(RunError::Refused(format!("no run `{run}` in {}{hint}", state_dir.display())));
    }
    let result = dir.join("result.json");
    if result.is_file() {
        // A finished run: its report, and from its journal only the header.
        let header = journal::read_header(&dir).map_err(|e| RunError::Refused(e.to_string()))?;
        let text = read_bounded(&result)?;
        let report: RunReport = serde_json::from_str(&text)
            .map_err(|e| RunError::Refused(format!("cannot read {}: {e}", result.display())))?;
        return Ok((report, header.resumed_from));
    }
    let journal = journal::read(&dir).map_err(|e| RunError::Refused(e.to_string()))?;
    let resumed_from = journal.header.resumed_from.clone();
    let settings: SettingsInfo = serde_json::from_value(journal.header.settings.clone())
        .map_err(|e| RunError::Refused(format!("cannot read the settings in {}/events.jsonl: {e}", dir.display())))?;
    let plan =
        PlanInfo { path: journal.header.plan_path.clone(), sha256: journal.header.plan_sha256.clone(), name: None };
    let mut report = RunReport::new(plan, settings);
    for event in &journal.events {
        report.apply(event);
    }
    if report.finished_at.is_none() {
        report.explain_unfinished();
    }
    Ok((report, resumed_from))
}

/// The runs of run group `group` that make its report: for each plan and shard, the newest
/// run (a resume of a shard supersedes the run it resumed), in shard order. Empty when no
/// run is in the group.
#[must_use]
pub fn group_runs(state_dir: &Path, group: &str) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut runs: Vec<(Option<String>, String)> = Vec::new();
    for dir in journal::runs_newest_first(state_dir) {
        let Ok(header) = journal::read_header(&dir) else { continue };
        if header.group.as_deref() == Some(group) && seen.insert((header.plan_path, header.shard.clone())) {
            runs.push((header.shard, header.run_id));
        }
    }
    // Shard `I/N` in the order of I.
    runs.sort_by_key(|(shard, _)| {
        shard.as_deref().and_then(|s| s.split('/').next()).and_then(|i| i.parse::<u32>().ok()).unwrap_or(0)
    });
    runs.into_iter().map(|(_, run)| run).collect()
}

/// One report of run group `group` (see [`group_runs`]), with the runs it was made of;
/// `None` when no run is in the group.
pub fn load_group(state_dir: &Path, group: &str) -> Result<Option<(RunReport, Vec<String>)>, RunError> {
    let runs = group_runs(state_dir, group);
    let reports =
        runs.iter().map(|run| load(state_dir, run).map(|(report, _)| report)).collect::<Result<Vec<_>, _>>()?;
    Ok(RunReport::merge(group, reports).map(|report| (report, runs)))
}

fn list_ids(state_dir: &Path) -> Vec<String> {
    journal::runs_newest_first(state_dir)
        .iter()
        .filter_map(|dir| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect()
}

fn read_bounded(path: &Path) -> Result<String, RunError> {
    let bad = |e: String| RunError::Refused(format!("cannot read {}: {e}", path.display()));
    let file = fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut text = String::new();
    file.take(MAX_JOURNAL_BYTES).read_to_string(&mut text).map_err(|e| bad(e.to_string()))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_directory_is_found_up_a_repository_and_only_there() {
        let root = tempfile::tempdir().unwrap();
        let outside = root.path().join("outside");
        let repo = outside.join("repo");
        let deep = repo.join("ops/plans");
        fs::create_dir_all(&deep).unwrap();
        let none = EnvVars::from_pairs(Vec::<(String, String)>::new());
        let same = |a: PathBuf, b: PathBuf| assert_eq!(fs::canonicalize(a).unwrap(), fs::canonicalize(b).unwrap());
        // One above, outside any repository, is not looked at.
        fs::create_dir_all(outside.join(STATE_DIR_NAME)).unwrap();
        assert_eq!(locate_state_dir(None, &deep, &none), deep.join(STATE_DIR_NAME));
        // Inside a repository: its root's, whether it exists yet or not, and whatever lies
        // nearer (one store per repository).
        fs::create_dir_all(repo.join(".git")).unwrap();
        same(locate_state_dir(None, &deep, &none).parent().unwrap().to_owned(), repo.clone());
        fs::create_dir_all(deep.join(STATE_DIR_NAME)).unwrap();
        fs::create_dir_all(repo.join(STATE_DIR_NAME)).unwrap();
        same(locate_state_dir(None, &deep, &none), repo.join(STATE_DIR_NAME));
        // The flag, then the variable, win.
        let flag = Path::new("/elsewhere");
        assert_eq!(locate_state_dir(Some(flag), &deep, &none), flag);
        let vars = EnvVars::from_pairs([(STATE_DIR_VAR, "/from-env")]);
        assert_eq!(locate_state_dir(None, &deep, &vars), Path::new("/from-env"));
        assert_eq!(locate_state_dir(None, Path::new(""), &none), Path::new(STATE_DIR_NAME));
        // A bucket is not taken for a directory named `s3:`.
        let err = check_state_location(Path::new("s3://team-state/ops")).unwrap_err().to_string();
        assert!(err.contains("object-store URL"), "{err}");
        assert!(check_state_location(Path::new("/srv/state")).is_ok());
        assert!(check_state_location(Path::new("state:dir")).is_ok());
    }
}
