//! `simulate serve`: the built-in simulator as a standalone loopback server, until Ctrl-C;
//! then its counters, as JSON on stdout.

use crate::cli::error::{CommandError, CommandResult};
use crate::cli::exit::ExitStatus;
use crate::cli::{Io, ServeArgs, SimulateCommand};
use tb_run::connect::{load_world, runtime};
use tb_simulator::Simulator;

pub(super) fn handle(action: &SimulateCommand, io: &mut Io<'_>) -> CommandResult {
    match action {
        SimulateCommand::Serve(args) => serve(args, io),
    }
}

fn serve(args: &ServeArgs, io: &mut Io<'_>) -> CommandResult {
    let (world, name, _sha256) = load_world(args.world.clone().or_else(|| super::world_from(io.vars)).as_deref())?;
    let mut knobs = world.knobs.clone();
    if let Some(seed) = args.seed {
        knobs.seed = seed;
    }
    if let Some(scale) = args.time_scale {
        knobs.time_scale = scale;
    }
    if let Some((min, max)) = args.latency {
        knobs.latency = tb_simulator::knobs::Latency { min, max };
    }
    if args.rate_limit.is_some() {
        knobs.rate_limit = args.rate_limit;
    }
    if let Some(rate) = args.error_rate {
        knobs.error_rate = rate;
    }
    if let Some(rate) = args.drop_rate {
        knobs.drop_rate = rate;
    }
    if let Some(rate) = args.fail_workflow_rate {
        knobs.fail_workflow_rate = rate;
    }
    if let Some(history) = args.history {
        knobs.history = history;
    }
    knobs.check().map_err(CommandError::invalid)?;
    let runtime = runtime()?;
    let stats = runtime.block_on(async {
        let sim = match Simulator::start(&world, knobs, args.port).await {
            Ok(sim) => sim,
            Err(e) => return Err(e),
        };
        let addr = sim.addr();
        let notice = format!(
            "simulator of {name} listening on http://{addr}/api/ ({} sites)\n\
             point terminus-batch or terminus at it with TERMINUS_PROTOCOL=http TERMINUS_HOST={} TERMINUS_PORT={} \
             and the world's machine token (user.machine_token); Ctrl-C stops it\n",
            world.sites.len(),
            addr.ip(),
            addr.port()
        );
        Ok((notice, sim))
    });
    let (notice, sim) = stats.map_err(|source| CommandError::Listen { port: args.port, source })?;
    io.stderr.write_all(notice.as_bytes())?;
    io.stderr.flush()?;
    let stats = runtime.block_on(async {
        let _signal = tokio::signal::ctrl_c().await;
        sim.stop().await
    });
    let json = serde_json::to_string_pretty(&stats).map_err(std::io::Error::other)?;
    writeln!(io.stdout, "{json}")?;
    Ok(ExitStatus::Success)
}
