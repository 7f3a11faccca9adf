//! Taking a plan to the edge of a run: read (bounded), parse and validate, resolve settings,
//! connect (API or simulator), resolve targets, expand, filter, shard and build the graph,
//! into a [`Prepared`] plan. Every stage's failure is a [`RunError`].

use std::io::Read as _;
use std::path::{Path, PathBuf};

use super::connect::{self, ApiSource, Connection};
use super::{Refusal, RunError, Unreachable};
use tb_core::endpoint::Endpoint;
use tb_core::graph::TaskGraph;
use tb_plan::expand::{Expansion, Filter, Task, expand};
use tb_plan::plan::PlanSource;
use tb_plan::plan::model::{NeedScope, Plan};
use tb_plan::plan::ops::OperationSpec;
use tb_plan::resolve::{OrgRecord, ResolveFailure, Resolved, SiteRecord, SiteSource, SourceError, resolve};
use tb_settings::{EnvVars, Layer, Settings};

/// Reads a text file of at most `max_bytes`: never more than one byte past the budget is
/// read, so `/dev/zero` or a huge file is refused without filling memory.
pub fn read_text(path: &Path, max_bytes: usize) -> Result<String, RunError> {
    let shown = path.display();
    let unreadable = |source| RunError::from(Refusal::Unreadable { path: shown.to_string(), source });
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    let limit = u64::try_from(max_bytes).unwrap_or(u64::MAX).saturating_add(1);
    file.take(limit).read_to_end(&mut bytes).map_err(unreadable)?;
    if bytes.len() > max_bytes {
        return Err(Refusal::TooLarge { path: shown.to_string(), limit: max_bytes }.into());
    }
    String::from_utf8(bytes)
        .map_err(|e| Refusal::NotText { path: shown.to_string(), offset: e.utf8_error().valid_up_to() }.into())
}

/// Reads a plan file into its source.
pub fn read_source(path: &Path) -> Result<PlanSource, RunError> {
    let text = read_text(path, tb_plan::plan::parse::Budgets::PLAN.bytes)?;
    Ok(PlanSource::new(path.display().to_string(), text))
}

/// Parses and validates a plan's source, with every error.
pub fn load(source: PlanSource) -> Result<(PlanSource, Plan), RunError> {
    match tb_plan::plan::load(&source) {
        Ok(plan) => Ok((source, plan)),
        Err(errors) => Err(RunError::Plan { file: source, errors }),
    }
}

/// Where a plan comes from.
pub enum PlanInput {
    /// A plan file.
    File(PathBuf),
    /// Text built in memory (`run`).
    Generated(PlanSource),
    /// A saved plan's source (checked against its hash), the targets it resolved, and what
    /// it ran against.
    Saved(super::saved::Loaded),
}

impl PlanInput {
    /// What identifies the plan for the lock and `--resume` (see [`plan_key`]).
    #[must_use]
    pub fn key(&self) -> String {
        match self {
            Self::File(path) => plan_key(&path.display().to_string()),
            Self::Generated(source) => source.path.clone(),
            Self::Saved(loaded) => plan_key(&loaded.source.path),
        }
    }

    /// The plan file, when there is one (not a plan built in memory).
    #[must_use]
    pub fn path(&self) -> Option<std::path::PathBuf> {
        match self {
            Self::File(path) => Some(path.clone()),
            Self::Generated(_) => None,
            Self::Saved(loaded) => Some(std::path::PathBuf::from(&loaded.source.path)),
        }
    }

    /// Every name the state may know the plan by: [`Self::key`], then what earlier versions
    /// recorded (see [`legacy_plan_key`]).
    #[must_use]
    pub fn keys(&self) -> Vec<String> {
        let legacy = match self {
            Self::File(path) => legacy_plan_key(&path.display().to_string()),
            Self::Generated(_) => None,
            Self::Saved(loaded) => legacy_plan_key(&loaded.source.path),
        };
        std::iter::once(self.key()).chain(legacy).collect()
    }

    /// The plan's `settings.state`, read before anything else is (the state holds what
    /// `--resume` continues). A plan that does not parse says nothing here: its errors are
    /// reported, with their places, when it is prepared.
    #[must_use]
    pub fn state_setting(&self) -> Option<String> {
        let text = match self {
            Self::File(path) => std::fs::read_to_string(path).ok()?,
            Self::Generated(source) => source.text.to_string(),
            Self::Saved(loaded) => loaded.source.text.to_string(),
        };
        tb_plan::plan::parse::state_setting(&text)
    }
}

/// What a command's targets are resolved (and its run made) against: one of three, never
/// two at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Platform {
    /// The Pantheon API when logged in; site names as written when not (so a plan can still
    /// be reviewed), selectors and globs then saying how to log in.
    #[default]
    Api,
    /// The in-process simulator (`--simulate`).
    Simulator,
    /// Never the API, even with a login at hand (`graph`, which draws the plan as written):
    /// names are taken as written, and selectors and globs need `--simulate`.
    AsWritten,
}

