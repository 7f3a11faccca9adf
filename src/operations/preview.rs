//! `plan --refresh`: what each task would do, from read-only calls only (DESIGN.md §3.6):
//! change something, nothing (unchanged), or fail (a preflight finding: frozen site,
//! environment not initialized, SFTP mode where git is needed, multidev quota reached, domain
//! on another environment, no backup to restore). Never starts a workflow; on an Integrated
//! Composer site, `upstream:updates:status` would start `check_upstream_updates`, so the
//! preview says so instead.

use serde::Serialize;
use serde_json::Value;

use super::api::wire::BackupCatalog;
use super::{OpError, Ops, Target, commits_missing};
use crate::plan::ops::{BackupElement, ConnectionMode, OperationSpec};

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

fn unchanged(s: impl Into<String>) -> Preview {
    Preview::Unchanged(s.into())
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
        if site.get("frozen").is_some_and(|f| f.as_bool().unwrap_or(false) || f.as_i64().is_some_and(|n| n != 0)) {
            return Ok(finding(format!("{} is frozen", target.site)));
        }
        let env = target.env.as_deref().unwrap_or_default();
        let c = &self.client;
        let envs = if target.env.is_some() { Some(c.environments(&site_id).await?) } else { None };
        let sftp =
            |e: &str| envs.as_ref().and_then(|m| m.get(e)).and_then(|x| x.on_server_development).unwrap_or(false);
        let exists = |e: &str| envs.as_ref().is_some_and(|m| m.contains_key(e));
        if target.env.is_some()
            && !exists(env)
            && !matches!(op, OperationSpec::MultidevCreate { .. } | OperationSpec::MultidevDelete { .. })
        {
            return Ok(finding(format!("{}.{env} does not exist", target.site)));
        }
        let preview = match op {
            OperationSpec::EnvDeploy { .. } => {
                let parent = if env == "live" { "test" } else { "dev" };
                if !c.env_settings(&site_id, parent).await?.is_initialized {
                    finding(format!("{parent} is not initialized"))
                } else if !c.env_settings(&site_id, env).await?.is_initialized {
                    change(format!("would initialize {env} from {parent}"))
                } else {
                    let log = c.code_log(&site_id, parent).await?;
                    let n = commits_missing(&log, parent, env);
                    if n == 0 {
                        unchanged("nothing to deploy")
                    } else {
                        change(format!("{n} commit(s) to deploy from {parent}"))
                    }
                }
            }
            OperationSpec::EnvCloneContent { from_env, .. } => {
                if !c.env_settings(&site_id, from_env).await?.is_initialized {
                    finding(format!("{from_env} is not initialized"))
                } else if !c.env_settings(&site_id, env).await?.is_initialized {
                    finding(format!("{env} is not initialized"))
                } else {
                    change(format!("would overwrite {env}'s content with {from_env}'s"))
                }
            }
            OperationSpec::EnvCommit { .. } => {
                if sftp(env) {
                    let n = c.diffstat(&site_id, env).await?.as_object().map_or(0, serde_json::Map::len);
                    if n == 0 {
                        unchanged("nothing to commit")
                    } else {
                        change(format!("{n} changed file(s) to commit"))
                    }
                } else {
                    finding(format!("{env} is in git mode; SFTP mode is needed to commit"))
                }
            }
            OperationSpec::BackupRestore { element, .. } => {
                let catalog = c.backup_catalog(&site_id, env).await?;
                let needed: &[&str] = match element {
                    BackupElement::All => &["code", "files", "database"],
                    BackupElement::Code => &["code"],
                    BackupElement::Files => &["files"],
                    BackupElement::Database => &["database"],
                };
                match needed.iter().find(|el| !has_backup(&catalog, el)) {
                    Some(el) => finding(format!("no {el} backup to restore")),
                    None => change("would restore from the newest backup"),
                }
            }
            OperationSpec::MultidevCreate { .. } => {
                let quota = site.pointer("/settings/max_num_cdes").and_then(Value::as_u64);
                let multidevs = envs
                    .as_ref()
                    .map_or(0, |m| m.keys().filter(|k| !matches!(k.as_str(), "dev" | "test" | "live")).count());
                if exists(env) {
                    unchanged(format!("{env} exists"))
                } else if quota.is_some_and(|q| multidevs as u64 >= q) {
                    finding(format!("the multidev quota ({}) is reached", quota.unwrap_or(0)))
                } else {
                    change(format!("would create {env}"))
                }
            }
            OperationSpec::MultidevDelete { .. } => {
                if exists(env) {
                    change(format!("would delete {env}"))
                } else {
                    unchanged(format!("{env} does not exist"))
                }
            }
            OperationSpec::MultidevMergeToDev { .. } | OperationSpec::MultidevMergeFromDev { .. } => {
                let (from, to) =
                    if matches!(op, OperationSpec::MultidevMergeToDev { .. }) { (env, "dev") } else { ("dev", env) };
                if sftp(to) {
                    finding(format!("{to} is in SFTP mode; git mode is needed"))
                } else {
                    let log = c.code_log(&site_id, from).await?;
                    let n = commits_missing(&log, from, to);
                    if n == 0 {
                        unchanged(format!("{to} has every commit of {from}"))
                    } else {
                        change(format!("{n} commit(s) to merge into {to}"))
                    }
                }
            }
            OperationSpec::DomainAdd { domain } | OperationSpec::DomainRemove { domain } => {
                let domain = self.render(domain)?.to_ascii_lowercase();
                let add = matches!(op, OperationSpec::DomainAdd { .. });
                let mut here = false;
                let mut elsewhere = None;
                for e in envs.as_ref().map(|m| m.keys().cloned().collect::<Vec<_>>()).unwrap_or_default() {
                    if c.domains(&site_id, &e).await?.iter().any(|d| d.id.eq_ignore_ascii_case(&domain)) {
                        if e == env { here = true } else { elsewhere = Some(e) }
                    }
                }
                match (add, here, elsewhere) {
                    (true, _, Some(other)) => finding(format!("{domain} is already on {other}")),
                    (true, true, None) => unchanged(format!("{domain} is already there")),
                    (true, false, None) => change(format!("would add {domain}")),
                    (false, true, _) => change(format!("would remove {domain}")),
                    (false, false, _) => unchanged(format!("{domain} is not there")),
                }
            }
            OperationSpec::ConnectionSet { mode } => {
                let want_sftp = *mode == ConnectionMode::Sftp;
                if sftp(env) == want_sftp {
                    unchanged("the mode is already set")
                } else {
                    change("would switch the connection mode")
                }
            }
            OperationSpec::UpstreamUpdatesApply { .. } => {
                if sftp(env) {
                    finding(format!("{env} is in SFTP mode; git mode is needed"))
                } else {
                    let branch = if matches!(env, "dev" | "test" | "live") { "master" } else { env };
                    let behind = c.upstream_updates(&site_id, branch).await?.behind.unwrap_or(0);
                    if behind == 0 {
                        unchanged("no upstream updates")
                    } else {
                        change(format!("{behind} upstream commit(s) to apply"))
                    }
                }
            }
            OperationSpec::LockEnable { .. } | OperationSpec::LockDisable => {
                let locked =
                    envs.as_ref().and_then(|m| m.get(env)).and_then(|e| e.lock.as_ref()).is_some_and(|l| l.locked);
                match (op, locked) {
                    (OperationSpec::LockDisable, false) => unchanged("not locked"),
                    (OperationSpec::LockDisable, true) => change("would unlock"),
                    (_, true) => change("locked; would set these credentials unless they are the same"),
                    (_, false) => change("would lock"),
                }
            }
            OperationSpec::TagAdd { org, tag } | OperationSpec::TagRemove { org, tag } => {
                let (org, tag) = (self.render(org)?, self.render(tag)?);
                let add = matches!(op, OperationSpec::TagAdd { .. });
                let orgs = c.user_orgs().await?;
                let found = orgs.iter().find(|m| {
                    let p = m.organization.profile.as_ref();
                    m.organization.id == org
                        || p.and_then(|p| p.machine_name.as_deref()) == Some(org.as_str())
                        || p.and_then(|p| p.name.as_deref()) == Some(org.as_str())
                });
                match found {
                    None => finding(format!("not a member of an organization named {org}")),
                    Some(m) => {
                        let members = c.org_sites(&m.organization.id).await?;
                        let has = members.iter().find(|s| s.id == site_id).is_some_and(|s| s.tags.contains(&tag));
                        match (add, has) {
                            (true, true) | (false, false) => unchanged(format!("the tag {tag} is already as wanted")),
                            (true, false) => change(format!("would add the tag {tag}")),
                            (false, true) => change(format!("would remove the tag {tag}")),
                        }
                    }
                }
            }
            _ => change(format!("would run {}", op.kind().name())),
        };
        Ok(preview)
    }

    async fn preview_read_only(&self, op: &OperationSpec, target: &Target) -> Result<Preview, OpError> {
        if let OperationSpec::UpstreamUpdatesStatus = op {
            if let (Some(site_id), Some(env)) = (self.client.site_id(&target.site).await?, target.env.as_deref()) {
                let vars = self.client.env_variables(&site_id, env).await?;
                if vars.get("BUILD_STEP").is_some_and(|v| v.as_bool().unwrap_or(false)) {
                    return Ok(Preview::ReadOnly(
                        "Integrated Composer site: its update check starts a workflow, which --refresh does not do"
                            .into(),
                    ));
                }
            }
        }
        if let OperationSpec::BackupGet { element, .. } = op {
            if let (Some(site_id), Some(env)) = (self.client.site_id(&target.site).await?, target.env.as_deref()) {
                let el = match element {
                    BackupElement::Code => "code",
                    BackupElement::Database => "database",
                    BackupElement::Files | BackupElement::All => "files",
                };
                if !has_backup(&self.client.backup_catalog(&site_id, env).await?, el) {
                    return Ok(finding(format!("no {el} backup to download")));
                }
            }
        }
        Ok(Preview::ReadOnly("reads only".into()))
    }
}
