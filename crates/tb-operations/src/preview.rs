//! `plan --refresh`: what each task would do, from read-only calls only (DESIGN.md §3.6):
//! change something, nothing (unchanged), or fail (a preflight finding: frozen site,
//! environment not initialized, SFTP mode where git is needed, multidev quota reached, domain
//! on another environment, no backup to restore). Never starts a workflow; on an Integrated
//! Composer site, `upstream:updates:status` would start `check_upstream_updates`, so the
//! preview says so instead.

use serde::Serialize;
use serde_json::Value;

use super::api::wire::BackupCatalog;
use super::{OpError, Ops, Target, backups, domains, environments, multidev, sites, upstream};
use tb_plan::plan::ops::{BackupElement, ConnectionMode, OperationSpec};

/// What a task would do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "preview", content = "reason", rename_all = "snake_case")]
pub enum Preview {
    /// It would change something.
    Change(String),
    /// Nothing to do.
    Unchanged(String),
    /// It reads only.
    ReadOnly(String),
    /// It would fail.
    Finding(String),
}

fn change(s: impl Into<String>) -> Preview {
    Preview::Change(s.into())
}

fn finding(s: impl Into<String>) -> Preview {
    Preview::Finding(s.into())
}

fn has_backup(catalog: &BackupCatalog, element: &str) -> bool {
    catalog.0.iter().any(|(k, e)| k.ends_with(&format!("_{element}")) && e.filename.is_some() && e.is_finished())
}

impl Ops {
    /// Previews `op` on `target` with read-only calls.
    pub async fn preview(&self, op: &OperationSpec, target: &Target) -> Result<Preview, OpError> {
        if op.kind().is_read_only() && op.kind().refused_when_frozen() {
            // env:info, env:code-log, env:wake: refused on a frozen site, as the run does.
            if let Some(site_id) = self.client.site_id(&target.site).await?
                && self.client.site(&site_id).await?.frozen
            {
                return Ok(finding(tb_plan::plan::ops::FROZEN_MESSAGE));
            }
        }
        if op.kind().is_read_only() {
            return self.preview_read_only(op, target).await;
        }
        if matches!(op, OperationSpec::SiteList { .. } | OperationSpec::OrgList | OperationSpec::OrgSiteList { .. }) {
            return Ok(Preview::ReadOnly("reads the account".into()));
        }
        let Some(site_id) = self.client.site_id(&target.site).await? else {
            return Ok(finding(format!("site {} was not found", target.site)));
        };
        let site: Value = self.client.get(&["sites", &site_id], &[("site_state", "true")]).await?;
        let frozen =
            site.get("frozen").is_some_and(|f| f.as_bool().unwrap_or(false) || f.as_i64().is_some_and(|n| n != 0));
        if frozen && op.kind().refused_when_frozen() {
            return Ok(finding(tb_plan::plan::ops::FROZEN_MESSAGE));
        }
        if frozen && op.remote().is_some() {
            return Ok(finding(tb_plan::plan::ops::FROZEN_REMOTE_MESSAGE));
        }
        let env = target.env.as_deref().unwrap_or_default();
        if target.env.is_some()
            && !matches!(op, OperationSpec::MultidevCreate { .. } | OperationSpec::MultidevDelete { .. })
            && !self.client.environments(&site_id).await?.contains_key(env)
        {
            return Ok(finding(format!("{}.{env} does not exist", target.site)));
        }
        if let Some((tool, words, _)) = op.remote() {
            return Ok(change(format!("would run `{tool} {}` on the app server over SSH", words.join(" "))));
        }
        let t = Target { site_id: site_id.clone(), ..target.clone() };
        self.decided(op, &t, &site, env).await
    }