/// Targeting: where a plan's targets are resolved (the platform, a world) and which of its
/// tasks are kept (`--only`, `--sites`, `--shard`).
#[derive(Clone, Debug, Default)]
pub struct Targeting {
    pub platform: Platform,
    /// The simulator's world file (default: the built-in world).
    pub world: Option<PathBuf>,
    pub filter: Filter,
    pub shard: Option<tb_plan::shard::Shard>,
}

impl Targeting {
    /// Whether the run is a rehearsal against the simulator.
    #[must_use]
    pub fn simulate(&self) -> bool {
        self.platform == Platform::Simulator
    }
}

/// A plan taken through every stage before execution, with the connection that resolved it.
pub struct Prepared {
    pub source: PlanSource,
    /// What identifies the plan for the lock and `--resume`: its canonical path, so
    /// `plan.yml`, `./plan.yml` and an absolute path are one plan.
    pub plan_key: String,
    pub plan: Plan,
    pub resolved: Resolved,
    /// Where targets came from, for people.
    pub resolved_by: String,
    pub expansion: Expansion<OperationSpec>,
    pub graph: TaskGraph<Task<OperationSpec>>,
    pub settings: Settings,
    /// `None` when no login is at hand (names taken as written).
    pub connection: Option<Connection>,
    /// What a saved plan recorded, when the plan came from one.
    pub saved: Option<super::saved::Loaded>,
}

impl Prepared {
    /// What this plan talks to, if connected.
    #[must_use]
    pub fn endpoint(&self) -> Option<&Endpoint> {
        self.connection.as_ref().map(|c| &c.endpoint)
    }
}

/// Runs parse → validate → resolve → expand → graph.
///
/// Targets resolve through the API listings (or the in-process simulator under
/// `--simulate`). Without any login at hand, explicit site names are taken as written so a
/// plan can still be reviewed; selectors and globs then need a login.
pub fn prepare(input: PlanInput, targeting: &Targeting, flags: Layer, vars: &EnvVars) -> Result<Prepared, RunError> {
    prepare_on(connect::runtime()?, input, targeting, flags, vars)
}

/// [`prepare`] on a runtime the caller built: the connection, the simulator and the run all
/// live on it (a test drives a whole run on a current-thread runtime with paused time).
pub fn prepare_on(
    runtime: tokio::runtime::Runtime,
    input: PlanInput,
    targeting: &Targeting,
    flags: Layer,
    vars: &EnvVars,
) -> Result<Prepared, RunError> {
    let (source, saved) = match input {
        PlanInput::File(path) => (read_source(&path)?, None),
        PlanInput::Generated(source) => (source, None),
        PlanInput::Saved(loaded) => (loaded.source.clone(), Some(loaded)),
    };
    let plan_key = plan_key(&source.path);
    let (source, plan) = load(source)?;
    let shards = targeting.shard.map(|shard| u32::try_from(shard.count).unwrap_or(u32::MAX));
    let settings = tb_settings::resolve(vars, flags, Some(&plan.settings), targeting.simulate(), shards)
        .map_err(Refusal::Settings)?;
    if let Some(shard) = targeting.shard {
        // DESIGN §11: a `scope: all` need joins everything into one component.
        if let Some(job) = plan.jobs.iter().find(|j| j.needs.iter().any(|n| n.scope == NeedScope::All)) {
            return Err(Refusal::ShardBarrier { shard: shard.to_string(), job: job.id.to_string() }.into());
        }
    }
    let as_written = targeting.platform == Platform::AsWritten;
    let (connection, resolved_by, offline) = if targeting.simulate() {
        let (c, by) = connect::simulate(runtime, targeting.world.as_deref(), &settings)?;
        (Some(c), by, None)
    } else if !as_written && connect::has_credentials(&settings) {
        (Some(connect::connect_api(runtime, &settings)?), format!("Pantheon API at {}", settings.api_base()), None)
    } else {
        (None, "site names as written (not logged in, so not checked against the API)".to_owned(), Some(runtime))
    };
    let resolved_by =
        if saved.is_some() { format!("the saved plan's targets (connected to {resolved_by})") } else { resolved_by };
    let outcome = match (&saved, &connection) {
        (Some(loaded), _) => Ok(loaded.resolved.clone()),
        (None, Some(c)) => c.runtime.block_on(resolve(&plan, &ApiSource { client: c.client.clone() })),
        (None, None) => match &offline {
            Some(runtime) => runtime.block_on(resolve(&plan, &Offline { chosen: as_written })),
            None => connect::runtime()?.block_on(resolve(&plan, &Offline { chosen: as_written })),
        },
    };
    let resolved = match outcome {
        Ok(r) => r,
        Err(ResolveFailure::Plan(errors)) => return Err(RunError::Plan { file: source, errors }),
        // Offline by the command's choice: nothing was unreachable, the plan needs what
        // the command does not do.
        Err(ResolveFailure::Source(e)) if connection.is_none() && as_written => {
            return Err(Refusal::Unresolved(e).into());
        }
        Err(ResolveFailure::Source(e)) => {
            return Err(Unreachable::Targets(e).into());
        }
    };
    let expansion = match expand(&plan, &resolved, &targeting.filter) {
        Ok(e) => e,
        Err(errors) => return Err(RunError::Plan { file: source, errors }),
    };
    empty_filter(&targeting.filter, &resolved, &expansion)?;
    // A shard may hold nothing (a CI matrix offers every shard): that is not an error.
    let expansion = match targeting.shard {
        Some(shard) => tb_plan::shard::keep(&expansion, shard, |t| t.payload.kind().estimate_secs()),
        None => expansion,
    };
    let edges: Vec<(usize, usize)> =
        expansion.tasks.iter().enumerate().flat_map(|(i, t)| t.needs.iter().map(move |&n| (n, i))).collect();
    // Job-level cycles are refused by validation, so a task cycle is a bug.
    let graph = TaskGraph::build(expansion.tasks.clone(), edges, |t| t.id.to_string())
        .map_err(|e| RunError::bug(format!("internal error: {e}")))?;
    Ok(Prepared { source, plan_key, plan, resolved, resolved_by, expansion, graph, settings, connection, saved })
}

