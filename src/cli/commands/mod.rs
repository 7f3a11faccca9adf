//! The composition root: one file per command. The only code that names every stage
//! (parse → validate → resolve → expand → graph) and wires them together.

mod apply;
mod auth;
mod bench;
mod completions;
pub(crate) mod connect;
mod graph;
mod plan;
mod run;
mod schema;
mod simulate;
mod validate;

use std::io;
use std::path::Path;

use super::diagnostics::{write_error, write_plan_errors};
use super::exit::ExitStatus;
use super::{Cli, Command, Io, TargetArgs};
use crate::expand::{Expansion, Filter, Task, expand};
use crate::graph::TaskGraph;
use crate::operations::api::ApiClient;
use crate::plan::model::Plan;
use crate::plan::ops::OperationSpec;
use crate::plan::{PlanError, PlanSource};
use crate::resolve::{OrgRecord, ResolveFailure, Resolved, SiteRecord, SiteSource, SourceError, resolve};
use crate::settings::{Layer, Settings, SettingsError};
use crate::simulator::Simulator;

pub use apply::{SavedPlan, parse_saved};
pub use schema::plan_schema;

/// Runs one command.
///
/// # Errors
/// Only failures to write output; every other failure is reported and mapped to a status.
pub fn run(cli: Cli, io: &mut Io<'_>) -> io::Result<ExitStatus> {
    match cli.command {
        Command::Validate { plan } => validate::run(&plan, io),
        Command::Plan(args) => plan::run(&args, io),
        Command::Apply(args) => apply::run(&args, io),
        Command::Run(args) => run::run(&args, io),
        Command::Graph(args) => graph::run(&args, io),
        Command::Schema { report } => schema::run(report, io),
        Command::Completions { shell } => completions::run(shell, io),
        Command::Auth { action } => auth::run(&action, io),
        Command::Simulate { action } => simulate::run(&action, io),
    }
}

/// Reads a plan file; a failure is reported and becomes exit 2.
fn read_source(path: &Path, max_bytes: usize, io: &mut Io<'_>) -> io::Result<Result<PlanSource, ExitStatus>> {
    let shown = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() > max_bytes => {
            write_error(
                io.stderr,
                &format!("{shown} is {} bytes, over the limit of {} bytes", bytes.len(), max_bytes),
            )?;
            Ok(Err(ExitStatus::Invalid))
        }
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Ok(Ok(PlanSource::new(shown, text))),
            Err(e) => {
                write_error(
                    io.stderr,
                    &format!("{shown} is not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to()),
                )?;
                Ok(Err(ExitStatus::Invalid))
            }
        },
        Err(e) => {
            write_error(io.stderr, &format!("cannot read {shown}: {e}"))?;
            Ok(Err(ExitStatus::Invalid))
        }
    }
}

/// Where a plan comes from: a file, or text built in memory (`run`).
pub(crate) enum PlanInput<'a> {
    File(&'a Path),
    Generated(PlanSource),
    /// A saved plan's source, checked against its hash, the targets it resolved, and what
    /// `--refresh` saw each task would do.
    Saved {
        source: PlanSource,
        resolved: Resolved,
        preconditions: Vec<(String, plan::Refresh)>,
    },
}

/// Loads and validates a plan, reporting every error.
fn load_plan(path: &Path, io: &mut Io<'_>) -> io::Result<Result<(PlanSource, Plan), ExitStatus>> {
    load_input(PlanInput::File(path), io)
}

fn load_input(input: PlanInput<'_>, io: &mut Io<'_>) -> io::Result<Result<(PlanSource, Plan), ExitStatus>> {
    let source = match input {
        PlanInput::File(path) => match read_source(path, crate::plan::parse::Budgets::PLAN.bytes, io)? {
            Ok(s) => s,
            Err(status) => return Ok(Err(status)),
        },
        PlanInput::Generated(source) | PlanInput::Saved { source, .. } => source,
    };
    match crate::plan::load(&source) {
        Ok(plan) => Ok(Ok((source, plan))),
        Err(errors) => {
            write_plan_errors(io.stderr, &source, &errors, io.style)?;
            Ok(Err(ExitStatus::Invalid))
        }
    }
}

