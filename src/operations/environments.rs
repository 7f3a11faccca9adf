//! Environment operations: `env:deploy` (with terminus's nothing-to-deploy check and the first
//! deploy of an uninitialized environment) and `env:clear-cache` (pantheon-api.md §5.2-5.3).

use serde_json::json;

use super::api::workflows::{StartWorkflow, WorkflowScope};
use super::{OpContext, OpError, OpOutput, Ops, Target, env_of};

/// `env:deploy SITE.ENV`: code from the parent (dev → test, test → live).
#[expect(clippy::too_many_arguments, reason = "terminus's options, one by one")]
pub(super) async fn deploy(
    ops: &Ops,
    target: &Target,
    note: &str,
    updatedb: bool,
    cc: bool,
    sync_content: bool,
    task: &str,
    ctx: &impl OpContext,
) -> Result<OpOutput, OpError> {
    let env = env_of(target)?;
    let parent = match env {
        "test" => "dev",
        "live" => "test",
        other => return Err(OpError::permanent(format!("code is deployed to test or live, not {other}"))),
    };
    let annotation = format!("{note} {}", ops.marker(task));
    let scope = WorkflowScope::Env { site_id: target.site_id.clone(), env: env.to_owned() };
    let settings = ops.client.env_settings(&target.site_id, env).await?;
    if !settings.is_initialized {
        // The first deploy creates the environment from its parent's content.
        let start = StartWorkflow {
            scope,
            kind: "create_environment".to_owned(),
            params: json!({
                "annotation": annotation,
                "clone_database": { "from_environment": parent },
                "clone_files": { "from_environment": parent },
            }),
            marker: Some(ops.marker(task)),
        };
        ops.run_workflow(&start, ctx).await?;
        return Ok(OpOutput { changed: true, message: format!("initialized {env} from {parent}"), data: None });
    }
    let log = ops.client.code_log(&target.site_id, parent).await?;
    let pending =
        log.iter().filter(|c| c.labels.iter().any(|l| l == parent) && !c.labels.iter().any(|l| l == env)).count();
    if pending == 0 {
        return Ok(OpOutput { changed: false, message: "There is nothing to deploy.".to_owned(), data: None });
    }
    let mut params = json!({
        "updatedb": i32::from(updatedb),
        "clear_cache": i32::from(cc),
        "annotation": annotation,
    });
    if sync_content && env == "test" {
        let live = ops.client.env_settings(&target.site_id, "live").await?;
        if !live.is_initialized {
            return Err(OpError::permanent("cannot sync content from live: live is not initialized"));
        }
        params["clone_database"] = json!({ "from_environment": "live" });
        params["clone_files"] = json!({ "from_environment": "live" });
    }
    let start = StartWorkflow { scope, kind: "deploy".to_owned(), params, marker: Some(ops.marker(task)) };
    ops.run_workflow(&start, ctx).await?;
    let plural = if pending == 1 { "" } else { "s" };
    Ok(OpOutput { changed: true, message: format!("deployed {pending} commit{plural} from {parent}"), data: None })
}

/// `env:clear-cache SITE.ENV`.
pub(super) async fn clear_cache(ops: &Ops, target: &Target, ctx: &impl OpContext) -> Result<OpOutput, OpError> {
    let env = env_of(target)?;
    let start = StartWorkflow {
        scope: WorkflowScope::Env { site_id: target.site_id.clone(), env: env.to_owned() },
        kind: "clear_cache".to_owned(),
        params: json!({ "framework_cache": true }),
        marker: None,
    };
    ops.run_workflow(&start, ctx).await?;
    Ok(OpOutput { changed: true, message: "caches cleared".to_owned(), data: None })
}