/// What names a plan file in the state: inside a git repository its path from the
/// repository's root (`ops/release.yml`), so another clone at another path finds its runs;
/// elsewhere its canonical path; a plan `run` built in memory, its name as given.
#[must_use]
pub fn plan_key(path: &str) -> String {
    let Ok(real) = std::fs::canonicalize(path) else { return path.to_owned() };
    match super::history::repository_root(&real).and_then(|root| real.strip_prefix(root).ok()) {
        Some(relative) => relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/"),
        None => real.display().to_string(),
    }
}

/// The names an earlier version recorded for the same plan (its canonical path), which a
/// resume still accepts.
#[must_use]
pub fn legacy_plan_key(path: &str) -> Option<String> {
    let real = std::fs::canonicalize(path).ok()?.display().to_string();
    (real != plan_key(path)).then_some(real)
}

/// `--sites` or `--only` that keeps no task is a mistake, not an empty success.
fn empty_filter(filter: &Filter, resolved: &Resolved, expansion: &Expansion<OperationSpec>) -> Result<(), RunError> {
    if !expansion.tasks.is_empty() {
        return Ok(());
    }
    if let Some(glob) = &filter.sites {
        let names: std::collections::BTreeSet<&str> =
            resolved.jobs.values().flatten().map(|t| t.site.as_str()).collect();
        let hint = tb_plan::plan::error::did_you_mean(glob, names.iter().copied())
            .map(|hint| format!("; {hint}"))
            .unwrap_or_default();
        return Err(Refusal::NoSiteMatches { glob: glob.clone(), hint }.into());
    }
    if !filter.only.is_empty() {
        return Err(Refusal::NothingKept(filter.only.clone()).into());
    }
    Ok(())
}

/// Resolution without any API: explicit site names are taken as written; selectors and
/// globs cannot be resolved and say what to do instead.
struct Offline {
    /// The command never calls the API (`graph`), rather than no login being at hand.
    chosen: bool,
}

const OFFLINE_HELP: &str = "resolving selectors and globs needs the Pantheon API listings, and no login is at hand: \
set TERMINUS_MACHINE_TOKEN or run `terminus-batch auth login`, or pass --simulate to resolve against the simulator's world";

const CHOSEN_OFFLINE_HELP: &str = "resolving selectors and globs needs the Pantheon API listings, and this command never \
calls the API: pass --simulate to resolve them against the simulator's world, or name the sites";

impl Offline {
    fn help(&self) -> &'static str {
        if self.chosen { CHOSEN_OFFLINE_HELP } else { OFFLINE_HELP }
    }
}

impl SiteSource for Offline {
    async fn orgs(&self) -> Result<Vec<OrgRecord>, SourceError> {
        Err(SourceError(self.help().to_owned()))
    }

    async fn sites(&self) -> Result<Vec<SiteRecord>, SourceError> {
        Err(SourceError(self.help().to_owned()))
    }

    async fn site_by_name(&self, name: &str) -> Result<Option<SiteRecord>, SourceError> {
        Ok(Some(SiteRecord {
            id: String::new(),
            name: name.to_owned(),
            label: name.to_owned(),
            framework: String::new(),
            upstream_id: String::new(),
            upstream_label: String::new(),
            plan: String::new(),
            frozen: false,
            memberships: Vec::new(),
        }))
    }

    async fn environments(&self, _site: &SiteRecord) -> Result<Vec<String>, SourceError> {
        Err(SourceError(self.help().replace("selectors and globs", "environment globs")))
    }

    fn lists(&self) -> bool {
        false
    }
}
