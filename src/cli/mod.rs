//! The command line: clap types for every command, and [`main`], which parses arguments,
//! runs one command and turns its outcome into an exit code. Parsing only; the work happens
//! in [`commands`], the composition root.

pub mod commands;
pub mod diagnostics;
pub mod exit;

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use self::diagnostics::Style;
use self::exit::ExitStatus;

/// Run declarative batch jobs against the Pantheon hosting platform.
#[derive(Debug, Parser)]
#[command(name = "terminus-batch", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// More output on stderr (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse and check a plan offline; every error at once, each with its line and column.
    Validate {
        /// The plan file.
        plan: PathBuf,
    },
    /// Dry run: the expanded tasks, dependencies, waves, workflows and a time estimate.
    Plan(PlanArgs),
    /// Print the task graph, for review and docs.
    Graph(GraphArgs),
    /// Print the plan's JSON Schema (also committed as schemas/plan.schema.json).
    Schema,
    /// Print shell completions.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Where targets are resolved and which part of the plan to keep.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Resolve targets against the simulator's world instead of the Pantheon API.
    #[arg(long)]
    pub simulate: bool,
    /// The world file for --simulate (default: the built-in world).
    #[arg(long, requires = "simulate", env = "TERMINUS_BATCH_WORLD", value_name = "FILE")]
    pub world: Option<PathBuf>,
    /// Keep only these jobs and what they need.
    #[arg(long, value_delimiter = ',', value_name = "JOB[,JOB]")]
    pub only: Vec<String>,
    /// Keep only the tasks of sites matching this glob.
    #[arg(long, value_name = "GLOB")]
    pub sites: Option<String>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The plan file.
    pub plan: PathBuf,
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Save exactly this plan (resolved targets and expanded tasks) as JSON for `apply`.
    #[arg(short = 'o', long = "out", value_name = "SAVED")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Text,
    Markdown,
    Json,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The plan file.
    pub plan: PathBuf,
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    pub format: GraphFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
    Json,
}

/// The output handles and drawing style a command writes with.
pub struct Io<'a> {
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
    pub style: Style,
    pub quiet: bool,
}

/// Parses the command line, runs the command, and returns its exit code.
#[must_use]
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let status = if e.use_stderr() { ExitStatus::Invalid } else { ExitStatus::Success };
            // clap prints help and version to stdout and errors to stderr itself.
            if e.print().is_err() {
                return ExitStatus::Invalid.into();
            }
            return status.into();
        }
    };
    let style = Style::detect(
        io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
        std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()),
    );
    let stdout = io::stdout();
    let stderr = io::stderr();
    let mut out = stdout.lock();
    let mut err = stderr.lock();
    let mut io = Io { stdout: &mut out, stderr: &mut err, style, quiet: cli.global.quiet };
    match commands::run(cli, &mut io) {
        Ok(status) => status.into(),
        // A closed pipe (`| head`) is the reader's choice, not an error worth a message.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitStatus::Success.into(),
        Err(e) => {
            let _ignored = diagnostics::write_error(io.stderr, &format!("writing output failed: {e}"));
            ExitStatus::Internal.into()
        }
    }
}

/// A multi-threaded tokio runtime for the commands that resolve targets or call the API;
/// `validate` and `schema` never start one.
///
/// # Errors
/// When the operating system refuses threads.
pub fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()
}
