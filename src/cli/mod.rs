//! The command line: clap types for every command, and [`main`], which parses arguments,
//! runs one command and turns its outcome into an exit code. Parsing only; the work happens
//! in [`commands`], the composition root.

pub mod commands;
mod complete;
pub mod diagnostics;
pub mod error;
pub mod exit;

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use clap_complete::ArgValueCandidates;

use self::diagnostics::{Style, Terminals};
use self::exit::ExitStatus;
use tb_report::live::StatusLevel;
use tb_settings::EnvVars;

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
    /// Colour: `auto` on a terminal unless `NO_COLOR` is set; `always`; `never`.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto, global = true)]
    pub color: ColorChoice,
}

/// When to colour output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// `--status-level` and `--final-status-level` take the live display's levels by their names.
fn status_level() -> impl clap::builder::TypedValueParser<Value = StatusLevel> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(StatusLevel::ALL.map(StatusLevel::name))
        .map(|name| StatusLevel::ALL.into_iter().find(|level| level.name() == name).unwrap_or(StatusLevel::Skip))
}

/// How read-only tasks' data is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DataFormat {
    Table,
    Json,
}

/// What `apply` writes on stdout while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MessageFormat {
    /// The final table.
    Human,
    /// Every event as a JSON line as it happens (the journal's shape); the table goes to stderr.
    Json,
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
    /// Execute a plan: run its tasks concurrently within bounds, wait for Pantheon's
    /// workflows, and report every task.
    Apply(ApplyArgs),
    /// Run one operation across targets: a one-job plan built in memory, then exactly
    /// `apply` (all its flags). `--dry-run` prints the plan instead.
    Run(AdhocArgs),
    /// Print the task graph, for review and docs.
    Graph(GraphArgs),
    /// Print the plan's JSON Schema (also committed as schemas/plan.schema.json), or with
    /// `--report` the JSON report's (schemas/batch-result.schema.json).
    Schema {
        /// The schema of `--report json` files instead of plans.
        #[arg(long)]
        report: bool,
    },
    /// Look back on runs: `runs list`, `runs show [RUN]`.
    Runs {
        #[command(subcommand)]
        action: RunsCommand,
    },
    /// Print shell completions.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Log in with a machine token, show who is logged in, or log out. Shares terminus's own
    /// session and token files, so a terminus login works here and back.
    Auth {
        #[command(subcommand)]
        action: AuthCommand,
    },
    /// The built-in Pantheon simulator.
    Simulate {
        #[command(subcommand)]
        action: SimulateCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// The runs in the state directory, newest first: id, plan, start, duration, counts,
    /// how each ended.
    List {
        /// Where runs keep their state: a directory or `s3://`, `gs://`, `az://` (default:
        /// `TERMINUS_BATCH_STATE_DIR`, else the repository root's `.terminus-batch`, else
        /// one here).
        #[arg(long, value_name = "DIR|URL")]
        state_dir: Option<String>,
        /// Also list the `run OP` runs that only read (`site:info`, `env:code-log`, …).
        #[arg(long)]
        all: bool,
    },
    /// One run: its summary and the tasks that did not succeed; `--report` renders any
    /// report again from the run's records.
    Show {
        /// The run id (default: the newest run).
        #[arg(add = ArgValueCandidates::new(complete::runs))]
        run: Option<String>,
        /// Where runs keep their state (default: as `runs list`).
        #[arg(long, value_name = "DIR|URL")]
        state_dir: Option<String>,
        /// Write a report: `json=PATH`, `junit=PATH`, `markdown=PATH`, `html=PATH` (`-` is
        /// stdout).
        #[arg(long = "report", value_name = "FORMAT=PATH")]
        reports: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Exchange a machine token for a session and save both (as `terminus auth:login`).
    Login {
        /// The machine token (default: `TERMINUS_MACHINE_TOKEN`).
        #[arg(long, value_name = "TOKEN")]
        machine_token: Option<String>,
    },
    /// Print the logged-in user's email.
    Whoami,
    /// Delete the saved session and machine tokens (as `terminus auth:logout`).
    Logout,
}

#[derive(Debug, Subcommand)]
pub enum SimulateCommand {
    /// Serve the simulated Pantheon API on 127.0.0.1 until Ctrl-C, then print its counters.
    Serve(ServeArgs),
    /// Print a world of N sites for `--world`: a fleet to rehearse a release on.
    World(WorldArgs),
}

#[derive(Debug, Args)]
pub struct WorldArgs {
    /// How many sites (`fleet-000` …), each with dev, test and live and a commit to deploy.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub sites: u32,
    /// The organization they belong to (`on: { sites: { org: NAME } }`).
    #[arg(long, default_value = "fleet", value_name = "NAME")]
    pub org: String,
    /// Fraction of workflows that fail.
    #[arg(long, default_value_t = 0.0, value_name = "FRACTION")]
    pub fail_workflow_rate: f64,
    /// Real seconds per platform second (0.01: a 45 s deploy takes 0.45 s).
    #[arg(long, default_value_t = 0.01, value_name = "FACTOR")]
    pub time_scale: f64,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The world file (default: `TERMINUS_BATCH_WORLD`, else the built-in world).
    #[arg(long, value_name = "FILE")]
    pub world: Option<PathBuf>,
    /// The port (0 picks a free one).
    #[arg(long, default_value_t = 8765)]
    pub port: u16,
    /// Seed of every random choice (overrides the world's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Multiplies durations, latency and Retry-After; divides the rate limit.
    #[arg(long, value_name = "FACTOR")]
    pub time_scale: Option<f64>,
    /// Request latency range in seconds, `MIN,MAX` (e.g. `0.1,0.2`).
    #[arg(long, value_name = "MIN,MAX", value_parser = parse_latency)]
    pub latency: Option<(f64, f64)>,
    /// Requests per second before answering 429.
    #[arg(long, value_name = "RPS")]
    pub rate_limit: Option<f64>,
    /// Fraction of requests answered with a 5xx.
    #[arg(long, value_name = "FRACTION")]
    pub error_rate: Option<f64>,
    /// Fraction of requests whose connection is dropped.
    #[arg(long, value_name = "FRACTION")]
    pub drop_rate: Option<f64>,
    /// Fraction of workflows that fail.
    #[arg(long, value_name = "FRACTION")]
    pub fail_workflow_rate: Option<f64>,
    /// Finished workflows each site already lists.
    #[arg(long, value_name = "N")]
    pub history: Option<u32>,
}

/// `MIN,MAX` in seconds, `0 <= MIN <= MAX`.
fn parse_latency(text: &str) -> Result<(f64, f64), String> {
    let (min, max) =
        text.split_once(',').ok_or_else(|| format!("write MIN,MAX in seconds, e.g. 0.1,0.2 (got `{text}`)"))?;
    let number = |v: &str| {
        v.trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .ok_or_else(|| format!("`{v}` is not a number of seconds"))
    };
    let (min, max) = (number(min)?, number(max)?);
    if min > max {
        return Err(format!("the minimum {min} is above the maximum {max}"));
    }
    Ok((min, max))
}

/// Where targets are resolved and which part of the plan to keep.
#[derive(Debug, Args)]
pub struct TargetingArgs {
    /// Resolve targets against the simulator's world instead of the Pantheon API.
    #[arg(long)]
    pub simulate: bool,
    /// The world file for --simulate (default: `TERMINUS_BATCH_WORLD`, else the built-in
    /// world).
    #[arg(long, requires = "simulate", value_name = "FILE")]
    pub world: Option<PathBuf>,
    /// Keep only these jobs and what they need.
    #[arg(long, value_delimiter = ',', value_name = "JOB[,JOB]", add = ArgValueCandidates::new(complete::jobs))]
    pub only: Vec<String>,
    /// Keep only the tasks of sites matching this glob.
    #[arg(long, value_name = "GLOB")]
    pub sites: Option<String>,
    /// Run shard I of N: the task graph split along its connected components (no task
    /// depends across shards), balanced by estimated work; each shard takes 1/N of the
    /// request rate.
    #[arg(long, value_name = "I/N", value_parser = tb_plan::shard::Shard::from_str_arg)]
    pub shard: Option<tb_plan::shard::Shard>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The plan file.
    pub plan: PathBuf,
    #[command(flatten)]
    pub targeting: TargetingArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Save exactly this plan (resolved targets and expanded tasks) as JSON for `apply`.
    #[arg(short = 'o', long = "out", value_name = "SAVED")]
    pub out: Option<PathBuf>,
    /// Also make read-only API calls: per task, whether it would change something, nothing,
    /// or fail (a preflight finding).
    #[arg(long)]
    pub refresh: bool,
    /// Exit 0 when nothing would change, 4 when tasks would change something, 5 when some of
    /// them are destructive (implies --refresh).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// With `--format github-matrix`: how many shards to offer (empty ones are left out).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub shards: usize,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The plan file.
    pub plan: PathBuf,
    #[command(flatten)]
    pub targeting: TargetingArgs,
    #[command(flatten)]
    pub exec: ExecArgs,
}

#[derive(Debug, Args)]
pub struct AdhocArgs {
    /// The operation, by its terminus name (e.g. `env:deploy`, `site:info`, `org:list`).
    #[arg(add = ArgValueCandidates::new(complete::operations))]
    pub operation: String,
    /// Targets: comma-separated `site`, `site.env`, or globs such as `'acme-*.live'`. Omit for
    /// account operations.
    #[arg(long, value_delimiter = ',', value_name = "TARGETS")]
    pub on: Vec<String>,
    /// An option, `KEY=VALUE` (repeatable); a value starting with `[`, `{` or a quote is read as
    /// YAML (`command=[cset, name, "My Site, Inc"]`), any other as a YAML scalar, whole.
    #[arg(long = "with", value_name = "KEY=VALUE")]
    pub with: Vec<String>,
    /// Print the generated plan and its dry run instead of applying it.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub targeting: TargetingArgs,
    #[command(flatten)]
    pub exec: ExecArgs,
}

/// How `apply` (and `run`) execute.
#[derive(Debug, Args)]
#[expect(clippy::struct_excessive_bools, reason = "command-line flags, each its own switch")]
pub struct ExecArgs {
    /// Tasks in flight at once (default 10, or the plan's `settings.concurrency`).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Stop starting tasks at the first failure; wait for those in flight.
    #[arg(long, conflicts_with = "continue_on_error")]
    pub fail_fast: bool,
    /// Run everything that does not depend on a failure (the default).
    #[arg(long)]
    pub continue_on_error: bool,
    /// Write a report: `json=PATH`, `junit=PATH`, `markdown=PATH`, `html=PATH` (`-` is stdout);
    /// repeat it, or separate several with commas (`html=a.html,md=b.md`).
    #[arg(long = "report", value_name = "FORMAT=PATH")]
    pub reports: Vec<String>,
    /// Tell a webhook of the run's end (success, failure or halt): `URL`, `slack=URL` or
    /// `json=URL` (Slack's format for hooks.slack.com, JSON otherwise); repeat it. The URL is
    /// a secret: pass it from a variable (`--notify "$SLACK_WEBHOOK"`).
    #[arg(long, value_name = "URL")]
    pub notify: Vec<String>,
    /// Apply without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Allow operations that destroy data (marked in `plan`).
    #[arg(long)]
    pub allow_destructive: bool,
    /// When the run drains (fail-fast, failure budget, Ctrl-C), stop waiting for tasks in
    /// flight too.
    #[arg(long)]
    pub abort_in_flight: bool,
    /// Backup downloads at once (`backup:get`), apart from API requests.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub downloads: usize,
    /// Resume the newest run of this plan (of this shard and run group) in the state, or
    /// `--resume=RUN`: tasks that succeeded are not run again, workflows that started are
    /// waited for, the rest run. `--resume=auto` resumes such a run if there is one and
    /// starts afresh otherwise (a CI job that may be a re-run).
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "",
        value_name = "RUN",
        add = ArgValueCandidates::new(complete::resumable)
    )]
    pub resume: Option<String>,
    /// Task events printed while the run goes: `none`, `fail`, `retry`, `skip`, `pass`,
    /// `all` (default: `retry` on a terminal, `fail` off one, with a progress line every 15 s).
    #[arg(long, value_name = "LEVEL", value_parser = status_level())]
    pub status_level: Option<StatusLevel>,
    /// Tasks listed after the run, grouped by cause (default: `skip`, every task that did
    /// not succeed).
    #[arg(long, value_name = "LEVEL", value_parser = status_level(), default_value = "skip")]
    pub final_status_level: StatusLevel,
    /// How what read-only tasks read is printed on stdout after the run: `table` (one per
    /// task) or `json` (one object by task id; the final table then goes to stderr).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = DataFormat::Table)]
    pub format: DataFormat,
    /// `json`: every event on stdout as a JSON line while the run goes, for scripts.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = MessageFormat::Human)]
    pub message_format: MessageFormat,
    /// Where runs keep their journal, lock and leases: a directory, or an object store
    /// (`s3://bucket/prefix`, `gs://…`, `az://…`) shared by a team (default:
    /// `TERMINUS_BATCH_STATE_DIR`, else the plan's `settings.state`, else the repository
    /// root's `.terminus-batch`, else one beside the plan).
    #[arg(long, value_name = "DIR|URL")]
    pub state_dir: Option<String>,
    /// When another run of the plan holds its lock, wait up to this long for it (`10m`)
    /// instead of refusing at once.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub lock_timeout: Option<std::time::Duration>,
    /// The run group this run is a part of: the shards of one CI pipeline, whose records
    /// `runs show GROUP` renders as one report (default: `github-$GITHUB_RUN_ID` in GitHub
    /// Actions, `gitlab-$CI_PIPELINE_ID` in GitLab CI).
    #[arg(long, value_name = "ID")]
    pub run_group: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Text,
    Markdown,
    Json,
    /// `{"shard": ["1/N", …]}` for a CI matrix (see `--shards`).
    GithubMatrix,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The plan file.
    pub plan: PathBuf,
    #[command(flatten)]
    pub targeting: TargetingArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    pub format: GraphFormat,
    /// `tasks`: every task; `jobs`: a node per job with its task count, edges labelled with
    /// how many task edges they stand for (readable at any size).
    #[arg(long, value_enum, default_value_t = GraphLevel::Tasks)]
    pub level: GraphLevel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphLevel {
    Tasks,
    Jobs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
    Json,
}

