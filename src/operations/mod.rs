//! Operations against Pantheon: an [`OperationSpec`] and its target in, the requests terminus
//! would send out, an [`OpOutput`] or an [`OpError`] back. Each mutating operation first
//! checks whether there is anything to do and ends `unchanged` when there is not.
//!
//! Knows Pantheon (through [`api`]); must not import the graph, the executor, events or
//! reports. The executor reaches it through an adapter in `cli/commands/apply.rs`, and its
//! progress through the [`OpContext`] it is given.

pub mod api;
mod backups;
mod environments;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use self::api::wire::Workflow;
use self::api::workflows::{Poller, StartWorkflow};
use self::api::{ApiClient, ApiError, unix_now};
use crate::plan::ops::{OperationKind, OperationSpec};
use crate::plan::template::{Text, TextPart};

/// Where an operation acts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub site: String,
    /// Empty when resolution did not look the site up; then it is looked up by name.
    pub site_id: String,
    pub env: Option<String>,
}

/// A successful operation.
#[derive(Clone, Debug, PartialEq)]
pub struct OpOutput {
    /// False when there was nothing to do.
    pub changed: bool,
    pub message: String,
    /// What a read-only operation read.
    pub data: Option<serde_json::Value>,
}

/// A failed operation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct OpError {
    pub message: String,
    /// Worth another attempt (the platform was busy or unreachable, nothing was started).
    pub transient: bool,
}

impl OpError {
    fn permanent(message: impl Into<String>) -> Self {
        Self { message: message.into(), transient: false }
    }
}

impl From<ApiError> for OpError {
    fn from(e: ApiError) -> Self {
        Self { transient: e.is_transient(), message: e.to_string() }
    }
}

/// What an operation reports while it runs.
pub trait OpContext: Send + Sync {
    /// Before acting (a workflow POST): returns once the attempt is on record.
    fn attempt_starting(&self) -> impl Future<Output = ()> + Send;
    /// A workflow was started: the operation must never be started again.
    fn workflow_started(&self, id: &str);
    fn progress(&self, message: &str);
}

/// The operations a run may execute so far; the rest of the catalogue arrives with the
/// operations issue and is refused before the run starts.
#[must_use]
pub fn is_supported(kind: OperationKind) -> bool {
    matches!(kind, OperationKind::EnvDeploy | OperationKind::EnvClearCache | OperationKind::BackupCreate)
}

/// Executes operations for one run.
#[derive(Clone)]
pub struct Ops {
    client: ApiClient,
    poller: Poller,
    run_id: String,
    /// Process environment variables `${{ env.NAME }}` may read.
    vars: Arc<BTreeMap<String, String>>,
}

impl Ops {
    #[must_use]
    pub fn new(client: ApiClient, poller: Poller, run_id: String, vars: BTreeMap<String, String>) -> Self {
        Self { client, poller, run_id, vars: Arc::new(vars) }
    }

    /// Renders a plan text: literals, the run id, environment variables.
    fn render(&self, text: &Text) -> Result<String, OpError> {
        let mut out = String::new();
        for part in &text.0 {
            match part {
                TextPart::Lit(s) => out.push_str(s),
                TextPart::RunId => out.push_str(&self.run_id),
                TextPart::Env(name) => match self.vars.get(name) {
                    Some(v) => out.push_str(v),
                    None => return Err(OpError::permanent(format!("environment variable {name} is not set"))),
                },
            }
        }
        Ok(out)
    }

    /// The marker appended to annotations, so a lost workflow can be recognised as ours.
    fn marker(&self, task: &str) -> String {
        format!("[tb:{}:{task}]", self.run_id)
    }

    /// Runs one operation on `target`. `task` names the task (for the annotation marker).
    pub async fn execute(
        &self,
        op: &OperationSpec,
        target: &Target,
        task: &str,
        ctx: &impl OpContext,
    ) -> Result<OpOutput, OpError> {
        let site_id = if target.site_id.is_empty() {
            self.client
                .site_id(&target.site)
                .await?
                .ok_or_else(|| OpError::permanent(format!("site {} was not found", target.site)))?
        } else {
            target.site_id.clone()
        };
        let t = Target { site_id, ..target.clone() };
        match op {
            OperationSpec::EnvDeploy { note, updatedb, cc, sync_content } => {
                let note = self.render(note)?;
                environments::deploy(self, &t, &note, *updatedb, *cc, *sync_content, task, ctx).await
            }
            OperationSpec::EnvClearCache => environments::clear_cache(self, &t, ctx).await,
            OperationSpec::BackupCreate { element, keep_for_days } => {
                backups::create(self, &t, *element, *keep_for_days, ctx).await
            }
            other => Err(OpError::permanent(format!("{} cannot be executed yet", other.kind().name()))),
        }
    }

    /// Starts a workflow (never twice), records it, and waits for it to finish. A failed
    /// workflow is an error with the platform's reason.
    async fn run_workflow(&self, start: &StartWorkflow, ctx: &impl OpContext) -> Result<Workflow, OpError> {
        ctx.attempt_starting().await;
        let workflow = self.client.start_workflow(start, unix_now()).await?;
        ctx.workflow_started(&workflow.id);
        ctx.progress(workflow.description.as_deref().unwrap_or(&workflow.kind));
        let site = start.scope.site_id();
        let done = self.poller.wait(site, &workflow).await.map_err(|e| OpError {
            // The workflow started: whatever happens now, it is not started again.
            message: format!("lost track of workflow {}: {e}", workflow.id),
            transient: false,
        })?;
        if done.succeeded() {
            Ok(done)
        } else {
            Err(OpError::permanent(format!("workflow {} failed: {}", done.id, done.failure_reason())))
        }
    }
}

fn env_of(target: &Target) -> Result<&str, OpError> {
    target.env.as_deref().ok_or_else(|| OpError::permanent("this operation needs an environment"))
}
