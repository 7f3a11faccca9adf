//! Every environment variable terminus-batch reads, in one place. Settings read them from a
//! snapshot taken once at startup (`tb_settings::EnvVars`); nothing else reads the environment.

/// Tasks in flight for the whole run.
pub const CONCURRENCY: &str = "TERMINUS_BATCH_CONCURRENCY";
/// Workflow-starting tasks in flight per site.
pub const PER_SITE: &str = "TERMINUS_BATCH_PER_SITE";
/// API requests open at once.
pub const MAX_REQUESTS: &str = "TERMINUS_BATCH_MAX_REQUESTS";
/// API requests per second (token bucket rate).
pub const REQUESTS_PER_SECOND: &str = "TERMINUS_BATCH_REQUESTS_PER_SECOND";
/// Token bucket size.
pub const BURST: &str = "TERMINUS_BATCH_BURST";
/// Time to open a connection (humantime, e.g. `10s`).
pub const CONNECT_TIMEOUT: &str = "TERMINUS_BATCH_CONNECT_TIMEOUT";
/// Time to wait for a response once a request is sent.
pub const READ_TIMEOUT: &str = "TERMINUS_BATCH_READ_TIMEOUT";
/// Tries per API request (1 = no retry).
pub const REQUEST_ATTEMPTS: &str = "TERMINUS_BATCH_REQUEST_ATTEMPTS";
/// Total time one API request may take, retries included.
pub const REQUEST_BUDGET: &str = "TERMINUS_BATCH_REQUEST_BUDGET";
/// First retry delay of a request; doubles per retry, with jitter (`0s` in tests).
pub const RETRY_BACKOFF: &str = "TERMINUS_BATCH_RETRY_BACKOFF";
/// Poll workflows every interval from their start, as terminus does (`5s`), instead of near
/// their expected finish; for comparing the two.
pub const POLL_INTERVAL: &str = "TERMINUS_BATCH_POLL_INTERVAL";
/// The world file for `--simulate`.
pub const WORLD: &str = "TERMINUS_BATCH_WORLD";
/// Set by the shell's completion script (`completions SHELL`) when it asks for completions;
/// `clap_complete` reads it itself, before the snapshot is taken.
pub const COMPLETE: &str = "COMPLETE";
/// Log filter (tracing `EnvFilter` syntax); overrides `-v`.
pub const LOG: &str = "TERMINUS_BATCH_LOG";

/// Go-port names our users may already set (DESIGN.md §9).
pub const MAX_CONCURRENT_WORKFLOWS: &str = "TERMINUS_MAX_CONCURRENT_WORKFLOWS";
pub const MAX_CONCURRENT_REQUESTS: &str = "TERMINUS_MAX_CONCURRENT_REQUESTS";
/// Fetch independent listings concurrently (default on).
pub const PARALLEL_PAGINATION: &str = "TERMINUS_PARALLEL_PAGINATION";

/// terminus's own names (pantheon-api.md §1.1).
pub const HOST: &str = "TERMINUS_HOST";
pub const PORT: &str = "TERMINUS_PORT";
pub const PROTOCOL: &str = "TERMINUS_PROTOCOL";
pub const VERIFY_HOST_CERT: &str = "TERMINUS_VERIFY_HOST_CERT";
pub const CACHE_DIR: &str = "TERMINUS_CACHE_DIR";
pub const TOKENS_DIR: &str = "TERMINUS_TOKENS_DIR";
pub const USER: &str = "TERMINUS_USER";
pub const MACHINE_TOKEN: &str = "TERMINUS_MACHINE_TOKEN";

/// The CI job a run is part of, named in its lock and leases: GitHub Actions'...
pub const GITHUB_SERVER_URL: &str = "GITHUB_SERVER_URL";
pub const GITHUB_REPOSITORY: &str = "GITHUB_REPOSITORY";
pub const GITHUB_RUN_ID: &str = "GITHUB_RUN_ID";
/// ...and GitLab CI's.
pub const CI_JOB_URL: &str = "CI_JOB_URL";
/// The CI pipeline a run's shards share, for their run group: GitLab's (GitHub's is
/// `GITHUB_RUN_ID`, the same over "Re-run failed jobs").
pub const CI_PIPELINE_ID: &str = "CI_PIPELINE_ID";

/// Where runs keep their state: a directory or an object-store URL (`--state-dir`).
pub const STATE_DIR: &str = "TERMINUS_BATCH_STATE_DIR";
/// How long this run's lock and leases may go unrenewed before another run takes them for
/// abandoned (humantime; recorded in them, so every run reads the holder's own).
pub const STALE_AFTER: &str = "TERMINUS_BATCH_STALE_AFTER";
/// How long a write to an object store is tried again after errors (humantime).
pub const STORE_BUDGET: &str = "TERMINUS_BATCH_STORE_BUDGET";
/// An object-store state's credentials and endpoint come from each cloud's standard
/// variables, passed whole to `object_store` (for S3: `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_DEFAULT_REGION`,
/// `AWS_ENDPOINT_URL`).
pub const STATE_STORE_PREFIXES: [&str; 3] = [AWS_PREFIX, GOOGLE_PREFIX, AZURE_PREFIX];
/// Each cloud's prefix: an S3, a GCS and an Azure store read their own.
pub const AWS_PREFIX: &str = "AWS_";
pub const GOOGLE_PREFIX: &str = "GOOGLE_";
pub const AZURE_PREFIX: &str = "AZURE_";
/// Of those, the ones that name the store's endpoint (plain http is allowed to 127.0.0.1 only).
pub const STATE_STORE_ENDPOINTS: [&str; 4] =
    ["AWS_ENDPOINT_URL", "AWS_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AZURE_STORAGE_ENDPOINT"];
/// Of those, the ones that give S3 credentials: with none set, `object_store` asks the
/// machine's metadata service, which an error then says.
pub const AWS_CREDENTIAL_SOURCES: [&str; 4] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
];

/// The home directory, for `~/.terminus`.
pub const HOME: &str = "HOME";

/// Colour off when set and not empty (<https://no-color.org>).
pub const NO_COLOR: &str = "NO_COLOR";
/// The terminal's width when it cannot be asked (final tables wrap at it).
pub const COLUMNS: &str = "COLUMNS";
/// The terminal's kind: `dumb` gets lines, not a redrawn display.
pub const TERM: &str = "TERM";
/// GitHub Actions' job summary file: `apply` appends the Markdown report to it.
pub const GITHUB_STEP_SUMMARY: &str = "GITHUB_STEP_SUMMARY";
/// The S3 region (the AWS SDKs' name), and its older spelling, taken when it is unset.
pub const AWS_REGION: &str = "AWS_REGION";
pub const AWS_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";

/// Where the programs the tool starts (`ssh`, and `setpriv` to tie them to this process) are
/// found. Read when one is started, as `exec` would, not from the startup snapshot.
pub const PATH: &str = "PATH";

/// The first executable file named `program` in `PATH`'s directories, as a shell finds it.
#[must_use]
pub fn find_program(program: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::var_os(PATH)?;
    std::env::split_paths(&path).filter(|dir| !dir.as_os_str().is_empty()).map(|dir| dir.join(program)).find(
        |candidate| std::fs::metadata(candidate).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0),
    )
}
