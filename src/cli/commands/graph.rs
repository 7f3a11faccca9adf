//! `graph PLAN --format dot|mermaid|json [--level tasks|jobs]`: the task graph, or the job graph.

use crate::cli::error::CommandResult;
use crate::cli::exit::ExitStatus;
use crate::cli::{GraphArgs, GraphFormat, GraphLevel, Io};
use tb_core::graph::render;
use tb_run::{PlanInput, Refusal, RunError, prepare};
use tb_settings::Layer;

pub(super) fn handle(args: &GraphArgs, io: &mut Io<'_>) -> CommandResult {
    // Never the API unless simulated (DESIGN §2, STYLE): drawing a plan never calls it.
    let mut targeting = super::targeting(&args.targeting, io.vars);
    if !targeting.simulate() {
        targeting.platform = tb_run::Platform::AsWritten;
    }
    let prepared = match prepare(PlanInput::File(args.plan.clone()), &targeting, Layer::default(), io.vars) {
        Ok(prepared) => prepared,
        // The jobs and their needs are in the plan alone: a reviewer without credentials draws
        // them, with the task counts left to the run that resolves the targets.
        Err(RunError::Refused(refusal))
            if args.level == GraphLevel::Jobs && matches!(*refusal, Refusal::Unresolved(_)) =>
        {
            let jobs = unresolved_jobs(&args.plan)?;
            writeln!(
                io.stderr,
                "note: the targets are not resolved (no login): the jobs are drawn without task counts"
            )?;
            return show(&render_jobs(args.format, &jobs), io);
        }
        Err(e) => return Err(e.into()),
    };
    let graph = &prepared.graph;
    let text = match args.level {
        GraphLevel::Tasks => match args.format {
            GraphFormat::Dot => render::dot(graph),
            GraphFormat::Mermaid => render::mermaid(graph),
            GraphFormat::Json => render::json(graph),
        },
        GraphLevel::Jobs => render_jobs(args.format, &render::JobGraph::of(graph)),
    };
    if args.format == GraphFormat::Mermaid && args.level == GraphLevel::Tasks && text.len() > MERMAID_LIMIT {
        writeln!(
            io.stderr,
            "note: this diagram is {} characters; GitHub and Mermaid's defaults render at most {MERMAID_LIMIT}: \
             `--level jobs` draws a node per job",
            text.len()
        )?;
    }
    show(&text, io)
}

fn show(text: &str, io: &mut Io<'_>) -> CommandResult {
    io.stdout.write_all(text.as_bytes())?;
    Ok(ExitStatus::Success)
}

fn render_jobs(format: GraphFormat, jobs: &render::JobGraph) -> String {
    match format {
        GraphFormat::Dot => render::dot_jobs(jobs),
        GraphFormat::Mermaid => render::mermaid_jobs(jobs),
        GraphFormat::Json => render::json_jobs(jobs),
    }
}

/// The job graph of the plan at `path`, validated, with no target resolved.
fn unresolved_jobs(path: &std::path::Path) -> Result<render::JobGraph, RunError> {
    let (_, plan) = tb_run::prepare::load(tb_run::prepare::read_source(path)?)?;
    let index = |id: &tb_core::ids::JobId| plan.jobs.iter().position(|j| &j.id == id);
    let needs: Vec<(usize, usize)> = plan
        .jobs
        .iter()
        .enumerate()
        .flat_map(|(i, job)| job.needs.iter().filter_map(move |need| index(&need.job).map(|n| (i, n))))
        .collect();
    let jobs = plan.jobs.iter().map(|j| (j.id.to_string(), j.op.name().to_owned())).collect();
    Ok(render::JobGraph::unresolved(jobs, &needs))
}

/// Mermaid's default `maxTextSize`, which GitHub keeps: a longer diagram is not drawn.
const MERMAID_LIMIT: usize = 50_000;
