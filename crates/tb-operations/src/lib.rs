//! Operations against Pantheon: an [`OperationSpec`] and its target in, the requests terminus
//! would send out, an [`OpOutput`] or an [`OpError`] back. Each mutating operation first
//! checks whether there is anything to do and ends `unchanged` when there is not.
//!
//! Knows Pantheon (through [`api`]); must not import the graph, the executor, events or
//! reports. The executor reaches it through the adapter `OpRunner` in `tb_run::apply`, and
//! its progress through the [`OpContext`] it is given.

pub mod api;
mod audits;
mod backups;
mod checks;
mod decide;
mod domains;
mod environments;
mod multidev;
pub mod preview;
pub mod remote;
mod sites;
mod upstream;
pub mod web;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use self::api::wire::Workflow;
use self::api::workflows::{Poller, StartWorkflow, WorkflowType};
use self::api::{ApiClient, ApiError, unix_now};
use tb_core::cause::{Cause, ErrorClass};
use tb_plan::plan::ops::{OperationKind, OperationSpec};
use tb_plan::plan::template::{Text, TextPart};

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
    /// Why, as data: what the reports group by.
    pub cause: Cause,
    /// Worth another attempt, or not; or a bug of ours (a panic in the shared poller), not
    /// the platform's answer, which ends the run with an internal error (exit 101).
    pub class: ErrorClass,
}

impl OpError {
    /// A failure another attempt would not mend; `message` is its cause too, so it names
    /// no site (the task's id does).
    pub fn permanent(message: impl Into<String>) -> Self {
        let message = message.into();
        Self { cause: Cause::Failed { reason: message.clone() }, message, class: ErrorClass::Permanent }
    }

    /// A failure worth another attempt.
    pub(crate) fn transient(message: impl Into<String>) -> Self {
        Self { class: ErrorClass::Transient, ..Self::permanent(message) }
    }

    /// `message` about `cause`, classed as `cause` is.
    pub(crate) fn about(message: impl Into<String>, cause: &ApiError) -> Self {
        Self { message: message.into(), cause: cause.as_cause(), class: cause.class() }
    }

    /// A failure another attempt would not mend, for `reason` (words that name no site: the
    /// task's id does), with `message` saying more of it.
    pub(crate) fn failed(reason: &str, message: impl Into<String>) -> Self {
        Self::because(Cause::Failed { reason: reason.to_owned() }, message)
    }

    /// `workflow` ended failed: its type and the platform's reason are the cause, its id is
    /// in the message.
    pub(crate) fn workflow_failed(workflow: &Workflow) -> Self {
        let reason = workflow.failure_reason();
        let message = format!("workflow {} failed: {reason} (id {})", workflow.kind, workflow.id);
        Self::because(Cause::Workflow { workflow: workflow.kind.clone(), reason }, message)
    }

    /// A failure for `cause`, with `message` saying more of it.
    pub(crate) fn because(cause: Cause, message: impl Into<String>) -> Self {
        Self { message: message.into(), cause, class: ErrorClass::Permanent }
    }
}

impl From<ApiError> for OpError {
    fn from(e: ApiError) -> Self {
        Self { class: e.class(), cause: e.as_cause(), message: e.to_string() }
    }
}

/// What an operation reports while it runs.
pub trait OpContext: Send + Sync {
    /// Before acting (a workflow POST): returns once the attempt is on record, or an error
    /// when it could not be recorded; then the operation must not act.
    fn attempt_starting(&self) -> impl Future<Output = Result<(), OpError>> + Send;
    /// A workflow was started: the operation must never be started again.
    fn workflow_started(&self, id: &str);
    /// A workflow was seen to finish (until then, a resume re-attaches to it).
    fn workflow_ended(&self, _id: &str, _succeeded: bool) {}
    /// The attempt on record as starting ended as seen, with no workflow: its command never
    /// started (`ran: false`: `ssh` refused before any session) or ran to a known end (`ran:
    /// true`). A resume then runs it again rather than fearing it acted unseen.
    fn attempt_ended(&self, _ran: bool) {}
    fn progress(&self, message: &str);
    /// A download's progress: `done` of `total` bytes of `file` (for a progress bar).
    fn transfer(&self, _file: &str, _done: u64, _total: u64) {}
    /// What a remote command printed, for the person who ran it (stdout, `--format`): never
    /// kept in a file.
    fn output(&self, _output: &serde_json::Value) {}
    /// On `--resume` of an attempt that may have started a workflow before the crash: look
    /// for one created since this time (unix seconds) before starting another.
    fn adopt_since(&self) -> Option<f64> {
        None
    }
}