    /// The same check the run makes before it acts (`decide`), shown instead of acted on.
    async fn decided(&self, op: &OperationSpec, t: &Target, site: &Value, env: &str) -> Result<Preview, OpError> {
        let preview = match op {
            OperationSpec::EnvDeploy { .. } => environments::decide_deploy(self, t).await?.preview(),
            OperationSpec::EnvCloneContent { from_env, .. } => {
                environments::decide_clone_content(self, t, from_env).await?.preview()
            }
            OperationSpec::EnvCommit { .. } => environments::decide_commit(self, t).await?.preview(),
            OperationSpec::BackupRestore { element, file } => {
                let file = self.render_opt(file.as_ref())?;
                backups::decide_restore(self, t, *element, file.as_deref()).await?.preview()
            }
            OperationSpec::MultidevCreate { from_env, .. } => {
                let quota = site.pointer("/settings/max_num_cdes").and_then(Value::as_u64);
                multidev::decide_create(self, t, from_env, quota).await?.preview()
            }
            OperationSpec::MultidevDelete { .. } => multidev::decide_delete(self, t).await?.preview(),
            OperationSpec::MultidevMergeToDev { .. } => multidev::decide_merge(self, t, env, "dev").await?.preview(),
            OperationSpec::MultidevMergeFromDev { .. } => multidev::decide_merge(self, t, "dev", env).await?.preview(),
            OperationSpec::DomainAdd { domain } => domains::decide_add(self, t, &self.render(domain)?).await?.preview(),
            OperationSpec::DomainRemove { domain } => {
                domains::decide_remove(self, t, &self.render(domain)?).await?.preview()
            }
            OperationSpec::ConnectionSet { mode, discard_changes } => {
                environments::decide_connection(self, t, *mode == ConnectionMode::Sftp, *discard_changes)
                    .await?
                    .preview()
            }
            OperationSpec::UpstreamUpdatesApply { .. } => upstream::decide_apply(self, t).await?.preview(),
            // The password is a secret `--refresh` does not read.
            OperationSpec::LockEnable { username, .. } => {
                environments::decide_lock(self, t, Some((&self.render(username)?, None))).await?.preview()
            }
            OperationSpec::LockDisable => environments::decide_lock(self, t, None).await?.preview(),
            OperationSpec::TagAdd { org, tag } | OperationSpec::TagRemove { org, tag } => {
                let add = matches!(op, OperationSpec::TagAdd { .. });
                sites::decide_tag(self, t, &self.render(org)?, &self.render(tag)?, add).await?.preview()
            }
            OperationSpec::DomainPrimaryAdd { domain } => {
                domains::decide_primary(self, t, Some(&self.render(domain)?)).await?.preview()
            }
            OperationSpec::DomainPrimaryRemove => domains::decide_primary(self, t, None).await?.preview(),
            OperationSpec::BackupAutomaticEnable { day, keep_for_days } => {
                backups::decide_schedule(self, t, *day, *keep_for_days).await?.preview()
            }
            OperationSpec::BackupAutomaticDisable => backups::decide_unschedule(self, t).await?.preview(),
            OperationSpec::HttpsRemove => environments::decide_https_remove(self, t).await?.preview(),
            OperationSpec::SiteTeamAdd { member, role } => {
                let change = sites::TeamChange::Add { role: self.render(role)? };
                sites::decide_team(self, t, &self.render(member)?, &change).await?.preview()
            }
            OperationSpec::SiteTeamRemove { member } => {
                sites::decide_team(self, t, &self.render(member)?, &sites::TeamChange::Remove).await?.preview()
            }
            OperationSpec::SiteTeamRole { member, role } => {
                let change = sites::TeamChange::Role { role: self.render(role)? };
                sites::decide_team(self, t, &self.render(member)?, &change).await?.preview()
            }
            OperationSpec::SiteUpstreamSet { upstream } => {
                sites::decide_upstream(self, t, &self.render(upstream)?).await?.preview()
            }
            OperationSpec::SiteOrgAdd { organization } => {
                sites::decide_org(self, t, &self.render(organization)?, true).await?.preview()
            }
            OperationSpec::SiteOrgRemove { organization } => {
                sites::decide_org(self, t, &self.render(organization)?, false).await?.preview()
            }
            OperationSpec::PlanSet { plan } => sites::decide_plan(self, t, &self.render(plan)?).await?.preview(),
            _ => change(format!("would run {}", op.kind().name())),
        };
        Ok(preview)
    }

    async fn preview_read_only(&self, op: &OperationSpec, target: &Target) -> Result<Preview, OpError> {
        if let OperationSpec::UpstreamUpdatesStatus = op
            && let (Some(site_id), Some(env)) = (self.client.site_id(&target.site).await?, target.env.as_deref())
        {
            let platform_variables = self.client.env_variables(&site_id, env).await?;
            if platform_variables.get("BUILD_STEP").is_some_and(|v| v.as_bool().unwrap_or(false)) {
                return Ok(Preview::ReadOnly(
                    "Integrated Composer site: its update check starts a workflow, which --refresh does not do".into(),
                ));
            }
        }
        if let OperationSpec::BackupGet { element, .. } = op
            && let (Some(site_id), Some(env)) = (self.client.site_id(&target.site).await?, target.env.as_deref())
        {
            let el = match element {
                BackupElement::Code => "code",
                BackupElement::Database => "database",
                BackupElement::Files | BackupElement::All => "files",
            };
            if !has_backup(&self.client.backup_catalog(&site_id, env).await?, el) {
                return Ok(finding(format!("no {el} backup to download")));
            }
        }
        if let OperationSpec::WorkflowWait { kind, description, max_secs } = op {
            let env = target.env.as_deref().unwrap_or_default();
            let what = match (self.render_opt(kind.as_ref())?, self.render_opt(description.as_ref())?) {
                (Some(kind), _) => format!("of type {kind}"),
                (None, Some(text)) => format!("\"{text}\""),
                (None, None) => format!("\"Sync code on {env}\""),
            };
            let max = humantime::format_duration(std::time::Duration::from_secs(*max_secs));
            return Ok(Preview::ReadOnly(format!("would wait up to {max} for a workflow {what} started on {env}")));
        }
        if let OperationSpec::HttpCheck { path, statuses, within_secs, primary, .. } = op {
            // A preview asks no site: the page a check wants exists only after what runs before it.
            let host = if *primary {
                "its primary domain".to_owned()
            } else {
                crate::web::platform_host(&target.site, target.env.as_deref().unwrap_or_default())
            };
            let codes: Vec<String> = statuses.iter().map(u16::to_string).collect();
            let within = humantime::format_duration(std::time::Duration::from_secs(*within_secs));
            return Ok(Preview::ReadOnly(format!(
                "would ask https://{host}{} for HTTP {} within {within}",
                self.render(path)?,
                codes.join(" or ")
            )));
        }
        Ok(Preview::ReadOnly("reads only".into()))
    }
}
