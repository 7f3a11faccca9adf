//! [`RunError`]: why a run did not start, or could not go on. Each variant is a class the
//! command line maps to one exit status; the message names the input at fault.

use tb_operations::api::ApiError;
use tb_plan::plan::{PlanError, PlanSource};
use tb_plan::resolve::SourceError;
use tb_settings::SettingsError;
use tb_state::journal::JournalError;
use tb_state::lock::LockError;

/// Why a plan could not be taken to a run, or a run could not begin. Each variant is the
/// class of one exit status; a message never repeats its source, which is kept as
/// `source()` for the command line to print once, after it.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The plan (or a world file) has errors, each with its span.
    #[error("{} has {} problem(s)", file.path, errors.len())]
    Plan { file: PlanSource, errors: Vec<PlanError> },
    /// Bad arguments, or a refusal before any API call that changes anything.
    #[error(transparent)]
    Refused(Box<Refusal>),
    /// Authentication failed or the API could not be reached before any task started.
    #[error(transparent)]
    Unreachable(Box<Unreachable>),
    /// A bug, or the operating system refusing what a run needs (threads, a socket): what
    /// failed, and what refused it.
    #[error("{context}")]
    Internal {
        context: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The state directory could not be used (its lock or journal could not be written):
    /// a full or read-only disk, not a bad plan.
    #[error(transparent)]
    State(Box<StateError>),
}

/// Why the platform could not be reached (exit 3): no login, or the client's error.
#[derive(Debug, thiserror::Error)]
pub enum Unreachable {
    #[error(
        "apply needs the Pantheon API and no login is at hand: set TERMINUS_MACHINE_TOKEN or run \
         `terminus-batch auth login` (or pass --simulate)"
    )]
    NoLogin,
    #[error(
        "--refresh reads the Pantheon API: log in (TERMINUS_MACHINE_TOKEN or `terminus-batch auth login`) or pass \
         --simulate"
    )]
    RefreshNeedsLogin,
    /// The sites or organizations could not be listed.
    #[error("cannot resolve the plan's targets")]
    Targets(#[source] SourceError),
    /// A request failed: what it was for, and the client's error.
    #[error("{context}")]
    Api {
        context: &'static str,
        #[source]
        source: ApiError,
    },
}

/// A refusal before anything changed (exit 2): each names the input at fault, and keeps what
/// it refused as data.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    // Files and values the user named.
    #[error("cannot read {path}")]
    Unreadable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is over the limit of {limit} bytes")]
    TooLarge { path: String, limit: usize },
    #[error("{path} is not UTF-8 text (invalid byte at offset {offset})")]
    NotText { path: String, offset: usize },
    #[error("{var}={value} is not a duration (e.g. {example})")]
    NotADuration {
        var: &'static str,
        value: String,
        example: &'static str,
        #[source]
        source: humantime::DurationError,
    },
    #[error("{var}={value} is shorter than {least}: a run could not renew its records in time")]
    StaleTooShort { var: &'static str, value: String, least: String },
    #[error(transparent)]
    Settings(SettingsError),
    #[error("the API client cannot be set up")]
    Client(#[source] ApiError),
    #[error("no machine token: pass --machine-token or set TERMINUS_MACHINE_TOKEN")]
    NoMachineToken,

    // Where runs are kept, and the runs there.
    #[error("{reason} (from {from})")]
    StateLocation { from: String, reason: String },
    /// The store's URL or credentials cannot be used (the reason names the URL).
    #[error("{reason}")]
    StoreUnusable { reason: String },
    #[error("cannot read the runs in {store}")]
    Runs {
        store: String,
        #[source]
        source: tb_state::StoreError,
    },
    #[error("no run in {store}")]
    NoRuns { store: String },
    #[error("`{0}` is not a run id")]
    NotARunId(String),
    #[error("no run `{run}` in {store}{hint}")]
    NoSuchRun { run: String, store: String, hint: String },
    #[error(transparent)]
    Journal(JournalError),
    #[error("cannot read {path}: it is gone or over the size limit")]
    ResultGone { path: String },
    #[error("cannot read {path}")]
    ResultUnreadable {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot read the settings in the journal of {path}")]
    JournalSettings {
        path: String,
        #[source]
        source: serde_json::Error,
    },

    // The plan's targets, filters and shards.
    #[error(
        "--shard {shard}: job `{job}` needs a job with `scope: all`, which joins every task into one shard; \
         shard a plan without that barrier"
    )]
    ShardBarrier { shard: String, job: String },
    /// Names taken as written (no login): the plan needs a listing the command does not make.
    #[error("cannot resolve the plan's targets")]
    Unresolved(#[source] SourceError),
    #[error("--sites {glob} matches no task of this plan{hint}")]
    NoSiteMatches { glob: String, hint: String },
    #[error("--only {} keeps no task of this plan", .0.join(","))]
    NothingKept(Vec<String>),

    // What a run refuses to start.
    #[error("this build cannot execute {}; `plan` shows what the run would do", .0.join(", "))]
    Unsupported(Vec<String>),
    /// A webhook of `settings.notify` or `--notify` cannot be used (named by its place: its
    /// URL is a secret).
    #[error("webhook #{index} (settings.notify, then --notify): {why}; nothing ran")]
    Webhook { index: usize, why: String },
    #[error("the plan reads environment variable(s) that are not set: {}", .0.join(", "))]
    MissingVariables(Vec<String>),
    #[error("{count} destructive task(s) ({}{}); pass --allow-destructive to run them", .shown.join(", "), more_text(*.more))]
    Destructive { count: usize, shown: Vec<String>, more: usize },
    #[error(transparent)]
    LockHeld(LockError),
    #[error("{held} (waited {waited} for it)")]
    LockWaited { held: LockError, waited: String },

    // A resume continues only what ran against the same target, as the same user.
    #[error(
        "run {run} ran against {then}, and this run would talk to {now}; a resume never crosses targets \
         (start a new run without --resume)"
    )]
    ResumeOtherTarget { run: String, then: String, now: String },
    #[error("run {run} does not record what it ran against, so it cannot be resumed safely; start a new run")]
    ResumeTargetUnknown { run: String },
    #[error("run {run} ran as user {then}, and this run is logged in as user {now}; resume it as the same user")]
    ResumeOtherUser { run: String, then: String, now: String },
    #[error("run {run} does not record which user it ran as, so it cannot be resumed safely; start a new run")]
    ResumeUserUnknown { run: String },

    // Saved plans (`plan -o`, then `apply` of the file).
    #[error("{path} is not a readable saved plan: {reason}")]
    SavedUnreadable { path: String, reason: String },
    #[error("{path} was saved from {plan}, which cannot be read now")]
    SavedSourceGone {
        path: String,
        plan: String,
        #[source]
        source: Box<RunError>,
    },
    #[error("{plan} changed since {path} was saved (sha256 {then} then, {now} now); run `plan -o` again and review it")]
    SavedPlanChanged { path: String, plan: String, then: String, now: String },
    #[error(
        "-o needs resolved targets: log in (TERMINUS_MACHINE_TOKEN or `terminus-batch auth login`) or pass --simulate"
    )]
    SaveNeedsLogin,
    #[error("cannot write saved plan {path}")]
    SaveFailed {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} was resolved against {then}, and this run would talk to {now}; save the plan again against this target"
    )]
    SavedOtherTarget { path: String, then: String, now: String },
    #[error("{path} does not record what it was resolved against; save it again with this version (`plan -o`)")]
    SavedTargetUnknown { path: String },
    #[error("{path} was saved by user {then}, and this run is logged in as user {now}; save it again as this user")]
    SavedOtherUser { path: String, then: String, now: String },
    #[error(
        "the platform changed since the plan was saved; run `plan --refresh -o` again and review it:\n  {}",
        .0.join("\n  ")
    )]
    Drifted(Vec<String>),
}

