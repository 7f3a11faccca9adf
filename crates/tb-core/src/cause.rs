//! [`Cause`]: why a task did not succeed, as data. The operations and the executor say it;
//! the reports group tasks by it and print its [`Cause::summary`]. A cause holds nothing of
//! its own task's (no site UUID, no workflow id, no needed task's id in its summary), so the
//! same failure on a thousand sites is one cause: one row, one line.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Why a task ended failed, skipped or cancelled.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Cause {
    /// The API answered a request with an error status.
    Http {
        status: u16,
        /// The request as a route: `POST /api/sites/{site}/environments/{env}/workflows`.
        request: String,
    },
    /// A request had no answer: no connection, no answer in time, or a dropped connection.
    NoAnswer { request: String, fault: Fault },
    /// The API's answer was not what the endpoint returns.
    BadAnswer { request: String },
    /// The platform refused the machine token, or there was none.
    Auth,
    /// A workflow the task started ended failed.
    Workflow {
        /// Its type (`deploy`, `clear_cache`, …).
        workflow: String,
        /// The platform's reason.
        reason: String,
    },
    /// A remote command (drush, wp) exited with an error.
    Command { exit_code: i32 },
    /// The operation would not act on what it found, or could not (the reason says why, in
    /// words that name no site: the task's id does).
    Failed { reason: String },
    /// A task it needs did not succeed.
    Need { task: String, ended: Ended },
    /// `fail-fast`: a task failed, so nothing more started.
    FailFast { task: String },
    /// A failure budget ran out (`max_failures`), in the run or in a job.
    Budget { failed: u64, max: u64, scope: Scope },
    /// A rollout wave had more failures than its job allows, so later waves did not start.
    WaveHalted { wave: u32, bad: u64, max: u64 },
    /// Ctrl-C or SIGTERM: the run started nothing more.
    Interrupted,
    /// The run's `timeout` passed.
    RunTimedOut,
    /// The run stopped starting work for a reason outside the tasks (the API went silent,
    /// the record could not be written).
    Halted { reason: String },
    /// The task's own `timeout` passed.
    TimedOut { workflow_started: bool },
    /// The run stopped waiting for the task (interrupted with `--abort-in-flight`, timed out).
    Cancelled { workflow_started: bool },
    /// A bug of ours.
    Internal,
    /// The run never finished (killed, or its machine went down): where its journal left
    /// the task.
    Unfinished { left: Left },
}

/// Where a journal that ends early left a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Left {
    /// Its workflow was running: `--resume` re-attaches to it.
    WorkflowRunning,
    /// It was starting its workflow, and may have: `--resume` looks for it.
    Acting,
    /// It had started and not yet acted.
    Started,
    NotStarted,
}

/// Why a request had no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// No connection could be opened: the request was never sent.
    Connect,
    /// No answer in time: the request may have reached the API.
    Timeout,
    /// The connection closed after the request was sent.
    Dropped,
}

/// How a needed task ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Ended {
    Failed,
    Skipped,
    Cancelled,
}

/// Where a failure budget was counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Run,
    Job,
}

impl Cause {
    /// Whether the run stopped starting work for this: fail-fast, a failure budget, a rollout
    /// halted, an interrupt, the run's timeout, or a halt from outside the tasks.
    #[must_use]
    pub fn stopped_the_run(&self) -> bool {
        matches!(
            self,
            Self::FailFast { .. }
                | Self::Budget { .. }
                | Self::WaveHalted { .. }
                | Self::Interrupted
                | Self::RunTimedOut
                | Self::Halted { .. }
        )
    }

    /// What every task with this cause shares, for a group's heading: no task's own id.
    #[must_use]
    pub fn summary(&self) -> String {
        match self {
            Self::Need { ended, .. } => match ended {
                Ended::Failed => "a task it needs failed".to_owned(),
                Ended::Skipped => "a task it needs was skipped".to_owned(),
                Ended::Cancelled => "a task it needs was cancelled".to_owned(),
            },
            other => other.to_string(),
        }
    }