/// Whether this build executes `kind` (every operation of the v1 catalogue).
#[must_use]
pub fn is_supported(kind: OperationKind) -> bool {
    OperationKind::ALL.contains(&kind)
}

/// Executes operations for one run.
#[derive(Clone)]
pub struct Ops {
    client: ApiClient,
    poller: Poller,
    run_id: String,
    /// Process environment variables `${{ env.NAME }}` may read.
    vars: Arc<BTreeMap<String, String>>,
    /// The client for the environments' own sites (`http:check`, `env:wake`); why it
    /// could not be set up, when it could not.
    web: Result<web::Web, String>,
    /// Real seconds to a platform second: 1 for the API, a simulator's time scale. Scales
    /// every duration of the platform's ([`Ops::platform_time`]).
    platform_scale: f64,
    /// Downloads in flight at once (`--downloads`, default 3).
    downloads: Arc<tokio::sync::Semaphore>,
    /// SSH sessions at once (`remote:drush`, `remote:wp`).
    ssh_slots: Arc<tokio::sync::Semaphore>,
    /// The simulator's SSH endpoint (`None`: Pantheon's app servers).
    ssh_route: Option<remote::SshRoute>,
}

/// SSH sessions at once: Pantheon's app servers take a handful of connections per user.
const SSH_SESSIONS: usize = 10;

impl Ops {
    #[must_use]
    pub fn new(client: ApiClient, poller: Poller, run_id: String, vars: BTreeMap<String, String>) -> Self {
        Self {
            client,
            poller,
            run_id,
            vars: Arc::new(vars),
            web: web::Web::new(None),
            platform_scale: 1.0,
            downloads: Arc::new(tokio::sync::Semaphore::new(3)),
            ssh_slots: Arc::new(tokio::sync::Semaphore::new(SSH_SESSIONS)),
            ssh_route: None,
        }
    }

    /// Runs `remote:drush` and `remote:wp` against the simulator's SSH endpoint.
    #[must_use]
    pub fn with_ssh_route(mut self, route: Option<remote::SshRoute>) -> Self {
        self.ssh_route = route;
        self
    }

    /// A platform whose second takes `scale` real seconds (a simulator's faster clock).
    #[must_use]
    pub fn with_platform_scale(mut self, scale: f64) -> Self {
        self.platform_scale = scale;
        self
    }

    /// Asks the environments' sites at the simulator's site server (`Some`), or where their
    /// names resolve.
    #[must_use]
    pub fn with_site_route(mut self, route: Option<&web::SiteRoute>) -> Self {
        self.web = web::Web::new(route);
        self
    }

    fn web(&self) -> Result<&web::Web, OpError> {
        self.web.as_ref().map_err(|e| OpError::permanent(e.clone()))
    }

    /// At most `n` downloads at once.
    #[must_use]
    pub fn with_downloads(mut self, n: usize) -> Self {
        self.downloads = Arc::new(tokio::sync::Semaphore::new(n.max(1)));
        self
    }