/// " and N more" after a list cut short, or nothing.
fn more_text(more: usize) -> String {
    if more > 0 { format!(" and {more} more") } else { String::new() }
}

impl From<Refusal> for RunError {
    fn from(refusal: Refusal) -> Self {
        Self::Refused(Box::new(refusal))
    }
}

impl From<Unreachable> for RunError {
    fn from(unreachable: Unreachable) -> Self {
        Self::Unreachable(Box::new(unreachable))
    }
}

impl From<LockError> for RunError {
    /// A lock another live run holds is a refusal, as any other reason not to start; one that
    /// cannot be taken is the state directory's failure.
    fn from(e: LockError) -> Self {
        match e {
            held @ LockError::Held { .. } => Refusal::LockHeld(held).into(),
            io @ LockError::Store { .. } => Self::State(Box::new(StateError::Lock(io))),
        }
    }
}

/// What the state directory refused, with the operating system's error as its source.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Lock(LockError),
    #[error("a run that cannot be journalled does not start (see --state-dir)")]
    Journal(#[source] JournalError),
    /// The store did not answer as a store (checked before any request to the platform).
    #[error("a run that cannot be journalled does not start (see --state-dir)")]
    Store(#[source] tb_state::StoreError),
}

impl RunError {
    /// The API refused or could not be reached: `context`, then the client's error.
    pub(crate) fn unreachable(context: &'static str, source: ApiError) -> Self {
        Unreachable::Api { context, source }.into()
    }

    /// What the operating system (or a bug) refused: `context`, then `source`.
    pub(crate) fn internal(context: &str, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal { context: context.to_owned(), source: Some(Box::new(source)) }
    }

    /// A bug found by a check, with no error beneath it.
    pub(crate) fn bug(message: impl Into<String>) -> Self {
        Self::Internal { context: message.into(), source: None }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use tb_core::chain::one_line;
    use tb_operations::api::ApiErrorKind;

    #[test]
    fn run_errors_keep_their_sources() {
        let api = ApiError::new("GET /api/users/u", ApiErrorKind::Status { code: 503, message: String::new() });
        let e = RunError::unreachable("cannot log in", api);
        // The message says what failed; the client's error follows it once, as its source.
        assert_eq!(e.to_string(), "cannot log in");
        assert_eq!(one_line(&e), "cannot log in: HTTP 503 Service Unavailable on GET /api/users/{user}");
        let source = e.source().and_then(|s| s.downcast_ref::<ApiError>()).expect("the client's error");
        assert_eq!(source.status(), Some(503));
        // A full disk under the journal: the operating system's error is at the end of the chain.
        let full = std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device");
        let journal = tb_state::journal::JournalError::Write { dir: "state/runs/r".into(), source: full };
        let e = RunError::State(Box::new(StateError::Journal(journal)));
        assert_eq!(
            one_line(&e),
            "a run that cannot be journalled does not start (see --state-dir): cannot write the journal in \
             state/runs/r: No space left on device"
        );
        let mut deepest: &dyn std::error::Error = &e;
        while let Some(next) = deepest.source() {
            deepest = next;
        }
        let io = deepest.downcast_ref::<std::io::Error>().expect("the io error");
        assert_eq!(io.kind(), std::io::ErrorKind::StorageFull);
        let e = RunError::internal("cannot start the async runtime", std::io::Error::other("no threads"));
        assert!(e.source().is_some());
    }
}
