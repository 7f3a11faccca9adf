//! `cargo bench --bench simulate`: the workloads of README "Performance" against the
//! simulator, with their figures: wall time against the lower bound, requests per workflow
//! and per task, the speedup over a terminus-like sequential run, and peak memory. Not a
//! timed test: it prints figures for a person (or `--json` for a script).
//!
//!     cargo bench --bench simulate
//!     cargo bench --bench simulate -- --workload release --sites 100 --time-scale 0.01
//!     cargo bench --bench simulate -- --workload listing --json

#![expect(clippy::print_stdout, clippy::print_stderr, reason = "a benchmark prints its figures")]

mod forecast;
mod latency;
mod model;
mod workloads;

use clap::Parser;

use workloads::{Args, Workload};

/// The benchmark workloads against the simulator.
#[derive(Parser)]
#[command(name = "simulate-bench")]
struct Cli {
    /// Workloads to run (repeatable; default: all): release (a), cache-clear (b), listing (c),
    /// fleet (d), fleet-plan (e).
    #[arg(long = "workload", value_name = "WORKLOAD", value_parser = Workload::parse)]
    workloads: Vec<Workload>,
    /// Sites in the release, cache-clear, fleet and fleet-plan workloads (default: 100, 1,000,
    /// 1,000 and 5,000), per organization in the listing workload (default: 800).
    #[arg(long, value_name = "N")]
    sites: Option<usize>,
    /// Simulated time per real second, for workflows, latency and request rates alike
    /// (default: 0.01; 0.1 for the fleet workload, where every request waits for the rate).
    #[arg(long, value_name = "FACTOR")]
    time_scale: Option<f64>,
    /// Skip the sequential terminus-like runs (they take concurrency times longer).
    #[arg(long)]
    no_sequential: bool,
    /// Print figures as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// `cargo bench` passes `--bench`; accepted and ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let args = Args {
        workloads: cli.workloads,
        sites: cli.sites,
        time_scale: cli.time_scale,
        no_sequential: cli.no_sequential,
    };
    let json = cli.json;
    let figures = workloads::run(&args, |name| {
        eprintln!("running the {name} workload…");
    });
    match figures {
        Ok(figures) if json => match serde_json::to_string_pretty(&figures) {
            Ok(text) => {
                println!("{text}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                std::process::ExitCode::FAILURE
            }
        },
        Ok(figures) => {
            for f in &figures {
                print!("{}", f.render());
            }
            std::process::ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}
