//! One file per command: each maps its arguments to the library ([`tb_run`] for the
//! commands that prepare or apply a plan) and renders what comes back. Errors go up as a
//! [`CommandError`], printed once by `cli::main`.

mod adhoc;
mod apply;
mod auth;
mod completions;
mod graph;
mod plan;
mod report_files;
mod runs;
mod schema;
mod simulate;
mod validate;

use super::error::{CommandError, CommandResult};
use super::{Cli, Command, Io, TargetingArgs};
use tb_plan::expand::Filter;
use tb_plan::plan::PlanError;
use tb_plan::plan::PlanSource;
use tb_run::{Platform, Targeting};

pub use schema::plan_schema;

/// Runs one command.
///
/// # Errors
/// A [`CommandError`] carrying the exit status, for `cli::main` to print.
pub fn dispatch(cli: Cli, io: &mut Io<'_>) -> CommandResult {
    match cli.command {
        Command::Validate { plan } => validate::handle(&plan, io),
        Command::Plan(args) => plan::handle(&args, io),
        Command::Apply(args) => apply::handle(&args, io),
        Command::Run(args) => adhoc::handle(&args, io),
        Command::Graph(args) => graph::handle(&args, io),
        Command::Schema { report } => schema::handle(report, io),
        Command::Runs { action } => runs::handle(&action, io),
        Command::Completions { shell } => completions::handle(shell, io),
        Command::Auth { action } => auth::handle(&action, io),
        Command::Simulate { action } => simulate::handle(&action, io),
    }
}

/// The library's view of `--simulate`, `--world` (else `TERMINUS_BATCH_WORLD`, read from the
/// environment's snapshot with every other variable, under `--simulate` only), `--only`,
/// `--sites` and `--shard`.
fn targeting(args: &TargetingArgs, vars: &tb_settings::EnvVars) -> Targeting {
    Targeting {
        platform: if args.simulate { Platform::Simulator } else { Platform::Api },
        world: args.world.clone().or_else(|| world_from(vars).filter(|_| args.simulate)),
        filter: Filter { only: args.only.clone(), sites: args.sites.clone() },
        shard: args.shard,
    }
}

/// The world file `TERMINUS_BATCH_WORLD` names, if any.
fn world_from(vars: &tb_settings::EnvVars) -> Option<std::path::PathBuf> {
    vars.get(tb_core::env::WORLD).map(std::path::PathBuf::from)
}

/// Reports plan errors found after validation (used by tests of the diagnostics).
#[must_use]
pub fn render_plan_errors(source: &PlanSource, errors: &[PlanError], width: usize) -> String {
    let mut out = Vec::new();
    let style = super::diagnostics::Style { color: false, color_out: false, terminal: false, width };
    let error = CommandError::Plan { source: source.clone(), errors: errors.to_vec() };
    let _unwritable = error.print(&mut out, style);
    String::from_utf8_lossy(&out).into_owned()
}
