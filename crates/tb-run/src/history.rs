//! Runs to look back on: where the state directory is, the runs it holds (newest first), and
//! any run's report again, from its `result.json` or, for a run that never finished (a
//! crash, a kill), folded from its journal as far as it got.

use std::fs;
use std::path::{Path, PathBuf};

use super::{Refusal, RunError};
use tb_core::location::Location;
use tb_plan::plan::ops::OperationKind;
use tb_report::RunReport;
use tb_report::summary::{PlanInfo, SettingsInfo, Totals};
use tb_settings::EnvVars;
use tb_state::Store;
use tb_state::journal;

/// The state directory's name, and the variable that names another.
pub const STATE_DIR_NAME: &str = ".terminus-batch";
use tb_core::env::STATE_DIR as STATE_DIR_VAR;

/// The default state directory: inside a git repository, `.terminus-batch` at the
/// repository's root (one per repository, found as git finds its own directory: every plan
/// of the repository shares its runs and leases, and `runs list` works from anywhere in
/// it); outside one, `.terminus-batch` in `start` (the plan file's directory, or the working
/// directory). Outside a repository nothing above `start` is looked at: a stray directory in
/// a parent (`/tmp`) is not this plan's.
#[must_use]
pub fn default_state_dir(start: &Path) -> PathBuf {
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

/// Where runs keep their state, highest first: `explicit` (`--state-dir`), then
/// `TERMINUS_BATCH_STATE_DIR`, then the plan's `settings.state`, then
/// [`default_state_dir`]. Each may name a directory or an object store (`s3://`, `gs://`,
/// `az://`).
pub fn locate_state(
    explicit: Option<&str>,
    plan: Option<&str>,
    start: &Path,
    vars: &EnvVars,
) -> Result<Location, RunError> {
    let named = explicit
        .map(|s| (s, "--state-dir"))
        .or_else(|| vars.get(STATE_DIR_VAR).map(|s| (s, STATE_DIR_VAR)))
        .or_else(|| plan.map(|s| (s, "the plan's settings.state")));
    match named {
        Some((text, from)) => {
            Location::parse(text).map_err(|reason| Refusal::StateLocation { from: from.to_owned(), reason }.into())
        }
        None => Ok(Location::Dir(default_state_dir(start))),
    }
}

/// Opens the state store at `location`, with the cloud's credentials from `vars`.
pub fn open_state(location: &Location, vars: &EnvVars) -> Result<Store, RunError> {
    let var = tb_core::env::STORE_BUDGET;
    let budget = match vars.get(var) {
        Some(text) => humantime::parse_duration(text).map_err(|source| Refusal::NotADuration {
            var,
            value: text.to_owned(),
            example: "60s",
            source,
        })?,
        None => tb_state::store::WRITE_BUDGET,
    };
    Store::open(location, &vars.state_store_vars())
        .map(|store| store.with_budget(budget))
        .map_err(|reason| Refusal::StoreUnusable { reason }.into())
}

/// Checks that `store` answers (a missing bucket, refused credentials, an unreachable
/// endpoint), before a run makes any request to the platform.
pub fn check_state(store: &Store) -> Result<(), RunError> {
    store.check().map_err(|e| RunError::State(Box::new(super::StateError::Store(e))))
}

/// The runs a state store holds, for `runs` and shell completion: the store itself stays
/// `tb-run`'s, so the command line never names it.
pub struct Runs(Store);

impl Runs {
    /// The runs at `location`: [`open_state`] without a check (reading tells what is wrong).
    pub fn open(location: &Location, vars: &EnvVars) -> Result<Self, RunError> {
        open_state(location, vars).map(Self)
    }

    /// The store, as people read it (a directory's path, an object store's URL).
    #[must_use]
    pub fn describe(&self) -> String {
        self.0.describe()
    }

    /// Every run, newest first, with its report (a run whose records cannot be read is an error).
    pub fn list(&self) -> Result<Vec<RunEntry>, RunError> {
        list(&self.0)
    }

    /// The runs' ids, newest first, without reading their records.
    #[must_use]
    pub fn ids(&self) -> Vec<String> {
        run_ids(&self.0)
    }

    /// The ids of the runs of the plan at `plan` (as `apply` names it), newest first: what
    /// `--resume=` may continue. A run whose header cannot be read is left out.
    #[must_use]
    pub fn ids_of_plan(&self, plan: &str) -> Vec<String> {
        let keys: Vec<String> =
            std::iter::once(super::prepare::plan_key(plan)).chain(super::prepare::legacy_plan_key(plan)).collect();
        run_ids(&self.0)
            .into_iter()
            .filter(|id| journal::read_header(&self.0, id).is_ok_and(|h| keys.contains(&h.plan_path)))
            .collect()
    }

    /// The newest run's id.
    pub fn newest(&self) -> Result<String, RunError> {
        newest(&self.0)
    }

    /// Where a run's journal is, as people read it.
    #[must_use]
    pub fn location(&self, run: &str) -> String {
        run_location(&self.0, run)
    }

    /// A run's report (from `result.json`, or folded from its journal) and the run it resumed.
    pub fn load(&self, run: &str) -> Result<(RunReport, Option<String>), RunError> {
        load(&self.0, run).map(|(report, header)| (report, header.resumed_from))
    }

    /// The merged report of a run group and its runs, if `group` names one.
    pub fn load_group(&self, group: &str) -> Result<Option<(RunReport, Vec<String>)>, RunError> {
        load_group(&self.0, group)
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
    /// No end recorded, and no live process holds its lock: it died.
    Unfinished,
    /// No end recorded yet, and its process holds its lock: it is still going.
    Running,
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
            Self::Running => "running",
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
    /// A `run OP` whose every task only reads (`site:info`, `env:code-log`): what `runs
    /// list` leaves out unless asked for all.
    pub read_only_ad_hoc: bool,
}

/// Every run in `store`, newest first. A run whose records cannot be read is an error
/// naming it: a damaged record is said, never hidden.
fn list(store: &Store) -> Result<Vec<RunEntry>, RunError> {
    store.children("runs").map_err(|source| Refusal::Runs { store: store.describe(), source })?;
    let live = tb_state::lock::live_runs(store);
    journal::runs_newest_first(store)
        .into_iter()
        .map(|id| {
            let (report, header) = load(store, &id)?;
            let state = match RunState::of(&report) {
                RunState::Unfinished if live.contains(&id) => RunState::Running,
                state => state,
            };
            // The plan as the run recorded it (a repository-relative path, or its real path):
            // one spelling for every run of a plan, however it was typed.
            let (plan, resumed_from) = (header.plan_path, header.resumed_from);
            let read_only_ad_hoc = report.plan.path.starts_with("<run ")
                && report
                    .tasks
                    .iter()
                    .all(|t| OperationKind::from_name(&t.operation).is_some_and(OperationKind::is_read_only));
            Ok(RunEntry {
                read_only_ad_hoc,
                id,
                plan,
                resumed_from,
                started_at: report.started_at,
                duration_ms: report.duration_ms,
                state,
                totals: report.totals,
            })
        })
        .collect()
}

/// The ids of the runs in `store`, newest first, without reading their records (for shell
/// completion).
#[must_use]
fn run_ids(store: &Store) -> Vec<String> {
    journal::runs_newest_first(store)
}

/// The newest run's id in `store`.
fn newest(store: &Store) -> Result<String, RunError> {
    journal::runs_newest_first(store)
        .into_iter()
        .next()
        .ok_or_else(|| Refusal::NoRuns { store: store.describe() }.into())
}

/// Where a run's records are, for messages.
#[must_use]
fn run_location(store: &Store, run: &str) -> String {
    store.locate(&journal::run_key(run))
}

/// A run's report and its journal's header: its `result.json` when the run finished, else its
/// journal folded as far as it goes (a crashed run's tasks end unfinished).
/// A run's report, when `keep` takes its journal's header (read first: a run not kept is
/// not read further).
pub(crate) fn load_if(
    store: &Store,
    run: &str,
    keep: impl FnOnce(&journal::Header) -> bool,
) -> Result<Option<RunReport>, RunError> {
    load_with(store, run, keep).map(|found| found.map(|(report, _)| report))
}

fn load(store: &Store, run: &str) -> Result<(RunReport, journal::Header), RunError> {
    load_with(store, run, |_| true)?.ok_or_else(|| RunError::bug("internal error: a run kept was not loaded"))
}

fn load_with(
    store: &Store,
    run: &str,
    keep: impl FnOnce(&journal::Header) -> bool,
) -> Result<Option<(RunReport, journal::Header)>, RunError> {
    if run.is_empty() || run.contains(['/', '\\']) || run == "." || run == ".." {
        return Err(Refusal::NotARunId(run.to_owned()).into());
    }
    let refused = |source| Refusal::Runs { store: store.describe(), source };
    let keys = store.list(&journal::run_key(run)).map_err(refused)?;
    if keys.is_empty() {
        let known = journal::runs_newest_first(store);
        let hint = tb_plan::plan::error::did_you_mean(run, known.iter().map(String::as_str))
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        return Err(Refusal::NoSuchRun { run: run.to_owned(), store: store.describe(), hint }.into());
    }
    let result_key = journal::result_key(run);
    if keys.contains(&result_key) {
        // A finished run: its report, and from its journal only the header.
        let header = journal::read_header(store, run).map_err(Refusal::Journal)?;
        if !keep(&header) {
            return Ok(None);
        }
        let shown = store.locate(&result_key);
        let entry = store.get(&result_key).map_err(refused)?;
        let Some(entry) = entry.filter(|e| e.bytes.len() as u64 <= journal::MAX_JOURNAL_BYTES) else {
            return Err(Refusal::ResultGone { path: shown }.into());
        };
        let report: RunReport =
            serde_json::from_slice(&entry.bytes).map_err(|source| Refusal::ResultUnreadable { path: shown, source })?;
        return Ok(Some((report, header)));
    }
    let journal = journal::read(store, run).map_err(Refusal::Journal)?;
    if !keep(&journal.header) {
        return Ok(None);
    }
    let settings: SettingsInfo = serde_json::from_value(journal.header.settings.clone())
        .map_err(|source| Refusal::JournalSettings { path: run_location(store, run), source })?;
    let plan =
        PlanInfo { path: journal.header.plan_path.clone(), sha256: journal.header.plan_sha256.clone(), name: None };
    let mut report = RunReport::new(plan, settings);
    for event in &journal.events {
        report.apply(event);
    }
    if report.finished_at.is_none() {
        report.explain_unfinished();
    }
    Ok(Some((report, journal.header)))
}

/// The runs of run group `group` that make its report: for each plan and shard, the newest
/// run (a resume of a shard supersedes the run it resumed), in shard order. Empty when no
/// run is in the group.
#[must_use]
fn group_runs(store: &Store, group: &str) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut runs: Vec<(Option<String>, String)> = Vec::new();
    for id in journal::runs_newest_first(store) {
        let Ok(header) = journal::read_header(store, &id) else { continue };
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
fn load_group(store: &Store, group: &str) -> Result<Option<(RunReport, Vec<String>)>, RunError> {
    let runs = group_runs(store, group);
    let reports = runs.iter().map(|run| load(store, run).map(|(report, _)| report)).collect::<Result<Vec<_>, _>>()?;
    Ok(RunReport::merge(group, reports).map(|report| (report, runs)))
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
        let located = |flag: Option<&str>, plan: Option<&str>, start: &Path, vars: &EnvVars| match locate_state(
            flag, plan, start, vars,
        )
        .unwrap()
        {
            Location::Dir(dir) => dir,
            Location::Url(url) => PathBuf::from(url.to_string()),
        };
        assert_eq!(default_state_dir(&deep), deep.join(STATE_DIR_NAME));
        // Inside a repository: its root's, whether it exists yet or not, and whatever lies
        // nearer (one store per repository).
        fs::create_dir_all(repo.join(".git")).unwrap();
        same(default_state_dir(&deep).parent().unwrap().to_owned(), repo.clone());
        fs::create_dir_all(deep.join(STATE_DIR_NAME)).unwrap();
        fs::create_dir_all(repo.join(STATE_DIR_NAME)).unwrap();
        same(located(None, None, &deep, &none), repo.join(STATE_DIR_NAME));
        // The flag, then the variable, then the plan win.
        assert_eq!(located(Some("/elsewhere"), Some("/plan"), &deep, &none), Path::new("/elsewhere"));
        let vars = EnvVars::from_pairs([(STATE_DIR_VAR, "/from-env")]);
        assert_eq!(located(None, Some("/plan"), &deep, &vars), Path::new("/from-env"));
        assert_eq!(located(None, Some("/plan"), &deep, &none), Path::new("/plan"));
        // No start is the working directory (wherever the test runs from).
        assert_eq!(located(None, None, Path::new(""), &none), located(None, None, Path::new("."), &none));
        // A bucket is not taken for a directory named `s3:`, and an unknown scheme is refused.
        assert_eq!(located(Some("s3://team-state/ops"), None, &deep, &none), Path::new("s3://team-state/ops"));
        let err = locate_state(Some("ftp://x/y"), None, &deep, &none).unwrap_err().to_string();
        assert!(err.contains("ftp") && err.contains("--state-dir"), "{err}");
        assert_eq!(located(Some("state:dir"), None, &deep, &none), Path::new("state:dir"));
    }
}
