//! `OpRunner`, the adapter between the executor and the operations (the only place that sees
//! both): one attempt of a task, its environment's lease (`take_lease`), the proof that the
//! lock and lease are held before each act (`Proof`), and the operations' context (`Ctx`).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use tb_core::cause::{Cause, ErrorClass};
use tb_core::events::Status;
use tb_executor::{Done, RetryPolicy, Runner, TaskContext, TaskError, TaskMeta};
use tb_operations::{OpContext, OpError, Ops, Target};
use tb_plan::expand::{JobInfo, Task};
use tb_plan::plan::ops::{Effect, OperationKind, OperationSpec};
use tb_state::journal::Prior;
use tb_state::lease::{LeaseError, Leases};
use tb_state::lock::Lock;

use super::watch::fenced_reason;

/// The executor's view of operations.
pub(super) struct OpRunner {
    pub(super) ops: Ops,
    pub(super) jobs: Vec<JobInfo>,
    /// What an earlier run left, by task id (`--resume`).
    pub(super) priors: Arc<HashMap<String, Prior>>,
    /// What a task with no prior of its own may have done (see [`RunContext::unknown`]).
    pub(super) unknown: Option<Prior>,
    /// The run's leases on the targets its tasks act on.
    pub(super) leases: Leases,
    /// The plan's lock, proven held before each act.
    pub(super) lock: Arc<Lock>,
    /// Sites the resolution found frozen.
    pub(super) frozen: Arc<BTreeSet<String>>,
}

/// The environment whose code a code-moving operation changes.
pub(super) fn code_env(task: &Task<OperationSpec>) -> Option<String> {
    match task.payload.kind() {
        OperationKind::MultidevMergeToDev => Some("dev".to_owned()),
        _ => task.env.clone(),
    }
}

/// What the executor needs to know of `task`: its group and wave, its per-site slot (a
/// workflow) and exclusive key (one code change per environment), its estimate, and its job's
/// timeout and retries (on the clock `platform_time` makes of the platform's).
pub(crate) fn task_meta(
    task: &Task<OperationSpec>,
    jobs: &[JobInfo],
    platform_time: impl Fn(std::time::Duration) -> std::time::Duration,
) -> TaskMeta {
    let kind = task.payload.kind();
    let job = jobs.get(task.job_index);
    let starts_workflow = matches!(kind.effect(), Effect::Workflow | Effect::CodeMoving);
    let exclusive = match (kind.effect(), &task.site, code_env(task)) {
        (Effect::CodeMoving, Some(site), Some(env)) => vec![format!("code:{site}.{env}")],
        _ => Vec::new(),
    };
    TaskMeta {
        header: task.header(),
        group: task.job_index,
        wave: task.wave,
        waves_of: task.waves_of,
        site_key: if starts_workflow { task.site.clone() } else { None },
        exclusive,
        estimate_secs: kind.estimate_secs(),
        timeout: job.and_then(|j| j.timeout).map(&platform_time),
        retries: job.map_or(RetryPolicy { attempts: 1, backoff: std::time::Duration::ZERO }, |j| RetryPolicy {
            attempts: j.retries.attempts,
            backoff: platform_time(j.retries.backoff),
        }),
    }
}

impl Runner<Task<OperationSpec>> for OpRunner {
    fn meta(&self, task: &Task<OperationSpec>) -> TaskMeta {
        // On the platform's clock, as the run's timeout (see `Run::run_to_end`).
        task_meta(task, &self.jobs, |d| self.ops.platform_time(d))
    }

    fn carried(&self, task: &Task<OperationSpec>) -> Option<Done> {
        match self.priors.get(task.id.as_str())? {
            // A journal older than digests cannot tell: its result stands.
            Prior::Done { status, message, run, digest, record } if digest.is_empty() || *digest == task.digest() => {
                Some(Done {
                    status: *status,
                    message: message.clone(),
                    data: None,
                    run: Some(run.clone()),
                    record: Some(record.clone()),
                })
            }
            _ => None,
        }
    }