/// A plan taken through every stage before execution: resolved, expanded and built into a
/// graph, with the connection that resolved it (kept for `apply`).
pub(crate) struct Prepared {
    pub source: PlanSource,
    pub plan: Plan,
    pub resolved: Resolved,
    /// Where targets came from, for the output header.
    pub resolved_by: String,
    pub expansion: Expansion<OperationSpec>,
    pub graph: TaskGraph<Task<OperationSpec>>,
    pub settings: Settings,
    pub connection: Option<Connection>,
}

/// A live connection: the client, the simulator it talks to (under `--simulate`), and the
/// runtime both run on.
pub(crate) struct Connection {
    pub runtime: tokio::runtime::Runtime,
    pub client: ApiClient,
    pub simulator: Option<Simulator>,
}

impl Connection {
    /// Stops the in-process simulator, if any, and returns its counters.
    pub(crate) fn close(self) -> Option<crate::simulator::Stats> {
        let Self { runtime, simulator, .. } = self;
        simulator.map(|sim| runtime.block_on(sim.stop()))
    }
}

/// Reports a settings error (exit 2).
fn settings_failed(io: &mut Io<'_>, e: &SettingsError) -> io::Result<ExitStatus> {
    write_error(io.stderr, &e.to_string())?;
    Ok(ExitStatus::Invalid)
}

/// Starts the in-process simulator for `--simulate` and a client pointed at it.
fn simulate(
    targets: &TargetArgs,
    settings: &Settings,
    io: &mut Io<'_>,
) -> io::Result<Result<(Connection, String), ExitStatus>> {
    let (world, name) = match connect::load_world(targets.world.as_deref()) {
        Ok(w) => w,
        Err(connect::WorldError::Unreadable(message)) => {
            write_error(io.stderr, &message)?;
            return Ok(Err(ExitStatus::Invalid));
        }
        Err(connect::WorldError::Invalid(source, errors)) => {
            write_plan_errors(io.stderr, &source, &errors, io.style)?;
            return Ok(Err(ExitStatus::Invalid));
        }
    };
    let runtime = super::runtime()?;
    let knobs = world.knobs.clone();
    let simulator = match runtime.block_on(Simulator::start(&world, knobs, 0)) {
        Ok(sim) => sim,
        Err(e) => {
            write_error(io.stderr, &format!("cannot start the simulator: {e}"))?;
            return Ok(Err(ExitStatus::Internal));
        }
    };
    let client = match ApiClient::new(connect::simulator_config(settings, &simulator)) {
        Ok(c) => c,
        Err(e) => {
            write_error(io.stderr, &e.to_string())?;
            return Ok(Err(ExitStatus::Internal));
        }
    };
    Ok(Ok((Connection { runtime, client, simulator: Some(simulator) }, format!("simulator world {name}"))))
}

/// A client for the real API.
fn connect_api(settings: &Settings, io: &mut Io<'_>) -> io::Result<Result<Connection, ExitStatus>> {
    let runtime = super::runtime()?;
    match ApiClient::new(connect::api_config(settings)) {
        Ok(client) => Ok(Ok(Connection { runtime, client, simulator: None })),
        Err(e) => {
            write_error(io.stderr, &e.to_string())?;
            Ok(Err(ExitStatus::Invalid))
        }
    }
}

/// Runs parse → validate → resolve → expand → graph, reporting the first stage's errors.
///
/// Targets resolve through the API listings (or the in-process simulator under
/// `--simulate`). Without any login at hand, explicit site names are taken as written so a
/// plan can still be reviewed; selectors and globs then need a login.
fn prepare(path: &Path, targets: &TargetArgs, io: &mut Io<'_>) -> io::Result<Result<Prepared, ExitStatus>> {
    prepare_with(PlanInput::File(path), targets, Layer::default(), io)
}