/// The output handles and drawing style a command writes with, and the environment it was
/// started in (read once; settings read it from here).
pub struct Io<'a> {
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
    pub style: Style,
    pub quiet: bool,
    pub vars: &'a EnvVars,
}

/// Parses the command line, runs the command, and returns its exit code.
#[must_use]
pub fn main() -> ExitCode {
    // A shell asking for completions (`COMPLETE=bash terminus-batch -- …`, set up by
    // `completions SHELL`) is answered here and the process ends.
    clap_complete::CompleteEnv::with_factory(Cli::command).var(tb_core::env::COMPLETE).complete();
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
    let vars = EnvVars::capture();
    let style = Style::detect(
        cli.global.color,
        Terminals { stderr: io::stderr().is_terminal(), stdout: io::stdout().is_terminal() },
        vars.get(tb_core::env::NO_COLOR).is_some_and(|v| !v.is_empty()),
        vars.get(tb_core::env::COLUMNS).and_then(|c| c.parse().ok()),
    );
    tb_report::telemetry::init(cli.global.verbose, cli.global.quiet, vars.get(tb_core::env::LOG));
    let stdout = io::stdout();
    // stderr stays unlocked: logs are written from the runtime's worker threads, and a lock
    // held here for the whole command would block them forever.
    let mut err = io::stderr();
    let mut out = stdout.lock();
    let mut io = Io { stdout: &mut out, stderr: &mut err, style, quiet: cli.global.quiet, vars: &vars };
    match commands::dispatch(cli, &mut io) {
        Ok(status) => status.into(),
        Err(e) => {
            // Printed once, here; if stderr itself is gone there is no one left to tell.
            let _unreported = e.print(io.stderr, style);
            e.status().into()
        }
    }
}