    fn attempt(
        &self,
        task: &Task<OperationSpec>,
        ctx: TaskContext,
    ) -> impl Future<Output = Result<Done, TaskError>> + Send + 'static {
        let ops = self.ops.clone();
        let task = task.clone();
        let prior = self.priors.get(task.id.as_str()).cloned().or_else(|| self.unknown.clone());
        // terminus refuses these on a frozen site before any request; so does the run, and it
        // refuses remote commands there too, before ssh (see `FROZEN_REMOTE_MESSAGE`).
        let on_frozen = task.site.as_ref().is_some_and(|s| self.frozen.contains(s));
        let frozen = on_frozen
            .then(|| {
                if task.payload.kind().refused_when_frozen() {
                    Some(tb_plan::plan::ops::FROZEN_MESSAGE)
                } else if task.payload.remote().is_some() {
                    Some(tb_plan::plan::ops::FROZEN_REMOTE_MESSAGE)
                } else {
                    None
                }
            })
            .flatten();
        let lease = lease_target(&task).map(|key| (self.leases.clone(), key));
        let proof = Proof { lock: Arc::clone(&self.lock), lease: lease.clone() };
        async move {
            if let Some(reason) = frozen {
                let reason = reason.to_owned();
                return Err(TaskError {
                    message: reason.clone(),
                    cause: Cause::Failed { reason },
                    class: ErrorClass::Permanent,
                });
            }
            // Before the first request, the "nothing to do" check included: it then sees what
            // another run did to the target.
            let lease = match lease {
                Some((leases, key)) => Some(take_lease(&leases, &key, &ops, &ctx).await?),
                None => None,
            };
            let target = Target {
                site: task.site.clone().unwrap_or_default(),
                site_id: task.site_id.clone().unwrap_or_default(),
                env: task.env.clone(),
            };
            // Taken over from another run that stopped or slept: what it left running on the
            // target ends first, and what it started of this task's kind is adopted, not
            // started again (as a resume adopts what a crashed run started).
            let took_over = lease.as_ref().and_then(|l| l.took_over()).map(|h| (h.describe(), h.started_at));
            if let Some((whose, since)) = &took_over {
                ctx.progress(&format!("taken over from {whose}: waiting for what it left running"));
                #[expect(clippy::cast_precision_loss, reason = "unix seconds fit an f64 exactly")]
                let since = *since as f64;
                ops.settle_after(&target, since).await.map_err(|e| TaskError {
                    message: format!("not started: cannot see what {whose} left running: {}", e.message),
                    cause: e.cause,
                    class: e.class,
                })?;
            }
            // A result `carried` did not take: the task's definition changed since.
            let redone = match &prior {
                Some(Prior::Done { run, .. }) => Some(format!("run again, its options changed since run {run}: ")),
                _ => None,
            };
            // A remote command an earlier run started and did not see end may have run: it is
            // not run again unless its job says running it twice does no harm.
            if let (Some(Prior::Attempted { run, .. }), Some((tool, words, false))) = (&prior, task.payload.remote()) {
                return Err(TaskError {
                    message: format!(
                        "`{tool} {}` may have run in run {run} (no end of it was seen); not run again (its job \
                         may say `idempotent: true`)",
                        words.join(" ")
                    ),
                    cause: Cause::Failed {
                        reason: "the remote command may have run in an earlier run (no end of it was seen); not run \
                                 again"
                            .to_owned(),
                    },
                    class: ErrorClass::Permanent,
                });
            }
            #[expect(clippy::cast_precision_loss, reason = "unix seconds fit an f64 exactly")]
            let adopt_since = match &prior {
                Some(Prior::Attempted { since_unix, .. }) => Some(*since_unix),
                _ => took_over.as_ref().map(|(_, since)| *since as f64),
            };
            let ctx = Ctx { inner: ctx, adopt_since, proof };
            let result = match &prior {
                Some(Prior::InFlight { workflow_id, .. }) => ops.reattach(&target, workflow_id, &ctx).await,
                _ => ops.perform(&task.payload, &target, task.id.as_str(), &ctx).await,
            };
            let said = |message: String| match &redone {
                Some(why) => format!("{why}{message}"),
                None => message,
            };
            match result {
                Ok(out) => Ok(Done {
                    status: if out.changed { Status::Succeeded } else { Status::Unchanged },
                    message: said(out.message),
                    data: out.data,
                    run: None,
                    record: None,
                }),
                Err(e) => Err(TaskError { message: said(e.message), cause: e.cause, class: e.class }),
            }
        }
    }
}

/// What a task's lease is taken on: its environment (`<site id>.<env>`), or its site for a
/// site operation; `None` for what acts on nothing (reads, account operations).
pub(super) fn lease_target(task: &Task<OperationSpec>) -> Option<String> {
    let kind = task.payload.kind();
    if kind.is_read_only() {
        return None;
    }
    // The site's id where known: two plans may spell a site alike and mean it alike, but an
    // id never changes hands.
    let site = task.site_id.clone().filter(|id| !id.is_empty()).or_else(|| task.site.clone())?;
    Some(match &task.env {
        Some(env) => format!("{site}.{env}"),
        None => site,
    })
}

