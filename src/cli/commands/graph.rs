//! `graph PLAN --format dot|mermaid|json [--level tasks|jobs]`: the task graph, or the job graph.

use crate::cli::error::CommandResult;
use crate::cli::exit::ExitStatus;
use crate::cli::{GraphArgs, GraphFormat, GraphLevel, Io};
use tb_core::graph::render;
use tb_run::{PlanInput, prepare};
use tb_settings::Layer;

pub(super) fn handle(args: &GraphArgs, io: &mut Io<'_>) -> CommandResult {
    // Never the API unless simulated (DESIGN §2, STYLE): drawing a plan never calls it.
    let mut targeting = super::targeting(&args.targeting, io.vars);
    if !targeting.simulate() {
        targeting.platform = tb_run::Platform::AsWritten;
    }
    let prepared = prepare(PlanInput::File(args.plan.clone()), &targeting, Layer::default(), io.vars)?;
    let graph = &prepared.graph;
    let text = match (args.format, args.level) {
        (GraphFormat::Dot, GraphLevel::Tasks) => render::dot(graph),
        (GraphFormat::Mermaid, GraphLevel::Tasks) => render::mermaid(graph),
        (GraphFormat::Json, GraphLevel::Tasks) => render::json(graph),
        (GraphFormat::Dot, GraphLevel::Jobs) => render::dot_jobs(graph),
        (GraphFormat::Mermaid, GraphLevel::Jobs) => render::mermaid_jobs(graph),
        (GraphFormat::Json, GraphLevel::Jobs) => render::json_jobs(graph),
    };
    if args.format == GraphFormat::Mermaid && args.level == GraphLevel::Tasks && text.len() > MERMAID_LIMIT {
        writeln!(
            io.stderr,
            "note: this diagram is {} characters; GitHub and Mermaid's defaults render at most {MERMAID_LIMIT}: \
             `--level jobs` draws a node per job",
            text.len()
        )?;
    }
    io.stdout.write_all(text.as_bytes())?;
    Ok(ExitStatus::Success)
}

/// Mermaid's default `maxTextSize`, which GitHub keeps: a longer diagram is not drawn.
const MERMAID_LIMIT: usize = 50_000;