    /// Its kind as the JSON report spells it (`http`, `workflow`, `need`, …): a `JUnit`
    /// failure's `type`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Http { .. } => "http",
            Self::NoAnswer { .. } => "no_answer",
            Self::BadAnswer { .. } => "bad_answer",
            Self::Auth => "auth",
            Self::Workflow { .. } => "workflow",
            Self::Command { .. } => "command",
            Self::Failed { .. } => "failed",
            Self::Need { .. } => "need",
            Self::FailFast { .. } => "fail_fast",
            Self::Budget { .. } => "budget",
            Self::WaveHalted { .. } => "wave_halted",
            Self::Interrupted => "interrupted",
            Self::RunTimedOut => "run_timed_out",
            Self::Halted { .. } => "halted",
            Self::TimedOut { .. } => "timed_out",
            Self::Cancelled { .. } => "cancelled",
            Self::Internal => "internal",
            Self::Unfinished { .. } => "unfinished",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http { status, request } => match reason_phrase(*status) {
                "" => write!(f, "HTTP {status} on {request}"),
                phrase => write!(f, "HTTP {status} {phrase} on {request}"),
            },
            Self::NoAnswer { request, fault: Fault::Connect } => write!(f, "cannot connect for {request}"),
            Self::NoAnswer { request, fault: Fault::Timeout } => write!(f, "no answer in time to {request}"),
            Self::NoAnswer { request, fault: Fault::Dropped } => write!(f, "connection lost during {request}"),
            Self::BadAnswer { request } => write!(f, "unexpected answer to {request}"),
            Self::Auth => f.write_str("authentication failed"),
            Self::Workflow { workflow, reason } => write!(f, "workflow {workflow} failed: {reason}"),
            Self::Command { exit_code } => write!(f, "the remote command exited with {exit_code}"),
            Self::Failed { reason } => f.write_str(reason),
            Self::Halted { reason } => write!(f, "not started: {reason}"),
            Self::Need { task, ended } => write!(f, "`{task}` {}", ended.as_str()),
            Self::FailFast { task } => write!(f, "fail-fast: `{task}` failed"),
            Self::Budget { failed, max, scope } => {
                let scope = match scope {
                    Scope::Run => "run",
                    Scope::Job => "job",
                };
                write!(f, "failure budget exceeded: {failed} failed of max {max} in the {scope}")
            }
            Self::WaveHalted { wave, bad, max } => {
                write!(f, "rollout halted at wave {wave}: {bad} failed or skipped of max {max}")
            }
            Self::Interrupted => f.write_str("the run was interrupted"),
            Self::RunTimedOut => f.write_str("the run timed out"),
            Self::TimedOut { workflow_started: true } => f.write_str("timed out; its workflow may still be running"),
            Self::TimedOut { workflow_started: false } => f.write_str("timed out"),
            Self::Cancelled { workflow_started: true } => {
                f.write_str("stopped waiting for its workflow: remote state unknown")
            }
            Self::Cancelled { workflow_started: false } => f.write_str("cancelled"),
            Self::Internal => f.write_str("internal error"),
            Self::Unfinished { left } => f.write_str(match left {
                Left::WorkflowRunning => "its workflow was running where the journal ends; --resume re-attaches to it",
                Left::Acting => "was starting its workflow where the journal ends, and may have: --resume looks for it",
                Left::Started => "had started, and not yet acted, where the journal ends",
                Left::NotStarted => "not started where the journal ends",
            }),
        }
    }
}

impl Ended {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Cancelled => "cancelled",
        }
    }
}

/// The standard phrase of an HTTP status the API answers with, or nothing.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// `METHOD /api/path?query` as a route: each id after a collection made a placeholder
/// (`/api/sites/<uuid>/environments/live/workflows` →
/// `/api/sites/{site}/environments/{env}/workflows`), the query left out (a signed URL's
/// is a secret), so the same request to a thousand sites reads the same.
#[must_use]
pub fn route(request: &str) -> String {
    let (method, path) = request.split_once(' ').unwrap_or(("", request));
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    let mut placeholder: Option<&str> = None;
    for segment in path.split('/') {
        if let Some(name) = placeholder.take()
            && !segment.is_empty()
        {
            out.push(format!("{{{name}}}"));
            continue;
        }
        placeholder = match segment {
            "sites" => Some("site"),
            "environments" => Some("env"),
            "workflows" => Some("workflow"),
            "domains" => Some("domain"),
            "users" => Some("user"),
            "organizations" => Some("org"),
            "catalog" => Some("backup"),
            "tags" => Some("tag"),
            "schedule" => Some("day"),
            _ => None,
        };
        out.push(segment.to_owned());
    }
    let path = out.join("/");
    if method.is_empty() { path } else { format!("{method} {path}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_names_no_id() {
        assert_eq!(
            route("POST /api/sites/2103c724-be9a-c972-4a3b-1c2d3e4f5a6b/environments/live/workflows"),
            "POST /api/sites/{site}/environments/{env}/workflows"
        );
        assert_eq!(
            route("GET /api/sites/abc/environments/live/backups/catalog/1700_manual/database/s3token?sig=x"),
            "GET /api/sites/{site}/environments/{env}/backups/catalog/{backup}/database/s3token"
        );
        // A collection listed (its last segment) keeps its name.
        assert_eq!(route("GET /api/users/u-1/memberships/sites"), "GET /api/users/{user}/memberships/sites");
        assert_eq!(route("GET /api/sites/s/workflows"), "GET /api/sites/{site}/workflows");
        assert_eq!(route("/api/sites/s"), "/api/sites/{site}");
    }

    #[test]
    fn a_need_groups_by_how_it_ended_not_by_which_it_was() {
        let a = Cause::Need { task: "deploy[a.live]".into(), ended: Ended::Failed };
        let b = Cause::Need { task: "deploy[b.live]".into(), ended: Ended::Failed };
        assert_eq!(a.summary(), b.summary());
        assert_eq!(a.to_string(), "`deploy[a.live]` failed");
        assert_eq!(a.summary(), "a task it needs failed");
    }

    #[test]
    fn the_status_comes_first() {
        let cause = Cause::Http { status: 503, request: route("POST /api/sites/x/environments/live/workflows") };
        assert_eq!(
            cause.to_string(),
            "HTTP 503 Service Unavailable on POST /api/sites/{site}/environments/{env}/workflows"
        );
        let json = serde_json::to_value(&cause).unwrap();
        assert_eq!(json["kind"], "http");
        assert_eq!(serde_json::from_value::<Cause>(json).unwrap(), cause);
    }
}

/// How a failure is classed, by whoever met it (the client, an operation, the executor):
/// whether trying again may help, or whether it is a bug of ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Worth another attempt: the platform was busy or unreachable, nothing was started.
    Transient,
    /// Another attempt would not mend it.
    Permanent,
    /// A bug met outside the task's own code (the shared poller panicked): the task fails
    /// as a panicking one does, and the run ends with an internal error.
    Internal,
}