/// Takes the task's lease on `key`, waiting while another run holds it (saying which, once
/// per holder). The wait ends with the task (its timeout, the run's abort).
pub(super) async fn take_lease(
    leases: &Leases,
    key: &str,
    ops: &Ops,
    ctx: &TaskContext,
) -> Result<tb_state::lease::LeaseGuard, TaskError> {
    // Another run's task takes platform time: look again at the platform's pace.
    let every = ops.platform_time(LEASE_POLL).max(std::time::Duration::from_millis(20));
    let mut told: Option<String> = None;
    loop {
        // A store request blocks (an object store's is a round trip): off the runtime's
        // workers, so the tasks beside this one go on meanwhile.
        let (taking, target) = (leases.clone(), key.to_owned());
        let taken = tokio::task::spawn_blocking(move || taking.try_take(&target)).await.map_err(|e| TaskError {
            message: format!("internal error: taking a lease: {e}"),
            cause: Cause::Internal,
            class: ErrorClass::Internal,
        })?;
        match taken {
            Ok(guard) => return Ok(guard),
            Err(LeaseError::Held { holder, .. }) => {
                let who = holder.describe();
                if told.as_deref() != Some(who.as_str()) {
                    ctx.lease_waiting(&who);
                    told = Some(who);
                }
                tokio::time::sleep(every).await;
            }
            Err(e @ LeaseError::Store { .. }) => {
                return Err(TaskError {
                    message: format!("not started: {}", tb_core::chain::one_line(&e)),
                    cause: Cause::Halted { reason: "its environment's lease could not be taken".to_owned() },
                    class: ErrorClass::Permanent,
                });
            }
        }
    }
}

/// How often a task waiting for a lease looks again (on the platform's clock).
pub(super) const LEASE_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// What a task acts under: the plan's lock and its target's lease, proven held before each
/// act (see `state::fence`).
#[derive(Clone)]
pub(super) struct Proof {
    pub(super) lock: Arc<Lock>,
    pub(super) lease: Option<(Leases, String)>,
}

impl Proof {
    /// Proves the lock and the lease held; a store request only when a confirmation is old.
    fn prove(&self) -> Result<(), tb_state::fence::Lost> {
        self.lock.prove()?;
        match &self.lease {
            Some((leases, target)) => leases.prove(target),
            None => Ok(()),
        }
    }
}

/// The operations' context, forwarded to the executor's.
pub(super) struct Ctx {
    pub(super) inner: TaskContext,
    pub(super) adopt_since: Option<f64>,
    pub(super) proof: Proof,
}

impl OpContext for Ctx {
    /// On record first (the journal before the act), then proven held: the proof is the last
    /// thing before the request, so that it is as fresh as it can be when the request goes.
    fn attempt_starting(&self) -> impl Future<Output = Result<(), OpError>> + Send {
        let recorded = self.inner.attempt_starting();
        let proof = self.proof.clone();
        async move {
            recorded.await.map_err(|e| OpError::permanent(e.to_string()))?;
            // A proof may renew (a store request, which blocks): off the runtime's workers.
            let proven = tokio::task::spawn_blocking(move || proof.prove())
                .await
                .map_err(|e| OpError::permanent(format!("internal error: proving the lease held: {e}")))?;
            proven.map_err(|lost| OpError {
                message: format!("not started: {lost}"),
                cause: Cause::Halted { reason: fenced_reason(&lost).to_owned() },
                class: ErrorClass::Permanent,
            })
        }
    }

    fn workflow_started(&self, id: &str) {
        self.inner.workflow_started(id);
    }

    fn workflow_ended(&self, id: &str, succeeded: bool) {
        self.inner.workflow_ended(id, succeeded);
    }

    fn attempt_ended(&self, ran: bool) {
        self.inner.attempt_ended(ran);
    }

    fn progress(&self, message: &str) {
        self.inner.progress(message);
    }

    fn output(&self, output: &serde_json::Value) {
        self.inner.output(output);
    }

    fn transfer(&self, file: &str, done: u64, total: u64) {
        self.inner.transfer(file, done, total);
    }

    fn adopt_since(&self) -> Option<f64> {
        // Only the first attempt of a resumed task looks for what the crashed run started.
        self.adopt_since.filter(|_| self.inner.attempt() == 1)
    }
}