    fn render_opt(&self, text: Option<&Text>) -> Result<Option<String>, OpError> {
        text.map(|t| self.render(t)).transpose()
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

    /// Performs one operation on `target`. `task` names the task (for the annotation marker).
    #[expect(
        clippy::too_many_lines,
        reason = "the catalogue: one arm per operation, each naming the function that runs it"
    )]
    pub async fn perform(
        &self,
        op: &OperationSpec,
        target: &Target,
        task: &str,
        ctx: &impl OpContext,
    ) -> Result<OpOutput, OpError> {
        // Account operations have no site.
        match op {
            OperationSpec::OrgList => return sites::org_list(self).await,
            OperationSpec::OrgSiteList { org, tag } => {
                return sites::org_site_list(self, &self.render(org)?, self.render_opt(tag.as_ref())?.as_deref()).await;
            }
            OperationSpec::SiteList { org, tag, upstream, framework } => {
                let org = self.render_opt(org.as_ref())?;
                let tag = self.render_opt(tag.as_ref())?;
                let upstream = self.render_opt(upstream.as_ref())?;
                let framework = self.render_opt(framework.as_ref())?;
                return sites::site_list(
                    self,
                    org.as_deref(),
                    tag.as_deref(),
                    upstream.as_deref(),
                    framework.as_deref(),
                )
                .await;
            }
            _ => {}
        }
        let t = Target { site_id: self.site_id_of(target).await?, ..target.clone() };
        // A resumed attempt that may have started its workflow before the crash looks for it
        // before checking whether there is anything to do: a deploy the crashed run finished
        // left nothing to deploy, and is reported as the success it was, with its workflow.
        if let Some(since) = ctx.adopt_since() {
            for start in self.single_workflows(op, &t, task) {
                if let Some(found) = self.client.find_started(&start, since).await? {
                    tracing::info!(workflow = %found.id, "re-attached to a workflow an interrupted run started");
                    return self.follow(&t.site_id, &found, ctx).await;
                }
            }
        }
        match op {
            OperationSpec::EnvDeploy { note, updatedb, cc, sync_content } => {
                let note = self.render(note)?;
                environments::deploy(self, &t, &note, *updatedb, *cc, *sync_content, task, ctx).await
            }
            OperationSpec::EnvClearCache => environments::clear_cache(self, &t, ctx).await,
            OperationSpec::EnvWake => environments::wake(self, &t).await,
            OperationSpec::HttpCheck { path, statuses, contains, max_latency_ms, within_secs, primary } => {
                let expect = checks::Expect {
                    path: self.render(path)?,
                    statuses: statuses.clone(),
                    contains: self.render_opt(contains.as_ref())?,
                    max_latency: max_latency_ms.map(std::time::Duration::from_millis),
                    within: std::time::Duration::from_secs(*within_secs),
                    primary: *primary,
                };
                checks::check(self, &t, &expect).await
            }
            OperationSpec::EnvCloneContent { from_env, db_only, files_only, updatedb, cc } => {
                environments::clone_content(self, &t, from_env, *db_only, *files_only, *updatedb, *cc, ctx).await
            }
            OperationSpec::EnvCommit { message } => environments::commit(self, &t, &self.render(message)?, ctx).await,
            OperationSpec::BackupCreate { element, keep_for_days } => {
                backups::create(self, &t, *element, *keep_for_days, ctx).await
            }
            OperationSpec::BackupGet { element, file, to } => {
                let file = self.render_opt(file.as_ref())?;
                backups::get(self, &t, *element, file.as_deref(), &self.render(to)?, ctx).await
            }
            OperationSpec::BackupRestore { element, file } => {
                let file = self.render_opt(file.as_ref())?;
                backups::restore(self, &t, *element, file.as_deref(), ctx).await
            }
            OperationSpec::BackupList => backups::list(self, &t).await,
            OperationSpec::MultidevCreate { from_env, no_db, no_files } => {
                multidev::create(self, &t, from_env, *no_db, *no_files, task, ctx).await
            }
            OperationSpec::MultidevDelete { delete_branch } => multidev::delete(self, &t, *delete_branch, ctx).await,
            OperationSpec::MultidevMergeToDev { updatedb } => multidev::merge(self, &t, true, *updatedb, ctx).await,
            OperationSpec::MultidevMergeFromDev { updatedb } => multidev::merge(self, &t, false, *updatedb, ctx).await,
            OperationSpec::DomainAdd { domain } => domains::add(self, &t, &self.render(domain)?).await,
            OperationSpec::DomainRemove { domain } => domains::remove(self, &t, &self.render(domain)?).await,
            OperationSpec::DomainList => domains::list(self, &t).await,
            OperationSpec::ConnectionSet { mode, discard_changes } => {
                let sftp = *mode == tb_plan::plan::ops::ConnectionMode::Sftp;
                environments::connection_set(self, &t, sftp, *discard_changes, ctx).await
            }
            OperationSpec::UpstreamUpdatesApply { updatedb, accept_upstream } => {
                upstream::apply(self, &t, *updatedb, *accept_upstream, ctx).await
            }
            OperationSpec::UpstreamUpdatesStatus => upstream::status(self, &t).await,
            OperationSpec::LockEnable { username, password_env } => {
                let username = self.render(username)?;
                let password = self
                    .vars
                    .get(password_env)
                    .map(tb_core::secret::Secret::new)
                    .ok_or_else(|| OpError::permanent(format!("environment variable {password_env} is not set")))?;
                environments::lock(self, &t, Some((&username, &password)), ctx).await
            }
            OperationSpec::LockDisable => environments::lock(self, &t, None, ctx).await,
            OperationSpec::RedisEnable => sites::addon(self, &t, WorkflowType::EnableAddon, "cacheserver", ctx).await,
            OperationSpec::RedisDisable => sites::addon(self, &t, WorkflowType::DisableAddon, "cacheserver", ctx).await,
            OperationSpec::NewRelicEnable => sites::new_relic(self, &t, true, ctx).await,
            OperationSpec::SiteTeamAdd { member, role } => {
                let change = sites::TeamChange::Add { role: self.render(role)? };
                sites::team_change(self, &t, &self.render(member)?, change, ctx).await
            }
            OperationSpec::SiteTeamRemove { member } => {
                sites::team_change(self, &t, &self.render(member)?, sites::TeamChange::Remove, ctx).await
            }
            OperationSpec::SiteTeamRole { member, role } => {
                let change = sites::TeamChange::Role { role: self.render(role)? };
                sites::team_change(self, &t, &self.render(member)?, change, ctx).await
            }
            OperationSpec::NewRelicDisable => sites::new_relic(self, &t, false, ctx).await,
            OperationSpec::SiteOrgAdd { organization } => {
                sites::org_change(self, &t, &self.render(organization)?, true, ctx).await
            }
            OperationSpec::SiteOrgRemove { organization } => {
                sites::org_change(self, &t, &self.render(organization)?, false, ctx).await
            }
            OperationSpec::PlanSet { plan } => sites::plan_set(self, &t, &self.render(plan)?, ctx).await,
            OperationSpec::EnvCodeRebuild => {
                // terminus's CodeRebuildCommand: a converging sync with the build step's install.
                let scope =
                    api::workflows::WorkflowScope::Env { site_id: t.site_id.clone(), env: env_of(&t)?.to_owned() };
                let params = serde_json::json!({ "converge": true, "build_steps": { "artifact_install": true } });
                let start = StartWorkflow { scope, kind: WorkflowType::SyncCodeWithBuild, params, marker: None };
                self.run_workflow(&start, ctx).await?;
                Ok(OpOutput { changed: true, message: "code rebuilt".to_owned(), data: None })
            }
            OperationSpec::EnvDiffstat => audits::diffstat(self, &t).await,
            OperationSpec::ConnectionInfo => audits::connection_info(self, &t).await,
            OperationSpec::LockInfo => audits::lock_info(self, &t).await,
            OperationSpec::BackupAutomaticInfo => audits::backup_schedule(self, &t).await,
            OperationSpec::UpstreamUpdatesList => audits::upstream_list(self, &t).await,
            OperationSpec::EnvMetrics { period, datapoints } => {
                audits::metrics(self, &t, &self.render(period)?, &self.render(datapoints)?).await
            }
            OperationSpec::SolrDisable => sites::addon(self, &t, WorkflowType::DisableAddon, "indexserver", ctx).await,
            OperationSpec::SiteUpstreamClearCache => {
                self.simple_workflow(&t, None, WorkflowType::ClearCodeCache, "the upstream's code cache cleared", ctx)
                    .await
            }
            OperationSpec::SiteUpstreamSet { upstream } => {
                sites::set_upstream(self, &t, &self.render(upstream)?, ctx).await
            }
            OperationSpec::EnvRotateRandomSeed => {
                self.simple_workflow(
                    &t,
                    t.env.as_deref(),
                    WorkflowType::RotateEnvironmentRandseed,
                    "random seed rotated",
                    ctx,
                )
                .await
            }
            OperationSpec::EnvWipe => {
                self.simple_workflow(&t, t.env.as_deref(), WorkflowType::Wipe, "environment wiped", ctx).await
            }
            OperationSpec::HttpsRemove => {
                decide::settle!(environments::decide_https_remove(self, &t).await?);
                self.simple_workflow(&t, t.env.as_deref(), WorkflowType::DisableSsl, "HTTPS certificate removed", ctx)
                    .await
            }
            OperationSpec::DomainPrimaryAdd { domain } => {
                domains::primary(self, &t, Some(&self.render(domain)?), ctx).await
            }
            OperationSpec::DomainPrimaryRemove => domains::primary(self, &t, None, ctx).await,
            OperationSpec::BackupAutomaticEnable { day, keep_for_days } => {
                backups::enable_schedule(self, &t, *day, *keep_for_days, ctx).await
            }
            OperationSpec::BackupAutomaticDisable => backups::disable_schedule(self, &t).await,
            OperationSpec::RemoteDrush { command, timeout_secs, keep_output, idempotent } => {
                let call =
                    remote::Call { tool: "drush", words: command, keep_output: *keep_output, idempotent: *idempotent };
                remote::perform(self, &t, &call, std::time::Duration::from_secs(*timeout_secs), ctx).await
            }
            OperationSpec::RemoteWp { command, timeout_secs, keep_output, idempotent } => {
                let call =
                    remote::Call { tool: "wp", words: command, keep_output: *keep_output, idempotent: *idempotent };
                remote::perform(self, &t, &call, std::time::Duration::from_secs(*timeout_secs), ctx).await
            }
            OperationSpec::WorkflowWait { kind, description, max_secs } => {
                let kind = self.render_opt(kind.as_ref())?;
                let description = self.render_opt(description.as_ref())?;
                let wait = environments::WaitFor {
                    kind: kind.as_deref(),
                    description: description.as_deref(),
                    max: std::time::Duration::from_secs(*max_secs),
                };
                environments::workflow_wait(self, &t, &wait, ctx).await
            }
            OperationSpec::SolrEnable => sites::addon(self, &t, WorkflowType::EnableAddon, "indexserver", ctx).await,
            OperationSpec::TagAdd { org, tag } => {
                sites::tag(self, &t, &self.render(org)?, &self.render(tag)?, true).await
            }
            OperationSpec::TagRemove { org, tag } => {
                sites::tag(self, &t, &self.render(org)?, &self.render(tag)?, false).await
            }
            OperationSpec::SiteInfo => sites::info(self, &t).await,
            OperationSpec::SiteTeamList => sites::team(self, &t).await,
            OperationSpec::EnvInfo => environments::info(self, &t).await,
            OperationSpec::EnvCodeLog => environments::code_log(self, &t).await,
            OperationSpec::SiteList { .. } | OperationSpec::OrgList | OperationSpec::OrgSiteList { .. } => {
                Err(OpError::permanent("an account operation has no site"))
            }
        }
    }

    /// The target's site id, looked up by name when resolution did not record it.
    async fn site_id_of(&self, target: &Target) -> Result<String, OpError> {
        if !target.site_id.is_empty() {
            return Ok(target.site_id.clone());
        }
        self.client
            .site_id(&target.site)
            .await?
            .ok_or_else(|| OpError::permanent(format!("site {} was not found", target.site)))
    }

    /// The workflow an operation that starts exactly one would have started (any of them,
    /// when which one depends on the platform's state), for a resumed attempt to look for.
    /// Operations that start several (clone, restore) adopt step by step in `run_workflow`.
    fn single_workflows(&self, op: &OperationSpec, t: &Target, task: &str) -> Vec<StartWorkflow> {
        use self::api::workflows::{WorkflowScope, WorkflowType as W};
        let Some(env) = t.env.clone() else { return Vec::new() };
        let on = |kind: W, scope_env: &str, marker: bool| StartWorkflow {
            scope: WorkflowScope::Env { site_id: t.site_id.clone(), env: scope_env.to_owned() },
            kind,
            params: serde_json::Value::Null,
            marker: marker.then(|| self.marker(task)),
        };
        let site = |kind: W, marker: bool| StartWorkflow {
            scope: WorkflowScope::Site { site_id: t.site_id.clone(), env: Some(env.clone()) },
            kind,
            params: serde_json::Value::Null,
            marker: marker.then(|| self.marker(task)),
        };
        match op {
            OperationSpec::EnvDeploy { .. } => vec![on(W::Deploy, &env, true), on(W::CreateEnvironment, &env, true)],
            OperationSpec::EnvCommit { .. } => vec![on(W::CommitAndPushOnServerChanges, &env, false)],
            OperationSpec::ConnectionSet { .. } => {
                vec![on(W::EnableOnServerDevelopment, &env, false), on(W::EnableGitMode, &env, false)]
            }
            OperationSpec::UpstreamUpdatesApply { .. } => vec![on(W::ApplyUpstreamUpdates, &env, false)],
            OperationSpec::LockEnable { .. } => vec![on(W::LockEnvironment, &env, false)],
            OperationSpec::LockDisable => vec![on(W::UnlockEnvironment, &env, false)],
            OperationSpec::BackupAutomaticEnable { .. } => vec![on(W::ChangeBackupSchedule, &env, false)],
            OperationSpec::DomainPrimaryAdd { .. } | OperationSpec::DomainPrimaryRemove => {
                vec![on(W::SetPrimaryDomain, &env, false)]
            }
            OperationSpec::MultidevCreate { .. } => vec![site(W::CreateCloudDevelopmentEnvironment, true)],
            OperationSpec::MultidevDelete { .. } => vec![site(W::DeleteCloudDevelopmentEnvironment, false)],
            OperationSpec::MultidevMergeToDev { .. } => {
                vec![on(W::MergeCloudDevelopmentEnvironmentIntoDev, "dev", false)]
            }
            OperationSpec::MultidevMergeFromDev { .. } => {
                vec![on(W::MergeDevIntoCloudDevelopmentEnvironment, &env, false)]
            }
            _ => Vec::new(),
        }
    }

    /// Runs one workflow with no parameters on the site (`env: None`) or an environment.
    async fn simple_workflow(
        &self,
        t: &Target,
        env: Option<&str>,
        kind: self::api::workflows::WorkflowType,
        done: &str,
        ctx: &impl OpContext,
    ) -> Result<OpOutput, OpError> {
        use self::api::workflows::WorkflowScope;
        let scope = match env {
            Some(env) => WorkflowScope::Env { site_id: t.site_id.clone(), env: env.to_owned() },
            None => WorkflowScope::Site { site_id: t.site_id.clone(), env: None },
        };
        let start = StartWorkflow { scope, kind, params: serde_json::json!({}), marker: None };
        self.run_workflow(&start, ctx).await?;
        Ok(OpOutput { changed: true, message: done.to_owned(), data: None })
    }

    /// Waits for a workflow found started, and reports it as this attempt's.
    async fn follow(&self, site_id: &str, workflow: &Workflow, ctx: &impl OpContext) -> Result<OpOutput, OpError> {
        ctx.workflow_started(&workflow.id);
        let done = self.watch(site_id, workflow, ctx).await?;
        Ok(OpOutput {
            changed: true,
            message: format!("re-attached to workflow {}, which an interrupted run started; it succeeded", done.id),
            data: None,
        })
    }

    /// A duration of the platform's (a plan's timeout, terminus's pauses) on our clock: the
    /// time scale's real seconds to a platform second (see [`Ops::with_platform_scale`]); 1 against
    /// the API. At most a year, so that a deadline computed from it never overflows.
    #[must_use]
    pub fn platform_time(&self, duration: std::time::Duration) -> std::time::Duration {
        const YEAR: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);
        std::time::Duration::try_from_secs_f64(duration.as_secs_f64() * self.platform_scale)
            .map_or(YEAR, |d| d.min(YEAR))
    }

    /// terminus's 5 s pause between tries, in the platform's clock.
    pub(crate) fn wake_pause(&self) -> std::time::Duration {
        self.platform_time(std::time::Duration::from_secs(5))
    }

    /// Waits for a workflow this attempt started (or adopted) to end; a failed workflow is an
    /// error with the platform's reason.
    pub(crate) async fn watch(
        &self,
        site_id: &str,
        workflow: &Workflow,
        ctx: &impl OpContext,
    ) -> Result<Workflow, OpError> {
        let done = self.poller.wait(site_id, workflow).await.map_err(|e| OpError {
            // The workflow started: whatever happens now, it is not started again.
            message: format!("lost track of workflow {}: {e}", workflow.id),
            cause: e.as_cause(),
            class: if e.is_internal() { ErrorClass::Internal } else { ErrorClass::Permanent },
        })?;
        ctx.workflow_ended(&done.id, done.succeeded());
        if done.succeeded() { Ok(done) } else { Err(OpError::workflow_failed(&done)) }
    }

    /// Before a task acts on a target whose lease it took over from another run (stale: that
    /// run stopped, slept or died), waits for the workflows that run may have left running on
    /// the target, so that the task's own "nothing to do" check sees what they did. Found by
    /// the site's list: unfinished, ours (the same user), on the target's environment, made
    /// since `since_unix` (when that run began, on its clock; the adoption window's slack
    /// absorbs the clocks' difference). How many it waited for.
    pub async fn settle_after(&self, target: &Target, since_unix: f64) -> Result<usize, OpError> {
        let site_id = self.site_id_of(target).await?;
        let user_id = self.client.user_id().await?;
        let list = self.client.workflows(&site_id).await?;
        let since = since_unix + self.client.platform_clock_offset() - api::workflows::ADOPT_WINDOW_SECS;
        let on_target = |w: &api::wire::Workflow| {
            let param = w.params.as_ref().and_then(|p| p.get("environment_id")).and_then(serde_json::Value::as_str);
            match target.env.as_deref() {
                Some(env) => w.environment_id.as_deref() == Some(env) || param == Some(env),
                None => true,
            }
        };
        let left: Vec<api::wire::Workflow> = list
            .into_iter()
            .filter(|w| {
                !w.is_finished()
                    && w.user_id.as_deref() == Some(user_id.as_str())
                    && on_target(w)
                    && w.created_at.is_none_or(|t| t >= since)
            })
            .collect();
        for workflow in &left {
            tracing::info!(workflow = %workflow.id, "waiting for a workflow the run this target was taken from left running");
            // Its outcome is that run's; what it did, this task's check reads.
            let _ended = self.poller.wait(&site_id, workflow).await;
        }
        Ok(left.len())
    }

    /// Re-attaches to a workflow an earlier run started and did not see end (`--resume`):
    /// waits for it, never starting the operation again.
    pub async fn reattach(
        &self,
        target: &Target,
        workflow_id: &str,
        ctx: &impl OpContext,
    ) -> Result<OpOutput, OpError> {
        let site_id = self.site_id_of(target).await?;
        let workflow = self
            .client
            .workflow(&site_id, workflow_id)
            .await
            .map_err(|e| OpError::permanent(format!("cannot find workflow {workflow_id} again: {e}")))?;
        self.follow(&site_id, &workflow, ctx).await
    }

    /// Starts a workflow (never twice), records it, and waits for it to finish. A failed
    /// workflow is an error with the platform's reason.
    async fn run_workflow(&self, start: &StartWorkflow, ctx: &impl OpContext) -> Result<Workflow, OpError> {
        let adopted = match ctx.adopt_since() {
            Some(since) => self.client.find_started(start, since).await?,
            None => None,
        };
        let workflow = if let Some(found) = adopted {
            tracing::info!(workflow = %found.id, "re-attached to a workflow an interrupted run started");
            found
        } else {
            ctx.attempt_starting().await?;
            self.client.start_workflow(start, unix_now()).await?
        };
        ctx.workflow_started(&workflow.id);
        ctx.progress(workflow.description.as_deref().unwrap_or(&workflow.kind));
        self.watch(start.scope.site_id(), &workflow, ctx).await
    }
}

/// Commits in a code log that carry the `from` label and not the `to` label: what a deploy
/// or a merge from `from` into `to` would bring (terminus's deploy check, pantheon-api.md §5.2).
fn commits_missing<'a>(log: &'a [api::wire::Commit], from: &str, to: &str) -> Vec<&'a api::wire::Commit> {
    log.iter().filter(|c| c.labels.iter().any(|l| l == from) && !c.labels.iter().any(|l| l == to)).collect()
}

fn env_of(target: &Target) -> Result<&str, OpError> {
    target.env.as_deref().ok_or_else(|| OpError::permanent("this operation needs an environment"))
}