/// [`prepare`] with settings given as flags.
fn prepare_with(
    input: PlanInput<'_>,
    targets: &TargetArgs,
    flags: Layer,
    io: &mut Io<'_>,
) -> io::Result<Result<Prepared, ExitStatus>> {
    let saved = match &input {
        PlanInput::Saved { resolved, .. } => Some(resolved.clone()),
        _ => None,
    };
    let (source, plan) = match load_input(input, io)? {
        Ok(x) => x,
        Err(status) => return Ok(Err(status)),
    };
    let mut settings = match connect::resolve_settings(io.vars, flags, Some(&plan.settings), targets.simulate) {
        Ok(s) => s,
        Err(e) => return settings_failed(io, &e).map(Err),
    };
    if let Some(shard) = targets.shard {
        // DESIGN §11: a `scope: all` need joins everything into one component.
        if let Some(job) =
            plan.jobs.iter().find(|j| j.needs.iter().any(|n| n.scope == crate::plan::model::NeedScope::All))
        {
            write_error(
                io.stderr,
                &format!(
                    "--shard {shard}: job `{}` needs a job with `scope: all`, which joins every task into one shard; shard a plan without that barrier",
                    job.id
                ),
            )?;
            return Ok(Err(ExitStatus::Invalid));
        }
        #[expect(clippy::cast_precision_loss, reason = "a shard count")]
        let share = shard.count as f64;
        settings.requests_per_second /= share;
    }
    let (connection, resolved_by) = if targets.simulate {
        match simulate(targets, &settings, io)? {
            Ok((c, by)) => (Some(c), by),
            Err(status) => return Ok(Err(status)),
        }
    } else if connect::has_credentials(&settings) {
        match connect_api(&settings, io)? {
            Ok(c) => (Some(c), format!("Pantheon API at {}", settings.api_base())),
            Err(status) => return Ok(Err(status)),
        }
    } else {
        (None, "site names as written (not logged in, so not checked against the API)".to_owned())
    };
    let resolved_by =
        if saved.is_some() { format!("the saved plan's targets (connected to {resolved_by})") } else { resolved_by };
    let outcome = match (saved, &connection) {
        (Some(resolved), _) => Ok(resolved),
        (None, Some(c)) => c.runtime.block_on(resolve(&plan, &connect::ApiSource { client: c.client.clone() })),
        (None, None) => super::runtime()?.block_on(resolve(&plan, &Offline)),
    };
    let resolved = match outcome {
        Ok(r) => r,
        Err(ResolveFailure::Plan(errors)) => {
            write_plan_errors(io.stderr, &source, &errors, io.style)?;
            return Ok(Err(ExitStatus::Invalid));
        }
        Err(ResolveFailure::Source(e)) => {
            write_error(io.stderr, &format!("cannot resolve the plan's targets: {e}"))?;
            return Ok(Err(ExitStatus::Unreachable));
        }
    };
    let filter = Filter { only: targets.only.clone(), sites: targets.sites.clone() };
    let expansion = match expand(&plan, &resolved, &filter) {
        Ok(e) => match targets.shard {
            Some(shard) => crate::shard::keep(&e, shard, |t| t.payload.kind().estimate_secs()),
            None => e,
        },
        Err(errors) => {
            write_plan_errors(io.stderr, &source, &errors, io.style)?;
            return Ok(Err(ExitStatus::Invalid));
        }
    };
    let edges: Vec<(usize, usize)> =
        expansion.tasks.iter().enumerate().flat_map(|(i, t)| t.needs.iter().map(move |&n| (n, i))).collect();
    let graph = match TaskGraph::build(expansion.tasks.clone(), edges, |t| t.id.to_string()) {
        Ok(g) => g,
        Err(e) => {
            // Job-level cycles are refused by validation, so a task cycle is a bug.
            write_error(io.stderr, &format!("internal error: {e}"))?;
            return Ok(Err(ExitStatus::Internal));
        }
    };
    Ok(Ok(Prepared { source, plan, resolved, resolved_by, expansion, graph, settings, connection }))
}

/// Resolution without any API: explicit site names are taken as written; selectors and
/// globs cannot be resolved and say what to do instead.
struct Offline;

const OFFLINE_HELP: &str = "resolving selectors and globs needs the Pantheon API listings, and no login is at hand: \
set TERMINUS_MACHINE_TOKEN or run `terminus-batch auth login`, or pass --simulate to resolve against the simulator's world";

impl SiteSource for Offline {
    async fn orgs(&self) -> Result<Vec<OrgRecord>, SourceError> {
        Err(SourceError(OFFLINE_HELP.to_owned()))
    }

    async fn sites(&self) -> Result<Vec<SiteRecord>, SourceError> {
        Err(SourceError(OFFLINE_HELP.to_owned()))
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
        Err(SourceError(OFFLINE_HELP.replace("selectors and globs", "environment globs")))
    }
}

/// Reports plan errors found after validation (used by tests of the diagnostics).
#[must_use]
pub fn render_plan_errors(source: &PlanSource, errors: &[PlanError], width: usize) -> String {
    let mut out = Vec::new();
    let style = super::diagnostics::Style { color: false, width };
    let _ignored = write_plan_errors(&mut out, source, errors, style);
    String::from_utf8_lossy(&out).into_owned()
}
