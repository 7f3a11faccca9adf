//! Multidev operations: create, delete, and the two merges (pantheon-api.md §5.5).

use serde_json::json;
use tb_core::cause::ErrorClass;

use super::api::workflows::{StartWorkflow, WorkflowScope, WorkflowType};
use super::decide::{Decision, settle};
use super::{OpContext, OpError, OpOutput, Ops, Target, env_of};

/// `multidev:create`'s check: an existing environment of that name is nothing to do; the
/// source must exist; with the site's multidev quota known (`plan --refresh` reads it), a
/// full quota is a finding.
pub(crate) async fn decide_create(
    ops: &Ops,
    target: &Target,
    from: &str,
    quota: Option<u64>,
) -> Result<Decision<()>, OpError> {
    let name = env_of(target)?;
    let envs = ops.client.environments(&target.site_id).await?;
    if envs.contains_key(name) {
        return Ok(Decision::nothing(format!("the {name} environment already exists")));
    }
    if !envs.contains_key(from) {
        return Ok(Decision::refuse(format!("Could not find an environment identified by {from}.")));
    }
    let multidevs = envs.keys().filter(|k| !matches!(k.as_str(), "dev" | "test" | "live")).count();
    if let Some(quota) = quota.filter(|&q| multidevs as u64 >= q) {
        return Ok(Decision::refuse(format!("the multidev quota ({quota}) is reached")));
    }
    Ok(Decision::act((), format!("would create {name} from {from}")))
}

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
    settle!(decide_create(ops, target, from, None).await?);
    let name = env_of(target)?;
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
    // As terminus does, read the environments again and wait for the new one to answer; but
    // with up to 26 health checks a second apart where terminus makes 3 five seconds apart
    // (README, differences), so the wait ends within a second of the environment answering.
    if !ops.client.environments(&target.site_id).await?.contains_key(name) {
        return Err(OpError::permanent(format!(
            "the {name} environment was created but is not listed yet; it cannot be determined whether it works"
        )));
    }
    ctx.progress(&format!("waiting for {name} to wake"));
    let second = ops.wake_pause() / 5;
    super::environments::wake_with(ops, target, 26, second).await.map_err(|e| OpError {
        class: ErrorClass::Permanent,
        message: format!("{name} was created, but: {}", e.message),
        ..e
    })?;
    Ok(OpOutput { changed: true, message: format!("created {name} from {from}; it is up"), data: None })
}

/// `multidev:delete`'s check: an absent environment is nothing to do.
pub(crate) async fn decide_delete(ops: &Ops, target: &Target) -> Result<Decision<()>, OpError> {
    let name = env_of(target)?;
    if ops.client.environments(&target.site_id).await?.contains_key(name) {
        Ok(Decision::act((), format!("would delete {name}")))
    } else {
        Ok(Decision::nothing(format!("there is no {name} environment")))
    }
}

/// `multidev:delete SITE.NAME [--delete-branch]`; an absent environment ends unchanged.
pub(super) async fn delete(
    ops: &Ops,
    target: &Target,
    delete_branch: bool,
    ctx: &impl OpContext,
) -> Result<OpOutput, OpError> {
    settle!(decide_delete(ops, target).await?);
    let name = env_of(target)?;
    let start = StartWorkflow {
        scope: WorkflowScope::Site { site_id: target.site_id.clone(), env: Some(name.to_owned()) },
        kind: WorkflowType::DeleteCloudDevelopmentEnvironment,
        params: json!({ "environment_id": name, "delete_branch": delete_branch }),
        marker: None,
    };
    ops.run_workflow(&start, ctx).await?;
    Ok(OpOutput { changed: true, message: format!("deleted {name}"), data: None })
}

/// A merge's check: none. terminus merges whenever asked, and no recording shows how the
/// platform labels a multidev's commits, so the code log cannot tell whether there is
/// anything to merge: the merge always runs.
#[expect(clippy::unused_async, reason = "every decide_* is async; this one needs no read")]
pub(crate) async fn decide_merge(_ops: &Ops, _target: &Target, from: &str, to: &str) -> Result<Decision<()>, OpError> {
    Ok(Decision::act((), format!("would merge {from} into {to}")))
}

/// `multidev:merge-to-dev SITE.NAME` (`to_dev`: an env workflow on dev) and
/// `multidev:merge-from-dev SITE.NAME` (one on the multidev); each always runs (see
/// [`decide_merge`]).
pub(super) async fn merge(
    ops: &Ops,
    target: &Target,
    to_dev: bool,
    updatedb: bool,
    ctx: &impl OpContext,
) -> Result<OpOutput, OpError> {
    let name = env_of(target)?;
    let (from, to) = if to_dev { (name, "dev") } else { ("dev", name) };
    settle!(decide_merge(ops, target, from, to).await?);
    let (kind, params) = if to_dev {
        (
            WorkflowType::MergeCloudDevelopmentEnvironmentIntoDev,
            json!({ "updatedb": updatedb, "from_environment": name }),
        )
    } else {
        (WorkflowType::MergeDevIntoCloudDevelopmentEnvironment, json!({ "updatedb": updatedb }))
    };
    let start = StartWorkflow {
        scope: WorkflowScope::Env { site_id: target.site_id.clone(), env: to.to_owned() },
        kind,
        params,
        marker: None,
    };
    ops.run_workflow(&start, ctx).await?;
    Ok(OpOutput { changed: true, message: format!("merged {from} into {to}"), data: None })
}
