//! `simulate serve`: the built-in simulator as a standalone loopback server, until Ctrl-C;
//! then its counters, as JSON on stdout. `simulate world`: a world file of N sites.

use crate::cli::error::{CommandError, CommandResult};
use crate::cli::exit::ExitStatus;
use crate::cli::{Io, ServeArgs, SimulateCommand, WorldArgs};
use tb_run::connect::{load_world, runtime};
use tb_simulator::Simulator;

pub(super) fn handle(action: &SimulateCommand, io: &mut Io<'_>) -> CommandResult {
    match action {
        SimulateCommand::Serve(args) => serve(args, io),
        SimulateCommand::World(args) => {
            let scale_ok = args.time_scale.is_finite() && args.time_scale > 0.0;
            if !(0.0..=1.0).contains(&args.fail_workflow_rate) || !scale_ok {
                return Err(CommandError::invalid(
                    "--fail-workflow-rate is a fraction from 0 to 1, and --time-scale a positive factor",
                ));
            }
            let machine_name = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
            if args.org.is_empty() || !args.org.chars().all(machine_name) {
                return Err(CommandError::invalid(format!(
                    "--org {}: an organization's machine name is lowercase letters, digits and `-`",
                    args.org
                )));
            }
            io.stdout.write_all(world(args).as_bytes())?;
            Ok(ExitStatus::Success)
        }
    }
}

/// A world of `args.sites` sites in one organization, each with a commit to deploy to test
/// and to live, and a backup on live; the fault and pace knobs as asked.
fn world(args: &WorldArgs) -> String {
    let mut text = format!(
        "# {} sites made by `terminus-batch simulate world`; format: README, \"World files\".\n\
         simulator:\n  seed: {}\n  time_scale: {}\n  fail_workflow_rate: {}\n  latency: {{ min: 0.05, max: 0.15 }}\n\
         user:\n  email: ops@{org}.example\n  machine_token: simulated-machine-token\n\
         orgs:\n  - {{ name: {org}, role: admin }}\nsites:\n",
        args.sites,
        args.seed,
        args.time_scale,
        args.fail_workflow_rate,
        org = args.org,
    );
    let digits = args.sites.saturating_sub(1).to_string().len().max(3);
    for i in 0..args.sites {
        text.push_str(&format!(
            "  - {{ name: {}-{i:0digits$}, org: {}, envs: {{ test: {{ deployable: 1 }}, live: {{ deployable: 1, backups: 1 }} }} }}\n",
            args.org, args.org
        ));
    }
    text
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
