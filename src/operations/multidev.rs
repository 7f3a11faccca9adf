//! Multidev operations: create, delete, and the two merges (pantheon-api.md §5.5).

use serde_json::json;

use super::api::workflows::{StartWorkflow, WorkflowScope, WorkflowType};
use super::{OpContext, OpError, OpOutput, Ops, Target, commits_missing, env_of};

/// `multidev:create SITE.NAME [--from-env] [--no-db] [--no-files]`; an existing environment
/// of that name ends unchanged.
pub(super) async fn create(
    ops: &Ops,
    target: &Target,
    from: &str,
    no_db: bool,
    no_files: bool,
    task: &str,
    ctx: &impl OpContext,
) -> Result<OpOutput, OpError> {
    let name = env_of(target)?;
    let envs = ops.client.environments(&target.site_id).await?;
    if envs.contains_key(name) {
        return Ok(OpOutput { changed: false, message: format!("the {name} environment already exists"), data: None });
    }
    if !envs.contains_key(from) {
        return Err(OpError::permanent(format!("Could not find an environment identified by {from}.")));
    }
    let mut deploy = json!({ "annotation": format!("Create the \"{name}\" environment. {}", ops.marker(task)) });
    if !no_db {
        deploy["clone_database"] = json!({ "from_environment": from });
    }
    if !no_files {
        deploy["clone_files"] = json!({ "from_environment": from });
    }
    let start = StartWorkflow {
        scope: WorkflowScope::Site { site_id: target.site_id.clone(), env: Some(name.to_owned()) },
        kind: WorkflowType::CreateCloudDevelopmentEnvironment,
        params: json!({ "environment_id": name, "deploy": deploy }),
        marker: Some(ops.marker(task)),
    };
    ops.run_workflow(&start, ctx).await?;
    Ok(OpOutput { changed: true, message: format!("created {name} from {from}"), data: None })
}

/// `multidev:delete SITE.NAME [--delete-branch]`; an absent environment ends unchanged.
pub(super) async fn delete(
    ops: &Ops,
    target: &Target,
    delete_branch: bool,
    ctx: &impl OpContext,
) -> Result<OpOutput, OpError> {
    let name = env_of(target)?;
    let envs = ops.client.environments(&target.site_id).await?;
    if !envs.contains_key(name) {
        return Ok(OpOutput { changed: false, message: format!("there is no {name} environment"), data: None });
    }
    let start = StartWorkflow {
        scope: WorkflowScope::Site { site_id: target.site_id.clone(), env: Some(name.to_owned()) },
        kind: WorkflowType::DeleteCloudDevelopmentEnvironment,
        params: json!({ "environment_id": name, "delete_branch": delete_branch }),
        marker: None,
    };
    ops.run_workflow(&start, ctx).await?;
    Ok(OpOutput { changed: true, message: format!("deleted {name}"), data: None })
}

/// Commits on `from` that `to` lacks, from `from`'s code log and its labels.
async fn ahead(ops: &Ops, site_id: &str, from: &str, to: &str) -> Result<usize, OpError> {
    let log = ops.client.code_log(site_id, from).await?;
    Ok(commits_missing(&log, from, to))
}

/// `multidev:merge-to-dev SITE.NAME`: env workflow on dev; nothing new on the multidev ends
/// unchanged.
pub(super) async fn merge_to_dev(
    ops: &Ops,
    target: &Target,
    updatedb: bool,
    ctx: &impl OpContext,
) -> Result<OpOutput, OpError> {
    let name = env_of(target)?;
    let n = ahead(ops, &target.site_id, name, "dev").await?;
    if n == 0 {
        return Ok(OpOutput { changed: false, message: format!("dev already has every commit of {name}"), data: None });
    }
    let start = StartWorkflow {
        scope: WorkflowScope::Env { site_id: target.site_id.clone(), env: "dev".to_owned() },
        kind: WorkflowType::MergeCloudDevelopmentEnvironmentIntoDev,
        params: json!({ "updatedb": updatedb, "from_environment": name }),
        marker: None,
    };
    ops.run_workflow(&start, ctx).await?;
    Ok(OpOutput { changed: true, message: format!("merged {n} commit(s) of {name} into dev"), data: None })
}

/// `multidev:merge-from-dev SITE.NAME`: env workflow on the multidev; nothing new on dev ends
/// unchanged.
pub(super) async fn merge_from_dev(
    ops: &Ops,
    target: &Target,
    updatedb: bool,
    ctx: &impl OpContext,
) -> Result<OpOutput, OpError> {
    let name = env_of(target)?;
    let n = ahead(ops, &target.site_id, "dev", name).await?;
    if n == 0 {
        return Ok(OpOutput { changed: false, message: format!("{name} already has every commit of dev"), data: None });
    }
    let start = StartWorkflow {
        scope: WorkflowScope::Env { site_id: target.site_id.clone(), env: name.to_owned() },
        kind: WorkflowType::MergeDevIntoCloudDevelopmentEnvironment,
        params: json!({ "updatedb": updatedb }),
        marker: None,
    };
    ops.run_workflow(&start, ctx).await?;
    Ok(OpOutput { changed: true, message: format!("merged {n} commit(s) of dev into {name}"), data: None })
}
