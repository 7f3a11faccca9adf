//! Upstream updates: status and apply (pantheon-api.md §5.9).

use serde_json::json;

use super::api::workflows::{StartWorkflow, WorkflowScope, WorkflowType};
use super::decide::{Decision, settle};
use super::{OpContext, OpError, OpOutput, Ops, Target, env_of};

/// The branch whose upstream status an environment reads: `master` for dev, test and live,
/// the environment's own for a multidev.
fn branch(env: &str) -> &str {
    if matches!(env, "dev" | "test" | "live") { "master" } else { env }
}

/// `upstream:updates:status SITE.ENV`. On an Integrated Composer site terminus would start a
/// `check_upstream_updates` workflow first; this read-only operation does not, and says so.
pub(super) async fn status(ops: &Ops, target: &Target) -> Result<OpOutput, OpError> {
    let env = env_of(target)?;
    let updates = ops.client.upstream_updates(&target.site_id, branch(env)).await?;
    let vars = ops.client.env_variables(&target.site_id, env).await?;
    let composer = vars
        .get("BUILD_STEP")
        .is_some_and(|v| v.as_bool().unwrap_or(false) || v.as_str().is_some_and(|s| !s.is_empty() && s != "0"));
    let behind = updates.behind.unwrap_or(0);
    let outdated = match env {
        "test" | "live" => {
            let parent = if env == "test" { &updates.dev } else { &updates.test };
            let own = if env == "test" { &updates.test } else { &updates.live };
            !(own.as_ref().is_some_and(|e| e.is_up_to_date_with_upstream)
                && parent.as_ref().is_some_and(|e| e.is_up_to_date_with_upstream))
        }
        _ => behind > 0,
    };
    let mut message = if !updates.has_code {
        "no code".to_owned()
    } else if outdated {
        format!("outdated ({behind} upstream commit(s) behind)")
    } else {
        "current".to_owned()
    };
    if composer {
        message.push_str("; Integrated Composer updates were not checked (that starts a workflow)");
    }
    Ok(OpOutput {
        changed: true,
        message,
        data: Some(
            json!({ "has_code": updates.has_code, "behind": behind, "ahead": updates.ahead, "outdated": outdated,
                           "integrated_composer": composer }),
        ),
    })
}

/// `upstream:updates:apply`'s check: the environment in git mode, and upstream commits it
/// is behind (how many); none is nothing to do.
pub(crate) async fn decide_apply(ops: &Ops, target: &Target) -> Result<Decision<u64>, OpError> {
    let env = env_of(target)?;
    let (envs, updates) = tokio::try_join!(
        ops.client.environments(&target.site_id),
        ops.client.upstream_updates(&target.site_id, branch(env))
    )?;
    if envs.get(env).and_then(|e| e.on_server_development).unwrap_or(false) {
        return Ok(Decision::refuse(format!("{}.{env} is in SFTP mode; git mode is needed", target.site)));
    }
    let behind = updates.behind.unwrap_or(0);
    if !updates.has_code || behind == 0 {
        return Ok(Decision::nothing("There are no available updates for this site."));
    }
    Ok(Decision::act(behind, format!("{behind} upstream commit(s) to apply")))
}

/// `upstream:updates:apply SITE.ENV [--updatedb] [--accept-upstream]`; nothing behind ends
/// unchanged.
pub(super) async fn apply(
    ops: &Ops,
    target: &Target,
    updatedb: bool,
    accept_upstream: bool,
    ctx: &impl OpContext,
) -> Result<OpOutput, OpError> {
    let behind = settle!(decide_apply(ops, target).await?);
    let env = env_of(target)?;
    let start = StartWorkflow {
        scope: WorkflowScope::Env { site_id: target.site_id.clone(), env: env.to_owned() },
        kind: WorkflowType::ApplyUpstreamUpdates,
        params: json!({ "updatedb": updatedb, "xoption": accept_upstream }),
        marker: None,
    };
    ops.run_workflow(&start, ctx).await?;
    Ok(OpOutput { changed: true, message: format!("applied {behind} upstream commit(s)"), data: None })
}
