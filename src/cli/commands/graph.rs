//! `graph PLAN --format dot|mermaid|json`: the task graph.

use crate::cli::error::CommandResult;
use crate::cli::exit::ExitStatus;
use crate::cli::{GraphArgs, GraphFormat, Io};
use crate::graph::render;
use crate::run::{PlanInput, prepare};
use crate::settings::Layer;

pub(super) fn run(args: &GraphArgs, io: &mut Io<'_>) -> CommandResult {
    let targets = super::target_options(&args.targets);
    let prepared = prepare(PlanInput::File(args.plan.clone()), &targets, Layer::default(), io.vars)?;
    let text = match args.format {
        GraphFormat::Dot => render::dot(&prepared.graph),
        GraphFormat::Mermaid => render::mermaid(&prepared.graph),
        GraphFormat::Json => render::json(&prepared.graph),
    };
    io.stdout.write_all(text.as_bytes())?;
    Ok(ExitStatus::Success)
}
